//! An exact decimal for NUMERIC / DECIMAL values.
//!
//! Why not `rust_decimal`: its 96-bit mantissa holds 28 digits and a scale of
//! at most 28, while PostgreSQL's `numeric` holds up to 131072 digits before
//! the point and 16383 after it (and `sum(int8)` alone is a 20-digit numeric
//! that a few shards can push past 28 digits). So this is a small
//! arbitrary-precision decimal: a sign, a display scale (digits after the
//! point, PostgreSQL's `dscale`) and a magnitude in base 10^9 limbs.
//!
//! It does exactly what the merge needs and nothing more: parse, print,
//! compare, add, and divide by an integer count with half-away-from-zero
//! rounding at a chosen scale (what PostgreSQL's `numeric_div` and MySQL's
//! decimal division do for AVG). No floating point is involved anywhere.
//! Limits: the scale is a `u32`; magnitudes are bounded by memory only.

use std::cmp::Ordering;
use std::fmt;

const BASE: u64 = 1_000_000_000;

/// An exact decimal number: `(-1)^neg × mag × 10^-scale`.
#[derive(Clone, Debug, Default)]
pub struct Decimal {
    neg: bool,
    scale: u32,
    /// Base-10^9 limbs, least significant first, no zero limbs at the top
    /// (zero is the empty vector).
    mag: Vec<u32>,
}

impl Decimal {
    pub fn zero(scale: u32) -> Self {
        Decimal { neg: false, scale, mag: Vec::new() }
    }

    pub fn from_i64(v: i64) -> Self {
        Self::from_i128(i128::from(v))
    }

    pub fn from_u64(v: u64) -> Self {
        Self::from_i128(i128::from(v))
    }

    pub fn from_i128(v: i128) -> Self {
        let neg = v < 0;
        let mut m = v.unsigned_abs();
        let mut mag = Vec::new();
        while m > 0 {
            mag.push((m % u128::from(BASE)) as u32);
            m /= u128::from(BASE);
        }
        Decimal { neg, scale: 0, mag }
    }

    /// Digits after the decimal point (PostgreSQL's display scale).
    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn is_zero(&self) -> bool {
        self.mag.is_empty()
    }

    pub fn is_negative(&self) -> bool {
        self.neg && !self.is_zero()
    }

