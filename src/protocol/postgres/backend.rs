//! A connection from shardgate to one PostgreSQL shard.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pgwire::messages::startup::{Authentication, Password, SASLInitialResponse, SASLResponse, Startup};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::net::TcpStream;

use super::wire::{Frame, MAX_BACKEND_FRAME, Wire, error_fields, invalid};
use crate::pool::{Connect, PoolError};
use crate::rules::Shard;

/// An authenticated connection to a shard, ready for queries.
pub struct BackendConn {
    pub wire: Wire<TcpStream>,
    /// ParameterStatus values the server reported.
    pub params: HashMap<String, String>,
    pub pid: i32,
    pub secret: i32,
    /// Names of statements prepared on this connection by shardgate.
    pub prepared: HashSet<String>,
    /// The session settings applied on this connection (a signature of
    /// the client's SETs), so that they are re-applied only when they differ.
    pub settings: u64,
}

/// How a pool connects to one shard.
pub struct PgConnector {
    pub shard: Shard,
    pub connect_timeout: Duration,
}

impl Connect for PgConnector {
    type Conn = BackendConn;

    async fn connect(&self) -> Result<BackendConn, PoolError> {
        let shard = &self.shard;
        let unavailable = |detail: String| PoolError::Unavailable { shard: shard.name.clone(), detail };
        match tokio::time::timeout(self.connect_timeout, connect(shard)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(unavailable(e.to_string())),
            Err(_) => Err(PoolError::ConnectTimeout {
                shard: shard.name.clone(),
                ms: self.connect_timeout.as_millis() as u64,
            }),
        }
    }

    fn name(&self) -> &str {
        &self.shard.name
    }
}

fn auth_err(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, msg)
}

/// Opens and authenticates a connection.
pub async fn connect(shard: &Shard) -> io::Result<BackendConn> {
    let stream = TcpStream::connect((shard.endpoint.host.as_str(), shard.endpoint.port)).await?;
    stream.set_nodelay(true)?;
    let mut wire = Wire::new(stream, MAX_BACKEND_FRAME);
    let mut startup = Startup::new();
    startup.protocol_number_major = 3;
    startup.protocol_number_minor = 0;
    startup.parameters.insert("user".into(), shard.user.clone());
    startup.parameters.insert("database".into(), shard.database.clone());
    startup.parameters.insert("client_encoding".into(), "UTF8".into());
    startup.parameters.insert("application_name".into(), "shardgate".into());
    wire.send(&startup)?;
    wire.flush().await?;
    let password = shard.password.clone().unwrap_or_default();
    let mut scram: Option<ScramSha256> = None;
    let mut params = HashMap::new();
    let (mut pid, mut secret) = (0, 0);
    loop {
        let f = wire.read_frame().await?.ok_or_else(|| auth_err("connection closed during startup".into()))?;
        match f.tag {
            b'R' => match f.decode::<Authentication>()? {
                Authentication::Ok => {}
                Authentication::CleartextPassword => {
                    wire.send(&Password::new(password.clone()))?;
                    wire.flush().await?;
                }
                Authentication::MD5Password(salt) => {
                    let salt: [u8; 4] = salt.as_slice().try_into().map_err(|_| invalid("bad md5 salt"))?;
                    let hash =
                        postgres_protocol::authentication::md5_hash(shard.user.as_bytes(), password.as_bytes(), salt);
                    wire.send(&Password::new(hash))?;
                    wire.flush().await?;
                }
                Authentication::SASL(mechanisms) => {
                    if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                        return Err(auth_err(format!("no supported SASL mechanism among {mechanisms:?}")));
                    }
                    let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    wire.send(&SASLInitialResponse::new("SCRAM-SHA-256".into(), Some(s.message().to_vec().into())))?;
                    wire.flush().await?;
                    scram = Some(s);
                }
                Authentication::SASLContinue(data) => {
                    let s = scram.as_mut().ok_or_else(|| invalid("SASLContinue without SASL"))?;
                    s.update(&data)?;
                    wire.send(&SASLResponse::new(s.message().to_vec().into()))?;
                    wire.flush().await?;
                }
                Authentication::SASLFinal(data) => {
                    let s = scram.as_mut().ok_or_else(|| invalid("SASLFinal without SASL"))?;
                    s.finish(&data)?;
                }
                other => return Err(auth_err(format!("unsupported authentication request {other:?}"))),
            },
            b'S' => {
                let p: pgwire::messages::startup::ParameterStatus = f.decode()?;
                params.insert(p.name, p.value);
            }
            b'K' => {
                let body = f.body();
                if body.len() >= 8 {
                    pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                }
            }
            b'E' => {
                let fields = error_fields(&f);
                let msg = fields.iter().find(|(c, _)| *c == b'M').map_or("error", |(_, m)| m.as_str());
                return Err(auth_err(msg.to_string()));
            }
            b'N' => {}
            b'Z' => break,
            other => return Err(invalid(&format!("unexpected message {:?} during startup", other as char))),
        }
    }
    Ok(BackendConn { wire, params, pid, secret, prepared: HashSet::new(), settings: 0 })
}

impl BackendConn {
    /// Runs a simple query whose result is not needed (BEGIN, COMMIT, SET…),
    /// returning the backend's error fields if it failed.
    pub async fn simple(&mut self, sql: &str) -> io::Result<Result<(), Vec<(u8, String)>>> {
        self.wire.send(&pgwire::messages::simplequery::Query::new(sql.to_string()))?;
        self.wire.flush().await?;
        let mut error = None;
        loop {
            let f = self.next().await?;
            match f.tag {
                b'E' => error = Some(error_fields(&f)),
                b'Z' => return Ok(error.map_or(Ok(()), Err)),
                _ => {}
            }
        }
    }

    /// The next frame; end of stream is an error here.
    pub async fn next(&mut self) -> io::Result<Frame> {
        self.wire
            .read_frame()
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "shard closed the connection"))
    }

    /// The transaction status of the last ReadyForQuery.
    pub fn status_of(f: &Frame) -> u8 {
        f.body().first().copied().unwrap_or(b'I')
    }
}

/// Sends a CancelRequest for a backend's running query.
pub async fn cancel(shard: &Shard, pid: i32, secret: i32) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut s = TcpStream::connect((shard.endpoint.host.as_str(), shard.endpoint.port)).await?;
    let mut b = BytesMut::with_capacity(16);
    b.put_i32(16);
    b.put_i32(80877102);
    b.put_i32(pid);
    b.put_i32(secret);
    s.write_all(&b).await?;
    s.shutdown().await
}
