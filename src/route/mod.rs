//! The router: SQL text and parameters in, a [`Plan`] out.
//!
//! Routing happens in two steps so that prepared statements pay for parsing
//! once:
//! 1. [`Router::prepare`] parses one statement and settles everything that
//!    does not depend on parameter values (tables, joins, refusals, the
//!    multi-shard rewrite). The result is cached by statement text.
//! 2. [`Router::bind`] evaluates the key predicates with the parameters and
//!    produces the plan: the shards, the exact SQL each gets, the merge.
//!
//! [`Router::route`] does both for a simple-protocol string, which may hold
//! several statements.
//!
//! A statement sent to one shard unchanged is sent as the client wrote it;
//! anything rewritten is printed from the rewritten AST.
//!
//! Statements sqlparser cannot parse are never routed by guesswork: inside
//! a transaction pinned to a shard they go to that shard; otherwise, when
//! none of the rule file's table names appears among their words, they go to
//! the default shard (or the first shard) — such a statement can only touch
//! catalogs or tables the rule file does not know; otherwise they are refused
//! with the parser's message.

mod analyze;
mod cache;
mod copy;
mod ddl;
mod dml;
pub mod error;
mod insert;
pub mod plan;
mod rewrite;
mod routing;
mod select;
pub mod txn;

use std::sync::Arc;

use sqlparser::ast::Statement;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

pub use error::RouteError;
pub use plan::{
    ColumnRef, Combine, Control, CopyFormat, CopyIn, Merge, Plan, Reason, RowMerge, SortKey, StatementKind, Target,
};
pub use txn::{TxnPolicy, TxnState};

use crate::backend::BackendKind;
use crate::rules::Rules;
use crate::sharding::idgen::IdGenerator;
use crate::sharding::{Literal, ShardId};

use cache::PlanCache;
use ddl::DdlShape;
use dml::DmlShape;
use insert::InsertShape;

/// A bound parameter value as the front end decoded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    /// Text format, or a binary value decoded to text.
    Text(String),
    /// A binary integer.
    Int(i64),
    /// A binary value of a type the front end does not decode.
    Binary(Vec<u8>),
}

impl Param {
    pub fn literal(&self) -> Literal<'_> {
        match self {
            Param::Null => Literal::Null,
            Param::Text(s) => Literal::String(s),
            Param::Int(i) => Literal::Int(*i),
            Param::Binary(_) => Literal::Opaque,
        }
    }
}

/// What routing needs to know about the session.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteContext<'a> {
    pub params: &'a [Param],
    /// The shard the session's transaction is pinned to, if any.
    pub pinned: Option<ShardId>,
    /// The session's time zone as a fixed UTC offset in seconds, when it is one.
    pub utc_offset: Option<i32>,
}

impl<'a> RouteContext<'a> {
    pub fn new(params: &'a [Param]) -> Self {
        RouteContext { params, pinned: None, utc_offset: Some(0) }
    }
}

/// One statement, parsed and analysed; reusable with any parameters.
#[derive(Debug)]
pub struct Prepared {
    /// The statement's text as the client wrote it.
    pub sql: Arc<str>,
    /// How many parameters it takes.
    pub params: usize,
    shape: Shape,
}

#[derive(Debug)]
enum Shape {
    Dml(Box<DmlShape>),
    Insert(Box<InsertShape>),
    Ddl(DdlShape),
    /// Goes to one shard (the transaction's, or the first) as it is.
    OneShard(StatementKind, Reason),
    /// Handled by the session (transaction control, settings).
    Control(Control),
    Copy(Box<copy::CopyShape>),
    /// EXPLAIN of a statement: the statement's plan, each target wrapped.
    Explain {
        inner: Box<Prepared>,
        explain: Box<Statement>,
        kind: StatementKind,
    },
}

impl Prepared {
    /// The statement's class, before binding.
    fn kind(&self) -> StatementKind {
        match &self.shape {
            Shape::Insert(_) | Shape::Copy(_) => StatementKind::Write,
            Shape::Ddl(_) => StatementKind::Ddl,
            Shape::Dml(d) => d.kind(),
            Shape::OneShard(k, _) => *k,
            Shape::Control(_) => StatementKind::Session,
            Shape::Explain { kind, .. } => *kind,
        }
    }
}

/// The router of one rule file.
#[derive(Debug)]
pub struct Router {
    rules: Arc<Rules>,
    ids: Arc<IdGenerator>,
    cache: PlanCache,
}

