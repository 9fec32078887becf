//! What the router decides: the plan of one statement.
//!
//! A plan is dialect-neutral data: the shards a statement goes to, the exact
//! SQL each gets, why it goes there, and what the proxy must do with the
//! answers (the merge). The executor sends, the merge combines; neither looks
//! at SQL again.

use std::fmt;
use std::sync::Arc;

use crate::sharding::ShardId;

/// The plan of one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub kind: StatementKind,
    /// Transaction control and session settings, which the session handles
    /// itself rather than forwarding as they are.
    pub control: Option<Control>,
    /// COPY … FROM STDIN: how the front end splits the rows it receives.
    pub copy_in: Option<Box<CopyIn>>,
    /// One entry per shard the statement is sent to, in shard order.
    pub targets: Vec<Target>,
    /// What the proxy does with the shards' answers.
    pub merge: Merge,
}

impl Plan {
    /// Whether the statement writes (data or schema).
    pub fn writes(&self) -> bool {
        matches!(self.kind, StatementKind::Write | StatementKind::Ddl)
    }

    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.targets.iter().map(|t| t.shard)
    }
}

/// COPY … FROM STDIN into a table: every shard in `targets` gets the COPY
/// statement, and each data row goes to the shard its key says.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyIn {
    pub table: String,
    /// The columns named by the statement (empty: all columns, in table order;
    /// the front end reads them from a shard's catalog).
    pub columns: Vec<String>,
    /// The sharding key column and keyspace; `None` for reference and
    /// pinned tables, where every target gets every row.
    pub key: Option<(String, usize)>,
    pub format: CopyFormat,
}

/// The row format of a COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFormat {
    /// Tab (or `delimiter`) separated, backslash escapes, `\N` for NULL.
    Text { delimiter: u8, null: String },
    /// CSV with `quote` and `escape`, an optional header line.
    Csv { delimiter: u8, quote: u8, escape: u8, header: bool, null: String },
}

/// Statements the session must understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// BEGIN / START TRANSACTION (the text, with its modes, is replayed on
    /// every shard the transaction reaches).
    Begin,
    Commit,
    Rollback,
    Savepoint,
    ReleaseSavepoint,
    RollbackToSavepoint,
    /// SET (session-wide).
    Set,
    /// SET LOCAL: for the current transaction only.
    SetLocal,
    /// RESET, DISCARD: back to defaults.
    Reset,
    /// SHOW, and the like: read session state.
    Show,
}

/// The class of a statement, as far as transactions and pooling care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// Reads data (or nothing): SELECT, SHOW, catalog queries.
    Read,
    /// Changes rows: INSERT, UPDATE, DELETE, COPY FROM.
    Write,
    /// Changes schema: CREATE, ALTER, DROP, TRUNCATE.
    Ddl,
    /// Session state and transaction control (SET, SHOW, BEGIN, …): handled
    /// by the session; when a shard must see it, any one shard.
    Session,
}

/// One shard's part of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub shard: ShardId,
    /// The exact statement this shard gets. Shared when every shard gets the
    /// same text (the common case), so a plan costs no copies per shard.
    pub sql: Arc<str>,
    /// Which of the client's parameters this shard's statement takes, in its
    /// placeholder order; `None` when it takes them all, unchanged.
    pub params: Option<Vec<usize>>,
    /// Why the statement goes to this shard.
    pub reason: Reason,
    /// For a split INSERT: the positions (in the client's VALUES list) of
    /// the rows this shard gets, in order, so that RETURNING rows can be
    /// given back in the client's order.
    pub rows: Option<Vec<usize>>,
}

