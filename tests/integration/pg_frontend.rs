//! The PostgreSQL front end (`PgProxy`) through real clients — tokio-postgres,
//! psql, psycopg 3 and raw sockets — against real PostgreSQL shards.
//!
//! The shared 2-shard cluster is used with tables of this module only
//! (`fe_*`); each test has its own table or its own key range, so tests may
//! run in parallel. Results are checked against the shards themselves.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::support::proxy::{self, APP_PASSWORD, APP_USER, MD5_PASSWORD, MD5_USER, Proxy, TRUST_USER};
use crate::support::{self, BackendKind, Cluster, Server};
use shardgate::cluster::client_binary;

/// Sharded tables (hash on `id`), one per test that needs a table of its own.
const SHARDED: &[&str] = &["fe_users", "fe_scan", "fe_tx", "fe_lock", "fe_err", "fe_psql", "fe_py", "fe_down"];

fn rule_tables() -> String {
    let mut s = String::from("[keyspace.user]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n");
    for t in SHARDED {
        s.push_str(&format!("\n[[table]]\nname = \"{t}\"\nkeyspace = \"user\"\nkey = \"id\"\n"));
    }
    s.push_str("\n[[table]]\nname = \"fe_countries\"\nreference = true\n");
    s.push_str("\n[[table]]\nname = \"fe_audit\"\nshard = \"s1\"\n");
    s
}

/// The schema of one shard: every sharded table, the reference table with
/// its rows, and the pinned table only where it is pinned.
fn schema(shard: &Server) -> String {
    let mut sql = String::new();
    for t in SHARDED {
        sql.push_str(&format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id bigint PRIMARY KEY, name text, n int NOT NULL DEFAULT 0);\n"
        ));
    }
    sql.push_str(
        "DROP TABLE IF EXISTS fe_countries; CREATE TABLE fe_countries (code text PRIMARY KEY, name text);\n\
         INSERT INTO fe_countries VALUES ('de', 'Germany'), ('fr', 'France');\n\
         DROP TABLE IF EXISTS fe_audit;\n",
    );
    if shard.name == "s1" {
        sql.push_str("CREATE TABLE fe_audit (id bigint PRIMARY KEY, note text);\n");
    }
    sql
}

/// Writes the schema on every shard of `cluster` and starts a proxy for it.
fn start_front(cluster: &Cluster, extra_config: &str) -> Proxy {
    for s in cluster.shards() {
        support::query(s, &schema(s));
    }
    proxy::start_pg(cluster, &rule_tables(), extra_config)
}

struct Front {
    cluster: &'static Cluster,
    proxy: Proxy,
}

/// The proxy in front of the shared 2-shard cluster, started once.
fn front() -> &'static Front {
    static FRONT: OnceLock<Front> = OnceLock::new();
    FRONT.get_or_init(|| {
        let cluster = support::cluster(BackendKind::Postgres, 2);
        Front { cluster, proxy: start_front(cluster, "") }
    })
}

async fn connect(conn_str: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// A client of the proxy as the SCRAM user.
async fn app(p: &Proxy) -> Client {
    connect(&p.conn_str(APP_USER, APP_PASSWORD)).await.expect("app connects through the proxy")
}

/// A client of one shard directly.
async fn direct(s: &Server) -> Client {
    let c = format!("host={} port={} user={} password={} dbname={}", s.host, s.port, s.user, s.password, s.database);
    connect(&c).await.unwrap_or_else(|e| panic!("connecting to {}: {e}", s.name))
}

/// Direct clients of every shard.
async fn shards(cluster: &Cluster) -> Vec<Client> {
    let mut out = Vec::new();
    for s in cluster.shards() {
        out.push(direct(s).await);
    }
    out
}

/// The SQLSTATE of an error ("" when it has none).
fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
}

/// Expects an error with `sqlstate`; returns its message.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(r: Result<T, tokio_postgres::Error>, sqlstate: &str) -> String {
    match r {
        Ok(v) => panic!("expected SQLSTATE {sqlstate}, got {v:?}"),
        Err(e) => {
            assert_eq!(code(&e), sqlstate, "{e:?}");
            message(&e)
        }
    }
}

/// The rows of a simple query as text cells.
fn text_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}

/// The row count of the (last) CommandComplete of a simple query.
fn tag_count(msgs: &[SimpleQueryMessage]) -> u64 {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .next_back()
        .expect("a CommandComplete")
}

