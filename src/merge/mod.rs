//! The dialect-neutral merge: combines the rows of several shards so that
//! the client gets exactly what one database would have answered.
//!
//! The front ends hand the merge raw cells ([`Row`]) and a [`CellCodec`]
//! for their dialect and format; the merge decodes only the cells it must
//! look at (sort keys, group keys, aggregates) and copies every other cell
//! as the shard sent it. The steps, in the order of [`RowMerge`]: group and
//! aggregate, de-duplicate, sort, offset and limit, drop hidden columns.
//!
//! Two modes:
//! - streaming (no aggregation, no DISTINCT): shards' rows are concatenated
//!   or k-way merged on the sort keys ([`KWayMerge`]); memory holds one row
//!   per shard; the limit stops reading.
//! - buffered (aggregation or DISTINCT): one row per group / distinct row is
//!   held, within [`MergeConfig`]'s caps, then sorted (on every core past
//!   [`MergeConfig::parallel_sort_threshold`] rows).
//!
//! The synchronous core: [`Merger::rows`] over per-shard iterators, or the
//! push APIs [`Merger::kway`] + [`Tail`] and [`Merger::buffer`] for an
//! asynchronous executor.

pub mod aggregate;
pub mod codec;
pub mod collation;
pub mod column;
pub mod decimal;
pub mod error;
pub mod having;
pub mod sort;
pub mod value;

use std::collections::HashSet;
use std::sync::Arc;

use rayon::slice::ParallelSliceMut;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::route::plan::{ColumnRef, Combine, RowMerge};

use aggregate::{AggSpec, Aggregator, Slot};
pub use collation::Collation;
pub use column::{CellCodec, ColumnKind, Row};
pub use decimal::Decimal;
pub use error::{MergeError, StreamError};
pub use sort::{KWayMerge, ResolvedKey};
pub use value::Value;

/// How the backend types the results of numeric division (AVG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericRules {
    /// `numeric_div`: `select_div_scale`, at least 16 significant digits.
    Postgres,
    /// Scale of the dividend plus `div_precision_increment` (default 4),
    /// at most `max_scale` (MySQL's DECIMAL_MAX_SCALE is 30).
    Mysql { div_precision_increment: u32, max_scale: u32 },
}

impl NumericRules {
    pub const MYSQL_DEFAULT: NumericRules = NumericRules::Mysql { div_precision_increment: 4, max_scale: 30 };

    /// The result kind of AVG over a column whose SUM is of `sum_kind`.
    pub fn avg_kind(self, sum_kind: ColumnKind) -> ColumnKind {
        match sum_kind {
            ColumnKind::Float => ColumnKind::Float,
            _ => ColumnKind::Numeric,
        }
    }
}

/// Limits and knobs of the merge.
#[derive(Clone, Copy, Debug)]
pub struct MergeConfig {
    /// Most rows (groups, distinct rows) a buffered merge holds.
    pub max_buffered_rows: u64,
    /// Most bytes a buffered merge holds (cells plus bookkeeping, roughly).
    pub max_buffered_bytes: u64,
    /// Buffered results longer than this are sorted on every core.
    pub parallel_sort_threshold: usize,
    pub numeric: NumericRules,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            max_buffered_rows: 1_000_000,
            max_buffered_bytes: 256 << 20,
            parallel_sort_threshold: 100_000,
            numeric: NumericRules::Postgres,
        }
    }
}

/// A column whose type the merge changes: the client must be told `kind`
/// instead of the shards' type (AVG, which the shards computed as SUM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retyped {
    pub column: usize,
    pub kind: ColumnKind,
}

#[derive(Clone)]
struct Spec {
    width: usize,
    visible: usize,
    kinds: Vec<ColumnKind>,
    codec: Arc<dyn CellCodec>,
    keys: Arc<[ResolvedKey]>,
    agg: Option<Arc<AggSpec>>,
    distinct: bool,
    offset: u64,
    limit: Option<u64>,
    having: Option<having::Resolved>,
    config: MergeConfig,
}

