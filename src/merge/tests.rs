//! Merger tests: whole plans over several shards.

use std::convert::Infallible;
use std::sync::Arc;

use super::codec::mysql::{MyColumn, MysqlCodec, ty};
use super::codec::postgres::{PgCodec, PgColumn, oid};
use super::*;
use crate::route::plan::{ColumnRef, Combine, RowMerge, SortKey};

fn pg(oids: &[u32]) -> (Vec<ColumnKind>, Arc<dyn CellCodec>) {
    pg_coll(oids, Collation::Binary)
}

fn pg_coll(oids: &[u32], c: Collation) -> (Vec<ColumnKind>, Arc<dyn CellCodec>) {
    let kinds = oids.iter().map(|&o| codec::postgres::kind_of(o, c)).collect();
    let cols = oids.iter().map(|&o| PgColumn { type_oid: o, binary: false }).collect();
    (kinds, Arc::new(PgCodec::new(cols)))
}

fn row(cells: &[Option<&str>]) -> Row {
    Row::from_cells(cells.iter().map(|c| c.map(str::as_bytes)))
}

fn text(rows: &[Row]) -> Vec<Vec<Option<String>>> {
    rows.iter().map(|r| r.cells().map(|c| c.map(|b| String::from_utf8_lossy(b).into_owned())).collect()).collect()
}

fn s(v: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    v.iter().map(|r| r.iter().map(|c| c.map(str::to_owned)).collect()).collect()
}

fn run_with(
    plan: &RowMerge,
    kinds: Vec<ColumnKind>,
    codec: Arc<dyn CellCodec>,
    config: MergeConfig,
    shards: Vec<Vec<Row>>,
) -> Result<Vec<Row>, StreamError<Infallible>> {
    let m = Merger::new(plan, kinds, codec, config)?;
    let its: Vec<_> = shards.into_iter().map(|s| s.into_iter().map(Ok::<Row, Infallible>)).collect();
    m.rows(its).collect()
}

fn run(
    plan: &RowMerge,
    (kinds, codec): (Vec<ColumnKind>, Arc<dyn CellCodec>),
    shards: Vec<Vec<Row>>,
) -> Vec<Vec<Option<String>>> {
    text(&run_with(plan, kinds, codec, MergeConfig::default(), shards).unwrap_or_else(|e| panic!("{e}")))
}

fn asc(c: usize) -> SortKey {
    SortKey { column: ColumnRef::FromStart(c), descending: false, nulls_first: false }
}

fn c(i: usize) -> ColumnRef {
    ColumnRef::FromStart(i)
}

#[test]
fn streaming_sorted_with_offset_limit_and_hidden() {
    // SELECT name FROM t ORDER BY id LIMIT 2 OFFSET 1 → hidden id column.
    let plan = RowMerge { order_by: vec![asc(1)], offset: 1, limit: Some(2), hidden: 1, ..Default::default() };
    let shards = vec![
        vec![row(&[Some("a"), Some("1")]), row(&[Some("c"), Some("3")])],
        vec![row(&[Some("b"), Some("2")]), row(&[Some("d"), Some("4")])],
    ];
    assert_eq!(run(&plan, pg(&[oid::TEXT, oid::INT4]), shards), s(&[&[Some("b")], &[Some("c")]]));
}

#[test]
fn concatenation_offset_beyond_end_and_limit_zero() {
    let shards = || vec![vec![row(&[Some("1")])], vec![], vec![row(&[Some("2")]), row(&[Some("3")])]];
    let plan = RowMerge::default();
    assert_eq!(run(&plan, pg(&[oid::INT4]), shards()), s(&[&[Some("1")], &[Some("2")], &[Some("3")]]));
    let plan = RowMerge { offset: 5, ..Default::default() };
    assert!(run(&plan, pg(&[oid::INT4]), shards()).is_empty());
    let plan = RowMerge { limit: Some(0), ..Default::default() };
    assert!(run(&plan, pg(&[oid::INT4]), shards()).is_empty());
    let plan = RowMerge { limit: Some(0), order_by: vec![asc(0)], ..Default::default() };
    assert!(run(&plan, pg(&[oid::INT4]), shards()).is_empty());
}