/// (id, name) rows of `table` on one shard with ids in `range`.
async fn rows_on(c: &Client, table: &str, range: std::ops::Range<i64>) -> Vec<(i64, Option<String>)> {
    let sql = format!("SELECT id, name FROM {table} WHERE id >= $1 AND id < $2 ORDER BY id");
    c.query(&sql, &[&range.start, &range.end]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The ids of `table` on one shard with ids in `range`.
async fn ids_on(c: &Client, table: &str, range: std::ops::Range<i64>) -> Vec<i64> {
    rows_on(c, table, range).await.into_iter().map(|(id, _)| id).collect()
}

fn multiset<T: Ord + Clone>(items: &[T]) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i.clone()).or_insert(0) += 1;
    }
    m
}

// ---- 1. tokio-postgres: queries and routing ------------------------------------

#[tokio::test]
async fn scram_login_simple_query_reference_and_pinned_tables() {
    let f = front();
    let c = app(&f.proxy).await;
    let rows = text_rows(&c.simple_query("SELECT 41 + 1 AS answer, 'x' AS letter").await.unwrap());
    assert_eq!(rows, vec![vec![Some("42".into()), Some("x".into())]]);

    // A reference table is read from one shard.
    let rows = text_rows(&c.simple_query("SELECT name FROM fe_countries WHERE code = 'fr'").await.unwrap());
    assert_eq!(rows, vec![vec![Some("France".into())]]);

    // A pinned table lives on its shard only (it does not exist on s0).
    let msgs = c.simple_query("INSERT INTO fe_audit (id, note) VALUES (7, 'pinned')").await.unwrap();
    assert_eq!(tag_count(&msgs), 1);
    let s1 = direct(f.cluster.shard(1)).await;
    let note: String = s1.query_one("SELECT note FROM fe_audit WHERE id = 7", &[]).await.unwrap().get(0);
    assert_eq!(note, "pinned");
    let n: i64 = c.query_one("SELECT count(*) FROM fe_audit WHERE id = $1", &[&7i64]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn prepared_statements_route_by_binary_parameters() {
    let f = front();
    let (p, c, direct) = (&f.proxy, app(&f.proxy).await, shards(f.cluster).await);
    let insert = c.prepare("INSERT INTO fe_users (id, name, n) VALUES ($1, $2, $3)").await.unwrap();
    let select = c.prepare("SELECT id, name, n FROM fe_users WHERE id = $1").await.unwrap();
    let ids: Vec<i64> = (1000..1012).collect();
    assert!(ids.iter().any(|&k| p.owner("fe_users", k) == 0) && ids.iter().any(|&k| p.owner("fe_users", k) == 1));
    for &id in &ids {
        let n = i32::try_from(id).unwrap();
        assert_eq!(c.execute(&insert, &[&id, &format!("user {id}"), &n]).await.unwrap(), 1);
    }
    for &id in &ids {
        let owner = p.owner("fe_users", id);
        assert_eq!(ids_on(&direct[owner], "fe_users", id..id + 1).await, vec![id], "{id} on its owner s{owner}");
        assert!(ids_on(&direct[1 - owner], "fe_users", id..id + 1).await.is_empty(), "{id} not on s{}", 1 - owner);
        let row = c.query_one(&select, &[&id]).await.unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, String>(1), row.get::<_, i32>(2)),
            (id, format!("user {id}"), id as i32)
        );
    }
}

#[tokio::test]
async fn one_prepared_statement_reused_over_transactions_and_values() {
    let f = front();
    let (p, c, direct) = (&f.proxy, app(&f.proxy).await, shards(f.cluster).await);
    let on: Vec<Vec<i64>> = (0..2).map(|s| p.keys_on("fe_users", s, 5000, 6)).collect();
    let all: Vec<i64> = on.concat();
    // One shard per statement: a multi-shard insert is not what this test is about.
    for keys in &on {
        let v: Vec<String> = keys.iter().map(|k| format!("({k}, 'r{k}', 0)")).collect();
        c.simple_query(&format!("INSERT INTO fe_users (id, name, n) VALUES {}", v.join(", "))).await.unwrap();
    }
    let bump = c.prepare("UPDATE fe_users SET n = n + 1 WHERE id = $1").await.unwrap();
    let read = c.prepare("SELECT n FROM fe_users WHERE id = $1").await.unwrap();
    // Transactions alternate between the shards; each writes on one shard
    // and reads on both, with the same two statements.
    for round in 0..6 {
        let s = round % 2;
        c.simple_query("BEGIN").await.unwrap();
        for &k in &on[s] {
            assert_eq!(c.execute(&bump, &[&k]).await.unwrap(), 1);
        }
        for &k in &all {
            let n: i32 = c.query_one(&read, &[&k]).await.unwrap().get(0);
            let expected = if on[s].contains(&k) { round / 2 + 1 } else { round.div_ceil(2) };
            assert_eq!(n as usize, expected, "round {round}, key {k}");
        }
        c.simple_query("COMMIT").await.unwrap();
    }
    // And outside transactions, many values in a row.
    for _ in 0..3 {
        for &k in &all {
            assert_eq!(c.execute(&bump, &[&k]).await.unwrap(), 1);
        }
    }
    for (s, keys) in on.iter().enumerate() {
        for &k in keys {
            let n: i32 = direct[s].query_one("SELECT n FROM fe_users WHERE id = $1", &[&k]).await.unwrap().get(0);
            assert_eq!(n, 6, "key {k} on s{s}");
        }
    }
}

