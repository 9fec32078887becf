//! The plan cache: prepared statements by text, bounded, least recently used
//! out first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Prepared;

/// A prepared statement and the tick it was last used at.
type Entry = (Arc<Prepared>, u64);

#[derive(Debug)]
pub struct PlanCache {
    capacity: usize,
    clock: AtomicU64,
    map: Mutex<HashMap<Arc<str>, Entry>>,
}

impl PlanCache {
    pub fn new(capacity: usize) -> Self {
        PlanCache { capacity: capacity.max(1), clock: AtomicU64::new(0), map: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, sql: &str) -> Option<Arc<Prepared>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get_mut(sql)?;
        entry.1 = tick;
        Some(entry.0.clone())
    }

    pub fn insert(&self, sql: Arc<str>, p: Arc<Prepared>) {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&sql) {
            // Evict the least recently used eighth in one pass, so that the
            // scan is paid once per many inserts.
            let mut ticks: Vec<u64> = map.values().map(|(_, t)| *t).collect();
            let cut = ticks.len() / 8;
            let (_, nth, _) = ticks.select_nth_unstable(cut);
            let threshold = *nth;
            map.retain(|_, (_, t)| *t > threshold);
        }
        map.insert(sql, (p, tick));
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}
