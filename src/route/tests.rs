//! Unit tests of the router: one per routing rule, in both dialects where
//! the dialects differ.

use std::sync::Arc;

use super::*;
use crate::error::{Coded, ErrorCode};
use crate::route::plan::{CompareOp, Having, HavingLiteral};
use crate::rules::{KeyPlacement, Rules};

const RULES: &str = r#"
backend = "BACKEND"

[[shard]]
name = "s0"
host = "127.0.0.1"
port = 1
database = "db"
user = "u"

[[shard]]
name = "s1"
host = "127.0.0.1"
port = 2
database = "db"
user = "u"

[[shard]]
name = "s2"
host = "127.0.0.1"
port = 3
database = "db"
user = "u"

[[shard]]
name = "s3"
host = "127.0.0.1"
port = 4
database = "db"
user = "u"

[keyspace.user]
algorithm = "hash"
key_type = "integer"

[keyspace.by_year]
algorithm = "time_range"
key_type = "timestamp"
ranges = [
  { to = "2024-01-01", shard = "s0" },
  { from = "2024-01-01", to = "2025-01-01", shard = "s1" },
  { from = "2025-01-01", to = "2026-01-01", shard = "s2" },
  { from = "2026-01-01", to = "2027-01-01", shard = "s3" },
]

[[table]]
name = "users"
keyspace = "user"
key = "id"

[[table]]
name = "orders"
keyspace = "user"
key = "user_id"
generated_id = "id"

[[table]]
name = "events"
keyspace = "by_year"
key = "created_at"
generated_id = "id"

[[table]]
name = "countries"
reference = true

[[table]]
name = "audit"
shard = "s1"

[[table]]
name = "settings"
shard = "s1"
"#;