    /// Parses `[+-]digits[.digits]` (also `.5` and `5.`), the text form both
    /// PostgreSQL and MySQL send. The scale is the number of digits written
    /// after the point, so `1.50` keeps scale 2.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.trim().as_bytes();
        let (neg, b) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            Some(b'+') => (false, &b[1..]),
            _ => (false, b),
        };
        let (int, frac) = match b.iter().position(|&c| c == b'.') {
            Some(p) => (&b[..p], &b[p + 1..]),
            None => (b, &b[..0]),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.iter().chain(frac).all(u8::is_ascii_digit) {
            return None;
        }
        let scale = u32::try_from(frac.len()).ok()?;
        let mut d = Decimal::from_digits(int.iter().chain(frac).map(|c| c - b'0'));
        d.neg = neg;
        d.scale = scale;
        d.normalize_sign();
        Some(d)
    }

    /// The integer whose decimal digits (most significant first) are given.
    fn from_digits(digits: impl Iterator<Item = u8>) -> Self {
        let mut mag = Vec::new();
        let mut chunk = 0u32;
        let mut n = 0u32;
        for d in digits {
            chunk = chunk * 10 + u32::from(d);
            n += 1;
            if n == 9 {
                mul_small(&mut mag, BASE as u32, chunk);
                chunk = 0;
                n = 0;
            }
        }
        if n > 0 {
            mul_small(&mut mag, 10u32.pow(n), chunk);
        }
        Decimal { neg: false, scale: 0, mag }
    }

    /// Builds `mantissa × 10^exp10` shown with `scale` digits after the point;
    /// digits below the scale must be zero (they are dropped).
    pub(crate) fn from_parts(neg: bool, mut mag: Vec<u32>, exp10: i64, scale: u32) -> Self {
        trim(&mut mag);
        // Current scale of mag: -exp10 digits after the point.
        let cur = -exp10;
        let target = i64::from(scale);
        if target >= cur {
            mul_pow10(&mut mag, (target - cur) as u64);
        } else {
            div_pow10(&mut mag, (cur - target) as u64);
        }
        let mut d = Decimal { neg, scale, mag };
        d.normalize_sign();
        d
    }

    fn normalize_sign(&mut self) {
        trim(&mut self.mag);
        if self.mag.is_empty() {
            self.neg = false;
        }
    }

    /// The same value shown with `scale` digits after the point; rounds half
    /// away from zero when the scale shrinks.
    pub fn with_scale(&self, scale: u32) -> Self {
        let mut d = self.clone();
        match scale.cmp(&self.scale) {
            Ordering::Equal => {}
            Ordering::Greater => mul_pow10(&mut d.mag, u64::from(scale - self.scale)),
            Ordering::Less => {
                let k = self.scale - scale;
                if k > 1 {
                    div_pow10(&mut d.mag, u64::from(k - 1));
                }
                let r = div_small(&mut d.mag, 10);
                if r >= 5 {
                    add_small(&mut d.mag, 1);
                }
            }
        }
        d.scale = scale;
        d.normalize_sign();
        d
    }

    /// Exact sum; the scale is the larger of the two (as in both databases).
    pub fn add(&self, other: &Decimal) -> Decimal {
        let scale = self.scale.max(other.scale);
        let a = self.with_scale(scale);
        let b = other.with_scale(scale);
        let mut out = if a.neg == b.neg {
            let mut mag = a.mag;
            add_mag(&mut mag, &b.mag);
            Decimal { neg: a.neg, scale, mag }
        } else {
            match cmp_mag(&a.mag, &b.mag) {
                Ordering::Less => {
                    let mut mag = b.mag;
                    sub_mag(&mut mag, &a.mag);
                    Decimal { neg: b.neg, scale, mag }
                }
                _ => {
                    let mut mag = a.mag;
                    sub_mag(&mut mag, &b.mag);
                    Decimal { neg: a.neg, scale, mag }
                }
            }
        };
        out.normalize_sign();
        out
    }

    /// `self / divisor` rounded half away from zero to `scale` digits.
    /// The divisor is a row count, hence an integer.
    pub fn div_int(&self, divisor: i64, scale: u32) -> Option<Decimal> {
        if divisor == 0 {
            return None;
        }
        let d = divisor.unsigned_abs();
        // One guard digit, then round.
        let mut mag = self.mag.clone();
        let target = i64::from(scale) + 1;
        let cur = i64::from(self.scale);
        if target >= cur {
            mul_pow10(&mut mag, (target - cur) as u64);
        } else {
            // floor(floor(n / 10^k) / d) = floor(n / (10^k d)): dropping the
            // digits below the guard digit first changes nothing.
            div_pow10(&mut mag, (cur - target) as u64);
        }
        div_small_u64(&mut mag, d);
        let guard = div_small(&mut mag, 10);
        if guard >= 5 {
            add_small(&mut mag, 1);
        }
        let mut out = Decimal { neg: self.neg != (divisor < 0), scale, mag };
        out.normalize_sign();
        Some(out)
    }

    /// PostgreSQL's base-10000 view: the weight of the first non-zero
    /// NBASE digit and that digit (`(0, 0)` for zero), as `select_div_scale`
    /// reads them.
    pub fn pg_weight_and_first_digit(&self) -> (i32, u32) {
        if self.is_zero() {
            return (0, 0);
        }
        let digits = self.digit_string();
        let scale = self.scale as usize;
        let int_len = digits.len().saturating_sub(scale);
        // Left-pad the integer part to whole groups of four.
        let pad = (4 - int_len % 4) % 4;
        let int_groups = (int_len + pad) / 4;
        let mut all: Vec<u8> = Vec::with_capacity(digits.len() + 8);
        all.extend(std::iter::repeat_n(b'0', pad));
        if int_len == 0 {
            all.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        }
        all.extend_from_slice(digits.as_bytes());
        while all.len() % 4 != 0 {
            all.push(b'0');
        }
        for (g, chunk) in all.chunks(4).enumerate() {
            let v = chunk.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
            if v != 0 {
                return (int_groups as i32 - 1 - g as i32, v);
            }
        }
        (0, 0)
    }

    /// The magnitude's decimal digits, most significant first ("0" for zero).
    fn digit_string(&self) -> String {
        let mut s = String::new();
        match self.mag.split_last() {
            None => s.push('0'),
            Some((top, rest)) => {
                s.push_str(&top.to_string());
                for limb in rest.iter().rev() {
                    s.push_str(&format!("{limb:09}"));
                }
            }
        }
        s
    }

    /// Writes the text form with exactly `scale` digits after the point.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        let digits = self.digit_string();
        if self.is_negative() {
            out.push(b'-');
        }
        let scale = self.scale as usize;
        if scale == 0 {
            out.extend_from_slice(digits.as_bytes());
            return;
        }
        if digits.len() > scale {
            let (i, f) = digits.split_at(digits.len() - scale);
            out.extend_from_slice(i.as_bytes());
            out.push(b'.');
            out.extend_from_slice(f.as_bytes());
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
            out.extend_from_slice(digits.as_bytes());
        }
    }

    /// The value with trailing fractional zeros removed: equal values have
    /// equal normal forms (for grouping and DISTINCT).
    pub fn normalized(&self) -> Decimal {
        let mut d = self.clone();
        while d.scale > 0 && !d.mag.is_empty() {
            let mut m = d.mag.clone();
            if div_small(&mut m, 10) != 0 {
                break;
            }
            trim(&mut m);
            d.mag = m;
            d.scale -= 1;
        }
        if d.mag.is_empty() {
            d.scale = 0;
        }
        d
    }

    /// Bytes equal exactly when the values are equal.
    pub fn eq_key(&self, out: &mut Vec<u8>) {
        let n = self.normalized();
        out.push(u8::from(n.neg));
        out.extend_from_slice(&n.scale.to_be_bytes());
        out.extend_from_slice(&(n.mag.len() as u32).to_be_bytes());
        for l in &n.mag {
            out.extend_from_slice(&l.to_be_bytes());
        }
    }

    /// Converts to `i64` when the value is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        let n = self.normalized();
        if n.scale != 0 || n.mag.len() > 3 {
            return None;
        }
        let mut v: i128 = 0;
        for l in n.mag.iter().rev() {
            v = v * i128::from(BASE) + i128::from(*l);
        }
        if n.neg {
            v = -v;
        }
        i64::try_from(v).ok()
    }

    /// Nearest `f64` (for comparisons with floats only; never for sums).
    pub fn to_f64(&self) -> f64 {
        let mut s = Vec::new();
        self.write_text(&mut s);
        std::str::from_utf8(&s).ok().and_then(|t| t.parse().ok()).unwrap_or(f64::NAN)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let (an, bn) = (self.is_negative(), other.is_negative());
        if an != bn {
            return if an { Ordering::Less } else { Ordering::Greater };
        }
        let scale = self.scale.max(other.scale);
        let a = self.with_scale(scale);
        let b = other.with_scale(scale);
        let o = cmp_mag(&a.mag, &b.mag);
        if an { o.reverse() } else { o }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::new();
        self.write_text(&mut v);
        f.write_str(std::str::from_utf8(&v).map_err(|_| fmt::Error)?)
    }
}

