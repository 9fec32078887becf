//! SELECT over several shards: the rewrite each shard gets and the merge
//! that makes the shards' answers one answer.
//!
//! The rewrite never changes what a row means; it only adds what the merge
//! needs and removes what only the merge can do right:
//! - ORDER BY / GROUP BY inputs missing from the select list become hidden
//!   trailing columns that the proxy drops before answering;
//! - `AVG(x)` becomes `SUM(x)` plus a hidden `COUNT(x)`;
//! - `LIMIT n OFFSET m` becomes `LIMIT n+m` (no offset) on each shard, and the
//!   offset and limit apply after the merge; with GROUP BY the shards get no
//!   limit at all, since one group's rows may come from every shard.
//!
//! Everything the merge cannot reproduce exactly is refused here, before any
//! shard is asked.

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Ident, LimitClause, OrderByKind, OrderBySort, Query, Select, SelectItem, SetExpr,
    Value,
};
use sqlparser::tokenizer::Span;

use crate::backend::BackendKind;

use super::analyze::{ParamNumbering, ValueRef, expr_facts, norm_ident, simple_aggregate, value_ref};
use super::error::RouteError;
use super::plan::{ColumnRef, Combine, CompareOp, Having, HavingLiteral, RowMerge, SortKey};

/// How a multi-shard SELECT is run and merged.
#[derive(Debug, Clone)]
pub struct MultiSelect {
    /// The statement each shard gets, limit not yet filled in.
    pub query: Query,
    pub merge: RowMerge,
    pub limit: Option<ValueRef>,
    pub offset: Option<ValueRef>,
    /// Whether shards get `LIMIT limit+offset` (false with grouping).
    pub push_limit: bool,
}

fn unmergeable(construct: &str, why: &'static str) -> RouteError {
    RouteError::Unmergeable { construct: construct.to_string(), why }
}

/// An output column while the select list is being built: a visible item,
/// or the n-th hidden column.
#[derive(Clone, Copy)]
enum Out {
    Item(usize),
    Hidden(usize),
}

/// A [`Combine`] over columns whose final positions are not known yet.
enum Pending {
    Key(Out),
    Count(Out),
    Sum(Out),
    Min(Out),
    Max(Out),
    Avg { sum: Out, count: Out },
}

