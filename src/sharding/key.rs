//! Key types and the canonical form of a key value.
//!
//! A sharding key must land on the same shard however a statement spells it:
//! `id = 42`, `id = '42'` and `id = 42.0` all compare equal to the bigint 42 in
//! PostgreSQL, so all three must hash the same. Canonicalisation therefore
//! follows the way the database compares the column, and where shardgate
//! cannot be sure how the database would read a spelling it says so
//! ([`Canonical`] or an error) instead of guessing: a read then goes to every
//! shard the keyspace has (always correct), a write is refused.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;

use crate::backend::BackendKind;

/// The type of a sharding key column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// smallint / integer / bigint (any width up to 64 bits).
    Integer,
    /// text / varchar / char.
    Text,
    Uuid,
    Date,
    /// timestamp without time zone (MySQL DATETIME): an offset in a literal is ignored.
    Timestamp,
    /// timestamp with time zone (MySQL TIMESTAMP): normalised to UTC.
    Timestamptz,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Integer => "integer",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
            KeyType::Date => "date",
            KeyType::Timestamp => "timestamp",
            KeyType::Timestamptz => "timestamptz",
        }
    }

    /// Whether values of this type lie on a time line (usable by `time_range`).
    pub fn is_temporal(self) -> bool {
        matches!(self, KeyType::Date | KeyType::Timestamp | KeyType::Timestamptz)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How text keys compare on the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextCollation {
    /// Equal only when the bytes are equal: PostgreSQL's deterministic
    /// collations (ICU and libc alike compare equal strings byte-wise).
    Exact,
    /// MySQL `*_bin` PAD SPACE collations: trailing spaces do not count.
    PadSpace,
    /// MySQL case-insensitive PAD SPACE collations such as
    /// `utf8mb4_general_ci`: ASCII letters are folded and trailing spaces do not
    /// count. Such collations also equate many non-ASCII letters (`é` = `E`),
    /// which shardgate does not model: non-ASCII text keys are refused.
    CaseInsensitive,
}

impl TextCollation {
    /// What a text key compares as when the rule file does not say.
    pub fn default_for(backend: BackendKind) -> Self {
        match backend {
            BackendKind::Postgres => TextCollation::Exact,
            BackendKind::Mysql => TextCollation::CaseInsensitive,
        }
    }
}

/// A key value in canonical form: two values are equal here exactly when the
/// database would find them equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    Int(i64),
    Text(String),
    Uuid([u8; 16]),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 (UTC for timestamptz).
    Timestamp(i64),
}

impl KeyValue {
    /// The bytes the keyspace hash is computed over (documented in the
    /// README; changing them moves data).
    pub fn hash_bytes(&self, out: &mut Vec<u8>) {
        match self {
            KeyValue::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
            KeyValue::Text(s) => out.extend_from_slice(s.as_bytes()),
            KeyValue::Uuid(b) => out.extend_from_slice(b),
            KeyValue::Date(d) => out.extend_from_slice(&d.to_be_bytes()),
            KeyValue::Timestamp(t) => out.extend_from_slice(&t.to_be_bytes()),
        }
    }

