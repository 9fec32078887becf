//! Local clusters of real shard servers (PostgreSQL or MariaDB) for tests and the demo.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {}

pub fn run_cli(_args: ClusterArgs) -> ExitCode {
    eprintln!("shardgate cluster: not built yet");
    ExitCode::FAILURE
}
