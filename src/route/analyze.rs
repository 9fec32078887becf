//! Which tables a statement reads, how they are joined, and what its
//! predicates say about their sharding keys.
//!
//! The analysis walks the AST once and produces *instances* (one per table
//! reference), *scopes* (one per SELECT, nested for subqueries) and two kinds
//! of facts:
//! - key constraints: for each instance, a [`KeyPred`] derived from the WHERE
//!   clause of its own scope (an over-approximation of the keys its rows can
//!   have in the answer);
//! - key links: `a.key = b.key` equalities, which make two instances
//!   co-located (their rows meet on one shard). Links within one scope also
//!   carry constraints across (`u.id = 5 AND o.user_id = u.id`); links from a
//!   subquery to an outer scope (correlation) do not, since a `NOT EXISTS` or
//!   an `OR` may keep outer rows the subquery never saw.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, Select, SetExpr, TableFactor, TableWithJoins,
    UnaryOperator, Value, Visit, Visitor,
};

use crate::backend::BackendKind;
use crate::rules::{Rules, TablePlacement};
use crate::sharding::ShardId;

use super::error::RouteError;

/// A literal or parameter in a key predicate, kept until parameters are bound.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueRef {
    Null,
    Number(String),
    String(String),
    Bool(bool),
    /// A parameter, 0-based.
    Param(usize),
}

/// What a predicate says about one instance's key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPred {
    /// Nothing usable.
    All,
    /// The key equals one of these.
    In(Vec<ValueRef>),
    /// The key lies in a range (each bound: value and whether included).
    Range {
        lo: Option<(ValueRef, bool)>,
        hi: Option<(ValueRef, bool)>,
    },
    And(Vec<KeyPred>),
    Or(Vec<KeyPred>),
}

/// How an instance's table is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstKind {
    Sharded {
        keyspace: usize,
        key: String,
    },
    Reference,
    Pinned(ShardId),
    /// No rule: the default shard.
    Default(ShardId),
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub scope: usize,
    /// The table as written (for messages).
    pub table: String,
    /// The name it is referred to by in column references (alias or table).
    pub binding: String,
    pub kind: InstKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// The statement's own SELECT (or the SELECT of a DML statement).
    Top,
    /// A subquery in an expression (WHERE, select list, HAVING, …).
    Expr,
    /// A derived table in FROM.
    Derived,
    /// A WITH query.
    Cte,
    /// A branch of UNION / INTERSECT / EXCEPT.
    SetOperand,
}

#[derive(Debug, Clone)]
pub struct Scope {
    pub parent: Option<usize>,
    pub kind: ScopeKind,
    /// Aggregates, GROUP BY, DISTINCT, LIMIT or OFFSET inside this scope.
    pub reduces: bool,
    /// Names bound in this scope that are not table instances (derived
    /// tables, WITH queries, table functions): a column qualified by one of
    /// them is not a sharding key, and hides outer tables of the same name.
    pub opaque: HashSet<String>,
}

/// An outer join whose sides must be checked for the reference-table rule.
#[derive(Debug, Clone)]
pub struct OuterJoin {
    /// Instances on the side(s) every row of which is kept.
    pub preserved: Vec<usize>,
    /// Instances on the side that may come back NULL.
    pub nullable: Vec<usize>,
    pub full: bool,
}

/// A top-level `key IN (…)` conjunct of the top scope, which can be split
/// per shard.
#[derive(Debug, Clone, PartialEq)]
pub struct InSplit {
    pub instance: usize,
    pub keyspace: usize,
    /// The index of the conjunct in the flattened top-level AND of WHERE.
    pub conjunct: usize,
    pub values: Vec<ValueRef>,
}

#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub instances: Vec<Instance>,
    pub scopes: Vec<Scope>,
    pub preds: Vec<KeyPred>,
    /// Key equalities within one scope: carry constraints and co-locate.
    pub scope_links: Vec<(usize, usize)>,
    /// Key equalities across scopes (correlation): co-locate only.
    pub outer_links: Vec<(usize, usize)>,
    pub outer_joins: Vec<OuterJoin>,
    pub in_splits: Vec<InSplit>,
    /// Names of tables without a rule (sent to the default shard).
    pub unknown: Vec<String>,
}

