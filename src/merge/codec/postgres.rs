//! PostgreSQL cells, text and binary format, by type OID.
//!
//! Text formats are the server's output with `DateStyle = ISO` and
//! `bytea_output = hex` (the proxy sets both on its shard sessions);
//! `extra_float_digits` ≥ 1 (the default since PostgreSQL 12) so floats are
//! shortest round-trip. Binary formats are those of the types' send/recv
//! functions: big-endian integers, dates as days and timestamps as
//! microseconds since 2000-01-01, numeric as base-10000 digits.

use super::{
    Frac, MICROS_PER_DAY, civil_from_days, days_from_civil, parse_hms, parse_ymd, write_float, write_hms, write_ymd,
};
use crate::merge::collation::Collation;
use crate::merge::column::{CellCodec, ColumnKind};
use crate::merge::decimal::{Decimal, mul_small};
use crate::merge::error::MergeError;
use crate::merge::value::Value;

/// Type OIDs the merge understands.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
}

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * MICROS_PER_DAY;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// The merge's view of a column of this type; text types compare by
/// `collation` (the shards' collation of that column).
pub fn kind_of(type_oid: u32, collation: Collation) -> ColumnKind {
    match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 => ColumnKind::Int,
        oid::NUMERIC => ColumnKind::Numeric,
        oid::FLOAT4 | oid::FLOAT8 => ColumnKind::Float,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => ColumnKind::Text(collation),
        oid::BOOL => ColumnKind::Bool,
        oid::DATE => ColumnKind::Date,
        oid::TIME => ColumnKind::Time,
        oid::TIMESTAMP => ColumnKind::Timestamp,
        oid::TIMESTAMPTZ => ColumnKind::TimestampTz,
        oid::UUID => ColumnKind::Uuid,
        oid::BYTEA => ColumnKind::Bytes,
        _ => ColumnKind::Other,
    }
}

/// The type OID the client gets for a column the merge retyped (AVG).
pub fn oid_of(kind: ColumnKind) -> Option<u32> {
    Some(match kind {
        ColumnKind::Int => oid::INT8,
        ColumnKind::Numeric => oid::NUMERIC,
        ColumnKind::Float => oid::FLOAT8,
        ColumnKind::Text(_) => oid::TEXT,
        ColumnKind::Bool => oid::BOOL,
        ColumnKind::Date => oid::DATE,
        ColumnKind::Time => oid::TIME,
        ColumnKind::Timestamp => oid::TIMESTAMP,
        ColumnKind::TimestampTz => oid::TIMESTAMPTZ,
        ColumnKind::Uuid => oid::UUID,
        ColumnKind::Bytes => oid::BYTEA,
        ColumnKind::Other => return None,
    })
}

/// One column as RowDescription describes it: type and format code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgColumn {
    pub type_oid: u32,
    pub binary: bool,
}

/// The codec of one PostgreSQL result.
#[derive(Clone, Debug)]
pub struct PgCodec {
    input: Vec<PgColumn>,
    output: Vec<PgColumn>,
    /// The client session's UTC offset for timestamptz text output. A
    /// fixed offset: merged timestamptz values are normally copied as the
    /// shard sent them, so this only matters for values the merge computes.
    utc_offset_secs: i32,
}

impl PgCodec {
    pub fn new(columns: Vec<PgColumn>) -> Self {
        PgCodec { output: columns.clone(), input: columns, utc_offset_secs: 0 }
    }

    pub fn with_utc_offset(mut self, secs: i32) -> Self {
        self.utc_offset_secs = secs;
        self
    }

    /// The client gets `column` as another type (AVG over an int column).
    pub fn retype(&mut self, column: usize, to: PgColumn) {
        if let Some(c) = self.output.get_mut(column) {
            *c = to;
        }
    }

    fn col(cols: &[PgColumn], column: usize) -> Result<PgColumn, MergeError> {
        cols.get(column).copied().ok_or(MergeError::BadColumn { column: format!("#{}", column + 1), width: cols.len() })
    }
}

impl CellCodec for PgCodec {
    fn decode(&self, column: usize, raw: &[u8]) -> Result<Value, MergeError> {
        let c = Self::col(&self.input, column)?;
        let r = if c.binary { decode_binary(c.type_oid, raw) } else { decode_text(c.type_oid, raw) };
        r.map_err(|detail| MergeError::Decode { column, kind: kind_of(c.type_oid, Collation::Binary).name(), detail })
    }