// --- Magnitude arithmetic over base-10^9 limbs, least significant first. ---

fn trim(m: &mut Vec<u32>) {
    while m.last() == Some(&0) {
        m.pop();
    }
}

/// m = m × k + add
pub(crate) fn mul_small(m: &mut Vec<u32>, k: u32, add: u32) {
    let mut carry = u64::from(add);
    for l in m.iter_mut() {
        let v = u64::from(*l) * u64::from(k) + carry;
        *l = (v % BASE) as u32;
        carry = v / BASE;
    }
    while carry > 0 {
        m.push((carry % BASE) as u32);
        carry /= BASE;
    }
    trim(m);
}

fn add_small(m: &mut Vec<u32>, add: u32) {
    mul_small(m, 1, add);
}

/// m = m / d, returns the remainder.
fn div_small(m: &mut Vec<u32>, d: u32) -> u32 {
    div_small_u64(m, u64::from(d)) as u32
}

fn div_small_u64(m: &mut Vec<u32>, d: u64) -> u64 {
    let mut rem: u128 = 0;
    for l in m.iter_mut().rev() {
        let v = rem * u128::from(BASE) + u128::from(*l);
        *l = (v / u128::from(d)) as u32;
        rem = v % u128::from(d);
    }
    trim(m);
    rem as u64
}

