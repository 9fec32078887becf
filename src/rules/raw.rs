//! The rule file as written: serde types that mirror the TOML one to one.
//!
//! Every table rejects unknown keys, so a misspelled setting is an error with
//! a line number rather than a silently ignored default. Values that need
//! checking against each other are kept [`Spanned`] so that validation can
//! point at the line that is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::backend::BackendKind;
use crate::sharding::time_range::Interval;
use crate::sharding::{KeyType, TextCollation};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub backend: Spanned<BackendKind>,
    /// Where statements on tables with no rule go; without it they are refused.
    pub default_shard: Option<Spanned<String>>,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default, rename = "shard")]
    pub shards: Vec<Spanned<RawShard>>,
    #[serde(default, rename = "keyspace")]
    pub keyspaces: BTreeMap<String, Spanned<RawKeyspace>>,
    #[serde(default, rename = "table")]
    pub tables: Vec<Spanned<RawTable>>,
    #[serde(default, rename = "example")]
    pub examples: Vec<Spanned<RawExample>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Send UPDATE/DELETE without a sharding-key predicate to every shard.
    #[serde(default)]
    pub allow_scatter_writes: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShard {
    pub name: Spanned<String>,
    pub host: Spanned<String>,
    pub port: Spanned<RawPort>,
    pub database: Spanned<String>,
    pub user: Spanned<String>,
    pub password: Option<Spanned<String>>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<Spanned<String>>,
    /// The keyspace slices this shard owns, as `"-40"`, `"40-80"`, `"80-"`.
    pub slices: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub replicas: Vec<Spanned<RawEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub host: Spanned<String>,
    pub port: Spanned<RawPort>,
}

/// A port as a number, or as a string that may name environment variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawPort {
    Number(u16),
    Text(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Hash,
    TimeRange,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyspace {
    pub algorithm: Spanned<Algorithm>,
    pub key_type: Spanned<KeyType>,
    /// How text keys compare (text keys only).
    pub text_collation: Option<Spanned<TextCollation>>,
    /// Explicit time ranges (time_range only).
    pub ranges: Option<Vec<Spanned<RawRange>>>,
    /// Generated time ranges (time_range only).
    pub generate: Option<Spanned<RawGenerate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRange {
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub shard: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGenerate {
    pub interval: Spanned<Interval>,
    pub start: Spanned<String>,
    pub end: Spanned<String>,
    pub shards: Spanned<Vec<String>>,
    #[serde(default)]
    pub open_start: bool,
    #[serde(default)]
    pub open_end: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub name: Spanned<String>,
    /// Sharded: the keyspace and the key column.
    pub keyspace: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    /// Reference (broadcast) table: a full copy on every shard.
    #[serde(default)]
    pub reference: bool,
    /// Pinned table: lives whole on this shard.
    pub shard: Option<Spanned<String>>,
    /// A column shardgate fills with a generated id when an INSERT leaves it out.
    pub generated_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExample {
    pub table: Spanned<String>,
    pub key: Spanned<RawExampleKey>,
    pub shard: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawExampleKey {
    Integer(i64),
    Text(String),
}
