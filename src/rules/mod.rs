//! Rule files: where every table's rows live.
//!
//! A rule file is TOML (see `rules/demo-postgres.toml` for a commented
//! example). [`Rules::load`] reads one, checks it as a whole and either returns
//! the validated [`Rules`] or every error it found, each with the file, line
//! and field. A validated `Rules` is immutable; the proxy holds it behind an
//! `Arc` so that a reload can swap it atomically while statements in flight
//! finish on the rules they started with.

mod raw;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use raw::Algorithm;
pub use validate::{RuleError, RuleErrors};

use crate::backend::BackendKind;
use crate::sharding::hash::HashRing;
use crate::sharding::key::{Canonical, KeyContext, KeyError, KeyValue, Literal, canonicalize};
use crate::sharding::time_range::TimeRanges;
use crate::sharding::{KeyType, ShardId, ShardSet, Slice, TextCollation};

/// A validated rule file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub backend: BackendKind,
    pub shards: Vec<Shard>,
    pub keyspaces: Vec<Keyspace>,
    pub tables: Vec<TableRule>,
    /// Table lookup by lower-cased name (as written in the rule).
    by_name: HashMap<String, usize>,
    pub default_shard: Option<ShardId>,
    pub policy: Policy,
    pub examples: Vec<Example>,
    /// The ring of the hash keyspaces (slices are a property of the shards).
    pub ring: HashRing,
}

/// Switches that relax the router's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_scatter_writes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: ShardId,
    pub name: String,
    pub endpoint: Endpoint,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    pub replicas: Vec<Endpoint>,
    /// The hash keyspace slices this shard owns.
    pub slices: Vec<Slice>,
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("replicas", &self.replicas)
            .field("slices", &self.slices)
            .finish()
    }
}

/// A named placement scheme. Tables on the same keyspace are co-located: rows
/// with equal keys live on the same shard, so joins on the key stay local.
#[derive(Debug, Clone)]
pub struct Keyspace {
    pub name: String,
    pub key_type: KeyType,
    pub collation: TextCollation,
    pub placement: Placement,
}

#[derive(Debug, Clone)]
pub enum Placement {
    Hash,
    TimeRange(TimeRanges),
}

/// Where a key value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPlacement {
    Shard(ShardId),
    /// `NULL`, or a value no key equals: no row can match.
    Nowhere,
    /// A time value outside every range.
    Uncovered,
}

impl Keyspace {
    /// The shards that can hold rows of this keyspace.
    pub fn shards(&self, ring: &HashRing) -> ShardSet {
        match &self.placement {
            Placement::Hash => ring.shards().collect(),
            Placement::TimeRange(r) => r.shards(),
        }
    }

    /// The shard of a canonical key value.
    pub fn shard_of(&self, ring: &HashRing, value: &KeyValue) -> KeyPlacement {
        match &self.placement {
            Placement::Hash => KeyPlacement::Shard(ring.owner_of(value)),
            Placement::TimeRange(r) => match value.time_point().and_then(|t| r.shard_of(t)) {
                Some(s) => KeyPlacement::Shard(s),
                None => KeyPlacement::Uncovered,
            },
        }
    }

    /// Reads a literal as a key of this keyspace and places it.
    pub fn place(
        &self,
        ring: &HashRing,
        lit: Literal<'_>,
        cx: &KeyContext,
    ) -> Result<(KeyPlacement, Option<KeyValue>), KeyError> {
        let cx = KeyContext { collation: self.collation, ..*cx };
        Ok(match canonicalize(self.key_type, lit, &cx)? {
            Canonical::Value(v) => (self.shard_of(ring, &v), Some(v)),
            Canonical::Null | Canonical::NoMatch => (KeyPlacement::Nowhere, None),
        })
    }
}

/// A table's rule.
#[derive(Debug, Clone)]
pub struct TableRule {
    /// Lower-cased, as written (`users` or `app.users`).
    pub name: String,
    pub placement: TablePlacement,
    /// A column shardgate fills with a generated id when an INSERT leaves it out.
    pub generated_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablePlacement {
    /// Rows placed by `key` in keyspace number `keyspace`.
    Sharded { keyspace: usize, key: String },
    /// A full copy on every shard.
    Reference,
    /// The whole table on one shard.
    Pinned(ShardId),
}

/// "key K of table T lives on shard S", verified by `shardgate check`.
#[derive(Debug, Clone)]
pub struct Example {
    pub table: String,
    pub key: String,
    pub shard: ShardId,
    pub line: usize,
}

impl Rules {
    /// Reads and validates a rule file.
    pub fn load(path: &Path) -> Result<Rules, RuleErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| RuleErrors::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates rule-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Rules, RuleErrors> {
        validate::validate(text, origin, &|name| std::env::var(name).ok())
    }

