//! SELECT, UPDATE and DELETE: statements whose shards follow from their
//! WHERE clauses.

use std::sync::{Arc, OnceLock};

use sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, LimitClause, Query, SetExpr, Statement, Update, UpdateTableFromKind,
};

use crate::backend::BackendKind;
use crate::rules::{KeyPlacement, Rules};
use crate::sharding::key::KeyContext;
use crate::sharding::{ShardId, TextCollation};

use super::RouteContext;
use super::analyze::{
    Analyzer, InSplit, InstKind, KeyPred, ScopeKind, ValueRef, conjuncts_mut, direct_subqueries, find_volatile,
    name_parts,
};
use super::error::RouteError;
use super::plan::{Merge, Plan, Reason, RowMerge, StatementKind, Target};
use super::rewrite::{number, render};
use super::routing::{Decision, Routing, literal};
use super::select::{MultiSelect, plan_multi};

/// How the statement runs on several shards.
#[derive(Debug, Clone)]
enum Multi {
    Select(Box<MultiSelect>),
    Write { merge: Merge },
}

/// A SELECT, UPDATE or DELETE, analysed.
#[derive(Debug, Clone)]
pub struct DmlShape {
    kind: StatementKind,
    routing: Routing,
    stmt: Statement,
    in_split: Option<InSplit>,
    /// For UPDATE/DELETE of a sharded table: refuse when nothing narrows
    /// its key (unless the rule file allows scatter writes).
    scatter_guard: Option<ScatterGuard>,
    /// For UPDATE/DELETE of a reference table: every copy.
    broadcast: Option<String>,
    /// Why an UPDATE/DELETE may not run on several shards, if it may not.
    write_refusal: Option<RouteError>,
    returning: bool,
    backend: BackendKind,
    params: usize,
    /// How the statement runs on several shards: worked out on the first
    /// bind that needs several shards, so that a statement that reaches one
    /// shard never pays for the rewrite.
    multi: OnceLock<MultiPart>,
}

/// The multi-shard form of a statement.
#[derive(Debug, Clone)]
struct MultiPart {
    multi: Result<Multi, RouteError>,
    /// Pre-rendered text when nothing depends on parameters.
    sql: Option<(Arc<str>, Option<Vec<usize>>)>,
}

#[derive(Debug, Clone)]
struct ScatterGuard {
    verb: &'static str,
    table: String,
    key: String,
    /// Index into the routing's sharded instances.
    inst: usize,
}

impl DmlShape {
    pub fn query(q: Box<Query>, rules: &Rules, params: usize) -> Result<DmlShape, RouteError> {
        let mut an = Analyzer::new(rules);
        an.query(&q, None, ScopeKind::Top)?;
        let routing = Routing::new(&an.a)?;
        let in_split = an.a.in_splits.first().cloned();
        Ok(DmlShape {
            kind: StatementKind::Read,
            routing,
            stmt: Statement::Query(q),
            in_split,
            scatter_guard: None,
            broadcast: None,
            write_refusal: None,
            returning: false,
            backend: rules.backend,
            params,
            multi: OnceLock::new(),
        })
    }

    pub fn update(u: &Update, rules: &Rules, params: usize) -> Result<DmlShape, RouteError> {
        let mut an = Analyzer::new(rules);
        let scope = an.new_scope(None, ScopeKind::Top);
        an.from(scope, std::slice::from_ref(&u.table))?;
        let target = an.a.instances.first().cloned();
        if let Some(from) = &u.from {
            let (UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) = from;
            an.from(scope, f)?;
        }
        an.where_clause(scope, u.selection.as_ref(), true)?;
        for a in &u.assignments {
            for sq in direct_subqueries(&a.value) {
                an.query(&sq, Some(scope), ScopeKind::Expr)?;
            }
        }
        // The sharding key must not change.
        if let Some(t) = &target
            && let InstKind::Sharded { key, .. } = &t.kind
        {
            let sets_key = u.assignments.iter().any(|a| match &a.target {
                AssignmentTarget::ColumnName(n) => name_parts(n, rules.backend).last() == Some(key),
                AssignmentTarget::Tuple(cols) => cols.iter().any(|n| name_parts(n, rules.backend).last() == Some(key)),
            });
            if sets_key {
                return Err(RouteError::KeyUpdate { table: t.table.clone(), key: key.clone() });
            }
        }
        let limited = u.limit.is_some() || !u.order_by.is_empty();
        let stmt = Statement::Update(u.clone());
        Self::write("UPDATE", an, target, stmt, limited, u.returning.is_some(), rules, params)
    }