#[test]
fn limit_stops_reading_shards() {
    let plan = RowMerge { limit: Some(2), ..Default::default() };
    let (kinds, codec) = pg(&[oid::INT4]);
    let m = Merger::new(&plan, kinds, codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let endless = (0..).map(|i: i64| Ok::<Row, Infallible>(row(&[Some(&i.to_string())])));
    let out: Vec<_> = m.rows(vec![endless]).collect();
    assert_eq!(out.len(), 2);
}

#[test]
fn shard_errors_are_forwarded_with_the_shard() {
    let plan = RowMerge { order_by: vec![asc(0)], ..Default::default() };
    let (kinds, codec) = pg(&[oid::INT4]);
    let m = Merger::new(&plan, kinds, codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let a = vec![Ok(row(&[Some("1")]))].into_iter();
    let b = vec![Err("connection reset")].into_iter();
    let out: Vec<_> = m.rows(vec![a, b]).collect();
    assert!(matches!(out.last(), Some(Err(StreamError::Shard { shard: 1, error: "connection reset" }))));
}

#[test]
fn count_sum_without_group_by_combines_one_row_per_shard() {
    // SELECT count(*), sum(x), min(x), max(x) FROM t — every shard answers one row.
    let plan = RowMerge {
        aggregates: vec![Combine::Count(c(0)), Combine::Sum(c(1)), Combine::Min(c(2)), Combine::Max(c(3))],
        aggregating: true,
        ..Default::default()
    };
    let k = || pg(&[oid::INT8, oid::NUMERIC, oid::NUMERIC, oid::NUMERIC]);
    let shards = vec![
        vec![row(&[Some("2"), Some("1.50"), Some("0.5"), Some("1.00")])],
        vec![row(&[Some("0"), None, None, None])],
        vec![row(&[Some("1"), Some("2.25"), Some("2.25"), Some("2.25")])],
    ];
    assert_eq!(run(&plan, k(), shards), s(&[&[Some("3"), Some("3.75"), Some("0.5"), Some("2.25")]]));
    // Every shard empty: COUNT 0, the rest NULL.
    let shards = vec![vec![row(&[Some("0"), None, None, None])], vec![row(&[Some("0"), None, None, None])]];
    assert_eq!(run(&plan, k(), shards), s(&[&[Some("0"), None, None, None]]));
    // No rows at all (no shard answered a row): still one row.
    assert_eq!(run(&plan, k(), vec![vec![], vec![]]), s(&[&[Some("0"), None, None, None]]));
}

#[test]
fn numeric_sums_are_exact() {
    let plan = RowMerge { aggregates: vec![Combine::Sum(c(0))], aggregating: true, ..Default::default() };
    let shards = vec![vec![row(&[Some("1.10")])], vec![row(&[Some("2.20")])]];
    assert_eq!(run(&plan, pg(&[oid::NUMERIC]), shards), s(&[&[Some("3.30")]]));
    let shards = vec![
        vec![row(&[Some("0.1")])],
        vec![row(&[Some("0.2")])],
        vec![row(&[Some("99999999999999999999999999999.9")])],
    ];
    assert_eq!(run(&plan, pg(&[oid::NUMERIC]), shards), s(&[&[Some("100000000000000000000000000000.2")]]));
    // sum(int8) is numeric in PostgreSQL; bigint sums overflowing i64 stay exact.
    let shards = vec![vec![row(&[Some("9223372036854775807")])], vec![row(&[Some("9223372036854775807")])]];
    assert_eq!(run(&plan, pg(&[oid::NUMERIC]), shards), s(&[&[Some("18446744073709551614")]]));
    // An int8 sum column (sum(int4)) overflowing is an error, not a wrong answer.
    let (kinds, codec) = pg(&[oid::INT8]);
    let shards = vec![vec![row(&[Some("9223372036854775807")])], vec![row(&[Some("1")])]];
    let r = run_with(&plan, kinds, codec, MergeConfig::default(), shards);
    assert!(matches!(r, Err(StreamError::Merge(MergeError::Overflow(_)))));
}

#[test]
fn avg_postgres_and_mysql() {
    // SELECT avg(x) FROM t → sum(x) and a hidden count(x).
    let plan = RowMerge {
        aggregates: vec![Combine::Avg { sum: c(0), count: c(1) }],
        aggregating: true,
        hidden: 1,
        ..Default::default()
    };
    // avg(int4) of 1, 2 | 4: shards send sum (int8) and count.
    let shards = vec![vec![row(&[Some("3"), Some("2")])], vec![row(&[Some("4"), Some("1")])]];
    let (kinds, mut_codec) = pg(&[oid::INT8, oid::INT8]);
    let m = Merger::new(&plan, kinds.clone(), mut_codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.retyped_columns(), vec![Retyped { column: 0, kind: ColumnKind::Numeric }]);
    let mut codec = PgCodec::new(vec![PgColumn { type_oid: oid::INT8, binary: false }; 2]);
    codec.retype(0, PgColumn { type_oid: oid::NUMERIC, binary: false });
    assert_eq!(run(&plan, (kinds, Arc::new(codec)), shards), s(&[&[Some("2.3333333333333333")]]));
    // avg(numeric) of 1.50, 2.25
    let shards = vec![vec![row(&[Some("1.50"), Some("1")])], vec![row(&[Some("2.25"), Some("1")])]];
    assert_eq!(run(&plan, pg(&[oid::NUMERIC, oid::INT8]), shards), s(&[&[Some("1.8750000000000000")]]));
    // avg over no rows: NULL.
    let shards = vec![vec![row(&[None, Some("0")])], vec![row(&[None, Some("0")])]];
    assert_eq!(run(&plan, pg(&[oid::NUMERIC, oid::INT8]), shards), s(&[&[None]]));

    // MySQL: SUM(int) is DECIMAL "3"/"4", AVG scale 0 + 4.
    let cols = vec![MyColumn::new(ty::NEWDECIMAL), MyColumn::new(ty::LONGLONG)];
    let kinds: Vec<_> = cols.iter().map(|c| codec::mysql::kind_of(c, Collation::MysqlGeneralCi)).collect();
    let mysql: Arc<dyn CellCodec> = Arc::new(MysqlCodec::new(cols, false));
    let config = MergeConfig { numeric: NumericRules::MYSQL_DEFAULT, ..Default::default() };
    let shards = vec![vec![row(&[Some("3"), Some("2")])], vec![row(&[Some("4"), Some("1")])]];
    let out = run_with(&plan, kinds.clone(), mysql.clone(), config, shards).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&out), s(&[&[Some("2.3333")]]));
    // AVG of DECIMAL(12,2): scale 2 + 4.
    let shards = vec![vec![row(&[Some("1.50"), Some("1")])], vec![row(&[Some("2.25"), Some("1")])]];
    let out = run_with(&plan, kinds, mysql, config, shards).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&out), s(&[&[Some("1.875000")]]));
}

