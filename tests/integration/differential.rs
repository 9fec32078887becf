//! The differential suite: the same statements against one plain reference
//! PostgreSQL database and through shardgate over four PostgreSQL shards.
//! Answers must be identical — ordered where the ORDER BY fixes the order,
//! as multisets otherwise. What shardgate refuses is listed and counted.
//!
//! Data size: `SHARDGATE_DIFF_SCALE` (default 1) multiplies the row counts
//! (2000 users, 10000 orders, 6000 events at scale 1).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::support::{self, BackendKind, Cluster};

use shardgate::demo::load::Rng;

const SCHEMA: &[&str] = &[
    "CREATE TABLE dt_users (id bigint PRIMARY KEY, name text, country char(2), score int, balance numeric(12,2), \
     created_at timestamp)",
    "CREATE TABLE dt_orders (id bigint, user_id bigint, amount numeric(12,2), status text, created_at timestamp)",
    "CREATE TABLE dt_events (id bigint, user_id bigint, kind text, created_at timestamp)",
    "CREATE TABLE dt_countries (code char(2) PRIMARY KEY, name text)",
];

fn rules(cluster: &Cluster) -> String {
    support::proxy::rule_file(
        cluster,
        "[keyspace.user]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n\
         [keyspace.year]\nalgorithm = \"time_range\"\nkey_type = \"timestamp\"\n\
         generate = { interval = \"year\", start = \"2022-01-01\", end = \"2026-01-01\", shards = [\"s0\", \"s1\", \"s2\", \"s3\"], open_start = true, open_end = true }\n\
         [[table]]\nname = \"dt_users\"\nkeyspace = \"user\"\nkey = \"id\"\n\
         [[table]]\nname = \"dt_orders\"\nkeyspace = \"user\"\nkey = \"user_id\"\n\
         [[table]]\nname = \"dt_events\"\nkeyspace = \"year\"\nkey = \"created_at\"\n\
         [[table]]\nname = \"dt_countries\"\nreference = true\n",
    )
}

/// Names that exercise the ICU collation: case, accents, punctuation, digits.
const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "Bob",
    "Émile",
    "emile",
    "Zoë",
    "zoe",
    "Zoe",
    "o'neil",
    "O'Neil",
    "van der berg",
    "Van Der Berg",
    "åsa",
    "Ørjan",
    "42nd",
    "_under",
    "zz",
    "a-b",
    "ab",
    "a b",
    "",
];
const COUNTRIES: &[&str] = &["FR", "DE", "US", "JP", "BR", "IN"];
const STATUSES: &[&str] = &["new", "paid", "shipped", "cancelled"];

fn data(scale: u64) -> Vec<String> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    let countries: Vec<String> = COUNTRIES.iter().map(|c| format!("('{c}', 'country {c}')")).collect();
    out.push(format!("INSERT INTO dt_countries (code, name) VALUES {}", countries.join(", ")));
    let users = 2000 * scale;
    let mut rows = Vec::new();
    for id in 1..=users {
        let name =
            if rng.below(15) == 0 { "NULL".to_string() } else { format!("'{}'", rng.pick(NAMES).replace('\'', "''")) };
        let country = if rng.below(8) == 0 { "NULL".to_string() } else { format!("'{}'", rng.pick(COUNTRIES)) };
        let score = if rng.below(10) == 0 { "NULL".to_string() } else { (rng.below(1000) as i64 - 300).to_string() };
        let balance = format!("{}.{:02}", rng.below(100_000), rng.below(100));
        let created = format!(
            "'202{}-{:02}-{:02} {:02}:00:00'",
            rng.below(5),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24)
        );
        rows.push(format!("({id}, {name}, {country}, {score}, {balance}, {created})"));
        if rows.len() == 500 {
            out.push(format!(
                "INSERT INTO dt_users (id, name, country, score, balance, created_at) VALUES {}",
                rows.join(", ")
            ));
            rows.clear();
        }
    }
    if !rows.is_empty() {
        out.push(format!(
            "INSERT INTO dt_users (id, name, country, score, balance, created_at) VALUES {}",
            rows.join(", ")
        ));
        rows.clear();
    }
    for id in 1..=5 * users {
        let user = 1 + rng.below(users);
        let amount =
            if rng.below(20) == 0 { "NULL".to_string() } else { format!("{}.{:02}", rng.below(1000), rng.below(100)) };
        let status = if rng.below(10) == 0 { "NULL".to_string() } else { format!("'{}'", rng.pick(STATUSES)) };
        rows.push(format!(
            "({id}, {user}, {amount}, {status}, '2024-0{}-1{} 10:00:00')",
            1 + rng.below(9),
            rng.below(10)
        ));
        if rows.len() == 500 {
            out.push(format!(
                "INSERT INTO dt_orders (id, user_id, amount, status, created_at) VALUES {}",
                rows.join(", ")
            ));
            rows.clear();
        }
    }
    if !rows.is_empty() {
        out.push(format!("INSERT INTO dt_orders (id, user_id, amount, status, created_at) VALUES {}", rows.join(", ")));
        rows.clear();
    }
    for id in 1..=3 * users {
        let user = 1 + rng.below(users);
        let kind = rng.pick(&["login", "view", "click", "buy"]).to_string();
        let created = format!(
            "'20{}-{:02}-{:02} {:02}:{:02}:00'",
            20 + rng.below(8),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60)
        );
        rows.push(format!("({id}, {user}, '{kind}', {created})"));
        if rows.len() == 500 {
            out.push(format!("INSERT INTO dt_events (id, user_id, kind, created_at) VALUES {}", rows.join(", ")));
            rows.clear();
        }
    }
    if !rows.is_empty() {
        out.push(format!("INSERT INTO dt_events (id, user_id, kind, created_at) VALUES {}", rows.join(", ")));
    }
    out
}

