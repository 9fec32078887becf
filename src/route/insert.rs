//! INSERT: every row to the shard of its key.

use std::sync::Arc;

use sqlparser::ast::{Expr, Ident, Insert, ObjectName, SetExpr, Statement, TableObject};

use crate::rules::{KeyPlacement, Rules};
use crate::sharding::ShardId;
use crate::sharding::idgen::IdGenerator;
use crate::sharding::key::KeyContext;

use super::RouteContext;
use super::analyze::{
    Analyzer, InstKind, ParamNumbering, Resolved, ScopeKind, ValueRef, find_volatile, name_parts, resolve_table,
    value_ref,
};
use super::error::RouteError;
use super::plan::{Merge, Plan, Reason, StatementKind, Target};
use super::rewrite::{number, render};
use super::routing::{Decision, Routing, literal};

/// An INSERT, analysed.
#[derive(Debug, Clone)]
pub struct InsertShape {
    table: String,
    placement: InsertPlacement,
    /// The statement with any generated-id column added to the column list.
    insert: Insert,
    /// Per VALUES row: the key value.
    rows: Vec<RowKey>,
    /// The column index (in `insert.columns`) of a generated id, when the
    /// statement left it out and shardgate fills it.
    generated: Option<usize>,
    volatile: Option<String>,
    conflict: bool,
    returning: bool,
    /// For INSERT … SELECT: where the SELECT must run.
    source: Option<Routing>,
}

#[derive(Debug, Clone)]
enum InsertPlacement {
    Sharded { keyspace: usize, key: String },
    Reference,
    Fixed(ShardId, bool),
}

#[derive(Debug, Clone)]
enum RowKey {
    Value(ValueRef),
    Generated,
    /// Anything else (an expression, DEFAULT): cannot be placed.
    Opaque(String),
}

fn insert_err(table: &str, detail: impl Into<String>) -> RouteError {
    RouteError::Insert { table: table.to_string(), detail: detail.into() }
}

