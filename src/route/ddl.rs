//! Schema changes: to every shard that holds the table, and never in a form
//! that would let the shards disagree about what is unique or how ids count.

use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CreateIndex, CreateTable, GeneratedAs, IndexColumn, ObjectName,
    ObjectType, Statement, TableConstraint,
};

use crate::backend::BackendKind;
use crate::rules::Rules;
use crate::sharding::ShardSet;

use super::analyze::{InstKind, Resolved, name_parts, resolve_table};
use super::error::RouteError;
use super::plan::Reason;

/// Where a DDL statement goes.
#[derive(Debug, Clone)]
pub struct DdlShape {
    pub shards: ShardSet,
    pub reason: Reason,
}

struct TableTarget {
    name: String,
    kind: InstKind,
}

fn target(rules: &Rules, name: &ObjectName) -> Result<Option<TableTarget>, RouteError> {
    let parts = name_parts(name, rules.backend);
    Ok(match resolve_table(rules, &parts)? {
        Resolved::Catalog => None,
        Resolved::Table(kind) => Some(TableTarget { name: parts.join("."), kind }),
    })
}

fn shards_of(rules: &Rules, t: &TableTarget) -> (ShardSet, Reason) {
    match t.kind {
        InstKind::Sharded { .. } | InstKind::Reference => {
            (rules.all_shards(), Reason::Schema { table: t.name.clone() })
        }
        InstKind::Pinned(s) => (ShardSet::single(s), Reason::Pinned { table: t.name.clone() }),
        InstKind::Default(s) => (ShardSet::single(s), Reason::DefaultShard { table: t.name.clone() }),
    }
}

fn ddl_err(detail: String) -> RouteError {
    RouteError::Ddl { detail }
}

fn index_has(cols: &[IndexColumn], key: &str, backend: BackendKind) -> bool {
    cols.iter().any(|c| match &c.column.expr {
        sqlparser::ast::Expr::Identifier(id) => super::analyze::norm_ident(id, backend) == key,
        _ => false,
    })
}

/// Refuses column definitions that cannot work on a sharded table.
fn check_column(table: &str, key: &str, col: &ColumnDef, backend: BackendKind) -> Result<(), RouteError> {
    let name = super::analyze::norm_ident(&col.name, backend);
    let ty = col.data_type.to_string().to_lowercase();
    if ["serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"].contains(&ty.as_str()) {
        return Err(ddl_err(format!(
            "{table}.{name} is {ty}: each shard would count on its own and hand out the same ids; \
             declare it bigint and list it as generated_id in the rule file"
        )));
    }
    for opt in &col.options {
        match &opt.option {
            ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_) if name != key => {
                return Err(ddl_err(format!(
                    "a unique constraint on {table}.{name} cannot be enforced across shards: it must include the sharding key {key}"
                )));
            }
            ColumnOption::Identity(_) => return Err(identity_err(table, &name)),
            ColumnOption::Generated {
                generated_as: GeneratedAs::Always | GeneratedAs::ByDefault,
                generation_expr: None,
                ..
            } => {
                return Err(identity_err(table, &name));
            }
            ColumnOption::DialectSpecific(tokens)
                if tokens.iter().any(|t| t.to_string().eq_ignore_ascii_case("auto_increment")) =>
            {
                return Err(identity_err(table, &name));
            }
            _ => {}
        }
    }
    Ok(())
}

fn identity_err(table: &str, column: &str) -> RouteError {
    ddl_err(format!(
        "{table}.{column} is an identity / auto-increment column: each shard would count on its own and hand out the same ids; \
         list it as generated_id in the rule file instead"
    ))
}

fn check_constraint(table: &str, key: &str, c: &TableConstraint, backend: BackendKind) -> Result<(), RouteError> {
    let cols = match c {
        TableConstraint::PrimaryKey(pk) => &pk.columns,
        TableConstraint::Unique(u) => &u.columns,
        _ => return Ok(()),
    };
    if !index_has(cols, key, backend) {
        return Err(ddl_err(format!(
            "a unique constraint or primary key on {table} cannot be enforced across shards unless it includes the sharding key {key}"
        )));
    }
    Ok(())
}

