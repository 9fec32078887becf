//! HAVING over merged groups: each condition compares one output column (an
//! aggregate or a group key, already combined across shards) with a literal
//! read as that column's type, under SQL's three-valued logic.

use std::cmp::Ordering;

use crate::route::plan::{CompareOp, Having, HavingLiteral};
use crate::sharding::key::{date_to_days, datetime_to_micros, parse_timestamp};

use super::column::ColumnKind;
use super::decimal::Decimal;
use super::error::MergeError;
use super::value::Value;

/// A HAVING condition with columns resolved and literals typed.
#[derive(Debug, Clone)]
pub enum Resolved {
    And(Vec<Resolved>),
    Or(Vec<Resolved>),
    Not(Box<Resolved>),
    Compare { column: usize, op: CompareOp, value: Value, kind: ColumnKind },
    IsNull { column: usize, negated: bool },
}

fn literal_value(lit: &HavingLiteral, kind: ColumnKind) -> Result<Value, MergeError> {
    let bad = || MergeError::Unsupported(format!("HAVING compares a {} column with {lit:?}", kind.name()));
    Ok(match (kind, lit) {
        (
            ColumnKind::Int | ColumnKind::Numeric | ColumnKind::Float,
            HavingLiteral::Number(n) | HavingLiteral::Text(n),
        ) => Value::Numeric(Decimal::parse(n.trim()).ok_or_else(bad)?),
        (ColumnKind::Text(_), HavingLiteral::Text(t)) => Value::Text(t.clone()),
        (ColumnKind::Date, HavingLiteral::Text(t)) => {
            let p = parse_timestamp(t).filter(|p| p.time == chrono::NaiveTime::MIN).ok_or_else(bad)?;
            Value::Date(date_to_days(p.date))
        }
        (ColumnKind::Timestamp, HavingLiteral::Text(t)) => {
            let p = parse_timestamp(t).ok_or_else(bad)?;
            Value::Timestamp(datetime_to_micros(p.date.and_time(p.time)))
        }
        (ColumnKind::Bool, HavingLiteral::Text(t)) => match t.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" => Value::Bool(true),
            "f" | "false" | "no" | "off" | "0" => Value::Bool(false),
            _ => return Err(bad()),
        },
        // Other types (and numbers compared with text) are refused rather
        // than compared by a rule the database would not use.
        _ => return Err(bad()),
    })
}

/// Three-valued truth.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

impl Resolved {
    pub fn new(h: &Having, kinds: &[ColumnKind], width: usize) -> Result<Resolved, MergeError> {
        let col = |c: crate::route::plan::ColumnRef| {
            c.resolve(width).ok_or(MergeError::BadColumn { column: c.to_string(), width })
        };
        Ok(match h {
            Having::And(v) => {
                Resolved::And(v.iter().map(|h| Resolved::new(h, kinds, width)).collect::<Result<_, _>>()?)
            }
            Having::Or(v) => Resolved::Or(v.iter().map(|h| Resolved::new(h, kinds, width)).collect::<Result<_, _>>()?),
            Having::Not(h) => Resolved::Not(Box::new(Resolved::new(h, kinds, width)?)),
            Having::IsNull { column, negated } => Resolved::IsNull { column: col(*column)?, negated: *negated },
            Having::Compare { column, op, literal } => {
                let c = col(*column)?;
                let kind = kinds[c];
                Resolved::Compare { column: c, op: *op, value: literal_value(literal, kind)?, kind }
            }
        })
    }

    /// Marks the columns the condition reads.
    pub fn mark_needed(&self, needed: &mut [bool]) {
        match self {
            Resolved::And(v) | Resolved::Or(v) => v.iter().for_each(|h| h.mark_needed(needed)),
            Resolved::Not(h) => h.mark_needed(needed),
            Resolved::Compare { column, .. } | Resolved::IsNull { column, .. } => {
                if let Some(n) = needed.get_mut(*column) {
                    *n = true;
                }
            }
        }
    }

    fn eval(&self, values: &[Value]) -> Truth {
        match self {
            Resolved::And(v) => {
                let mut out = Truth::True;
                for h in v {
                    match h.eval(values) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => out = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                out
            }
            Resolved::Or(v) => {
                let mut out = Truth::False;
                for h in v {
                    match h.eval(values) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => out = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                out
            }
            Resolved::Not(h) => match h.eval(values) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Unknown => Truth::Unknown,
            },
            Resolved::IsNull { column, negated } => {
                let null = matches!(values.get(*column), None | Some(Value::Null));
                if null != *negated { Truth::True } else { Truth::False }
            }
            Resolved::Compare { column, op, value, kind } => {
                let v = match values.get(*column) {
                    None | Some(Value::Null) => return Truth::Unknown,
                    Some(v) => v,
                };
                let ord = v.compare(value, kind.collation());
                let holds = match op {
                    CompareOp::Eq => ord == Ordering::Equal,
                    CompareOp::NotEq => ord != Ordering::Equal,
                    CompareOp::Lt => ord == Ordering::Less,
                    CompareOp::LtEq => ord != Ordering::Greater,
                    CompareOp::Gt => ord == Ordering::Greater,
                    CompareOp::GtEq => ord != Ordering::Less,
                };
                if holds { Truth::True } else { Truth::False }
            }
        }
    }

    /// Whether a merged group stays: only where the condition is true.
    pub fn keeps(&self, values: &[Value]) -> bool {
        self.eval(values) == Truth::True
    }
}