impl InsertShape {
    pub fn new(ins: &Insert, rules: &Rules) -> Result<InsertShape, RouteError> {
        let TableObject::TableName(name) = &ins.table else {
            return Err(RouteError::Unsupported { detail: "INSERT INTO a table function".into() });
        };
        let parts = name_parts(name, rules.backend);
        let table = parts.join(".");
        let placement = match resolve_table(rules, &parts)? {
            Resolved::Catalog => {
                return Err(RouteError::Unsupported { detail: format!("INSERT into catalog table {table}") });
            }
            Resolved::Table(InstKind::Sharded { keyspace, key }) => InsertPlacement::Sharded { keyspace, key },
            Resolved::Table(InstKind::Reference) => InsertPlacement::Reference,
            Resolved::Table(InstKind::Pinned(s)) => InsertPlacement::Fixed(s, false),
            Resolved::Table(InstKind::Default(s)) => InsertPlacement::Fixed(s, true),
        };
        let rule = rules.table(parts.len().checked_sub(2).map(|i| parts[i].as_str()), &parts[parts.len() - 1]);
        let generated_col = rule.and_then(|r| r.generated_id.clone());
        let mut insert = ins.clone();
        let col_names: Vec<String> =
            insert.columns.iter().map(|c| name_parts(c, rules.backend).pop().unwrap_or_default()).collect();
        if !insert.assignments.is_empty() {
            return Err(insert_err(&table, "INSERT … SET is not supported; write INSERT … (columns) VALUES (…)"));
        }
        let volatile = find_volatile(ins);
        let conflict = insert.on.is_some();
        let returning = insert.returning.is_some();

        // Where the rows come from.
        let mut rows = Vec::new();
        let mut generated = None;
        let mut source = None;
        let values = match insert.source.as_deref() {
            Some(q) => match q.body.as_ref() {
                SetExpr::Values(v) if q.with.is_none() && q.order_by.is_none() && q.limit_clause.is_none() => {
                    Some(v.rows.len())
                }
                _ => None,
            },
            None => return Err(insert_err(&table, "INSERT without VALUES or SELECT")),
        };
        if values.is_none() {
            // INSERT … SELECT.
            let Some(q) = insert.source.as_deref() else {
                return Err(insert_err(&table, "no source"));
            };
            let mut an = Analyzer::new(rules);
            an.query(q, None, ScopeKind::Top)?;
            let routing = Routing::new(&an.a)?;
            match &placement {
                InsertPlacement::Sharded { key, .. } => {
                    return Err(insert_err(
                        &table,
                        format!(
                            "INSERT … SELECT into a sharded table cannot be placed row by row (key {key}); insert the rows with VALUES"
                        ),
                    ));
                }
                InsertPlacement::Reference if !routing.insts.is_empty() || routing.fixed.is_some() => {
                    return Err(RouteError::ReferenceWrite {
                        table,
                        detail: "INSERT … SELECT from tables that differ between shards would make the copies diverge"
                            .into(),
                    });
                }
                _ => {}
            }
            source = Some(routing);
        }

        if let (InsertPlacement::Sharded { key, .. }, Some(_)) = (&placement, values) {
            if col_names.is_empty() {
                return Err(insert_err(
                    &table,
                    format!("list the columns, so that shardgate can find the sharding key {key}"),
                ));
            }
            let key_pos = col_names.iter().position(|c| c == key);
            let gen_pos = generated_col.as_ref().and_then(|g| col_names.iter().position(|c| c == g));
            if let Some(g) = &generated_col
                && gen_pos.is_none()
            {
                insert.columns.push(ObjectName::from(vec![Ident::new(g.clone())]));
                generated = Some(insert.columns.len() - 1);
            }
            let key_is_generated = key_pos.is_none() && generated_col.as_deref() == Some(key.as_str());
            if key_pos.is_none() && !key_is_generated {
                return Err(insert_err(&table, format!("the sharding key {key} is missing from the column list")));
            }
            let Some(q) = insert.source.as_deref() else {
                return Err(insert_err(&table, "no source"));
            };
            let SetExpr::Values(v) = q.body.as_ref() else {
                return Err(insert_err(&table, "no VALUES"));
            };
            for row in &v.rows {
                if row.len() != col_names.len() {
                    return Err(insert_err(
                        &table,
                        "a VALUES row has a different number of values than the column list",
                    ));
                }
                rows.push(match key_pos {
                    None => RowKey::Generated,
                    Some(k) => match value_ref(&row[k], &ParamNumbering) {
                        Some(v) => RowKey::Value(v),
                        None => RowKey::Opaque(row[k].to_string()),
                    },
                });
            }
        } else if let Some(g) = &generated_col
            && values.is_some()
            && !col_names.is_empty()
            && !col_names.contains(g)
        {
            // Reference and pinned tables can have generated ids too: made
            // once here, the same on every copy.
            insert.columns.push(ObjectName::from(vec![Ident::new(g.clone())]));
            generated = Some(insert.columns.len() - 1);
            rows = vec![RowKey::Generated; values.unwrap_or(0)];
        }
        if let InsertPlacement::Reference = placement
            && let Some(f) = &volatile
        {
            return Err(RouteError::ReferenceWrite {
                table,
                detail: format!("{f}() would give each copy a different value"),
            });
        }
        if conflict
            && let InsertPlacement::Sharded { key, .. } = &placement
            && updates_column(&insert, key, rules)
        {
            return Err(RouteError::KeyUpdate { table, key: key.clone() });
        }
        Ok(InsertShape { table, placement, insert, rows, generated, volatile, conflict, returning, source })
    }

    /// The pinned or default shard of the table, if it has one.
    pub fn fixed_shard(&self) -> Option<ShardId> {
        match self.placement {
            InsertPlacement::Fixed(s, _) => Some(s),
            _ => None,
        }
    }