impl DdlShape {
    pub fn new(stmt: &Statement, rules: &Rules) -> Result<Option<DdlShape>, RouteError> {
        let backend = rules.backend;
        let one = |t: Option<TableTarget>| -> Option<DdlShape> {
            t.map(|t| {
                let (shards, reason) = shards_of(rules, &t);
                DdlShape { shards, reason }
            })
        };
        Ok(match stmt {
            Statement::CreateTable(CreateTable { name, columns, constraints, query, .. }) => {
                let t = target(rules, name)?;
                if let Some(t) = &t
                    && let InstKind::Sharded { key, .. } = &t.kind
                {
                    if query.is_some() {
                        return Err(ddl_err(format!(
                            "CREATE TABLE {} AS SELECT cannot place rows by key; create it, then INSERT",
                            t.name
                        )));
                    }
                    if !columns.iter().any(|c| super::analyze::norm_ident(&c.name, backend) == *key) {
                        return Err(ddl_err(format!(
                            "{} has no column {key}, its sharding key in the rule file",
                            t.name
                        )));
                    }
                    for c in columns {
                        check_column(&t.name, key, c, backend)?;
                    }
                    for c in constraints {
                        check_constraint(&t.name, key, c, backend)?;
                    }
                }
                if let Some(t) = &t
                    && query.is_some()
                    && matches!(t.kind, InstKind::Reference)
                {
                    return Err(ddl_err(format!(
                        "CREATE TABLE {} AS SELECT: create the reference table, then INSERT",
                        t.name
                    )));
                }
                one(t)
            }
            Statement::CreateIndex(CreateIndex { table_name, columns, unique, .. }) => {
                let t = target(rules, table_name)?;
                if let Some(t) = &t
                    && let InstKind::Sharded { key, .. } = &t.kind
                    && *unique
                    && !index_has(columns, key, backend)
                {
                    return Err(ddl_err(format!(
                        "a unique index on {} cannot be enforced across shards unless it includes the sharding key {key}",
                        t.name
                    )));
                }
                one(t)
            }
            Statement::AlterTable(at) => {
                let t = target(rules, &at.name)?;
                if let Some(t) = &t
                    && let InstKind::Sharded { key, .. } = &t.kind
                {
                    for op in &at.operations {
                        match op {
                            AlterTableOperation::AddConstraint { constraint, .. } => {
                                check_constraint(&t.name, key, constraint, backend)?
                            }
                            AlterTableOperation::AddColumn { column_def, .. } => {
                                check_column(&t.name, key, column_def, backend)?
                            }
                            AlterTableOperation::DropColumn { column_names, .. }
                                if column_names.iter().any(|c| super::analyze::norm_ident(c, backend) == *key) =>
                            {
                                return Err(ddl_err(format!("{} cannot drop its sharding key {key}", t.name)));
                            }
                            AlterTableOperation::RenameColumn { old_column_name, .. }
                                if super::analyze::norm_ident(old_column_name, backend) == *key =>
                            {
                                return Err(ddl_err(format!(
                                    "{} cannot rename its sharding key {key}; change the rule file first",
                                    t.name
                                )));
                            }
                            _ => {}
                        }
                    }
                }
                one(t)
            }
            Statement::Drop { object_type: ObjectType::Table, names, .. } => {
                let mut shards = ShardSet::empty();
                let mut reason = None;
                for n in names {
                    if let Some(t) = target(rules, n)? {
                        let (s, r) = shards_of(rules, &t);
                        shards = shards.union(&s);
                        reason.get_or_insert(r);
                    }
                }
                reason.map(|reason| DdlShape { shards, reason })
            }
            Statement::Truncate(tr) => {
                let mut shards = ShardSet::empty();
                let mut reason = None;
                for n in &tr.table_names {
                    if let Some(t) = target(rules, &n.name)? {
                        let (s, r) = shards_of(rules, &t);
                        shards = shards.union(&s);
                        reason.get_or_insert(r);
                    }
                }
                reason.map(|reason| DdlShape { shards, reason })
            }
            // Maintenance, and objects that are not tables but that every
            // shard needs alike.
            Statement::Vacuum(_)
            | Statement::Analyze(_)
            | Statement::Drop { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateExtension(_)
            | Statement::DropExtension(_)
            | Statement::CreateType { .. }
            | Statement::CreateFunction(_)
            | Statement::DropFunction(_)
            | Statement::CreateDomain(_)
            | Statement::Comment { .. } => {
                Some(DdlShape { shards: rules.all_shards(), reason: Reason::Schema { table: "every shard".into() } })
            }
            _ => None,
        })
    }
}