    /// Like [`Rules::parse`], reading `${VAR}` references through `env`.
    pub fn parse_with_env(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Rules, RuleErrors> {
        validate::validate(text, origin, env)
    }

    /// Rebuilds the name index after `tables` changed.
    fn index_tables(&mut self) {
        self.by_name = self.tables.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    }

    pub fn shard(&self, id: ShardId) -> &Shard {
        &self.shards[id.index()]
    }

    pub fn shard_by_name(&self, name: &str) -> Option<ShardId> {
        self.shards.iter().find(|s| s.name == name).map(|s| s.id)
    }

    pub fn all_shards(&self) -> ShardSet {
        ShardSet::all(self.shards.len())
    }

    /// The rule for a table reference. `schema` and `name` are compared
    /// case-insensitively as the front end normalised them. A rule written
    /// without a schema matches the unqualified name and the name qualified
    /// with the default schema (`public` on PostgreSQL; the shard's database
    /// on MySQL); a rule with a schema matches that qualified name, and the
    /// unqualified name when the schema is the default one.
    pub fn table(&self, schema: Option<&str>, name: &str) -> Option<&TableRule> {
        let default_schema = match self.backend {
            BackendKind::Postgres => "public",
            BackendKind::Mysql => self.shards.first().map_or("", |s| s.database.as_str()),
        };
        let find = |key: &str| self.by_name.get(key).map(|&i| &self.tables[i]);
        match schema {
            None => find(name).or_else(|| find(&format!("{default_schema}.{name}"))),
            Some(s) => find(&format!("{s}.{name}")).or_else(|| if s == default_schema { find(name) } else { None }),
        }
    }

    pub fn keyspace(&self, i: usize) -> &Keyspace {
        &self.keyspaces[i]
    }

    /// Where a key literal of a table lives (for `check` examples and EXPLAIN).
    pub fn locate(&self, table: &TableRule, key: Literal<'_>) -> Result<KeyPlacement, KeyError> {
        match &table.placement {
            TablePlacement::Sharded { keyspace, .. } => {
                let ks = &self.keyspaces[*keyspace];
                let cx = KeyContext::new(self.backend, ks.collation);
                Ok(ks.place(&self.ring, key, &cx)?.0)
            }
            TablePlacement::Pinned(s) => Ok(KeyPlacement::Shard(*s)),
            TablePlacement::Reference => Ok(KeyPlacement::Shard(ShardId(0))),
        }
    }

    /// A one-screen summary of the placement, for `shardgate check`.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "backend: {}", self.backend);
        let _ = writeln!(out, "shards ({}):", self.shards.len());
        for s in &self.shards {
            let slices: Vec<String> = s.slices.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "  {:<8} {}/{} user {}{}{}",
                s.name,
                s.endpoint,
                s.database,
                s.user,
                if slices.is_empty() { String::new() } else { format!("  hash slices {}", slices.join(", ")) },
                if s.replicas.is_empty() { String::new() } else { format!("  replicas {}", s.replicas.len()) },
            );
        }
        let _ = writeln!(out, "keyspaces ({}):", self.keyspaces.len());
        for ks in &self.keyspaces {
            match &ks.placement {
                Placement::Hash => {
                    let _ = writeln!(out, "  {:<12} hash on {} key", ks.name, ks.key_type);
                }
                Placement::TimeRange(r) => {
                    let _ = writeln!(
                        out,
                        "  {:<12} time_range on {} key, {} ranges:",
                        ks.name,
                        ks.key_type,
                        r.ranges().len()
                    );
                    for range in r.ranges().iter().take(12) {
                        let t = |v: Option<i64>, open: &str| {
                            v.map(|v| KeyValue::Timestamp(v).to_string()).unwrap_or_else(|| open.to_string())
                        };
                        let _ = writeln!(
                            out,
                            "    [{}, {}) -> {}",
                            t(range.from, "-inf"),
                            t(range.to, "+inf"),
                            self.shard(range.shard).name
                        );
                    }
                    if r.ranges().len() > 12 {
                        let _ = writeln!(out, "    … {} more", r.ranges().len() - 12);
                    }
                }
            }
        }
        let _ = writeln!(out, "tables ({}):", self.tables.len());
        for t in &self.tables {
            let place = match &t.placement {
                TablePlacement::Sharded { keyspace, key } => {
                    format!("sharded by {key} in keyspace {}", self.keyspaces[*keyspace].name)
                }
                TablePlacement::Reference => "reference (a copy on every shard)".to_string(),
                TablePlacement::Pinned(s) => format!("pinned to {}", self.shard(*s).name),
            };
            let generated = t.generated_id.as_ref().map(|c| format!(", {c} generated")).unwrap_or_default();
            let _ = writeln!(out, "  {:<20} {place}{generated}", t.name);
        }
        let _ = writeln!(
            out,
            "unlisted tables: {}",
            match self.default_shard {
                Some(s) => format!("go to {}", self.shard(s).name),
                None => "refused".to_string(),
            }
        );
        let _ = writeln!(
            out,
            "writes without a sharding key: {}",
            if self.policy.allow_scatter_writes { "sent to every shard" } else { "refused" }
        );
        let _ = writeln!(out, "examples verified: {}", self.examples.len());
        out
    }
}
