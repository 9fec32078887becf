//! MySQL / MariaDB cells, text and binary protocol, by column type.
//!
//! Text protocol: every cell is the value's text (the front end has already
//! removed the length-encoded prefix). Binary protocol (COM_STMT_EXECUTE
//! result rows): a cell is what [`split_binary_cell`] returns: integers
//! and floats as fixed-width little-endian bytes; strings and DECIMAL
//! without their length-encoded prefix; DATE / DATETIME / TIMESTAMP / TIME
//! with their one-byte length (0, 4, 7 or 11 for dates; 0, 8 or 12 for
//! TIME). `encode` writes the same shapes, so the front end frames strings
//! and decimals itself.
//!
//! Zero dates (`0000-00-00`, `0000-00-00 00:00:00`) decode to `i32::MIN` /
//! `i64::MIN`, sort before every date as on the server, and encode back
//! to zero dates. Dates with a zero month or day only are refused.

use super::{
    Frac, MICROS_PER_DAY, civil_from_days, days_from_civil, parse_hms, parse_ymd, write_float, write_hms, write_ymd,
};
use crate::merge::collation::Collation;
use crate::merge::column::{CellCodec, ColumnKind};
use crate::merge::decimal::Decimal;
use crate::merge::error::MergeError;
use crate::merge::value::Value;

/// Column types (`enum_field_types`).
pub mod ty {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// One column as its column definition packet describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MyColumn {
    pub column_type: u8,
    /// UNSIGNED_FLAG.
    pub unsigned: bool,
    /// Character set 63 (`binary`): BLOB / BINARY / VARBINARY, compared as bytes.
    pub binary_charset: bool,
    /// Fractional digits (DECIMAL scale, fractional seconds).
    pub decimals: u8,
}

impl MyColumn {
    pub fn new(column_type: u8) -> Self {
        MyColumn { column_type, unsigned: false, binary_charset: false, decimals: 0 }
    }
}

fn is_string(t: u8) -> bool {
    matches!(
        t,
        ty::VARCHAR
            | ty::VAR_STRING
            | ty::STRING
            | ty::TINY_BLOB
            | ty::MEDIUM_BLOB
            | ty::LONG_BLOB
            | ty::BLOB
            | ty::ENUM
            | ty::SET
    )
}

/// The merge's view of a column; text compares by `collation`.
pub fn kind_of(c: &MyColumn, collation: Collation) -> ColumnKind {
    match c.column_type {
        ty::TINY | ty::SHORT | ty::LONG | ty::INT24 | ty::LONGLONG | ty::YEAR => ColumnKind::Int,
        ty::NEWDECIMAL | ty::DECIMAL => ColumnKind::Numeric,
        ty::FLOAT | ty::DOUBLE => ColumnKind::Float,
        t if is_string(t) => {
            if c.binary_charset {
                ColumnKind::Bytes
            } else {
                ColumnKind::Text(collation)
            }
        }
        ty::DATE | ty::NEWDATE => ColumnKind::Date,
        ty::DATETIME | ty::TIMESTAMP => ColumnKind::Timestamp,
        ty::TIME => ColumnKind::Time,
        _ => ColumnKind::Other,
    }
}

/// The column a retyped merge column becomes (AVG: DECIMAL with
/// `decimals` fractional digits, or DOUBLE).
pub fn column_of(kind: ColumnKind, decimals: u8) -> MyColumn {
    let t = match kind {
        ColumnKind::Int => ty::LONGLONG,
        ColumnKind::Numeric => ty::NEWDECIMAL,
        ColumnKind::Float => ty::DOUBLE,
        ColumnKind::Date => ty::DATE,
        ColumnKind::Time => ty::TIME,
        ColumnKind::Timestamp | ColumnKind::TimestampTz => ty::DATETIME,
        _ => ty::VAR_STRING,
    };
    MyColumn { column_type: t, unsigned: false, binary_charset: matches!(kind, ColumnKind::Bytes), decimals }
}

