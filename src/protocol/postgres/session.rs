//! One PostgreSQL client: startup, authentication, then statements until it
//! leaves.
//!
//! Backend connections are *attached* to the session while it needs them:
//! for one statement (or one extended-protocol batch up to Sync) outside a
//! transaction, for the whole transaction inside one. A connection goes
//! back to its pool only when its last ReadyForQuery said it is idle; any
//! other way of leaving (an error, a client that vanished) closes it, so the
//! shard rolls back whatever was open and releases its locks.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use pgwire::messages::data::{FieldDescription, RowDescription};
use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Parse, Sync as SyncMsg};
use pgwire::messages::response::{CommandComplete, ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use tokio::net::TcpStream;

use super::backend::{BackendConn, PgConnector};
use super::tls::ClientStream;
use super::wire::{Frame, MAX_CLIENT_FRAME, Wire, data_row, data_row_cells, error_fields};
use super::{Backends, Running, Shared};
use crate::config::AuthMethod;
use crate::error::{Coded, ErrorCode};
use crate::pool::Pooled;
use crate::route::{Control, Merge, Param, Plan, Prepared, RouteContext, RowMerge, StatementKind, TxnState};
use crate::sharding::ShardId;

const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;
/// The settings signature of a connection whose settings a client changed:
/// it matches no client, so the next one re-applies its own.
const UNKNOWN_SETTINGS: u64 = u64::MAX;
/// Flush to the client when this much is queued: backpressure for streams.
const FLUSH_AT: usize = 64 * 1024;

/// An error shardgate raises itself, sent as an ErrorResponse.
#[derive(Debug, Clone)]
pub struct SgError {
    pub code: String,
    pub message: String,
    /// Further fields of a shard's error (detail, hint, position, …).
    pub extra: Vec<(u8, String)>,
}

impl SgError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SgError { code: code.sqlstate().to_string(), message: message.into(), extra: Vec::new() }
    }
    fn raw(code: &str, message: impl Into<String>) -> Self {
        SgError { code: code.to_string(), message: message.into(), extra: Vec::new() }
    }
    fn of<E: Coded>(e: &E) -> Self {
        SgError { code: e.code().sqlstate().to_string(), message: e.to_string(), extra: Vec::new() }
    }
    fn frame(&self) -> ErrorResponse {
        let mut fields = vec![
            (b'S', "ERROR".into()),
            (b'V', "ERROR".into()),
            (b'C', self.code.clone()),
            (b'M', self.message.clone()),
        ];
        fields.extend(self.extra.iter().cloned());
        ErrorResponse::new(fields)
    }
}

/// How a statement ended.
enum Outcome {
    Ok,
    /// An error was sent to the client.
    Failed,
}

/// A backend connection attached to the session.
struct Attached {
    shard: ShardId,
    conn: Pooled<PgConnector>,
    /// The transaction status of its last ReadyForQuery.
    status: u8,
    /// An extended-protocol batch is open on it (Sync needed).
    in_batch: bool,
    /// It has joined the client's open transaction (BEGIN replayed on it).
    joined: bool,
}

/// The client's open transaction.
struct Txn {
    /// BEGIN as the client wrote it, replayed on each shard the transaction reaches.
    begin: String,
    state: TxnState,
    failed: bool,
    /// SAVEPOINT / RELEASE / ROLLBACK TO statements, replayed on shards that join later.
    savepoints: Vec<String>,
    /// SET LOCAL statements, replayed likewise.
    local_sets: Vec<String>,
    /// Session SETs made in the transaction: kept only if it commits.
    pending_sets: Option<Vec<(String, String)>>,
    /// An implicit transaction (a multi-statement string, an extended batch).
    implicit: bool,
    /// The batch's first statement wrote to several shards: no other write may follow.
    spread: bool,
}

impl Txn {
    fn new(begin: &str, implicit: bool, pending_sets: Option<Vec<(String, String)>>) -> Txn {
        Txn {
            begin: begin.to_string(),
            state: TxnState::default(),
            failed: false,
            savepoints: Vec::new(),
            local_sets: Vec::new(),
            pending_sets,
            implicit,
            spread: false,
        }
    }
}

/// A prepared statement of the client.
struct Stmt {
    sql: String,
    types: Vec<u32>,
    prepared: Arc<Prepared>,
    /// ParameterDescription and RowDescription/NoData frames, once fetched.
    desc: Option<(Frame, Frame)>,
}

/// A bound portal of the client.
struct Portal {
    stmt: String,
    plan: Plan,
    formats: Vec<i16>,
    values: Vec<Option<Bytes>>,
    result_formats: Vec<i16>,
    /// Open on a backend (for Execute with a row limit): the shard.
    open_on: Option<ShardId>,
}

struct Session {
    shared: Arc<Shared>,
    backends: Arc<Backends>,
    client: Wire<ClientStream>,
    attached: Vec<Attached>,
    txn: Option<Txn>,
    /// Session settings: (name, SET statement), in order.
    settings: Vec<(String, String)>,
    settings_sig: u64,
    statements: HashMap<String, Stmt>,
    portals: HashMap<String, Portal>,
    /// After an error in an extended batch, messages are skipped until Sync.
    skip_to_sync: bool,
    /// Descriptions of statements by text and parameter types, so that a
    /// statement parsed again and again (unnamed) is described once;
    /// forgotten after any schema change of this session.
    described: HashMap<(String, Vec<u32>), (Frame, Frame)>,
    running: Arc<Mutex<Running>>,
}

pub async fn run(shared: Arc<Shared>, stream: TcpStream) -> io::Result<()> {
    let mut client = Wire::new(ClientStream::Plain(stream), MAX_CLIENT_FRAME);
    // Startup: SSLRequest is answered with TLS when a certificate is
    // configured, GSSENCRequest is declined, CancelRequest is served.
    let params = loop {
        let Some(body) = client.read_startup().await? else { return Ok(()) };
        if body.len() < 4 {
            return Err(super::wire::invalid("short startup packet"));
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST if shared.tls.is_some() && !client.get_mut().is_tls() => {
                client.send_raw(b"S");
                client.flush().await?;
                let (Some(acceptor), ClientStream::Plain(tcp)) = (shared.tls.clone(), client.into_inner()) else {
                    return Ok(());
                };
                let tls = acceptor.accept(tcp).await?;
                client = Wire::new(ClientStream::Tls(Box::new(tls)), MAX_CLIENT_FRAME);
            }
            SSL_REQUEST | GSSENC_REQUEST => {
                client.send_raw(b"N");
                client.flush().await?;
            }
            CANCEL_REQUEST => {
                if body.len() >= 12 {
                    let pid = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    let secret = i32::from_be_bytes([body[8], body[9], body[10], body[11]]);
                    let running = shared.cancels.lock().ok().and_then(|m| m.get(&(pid, secret)).cloned());
                    if let Some(r) = running {
                        super::cancel_running(&shared, &r).await;
                    }
                }
                return Ok(());
            }
            196608 => break parse_startup(&body[4..]),
            other => {
                let e =
                    SgError::raw("08P01", format!("unsupported frontend protocol {}.{}", other >> 16, other & 0xffff));
                fatal(&mut client, &e).await?;
                return Ok(());
            }
        }
    };
    let user = params.get("user").cloned().unwrap_or_default();
    if !authenticate(&shared, &mut client, &user).await? {
        return Ok(());
    }
    let backends = shared.backends();
    let running = Arc::new(Mutex::new(Running::default()));
    let (pid, secret) = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
    if let Ok(mut m) = shared.cancels.lock() {
        m.insert((pid, secret), running.clone());
    }
    let mut s = Session {
        shared: shared.clone(),
        backends,
        client,
        attached: Vec::new(),
        txn: None,
        settings: Vec::new(),
        settings_sig: 0,
        statements: HashMap::new(),
        portals: HashMap::new(),
        skip_to_sync: false,
        described: HashMap::new(),
        running,
    };
    s.startup_settings(&params);
    let result = s.serve(pid, secret).await;
    if let Ok(mut m) = shared.cancels.lock() {
        m.remove(&(pid, secret));
    }
    // Clean connections go back; any other is closed, so the shard rolls
    // back whatever was open.
    if s.txn.is_some() {
        s.attached.clear();
    }
    s.release_all();
    result
}

fn parse_startup(mut b: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let next = |b: &mut &[u8]| -> Option<String> {
        let end = b.iter().position(|&c| c == 0)?;
        let s = String::from_utf8_lossy(&b[..end]).into_owned();
        *b = &b[end + 1..];
        Some(s)
    };
    while let Some(k) = next(&mut b) {
        if k.is_empty() {
            break;
        }
        let Some(v) = next(&mut b) else { break };
        out.insert(k, v);
    }
    out
}

async fn fatal(client: &mut Wire<ClientStream>, e: &SgError) -> io::Result<()> {
    client.send(&ErrorResponse::new(vec![
        (b'S', "FATAL".into()),
        (b'V', "FATAL".into()),
        (b'C', e.code.clone()),
        (b'M', e.message.clone()),
    ]))?;
    client.flush().await
}

