//! Decoded cell values, dialect-neutral.

use std::cmp::Ordering;

use super::collation::Collation;
pub use super::decimal::Decimal;
use super::error::MergeError;

/// One decoded cell. Dates and times are plain counts so that every dialect
/// maps onto them without loss:
/// - `Date`: days since 1970-01-01 (proleptic Gregorian); `i32::MIN` /
///   `i32::MAX` stand for `-infinity` / `infinity` (PostgreSQL) and
///   `i32::MIN` also for MySQL's zero date `0000-00-00` (which sorts first).
/// - `Time`: microseconds (MySQL TIME may be negative or past 24 h).
/// - `Timestamp`, `TimestampTz`: microseconds since 1970-01-01 00:00:00
///   (UTC for `TimestampTz`); `i64::MIN` / `i64::MAX` as for dates.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Numeric(Decimal),
    Float(f64),
    Text(String),
    Bool(bool),
    Date(i32),
    Time(i64),
    Timestamp(i64),
    TimestampTz(i64),
    Uuid([u8; 16]),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Numeric(_) => "numeric",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bool(_) => "boolean",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
            Value::Uuid(_) => "uuid",
            Value::Bytes(_) => "bytes",
        }
    }

    /// Orders two non-null values of one column. Text compares by the
    /// collation; integers, numerics and floats compare by value across
    /// each other; floats order NaN above everything (as PostgreSQL) and
    /// -0 equal to 0. NULL is not handled here (the sort key places it);
    /// if asked, NULL sorts first.
    pub fn compare(&self, other: &Value, collation: Collation) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Int(a), Int(b)) => a.cmp(b),
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Int(a), Numeric(b)) => Decimal::from_i64(*a).cmp(b),
            (Numeric(a), Int(b)) => a.cmp(&Decimal::from_i64(*b)),
            (Float(a), Float(b)) => float_cmp(*a, *b),
            (Float(a), Int(b)) => float_cmp(*a, *b as f64),
            (Int(a), Float(b)) => float_cmp(*a as f64, *b),
            (Float(a), Numeric(b)) => float_cmp(*a, b.to_f64()),
            (Numeric(a), Float(b)) => float_cmp(a.to_f64(), *b),
            (Text(a), Text(b)) => collation.compare(a, b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) | (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            // Mixed kinds do not occur within one column; order by kind so
            // that the order is at least total.
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Int(_) | Value::Numeric(_) | Value::Float(_) => 1,
            Value::Text(_) => 2,
            Value::Bool(_) => 3,
            Value::Date(_) => 4,
            Value::Time(_) => 5,
            Value::Timestamp(_) => 6,
            Value::TimestampTz(_) => 7,
            Value::Uuid(_) => 8,
            Value::Bytes(_) => 9,
        }
    }

    /// Appends bytes equal for two values exactly when they are equal for
    /// GROUP BY and DISTINCT (NULLs are equal to each other there; 1.5 and
    /// 1.50 are one group; text by the collation).
    pub fn eq_key(&self, collation: Collation, out: &mut Vec<u8>) {
        out.push(self.rank());
        match self {
            Value::Null => {}
            Value::Int(i) => Decimal::from_i64(*i).eq_key(out),
            Value::Numeric(d) => d.eq_key(out),
            Value::Float(f) => {
                let f = if *f == 0.0 { 0.0 } else { *f };
                let bits = if f.is_nan() { u64::MAX } else { f.to_bits() };
                out.push(b'f');
                out.extend_from_slice(&bits.to_be_bytes());
            }
            Value::Text(s) => {
                let start = out.len();
                collation.eq_key(s, out);
                // Length-prefix-free framing: escape 0 bytes, end with 0 0.
                escape_from(out, start);
            }
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Date(d) => out.extend_from_slice(&d.to_be_bytes()),
            Value::Time(t) | Value::Timestamp(t) | Value::TimestampTz(t) => out.extend_from_slice(&t.to_be_bytes()),
            Value::Uuid(u) => out.extend_from_slice(u),
            Value::Bytes(b) => {
                let start = out.len();
                out.extend_from_slice(b);
                escape_from(out, start);
            }
        }
    }

    /// The sum of two values of one column, exactly: integers stay
    /// integers (checked), numerics are exact decimals, an integer meeting
    /// a numeric becomes numeric, floats add as floats. NULL is no value.
    pub fn sum(&self, other: &Value) -> Result<Value, MergeError> {
        use Value::*;
        Ok(match (self, other) {
            (Null, x) | (x, Null) => x.clone(),
            (Int(a), Int(b)) => Int(a.checked_add(*b).ok_or(MergeError::Overflow("bigint"))?),
            (Numeric(a), Numeric(b)) => Numeric(a.add(b)),
            (Int(a), Numeric(b)) | (Numeric(b), Int(a)) => Numeric(Decimal::from_i64(*a).add(b)),
            (Float(a), Float(b)) => Float(a + b),
            (Float(a), Int(b)) | (Int(b), Float(a)) => Float(a + *b as f64),
            (Float(a), Numeric(b)) | (Numeric(b), Float(a)) => Float(a + b.to_f64()),
            (a, _) => {
                return Err(MergeError::Unsupported(format!("a sum of {} values", a.kind_name())));
            }
        })
    }
}

