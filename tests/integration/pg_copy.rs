//! COPY through shardgate with psql's `\copy`: rows split by key in text and
//! CSV formats, COPY TO STDOUT concatenated, bad keys abort every shard.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::proxy::{APP_PASSWORD, APP_USER, start_pg};
use crate::support::{self, BackendKind};

const TABLES: &str = "[keyspace.k]\nalgorithm = \"hash\"\nkey_type = \"integer\"\n\
                      [[table]]\nname = \"cp_items\"\nkeyspace = \"k\"\nkey = \"id\"\n\
                      [[table]]\nname = \"cp_tags\"\nreference = true\n";

fn psql_stdin(url: &str, command: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("psql")
        .args([url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn psql(url: &str, sql: &str) -> String {
    let (ok, out) = psql_stdin(url, sql, "");
    assert!(ok, "{sql}: {out}");
    out.trim().to_string()
}

#[test]
fn copy_in_splits_rows_by_key_and_copy_out_concatenates() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    for s in cluster.shards() {
        psql(
            &s.url(),
            "DROP TABLE IF EXISTS cp_items; CREATE TABLE cp_items (id bigint PRIMARY KEY, name text, note text); \
             DROP TABLE IF EXISTS cp_tags; CREATE TABLE cp_tags (tag text PRIMARY KEY)",
        );
    }
    let proxy = start_pg(cluster, TABLES, "");
    let url = proxy.url(APP_USER, APP_PASSWORD);

    // Text format: tabs, escapes, NULLs, and a last line without newline.
    let mut text = String::new();
    for id in 1..=200 {
        text.push_str(&format!(
            "{id}\tname {id}\t{}\n",
            if id % 7 == 0 { "\\N".to_string() } else { format!("a\\tb {id}") }
        ));
    }
    text.push_str("201\tlast\tno newline");
    let (ok, out) = psql_stdin(&url, "\\copy cp_items from stdin", &text);
    assert!(ok, "{out}");
    assert!(out.contains("COPY 201"), "{out}");

    // CSV with a header, quotes and an embedded newline, into named columns.
    let csv = "id,name\n1001,\"comma, inside\"\n1002,\"two\nlines\"\n1003,plain\n";
    let (ok, out) = psql_stdin(&url, "\\copy cp_items (id, name) from stdin with (format csv, header true)", csv);
    assert!(ok, "{out}");
    assert!(out.contains("COPY 3"), "{out}");

    // Every row on its owner, exactly once.
    let mut total = 0;
    for (i, s) in cluster.shards().iter().enumerate() {
        let ids = psql(&s.url(), "SELECT string_agg(id::text, ',' ORDER BY id) FROM cp_items");
        for id in ids.split(',').filter(|v| !v.is_empty()) {
            let id: i64 = id.parse().unwrap();
            assert_eq!(proxy.owner("cp_items", id), i, "{id} on shard s{i}");
            total += 1;
        }
    }
    assert_eq!(total, 204);
    assert_eq!(psql(&url, "SELECT name FROM cp_items WHERE id = 1002"), "two\nlines");
    assert_eq!(psql(&url, "SELECT note FROM cp_items WHERE id = 3"), "a\tb 3");
    assert_eq!(psql(&url, "SELECT count(*) FROM cp_items WHERE note IS NULL AND id <= 200"), "28");

    // COPY TO STDOUT: every shard's rows once.
    let out = psql(&url, "COPY cp_items (id) TO STDOUT");
    let mut ids: Vec<i64> = out.lines().map(|l| l.parse().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 204);
    ids.dedup();
    assert_eq!(ids.len(), 204);

    // Reference tables get every row on every shard.
    let (ok, out) = psql_stdin(&url, "\\copy cp_tags from stdin", "red\ngreen\nblue\n");
    assert!(ok, "{out}");
    for s in cluster.shards() {
        assert_eq!(psql(&s.url(), "SELECT count(*) FROM cp_tags"), "3");
    }

    // A NULL key aborts the whole COPY, on every shard; the session goes on.
    let (ok, out) = psql_stdin(&url, "\\copy cp_items from stdin", "2001\tok\tx\n\\N\tnull key\tx\n");
    assert!(!ok, "{out}");
    assert!(out.contains("NULL sharding key"), "{out}");
    assert_eq!(psql(&url, "SELECT count(*) FROM cp_items WHERE id = 2001"), "0");
    // A duplicate key on one shard aborts it too, with the shard's message.
    let (ok, out) = psql_stdin(&url, "\\copy cp_items from stdin", "3001\tnew\tx\n1\tdup\tx\n");
    assert!(!ok, "{out}");
    assert!(out.contains("duplicate key"), "{out}");
    assert_eq!(psql(&url, "SELECT count(*) FROM cp_items"), "204");
}
