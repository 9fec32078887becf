//! Shared fixtures for the integration tests: real shard clusters.
//!
//! * [`cluster`]: one cluster per (backend, shard count), with a reference
//!   server, started on first use and shared by every test of this test
//!   binary; stopped when the process exits (an `atexit` hook: statics are
//!   never dropped). Tests must not change its servers' state in ways other
//!   tests would notice (use your own table names).
//! * [`fresh_cluster`]: a cluster of the test's own, for tests that kill
//!   shards or need a clean slate; stopped when dropped.
//!
//! Either kind comes from local server binaries, or from Docker when
//! `SHARDGATE_TEST_BACKEND=docker` (with `--features docker`).
#![allow(dead_code)]

pub mod proxy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, OnceLock};

pub use shardgate::backend::BackendKind;
pub use shardgate::cluster::{Cluster, ClusterSpec, Server};

type Key = (BackendKind, usize);
/// One slot per shared cluster; callers for the same key wait on it.
type Slot = Arc<OnceLock<&'static Cluster>>;

fn shared_slots() -> &'static Mutex<HashMap<Key, Slot>> {
    static SLOTS: OnceLock<Mutex<HashMap<Key, Slot>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// Clusters to stop at exit.
static LIVE: Mutex<Vec<&'static Cluster>> = Mutex::new(Vec::new());

extern "C" fn stop_shared_clusters() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for cluster in live {
        cluster.stop();
    }
}

/// The shared cluster of `shards` shard servers plus a reference server.
pub fn cluster(kind: BackendKind, shards: usize) -> &'static Cluster {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_shared_clusters) };
    });
    let slot = shared_slots().lock().unwrap_or_else(|e| e.into_inner()).entry((kind, shards)).or_default().clone();
    // Concurrent callers wait for the one start; a failed start panics in
    // that caller only, and the next caller tries again.
    slot.get_or_init(|| {
        let spec = ClusterSpec::new(kind, shards).with_reference(true);
        let cluster: &'static Cluster =
            Box::leak(Box::new(Cluster::start(&spec).unwrap_or_else(|e| panic!("starting {kind} cluster: {e}"))));
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(cluster);
        cluster
    })
}

/// A cluster for one test only (no reference server unless asked for).
pub fn fresh_cluster(kind: BackendKind, shards: usize, reference: bool) -> Cluster {
    let spec = ClusterSpec::new(kind, shards).with_reference(reference);
    Cluster::start(&spec).unwrap_or_else(|e| panic!("starting {kind} cluster: {e}"))
}

/// Runs SQL on a server through its command line client, panicking with the
/// client's error.
pub fn query(server: &Server, sql: &str) -> String {
    server.query(sql).unwrap_or_else(|e| panic!("{} on {}: {e}", sql, server.name))
}

/// Waits up to `secs` for a process to be gone.
pub fn wait_gone(pid: u32, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while shardgate::cluster::pid_alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}
