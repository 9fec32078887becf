//! Cell codecs of the two dialects, and the calendar arithmetic they share.
//!
//! Pure functions over bytes: the front ends split messages into cells, these
//! turn one cell into a [`Value`](super::value::Value) and back.

pub mod mysql;
pub mod postgres;

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical years:
/// 1 BC is year 0).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a number"));
    }
    s.parse().map_err(|_| format!("`{s}` is out of range"))
}

/// `YYYY-MM-DD` (the year may have more digits) → (year, month, day).
pub(crate) fn parse_ymd(s: &str) -> Result<(i64, u32, u32), String> {
    let mut it = s.rsplitn(3, '-');
    let (Some(d), Some(m), Some(y)) = (it.next(), it.next(), it.next()) else {
        return Err(format!("`{s}` is not a date"));
    };
    Ok((num(y)?, num(m)?, num(d)?))
}

/// `[-]H+:MM:SS[.ffffff]` → microseconds.
pub(crate) fn parse_hms(s: &str) -> Result<i64, String> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let mut it = hms.split(':');
    let (Some(h), Some(m), Some(sec), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(format!("`{s}` is not a time"));
    };
    let h: i64 = num(h)?;
    let m: i64 = num(m)?;
    let sec: i64 = num(sec)?;
    let mut us = 0i64;
    if !frac.is_empty() {
        if frac.len() > 6 {
            return Err(format!("`{frac}`: more than 6 fractional digits"));
        }
        us = num::<i64>(frac)? * 10i64.pow(6 - frac.len() as u32);
    }
    let v = ((h * 60 + m) * 60 + sec) * 1_000_000 + us;
    Ok(if neg { -v } else { v })
}

/// How many fractional second digits to print.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frac {
    /// Up to 6, trailing zeros dropped (PostgreSQL).
    Trim,
    /// Exactly n (MySQL, from the column's decimals).
    Fixed(u8),
}

pub(crate) fn write_ymd(y: i64, m: u32, d: u32, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

/// `HH:MM:SS[.f]` of a non-negative time of day (hours may pass 24).
pub(crate) fn write_hms(us: i64, frac: Frac, out: &mut Vec<u8>) {
    use std::io::Write;
    let (neg, us) = (us < 0, us.unsigned_abs());
    let secs = us / 1_000_000;
    let micros = us % 1_000_000;
    if neg {
        out.push(b'-');
    }
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    match frac {
        Frac::Trim => {
            if micros != 0 {
                let s = format!("{micros:06}");
                out.push(b'.');
                out.extend_from_slice(s.trim_end_matches('0').as_bytes());
            }
        }
        Frac::Fixed(0) => {}
        Frac::Fixed(n) => {
            let s = format!("{micros:06}");
            out.push(b'.');
            out.extend_from_slice(&s.as_bytes()[..usize::from(n.min(6))]);
        }
    }
}

/// Shortest round-trip digits of a finite, non-zero float: (digits, exponent
/// of the first digit), e.g. 1234.5 → ("12345", 3).
pub(crate) fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `%g`-like text of a float's shortest digits: fixed notation when
/// `-4 <= exponent < max_fixed_exp`, scientific otherwise, with the
/// exponent written as `e+NN` (`plus_and_two_digits`) or `eN`.
pub(crate) fn write_float(f: f64, max_fixed_exp: i32, plus_and_two_digits: bool, out: &mut Vec<u8>) {
    use std::io::Write;
    if f == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    let (digits, exp) = shortest_digits(f);
    if f < 0.0 {
        out.push(b'-');
    }
    if (-4..max_fixed_exp).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits.as_bytes());
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.extend_from_slice(digits.as_bytes());
                out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
            } else {
                out.extend_from_slice(&digits.as_bytes()[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits.as_bytes()[int_len..]);
            }
        }
    } else {
        out.push(digits.as_bytes()[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits.as_bytes()[1..]);
        }
        if plus_and_two_digits {
            let sign = if exp < 0 { '-' } else { '+' };
            let _ = write!(out, "e{sign}{:02}", exp.abs());
        } else {
            let _ = write!(out, "e{exp}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for z in [-1_000_000i64, -719_468, -1, 0, 59, 10_957, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(-719_528), (0, 1, 1));
    }

    #[test]
    fn times() {
        assert_eq!(parse_hms("12:34:56.5"), Ok(45_296_500_000));
        assert_eq!(parse_hms("-838:59:59"), Ok(-3_020_399_000_000));
        assert!(parse_hms("12:34").is_err());
        assert!(parse_hms("1:2:3.1234567").is_err());
        let mut o = Vec::new();
        write_hms(45_296_500_000, Frac::Trim, &mut o);
        assert_eq!(o, b"12:34:56.5");
        o.clear();
        write_hms(-3_020_399_000_000, Frac::Fixed(2), &mut o);
        assert_eq!(o, b"-838:59:59.00");
    }

    #[test]
    fn floats() {
        let f = |x: f64, pg: bool| {
            let mut o = Vec::new();
            if pg {
                write_float(x, 15, true, &mut o);
            } else {
                write_float(x, 15, false, &mut o);
            }
            String::from_utf8(o).unwrap_or_default()
        };
        assert_eq!(f(1.5, true), "1.5");
        assert_eq!(f(100.0, true), "100");
        assert_eq!(f(0.0001, true), "0.0001");
        assert_eq!(f(0.00001, true), "1e-05");
        assert_eq!(f(1e20, true), "1e+20");
        assert_eq!(f(123456789012345.0, true), "123456789012345");
        assert_eq!(f(1e15, true), "1e+15");
        assert_eq!(f(-2.5e-7, false), "-2.5e-7");
        assert_eq!(f(0.1 + 0.2, true), "0.30000000000000004");
    }
}
