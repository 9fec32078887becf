//! `shardgate cluster`: start a cluster, run a command against it, stop it.

use std::process::ExitCode;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Cluster, ClusterSpec};
use crate::backend::BackendKind;

/// Start a local cluster of shard servers for tests and scripts.
///
/// Prints `shard s0: URL` per shard (and `reference: URL`), then runs COMMAND
/// with the cluster described in its environment (SHARDGATE_BACKEND,
/// SHARDGATE_SHARDS, SHARDGATE_S0_{HOST,PORT,URL,PID}, ..., SHARDGATE_REF_URL,
/// SHARDGATE_SHARD_PASSWORD, ...), stops the cluster and exits with COMMAND's
/// status. Without COMMAND it runs until Ctrl-C or SIGTERM.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Kind of server: postgres or mysql (MariaDB).
    #[arg(long, default_value = "postgres")]
    pub backend: BackendKind,
    /// Number of shard servers.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Also start a plain reference server (for differential tests).
    #[arg(long)]
    pub reference: bool,
    /// Command to run against the cluster (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// SIGINT and SIGTERM, caught from the moment this is created (so a Ctrl-C
/// while servers start still leads to an orderly stop).
pub(crate) struct ShutdownSignals {
    rt: tokio::runtime::Runtime,
    interrupt: Signal,
    terminate: Signal,
}

pub(crate) fn shutdown_signals() -> std::io::Result<ShutdownSignals> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (interrupt, terminate) = {
        let _guard = rt.enter();
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
    };
    Ok(ShutdownSignals { rt, interrupt, terminate })
}

impl ShutdownSignals {
    /// Blocks until SIGINT or SIGTERM arrives.
    pub(crate) fn wait(&mut self) {
        let (interrupt, terminate) = (&mut self.interrupt, &mut self.terminate);
        self.rt.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
    }

    /// Runs `command` with `env` added, passing SIGINT/SIGTERM on to it, and
    /// returns its exit code (128 + signal if a signal ended it).
    fn run(&mut self, command: &[String], env: &[(String, String)]) -> i32 {
        let (interrupt, terminate) = (&mut self.interrupt, &mut self.terminate);
        self.rt.block_on(async {
            let mut child = match tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .spawn()
            {
                Ok(child) => child,
                Err(e) => {
                    eprintln!("shardgate cluster: cannot run {}: {e}", command[0]);
                    return 127;
                }
            };
            loop {
                let forward = tokio::select! {
                    status = child.wait() => {
                        return match status {
                            Ok(status) => {
                                use std::os::unix::process::ExitStatusExt;
                                status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
                            }
                            Err(e) => {
                                eprintln!("shardgate cluster: waiting for {}: {e}", command[0]);
                                1
                            }
                        };
                    }
                    _ = interrupt.recv() => libc::SIGINT,
                    _ = terminate.recv() => libc::SIGTERM,
                };
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) of our own unreaped child.
                    unsafe { libc::kill(pid as libc::pid_t, forward) };
                }
            }
        })
    }
}

pub fn run_cli(args: ClusterArgs) -> ExitCode {
    let mut signals = match shutdown_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shardgate cluster: cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spec = ClusterSpec::new(args.backend, args.shards).with_reference(args.reference);
    let cluster = match Cluster::start(&spec) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardgate cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    for s in cluster.shards() {
        println!("shard {}: {}", s.name, s.url());
    }
    if let Some(r) = cluster.reference() {
        println!("reference: {}", r.url());
    }
    if args.command.is_empty() {
        println!("cluster running; Ctrl-C or SIGTERM stops it");
        signals.wait();
        cluster.stop();
        return ExitCode::SUCCESS;
    }
    let code = signals.run(&args.command, &cluster.env());
    cluster.stop();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