/// The merge of one statement's results, built from the plan's
/// [`RowMerge`], the result's column kinds (hidden columns included) and
/// the dialect's codec. Cheap to clone.
#[derive(Clone)]
pub struct Merger {
    spec: Arc<Spec>,
}

fn resolve(c: ColumnRef, width: usize) -> Result<usize, MergeError> {
    c.resolve(width).ok_or(MergeError::BadColumn { column: c.to_string(), width })
}

fn refuse(what: &str, col: usize, kind: ColumnKind) -> MergeError {
    MergeError::Unsupported(format!("{what} over column {} of type {}", col + 1, kind.name()))
}

impl Merger {
    /// Resolves the plan against the result's columns; refuses up front
    /// what cannot be merged exactly (sorting, grouping or aggregating a
    /// column of a type the merge does not know).
    pub fn new(
        plan: &RowMerge,
        kinds: Vec<ColumnKind>,
        codec: Arc<dyn CellCodec>,
        config: MergeConfig,
    ) -> Result<Merger, MergeError> {
        let width = kinds.len();
        let visible = width
            .checked_sub(plan.hidden)
            .ok_or(MergeError::BadColumn { column: format!("{} hidden", plan.hidden), width })?;
        let mut keys = Vec::with_capacity(plan.order_by.len());
        for k in &plan.order_by {
            let column = resolve(k.column, width)?;
            if kinds[column] == ColumnKind::Other {
                return Err(refuse("ORDER BY", column, kinds[column]));
            }
            keys.push(ResolvedKey {
                column,
                descending: k.descending,
                nulls_first: k.nulls_first,
                collation: kinds[column].collation(),
            });
        }
        let agg = if plan.aggregating || !plan.group_by.is_empty() {
            let mut slots = vec![Slot::Copy; width];
            let mut group_cols = Vec::new();
            for g in &plan.group_by {
                let c = resolve(*g, width)?;
                if kinds[c] == ColumnKind::Other {
                    return Err(refuse("GROUP BY", c, kinds[c]));
                }
                group_cols.push(c);
            }
            let numeric_kind = |k: ColumnKind| matches!(k, ColumnKind::Int | ColumnKind::Numeric | ColumnKind::Float);
            let mut avg_counts = Vec::new();
            for a in &plan.aggregates {
                match a {
                    Combine::Key(c) => {
                        resolve(*c, width)?;
                    }
                    Combine::Count(c) => slots[resolve(*c, width)?] = Slot::Count,
                    Combine::Sum(c) => {
                        let c = resolve(*c, width)?;
                        if !numeric_kind(kinds[c]) {
                            return Err(refuse("SUM", c, kinds[c]));
                        }
                        slots[c] = Slot::Sum;
                    }
                    Combine::Min(c) | Combine::Max(c) => {
                        let c = resolve(*c, width)?;
                        if kinds[c] == ColumnKind::Other {
                            return Err(refuse("MIN / MAX", c, kinds[c]));
                        }
                        slots[c] = if matches!(a, Combine::Min(_)) { Slot::Min } else { Slot::Max };
                    }
                    Combine::Avg { sum, count } => {
                        let s = resolve(*sum, width)?;
                        let n = resolve(*count, width)?;
                        if !numeric_kind(kinds[s]) {
                            return Err(refuse("AVG", s, kinds[s]));
                        }
                        slots[s] = Slot::Avg { count: n };
                        avg_counts.push(n);
                    }
                }
            }
            // The AVG's hidden COUNT column, if nothing else claims it,
            // carries the summed count.
            for n in avg_counts {
                if slots[n] == Slot::Copy {
                    slots[n] = Slot::Count;
                }
            }
            Some(Arc::new(AggSpec {
                group_collations: group_cols.iter().map(|&c| kinds[c].collation()).collect(),
                group_cols,
                slots,
                collations: kinds.iter().map(|k| k.collation()).collect(),
                numeric: config.numeric,
            }))
        } else {
            None
        };
        if plan.distinct
            && let Some(c) = (0..visible).find(|&c| kinds[c] == ColumnKind::Other)
        {
            return Err(refuse("DISTINCT", c, kinds[c]));
        }
        Ok(Merger {
            spec: Arc::new(Spec {
                having: match &plan.having {
                    Some(h) => Some(having::Resolved::new(h, &kinds, width)?),
                    None => None,
                },
                width,
                visible,
                kinds,
                codec,
                keys: keys.into(),
                agg,
                distinct: plan.distinct,
                offset: plan.offset,
                limit: plan.limit,
                config,
            }),
        })
    }

