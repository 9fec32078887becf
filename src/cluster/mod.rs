//! Local clusters of real shard servers (PostgreSQL or MariaDB) for tests, the
//! demo and the shell scripts in `integration/`.
//!
//! A [`Cluster`] is N independent shard servers plus, optionally, one plain
//! *reference* server of the same kind, each listening on its own free port on
//! 127.0.0.1, with a database `shardgate` and a user `shardgate` (password
//! `shardgate`). Collations are pinned identically everywhere: PostgreSQL
//! databases use ICU `en-US` (libc locale C), MariaDB uses utf8mb4 with
//! utf8mb4_general_ci.
//!
//! Providers:
//! * local (default): the machine's `postgres`/`initdb` or
//!   `mariadbd`/`mariadb-install-db`, started directly so their PIDs are known.
//!   Each cluster lives in a fresh dir `shardgate-cluster-*` under
//!   `SHARDGATE_TMPDIR` (default: the system temp dir). Servers get a death
//!   signal tied to this process, so they go away even if it is SIGKILLed;
//!   the dirs such a process leaves behind are removed by the next cluster
//!   start under the same base dir.
//! * docker (cargo feature `docker`, chosen with `SHARDGATE_TEST_BACKEND=docker`):
//!   postgres:15 / mariadb:10.11 containers through testcontainers.
//!
//! Stopping: [`Cluster::stop`] or dropping the cluster stops every server
//! and removes the dir.

mod bins;
mod cli;
#[cfg(feature = "docker")]
mod docker;
mod local;
mod proc;
mod tmp;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

pub use bins::client as client_binary;
pub(crate) use cli::shutdown_signals;
pub use cli::{ClusterArgs, run_cli};
pub use proc::pid_alive;

use crate::backend::BackendKind;

/// Login name on every server.
pub const USER: &str = "shardgate";
/// Password of [`USER`] on every server (alphanumeric, so it needs no
/// escaping in URLs or shells).
pub const PASSWORD: &str = "shardgate";
/// Database created on every server.
pub const DATABASE: &str = "shardgate";
/// Name prefix of cluster dirs (and so of every server's data dir path).
pub const DIR_PREFIX: &str = "shardgate-cluster-";
/// Name of the reference server.
pub const REFERENCE: &str = "ref";

/// Errors starting, using or stopping a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what} not found: {hint}")]
    BinaryNotFound { what: String, hint: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed for server {server} ({status}):\n{output}")]
    CommandFailed { server: String, command: String, status: String, output: String },
    #[error(
        "server {server} exited during startup ({status}); last lines of {}:\n{tail}",
        log.display()
    )]
    ExitedEarly { server: String, status: String, log: PathBuf, tail: String },
    #[error(
        "server {server} did not accept logins within {secs}s: {reason}\nlast lines of {}:\n{tail}",
        log.display()
    )]
    NotReady { server: String, secs: u64, reason: String, log: PathBuf, tail: String },
    #[error("query on server {server} failed: {message}")]
    Query { server: String, message: String },
    #[error("invalid cluster: {0}")]
    InvalidSpec(String),
    #[error("docker provider: {0}")]
    Docker(String),
}

/// Where a cluster's servers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Server binaries on this machine.
    Local,
    /// Containers through testcontainers (cargo feature `docker`).
    Docker,
}

impl Provider {
    /// `SHARDGATE_TEST_BACKEND=docker` selects Docker; anything else is local.
    pub fn from_env() -> Provider {
        match std::env::var("SHARDGATE_TEST_BACKEND").as_deref() {
            Ok("docker") => Provider::Docker,
            _ => Provider::Local,
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub kind: BackendKind,
    /// Number of shard servers, named s0, s1, ...
    pub shards: usize,
    /// Also start a plain reference server named `ref`.
    pub reference: bool,
    /// Parent of the cluster dir; default `SHARDGATE_TMPDIR` or the temp dir.
    pub base_dir: Option<PathBuf>,
    /// Default: [`Provider::from_env`].
    pub provider: Option<Provider>,
}

impl ClusterSpec {
    pub fn new(kind: BackendKind, shards: usize) -> Self {
        ClusterSpec { kind, shards, reference: false, base_dir: None, provider: None }
    }

    pub fn with_reference(mut self, reference: bool) -> Self {
        self.reference = reference;
        self
    }

    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.shards).map(|i| format!("s{i}")).collect();
        if self.reference {
            names.push(REFERENCE.to_string());
        }
        names
    }
}

