//! Time-range placement: each range of the key's time value lives on one shard.
//!
//! Ranges are half-open `[from, to)` on the time line (microseconds since the
//! Unix epoch; a date is its midnight). The first range may have no `from`
//! and the last no `to`. Gaps are allowed: a value in a gap has no shard, so
//! an INSERT of it is refused with [`ErrorCode::NoShardForKey`] and a read
//! of it matches no row.
//!
//! [`ErrorCode::NoShardForKey`]: crate::error::ErrorCode::NoShardForKey

use std::ops::Bound;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::sharding::{ShardId, ShardSet};

/// One range and its shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub shard: ShardId,
}

impl TimeRange {
    pub fn contains(&self, t: i64) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    /// Whether some point of the interval lies in this range.
    pub fn intersects(&self, lo: Bound<i64>, hi: Bound<i64>) -> bool {
        // The interval's smallest point must be below `to`, its largest at or above `from`.
        let below_to = match (self.to, lo) {
            (None, _) | (_, Bound::Unbounded) => true,
            (Some(to), Bound::Included(l)) => l < to,
            (Some(to), Bound::Excluded(l)) => l.saturating_add(1) < to,
        };
        let above_from = match (self.from, hi) {
            (None, _) | (_, Bound::Unbounded) => true,
            (Some(from), Bound::Included(h)) => h >= from,
            (Some(from), Bound::Excluded(h)) => h > from,
        };
        below_to && above_from
    }
}

/// The ranges of a keyspace, sorted and non-overlapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeRanges {
    ranges: Vec<TimeRange>,
}

impl TimeRanges {
    /// Sorts the ranges; overlaps must have been rejected by validation.
    pub fn new(mut ranges: Vec<TimeRange>) -> TimeRanges {
        ranges.sort_by_key(|r| r.from.unwrap_or(i64::MIN));
        TimeRanges { ranges }
    }

    pub fn ranges(&self) -> &[TimeRange] {
        &self.ranges
    }

    /// The shard that holds time `t`, if any range covers it.
    pub fn shard_of(&self, t: i64) -> Option<ShardId> {
        let i = self.ranges.partition_point(|r| r.from.is_none_or(|f| f <= t));
        let r = self.ranges.get(i.checked_sub(1)?)?;
        r.contains(t).then_some(r.shard)
    }

    /// Every shard holding a range that meets the interval.
    pub fn shards_meeting(&self, lo: Bound<i64>, hi: Bound<i64>) -> ShardSet {
        if interval_is_empty(lo, hi) {
            return ShardSet::empty();
        }
        self.ranges.iter().filter(|r| r.intersects(lo, hi)).map(|r| r.shard).collect()
    }

    pub fn shards(&self) -> ShardSet {
        self.ranges.iter().map(|r| r.shard).collect()
    }

    /// Pairs of ranges that overlap (by index), for validation.
    pub fn overlaps(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, a) in self.ranges.iter().enumerate() {
            for (j, b) in self.ranges.iter().enumerate().skip(i + 1) {
                let a_end = a.to.map_or(Bound::Unbounded, Bound::Excluded);
                let a_start = a.from.map_or(Bound::Unbounded, Bound::Included);
                if b.intersects(a_start, a_end) {
                    out.push((i, j));
                }
            }
        }
        out
    }
}

/// Whether no point lies between the bounds.
pub fn interval_is_empty(lo: Bound<i64>, hi: Bound<i64>) -> bool {
    let first = match lo {
        Bound::Unbounded => i64::MIN,
        Bound::Included(l) => l,
        Bound::Excluded(l) => match l.checked_add(1) {
            Some(v) => v,
            None => return true,
        },
    };
    let last = match hi {
        Bound::Unbounded => i64::MAX,
        Bound::Included(h) => h,
        Bound::Excluded(h) => match h.checked_sub(1) {
            Some(v) => v,
            None => return true,
        },
    };
    first > last
}

/// The step of a generated range list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Month,
    Year,
}

impl Interval {
    /// The start of period `i` of a list anchored at `start` (counted from the
    /// anchor, so that month ends do not drift: Jan 31, Feb 29, Mar 31, …).
    pub fn nth(self, start: NaiveDate, i: u32) -> Option<NaiveDate> {
        match self {
            Interval::Day => start.checked_add_days(chrono::Days::new(u64::from(i))),
            Interval::Month => start.checked_add_months(chrono::Months::new(i)),
            Interval::Year => start.checked_add_months(chrono::Months::new(i.checked_mul(12)?)),
        }
    }
}