/// The written corpus: (statement, whether its ORDER BY fixes the order).
fn corpus() -> Vec<(String, bool)> {
    let ordered = [
        // Point, IN, OR, ranges.
        "SELECT * FROM dt_users WHERE id = 42 ORDER BY id",
        "SELECT * FROM dt_users WHERE id IN (1, 2, 3, 500, 999, 1500) ORDER BY id",
        "SELECT id, name FROM dt_users WHERE id = 7 OR id = 1999 ORDER BY id",
        "SELECT id FROM dt_users WHERE id BETWEEN 100 AND 140 ORDER BY id",
        "SELECT id, score FROM dt_users WHERE id > 1900 ORDER BY id DESC",
        // ORDER BY: several keys, directions, NULLs, text under ICU.
        "SELECT id, name FROM dt_users ORDER BY name, id",
        "SELECT id, name FROM dt_users ORDER BY name DESC, id",
        "SELECT id, name FROM dt_users ORDER BY name NULLS FIRST, id",
        "SELECT id, name FROM dt_users ORDER BY name DESC NULLS LAST, id DESC",
        "SELECT id, country, score FROM dt_users ORDER BY country, score DESC, id",
        "SELECT id, score FROM dt_users ORDER BY score NULLS FIRST, id LIMIT 50",
        "SELECT id, balance FROM dt_users ORDER BY balance DESC, id LIMIT 25",
        "SELECT id, created_at FROM dt_users ORDER BY created_at, id LIMIT 30 OFFSET 100",
        "SELECT name, id FROM dt_users ORDER BY 1, 2 LIMIT 40",
        "SELECT id AS k, name AS n FROM dt_users ORDER BY n, k LIMIT 40",
        // ORDER BY columns not selected (hidden columns).
        "SELECT name FROM dt_users ORDER BY score DESC NULLS LAST, id LIMIT 60",
        "SELECT id FROM dt_users ORDER BY lower(name), id LIMIT 60",
        "SELECT * FROM dt_users ORDER BY country DESC, id LIMIT 20",
        // Deep OFFSET applied after the merge.
        "SELECT id FROM dt_users ORDER BY id LIMIT 10 OFFSET 1500",
        "SELECT id FROM dt_users ORDER BY id OFFSET 1990",
        "SELECT id FROM dt_users ORDER BY id LIMIT 0",
        // Aggregates.
        "SELECT count(*) FROM dt_users",
        "SELECT count(*), count(name), count(score), sum(score), min(score), max(score) FROM dt_users",
        "SELECT sum(balance), avg(balance), avg(score), min(balance), max(balance) FROM dt_users",
        "SELECT min(name), max(name), min(created_at), max(created_at) FROM dt_users",
        "SELECT count(*), sum(score) FROM dt_users WHERE id > 1000000",
        "SELECT avg(score) FROM dt_users WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8)",
        // GROUP BY.
        "SELECT country, count(*) FROM dt_users GROUP BY country ORDER BY country",
        "SELECT country, count(*), sum(score), avg(score), min(name), max(name) FROM dt_users GROUP BY country ORDER BY country NULLS FIRST",
        "SELECT country, count(*) AS n FROM dt_users GROUP BY country ORDER BY n DESC, country",
        "SELECT count(*) FROM dt_users GROUP BY country ORDER BY count(*), 1",
        "SELECT country, avg(balance) FROM dt_users GROUP BY country ORDER BY 2 DESC, 1",
        "SELECT status, count(*), sum(amount), avg(amount) FROM dt_orders GROUP BY status ORDER BY status",
        "SELECT user_id, count(*), sum(amount) FROM dt_orders GROUP BY user_id ORDER BY user_id LIMIT 50",
        "SELECT user_id, count(*) FROM dt_orders GROUP BY user_id ORDER BY 2 DESC, 1 LIMIT 20 OFFSET 5",
        "SELECT name, count(*) FROM dt_users GROUP BY name ORDER BY name",
        "SELECT country, score, count(*) FROM dt_users GROUP BY country, score ORDER BY country, score LIMIT 100",
        "SELECT kind, count(*) FROM dt_events GROUP BY kind ORDER BY kind",
        // DISTINCT.
        "SELECT DISTINCT country FROM dt_users ORDER BY country",
        "SELECT DISTINCT name FROM dt_users ORDER BY name",
        "SELECT DISTINCT country, name FROM dt_users ORDER BY country, name LIMIT 30",
        "SELECT DISTINCT status FROM dt_orders ORDER BY status DESC",
        // DISTINCT over aggregates, and AVG next to other aggregates (pitfall 3).
        "SELECT DISTINCT country, count(*) FROM dt_users GROUP BY country ORDER BY country",
        "SELECT DISTINCT count(*) FROM dt_orders GROUP BY user_id ORDER BY 1",
        "SELECT status, avg(amount), count(*), sum(amount) FROM dt_orders WHERE user_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9) GROUP BY status ORDER BY status",
        // Joins: co-located and with reference tables.
        "SELECT u.id, u.name, o.id, o.amount FROM dt_users u JOIN dt_orders o ON o.user_id = u.id WHERE u.id IN (5, 6, 7) ORDER BY o.id",
        "SELECT u.id, count(*) FROM dt_users u JOIN dt_orders o ON o.user_id = u.id GROUP BY u.id ORDER BY u.id LIMIT 30",
        "SELECT c.name, count(*) FROM dt_users u JOIN dt_countries c ON c.code = u.country GROUP BY c.name ORDER BY c.name",
        "SELECT u.id, c.name FROM dt_users u LEFT JOIN dt_countries c ON c.code = u.country ORDER BY u.id LIMIT 50",
        "SELECT u.id, o.id FROM dt_users u LEFT JOIN dt_orders o ON o.user_id = u.id ORDER BY u.id, o.id LIMIT 100",
        // Subqueries correlated on the key, and over reference tables.
        "SELECT id FROM dt_users u WHERE EXISTS (SELECT 1 FROM dt_orders o WHERE o.user_id = u.id AND o.amount > 900) ORDER BY id",
        "SELECT id FROM dt_users u WHERE NOT EXISTS (SELECT 1 FROM dt_orders o WHERE o.user_id = u.id) ORDER BY id",
        "SELECT id FROM dt_users WHERE country IN (SELECT code FROM dt_countries WHERE name LIKE '%F%') ORDER BY id",
        // Time-range pruning.
        "SELECT id FROM dt_events WHERE created_at >= '2024-01-01' AND created_at < '2025-01-01' ORDER BY id",
        "SELECT count(*) FROM dt_events WHERE created_at < '2023-06-01'",
        "SELECT count(*), min(created_at), max(created_at) FROM dt_events WHERE created_at BETWEEN '2021-06-01' AND '2026-06-01'",
        "SELECT id FROM dt_events WHERE created_at = '2024-03-03 03:03:00' OR created_at >= '2027-12-01' ORDER BY id",
        // Reference tables alone.
        "SELECT * FROM dt_countries ORDER BY code",
        // No table.
        "SELECT 1 + 1, 'x'",
    ];
    let unordered = [
        "SELECT * FROM dt_users",
        "SELECT id, name FROM dt_users WHERE country = 'FR'",
        "SELECT id FROM dt_users WHERE score > 500",
        "SELECT country, count(*) FROM dt_users GROUP BY country",
        "SELECT DISTINCT country FROM dt_users",
        "SELECT user_id, sum(amount) FROM dt_orders GROUP BY user_id",
        "SELECT u.id, o.amount FROM dt_users u JOIN dt_orders o ON o.user_id = u.id WHERE o.amount > 990",
        "SELECT * FROM dt_orders WHERE user_id IN (10, 20, 30, 40, 50, 60, 70)",
        "SELECT kind FROM dt_events WHERE created_at > '2026-01-01'",
    ];
    ordered.iter().map(|s| (s.to_string(), true)).chain(unordered.iter().map(|s| (s.to_string(), false))).collect()
}

