//! GROUP BY and aggregates across shards.
//!
//! Each shard has grouped and aggregated its own rows; the merge combines
//! the partial results per group: counts add up (bigint), sums add up
//! exactly (NULL only when every part is NULL), MIN / MAX take the extreme
//! part (copying the chosen cell's bytes as the shard sent them), and AVG
//! divides the summed SUM by the summed hidden COUNT with the backend's
//! result scale:
//!
//! - PostgreSQL: `avg(int2/int4/int8/numeric)` is `numeric_div(sum, count)`,
//!   whose scale is `select_div_scale` (at least 16 significant digits, never
//!   less than the sum's display scale), rounded half away from zero;
//!   avg of 1, 2, 4 is `2.3333333333333333`, of 1.50 and 2.25
//!   `1.8750000000000000`. `avg(float)` is a float division.
//! - MySQL / MariaDB: AVG of DECIMAL or integers is DECIMAL with the sum's
//!   scale plus `div_precision_increment` (4), rounded half up; of
//!   FLOAT / DOUBLE a double division.
//!
//! Not exact: AVG and SUM of floats (the shards' partial sums add in
//! another order than one server would add the rows).

use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::NumericRules;
use super::collation::Collation;
use super::column::{CellCodec, Row};
use super::decimal::{Decimal, pg_select_div_scale};
use super::error::MergeError;
use super::value::Value;

/// What one result column becomes after aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A group key or plain column: the group's first row's cell.
    Copy,
    Count,
    Sum,
    Min,
    Max,
    /// The AVG's SUM column; `count` is its hidden COUNT column.
    Avg {
        count: usize,
    },
}

/// The resolved aggregation of a merge.
#[derive(Clone, Debug)]
pub(crate) struct AggSpec {
    pub group_cols: Vec<usize>,
    pub group_collations: Vec<Collation>,
    /// One per result column.
    pub slots: Vec<Slot>,
    pub collations: Vec<Collation>,
    pub numeric: NumericRules,
}

#[derive(Clone, Debug)]
enum Acc {
    None,
    Count(i64),
    Sum(Value),
    /// The extreme value so far and the cell it came from.
    Extreme(Option<(Value, Vec<u8>)>),
    Avg {
        sum: Value,
        count: i64,
    },
}

struct Group {
    first: Row,
    accs: Vec<Acc>,
}

/// One aggregated output row: its values (decoded where `needed`) and cells.
pub(crate) struct GroupRow {
    pub values: Vec<Value>,
    pub row: Row,
}

/// Combines shards' partial aggregates, buffering one row per group.
pub(crate) struct Aggregator {
    spec: Arc<AggSpec>,
    codec: Arc<dyn CellCodec>,
    groups: Vec<Group>,
    index: HashMap<Vec<u8>, usize, Xxh3DefaultBuilder>,
    key: Vec<u8>,
    bytes: u64,
    max_groups: u64,
    max_bytes: u64,
}

fn decode(codec: &dyn CellCodec, row: &Row, col: usize) -> Result<Value, MergeError> {
    match row.get(col) {
        None => Ok(Value::Null),
        Some(raw) => codec.decode(col, raw),
    }
}

fn as_count(v: Value, col: usize) -> Result<i64, MergeError> {
    match v {
        Value::Null => Ok(0),
        Value::Int(i) => Ok(i),
        Value::Numeric(d) => d.to_i64().ok_or(MergeError::Overflow("count")),
        other => {
            Err(MergeError::Decode { column: col, kind: "count", detail: format!("a {} value", other.kind_name()) })
        }
    }
}

impl Aggregator {
    pub fn new(spec: Arc<AggSpec>, codec: Arc<dyn CellCodec>, max_groups: u64, max_bytes: u64) -> Self {
        Aggregator {
            spec,
            codec,
            groups: Vec::new(),
            index: HashMap::default(),
            key: Vec::new(),
            bytes: 0,
            max_groups,
            max_bytes,
        }
    }