    pub fn delete(d: &Delete, rules: &Rules, params: usize) -> Result<DmlShape, RouteError> {
        let mut an = Analyzer::new(rules);
        let scope = an.new_scope(None, ScopeKind::Top);
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
        an.from(scope, from)?;
        let target = an.a.instances.first().cloned();
        if let Some(using) = &d.using {
            an.from(scope, using)?;
        }
        an.where_clause(scope, d.selection.as_ref(), true)?;
        let limited = d.limit.is_some() || !d.order_by.is_empty();
        let stmt = Statement::Delete(d.clone());
        Self::write("DELETE", an, target, stmt, limited, d.returning.is_some(), rules, params)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        verb: &'static str,
        an: Analyzer<'_>,
        target: Option<super::analyze::Instance>,
        stmt: Statement,
        limited: bool,
        returning: bool,
        rules: &Rules,
        params: usize,
    ) -> Result<DmlShape, RouteError> {
        let routing = Routing::new(&an.a)?;
        let in_split = an.a.in_splits.first().cloned();
        let volatile = find_volatile(&stmt);
        let mut broadcast = None;
        let mut scatter_guard = None;
        if let Some(t) = &target {
            match &t.kind {
                InstKind::Reference => {
                    if !routing.insts.is_empty() || routing.fixed.is_some() {
                        return Err(RouteError::ReferenceWrite {
                            table: t.table.clone(),
                            detail: format!(
                                "{verb} reading tables that differ between shards would make the copies diverge"
                            ),
                        });
                    }
                    if let Some(f) = &volatile {
                        return Err(RouteError::ReferenceWrite {
                            table: t.table.clone(),
                            detail: format!("{f}() would give each copy a different value"),
                        });
                    }
                    broadcast = Some(t.table.clone());
                }
                InstKind::Sharded { key, .. } => {
                    let inst = routing.insts.iter().position(|i| i.table == t.table && &i.key == key).unwrap_or(0);
                    scatter_guard = Some(ScatterGuard { verb, table: t.table.clone(), key: key.clone(), inst });
                }
                _ => {}
            }
        }
        let write_refusal = if limited {
            Some(RouteError::Unmergeable {
                construct: format!("{verb} … ORDER BY / LIMIT"),
                why: "each shard would pick its own rows",
            })
        } else {
            volatile.map(|f| RouteError::Unmergeable {
                construct: format!("{f}() in a {verb} over several shards"),
                why: "each shard would evaluate it on its own",
            })
        };
        Ok(DmlShape {
            kind: StatementKind::Write,
            routing,
            stmt,
            in_split,
            scatter_guard,
            broadcast,
            write_refusal,
            returning,
            backend: rules.backend,
            params,
            multi: OnceLock::new(),
        })
    }