/// Plans the merge of a top-level query over several shards.
pub fn plan_multi(
    q: &Query,
    backend: BackendKind,
    sql: &str,
    key_columns: &[String],
) -> Result<MultiSelect, RouteError> {
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(match q.body.as_ref() {
            SetExpr::SetOperation { op, .. } => RouteError::Unmergeable {
                construct: op.to_string().to_uppercase(),
                why: "each shard would combine only its own rows",
            },
            _ => unmergeable("this query form", "only plain SELECT is merged"),
        });
    };
    if q.fetch.is_some() {
        return Err(unmergeable("FETCH FIRST", "write LIMIT instead"));
    }
    if q.with.is_some() {
        // WITH queries that read sharded tables were refused by routing; a
        // WITH over reference tables only is fine, but keep it simple and exact.
        return Err(unmergeable("WITH", "each shard would evaluate the WITH query on its own rows"));
    }
    let s: &Select = select;
    if s.into.is_some() {
        return Err(unmergeable("SELECT INTO", "it writes a table on each shard"));
    }
    if s.qualify.is_some() || !s.named_window.is_empty() {
        return Err(unmergeable("window functions", "each shard would compute windows over its own rows"));
    }
    if s.top.is_some() || !s.lateral_views.is_empty() || !s.cluster_by.is_empty() || !s.sort_by.is_empty() {
        return Err(unmergeable("this SELECT form", "not merged"));
    }
    let distinct = match &s.distinct {
        None | Some(Distinct::All) => false,
        Some(Distinct::Distinct) => true,
        Some(Distinct::On(_)) => {
            return Err(unmergeable("DISTINCT ON", "it keeps the first row per key of each shard"));
        }
    };
    let group_exprs: Vec<Expr> = match &s.group_by {
        GroupByExpr::All(_) => return Err(unmergeable("GROUP BY ALL", "not merged")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unmergeable("WITH ROLLUP / CUBE", "super-aggregate rows cannot be merged"));
            }
            for e in exprs {
                if matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)) {
                    return Err(unmergeable("ROLLUP / CUBE / GROUPING SETS", "super-aggregate rows cannot be merged"));
                }
            }
            exprs.clone()
        }
    };
    let facts = expr_facts(&s.projection);
    if facts.windows {
        return Err(unmergeable("window functions", "each shard would compute windows over its own rows"));
    }
    if facts.filter {
        return Err(unmergeable("aggregate FILTER clauses", "not merged"));
    }
    if let Some(ob) = &q.order_by {
        let of = expr_facts(ob);
        if of.windows {
            return Err(unmergeable("window functions", "each shard would compute windows over its own rows"));
        }
    }
    let aggregating = facts.aggregates > 0 || !group_exprs.is_empty();
    // The merge compares text under the database's collation: an explicit
    // one on anything it sorts, groups, de-duplicates or takes MIN / MAX of
    // would be compared differently than the shards compared it.
    if (facts.collate && (aggregating || distinct || q.order_by.is_some()))
        || expr_facts(&group_exprs).collate
        || q.order_by.as_ref().is_some_and(|ob| expr_facts(ob).collate)
    {
        return Err(unmergeable("COLLATE", "the merge compares text under the database's collation only"));
    }

    let mut query = q.clone();
    let SetExpr::Select(out_select) = query.body.as_mut() else {
        return Err(unmergeable("this query form", "only plain SELECT is merged"));
    };
    let items = &mut out_select.projection;
    let visible = items.len();
    let mut hidden: Vec<Expr> = Vec::new();
    let mut combine: Vec<Pending> = Vec::new();

    // Select items.
    for (p, item) in items.iter_mut().enumerate() {
        let (expr, alias) = match &*item {
            SelectItem::UnnamedExpr(e) => (e.clone(), None),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                if aggregating {
                    return Err(unmergeable("* with aggregates or GROUP BY", "list the columns"));
                }
                continue;
            }
            _ => return Err(unmergeable("this select item", "not merged")),
        };
        if !aggregating {
            continue;
        }
        match simple_aggregate(&expr) {
            Some((name, arg, distinct_arg)) => {
                if distinct_arg && name != "min" && name != "max" {
                    return Err(unmergeable(
                        &format!("{}(DISTINCT …)", name.to_uppercase()),
                        "distinct values may repeat across shards",
                    ));
                }
                let c = Out::Item(p);
                match name.as_str() {
                    "count" => combine.push(Pending::Count(c)),
                    "sum" => combine.push(Pending::Sum(c)),
                    "min" => combine.push(Pending::Min(c)),
                    "max" => combine.push(Pending::Max(c)),
                    "avg" => {
                        let Some(arg) = arg else {
                            return Err(unmergeable("AVG(*)", "not valid"));
                        };
                        let (Some(sum), Some(count)) = (call("sum", arg, &expr), call("count", arg, &expr)) else {
                            return Err(unmergeable("AVG", "not merged"));
                        };
                        // Keep the column's name: PostgreSQL names it after
                        // the function, MySQL after the expression's text.
                        let alias = alias.unwrap_or_else(|| match backend {
                            BackendKind::Postgres => Ident::with_quote('"', "avg"),
                            BackendKind::Mysql => {
                                Ident::with_quote('`', call_text(sql, span_of(&expr)).unwrap_or("avg"))
                            }
                        });
                        *item = SelectItem::ExprWithAlias { expr: sum, alias };
                        hidden.push(count);
                        combine.push(Pending::Avg { sum: c, count: Out::Hidden(hidden.len() - 1) });
                    }
                    _ => return Err(unmergeable(&name, "not merged")),
                }
            }
            None => {
                if let Expr::Function(f) = &expr
                    && super::analyze::is_aggregate(f)
                {
                    return Err(unmergeable(
                        &super::analyze::function_name(f).to_uppercase(),
                        "only COUNT, SUM, MIN, MAX and AVG are merged",
                    ));
                }
                if expr_facts(&expr).aggregates > 0 {
                    return Err(unmergeable(
                        "expressions over aggregates",
                        "compute them from plain aggregates instead",
                    ));
                }
                combine.push(Pending::Key(Out::Item(p)));
            }
        }
    }
    if facts.aggregates > 0 && !aggregating {
        return Err(unmergeable("aggregates", "not merged"));
    }
    if aggregating && facts.aggregates == 0 && !group_exprs.is_empty() {
        // GROUP BY without aggregates is a DISTINCT on the group keys: fine.
    }

    // Which select item an expression names: an ordinal, an alias, or the same expression.
    // Matched against the select list as written: the rewritten one has AVG(x) as SUM(x),
    // which a client's `ORDER BY sum(x)` must not find.
    let find_item = |e: &Expr, items: &[SelectItem]| -> Option<usize> {
        if let Expr::Value(v) = e
            && let Value::Number(n, _) = &v.value
        {
            return n.parse::<usize>().ok().and_then(|k| k.checked_sub(1)).filter(|&k| k < visible);
        }
        items.iter().take(visible).position(|it| match it {
            SelectItem::ExprWithAlias { alias, expr } => {
                matches!(e, Expr::Identifier(id) if norm_ident(id, backend) == norm_ident(alias, backend)) || expr == e
            }
            SelectItem::UnnamedExpr(x) => x == e,
            _ => false,
        })
    };

    // Group keys. A bare name in GROUP BY is an input column before it is an
    // output alias (PostgreSQL and MySQL alike): `upper(name) AS name …
    // GROUP BY name` groups by the column, which then is the key itself.
    let mut group_by: Vec<Out> = Vec::new();
    let columns = referenced_columns(s, backend, key_columns);
    for g in &group_exprs {
        if let (Expr::Identifier(id), Some(p)) = (g, find_item(g, &s.projection))
            && let SelectItem::ExprWithAlias { expr, .. } = &s.projection[p]
            && expr != g
            && !alias_names_its_input(g, &s.projection[p], backend)
            && columns.contains(&norm_ident(id, backend))
        {
            // The name is both an output alias and (surely) an input column:
            // the database groups by the column, which the merge cannot see.
            return Err(unmergeable(
                &format!("GROUP BY {} (an alias that is also a column name)", id.value),
                "the database groups by the column; write the expression or its position",
            ));
        }
        match find_item(g, &s.projection).filter(|&p| !alias_names_its_input(g, &s.projection[p], backend)) {
            Some(p) => group_by.push(Out::Item(p)),
            None => {
                hidden.push(g.clone());
                group_by.push(Out::Hidden(hidden.len() - 1));
            }
        }
    }

    // Sort keys.
    let mut order_by: Vec<(Out, bool, bool)> = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(exprs) = &ob.kind else {
            return Err(unmergeable("ORDER BY ALL", "not merged"));
        };
        for o in exprs {
            let descending = match &o.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => {
                    return Err(unmergeable("ORDER BY … USING", "not merged"));
                }
            };
            if o.with_fill.is_some() {
                return Err(unmergeable("WITH FILL", "not merged"));
            }
            let nulls_first = o.options.nulls_first.unwrap_or(match backend {
                // PostgreSQL: NULL is larger than every value.
                BackendKind::Postgres => descending,
                // MySQL: NULL is smaller than every value.
                BackendKind::Mysql => !descending,
            });
            let out = match find_item(&o.expr, &s.projection) {
                Some(p) => Out::Item(p),
                None => {
                    if distinct {
                        return Err(unmergeable(
                            "DISTINCT with ORDER BY on a column not selected",
                            "select the column",
                        ));
                    }
                    if aggregating {
                        match simple_aggregate(&o.expr) {
                            Some((name, _, false)) if name != "avg" => {
                                hidden.push(o.expr.clone());
                                let c = Out::Hidden(hidden.len() - 1);
                                combine.push(match name.as_str() {
                                    "count" => Pending::Count(c),
                                    "sum" => Pending::Sum(c),
                                    "min" => Pending::Min(c),
                                    _ => Pending::Max(c),
                                });
                                c
                            }
                            Some(_) => {
                                return Err(unmergeable(
                                    "ORDER BY an AVG or DISTINCT aggregate not selected",
                                    "select it",
                                ));
                            }
                            None => {
                                if expr_facts(&o.expr).aggregates > 0 {
                                    return Err(unmergeable("ORDER BY an expression over aggregates", "select it"));
                                }
                                match group_exprs.iter().position(|g| g == &o.expr) {
                                    Some(gi) => group_by[gi],
                                    None => {
                                        return Err(unmergeable(
                                            "ORDER BY a column that is not a group key",
                                            "not merged",
                                        ));
                                    }
                                }
                            }
                        }
                    } else {
                        hidden.push(o.expr.clone());
                        Out::Hidden(hidden.len() - 1)
                    }
                }
            };
            order_by.push((out, descending, nulls_first));
        }
    }

    // Hidden group keys are keys of the merge too.
    for g in &group_by {
        if let Out::Hidden(_) = g {
            combine.push(Pending::Key(*g));
        }
    }

    // LIMIT / OFFSET.
    let (limit, offset) = match &query.limit_clause {
        None => (None, None),
        Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
            if !limit_by.is_empty() {
                return Err(unmergeable("LIMIT BY", "not merged"));
            }
            let limit = match limit {
                None => None,
                Some(Expr::Value(v)) if v.value == Value::Null => None,
                Some(e) => Some(
                    value_ref(e, &ParamNumbering)
                        .ok_or_else(|| unmergeable("LIMIT with an expression", "use a number or a parameter"))?,
                ),
            };
            let offset = match offset {
                None => None,
                Some(o) => Some(
                    value_ref(&o.value, &ParamNumbering)
                        .ok_or_else(|| unmergeable("OFFSET with an expression", "use a number or a parameter"))?,
                ),
            };
            (limit, offset)
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => (
            Some(
                value_ref(limit, &ParamNumbering)
                    .ok_or_else(|| unmergeable("LIMIT with an expression", "use a number or a parameter"))?,
            ),
            Some(
                value_ref(offset, &ParamNumbering)
                    .ok_or_else(|| unmergeable("OFFSET with an expression", "use a number or a parameter"))?,
            ),
        ),
    };
    // HAVING: evaluated by the merge on merged groups; the shards get none
    // (a shard's partial group may fail a condition the whole group meets).
    let having = match &s.having {
        None => None,
        Some(h) => {
            if !aggregating {
                return Err(unmergeable("HAVING without GROUP BY or aggregates", "not merged"));
            }
            let mut ctx = HavingCx {
                projection: &s.projection,
                group_exprs: &group_exprs,
                group_by: &group_by,
                hidden: &mut hidden,
                combine: &mut combine,
                visible,
                backend,
            };
            Some(ctx.pred(h)?)
        }
    };
    if let SetExpr::Select(out) = query.body.as_mut() {
        out.having = None;
    }
    let push_limit = !aggregating && limit.is_some();
    // The shards' LIMIT is filled in at bind time (it may be a parameter).
    query.limit_clause = None;

    // Append hidden columns and resolve positions.
    let SetExpr::Select(out_select) = query.body.as_mut() else {
        return Err(unmergeable("this query form", "only plain SELECT is merged"));
    };
    let n_hidden = hidden.len();
    for (i, h) in hidden.into_iter().enumerate() {
        out_select
            .projection
            .push(SelectItem::ExprWithAlias { expr: h, alias: Ident::new(format!("__sg_hidden_{i}")) });
    }
    let items = &out_select.projection;
    let total = items.len();
    let wildcard_before =
        |p: usize| items[..p].iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
    let resolve = |o: &Out| -> ColumnRef {
        let p = match o {
            Out::Item(p) => *p,
            Out::Hidden(h) => visible + h,
        };
        if wildcard_before(p) { ColumnRef::FromEnd(total - 1 - p) } else { ColumnRef::FromStart(p) }
    };
    let aggregates = combine
        .iter()
        .map(|c| match c {
            Pending::Key(x) => Combine::Key(resolve(x)),
            Pending::Count(x) => Combine::Count(resolve(x)),
            Pending::Sum(x) => Combine::Sum(resolve(x)),
            Pending::Min(x) => Combine::Min(resolve(x)),
            Pending::Max(x) => Combine::Max(resolve(x)),
            Pending::Avg { sum, count } => Combine::Avg { sum: resolve(sum), count: resolve(count) },
        })
        .collect();
    let having = having.map(|h| h.resolve(&resolve));
    let merge = RowMerge {
        having,
        group_by: group_by.iter().map(resolve).collect(),
        aggregates,
        aggregating,
        distinct,
        order_by: order_by
            .iter()
            .map(|(o, descending, nulls_first)| SortKey {
                column: resolve(o),
                descending: *descending,
                nulls_first: *nulls_first,
            })
            .collect(),
        offset: 0,
        limit: None,
        hidden: n_hidden,
    };
    Ok(MultiSelect { query, merge, limit, offset, push_limit })
}