/// Statements shardgate must refuse over several shards (each counted).
const REFUSED: &[&str] = &[
    "SELECT id, row_number() OVER (ORDER BY id) FROM dt_users",
    "SELECT id FROM dt_users UNION SELECT user_id FROM dt_orders",
    "SELECT DISTINCT ON (country) id FROM dt_users ORDER BY country, id",
    "SELECT country, count(*) FROM dt_users GROUP BY ROLLUP (country)",
    "SELECT count(*) FILTER (WHERE score > 0) FROM dt_users",
    "SELECT string_agg(name, ',') FROM dt_users",
    "SELECT count(DISTINCT country) FROM dt_users",
    "SELECT count(DISTINCT country), count(*) FROM dt_users",
    "SELECT country, count(*) FROM dt_users GROUP BY country HAVING count(*) > 10",
    "SELECT sum(score) / count(score) FROM dt_users",
    "SELECT * FROM dt_users u JOIN dt_orders o ON o.id = u.id",
    "SELECT * FROM dt_users WHERE id IN (SELECT user_id FROM dt_orders WHERE amount > 10)",
    "SELECT * FROM (SELECT * FROM dt_users) t",
];

type Rows = Vec<Vec<Option<String>>>;

async fn run(client: &tokio_postgres::Client, sql: &str) -> Result<Rows, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    tokio::spawn(conn);
    client
}

