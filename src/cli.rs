//! The `check` and `route` subcommands.
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {}
#[derive(clap::Args, Debug)]
pub struct RouteArgs {}

pub fn init_logging() {}
pub fn check(_args: CheckArgs) -> ExitCode {
    ExitCode::FAILURE
}
pub fn route(_args: RouteArgs) -> ExitCode {
    ExitCode::FAILURE
}
