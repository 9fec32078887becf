//! Parse + plan costs of the router (figures in BENCHMARKS.md).
//!
//! cargo bench --bench router

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use shardgate::route::{Param, RouteContext, Router};
use shardgate::rules::Rules;
use shardgate::sharding::idgen::IdGenerator;

fn router() -> Router {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/demo-postgres.toml");
    let rules = Rules::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
    Router::new(Arc::new(rules), Arc::new(IdGenerator::new(1).unwrap_or_else(|| panic!("worker"))))
}

fn bench(c: &mut Criterion) {
    let r = router();
    let none: [Param; 0] = [];
    let cx = RouteContext::new(&none);

    c.bench_function("point select, parse + plan", |b| {
        b.iter(|| r.route(black_box("SELECT id, name, country FROM users WHERE id = 4242"), &cx).map(|p| p.len()))
    });

    let list: Vec<String> = (1..=100).map(|k| k.to_string()).collect();
    let in_sql = format!("SELECT id, name FROM users WHERE id IN ({})", list.join(", "));
    c.bench_function("100-key IN list, parse + plan + split", |b| {
        b.iter(|| r.route(black_box(&in_sql), &cx).map(|p| p.len()))
    });

    let rows: Vec<String> = (1..=100).map(|k| format!("({k}, 'user {k}', 'FR', '2025-01-01 00:00:00')")).collect();
    let insert = format!("INSERT INTO users (id, name, country, created_at) VALUES {}", rows.join(", "));
    c.bench_function("100-row INSERT, parse + plan + split", |b| {
        b.iter(|| r.route(black_box(&insert), &cx).map(|p| p.len()))
    });

    let prepared = r.prepare("SELECT id, name, country FROM users WHERE id = $1").unwrap_or_else(|e| panic!("{e}"));
    let mut k = 0i64;
    c.bench_function("point select, plan-cache hit + bind", |b| {
        b.iter(|| {
            k += 1;
            let params = [Param::Int(k)];
            let p = r.prepare(black_box(&prepared.sql)).and_then(|p| r.bind(&p, &RouteContext::new(&params)));
            p.map(|p| p.targets.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