    fn fresh_accs(&self) -> Vec<Acc> {
        self.spec
            .slots
            .iter()
            .map(|s| match s {
                Slot::Copy => Acc::None,
                Slot::Count => Acc::Count(0),
                Slot::Sum => Acc::Sum(Value::Null),
                Slot::Min | Slot::Max => Acc::Extreme(None),
                Slot::Avg { .. } => Acc::Avg { sum: Value::Null, count: 0 },
            })
            .collect()
    }

    /// Adds one shard's partial row (already checked for width).
    pub fn push(&mut self, row: Row) -> Result<(), MergeError> {
        let codec = self.codec.as_ref();
        self.key.clear();
        for (&c, &coll) in self.spec.group_cols.iter().zip(&self.spec.group_collations) {
            decode(codec, &row, c)?.eq_key(coll, &mut self.key);
        }
        let gi = match self.index.get(self.key.as_slice()) {
            Some(&g) => g,
            None => {
                if self.groups.len() as u64 >= self.max_groups {
                    return Err(MergeError::LimitExceeded { what: "groups", limit: self.max_groups });
                }
                self.bytes += (row.byte_len() + self.key.len() + 64) as u64;
                if self.bytes > self.max_bytes {
                    return Err(MergeError::LimitExceeded { what: "bytes", limit: self.max_bytes });
                }
                let g = self.groups.len();
                let accs = self.fresh_accs();
                self.groups.push(Group { first: row.clone(), accs });
                self.index.insert(self.key.clone(), g);
                g
            }
        };
        let spec = &self.spec;
        let group = &mut self.groups[gi];
        for (col, (slot, acc)) in spec.slots.iter().zip(group.accs.iter_mut()).enumerate() {
            match (slot, acc) {
                (Slot::Copy, _) => {}
                (Slot::Count, Acc::Count(n)) => {
                    *n = n
                        .checked_add(as_count(decode(codec, &row, col)?, col)?)
                        .ok_or(MergeError::Overflow("count"))?;
                }
                (Slot::Sum, Acc::Sum(s)) if !row.is_null(col) => {
                    *s = s.sum(&decode(codec, &row, col)?)?;
                }
                (Slot::Min | Slot::Max, Acc::Extreme(best)) => {
                    if let Some(raw) = row.get(col) {
                        let v = codec.decode(col, raw)?;
                        let better = match best {
                            None => true,
                            Some((b, _)) => {
                                let o = v.compare(b, spec.collations[col]);
                                if *slot == Slot::Min { o.is_lt() } else { o.is_gt() }
                            }
                        };
                        if better {
                            *best = Some((v, raw.to_vec()));
                        }
                    }
                }
                (Slot::Avg { count }, Acc::Avg { sum, count: n }) => {
                    if !row.is_null(col) {
                        *sum = sum.sum(&decode(codec, &row, col)?)?;
                    }
                    *n = n
                        .checked_add(as_count(decode(codec, &row, *count)?, *count)?)
                        .ok_or(MergeError::Overflow("count"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The aggregated rows in first-seen group order. With no GROUP BY and
    /// no rows at all, one row: counts 0, everything else NULL.
    /// `needed[c]`: whether column c's value must be decoded for later
    /// steps (sorting, DISTINCT).
    pub fn finish(mut self, needed: &[bool]) -> Result<Vec<GroupRow>, MergeError> {
        if self.groups.is_empty() && self.spec.group_cols.is_empty() {
            let width = self.spec.slots.len();
            let accs = self.fresh_accs();
            self.groups.push(Group { first: Row::from_cells(std::iter::repeat_n(None, width)), accs });
        }
        let codec = self.codec.as_ref();
        let width = self.spec.slots.len();
        let mut out = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            let mut values = Vec::with_capacity(width);
            let mut row = Row::with_capacity(width, g.first.byte_len());
            for (col, acc) in g.accs.into_iter().enumerate() {
                match acc {
                    Acc::None => {
                        let cell = g.first.get(col);
                        row.push(cell);
                        values.push(match cell {
                            Some(raw) if needed.get(col).copied().unwrap_or(false) => codec.decode(col, raw)?,
                            _ => Value::Null,
                        });
                    }
                    Acc::Extreme(best) => match best {
                        Some((v, raw)) => {
                            row.push(Some(&raw));
                            values.push(v);
                        }
                        None => {
                            row.push_null();
                            values.push(Value::Null);
                        }
                    },
                    Acc::Count(n) => {
                        let v = Value::Int(n);
                        row.push_value(codec, col, &v)?;
                        values.push(v);
                    }
                    Acc::Sum(v) => {
                        row.push_value(codec, col, &v)?;
                        values.push(v);
                    }
                    Acc::Avg { sum, count } => {
                        let v = average(&sum, count, self.spec.numeric)?;
                        row.push_value(codec, col, &v)?;
                        values.push(v);
                    }
                }
            }
            out.push(GroupRow { values, row });
        }
        Ok(out)
    }
}

/// AVG = sum / count with the backend's result type and scale.
pub fn average(sum: &Value, count: i64, rules: NumericRules) -> Result<Value, MergeError> {
    if count == 0 || sum.is_null() {
        return Ok(Value::Null);
    }
    let d = match sum {
        Value::Float(f) => return Ok(Value::Float(f / count as f64)),
        Value::Int(i) => Decimal::from_i64(*i),
        Value::Numeric(d) => d.clone(),
        other => {
            return Err(MergeError::Unsupported(format!("an average of {} values", other.kind_name())));
        }
    };
    let scale = match rules {
        NumericRules::Postgres => pg_select_div_scale(&d, &Decimal::from_i64(count)),
        NumericRules::Mysql { div_precision_increment, max_scale } => {
            (d.scale() + div_precision_increment).min(max_scale)
        }
    };
    d.div_int(count, scale).map(Value::Numeric).ok_or(MergeError::Overflow("average"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Value {
        Value::Numeric(Decimal::parse(s).unwrap_or_else(|| panic!("{s}")))
    }

    fn avg(sum: Value, count: i64, rules: NumericRules) -> String {
        match average(&sum, count, rules) {
            Ok(Value::Numeric(d)) => d.to_string(),
            Ok(Value::Float(f)) => f.to_string(),
            Ok(Value::Null) => "NULL".into(),
            other => panic!("{other:?}"),
        }
    }

    const MYSQL: NumericRules = NumericRules::Mysql { div_precision_increment: 4, max_scale: 30 };

    #[test]
    fn postgres_avg_scales() {
        let pg = NumericRules::Postgres;
        assert_eq!(avg(Value::Int(7), 3, pg), "2.3333333333333333");
        assert_eq!(avg(n("3.75"), 2, pg), "1.8750000000000000");
        assert_eq!(avg(Value::Int(6), 3, pg), "2.0000000000000000");
        assert_eq!(avg(Value::Int(1), 3, pg), "0.33333333333333333333");
        assert_eq!(avg(Value::Int(200_000), 2, pg), "100000.000000000000");
        assert_eq!(avg(Value::Int(-7), 3, pg), "-2.3333333333333333");
        assert_eq!(avg(n("1.00000000000000000001"), 1, pg), "1.00000000000000000001");
        assert_eq!(avg(Value::Float(3.0), 2, pg), "1.5");
        assert_eq!(avg(Value::Null, 0, pg), "NULL");
        assert_eq!(avg(Value::Int(5), 0, pg), "NULL");
    }

    #[test]
    fn mysql_avg_scales() {
        assert_eq!(avg(n("7"), 3, MYSQL), "2.3333");
        assert_eq!(avg(n("2"), 3, MYSQL), "0.6667");
        assert_eq!(avg(n("3.75"), 2, MYSQL), "1.875000");
        assert_eq!(avg(n("3.00"), 2, MYSQL), "1.500000");
        assert_eq!(avg(Value::Float(1.0), 4, MYSQL), "0.25");
        let capped = NumericRules::Mysql { div_precision_increment: 4, max_scale: 5 };
        assert_eq!(avg(n("1.000"), 3, capped), "0.33333");
    }
}