/// Reads a length-encoded integer: (value, bytes used).
pub fn lenenc_int(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    let le = |n: usize| -> Option<u64> {
        let b = data.get(1..1 + n)?;
        Some(b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x)))
    };
    match first {
        0..=0xFA => Some((u64::from(first), 1)),
        0xFC => Some((le(2)?, 3)),
        0xFD => Some((le(3)?, 4)),
        0xFE => Some((le(8)?, 9)),
        _ => None,
    }
}

/// Splits the next non-NULL cell of a binary-protocol row off `data`:
/// (the cell as the codec reads it, bytes consumed).
pub fn split_binary_cell(column_type: u8, data: &[u8]) -> Option<(&[u8], usize)> {
    let fixed = match column_type {
        ty::TINY => Some(1),
        ty::SHORT | ty::YEAR => Some(2),
        ty::LONG | ty::INT24 | ty::FLOAT => Some(4),
        ty::LONGLONG | ty::DOUBLE => Some(8),
        _ => None,
    };
    if let Some(n) = fixed {
        return data.get(..n).map(|c| (c, n));
    }
    match column_type {
        ty::DATE | ty::NEWDATE | ty::DATETIME | ty::TIMESTAMP | ty::TIME => {
            let n = 1 + usize::from(*data.first()?);
            data.get(..n).map(|c| (c, n))
        }
        _ => {
            let (len, used) = lenenc_int(data)?;
            let end = used.checked_add(usize::try_from(len).ok()?)?;
            data.get(used..end).map(|c| (c, end))
        }
    }
}

fn utf8(raw: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}"))
}

fn int_text(s: &str, unsigned: bool) -> Result<Value, String> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    if unsigned && let Ok(u) = s.parse::<u64>() {
        return Ok(Value::Numeric(Decimal::from_u64(u)));
    }
    Err(format!("`{s}` is not an integer"))
}

fn date_value(y: i64, m: u32, d: u32) -> Result<i32, String> {
    if y == 0 && m == 0 && d == 0 {
        return Ok(i32::MIN);
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("date {y:04}-{m:02}-{d:02} with a zero part is not merged"));
    }
    i32::try_from(days_from_civil(y, m, d)).map_err(|_| "date out of range".into())
}

fn datetime_value(days: i32, time_us: i64) -> i64 {
    if days == i32::MIN { i64::MIN } else { i64::from(days) * MICROS_PER_DAY + time_us }
}

/// A text-protocol cell.
pub fn decode_text(c: &MyColumn, raw: &[u8]) -> Result<Value, String> {
    let t = c.column_type;
    if is_string(t) {
        return Ok(if c.binary_charset { Value::Bytes(raw.to_vec()) } else { Value::Text(utf8(raw)?.to_owned()) });
    }
    let s = utf8(raw)?;
    Ok(match t {
        ty::TINY | ty::SHORT | ty::LONG | ty::INT24 | ty::LONGLONG | ty::YEAR => int_text(s, c.unsigned)?,
        ty::NEWDECIMAL | ty::DECIMAL => {
            Value::Numeric(Decimal::parse(s).ok_or_else(|| format!("`{s}` is not a decimal"))?)
        }
        ty::FLOAT | ty::DOUBLE => Value::Float(s.parse().map_err(|_| format!("`{s}` is not a float"))?),
        ty::DATE | ty::NEWDATE => {
            let (y, m, d) = parse_ymd(s)?;
            Value::Date(date_value(y, m, d)?)
        }
        ty::DATETIME | ty::TIMESTAMP => {
            let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
            let (y, m, d) = parse_ymd(date)?;
            Value::Timestamp(datetime_value(date_value(y, m, d)?, parse_hms(time)?))
        }
        ty::TIME => Value::Time(parse_hms(s)?),
        _ => return Err(format!("column type {t} is not merged")),
    })
}

fn le<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into().map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