async fn authenticate(shared: &Shared, client: &mut Wire<ClientStream>, user: &str) -> io::Result<bool> {
    let failed = SgError::raw("28P01", format!("password authentication failed for user \"{user}\""));
    let Some(ua) = shared.users.get(user) else {
        fatal(client, &failed).await?;
        return Ok(false);
    };
    let read_password = |f: Option<Frame>| -> Option<Bytes> {
        let f = f?;
        (f.tag == b'p').then(|| f.bytes.slice(5..))
    };
    match ua.method {
        AuthMethod::Trust => {}
        AuthMethod::Md5 => {
            let salt: [u8; 4] = rand::random();
            client.send(&Authentication::MD5Password(salt.to_vec()))?;
            client.flush().await?;
            let Some(body) = read_password(client.read_frame().await?) else { return Ok(false) };
            let resp = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
            if !super::auth::md5_ok(user, ua.password.as_deref().unwrap_or(""), salt, &resp) {
                fatal(client, &failed).await?;
                return Ok(false);
            }
        }
        AuthMethod::ScramSha256 => {
            let Some(verifier) = ua.scram.clone() else {
                fatal(client, &failed).await?;
                return Ok(false);
            };
            client.send(&Authentication::SASL(vec!["SCRAM-SHA-256".into()]))?;
            client.flush().await?;
            // SASLInitialResponse: mechanism\0, int32 length, data.
            let Some(mut body) = read_password(client.read_frame().await?) else { return Ok(false) };
            let Some(end) = body.iter().position(|&c| c == 0) else { return Ok(false) };
            body.advance(end + 1);
            if body.len() < 4 {
                return Ok(false);
            }
            let len = body.get_i32();
            let first = if len < 0 { Bytes::new() } else { body.slice(..(len as usize).min(body.len())) };
            let (server, server_first) = match super::auth::ScramServer::start(verifier, &first) {
                Ok(x) => x,
                Err(_) => {
                    fatal(client, &failed).await?;
                    return Ok(false);
                }
            };
            client.send(&Authentication::SASLContinue(Bytes::from(server_first)))?;
            client.flush().await?;
            let Some(fin) = read_password(client.read_frame().await?) else { return Ok(false) };
            match server.finish(&fin) {
                Ok(server_final) => {
                    client.send(&Authentication::SASLFinal(Bytes::from(server_final)))?;
                }
                Err(_) => {
                    fatal(client, &failed).await?;
                    return Ok(false);
                }
            }
        }
    }
    client.send(&Authentication::Ok)?;
    Ok(true)
}