    /// Whether rows flow through without being buffered.
    pub fn is_streaming(&self) -> bool {
        self.spec.agg.is_none() && !self.spec.distinct
    }

    /// Columns of a shard row (hidden included).
    pub fn input_width(&self) -> usize {
        self.spec.width
    }

    /// Columns of an output row (hidden dropped).
    pub fn output_width(&self) -> usize {
        self.spec.visible
    }

    /// Visible columns whose type the client must be told differently
    /// from the shards' (AVG columns); the codec's `encode` must write the
    /// new type there (see `PgCodec::retype`, `MysqlCodec::retype`; for
    /// MySQL the new DECIMAL's decimals are the SUM column's plus
    /// `div_precision_increment`).
    pub fn retyped_columns(&self) -> Vec<Retyped> {
        let Some(agg) = &self.spec.agg else {
            return Vec::new();
        };
        agg.slots
            .iter()
            .enumerate()
            .filter(|&(c, s)| matches!(s, Slot::Avg { .. }) && c < self.spec.visible)
            .map(|(c, _)| Retyped { column: c, kind: self.spec.config.numeric.avg_kind(self.spec.kinds[c]) })
            .collect()
    }

    /// The same merge with another codec (the one that writes the retyped
    /// columns' new types, see [`Self::retyped_columns`]).
    pub fn with_codec(&self, codec: Arc<dyn CellCodec>) -> Merger {
        Merger { spec: Arc::new(Spec { codec, ..(*self.spec).clone() }) }
    }

    /// Merges per-shard row streams (in shard order). Streaming modes pull
    /// rows as the output is read and stop reading at the limit; buffered
    /// modes read every shard on the first `next`.
    pub fn rows<I, E>(&self, shards: Vec<I>) -> MergedRows<I>
    where
        I: Iterator<Item = Result<Row, E>>,
    {
        let state = if !self.is_streaming() {
            State::Buffered(Some(self.buffer()))
        } else if self.spec.keys.is_empty() {
            State::Concat { cur: 0 }
        } else {
            State::Sorted(self.kway(shards.len()))
        };
        MergedRows { spec: self.spec.clone(), shards, state, tail: self.tail() }
    }

    /// The k-way merge of a streaming sorted merge over `shards` streams;
    /// pass its rows through [`Self::tail`].
    pub fn kway(&self, shards: usize) -> KWayMerge {
        KWayMerge::new(shards, self.spec.keys.clone(), self.spec.codec.clone(), self.spec.width)
    }

    /// OFFSET, LIMIT and the hidden-column drop of a streaming merge.
    pub fn tail(&self) -> Tail {
        Tail { skip: self.spec.offset, remaining: self.spec.limit, keep: self.spec.visible }
    }

    /// A buffered merge (aggregation, DISTINCT) fed row by row.
    pub fn buffer(&self) -> BufferedMerge {
        let s = &self.spec;
        BufferedMerge {
            spec: s.clone(),
            agg: s.agg.as_ref().map(|a| {
                Aggregator::new(a.clone(), s.codec.clone(), s.config.max_buffered_rows, s.config.max_buffered_bytes)
            }),
            rows: Vec::new(),
            seen: HashSet::default(),
            key: Vec::new(),
            bytes: 0,
        }
    }
}

/// What the tail does with one row.
#[derive(Debug, PartialEq, Eq)]
pub enum TailStep {
    /// Before the offset: dropped.
    Skip,
    /// A row for the client (hidden columns dropped).
    Emit(Row),
    /// The limit was reached before this row: stop reading shards.
    Done,
}

