//! Why the router refuses a statement. Each message names the rule or setting
//! involved and the tables or shards concerned.

use crate::error::{Coded, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("syntax error: {message}")]
    Syntax { message: String },

    #[error("table {table} has no rule in the rule file and no default_shard is configured")]
    UnknownTable { table: String },

    #[error(
        "cross-shard transaction: {}this statement needs shard(s) {wanted}; a transaction writes to one shard only \
         (transactions.policy = \"multi_shard_writes\" in the proxy config allows non-atomic writes to several)",
        pinned.as_ref().map(|p| format!("the transaction is pinned to shard {p}, ")).unwrap_or_default()
    )]
    CrossShardTransaction { pinned: Option<String>, wanted: String },

    #[error("cross-shard join: {detail}")]
    CrossShardJoin { detail: String },

    #[error("subquery over several shards: {detail}")]
    Subquery { detail: String },

    #[error("{construct} over several shards cannot be merged exactly ({why})")]
    Unmergeable { construct: String, why: &'static str },

    #[error(
        "{verb} on {table} has no predicate on its sharding key {key} and would touch every shard; \
         add the key to the WHERE clause, or set policy.allow_scatter_writes = true in the rule file"
    )]
    ScatterWrite { verb: &'static str, table: String, key: String },

    #[error("UPDATE of {table} changes its sharding key {key}; the row would have to move to another shard")]
    KeyUpdate { table: String, key: String },

    #[error("INSERT into {table}: {detail}")]
    Insert { table: String, detail: String },

    #[error("INSERT into {table}: the sharding key {key} is NULL in row {row}")]
    NullKey { table: String, key: String, row: usize },

    #[error("INSERT into {table}: key {value} of row {row} is outside every time range of keyspace {keyspace}")]
    NoShardForKey { table: String, value: String, row: usize, keyspace: String },

    #[error("INSERT into {table}: {detail}")]
    InvalidKey { table: String, detail: String },

    #[error("{table} is a reference table: {detail}")]
    ReferenceWrite { table: String, detail: String },

    #[error("{detail}")]
    Ddl { detail: String },

    #[error("the statement refers to parameter ${index} but {given} were given")]
    MissingParameter { index: usize, given: usize },

    #[error("{detail}")]
    Unsupported { detail: String },
}

impl Coded for RouteError {
    fn code(&self) -> ErrorCode {
        match self {
            RouteError::Syntax { .. } => ErrorCode::Syntax,
            RouteError::UnknownTable { .. } => ErrorCode::UnknownTable,
            RouteError::CrossShardTransaction { .. } => ErrorCode::CrossShardTransaction,
            RouteError::NullKey { .. } => ErrorCode::NullKey,
            RouteError::NoShardForKey { .. } => ErrorCode::NoShardForKey,
            RouteError::InvalidKey { .. } => ErrorCode::InvalidKeyValue,
            RouteError::MissingParameter { .. } => ErrorCode::InvalidParameter,
            RouteError::CrossShardJoin { .. }
            | RouteError::Subquery { .. }
            | RouteError::Unmergeable { .. }
            | RouteError::ScatterWrite { .. }
            | RouteError::KeyUpdate { .. }
            | RouteError::Insert { .. }
            | RouteError::ReferenceWrite { .. }
            | RouteError::Ddl { .. }
            | RouteError::Unsupported { .. } => ErrorCode::Unsupported,
        }
    }
}
