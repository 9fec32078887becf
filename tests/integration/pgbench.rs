//! pgbench through shardgate: `-i` loads sharded and reference tables,
//! `-S` runs in every query mode, and a custom script of single-shard
//! transactions keeps balances and history consistent on every shard.

use std::process::Command;
use std::sync::Arc;

use crate::support::{self, BackendKind, Cluster};

fn rules(cluster: &Cluster) -> String {
    support::proxy::rule_file(
        cluster,
        "[keyspace.account]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n\
         [[table]]\nname = \"pgbench_accounts\"\nkeyspace = \"account\"\nkey = \"aid\"\n\
         [[table]]\nname = \"pgbench_history\"\nkeyspace = \"account\"\nkey = \"aid\"\n\
         [[table]]\nname = \"pgbench_branches\"\nreference = true\n\
         [[table]]\nname = \"pgbench_tellers\"\nreference = true\n",
    )
}

fn pgbench(url: &str, args: &[&str]) -> String {
    let out = Command::new("pgbench").args(args).arg(url).output().expect("pgbench runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").args([url, "-X", "-A", "-t", "-c", sql]).output().expect("psql runs");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn pgbench_init_select_only_and_custom_transactions() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let port = rt.block_on(async {
        let rules = shardgate::rules::Rules::parse(&rules(cluster), "pgbench.toml").unwrap_or_else(|e| panic!("{e}"));
        // pgbench -i truncates and loads every table in one transaction: the
        // opt-in, non-atomic multi-shard write policy.
        let config: shardgate::config::Config = toml::from_str(
            "rules = \"unused\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[[user]]\nname = \"bench\"\npassword = \"benchpw\"\n\
             [transactions]\npolicy = \"multi_shard_writes\"\n",
        )
        .unwrap();
        let proxy = shardgate::server::PgProxy::bind(Arc::new(config), rules).await.unwrap();
        let port = proxy.local_addr().unwrap().port();
        tokio::spawn(proxy.run());
        port
    });
    let url = format!("postgres://bench:benchpw@127.0.0.1:{port}/shardgate");

    let init = pgbench(&url, &["-i", "-s", "1", "-q"]);
    assert!(init.contains("done in"), "{init}");
    assert_eq!(psql(&url, "SELECT count(*), sum(abalance) FROM pgbench_accounts"), "100000|0");
    // Every shard holds its share, and the reference tables whole.
    let mut total = 0;
    for s in cluster.shards() {
        let n: i64 = psql(&s.url(), "SELECT count(*) FROM pgbench_accounts").parse().unwrap();
        assert!(n > 40_000, "{} holds {n} accounts", s.name);
        total += n;
        assert_eq!(psql(&s.url(), "SELECT count(*) FROM pgbench_branches"), "1");
        assert_eq!(psql(&s.url(), "SELECT count(*) FROM pgbench_tellers"), "10");
    }
    assert_eq!(total, 100_000);

    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(&url, &["-S", "-M", mode, "-c", "4", "-j", "2", "-t", "300", "-n"]);
        assert!(out.contains("number of transactions actually processed: 1200/1200"), "{mode}:\n{out}");
        assert!(out.contains("number of failed transactions: 0"), "{mode}:\n{out}");
    }

    // Single-shard transactions: accounts and history share the key, so
    // every transaction stays on one shard.
    let script = std::env::temp_dir().join(format!("shardgate-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set aid random(1, 100000)\n\\set delta random(-5000, 5000)\nBEGIN;\n\
         UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n\
         SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n\
         INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);\n\
         END;\n",
    )
    .unwrap();
    for mode in ["simple", "prepared"] {
        let out = pgbench(&url, &["-f", script.to_str().unwrap(), "-M", mode, "-c", "4", "-j", "2", "-t", "200", "-n"]);
        assert!(out.contains("number of transactions actually processed: 800/800"), "{mode}:\n{out}");
        assert!(out.contains("number of failed transactions: 0"), "{mode}:\n{out}");
    }
    let _ = std::fs::remove_file(&script);
    // Balances agree with history, through the proxy and on every shard.
    let balance = psql(&url, "SELECT sum(abalance) FROM pgbench_accounts");
    assert_eq!(psql(&url, "SELECT count(*) FROM pgbench_history"), "1600");
    let mut deltas = 0i64;
    for s in cluster.shards() {
        let row = psql(
            &s.url(),
            "SELECT coalesce(sum(abalance), 0), (SELECT coalesce(sum(delta), 0) FROM pgbench_history) FROM pgbench_accounts",
        );
        let (b, d) = row.split_once('|').unwrap();
        assert_eq!(b, d, "shard {}: balances and history disagree", s.name);
        deltas += d.parse::<i64>().unwrap();
    }
    assert_eq!(balance.parse::<i64>().unwrap(), deltas);
    rt.shutdown_background();
}