/// One running server and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// `s0`, `s1`, ... or `ref`.
    pub name: String,
    pub kind: BackendKind,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    /// The server's PID (local provider only).
    pub pid: Option<u32>,
}

impl Server {
    /// `postgres://shardgate:shardgate@127.0.0.1:PORT/shardgate` or `mysql://…`.
    pub fn url(&self) -> String {
        let scheme = match self.kind {
            BackendKind::Postgres => "postgres",
            BackendKind::Mysql => "mysql",
        };
        format!("{scheme}://{}:{}@{}:{}/{}", self.user, self.password, self.host, self.port, self.database)
    }

    /// The name used in environment variables: `S0`, `S1`, ... or `REF`.
    pub fn env_name(&self) -> String {
        self.name.to_uppercase()
    }

    /// `psql` or `mariadb` with this server's connection options (over TCP,
    /// as the `shardgate` user); add `-c SQL` / `-e SQL` or a script on stdin.
    pub fn client_command(&self) -> Result<Command, ClusterError> {
        let mut cmd = Command::new(bins::client(self.kind)?);
        match self.kind {
            BackendKind::Postgres => {
                cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
                    .arg(self.url())
                    .env("PGCONNECT_TIMEOUT", "10");
                for var in ["PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE"] {
                    cmd.env_remove(var);
                }
            }
            BackendKind::Mysql => {
                cmd.arg("--no-defaults")
                    .arg("--protocol=TCP")
                    .args(["-h", &self.host, "-P", &self.port.to_string()])
                    .args(["-u", &self.user, "-D", &self.database, "-N", "-B"])
                    .arg("--connect-timeout=10")
                    .env("MYSQL_PWD", &self.password);
            }
        }
        Ok(cmd)
    }