impl Router {
    pub fn new(rules: Arc<Rules>, ids: Arc<IdGenerator>) -> Router {
        Router { rules, ids, cache: PlanCache::new(4096) }
    }

    /// How many prepared statements the plan cache holds.
    pub fn cached_statements(&self) -> usize {
        self.cache.len()
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    fn backend(&self) -> BackendKind {
        self.rules.backend
    }

    /// Plans every statement of a simple-protocol string.
    pub fn route(&self, sql: &str, cx: &RouteContext<'_>) -> Result<Vec<Plan>, RouteError> {
        split_statements(sql, self.backend())
            .into_iter()
            .map(|piece| {
                let prepared = self.analyse(piece)?;
                self.bind(&prepared, cx)
            })
            .collect()
    }

    /// Parses and analyses one statement, through the cache.
    pub fn prepare(&self, sql: &str) -> Result<Arc<Prepared>, RouteError> {
        if let Some(p) = self.cache.get(sql) {
            return Ok(p);
        }
        let p = Arc::new(self.analyse(sql)?);
        self.cache.insert(p.sql.clone(), p.clone());
        Ok(p)
    }

    /// Parses and analyses one statement, without the cache.
    pub fn analyse(&self, sql: &str) -> Result<Prepared, RouteError> {
        let text: Arc<str> = Arc::from(sql.trim().trim_end_matches(';').trim_end());
        let dialect = self.backend().dialect();
        let mut stmts = match Parser::parse_sql(dialect, &text) {
            Ok(s) => s,
            Err(e) => match self.reparse(&text) {
                Some(s) => s,
                None => return self.unparsed(text, e.to_string()),
            },
        };
        let mut stmt = match stmts.len() {
            1 => stmts.remove(0),
            0 => {
                return Ok(Prepared {
                    sql: text,
                    params: 0,
                    shape: Shape::OneShard(StatementKind::Session, Reason::AnyShard),
                });
            }
            _ => {
                return Err(RouteError::Syntax { message: "expected one statement".into() });
            }
        };
        let params = match self.backend() {
            BackendKind::Mysql => rewrite::number_positional(&mut stmt),
            BackendKind::Postgres => rewrite::count_numbered(&mut stmt),
        };
        if let Some(what) = session_bound(&stmt) {
            return Err(RouteError::Unsupported {
                detail: format!(
                    "{what} would tie the session to one backend connection, which transaction pooling shares; \
                     it is not supported through shardgate"
                ),
            });
        }
        let rules = &*self.rules;
        // Queries, the most common statements, keep their AST without a copy.
        let stmt = match stmt {
            Statement::Query(q) => {
                let shape = Shape::Dml(Box::new(DmlShape::query(q, rules, params)?));
                return Ok(Prepared { sql: text, params, shape });
            }
            other => other,
        };
        let shape = match &stmt {
            Statement::Insert(i) => Shape::Insert(Box::new(InsertShape::new(i, rules)?)),
            Statement::Update(u) => Shape::Dml(Box::new(DmlShape::update(u, rules, params)?)),
            Statement::Delete(d) => Shape::Dml(Box::new(DmlShape::delete(d, rules, params)?)),
            Statement::StartTransaction { .. } => Shape::Control(Control::Begin),
            Statement::Commit { .. } => Shape::Control(Control::Commit),
            Statement::Rollback { savepoint: None, .. } => Shape::Control(Control::Rollback),
            Statement::Rollback { savepoint: Some(_), .. } => Shape::Control(Control::RollbackToSavepoint),
            Statement::Savepoint { .. } => Shape::Control(Control::Savepoint),
            Statement::ReleaseSavepoint { .. } => Shape::Control(Control::ReleaseSavepoint),
            Statement::Set(set) => Shape::Control(match set {
                sqlparser::ast::Set::SingleAssignment {
                    scope: Some(sqlparser::ast::ContextModifier::Local), ..
                } => Control::SetLocal,
                _ => Control::Set,
            }),
            Statement::Reset(_) | Statement::Discard { .. } => Shape::Control(Control::Reset),
            Statement::ShowVariable { .. } => Shape::Control(Control::Show),
            Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowFunctions { .. }
            | Statement::ShowProcessList { .. }
            | Statement::Use(_)
            | Statement::Deallocate { .. } => Shape::OneShard(StatementKind::Session, Reason::AnyShard),
            Statement::ShowColumns { .. } | Statement::ShowCreate { .. } => {
                Shape::OneShard(StatementKind::Read, Reason::AnyShard)
            }
            Statement::Explain { statement, analyze, .. } => {
                // The inner statement is routed as it would be; each shard
                // gets EXPLAIN of exactly the statement it would run.
                let inner = self.analyse(&statement.to_string())?;
                let kind = if *analyze { inner.kind() } else { StatementKind::Read };
                Shape::Explain { inner: Box::new(inner), explain: Box::new(stmt.clone()), kind }
            }
            Statement::ExplainTable { .. } => Shape::OneShard(StatementKind::Read, Reason::AnyShard),
            Statement::Copy { .. } => Shape::Copy(Box::new(copy::CopyShape::new(&stmt, rules)?)),
            Statement::Prepare { .. } | Statement::Execute { .. } => {
                return Err(RouteError::Unsupported {
                    detail: "SQL-level PREPARE/EXECUTE cannot follow a statement across pooled connections; use the protocol's prepared statements".into(),
                });
            }
            other => match DdlShape::new(other, rules)? {
                Some(d) => Shape::Ddl(d),
                None => {
                    return Err(RouteError::Unsupported {
                        detail: format!("statement not supported by shardgate: {}", first_words(&text)),
                    });
                }
            },
        };
        Ok(Prepared { sql: text, params, shape })
    }

    /// The policy for text sqlparser cannot parse (see the module docs).
    /// A second chance for PostgreSQL spellings sqlparser does not know but
    /// whose meaning is certain: COPY options written `ON`/`OFF` (as pgbench
    /// writes `WITH (freeze on)`) are read as `TRUE`/`FALSE`. The statement
    /// read this way serves routing only; shards still get the text as
    /// written.
    fn reparse(&self, text: &str) -> Option<Vec<Statement>> {
        let dialect = self.backend().dialect();
        let tokens = Tokenizer::new(dialect, text).tokenize().ok()?;
        let first = tokens.iter().find_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })?;
        if first != "copy" {
            return None;
        }
        let mut changed = false;
        let mut prev_word: Option<String> = None;
        let rewritten: Vec<Token> = tokens
            .into_iter()
            .map(|t| {
                let out = match &t {
                    Token::Word(w)
                        if prev_word.as_deref().is_some_and(|p| ["freeze", "header"].contains(&p))
                            && (w.value.eq_ignore_ascii_case("on") || w.value.eq_ignore_ascii_case("off")) =>
                    {
                        changed = true;
                        let v = if w.value.eq_ignore_ascii_case("on") { "TRUE" } else { "FALSE" };
                        Token::make_keyword(v)
                    }
                    _ => t.clone(),
                };
                match &t {
                    Token::Word(w) => prev_word = Some(w.value.to_ascii_lowercase()),
                    Token::Whitespace(_) => {}
                    _ => prev_word = None,
                }
                out
            })
            .collect();
        if !changed {
            return None;
        }
        let text: String = rewritten.iter().map(ToString::to_string).collect();
        Parser::parse_sql(dialect, &text).ok()
    }

    /// VACUUM and ANALYZE (which sqlparser does not read in PostgreSQL's
    /// form): to every shard holding the tables they name, or every shard.
    fn maintenance(&self, text: &Arc<str>) -> Option<Shape> {
        let tokens = Tokenizer::new(self.backend().dialect(), text).tokenize().ok()?;
        let words: Vec<String> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        if !matches!(words.first().map(String::as_str), Some("vacuum" | "analyze" | "analyse")) {
            return None;
        }
        let named: Vec<&crate::rules::TableRule> = words.iter().filter_map(|w| self.rules.table(None, w)).collect();
        let mut shards = crate::sharding::ShardSet::empty();
        for t in &named {
            shards = shards.union(&match t.placement {
                crate::rules::TablePlacement::Pinned(s) => crate::sharding::ShardSet::single(s),
                _ => self.rules.all_shards(),
            });
        }
        let reason = match named.first() {
            Some(t) => Reason::Schema { table: t.name.clone() },
            None => Reason::Schema { table: "every shard".into() },
        };
        if shards.is_empty() {
            shards = self.rules.all_shards();
        }
        Some(Shape::Ddl(DdlShape { shards, reason }))
    }

    fn unparsed(&self, text: Arc<str>, message: String) -> Result<Prepared, RouteError> {
        if let Some(shape) = self.maintenance(&text) {
            return Ok(Prepared { sql: text, params: 0, shape });
        }
        let names_a_table = mentions_rule_table(&text, &self.rules);
        if names_a_table {
            return Err(RouteError::Syntax {
                message: format!(
                    "{message} (shardgate routes only statements it can parse when they name sharded tables)"
                ),
            });
        }
        Ok(Prepared { sql: text, params: 0, shape: Shape::OneShard(StatementKind::Write, Reason::Unparsed) })
    }

    /// A shard on which the statement's text is valid as it is, for
    /// describing it (its pinned or default shard, or the first shard).
    pub fn describe_shard(&self, p: &Prepared) -> ShardId {
        match &p.shape {
            Shape::Dml(d) => d.fixed_shard(),
            Shape::Insert(i) => i.fixed_shard(),
            _ => None,
        }
        .unwrap_or(ShardId(0))
    }

    /// Binds parameters and plans.
    pub fn bind(&self, p: &Prepared, cx: &RouteContext<'_>) -> Result<Plan, RouteError> {
        if cx.params.len() < p.params {
            return Err(RouteError::MissingParameter { index: p.params, given: cx.params.len() });
        }
        let rules = &*self.rules;
        match &p.shape {
            Shape::Dml(d) => d.bind(&p.sql, rules, cx),
            Shape::Insert(i) => i.bind(&p.sql, rules, cx, &self.ids),
            Shape::Ddl(d) => {
                let targets: Vec<Target> = d
                    .shards
                    .iter()
                    .map(|shard| Target {
                        shard,
                        sql: p.sql.clone(),
                        params: None,
                        reason: d.reason.clone(),
                        rows: None,
                    })
                    .collect();
                let merge = if targets.len() > 1 { Merge::Broadcast } else { Merge::Forward };
                Ok(Plan { control: None, copy_in: None, kind: StatementKind::Ddl, targets, merge })
            }
            Shape::Copy(c) => c.bind(&p.sql, self, cx),
            Shape::Explain { inner, explain, kind } => {
                let plan = self.bind(inner, cx)?;
                let dialect = self.backend().dialect();
                let targets = plan
                    .targets
                    .into_iter()
                    .map(|t| {
                        let mut wrapped = (**explain).clone();
                        if let Statement::Explain { statement, .. } = &mut wrapped {
                            let mut parsed = Parser::parse_sql(dialect, &t.sql)
                                .map_err(|e| RouteError::Syntax { message: e.to_string() })?;
                            if parsed.len() != 1 {
                                return Err(RouteError::Syntax { message: "EXPLAIN of several statements".into() });
                            }
                            **statement = parsed.remove(0);
                        }
                        Ok(Target { sql: Arc::from(wrapped.to_string()), ..t })
                    })
                    .collect::<Result<Vec<_>, RouteError>>()?;
                Ok(Plan { control: None, copy_in: None, kind: *kind, targets, merge: Merge::Explain })
            }
            Shape::Control(c) => {
                let (shard, reason) = match cx.pinned {
                    Some(s) => (s, Reason::Transaction),
                    None => (ShardId(0), Reason::AnyShard),
                };
                Ok(Plan {
                    control: Some(*c),
                    copy_in: None,
                    kind: StatementKind::Session,
                    targets: vec![Target { shard, sql: p.sql.clone(), params: None, reason, rows: None }],
                    merge: Merge::Forward,
                })
            }
            Shape::OneShard(kind, reason) => {
                let (shard, reason) = match (cx.pinned, reason) {
                    (Some(s), _) => (s, Reason::Transaction),
                    (None, Reason::Unparsed) => (rules.default_shard.unwrap_or(ShardId(0)), Reason::Unparsed),
                    (None, r) => (ShardId(0), r.clone()),
                };
                Ok(Plan {
                    control: None,
                    copy_in: None,
                    kind: *kind,
                    targets: vec![Target { shard, sql: p.sql.clone(), params: None, reason, rows: None }],
                    merge: Merge::Forward,
                })
            }
        }
    }
}