/// Replaces 0 bytes after `start` by 0 1 and terminates with 0 0, so that
/// concatenated keys cannot run into each other.
fn escape_from(out: &mut Vec<u8>, start: usize) {
    if out[start..].contains(&0) {
        let tail: Vec<u8> = out.drain(start..).collect();
        for b in tail {
            out.push(b);
            if b == 0 {
                out.push(1);
            }
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Value {
        Value::Numeric(Decimal::parse(s).unwrap_or_else(|| panic!("{s}")))
    }

    #[test]
    fn cross_kind_numbers_compare_by_value() {
        let c = Collation::Binary;
        assert_eq!(Value::Int(2).compare(&n("1.99"), c), Ordering::Greater);
        assert_eq!(n("2.00").compare(&Value::Int(2), c), Ordering::Equal);
        assert_eq!(Value::Float(f64::NAN).compare(&Value::Float(1e300), c), Ordering::Greater);
        assert_eq!(Value::Float(-0.0).compare(&Value::Float(0.0), c), Ordering::Equal);
    }

    #[test]
    fn sums() {
        assert_eq!(Value::Int(2).sum(&Value::Null).ok(), Some(Value::Int(2)));
        assert_eq!(Value::Null.sum(&Value::Null).ok(), Some(Value::Null));
        assert!(matches!(Value::Int(i64::MAX).sum(&Value::Int(1)), Err(MergeError::Overflow(_))));
        assert_eq!(n("1.5").sum(&Value::Int(1)).ok(), Some(n("2.5")));
        assert!(Value::Text("a".into()).sum(&Value::Text("b".into())).is_err());
    }

    #[test]
    fn eq_keys() {
        let key = |v: &Value, c| {
            let mut o = Vec::new();
            v.eq_key(c, &mut o);
            o
        };
        assert_eq!(key(&n("1.50"), Collation::Binary), key(&n("1.5"), Collation::Binary));
        assert_eq!(key(&Value::Int(3), Collation::Binary), key(&n("3.0"), Collation::Binary));
        assert_ne!(key(&Value::Null, Collation::Binary), key(&Value::Int(0), Collation::Binary));
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(key(&t("Abc "), Collation::MysqlGeneralCi), key(&t("aBC"), Collation::MysqlGeneralCi));
        assert_ne!(key(&t("Abc"), Collation::Binary), key(&t("aBC"), Collation::Binary));
        // Framing: ("a\0", "b") and ("a", "\0b") differ.
        let mut k1 = key(&t("a\0"), Collation::Binary);
        k1.extend(key(&t("b"), Collation::Binary));
        let mut k2 = key(&t("a"), Collation::Binary);
        k2.extend(key(&t("\0b"), Collation::Binary));
        assert_ne!(k1, k2);
    }
}
