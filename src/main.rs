//! The `shardgate` command line: every subcommand is a thin shell over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shardgate", version, about = "A sharding proxy for PostgreSQL and MySQL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve(shardgate::server::ServeArgs),
    /// Validate a rule file, verify its examples and print a summary of the placement.
    Check(shardgate::cli::CheckArgs),
    /// Print how a statement would be routed under a rule file, without running it.
    Route(shardgate::cli::RouteArgs),
    /// Start local shards, write a rule file for them and serve the demo schema.
    Demo(shardgate::demo::DemoArgs),
    /// Start a local cluster of shard servers (and a reference server) for tests and scripts.
    Cluster(shardgate::cluster::ClusterArgs),
}

fn main() -> ExitCode {
    shardgate::cli::init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => shardgate::server::run(args),
        Command::Check(args) => shardgate::cli::check(args),
        Command::Route(args) => shardgate::cli::route(args),
        Command::Demo(args) => shardgate::demo::run(args),
        Command::Cluster(args) => shardgate::cluster::run_cli(args),
    }
}