    /// The position of a temporal value on the time line, in microseconds.
    pub fn time_point(&self) -> Option<i64> {
        match self {
            KeyValue::Date(d) => Some(i64::from(*d) * MICROS_PER_DAY),
            KeyValue::Timestamp(t) => Some(*t),
            _ => None,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            KeyValue::Uuid(b) => write!(f, "'{}'", uuid::Uuid::from_bytes(*b)),
            KeyValue::Date(d) => match days_to_date(*d) {
                Some(date) => write!(f, "'{date}'"),
                None => write!(f, "day {d}"),
            },
            KeyValue::Timestamp(t) => match micros_to_datetime(*t) {
                Some(dt) => write!(f, "'{}'", dt.format("%Y-%m-%d %H:%M:%S%.f")),
                None => write!(f, "{t}µs"),
            },
        }
    }
}

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A literal as it appears in a statement or arrives as a bound parameter,
/// before shardgate knows the type it will be compared as.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Literal<'a> {
    Null,
    /// A numeric literal as written (`42`, `-7`, `42.0`, `1e3`).
    Number(&'a str),
    /// A quoted string, or a parameter sent in text format.
    String(&'a str),
    /// A parameter already decoded to an integer (binary format).
    Int(i64),
    Bool(bool),
    /// A value shardgate cannot read (a binary parameter of a type it does
    /// not decode): never placed by guess.
    Opaque,
}

/// The outcome of reading a literal as a key value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canonical {
    Value(KeyValue),
    /// `NULL`: equal to nothing.
    Null,
    /// A value no key of this type can equal (`id = 1.5`).
    NoMatch,
}

/// Why a literal could not be read as a key value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{literal} cannot be read as a {key_type} sharding key: {reason}")]
pub struct KeyError {
    pub literal: String,
    pub key_type: KeyType,
    pub reason: &'static str,
}

/// What canonicalisation needs to know about the session and the column.
#[derive(Clone, Copy, Debug)]
pub struct KeyContext {
    pub backend: BackendKind,
    pub collation: TextCollation,
    /// The session's time zone as a fixed UTC offset in seconds, when it is
    /// one (`UTC`, `+02:00`); `None` when it is a named zone with daylight
    /// saving rules, in which case a timestamptz literal without an explicit
    /// offset cannot be placed.
    pub utc_offset: Option<i32>,
}

impl KeyContext {
    pub fn new(backend: BackendKind, collation: TextCollation) -> Self {
        KeyContext { backend, collation, utc_offset: Some(0) }
    }
}

/// Reads `lit` as a value of `ty`, as the backend would compare it.
pub fn canonicalize(ty: KeyType, lit: Literal<'_>, cx: &KeyContext) -> Result<Canonical, KeyError> {
    let err = |reason: &'static str| KeyError { literal: describe(lit), key_type: ty, reason };
    if lit == Literal::Null {
        return Ok(Canonical::Null);
    }
    match ty {
        KeyType::Integer => match lit {
            Literal::Int(v) => Ok(Canonical::Value(KeyValue::Int(v))),
            Literal::Number(s) => number_to_int(s).ok_or_else(|| err("not a number")),
            Literal::String(s) => match cx.backend {
                // PostgreSQL reads an untyped string as bigint input: optional
                // surrounding blanks, a sign and decimal digits, nothing else.
                BackendKind::Postgres => {
                    parse_pg_int(s).map(|v| Canonical::Value(KeyValue::Int(v))).ok_or_else(|| err("not an integer"))
                }
                // MySQL compares a string with an integer as numbers; accept
                // only spellings whose numeric value is certain.
                BackendKind::Mysql => number_to_int(s.trim()).ok_or_else(|| err("not a plain number")),
            },
            Literal::Bool(_) => Err(err("a boolean is not an integer")),
            Literal::Opaque => Err(err("a binary value of unknown type")),
            Literal::Null => Ok(Canonical::Null),
        },
        KeyType::Text => match lit {
            Literal::String(s) => fold_text(s, cx.collation)
                .map(|t| Canonical::Value(KeyValue::Text(t)))
                .ok_or_else(|| err("non-ASCII text under a case-insensitive collation")),
            // A number compared with a text column: PostgreSQL refuses it,
            // MySQL compares numerically; neither names one key.
            _ => Err(err("only string literals name a text key")),
        },
        KeyType::Uuid => match lit {
            Literal::String(s) => uuid::Uuid::parse_str(s.trim())
                .map(|u| Canonical::Value(KeyValue::Uuid(*u.as_bytes())))
                .map_err(|_| err("not a UUID")),
            _ => Err(err("only string literals name a uuid key")),
        },
        KeyType::Date => match lit {
            Literal::String(s) => {
                let t = parse_timestamp(s).ok_or_else(|| err("not a YYYY-MM-DD date"))?;
                if t.time != NaiveTime::MIN || t.offset_seconds.is_some() {
                    // PostgreSQL would truncate a time part when casting to a
                    // date, but compare a date column with a timestamp literal
                    // as timestamps; refuse rather than guess which.
                    return Err(err("a date key takes a date without a time"));
                }
                Ok(Canonical::Value(KeyValue::Date(date_to_days(t.date))))
            }
            _ => Err(err("only string literals name a date key")),
        },
        KeyType::Timestamp | KeyType::Timestamptz => match lit {
            Literal::String(s) => {
                let t =
                    parse_timestamp(s).ok_or_else(|| err("not a YYYY-MM-DD[ HH:MM:SS[.ffffff]][offset] timestamp"))?;
                let local = datetime_to_micros(t.date.and_time(t.time));
                let micros = if ty == KeyType::Timestamp {
                    // timestamp without time zone ignores an offset in the literal.
                    local
                } else {
                    let offset = match t.offset_seconds {
                        Some(o) => o,
                        None => cx.utc_offset.ok_or_else(|| {
                            err("no UTC offset in the literal and the session time zone is not a fixed offset")
                        })?,
                    };
                    local - i64::from(offset) * 1_000_000
                };
                Ok(Canonical::Value(KeyValue::Timestamp(micros)))
            }
            _ => Err(err("only string literals name a timestamp key")),
        },
    }
}

