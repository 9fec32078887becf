//! Sharding algorithms: how a key value finds its shard.
//!
//! - [`key`]: key types and the canonical form of a key value (so that every
//!   spelling the database treats as equal lands on the same shard);
//! - [`hash`]: the 64-bit keyspace and the slices of it each shard owns;
//! - [`time_range`]: explicit and generated time ranges;
//! - [`shard_set`]: the set of shards a statement may touch;
//! - [`idgen`]: globally unique generated ids.

pub mod hash;
pub mod idgen;
pub mod key;
pub mod shard_set;
pub mod time_range;

pub use hash::{KeyspaceId, Slice};
pub use key::{Canonical, KeyType, KeyValue, Literal, TextCollation};
pub use shard_set::{MAX_SHARDS, ShardId, ShardSet};
