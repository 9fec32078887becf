//! The `check` and `route` subcommands. Results go to stdout, errors and
//! logs to stderr, so that scripts can read the one without the other.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::route::{Param, RouteContext, Router, explain_rows};
use crate::rules::Rules;
use crate::sharding::idgen::IdGenerator;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The rule file to check.
    pub file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RouteArgs {
    /// The rule file; its backend decides the SQL dialect.
    #[arg(long)]
    pub rules: PathBuf,
    /// A parameter value for $1, $2, … (or ?), in order, as text.
    #[arg(long = "param", value_name = "VALUE")]
    pub params: Vec<String>,
    /// The statement(s) to route.
    pub sql: String,
}

/// Logs go to stderr; `SHARDGATE_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_logging() {
    let filter =
        std::env::var("SHARDGATE_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn check(args: CheckArgs) -> ExitCode {
    match Rules::load(&args.file) {
        Ok(rules) => {
            print!("{}", rules.summary());
            println!("ok: {}", args.file.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.errors.len(), args.file.display());
            ExitCode::FAILURE
        }
    }
}

pub fn route(args: RouteArgs) -> ExitCode {
    let rules = match Rules::load(&args.rules) {
        Ok(r) => Arc::new(r),
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let Some(ids) = IdGenerator::new(0) else {
        return ExitCode::FAILURE;
    };
    let ids = Arc::new(ids);
    let router = Router::new(rules.clone(), ids);
    let params: Vec<Param> = args.params.into_iter().map(Param::Text).collect();
    let cx = RouteContext::new(&params);
    match router.route(&args.sql, &cx) {
        Ok(plans) => {
            for (i, plan) in plans.iter().enumerate() {
                if plans.len() > 1 {
                    println!("-- statement {}", i + 1);
                }
                for row in explain_rows(plan, &rules) {
                    if row.shard.is_empty() {
                        println!("merge: {}", row.reason);
                    } else {
                        println!("{}: {}", row.shard, row.sql);
                        println!("  why: {}", row.reason);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = crate::error::Coded::code(&e);
            eprintln!("error [{} / {}]: {e}", code.sqlstate(), code.mysql().0);
            ExitCode::FAILURE
        }
    }
}
