//! Session settings under transaction pooling: a client's SETs follow it
//! from one pooled connection to the next, a SET rolled back with its
//! transaction is undone, SET LOCAL lasts for its transaction only, and
//! another client never sees them.

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::support::proxy::{APP_PASSWORD, APP_USER, start_pg};
use crate::support::{self, BackendKind};

fn value(msgs: &[SimpleQueryMessage]) -> String {
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn settings_follow_the_client_and_respect_transactions() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    // One connection per shard: clients must share them.
    let proxy = start_pg(cluster, "", "[pool]\nsize = 1\n");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let connect = || async {
            let (c, conn) = tokio_postgres::connect(&proxy.conn_str(APP_USER, APP_PASSWORD), NoTls).await.unwrap();
            tokio::spawn(conn);
            c
        };
        let a = connect().await;
        let b = connect().await;
        let show = "SHOW TimeZone";
        let b_default = value(&b.simple_query(show).await.unwrap());
        a.simple_query("SET TimeZone = 'Asia/Tokyo'").await.unwrap();
        // b uses the same (only) backend connection in between.
        assert_eq!(value(&b.simple_query(show).await.unwrap()), b_default);
        assert_eq!(value(&a.simple_query(show).await.unwrap()), "Asia/Tokyo");
        assert_eq!(value(&b.simple_query(show).await.unwrap()), b_default);

        // A SET rolled back with its transaction is undone.
        a.simple_query("BEGIN").await.unwrap();
        a.simple_query("SET TimeZone = 'Europe/Paris'").await.unwrap();
        assert_eq!(value(&a.simple_query(show).await.unwrap()), "Europe/Paris");
        a.simple_query("ROLLBACK").await.unwrap();
        assert_eq!(value(&a.simple_query(show).await.unwrap()), "Asia/Tokyo");

        // A committed one stays.
        a.simple_query("BEGIN").await.unwrap();
        a.simple_query("SET TimeZone = 'America/New_York'").await.unwrap();
        a.simple_query("COMMIT").await.unwrap();
        assert_eq!(value(&a.simple_query(show).await.unwrap()), "America/New_York");

        // SET LOCAL lasts for its transaction.
        a.simple_query("BEGIN").await.unwrap();
        a.simple_query("SET LOCAL TimeZone = 'UTC'").await.unwrap();
        assert_eq!(value(&a.simple_query(show).await.unwrap()), "UTC");
        a.simple_query("COMMIT").await.unwrap();
        assert_eq!(value(&a.simple_query(show).await.unwrap()), "America/New_York");

        // RESET goes back to the default; b never saw any of it.
        a.simple_query("RESET TimeZone").await.unwrap();
        assert_eq!(value(&a.simple_query(show).await.unwrap()), b_default);
        assert_eq!(value(&b.simple_query(show).await.unwrap()), b_default);
    });
}
