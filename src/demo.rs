//! `shardgate demo`: local shards, a rule file for them and the demo schema.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> ExitCode {
    eprintln!("shardgate demo: not built yet");
    ExitCode::FAILURE
}
