//! An in-process `PgProxy` in front of a test cluster.
//!
//! [`start_pg`] writes a rule file for the cluster's shards (plus the
//! keyspaces and tables a test module asks for) and a config with three
//! users, loads both, deletes the files again and serves on an ephemeral
//! port from a background thread with its own tokio runtime. Dropping the
//! [`Proxy`] stops the runtime, which closes every client and backend
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use shardgate::cluster::Cluster;
use shardgate::config::Config;
use shardgate::rules::{KeyPlacement, Rules};
use shardgate::server::PgProxy;
use shardgate::sharding::Literal;

/// SCRAM-SHA-256 user.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "apppw";
/// md5 user.
pub const MD5_USER: &str = "md5user";
pub const MD5_PASSWORD: &str = "md5pw";
/// trust user (no password asked).
pub const TRUST_USER: &str = "trusted";

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The rules it serves, to find the owner of a key independently of it.
    pub rules: Arc<Rules>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A libpq-style connection string for a user of the proxy.
    pub fn conn_str(&self, user: &str, password: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} password={password} dbname=shardgate", self.addr.port())
    }

    /// A `postgres://` URL for a user of the proxy.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/shardgate", self.addr.port())
    }

    /// The index of the shard that owns integer key `key` of `table`.
    pub fn owner(&self, table: &str, key: i64) -> usize {
        let rule = self.rules.table(None, table).unwrap_or_else(|| panic!("no rule for {table}"));
        match self.rules.locate(rule, Literal::Int(key)) {
            Ok(KeyPlacement::Shard(s)) => s.index(),
            other => panic!("{table}.{key} has no shard: {other:?}"),
        }
    }

    /// `n` keys from `from` upwards that `shard` owns.
    pub fn keys_on(&self, table: &str, shard: usize, from: i64, n: usize) -> Vec<i64> {
        (from..).filter(|&k| self.owner(table, k) == shard).take(n).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The rule file: `backend`, one `[[shard]]` per shard of the cluster, then `tables`.
pub fn rule_file(cluster: &Cluster, tables: &str) -> String {
    let mut out = String::from("backend = \"postgres\"\n");
    for s in cluster.shards() {
        out.push_str(&format!(
            "\n[[shard]]\nname = \"{}\"\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n",
            s.name, s.host, s.port, s.database, s.user, s.password
        ));
    }
    out.push('\n');
    out.push_str(tables);
    out
}

/// Starts a proxy for `cluster` with the given rule-file tables; `extra_config`
/// is appended to the config file (`[timeouts]`, `[pool]`, …).
pub fn start_pg(cluster: &Cluster, tables: &str, extra_config: &str) -> Proxy {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shardgate-proxy-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.toml"), rule_file(cluster, tables)).unwrap();
    let config = format!(
        "rules = \"rules.toml\"\n\n[postgres]\nlisten = \"127.0.0.1:0\"\n\n\
         [[user]]\nname = \"{APP_USER}\"\npassword = \"{APP_PASSWORD}\"\nauth = \"scram-sha-256\"\n\n\
         [[user]]\nname = \"{MD5_USER}\"\npassword = \"{MD5_PASSWORD}\"\nauth = \"md5\"\n\n\
         [[user]]\nname = \"{TRUST_USER}\"\nauth = \"trust\"\n\n{extra_config}\n"
    );
    std::fs::write(dir.join("shardgate.toml"), config).unwrap();
    let config = Config::load(&dir.join("shardgate.toml")).unwrap_or_else(|e| panic!("config: {e}"));
    let rules_path = config.rules.clone();
    let rules = Rules::load(&rules_path).unwrap_or_else(|e| panic!("rules: {e}"));
    let copy = Rules::load(&rules_path).unwrap_or_else(|e| panic!("rules: {e}"));
    std::fs::remove_dir_all(&dir).unwrap();

    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let proxy = match PgProxy::bind(Arc::new(config), rules).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = addr_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = addr_tx.send(proxy.local_addr().map_err(|e| e.to_string()));
            tokio::select! {
                r = proxy.run() => panic!("the proxy stopped serving: {r:?}"),
                _ = stopped => {}
            }
        });
    });
    let addr = addr_rx.recv().unwrap().unwrap_or_else(|e| panic!("starting the proxy: {e}"));
    Proxy { addr, rules: Arc::new(copy), stop: Some(stop), thread: Some(thread) }
}