#[test]
fn mysql_sum_and_count_types() {
    // SELECT COUNT(*), SUM(i), SUM(d) with d DECIMAL(12,2).
    let plan = RowMerge {
        aggregates: vec![Combine::Count(c(0)), Combine::Sum(c(1)), Combine::Sum(c(2))],
        aggregating: true,
        ..Default::default()
    };
    let cols = vec![
        MyColumn::new(ty::LONGLONG),
        MyColumn::new(ty::NEWDECIMAL),
        MyColumn { decimals: 2, ..MyColumn::new(ty::NEWDECIMAL) },
    ];
    let kinds: Vec<_> = cols.iter().map(|c| codec::mysql::kind_of(c, Collation::MysqlGeneralCi)).collect();
    let codec: Arc<dyn CellCodec> = Arc::new(MysqlCodec::new(cols, false));
    let shards =
        vec![vec![row(&[Some("2"), Some("3"), Some("1.50")])], vec![row(&[Some("1"), Some("3"), Some("2.50")])]];
    assert_eq!(run(&plan, (kinds, codec), shards), s(&[&[Some("3"), Some("6"), Some("4.00")]]));
}

#[test]
fn group_by_visible_and_hidden_keys_sorted() {
    // SELECT g, count(*), sum(x) FROM t GROUP BY g ORDER BY g DESC
    let plan = RowMerge {
        group_by: vec![c(0)],
        aggregates: vec![Combine::Key(c(0)), Combine::Count(c(1)), Combine::Sum(c(2))],
        aggregating: true,
        order_by: vec![SortKey { column: c(0), descending: true, nulls_first: true }],
        ..Default::default()
    };
    let shards = vec![
        vec![
            row(&[Some("a"), Some("1"), Some("10")]),
            row(&[Some("b"), Some("2"), None]),
            row(&[None, Some("1"), Some("1")]),
        ],
        vec![
            row(&[Some("b"), Some("3"), Some("5")]),
            row(&[Some("c"), Some("1"), None]),
            row(&[None, Some("2"), Some("2")]),
        ],
    ];
    assert_eq!(
        run(&plan, pg(&[oid::TEXT, oid::INT8, oid::INT8]), shards),
        s(&[
            &[None, Some("3"), Some("3")],
            &[Some("c"), Some("1"), None],
            &[Some("b"), Some("5"), Some("5")],
            &[Some("a"), Some("1"), Some("10")],
        ])
    );
    // SELECT count(*) FROM t GROUP BY g ORDER BY count(*) — g hidden.
    let plan = RowMerge {
        group_by: vec![c(1)],
        aggregates: vec![Combine::Count(c(0)), Combine::Key(c(1))],
        aggregating: true,
        order_by: vec![asc(0)],
        hidden: 1,
        ..Default::default()
    };
    let shards = vec![
        vec![row(&[Some("5"), Some("x")]), row(&[Some("1"), Some("y")])],
        vec![row(&[Some("1"), Some("y")]), row(&[Some("1"), Some("z")])],
    ];
    assert_eq!(run(&plan, pg(&[oid::INT8, oid::TEXT]), shards), s(&[&[Some("1")], &[Some("2")], &[Some("5")]]));
}

