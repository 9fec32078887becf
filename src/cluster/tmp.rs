//! Cluster temp dirs: one fresh dir per cluster, marked with its owner, and
//! removal of dirs whose owner died without cleaning up (e.g. SIGKILL).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ClusterError, DIR_PREFIX, proc};

/// File in each cluster dir naming the owning process: `PID STARTTIME`.
const OWNER_FILE: &str = "owner.pid";
/// File in each server dir with the server's PID.
pub(crate) const SERVER_PID_FILE: &str = "server.pid";

/// Where cluster dirs go: the explicit dir, else `SHARDGATE_TMPDIR`, else the
/// system temp dir.
pub(crate) fn base_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    match std::env::var_os("SHARDGATE_TMPDIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::temp_dir(),
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Creates `base/shardgate-cluster-PID-SEQ-NANOS` with an owner file. The dir
/// is world-traversable: when running as root the servers run as another user.
pub(crate) fn create_cluster_dir(base: &Path) -> Result<PathBuf, ClusterError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    std::fs::create_dir_all(base).map_err(io_err(format!("creating {}", base.display())))?;
    let pid = std::process::id();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{DIR_PREFIX}{pid}-{seq}-{nanos:08x}"));
    std::fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("chmod {}", dir.display())))?;
    let start = proc::start_time(pid).unwrap_or(0);
    std::fs::write(dir.join(OWNER_FILE), format!("{pid} {start}\n"))
        .map_err(io_err(format!("writing the owner file in {}", dir.display())))?;
    Ok(dir)
}

/// Whether the process named in `owner.pid` is still the one that wrote it.
fn owner_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        // No owner file yet: the dir may be in the middle of being created.
        // Treat it as alive unless it is old.
        return std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(60));
    };
    let mut words = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    match (words.next().flatten(), words.next().flatten()) {
        (Some(pid), Some(start)) => {
            let pid = pid as u32;
            proc::pid_alive(pid) && (start == 0 || proc::start_time(pid) == Some(start))
        }
        _ => false,
    }
}

/// Whether `pid` still runs on behalf of `dir` (its command line or working
/// directory mentions it), so a recycled PID is never killed.
fn belongs_to(pid: u32, dir: &Path) -> bool {
    let needle = dir.as_os_str().as_encoded_bytes();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
    cmdline.windows(needle.len()).any(|w| w == needle) || cwd.starts_with(dir)
}

/// Removes cluster dirs under `base` whose owner is dead, first killing any
/// server still running from them (normally the death signal already did).
pub(crate) fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let dir = entry.path();
        if !name.starts_with(DIR_PREFIX) || !dir.is_dir() || owner_alive(&dir) {
            continue;
        }
        for server in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let pid = std::fs::read_to_string(server.path().join(SERVER_PID_FILE))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            if let Some(pid) = pid
                && proc::pid_alive(pid)
                && belongs_to(pid, &dir)
            {
                // SAFETY: kill(2) of a process verified to run from this dir.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shardgate-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn live_dirs_stay_and_dead_owner_dirs_go() {
        let base = scratch("stale");
        let mine = create_cluster_dir(&base).unwrap();
        let dead = base.join(format!("{DIR_PREFIX}999999999-0-0"));
        std::fs::create_dir(&dead).unwrap();
        // PIDs never reach this value (pid_max is at most 2^22).
        std::fs::write(dead.join(OWNER_FILE), "999999999 1\n").unwrap();
        let unrelated = base.join("something-else");
        std::fs::create_dir(&unrelated).unwrap();
        remove_stale(&base);
        assert!(mine.exists());
        assert!(!dead.exists());
        assert!(unrelated.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn recycled_pid_counts_as_dead() {
        let base = scratch("recycled");
        let dir = base.join(format!("{DIR_PREFIX}x"));
        std::fs::create_dir(&dir).unwrap();
        // Our own PID, but another start time: the writer was another process.
        std::fs::write(dir.join(OWNER_FILE), format!("{} 1\n", std::process::id())).unwrap();
        assert!(!owner_alive(&dir));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let base = scratch("tail");
        let log = base.join("log");
        std::fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&log, 2), "c\nd");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
