//! Merge throughput: a k-way merge of 4 shards × 250k rows on an int key,
//! and GROUP BY of 1M partial rows into 1000 groups.
//!
//! cargo bench --bench merge

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shardgate::merge::codec::postgres::{PgCodec, PgColumn, kind_of, oid};
use shardgate::merge::{CellCodec, Collation, ColumnKind, MergeConfig, Merger, Row};
use shardgate::route::plan::{ColumnRef, Combine, RowMerge, SortKey};

const SHARDS: usize = 4;
const PER_SHARD: usize = 250_000;

fn columns(oids: &[u32]) -> (Vec<ColumnKind>, Arc<dyn CellCodec>) {
    let kinds = oids.iter().map(|&o| kind_of(o, Collation::Binary)).collect();
    let cols = oids.iter().map(|&o| PgColumn { type_oid: o, binary: true }).collect();
    (kinds, Arc::new(PgCodec::new(cols)))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    g.throughput(Throughput::Elements((SHARDS * PER_SHARD) as u64));

    // SELECT id, name FROM t ORDER BY id: each shard sorted on id (int8, binary).
    let (kinds, codec) = columns(&[oid::INT8, oid::TEXT]);
    let plan = RowMerge {
        order_by: vec![SortKey { column: ColumnRef::FromStart(0), descending: false, nulls_first: false }],
        ..Default::default()
    };
    let merger = Merger::new(&plan, kinds, codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let shards: Vec<Vec<Row>> = (0..SHARDS)
        .map(|s| {
            (0..PER_SHARD)
                .map(|i| {
                    let id = (i * SHARDS + s) as i64;
                    Row::from_cells([Some(&id.to_be_bytes()[..]), Some(&b"some name"[..])])
                })
                .collect()
        })
        .collect();
    g.bench_function("k-way merge 4 x 250k rows, int key", |b| {
        b.iter_batched(
            || shards.clone(),
            |shards| {
                let its: Vec<_> = shards.into_iter().map(|s| s.into_iter().map(Ok::<Row, Infallible>)).collect();
                let mut n = 0usize;
                for r in merger.rows(its) {
                    n += black_box(r.map(|r| r.len()).unwrap_or(0));
                }
                n
            },
            BatchSize::PerIteration,
        )
    });

    // SELECT g, count(*), sum(x) FROM t GROUP BY g: 1M partial rows, 1000 groups.
    let (kinds, codec) = columns(&[oid::INT8, oid::INT8, oid::INT8]);
    let plan = RowMerge {
        group_by: vec![ColumnRef::FromStart(0)],
        aggregates: vec![
            Combine::Key(ColumnRef::FromStart(0)),
            Combine::Count(ColumnRef::FromStart(1)),
            Combine::Sum(ColumnRef::FromStart(2)),
        ],
        aggregating: true,
        ..Default::default()
    };
    let merger = Merger::new(&plan, kinds, codec, MergeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let shards: Vec<Vec<Row>> = (0..SHARDS)
        .map(|s| {
            (0..PER_SHARD)
                .map(|i| {
                    let g = ((i * 7 + s) % 1000) as i64;
                    Row::from_cells([
                        Some(&g.to_be_bytes()[..]),
                        Some(&3i64.to_be_bytes()[..]),
                        Some(&(i as i64).to_be_bytes()[..]),
                    ])
                })
                .collect()
        })
        .collect();
    g.bench_function("group by 1M rows into 1000 groups", |b| {
        b.iter_batched(
            || shards.clone(),
            |shards| {
                let its: Vec<_> = shards.into_iter().map(|s| s.into_iter().map(Ok::<Row, Infallible>)).collect();
                merger.rows(its).count()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
