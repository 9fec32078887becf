//! The cluster fixture itself: servers answer with the pinned collations,
//! and nothing outlives a cluster or its owner.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, BackendKind, Cluster, ClusterSpec};
use shardgate::cluster::client_binary;

/// `psql <url> -c SQL`, as a person would run it.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(client_binary(BackendKind::Postgres).unwrap())
        .args([url, "-X", "-A", "-t", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn postgres_shards_and_reference_share_the_icu_collation() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    assert_eq!(cluster.shards().len(), 2);
    let reference = cluster.reference().expect("a reference server");
    assert_eq!(reference.name, "ref");
    for server in cluster.servers() {
        // ICU en-US puts 'a' before 'B'; the C collation puts it after.
        let answer = psql(&server.url(), "SELECT 'a' < 'B', 'a' < 'B' COLLATE \"C\", current_user, current_database()");
        assert_eq!(answer, "t|f|shardgate|shardgate", "on {}", server.name);
        let locale = psql(
            &server.url(),
            "SELECT datlocprovider, daticulocale, datcollate, pg_encoding_to_char(encoding) \
             FROM pg_database WHERE datname = current_database()",
        );
        assert_eq!(locale, "i|en-US|C|UTF8", "on {}", server.name);
    }
    let mut ports: Vec<u16> = cluster.servers().map(|s| s.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
}

#[test]
fn mysql_servers_use_utf8mb4_general_ci() {
    let cluster = support::cluster(BackendKind::Mysql, 2);
    assert!(cluster.reference().is_some());
    for server in cluster.servers() {
        let out = Command::new(client_binary(BackendKind::Mysql).unwrap())
            .args(["--no-defaults", "-h", &server.host, "-P", &server.port.to_string()])
            .args(["-u", &server.user, &server.database, "-N", "-B", "-e"])
            .arg("SELECT @@collation_server, @@character_set_server, @@collation_database, current_user(), 'a' < 'B'")
            .env("MYSQL_PWD", &server.password)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            "utf8mb4_general_ci\tutf8mb4\tutf8mb4_general_ci\tshardgate@%\t1",
            "on {}",
            server.name
        );
    }
}

#[test]
fn shared_cluster_is_started_once() {
    let a = support::cluster(BackendKind::Postgres, 2);
    let b = support::cluster(BackendKind::Postgres, 2);
    assert!(std::ptr::eq(a, b));
    assert_eq!(support::query(a.shard(1), "SELECT 41 + 1"), "42");
}

fn gone_after_drop(kind: BackendKind) {
    let cluster = support::fresh_cluster(kind, 1, true);
    let pids: Vec<u32> = cluster.servers().map(|s| s.pid.unwrap()).collect();
    assert_eq!(pids.len(), 2);
    let dir = cluster.dir().to_path_buf();
    assert!(dir.exists());
    drop(cluster);
    for pid in pids {
        assert!(support::wait_gone(pid, 2), "{kind} server {pid} still runs");
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn postgres_servers_and_dir_are_gone_after_drop() {
    gone_after_drop(BackendKind::Postgres);
}

#[test]
fn mysql_servers_and_dir_are_gone_after_drop() {
    gone_after_drop(BackendKind::Mysql);
}

#[test]
fn killing_one_server_leaves_the_others_up() {
    let cluster = support::fresh_cluster(BackendKind::Postgres, 2, false);
    let victim = cluster.shard(1).pid.unwrap();
    cluster.kill_server("s1").unwrap();
    assert!(support::wait_gone(victim, 5));
    assert!(cluster.shard(1).query("SELECT 1").is_err());
    assert_eq!(support::query(cluster.shard(0), "SELECT 1"), "1");
    assert!(cluster.kill_server("nope").is_err());
}

/// A fresh base dir for cluster dirs, world-traversable (servers may run as
/// another user).
fn scratch_base(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!("shardgate-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    base
}

/// `shardgate cluster -- CMD` is SIGKILLed: its servers must die with it, and
/// the next cluster started under the same base dir removes what it left.
fn killed_owner_takes_its_servers_along(kind: BackendKind) {
    let base = scratch_base(&format!("kill9-{kind}"));
    let info = base.join("info");
    let script = format!(
        "echo \"$$ $SHARDGATE_S0_PID $SHARDGATE_REF_PID $SHARDGATE_CLUSTER_DIR\" > {0}.tmp \
         && mv {0}.tmp {0} && exec sleep 600",
        info.display()
    );
    let mut owner = Command::new(env!("CARGO_BIN_EXE_shardgate"))
        .args(["cluster", "--backend", kind.name(), "--shards", "1", "--reference"])
        .args(["--", "sh", "-c", &script])
        .env("SHARDGATE_TMPDIR", &base)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !info.exists() {
        if let Ok(Some(status)) = owner.try_wait() {
            panic!("shardgate cluster exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the cluster did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&info).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    let (sleeper, servers, dir): (i32, Vec<u32>, PathBuf) = (
        words[0].parse().unwrap(),
        vec![words[1].parse().unwrap(), words[2].parse().unwrap()],
        PathBuf::from(words[3]),
    );
    owner.kill().unwrap(); // SIGKILL: no cleanup code runs
    owner.wait().unwrap();
    // SAFETY: the sleep we started through the cluster command.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
    for pid in servers {
        assert!(support::wait_gone(pid, 15), "{kind} server {pid} outlived its owner");
    }
    assert!(dir.exists(), "a SIGKILLed owner cannot have removed its dir");
    let next = Cluster::start(&ClusterSpec::new(kind, 1).with_base_dir(&base)).unwrap();
    assert!(!dir.exists(), "the stale dir {} was not removed", dir.display());
    drop(next);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn killed_owner_takes_its_postgres_servers_along() {
    killed_owner_takes_its_servers_along(BackendKind::Postgres);
}

#[test]
fn killed_owner_takes_its_mysql_servers_along() {
    killed_owner_takes_its_servers_along(BackendKind::Mysql);
}

#[test]
fn cli_runs_the_command_with_the_cluster_in_its_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_shardgate"))
        .args(["cluster", "--backend", "postgres", "--shards", "2", "--reference", "--"])
        .args([
            "sh",
            "-c",
            "psql \"$SHARDGATE_S1_URL\" -XAtc 'SELECT 1' && \
             test \"$SHARDGATE_SHARDS\" = 2 && test \"$SHARDGATE_BACKEND\" = postgres && \
             test -n \"$SHARDGATE_REF_URL\" && test \"$SHARDGATE_SHARD_PASSWORD\" = shardgate && \
             exit 7",
        ])
        .env("PATH", psql_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("shard s0: postgres://shardgate:")));
    assert!(stdout.lines().any(|l| l.starts_with("shard s1: postgres://")));
    assert!(stdout.lines().any(|l| l.starts_with("reference: postgres://")));
    assert!(stdout.lines().any(|l| l == "1"));
}

/// PATH with the psql the fixture uses first.
fn psql_path() -> String {
    let psql = client_binary(BackendKind::Postgres).unwrap();
    format!("{}:{}", psql.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default())
}

/// Helper for the test below, run in a child test process: starts the shared
/// fixture cluster from a test thread, reports the server PIDs and waits to
/// be killed. Without SHARDGATE_HOLD_INFO it does nothing.
#[test]
#[ignore = "run by killed_test_process_takes_the_shared_cluster_along"]
fn hold_shared_cluster_until_killed() {
    let Some(info) = std::env::var_os("SHARDGATE_HOLD_INFO") else {
        return;
    };
    let cluster = support::cluster(BackendKind::Postgres, 1);
    let pids: Vec<String> = cluster.servers().map(|s| s.pid.unwrap().to_string()).collect();
    let tmp = PathBuf::from(&info).with_extension("tmp");
    std::fs::write(&tmp, format!("{} {}", pids.join(" "), cluster.dir().display())).unwrap();
    std::fs::rename(&tmp, &info).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// A test process holding the shared fixture cluster is SIGKILLed (no atexit
/// hook runs): its servers must die with it.
#[test]
fn killed_test_process_takes_the_shared_cluster_along() {
    let base = scratch_base("kill9-test");
    let info = base.join("info");
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "cluster::hold_shared_cluster_until_killed"])
        .env("SHARDGATE_HOLD_INFO", &info)
        .env("SHARDGATE_TMPDIR", &base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !info.exists() {
        if let Ok(Some(status)) = holder.try_wait() {
            panic!("the holder test exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the holder did not start its cluster");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&info).unwrap();
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let dir = PathBuf::from(words.pop().unwrap());
    let servers: Vec<u32> = words.iter().map(|w| w.parse().unwrap()).collect();
    assert_eq!(servers.len(), 2, "a shard and the reference server");
    holder.kill().unwrap();
    holder.wait().unwrap();
    for pid in servers {
        assert!(support::wait_gone(pid, 15), "server {pid} outlived the test process");
    }
    drop(Cluster::start(&ClusterSpec::new(BackendKind::Postgres, 1).with_base_dir(&base)).unwrap());
    assert!(!dir.exists(), "the stale dir {} was not removed", dir.display());
    std::fs::remove_dir_all(&base).unwrap();
}