#[test]
fn group_by_case_insensitive_and_numeric_equal_values() {
    let plan = RowMerge {
        group_by: vec![c(0)],
        aggregates: vec![Combine::Key(c(0)), Combine::Count(c(1))],
        aggregating: true,
        ..Default::default()
    };
    let shards = vec![
        vec![row(&[Some("Apple"), Some("1")]), row(&[Some("b"), Some("1")])],
        vec![row(&[Some("APPLE "), Some("2")]), row(&[Some("café"), Some("1")])],
        vec![row(&[Some("CAFE"), Some("1")])],
    ];
    let cols = vec![MyColumn::new(ty::VAR_STRING), MyColumn::new(ty::LONGLONG)];
    let kinds: Vec<_> = cols.iter().map(|c| codec::mysql::kind_of(c, Collation::MysqlGeneralCi)).collect();
    let codec: Arc<dyn CellCodec> = Arc::new(MysqlCodec::new(cols, false));
    assert_eq!(
        run(&plan, (kinds, codec), shards),
        s(&[&[Some("Apple"), Some("3")], &[Some("b"), Some("1")], &[Some("café"), Some("2")]])
    );
    // 1.5 and 1.50 are one group.
    let shards = vec![vec![row(&[Some("1.5"), Some("1")])], vec![row(&[Some("1.50"), Some("1")])]];
    assert_eq!(run(&plan, pg(&[oid::NUMERIC, oid::INT8]), shards), s(&[&[Some("1.5"), Some("2")]]));
}