/// OFFSET, LIMIT and the drop of hidden columns, applied in merged order.
#[derive(Clone, Debug)]
pub struct Tail {
    skip: u64,
    remaining: Option<u64>,
    keep: usize,
}

impl Tail {
    pub fn step(&mut self, mut row: Row) -> TailStep {
        if self.is_done() {
            return TailStep::Done;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return TailStep::Skip;
        }
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        row.truncate(self.keep);
        TailStep::Emit(row)
    }

    /// The limit is reached: no more rows are needed.
    pub fn is_done(&self) -> bool {
        self.remaining == Some(0)
    }
}

struct Buffered {
    shard: usize,
    keys: Vec<Value>,
    row: Row,
}

/// A buffered merge: push every shard's rows, then `finish`.
pub struct BufferedMerge {
    spec: Arc<Spec>,
    agg: Option<Aggregator>,
    /// DISTINCT without aggregation: the kept rows.
    rows: Vec<Buffered>,
    seen: HashSet<Vec<u8>, Xxh3DefaultBuilder>,
    key: Vec<u8>,
    bytes: u64,
}

impl BufferedMerge {
    /// One row of `shard`. Rows of one shard must come in its order;
    /// shards may interleave (ties are put in shard order at the end).
    pub fn push(&mut self, shard: usize, row: Row) -> Result<(), MergeError> {
        let s = &*self.spec;
        if row.len() != s.width {
            return Err(MergeError::Width { got: row.len(), expected: s.width });
        }
        if let Some(agg) = &mut self.agg {
            return agg.push(row);
        }
        // DISTINCT: keep the first row of each distinct visible tuple.
        self.key.clear();
        for c in 0..s.visible {
            let v = match row.get(c) {
                None => Value::Null,
                Some(raw) => s.codec.decode(c, raw)?,
            };
            v.eq_key(s.kinds[c].collation(), &mut self.key);
        }
        if self.seen.contains(self.key.as_slice()) {
            return Ok(());
        }
        let cfg = &s.config;
        if self.rows.len() as u64 >= cfg.max_buffered_rows {
            return Err(MergeError::LimitExceeded { what: "rows", limit: cfg.max_buffered_rows });
        }
        self.bytes += (row.byte_len() + self.key.len() + 64) as u64;
        if self.bytes > cfg.max_buffered_bytes {
            return Err(MergeError::LimitExceeded { what: "bytes", limit: cfg.max_buffered_bytes });
        }
        self.seen.insert(self.key.clone());
        let mut keys = Vec::new();
        sort::decode_keys(&row, &s.keys, s.codec.as_ref(), &mut keys)?;
        self.rows.push(Buffered { shard, keys, row });
        Ok(())
    }

    /// The merged rows: sorted, offset and limit applied, hidden dropped.
    pub fn finish(self) -> Result<Vec<Row>, MergeError> {
        let s = &*self.spec;
        let mut rows = match self.agg {
            None => self.rows,
            Some(agg) => {
                let mut needed = vec![false; s.width];
                for k in s.keys.iter() {
                    needed[k.column] = true;
                }
                if s.distinct {
                    needed[..s.visible].iter_mut().for_each(|n| *n = true);
                }
                if let Some(h) = &s.having {
                    h.mark_needed(&mut needed);
                }
                let groups = agg.finish(&needed)?;
                let mut seen: HashSet<Vec<u8>, Xxh3DefaultBuilder> = HashSet::default();
                let mut out = Vec::with_capacity(groups.len());
                let mut key = Vec::new();
                for g in groups {
                    if let Some(h) = &s.having
                        && !h.keeps(&g.values)
                    {
                        continue;
                    }
                    if s.distinct {
                        key.clear();
                        for c in 0..s.visible {
                            g.values[c].eq_key(s.kinds[c].collation(), &mut key);
                        }
                        if !seen.insert(key.clone()) {
                            continue;
                        }
                    }
                    let keys = s.keys.iter().map(|k| g.values[k.column].clone()).collect();
                    out.push(Buffered { shard: 0, keys, row: g.row });
                }
                out
            }
        };
        if !s.keys.is_empty() {
            let cmp =
                |a: &Buffered, b: &Buffered| sort::compare_keys(&a.keys, &b.keys, &s.keys).then(a.shard.cmp(&b.shard));
            if rows.len() > s.config.parallel_sort_threshold {
                rows.par_sort_by(cmp);
            } else {
                rows.sort_by(cmp);
            }
        } else {
            // Shard order, each shard's rows in arrival order.
            rows.sort_by_key(|r| r.shard);
        }
        let skip = usize::try_from(s.offset).unwrap_or(usize::MAX);
        let take = s.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(rows
            .into_iter()
            .skip(skip)
            .take(take)
            .map(|mut b| {
                b.row.truncate(s.visible);
                b.row
            })
            .collect())
    }
}