#[tokio::test]
async fn multi_row_insert_splits_and_returning_keeps_values_order() {
    let f = front();
    let (p, c, direct) = (&f.proxy, app(&f.proxy).await, shards(f.cluster).await);
    let ids: Vec<i64> = (2000..2010).collect();
    let values: Vec<String> = ids.iter().map(|k| format!("({k}, 'm{k}')")).collect();
    let msgs = c.simple_query(&format!("INSERT INTO fe_users (id, name) VALUES {}", values.join(", "))).await.unwrap();
    assert_eq!(tag_count(&msgs), 10);
    for (s, d) in direct.iter().enumerate() {
        let expected: Vec<i64> = ids.iter().copied().filter(|&k| p.owner("fe_users", k) == s).collect();
        assert!(!expected.is_empty(), "the rows span both shards");
        assert_eq!(ids_on(d, "fe_users", 2000..2010).await, expected, "rows on s{s}");
    }

    // RETURNING over several shards comes back in VALUES order: simple protocol…
    let order = [3005i64, 3001, 3009, 3002, 3007, 3000];
    assert!(order.iter().any(|&k| p.owner("fe_users", k) == 0) && order.iter().any(|&k| p.owner("fe_users", k) == 1));
    let values: Vec<String> = order[..3].iter().map(|k| format!("({k}, 'ret{k}')")).collect();
    let sql = format!("INSERT INTO fe_users (id, name) VALUES {} RETURNING id, name", values.join(", "));
    let msgs = c.simple_query(&sql).await.unwrap();
    let got: Vec<Vec<Option<String>>> = text_rows(&msgs);
    let want: Vec<Vec<Option<String>>> =
        order[..3].iter().map(|k| vec![Some(k.to_string()), Some(format!("ret{k}"))]).collect();
    assert_eq!(got, want);
    assert_eq!(tag_count(&msgs), 3);
    // …and extended protocol with parameters.
    let sql = "INSERT INTO fe_users (id, name) VALUES ($1, 'x'), ($2, 'y'), ($3, 'z') RETURNING id, name";
    let rows = c.query(sql, &[&order[3], &order[4], &order[5]]).await.unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(order[3], "x".into()), (order[4], "y".into()), (order[5], "z".into())]);
    for k in order {
        assert_eq!(ids_on(&direct[p.owner("fe_users", k)], "fe_users", k..k + 1).await, vec![k]);
    }
}

#[tokio::test]
async fn update_and_delete_with_key() {
    let f = front();
    let (p, c, direct) = (&f.proxy, app(&f.proxy).await, shards(f.cluster).await);
    let a = p.keys_on("fe_users", 0, 7000, 1)[0];
    let b = p.keys_on("fe_users", 1, 7000, 1)[0];
    c.simple_query(&format!("INSERT INTO fe_users (id, name) VALUES ({a}, 'a'), ({b}, 'b')")).await.unwrap();
    assert_eq!(c.execute("UPDATE fe_users SET name = 'a2' WHERE id = $1", &[&a]).await.unwrap(), 1);
    let msgs = c.simple_query(&format!("UPDATE fe_users SET name = name || '!' WHERE id IN ({a}, {b})")).await.unwrap();
    assert_eq!(tag_count(&msgs), 2, "counts of both shards summed");
    assert_eq!(rows_on(&direct[0], "fe_users", a..a + 1).await, vec![(a, Some("a2!".into()))]);
    assert_eq!(rows_on(&direct[1], "fe_users", b..b + 1).await, vec![(b, Some("b!".into()))]);
    assert_eq!(c.execute("DELETE FROM fe_users WHERE id = $1 OR id = $2", &[&a, &b]).await.unwrap(), 2);
    assert!(ids_on(&direct[0], "fe_users", a..a + 1).await.is_empty());
    assert!(ids_on(&direct[1], "fe_users", b..b + 1).await.is_empty());
}