fn describe(lit: Literal<'_>) -> String {
    match lit {
        Literal::Null => "NULL".into(),
        Literal::Number(s) => s.to_string(),
        Literal::String(s) => format!("'{s}'"),
        Literal::Int(v) => v.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Opaque => "a binary parameter".into(),
    }
}

/// A numeric literal compared with an integer column: `42`, `42.0`, `4.2e1`
/// name 42; `42.5` names no integer at all.
fn number_to_int(s: &str) -> Option<Canonical> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(Canonical::Value(KeyValue::Int(v)));
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit()) || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Shift the decimal point by the exponent, exactly, on the digit string.
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut point = int_part.len() as i64 + i64::from(exp);
    if point < 0 {
        digits.insert_str(0, &"0".repeat((-point) as usize));
        point = 0;
    }
    let point = point as usize;
    if point > digits.len() {
        if point > 40 {
            return Some(Canonical::NoMatch);
        }
        digits.push_str(&"0".repeat(point - digits.len()));
    }
    let (whole, frac) = digits.split_at(point);
    if frac.bytes().any(|b| b != b'0') {
        return Some(Canonical::NoMatch);
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let signed = if neg { format!("-{whole}") } else { whole.to_string() };
    match signed.parse::<i64>() {
        Ok(v) => Some(Canonical::Value(KeyValue::Int(v))),
        // Beyond 64 bits: no bigint equals it.
        Err(_) => Some(Canonical::NoMatch),
    }
}

fn parse_pg_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.strip_prefix('+').unwrap_or(t).parse().ok()
}

/// Folds text the way the collation compares it; `None` when the collation's
/// rules for this text are not modelled.
pub fn fold_text(s: &str, collation: TextCollation) -> Option<String> {
    match collation {
        TextCollation::Exact => Some(s.to_string()),
        TextCollation::PadSpace => Some(s.trim_end_matches(' ').to_string()),
        TextCollation::CaseInsensitive => {
            if !s.is_ascii() {
                return None;
            }
            Some(s.trim_end_matches(' ').to_ascii_uppercase())
        }
    }
}

/// A parsed date/time literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedTimestamp {
    pub date: NaiveDate,
    pub time: NaiveTime,
    /// An explicit UTC offset in the literal, in seconds east of UTC.
    pub offset_seconds: Option<i32>,
}

