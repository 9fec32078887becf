//! The hash keyspace.
//!
//! A key's canonical bytes ([`KeyValue::hash_bytes`]) are hashed with XXH3-64
//! (seed 0; a published, platform-independent function) to a 64-bit
//! *keyspace id*. Each shard owns half-open slices of the keyspace
//! `[start, end)`, written in rule files as hexadecimal prefixes of the id:
//! `"-40"` is `[0, 0x4000…)`, `"40-80"` is `[0x4000…, 0x8000…)`, `"c0-"` runs
//! to the end.
//!
//! Why slices and not `hash mod N`: with `mod N`, going from N to N+1 shards
//! changes the owner of almost every key, so resharding moves almost all the
//! data. With slices, splitting one slice in two moves only the rows of that
//! slice, and every other shard is untouched; merging two slices likewise.

use std::fmt;

use crate::sharding::{KeyValue, ShardId};

/// A position in the 64-bit keyspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyspaceId(pub u64);

impl KeyspaceId {
    /// The keyspace id of a canonical key value.
    pub fn of(value: &KeyValue) -> KeyspaceId {
        let mut buf = Vec::with_capacity(16);
        value.hash_bytes(&mut buf);
        KeyspaceId(xxhash_rust::xxh3::xxh3_64(&buf))
    }
}

impl fmt::Display for KeyspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A half-open slice `[start, end)` of the keyspace; `end == None` is 2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slice {
    pub start: u64,
    pub end: Option<u64>,
}

impl Slice {
    pub const FULL: Slice = Slice { start: 0, end: None };

    pub fn contains(&self, id: KeyspaceId) -> bool {
        id.0 >= self.start && self.end.is_none_or(|e| id.0 < e)
    }

    /// The `i`-th of `n` equal slices.
    pub fn equal_part(i: usize, n: usize) -> Slice {
        let bound = |k: usize| -> Option<u64> {
            if k >= n { None } else { Some(((k as u128) << 64).div_euclid(n as u128) as u64) }
        };
        Slice { start: bound(i).unwrap_or(0), end: bound(i + 1) }
    }

    fn end_u128(&self) -> u128 {
        self.end.map_or(1u128 << 64, u128::from)
    }

    pub fn overlaps(&self, other: &Slice) -> bool {
        u128::from(self.start) < other.end_u128() && u128::from(other.start) < self.end_u128()
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = if self.start == 0 { String::new() } else { prefix(self.start) };
        let end = self.end.map(prefix).unwrap_or_default();
        write!(f, "{start}-{end}")
    }
}

/// The shortest hex prefix that spells `v` (trailing zero digits dropped).
fn prefix(v: u64) -> String {
    let s = format!("{v:016x}");
    let trimmed = s.trim_end_matches('0');
    // Keep whole bytes, so that "40" rather than "4" is written.
    let len = trimmed.len().div_ceil(2) * 2;
    s[..len.max(2)].to_string()
}

/// Why a slice could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("a slice is written START-END with hexadecimal prefixes, as \"-40\", \"40-80\" or \"80-\"")]
    Shape,
    #[error("`{0}` is not a hexadecimal prefix of at most 16 digits")]
    Bound(String),
    #[error("the slice is empty: its start is not below its end")]
    Empty,
}

impl std::str::FromStr for Slice {
    type Err = SliceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.trim().split_once('-').ok_or(SliceError::Shape)?;
        let parse = |p: &str| -> Result<Option<u64>, SliceError> {
            if p.is_empty() {
                return Ok(None);
            }
            if p.len() > 16 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(SliceError::Bound(p.to_string()));
            }
            let v = u64::from_str_radix(p, 16).map_err(|_| SliceError::Bound(p.to_string()))?;
            Ok(Some(v << (4 * (16 - p.len()))))
        };
        let start = parse(a)?.unwrap_or(0);
        let end = parse(b)?;
        if end.is_some_and(|e| e <= start) {
            return Err(SliceError::Empty);
        }
        Ok(Slice { start, end })
    }
}

/// Which shard owns which slice: a sorted, gap-free, non-overlapping cover of
/// the keyspace (the rule file validator guarantees this before building one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRing {
    /// Slice starts in increasing order, each with its owner; a slice ends
    /// where the next begins.
    starts: Vec<(u64, ShardId)>,
}

impl HashRing {
    /// Builds the ring from slices that cover the keyspace exactly once.
    pub fn new(mut slices: Vec<(Slice, ShardId)>) -> HashRing {
        slices.sort();
        HashRing { starts: slices.into_iter().map(|(s, id)| (s.start, id)).collect() }
    }

