//! Cancelling and timing out running statements through shardgate, on one
//! shard and on several.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::support::proxy::{APP_PASSWORD, APP_USER, start_pg};
use crate::support::{self, BackendKind};

const TABLES: &str = "[keyspace.k]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n\
                      [[table]]\nname = \"cn_items\"\nkeyspace = \"k\"\nkey = \"id\"\n";

#[test]
fn cancel_request_and_statement_timeout() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    for s in cluster.shards() {
        support::query(
            s,
            "DROP TABLE IF EXISTS cn_items; CREATE TABLE cn_items (id bigint PRIMARY KEY); \
                            INSERT INTO cn_items SELECT generate_series(1, 10)",
        );
    }
    let proxy = start_pg(cluster, TABLES, "[timeouts]\nstatement_ms = 1500\n");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&proxy.conn_str(APP_USER, APP_PASSWORD), NoTls).await.unwrap();
        tokio::spawn(conn);
        let token = client.cancel_token();

        // One shard (no table): CancelRequest through the proxy stops it.
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(NoTls).await
        });
        let start = Instant::now();
        let err = client.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
        assert!(canceller.await.unwrap().is_ok());
        assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
        assert!(start.elapsed() < Duration::from_millis(4000), "cancelled late: {:?}", start.elapsed());

        // Several shards: every shard's part is cancelled.
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(NoTls).await
        });
        let start = Instant::now();
        let err = client.simple_query("SELECT id, pg_sleep(0.5) FROM cn_items").await.unwrap_err();
        assert!(canceller.await.unwrap().is_ok());
        assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
        assert!(start.elapsed() < Duration::from_millis(4000), "cancelled late: {:?}", start.elapsed());

        // The session goes on.
        let rows = client.simple_query("SELECT count(*) FROM cn_items").await.unwrap();
        let count = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        assert_eq!(count.as_deref(), Some("20"));

        // The statement timeout: a prompt 57014 naming the setting.
        let start = Instant::now();
        let err = client.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
        let elapsed = start.elapsed();
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "57014");
        assert!(db.message().contains("timeouts.statement_ms"), "{}", db.message());
        assert!(elapsed < Duration::from_millis(3000), "timed out late: {elapsed:?}");
        let rows = client.simple_query("SELECT 1").await.unwrap();
        assert!(rows.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))));
    });
}

#[test]
fn plain_explain_is_forwarded_and_prefixed_per_shard() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    for s in cluster.shards() {
        support::query(s, "DROP TABLE IF EXISTS ex_items; CREATE TABLE ex_items (id bigint PRIMARY KEY, v text)");
    }
    let tables = "[keyspace.k]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n\
                  [[table]]\nname = \"ex_items\"\nkeyspace = \"k\"\nkey = \"id\"\n";
    let proxy = start_pg(cluster, tables, "");
    let key = proxy.keys_on("ex_items", 1, 1, 1)[0];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&proxy.conn_str(APP_USER, APP_PASSWORD), NoTls).await.unwrap();
        tokio::spawn(conn);
        let lines = |msgs: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<String> {
            msgs.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .collect()
        };
        // Every shard's plan for a scatter read.
        let plan = lines(client.simple_query("EXPLAIN SELECT * FROM ex_items WHERE v = 'x'").await.unwrap());
        assert!(plan.iter().any(|l| l.starts_with("s0: ")) && plan.iter().any(|l| l.starts_with("s1: ")), "{plan:?}");
        assert!(plan.iter().all(|l| l.starts_with("s0: ") || l.starts_with("s1: ")), "{plan:?}");
        assert!(plan.iter().any(|l| l.contains("Seq Scan on ex_items")), "{plan:?}");
        // One shard for a key; EXPLAIN ANALYZE runs it there.
        let plan = lines(
            client.simple_query(&format!("EXPLAIN ANALYZE SELECT * FROM ex_items WHERE id = {key}")).await.unwrap(),
        );
        assert!(plan.iter().all(|l| l.starts_with("s1: ")), "{plan:?}");
        assert!(plan.iter().any(|l| l.contains("actual time")), "{plan:?}");
    });
}
