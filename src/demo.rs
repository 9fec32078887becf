//! `shardgate demo`: local shards, a rule file for them and the demo schema.
//!
//! Starts N local shard servers in a fresh temp dir (see [`crate::cluster`]),
//! creates the demo schema ([`schema`]) on each shard directly, and writes a
//! rule file for them into that temp dir (never into the checkout): the
//! layout of `rules/demo-<backend>.toml` with the real ports filled in. With a
//! shard count other than the committed file's, the yearly event ranges
//! 2023..=2026 are spread over the shards there are: range i on shard i % N.
//!
//! The proxy listener is not built yet: for now the demo prints each shard's
//! direct URL and the rule file's path, then waits for Ctrl-C or SIGTERM and
//! stops everything. It does not listen on the proxy port, so several demos
//! can run at once.

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
        "note: the proxy listener is not built yet, so nothing listens on port {port}; \
         connect to the shards directly (password in SHARDGATE_SHARD_PASSWORD: {}). \
         Ctrl-C stops the demo.",
        crate::cluster::PASSWORD
    );
    signals.wait();
    cluster.stop();
    Ok(())
}