fn rules_for(backend: &str, extra: &str) -> Arc<Rules> {
    let text = format!("{}{extra}", RULES.replace("BACKEND", backend));
    Arc::new(Rules::parse_with_env(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}")))
}

fn pg() -> Router {
    Router::new(rules_for("postgres", ""), Arc::new(IdGenerator::new(1).unwrap()))
}

fn my() -> Router {
    Router::new(rules_for("mysql", ""), Arc::new(IdGenerator::new(1).unwrap()))
}

fn plan_p(r: &Router, sql: &str, params: &[Param]) -> Plan {
    let plans = r.route(sql, &RouteContext::new(params)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(plans.len(), 1, "{sql}");
    plans.into_iter().next().unwrap()
}

fn plan(r: &Router, sql: &str) -> Plan {
    plan_p(r, sql, &[])
}

fn err(r: &Router, sql: &str) -> RouteError {
    match r.route(sql, &RouteContext::new(&[])) {
        Ok(p) => panic!("{sql} was routed: {p:?}"),
        Err(e) => e,
    }
}

fn names(r: &Router, p: &Plan) -> Vec<String> {
    p.targets.iter().map(|t| r.rules().shard(t.shard).name.clone()).collect()
}

fn owner(r: &Router, table: &str, key: i64) -> String {
    let rules = r.rules();
    let t = rules.table(None, table).unwrap().clone();
    match rules.locate(&t, Literal::Int(key)).unwrap() {
        KeyPlacement::Shard(s) => rules.shard(s).name.clone(),
        other => panic!("{other:?}"),
    }
}

fn shard_of_key(r: &Router, key: i64) -> String {
    owner(r, "users", key)
}

/// Keys 1..=40 grouped by owner, so tests can pick keys on distinct shards.
fn keys_on_distinct_shards(r: &Router, n: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut keys = Vec::new();
    for k in 1..=200 {
        let s = shard_of_key(r, k);
        if !seen.contains(&s) {
            seen.push(s);
            keys.push(k);
            if keys.len() == n {
                break;
            }
        }
    }
    keys
}

// ---- reads -------------------------------------------------------------

#[test]
fn point_select_goes_to_the_owner() {
    let r = pg();
    for k in [1, 2, 42, -7, 1_000_000] {
        let p = plan(&r, &format!("SELECT * FROM users WHERE id = {k}"));
        assert_eq!(names(&r, &p), vec![shard_of_key(&r, k)]);
        assert_eq!(p.merge, Merge::Forward);
        // Sent exactly as written.
        assert_eq!(&*p.targets[0].sql, format!("SELECT * FROM users WHERE id = {k}"));
    }
}

#[test]
fn spellings_of_one_key_agree() {
    let r = pg();
    let a = plan(&r, "SELECT * FROM users WHERE id = 42");
    for sql in [
        "SELECT * FROM users WHERE id = '42'",
        "SELECT * FROM users WHERE 42 = id",
        "SELECT * FROM users WHERE id = 42.0",
        "SELECT * FROM users WHERE users.id = 42",
        "SELECT * FROM users u WHERE u.id = '42'::bigint",
        "SELECT * FROM users WHERE (id = 42)",
        "SELECT * FROM public.users WHERE id = 42",
    ] {
        assert_eq!(names(&r, &plan(&r, sql)), names(&r, &a), "{sql}");
    }
}

#[test]
fn parameters_route_like_literals() {
    let r = pg();
    let p = plan_p(&r, "SELECT * FROM users WHERE id = $1", &[Param::Text("42".into())]);
    assert_eq!(names(&r, &p), vec![shard_of_key(&r, 42)]);
    let p = plan_p(&r, "SELECT * FROM users WHERE id = $1", &[Param::Int(42)]);
    assert_eq!(names(&r, &p), vec![shard_of_key(&r, 42)]);
    let e = r.route("SELECT * FROM users WHERE id = $2", &RouteContext::new(&[Param::Int(1)])).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidParameter);
}

#[test]
fn in_list_is_split_by_owner() {
    let r = pg();
    let keys: Vec<i64> = (1..=30).collect();
    let list = keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let p = plan(&r, &format!("SELECT * FROM users WHERE id IN ({list}) AND name <> 'x'"));
    assert!(p.targets.len() > 1);
    let mut delivered = Vec::new();
    for t in &p.targets {
        let shard = r.rules().shard(t.shard).name.clone();
        let stmt = &*t.sql;
        let inner = stmt.split("IN (").nth(1).unwrap().split(')').next().unwrap();
        for k in inner.split(", ") {
            let k: i64 = k.parse().unwrap();
            assert_eq!(shard_of_key(&r, k), shard, "{k} sent to {shard}");
            delivered.push(k);
        }
        assert!(stmt.ends_with("AND name <> 'x'"), "{stmt}");
    }
    delivered.sort();
    assert_eq!(delivered, keys, "every key exactly once");
}

#[test]
fn in_list_of_parameters_renumbers_them() {
    let r = pg();
    let keys = keys_on_distinct_shards(&r, 2);
    let params: Vec<Param> = vec![Param::Int(keys[0]), Param::Text("n".into()), Param::Int(keys[1])];
    let p = plan_p(&r, "SELECT * FROM users WHERE id IN ($1, $3) AND name = $2", &params);
    assert_eq!(p.targets.len(), 2);
    for t in &p.targets {
        // The shard's parameters keep their relative order: $1 and $3 of
        // the client become $1 and $2 of the shard.
        let map = t.params.as_ref().unwrap();
        assert_eq!(map.len(), 2);
        let in_param = t.sql.split("IN ($").nth(1).unwrap().split(')').next().unwrap();
        let name_param = t.sql.split("name = $").nth(1).unwrap();
        let key = match &params[map[in_param.parse::<usize>().unwrap() - 1]] {
            Param::Int(k) => *k,
            _ => panic!(),
        };
        assert_eq!(params[map[name_param.parse::<usize>().unwrap() - 1]], Param::Text("n".into()));
        assert_eq!(shard_of_key(&r, key), r.rules().shard(t.shard).name);
    }
}

#[test]
fn mysql_placeholders_are_positional() {
    let r = my();
    let keys = keys_on_distinct_shards(&r, 2);
    let params = vec![Param::Text("n".into()), Param::Int(keys[0]), Param::Int(keys[1])];
    let p = plan_p(&r, "SELECT * FROM `users` WHERE name = ? AND id IN (?, ?)", &params);
    assert_eq!(p.targets.len(), 2);
    for t in &p.targets {
        assert!(t.sql.contains("name = ? AND id IN (?)"), "{}", t.sql);
        let map = t.params.as_ref().unwrap();
        assert_eq!(map[0], 0);
        let key = match &params[map[1]] {
            Param::Int(k) => *k,
            _ => panic!(),
        };
        assert_eq!(owner(&r, "users", key), r.rules().shard(t.shard).name);
    }
    let one = plan_p(&r, "SELECT * FROM users WHERE id = ?", &[Param::Int(keys[0])]);
    assert_eq!(one.targets.len(), 1);
    assert_eq!(&*one.targets[0].sql, "SELECT * FROM users WHERE id = ?");
}

#[test]
fn or_of_keys_is_the_union() {
    let r = pg();
    let keys = keys_on_distinct_shards(&r, 2);
    let p = plan(&r, &format!("SELECT * FROM users WHERE id = {} OR id = {}", keys[0], keys[1]));
    let mut want = vec![shard_of_key(&r, keys[0]), shard_of_key(&r, keys[1])];
    want.sort();
    assert_eq!(names(&r, &p), want);
    // An OR with a non-key branch can match anywhere.
    let p = plan(&r, &format!("SELECT * FROM users WHERE id = {} OR name = 'x'", keys[0]));
    assert_eq!(p.targets.len(), 4);
    // A contradiction matches nothing: one shard answers, with no rows.
    let p = plan(&r, &format!("SELECT * FROM users WHERE id = {} AND id = {}", keys[0], keys[1]));
    assert_eq!(p.targets.len(), 1);
    assert!(matches!(p.targets[0].reason, Reason::NoKey { .. }));
}

#[test]
fn no_key_predicate_scatters() {
    let r = pg();
    let p = plan(&r, "SELECT * FROM users WHERE name = 'x'");
    assert_eq!(names(&r, &p), vec!["s0", "s1", "s2", "s3"]);
    assert!(matches!(p.targets[0].reason, Reason::Scatter { .. }));
    assert!(matches!(p.merge, Merge::Rows(_)));
    // Range predicates do not prune a hash keyspace.
    assert_eq!(plan(&r, "SELECT * FROM users WHERE id > 5").targets.len(), 4);
    // Negations do not prune either.
    assert_eq!(plan(&r, "SELECT * FROM users WHERE NOT id = 5").targets.len(), 4);
    assert_eq!(plan(&r, "SELECT * FROM users WHERE id NOT IN (1, 2)").targets.len(), 4);
}

#[test]
fn time_ranges_prune() {
    let r = pg();
    let cases: &[(&str, &[&str])] = &[
        ("created_at = '2025-03-15 12:00:00'", &["s2"]),
        ("created_at >= '2024-06-01' AND created_at < '2025-01-01'", &["s1"]),
        ("created_at >= '2024-06-01' AND created_at <= '2025-01-01'", &["s1", "s2"]),
        ("created_at BETWEEN '2023-05-01' AND '2024-02-01'", &["s0", "s1"]),
        ("created_at < '2024-01-01'", &["s0"]),
        ("created_at >= '2026-01-01'", &["s3"]),
        ("created_at = '2023-01-01' OR created_at = '2026-06-01'", &["s0", "s3"]),
        ("created_at >= TIMESTAMP '2025-01-01 00:00:00'", &["s2", "s3"]),
        ("kind = 'x'", &["s0", "s1", "s2", "s3"]),
        // Without a cast, a timestamp column ignores the literal's offset.
        ("created_at < '2023-12-31 23:59:00-12'", &["s0"]),
        ("created_at < '2023-12-31 12:00'::timestamptz", &["s0"]),
        // Cast to timestamptz, the offset counts: 2024-01-01 11:59 UTC.
        ("created_at < '2023-12-31 23:59:00-12'::timestamptz", &["s0", "s1", "s2", "s3"]),
        ("created_at < CAST('2023-12-31 23:59:00-12' AS timestamptz)", &["s0", "s1", "s2", "s3"]),
        ("created_at < TIMESTAMPTZ '2023-12-31 23:59:00-12'", &["s0", "s1", "s2", "s3"]),
    ];
    for (pred, want) in cases {
        let p = plan(&r, &format!("SELECT * FROM events WHERE {pred}"));
        assert_eq!(names(&r, &p), *want, "{pred}");
    }
    // Beyond the last range: no shard can hold a match.
    let p = plan(&r, "SELECT * FROM events WHERE created_at >= '2030-01-01'");
    assert_eq!(p.targets.len(), 1);
    assert!(matches!(p.targets[0].reason, Reason::NoKey { .. }));
}

#[test]
fn statements_without_tables_go_to_one_shard() {
    let r = pg();
    for sql in [
        "SELECT 1",
        "SELECT version()",
        "SELECT current_setting('server_version')",
        "SELECT * FROM pg_catalog.pg_class",
        "SELECT * FROM pg_type",
        "SELECT * FROM information_schema.tables",
        "SET search_path TO public",
        "SHOW TimeZone",
    ] {
        let p = plan(&r, sql);
        assert_eq!(p.targets.len(), 1, "{sql}");
        assert_eq!(p.merge, Merge::Forward);
    }
    let m = my();
    for sql in ["SELECT @@version", "SELECT DATABASE()", "SHOW DATABASES", "SELECT * FROM information_schema.columns"] {
        assert_eq!(plan(&m, sql).targets.len(), 1, "{sql}");
    }
    // Inside a transaction: the transaction's shard.
    let p = r.route("SELECT 1", &RouteContext { pinned: Some(ShardId(2)), ..RouteContext::new(&[]) }).unwrap();
    assert_eq!(p[0].targets[0].shard, ShardId(2));
}

#[test]
fn reference_tables() {
    let r = pg();
    let p = plan(&r, "SELECT * FROM countries");
    assert_eq!(p.targets.len(), 1);
    assert!(matches!(p.targets[0].reason, Reason::ReferenceRead { .. }));
    let p = plan(&r, "INSERT INTO countries (code, name) VALUES ('FR', 'France')");
    assert_eq!(p.targets.len(), 4);
    assert_eq!(p.merge, Merge::Broadcast);
    let p = plan(&r, "UPDATE countries SET name = 'X' WHERE code = 'FR'");
    assert_eq!(p.targets.len(), 4);
    assert_eq!(
        err(&r, "INSERT INTO countries (code, name) VALUES ('FR', random()::text)").code(),
        ErrorCode::Unsupported
    );
    assert_eq!(err(&r, "UPDATE countries SET name = now()::text").code(), ErrorCode::Unsupported);
    let e = err(&r, "UPDATE countries SET name = (SELECT name FROM users WHERE id = 1)");
    assert!(e.to_string().contains("diverge"), "{e}");
    assert_eq!(err(&r, "INSERT INTO countries SELECT code, name FROM users").code(), ErrorCode::Unsupported);
}

#[test]
fn pinned_and_unknown_tables() {
    let r = pg();
    let p = plan(&r, "SELECT * FROM audit WHERE x = 1");
    assert_eq!(names(&r, &p), vec!["s1"]);
    let p = plan(&r, "SELECT * FROM audit a JOIN settings s ON a.k = s.k");
    assert_eq!(names(&r, &p), vec!["s1"]);
    let e = err(&r, "SELECT * FROM nowhere");
    assert_eq!(e.code(), ErrorCode::UnknownTable);
    assert!(e.to_string().contains("nowhere"));
    assert_eq!(err(&r, "INSERT INTO nowhere (a) VALUES (1)").code(), ErrorCode::UnknownTable);
    let text = format!("default_shard = \"s3\"\n{}", RULES.replace("BACKEND", "postgres"));
    let rules = Arc::new(Rules::parse_with_env(&text, "t.toml", &|_| None).unwrap());
    let r2 = Router::new(rules, Arc::new(IdGenerator::new(1).unwrap()));
    let p = plan(&r2, "SELECT * FROM nowhere");
    assert_eq!(names(&r2, &p), vec!["s3"]);
    assert!(matches!(p.targets[0].reason, Reason::DefaultShard { .. }));
}

// ---- joins and subqueries -----------------------------------------------

#[test]
fn co_located_joins_are_pushed_down() {
    let r = pg();
    let p = plan(&r, "SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id");
    assert_eq!(p.targets.len(), 4);
    let p = plan(&r, "SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 7");
    assert_eq!(names(&r, &p), vec![shard_of_key(&r, 7)]);
    // The constraint carries across the join equality.
    let p = plan(&r, "SELECT * FROM users u, orders o WHERE o.user_id = u.id AND o.user_id = 7");
    assert_eq!(names(&r, &p), vec![shard_of_key(&r, 7)]);
    let p = plan(&r, "SELECT * FROM users u LEFT JOIN orders o ON u.id = o.user_id");
    assert_eq!(p.targets.len(), 4);
}

#[test]
fn joins_that_cross_shards_are_refused() {
    let r = pg();
    for sql in [
        "SELECT * FROM users u JOIN orders o ON o.id = u.id",
        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id + 1",
        "SELECT * FROM users u, orders o",
        "SELECT * FROM users u JOIN events e ON e.user_id = u.id",
        "SELECT * FROM users u JOIN audit a ON a.user_id = u.id",
        "SELECT * FROM users u LEFT JOIN orders o USING (id)",
    ] {
        let e = err(&r, sql);
        assert_eq!(e.code(), ErrorCode::Unsupported, "{sql}");
        assert!(e.to_string().contains("cross-shard join"), "{sql}: {e}");
    }
    // The same joins are fine when every table is constrained to one shard.
    let p = plan(&r, "SELECT * FROM users u, orders o WHERE u.id = 7 AND o.user_id = 7");
    assert_eq!(p.targets.len(), 1);
    let s1_key = (1..200).find(|k| shard_of_key(&r, *k) == "s1").unwrap();
    let p = plan(&r, &format!("SELECT * FROM users u JOIN audit a ON a.user_id = u.id WHERE u.id = {s1_key}"));
    assert_eq!(names(&r, &p), vec!["s1"]);
}

#[test]
fn reference_joins() {
    let r = pg();
    assert_eq!(plan(&r, "SELECT * FROM users u JOIN countries c ON c.code = u.country").targets.len(), 4);
    assert_eq!(plan(&r, "SELECT * FROM users u LEFT JOIN countries c ON c.code = u.country").targets.len(), 4);
    for sql in [
        "SELECT * FROM countries c LEFT JOIN users u ON c.code = u.country",
        "SELECT * FROM users u RIGHT JOIN countries c ON c.code = u.country",
        "SELECT * FROM users u FULL JOIN countries c ON c.code = u.country",
    ] {
        assert!(err(&r, sql).to_string().contains("preserved side"), "{sql}");
    }
    // On one shard every join is fine.
    assert_eq!(
        plan(&r, "SELECT * FROM countries c LEFT JOIN users u ON c.code = u.country AND u.id = 3 WHERE u.id = 3")
            .targets
            .len(),
        1
    );
}

#[test]
fn subqueries() {
    let r = pg();
    // One shard: anything goes.
    let p = plan(
        &r,
        "SELECT * FROM users WHERE id = 3 AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = 3 \
         AND amount > (SELECT avg(amount) FROM orders o2 WHERE o2.user_id = 3))",
    );
    assert_eq!(p.targets.len(), 1);
    // An uncorrelated subquery over a sharded table needs every shard.
    assert!(
        err(&r, "SELECT * FROM users WHERE id = 3 AND EXISTS (SELECT 1 FROM orders WHERE amount > 5)")
            .to_string()
            .contains("correlated")
    );
    // Correlated on the key: fine over several shards.
    let p = plan(
        &r,
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.amount > 10)",
    );
    assert_eq!(p.targets.len(), 4);
    let p = plan(&r, "SELECT * FROM users u WHERE u.country IN (SELECT code FROM countries)");
    assert_eq!(p.targets.len(), 4);
    // Correlation does not narrow the outer rows: NOT EXISTS keeps users without orders.
    let p = plan(
        &r,
        "SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.user_id = 5)",
    );
    assert_eq!(p.targets.len(), 4);
    for (sql, needle) in [
        ("SELECT * FROM users WHERE id IN (SELECT user_id FROM orders)", "correlated"),
        ("SELECT * FROM users u WHERE 2 < (SELECT count(*) FROM orders o WHERE o.user_id = u.id)", "aggregates"),
        ("SELECT * FROM (SELECT * FROM users) t", "derived table"),
        ("WITH t AS (SELECT * FROM users) SELECT * FROM t", "WITH"),
        ("SELECT * FROM users WHERE id IN (SELECT id FROM users LIMIT 3)", "subquery"),
    ] {
        let e = err(&r, sql);
        assert_eq!(e.code(), ErrorCode::Unsupported, "{sql}");
        assert!(e.to_string().contains(needle), "{sql}: {e}");
    }
}

