//! Printing rewritten statements, and keeping parameters right through it.
//!
//! Every statement a shard gets that differs from the client's text is
//! printed from the rewritten AST. Placeholders carry their original
//! position through rewrites (MySQL's `?` are renamed `?1`, `?2`, … when the
//! statement is prepared), and [`render`] numbers them for the shard and
//! says which client parameters the shard's statement takes.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, Value, ValueWithSpan, VisitMut, VisitorMut};

use crate::backend::BackendKind;

use super::analyze::ParamNumbering;

/// Renames MySQL's positional `?` to `?1`, `?2`, … in textual order; returns
/// how many there were.
pub fn number_positional(stmt: &mut Statement) -> usize {
    struct Numberer(usize);
    impl VisitorMut for Numberer {
        type Break = ();
        fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
            if let Value::Placeholder(p) = &mut v.value
                && p == "?"
            {
                self.0 += 1;
                *p = format!("?{}", self.0);
            }
            ControlFlow::Continue(())
        }
    }
    let mut n = Numberer(0);
    let _ = stmt.visit(&mut n);
    n.0
}

/// The highest `$n` of a PostgreSQL statement.
pub fn count_numbered(stmt: &mut Statement) -> usize {
    struct Max(usize);
    impl VisitorMut for Max {
        type Break = ();
        fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
            if let Value::Placeholder(p) = &v.value
                && let Some(i) = ParamNumbering.index(p)
            {
                self.0 = self.0.max(i + 1);
            }
            ControlFlow::Continue(())
        }
    }
    let mut m = Max(0);
    let _ = stmt.visit(&mut m);
    m.0
}

/// Prints a statement for a shard. Returns the text and, when the shard's
/// statement does not take the client's parameters one to one, the client
/// parameter indexes it takes, in order.
pub fn render(stmt: &Statement, backend: BackendKind, client_params: usize) -> (String, Option<Vec<usize>>) {
    let mut stmt = stmt.clone();
    // Which parameters remain, in visiting (= textual) order.
    struct Collect(Vec<usize>);
    impl VisitorMut for Collect {
        type Break = ();
        fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
            if let Value::Placeholder(p) = &v.value
                && let Some(i) = ParamNumbering.index(p)
            {
                self.0.push(i);
            }
            ControlFlow::Continue(())
        }
    }
    let mut used = Collect(Vec::new());
    let _ = stmt.visit(&mut used);
    let used = used.0;
    match backend {
        BackendKind::Mysql => {
            struct Unnumber;
            impl VisitorMut for Unnumber {
                type Break = ();
                fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
                    if let Value::Placeholder(p) = &mut v.value
                        && p.starts_with('?')
                    {
                        *p = "?".to_string();
                    }
                    ControlFlow::Continue(())
                }
            }
            let _ = stmt.visit(&mut Unnumber);
            let identity = used.len() == client_params && used.iter().enumerate().all(|(k, &i)| k == i);
            (stmt.to_string(), if identity { None } else { Some(used) })
        }
        BackendKind::Postgres => {
            let mut distinct = used.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let identity = distinct.len() == client_params && distinct.iter().enumerate().all(|(k, &i)| k == i);
            if identity {
                return (stmt.to_string(), None);
            }
            struct Renumber<'a>(&'a [usize]);
            impl VisitorMut for Renumber<'_> {
                type Break = ();
                fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
                    if let Value::Placeholder(p) = &mut v.value
                        && let Some(i) = ParamNumbering.index(p)
                        && let Ok(pos) = self.0.binary_search(&i)
                    {
                        *p = format!("${}", pos + 1);
                    }
                    ControlFlow::Continue(())
                }
            }
            let _ = stmt.visit(&mut Renumber(&distinct));
            (stmt.to_string(), Some(distinct))
        }
    }
}

/// A number literal.
pub fn number(n: impl ToString) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}
