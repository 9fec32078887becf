//! Process plumbing for server processes: a death signal tied to this process,
//! a spawner thread that lives as long as the process, and stopping by PID.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Makes the command's process receive `signal` when its parent goes away,
/// even if the parent is killed with SIGKILL.
///
/// The hook runs in the child after `fork`, and after std has applied
/// `uid`/`gid`: that order matters, because a credential change clears the
/// death signal. Only async-signal-safe calls happen in the hook.
pub(crate) fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe and nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal
            // would ever come, so do not start at all.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Linux sends the death signal when the *thread* that forked the child exits,
/// not the process. Test threads and the scoped threads that start servers in
/// parallel end long before the servers should, so long-lived servers are
/// forked by this one thread, which is never asked to stop: its sender lives
/// in a static, so it only ends when the whole process does.
fn spawner() -> &'static mpsc::Sender<Job> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("shardgate-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("cannot start the server spawner thread");
        tx
    })
}

/// Spawns a long-lived server process from the spawner thread, in its own
/// process group (so a terminal's Ctrl-C reaches only the owner, which then
/// stops the servers in order), with `signal` as its death signal.
pub(crate) fn spawn_server(mut cmd: Command, signal: libc::c_int) -> io::Result<Child> {
    cmd.process_group(0);
    die_with_parent(&mut cmd, signal);
    let (tx, rx) = mpsc::sync_channel(1);
    spawner()
        .send(Box::new(move || {
            let _ = tx.send(cmd.spawn());
        }))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    rx.recv().map_err(|_| io::Error::other("the spawner thread did not answer"))?
}

/// Stops a server: `signal` first, SIGKILL after `grace`, then SIGKILL to the
/// rest of its process group (PostgreSQL backends), and reaps it.
pub(crate) fn stop_child(child: &mut Child, signal: libc::c_int, grace: Duration) {
    let pid = child.id() as libc::pid_t;
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: plain kill(2) on a child we have not reaped yet.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    // SAFETY: as above; the child is still unreaped.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
    // SAFETY: the group was created for this server (process_group(0)).
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    // Children (PostgreSQL backends) die asynchronously: wait until none of
    // the group is left, so that a killed server no longer answers anything.
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether any live process belongs to process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { return false };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        let Some(i) = stat.rfind(')') else { return false };
        // After the command name: state (3), ppid (4), pgrp (5).
        let mut fields = stat[i + 1..].split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|v| v.parse::<i32>().ok());
        pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
    })
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// The start time of a process (field 22 of /proc/PID/stat, in clock ticks
/// since boot): with the PID it names one process even across PID reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command name: state is field 3, starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        assert!(pid_alive(std::process::id()));
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(std::process::id()), start_time(std::process::id()));
    }

    #[test]
    fn spawned_server_is_stopped_and_reaped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = spawn_server(cmd, libc::SIGKILL).unwrap();
        let pid = child.id();
        assert!(pid_alive(pid));
        stop_child(&mut child, libc::SIGTERM, Duration::from_secs(2));
        assert!(!pid_alive(pid));
    }
}
