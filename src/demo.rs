//! `shardgate demo`: local shards, a rule file for them and the demo schema.
//!
//! Starts N local shard servers in a fresh temp dir (see [`crate::cluster`]),
//! creates the demo schema ([`schema`]) on each shard directly, and writes a
//! rule file for them into that temp dir (never into the checkout): the
//! layout of `rules/demo-<backend>.toml` with the real ports filled in. With a
//! shard count other than the committed file's, the yearly event ranges
//! 2023..=2026 are spread over the shards there are: range i on shard i % N.
//!
//! With PostgreSQL shards it then starts the proxy on the given port (the
//! only fixed port; shard ports come from the OS, so several demos can run
//! at once on different proxy ports), creates the schema and loads the
//! sample data *through* the proxy, prints the URLs and a few commands to
//! try, and serves until Ctrl-C or SIGTERM. The MySQL demo stops after the
//! shards and the rule file until the MySQL front end exists.

pub mod load;
pub mod rule_file;
pub mod schema;

use std::process::ExitCode;

use crate::backend::BackendKind;
use crate::cluster::{Cluster, ClusterSpec};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Kind of shard server: postgres or mysql (MariaDB).
    #[arg(long, default_value = "postgres")]
    pub backend: BackendKind,
    /// Number of shards [default: 4 for postgres, 2 for mysql].
    #[arg(long)]
    pub shards: Option<usize>,
    /// Port the proxy will listen on [default: 6432 for postgres, 3307 for mysql].
    #[arg(long)]
    pub port: Option<u16>,
}

/// The shard count when none is given.
pub fn default_shards(kind: BackendKind) -> usize {
    match kind {
        BackendKind::Postgres => 4,
        BackendKind::Mysql => 2,
    }
}

/// The proxy port when none is given.
pub fn default_port(kind: BackendKind) -> u16 {
    match kind {
        BackendKind::Postgres => 6432,
        BackendKind::Mysql => 3307,
    }
}

/// The rule file for a running cluster's shards.
pub fn rule_file_for(cluster: &Cluster) -> String {
    let addrs: Vec<rule_file::ShardAddr> = cluster
        .shards()
        .iter()
        .map(|s| rule_file::ShardAddr { name: s.name.clone(), host: s.host.clone(), port: s.port.to_string() })
        .collect();
    rule_file::render(cluster.kind(), &addrs)
}

pub fn run(args: DemoArgs) -> ExitCode {
    match demo(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let kind = args.backend;
    let shards = args.shards.unwrap_or_else(|| default_shards(kind));
    if shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let port = args.port.unwrap_or_else(|| default_port(kind));
    if kind == BackendKind::Mysql {
        return demo_shards_only(kind, shards, port);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cluster = Cluster::start(&ClusterSpec::new(kind, shards))?;
    let rules_path = cluster.dir().join(format!("demo-{}.toml", kind.name()));
    std::fs::write(&rules_path, rule_file_for(&cluster))?;
    let result = rt.block_on(async {
        let mut rules = crate::rules::Rules::load(&rules_path)?;
        // The rule file names the password's environment variable; the demo
        // knows the password of the shards it started.
        for s in &mut rules.shards {
            s.password.get_or_insert_with(|| crate::cluster::PASSWORD.to_string());
        }
        let config = std::sync::Arc::new(demo_config(port, &rules_path));
        let proxy = crate::server::PgProxy::bind(config, rules).await?;
        let server = tokio::spawn(proxy.run());
        load::load(port).await?;
        for shard in cluster.shards() {
            println!("shard {}: {}", shard.name, shard.url());
        }
        let url = format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}");
        println!("proxy: {url}");
        println!("rules: {}", rules_path.display());
        println!("try:");
        println!("  psql \"{url}\"");
        println!("  psql \"{url}\" -c \"SELECT * FROM users WHERE id = 42\"");
        println!("  psql \"{url}\" -c \"SELECT id, user_id, amount FROM orders WHERE user_id IN (1, 2, 3)\"");
        println!("  psql \"{url}\" -c \"EXPLAIN ROUTE SELECT * FROM events WHERE created_at >= '2025-06-01'\"");
        println!("Ctrl-C stops the demo.");
        crate::server::wait_for_signal().await;
        server.abort();
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    cluster.stop();
    result
}

/// The demo's proxy user (alphanumeric, so that URLs need no escaping).
pub const USER: &str = "demo";
pub const PASSWORD: &str = "demo";
pub const DATABASE: &str = "shardgate";

fn demo_config(port: u16, rules: &std::path::Path) -> crate::config::Config {
    let text = format!(
        "rules = {rules:?}\n[postgres]\nlisten = \"127.0.0.1:{port}\"\n[[user]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
        rules = rules.display().to_string()
    );
    // The text is ours and valid; parsing it keeps one definition of the format.
    toml::from_str(&text).unwrap_or_else(|e| unreachable!("demo config: {e}"))
}

/// The MySQL demo until the MySQL front end exists: shards and rule file only.
fn demo_shards_only(kind: BackendKind, shards: usize, port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let mut signals = crate::cluster::shutdown_signals()?;
    let cluster = Cluster::start(&ClusterSpec::new(kind, shards))?;
    let script = schema::ddl_script(kind);
    for shard in cluster.shards() {
        shard.query(&script)?;
    }
    let rules = cluster.dir().join(format!("demo-{}.toml", kind.name()));
    std::fs::write(&rules, rule_file_for(&cluster))?;
    for shard in cluster.shards() {
        println!("shard {}: {}", shard.name, shard.url());
    }
    println!("rules: {}", rules.display());
    println!(
        "note: the MySQL front end is not built yet, so nothing listens on port {port}; \
         connect to the shards directly (password in SHARDGATE_SHARD_PASSWORD: {}). \
         Ctrl-C stops the demo.",
        crate::cluster::PASSWORD
    );
    signals.wait();
    cluster.stop();
    Ok(())
}
