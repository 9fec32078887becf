//! Connection pools, one per shard.
//!
//! A pool hands out backend connections for as long as a caller needs them
//! (one transaction, one statement, or a whole session) and takes them back
//! only when the caller says they are clean: a connection dropped without
//! [`Pooled::release`] is closed, so a connection with an open transaction
//! or leftover session state never reaches the next client.
//!
//! The pool is generic over how connections are made ([`Connect`]), so the
//! PostgreSQL and MySQL front ends share it, and it reports its health
//! (connect failures in a row, connections open and idle) for health checks
//! and circuit breakers.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Coded, ErrorCode};

/// How a pool makes a connection.
pub trait Connect: Send + Sync + 'static {
    type Conn: Send + 'static;
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, PoolError>> + Send;
    /// A name for messages (the shard's).
    fn name(&self) -> &str;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("shard {shard} is unavailable: {detail}")]
    Unavailable { shard: String, detail: String },
    #[error("shard {shard}: no connection free within {waited_ms} ms (pool.size {size})")]
    CheckoutTimeout { shard: String, waited_ms: u64, size: usize },
    #[error("shard {shard}: connecting timed out after {ms} ms")]
    ConnectTimeout { shard: String, ms: u64 },
}

impl Coded for PoolError {
    fn code(&self) -> ErrorCode {
        match self {
            PoolError::Unavailable { .. } | PoolError::ConnectTimeout { .. } => ErrorCode::ShardUnavailable,
            PoolError::CheckoutTimeout { .. } => ErrorCode::Timeout,
        }
    }
}

/// A snapshot of a pool's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub size: usize,
    pub idle: usize,
    pub in_use: usize,
    pub consecutive_failures: u64,
    pub connects: u64,
}

struct Inner<C: Connect> {
    connector: C,
    size: usize,
    checkout_timeout: Duration,
    idle: Mutex<Vec<C::Conn>>,
    permits: Arc<Semaphore>,
    failures: AtomicU64,
    connects: AtomicU64,
    in_use: AtomicUsize,
}

/// A pool of connections to one shard.
pub struct Pool<C: Connect> {
    inner: Arc<Inner<C>>,
}

impl<C: Connect> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool { inner: self.inner.clone() }
    }
}

impl<C: Connect> Pool<C> {
    pub fn new(connector: C, size: usize, checkout_timeout: Duration) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector,
                size,
                checkout_timeout,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size)),
                failures: AtomicU64::new(0),
                connects: AtomicU64::new(0),
                in_use: AtomicUsize::new(0),
            }),
        }
    }

    pub fn name(&self) -> &str {
        self.inner.connector.name()
    }

    /// A connection, idle or new, waiting at most the checkout timeout for
    /// a free slot.
    pub async fn get(&self) -> Result<Pooled<C>, PoolError> {
        let start = Instant::now();
        let permit =
            match tokio::time::timeout(self.inner.checkout_timeout, self.inner.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    return Err(PoolError::CheckoutTimeout {
                        shard: self.name().to_string(),
                        waited_ms: start.elapsed().as_millis() as u64,
                        size: self.inner.size,
                    });
                }
            };
        let idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => match self.inner.connector.connect().await {
                Ok(c) => {
                    self.inner.failures.store(0, Ordering::Relaxed);
                    self.inner.connects.fetch_add(1, Ordering::Relaxed);
                    c
                }
                Err(e) => {
                    self.inner.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            },
        };
        self.inner.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(Pooled { conn: Some(conn), _permit: permit, pool: self.inner.clone() })
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            size: self.inner.size,
            idle: self.inner.idle.lock().map(|v| v.len()).unwrap_or(0),
            in_use: self.inner.in_use.load(Ordering::Relaxed),
            consecutive_failures: self.inner.failures.load(Ordering::Relaxed),
            connects: self.inner.connects.load(Ordering::Relaxed),
        }
    }

    /// Records that a connection of this pool broke in use (the server went
    /// away): idle connections are likely broken too, so they are closed,
    /// and the failure counts toward the pool's health.
    pub fn note_broken(&self) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        self.clear_idle();
    }

    /// Whether the last attempts to reach the shard failed.
    pub fn is_failing(&self) -> bool {
        self.inner.failures.load(Ordering::Relaxed) > 0
    }

    /// Closes every idle connection (for reloads and drains).
    pub fn clear_idle(&self) {
        self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A checked-out connection.
pub struct Pooled<C: Connect> {
    conn: Option<C::Conn>,
    _permit: OwnedSemaphorePermit,
    pool: Arc<Inner<C>>,
}

impl<C: Connect> Pooled<C> {
    pub fn conn(&mut self) -> &mut C::Conn {
        // Present until release/discard consume self.
        self.conn.as_mut().unwrap_or_else(|| unreachable!("pooled connection used after release"))
    }

    /// Gives a clean connection back to the pool.
    pub fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
    }

    /// Closes the connection instead of returning it.
    pub fn discard(mut self) {
        self.conn.take();
    }
}

impl<C: Connect> Drop for Pooled<C> {
    fn drop(&mut self) {
        // Not released: possibly dirty, so it is closed (dropped here).
        self.conn.take();
        self.pool.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Counter {
        made: AtomicU64,
        fail: AtomicBool,
    }

    impl Connect for Arc<Counter> {
        type Conn = u64;
        async fn connect(&self) -> Result<u64, PoolError> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(PoolError::Unavailable { shard: "t".into(), detail: "down".into() });
            }
            Ok(self.made.fetch_add(1, Ordering::Relaxed))
        }
        fn name(&self) -> &str {
            "t"
        }
    }

    #[tokio::test]
    async fn released_connections_are_reused_discarded_ones_are_not() {
        let c = Arc::new(Counter { made: AtomicU64::new(0), fail: AtomicBool::new(false) });
        let pool = Pool::new(c.clone(), 2, Duration::from_millis(50));
        let mut a = pool.get().await.unwrap();
        assert_eq!(*a.conn(), 0);
        a.release();
        let mut b = pool.get().await.unwrap();
        assert_eq!(*b.conn(), 0, "reused");
        drop(b); // not released: closed
        let mut d = pool.get().await.unwrap();
        assert_eq!(*d.conn(), 1, "a new one");
        let _e = pool.get().await.unwrap();
        // Both slots taken: the third waits and times out.
        let err = pool.get().await.err().unwrap();
        assert_eq!(err.code(), ErrorCode::Timeout);
        assert_eq!(pool.stats().in_use, 2);
        d.discard();
        assert_eq!(pool.stats().in_use, 1);
    }

    #[tokio::test]
    async fn connect_failures_are_counted() {
        let c = Arc::new(Counter { made: AtomicU64::new(0), fail: AtomicBool::new(true) });
        let pool = Pool::new(c.clone(), 1, Duration::from_millis(50));
        assert_eq!(pool.get().await.err().unwrap().code(), ErrorCode::ShardUnavailable);
        assert!(pool.get().await.is_err());
        assert_eq!(pool.stats().consecutive_failures, 2);
        c.fail.store(false, Ordering::Relaxed);
        assert!(pool.get().await.is_ok());
        assert_eq!(pool.stats().consecutive_failures, 0);
    }
}