/// Generates `[start, end)` cut into periods of `interval`, period `i` on
/// `shards[i % shards.len()]`; with `open_start`/`open_end` the first and last
/// periods extend to the beginning and end of time.
pub fn generate(
    start: NaiveDate,
    end: NaiveDate,
    interval: Interval,
    shards: &[ShardId],
    open_start: bool,
    open_end: bool,
) -> Result<Vec<TimeRange>, &'static str> {
    if shards.is_empty() {
        return Err("a generated range list needs at least one shard");
    }
    if end <= start {
        return Err("`end` must be after `start`");
    }
    let mut out = Vec::new();
    let mut cur = start;
    while cur < end {
        let i = u32::try_from(out.len() + 1).map_err(|_| "too many generated ranges")?;
        let next = interval.nth(start, i).ok_or("a period runs past the calendar")?.min(end);
        out.push(TimeRange {
            from: Some(crate::sharding::key::datetime_to_micros(cur.and_time(chrono::NaiveTime::MIN))),
            to: Some(crate::sharding::key::datetime_to_micros(next.and_time(chrono::NaiveTime::MIN))),
            shard: shards[out.len() % shards.len()],
        });
        if out.len() > 100_000 {
            return Err("more than 100000 generated ranges");
        }
        cur = next;
    }
    if open_start && let Some(first) = out.first_mut() {
        first.from = None;
    }
    if open_end && let Some(last) = out.last_mut() {
        last.to = None;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharding::key::{datetime_to_micros, parse_timestamp};

    fn t(s: &str) -> i64 {
        let p = parse_timestamp(s).unwrap();
        datetime_to_micros(p.date.and_time(p.time))
    }

    fn yearly() -> TimeRanges {
        TimeRanges::new(vec![
            TimeRange { from: None, to: Some(t("2024-01-01")), shard: ShardId(0) },
            TimeRange { from: Some(t("2024-01-01")), to: Some(t("2025-01-01")), shard: ShardId(1) },
            TimeRange { from: Some(t("2025-01-01")), to: Some(t("2026-01-01")), shard: ShardId(2) },
            TimeRange { from: Some(t("2026-01-01")), to: None, shard: ShardId(3) },
        ])
    }

    #[test]
    fn point_lookup() {
        let r = yearly();
        assert_eq!(r.shard_of(t("1999-05-01")), Some(ShardId(0)));
        assert_eq!(r.shard_of(t("2024-01-01")), Some(ShardId(1)));
        assert_eq!(r.shard_of(t("2024-12-31 23:59:59.999999")), Some(ShardId(1)));
        assert_eq!(r.shard_of(t("2025-03-15 12:00")), Some(ShardId(2)));
        assert_eq!(r.shard_of(t("2999-01-01")), Some(ShardId(3)));
    }

    #[test]
    fn gaps_have_no_shard() {
        let r = TimeRanges::new(vec![
            TimeRange { from: Some(t("2024-01-01")), to: Some(t("2025-01-01")), shard: ShardId(0) },
            TimeRange { from: Some(t("2026-01-01")), to: Some(t("2027-01-01")), shard: ShardId(1) },
        ]);
        assert_eq!(r.shard_of(t("2023-06-01")), None);
        assert_eq!(r.shard_of(t("2025-06-01")), None);
        assert_eq!(r.shard_of(t("2027-01-01")), None);
        assert!(r.shards_meeting(Bound::Included(t("2025-02-01")), Bound::Excluded(t("2025-03-01"))).is_empty());
    }

    #[test]
    fn interval_pruning() {
        let r = yearly();
        let s = r.shards_meeting(Bound::Included(t("2024-06-01")), Bound::Excluded(t("2025-01-01")));
        assert_eq!(s, ShardSet::single(ShardId(1)));
        let s = r.shards_meeting(Bound::Included(t("2024-06-01")), Bound::Included(t("2025-01-01")));
        assert_eq!(s.len(), 2);
        let s = r.shards_meeting(Bound::Excluded(t("2025-12-31 23:59:59.999999")), Bound::Unbounded);
        assert_eq!(s, ShardSet::single(ShardId(3)));
        assert_eq!(r.shards_meeting(Bound::Unbounded, Bound::Unbounded).len(), 4);
    }

    #[test]
    fn generated_ranges() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let g =
            generate(d("2023-01-01"), d("2027-01-01"), Interval::Year, &[ShardId(0), ShardId(1)], true, true).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0].from, None);
        assert_eq!(g[3].to, None);
        assert_eq!(g.iter().map(|r| r.shard.0).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
        let m = generate(d("2024-01-31"), d("2024-04-01"), Interval::Month, &[ShardId(0)], false, false).unwrap();
        assert_eq!(m.len(), 3);
        assert!(TimeRanges::new(m).overlaps().is_empty());
    }
}
