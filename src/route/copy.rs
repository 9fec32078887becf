//! COPY: rows in, split by key; rows out, concatenated.

use std::sync::Arc;

use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement};

use crate::rules::Rules;
use crate::sharding::{ShardId, ShardSet};

use super::analyze::{InstKind, Resolved, name_parts, norm_ident, resolve_table};
use super::error::RouteError;
use super::plan::{CopyFormat, CopyIn, Merge, Plan, Reason, StatementKind, Target};
use super::{RouteContext, Router};

/// A COPY statement, analysed.
#[derive(Debug, Clone)]
pub enum CopyShape {
    /// COPY table FROM STDIN.
    In { copy: CopyIn, shards: ShardSet, reason: Reason },
    /// COPY table TO STDOUT: every shard holding the table, concatenated.
    OutTable { shards: ShardSet, reason: Reason },
    /// COPY (query) TO STDOUT: where the query goes, when it needs no merge.
    OutQuery { query: String },
}

fn unsupported(detail: impl Into<String>) -> RouteError {
    RouteError::Unsupported { detail: detail.into() }
}

fn format_of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat, RouteError> {
    let (mut csv, mut delimiter, mut null, mut header, mut quote, mut escape) = (false, None, None, false, b'"', None);
    let byte = |c: char| -> Result<u8, RouteError> {
        u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| unsupported("COPY delimiters and quotes must be ASCII"))
    };
    for o in options {
        match o {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                other => return Err(unsupported(format!("COPY format {other} into a sharded table is not supported"))),
            },
            CopyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
            CopyOption::Null(n) => null = Some(n.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = byte(*c)?,
            CopyOption::Escape(c) => escape = Some(byte(*c)?),
            CopyOption::Freeze(_)
            | CopyOption::Encoding(_)
            | CopyOption::ForceNotNull(_)
            | CopyOption::ForceNull(_) => {}
            CopyOption::ForceQuote(_) => {}
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => return Err(unsupported("COPY BINARY into a sharded table is not supported")),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            CopyLegacyOption::Csv(opts) => {
                csv = true;
                for co in opts {
                    match co {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = byte(*c)?,
                        CopyLegacyCsvOption::Escape(c) => escape = Some(byte(*c)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(if csv {
        CopyFormat::Csv {
            delimiter: delimiter.unwrap_or(b','),
            quote,
            escape: escape.unwrap_or(quote),
            header,
            null: null.unwrap_or_default(),
        }
    } else {
        CopyFormat::Text { delimiter: delimiter.unwrap_or(b'\t'), null: null.unwrap_or_else(|| "\\N".into()) }
    })
}

impl CopyShape {
    pub fn new(stmt: &Statement, rules: &Rules) -> Result<CopyShape, RouteError> {
        let Statement::Copy { source, to, target, options, legacy_options, .. } = stmt else {
            return Err(unsupported("not a COPY"));
        };
        match (source, to, target) {
            (CopySource::Table { table_name, columns }, false, CopyTarget::Stdin) => {
                let parts = name_parts(table_name, rules.backend);
                let table = parts.join(".");
                let Resolved::Table(kind) = resolve_table(rules, &parts)? else {
                    return Err(unsupported(format!("COPY into catalog table {table}")));
                };
                let format = format_of(options, legacy_options)?;
                let columns: Vec<String> = columns.iter().map(|c| norm_ident(c, rules.backend)).collect();
                let (key, shards, reason) = match kind {
                    InstKind::Sharded { keyspace, key } => {
                        if !columns.is_empty() && !columns.contains(&key) {
                            return Err(RouteError::Insert {
                                table,
                                detail: format!("COPY must include the sharding key {key} among its columns"),
                            });
                        }
                        let shards = rules.keyspace(keyspace).shards(&rules.ring);
                        (Some((key.clone(), keyspace)), shards, Reason::Key { table: table.clone(), key })
                    }
                    InstKind::Reference => (None, rules.all_shards(), Reason::Broadcast { table: table.clone() }),
                    InstKind::Pinned(s) => (None, ShardSet::single(s), Reason::Pinned { table: table.clone() }),
                    InstKind::Default(s) => (None, ShardSet::single(s), Reason::DefaultShard { table: table.clone() }),
                };
                Ok(CopyShape::In { copy: CopyIn { table, columns, key, format }, shards, reason })
            }
            (CopySource::Table { table_name, .. }, true, CopyTarget::Stdout) => {
                let parts = name_parts(table_name, rules.backend);
                let table = parts.join(".");
                let Resolved::Table(kind) = resolve_table(rules, &parts)? else {
                    return Ok(CopyShape::OutTable { shards: ShardSet::single(ShardId(0)), reason: Reason::AnyShard });
                };
                Ok(match kind {
                    InstKind::Sharded { keyspace, .. } => CopyShape::OutTable {
                        shards: rules.keyspace(keyspace).shards(&rules.ring),
                        reason: Reason::Scatter { table },
                    },
                    InstKind::Reference => CopyShape::OutTable {
                        shards: ShardSet::single(ShardId(0)),
                        reason: Reason::ReferenceRead { table },
                    },
                    InstKind::Pinned(s) => {
                        CopyShape::OutTable { shards: ShardSet::single(s), reason: Reason::Pinned { table } }
                    }
                    InstKind::Default(s) => {
                        CopyShape::OutTable { shards: ShardSet::single(s), reason: Reason::DefaultShard { table } }
                    }
                })
            }
            (CopySource::Query(q), true, CopyTarget::Stdout) => Ok(CopyShape::OutQuery { query: q.to_string() }),
            _ => {
                Err(unsupported("COPY to or from a file or program on the shards is not supported; use STDIN / STDOUT"))
            }
        }
    }

    pub fn bind(&self, sql: &Arc<str>, router: &Router, cx: &RouteContext<'_>) -> Result<Plan, RouteError> {
        let targets = |shards: &ShardSet, reason: &Reason| -> Vec<Target> {
            shards
                .iter()
                .map(|shard| Target { shard, sql: sql.clone(), params: None, reason: reason.clone(), rows: None })
                .collect()
        };
        match self {
            CopyShape::In { copy, shards, reason } => {
                let targets = targets(shards, reason);
                let merge = match (targets.len(), copy.key.is_some()) {
                    (1, _) => Merge::Forward,
                    (_, true) => Merge::SumCounts,
                    (_, false) => Merge::Broadcast,
                };
                Ok(Plan {
                    control: None,
                    copy_in: Some(Box::new(copy.clone())),
                    kind: StatementKind::Write,
                    targets,
                    merge,
                })
            }
            CopyShape::OutTable { shards, reason } => {
                let targets = targets(shards, reason);
                let merge = if targets.len() > 1 { Merge::Rows(Default::default()) } else { Merge::Forward };
                Ok(Plan { control: None, copy_in: None, kind: StatementKind::Read, targets, merge })
            }
            CopyShape::OutQuery { query } => {
                let plans = router.route(query, cx)?;
                let Some(inner) = plans.into_iter().next() else { return Err(unsupported("COPY of an empty query")) };
                if let Merge::Rows(m) = &inner.merge
                    && *m != Default::default()
                {
                    return Err(RouteError::Unmergeable {
                        construct: "COPY (query) TO STDOUT".into(),
                        why: "its query needs a merge over several shards; run the query itself instead",
                    });
                }
                let reason = inner.targets.first().map_or(Reason::AnyShard, |t| t.reason.clone());
                let shards: ShardSet = inner.targets.iter().map(|t| t.shard).collect();
                let targets = targets(&shards, &reason);
                let merge = if targets.len() > 1 { Merge::Rows(Default::default()) } else { Merge::Forward };
                Ok(Plan { control: None, copy_in: None, kind: StatementKind::Read, targets, merge })
            }
        }
    }
}
