//! The demo schema, one place for both dialects (the demo creates it on each
//! shard; the data loader and tests reuse it).
//!
//! Same table and column names on both backends. PostgreSQL `timestamp`
//! (without time zone) is MariaDB `datetime`: MariaDB's `timestamp` converts
//! through the session time zone and ends in 2038.

use crate::backend::BackendKind;

/// The demo tables, in creation order.
pub const TABLES: [&str; 4] = ["users", "orders", "events", "countries"];

const POSTGRES: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text, country char(2), created_at timestamp)",
    "CREATE TABLE IF NOT EXISTS orders (id bigint, user_id bigint, amount numeric(12,2), status text, created_at timestamp)",
    "CREATE TABLE IF NOT EXISTS events (id bigint, user_id bigint, kind text, created_at timestamp)",
    "CREATE TABLE IF NOT EXISTS countries (code char(2) PRIMARY KEY, name text)",
];

const MYSQL: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text, country char(2), created_at datetime)",
    "CREATE TABLE IF NOT EXISTS orders (id bigint, user_id bigint, amount numeric(12,2), status text, created_at datetime)",
    "CREATE TABLE IF NOT EXISTS events (id bigint, user_id bigint, kind text, created_at datetime)",
    "CREATE TABLE IF NOT EXISTS countries (code char(2) PRIMARY KEY, name text)",
];

/// One `CREATE TABLE IF NOT EXISTS` per table of [`TABLES`], in that order.
pub fn ddl(kind: BackendKind) -> &'static [&'static str] {
    match kind {
        BackendKind::Postgres => &POSTGRES,
        BackendKind::Mysql => &MYSQL,
    }
}

/// All of [`ddl`] as one script.
pub fn ddl_script(kind: BackendKind) -> String {
    ddl(kind).iter().map(|s| format!("{s};\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_ddl_in_both_dialects_and_it_parses() {
        for kind in [BackendKind::Postgres, BackendKind::Mysql] {
            let statements = ddl(kind);
            for (table, sql) in TABLES.iter().zip(statements) {
                assert!(sql.contains(&format!("EXISTS {table} (")), "{sql}");
                sqlparser::parser::Parser::parse_sql(kind.dialect(), sql)
                    .unwrap_or_else(|e| panic!("{kind}: {sql}: {e}"));
            }
        }
    }
}