impl Analysis {
    pub fn sharded(&self) -> impl Iterator<Item = (usize, &Instance)> {
        self.instances.iter().enumerate().filter(|(_, i)| matches!(i.kind, InstKind::Sharded { .. }))
    }
}

/// Lower-cases unquoted identifiers (PostgreSQL folds them; MySQL compares
/// table and column names case-insensitively on the platforms we serve).
pub fn norm_ident(id: &Ident, backend: BackendKind) -> String {
    match (backend, id.quote_style) {
        (BackendKind::Postgres, Some(_)) => id.value.clone(),
        _ => id.value.to_lowercase(),
    }
}

pub fn name_parts(name: &ObjectName, backend: BackendKind) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => norm_ident(id, backend),
            ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
        })
        .collect()
}

const CATALOG_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", "mysql", "performance_schema", "sys"];

/// What a table name refers to.
pub enum Resolved {
    Table(InstKind),
    Catalog,
}

/// Resolves a table name against the rules. `ctes` are WITH names in scope.
pub fn resolve_table(rules: &Rules, parts: &[String]) -> Result<Resolved, RouteError> {
    let (schema, name) = match parts {
        [n] => (None, n.as_str()),
        [s, n] => (Some(s.as_str()), n.as_str()),
        [_db, s, n] => (Some(s.as_str()), n.as_str()),
        _ => {
            return Err(RouteError::Unsupported {
                detail: format!("table name {} has too many parts", parts.join(".")),
            });
        }
    };
    if let Some(s) = schema
        && CATALOG_SCHEMAS.contains(&s)
    {
        return Ok(Resolved::Catalog);
    }
    if let Some(rule) = rules.table(schema, name) {
        return Ok(Resolved::Table(match &rule.placement {
            TablePlacement::Sharded { keyspace, key } => InstKind::Sharded { keyspace: *keyspace, key: key.clone() },
            TablePlacement::Reference => InstKind::Reference,
            TablePlacement::Pinned(s) => InstKind::Pinned(*s),
        }));
    }
    if schema.is_none() && rules.backend == BackendKind::Postgres && name.starts_with("pg_") {
        return Ok(Resolved::Catalog);
    }
    match rules.default_shard {
        Some(s) => Ok(Resolved::Table(InstKind::Default(s))),
        None => Err(RouteError::UnknownTable { table: parts.join(".") }),
    }
}

/// Functions whose value differs between evaluations or between servers:
/// a statement that writes them to several shards would write different
/// values to each.
const VOLATILE: &[&str] = &[
    "random",
    "rand",
    "now",
    "current_timestamp",
    "current_time",
    "current_date",
    "localtime",
    "localtimestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuid_generate_v1",
    "uuid",
    "uuid_short",
    "nextval",
    "setval",
    "sysdate",
    "unix_timestamp",
    "curdate",
    "curtime",
    "utc_timestamp",
    "utc_date",
    "utc_time",
    "txid_current",
    "pg_backend_pid",
    "connection_id",
    "last_insert_id",
    "row_count",
    "found_rows",
    "inet_client_addr",
];

pub fn function_name(f: &Function) -> String {
    f.name.0.last().map_or(String::new(), |p| match p {
        ObjectNamePart::Identifier(id) => id.value.to_lowercase(),
        ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
    })
}

pub fn is_volatile(f: &Function) -> bool {
    VOLATILE.contains(&function_name(f).as_str())
}

/// The aggregates the merge implements.
pub const MERGEABLE_AGGREGATES: &[&str] = &["count", "sum", "min", "max", "avg"];

/// Aggregates that exist on either backend but that the merge does not
/// implement: over several shards they are refused.
const OTHER_AGGREGATES: &[&str] = &[
    "string_agg",
    "array_agg",
    "group_concat",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "json_arrayagg",
    "json_objectagg",
    "xmlagg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "std",
    "variance",
    "var_pop",
    "var_samp",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "every",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
    "any_value",
    "range_agg",
    "range_intersect_agg",
];

pub fn is_aggregate(f: &Function) -> bool {
    if f.over.is_some() {
        return false;
    }
    let n = function_name(f);
    MERGEABLE_AGGREGATES.contains(&n.as_str()) || OTHER_AGGREGATES.contains(&n.as_str()) || !f.within_group.is_empty()
}