/// One row of EXPLAIN ROUTE: a shard and the SQL it gets, or (with an
/// empty shard) a merge step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainRow {
    pub shard: String,
    pub sql: String,
    pub reason: String,
}

/// The rows EXPLAIN ROUTE answers with (columns `shard | sql | reason`);
/// `shardgate route` prints the same.
pub fn explain_rows(plan: &Plan, rules: &Rules) -> Vec<ExplainRow> {
    let mut rows: Vec<ExplainRow> = plan
        .targets
        .iter()
        .map(|t| {
            let mut reason = t.reason.to_string();
            if let Some(p) = &t.params {
                let list: Vec<String> = p.iter().map(|i| format!("${}", i + 1)).collect();
                reason.push_str(&format!(" (takes parameters {})", list.join(", ")));
            }
            if let Some(r) = &t.rows {
                let list: Vec<String> = r.iter().map(|i| (i + 1).to_string()).collect();
                reason.push_str(&format!(" (rows {})", list.join(", ")));
            }
            ExplainRow { shard: rules.shard(t.shard).name.clone(), sql: t.sql.to_string(), reason }
        })
        .collect();
    rows.push(ExplainRow { shard: String::new(), sql: String::new(), reason: plan.merge.to_string() });
    rows
}

/// Session state that cannot follow a client from one pooled backend
/// connection to another.
fn session_bound(stmt: &Statement) -> Option<String> {
    match stmt {
        Statement::LISTEN { .. } | Statement::UNLISTEN { .. } => return Some("LISTEN".into()),
        Statement::CreateTable(t) if t.temporary => return Some("a temporary table".into()),
        Statement::Declare { .. } => return Some("a cursor (DECLARE)".into()),
        Statement::Fetch { .. } => return Some("FETCH from a cursor".into()),
        _ => {}
    }
    const SESSION_FUNCTIONS: &[&str] = &[
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_advisory_unlock",
        "pg_advisory_unlock_shared",
        "pg_advisory_unlock_all",
        "get_lock",
        "release_lock",
        "release_all_locks",
        "set_config",
    ];
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let sqlparser::ast::Expr::Function(f) = e {
            let name = analyze::function_name(f);
            if SESSION_FUNCTIONS.contains(&name.as_str()) {
                found = Some(format!("{name}()"));
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Whether any word of the text is the name of a table in the rule file.
fn mentions_rule_table(sql: &str, rules: &Rules) -> bool {
    let names: Vec<&str> = rules.tables.iter().map(|t| t.name.rsplit('.').next().unwrap_or(&t.name)).collect();
    match Tokenizer::new(rules.backend.dialect(), sql).tokenize() {
        Ok(tokens) => tokens.iter().any(|t| match t {
            Token::Word(w) => names.iter().any(|n| n.eq_ignore_ascii_case(&w.value)),
            _ => false,
        }),
        // Not even tokenizable: look at raw words.
        Err(_) => sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| names.iter().any(|n| n.eq_ignore_ascii_case(w))),
    }
}

/// Splits a string into its statements at top-level semicolons (not those
/// inside strings, quoted names or comments), keeping each statement's
/// original text.
pub fn split_statements(sql: &str, backend: BackendKind) -> Vec<&str> {
    if !sql.contains(';') {
        return if sql.trim().is_empty() { Vec::new() } else { vec![sql] };
    }
    // The common case: one statement ended by its only semicolon (which can
    // then be inside nothing but a trailing comment, ending the same
    // statement either way).
    let trimmed = sql.trim_end();
    if let Some(body) = trimmed.strip_suffix(';')
        && !body.contains(';')
    {
        return if body.trim().is_empty() { Vec::new() } else { vec![body] };
    }
    let Ok(tokens) = Tokenizer::new(backend.dialect(), sql).tokenize_with_location() else {
        return vec![sql];
    };
    // Byte offset of each line start, to turn token locations into offsets.
    let mut line_starts = vec![0usize];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |line: u64, col: u64| -> Option<usize> {
        let start = *line_starts.get((line as usize).checked_sub(1)?)?;
        let rest = &sql[start..];
        Some(start + rest.char_indices().nth((col as usize).checked_sub(1)?).map_or(rest.len(), |(b, _)| b))
    };
    let mut pieces = Vec::new();
    let mut begin = 0usize;
    for t in &tokens {
        if t.token == Token::SemiColon
            && let Some(at) = offset(t.span.start.line, t.span.start.column)
        {
            let piece = &sql[begin..at];
            if !is_blank(piece, backend) {
                pieces.push(piece);
            }
            begin = at + 1;
        }
    }
    let tail = &sql[begin.min(sql.len())..];
    if !is_blank(tail, backend) {
        pieces.push(tail);
    }
    pieces
}

/// Whether a piece holds only whitespace and comments.
fn is_blank(piece: &str, backend: BackendKind) -> bool {
    match Tokenizer::new(backend.dialect(), piece).tokenize() {
        Ok(tokens) => tokens.iter().all(|t| matches!(t, Token::Whitespace(_))),
        Err(_) => piece.trim().is_empty(),
    }
}

#[cfg(test)]
mod tests;