    /// The multi-shard form, worked out once.
    fn multi_part(&self, sql: &str) -> &MultiPart {
        self.multi.get_or_init(|| {
            let multi = match (&self.stmt, &self.write_refusal) {
                (_, Some(e)) => Err(e.clone()),
                (Statement::Query(q), None) => {
                    let keys: Vec<String> = self.routing.insts.iter().map(|i| i.key.clone()).collect();
                    plan_multi(q, self.backend, sql, &keys).map(|m| Multi::Select(Box::new(m)))
                }
                (_, None) => Ok(Multi::Write {
                    merge: if self.returning { Merge::Rows(RowMerge::default()) } else { Merge::SumCounts },
                }),
            };
            // When neither an IN list nor a parameterised LIMIT changes per
            // execution, render the multi-shard statement once.
            let sql = match &multi {
                Ok(Multi::Write { .. }) if self.in_split.is_none() => {
                    let (t, m) = render(&self.stmt, self.backend, self.params);
                    Some((Arc::from(t), m))
                }
                Ok(Multi::Select(m)) if self.in_split.is_none() && !has_param(&m.limit) && !has_param(&m.offset) => {
                    with_limit(&m.query, m, &[]).ok().map(|q| {
                        let (t, m) = render(&Statement::Query(Box::new(q)), self.backend, self.params);
                        (Arc::from(t), m)
                    })
                }
                _ => None,
            };
            MultiPart { multi, sql }
        })
    }

    pub fn kind(&self) -> StatementKind {
        self.kind
    }

    /// The pinned or default shard the statement's tables live on, if any.
    pub fn fixed_shard(&self) -> Option<ShardId> {
        self.routing.fixed.as_ref().map(|(s, _, _)| *s)
    }

    pub fn bind(&self, sql: &Arc<str>, rules: &Rules, cx: &RouteContext<'_>) -> Result<Plan, RouteError> {
        let params = cx.params;
        if let Some(table) = &self.broadcast {
            let targets = rules
                .all_shards()
                .iter()
                .map(|shard| Target {
                    shard,
                    sql: sql.clone(),
                    params: None,
                    reason: Reason::Broadcast { table: table.clone() },
                    rows: None,
                })
                .collect::<Vec<_>>();
            let merge = if targets.len() > 1 { Merge::Broadcast } else { Merge::Forward };
            return Ok(Plan { control: None, copy_in: None, kind: self.kind, targets, merge });
        }
        let kcx = KeyContext { backend: rules.backend, collation: TextCollation::Exact, utc_offset: cx.utc_offset };
        let (shards, reason) = match self.routing.decide(rules, params, &kcx, cx.pinned)? {
            Decision::One(shard, reason) => {
                return Ok(Plan {
                    control: None,
                    copy_in: None,
                    kind: self.kind,
                    targets: vec![Target { shard, sql: sql.clone(), params: None, reason, rows: None }],
                    merge: Merge::Forward,
                });
            }
            Decision::Many(shards, reason) => (shards, reason),
        };
        if let Some(g) = &self.scatter_guard
            && !rules.policy.allow_scatter_writes
            && self.routing.insts.get(g.inst).is_some_and(|i| matches!(i.pred, KeyPred::All))
        {
            return Err(RouteError::ScatterWrite { verb: g.verb, table: g.table.clone(), key: g.key.clone() });
        }
        let part = self.multi_part(sql);
        let multi = part.multi.clone()?;
        let (stmt, merge) = match &multi {
            Multi::Select(m) => {
                let q = with_limit(&m.query, m, params)?;
                let mut merge = m.merge.clone();
                merge.limit = bound_count(&m.limit, params)?;
                merge.offset = bound_count(&m.offset, params)?.unwrap_or(0);
                (Statement::Query(Box::new(q)), Merge::Rows(merge))
            }
            Multi::Write { merge } => (self.stmt.clone(), merge.clone()),
        };
        let mut targets = Vec::with_capacity(shards.len());
        match &self.in_split {
            Some(split) => {
                for shard in shards.iter() {
                    let keep = split_values(split, shard, rules, params, &kcx)?;
                    if keep.is_empty() {
                        continue;
                    }
                    let mut s = stmt.clone();
                    restrict_in_list(&mut s, split.conjunct, &keep);
                    let (text, map) = render(&s, rules.backend, params.len());
                    targets.push(Target { shard, sql: text.into(), params: map, reason: reason.clone(), rows: None });
                }
            }
            None => {
                let (text, map) = match &part.sql {
                    Some((t, m)) => (t.clone(), m.clone()),
                    None => {
                        let (t, m) = render(&stmt, rules.backend, params.len());
                        (Arc::from(t), m)
                    }
                };
                for shard in shards.iter() {
                    targets.push(Target {
                        shard,
                        sql: text.clone(),
                        params: map.clone(),
                        reason: reason.clone(),
                        rows: None,
                    });
                }
            }
        }
        let merge = if targets.len() == 1 { Merge::Forward } else { merge };
        Ok(Plan { control: None, copy_in: None, kind: self.kind, targets, merge })
    }
}