#[test]
fn group_by_without_aggregates_and_no_rows() {
    // SELECT g FROM t GROUP BY g with every shard empty: no rows (GROUP BY).
    let plan = RowMerge {
        group_by: vec![c(0)],
        aggregates: vec![Combine::Key(c(0))],
        aggregating: true,
        ..Default::default()
    };
    assert!(run(&plan, pg(&[oid::INT4]), vec![vec![], vec![]]).is_empty());
    let shards = vec![vec![row(&[Some("1")]), row(&[Some("2")])], vec![row(&[Some("2")])]];
    assert_eq!(run(&plan, pg(&[oid::INT4]), shards), s(&[&[Some("1")], &[Some("2")]]));
}

#[test]
fn distinct_with_and_without_order() {
    let plan = RowMerge { distinct: true, ..Default::default() };
    let shards = || {
        vec![
            vec![row(&[Some("b"), Some("1")]), row(&[Some("a"), None])],
            vec![row(&[Some("a"), None]), row(&[Some("B"), Some("1")]), row(&[Some("b"), Some("1")])],
        ]
    };
    assert_eq!(
        run(&plan, pg(&[oid::TEXT, oid::INT4]), shards()),
        s(&[&[Some("b"), Some("1")], &[Some("a"), None], &[Some("B"), Some("1")]])
    );
    let plan = RowMerge { distinct: true, order_by: vec![asc(0)], offset: 1, ..Default::default() };
    assert_eq!(
        run(&plan, pg_coll(&[oid::TEXT, oid::INT4], Collation::MysqlGeneralCi), shards()),
        s(&[&[Some("b"), Some("1")]])
    );
}

#[test]
fn caps_refuse_with_limit_exceeded() {
    let plan = RowMerge {
        group_by: vec![c(0)],
        aggregates: vec![Combine::Key(c(0))],
        aggregating: true,
        ..Default::default()
    };
    let (kinds, codec) = pg(&[oid::INT4]);
    let config = MergeConfig { max_buffered_rows: 2, ..Default::default() };
    let shards = vec![vec![row(&[Some("1")]), row(&[Some("2")])], vec![row(&[Some("1")]), row(&[Some("3")])]];
    let r = run_with(&plan, kinds.clone(), codec.clone(), config, shards);
    match r {
        Err(StreamError::Merge(e)) => {
            assert_eq!(crate::error::Coded::code(&e), crate::error::ErrorCode::LimitExceeded)
        }
        other => panic!("{other:?}"),
    }
    let config = MergeConfig { max_buffered_bytes: 10, ..Default::default() };
    let plan = RowMerge { distinct: true, ..Default::default() };
    let r = run_with(&plan, kinds, codec, config, vec![vec![row(&[Some("1")])]]);
    assert!(matches!(r, Err(StreamError::Merge(MergeError::LimitExceeded { what: "bytes", .. }))));
}