enum State {
    Concat { cur: usize },
    Sorted(KWayMerge),
    Buffered(Option<BufferedMerge>),
    Draining(std::vec::IntoIter<Row>),
    Done,
}

/// The merged rows of [`Merger::rows`].
pub struct MergedRows<I> {
    spec: Arc<Spec>,
    shards: Vec<I>,
    state: State,
    tail: Tail,
}

impl<I, E> MergedRows<I>
where
    I: Iterator<Item = Result<Row, E>>,
{
    fn fail<T>(&mut self, e: StreamError<E>) -> Option<Result<T, StreamError<E>>> {
        self.state = State::Done;
        Some(Err(e))
    }
}

impl<I, E> Iterator for MergedRows<I>
where
    I: Iterator<Item = Result<Row, E>>,
{
    type Item = Result<Row, StreamError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.tail.is_done() {
                self.state = State::Done;
            }
            let row = match &mut self.state {
                State::Done => return None,
                State::Draining(rows) => return rows.next().map(Ok),
                State::Concat { cur } => {
                    let Some(shard) = self.shards.get_mut(*cur) else {
                        self.state = State::Done;
                        return None;
                    };
                    match shard.next() {
                        None => {
                            *cur += 1;
                            continue;
                        }
                        Some(Err(error)) => {
                            let shard = *cur;
                            return self.fail(StreamError::Shard { shard, error });
                        }
                        Some(Ok(row)) => {
                            if row.len() != self.spec.width {
                                let e = MergeError::Width { got: row.len(), expected: self.spec.width };
                                return self.fail(e.into());
                            }
                            row
                        }
                    }
                }
                State::Sorted(m) => {
                    while let Some(s) = m.wants() {
                        let next = match self.shards[s].next() {
                            None => None,
                            Some(Ok(r)) => Some(r),
                            Some(Err(error)) => {
                                return self.fail(StreamError::Shard { shard: s, error });
                            }
                        };
                        if let Err(e) = m.feed(s, next) {
                            return self.fail(e.into());
                        }
                    }
                    match m.pop() {
                        Some(r) => r,
                        None => {
                            self.state = State::Done;
                            return None;
                        }
                    }
                }
                State::Buffered(b) => {
                    let Some(mut buf) = b.take() else {
                        self.state = State::Done;
                        return None;
                    };
                    for (i, shard) in self.shards.iter_mut().enumerate() {
                        for r in shard {
                            let pushed = match r {
                                Ok(row) => buf.push(i, row).map_err(StreamError::from),
                                Err(error) => Err(StreamError::Shard { shard: i, error }),
                            };
                            if let Err(e) = pushed {
                                self.state = State::Done;
                                return Some(Err(e));
                            }
                        }
                    }
                    match buf.finish() {
                        Ok(rows) => {
                            self.state = State::Draining(rows.into_iter());
                            continue;
                        }
                        Err(e) => return self.fail(e.into()),
                    }
                }
            };
            match self.tail.step(row) {
                TailStep::Skip => continue,
                TailStep::Emit(r) => return Some(Ok(r)),
                TailStep::Done => {
                    self.state = State::Done;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