fn has_param(v: &Option<ValueRef>) -> bool {
    matches!(v, Some(ValueRef::Param(_)))
}

/// A LIMIT or OFFSET value.
fn bound_count(v: &Option<ValueRef>, params: &[super::Param]) -> Result<Option<u64>, RouteError> {
    let Some(v) = v else { return Ok(None) };
    let bad = || RouteError::Unsupported { detail: "LIMIT and OFFSET must be non-negative integers".into() };
    match literal(v, params)? {
        crate::sharding::Literal::Null => Ok(None),
        crate::sharding::Literal::Int(i) => u64::try_from(i).map(Some).map_err(|_| bad()),
        crate::sharding::Literal::Number(s) | crate::sharding::Literal::String(s) => {
            s.trim().parse::<u64>().map(Some).map_err(|_| bad())
        }
        crate::sharding::Literal::Bool(_) | crate::sharding::Literal::Opaque => Err(bad()),
    }
}

/// The shard's query with `LIMIT limit+offset` when the limit is pushed down.
fn with_limit(q: &Query, m: &MultiSelect, params: &[super::Param]) -> Result<Query, RouteError> {
    let mut q = q.clone();
    if m.push_limit
        && let Some(limit) = bound_count(&m.limit, params)?
    {
        let offset = bound_count(&m.offset, params)?.unwrap_or(0);
        q.limit_clause = Some(LimitClause::LimitOffset {
            limit: Some(number(limit.saturating_add(offset))),
            offset: None,
            limit_by: vec![],
        });
    }
    Ok(q)
}

/// The values of a split IN list that belong on `shard` (values that cannot
/// be placed exactly go everywhere).
fn split_values(
    split: &InSplit,
    shard: ShardId,
    rules: &Rules,
    params: &[super::Param],
    kcx: &KeyContext,
) -> Result<Vec<usize>, RouteError> {
    let ks = rules.keyspace(split.keyspace);
    let mut keep = Vec::new();
    for (i, v) in split.values.iter().enumerate() {
        match ks.place(&rules.ring, literal(v, params)?, kcx) {
            Ok((KeyPlacement::Shard(s), _)) if s != shard => {}
            Ok((KeyPlacement::Nowhere | KeyPlacement::Uncovered, _)) => {}
            _ => keep.push(i),
        }
    }
    Ok(keep)
}

/// The top-level WHERE clause of a statement.
fn top_where_mut(stmt: &mut Statement) -> Option<&mut Expr> {
    match stmt {
        Statement::Query(q) => match q.body.as_mut() {
            SetExpr::Select(s) => s.selection.as_mut(),
            _ => None,
        },
        Statement::Update(u) => u.selection.as_mut(),
        Statement::Delete(d) => d.selection.as_mut(),
        _ => None,
    }
}

/// Keeps only the `keep` items of the IN list at conjunct `n` of WHERE.
fn restrict_in_list(stmt: &mut Statement, n: usize, keep: &[usize]) {
    if let Some(w) = top_where_mut(stmt)
        && let Some(Expr::InList { list, .. }) = conjuncts_mut(w).into_iter().nth(n)
    {
        let all = std::mem::take(list);
        *list = keep.iter().filter_map(|&i| all.get(i).cloned()).collect();
    }
}