/// A signature of a list of settings.
fn signature(settings: &[(String, String)]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (_, sql) in settings {
        h.update(sql.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

/// The setting a SET / RESET statement names (lower-cased), from its words.
fn setting_name(sql: &str) -> Option<String> {
    let mut words = sql.split(|c: char| c.is_whitespace() || c == '=').filter(|w| !w.is_empty());
    let verb = words.next()?.to_ascii_lowercase();
    if verb != "set" && verb != "reset" {
        return None;
    }
    let mut w = words.next()?.to_ascii_lowercase();
    if w == "session" {
        w = words.next()?.to_ascii_lowercase();
    }
    Some(w.trim_matches('"').to_string())
}

fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl Session {
    fn startup_settings(&mut self, params: &HashMap<String, String>) {
        for (k, v) in params {
            match k.as_str() {
                "user" | "database" | "replication" => {}
                "options" => {
                    // -c name=value pairs.
                    let mut it = v.split_whitespace();
                    while let Some(w) = it.next() {
                        let kv = if w == "-c" { it.next() } else { w.strip_prefix("-c") };
                        if let Some((name, value)) = kv.and_then(|kv| kv.split_once('=')) {
                            self.record_setting(name, &format!("SET {name} TO {}", quote_literal(value)));
                        }
                    }
                }
                name if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') => {
                    self.record_setting(name, &format!("SET {name} TO {}", quote_literal(v)));
                }
                _ => {}
            }
        }
    }

    fn record_setting(&mut self, name: &str, sql: &str) {
        let name = name.to_ascii_lowercase();
        let list = match self.txn.as_mut().and_then(|t| t.pending_sets.as_mut()) {
            Some(p) => p,
            None => &mut self.settings,
        };
        list.retain(|(n, _)| *n != name);
        list.push((name, sql.to_string()));
        self.settings_sig = signature(&self.settings);
    }

    fn reset_setting(&mut self, name: Option<&str>) {
        let list = match self.txn.as_mut().and_then(|t| t.pending_sets.as_mut()) {
            Some(p) => p,
            None => &mut self.settings,
        };
        match name {
            Some(n) if n != "all" => list.retain(|(k, _)| k != n),
            _ => list.clear(),
        }
        self.settings_sig = signature(&self.settings);
    }

    async fn serve(&mut self, pid: i32, secret: i32) -> io::Result<()> {
        // Report parameters: the baseline, overridden by the client's settings
        // as a shard reports them after applying them.
        let mut params: Vec<(String, String)> = self.shared.server_params.clone();
        if !self.settings.is_empty() {
            match self.attach(ShardId(0)).await {
                Ok(i) => {
                    let reported = self.reported_settings(i).await;
                    for (k, v) in reported {
                        match params.iter_mut().find(|(n, _)| *n == k) {
                            Some(p) => p.1 = v,
                            None => params.push((k, v)),
                        }
                    }
                    self.release_attached();
                }
                Err(e) => {
                    fatal(&mut self.client, &e).await?;
                    return Ok(());
                }
            }
        }
        for (k, v) in &params {
            self.client.send(&ParameterStatus::new(k.clone(), v.clone()))?;
        }
        self.client.send(&BackendKeyData::new(pid, SecretKey::I32(secret)))?;
        self.ready()?;
        self.client.flush().await?;
        loop {
            let Some(f) = self.client.read_frame().await? else { return Ok(()) };
            if self.skip_to_sync && !matches!(f.tag, b'S' | b'X') {
                continue;
            }
            match f.tag {
                b'Q' => {
                    let q: Query = f.decode()?;
                    self.simple_query(&q.query).await?;
                    self.ready()?;
                    self.client.flush().await?;
                }
                b'P' => self.on_parse(f.decode()?).await?,
                b'B' => self.on_bind(f.decode()?)?,
                b'D' => self.on_describe(f.decode()?).await?,
                b'E' => self.on_execute(f.decode()?).await?,
                b'C' => {
                    let c: Close = f.decode()?;
                    let name = c.name.unwrap_or_default();
                    if c.target_type == b'S' {
                        self.statements.remove(&name);
                    } else {
                        self.portals.remove(&name);
                    }
                    self.client.send(&pgwire::messages::extendedquery::CloseComplete::new())?;
                }
                b'H' => self.client.flush().await?,
                b'S' => {
                    self.on_sync().await?;
                    self.ready()?;
                    self.client.flush().await?;
                }
                b'X' => return Ok(()),
                b'd' | b'c' | b'f' => {
                    // COPY data outside COPY: ignored, as PostgreSQL does.
                }
                other => {
                    let e = SgError::raw("08P01", format!("invalid frontend message type {}", other as char));
                    fatal(&mut self.client, &e).await?;
                    return Ok(());
                }
            }
        }
    }

    fn ready(&mut self) -> io::Result<()> {
        let status = match &self.txn {
            Some(t) if t.implicit => TransactionStatus::Idle,
            Some(t) if t.failed => TransactionStatus::Error,
            Some(_) => TransactionStatus::Transaction,
            None => TransactionStatus::Idle,
        };
        self.client.send(&ReadyForQuery::new(status))
    }

    fn send_error(&mut self, e: &SgError) -> io::Result<()> {
        if let Some(t) = self.txn.as_mut() {
            t.failed = true;
        }
        self.client.send(&e.frame())
    }

    // ---- backend connections ------------------------------------------------

    /// Attaches a connection to `shard` (reusing an attached one), applying
    /// the session's settings and joining the open transaction.
    async fn attach(&mut self, shard: ShardId) -> Result<usize, SgError> {
        if let Some(i) = self.attached.iter().position(|a| a.shard == shard) {
            // Session pooling keeps connections across transactions: one
            // attached before this transaction began joins it now.
            if let Some(replay) = self.txn_replay()
                && !self.attached[i].joined
            {
                let name = self.backends.pool(shard).name().to_string();
                let conn = self.attached[i].conn.conn();
                match conn.simple(&replay).await {
                    Ok(Ok(())) => self.attached[i].joined = true,
                    Ok(Err(fields)) => return Err(backend_error(&fields, Some(&name))),
                    Err(e) => {
                        self.attached[i].status = b'E';
                        return Err(SgError::new(ErrorCode::ShardUnavailable, format!("shard {name}: {e}")));
                    }
                }
            }
            return Ok(i);
        }
        let pool = self.backends.pool(shard).clone();
        let mut conn = pool.get().await.map_err(|e| SgError::of(&e))?;
        let shard_name = pool.name().to_string();
        let lost = |e: io::Error| SgError::new(ErrorCode::ShardUnavailable, format!("shard {shard_name}: {e}"));
        if conn.conn().settings != self.settings_sig {
            let mut sql = String::from("RESET ALL");
            for (_, s) in &self.settings {
                sql.push_str("; ");
                sql.push_str(s);
            }
            if let Err(fields) = conn.conn().simple(&sql).await.map_err(lost)? {
                return Err(backend_error(&fields, None));
            }
            conn.conn().settings = self.settings_sig;
        }
        let replay = self.txn_replay();
        if let Some(replay) = &replay
            && let Err(fields) = conn.conn().simple(replay).await.map_err(lost)?
        {
            return Err(backend_error(&fields, Some(&shard_name)));
        }
        self.attached.push(Attached { shard, conn, status: b'I', in_batch: false, joined: replay.is_some() });
        Ok(self.attached.len() - 1)
    }

    /// What a connection joining the open transaction must run: BEGIN as the
    /// client wrote it, then its savepoints and SET LOCALs.
    fn txn_replay(&self) -> Option<String> {
        let t = self.txn.as_ref().filter(|t| !t.begin.is_empty())?;
        let mut replay = vec![t.begin.clone()];
        replay.extend(t.savepoints.iter().cloned());
        replay.extend(t.local_sets.iter().cloned());
        Some(replay.join("; "))
    }

    /// `preferred`, unless its pool is failing and another shard's is not.
    fn healthy(&self, preferred: ShardId) -> ShardId {
        let pools = &self.backends.pools;
        if self.attached.iter().any(|a| a.shard == preferred) || !pools[preferred.index()].is_failing() {
            return preferred;
        }
        pools.iter().position(|p| !p.is_failing()).map_or(preferred, |i| ShardId(i as u16))
    }

    /// A connection broke: the shard is unwell, and its idle connections
    /// are not to be trusted.
    fn broken(&self, shard: ShardId) {
        self.backends.pool(shard).note_broken();
    }

    /// ParameterStatus values a shard reports for the session's settings.
    async fn reported_settings(&mut self, i: usize) -> Vec<(String, String)> {
        let mut sql = String::from("RESET ALL");
        for (_, s) in &self.settings {
            sql.push_str("; ");
            sql.push_str(s);
        }
        let conn = self.attached[i].conn.conn();
        let mut out = Vec::new();
        if conn.wire.send(&Query::new(sql)).is_err() || conn.wire.flush().await.is_err() {
            return out;
        }
        while let Ok(f) = conn.next().await {
            match f.tag {
                b'S' => {
                    if let Ok(p) = f.decode::<ParameterStatus>() {
                        out.push((p.name, p.value));
                    }
                }
                b'Z' => break,
                _ => {}
            }
        }
        out
    }

    /// Gives back attached connections that are idle; closes the others.
    fn release_attached(&mut self) {
        if self.shared.config.pool.mode == crate::config::PoolMode::Session {
            // Session pooling: clean connections stay with the client.
            let (keep, dirty): (Vec<Attached>, Vec<Attached>) =
                self.attached.drain(..).partition(|a| a.status == b'I' && !a.in_batch);
            for a in dirty {
                a.conn.discard();
            }
            self.attached = keep;
            for a in self.attached.iter_mut() {
                a.joined = false;
            }
            return;
        }
        self.release_all();
    }

    /// Gives back every clean attached connection; closes the others.
    fn release_all(&mut self) {
        for a in self.attached.drain(..) {
            if a.status == b'I' && !a.in_batch {
                a.conn.release();
            } else {
                a.conn.discard();
            }
        }
    }

    /// After a statement outside a transaction: connections go back.
    fn end_statement(&mut self) {
        if self.txn.is_none() {
            self.release_attached();
        }
        if let Ok(mut r) = self.running.lock() {
            r.backends.clear();
        }
    }

    // ---- simple query ------------------------------------------------------

    async fn simple_query(&mut self, sql: &str) -> io::Result<()> {
        if let Some(rest) = explain_route(sql) {
            return self.explain_route(rest);
        }
        let backends = self.backends.clone();
        let router = backends.router.clone();
        let pieces = crate::route::split_statements(sql, router.rules().backend);
        if pieces.is_empty() {
            self.client.send(&pgwire::messages::response::EmptyQueryResponse::new())?;
            return Ok(());
        }
        // Several statements outside a transaction are one implicit
        // transaction, as in PostgreSQL — unless they control transactions
        // themselves.
        let mut plans: Vec<Result<Plan, SgError>> = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            let cx = RouteContext { params: &[], pinned: self.pinned(), utc_offset: Some(0) };
            match router.route(piece, &cx) {
                Ok(mut p) if !p.is_empty() => plans.push(Ok(p.remove(0))),
                Ok(_) => {}
                Err(e) => {
                    // Nothing of the string runs when a statement of it is refused.
                    self.send_error(&SgError::of(&e))?;
                    return Ok(());
                }
            }
        }
        // A single write to several shards also runs in a transaction on
        // each, committed only when every shard succeeded: a duplicate key
        // on one shard undoes the others' part too. (A failure during the
        // commits themselves can still leave them split: not atomic.)
        let spread_write = plans.iter().any(|p| {
            p.as_ref()
                .is_ok_and(|p| p.kind == StatementKind::Write && p.targets.len() > 1 && p.merge != Merge::Broadcast)
        });
        let implicit = (pieces.len() > 1 || spread_write)
            && self.txn.is_none()
            && plans.iter().all(|p| p.as_ref().is_ok_and(|p| p.control.is_none()));
        if implicit {
            self.txn = Some(Txn::new("BEGIN", true, None));
        }
        let mut ok = true;
        for plan in plans {
            let plan = match plan {
                Ok(p) => p,
                Err(e) => {
                    self.send_error(&e)?;
                    ok = false;
                    break;
                }
            };
            match self.execute_plan(&plan, None).await? {
                Outcome::Ok => {}
                Outcome::Failed => {
                    ok = false;
                    break;
                }
            }
        }
        if implicit {
            let sql = if ok { "COMMIT" } else { "ROLLBACK" };
            if let Err(e) = self.finish_txn(sql).await {
                self.client.send(&e.frame())?;
            }
            self.txn = None;
            self.release_attached();
        }
        Ok(())
    }

    fn pinned(&self) -> Option<ShardId> {
        self.txn.as_ref().and_then(|t| t.state.pinned)
    }

    fn explain_route(&mut self, sql: &str) -> io::Result<()> {
        let backends = self.backends.clone();
        let router = &backends.router;
        let cx = RouteContext { params: &[], pinned: self.pinned(), utc_offset: Some(0) };
        let plans = match router.route(sql, &cx) {
            Ok(p) => p,
            Err(e) => return self.send_error(&SgError::of(&e)),
        };
        let fields = ["shard", "sql", "reason"]
            .iter()
            .map(|n| FieldDescription::new((*n).into(), 0, 0, 25, -1, -1, 0))
            .collect();
        self.client.send(&RowDescription::new(fields))?;
        let mut n = 0;
        for plan in &plans {
            for row in crate::route::explain_rows(plan, router.rules()) {
                self.client.send_frame(&data_row(&[
                    Some(row.shard.as_bytes()),
                    Some(row.sql.as_bytes()),
                    Some(row.reason.as_bytes()),
                ]));
                n += 1;
            }
        }
        self.client.send(&CommandComplete::new(format!("SELECT {n}")))
    }

    // ---- transactions --------------------------------------------------------

    /// Commits or rolls back the open transaction on every attached shard.
    async fn finish_txn(&mut self, sql: &str) -> Result<(), SgError> {
        self.sync_batches().await;
        let mut first_error = None;
        // The write shard last: read-only participants first.
        let pinned = self.pinned();
        self.attached.sort_by_key(|a| Some(a.shard) == pinned);
        for a in self.attached.iter_mut().filter(|a| a.joined || a.in_batch) {
            match a.conn.conn().simple(sql).await {
                Ok(Ok(())) => a.status = b'I',
                Ok(Err(fields)) => {
                    a.status = b'E';
                    first_error.get_or_insert(backend_error(&fields, None));
                }
                Err(e) => {
                    a.status = b'E';
                    first_error.get_or_insert(SgError::new(ErrorCode::ShardUnavailable, e.to_string()));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn control(&mut self, c: Control, sql: &str) -> io::Result<Outcome> {
        match c {
            Control::Begin => {
                if self.txn.as_ref().is_some_and(|t| !t.implicit) {
                    self.client.send(&NoticeResponse::new(vec![
                        (b'S', "WARNING".into()),
                        (b'C', "25001".into()),
                        (b'M', "there is already a transaction in progress".into()),
                    ]))?;
                } else {
                    self.txn = Some(Txn::new(sql, false, Some(self.settings.clone())));
                }
                self.client.send(&CommandComplete::new("BEGIN".into()))?;
                Ok(Outcome::Ok)
            }
            Control::Commit | Control::Rollback => {
                let Some(t) = self.txn.take() else {
                    self.client.send(&NoticeResponse::new(vec![
                        (b'S', "WARNING".into()),
                        (b'C', "25P01".into()),
                        (b'M', "there is no transaction in progress".into()),
                    ]))?;
                    let tag = if c == Control::Commit { "COMMIT" } else { "ROLLBACK" };
                    self.client.send(&CommandComplete::new(tag.into()))?;
                    return Ok(Outcome::Ok);
                };
                let commit = c == Control::Commit && !t.failed;
                let pending = t.pending_sets.clone();
                self.txn = Some(t);
                let result = self.finish_txn(if commit { "COMMIT" } else { "ROLLBACK" }).await;
                self.txn = None;
                self.release_attached();
                match result {
                    Ok(()) => {
                        if commit && let Some(p) = pending {
                            self.settings = p;
                            self.settings_sig = signature(&self.settings);
                        }
                        self.client.send(&CommandComplete::new(if commit { "COMMIT" } else { "ROLLBACK" }.into()))?;
                        Ok(Outcome::Ok)
                    }
                    Err(e) => {
                        self.client.send(&e.frame())?;
                        Ok(Outcome::Failed)
                    }
                }
            }
            Control::Savepoint | Control::ReleaseSavepoint | Control::RollbackToSavepoint => {
                if self.txn.is_none() || self.attached.is_empty() {
                    // Outside a transaction the shard answers with its own
                    // error; with nothing attached yet there is nothing to mark.
                    if let Some(t) = self.txn.as_mut() {
                        t.savepoints.push(sql.to_string());
                        self.client.send(&CommandComplete::new(tag_of(c).into()))?;
                        return Ok(Outcome::Ok);
                    }
                    return self.forward_everywhere(sql, false).await;
                }
                let outcome = self.forward_everywhere(sql, false).await?;
                if let (Outcome::Ok, Some(t)) = (&outcome, self.txn.as_mut()) {
                    t.savepoints.push(sql.to_string());
                    if c == Control::RollbackToSavepoint {
                        t.failed = false;
                    }
                }
                Ok(outcome)
            }
            Control::Set | Control::SetLocal | Control::Reset => {
                if sql.trim_start().to_ascii_lowercase().starts_with("discard") {
                    self.reset_setting(None);
                    self.statements.clear();
                    self.portals.clear();
                    self.client.send(&CommandComplete::new("DISCARD ALL".into()))?;
                    return Ok(Outcome::Ok);
                }
                // A session-wide SET or RESET changes the connections it runs on:
                // they are marked so that whoever takes them next (this client
                // too, whatever its transaction's fate) re-applies its settings.
                let outcome = self.forward_everywhere(sql, c != Control::SetLocal).await?;
                if let Outcome::Ok = outcome {
                    let name = setting_name(sql);
                    match c {
                        Control::SetLocal => {
                            if let Some(t) = self.txn.as_mut() {
                                t.local_sets.push(sql.to_string());
                            }
                        }
                        Control::Set => {
                            if let Some(n) = name {
                                self.record_setting(&n, sql);
                            }
                        }
                        _ => self.reset_setting(name.as_deref()),
                    }
                }
                Ok(outcome)
            }
            Control::Show => self.forward_everywhere(sql, false).await,
        }
    }

    /// Runs a statement on every attached connection (or on one shard when
    /// none is attached), forwarding the first connection's answer.
    async fn forward_everywhere(&mut self, sql: &str, changes_settings: bool) -> io::Result<Outcome> {
        self.sync_batches().await;
        let in_txn = self.txn.as_ref().is_some_and(|t| !t.begin.is_empty());
        if !self.attached.iter().any(|a| a.joined || !in_txn) {
            let shard = self.pinned().unwrap_or_else(|| self.healthy(ShardId(0)));
            if let Err(e) = self.attach(shard).await {
                self.send_error(&e)?;
                self.end_statement();
                return Ok(Outcome::Failed);
            }
        }
        let mut outcome = Outcome::Ok;
        let mut first = true;
        for i in 0..self.attached.len() {
            // Inside a transaction, only the connections that joined it.
            if in_txn && !self.attached[i].joined {
                continue;
            }
            let lead = std::mem::take(&mut first);
            let conn = self.attached[i].conn.conn();
            conn.wire.send(&Query::new(sql.to_string()))?;
            if let Err(e) = conn.wire.flush().await {
                self.attached[i].status = b'E';
                self.send_error(&SgError::new(ErrorCode::ShardUnavailable, e.to_string()))?;
                outcome = Outcome::Failed;
                break;
            }
            loop {
                let f = match self.attached[i].conn.conn().next().await {
                    Ok(f) => f,
                    Err(e) => {
                        self.attached[i].status = b'E';
                        self.send_error(&SgError::new(ErrorCode::ShardUnavailable, e.to_string()))?;
                        outcome = Outcome::Failed;
                        break;
                    }
                };
                match f.tag {
                    b'Z' => {
                        self.attached[i].status = BackendConn::status_of(&f);
                        if changes_settings {
                            self.attached[i].conn.conn().settings = UNKNOWN_SETTINGS;
                        }
                        break;
                    }
                    b'E' => {
                        outcome = Outcome::Failed;
                        if let Some(t) = self.txn.as_mut() {
                            t.failed = true;
                        }
                        if lead {
                            self.client.send_frame(&f);
                        }
                    }
                    _ if lead => self.client.send_frame(&f),
                    _ => {}
                }
            }
            if let Outcome::Failed = outcome {
                break;
            }
        }
        self.end_statement();
        Ok(outcome)
    }

    // ---- executing plans -----------------------------------------------------

    /// Admits a plan into the transaction (or the implicit one).
    fn admit(&mut self, plan: &Plan) -> Result<(), SgError> {
        let policy = self.shared.config.transactions.policy;
        let limits = &self.shared.config.limits;
        if plan.targets.len() > 1 {
            if limits.refuse_scatter_reads
                && plan.kind == StatementKind::Read
                && plan.targets.iter().any(|t| matches!(t.reason, crate::route::Reason::Scatter { .. }))
            {
                return Err(SgError::new(
                    ErrorCode::LimitExceeded,
                    "scatter reads are refused by the limits.refuse_scatter_reads setting",
                ));
            }
            if let Some(max) = limits.max_shards_per_statement
                && plan.targets.len() > max
            {
                return Err(SgError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "the statement needs {} shards; limits.max_shards_per_statement allows {max}",
                        plan.targets.len()
                    ),
                ));
            }
        }
        let rules = self.backends.router.rules().clone();
        if let Some(t) = self.txn.as_mut() {
            if t.failed && !t.implicit {
                return Err(SgError::raw(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
            }
            // The first statement of an implicit transaction (a string of
            // statements, an extended batch) stands alone, like a statement
            // outside a transaction: it may write to several shards, each
            // committing its part when the whole succeeded. Later writes of
            // the batch may not join it.
            let writes = plan.writes();
            let alone = t.implicit && t.state.touched.is_empty();
            if alone && writes && plan.targets.len() > 1 {
                t.spread = true;
                t.state.admit(plan, crate::route::TxnPolicy::MultiShardWrites, &rules).map_err(|e| SgError::of(&e))?;
            } else if t.spread && writes {
                let names: Vec<&str> = plan.shards().map(|s| rules.shard(s).name.as_str()).collect();
                let e = crate::route::RouteError::CrossShardTransaction { pinned: None, wanted: names.join(", ") };
                return Err(SgError::of(&e));
            } else {
                t.state.admit(plan, policy, &rules).map_err(|e| SgError::of(&e))?;
            }
        }
        Ok(())
    }

    /// Runs one plan; `ext` carries the extended-protocol bind when the plan
    /// came from a portal.
    async fn execute_plan(&mut self, plan: &Plan, ext: Option<&ExtBind>) -> io::Result<Outcome> {
        if let Some(c) = plan.control {
            let sql = plan.targets.first().map(|t| t.sql.to_string()).unwrap_or_default();
            return self.control(c, &sql).await;
        }
        if let Err(e) = self.admit(plan) {
            self.send_error(&e)?;
            return Ok(Outcome::Failed);
        }
        if plan.kind == StatementKind::Ddl {
            self.described.clear();
        }
        if plan.copy_in.is_some() {
            if ext.is_some() {
                self.send_error(&SgError::new(
                    ErrorCode::Unsupported,
                    "COPY FROM STDIN through the extended protocol is not supported; use a simple query",
                ))?;
                return Ok(Outcome::Failed);
            }
            let outcome = self.copy_in(plan).await?;
            if let Outcome::Failed = outcome
                && let Some(t) = self.txn.as_mut()
            {
                t.failed = true;
            }
            self.end_statement();
            return Ok(outcome);
        }
        let timeout = self.shared.config.timeouts.statement();
        let result = tokio::time::timeout(timeout, self.run_targets(plan, ext)).await;
        let outcome = match result {
            Ok(r) => r?,
            Err(_) => {
                let running = self.running.clone();
                super::cancel_running(&self.shared, &running).await;
                // The connections are mid-statement: close them.
                for a in self.attached.iter_mut() {
                    a.status = b'E';
                }
                self.send_error(&SgError::new(
                    ErrorCode::Timeout,
                    format!("statement timed out after {} ms (timeouts.statement_ms)", timeout.as_millis()),
                ))?;
                if self.txn.as_ref().is_some_and(|t| t.implicit) {
                    self.attached.clear();
                }
                Outcome::Failed
            }
        };
        if let Outcome::Failed = outcome
            && let Some(t) = self.txn.as_mut()
        {
            t.failed = true;
        }
        if ext.is_none() {
            self.end_statement();
        }
        Ok(outcome)
    }

    /// Sends the plan's statements to their shards and answers the client.
    async fn run_targets(&mut self, plan: &Plan, ext: Option<&ExtBind>) -> io::Result<Outcome> {
        // Attach every target first. A statement any shard can answer goes
        // to a shard that is not failing.
        let mut idx = Vec::with_capacity(plan.targets.len());
        for t in &plan.targets {
            let shard = match t.reason {
                crate::route::Reason::AnyShard | crate::route::Reason::ReferenceRead { .. } => self.healthy(t.shard),
                _ => t.shard,
            };
            match self.attach(shard).await {
                Ok(i) => idx.push(i),
                Err(e) => {
                    self.send_error(&e)?;
                    return Ok(Outcome::Failed);
                }
            }
        }
        // Send to all, then read: the shards work in parallel.
        for (t, &i) in plan.targets.iter().zip(&idx) {
            let a = &mut self.attached[i];
            let sent = match ext {
                None => a.conn.conn().wire.send(&Query::new(t.sql.to_string())),
                Some(b) => {
                    a.in_batch = true;
                    send_extended(a.conn.conn(), t, b, plan.targets.len() > 1)
                }
            };
            let flushed = match sent {
                Ok(()) => a.conn.conn().wire.flush().await,
                Err(e) => Err(e),
            };
            let shard = a.shard;
            if let Err(e) = flushed {
                a.status = b'E';
                self.broken(shard);
                let name = self.backends.pool(shard).name().to_string();
                self.send_error(&SgError::new(ErrorCode::ShardUnavailable, format!("shard {name}: {e}")))?;
                return Ok(Outcome::Failed);
            }
            let (pid, secret) = (a.conn.conn().pid, a.conn.conn().secret);
            if let Ok(mut r) = self.running.lock() {
                r.backends.push((shard, pid, secret));
            }
        }
        if plan.targets.len() == 1 && plan.merge != Merge::Explain {
            let outcome = self.forward_one(idx[0], ext.is_some()).await?;
            if ext.is_some_and(|b| b.sync) {
                // Read the shard to its ReadyForQuery: its batch is over.
                let a = &mut self.attached[idx[0]];
                loop {
                    match a.conn.conn().next().await {
                        Ok(f) if f.tag == b'Z' => {
                            a.status = BackendConn::status_of(&f);
                            a.in_batch = false;
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => {
                            a.status = b'E';
                            break;
                        }
                    }
                }
            }
            return Ok(outcome);
        }
        self.gather(plan, &idx, ext.is_some()).await
    }

    /// Streams one shard's answer to the client as it arrives.
    async fn forward_one(&mut self, i: usize, extended: bool) -> io::Result<Outcome> {
        let mut outcome = Outcome::Ok;
        loop {
            let f = match self.attached[i].conn.conn().next().await {
                Ok(f) => f,
                Err(e) => {
                    self.attached[i].status = b'E';
                    self.broken(self.attached[i].shard);
                    let name = self.backends.pool(self.attached[i].shard).name().to_string();
                    self.send_error(&SgError::new(ErrorCode::ShardUnavailable, format!("shard {name}: {e}")))?;
                    return Ok(Outcome::Failed);
                }
            };
            match f.tag {
                b'Z' => {
                    self.attached[i].status = BackendConn::status_of(&f);
                    return Ok(outcome);
                }
                // Extended: our own Parse/Bind acknowledgements stay here.
                b'1' | b'2' if extended => {}
                b'E' => {
                    outcome = Outcome::Failed;
                    if let Some(e) = shard_fatal(&f, self.backends.pool(self.attached[i].shard).name()) {
                        // The shard ends this connection, not the client's session.
                        self.attached[i].status = b'E';
                        self.send_error(&e)?;
                        return Ok(outcome);
                    }
                    self.client.send_frame(&f);
                    if extended {
                        return Ok(outcome);
                    }
                }
                b'C' | b's' | b'I' if extended => {
                    self.client.send_frame(&f);
                    return Ok(outcome);
                }
                _ => {
                    self.client.send_frame(&f);
                    if self.client.pending() >= FLUSH_AT {
                        self.client.flush().await?;
                    }
                }
            }
        }
    }

    /// Reads every shard's answer and merges them.
    async fn gather(&mut self, plan: &Plan, idx: &[usize], extended: bool) -> io::Result<Outcome> {
        let mut answers: Vec<ShardAnswer> = Vec::with_capacity(idx.len());
        let mut error: Option<(ShardId, Frame)> = None;
        for &i in idx {
            let shard = self.attached[i].shard;
            let mut ans = ShardAnswer::default();
            loop {
                let f = match self.attached[i].conn.conn().next().await {
                    Ok(f) => f,
                    Err(e) => {
                        self.attached[i].status = b'E';
                        self.broken(shard);
                        let name = self.backends.pool(shard).name().to_string();
                        self.send_error(&SgError::new(ErrorCode::ShardUnavailable, format!("shard {name}: {e}")))?;
                        return Ok(Outcome::Failed);
                    }
                };
                match f.tag {
                    b'Z' => {
                        self.attached[i].status = BackendConn::status_of(&f);
                        break;
                    }
                    b'1' | b'2' if extended => {}
                    b'T' | b'H' => ans.description = Some(f),
                    b'D' | b'd' => ans.rows.push(f),
                    b'C' => {
                        ans.tag = Some(f);
                        if extended {
                            break;
                        }
                    }
                    b'E' => {
                        if let Some(e) = shard_fatal(&f, self.backends.pool(shard).name()) {
                            self.attached[i].status = b'E';
                            self.send_error(&e)?;
                            return Ok(Outcome::Failed);
                        }
                        if error.is_none() {
                            error = Some((shard, f));
                            // Stop the others.
                            let running = self.running.clone();
                            super::cancel_running(&self.shared, &running).await;
                        }
                        if extended {
                            break;
                        }
                    }
                    b'I' => {
                        ans.tag = None;
                        if extended {
                            break;
                        }
                    }
                    b'N' | b'S' => {}
                    _ => {}
                }
            }
            answers.push(ans);
        }
        if let Some((shard, f)) = error {
            let name = self.backends.pool(shard).name().to_string();
            let mut fields = error_fields(&f);
            for (code, value) in fields.iter_mut() {
                if *code == b'M' {
                    *value = format!("{value} (on shard {name})");
                }
            }
            self.client.send(&ErrorResponse::new(fields))?;
            return Ok(Outcome::Failed);
        }
        match &plan.merge {
            Merge::Forward | Merge::Broadcast => {
                let Some(first) = answers.into_iter().next() else { return Ok(Outcome::Ok) };
                if let Some(d) = &first.description
                    && !extended
                {
                    self.client.send_frame(d);
                }
                for r in &first.rows {
                    self.client.send_frame(r);
                }
                if let Some(t) = &first.tag {
                    self.client.send_frame(t);
                }
                Ok(Outcome::Ok)
            }
            Merge::SumCounts => {
                let mut total: u64 = 0;
                let mut verb = String::new();
                let mut described = false;
                for a in &answers {
                    if let (Some(d), false, false) = (&a.description, described, extended) {
                        self.client.send_frame(d);
                        described = true;
                    }
                    for r in &a.rows {
                        self.client.send_frame(r);
                    }
                    if let Some(t) = &a.tag {
                        let (v, n) = split_tag(t);
                        verb = v;
                        total += n;
                    }
                }
                self.client.send(&CommandComplete::new(format!("{verb}{total}")))?;
                Ok(Outcome::Ok)
            }
            Merge::InsertReturning => {
                // Put rows back in VALUES order.
                let mut slots: Vec<Option<Frame>> =
                    vec![None; plan.targets.iter().map(|t| t.rows.as_ref().map_or(0, Vec::len)).sum()];
                let mut desc = None;
                for (t, a) in plan.targets.iter().zip(&answers) {
                    desc = desc.or_else(|| a.description.clone());
                    if let Some(rows) = &t.rows {
                        for (k, f) in a.rows.iter().enumerate() {
                            if let Some(&pos) = rows.get(k)
                                && let Some(slot) = slots.get_mut(pos)
                            {
                                *slot = Some(f.clone());
                            }
                        }
                    }
                }
                if let (Some(d), false) = (&desc, extended) {
                    self.client.send_frame(d);
                }
                for f in slots.iter().flatten() {
                    self.client.send_frame(f);
                }
                let total: u64 = answers.iter().filter_map(|a| a.tag.as_ref()).map(|t| split_tag(t).1).sum();
                self.client.send(&CommandComplete::new(format!("INSERT 0 {total}")))?;
                Ok(Outcome::Ok)
            }
            Merge::Rows(m) => self.merge_rows(m, answers, extended),
            Merge::Explain => {
                // Each shard's plan lines, prefixed with the shard's name.
                if let (Some(d), false) = (answers.iter().find_map(|a| a.description.as_ref()), extended) {
                    self.client.send_frame(d);
                }
                let mut n = 0u64;
                for (t, a) in plan.targets.iter().zip(&answers) {
                    let name = self.backends.pool(t.shard).name().to_string();
                    for r in &a.rows {
                        let cells = data_row_cells(r)?;
                        let line =
                            cells.first().and_then(|c| c.as_deref()).map(String::from_utf8_lossy).unwrap_or_default();
                        let prefixed = format!("{name}: {line}");
                        self.client.send_frame(&data_row(&[Some(prefixed.as_bytes())]));
                        n += 1;
                    }
                }
                self.client.send(&CommandComplete::new(format!("EXPLAIN {n}")))?;
                Ok(Outcome::Ok)
            }
        }
    }

    /// COPY … FROM STDIN: the client's rows, each to the shard of its key.
    async fn copy_in(&mut self, plan: &Plan) -> io::Result<Outcome> {
        let Some(copy) = plan.copy_in.as_deref() else { return Ok(Outcome::Failed) };
        let mut idx = Vec::with_capacity(plan.targets.len());
        for t in &plan.targets {
            match self.attach(t.shard).await {
                Ok(i) => idx.push(i),
                Err(e) => {
                    self.send_error(&e)?;
                    return Ok(Outcome::Failed);
                }
            }
        }
        let rules = self.backends.router.rules().clone();
        // Where the key is in each row.
        let key_index = match &copy.key {
            None => None,
            Some((key, _)) if !copy.columns.is_empty() => copy.columns.iter().position(|c| c == key),
            Some((key, _)) => {
                let sql = format!(
                    "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = {}::regclass \
                     AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    quote_literal(&copy.table)
                );
                match query_column(self.attached[idx[0]].conn.conn(), &sql).await {
                    Ok(Ok(cols)) => match cols.iter().position(|c| c == key) {
                        Some(p) => Some(p),
                        None => {
                            self.send_error(&SgError::new(
                                ErrorCode::Unsupported,
                                format!("{} has no column {key}, its sharding key", copy.table),
                            ))?;
                            return Ok(Outcome::Failed);
                        }
                    },
                    Ok(Err(fields)) => {
                        self.send_error(&backend_error(&fields, None))?;
                        return Ok(Outcome::Failed);
                    }
                    Err(e) => {
                        self.send_error(&SgError::new(ErrorCode::ShardUnavailable, e.to_string()))?;
                        return Ok(Outcome::Failed);
                    }
                }
            }
        };
        // Start COPY on every target.
        let mut copy_response = None;
        let mut failure: Option<SgError> = None;
        for (t, &i) in plan.targets.iter().zip(&idx) {
            let conn = self.attached[i].conn.conn();
            let started = async {
                conn.wire.send(&Query::new(t.sql.to_string()))?;
                conn.wire.flush().await?;
                loop {
                    let f = conn.next().await?;
                    match f.tag {
                        b'G' => return Ok::<Result<Frame, Vec<(u8, String)>>, io::Error>(Ok(f)),
                        b'E' => {
                            let fields = error_fields(&f);
                            // Read up to ReadyForQuery.
                            while conn.next().await?.tag != b'Z' {}
                            return Ok(Err(fields));
                        }
                        _ => {}
                    }
                }
            };
            match started.await {
                Ok(Ok(g)) => {
                    copy_response.get_or_insert(g);
                }
                Ok(Err(fields)) => {
                    failure.get_or_insert(backend_error(&fields, None));
                    self.attached[i].status = b'I';
                }
                Err(e) => {
                    self.attached[i].status = b'E';
                    failure.get_or_insert(SgError::new(ErrorCode::ShardUnavailable, e.to_string()));
                }
            }
        }
        let Some(g) = copy_response.filter(|_| failure.is_none()) else {
            self.abort_copy(&idx, "COPY could not start on every shard").await;
            self.send_error(&failure.unwrap_or_else(|| SgError::raw("XX000", "COPY did not start")))?;
            return Ok(Outcome::Failed);
        };
        self.client.send_frame(&g);
        self.client.flush().await?;
        // Stream the rows.
        let mut splitter = super::copy::RowSplitter::new(copy.format.clone(), key_index);
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); idx.len()];
        let kcx = crate::sharding::key::KeyContext::new(rules.backend, crate::sharding::TextCollation::Exact);
        let mut error: Option<SgError> = None;
        let mut client_done = false;
        while !client_done {
            let Some(f) = self.client.read_frame().await? else { return Err(io::ErrorKind::UnexpectedEof.into()) };
            match f.tag {
                b'd' => {
                    if error.is_none() {
                        splitter.push(f.body());
                    }
                }
                b'c' => client_done = true,
                b'f' => {
                    let msg = String::from_utf8_lossy(f.body().strip_suffix(&[0]).unwrap_or(f.body())).into_owned();
                    error.get_or_insert(SgError::raw("57014", format!("COPY from stdin failed: {msg}")));
                    client_done = true;
                }
                b'H' | b'S' => {}
                other => {
                    error.get_or_insert(SgError::raw(
                        "08P01",
                        format!("unexpected message type {} during COPY", other as char),
                    ));
                    client_done = true;
                }
            }
            if error.is_some() {
                continue;
            }
            loop {
                // At the end, a last line without a newline is a row too.
                let next = match splitter.next_row() {
                    Ok(None) if client_done => splitter.finish(),
                    other => other,
                };
                let (row, header) = match next {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(SgError::raw("22P04", format!("bad COPY data: {e}")));
                        break;
                    }
                };
                if row.end_marker {
                    for buf in out.iter_mut() {
                        buf.extend_from_slice(&row.bytes);
                    }
                    continue;
                }
                let dest: Vec<usize> = match (&copy.key, &row.key, header) {
                    (Some((key, keyspace)), Some(field), false) => {
                        let ks = rules.keyspace(*keyspace);
                        let lit = match field {
                            super::copy::Field::Null => crate::sharding::Literal::Null,
                            super::copy::Field::Value(v) => crate::sharding::Literal::String(v),
                        };
                        match ks.place(&rules.ring, lit, &kcx) {
                            Ok((crate::rules::KeyPlacement::Shard(s), _)) => {
                                match plan.targets.iter().position(|t| t.shard == s) {
                                    Some(p) => vec![p],
                                    None => {
                                        error =
                                            Some(SgError::raw("XX000", "a row's shard is not a target of the COPY"));
                                        break;
                                    }
                                }
                            }
                            Ok((crate::rules::KeyPlacement::Nowhere, None)) => {
                                error = Some(SgError::new(
                                    ErrorCode::NullKey,
                                    format!("COPY into {}: a row has a NULL sharding key {key}", copy.table),
                                ));
                                break;
                            }
                            Ok((crate::rules::KeyPlacement::Uncovered, v)) => {
                                error = Some(SgError::new(
                                    ErrorCode::NoShardForKey,
                                    format!(
                                        "COPY into {}: key {} is outside every time range",
                                        copy.table,
                                        v.map(|v| v.to_string()).unwrap_or_default()
                                    ),
                                ));
                                break;
                            }
                            Ok((crate::rules::KeyPlacement::Nowhere, Some(v))) => {
                                error = Some(SgError::new(
                                    ErrorCode::InvalidKeyValue,
                                    format!("COPY into {}: {v} is not a valid {key}", copy.table),
                                ));
                                break;
                            }
                            Err(e) => {
                                error = Some(SgError::new(
                                    ErrorCode::InvalidKeyValue,
                                    format!("COPY into {}: {e}", copy.table),
                                ));
                                break;
                            }
                        }
                    }
                    // Reference and pinned tables, and CSV headers: every target.
                    _ => (0..idx.len()).collect(),
                };
                for p in dest {
                    out[p].extend_from_slice(&row.bytes);
                }
            }
            if error.is_some() {
                continue;
            }
            for (p, buf) in out.iter_mut().enumerate() {
                if buf.len() >= FLUSH_AT || (client_done && !buf.is_empty()) {
                    let conn = self.attached[idx[p]].conn.conn();
                    let data = pgwire::messages::copy::CopyData::new(Bytes::from(std::mem::take(buf)));
                    let sent = conn.wire.send(&data);
                    if sent.is_err() || conn.wire.flush().await.is_err() {
                        self.attached[idx[p]].status = b'E';
                        error = Some(SgError::new(ErrorCode::ShardUnavailable, "a shard went away during COPY"));
                        break;
                    }
                }
            }
        }
        if let Some(e) = error {
            self.abort_copy(&idx, &e.message).await;
            self.send_error(&e)?;
            return Ok(Outcome::Failed);
        }
        // Finish on every shard and add up the counts.
        let mut total = 0u64;
        let mut failure = None;
        for &i in &idx {
            let conn = self.attached[i].conn.conn();
            let done = async {
                conn.wire.send(&pgwire::messages::copy::CopyDone::new())?;
                conn.wire.flush().await?;
                let (mut n, mut err) = (0u64, None);
                loop {
                    let f = conn.next().await?;
                    match f.tag {
                        b'C' => n = split_tag(&f).1,
                        b'E' => err = Some(error_fields(&f)),
                        b'Z' => return Ok::<_, io::Error>((n, err, BackendConn::status_of(&f))),
                        _ => {}
                    }
                }
            };
            match done.await {
                Ok((n, err, status)) => {
                    self.attached[i].status = status;
                    total += n;
                    if let Some(fields) = err {
                        failure.get_or_insert(backend_error(&fields, None));
                    }
                }
                Err(e) => {
                    self.attached[i].status = b'E';
                    failure.get_or_insert(SgError::new(ErrorCode::ShardUnavailable, e.to_string()));
                }
            }
        }
        if let Some(e) = failure {
            self.send_error(&e)?;
            return Ok(Outcome::Failed);
        }
        self.client.send(&CommandComplete::new(format!("COPY {total}")))?;
        Ok(Outcome::Ok)
    }

    /// Stops a COPY on every target: CopyFail, then read to ReadyForQuery.
    async fn abort_copy(&mut self, idx: &[usize], why: &str) {
        for &i in idx {
            let a = &mut self.attached[i];
            let conn = a.conn.conn();
            let failed = async {
                conn.wire.send(&pgwire::messages::copy::CopyFail::new(why.to_string()))?;
                conn.wire.flush().await?;
                loop {
                    let f = conn.next().await?;
                    if f.tag == b'Z' {
                        return Ok::<u8, io::Error>(BackendConn::status_of(&f));
                    }
                }
            };
            a.status = failed.await.unwrap_or(b'E');
        }
    }

    /// Combines rows of several shards as the plan's merge says.
    fn merge_rows(&mut self, m: &RowMerge, answers: Vec<ShardAnswer>, extended: bool) -> io::Result<Outcome> {
        // COPY … TO STDOUT over several shards: one CopyOutResponse, every
        // shard's data, one CopyDone, the rows added up.
        if answers.iter().any(|a| a.description.as_ref().is_some_and(|d| d.tag == b'H')) {
            if let Some(h) = answers.iter().find_map(|a| a.description.as_ref()) {
                self.client.send_frame(h);
            }
            for a in &answers {
                for r in &a.rows {
                    self.client.send_frame(r);
                }
            }
            self.client.send(&pgwire::messages::copy::CopyDone::new())?;
            let total: u64 = answers.iter().filter_map(|a| a.tag.as_ref()).map(|t| split_tag(t).1).sum();
            self.client.send(&CommandComplete::new(format!("COPY {total}")))?;
            return Ok(Outcome::Ok);
        }
        if m.aggregating || m.distinct || !m.order_by.is_empty() || !m.group_by.is_empty() {
            return self.merge_with_engine(m, answers, extended);
        }
        let hidden = m.hidden;
        if let Some(d) = answers.iter().find_map(|a| a.description.as_ref())
            && !extended
        {
            self.client.send_frame(&strip_description(d, hidden)?);
        }
        let mut skip = m.offset;
        let mut left = m.limit.unwrap_or(u64::MAX);
        let mut sent: u64 = 0;
        'outer: for a in &answers {
            for r in &a.rows {
                if left == 0 {
                    break 'outer;
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if hidden > 0 {
                    let cells = data_row_cells(r)?;
                    let keep = cells.len().saturating_sub(hidden);
                    let refs: Vec<Option<&[u8]>> = cells[..keep].iter().map(|c| c.as_deref()).collect();
                    self.client.send_frame(&data_row(&refs));
                } else {
                    self.client.send_frame(r);
                }
                left -= 1;
                sent += 1;
            }
        }
        self.client.send(&CommandComplete::new(format!("SELECT {sent}")))?;
        Ok(Outcome::Ok)
    }

    /// Sorted, grouped, aggregated or de-duplicated rows of several shards,
    /// through the merge engine.
    fn merge_with_engine(&mut self, m: &RowMerge, answers: Vec<ShardAnswer>, extended: bool) -> io::Result<Outcome> {
        use crate::merge::codec::postgres::{PgCodec, PgColumn, kind_of, oid_of};
        use crate::merge::{Collation, MergeConfig, Merger, Row};
        let Some(desc) = answers.iter().find_map(|a| a.description.as_ref()) else {
            // No shard described its rows: nothing was selected.
            self.client.send(&CommandComplete::new("SELECT 0".into()))?;
            return Ok(Outcome::Ok);
        };
        let mut rd: RowDescription = desc.decode()?;
        let columns: Vec<PgColumn> =
            rd.fields.iter().map(|f| PgColumn { type_oid: f.type_id, binary: f.format_code == 1 }).collect();
        // Text compares as the shards' default collation (ICU on the
        // clusters shardgate is tested with).
        let kinds: Vec<_> = columns.iter().map(|c| kind_of(c.type_oid, Collation::IcuRoot)).collect();
        let mut codec = PgCodec::new(columns.clone());
        let config = MergeConfig {
            max_buffered_rows: self.shared.config.limits.max_buffered_rows as u64,
            ..MergeConfig::default()
        };
        let merger = match Merger::new(m, kinds, std::sync::Arc::new(codec.clone()), config) {
            Ok(mg) => mg,
            Err(e) => {
                self.send_error(&SgError::of(&e))?;
                return Ok(Outcome::Failed);
            }
        };
        // AVG columns: the client gets numeric where the shards sent SUM.
        let retyped = merger.retyped_columns();
        for r in &retyped {
            if let (Some(oid), Some(col)) = (oid_of(r.kind), columns.get(r.column)) {
                codec.retype(r.column, PgColumn { type_oid: oid, binary: col.binary });
                if let Some(f) = rd.fields.get_mut(r.column) {
                    f.type_id = oid;
                    f.type_size = -1;
                    f.type_modifier = -1;
                }
            }
        }
        let merger = if retyped.is_empty() { merger } else { merger.with_codec(std::sync::Arc::new(codec)) };
        rd.fields.truncate(merger.output_width());
        if !extended {
            self.client.send(&rd)?;
        }
        let shards: Vec<_> = answers
            .iter()
            .map(|a| {
                a.rows
                    .iter()
                    .map(|f| data_row_cells(f).map(|cells| Row::from_cells(cells.iter().map(|c| c.as_deref()))))
            })
            .collect();
        let mut sent = 0u64;
        for row in merger.rows(shards) {
            match row {
                Ok(row) => {
                    let cells: Vec<Option<&[u8]>> = row.cells().collect();
                    self.client.send_frame(&data_row(&cells));
                    sent += 1;
                }
                Err(e) => {
                    self.send_error(&SgError::new(ErrorCode::Unsupported, e.to_string()))?;
                    return Ok(Outcome::Failed);
                }
            }
        }
        self.client.send(&CommandComplete::new(format!("SELECT {sent}")))?;
        Ok(Outcome::Ok)
    }

    // ---- extended query ------------------------------------------------------

    fn ext_error(&mut self, e: &SgError) -> io::Result<()> {
        self.skip_to_sync = true;
        self.send_error(e)
    }

    async fn on_parse(&mut self, p: Parse) -> io::Result<()> {
        let name = p.name.unwrap_or_default();
        if !name.is_empty() && self.statements.contains_key(&name) {
            return self.ext_error(&SgError::raw("42P05", format!("prepared statement \"{name}\" already exists")));
        }
        let router = self.backends.router.clone();
        match router.prepare(&p.query) {
            Ok(prepared) => {
                self.statements.insert(name, Stmt { sql: p.query, types: p.type_oids, prepared, desc: None });
                self.client.send(&pgwire::messages::extendedquery::ParseComplete::new())
            }
            Err(e) => self.ext_error(&SgError::of(&e)),
        }
    }

    fn on_bind(&mut self, b: Bind) -> io::Result<()> {
        let stmt_name = b.statement_name.unwrap_or_default();
        let portal_name = b.portal_name.unwrap_or_default();
        let Some(stmt) = self.statements.get(&stmt_name) else {
            return self
                .ext_error(&SgError::raw("26000", format!("prepared statement \"{stmt_name}\" does not exist")));
        };
        let types = match &stmt.desc {
            Some((pd, _)) => {
                pd.decode::<pgwire::messages::data::ParameterDescription>().map(|d| d.types).unwrap_or_default()
            }
            None => stmt.types.clone(),
        };
        let params: Vec<Param> = b
            .parameters
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let format = match b.parameter_format_codes.as_slice() {
                    [] => 0,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(0),
                };
                decode_param(v.as_deref(), format, types.get(i).copied().unwrap_or(0))
            })
            .collect();
        let cx = RouteContext { params: &params, pinned: self.pinned(), utc_offset: Some(0) };
        let router = self.backends.router.clone();
        match router.bind(&stmt.prepared, &cx) {
            Ok(plan) => {
                self.portals.insert(
                    portal_name,
                    Portal {
                        stmt: stmt_name,
                        plan,
                        formats: b.parameter_format_codes,
                        values: b.parameters,
                        result_formats: b.result_column_format_codes,
                        open_on: None,
                    },
                );
                self.client.send(&pgwire::messages::extendedquery::BindComplete::new())
            }
            Err(e) => self.ext_error(&SgError::of(&e)),
        }
    }

    /// Fetches (once) a statement's descriptions from a shard.
    async fn describe_statement(&mut self, name: &str) -> Result<(Frame, Frame), SgError> {
        let (sql, types, shard) = match self.statements.get(name) {
            Some(s) => {
                if let Some(d) = &s.desc {
                    return Ok(d.clone());
                }
                (s.sql.clone(), s.types.clone(), self.backends.router.describe_shard(&s.prepared))
            }
            None => return Err(SgError::raw("26000", format!("prepared statement \"{name}\" does not exist"))),
        };
        if let Some(d) = self.described.get(&(sql.clone(), types.clone())).cloned() {
            if let Some(st) = self.statements.get_mut(name) {
                st.desc = Some(d.clone());
            }
            return Ok(d);
        }
        let shard = self.pinned().unwrap_or(shard);
        let i = self.attach(shard).await?;
        // Inside an open batch, Sync would end the batch's transaction: flush instead.
        let in_batch = self.attached[i].in_batch;
        let conn = self.attached[i].conn.conn();
        let io_err = |e: io::Error| SgError::new(ErrorCode::ShardUnavailable, e.to_string());
        conn.wire.send(&Parse::new(None, sql, types)).map_err(io_err)?;
        conn.wire.send(&Describe::new(b'S', None)).map_err(io_err)?;
        if in_batch {
            conn.wire.send(&pgwire::messages::extendedquery::Flush::new()).map_err(io_err)?;
        } else {
            conn.wire.send(&SyncMsg::new()).map_err(io_err)?;
        }
        conn.wire.flush().await.map_err(io_err)?;
        let (mut pd, mut rd, mut err) = (None, None, None);
        loop {
            let f = conn.next().await.map_err(io_err)?;
            match f.tag {
                b't' => pd = Some(f),
                b'T' | b'n' => {
                    rd = Some(f);
                    if in_batch {
                        break;
                    }
                }
                b'E' => {
                    err = Some(error_fields(&f));
                    if in_batch {
                        break;
                    }
                }
                b'Z' => {
                    self.attached[i].status = BackendConn::status_of(&f);
                    break;
                }
                _ => {}
            }
        }
        if self.txn.is_none() && !self.attached.iter().any(|a| a.in_batch) {
            self.release_attached();
        }
        if let Some(fields) = err {
            return Err(backend_error(&fields, None));
        }
        let (Some(pd), Some(rd)) = (pd, rd) else {
            return Err(SgError::raw("XX000", "the shard did not describe the statement"));
        };
        if let Some(s) = self.statements.get_mut(name) {
            s.desc = Some((pd.clone(), rd.clone()));
            if self.described.len() >= 256 {
                self.described.clear();
            }
            self.described.insert((s.sql.clone(), s.types.clone()), (pd.clone(), rd.clone()));
        }
        Ok((pd, rd))
    }

    async fn on_describe(&mut self, d: Describe) -> io::Result<()> {
        let name = d.name.unwrap_or_default();
        if d.target_type == b'S' {
            match self.describe_statement(&name).await {
                Ok((pd, rd)) => {
                    self.client.send_frame(&pd);
                    self.client.send_frame(&rd);
                    Ok(())
                }
                Err(e) => self.ext_error(&e),
            }
        } else {
            let Some(portal) = self.portals.get(&name) else {
                return self.ext_error(&SgError::raw("34000", format!("portal \"{name}\" does not exist")));
            };
            let (stmt, formats) = (portal.stmt.clone(), portal.result_formats.clone());
            if portal.plan.control.is_some() {
                return self.client.send(&pgwire::messages::data::NoData::new());
            }
            match self.describe_statement(&stmt).await {
                Ok((_, rd)) => {
                    if rd.tag == b'n' {
                        self.client.send_frame(&rd);
                        return Ok(());
                    }
                    match with_formats(&rd, &formats) {
                        Ok(f) => {
                            self.client.send_frame(&f);
                            Ok(())
                        }
                        Err(e) => self.ext_error(&SgError::raw("08P01", e.to_string())),
                    }
                }
                Err(e) => self.ext_error(&e),
            }
        }
    }

    async fn on_execute(&mut self, e: Execute) -> io::Result<()> {
        let name = e.name.unwrap_or_default();
        let Some(portal) = self.portals.get(&name) else {
            return self.ext_error(&SgError::raw("34000", format!("portal \"{name}\" does not exist")));
        };
        let plan = portal.plan.clone();
        let Some(stmt) = self.statements.get(&portal.stmt) else {
            return self.ext_error(&SgError::raw("26000", "prepared statement does not exist"));
        };
        let bind = ExtBind {
            types: stmt.types.clone(),
            formats: portal.formats.clone(),
            values: portal.values.clone(),
            result_formats: portal.result_formats.clone(),
            max_rows: e.max_rows,
            continue_portal: portal.open_on.is_some(),
            // The client's Sync already waits behind this Execute (pgbench,
            // most drivers): end the shard's batch now, one round trip.
            sync: self.client.next_tag() == Some(b'S') && plan.targets.len() == 1 && e.max_rows == 0,
        };
        if self.txn.is_none() && plan.control.is_none() {
            // An extended batch up to Sync is one implicit transaction.
            // The shards' own implicit transactions do the work: nothing is replayed.
            self.txn = Some(Txn::new("", true, None));
        }
        let outcome = self.execute_plan(&plan, Some(&bind)).await?;
        if let Outcome::Failed = outcome {
            self.skip_to_sync = true;
        } else if plan.targets.len() == 1
            && let Some(p) = self.portals.get_mut(&name)
        {
            p.open_on = Some(plan.targets[0].shard);
        }
        Ok(())
    }

    async fn on_sync(&mut self) -> io::Result<()> {
        self.skip_to_sync = false;
        if self.txn.as_ref().is_some_and(|t| t.implicit && t.failed) {
            // A failed batch is rolled back as a whole, but a shard that did
            // not see the error would commit its part at Sync: its
            // connection is closed instead, which rolls the part back.
            for a in self.attached.iter_mut().filter(|a| a.in_batch) {
                a.status = b'E';
            }
        } else {
            self.sync_batches().await;
        }
        for p in self.portals.values_mut() {
            p.open_on = None;
        }
        self.portals.retain(|n, _| !n.is_empty());
        if self.txn.as_ref().is_some_and(|t| t.implicit) {
            self.txn = None;
        }
        if self.txn.is_none() {
            self.release_attached();
        }
        if let Ok(mut r) = self.running.lock() {
            r.backends.clear();
        }
        Ok(())
    }

    /// Ends the extended-protocol batches open on attached connections.
    async fn sync_batches(&mut self) {
        for a in self.attached.iter_mut() {
            if !a.in_batch {
                continue;
            }
            let conn = a.conn.conn();
            if conn.wire.send(&SyncMsg::new()).is_err() || conn.wire.flush().await.is_err() {
                a.status = b'E';
                continue;
            }
            loop {
                match conn.next().await {
                    Ok(f) if f.tag == b'Z' => {
                        a.status = BackendConn::status_of(&f);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        a.status = b'E';
                        break;
                    }
                }
            }
            a.in_batch = false;
        }
    }
}

/// What an extended-protocol Execute sends to each shard.
struct ExtBind {
    types: Vec<u32>,
    formats: Vec<i16>,
    values: Vec<Option<Bytes>>,
    result_formats: Vec<i16>,
    max_rows: i32,
    continue_portal: bool,
    /// Send Sync after Execute (instead of Flush): the batch ends here.
    sync: bool,
}

/// One shard's buffered answer.
#[derive(Default)]
struct ShardAnswer {
    description: Option<Frame>,
    rows: Vec<Frame>,
    tag: Option<Frame>,
}

/// Queues Parse (when the connection lacks the statement), Bind, Describe
/// and Execute for one target, prepared on demand under a name derived from
/// its text so that it survives transaction pooling.
fn send_extended(conn: &mut BackendConn, t: &crate::route::Target, b: &ExtBind, describe: bool) -> io::Result<()> {
    if b.continue_portal && !describe {
        return conn
            .wire
            .send(&Execute::new(None, b.max_rows))
            .and_then(|_| conn.wire.send(&pgwire::messages::extendedquery::Flush::new()));
    }
    let (types, formats, values) = match &t.params {
        None => (b.types.clone(), b.formats.clone(), b.values.clone()),
        Some(map) => {
            let types = map.iter().map(|&i| b.types.get(i).copied().unwrap_or(0)).collect();
            let formats = match b.formats.as_slice() {
                [] | [_] => b.formats.clone(),
                many => map.iter().map(|&i| many.get(i).copied().unwrap_or(0)).collect(),
            };
            let values = map.iter().map(|&i| b.values.get(i).cloned().flatten()).collect();
            (types, formats, values)
        }
    };
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(t.sql.as_bytes());
    for ty in &types {
        h.update(&ty.to_be_bytes());
    }
    let name = format!("sg_{:016x}", h.digest());
    if !conn.prepared.contains(&name) {
        conn.wire.send(&Parse::new(Some(name.clone()), t.sql.to_string(), types))?;
        conn.prepared.insert(name.clone());
    }
    conn.wire.send(&Bind::new(None, Some(name), formats, values, b.result_formats.clone()))?;
    if describe {
        conn.wire.send(&Describe::new(b'P', None))?;
    }
    let max_rows = if describe { 0 } else { b.max_rows };
    conn.wire.send(&Execute::new(None, max_rows))?;
    if b.sync && !describe {
        conn.wire.send(&SyncMsg::new())
    } else {
        conn.wire.send(&pgwire::messages::extendedquery::Flush::new())
    }
}

/// A parameter as the router reads it.
fn decode_param(v: Option<&[u8]>, format: i16, type_oid: u32) -> Param {
    let Some(v) = v else { return Param::Null };
    if format == 0 {
        return match std::str::from_utf8(v) {
            Ok(s) => Param::Text(s.to_string()),
            Err(_) => Param::Binary(v.to_vec()),
        };
    }
    match (type_oid, v.len()) {
        (20, 8) => Param::Int(i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])),
        (23, 4) => Param::Int(i64::from(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
        (21, 2) => Param::Int(i64::from(i16::from_be_bytes([v[0], v[1]]))),
        (25 | 1043 | 1042 | 19, _) => match std::str::from_utf8(v) {
            Ok(s) => Param::Text(s.to_string()),
            Err(_) => Param::Binary(v.to_vec()),
        },
        (2950, 16) => {
            let mut b = [0u8; 16];
            b.copy_from_slice(v);
            Param::Text(uuid::Uuid::from_bytes(b).to_string())
        }
        (1114 | 1184, 8) => {
            // Microseconds since 2000-01-01.
            let us = i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
            let base = 946_684_800_000_000i64;
            match crate::sharding::key::micros_to_datetime(us.saturating_add(base)) {
                Some(dt) => Param::Text(format!(
                    "{}{}",
                    dt.format("%Y-%m-%d %H:%M:%S%.6f"),
                    if type_oid == 1184 { "+00" } else { "" }
                )),
                None => Param::Binary(v.to_vec()),
            }
        }
        (1082, 4) => {
            let days = i32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            match crate::sharding::key::days_to_date(days.saturating_add(10_957)) {
                Some(d) => Param::Text(d.to_string()),
                None => Param::Binary(v.to_vec()),
            }
        }
        _ => Param::Binary(v.to_vec()),
    }
}

/// `EXPLAIN ROUTE <statement>`: the statement.
fn explain_route(sql: &str) -> Option<&str> {
    let t = sql.trim_start();
    let (w1, rest) = t.split_once(char::is_whitespace)?;
    if !w1.eq_ignore_ascii_case("explain") {
        return None;
    }
    let rest = rest.trim_start();
    let (w2, stmt) = rest.split_once(char::is_whitespace)?;
    w2.eq_ignore_ascii_case("route").then_some(stmt)
}

/// A shard's error as the client sees it.
fn backend_error(fields: &[(u8, String)], shard: Option<&str>) -> SgError {
    let code = fields.iter().find(|(c, _)| *c == b'C').map_or("XX000", |(_, v)| v.as_str());
    let msg = fields.iter().find(|(c, _)| *c == b'M').map_or("error", |(_, v)| v.as_str());
    let mut e = match shard {
        Some(s) => SgError::raw(code, format!("{msg} (on shard {s})")),
        None => SgError::raw(code, msg),
    };
    e.extra = fields.iter().filter(|(c, _)| !matches!(c, b'S' | b'V' | b'C' | b'M')).cloned().collect();
    e
}

/// The first column of a catalog query's rows.
async fn query_column(conn: &mut BackendConn, sql: &str) -> io::Result<Result<Vec<String>, Vec<(u8, String)>>> {
    conn.wire.send(&Query::new(sql.to_string()))?;
    conn.wire.flush().await?;
    let (mut out, mut err) = (Vec::new(), None);
    loop {
        let f = conn.next().await?;
        match f.tag {
            b'D' => {
                if let Some(Some(v)) = data_row_cells(&f)?.into_iter().next() {
                    out.push(String::from_utf8_lossy(&v).into_owned());
                }
            }
            b'E' => err = Some(error_fields(&f)),
            b'Z' => return Ok(err.map_or(Ok(out), Err)),
            _ => {}
        }
    }
}

/// A FATAL (or PANIC) error of a shard as the client sees it: the shard
/// closes that backend connection, so it is "shard unavailable" for the
/// client, whose own session goes on.
fn shard_fatal(f: &Frame, shard: &str) -> Option<SgError> {
    let fields = error_fields(f);
    let severity = fields.iter().find(|(c, _)| *c == b'V').or_else(|| fields.iter().find(|(c, _)| *c == b'S'));
    if !severity.is_some_and(|(_, s)| s == "FATAL" || s == "PANIC") {
        return None;
    }
    let e = backend_error(&fields, None);
    Some(SgError::new(ErrorCode::ShardUnavailable, format!("shard {shard}: {} (SQLSTATE {})", e.message, e.code)))
}

/// A command tag's verb prefix and its row count: `UPDATE 3` → ("UPDATE ", 3);
/// `INSERT 0 2` → ("INSERT 0 ", 2).
fn split_tag(f: &Frame) -> (String, u64) {
    let body = f.body();
    let text = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body)).into_owned();
    match text.rsplit_once(' ') {
        Some((verb, n)) => match n.parse::<u64>() {
            Ok(n) => (format!("{verb} "), n),
            Err(_) => (text, 0),
        },
        None => (text, 0),
    }
}