/// Finds aggregates, window functions and volatile functions in an
/// expression, without descending into subqueries.
#[derive(Default)]
pub struct ExprFacts {
    pub aggregates: usize,
    pub windows: bool,
    pub volatile: Option<String>,
    pub filter: bool,
    /// An explicit `COLLATE` (outside subqueries).
    pub collate: bool,
    pub subqueries: usize,
    depth: usize,
}

impl Visitor for ExprFacts {
    type Break = ();
    fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.subqueries += 1;
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        if let Expr::Collate { .. } = e {
            self.collate = true;
        }
        if let Expr::Function(f) = e {
            if f.over.is_some() {
                self.windows = true;
            }
            if is_aggregate(f) {
                self.aggregates += 1;
            }
            if f.filter.is_some() {
                self.filter = true;
            }
            if is_volatile(f) && self.volatile.is_none() {
                self.volatile = Some(function_name(f));
            }
        }
        ControlFlow::Continue(())
    }
}

pub fn expr_facts<V: Visit>(node: &V) -> ExprFacts {
    let mut f = ExprFacts::default();
    let _ = node.visit(&mut f);
    f
}

/// Finds volatile functions anywhere, subqueries included.
pub fn find_volatile<V: Visit>(node: &V) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(node, |e| {
        if let Expr::Function(f) = e
            && is_volatile(f)
        {
            found = Some(function_name(f));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// Collects the subqueries directly inside an expression (not nested ones).
struct SubqueryCollector {
    found: Vec<Query>,
    depth: usize,
}

impl Visitor for SubqueryCollector {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.found.push(q.clone());
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

pub fn direct_subqueries<V: Visit>(node: &V) -> Vec<Query> {
    let mut c = SubqueryCollector { found: Vec::new(), depth: 0 };
    let _ = node.visit(&mut c);
    c.found
}

/// Flattens `a AND (b AND c)` into `[a, b, c]`.
pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
                walk(left, out);
                walk(right, out);
            }
            Expr::Nested(inner) => walk(inner, out),
            other => out.push(other),
        }
    }
    walk(e, &mut out);
    out
}

/// Mutable counterpart of [`conjuncts`], in the same order.
pub fn conjuncts_mut(e: &mut Expr) -> Vec<&mut Expr> {
    let mut out = Vec::new();
    fn walk<'a>(e: &'a mut Expr, out: &mut Vec<&'a mut Expr>) {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
                walk(left, out);
                walk(right, out);
            }
            Expr::Nested(inner) => walk(inner, out),
            other => out.push(other),
        }
    }
    walk(e, &mut out);
    out
}

/// Reads a literal or parameter; `None` for anything computed.
pub fn value_ref(e: &Expr, params: &ParamNumbering) -> Option<ValueRef> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(ValueRef::Number(n.to_string())),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) | Value::EscapedStringLiteral(s) => {
                Some(ValueRef::String(s.clone()))
            }
            Value::NationalStringLiteral(s) => Some(ValueRef::String(s.clone())),
            Value::Boolean(b) => Some(ValueRef::Bool(*b)),
            Value::Null => Some(ValueRef::Null),
            Value::Placeholder(p) => params.index(p).map(ValueRef::Param),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match value_ref(expr, params)? {
            ValueRef::Number(n) if !n.starts_with('-') => Some(ValueRef::Number(format!("-{n}"))),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => match value_ref(expr, params)? {
            v @ ValueRef::Number(_) => Some(v),
            _ => None,
        },
        Expr::Nested(inner) => value_ref(inner, params),
        // TIMESTAMP '…', DATE '…': the string is the value.
        Expr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) if !has_utc_offset(s) => Some(ValueRef::String(s.clone())),
            _ => None,
        },
        // '…'::type and CAST('…' AS type): the literal read as the column's
        // type. A cast to an unrelated type (CAST(x AS text)) would compare
        // differently, so only casts of plain literals and parameters count.
        Expr::Cast { expr, .. } => match value_ref(expr, params)? {
            ValueRef::String(s) if has_utc_offset(&s) => None,
            v @ (ValueRef::String(_) | ValueRef::Number(_) | ValueRef::Param(_) | ValueRef::Null) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a string is a timestamp with an explicit UTC offset. Typed, such a
/// literal does not mean what it means read as the key's type: cast to
/// timestamptz it is a UTC instant that a timestamp column meets only after
/// its own conversion in the session's time zone (`ts < '2023-01-01
/// 10:00-12'::timestamptz` is `ts < '2023-01-01 22:00'` in UTC, where the
/// key's reading, which ignores the offset, says 10:00); cast to timestamp
/// or date the offset is dropped before a timestamptz column applies the
/// session's. Such literals narrow nothing.
fn has_utc_offset(s: &str) -> bool {
    crate::sharding::key::parse_timestamp(s).is_some_and(|t| t.offset_seconds.is_some())
}

/// How placeholders map to parameter positions: `$n` (PostgreSQL) or the
/// n-th `?` (MySQL), which the router renames `?n` internally so that every
/// placeholder keeps its position through rewrites.
#[derive(Debug, Clone, Copy)]
pub struct ParamNumbering;

impl ParamNumbering {
    /// The 0-based parameter index of a placeholder.
    pub fn index(&self, p: &str) -> Option<usize> {
        let digits = p.strip_prefix('$').or_else(|| p.strip_prefix('?'))?;
        digits.parse::<usize>().ok().and_then(|n| n.checked_sub(1))
    }
}

/// The analyser: walks one statement.
pub struct Analyzer<'r> {
    pub rules: &'r Rules,
    pub a: Analysis,
    ctes: Vec<HashSet<String>>,
}

