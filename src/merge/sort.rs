//! Ordering rows on the plan's sort keys, and the streaming k-way merge of
//! per-shard sorted streams.

use std::cmp::Ordering;
use std::sync::Arc;

use super::collation::Collation;
use super::column::{CellCodec, Row};
use super::error::MergeError;
use super::value::Value;

/// A sort key resolved against the result's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedKey {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
    pub collation: Collation,
}

/// Orders two rows' decoded key values (`a[i]` is the value of `keys[i]`).
/// NULLs go first or last as the key says, whatever the direction.
pub fn compare_keys(a: &[Value], b: &[Value], keys: &[ResolvedKey]) -> Ordering {
    for (k, (x, y)) in keys.iter().zip(a.iter().zip(b)) {
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = x.compare(y, k.collation);
                if k.descending { o.reverse() } else { o }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Decodes the sort-key cells of a row (and only those) into `out`.
pub fn decode_keys(
    row: &Row,
    keys: &[ResolvedKey],
    codec: &dyn CellCodec,
    out: &mut Vec<Value>,
) -> Result<(), MergeError> {
    out.clear();
    for k in keys {
        out.push(match row.get(k.column) {
            None => Value::Null,
            Some(raw) => codec.decode(k.column, raw)?,
        });
    }
    Ok(())
}

struct Head {
    keys: Vec<Value>,
    row: Row,
}

/// A streaming k-way merge of shard streams that are each sorted on the
/// keys. It holds one row per shard, whatever the sizes of the streams.
///
/// A push-driven state machine, so that synchronous and asynchronous
/// callers drive it alike:
///
/// ```text
/// loop {
///     while let Some(shard) = m.wants() { m.feed(shard, next_row_of(shard))? }
///     match m.pop() { Some(row) => emit(row), None => break }
/// }
/// ```
///
/// Rows equal on every key come out in shard order (then in each shard's
/// own order): ties are never broken by bytes.
pub struct KWayMerge {
    keys: Arc<[ResolvedKey]>,
    codec: Arc<dyn CellCodec>,
    width: usize,
    heads: Vec<Option<Head>>,
    heap: Vec<usize>,
    /// Shards whose next row (or end) must be fed before `pop`; the last is
    /// asked first.
    wants: Vec<usize>,
    spare: Vec<Vec<Value>>,
}

impl KWayMerge {
    pub fn new(shards: usize, keys: Arc<[ResolvedKey]>, codec: Arc<dyn CellCodec>, width: usize) -> Self {
        KWayMerge {
            keys,
            codec,
            width,
            heads: (0..shards).map(|_| None).collect(),
            heap: Vec::with_capacity(shards),
            wants: (0..shards).rev().collect(),
            spare: Vec::new(),
        }
    }

    /// The shard whose next row the merge needs before it can pop.
    pub fn wants(&self) -> Option<usize> {
        self.wants.last().copied()
    }

    /// Gives the merge the next row of `shard`, or `None` at its end.
    pub fn feed(&mut self, shard: usize, row: Option<Row>) -> Result<(), MergeError> {
        let Some(pos) = self.wants.iter().rposition(|&s| s == shard) else {
            return Err(MergeError::Unsupported(format!("a row of shard {shard} that the merge did not ask for")));
        };
        self.wants.remove(pos);
        if let Some(row) = row {
            if row.len() != self.width {
                return Err(MergeError::Width { got: row.len(), expected: self.width });
            }
            let mut keys = self.spare.pop().unwrap_or_default();
            decode_keys(&row, &self.keys, self.codec.as_ref(), &mut keys)?;
            self.heads[shard] = Some(Head { keys, row });
            self.heap.push(shard);
            let n = self.heap.len() - 1;
            self.sift_up(n);
        }
        Ok(())
    }

    /// The next row in merged order; `None` when more input is wanted
    /// ([`Self::wants`]) or every shard is done ([`Self::is_finished`]).
    pub fn pop(&mut self) -> Option<Row> {
        if !self.wants.is_empty() || self.heap.is_empty() {
            return None;
        }
        let top = self.heap.swap_remove(0);
        if !self.heap.is_empty() {
            self.sift_down(0);
        }
        let head = self.heads[top].take()?;
        self.spare.push(head.keys);
        self.wants.push(top);
        Some(head.row)
    }

    pub fn is_finished(&self) -> bool {
        self.wants.is_empty() && self.heap.is_empty()
    }

    fn less(&self, a: usize, b: usize) -> bool {
        match (&self.heads[a], &self.heads[b]) {
            (Some(x), Some(y)) => compare_keys(&x.keys, &y.keys, &self.keys).then(a.cmp(&b)).is_lt(),
            _ => a < b,
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if self.less(self.heap[i], self.heap[p]) {
                self.heap.swap(i, p);
                i = p;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            let r = l + 1;
            let mut m = i;
            if l < n && self.less(self.heap[l], self.heap[m]) {
                m = l;
            }
            if r < n && self.less(self.heap[r], self.heap[m]) {
                m = r;
            }
            if m == i {
                break;
            }
            self.heap.swap(i, m);
            i = m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::codec::postgres::{PgCodec, PgColumn, oid};
    use proptest::prelude::*;

    fn codec() -> Arc<dyn CellCodec> {
        Arc::new(PgCodec::new(vec![
            PgColumn { type_oid: oid::INT8, binary: false },
            PgColumn { type_oid: oid::TEXT, binary: false },
            PgColumn { type_oid: oid::INT8, binary: false },
        ]))
    }

    fn row(k: Option<i64>, t: Option<&str>, tag: i64) -> Row {
        let k = k.map(|k| k.to_string());
        let tag = tag.to_string();
        Row::from_cells([k.as_deref().map(str::as_bytes), t.map(str::as_bytes), Some(tag.as_bytes())])
    }

    fn key(column: usize, descending: bool, nulls_first: bool, collation: Collation) -> ResolvedKey {
        ResolvedKey { column, descending, nulls_first, collation }
    }

    fn merge(shards: Vec<Vec<Row>>, keys: &[ResolvedKey]) -> Vec<Row> {
        let mut m = KWayMerge::new(shards.len(), keys.into(), codec(), 3);
        let mut its: Vec<_> = shards.into_iter().map(Vec::into_iter).collect();
        let mut out = Vec::new();
        loop {
            while let Some(s) = m.wants() {
                m.feed(s, its[s].next()).unwrap_or_else(|e| panic!("{e}"));
            }
            match m.pop() {
                Some(r) => out.push(r),
                None => break,
            }
        }
        assert!(m.is_finished());
        out
    }

    fn tags(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|r| String::from_utf8_lossy(r.get(2).unwrap_or_default()).into_owned()).collect()
    }

    #[test]
    fn nulls_both_ways_and_desc() {
        let shards = || {
            vec![
                vec![row(Some(1), None, 1), row(Some(5), None, 2), row(None, None, 3)],
                vec![row(Some(2), None, 4), row(None, None, 5)],
            ]
        };
        let asc_last = merge(shards(), &[key(0, false, false, Collation::Binary)]);
        assert_eq!(tags(&asc_last), ["1", "4", "2", "3", "5"]);
        let nulls_first_shards = vec![
            vec![row(None, None, 3), row(Some(1), None, 1), row(Some(5), None, 2)],
            vec![row(None, None, 5), row(Some(2), None, 4)],
        ];
        let asc_first = merge(nulls_first_shards, &[key(0, false, true, Collation::Binary)]);
        assert_eq!(tags(&asc_first), ["3", "5", "1", "4", "2"]);
        let desc_shards = vec![
            vec![row(None, None, 3), row(Some(5), None, 2), row(Some(1), None, 1)],
            vec![row(None, None, 5), row(Some(2), None, 4)],
        ];
        // PostgreSQL's DESC default: NULLs first.
        let desc = merge(desc_shards, &[key(0, true, true, Collation::Binary)]);
        assert_eq!(tags(&desc), ["3", "5", "2", "4", "1"]);
    }

    #[test]
    fn multi_key_and_stable_ties() {
        let shards = vec![
            vec![row(Some(1), Some("b"), 1), row(Some(1), Some("b"), 2), row(Some(2), Some("a"), 3)],
            vec![row(Some(1), Some("b"), 5), row(Some(1), Some("a"), 4)],
            vec![row(Some(1), Some("b"), 6)],
        ];
        let keys = [key(0, false, false, Collation::Binary), key(1, true, false, Collation::Binary)];
        assert_eq!(tags(&merge(shards, &keys)), ["1", "2", "5", "6", "4", "3"]);
    }

    #[test]
    fn case_insensitive_ties_keep_shard_order() {
        let shards = vec![
            vec![row(None, Some("apple"), 1), row(None, Some("b"), 2)],
            vec![row(None, Some("APPLE"), 3), row(None, Some("B "), 4)],
            vec![row(None, Some("Apple"), 5)],
        ];
        let keys = [key(1, false, false, Collation::MysqlGeneralCi)];
        assert_eq!(tags(&merge(shards, &keys)), ["1", "3", "5", "2", "4"]);
        // Ties in reverse shard positions stay in shard order too.
        let shards = vec![vec![row(None, Some("B"), 1)], vec![row(None, Some("b"), 2)]];
        assert_eq!(tags(&merge(shards, &keys)), ["1", "2"]);
        let shards = vec![vec![row(None, Some("b"), 1)], vec![row(None, Some("B"), 2)]];
        assert_eq!(tags(&merge(shards, &keys)), ["1", "2"]);
    }

    #[test]
    fn empty_shards_and_bad_feeds() {
        let keys = [key(0, false, false, Collation::Binary)];
        assert!(merge(vec![vec![], vec![]], &keys).is_empty());
        assert!(merge(vec![], &keys).is_empty());
        let mut m = KWayMerge::new(2, keys[..].into(), codec(), 3);
        assert_eq!(m.wants(), Some(0));
        assert!(m.feed(0, Some(Row::from_cells([Some(&b"1"[..])]))).is_err());
        assert!(m.feed(0, None).is_err());
        assert!(m.feed(1, Some(row(Some(1), None, 1))).is_ok());
        assert_eq!(m.pop().map(|r| r.len()), Some(3));
        assert_eq!(m.wants(), Some(1));
        assert!(m.pop().is_none());
        assert!(!m.is_finished());
        let mut m = KWayMerge::new(1, keys[..].into(), codec(), 3);
        assert!(m.feed(0, Some(row(Some(-1), Some("x"), 1))).is_ok());
        assert!(m.pop().is_some());
        assert!(m.feed(0, Some(row(None, None, 1))).is_ok());
        let mut bad = KWayMerge::new(1, keys[..].into(), codec(), 3);
        assert!(matches!(
            bad.feed(0, Some(Row::from_cells([Some(&b"x"[..]), None, None]))),
            Err(MergeError::Decode { .. })
        ));
    }

    proptest! {
        #[test]
        fn kway_equals_full_sort(
            rows in proptest::collection::vec((proptest::option::of(-5i64..5), "[a-cA-C ]{0,3}"), 0..60),
            shard_of in proptest::collection::vec(0usize..5, 60),
            nshards in 1usize..=5,
            desc in any::<bool>(),
            nulls_first in any::<bool>(),
            collation in prop_oneof![Just(Collation::Binary), Just(Collation::MysqlGeneralCi), Just(Collation::IcuRoot)],
        ) {
            let keys = [key(0, desc, nulls_first, Collation::Binary), key(1, !desc, false, collation)];
            let c = codec();
            let decoded = |r: &Row| {
                let mut v = Vec::new();
                decode_keys(r, &keys, c.as_ref(), &mut v).unwrap_or_else(|e| panic!("{e}"));
                v
            };
            let mut shards: Vec<Vec<Row>> = vec![Vec::new(); nshards];
            for (i, (k, t)) in rows.iter().enumerate() {
                shards[shard_of[i] % nshards].push(row(*k, Some(t), i as i64));
            }
            for s in &mut shards {
                s.sort_by(|a, b| compare_keys(&decoded(a), &decoded(b), &keys));
            }
            let mut expected: Vec<Row> = shards.concat();
            expected.sort_by(|a, b| compare_keys(&decoded(a), &decoded(b), &keys));
            let got = merge(shards, &keys);
            prop_assert_eq!(tags(&got), tags(&expected));
        }
    }
}