/// Parses the ISO 8601 spellings both databases accept:
/// `YYYY-MM-DD`, then optionally ` ` or `T` and `HH:MM[:SS[.ffffff]]`, then
/// optionally `Z`, `UTC` or `±HH[:MM]` / `±HHMM`. Anything else (month
/// names, `infinity`, BC years, more than microsecond precision) is `None`.
pub fn parse_timestamp(s: &str) -> Option<ParsedTimestamp> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i32 = digits(&s[0..4])?;
    let month: u32 = digits(&s[5..7])?;
    let day: u32 = digits(&s[8..10])?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let mut rest = &s[10..];
    let mut time = NaiveTime::MIN;
    if let Some(r) = rest.strip_prefix([' ', 'T', 't']) {
        let r = r.trim_start();
        let rb = r.as_bytes();
        if rb.len() < 5 || rb[2] != b':' {
            return None;
        }
        let h: u32 = digits(&r[0..2])?;
        let m: u32 = digits(&r[3..5])?;
        let mut sec = 0u32;
        let mut micros = 0u32;
        let mut tail = &r[5..];
        if let Some(t) = tail.strip_prefix(':') {
            if t.len() < 2 {
                return None;
            }
            sec = digits(&t[0..2])?;
            tail = &t[2..];
            if let Some(f) = tail.strip_prefix('.') {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 || n > 6 {
                    return None;
                }
                let frac: u32 = digits(&f[..n])?;
                micros = frac * 10u32.pow(6 - n as u32);
                tail = &f[n..];
            }
        }
        time = NaiveTime::from_hms_micro_opt(h, m, sec, micros)?;
        rest = tail;
    }
    let rest = rest.trim_start();
    let offset_seconds = if rest.is_empty() {
        None
    } else if rest.eq_ignore_ascii_case("z") || rest.eq_ignore_ascii_case("utc") {
        Some(0)
    } else {
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let o = &rest[1..];
        let (hh, mm) = match o.len() {
            2 => (digits::<i32>(o)?, 0),
            4 => (digits::<i32>(&o[0..2])?, digits::<i32>(&o[2..4])?),
            5 if o.as_bytes()[2] == b':' => (digits::<i32>(&o[0..2])?, digits::<i32>(&o[3..5])?),
            _ => return None,
        };
        if hh > 15 || mm > 59 {
            return None;
        }
        Some(sign * (hh * 3600 + mm * 60))
    };
    Some(ParsedTimestamp { date, time, offset_seconds })
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN)
}

pub fn date_to_days(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    epoch().checked_add_signed(chrono::Duration::days(i64::from(days)))
}

pub fn datetime_to_micros(dt: NaiveDateTime) -> i64 {
    let delta = dt - epoch().and_time(NaiveTime::MIN);
    delta.num_microseconds().unwrap_or(if delta < chrono::Duration::zero() { i64::MIN } else { i64::MAX })
}