fn mul_pow10(m: &mut Vec<u32>, mut k: u64) {
    if m.is_empty() {
        return;
    }
    // Whole limbs first: shifting by 10^9 is inserting a zero limb.
    let limbs = (k / 9) as usize;
    if limbs > 0 {
        m.splice(0..0, std::iter::repeat_n(0, limbs));
        k %= 9;
    }
    if k > 0 {
        mul_small(m, 10u32.pow(k as u32), 0);
    }
}

/// m = m / 10^k (truncating).
fn div_pow10(m: &mut Vec<u32>, mut k: u64) {
    let limbs = ((k / 9) as usize).min(m.len());
    if limbs > 0 {
        m.drain(..limbs);
        k -= 9 * limbs as u64;
    }
    if m.is_empty() {
        return;
    }
    let k = k.min(9);
    if k > 0 {
        div_small(m, 10u32.pow(k as u32));
    }
}

fn cmp_mag(a: &[u32], b: &[u32]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn add_mag(a: &mut Vec<u32>, b: &[u32]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    let mut carry = 0u64;
    for (i, l) in a.iter_mut().enumerate() {
        let v = u64::from(*l) + u64::from(b.get(i).copied().unwrap_or(0)) + carry;
        *l = (v % BASE) as u32;
        carry = v / BASE;
    }
    if carry > 0 {
        a.push(carry as u32);
    }
}

/// a = a - b, requires a >= b.
fn sub_mag(a: &mut Vec<u32>, b: &[u32]) {
    let mut borrow = 0i64;
    for (i, l) in a.iter_mut().enumerate() {
        let mut v = i64::from(*l) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
        borrow = 0;
        if v < 0 {
            v += BASE as i64;
            borrow = 1;
        }
        *l = v as u32;
    }
    trim(a);
}

/// PostgreSQL's `select_div_scale` (numeric.c) for `num / den`: at least
/// 16 significant digits (NUMERIC_MIN_SIG_DIGITS), never fewer than either
/// input's display scale, between 0 and 1000 (NUMERIC_MAX_DISPLAY_SCALE).
pub fn pg_select_div_scale(num: &Decimal, den: &Decimal) -> u32 {
    const NUMERIC_MIN_SIG_DIGITS: i32 = 16;
    const DEC_DIGITS: i32 = 4;
    const NUMERIC_MAX_DISPLAY_SCALE: i32 = 1000;
    let (w1, f1) = num.pg_weight_and_first_digit();
    let (w2, f2) = den.pg_weight_and_first_digit();
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (NUMERIC_MIN_SIG_DIGITS - qweight * DEC_DIGITS)
        .max(num.scale as i32)
        .max(den.scale as i32)
        .clamp(0, NUMERIC_MAX_DISPLAY_SCALE);
    rscale as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap_or_else(|| panic!("parse {s}"))
    }

    #[test]
    fn parse_and_print_keep_scale() {
        for s in ["0", "1.50", "-2.25", "0.001", "-0.5", "123456789012345678901234567890.123456789"] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d("-0.00").to_string(), "0.00");
        assert_eq!(d(".5").to_string(), "0.5");
        assert!(Decimal::parse("1e5").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("-").is_none());
        assert!(Decimal::parse("NaN").is_none());
    }

    #[test]
    fn sums_are_exact_and_keep_the_larger_scale() {
        assert_eq!(d("1.50").add(&d("2.25")).to_string(), "3.75");
        assert_eq!(d("1.5").add(&d("2.25")).to_string(), "3.75");
        assert_eq!(d("1.10").add(&d("2.20")).to_string(), "3.30");
        assert_eq!(d("0.1").add(&d("0.2")).to_string(), "0.3");
        assert_eq!(d("-5.5").add(&d("2.25")).to_string(), "-3.25");
        assert_eq!(d("2.25").add(&d("-2.25")).to_string(), "0.00");
        // Beyond 28 digits (rust_decimal's limit) and i128.
        let big = d("99999999999999999999999999999999999999999.99");
        assert_eq!(big.add(&d("0.01")).to_string(), "100000000000000000000000000000000000000000.00");
        assert_eq!(Decimal::from_i64(i64::MAX).add(&Decimal::from_i64(i64::MAX)).to_string(), "18446744073709551614");
    }

    #[test]
    fn compare_across_scales() {
        assert_eq!(d("1.5").cmp(&d("1.50")), Ordering::Equal);
        assert!(d("-1") < d("-0.5"));
        assert!(d("10") > d("9.999"));
        assert!(d("-10") < d("-9.999"));
        assert_eq!(d("0.00").cmp(&d("-0")), Ordering::Equal);
    }

    #[test]
    fn division_rounds_half_away_from_zero() {
        assert_eq!(d("7").div_int(3, 16).map(|x| x.to_string()), Some("2.3333333333333333".into()));
        assert_eq!(d("2").div_int(3, 4).map(|x| x.to_string()), Some("0.6667".into()));
        assert_eq!(d("-2").div_int(3, 4).map(|x| x.to_string()), Some("-0.6667".into()));
        assert_eq!(d("0.125").div_int(1, 2).map(|x| x.to_string()), Some("0.13".into()));
        assert!(d("1").div_int(0, 2).is_none());
    }

    #[test]
    fn pg_weights() {
        assert_eq!(d("7").pg_weight_and_first_digit(), (0, 7));
        assert_eq!(d("12345").pg_weight_and_first_digit(), (1, 1));
        assert_eq!(d("0.5").pg_weight_and_first_digit(), (-1, 5000));
        assert_eq!(d("0.00001").pg_weight_and_first_digit(), (-2, 1000));
        assert_eq!(d("0").pg_weight_and_first_digit(), (0, 0));
    }

    #[test]
    fn pg_div_scale_examples() {
        // avg(1, 2, 4): 7 / 3
        assert_eq!(pg_select_div_scale(&d("7"), &d("3")), 16);
        // avg(1.50, 2.25): 3.75 / 2
        assert_eq!(pg_select_div_scale(&d("3.75"), &d("2")), 16);
        // 1 / 3: first digits 1 <= 3, quotient weight -1 → 20 digits
        assert_eq!(pg_select_div_scale(&d("1"), &d("3")), 20);
        // 100000 / 3: weight 1 → 12
        assert_eq!(pg_select_div_scale(&d("100000"), &d("3")), 12);
        // A large scale input wins.
        assert_eq!(pg_select_div_scale(&d("1.000000000000000000001"), &d("1")), 21);
    }

    #[test]
    fn normal_forms() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        d("1.50").eq_key(&mut a);
        d("1.5").eq_key(&mut b);
        assert_eq!(a, b);
        assert_eq!(d("1.50").to_i64(), None);
        assert_eq!(d("15.00").to_i64(), Some(15));
        assert_eq!(d("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(d("1.50").with_scale(0).to_string(), "2");
        assert_eq!(d("-1.49").with_scale(1).to_string(), "-1.5");
    }
}