#[tokio::test]
async fn scatter_select_returns_every_row_and_limit_offset_counts() {
    let f = front();
    let (c, direct) = (app(&f.proxy).await, shards(f.cluster).await);
    let values: Vec<String> = (1..=40).map(|k| format!("({k}, 'scan{}')", k % 7)).collect();
    let msgs = c.simple_query(&format!("INSERT INTO fe_scan (id, name) VALUES {}", values.join(", "))).await.unwrap();
    assert_eq!(tag_count(&msgs), 40);
    let mut union = Vec::new();
    for d in &direct {
        let rows = rows_on(d, "fe_scan", 0..1000).await;
        assert!(!rows.is_empty(), "every shard holds some rows");
        union.extend(rows);
    }
    assert_eq!(union.len(), 40);
    // Simple protocol.
    let rows = text_rows(&c.simple_query("SELECT id, name FROM fe_scan").await.unwrap());
    let got: Vec<(i64, Option<String>)> =
        rows.into_iter().map(|r| (r[0].as_deref().unwrap().parse().unwrap(), r[1].clone())).collect();
    assert_eq!(multiset(&got), multiset(&union));
    // Extended protocol, binary results.
    let rows = c.query("SELECT id, name FROM fe_scan WHERE name <> $1", &[&"none"]).await.unwrap();
    let got: Vec<(i64, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(multiset(&got), multiset(&union));

    // LIMIT / OFFSET without ORDER BY: only the counts are defined.
    let all: std::collections::BTreeSet<i64> = union.iter().map(|(id, _)| *id).collect();
    for (sql, n) in [
        ("SELECT id FROM fe_scan LIMIT 7", 7),
        ("SELECT id FROM fe_scan LIMIT 7 OFFSET 5", 7),
        ("SELECT id FROM fe_scan LIMIT 100 OFFSET 35", 5),
        ("SELECT id FROM fe_scan OFFSET 38", 2),
        ("SELECT id FROM fe_scan LIMIT 0", 0),
    ] {
        let rows = text_rows(&c.simple_query(sql).await.unwrap());
        let ids: std::collections::BTreeSet<i64> =
            rows.iter().map(|r| r[0].as_deref().unwrap().parse().unwrap()).collect();
        assert_eq!(rows.len(), n, "{sql}");
        assert_eq!(ids.len(), n, "{sql}: distinct rows");
        assert!(ids.is_subset(&all), "{sql}");
        let rows = c.query(sql, &[]).await.unwrap();
        assert_eq!(rows.len(), n, "{sql} (extended)");
    }
}

// ---- 2. transactions ---------------------------------------------------------------

#[tokio::test]
async fn second_write_shard_fails_the_transaction_until_rollback() {
    let f = front();
    let (p, c, direct) = (&f.proxy, app(&f.proxy).await, shards(f.cluster).await);
    let a = p.keys_on("fe_tx", 0, 100, 1)[0];
    let b = p.keys_on("fe_tx", 1, 100, 1)[0];
    c.simple_query(&format!("INSERT INTO fe_tx (id, name) VALUES ({b}, 'there')")).await.unwrap();

    c.simple_query("BEGIN").await.unwrap();
    assert_eq!(c.execute("INSERT INTO fe_tx (id, name) VALUES ($1, 'tx')", &[&a]).await.unwrap(), 1);
    // Reads on the other shard, keyed and scattered, are allowed.
    let name: String = c.query_one("SELECT name FROM fe_tx WHERE id = $1", &[&b]).await.unwrap().get(0);
    assert_eq!(name, "there");
    let ids: Vec<i64> =
        c.query("SELECT id FROM fe_tx WHERE id < 500", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(multiset(&ids), multiset(&[a, b]), "the transaction sees its own write");
    // A write on the other shard is refused…
    let msg = expect_err(c.execute("UPDATE fe_tx SET name = 'no' WHERE id = $1", &[&b]).await, "0A000");
    assert!(msg.contains("cross-shard transaction"), "{msg}");
    // …and the transaction is failed until it ends.
    expect_err(c.simple_query("SELECT 1").await, "25P02");
    expect_err(c.query("SELECT name FROM fe_tx WHERE id = $1", &[&a]).await, "25P02");
    c.simple_query("ROLLBACK").await.unwrap();
    assert!(ids_on(&direct[0], "fe_tx", a..a + 1).await.is_empty(), "the first write is rolled back");
    assert_eq!(rows_on(&direct[1], "fe_tx", b..b + 1).await, vec![(b, Some("there".into()))]);
    // The session is usable again.
    let rows = text_rows(&c.simple_query(&format!("SELECT name FROM fe_tx WHERE id = {b}")).await.unwrap());
    assert_eq!(rows, vec![vec![Some("there".into())]]);
}

#[tokio::test]
async fn commit_persists_on_the_write_shard() {
    let f = front();
    let (p, c, direct) = (&f.proxy, app(&f.proxy).await, shards(f.cluster).await);
    let keys = p.keys_on("fe_tx", 1, 500, 2);
    c.simple_query("BEGIN").await.unwrap();
    for &k in &keys {
        c.execute("INSERT INTO fe_tx (id, name) VALUES ($1, 'c')", &[&k]).await.unwrap();
    }
    c.execute("UPDATE fe_tx SET name = 'committed' WHERE id = $1", &[&keys[0]]).await.unwrap();
    // Not visible to others before COMMIT.
    assert!(ids_on(&direct[1], "fe_tx", keys[0]..keys[0] + 1).await.is_empty());
    c.simple_query("COMMIT").await.unwrap();
    let got = rows_on(&direct[1], "fe_tx", keys[0]..keys[1] + 1).await;
    assert_eq!(got, vec![(keys[0], Some("committed".into())), (keys[1], Some("c".into()))]);
}

#[tokio::test]
async fn client_vanishing_mid_transaction_releases_its_row_locks() {
    let f = front();
    let p = &f.proxy;
    let k = p.keys_on("fe_lock", 0, 1, 1)[0];
    let other = app(p).await;
    other.simple_query(&format!("INSERT INTO fe_lock (id, name) VALUES ({k}, 'locked')")).await.unwrap();
    other.simple_query("SET lock_timeout = '300ms'").await.unwrap();

    let (holder, conn) = tokio_postgres::connect(&p.conn_str(APP_USER, APP_PASSWORD), NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    holder.simple_query("BEGIN").await.unwrap();
    holder.query_one("SELECT name FROM fe_lock WHERE id = $1 FOR UPDATE", &[&k]).await.unwrap();

    // The lock is really held.
    other.simple_query("BEGIN").await.unwrap();
    expect_err(other.query("SELECT name FROM fe_lock WHERE id = $1 FOR UPDATE", &[&k]).await, "55P03");
    other.simple_query("ROLLBACK").await.unwrap();

    // The holder's socket goes away without a Terminate message.
    conn.abort();
    let _ = conn.await;
    drop(holder);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        other.simple_query("BEGIN").await.unwrap();
        match other.query("SELECT name FROM fe_lock WHERE id = $1 FOR UPDATE", &[&k]).await {
            Ok(rows) => {
                assert_eq!(rows.len(), 1);
                other.simple_query("ROLLBACK").await.unwrap();
                break;
            }
            Err(e) => {
                assert_eq!(code(&e), "55P03", "{e:?}");
                other.simple_query("ROLLBACK").await.unwrap();
                assert!(Instant::now() < deadline, "the vanished client's lock is still held");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A frontend message: type, length, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Parse, Bind and Execute of a parameterless statement (unnamed statement and portal).
fn parse_bind_execute(sql: &str) -> Vec<u8> {
    let mut parse = vec![0];
    parse.extend_from_slice(sql.as_bytes());
    parse.extend_from_slice(&[0, 0, 0]);
    let mut out = msg(b'P', &parse);
    out.extend(msg(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    out.extend(msg(b'E', &[0, 0, 0, 0, 0]));
    out
}

/// Reads backend messages up to ReadyForQuery: (type, body) pairs.
async fn read_to_ready(s: &mut tokio::net::TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.unwrap();
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).await.unwrap();
        out.push((head[0], body));
        if head[0] == b'Z' {
            return out;
        }
    }
}

/// A pipelined batch (several Executes, one Sync) is one implicit transaction,
/// as in PostgreSQL: all of it commits, or none of it.
#[tokio::test]
async fn an_extended_batch_is_all_or_nothing() {
    let f = front();
    let (p, direct) = (&f.proxy, shards(f.cluster).await);
    let a = p.keys_on("fe_tx", 0, 900, 2);
    let b = p.keys_on("fe_tx", 1, 900, 1)[0];
    let mut s = raw_session(p).await;

    let mut batch = parse_bind_execute(&format!("INSERT INTO fe_tx (id, name) VALUES ({}, 'batch')", a[0]));
    batch.extend(parse_bind_execute(&format!("INSERT INTO fe_tx (id, name) VALUES ({}, 'batch')", a[1])));
    batch.extend(msg(b'S', &[]));
    s.write_all(&batch).await.unwrap();
    let answer = read_to_ready(&mut s).await;
    assert!(answer.iter().all(|(t, _)| *t != b'E'), "{answer:?}");
    assert_eq!(answer.iter().filter(|(t, _)| *t == b'C').count(), 2);
    assert_eq!(ids_on(&direct[0], "fe_tx", 900..100_000).await, a);

    // The second statement is refused: the first one must not commit.
    let mut batch = parse_bind_execute(&format!("DELETE FROM fe_tx WHERE id = {}", a[0]));
    batch.extend(parse_bind_execute(&format!("INSERT INTO fe_tx (id, name) VALUES ({b}, 'other shard')")));
    batch.extend(msg(b'S', &[]));
    s.write_all(&batch).await.unwrap();
    let answer = read_to_ready(&mut s).await;
    let error = answer.iter().find(|(t, _)| *t == b'E').expect("the second write is refused");
    assert!(String::from_utf8_lossy(&error.1).contains("0A000"), "{:?}", String::from_utf8_lossy(&error.1));
    assert_eq!(ids_on(&direct[0], "fe_tx", 900..100_000).await, a, "the DELETE of the failed batch was committed");
    assert!(ids_on(&direct[1], "fe_tx", b..b + 1).await.is_empty());

    // The connection goes on.
    s.write_all(&msg(b'Q', b"SELECT 5\0")).await.unwrap();
    let answer = read_to_ready(&mut s).await;
    assert!(answer.iter().any(|(t, body)| *t == b'D' && body.ends_with(b"5")), "{answer:?}");
}

// ---- 3. errors and authentication --------------------------------------------------------

#[tokio::test]
async fn routing_errors_have_their_sqlstates() {
    let f = front();
    let c = app(&f.proxy).await;
    expect_err(c.simple_query("SELECT * FROM fe_no_such_table").await, "42P01");
    expect_err(c.simple_query("SELECT id FROM fe_err WHERE id = = 1").await, "42601");
    expect_err(c.query("SELECT id FROM fe_err WHERE id = = $1", &[&1i64]).await, "42601");
    let msg = expect_err(c.simple_query("UPDATE fe_err SET name = 'all'").await, "0A000");
    assert!(msg.contains("allow_scatter_writes"), "{msg}");
    let msg = expect_err(c.execute("DELETE FROM fe_err WHERE name = $1", &[&"x"]).await, "0A000");
    assert!(msg.contains("allow_scatter_writes"), "{msg}");
    // The session goes on.
    assert_eq!(text_rows(&c.simple_query("SELECT 1").await.unwrap()), vec![vec![Some("1".into())]]);
}

#[tokio::test]
async fn password_md5_and_trust_logins() {
    let f = front();
    let p = &f.proxy;
    for (user, pw) in [(APP_USER, "wrong"), (MD5_USER, "wrong"), ("nobody", "x")] {
        let e = connect(&p.conn_str(user, pw)).await.err().unwrap_or_else(|| panic!("{user} logged in with {pw}"));
        assert_eq!(code(&e), "28P01", "{user}: {e:?}");
    }
    for (user, pw) in [(APP_USER, APP_PASSWORD), (MD5_USER, MD5_PASSWORD), (TRUST_USER, "anything")] {
        let c = connect(&p.conn_str(user, pw)).await.unwrap_or_else(|e| panic!("{user}: {e:?}"));
        let rows = text_rows(&c.simple_query("SELECT name FROM fe_countries WHERE code = 'de'").await.unwrap());
        assert_eq!(rows, vec![vec![Some("Germany".into())]], "{user}");
    }
}

/// A raw connection as the trust user, after ReadyForQuery.
async fn raw_session(p: &Proxy) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    for kv in ["user", TRUST_USER, "database", "shardgate", ""] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    s.write_all(&msg).await.unwrap();
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.unwrap();
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut rest = vec![0u8; len - 4];
        s.read_exact(&mut rest).await.unwrap();
        assert_ne!(head[0], b'E', "startup failed: {}", String::from_utf8_lossy(&rest));
        if head[0] == b'Z' {
            return s;
        }
    }
}

/// Reads until the proxy closes the connection; fails after `secs`.
async fn closed_within(s: &mut tokio::net::TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), read_all).await.is_ok()
}

#[tokio::test]
async fn malformed_messages_close_only_their_client() {
    let f = front();
    let p = &f.proxy;
    let bystander = app(p).await;
    let cases: [(&str, &[u8]); 4] = [
        ("text garbage", b"this is not a postgres message at all\r\n"),
        ("negative length", b"Q\xff\xff\xff\xf0SELECT 1\0"),
        ("length below 4", b"Q\x00\x00\x00\x02"),
        ("unknown type", b"\x01\x00\x00\x00\x04"),
    ];
    for (what, bytes) in cases {
        let mut s = raw_session(p).await;
        s.write_all(bytes).await.unwrap();
        assert!(closed_within(&mut s, 5).await, "{what}: the connection stays open");
        let rows = text_rows(&bystander.simple_query("SELECT 2").await.unwrap());
        assert_eq!(rows, vec![vec![Some("2".into())]], "{what}: an open client goes on");
        let fresh = app(p).await;
        let rows = text_rows(&fresh.simple_query("SELECT 3").await.unwrap());
        assert_eq!(rows, vec![vec![Some("3".into())]], "{what}: a new client is served");
    }
}

// ---- 4. psql ------------------------------------------------------------------------------------

/// Runs psql against the proxy: (success, stdout, stderr).
fn psql(p: &Proxy, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(client_binary(BackendKind::Postgres).unwrap())
        .arg(p.url(APP_USER, APP_PASSWORD))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).trim().to_string();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[tokio::test]
async fn psql_implicit_transaction_describe_and_explain_route() {
    let f = front();
    let (p, direct) = (&f.proxy, shards(f.cluster).await);
    let a = p.keys_on("fe_psql", 0, 1, 3);
    let b = p.keys_on("fe_psql", 1, 1, 1)[0];

    // Several statements in one -c string all commit together…
    let sql = format!(
        "INSERT INTO fe_psql (id, name) VALUES ({}, 'one'); INSERT INTO fe_psql (id, name) VALUES ({}, 'two'); SELECT count(*) FROM fe_psql WHERE id = {}",
        a[0], a[1], a[0]
    );
    let (ok, out, err) = psql(p, &["-c", &sql]);
    assert!(ok, "{err}");
    assert_eq!(out, "1");
    assert_eq!(ids_on(&direct[0], "fe_psql", 0..100_000).await, vec![a[0], a[1]]);
    // …or not at all when the last one fails (on the shard, and on another shard).
    for last in ["SELECT 1 / 0".to_string(), format!("SELECT 1 / (id - id) FROM fe_psql WHERE id = {b}")] {
        direct[1]
            .execute("INSERT INTO fe_psql (id, name) VALUES ($1, 'b') ON CONFLICT DO NOTHING", &[&b])
            .await
            .unwrap();
        let sql = format!("INSERT INTO fe_psql (id, name) VALUES ({}, 'gone'); {last}", a[2]);
        let (ok, _, err) = psql(p, &["-c", &sql]);
        assert!(!ok, "{last}: psql succeeded");
        assert!(err.contains("division by zero"), "{last}: {err}");
        assert!(
            ids_on(&direct[0], "fe_psql", a[2]..a[2] + 1).await.is_empty(),
            "{last}: the INSERT was not rolled back"
        );
    }

    // \d runs psql's catalog queries.
    let (ok, out, err) = psql(p, &["-c", "\\d fe_users"]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("id|bigint")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("name|text")), "{out}");

    // EXPLAIN ROUTE answers with a row per shard.
    let (x, y) = (p.keys_on("fe_users", 0, 1, 1)[0], p.keys_on("fe_users", 1, 1, 1)[0]);
    let (ok, out, err) = psql(p, &["-c", &format!("EXPLAIN ROUTE SELECT * FROM fe_users WHERE id IN ({x}, {y})")]);
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    let shard_rows: Vec<&Vec<&str>> = rows.iter().filter(|r| !r[0].is_empty()).collect();
    assert_eq!(shard_rows.len(), 2, "{out}");
    let s0 = shard_rows.iter().find(|r| r[0] == "s0").unwrap_or_else(|| panic!("no s0 row: {out}"));
    let s1 = shard_rows.iter().find(|r| r[0] == "s1").unwrap_or_else(|| panic!("no s1 row: {out}"));
    assert!(s0[1].contains(&format!("IN ({x})")), "{out}");
    assert!(s1[1].contains(&format!("IN ({y})")), "{out}");
}

// ---- 5. psycopg 3 ---------------------------------------------------------------------------

const PSYCOPG_SCRIPT: &str = r#"
import sys
import psycopg

url, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with psycopg.connect(url, autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("INSERT INTO fe_py (id, name, n) VALUES (%s, %s, %s), (%s, %s, %s)", (a, "alpha", 1, b, "beta", 2))
    print("insert", cur.rowcount)
    cur.execute("SELECT name, n FROM fe_py WHERE id = %s", (a,))
    print("text", *cur.fetchone())
    cur.execute("SELECT name, n FROM fe_py WHERE id = %s", (b,), binary=True)
    print("binary", *cur.fetchone())
    for i in range(4):
        key = a if i % 2 == 0 else b
        cur.execute("SELECT id, name FROM fe_py WHERE id = %s", (key,), prepare=True)
        print("prepared", *cur.fetchone())
    with conn.transaction():
        cur.execute("UPDATE fe_py SET n = n + %s WHERE id = %s", (10, b))
        print("update", cur.rowcount)
    cur.execute("SELECT id FROM fe_py WHERE id IN (%s, %s)", (a, b))
    print("scatter", *sorted(r[0] for r in cur.fetchall()))
"#;

#[tokio::test]
async fn psycopg3_text_binary_and_prepared() {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if !python.exists() {
        eprintln!("SKIPPED psycopg3_text_binary_and_prepared: no .venv (run ./integration/install.sh)");
        return;
    }
    let f = front();
    let (p, direct) = (&f.proxy, shards(f.cluster).await);
    let a = p.keys_on("fe_py", 0, 1, 1)[0];
    let b = p.keys_on("fe_py", 1, 1, 1)[0];
    let out = Command::new(&python)
        .args(["-c", PSYCOPG_SCRIPT, &p.url(APP_USER, APP_PASSWORD), &a.to_string(), &b.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let expected = format!(
        "insert 2\ntext alpha 1\nbinary beta 2\nprepared {a} alpha\nprepared {b} beta\nprepared {a} alpha\n\
         prepared {b} beta\nupdate 1\nscatter {} {}\n",
        a.min(b),
        a.max(b)
    );
    assert_eq!(stdout, expected);
    let n: i32 = direct[1].query_one("SELECT n FROM fe_py WHERE id = $1", &[&b]).await.unwrap().get(0);
    assert_eq!(n, 12);
    assert_eq!(ids_on(&direct[0], "fe_py", 0..100_000).await, vec![a]);
}

// ---- 6. a shard stopped in the middle ----------------------------------------------------------

#[tokio::test]
async fn a_killed_shard_fails_fast_and_the_other_keeps_serving() {
    let cluster = support::fresh_cluster(BackendKind::Postgres, 2, false);
    let p = start_front(&cluster, "[timeouts]\nconnect_ms = 3000\nstatement_ms = 30000\n");
    let c = app(&p).await;
    let a = p.keys_on("fe_down", 0, 1, 2);
    let b = p.keys_on("fe_down", 1, 1, 1)[0];
    // Warm both pools, so the proxy holds idle connections to the shard that dies.
    c.simple_query(&format!("INSERT INTO fe_down (id, name) VALUES ({}, 'a')", a[0])).await.unwrap();
    c.simple_query(&format!("INSERT INTO fe_down (id, name) VALUES ({b}, 'b')")).await.unwrap();

    let pid = cluster.shard(1).pid;
    cluster.kill_server("s1").unwrap();
    if let Some(pid) = pid {
        assert!(support::wait_gone(pid, 5));
    }
    for attempt in 0..3 {
        let start = Instant::now();
        let r = c.query("SELECT name FROM fe_down WHERE id = $1", &[&b]).await;
        let took = start.elapsed();
        let e = r.err().unwrap_or_else(|| panic!("attempt {attempt}: a query on the dead shard succeeded"));
        assert!(["08006", "08001"].contains(&code(&e).as_str()), "attempt {attempt}: {e:?}");
        assert!(message(&e).contains("s1"), "attempt {attempt}: {}", message(&e));
        assert!(took < Duration::from_millis(1500), "attempt {attempt} took {took:?}");
        // The other shard still answers, on the same client and on a new one.
        let rows = text_rows(&c.simple_query(&format!("SELECT name FROM fe_down WHERE id = {}", a[0])).await.unwrap());
        assert_eq!(rows, vec![vec![Some("a".into())]], "attempt {attempt}");
    }
    let fresh = app(&p).await;
    assert_eq!(fresh.execute("INSERT INTO fe_down (id, name) VALUES ($1, 'a2')", &[&a[1]]).await.unwrap(), 1);
    let start = Instant::now();
    let e = fresh.simple_query(&format!("UPDATE fe_down SET name = 'x' WHERE id = {b}")).await.unwrap_err();
    assert!(["08006", "08001"].contains(&code(&e).as_str()), "{e:?}");
    assert!(start.elapsed() < Duration::from_millis(1500));
    drop((c, fresh));
    drop(p);
}