    /// The shard that owns a keyspace id.
    pub fn owner(&self, id: KeyspaceId) -> ShardId {
        let i = self.starts.partition_point(|(start, _)| *start <= id.0);
        // The first slice starts at 0, so i >= 1 for every id.
        self.starts[i.saturating_sub(1)].1
    }

    /// The shard that owns a key value.
    pub fn owner_of(&self, value: &KeyValue) -> ShardId {
        self.owner(KeyspaceId::of(value))
    }

    /// Every shard that owns at least one slice.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.starts.iter().map(|(_, id)| *id)
    }
}

/// Checks that slices cover the keyspace exactly once; returns the first gap
/// or overlap found, as a message.
pub fn check_cover(slices: &[(Slice, String)]) -> Vec<String> {
    let mut sorted: Vec<&(Slice, String)> = slices.iter().collect();
    sorted.sort_by_key(|(s, _)| *s);
    let mut problems = Vec::new();
    let mut next: u128 = 0;
    let mut prev_owner = String::new();
    for (slice, owner) in sorted {
        let start = u128::from(slice.start);
        if start > next {
            problems
                .push(format!("keys {} are owned by no shard", Slice { start: next as u64, end: Some(slice.start) }));
        } else if start < next {
            problems.push(format!("slice {slice} of shard {owner} overlaps a slice of shard {prev_owner}"));
        }
        next = next.max(slice.end_u128());
        prev_owner = owner.clone();
    }
    if next < (1u128 << 64) {
        problems.push(format!("keys {} are owned by no shard", Slice { start: next as u64, end: None }));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_notation() {
        let s: Slice = "-40".parse().unwrap();
        assert_eq!(s, Slice { start: 0, end: Some(0x4000_0000_0000_0000) });
        let s: Slice = "40-80".parse().unwrap();
        assert_eq!(s.start, 0x4000_0000_0000_0000);
        assert_eq!(s.to_string(), "40-80");
        let s: Slice = "c0-".parse().unwrap();
        assert_eq!(s.end, None);
        assert_eq!(s.to_string(), "c0-");
        assert_eq!("-".parse::<Slice>().unwrap(), Slice::FULL);
        assert!("80-40".parse::<Slice>().is_err());
        assert!("xyz-".parse::<Slice>().is_err());
        assert!("40".parse::<Slice>().is_err());
    }

    #[test]
    fn equal_parts_cover_the_keyspace() {
        for n in 1..9 {
            let slices: Vec<(Slice, String)> = (0..n).map(|i| (Slice::equal_part(i, n), format!("s{i}"))).collect();
            assert!(check_cover(&slices).is_empty(), "{n}: {:?}", check_cover(&slices));
        }
        assert_eq!(Slice::equal_part(1, 4).to_string(), "40-80");
    }

    #[test]
    fn gaps_and_overlaps_are_found() {
        let p = |s: &str| s.parse::<Slice>().unwrap();
        let gap = vec![(p("-40"), "a".to_string()), (p("80-"), "b".to_string())];
        assert_eq!(check_cover(&gap), vec!["keys 40-80 are owned by no shard".to_string()]);
        let overlap = vec![(p("-80"), "a".to_string()), (p("40-"), "b".to_string())];
        assert_eq!(check_cover(&overlap).len(), 1);
    }

    #[test]
    fn ring_owner() {
        let p = |s: &str| s.parse::<Slice>().unwrap();
        let ring = HashRing::new(vec![(p("80-"), ShardId(1)), (p("-80"), ShardId(0))]);
        assert_eq!(ring.owner(KeyspaceId(0)), ShardId(0));
        assert_eq!(ring.owner(KeyspaceId(0x7fff_ffff_ffff_ffff)), ShardId(0));
        assert_eq!(ring.owner(KeyspaceId(0x8000_0000_0000_0000)), ShardId(1));
        assert_eq!(ring.owner(KeyspaceId(u64::MAX)), ShardId(1));
    }

    #[test]
    fn hash_is_stable() {
        // These values are part of the on-disk contract: changing the hash
        // moves data. They must never change.
        for (v, id) in [
            (KeyValue::Int(1), "f36b4a1a44f78bf3"),
            (KeyValue::Int(-42), "ed97080f9d0299a1"),
            (KeyValue::Text("alice".into()), "4da10dd61a0116b0"),
            (KeyValue::Timestamp(0), "c77b3abb6f87acd9"),
        ] {
            assert_eq!(KeyspaceId::of(&v).to_string(), id, "{v:?}");
        }
    }
}