/// A binary-protocol cell (see the module doc for its shape).
pub fn decode_binary(c: &MyColumn, raw: &[u8]) -> Result<Value, String> {
    let t = c.column_type;
    let u = c.unsigned;
    Ok(match t {
        ty::TINY => Value::Int(if u { raw_u8(raw)?.into() } else { (raw_u8(raw)? as i8).into() }),
        ty::SHORT | ty::YEAR => {
            let b = le::<2>(raw)?;
            Value::Int(if u || t == ty::YEAR { u16::from_le_bytes(b).into() } else { i16::from_le_bytes(b).into() })
        }
        ty::LONG | ty::INT24 => {
            let b = le::<4>(raw)?;
            Value::Int(if u { u32::from_le_bytes(b).into() } else { i32::from_le_bytes(b).into() })
        }
        ty::LONGLONG => {
            let b = le::<8>(raw)?;
            if u {
                let v = u64::from_le_bytes(b);
                match i64::try_from(v) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Numeric(Decimal::from_u64(v)),
                }
            } else {
                Value::Int(i64::from_le_bytes(b))
            }
        }
        ty::FLOAT => Value::Float(f32::from_le_bytes(le(raw)?).into()),
        ty::DOUBLE => Value::Float(f64::from_le_bytes(le(raw)?)),
        ty::NEWDECIMAL | ty::DECIMAL => decode_text(c, raw)?,
        t if is_string(t) => decode_text(c, raw)?,
        ty::DATE | ty::NEWDATE | ty::DATETIME | ty::TIMESTAMP => {
            let n = usize::from(raw_u8(raw.get(..1).unwrap_or(&[]))?);
            let b = raw.get(1..).unwrap_or(&[]);
            if b.len() != n || !matches!(n, 0 | 4 | 7 | 11) {
                return Err(format!("bad date/time length {n}"));
            }
            let (days, time) = if n == 0 {
                (i32::MIN, 0)
            } else {
                let y = i64::from(u16::from_le_bytes([b[0], b[1]]));
                let days = date_value(y, b[2].into(), b[3].into())?;
                let mut time = 0i64;
                if n >= 7 {
                    time = (i64::from(b[4]) * 3600 + i64::from(b[5]) * 60 + i64::from(b[6])) * 1_000_000;
                }
                if n == 11 {
                    time += i64::from(u32::from_le_bytes([b[7], b[8], b[9], b[10]]));
                }
                (days, time)
            };
            if matches!(t, ty::DATE | ty::NEWDATE) {
                Value::Date(days)
            } else {
                Value::Timestamp(datetime_value(days, time))
            }
        }
        ty::TIME => {
            let n = usize::from(raw_u8(raw.get(..1).unwrap_or(&[]))?);
            let b = raw.get(1..).unwrap_or(&[]);
            if b.len() != n || !matches!(n, 0 | 8 | 12) {
                return Err(format!("bad TIME length {n}"));
            }
            if n == 0 {
                Value::Time(0)
            } else {
                let days = i64::from(u32::from_le_bytes([b[1], b[2], b[3], b[4]]));
                let mut us =
                    ((days * 24 + i64::from(b[5])) * 3600 + i64::from(b[6]) * 60 + i64::from(b[7])) * 1_000_000;
                if n == 12 {
                    us += i64::from(u32::from_le_bytes([b[8], b[9], b[10], b[11]]));
                }
                Value::Time(if b[0] == 1 { -us } else { us })
            }
        }
        _ => return Err(format!("column type {t} is not merged")),
    })
}

fn raw_u8(raw: &[u8]) -> Result<u8, String> {
    Ok(le::<1>(raw)?[0])
}

fn mismatch(c: &MyColumn, v: &Value) -> String {
    format!("a {} value for a column of type {}", v.kind_name(), c.column_type)
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from_i64(*i)),
        Value::Numeric(d) => Some(d.clone()),
        _ => None,
    }
}

fn frac(c: &MyColumn) -> Frac {
    Frac::Fixed(c.decimals.min(6))
}