// ---- constructs the merge cannot reproduce --------------------------------

#[test]
fn fail_closed_constructs() {
    let r = pg();
    for sql in [
        "SELECT id, row_number() OVER (ORDER BY id) FROM users",
        "SELECT id FROM users UNION SELECT user_id FROM orders",
        "SELECT id FROM users UNION ALL SELECT id FROM users",
        "SELECT DISTINCT ON (country) * FROM users",
        "SELECT country, count(*) FROM users GROUP BY ROLLUP (country)",
        "SELECT count(*) FILTER (WHERE id > 2) FROM users",
        "SELECT string_agg(name, ',') FROM users",
        "SELECT count(DISTINCT country) FROM users",
        "SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > sum(id)",
        "SELECT country, count(*) FROM users GROUP BY country HAVING avg(id) > 2",
        "SELECT sum(id) / count(id) FROM users",
        "SELECT * FROM users FETCH FIRST 3 ROWS ONLY",
        "SELECT * FROM users LIMIT (SELECT 3)",
    ] {
        let e = err(&r, sql);
        assert_eq!(e.code(), ErrorCode::Unsupported, "{sql}: {e}");
    }
    // The same on one shard is forwarded whole.
    for sql in [
        "SELECT id, row_number() OVER (ORDER BY id) FROM users WHERE id = 1",
        "SELECT count(DISTINCT country) FROM users WHERE id IN (1)",
        "SELECT string_agg(name, ',') FROM users WHERE id = 5",
    ] {
        assert_eq!(plan(&r, sql).targets.len(), 1, "{sql}");
    }
}