/// Why a statement goes to a shard; shown by EXPLAIN ROUTE and `shardgate route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The values the VALUES list (or COPY data) gives the sharding key
    /// live here.
    Key { table: String, key: String },
    /// The WHERE clause's predicate on the sharding key selects this shard.
    Predicate { table: String, predicate: std::sync::Arc<str> },
    /// The WHERE clause allows no key value at all (`id = 1 AND id = 2`, a
    /// time outside every range): one shard answers, with no rows.
    NoKey { table: String },
    /// No predicate narrowed the keyspace: every shard that can hold rows.
    Scatter { table: String },
    /// A write to a reference table goes to every copy.
    Broadcast { table: String },
    /// DDL goes to every shard holding the table.
    Schema { table: String },
    /// A pinned table lives here.
    Pinned { table: String },
    /// Reads of reference tables need one copy only.
    ReferenceRead { table: String },
    /// Tables with no rule go to the default shard.
    DefaultShard { table: String },
    /// No table at all (or catalogs only): any one shard answers.
    AnyShard,
    /// The transaction is pinned here.
    Transaction,
    /// The statement could not be parsed and names no table of the rule file.
    Unparsed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Key { table, key } => write!(f, "{table}.{key}: the key values of the statement live here"),
            Reason::Predicate { predicate, .. } => write!(f, "{predicate} selects this shard"),
            Reason::NoKey { table } => write!(f, "{table}: no key value can match; one shard answers with no rows"),
            Reason::Scatter { table } => {
                write!(f, "{table}: no predicate on the sharding key, every shard")
            }
            Reason::Broadcast { table } => write!(f, "{table} is a reference table: a write goes to every copy"),
            Reason::Schema { table } => {
                write!(f, "schema change of {table} goes to every shard holding it")
            }
            Reason::Pinned { table } => write!(f, "{table} is pinned to this shard"),
            Reason::ReferenceRead { table } => {
                write!(f, "{table} is a reference table: one copy answers")
            }
            Reason::DefaultShard { table } => write!(f, "{table} has no rule: the default shard"),
            Reason::AnyShard => write!(f, "no sharded table: any one shard answers"),
            Reason::Transaction => write!(f, "the transaction is pinned to this shard"),
            Reason::Unparsed => write!(f, "not parsed, names no table of the rule file: one shard"),
        }
    }
}

/// How the proxy combines the shards' answers.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Merge {
    /// One shard: its answer is the answer, forwarded as bytes.
    #[default]
    Forward,
    /// Several shards, writes: the affected-row counts are added up.
    SumCounts,
    /// The same statement to every copy (reference-table writes, DDL): each
    /// answers alike and one answer is returned, once all succeeded.
    Broadcast,
    /// Several shards, rows: combined as [`RowMerge`] says.
    Rows(RowMerge),
    /// A split INSERT … RETURNING: rows put back in VALUES order.
    InsertReturning,
    /// EXPLAIN: each shard's plan lines, prefixed with the shard's name.
    Explain,
}

/// The merge of rows from several shards, in the order the steps apply:
/// group and aggregate, filter groups, de-duplicate, sort, offset and limit,
/// drop hidden columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowMerge {
    /// Group keys (empty with aggregates: one group for the whole result).
    pub group_by: Vec<ColumnRef>,
    /// Per output column: how to combine it across shards. Empty when no
    /// aggregation happens (rows pass through).
    pub aggregates: Vec<Combine>,
    /// Whether the statement aggregates (a query with aggregates but no GROUP
    /// BY returns one row even when every shard returns none).
    pub aggregating: bool,
    pub distinct: bool,
    pub order_by: Vec<SortKey>,
    pub offset: u64,
    pub limit: Option<u64>,
    /// How many trailing columns the proxy added and drops before answering.
    pub hidden: usize,
    /// HAVING, evaluated on each merged group (the shards get none).
    pub having: Option<Having>,
}

/// A HAVING condition over merged groups: comparisons of a column (an
/// aggregate or group key) with a literal, under AND / OR / NOT, with SQL's
/// three-valued logic (a group stays only where the condition is true).
#[derive(Debug, Clone, PartialEq)]
pub enum Having {
    And(Vec<Having>),
    Or(Vec<Having>),
    Not(Box<Having>),
    Compare { column: ColumnRef, op: CompareOp, literal: HavingLiteral },
    IsNull { column: ColumnRef, negated: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A literal of a HAVING comparison, read as the column's type by the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HavingLiteral {
    Number(String),
    Text(String),
}

/// A column of the shards' result rows. Columns before any `*` in the select
/// list are counted from the start; after it, from the end (the width of `*`
/// is not known to the router).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRef {
    FromStart(usize),
    FromEnd(usize),
}