    pub fn bind(
        &self,
        sql: &Arc<str>,
        rules: &Rules,
        cx: &RouteContext<'_>,
        ids: &IdGenerator,
    ) -> Result<Plan, RouteError> {
        let params = cx.params;
        let kcx = KeyContext {
            backend: rules.backend,
            collation: crate::sharding::TextCollation::Exact,
            utc_offset: cx.utc_offset,
        };
        let forward = |shard: ShardId, reason: Reason| Plan {
            control: None,
            copy_in: None,
            kind: StatementKind::Write,
            targets: vec![Target { shard, sql: sql.clone(), params: None, reason, rows: None }],
            merge: Merge::Forward,
        };
        // Generated ids, one per row when the statement left the column out.
        let ids_for_rows: Vec<Option<i64>> =
            self.rows.iter().map(|_| self.generated.is_some().then(|| ids.next_id())).collect();
        let with_rows = |keep: &[usize]| -> Statement {
            let mut ins = self.insert.clone();
            if let Some(q) = ins.source.as_mut()
                && let SetExpr::Values(v) = q.body.as_mut()
            {
                let all = std::mem::take(&mut v.rows);
                v.rows = keep
                    .iter()
                    .filter_map(|&i| {
                        let mut row = all.get(i)?.clone();
                        if self.generated.is_some() {
                            row.push(ids_for_rows[i].map_or_else(|| Expr::value(sqlparser::ast::Value::Null), number));
                        }
                        Some(row)
                    })
                    .collect();
            }
            Statement::Insert(ins)
        };
        let n_rows = self.rows.len();
        let all_rows: Vec<usize> = (0..n_rows).collect();
        match &self.placement {
            InsertPlacement::Fixed(s, default) => {
                if let Some(src) = &self.source {
                    match src.decide(rules, params, &kcx, cx.pinned)? {
                        Decision::One(t, _) if t == *s || (src.insts.is_empty() && src.fixed.is_none()) => {}
                        _ => {
                            return Err(insert_err(
                                &self.table,
                                "INSERT … SELECT reads rows that are not on the table's shard",
                            ));
                        }
                    }
                }
                let reason = if *default {
                    Reason::DefaultShard { table: self.table.clone() }
                } else {
                    Reason::Pinned { table: self.table.clone() }
                };
                if self.generated.is_none() {
                    return Ok(forward(*s, reason));
                }
                let (text, map) = render(&with_rows(&all_rows), rules.backend, params.len());
                Ok(Plan {
                    control: None,
                    copy_in: None,
                    kind: StatementKind::Write,
                    targets: vec![Target { shard: *s, sql: text.into(), params: map, reason, rows: None }],
                    merge: Merge::Forward,
                })
            }
            InsertPlacement::Reference => {
                let stmt = if self.generated.is_some() {
                    Some(render(&with_rows(&all_rows), rules.backend, params.len()))
                } else {
                    None
                };
                let (text, map) = match stmt {
                    Some((t, m)) => (Arc::<str>::from(t), m),
                    None => (sql.clone(), None),
                };
                let targets = rules
                    .all_shards()
                    .iter()
                    .map(|shard| Target {
                        shard,
                        sql: text.clone(),
                        params: map.clone(),
                        reason: Reason::Broadcast { table: self.table.clone() },
                        rows: None,
                    })
                    .collect::<Vec<_>>();
                let merge = if targets.len() > 1 { Merge::Broadcast } else { Merge::Forward };
                Ok(Plan { control: None, copy_in: None, kind: StatementKind::Write, targets, merge })
            }
            InsertPlacement::Sharded { keyspace, key } => {
                let ks = rules.keyspace(*keyspace);
                let mut by_shard: Vec<(ShardId, Vec<usize>)> = Vec::new();
                for (i, row) in self.rows.iter().enumerate() {
                    let n = i + 1;
                    let shard = match row {
                        RowKey::Opaque(e) => {
                            return Err(RouteError::InvalidKey {
                                table: self.table.clone(),
                                detail: format!(
                                    "the sharding key {key} of row {n} is `{e}`; give a literal or a parameter"
                                ),
                            });
                        }
                        RowKey::Generated => match ids_for_rows[i] {
                            Some(id) => place_or_err(
                                ks.place(&rules.ring, crate::sharding::Literal::Int(id), &kcx),
                                self,
                                &ks.name,
                                key,
                                n,
                            )?,
                            None => return Err(insert_err(&self.table, "no generated id")),
                        },
                        RowKey::Value(v) => {
                            let lit = literal(v, params)?;
                            place_or_err(ks.place(&rules.ring, lit, &kcx), self, &ks.name, key, n)?
                        }
                    };
                    match by_shard.iter_mut().find(|(s, _)| *s == shard) {
                        Some((_, rows)) => rows.push(i),
                        None => by_shard.push((shard, vec![i])),
                    }
                }
                by_shard.sort_by_key(|(s, _)| *s);
                let reason = || Reason::Key { table: self.table.clone(), key: key.clone() };
                if by_shard.len() > 1 {
                    if self.conflict {
                        return Err(insert_err(
                            &self.table,
                            "ON CONFLICT / ON DUPLICATE KEY UPDATE is supported only when every row goes to one shard",
                        ));
                    }
                    if let Some(f) = &self.volatile {
                        return Err(insert_err(
                            &self.table,
                            format!("{f}() in rows sent to several shards would be evaluated on each"),
                        ));
                    }
                }
                if by_shard.len() == 1 && self.generated.is_none() {
                    return Ok(forward(by_shard[0].0, reason()));
                }
                let targets = by_shard
                    .iter()
                    .map(|(shard, rows)| {
                        let (text, map) = render(&with_rows(rows), rules.backend, params.len());
                        Target {
                            shard: *shard,
                            sql: text.into(),
                            params: map,
                            reason: reason(),
                            rows: Some(rows.clone()),
                        }
                    })
                    .collect::<Vec<_>>();
                let merge = match (targets.len(), self.returning) {
                    (1, _) => Merge::Forward,
                    (_, true) => Merge::InsertReturning,
                    (_, false) => Merge::SumCounts,
                };
                Ok(Plan { control: None, copy_in: None, kind: StatementKind::Write, targets, merge })
            }
        }
    }
}