    /// Runs SQL (one or more statements) through the command line client and
    /// returns its trimmed output: rows on lines, columns separated by `|`
    /// (PostgreSQL) or a tab (MariaDB).
    pub fn query(&self, sql: &str) -> Result<String, ClusterError> {
        let mut cmd = self.client_command()?;
        cmd.arg(match self.kind {
            BackendKind::Postgres => "-c",
            BackendKind::Mysql => "-e",
        })
        .arg(sql)
        .stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(|source| ClusterError::Io { context: format!("running the {} client", self.kind), source })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(ClusterError::Query {
                server: self.name.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

enum Backing {
    Local(local::Processes),
    #[cfg(feature = "docker")]
    Docker(docker::Containers),
}

/// Running shard servers (and maybe a reference server). Dropping it stops them.
pub struct Cluster {
    kind: BackendKind,
    shards: Vec<Server>,
    reference: Option<Server>,
    dir: PathBuf,
    backing: Mutex<Option<Backing>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("kind", &self.kind)
            .field("shards", &self.shards)
            .field("reference", &self.reference)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts all servers of `spec` in parallel and waits until each accepts
    /// logins as `shardgate`. On error nothing is left running.
    pub fn start(spec: &ClusterSpec) -> Result<Cluster, ClusterError> {
        if spec.shards == 0 && !spec.reference {
            return Err(ClusterError::InvalidSpec("no servers asked for".into()));
        }
        let base = tmp::base_dir(spec.base_dir.as_deref());
        tmp::remove_stale(&base);
        let dir = tmp::create_cluster_dir(&base)?;
        let names = spec.names();
        let started = match spec.provider.unwrap_or_else(Provider::from_env) {
            Provider::Local => local::start(spec.kind, &dir, &names).map(|(s, p)| (s, Backing::Local(p))),
            #[cfg(feature = "docker")]
            Provider::Docker => docker::start(spec.kind, &names).map(|(s, c)| (s, Backing::Docker(c))),
            #[cfg(not(feature = "docker"))]
            Provider::Docker => Err(ClusterError::Docker(
                "SHARDGATE_TEST_BACKEND=docker needs shardgate built with `--features docker`".into(),
            )),
        };
        let (servers, backing) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let (reference, shards): (Vec<Server>, Vec<Server>) = servers.into_iter().partition(|s| s.name == REFERENCE);
        Ok(Cluster {
            kind: spec.kind,
            shards,
            reference: reference.into_iter().next(),
            dir,
            backing: Mutex::new(Some(backing)),
        })
    }

    /// Starts several clusters at once (each one's servers in parallel too).
    pub fn start_many(specs: &[ClusterSpec]) -> Result<Vec<Cluster>, ClusterError> {
        parallel(specs, Cluster::start).into_iter().collect()
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The shard servers s0, s1, ... in order.
    pub fn shards(&self) -> &[Server] {
        &self.shards
    }

    pub fn shard(&self, i: usize) -> &Server {
        &self.shards[i]
    }

    /// The plain reference server, if the spec asked for one.
    pub fn reference(&self) -> Option<&Server> {
        self.reference.as_ref()
    }

    /// Shards, then the reference server.
    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.shards.iter().chain(self.reference.iter())
    }

    /// The cluster's own temp dir (server dirs and logs; a place for files
    /// that should go away with the cluster, like the demo's rule file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills one server at once (SIGKILL; a stopped container with Docker),
    /// to test how the proxy copes with a dead shard.
    pub fn kill_server(&self, name: &str) -> Result<(), ClusterError> {
        let mut backing = self.backing.lock().unwrap_or_else(|e| e.into_inner());
        let found = match backing.as_mut() {
            Some(Backing::Local(procs)) => procs.kill(name),
            #[cfg(feature = "docker")]
            Some(Backing::Docker(containers)) => containers.kill(name)?,
            None => false,
        };
        if found { Ok(()) } else { Err(ClusterError::InvalidSpec(format!("no running server named {name}"))) }
    }

    /// Stops every server and removes the cluster dir. Idempotent.
    pub fn stop(&self) {
        let backing = self.backing.lock().unwrap_or_else(|e| e.into_inner()).take();
        match backing {
            Some(Backing::Local(mut procs)) => procs.stop_all(),
            #[cfg(feature = "docker")]
            Some(Backing::Docker(containers)) => drop(containers),
            None => return,
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Environment variables describing the cluster, as `shardgate cluster`
    /// exports them to its command: `SHARDGATE_BACKEND`, `SHARDGATE_SHARDS`,
    /// `SHARDGATE_S<i>_{HOST,PORT,URL,PID}`, `SHARDGATE_REF_{HOST,PORT,URL,PID}`,
    /// `SHARDGATE_SHARD_{USER,PASSWORD,DATABASE}`, `SHARDGATE_CLUSTER_DIR`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("SHARDGATE_BACKEND".to_string(), self.kind.to_string()),
            ("SHARDGATE_SHARDS".to_string(), self.shards.len().to_string()),
            ("SHARDGATE_SHARD_USER".to_string(), USER.to_string()),
            ("SHARDGATE_SHARD_PASSWORD".to_string(), PASSWORD.to_string()),
            ("SHARDGATE_SHARD_DATABASE".to_string(), DATABASE.to_string()),
            ("SHARDGATE_CLUSTER_DIR".to_string(), self.dir.display().to_string()),
        ];
        for s in self.servers() {
            let prefix = format!("SHARDGATE_{}", s.env_name());
            env.push((format!("{prefix}_HOST"), s.host.clone()));
            env.push((format!("{prefix}_PORT"), s.port.to_string()));
            env.push((format!("{prefix}_URL"), s.url()));
            if let Some(pid) = s.pid {
                env.push((format!("{prefix}_PID"), pid.to_string()));
            }
        }
        env
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `f` on every item, each on its own thread, and returns the results in
/// order. Starting servers is mostly waiting (initdb, startup), so this is
/// how a cluster's servers start together.
pub fn parallel<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|item| s.spawn(|| f(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(kind: BackendKind, name: &str) -> Server {
        Server {
            name: name.into(),
            kind,
            host: "127.0.0.1".into(),
            port: 5555,
            user: USER.into(),
            password: PASSWORD.into(),
            database: DATABASE.into(),
            pid: None,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            server(BackendKind::Postgres, "s0").url(),
            "postgres://shardgate:shardgate@127.0.0.1:5555/shardgate"
        );
        assert_eq!(server(BackendKind::Mysql, "ref").url(), "mysql://shardgate:shardgate@127.0.0.1:5555/shardgate");
        assert_eq!(server(BackendKind::Mysql, "ref").env_name(), "REF");
    }

    #[test]
    fn spec_names_shards_then_reference() {
        let spec = ClusterSpec::new(BackendKind::Postgres, 3).with_reference(true);
        assert_eq!(spec.names(), ["s0", "s1", "s2", "ref"]);
        assert_eq!(ClusterSpec::new(BackendKind::Mysql, 1).names(), ["s0"]);
    }

    #[test]
    fn empty_spec_is_refused() {
        let err = Cluster::start(&ClusterSpec::new(BackendKind::Postgres, 0)).unwrap_err();
        assert!(matches!(err, ClusterError::InvalidSpec(_)));
    }

    #[test]
    fn parallel_keeps_order() {
        assert_eq!(parallel(&[1, 2, 3], |x| x * 10), [10, 20, 30]);
    }
}
