//! `shardgate serve`: the listeners, built from a config file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::backend::BackendKind;
use crate::config::{AuthMethod, Config};
use crate::pool::Pool;
use crate::protocol::postgres::{self, Backends, Shared, UserAuth, auth::ScramVerifier, backend::PgConnector};
use crate::route::Router;
use crate::rules::Rules;
use crate::sharding::idgen::IdGenerator;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Rules(#[from] crate::rules::RuleErrors),
    #[error("the rule file is for {rules} but the listener speaks {listener}")]
    Mismatch { rules: BackendKind, listener: BackendKind },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Tls(#[from] postgres::tls::TlsError),
    #[error("the MySQL listener is not available in this build")]
    MysqlUnavailable,
}

/// A PostgreSQL proxy, bound and ready to serve.
pub struct PgProxy {
    pub listener: TcpListener,
    pub shared: Arc<Shared>,
}

impl PgProxy {
    /// Builds the shared state and binds the listener.
    pub async fn bind(config: Arc<Config>, rules: Rules) -> Result<PgProxy, StartError> {
        if rules.backend != BackendKind::Postgres {
            return Err(StartError::Mismatch { rules: rules.backend, listener: BackendKind::Postgres });
        }
        let addr = config.postgres.as_ref().map_or("127.0.0.1:6432".to_string(), |l| l.listen.clone());
        let listener =
            TcpListener::bind(&addr).await.map_err(|source| StartError::Listen { addr: addr.clone(), source })?;
        let rules = Arc::new(rules);
        let ids = Arc::new(IdGenerator::new(config.worker_id).unwrap_or_else(unreachable_worker));
        let pools = rules
            .shards
            .iter()
            .map(|s| {
                Pool::new(
                    PgConnector { shard: s.clone(), connect_timeout: config.timeouts.connect() },
                    config.pool.size,
                    Duration::from_millis(config.pool.checkout_timeout_ms),
                )
            })
            .collect();
        let backends = Backends { router: Arc::new(Router::new(rules, ids)), pools };
        let server_params = postgres::server_params(&backends).await;
        let users: HashMap<String, UserAuth> = config
            .users
            .iter()
            .map(|u| {
                let password = u.password();
                let scram = match (u.auth, &password) {
                    (AuthMethod::ScramSha256, Some(p)) => ScramVerifier::from_password(p),
                    _ => None,
                };
                (u.name.clone(), UserAuth { method: u.auth, password, scram })
            })
            .collect();
        let tls = match config.postgres.as_ref().and_then(|l| l.tls_cert.as_ref().zip(l.tls_key.as_ref())) {
            Some((cert, key)) => Some(postgres::tls::acceptor(cert, key)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            tls,
            config: config.clone(),
            backends: RwLock::new(Arc::new(backends)),
            users,
            server_params,
            cancels: Mutex::new(HashMap::new()),
        });
        Ok(PgProxy { listener, shared })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the listener fails.
    pub async fn run(self) -> std::io::Result<()> {
        postgres::serve(self.listener, self.shared).await
    }
}

fn unreachable_worker() -> IdGenerator {
    // Config validation checked worker_id; 0 is always valid.
    IdGenerator::new(0).unwrap_or_else(|| std::process::abort())
}

/// Loads the config and its rules and starts every configured listener.
pub async fn start(
    config_path: &std::path::Path,
) -> Result<Vec<tokio::task::JoinHandle<std::io::Result<()>>>, StartError> {
    let config = Arc::new(Config::load(config_path)?);
    let rules = Rules::load(&config.rules)?;
    let mut tasks = Vec::new();
    if config.mysql.is_some() {
        return Err(StartError::MysqlUnavailable);
    }
    if config.postgres.is_some() {
        let proxy = PgProxy::bind(config.clone(), rules).await?;
        tracing::info!(addr = %proxy.local_addr().map(|a| a.to_string()).unwrap_or_default(), "PostgreSQL listener ready");
        tasks.push(tokio::spawn(proxy.run()));
    }
    Ok(tasks)
}

pub fn run(args: ServeArgs) -> ExitCode {
    // The config is read twice (here for the thread count, then by
    // `start`), so that a bad file is reported by the same path as always.
    let threads = Config::load(&args.config).ok().and_then(|c| c.threads);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shardgate serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let tasks = match start(&args.config).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shardgate serve: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        for t in tasks {
            t.abort();
        }
        ExitCode::SUCCESS
    })
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