impl<'r> Analyzer<'r> {
    pub fn new(rules: &'r Rules) -> Self {
        Analyzer { rules, a: Analysis::default(), ctes: Vec::new() }
    }

    fn backend(&self) -> BackendKind {
        self.rules.backend
    }

    pub fn new_scope(&mut self, parent: Option<usize>, kind: ScopeKind) -> usize {
        self.a.scopes.push(Scope { parent, kind, reduces: false, opaque: HashSet::new() });
        self.a.scopes.len() - 1
    }

    fn is_cte(&self, parts: &[String]) -> bool {
        parts.len() == 1 && self.ctes.iter().any(|s| s.contains(&parts[0]))
    }

    /// Adds an instance for a table name; `None` for CTE references and catalogs.
    pub fn add_table(
        &mut self,
        scope: usize,
        name: &ObjectName,
        alias: Option<&Ident>,
    ) -> Result<Option<usize>, RouteError> {
        let parts = name_parts(name, self.backend());
        if self.is_cte(&parts) {
            let binding = alias.map_or_else(|| parts[0].clone(), |a| norm_ident(a, self.backend()));
            self.a.scopes[scope].opaque.insert(binding);
            return Ok(None);
        }
        match resolve_table(self.rules, &parts)? {
            Resolved::Catalog => Ok(None),
            Resolved::Table(kind) => {
                if matches!(kind, InstKind::Default(_)) {
                    self.a.unknown.push(parts.join("."));
                }
                let binding = match alias {
                    Some(a) => norm_ident(a, self.backend()),
                    None => parts.last().cloned().unwrap_or_default(),
                };
                self.a.instances.push(Instance { scope, table: parts.join("."), binding, kind });
                self.a.preds.push(KeyPred::All);
                Ok(Some(self.a.instances.len() - 1))
            }
        }
    }