struct Diff {
    compared: usize,
    refused: Vec<(String, String)>,
    differences: Vec<String>,
}

async fn compare(
    proxy: &tokio_postgres::Client,
    reference: &tokio_postgres::Client,
    sql: &str,
    ordered: bool,
    d: &mut Diff,
) {
    let want = run(reference, sql).await;
    let got = run(proxy, sql).await;
    match (want, got) {
        (Ok(mut w), Ok(mut g)) => {
            if !ordered {
                w.sort();
                g.sort();
            }
            if w != g {
                let show = |r: &Rows| r.iter().take(5).map(|x| format!("{x:?}")).collect::<Vec<_>>().join("; ");
                d.differences.push(format!(
                    "{sql}\n  reference ({} rows): {}\n  shardgate ({} rows): {}",
                    w.len(),
                    show(&w),
                    g.len(),
                    show(&g)
                ));
            }
            d.compared += 1;
        }
        (Ok(_), Err(e)) => {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            if code == "0A000" {
                d.refused.push((sql.to_string(), e.as_db_error().map(|e| e.message().to_string()).unwrap_or_default()));
            } else {
                d.differences.push(format!("{sql}\n  reference answered, shardgate failed: {e:?}"));
            }
        }
        (Err(e), Ok(_)) => d.differences.push(format!("{sql}\n  reference failed ({e}), shardgate answered")),
        (Err(_), Err(_)) => d.compared += 1,
    }
}

/// Random SELECTs over dt_users: filters, projections, groups, orders, limits.
fn random_query(rng: &mut Rng) -> (String, bool) {
    let filters = [
        String::new(),
        format!("WHERE id IN ({}, {}, {})", 1 + rng.below(2000), 1 + rng.below(2000), 1 + rng.below(2000)),
        format!("WHERE id = {}", 1 + rng.below(2000)),
        format!("WHERE country = '{}'", rng.pick(COUNTRIES)),
        format!("WHERE score > {}", rng.below(1000) as i64 - 300),
        format!("WHERE balance BETWEEN {} AND {}", rng.below(50_000), 50_000 + rng.below(50_000)),
        "WHERE name IS NULL".to_string(),
        format!("WHERE id < {} OR country = '{}'", rng.below(300), rng.pick(COUNTRIES)),
    ];
    let filter = rng.pick(&filters).clone();
    if rng.below(2) == 0 {
        // Grouped.
        let key = *rng.pick(&["country", "score", "name", "country, score"]);
        let aggs = [
            "count(*)",
            "sum(score)",
            "min(name)",
            "max(balance)",
            "avg(score)",
            "count(name)",
            "avg(balance)",
            "min(created_at)",
        ];
        let n = 1 + rng.below(3) as usize;
        let chosen: Vec<&str> = (0..n).map(|_| *rng.pick(&aggs)).collect();
        let order = if rng.below(2) == 0 { format!(" ORDER BY {key}") } else { String::new() };
        let dir = if rng.below(2) == 0 { " DESC" } else { "" };
        let nulls = *rng.pick(&["", " NULLS FIRST", " NULLS LAST"]);
        let ordered = !order.is_empty();
        let order = if ordered {
            // Every group key, so that the order is total.
            format!(" ORDER BY {}", key.split(", ").map(|k| format!("{k}{dir}{nulls}")).collect::<Vec<_>>().join(", "))
        } else {
            order
        };
        let limit = if ordered && rng.below(3) == 0 { format!(" LIMIT {}", rng.below(20)) } else { String::new() };
        (format!("SELECT {key}, {} FROM dt_users {filter} GROUP BY {key}{order}{limit}", chosen.join(", ")), ordered)
    } else {
        let cols = *rng.pick(&["id", "id, name", "id, country, score", "name, balance, id", "*"]);
        let sort = *rng.pick(&["", "name", "score", "balance", "created_at", "country"]);
        let dir = *rng.pick(&["", " DESC"]);
        let nulls = *rng.pick(&["", " NULLS FIRST", " NULLS LAST"]);
        if sort.is_empty() {
            return (format!("SELECT {cols} FROM dt_users {filter}"), false);
        }
        let limit = match rng.below(3) {
            0 => String::new(),
            1 => format!(" LIMIT {}", rng.below(100)),
            _ => format!(" LIMIT {} OFFSET {}", rng.below(50), rng.below(300)),
        };
        (format!("SELECT {cols} FROM dt_users {filter} ORDER BY {sort}{dir}{nulls}, id{dir}{limit}"), true)
    }
}

