//! PostgreSQL message framing over a byte stream.
//!
//! Frames are read whole (type byte, length, body) and kept as bytes: a
//! frame that passes through shardgate unchanged — a DataRow of a
//! single-shard result, say — is copied, never decoded. Frames that must be
//! understood are decoded with pgwire's message types.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pgwire::messages::{DecodeContext, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted from a client (PostgreSQL's own limit for
/// most messages is 1 GiB; queries beyond this are refused).
pub const MAX_CLIENT_FRAME: usize = 64 * 1024 * 1024;
/// The largest frame accepted from a backend.
pub const MAX_BACKEND_FRAME: usize = 1024 * 1024 * 1024;

/// One whole frame: its type byte and its bytes (type, length and body).
#[derive(Debug, Clone)]
pub struct Frame {
    pub tag: u8,
    pub bytes: Bytes,
}

impl Frame {
    /// The body, after the type byte and length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }

    /// Decodes the frame as a pgwire message.
    pub fn decode<M: Message>(&self) -> io::Result<M> {
        let mut buf = BytesMut::from(&self.bytes[..]);
        match M::decode(&mut buf, &DecodeContext::default()) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(invalid("truncated message")),
            Err(e) => Err(invalid(&e.to_string())),
        }
    }
}

pub fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A buffered, framed connection.
pub struct Wire<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    max_frame: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(stream: S, max_frame: usize) -> Self {
        Wire { stream, rbuf: BytesMut::with_capacity(16 * 1024), wbuf: BytesMut::with_capacity(16 * 1024), max_frame }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    async fn fill(&mut self, need: usize) -> io::Result<bool> {
        while self.rbuf.len() < need {
            if self.rbuf.capacity() - self.rbuf.len() < 8192 {
                self.rbuf.reserve((need - self.rbuf.len()).max(16 * 1024));
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next typed frame; `None` at a clean end of stream.
    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        if !self.fill(5).await? {
            return if self.rbuf.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        let len = i32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]]);
        if len < 4 || len as usize > self.max_frame {
            return Err(invalid(&format!("invalid message length {len}")));
        }
        let total = 1 + len as usize;
        if !self.fill(total).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let tag = self.rbuf[0];
        Ok(Some(Frame { tag, bytes: self.rbuf.split_to(total).freeze() }))
    }

    /// The first frame of a connection, which has no type byte (startup,
    /// SSLRequest, GSSENCRequest, CancelRequest): returns its body.
    pub async fn read_startup(&mut self) -> io::Result<Option<Bytes>> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let len = i32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]);
        if !(8..=10_000).contains(&len) {
            return Err(invalid(&format!("invalid startup packet length {len}")));
        }
        if !self.fill(len as usize).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut packet = self.rbuf.split_to(len as usize);
        packet.advance(4);
        Ok(Some(packet.freeze()))
    }

    /// The type byte of the next frame, when it is already buffered.
    pub fn next_tag(&self) -> Option<u8> {
        self.rbuf.first().copied()
    }

    /// Whether unread bytes are buffered (pipelined messages).
    pub fn has_buffered(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// Queues a pgwire message.
    pub fn send<M: Message>(&mut self, m: &M) -> io::Result<()> {
        m.encode(&mut self.wbuf).map_err(|e| invalid(&e.to_string()))
    }

    /// Queues a frame as it is.
    pub fn send_frame(&mut self, f: &Frame) {
        self.wbuf.extend_from_slice(&f.bytes);
    }

    /// Queues raw bytes (a single-byte answer such as SSLRequest's `N`).
    pub fn send_raw(&mut self, b: &[u8]) {
        self.wbuf.put_slice(b);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.wbuf.len()
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.stream.flush().await
    }
}

/// A DataRow frame built from cells (for merged results).
pub fn data_row(cells: &[Option<&[u8]>]) -> Frame {
    let len: usize = 4 + 2 + cells.iter().map(|c| 4 + c.map_or(0, <[u8]>::len)).sum::<usize>();
    let mut b = BytesMut::with_capacity(1 + len);
    b.put_u8(b'D');
    b.put_i32(len as i32);
    b.put_i16(cells.len() as i16);
    for c in cells {
        match c {
            Some(v) => {
                b.put_i32(v.len() as i32);
                b.put_slice(v);
            }
            None => b.put_i32(-1),
        }
    }
    Frame { tag: b'D', bytes: b.freeze() }
}

/// The cells of a DataRow frame, without copying.
pub fn data_row_cells(f: &Frame) -> io::Result<Vec<Option<Bytes>>> {
    let mut body = f.bytes.slice(5..);
    if body.len() < 2 {
        return Err(invalid("short DataRow"));
    }
    let n = body.get_i16();
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        if body.len() < 4 {
            return Err(invalid("short DataRow"));
        }
        let len = body.get_i32();
        if len < 0 {
            out.push(None);
        } else {
            let len = len as usize;
            if body.len() < len {
                return Err(invalid("short DataRow"));
            }
            out.push(Some(body.split_to(len)));
        }
    }
    Ok(out)
}

/// The fields of an ErrorResponse or NoticeResponse body.
pub fn error_fields(f: &Frame) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut b = f.body();
    while let Some((&code, rest)) = b.split_first() {
        if code == 0 {
            break;
        }
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        out.push((code, String::from_utf8_lossy(&rest[..end]).into_owned()));
        b = rest.get(end + 1..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = Wire::new(a, MAX_CLIENT_FRAME);
        let mut r = Wire::new(b, MAX_CLIENT_FRAME);
        w.send(&pgwire::messages::simplequery::Query::new("SELECT 1".into())).unwrap();
        w.send_frame(&data_row(&[Some(b"42"), None]));
        w.flush().await.unwrap();
        let q = r.read_frame().await.unwrap().unwrap();
        assert_eq!(q.tag, b'Q');
        let q: pgwire::messages::simplequery::Query = q.decode().unwrap();
        assert_eq!(q.query, "SELECT 1");
        let d = r.read_frame().await.unwrap().unwrap();
        let cells = data_row_cells(&d).unwrap();
        assert_eq!(cells, vec![Some(Bytes::from_static(b"42")), None]);
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = Wire::new(a, MAX_CLIENT_FRAME);
        let mut r = Wire::new(b, 100);
        w.send(&pgwire::messages::simplequery::Query::new("x".repeat(200))).unwrap();
        w.flush().await.unwrap();
        assert!(r.read_frame().await.is_err());
    }
}