// ---- merge rewrites ------------------------------------------------------

fn row_merge(p: &Plan) -> &RowMerge {
    match &p.merge {
        Merge::Rows(m) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn limit_offset_is_applied_after_the_merge() {
    let r = pg();
    let p = plan(&r, "SELECT id FROM users ORDER BY id LIMIT 10 OFFSET 5");
    assert!(p.targets.iter().all(|t| t.sql.ends_with("ORDER BY id LIMIT 15")), "{}", p.targets[0].sql);
    let m = row_merge(&p);
    assert_eq!((m.limit, m.offset), (Some(10), 5));
    assert_eq!(m.order_by, vec![SortKey { column: ColumnRef::FromStart(0), descending: false, nulls_first: false }]);
    let p = plan_p(&r, "SELECT id FROM users ORDER BY id DESC LIMIT $1 OFFSET $2", &[Param::Int(3), Param::Int(4)]);
    assert!(p.targets[0].sql.ends_with("LIMIT 7"), "{}", p.targets[0].sql);
    assert_eq!(p.targets[0].params.as_deref(), Some(&[][..]));
    let m = row_merge(&p);
    assert_eq!((m.limit, m.offset), (Some(3), 4));
    assert!(m.order_by[0].nulls_first, "PostgreSQL puts NULLs first in DESC");
    // MySQL: LIMIT offset, count; NULLs first in ASC.
    let p = plan(&my(), "SELECT id FROM users ORDER BY name LIMIT 20, 10");
    assert!(p.targets[0].sql.contains("LIMIT 30"), "{}", p.targets[0].sql);
    let m = row_merge(&p);
    assert_eq!((m.limit, m.offset), (Some(10), 20));
    assert!(m.order_by[0].nulls_first);
}

#[test]
fn order_by_columns_not_selected_become_hidden() {
    let r = pg();
    let p = plan(&r, "SELECT name FROM users ORDER BY created_at DESC, id");
    let sql = &p.targets[0].sql;
    assert!(sql.starts_with("SELECT name, created_at AS __sg_hidden_0, id AS __sg_hidden_1 FROM users"), "{sql}");
    let m = row_merge(&p);
    assert_eq!(m.hidden, 2);
    assert_eq!(m.order_by[0].column, ColumnRef::FromStart(1));
    assert_eq!(m.order_by[1].column, ColumnRef::FromStart(2));
    // With a wildcard, positions after it count from the end.
    let p = plan(&r, "SELECT * FROM users ORDER BY lower(name)");
    assert_eq!(row_merge(&p).order_by[0].column, ColumnRef::FromEnd(0));
    // Ordinals and aliases name select items.
    let p = plan(&r, "SELECT id, name AS n FROM users ORDER BY n, 1");
    let m = row_merge(&p);
    assert_eq!(m.hidden, 0);
    assert_eq!(m.order_by[0].column, ColumnRef::FromStart(1));
    assert_eq!(m.order_by[1].column, ColumnRef::FromStart(0));
}

#[test]
fn aggregates_are_rewritten_for_the_merge() {
    let r = pg();
    let p = plan(
        &r,
        "SELECT country, count(*), sum(id), min(name), max(id), avg(id) FROM users GROUP BY country ORDER BY country",
    );
    let sql = &p.targets[0].sql;
    assert!(
        sql.starts_with("SELECT country, count(*), sum(id), min(name), max(id), sum(id) AS \"avg\", count(id) AS __sg_hidden_0 FROM users GROUP BY country"),
        "{sql}"
    );
    let m = row_merge(&p);
    assert!(m.aggregating);
    assert_eq!(m.group_by, vec![ColumnRef::FromStart(0)]);
    assert!(m.aggregates.contains(&Combine::Count(ColumnRef::FromStart(1))));
    assert!(m.aggregates.contains(&Combine::Avg { sum: ColumnRef::FromStart(5), count: ColumnRef::FromStart(6) }));
    assert_eq!(m.hidden, 1);
    // Group keys not selected are hidden too; LIMIT stays with the merge.
    let p = plan(&r, "SELECT count(*) FROM users GROUP BY country LIMIT 2");
    let sql = &p.targets[0].sql;
    assert!(sql.contains("count(*), country AS __sg_hidden_0") && !sql.contains("LIMIT"), "{sql}");
    assert_eq!(row_merge(&p).limit, Some(2));
    // MySQL names an unaliased AVG column by its text.
    let p = plan(&my(), "SELECT AVG( id ) FROM users");
    assert!(p.targets[0].sql.contains("AS `AVG( id )`"), "{}", p.targets[0].sql);
}

#[test]
fn group_by_a_name_is_the_input_column_before_the_alias() {
    let r = pg();
    // The alias shadows a column its expression reads: the column is the key.
    let p = plan(&r, "SELECT upper(name) AS name, count(*) FROM users GROUP BY name");
    assert!(
        p.targets[0].sql.contains("count(*), name AS __sg_hidden_0 FROM users GROUP BY name"),
        "{}",
        p.targets[0].sql
    );
    let m = row_merge(&p);
    assert_eq!(m.group_by, vec![ColumnRef::FromStart(2)]);
    // A plain alias is the item.
    let p = plan(&r, "SELECT upper(name) AS n, count(*) FROM users GROUP BY n");
    assert_eq!(row_merge(&p).group_by, vec![ColumnRef::FromStart(0)]);
    let p = plan(&r, "SELECT country AS c, count(*) FROM users GROUP BY c");
    assert_eq!(row_merge(&p).group_by, vec![ColumnRef::FromStart(0)]);
}

#[test]
fn explicit_collations_are_not_merged() {
    let r = pg();
    for sql in [
        "SELECT id, name FROM users ORDER BY name COLLATE \"C\", id",
        "SELECT name COLLATE \"C\" AS n FROM users ORDER BY n",
        "SELECT max(name COLLATE \"C\") FROM users",
        "SELECT DISTINCT name COLLATE \"C\" FROM users",
        "SELECT count(*) FROM users GROUP BY name COLLATE \"C\"",
    ] {
        assert!(matches!(err(&r, sql), RouteError::Unmergeable { .. }), "{sql}");
    }
    // Only projected, or on one shard, it is the shards' business.
    plan(&r, "SELECT name COLLATE \"C\" FROM users");
    plan(&r, "SELECT name FROM users WHERE id = 1 ORDER BY name COLLATE \"C\"");
}

#[test]
fn order_by_names_the_select_list_as_written_not_as_rewritten() {
    // AVG(id) reaches the shards as SUM(id): ORDER BY sum(id) is the third
    // column, not the rewritten AVG, and ORDER BY avg(id) is the AVG.
    let r = pg();
    let p = plan(&r, "SELECT country, avg(id), sum(id) FROM users GROUP BY country ORDER BY sum(id), avg(id)");
    let m = row_merge(&p);
    assert_eq!(m.order_by[0].column, ColumnRef::FromStart(2));
    assert_eq!(m.order_by[1].column, ColumnRef::FromStart(1));
    // Aliases are identifiers: in PostgreSQL, unquoted ones fold to lower
    // case and quoted ones keep theirs.
    let p = plan(&r, "SELECT id AS \"Key\", score AS key FROM users ORDER BY key, \"Key\"");
    let m = row_merge(&p);
    assert_eq!(m.order_by[0].column, ColumnRef::FromStart(1));
    assert_eq!(m.order_by[1].column, ColumnRef::FromStart(0));
    let p = plan(&r, "SELECT id AS Key FROM users ORDER BY KEY");
    assert_eq!(row_merge(&p).order_by[0].column, ColumnRef::FromStart(0));
}

// ---- writes --------------------------------------------------------------

#[test]
fn insert_rows_go_to_their_shards() {
    let r = pg();
    let p = plan(&r, "INSERT INTO users (id, name) VALUES (7, 'a')");
    assert_eq!(names(&r, &p), vec![shard_of_key(&r, 7)]);
    assert_eq!(&*p.targets[0].sql, "INSERT INTO users (id, name) VALUES (7, 'a')");
    let rows: Vec<i64> = (1..=20).collect();
    let values = rows.iter().map(|k| format!("({k}, 'n{k}')")).collect::<Vec<_>>().join(", ");
    let p = plan(&r, &format!("INSERT INTO users (id, name) VALUES {values} RETURNING id"));
    assert!(p.targets.len() > 1);
    assert_eq!(p.merge, Merge::InsertReturning);
    let mut seen = Vec::new();
    for t in &p.targets {
        for &i in t.rows.as_ref().unwrap() {
            assert_eq!(shard_of_key(&r, rows[i]), r.rules().shard(t.shard).name);
            assert!(t.sql.contains(&format!("({}, 'n{}')", rows[i], rows[i])));
            seen.push(i);
        }
    }
    seen.sort();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    let p = plan(&r, &format!("INSERT INTO users (id, name) VALUES {values}"));
    assert_eq!(p.merge, Merge::SumCounts);
}

#[test]
fn generated_ids_fill_left_out_columns() {
    let r = pg();
    let p = plan(&r, "INSERT INTO orders (user_id, amount) VALUES (7, 1.5), (8, 2.5)");
    let mut ids = Vec::new();
    for t in &p.targets {
        assert!(t.sql.starts_with("INSERT INTO orders (user_id, amount, id) VALUES ("), "{}", t.sql);
        // Every row got an id of its own, not NULL.
        let stmt = &sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &t.sql).unwrap()[0];
        let sqlparser::ast::Statement::Insert(ins) = stmt else { panic!() };
        let sqlparser::ast::SetExpr::Values(v) = ins.source.as_ref().unwrap().body.as_ref() else { panic!() };
        for row in &v.rows {
            let id: i64 = row[2].to_string().parse().unwrap_or_else(|_| panic!("id of {}", t.sql));
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    // A time-range table with a generated id and its key given.
    let p = plan(&r, "INSERT INTO events (user_id, created_at) VALUES (1, '2024-05-01 10:00:00')");
    assert_eq!(names(&r, &p), vec!["s1"]);
    assert!(p.targets[0].sql.contains("(user_id, created_at, id)"));
}

#[test]
fn insert_errors() {
    let r = pg();
    let cases: &[(&str, ErrorCode)] = &[
        ("INSERT INTO users (name) VALUES ('a')", ErrorCode::Unsupported),
        ("INSERT INTO users VALUES (1, 'a')", ErrorCode::Unsupported),
        ("INSERT INTO users (id, name) VALUES (NULL, 'a')", ErrorCode::NullKey),
        ("INSERT INTO users (id, name) VALUES (1 + 1, 'a')", ErrorCode::InvalidKeyValue),
        ("INSERT INTO users (id, name) VALUES ('abc', 'a')", ErrorCode::InvalidKeyValue),
        ("INSERT INTO events (user_id, created_at) VALUES (1, '2031-01-01')", ErrorCode::NoShardForKey),
        ("INSERT INTO users (id, name) SELECT id, name FROM users", ErrorCode::Unsupported),
        ("INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET id = 2", ErrorCode::Unsupported),
    ];
    for (sql, code) in cases {
        assert_eq!(err(&r, sql).code(), *code, "{sql}");
    }
    let keys = keys_on_distinct_shards(&r, 2);
    let conflict = format!(
        "INSERT INTO users (id, name) VALUES ({}, 'a'), ({}, 'b') ON CONFLICT (id) DO NOTHING",
        keys[0], keys[1]
    );
    assert!(err(&r, &conflict).to_string().contains("one shard"));
    let single =
        format!("INSERT INTO users (id, name) VALUES ({0}, 'a') ON CONFLICT (id) DO UPDATE SET name = 'b'", keys[0]);
    assert_eq!(plan(&r, &single).targets.len(), 1);
    let volatile = format!("INSERT INTO users (id, created_at) VALUES ({}, now()), ({}, now())", keys[0], keys[1]);
    assert!(err(&r, &volatile).to_string().contains("now()"));
    let m = my();
    assert_eq!(
        err(&m, "INSERT INTO users (id, name) VALUES (1, 'a') ON DUPLICATE KEY UPDATE id = 3").code(),
        ErrorCode::Unsupported
    );
    assert_eq!(
        plan(&m, "INSERT INTO users (id, name) VALUES (1, 'a') ON DUPLICATE KEY UPDATE name = 'c'").targets.len(),
        1
    );
}

#[test]
fn update_and_delete() {
    let r = pg();
    let p = plan(&r, "UPDATE users SET name = 'x' WHERE id = 7");
    assert_eq!(names(&r, &p), vec![shard_of_key(&r, 7)]);
    assert_eq!(p.kind, StatementKind::Write);
    let p = plan(&r, "DELETE FROM users WHERE id IN (1, 2, 3, 4, 5, 6)");
    assert!(p.targets.len() > 1);
    assert_eq!(p.merge, Merge::SumCounts);
    for sql in
        ["UPDATE users SET name = 'x'", "DELETE FROM users WHERE name = 'x'", "DELETE FROM orders WHERE amount > 3"]
    {
        let e = err(&r, sql);
        assert!(e.to_string().contains("policy.allow_scatter_writes"), "{sql}: {e}");
    }
    let e = err(&r, "UPDATE users SET id = 9 WHERE id = 7");
    assert!(e.to_string().contains("sharding key"), "{e}");
    assert_eq!(
        err(&r, "UPDATE users SET name = 'x' WHERE id IN (1,2,3,4,5,6,7,8) AND random() > 0.5").code(),
        ErrorCode::Unsupported
    );
    let m = my();
    assert_eq!(err(&m, "DELETE FROM users WHERE id IN (1,2,3,4,5,6,7,8) LIMIT 1").code(), ErrorCode::Unsupported);
    assert_eq!(plan(&m, "DELETE FROM users WHERE id = 1 LIMIT 1").targets.len(), 1);
    // Allowed by the rule file: every shard.
    let text = format!("{}\n[policy]\nallow_scatter_writes = true\n", RULES.replace("BACKEND", "postgres"));
    let rules = Arc::new(Rules::parse_with_env(&text, "t.toml", &|_| None).unwrap());
    let r2 = Router::new(rules, Arc::new(IdGenerator::new(1).unwrap()));
    assert_eq!(plan(&r2, "UPDATE users SET name = 'x'").targets.len(), 4);
}

// ---- DDL -----------------------------------------------------------------

#[test]
fn ddl() {
    let r = pg();
    let p = plan(&r, "CREATE TABLE users (id bigint PRIMARY KEY, name text)");
    assert_eq!(p.targets.len(), 4);
    assert_eq!(p.kind, StatementKind::Ddl);
    assert_eq!(plan(&r, "CREATE TABLE countries (code char(2) PRIMARY KEY, name text)").targets.len(), 4);
    assert_eq!(names(&r, &plan(&r, "CREATE TABLE audit (id serial PRIMARY KEY)")), vec!["s1"]);
    assert_eq!(plan(&r, "CREATE INDEX ON orders (user_id, amount)").targets.len(), 4);
    assert_eq!(plan(&r, "TRUNCATE users, orders").targets.len(), 4);
    assert_eq!(plan(&r, "DROP TABLE IF EXISTS users").targets.len(), 4);
    for sql in [
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint)",
        "CREATE TABLE orders (id bigint, user_id bigint, UNIQUE (id))",
        "CREATE TABLE orders (id bigserial, user_id bigint)",
        "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY, user_id bigint)",
        "CREATE TABLE orders (id bigint)",
        "CREATE UNIQUE INDEX ON orders (id)",
        "ALTER TABLE orders ADD CONSTRAINT u UNIQUE (id)",
        "ALTER TABLE orders DROP COLUMN user_id",
    ] {
        assert_eq!(err(&r, sql).code(), ErrorCode::Unsupported, "{sql}");
    }
    assert_eq!(plan(&r, "CREATE TABLE orders (id bigint, user_id bigint, PRIMARY KEY (user_id, id))").targets.len(), 4);
    let m = my();
    assert_eq!(
        err(&m, "CREATE TABLE orders (id bigint AUTO_INCREMENT, user_id bigint)").code(),
        ErrorCode::Unsupported
    );
}

// ---- parsing, splitting, caching -----------------------------------------

#[test]
fn unparsable_statements() {
    let r = pg();
    // Names no table of the rule file: forwarded to one shard.
    let p = plan(&r, "SELEKT 1");
    assert!(matches!(p.targets[0].reason, Reason::Unparsed));
    // Names one: refused with the parser's message.
    let e = err(&r, "SELEKT * FROM users");
    assert_eq!(e.code(), ErrorCode::Syntax);
}

#[test]
fn several_statements_in_one_string() {
    let r = pg();
    let plans = r
        .route(
            "INSERT INTO users (id, name) VALUES (1, 'a;b'); SELECT * FROM users WHERE id = 1; -- done;\n",
            &RouteContext::new(&[]),
        )
        .unwrap();
    assert_eq!(plans.len(), 2);
    assert_eq!(&*plans[0].targets[0].sql, "INSERT INTO users (id, name) VALUES (1, 'a;b')");
    assert_eq!(&*plans[1].targets[0].sql, "SELECT * FROM users WHERE id = 1");
    assert_eq!(split_statements("  ;; ", BackendKind::Postgres).len(), 0);
}

#[test]
fn prepared_statements_are_cached_and_rebound() {
    let r = pg();
    let p = r.prepare("SELECT * FROM users WHERE id = $1").unwrap();
    let again = r.prepare("SELECT * FROM users WHERE id = $1").unwrap();
    assert!(Arc::ptr_eq(&p, &again));
    assert_eq!(r.cached_statements(), 1);
    for k in 1..50 {
        let params = [Param::Int(k)];
        let plan = r.bind(&p, &RouteContext::new(&params)).unwrap();
        assert_eq!(names(&r, &plan), vec![shard_of_key(&r, k)]);
    }
}

// ---- transactions --------------------------------------------------------

#[test]
fn transactions_write_to_one_shard() {
    let r = pg();
    let rules = r.rules().clone();
    let keys = keys_on_distinct_shards(&r, 2);
    let mut txn = TxnState::default();
    let w1 = plan(&r, &format!("UPDATE users SET name = 'a' WHERE id = {}", keys[0]));
    let w2 = plan(&r, &format!("UPDATE users SET name = 'b' WHERE id = {}", keys[1]));
    let scatter = plan(&r, "SELECT count(*) FROM users");
    txn.admit(&scatter, TxnPolicy::SingleShardWrites, &rules).unwrap();
    txn.admit(&w1, TxnPolicy::SingleShardWrites, &rules).unwrap();
    txn.admit(&w1, TxnPolicy::SingleShardWrites, &rules).unwrap();
    txn.admit(&scatter, TxnPolicy::SingleShardWrites, &rules).unwrap();
    let e = txn.admit(&w2, TxnPolicy::SingleShardWrites, &rules).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CrossShardTransaction);
    let msg = e.to_string();
    assert!(msg.contains("cross-shard transaction"), "{msg}");
    assert!(msg.contains(&shard_of_key(&r, keys[0])) && msg.contains(&shard_of_key(&r, keys[1])), "{msg}");
    // A reference-table write inside a transaction touches every shard.
    let mut fresh = TxnState::default();
    let bcast = plan(&r, "INSERT INTO countries (code, name) VALUES ('X', 'x')");
    assert!(fresh.admit(&bcast, TxnPolicy::SingleShardWrites, &rules).is_err());
    // Strict: no second shard, reads included.
    let mut strict = TxnState::default();
    strict.admit(&w1, TxnPolicy::Strict, &rules).unwrap();
    assert!(strict.admit(&scatter, TxnPolicy::Strict, &rules).is_err());
    // Opt-in multi-shard writes.
    let mut multi = TxnState::default();
    multi.admit(&w1, TxnPolicy::MultiShardWrites, &rules).unwrap();
    multi.admit(&w2, TxnPolicy::MultiShardWrites, &rules).unwrap();
}

#[test]
fn every_error_has_its_code() {
    let r = pg();
    assert_eq!(err(&r, "SELECT * FROM users u JOIN orders o ON o.id = u.id").code().sqlstate(), "0A000");
    assert_eq!(err(&r, "SELEKT * FROM users").code().sqlstate(), "42601");
    assert_eq!(err(&r, "SELECT * FROM nope").code().sqlstate(), "42P01");
    assert_eq!(err(&my(), "SELECT * FROM nope").code().mysql(), (1146, "42S02"));
}

#[test]
fn session_bound_state_is_refused() {
    let r = pg();
    for sql in [
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock(1, 2)",
        "LISTEN chan",
        "CREATE TEMP TABLE t (a int)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SELECT set_config('search_path', 'x', false)",
    ] {
        let e = err(&r, sql);
        assert_eq!(e.code(), ErrorCode::Unsupported, "{sql}");
        assert!(e.to_string().contains("backend connection"), "{sql}: {e}");
    }
    // Transaction-scoped locks stay with the transaction: fine.
    assert_eq!(plan(&r, "SELECT pg_advisory_xact_lock(1)").targets.len(), 1);
    assert_eq!(err(&my(), "SELECT GET_LOCK('x', 1)").code(), ErrorCode::Unsupported);
}

#[test]
fn group_by_a_name_that_is_both_alias_and_column_is_refused() {
    let r = pg();
    // `id` is users' key: surely an input column, so PostgreSQL groups by it.
    let e = err(&r, "SELECT upper(name) AS id, count(*) FROM users GROUP BY id");
    assert!(e.to_string().contains("alias that is also a column"), "{e}");
    // A column referenced elsewhere in the statement is an input column too.
    assert_eq!(
        err(&r, "SELECT upper(name) AS country, count(*) FROM users WHERE country <> 'x' GROUP BY country").code(),
        ErrorCode::Unsupported
    );
    // An alias that names no known column groups by the alias, as the database does.
    assert_eq!(plan(&r, "SELECT upper(name) AS n, count(*) FROM users GROUP BY n").targets.len(), 4);
    // And an alias whose expression reads that very column is the column.
    assert_eq!(plan(&r, "SELECT upper(name) AS name, count(*) FROM users GROUP BY name").targets.len(), 4);
}

#[test]
fn explain_route_names_the_predicate_that_chose_each_shard() {
    let r = pg();
    let rows = explain_rows(&plan(&r, "SELECT * FROM users u WHERE u.id IN (1, 2) AND name = 'x'"), r.rules());
    assert!(
        rows.iter().filter(|row| !row.shard.is_empty()).all(|row| row.reason == "u.id IN (1, 2) selects this shard")
    );
    let rows = explain_rows(&plan(&r, "SELECT * FROM events WHERE created_at >= '2025-06-01'"), r.rules());
    assert_eq!(rows[0].reason, "events.created_at >= '2025-06-01' selects this shard");
    let rows = explain_rows(&plan(&r, "SELECT * FROM users WHERE name = 'x'"), r.rules());
    assert_eq!(rows[0].reason, "users: no predicate on the sharding key, every shard");
    let rows = explain_rows(&plan(&r, "SELECT * FROM users WHERE id > 5"), r.rules());
    assert!(rows[0].reason.contains("allows every shard"), "{}", rows[0].reason);
}

#[test]
fn having_is_evaluated_by_the_merge() {
    let r = pg();
    let p = plan(&r, "SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > 2 AND min(name) < 'm'");
    let sql = &p.targets[0].sql;
    assert!(!sql.contains("HAVING"), "the shards get no HAVING: {sql}");
    assert!(sql.contains("min(name) AS __sg_hidden_0"), "{sql}");
    let m = row_merge(&p);
    let Some(Having::And(parts)) = &m.having else { panic!("{:?}", m.having) };
    assert_eq!(
        parts[0],
        Having::Compare {
            column: ColumnRef::FromStart(1),
            op: CompareOp::Gt,
            literal: HavingLiteral::Number("2".into())
        }
    );
    assert!(matches!(parts[1], Having::Compare { column: ColumnRef::FromStart(2), op: CompareOp::Lt, .. }));
    assert_eq!(m.hidden, 1);
    // A literal on the left is turned around.
    let p = plan(&r, "SELECT country FROM users GROUP BY country HAVING 5 <= count(*)");
    assert!(matches!(&row_merge(&p).having, Some(Having::Compare { op: CompareOp::GtEq, .. })));
}
