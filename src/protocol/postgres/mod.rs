//! The PostgreSQL front end: PostgreSQL clients in, PostgreSQL shards out.
//!
//! - [`wire`]: message framing; frames that pass through are never decoded;
//! - [`auth`]: SCRAM-SHA-256, md5 and trust for shardgate's own users;
//! - [`backend`]: connections to the shards (startup, SCRAM as a client);
//! - [`session`]: one client's state machine (simple and extended query,
//!   transactions, settings, fan-out and merge of results).

pub mod auth;
pub mod backend;
pub mod copy;
pub mod session;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::net::TcpListener;

use crate::config::{AuthMethod, Config};
use crate::pool::Pool;
use crate::route::Router;
use crate::sharding::ShardId;
use backend::PgConnector;

/// The router and pools in use: swapped whole on a rule reload, so that a
/// statement runs on one consistent pair.
pub struct Backends {
    pub router: Arc<Router>,
    pub pools: Vec<Pool<PgConnector>>,
}

impl Backends {
    pub fn pool(&self, shard: ShardId) -> &Pool<PgConnector> {
        &self.pools[shard.index()]
    }
}

/// A running query of a client that a CancelRequest may stop.
#[derive(Default)]
pub struct Running {
    /// (shard, backend pid, backend secret) of the statements in flight.
    pub backends: Vec<(ShardId, i32, i32)>,
}

/// A client's BackendKeyData: (process id, secret).
pub type CancelKey = (i32, i32);

/// What every client session of one listener shares.
pub struct Shared {
    pub config: Arc<Config>,
    pub backends: RwLock<Arc<Backends>>,
    pub users: HashMap<String, UserAuth>,
    /// ParameterStatus values reported at startup (from the first shard).
    pub server_params: Vec<(String, String)>,
    /// Cancel keys handed to clients, and what each client is running.
    pub cancels: Mutex<HashMap<CancelKey, Arc<Mutex<Running>>>>,
    /// TLS for clients that ask for it, when a certificate is configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// How one user authenticates.
pub struct UserAuth {
    pub method: AuthMethod,
    pub password: Option<String>,
    pub scram: Option<auth::ScramVerifier>,
}

impl Shared {
    pub fn backends(&self) -> Arc<Backends> {
        self.backends.read().map(|b| b.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// Accepts clients until the listener fails; each client runs on its own task.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = session::run(shared, stream).await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
}

/// Reads the baseline ParameterStatus values from the first shard.
pub async fn server_params(backends: &Backends) -> Vec<(String, String)> {
    match backends.pools.first() {
        Some(pool) => match pool.get().await {
            Ok(mut c) => {
                let mut v: Vec<(String, String)> =
                    c.conn().params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                v.retain(|(k, _)| k != "application_name");
                v.sort();
                c.release();
                v
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read server parameters from the first shard");
                vec![
                    ("server_version".into(), "15.0".into()),
                    ("server_encoding".into(), "UTF8".into()),
                    ("client_encoding".into(), "UTF8".into()),
                    ("DateStyle".into(), "ISO, MDY".into()),
                    ("integer_datetimes".into(), "on".into()),
                    ("standard_conforming_strings".into(), "on".into()),
                    ("TimeZone".into(), "UTC".into()),
                ]
            }
        },
        None => Vec::new(),
    }
}

/// Sends a CancelRequest for everything a client is running.
pub async fn cancel_running(shared: &Shared, running: &Arc<Mutex<Running>>) {
    let targets: Vec<(ShardId, i32, i32)> = running.lock().map(|r| r.backends.clone()).unwrap_or_default();
    let backends = shared.backends();
    let rules = backends.router.rules().clone();
    for (shard, pid, secret) in targets {
        let _ = backend::cancel(rules.shard(shard), pid, secret).await;
    }
}
