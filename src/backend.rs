//! The two kinds of database shardgate speaks to, and what differs between them
//! that the dialect-neutral layers need to know.

use serde::Deserialize;

/// The kind of database server behind a listener or a rule file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Postgres,
    Mysql,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Mysql => "mysql",
        }
    }

    /// The sqlparser dialect for statements written for this backend.
    pub fn dialect(self) -> &'static dyn sqlparser::dialect::Dialect {
        match self {
            BackendKind::Postgres => &sqlparser::dialect::PostgreSqlDialect {},
            BackendKind::Mysql => &sqlparser::dialect::MySqlDialect {},
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "postgres" | "postgresql" => Ok(BackendKind::Postgres),
            "mysql" | "mariadb" => Ok(BackendKind::Mysql),
            other => Err(format!("unknown backend `{other}` (expected postgres or mysql)")),
        }
    }
}