    fn encode(&self, column: usize, value: &Value, out: &mut Vec<u8>) -> Result<(), MergeError> {
        let c = Self::col(&self.output, column)?;
        let r = if c.binary {
            encode_binary(c.type_oid, value, out)
        } else {
            encode_text(c.type_oid, value, self.utc_offset_secs, out)
        };
        r.map_err(|detail| MergeError::Encode { column, detail })
    }
}

fn utf8(raw: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}"))
}

fn hex_val(b: u8) -> Result<u8, String> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(format!("`{}` is not a hex digit", b as char)),
    }
}

fn strip_bc(s: &str) -> (&str, bool) {
    match s.strip_suffix(" BC") {
        Some(r) => (r, true),
        None => (s, false),
    }
}

fn date_days(s: &str, bc: bool) -> Result<i64, String> {
    let (y, m, d) = parse_ymd(s)?;
    let y = if bc { 1 - y } else { y };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("`{s}` is not a date"));
    }
    Ok(days_from_civil(y, m, d))
}

fn timestamp_micros(s: &str, bc: bool) -> Result<i64, String> {
    let (date, time) = s.split_once(' ').ok_or_else(|| format!("`{s}` is not a timestamp"))?;
    Ok(date_days(date, bc)? * MICROS_PER_DAY + parse_hms(time)?)
}