pub fn micros_to_datetime(micros: i64) -> Option<NaiveDateTime> {
    epoch().and_time(NaiveTime::MIN).checked_add_signed(chrono::Duration::microseconds(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg() -> KeyContext {
        KeyContext::new(BackendKind::Postgres, TextCollation::Exact)
    }
    fn my() -> KeyContext {
        KeyContext::new(BackendKind::Mysql, TextCollation::CaseInsensitive)
    }
    fn int(v: i64) -> Canonical {
        Canonical::Value(KeyValue::Int(v))
    }

    #[test]
    fn integer_spellings_agree() {
        for lit in [
            Literal::Number("42"),
            Literal::Number("42.0"),
            Literal::Number("4.2e1"),
            Literal::Number("420e-1"),
            Literal::String("42"),
            Literal::String(" 42 "),
            Literal::String("+42"),
            Literal::Int(42),
        ] {
            assert_eq!(canonicalize(KeyType::Integer, lit, &pg()).unwrap(), int(42), "{lit:?}");
        }
        assert_eq!(canonicalize(KeyType::Integer, Literal::Number("-7"), &pg()).unwrap(), int(-7));
        assert_eq!(canonicalize(KeyType::Integer, Literal::Number("42.5"), &pg()).unwrap(), Canonical::NoMatch);
        assert_eq!(
            canonicalize(KeyType::Integer, Literal::Number("99999999999999999999"), &pg()).unwrap(),
            Canonical::NoMatch
        );
        assert!(canonicalize(KeyType::Integer, Literal::String("42.0"), &pg()).is_err());
        assert!(canonicalize(KeyType::Integer, Literal::String("4x"), &pg()).is_err());
        assert_eq!(canonicalize(KeyType::Integer, Literal::String("42.0"), &my()).unwrap(), int(42));
        assert_eq!(canonicalize(KeyType::Integer, Literal::Null, &pg()).unwrap(), Canonical::Null);
    }

    #[test]
    fn text_follows_the_collation() {
        let v = |s: &str| Canonical::Value(KeyValue::Text(s.into()));
        assert_eq!(canonicalize(KeyType::Text, Literal::String("Ab "), &pg()).unwrap(), v("Ab "));
        assert_eq!(canonicalize(KeyType::Text, Literal::String("Ab  "), &my()).unwrap(), v("AB"));
        assert_eq!(canonicalize(KeyType::Text, Literal::String("aB"), &my()).unwrap(), v("AB"));
        assert!(canonicalize(KeyType::Text, Literal::String("café"), &my()).is_err());
        assert!(canonicalize(KeyType::Text, Literal::Number("1"), &pg()).is_err());
    }

    #[test]
    fn timestamps_and_offsets() {
        let ts = |s: &str, ty| canonicalize(ty, Literal::String(s), &pg()).unwrap();
        let base = ts("2025-03-15 12:00:00", KeyType::Timestamp);
        assert_eq!(ts("2025-03-15T12:00:00", KeyType::Timestamp), base);
        // timestamp ignores the offset, like PostgreSQL does.
        assert_eq!(ts("2025-03-15 12:00:00+02", KeyType::Timestamp), base);
        // timestamptz applies it.
        assert_eq!(
            ts("2025-03-15 14:00:00+02:00", KeyType::Timestamptz),
            ts("2025-03-15 12:00:00Z", KeyType::Timestamptz)
        );
        assert_eq!(ts("2025-03-15", KeyType::Timestamp), ts("2025-03-15 00:00", KeyType::Timestamp));
        assert_eq!(
            ts("2025-03-15 12:00:00.5", KeyType::Timestamp),
            Canonical::Value(KeyValue::Timestamp(match base {
                Canonical::Value(KeyValue::Timestamp(t)) => t + 500_000,
                _ => unreachable!(),
            }))
        );
        let named_zone = KeyContext { utc_offset: None, ..pg() };
        assert!(canonicalize(KeyType::Timestamptz, Literal::String("2025-03-15 12:00"), &named_zone).is_err());
        assert!(canonicalize(KeyType::Timestamp, Literal::String("infinity"), &pg()).is_err());
        assert!(canonicalize(KeyType::Timestamp, Literal::String("2025-02-30"), &pg()).is_err());
    }

    #[test]
    fn dates_and_uuids() {
        assert_eq!(
            canonicalize(KeyType::Date, Literal::String("1970-01-02"), &pg()).unwrap(),
            Canonical::Value(KeyValue::Date(1))
        );
        assert!(canonicalize(KeyType::Date, Literal::String("1970-01-02 10:00"), &pg()).is_err());
        let a = canonicalize(KeyType::Uuid, Literal::String("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), &pg()).unwrap();
        let b = canonicalize(KeyType::Uuid, Literal::String("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"), &pg()).unwrap();
        assert_eq!(a, b);
    }
}