/// Whether `g`, a bare name, is the alias of `item` and also a column that
/// the item's expression reads: then GROUP BY `g` means the column.
/// Column names a SELECT surely has as inputs: the sharding keys of its
/// tables, and every column it references outside its select aliases.
fn referenced_columns(s: &Select, backend: BackendKind, key_columns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = key_columns.to_vec();
    let mut add = |e: &Expr| {
        let _ = sqlparser::ast::visit_expressions(e, |x| {
            match x {
                Expr::Identifier(i) => out.push(norm_ident(i, backend)),
                Expr::CompoundIdentifier(ids) => {
                    if let Some(i) = ids.last() {
                        out.push(norm_ident(i, backend));
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    };
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => add(e),
            _ => {}
        }
    }
    if let Some(w) = &s.selection {
        add(w);
    }
    out
}

fn alias_names_its_input(g: &Expr, item: &SelectItem, backend: BackendKind) -> bool {
    let (Expr::Identifier(id), SelectItem::ExprWithAlias { expr, .. }) = (g, item) else {
        return false;
    };
    if expr == g {
        return false;
    }
    let name = norm_ident(id, backend);
    sqlparser::ast::visit_expressions(expr, |x| match x {
        Expr::Identifier(i) if norm_ident(i, backend) == name => std::ops::ControlFlow::Break(()),
        Expr::CompoundIdentifier(ids) if ids.last().is_some_and(|i| norm_ident(i, backend) == name) => {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

/// `name(arg)`, built from the original aggregate call.
fn call(name: &str, arg: &Expr, original: &Expr) -> Option<Expr> {
    let Expr::Function(f) = original else {
        return None;
    };
    let mut f = f.clone();
    f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
    if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
        list.duplicate_treatment = None;
        list.args = vec![sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(arg.clone()))];
    }
    Some(Expr::Function(f))
}

fn span_of(e: &Expr) -> Span {
    use sqlparser::ast::Spanned;
    e.span()
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: u64, col: u64) -> Option<usize> {
    let mut start = 0usize;
    for _ in 1..line {
        start += text[start..].find('\n')? + 1;
    }
    let line_text = &text[start..];
    let col = (col as usize).checked_sub(1)?;
    Some(start + line_text.char_indices().nth(col).map_or(line_text.len(), |(b, _)| b))
}

/// The text of a function call as the client wrote it: from the start of
/// its span to the parenthesis that closes its argument list (the spans of
/// calls do not always include that parenthesis).
pub fn call_text(sql: &str, span: Span) -> Option<&str> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let begin = offset_of(sql, span.start.line, span.start.column)?;
    let rest = &sql[begin..];
    let tokens = Tokenizer::new(&sqlparser::dialect::MySqlDialect {}, rest).tokenize_with_location().ok()?;
    let mut depth = 0i32;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    let at = offset_of(rest, t.span.start.line, t.span.start.column)?;
                    return rest.get(..at + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// A HAVING condition while positions are not final.
enum PendingHaving {
    And(Vec<PendingHaving>),
    Or(Vec<PendingHaving>),
    Not(Box<PendingHaving>),
    Compare { column: Out, op: CompareOp, literal: HavingLiteral },
    IsNull { column: Out, negated: bool },
}

impl PendingHaving {
    fn resolve(self, r: &dyn Fn(&Out) -> ColumnRef) -> Having {
        match self {
            PendingHaving::And(v) => Having::And(v.into_iter().map(|h| h.resolve(r)).collect()),
            PendingHaving::Or(v) => Having::Or(v.into_iter().map(|h| h.resolve(r)).collect()),
            PendingHaving::Not(h) => Having::Not(Box::new(h.resolve(r))),
            PendingHaving::Compare { column, op, literal } => Having::Compare { column: r(&column), op, literal },
            PendingHaving::IsNull { column, negated } => Having::IsNull { column: r(&column), negated },
        }
    }
}

/// Translates HAVING into conditions on output columns, adding hidden
/// aggregate columns for aggregates the select list does not have.
struct HavingCx<'a> {
    projection: &'a [SelectItem],
    group_exprs: &'a [Expr],
    group_by: &'a [Out],
    hidden: &'a mut Vec<Expr>,
    combine: &'a mut Vec<Pending>,
    visible: usize,
    backend: BackendKind,
}

fn refuse_having() -> RouteError {
    unmergeable(
        "this HAVING condition",
        "only comparisons of aggregates or group keys with literals, under AND / OR / NOT, are merged",
    )
}

impl HavingCx<'_> {
    /// The output column an operand names: a select item written the same
    /// way, a group key, or a new hidden COUNT/SUM/MIN/MAX.
    fn operand(&mut self, e: &Expr) -> Result<Out, RouteError> {
        let e = match e {
            Expr::Nested(inner) => inner.as_ref(),
            other => other,
        };
        if let Some(p) = self.projection.iter().take(self.visible).position(|it| match it {
            SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } => x == e,
            _ => false,
        }) {
            return Ok(Out::Item(p));
        }
        if let Some(g) = self.group_exprs.iter().position(|g| g == e) {
            return Ok(self.group_by[g]);
        }
        match simple_aggregate(e) {
            Some((name, _, false)) if name != "avg" => {
                self.hidden.push(e.clone());
                let c = Out::Hidden(self.hidden.len() - 1);
                self.combine.push(match name.as_str() {
                    "count" => Pending::Count(c),
                    "sum" => Pending::Sum(c),
                    "min" => Pending::Min(c),
                    _ => Pending::Max(c),
                });
                Ok(c)
            }
            _ => Err(refuse_having()),
        }
    }

    fn literal(e: &Expr) -> Option<HavingLiteral> {
        match value_ref(e, &ParamNumbering)? {
            ValueRef::Number(n) => Some(HavingLiteral::Number(n)),
            ValueRef::String(s) => Some(HavingLiteral::Text(s)),
            _ => None,
        }
    }

    fn pred(&mut self, e: &Expr) -> Result<PendingHaving, RouteError> {
        use sqlparser::ast::{BinaryOperator as B, UnaryOperator};
        let _ = self.backend;
        Ok(match e {
            Expr::Nested(inner) => self.pred(inner)?,
            Expr::BinaryOp { left, op: B::And, right } => PendingHaving::And(vec![self.pred(left)?, self.pred(right)?]),
            Expr::BinaryOp { left, op: B::Or, right } => PendingHaving::Or(vec![self.pred(left)?, self.pred(right)?]),
            Expr::UnaryOp { op: UnaryOperator::Not, expr } => PendingHaving::Not(Box::new(self.pred(expr)?)),
            Expr::IsNull(x) => PendingHaving::IsNull { column: self.operand(x)?, negated: false },
            Expr::IsNotNull(x) => PendingHaving::IsNull { column: self.operand(x)?, negated: true },
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    B::Eq => CompareOp::Eq,
                    B::NotEq => CompareOp::NotEq,
                    B::Lt => CompareOp::Lt,
                    B::LtEq => CompareOp::LtEq,
                    B::Gt => CompareOp::Gt,
                    B::GtEq => CompareOp::GtEq,
                    _ => return Err(refuse_having()),
                };
                if let Some(literal) = Self::literal(right) {
                    PendingHaving::Compare { column: self.operand(left)?, op, literal }
                } else if let Some(literal) = Self::literal(left) {
                    let flipped = match op {
                        CompareOp::Lt => CompareOp::Gt,
                        CompareOp::LtEq => CompareOp::GtEq,
                        CompareOp::Gt => CompareOp::Lt,
                        CompareOp::GtEq => CompareOp::LtEq,
                        other => other,
                    };
                    PendingHaving::Compare { column: self.operand(right)?, op: flipped, literal }
                } else {
                    return Err(refuse_having());
                }
            }
            _ => return Err(refuse_having()),
        })
    }
}