impl ColumnRef {
    pub fn resolve(self, width: usize) -> Option<usize> {
        match self {
            ColumnRef::FromStart(i) => (i < width).then_some(i),
            ColumnRef::FromEnd(i) => width.checked_sub(i + 1),
        }
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnRef::FromStart(i) => write!(f, "#{}", i + 1),
            ColumnRef::FromEnd(i) => write!(f, "#-{}", i + 1),
        }
    }
}

/// How one output column is combined across shards.
#[derive(Debug, Clone, PartialEq)]
pub enum Combine {
    /// A group key or a plain column: taken as is.
    Key(ColumnRef),
    /// Sum of per-shard counts (COUNT → bigint).
    Count(ColumnRef),
    /// Sum of per-shard sums (NULL when every shard's sum is NULL).
    Sum(ColumnRef),
    Min(ColumnRef),
    Max(ColumnRef),
    /// AVG(x): the shards send SUM(x) here and COUNT(x) in a hidden column.
    Avg {
        sum: ColumnRef,
        count: ColumnRef,
    },
}

/// One ORDER BY key of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub column: ColumnRef,
    pub descending: bool,
    /// Where NULLs go, already resolved to the backend's default when the
    /// statement did not say.
    pub nulls_first: bool,
}

impl fmt::Display for RowMerge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<String> = Vec::new();
        if self.aggregating || !self.group_by.is_empty() {
            let keys: Vec<String> = self.group_by.iter().map(ToString::to_string).collect();
            let aggs: Vec<String> = self
                .aggregates
                .iter()
                .filter(|c| !matches!(c, Combine::Key(_)))
                .map(|c| match c {
                    Combine::Key(c) => c.to_string(),
                    Combine::Count(c) => format!("sum of counts {c}"),
                    Combine::Sum(c) => format!("sum {c}"),
                    Combine::Min(c) => format!("min {c}"),
                    Combine::Max(c) => format!("max {c}"),
                    Combine::Avg { sum, count } => format!("avg = sum {sum} / count {count}"),
                })
                .collect();
            if keys.is_empty() {
                steps.push(format!("aggregate {}", aggs.join(", ")));
            } else {
                steps.push(format!("group by {} and aggregate {}", keys.join(", "), aggs.join(", ")));
            }
        }
        if self.having.is_some() {
            steps.push("filter groups by HAVING".into());
        }
        if self.distinct {
            steps.push("distinct".into());
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|k| {
                    format!(
                        "{} {} nulls {}",
                        k.column,
                        if k.descending { "desc" } else { "asc" },
                        if k.nulls_first { "first" } else { "last" }
                    )
                })
                .collect();
            if self.aggregating || !self.group_by.is_empty() {
                steps.push(format!("sort groups on {}", keys.join(", ")));
            } else {
                steps.push(format!("merge sorted streams on {}", keys.join(", ")));
            }
        } else {
            steps.push("concatenate".into());
        }
        if self.offset > 0 {
            steps.push(format!("skip {}", self.offset));
        }
        if let Some(l) = self.limit {
            steps.push(format!("limit {l}"));
        }
        if self.hidden > 0 {
            steps.push(format!("drop {} hidden column(s)", self.hidden));
        }
        write!(f, "{}", steps.join("; "))
    }
}

impl fmt::Display for Merge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Merge::Forward => write!(f, "forward the shard's answer"),
            Merge::SumCounts => write!(f, "add up affected rows"),
            Merge::Broadcast => write!(f, "every copy answers alike: return one answer"),
            Merge::Rows(m) => write!(f, "{m}"),
            Merge::InsertReturning => write!(f, "return inserted rows in VALUES order"),
            Merge::Explain => write!(f, "each shard's plan, its lines prefixed with the shard's name"),
        }
    }
}