/// `+HH[:MM[:SS]]` → seconds east of UTC.
fn parse_offset(s: &str) -> Result<i64, String> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(format!("`{s}` is not a UTC offset")),
    };
    let mut secs = 0i64;
    for (i, part) in rest.split(':').enumerate() {
        if i > 2 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{s}` is not a UTC offset"));
        }
        let v: i64 = part.parse().map_err(|_| format!("`{s}` is not a UTC offset"))?;
        secs += v * [3600, 60, 1][i];
    }
    Ok(sign * secs)
}

/// A cell in text format.
pub fn decode_text(type_oid: u32, raw: &[u8]) -> Result<Value, String> {
    let s = utf8(raw)?;
    Ok(match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 => Value::Int(s.parse().map_err(|_| format!("`{s}` is not an integer"))?),
        oid::NUMERIC => Value::Numeric(
            Decimal::parse(s).ok_or_else(|| format!("numeric `{s}` (NaN and infinities are not merged)"))?,
        ),
        oid::FLOAT4 | oid::FLOAT8 => Value::Float(match s {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => s.parse().map_err(|_| format!("`{s}` is not a float"))?,
        }),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => Value::Text(s.to_owned()),
        oid::BOOL => Value::Bool(match s {
            "t" | "true" => true,
            "f" | "false" => false,
            _ => return Err(format!("`{s}` is not a boolean")),
        }),
        oid::DATE => Value::Date(match s {
            "infinity" => i32::MAX,
            "-infinity" => i32::MIN,
            _ => {
                let (d, bc) = strip_bc(s);
                i32::try_from(date_days(d, bc)?).map_err(|_| format!("date `{s}` out of range"))?
            }
        }),
        oid::TIME => Value::Time(parse_hms(s)?),
        oid::TIMESTAMP => Value::Timestamp(match s {
            "infinity" => i64::MAX,
            "-infinity" => i64::MIN,
            _ => {
                let (t, bc) = strip_bc(s);
                timestamp_micros(t, bc)?
            }
        }),
        oid::TIMESTAMPTZ => Value::TimestampTz(match s {
            "infinity" => i64::MAX,
            "-infinity" => i64::MIN,
            _ => {
                let (t, bc) = strip_bc(s);
                // The offset starts at the last sign after the time.
                let time_start = t.find(' ').ok_or_else(|| format!("`{s}` is not a timestamp"))?;
                let at = t[time_start..]
                    .rfind(['+', '-'])
                    .map(|p| p + time_start)
                    .ok_or_else(|| format!("`{s}` has no UTC offset"))?;
                timestamp_micros(&t[..at], bc)? - parse_offset(&t[at..])? * 1_000_000
            }
        }),
        oid::UUID => {
            let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
            if hex.len() != 32 {
                return Err(format!("`{s}` is not a uuid"));
            }
            let mut u = [0u8; 16];
            for (i, pair) in hex.chunks(2).enumerate() {
                u[i] = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
            }
            Value::Uuid(u)
        }
        oid::BYTEA => Value::Bytes(decode_bytea_text(raw)?),
        _ => return Err(format!("type {type_oid} is not merged")),
    })
}

fn decode_bytea_text(raw: &[u8]) -> Result<Vec<u8>, String> {
    if let Some(hex) = raw.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return Err("odd number of hex digits".into());
        }
        return hex.chunks(2).map(|p| Ok(hex_val(p[0])? << 4 | hex_val(p[1])?)).collect();
    }
    // Escape format: `\\` and `\ooo`.
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            if raw.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else if let Some(o) = raw.get(i + 1..i + 4)
                && o.iter().all(|b| (b'0'..=b'7').contains(b))
            {
                out.push((o[0] - b'0') << 6 | (o[1] - b'0') << 3 | (o[2] - b'0'));
                i += 4;
            } else {
                return Err("bad escape in bytea".into());
            }
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into().map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

/// A cell in binary format.
pub fn decode_binary(type_oid: u32, raw: &[u8]) -> Result<Value, String> {
    Ok(match type_oid {
        oid::INT2 => Value::Int(i16::from_be_bytes(be(raw)?).into()),
        oid::INT4 => Value::Int(i32::from_be_bytes(be(raw)?).into()),
        oid::INT8 => Value::Int(i64::from_be_bytes(be(raw)?)),
        oid::NUMERIC => Value::Numeric(decode_numeric_binary(raw)?),
        oid::FLOAT4 => Value::Float(f32::from_be_bytes(be(raw)?).into()),
        oid::FLOAT8 => Value::Float(f64::from_be_bytes(be(raw)?)),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => Value::Text(utf8(raw)?.to_owned()),
        oid::BOOL => Value::Bool(be::<1>(raw)?[0] != 0),
        oid::DATE => {
            let d = i32::from_be_bytes(be(raw)?);
            Value::Date(match d {
                i32::MIN | i32::MAX => d,
                _ => d.checked_add(PG_EPOCH_DAYS).ok_or_else(|| "date out of range".to_string())?,
            })
        }
        oid::TIME => Value::Time(i64::from_be_bytes(be(raw)?)),
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let t = i64::from_be_bytes(be(raw)?);
            let t = match t {
                i64::MIN | i64::MAX => t,
                _ => t.checked_add(PG_EPOCH_MICROS).ok_or_else(|| "timestamp out of range".to_string())?,
            };
            if type_oid == oid::TIMESTAMP { Value::Timestamp(t) } else { Value::TimestampTz(t) }
        }
        oid::UUID => Value::Uuid(be(raw)?),
        oid::BYTEA => Value::Bytes(raw.to_vec()),
        _ => return Err(format!("type {type_oid} is not merged")),
    })
}

/// numeric_recv: ndigits, weight, sign, dscale (16 bits each, big-endian),
/// then ndigits base-10000 digits; value = Σ digit[i] × 10000^(weight − i).
pub fn decode_numeric_binary(raw: &[u8]) -> Result<Decimal, String> {
    if raw.len() < 8 {
        return Err("numeric shorter than its header".into());
    }
    let word = |i: usize| u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
    let ndigits = word(0) as i16;
    let weight = word(1) as i16;
    let sign = word(2);
    let dscale = word(3);
    if ndigits < 0 || raw.len() != 8 + 2 * ndigits as usize {
        return Err("numeric length does not match its digit count".into());
    }
    let neg = match sign {
        NUMERIC_POS => false,
        NUMERIC_NEG => true,
        _ => return Err("numeric NaN and infinities are not merged".into()),
    };
    let mut mag = Vec::new();
    for i in 0..ndigits as usize {
        let d = word(4 + i);
        if d >= 10_000 {
            return Err(format!("numeric digit {d} out of range"));
        }
        mul_small(&mut mag, 10_000, u32::from(d));
    }
    let exp10 = 4 * (i64::from(weight) - i64::from(ndigits) + 1);
    Ok(Decimal::from_parts(neg, mag, exp10, u32::from(dscale)))
}

/// numeric_send of an exact decimal.
pub fn encode_numeric_binary(d: &Decimal, out: &mut Vec<u8>) -> Result<(), String> {
    let mut text = Vec::new();
    d.write_text(&mut text);
    let neg = d.is_negative();
    let body = if neg { &text[1..] } else { &text[..] };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &body[..0]),
    };
    let int = {
        let nz = int.iter().position(|&b| b != b'0').unwrap_or(int.len());
        &int[nz..]
    };
    let ipad = (4 - int.len() % 4) % 4;
    let mut digits: Vec<u8> = std::iter::repeat_n(b'0', ipad).chain(int.iter().copied()).collect();
    let int_groups = digits.len() / 4;
    digits.extend_from_slice(frac);
    while digits.len() % 4 != 0 {
        digits.push(b'0');
    }
    let mut groups: Vec<u16> =
        digits.chunks(4).map(|c| c.iter().fold(0u16, |a, b| a * 10 + u16::from(b - b'0'))).collect();
    let mut weight = int_groups as i64 - 1;
    let lead = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..lead);
    weight -= lead as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let dscale = u16::try_from(d.scale()).map_err(|_| "numeric scale out of range".to_string())?;
    let ndigits = i16::try_from(groups.len()).map_err(|_| "numeric too long".to_string())?;
    let weight = i16::try_from(weight).map_err(|_| "numeric out of range".to_string())?;
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&(if neg { NUMERIC_NEG } else { NUMERIC_POS }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from_i64(*i)),
        Value::Numeric(d) => Some(d.clone()),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Numeric(d) => d.to_i64(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        Value::Numeric(d) => Some(d.to_f64()),
        _ => None,
    }
}

fn mismatch(type_oid: u32, v: &Value) -> String {
    format!("a {} value for a column of type {type_oid}", v.kind_name())
}

fn write_pg_date(days: i64, out: &mut Vec<u8>) {
    let (y, m, d) = civil_from_days(days);
    if y <= 0 {
        write_ymd(1 - y, m, d, out);
    } else {
        write_ymd(y, m, d, out);
    }
}

fn bc(days: i64) -> bool {
    civil_from_days(days).0 <= 0
}

fn write_pg_timestamp(us: i64, offset_secs: Option<i32>, out: &mut Vec<u8>) {
    let local = us + i64::from(offset_secs.unwrap_or(0)) * 1_000_000;
    let days = local.div_euclid(MICROS_PER_DAY);
    write_pg_date(days, out);
    out.push(b' ');
    write_hms(local.rem_euclid(MICROS_PER_DAY), Frac::Trim, out);
    if let Some(off) = offset_secs {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs();
        out.extend_from_slice(format!("{sign}{:02}", a / 3600).as_bytes());
        if a % 3600 != 0 {
            out.extend_from_slice(format!(":{:02}", a / 60 % 60).as_bytes());
            if a % 60 != 0 {
                out.extend_from_slice(format!(":{:02}", a % 60).as_bytes());
            }
        }
    }
    if bc(days) {
        out.extend_from_slice(b" BC");
    }
}

fn write_uuid(u: &[u8; 16], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// A value in text format.
pub fn encode_text(type_oid: u32, v: &Value, utc_offset_secs: i32, out: &mut Vec<u8>) -> Result<(), String> {
    use std::io::Write;
    match (type_oid, v) {
        (oid::INT2 | oid::INT4 | oid::INT8, v) => {
            let i = as_i64(v).ok_or_else(|| mismatch(type_oid, v))?;
            let _ = write!(out, "{i}");
        }
        (oid::NUMERIC, v) => as_decimal(v).ok_or_else(|| mismatch(type_oid, v))?.write_text(out),
        (oid::FLOAT4 | oid::FLOAT8, v) => {
            let f = as_f64(v).ok_or_else(|| mismatch(type_oid, v))?;
            if f.is_nan() {
                out.extend_from_slice(b"NaN");
            } else if f.is_infinite() {
                out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
            } else if type_oid == oid::FLOAT4 {
                // The float4's own shortest digits, float4out's threshold.
                let f32v = f as f32;
                let shortest: f64 = format!("{f32v:e}").parse().unwrap_or(f);
                write_float(shortest, 6, true, out);
            } else {
                write_float(f, 15, true, out);
            }
        }
        (oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME, Value::Text(s)) => out.extend_from_slice(s.as_bytes()),
        (oid::BOOL, Value::Bool(b)) => out.push(if *b { b't' } else { b'f' }),
        (oid::DATE, Value::Date(d)) => match *d {
            i32::MAX => out.extend_from_slice(b"infinity"),
            i32::MIN => out.extend_from_slice(b"-infinity"),
            d => {
                write_pg_date(d.into(), out);
                if bc(d.into()) {
                    out.extend_from_slice(b" BC");
                }
            }
        },
        (oid::TIME, Value::Time(t)) => write_hms(*t, Frac::Trim, out),
        (oid::TIMESTAMP, Value::Timestamp(t)) | (oid::TIMESTAMPTZ, Value::TimestampTz(t)) => match *t {
            i64::MAX => out.extend_from_slice(b"infinity"),
            i64::MIN => out.extend_from_slice(b"-infinity"),
            t => write_pg_timestamp(t, (type_oid == oid::TIMESTAMPTZ).then_some(utc_offset_secs), out),
        },
        (oid::UUID, Value::Uuid(u)) => write_uuid(u, out),
        (oid::BYTEA, Value::Bytes(b)) => {
            out.extend_from_slice(b"\\x");
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
        }
        (_, v) => return Err(mismatch(type_oid, v)),
    }
    Ok(())
}

/// A value in binary format.
pub fn encode_binary(type_oid: u32, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match (type_oid, v) {
        (oid::INT2 | oid::INT4 | oid::INT8, v) => {
            let i = as_i64(v).ok_or_else(|| mismatch(type_oid, v))?;
            let range = || format!("{i} out of range for type {type_oid}");
            match type_oid {
                oid::INT2 => out.extend_from_slice(&i16::try_from(i).map_err(|_| range())?.to_be_bytes()),
                oid::INT4 => out.extend_from_slice(&i32::try_from(i).map_err(|_| range())?.to_be_bytes()),
                _ => out.extend_from_slice(&i.to_be_bytes()),
            }
        }
        (oid::NUMERIC, v) => encode_numeric_binary(&as_decimal(v).ok_or_else(|| mismatch(type_oid, v))?, out)?,
        (oid::FLOAT4, v) => {
            out.extend_from_slice(&(as_f64(v).ok_or_else(|| mismatch(type_oid, v))? as f32).to_be_bytes())
        }
        (oid::FLOAT8, v) => out.extend_from_slice(&as_f64(v).ok_or_else(|| mismatch(type_oid, v))?.to_be_bytes()),
        (oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME, Value::Text(s)) => out.extend_from_slice(s.as_bytes()),
        (oid::BOOL, Value::Bool(b)) => out.push(u8::from(*b)),
        (oid::DATE, Value::Date(d)) => {
            let d = match *d {
                i32::MIN | i32::MAX => *d,
                d => d - PG_EPOCH_DAYS,
            };
            out.extend_from_slice(&d.to_be_bytes());
        }
        (oid::TIME, Value::Time(t)) => out.extend_from_slice(&t.to_be_bytes()),
        (oid::TIMESTAMP, Value::Timestamp(t)) | (oid::TIMESTAMPTZ, Value::TimestampTz(t)) => {
            let t = match *t {
                i64::MIN | i64::MAX => *t,
                t => t - PG_EPOCH_MICROS,
            };
            out.extend_from_slice(&t.to_be_bytes());
        }
        (oid::UUID, Value::Uuid(u)) => out.extend_from_slice(u),
        (oid::BYTEA, Value::Bytes(b)) => out.extend_from_slice(b),
        (_, v) => return Err(mismatch(type_oid, v)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    fn text(oid: u32, v: &Value) -> String {
        let mut o = Vec::new();
        encode_text(oid, v, 0, &mut o).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(o).unwrap_or_default()
    }

    fn bin(oid: u32, v: &Value) -> Vec<u8> {
        let mut o = Vec::new();
        encode_binary(oid, v, &mut o).unwrap_or_else(|e| panic!("{e}"));
        o
    }

    #[test]
    fn numeric_binary_by_hand() {
        // 1.50: ndigits 2, weight 0, sign +, dscale 2, digits 1, 5000
        let v = [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88];
        assert_eq!(decode_numeric_binary(&v).map(|d| d.to_string()), Ok("1.50".into()));
        assert_eq!(bin(oid::NUMERIC, &Value::Numeric(dec("1.50"))), v);
        // -0.0001234: weight -1, digits 1, 2340, dscale 7
        let v = [0, 2, 0xFF, 0xFF, 0x40, 0, 0, 7, 0, 1, 0x09, 0x24];
        assert_eq!(decode_numeric_binary(&v).map(|d| d.to_string()), Ok("-0.0001234".into()));
        assert_eq!(bin(oid::NUMERIC, &Value::Numeric(dec("-0.0001234"))), v);
        // 10000: one digit 1 at weight 1 (trailing zero digits are dropped)
        let v = [0, 1, 0, 1, 0, 0, 0, 0, 0, 1];
        assert_eq!(decode_numeric_binary(&v).map(|d| d.to_string()), Ok("10000".into()));
        assert_eq!(bin(oid::NUMERIC, &Value::Int(10_000)), v);
        // 12345678.9: digits 1234 5678 9000, weight 1, dscale 1
        let v = [0, 3, 0, 1, 0, 0, 0, 1, 0x04, 0xD2, 0x16, 0x2E, 0x23, 0x28];
        assert_eq!(decode_numeric_binary(&v).map(|d| d.to_string()), Ok("12345678.9".into()));
        assert_eq!(bin(oid::NUMERIC, &Value::Numeric(dec("12345678.9"))), v);
        // 0.00 : no digits, dscale 2
        let v = [0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(decode_numeric_binary(&v).map(|d| d.to_string()), Ok("0.00".into()));
        assert_eq!(bin(oid::NUMERIC, &Value::Numeric(dec("0.00"))), v);
        // 5 shown as 5.000 (dscale above the digits)
        let v = [0, 1, 0, 0, 0, 0, 0, 3, 0, 5];
        assert_eq!(decode_numeric_binary(&v).map(|d| d.to_string()), Ok("5.000".into()));
        // NaN is refused, as is a short buffer.
        assert!(decode_numeric_binary(&[0, 0, 0, 0, 0xC0, 0, 0, 0]).is_err());
        assert!(decode_numeric_binary(&[0, 1, 0, 0]).is_err());
    }

    #[test]
    fn integers_and_floats() {
        assert_eq!(decode_binary(oid::INT2, &[0xFF, 0xFE]), Ok(Value::Int(-2)));
        assert_eq!(decode_binary(oid::INT4, &[0, 0, 1, 0]), Ok(Value::Int(256)));
        assert_eq!(decode_binary(oid::INT8, &[0x80, 0, 0, 0, 0, 0, 0, 0]), Ok(Value::Int(i64::MIN)));
        assert!(decode_binary(oid::INT4, &[0, 0, 1]).is_err());
        assert_eq!(decode_text(oid::INT8, b"-42"), Ok(Value::Int(-42)));
        assert_eq!(bin(oid::INT4, &Value::Int(256)), [0, 0, 1, 0]);
        assert!(encode_binary(oid::INT2, &Value::Int(70_000), &mut Vec::new()).is_err());
        assert_eq!(decode_binary(oid::FLOAT8, &1.5f64.to_be_bytes()), Ok(Value::Float(1.5)));
        assert_eq!(decode_binary(oid::FLOAT4, &0.5f32.to_be_bytes()), Ok(Value::Float(0.5)));
        assert_eq!(text(oid::FLOAT8, &Value::Float(1e20)), "1e+20");
        assert_eq!(text(oid::FLOAT8, &Value::Float(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(text(oid::FLOAT4, &Value::Float(f64::from(0.1f32))), "0.1");
        assert_eq!(text(oid::FLOAT4, &Value::Float(1e6)), "1e+06");
        assert!(matches!(decode_text(oid::FLOAT8, b"NaN"), Ok(Value::Float(f)) if f.is_nan()));
        assert_eq!(text(oid::NUMERIC, &Value::Numeric(dec("3.30"))), "3.30");
        assert_eq!(text(oid::INT8, &Value::Numeric(dec("6"))), "6");
    }

    #[test]
    fn dates_and_times() {
        // 2024-01-05 = 8770 days after 2000-01-01
        let d = days_from_civil(2024, 1, 5) as i32;
        assert_eq!(decode_binary(oid::DATE, &8770i32.to_be_bytes()), Ok(Value::Date(d)));
        assert_eq!(decode_text(oid::DATE, b"2024-01-05"), Ok(Value::Date(d)));
        assert_eq!(bin(oid::DATE, &Value::Date(d)), 8770i32.to_be_bytes());
        assert_eq!(text(oid::DATE, &Value::Date(d)), "2024-01-05");
        assert_eq!(decode_text(oid::DATE, b"infinity"), Ok(Value::Date(i32::MAX)));
        assert_eq!(bin(oid::DATE, &Value::Date(i32::MIN)), i32::MIN.to_be_bytes());
        let bc = decode_text(oid::DATE, b"0044-03-15 BC");
        assert_eq!(bc, Ok(Value::Date(days_from_civil(-43, 3, 15) as i32)));
        if let Ok(v) = bc {
            assert_eq!(text(oid::DATE, &v), "0044-03-15 BC");
        }

        let ts = d as i64 * MICROS_PER_DAY + 45_296_789_000;
        assert_eq!(decode_text(oid::TIMESTAMP, b"2024-01-05 12:34:56.789"), Ok(Value::Timestamp(ts)));
        assert_eq!(text(oid::TIMESTAMP, &Value::Timestamp(ts)), "2024-01-05 12:34:56.789");
        let pg = ts - PG_EPOCH_MICROS;
        assert_eq!(decode_binary(oid::TIMESTAMP, &pg.to_be_bytes()), Ok(Value::Timestamp(ts)));
        assert_eq!(bin(oid::TIMESTAMPTZ, &Value::TimestampTz(ts)), pg.to_be_bytes());
        assert_eq!(decode_text(oid::TIMESTAMPTZ, b"2024-01-05 14:34:56.789+02"), Ok(Value::TimestampTz(ts)));
        assert_eq!(decode_text(oid::TIMESTAMPTZ, b"2024-01-05 07:04:56.789-05:30"), Ok(Value::TimestampTz(ts)));
        assert_eq!(text(oid::TIMESTAMPTZ, &Value::TimestampTz(ts)), "2024-01-05 12:34:56.789+00");
        let mut o = Vec::new();
        let _ = encode_text(oid::TIMESTAMPTZ, &Value::TimestampTz(ts), 19_800, &mut o);
        assert_eq!(o, b"2024-01-05 18:04:56.789+05:30");
        assert_eq!(decode_text(oid::TIME, b"23:59:59.999999"), Ok(Value::Time(86_399_999_999)));
        assert_eq!(decode_binary(oid::TIME, &86_399_999_999i64.to_be_bytes()), Ok(Value::Time(86_399_999_999)));
        assert_eq!(text(oid::TIME, &Value::Time(3_600_000_000)), "01:00:00");
    }

    #[test]
    fn text_bool_uuid_bytea() {
        assert_eq!(decode_text(oid::TEXT, "é".as_bytes()), Ok(Value::Text("é".into())));
        assert!(decode_text(oid::TEXT, &[0xFF]).is_err());
        assert_eq!(decode_binary(oid::BOOL, &[1]), Ok(Value::Bool(true)));
        assert_eq!(decode_text(oid::BOOL, b"f"), Ok(Value::Bool(false)));
        assert_eq!(text(oid::BOOL, &Value::Bool(true)), "t");
        let u = *b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0";
        assert_eq!(decode_text(oid::UUID, b"12345678-9abc-def0-1234-56789abcdef0"), Ok(Value::Uuid(u)));
        assert_eq!(text(oid::UUID, &Value::Uuid(u)), "12345678-9abc-def0-1234-56789abcdef0");
        assert_eq!(decode_binary(oid::UUID, &u), Ok(Value::Uuid(u)));
        assert_eq!(decode_text(oid::BYTEA, b"\\x00ff41"), Ok(Value::Bytes(vec![0, 255, 65])));
        assert_eq!(decode_text(oid::BYTEA, b"a\\\\b\\001"), Ok(Value::Bytes(b"a\\b\x01".to_vec())));
        assert_eq!(text(oid::BYTEA, &Value::Bytes(vec![0, 255, 65])), "\\x00ff41");
        assert!(decode_text(999_999, b"x").is_err());
        assert_eq!(kind_of(oid::VARCHAR, Collation::IcuRoot), ColumnKind::Text(Collation::IcuRoot));
        assert_eq!(kind_of(600, Collation::Binary), ColumnKind::Other);
    }

    #[test]
    fn codec_retypes_output_columns() {
        let mut c = PgCodec::new(vec![PgColumn { type_oid: oid::INT8, binary: true }]);
        c.retype(0, PgColumn { type_oid: oid::NUMERIC, binary: false });
        assert_eq!(c.decode(0, &7i64.to_be_bytes()).ok(), Some(Value::Int(7)));
        let mut o = Vec::new();
        assert!(c.encode(0, &Value::Numeric(dec("2.50")), &mut o).is_ok());
        assert_eq!(o, b"2.50");
        assert!(c.decode(1, b"").is_err());
    }
}