/// A text-protocol cell.
pub fn encode_text(c: &MyColumn, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    use std::io::Write;
    let t = c.column_type;
    match v {
        _ if matches!(t, ty::FLOAT | ty::DOUBLE) => {
            let f = match v {
                Value::Float(f) => *f,
                Value::Int(i) => *i as f64,
                Value::Numeric(d) => d.to_f64(),
                _ => return Err(mismatch(c, v)),
            };
            if t == ty::FLOAT {
                let s: f64 = format!("{:e}", f as f32).parse().unwrap_or(f);
                write_float(s, 15, false, out);
            } else {
                write_float(f, 15, false, out);
            }
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Numeric(d) => d.write_text(out),
        Value::Text(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Date(d) => write_date(*d, out),
        Value::Timestamp(ts) | Value::TimestampTz(ts) => {
            if *ts == i64::MIN {
                out.extend_from_slice(b"0000-00-00 00:00:00");
                if c.decimals > 0 {
                    out.push(b'.');
                    out.extend(std::iter::repeat_n(b'0', usize::from(c.decimals.min(6))));
                }
            } else {
                let days = ts.div_euclid(MICROS_PER_DAY);
                let (y, m, d) = civil_from_days(days);
                write_ymd(y, m, d, out);
                out.push(b' ');
                write_hms(ts.rem_euclid(MICROS_PER_DAY), frac(c), out);
            }
        }
        Value::Time(us) => write_hms(*us, frac(c), out),
        _ => return Err(mismatch(c, v)),
    }
    Ok(())
}

fn write_date(d: i32, out: &mut Vec<u8>) {
    if d == i32::MIN {
        out.extend_from_slice(b"0000-00-00");
    } else {
        let (y, m, dd) = civil_from_days(d.into());
        write_ymd(y, m, dd, out);
    }
}

/// A binary-protocol cell.
pub fn encode_binary(c: &MyColumn, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let t = c.column_type;
    let int = || -> Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Numeric(d) => d.to_i64().ok_or_else(|| mismatch(c, v)),
            _ => Err(mismatch(c, v)),
        }
    };
    match t {
        ty::TINY => out.push(int()? as u8),
        ty::SHORT | ty::YEAR => out.extend_from_slice(&(int()? as u16).to_le_bytes()),
        ty::LONG | ty::INT24 => out.extend_from_slice(&(int()? as u32).to_le_bytes()),
        ty::LONGLONG => match v {
            Value::Numeric(d) if c.unsigned && d.to_i64().is_none() => {
                let s = d.to_string();
                let u: u64 = s.parse().map_err(|_| mismatch(c, v))?;
                out.extend_from_slice(&u.to_le_bytes());
            }
            _ => out.extend_from_slice(&int()?.to_le_bytes()),
        },
        ty::FLOAT | ty::DOUBLE => {
            let f = match v {
                Value::Float(f) => *f,
                Value::Int(i) => *i as f64,
                Value::Numeric(d) => d.to_f64(),
                _ => return Err(mismatch(c, v)),
            };
            if t == ty::FLOAT {
                out.extend_from_slice(&(f as f32).to_le_bytes());
            } else {
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
        ty::NEWDECIMAL | ty::DECIMAL => as_decimal(v).ok_or_else(|| mismatch(c, v))?.write_text(out),
        t if is_string(t) => encode_text(c, v, out)?,
        ty::DATE | ty::NEWDATE | ty::DATETIME | ty::TIMESTAMP => {
            let (days, time) = match v {
                Value::Date(d) => (*d, 0),
                Value::Timestamp(ts) | Value::TimestampTz(ts) => {
                    if *ts == i64::MIN {
                        (i32::MIN, 0)
                    } else {
                        let days = i32::try_from(ts.div_euclid(MICROS_PER_DAY)).map_err(|_| mismatch(c, v))?;
                        (days, ts.rem_euclid(MICROS_PER_DAY))
                    }
                }
                _ => return Err(mismatch(c, v)),
            };
            if days == i32::MIN {
                out.push(0);
                return Ok(());
            }
            let (y, m, d) = civil_from_days(days.into());
            let y = u16::try_from(y).map_err(|_| format!("year {y} out of range"))?;
            let secs = time / 1_000_000;
            let us = (time % 1_000_000) as u32;
            let n: u8 = if us != 0 {
                11
            } else if secs != 0 {
                7
            } else {
                4
            };
            out.push(n);
            out.extend_from_slice(&y.to_le_bytes());
            out.extend_from_slice(&[m as u8, d as u8]);
            if n >= 7 {
                out.extend_from_slice(&[(secs / 3600) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8]);
            }
            if n == 11 {
                out.extend_from_slice(&us.to_le_bytes());
            }
        }
        ty::TIME => {
            let Value::Time(us) = v else {
                return Err(mismatch(c, v));
            };
            if *us == 0 {
                out.push(0);
                return Ok(());
            }
            let a = us.unsigned_abs();
            let micros = (a % 1_000_000) as u32;
            let secs = a / 1_000_000;
            let days = u32::try_from(secs / 86_400).map_err(|_| mismatch(c, v))?;
            let rem = secs % 86_400;
            out.push(if micros != 0 { 12 } else { 8 });
            out.push(u8::from(*us < 0));
            out.extend_from_slice(&days.to_le_bytes());
            out.extend_from_slice(&[(rem / 3600) as u8, (rem / 60 % 60) as u8, (rem % 60) as u8]);
            if micros != 0 {
                out.extend_from_slice(&micros.to_le_bytes());
            }
        }
        _ => return Err(mismatch(c, v)),
    }
    Ok(())
}

/// The codec of one MySQL result (one protocol for all its columns).
#[derive(Clone, Debug)]
pub struct MysqlCodec {
    input: Vec<MyColumn>,
    output: Vec<MyColumn>,
    binary: bool,
}

impl MysqlCodec {
    /// `binary`: rows of COM_STMT_EXECUTE; otherwise text-protocol rows.
    pub fn new(columns: Vec<MyColumn>, binary: bool) -> Self {
        MysqlCodec { output: columns.clone(), input: columns, binary }
    }

    /// The client gets `column` as another type (AVG).
    pub fn retype(&mut self, column: usize, to: MyColumn) {
        if let Some(c) = self.output.get_mut(column) {
            *c = to;
        }
    }

    fn col(cols: &[MyColumn], column: usize) -> Result<MyColumn, MergeError> {
        cols.get(column).copied().ok_or(MergeError::BadColumn { column: format!("#{}", column + 1), width: cols.len() })
    }
}

impl CellCodec for MysqlCodec {
    fn decode(&self, column: usize, raw: &[u8]) -> Result<Value, MergeError> {
        let c = Self::col(&self.input, column)?;
        let r = if self.binary { decode_binary(&c, raw) } else { decode_text(&c, raw) };
        r.map_err(|detail| MergeError::Decode { column, kind: kind_of(&c, Collation::Binary).name(), detail })
    }

    fn encode(&self, column: usize, value: &Value, out: &mut Vec<u8>) -> Result<(), MergeError> {
        let c = Self::col(&self.output, column)?;
        let r = if self.binary { encode_binary(&c, value, out) } else { encode_text(&c, value, out) };
        r.map_err(|detail| MergeError::Encode { column, detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: u8) -> MyColumn {
        MyColumn::new(t)
    }

    fn dec(s: &str) -> Value {
        Value::Numeric(Decimal::parse(s).unwrap_or_else(|| panic!("{s}")))
    }

    fn text(c: &MyColumn, v: &Value) -> String {
        let mut o = Vec::new();
        encode_text(c, v, &mut o).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(o).unwrap_or_default()
    }

    fn bin(c: &MyColumn, v: &Value) -> Vec<u8> {
        let mut o = Vec::new();
        encode_binary(c, v, &mut o).unwrap_or_else(|e| panic!("{e}"));
        o
    }

    #[test]
    fn text_protocol_numbers() {
        assert_eq!(decode_text(&col(ty::LONG), b"-7"), Ok(Value::Int(-7)));
        let u = MyColumn { unsigned: true, ..col(ty::LONGLONG) };
        assert_eq!(decode_text(&u, b"18446744073709551615"), Ok(dec("18446744073709551615")));
        assert!(decode_text(&col(ty::LONGLONG), b"18446744073709551615").is_err());
        assert_eq!(decode_text(&col(ty::NEWDECIMAL), b"3.75"), Ok(dec("3.75")));
        assert_eq!(decode_text(&col(ty::DOUBLE), b"1e20"), Ok(Value::Float(1e20)));
        // SUM(int) is DECIMAL(…,0): text "6"; COUNT is BIGINT.
        assert_eq!(text(&col(ty::NEWDECIMAL), &dec("6")), "6");
        assert_eq!(text(&col(ty::NEWDECIMAL), &dec("7.50")), "7.50");
        assert_eq!(text(&col(ty::LONGLONG), &Value::Int(6)), "6");
        assert_eq!(text(&col(ty::DOUBLE), &Value::Float(0.5)), "0.5");
        assert_eq!(text(&col(ty::DOUBLE), &Value::Float(1e20)), "1e20");
    }

    #[test]
    fn binary_protocol_numbers() {
        assert_eq!(decode_binary(&col(ty::TINY), &[0xFF]), Ok(Value::Int(-1)));
        let ut = MyColumn { unsigned: true, ..col(ty::TINY) };
        assert_eq!(decode_binary(&ut, &[0xFF]), Ok(Value::Int(255)));
        assert_eq!(decode_binary(&col(ty::SHORT), &[0x34, 0x12]), Ok(Value::Int(0x1234)));
        assert_eq!(decode_binary(&col(ty::INT24), &[1, 0, 0, 0]), Ok(Value::Int(1)));
        assert_eq!(decode_binary(&col(ty::LONG), &[0xFE, 0xFF, 0xFF, 0xFF]), Ok(Value::Int(-2)));
        assert_eq!(decode_binary(&col(ty::LONGLONG), &5i64.to_le_bytes()), Ok(Value::Int(5)));
        let ul = MyColumn { unsigned: true, ..col(ty::LONGLONG) };
        assert_eq!(decode_binary(&ul, &u64::MAX.to_le_bytes()), Ok(dec("18446744073709551615")));
        assert_eq!(bin(&ul, &dec("18446744073709551615")), u64::MAX.to_le_bytes());
        assert_eq!(decode_binary(&col(ty::DOUBLE), &2.5f64.to_le_bytes()), Ok(Value::Float(2.5)));
        assert_eq!(decode_binary(&col(ty::FLOAT), &2.5f32.to_le_bytes()), Ok(Value::Float(2.5)));
        assert_eq!(decode_binary(&col(ty::NEWDECIMAL), b"-12.340"), Ok(dec("-12.340")));
        assert_eq!(bin(&col(ty::LONGLONG), &Value::Int(-2)), (-2i64).to_le_bytes());
        assert_eq!(bin(&col(ty::NEWDECIMAL), &dec("3.75")), b"3.75");
        assert!(decode_binary(&col(ty::LONG), &[1, 2]).is_err());
    }

    #[test]
    fn dates_times_both_protocols() {
        let day = days_from_civil(2024, 1, 5) as i32;
        let date = col(ty::DATE);
        assert_eq!(decode_text(&date, b"2024-01-05"), Ok(Value::Date(day)));
        assert_eq!(decode_text(&date, b"0000-00-00"), Ok(Value::Date(i32::MIN)));
        assert!(decode_text(&date, b"2024-00-05").is_err());
        assert_eq!(decode_binary(&date, &[4, 0xE8, 0x07, 1, 5]), Ok(Value::Date(day)));
        assert_eq!(decode_binary(&date, &[0]), Ok(Value::Date(i32::MIN)));
        assert_eq!(bin(&date, &Value::Date(day)), [4, 0xE8, 0x07, 1, 5]);
        assert_eq!(text(&date, &Value::Date(i32::MIN)), "0000-00-00");

        let dt = MyColumn { decimals: 3, ..col(ty::DATETIME) };
        let ts = i64::from(day) * MICROS_PER_DAY + 45_296_789_000;
        assert_eq!(decode_text(&dt, b"2024-01-05 12:34:56.789"), Ok(Value::Timestamp(ts)));
        assert_eq!(text(&dt, &Value::Timestamp(ts)), "2024-01-05 12:34:56.789");
        // 11 bytes: y m d h m s µs
        let raw = [11, 0xE8, 0x07, 1, 5, 12, 34, 56, 0x08, 0x0A, 0x0C, 0x00];
        assert_eq!(decode_binary(&dt, &raw), Ok(Value::Timestamp(ts)));
        assert_eq!(bin(&dt, &Value::Timestamp(ts)), raw);
        let raw7 = [7, 0xE8, 0x07, 1, 5, 12, 34, 56];
        let ts7 = i64::from(day) * MICROS_PER_DAY + 45_296_000_000;
        assert_eq!(decode_binary(&col(ty::TIMESTAMP), &raw7), Ok(Value::Timestamp(ts7)));
        assert_eq!(bin(&col(ty::TIMESTAMP), &Value::Timestamp(ts7)), raw7);
        assert_eq!(decode_binary(&dt, &[4, 0xE8, 0x07, 1, 5]), Ok(Value::Timestamp(i64::from(day) * MICROS_PER_DAY)));
        assert_eq!(decode_binary(&dt, &[0]), Ok(Value::Timestamp(i64::MIN)));
        assert!(decode_binary(&dt, &[5, 0, 0, 0, 0, 0]).is_err());

        let time = col(ty::TIME);
        let t = -((838 * 3600 + 59 * 60 + 59) * 1_000_000i64);
        assert_eq!(decode_text(&time, b"-838:59:59"), Ok(Value::Time(t)));
        assert_eq!(text(&time, &Value::Time(t)), "-838:59:59");
        // 8 bytes: neg, days(4), h, m, s: 838:59:59 = 34 days 22:59:59
        let raw = [8, 1, 34, 0, 0, 0, 22, 59, 59];
        assert_eq!(decode_binary(&time, &raw), Ok(Value::Time(t)));
        assert_eq!(bin(&time, &Value::Time(t)), raw);
        let raw12 = [12, 0, 0, 0, 0, 0, 1, 2, 3, 0x40, 0xE2, 0x01, 0x00];
        assert_eq!(decode_binary(&time, &raw12), Ok(Value::Time(3_723_123_456)));
        assert_eq!(bin(&time, &Value::Time(3_723_123_456)), raw12);
        assert_eq!(decode_binary(&time, &[0]), Ok(Value::Time(0)));
    }

    #[test]
    fn strings_and_cells() {
        let v = col(ty::VAR_STRING);
        assert_eq!(decode_text(&v, "é".as_bytes()), Ok(Value::Text("é".into())));
        let blob = MyColumn { binary_charset: true, ..col(ty::BLOB) };
        assert_eq!(decode_binary(&blob, &[0, 0xFF]), Ok(Value::Bytes(vec![0, 0xFF])));
        assert_eq!(kind_of(&blob, Collation::MysqlGeneralCi), ColumnKind::Bytes);
        assert_eq!(kind_of(&v, Collation::MysqlGeneralCi), ColumnKind::Text(Collation::MysqlGeneralCi));
        assert_eq!(split_binary_cell(ty::LONG, &[1, 0, 0, 0, 9]), Some((&[1u8, 0, 0, 0][..], 4)));
        assert_eq!(split_binary_cell(ty::VAR_STRING, &[2, b'h', b'i', 7]), Some((&b"hi"[..], 3)));
        assert_eq!(split_binary_cell(ty::DATE, &[4, 0xE8, 0x07, 1, 5, 9]), Some((&[4u8, 0xE8, 0x07, 1, 5][..], 5)));
        assert_eq!(split_binary_cell(ty::NEWDECIMAL, &[0xFC, 1, 0, b'7']), Some((&b"7"[..], 4)));
        assert_eq!(split_binary_cell(ty::STRING, &[3, b'a']), None);
        assert_eq!(lenenc_int(&[0xFD, 1, 2, 3]), Some((0x030201, 4)));
    }
}
