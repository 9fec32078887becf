//! Globally unique ids for INSERTs that leave an id column out.
//!
//! Per-shard sequences (SERIAL, IDENTITY, AUTO_INCREMENT) would count on
//! their own and hand out the same id on every shard, so shardgate fills such
//! columns itself with 63-bit snowflake ids:
//!
//! ```text
//!  0 | 41 bits: milliseconds since 2024-01-01 UTC | 10 bits: worker | 12 bits: sequence
//! ```
//!
//! Ids from one generator strictly increase. Two proxies with distinct worker
//! ids never hand out the same id. 4096 ids per millisecond per worker; past
//! that the generator borrows from the next millisecond, and if the clock goes
//! backwards it keeps counting from the last time it used, so ids never
//! repeat. 41 bits of milliseconds last until 2093.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 2024-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
pub const WORKER_BITS: u32 = 10;
pub const SEQUENCE_BITS: u32 = 12;
pub const MAX_WORKER: u16 = (1 << WORKER_BITS) - 1;

/// A lock-free snowflake id generator.
#[derive(Debug)]
pub struct IdGenerator {
    worker: u64,
    /// The last id handed out, without its worker bits: time << 12 | sequence.
    last: AtomicU64,
}

impl IdGenerator {
    /// A generator for `worker` (0..=1023).
    pub fn new(worker: u16) -> Option<IdGenerator> {
        (worker <= MAX_WORKER).then(|| IdGenerator { worker: u64::from(worker), last: AtomicU64::new(0) })
    }

    fn now_ms() -> u64 {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        ms.saturating_sub(EPOCH_MS)
    }

    /// The next id.
    pub fn next_id(&self) -> i64 {
        let now = Self::now_ms() << SEQUENCE_BITS;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            // Either the first id of this millisecond, or one past the last.
            let next = if now > prev { now } else { prev + 1 };
            match self.last.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return self.compose(next),
                Err(actual) => prev = actual,
            }
        }
    }

    fn compose(&self, time_seq: u64) -> i64 {
        let time = time_seq >> SEQUENCE_BITS;
        let seq = time_seq & ((1 << SEQUENCE_BITS) - 1);
        let id = (time << (WORKER_BITS + SEQUENCE_BITS)) | (self.worker << SEQUENCE_BITS) | seq;
        (id & (i64::MAX as u64)) as i64
    }
}

/// The worker id an id was made by.
pub fn worker_of(id: i64) -> u16 {
    ((id as u64 >> SEQUENCE_BITS) & u64::from(MAX_WORKER)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_increase_and_carry_the_worker() {
        let g = IdGenerator::new(5).unwrap();
        let mut last = 0;
        for _ in 0..20_000 {
            let id = g.next_id();
            assert!(id > last);
            assert_eq!(worker_of(id), 5);
            last = id;
        }
        assert!(IdGenerator::new(1024).is_none());
    }

    #[test]
    fn distinct_workers_never_collide() {
        let a = IdGenerator::new(1).unwrap();
        let b = IdGenerator::new(2).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
    }

    #[test]
    fn concurrent_use_is_unique() {
        let g = std::sync::Arc::new(IdGenerator::new(0).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || (0..10_000).map(|_| g.next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id));
            }
        }
        assert_eq!(all.len(), 40_000);
    }
}
