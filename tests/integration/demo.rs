//! `shardgate demo`, as a user runs it: shards up, data loaded through the
//! proxy, psql answers through it, Ctrl-C/SIGTERM stops everything.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shardgate::backend::BackendKind;
use shardgate::cluster::client_binary;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(client_binary(BackendKind::Postgres).unwrap())
        .args([url, "-X", "-A", "-t", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn postgres_demo_serves_the_demo_schema_through_the_proxy() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardgate"))
        .args(["demo", "--port", &port.to_string()])
        .env("SHARDGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut shards, mut proxy) = (Vec::new(), None);
    let start = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("shard ") {
            shards.push(rest.split_once(": ").unwrap().1.to_string());
        } else if let Some(url) = line.strip_prefix("proxy: ") {
            proxy = Some(url.to_string());
        } else if line.starts_with("Ctrl-C") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "demo did not come up");
    }
    let proxy = proxy.expect("the demo prints the proxy URL");
    assert_eq!(shards.len(), 4);
    assert_eq!(proxy, format!("postgres://demo:demo@127.0.0.1:{port}/shardgate"));

    // Through the proxy: point lookups and a co-located read.
    assert_eq!(psql(&proxy, "SELECT id, name FROM users WHERE id = 42"), "42|user 42");
    let orders_of_7 = psql(&proxy, "SELECT count(*) FROM orders WHERE user_id = 7");
    let n: i64 = orders_of_7.parse().unwrap();
    assert!(n > 0, "user 7 has orders");
    let explain = psql(&proxy, "EXPLAIN ROUTE SELECT * FROM events WHERE created_at >= '2025-06-01'");
    assert!(explain.contains("s2|") && explain.contains("s3|") && !explain.contains("s0|"), "{explain}");

    // Every shard holds rows of every table, and the users are all there once.
    let mut users = 0;
    for url in &shards {
        let counts = psql(
            url,
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders WHERE id IS NULL), \
                                (SELECT count(*) FROM events), (SELECT count(*) FROM countries)",
        );
        let c: Vec<i64> = counts.split('|').map(|v| v.parse().unwrap()).collect();
        assert!(c[0] > 0 && c[2] > 0, "{url}: {counts}");
        assert_eq!(c[1], 0, "every order has a generated id");
        assert_eq!(c[3], 10, "the reference table is complete on every shard");
        users += c[0];
    }
    assert_eq!(users, 3000);

    // SIGTERM: everything stops by itself within a few seconds.
    let pid = child.id() as i32;
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "demo exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    for url in &shards {
        let out = Command::new(client_binary(BackendKind::Postgres).unwrap())
            .args([url.as_str(), "-X", "-c", "SELECT 1"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "shard {url} still answers after the demo stopped");
    }
}