fn place_or_err(
    placed: Result<(KeyPlacement, Option<crate::sharding::KeyValue>), crate::sharding::key::KeyError>,
    shape: &InsertShape,
    keyspace: &str,
    key: &str,
    row: usize,
) -> Result<ShardId, RouteError> {
    match placed {
        Ok((KeyPlacement::Shard(s), _)) => Ok(s),
        Ok((KeyPlacement::Nowhere, None)) => {
            Err(RouteError::NullKey { table: shape.table.clone(), key: key.to_string(), row })
        }
        Ok((KeyPlacement::Nowhere, Some(v))) => Err(RouteError::InvalidKey {
            table: shape.table.clone(),
            detail: format!("key {v} of row {row} is not a valid {key}"),
        }),
        Ok((KeyPlacement::Uncovered, v)) => Err(RouteError::NoShardForKey {
            table: shape.table.clone(),
            value: v.map_or_else(|| "?".into(), |v| v.to_string()),
            row,
            keyspace: keyspace.to_string(),
        }),
        Err(e) => Err(RouteError::InvalidKey { table: shape.table.clone(), detail: format!("row {row}: {e}") }),
    }
}

/// Whether an ON CONFLICT DO UPDATE / ON DUPLICATE KEY UPDATE sets `column`.
fn updates_column(ins: &Insert, column: &str, rules: &Rules) -> bool {
    use sqlparser::ast::{AssignmentTarget, OnConflictAction, OnInsert};
    let assignments = match &ins.on {
        Some(OnInsert::DuplicateKeyUpdate(a)) => a.as_slice(),
        Some(OnInsert::OnConflict(c)) => match &c.action {
            OnConflictAction::DoUpdate(u) => u.assignments.as_slice(),
            OnConflictAction::DoNothing => &[],
        },
        _ => &[],
    };
    assignments.iter().any(|a| match &a.target {
        AssignmentTarget::ColumnName(n) => name_parts(n, rules.backend).last().is_some_and(|c| c == column),
        AssignmentTarget::Tuple(cols) => {
            cols.iter().any(|n| name_parts(n, rules.backend).last().is_some_and(|c| c == column))
        }
    })
}