#[test]
fn large_buffered_sort_uses_parallel_path() {
    let plan = RowMerge {
        group_by: vec![c(0)],
        aggregates: vec![Combine::Key(c(0)), Combine::Count(c(1))],
        aggregating: true,
        order_by: vec![SortKey { column: c(0), descending: true, nulls_first: false }],
        ..Default::default()
    };
    let (kinds, codec) = pg(&[oid::INT4, oid::INT8]);
    let config = MergeConfig { parallel_sort_threshold: 10, ..Default::default() };
    let shards: Vec<Vec<Row>> =
        (0..3).map(|s| (0..100).map(|i| row(&[Some(&((i * 7 + s) % 50).to_string()), Some("1")])).collect()).collect();
    let out = text(&run_with(&plan, kinds, codec, config, shards).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(out.len(), 50);
    assert_eq!(out[0], vec![Some("49".to_string()), Some("6".to_string())]);
    assert_eq!(out[49], vec![Some("0".to_string()), Some("6".to_string())]);
}

#[test]
fn plans_that_cannot_merge_are_refused_up_front() {
    let (mut kinds, codec) = pg(&[oid::TEXT, oid::INT4]);
    let plan = RowMerge { aggregates: vec![Combine::Sum(c(0))], aggregating: true, ..Default::default() };
    assert!(matches!(
        Merger::new(&plan, kinds.clone(), codec.clone(), MergeConfig::default()),
        Err(MergeError::Unsupported(_))
    ));
    let plan = RowMerge { order_by: vec![asc(5)], ..Default::default() };
    assert!(matches!(
        Merger::new(&plan, kinds.clone(), codec.clone(), MergeConfig::default()),
        Err(MergeError::BadColumn { .. })
    ));
    let plan = RowMerge { hidden: 3, ..Default::default() };
    assert!(Merger::new(&plan, kinds.clone(), codec.clone(), MergeConfig::default()).is_err());
    kinds[1] = ColumnKind::Other;
    let plan = RowMerge { order_by: vec![asc(1)], ..Default::default() };
    assert!(Merger::new(&plan, kinds.clone(), codec.clone(), MergeConfig::default()).is_err());
    // Other columns pass through untouched when nothing looks at them.
    let plan = RowMerge { order_by: vec![asc(0)], ..Default::default() };
    let shards = vec![vec![row(&[Some("b"), Some("(1,2)")])], vec![row(&[Some("a"), Some("(3,4)")])]];
    assert_eq!(run(&plan, (kinds, codec), shards), s(&[&[Some("a"), Some("(3,4)")], &[Some("b"), Some("(1,2)")]]));
}

#[test]
fn from_end_columns_resolve_against_the_width() {
    // SELECT *, … ORDER BY hidden: key counted from the end.
    let plan = RowMerge {
        order_by: vec![SortKey { column: ColumnRef::FromEnd(0), descending: false, nulls_first: false }],
        hidden: 1,
        ..Default::default()
    };
    let shards = vec![vec![row(&[Some("x"), Some("y"), Some("2")])], vec![row(&[Some("p"), Some("q"), Some("1")])]];
    assert_eq!(
        run(&plan, pg(&[oid::TEXT, oid::TEXT, oid::INT4]), shards),
        s(&[&[Some("p"), Some("q")], &[Some("x"), Some("y")]])
    );
}

#[test]
fn push_apis_for_async_executors() {
    let plan = RowMerge { order_by: vec![asc(0)], limit: Some(3), ..Default::default() };
    let (kinds, codec) = pg(&[oid::INT4]);
    let m = Merger::new(&plan, kinds, codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.is_streaming());
    let mut k = m.kway(2);
    let mut tail = m.tail();
    let mut data = [vec!["1", "4"].into_iter(), vec!["2", "3"].into_iter()];
    let mut out = Vec::new();
    while !tail.is_done() {
        while let Some(s) = k.wants() {
            let r = data[s].next().map(|v| row(&[Some(v)]));
            k.feed(s, r).unwrap_or_else(|e| panic!("{e}"));
        }
        let Some(r) = k.pop() else { break };
        if let TailStep::Emit(r) = tail.step(r) {
            out.push(r);
        }
    }
    assert_eq!(text(&out), s(&[&[Some("1")], &[Some("2")], &[Some("3")]]));

    let plan = RowMerge { distinct: true, order_by: vec![asc(0)], ..Default::default() };
    let (kinds, codec) = pg(&[oid::INT4]);
    let m = Merger::new(&plan, kinds, codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut b = m.buffer();
    for (shard, v) in [(1, "2"), (0, "1"), (1, "1"), (0, "3")] {
        b.push(shard, row(&[Some(v)])).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(b.push(0, row(&[Some("1"), None])).is_err());
    let out = b.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&out), s(&[&[Some("1")], &[Some("2")], &[Some("3")]]));
}
