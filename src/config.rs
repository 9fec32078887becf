//! The proxy's configuration file (`shardgate serve --config FILE`).
//!
//! ```toml
//! rules = "rules/demo-postgres.toml"   # relative to this file
//! worker_id = 0                         # for generated ids; distinct per proxy
//! threads = 2                           # threads serving clients (default: one per core)
//!
//! [postgres]
//! listen = "127.0.0.1:6432"
//! # tls_cert = "server.crt"             # PEM; with tls_key, clients may use TLS
//! # tls_key = "server.key"
//!
//! [[user]]
//! name = "app"
//! password = "secret"                   # or password_env = "APP_PASSWORD"
//! auth = "scram-sha-256"                # scram-sha-256 (default) | md5 | trust
//!
//! [pool]
//! size = 20                             # backend connections per shard
//! checkout_timeout_ms = 5000
//! mode = "transaction"                  # transaction | session
//!
//! [timeouts]
//! connect_ms = 3000
//! statement_ms = 30000
//!
//! [transactions]
//! policy = "single_shard_writes"        # single_shard_writes | strict | multi_shard_writes
//! ```
//!
//! Unknown keys are errors, like in rule files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::route::TxnPolicy;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rule file, relative to the config file.
    pub rules: PathBuf,
    #[serde(default)]
    pub worker_id: u16,
    /// Threads serving clients (default: one per core).
    pub threads: Option<usize>,
    pub postgres: Option<Listener>,
    pub mysql: Option<Listener>,
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub transactions: Transactions,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub listen: String,
    /// PEM certificate chain and private key: clients that ask get TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AuthMethod {
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "trust")]
    Trust,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: Option<String>,
    pub password_env: Option<String>,
    #[serde(default)]
    pub auth: AuthMethod,
}

impl User {
    pub fn password(&self) -> Option<String> {
        self.password.clone().or_else(|| self.password_env.as_ref().and_then(|v| std::env::var(v).ok()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A backend connection is held for one transaction, or one statement
    /// outside a transaction.
    #[default]
    Transaction,
    /// A backend connection per shard is held for the whole client session.
    Session,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(default = "default_pool_size")]
    pub size: usize,
    #[serde(default = "default_checkout_ms")]
    pub checkout_timeout_ms: u64,
    #[serde(default)]
    pub mode: PoolMode,
}

fn default_pool_size() -> usize {
    20
}
fn default_checkout_ms() -> u64 {
    5000
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { size: default_pool_size(), checkout_timeout_ms: default_checkout_ms(), mode: PoolMode::default() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect_ms")]
    pub connect_ms: u64,
    #[serde(default = "default_statement_ms")]
    pub statement_ms: u64,
}

fn default_connect_ms() -> u64 {
    3000
}
fn default_statement_ms() -> u64 {
    30_000
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect_ms: default_connect_ms(), statement_ms: default_statement_ms() }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn statement(&self) -> Duration {
        Duration::from_millis(self.statement_ms)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transactions {
    #[serde(default)]
    pub policy: TxnPolicy,
}

/// Guard rails for statements over several shards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Refuse statements that must read every shard of a keyspace.
    #[serde(default)]
    pub refuse_scatter_reads: bool,
    /// Refuse statements that reach more than this many shards.
    pub max_shards_per_statement: Option<usize>,
    /// Rows the merge may hold in memory for one statement.
    #[serde(default = "default_buffer_rows")]
    pub max_buffered_rows: usize,
}

fn default_buffer_rows() -> usize {
    1_000_000
}

impl Default for Limits {
    fn default() -> Self {
        Limits { refuse_scatter_reads: false, max_shards_per_statement: None, max_buffered_rows: default_buffer_rows() }
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: shown.clone(), source })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| {
                let before = &text[..s.start.min(text.len())];
                (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
            });
            ConfigError::Parse { path: shown.clone(), line, column, message: e.message().trim().to_string() }
        })?;
        if let Some(dir) = path.parent() {
            let resolve = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            };
            resolve(&mut cfg.rules);
            for l in [cfg.postgres.as_mut(), cfg.mysql.as_mut()].into_iter().flatten() {
                l.tls_cert.as_mut().map(resolve);
                l.tls_key.as_mut().map(resolve);
            }
        }
        cfg.validate().map_err(|message| ConfigError::Invalid { path: shown, message })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.postgres.is_none() && self.mysql.is_none() {
            return Err("no listener: add a [postgres] or [mysql] table with `listen`".into());
        }
        if self.users.is_empty() {
            return Err("no [[user]]: clients could not log in".into());
        }
        for u in &self.users {
            if u.auth != AuthMethod::Trust && u.password().is_none() {
                return Err(format!(
                    "user {} needs `password` or a set `password_env` for {:?} authentication",
                    u.name, u.auth
                ));
            }
        }
        for l in [&self.postgres, &self.mysql].into_iter().flatten() {
            if l.tls_cert.is_some() != l.tls_key.is_some() {
                return Err("a listener needs both tls_cert and tls_key, or neither".into());
            }
        }
        if self.pool.size == 0 {
            return Err("pool.size must be at least 1".into());
        }
        if crate::sharding::idgen::IdGenerator::new(self.worker_id).is_none() {
            return Err(format!("worker_id must be 0..={}", crate::sharding::idgen::MAX_WORKER));
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}