#[test]
fn shardgate_answers_as_one_database_would() {
    let cluster = support::cluster(BackendKind::Postgres, 4);
    let reference_url = cluster.reference().expect("a reference server").url();
    let scale: u64 = std::env::var("SHARDGATE_DIFF_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let rules = shardgate::rules::Rules::parse(&rules(cluster), "differential.toml").unwrap_or_else(|e| panic!("{e}"));
        let config: shardgate::config::Config = toml::from_str(
            "rules = \"unused\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[[user]]\nname = \"app\"\npassword = \"apppw\"\n",
        )
        .unwrap();
        let proxy = shardgate::server::PgProxy::bind(Arc::new(config), rules).await.unwrap();
        let port = proxy.local_addr().unwrap().port();
        tokio::spawn(proxy.run());
        let reference = connect(&reference_url).await;
        let proxy = connect(&format!("postgres://app:apppw@127.0.0.1:{port}/shardgate")).await;
        for ddl in SCHEMA {
            run(&reference, ddl).await.unwrap();
            run(&proxy, ddl).await.unwrap_or_else(|e| panic!("{ddl}: {e:?}"));
        }
        for insert in data(scale) {
            run(&reference, &insert).await.unwrap();
            run(&proxy, &insert).await.unwrap_or_else(|e| panic!("loading through shardgate: {e:?}"));
        }
        let mut d = Diff { compared: 0, refused: Vec::new(), differences: Vec::new() };
        for (sql, ordered) in corpus() {
            compare(&proxy, &reference, &sql, ordered, &mut d).await;
        }
        let corpus_refused = d.refused.len();
        let seed: u64 = std::env::var("SHARDGATE_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261124);
        let count: usize = std::env::var("SHARDGATE_DIFF_QUERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
        let mut rng = Rng(seed);
        for _ in 0..count {
            let (sql, ordered) = random_query(&mut rng);
            compare(&proxy, &reference, &sql, ordered, &mut d).await;
        }
        let mut refusals = BTreeMap::new();
        for sql in REFUSED {
            match run(&proxy, sql).await {
                Ok(_) => d.differences.push(format!("{sql}\n  should be refused over several shards, was answered")),
                Err(e) => {
                    let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                    assert_eq!(code, "0A000", "{sql}: {e:?}");
                    refusals.insert(sql.to_string(), e.as_db_error().map(|e| e.message().to_string()).unwrap_or_default());
                }
            }
        }
        println!(
            "differential: {} statements compared ({} written, {count} random, seed {seed}), {} refused in the corpus and random set, {} refused as expected",
            d.compared,
            corpus().len(),
            d.refused.len(),
            refusals.len()
        );
        for (sql, why) in d.refused.iter().map(|(a, b)| (a, b)).chain(refusals.iter()) {
            println!("  refused: {sql}\n    {why}");
        }
        assert_eq!(corpus_refused, 0, "the written corpus is all answerable: {:?}", &d.refused[..corpus_refused]);
        assert!(d.differences.is_empty(), "{} differences:\n{}", d.differences.len(), d.differences.join("\n"));
        // Refused random statements are allowed only for documented constructs.
        assert!(d.refused.len() <= count / 10, "too many random statements refused: {:?}", d.refused);
    });
}