fn tag_of(c: Control) -> &'static str {
    match c {
        Control::Savepoint => "SAVEPOINT",
        Control::ReleaseSavepoint => "RELEASE",
        Control::RollbackToSavepoint => "ROLLBACK",
        _ => "",
    }
}

/// A RowDescription without its last `hidden` fields.
fn strip_description(d: &Frame, hidden: usize) -> io::Result<Frame> {
    if hidden == 0 {
        return Ok(d.clone());
    }
    let mut rd: RowDescription = d.decode()?;
    let keep = rd.fields.len().saturating_sub(hidden);
    rd.fields.truncate(keep);
    encode_frame(&rd)
}

/// A RowDescription with the client's result formats.
fn with_formats(d: &Frame, formats: &[i16]) -> io::Result<Frame> {
    let mut rd: RowDescription = d.decode()?;
    for (i, f) in rd.fields.iter_mut().enumerate() {
        f.format_code = match formats {
            [] => 0,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(0),
        };
    }
    encode_frame(&rd)
}

fn encode_frame<M: pgwire::messages::Message>(m: &M) -> io::Result<Frame> {
    let mut b = bytes::BytesMut::new();
    m.encode(&mut b).map_err(|e| super::wire::invalid(&e.to_string()))?;
    let tag = b.first().copied().unwrap_or(0);
    Ok(Frame { tag, bytes: b.freeze() })
}