    /// Analyses a query in a new scope under `parent`.
    pub fn query(&mut self, q: &Query, parent: Option<usize>, kind: ScopeKind) -> Result<usize, RouteError> {
        let mut cte_names = HashSet::new();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                cte_names.insert(norm_ident(&cte.alias.name, self.backend()));
            }
        }
        self.ctes.push(cte_names);
        let result = self.query_inner(q, parent, kind);
        self.ctes.pop();
        result
    }

    fn query_inner(&mut self, q: &Query, parent: Option<usize>, kind: ScopeKind) -> Result<usize, RouteError> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.query(&cte.query, parent, ScopeKind::Cte)?;
            }
        }
        let scope = self.set_expr(&q.body, parent, kind)?;
        if q.limit_clause.is_some() || q.fetch.is_some() {
            self.a.scopes[scope].reduces = true;
        }
        if let Some(ob) = &q.order_by {
            for sq in direct_subqueries(ob) {
                self.query(&sq, Some(scope), ScopeKind::Expr)?;
            }
        }
        Ok(scope)
    }

    fn set_expr(&mut self, body: &SetExpr, parent: Option<usize>, kind: ScopeKind) -> Result<usize, RouteError> {
        match body {
            SetExpr::Select(s) => self.select(s, parent, kind),
            SetExpr::Query(q) => self.query(q, parent, kind),
            SetExpr::SetOperation { left, right, .. } => {
                // The operation itself is a scope of its own; each side hangs below it.
                let scope = self.new_scope(parent, kind);
                self.set_expr(left, Some(scope), ScopeKind::SetOperand)?;
                self.set_expr(right, Some(scope), ScopeKind::SetOperand)?;
                Ok(scope)
            }
            SetExpr::Values(v) => {
                let scope = self.new_scope(parent, kind);
                for sq in direct_subqueries(v) {
                    self.query(&sq, Some(scope), ScopeKind::Expr)?;
                }
                Ok(scope)
            }
            SetExpr::Table(t) => {
                let scope = self.new_scope(parent, kind);
                if let Some(name) = &t.table_name {
                    let mut parts = Vec::new();
                    if let Some(s) = &t.schema_name {
                        parts.push(Ident::new(s.clone()));
                    }
                    parts.push(Ident::new(name.clone()));
                    self.add_table(scope, &ObjectName::from(parts), None)?;
                }
                Ok(scope)
            }
            other => Err(RouteError::Unsupported { detail: format!("statement form not supported: {other}") }),
        }
    }

    /// Analyses one SELECT.
    pub fn select(&mut self, s: &Select, parent: Option<usize>, kind: ScopeKind) -> Result<usize, RouteError> {
        let scope = self.new_scope(parent, kind);
        self.from(scope, &s.from)?;
        self.where_clause(scope, s.selection.as_ref(), true)?;
        let facts = expr_facts(&s.projection);
        let has_group = match &s.group_by {
            GroupByExpr::All(_) => true,
            GroupByExpr::Expressions(e, _) => !e.is_empty(),
        };
        if facts.aggregates > 0 || has_group || s.distinct.is_some() || s.having.is_some() {
            self.a.scopes[scope].reduces = true;
        }
        for sq in direct_subqueries(&s.projection) {
            self.query(&sq, Some(scope), ScopeKind::Expr)?;
        }
        if let Some(h) = &s.having {
            for sq in direct_subqueries(h) {
                self.query(&sq, Some(scope), ScopeKind::Expr)?;
            }
        }
        Ok(scope)
    }

    /// Analyses a FROM list: instances, join links, outer joins.
    pub fn from(&mut self, scope: usize, from: &[TableWithJoins]) -> Result<(), RouteError> {
        for twj in from {
            let mut left = self.factor(scope, &twj.relation)?;
            for j in &twj.joins {
                let right = self.factor(scope, &j.relation)?;
                let (constraint, outer) = match &j.join_operator {
                    JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::StraightJoin(c) => (Some(c), None),
                    JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (Some(c), Some((false, false))),
                    JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (Some(c), Some((true, false))),
                    JoinOperator::FullOuter(c) => (Some(c), Some((false, true))),
                    JoinOperator::CrossJoin(c) => (Some(c), None),
                    JoinOperator::Semi(c) | JoinOperator::LeftSemi(c) | JoinOperator::RightSemi(c) => (Some(c), None),
                    other => {
                        return Err(RouteError::Unsupported { detail: format!("join form not supported: {other:?}") });
                    }
                };
                if let Some((right_preserved, full)) = outer {
                    let (preserved, nullable) =
                        if right_preserved { (right.clone(), left.clone()) } else { (left.clone(), right.clone()) };
                    self.a.outer_joins.push(OuterJoin { preserved, nullable, full });
                }
                match constraint {
                    Some(JoinConstraint::On(e)) => {
                        for c in conjuncts(e) {
                            self.link(scope, c);
                        }
                        for sq in direct_subqueries(e) {
                            self.query(&sq, Some(scope), ScopeKind::Expr)?;
                        }
                    }
                    Some(JoinConstraint::Using(cols)) => {
                        for col in cols {
                            let col = name_parts(col, self.backend()).pop().unwrap_or_default();
                            let l = left.iter().copied().find(|&i| self.key_of(i) == Some(col.as_str()));
                            let r = right.iter().copied().find(|&i| self.key_of(i) == Some(col.as_str()));
                            if let (Some(l), Some(r)) = (l, r) {
                                self.add_link(l, r);
                            }
                        }
                    }
                    _ => {}
                }
                left.extend(right);
            }
        }
        Ok(())
    }

    /// A table factor's instances.
    fn factor(&mut self, scope: usize, f: &TableFactor) -> Result<Vec<usize>, RouteError> {
        match f {
            TableFactor::Table { name, alias, args, .. } => {
                if args.is_some() {
                    // A table function (generate_series(…)): evaluated on each shard alike.
                    let backend = self.backend();
                    let binding = alias.as_ref().map(|a| norm_ident(&a.name, backend));
                    self.a.scopes[scope].opaque.extend(binding.or_else(|| name_parts(name, backend).pop()));
                    return Ok(Vec::new());
                }
                Ok(self.add_table(scope, name, alias.as_ref().map(|a| &a.name))?.into_iter().collect())
            }
            TableFactor::Derived { subquery, alias, .. } => {
                if let Some(a) = alias {
                    let binding = norm_ident(&a.name, self.backend());
                    self.a.scopes[scope].opaque.insert(binding);
                }
                self.query(subquery, Some(scope), ScopeKind::Derived)?;
                Ok(Vec::new())
            }
            TableFactor::NestedJoin { table_with_joins, .. } => {
                let before = self.a.instances.len();
                self.from(scope, std::slice::from_ref(table_with_joins))?;
                Ok((before..self.a.instances.len()).collect())
            }
            TableFactor::UNNEST { .. } | TableFactor::Function { .. } | TableFactor::TableFunction { .. } => {
                Ok(Vec::new())
            }
            other => Err(RouteError::Unsupported { detail: format!("FROM item not supported: {other}") }),
        }
    }

    fn key_of(&self, i: usize) -> Option<&str> {
        match &self.a.instances[i].kind {
            InstKind::Sharded { key, .. } => Some(key),
            _ => None,
        }
    }

    fn add_link(&mut self, a: usize, b: usize) {
        let (ia, ib) = (&self.a.instances[a], &self.a.instances[b]);
        let same_keyspace = match (&ia.kind, &ib.kind) {
            (InstKind::Sharded { keyspace: x, .. }, InstKind::Sharded { keyspace: y, .. }) => x == y,
            _ => false,
        };
        if !same_keyspace || a == b {
            return;
        }
        if ia.scope == ib.scope {
            self.a.scope_links.push((a, b));
        } else {
            self.a.outer_links.push((a, b));
        }
    }

    /// Records `x.key = y.key` from a conjunct.
    fn link(&mut self, scope: usize, e: &Expr) {
        if let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = e
            && let (Some(a), Some(b)) = (self.key_column(scope, left), self.key_column(scope, right))
        {
            self.add_link(a, b);
        }
    }

    /// The instance whose sharding key `e` names, looking in `scope` and then
    /// outwards (correlated references).
    pub fn key_column(&self, scope: usize, e: &Expr) -> Option<usize> {
        let (qualifier, col) = match e {
            Expr::Identifier(id) => (None, norm_ident(id, self.backend())),
            Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                let n = ids.len();
                (Some(norm_ident(&ids[n - 2], self.backend())), norm_ident(&ids[n - 1], self.backend()))
            }
            Expr::Nested(inner) => return self.key_column(scope, inner),
            _ => return None,
        };
        let mut s = Some(scope);
        while let Some(cur) = s {
            if let Some(q) = &qualifier
                && self.a.scopes[cur].opaque.contains(q)
            {
                return None;
            }
            let in_scope = self.a.instances.iter().enumerate().filter(|(_, i)| i.scope == cur);
            let found: Vec<usize> = match &qualifier {
                Some(q) => in_scope.filter(|(_, i)| &i.binding == q).map(|(n, _)| n).collect(),
                // Unqualified: the instance of this scope whose key has this
                // name. That table has the column for certain, so the name is
                // either this column or ambiguous (an error on the shard).
                None => in_scope.filter(|(n, _)| self.key_of(*n) == Some(col.as_str())).map(|(n, _)| n).collect(),
            };
            match found.as_slice() {
                [one] => return (self.key_of(*one) == Some(col.as_str())).then_some(*one),
                [] => {
                    // An unqualified name not found here may still be a
                    // column of another table of this scope: stop looking.
                    if qualifier.is_none() && self.a.instances.iter().any(|i| i.scope == cur) {
                        return None;
                    }
                    s = self.a.scopes[cur].parent;
                }
                _ => return None,
            }
        }
        None
    }

    /// Records what a WHERE clause says: links, key constraints, IN lists
    /// that can be split, subqueries.
    pub fn where_clause(&mut self, scope: usize, selection: Option<&Expr>, top: bool) -> Result<(), RouteError> {
        let Some(w) = selection else { return Ok(()) };
        for c in conjuncts(w) {
            self.link(scope, c);
        }
        let members: Vec<usize> =
            self.a.instances.iter().enumerate().filter(|(_, i)| i.scope == scope).map(|(n, _)| n).collect();
        for i in members {
            if self.key_of(i).is_some() {
                let p = self.pred_for(scope, w, i);
                self.a.preds[i] = p;
            }
        }
        if top && self.a.scopes[scope].kind == ScopeKind::Top {
            for (n, c) in conjuncts(w).into_iter().enumerate() {
                if let Expr::InList { expr, list, negated: false } = c
                    && let Some(i) = self.key_column(scope, expr)
                    && self.a.instances[i].scope == scope
                    && let InstKind::Sharded { keyspace, .. } = self.a.instances[i].kind
                    && let Some(values) = list.iter().map(|e| value_ref(e, &ParamNumbering)).collect::<Option<Vec<_>>>()
                {
                    self.a.in_splits.push(InSplit { instance: i, keyspace, conjunct: n, values });
                }
            }
        }
        for sq in direct_subqueries(w) {
            self.query(&sq, Some(scope), ScopeKind::Expr)?;
        }
        Ok(())
    }

    /// What `e` implies about instance `i`'s key (an over-approximation:
    /// every row for which `e` is true satisfies the result).
    fn pred_for(&self, scope: usize, e: &Expr, i: usize) -> KeyPred {
        let is_key = |x: &Expr| self.key_column(scope, x) == Some(i);
        let val = |x: &Expr| value_ref(x, &ParamNumbering);
        match e {
            Expr::Nested(inner) => self.pred_for(scope, inner, i),
            Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
                KeyPred::And(vec![self.pred_for(scope, left, i), self.pred_for(scope, right, i)])
            }
            Expr::BinaryOp { left, op: BinaryOperator::Or, right } => {
                KeyPred::Or(vec![self.pred_for(scope, left, i), self.pred_for(scope, right, i)])
            }
            Expr::BinaryOp { left, op, right } => {
                let (v, op) = if is_key(left) {
                    match val(right) {
                        Some(v) => (v, op.clone()),
                        None => return KeyPred::All,
                    }
                } else if is_key(right) {
                    match val(left) {
                        Some(v) => (v, flip(op)),
                        None => return KeyPred::All,
                    }
                } else {
                    return KeyPred::All;
                };
                match op {
                    BinaryOperator::Eq => KeyPred::In(vec![v]),
                    BinaryOperator::Lt => KeyPred::Range { lo: None, hi: Some((v, false)) },
                    BinaryOperator::LtEq => KeyPred::Range { lo: None, hi: Some((v, true)) },
                    BinaryOperator::Gt => KeyPred::Range { lo: Some((v, false)), hi: None },
                    BinaryOperator::GtEq => KeyPred::Range { lo: Some((v, true)), hi: None },
                    _ => KeyPred::All,
                }
            }
            Expr::InList { expr, list, negated: false } if is_key(expr) => {
                match list.iter().map(val).collect::<Option<Vec<_>>>() {
                    Some(vs) => KeyPred::In(vs),
                    None => KeyPred::All,
                }
            }
            Expr::Between { expr, negated: false, low, high } if is_key(expr) => match (val(low), val(high)) {
                (Some(l), Some(h)) => KeyPred::Range { lo: Some((l, true)), hi: Some((h, true)) },
                _ => KeyPred::All,
            },
            _ => KeyPred::All,
        }
    }
}

fn flip(op: &BinaryOperator) -> BinaryOperator {
    match op {
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        other => other.clone(),
    }
}

/// Whether an expression is a call of a mergeable aggregate, and which.
pub fn simple_aggregate(e: &Expr) -> Option<(String, Option<&Expr>, bool)> {
    let Expr::Function(f) = e else { return None };
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return None;
    }
    let name = function_name(f);
    if !MERGEABLE_AGGREGATES.contains(&name.as_str()) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let distinct = matches!(list.duplicate_treatment, Some(sqlparser::ast::DuplicateTreatment::Distinct));
    if !list.clauses.is_empty() {
        return None;
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if name == "count" => Some((name, None, distinct)),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => Some((name, Some(arg), distinct)),
        _ => None,
    }
}
