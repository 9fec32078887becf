//! Session pooling: a client keeps its backend connections between
//! statements and transactions, and transactions still begin and end on them.

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::support::proxy::{APP_PASSWORD, APP_USER, start_pg};
use crate::support::{self, BackendKind};

const TABLES: &str = "[keyspace.k]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n\
                      [[table]]\nname = \"sp_items\"\nkeyspace = \"k\"\nkey = \"id\"\n";

fn first_value(msgs: &[SimpleQueryMessage]) -> Option<String> {
    msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

#[test]
fn session_pooling_keeps_connections_and_transactions_still_work() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    for s in cluster.shards() {
        support::query(s, "DROP TABLE IF EXISTS sp_items; CREATE TABLE sp_items (id bigint PRIMARY KEY, v text)");
    }
    let proxy = start_pg(cluster, TABLES, "[pool]\nmode = \"session\"\n");
    let key = proxy.keys_on("sp_items", 0, 1, 1)[0];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&proxy.conn_str(APP_USER, APP_PASSWORD), NoTls).await.unwrap();
        tokio::spawn(conn);
        // The same backend process answers every time.
        let pid_sql = format!("SELECT pg_backend_pid(), count(*) FROM sp_items WHERE id = {key}");
        let first = first_value(&client.simple_query(&pid_sql).await.unwrap());
        for _ in 0..5 {
            assert_eq!(first_value(&client.simple_query(&pid_sql).await.unwrap()), first);
        }
        // A transaction on a connection the session already holds: BEGIN is
        // replayed on it, so ROLLBACK undoes the insert.
        client.simple_query("BEGIN").await.unwrap();
        client.simple_query(&format!("INSERT INTO sp_items (id, v) VALUES ({key}, 'x')")).await.unwrap();
        client.simple_query("ROLLBACK").await.unwrap();
        let count = format!("SELECT count(*) FROM sp_items WHERE id = {key}");
        assert_eq!(first_value(&client.simple_query(&count).await.unwrap()).as_deref(), Some("0"));
        client.simple_query("BEGIN").await.unwrap();
        client.simple_query(&format!("INSERT INTO sp_items (id, v) VALUES ({key}, 'y')")).await.unwrap();
        client.simple_query("COMMIT").await.unwrap();
        assert_eq!(first_value(&client.simple_query(&count).await.unwrap()).as_deref(), Some("1"));
        // Still the same backend after the transactions.
        assert_eq!(first_value(&client.simple_query(&pid_sql).await.unwrap()), first);
        // Another client cannot get that connection while this one lives
        // (under transaction pooling it would reuse the idle one).
        let (other, conn) = tokio_postgres::connect(&proxy.conn_str(APP_USER, APP_PASSWORD), NoTls).await.unwrap();
        tokio::spawn(conn);
        let theirs = first_value(&other.simple_query(&pid_sql).await.unwrap());
        assert!(theirs.is_some());
        assert_ne!(theirs, first, "a second session got the first session's backend connection");
    });
}
