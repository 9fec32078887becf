//! Text comparison as the shards compare.
//!
//! The merge orders and groups text exactly as the backend would, or the
//! client sees rows in an order no single database would produce:
//!
//! - [`Collation::Binary`]: byte order of the UTF-8 text (= code point
//!   order), PostgreSQL's `C` / `POSIX` collations, MySQL `*_bin`.
//! - [`Collation::IcuRoot`]: PostgreSQL ICU collations on the root / `en` /
//!   `en-US` rules (deterministic, tertiary strength), compared with ICU4X
//!   and its compiled data. Strings the collator calls equal are then ordered
//!   by their bytes, exactly as PostgreSQL does for deterministic collations
//!   (`varstr_cmp` falls back to `strcmp`), so equality is byte equality.
//!   ICU4X and the server's ICU4C may be on different Unicode / CLDR
//!   versions and can then disagree on rare strings (newly encoded
//!   characters, some contractions); common text orders the same.
//! - [`Collation::MysqlGeneralCi`]: MariaDB / MySQL `utf8mb4_general_ci`:
//!   one weight per character, PAD SPACE (trailing spaces do not count), no
//!   expansions. ASCII weighs as its upper case and Latin-1 letters as the
//!   server's table (accented letters weigh as their base letter: 'é' = 'E',
//!   'ß' = 'S', 'ÿ' = 'Y'; 'Æ', 'Ð', 'Ø', 'Þ' weigh as themselves; 'µ' as
//!   'Μ'). Those are exact. Beyond Latin-1 the server's table is
//!   approximated: Latin Extended and Greek letters weigh as the upper case
//!   of their canonical base letter, other characters as their simple upper
//!   case, and every character outside the BMP as U+FFFD (as the server).
//!
//! Equal strings under a case-insensitive collation are ties: the merge keeps
//! them in shard order and never falls back to bytes.

use std::cmp::Ordering;
use std::sync::OnceLock;

use icu_collator::CollatorBorrowed;
use icu_collator::options::CollatorOptions;
use icu_normalizer::properties::{CanonicalDecompositionBorrowed, Decomposed};

/// How a text column's values compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Collation {
    #[default]
    Binary,
    IcuRoot,
    MysqlGeneralCi,
}

fn icu() -> &'static CollatorBorrowed<'static> {
    static COLLATOR: OnceLock<CollatorBorrowed<'static>> = OnceLock::new();
    COLLATOR.get_or_init(|| {
        CollatorBorrowed::try_new(Default::default(), CollatorOptions::default())
            .unwrap_or_else(|e| panic!("ICU4X root collation data is compiled in: {e}"))
    })
}

impl Collation {
    /// Orders two strings as the backend does.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Collation::Binary => a.as_bytes().cmp(b.as_bytes()),
            Collation::IcuRoot => icu().compare(a, b).then_with(|| a.as_bytes().cmp(b.as_bytes())),
            Collation::MysqlGeneralCi => general_ci_compare(a, b),
        }
    }

    /// Appends bytes that are equal for two strings exactly when the
    /// collation calls them equal (for GROUP BY and DISTINCT hashing).
    pub fn eq_key(self, s: &str, out: &mut Vec<u8>) {
        match self {
            Collation::Binary | Collation::IcuRoot => out.extend_from_slice(s.as_bytes()),
            Collation::MysqlGeneralCi => {
                let trimmed = s.trim_end_matches(' ');
                for c in trimmed.chars() {
                    let w = general_ci_weight(c);
                    out.extend_from_slice(&w.to_be_bytes()[1..]);
                }
            }
        }
    }

    /// Whether two strings are equal under the collation.
    pub fn equal(self, a: &str, b: &str) -> bool {
        match self {
            Collation::Binary | Collation::IcuRoot => a == b,
            Collation::MysqlGeneralCi => general_ci_compare(a, b) == Ordering::Equal,
        }
    }
}

/// The `utf8mb4_general_ci` weight of one character.
pub fn general_ci_weight(c: char) -> u32 {
    let u = u32::from(c);
    if u < 0x80 {
        return u32::from((c as u8).to_ascii_uppercase());
    }
    if u < 0x100 {
        return latin1_weight(u);
    }
    if u > 0xFFFF {
        return 0xFFFD;
    }
    // Latin Extended-A/B and Greek: the server's table folds accents.
    if (0x100..0x250).contains(&u) || (0x370..0x400).contains(&u) {
        const NFD: CanonicalDecompositionBorrowed<'static> = CanonicalDecompositionBorrowed::new();
        let mut base = c;
        loop {
            match NFD.decompose(base) {
                Decomposed::Default => break,
                Decomposed::Singleton(x) | Decomposed::Expansion(x, _) => base = x,
            }
        }
        if base != c {
            return general_ci_weight(base);
        }
    }
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(x), None) if u32::from(x) <= 0xFFFF => u32::from(x),
        _ => u,
    }
}

/// The server's weights (`plane00` of `my_unicase_default`) for U+0080..U+00FF.
fn latin1_weight(u: u32) -> u32 {
    match u {
        0xB5 => 0x39C,
        0xC0..=0xC5 | 0xE0..=0xE5 => u32::from(b'A'),
        0xC6 | 0xE6 => 0xC6,
        0xC7 | 0xE7 => u32::from(b'C'),
        0xC8..=0xCB | 0xE8..=0xEB => u32::from(b'E'),
        0xCC..=0xCF | 0xEC..=0xEF => u32::from(b'I'),
        0xD0 | 0xF0 => 0xD0,
        0xD1 | 0xF1 => u32::from(b'N'),
        0xD2..=0xD6 | 0xF2..=0xF6 => u32::from(b'O'),
        0xD8 | 0xF8 => 0xD8,
        0xD9..=0xDC | 0xF9..=0xFC => u32::from(b'U'),
        0xDD | 0xFD | 0xFF => u32::from(b'Y'),
        0xDE | 0xFE => 0xDE,
        0xDF => u32::from(b'S'),
        _ => u,
    }
}

/// PAD SPACE comparison: the shorter string is compared as if padded with
/// spaces to the longer one's length.
fn general_ci_compare(a: &str, b: &str) -> Ordering {
    let mut ia = a.chars().map(general_ci_weight);
    let mut ib = b.chars().map(general_ci_weight);
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (Some(x), Some(y)) => match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            },
            (Some(x), None) => {
                return std::iter::once(x)
                    .chain(ia)
                    .map(|w| w.cmp(&0x20))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal);
            }
            (None, Some(y)) => {
                return std::iter::once(y)
                    .chain(ib)
                    .map(|w| 0x20.cmp(&w))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn binary_is_byte_order() {
        let c = Collation::Binary;
        assert_eq!(c.compare("B", "a"), Less);
        assert_eq!(c.compare("a", "ab"), Less);
        assert_eq!(c.compare("é", "z"), Greater);
        assert!(!c.equal("a", "A"));
    }

    #[test]
    fn icu_root_orders_like_en_us() {
        let c = Collation::IcuRoot;
        assert_eq!(c.compare("a", "B"), Less);
        assert_eq!(c.compare("B", "c"), Less);
        // Lower case first at the tertiary level.
        assert_eq!(c.compare("a", "A"), Less);
        assert_eq!(c.compare("é", "f"), Less);
        assert_eq!(c.compare("e", "é"), Less);
        // Punctuation is not ignorable by default (alternate = non-ignorable).
        assert_eq!(c.compare("a-b", "ab"), Less);
        assert_eq!(c.compare("10", "9"), Less);
        // Deterministic: canonically equivalent but different bytes are not equal.
        let nfc = "\u{e9}";
        let nfd = "e\u{301}";
        assert_ne!(c.compare(nfc, nfd), Equal);
        assert!(!c.equal(nfc, nfd));
    }

    #[test]
    fn general_ci_ascii_and_pad_space() {
        let c = Collation::MysqlGeneralCi;
        assert_eq!(c.compare("abc", "ABC"), Equal);
        assert_eq!(c.compare("abc", "abc  "), Equal);
        assert_eq!(c.compare("a", "B"), Less);
        // '_' (0x5F) sorts after upper-cased letters.
        assert_eq!(c.compare("_", "z"), Greater);
        // Shorter string padded with spaces: tab < space.
        assert_eq!(c.compare("a\t", "a"), Less);
        assert_eq!(c.compare("a", "a\t"), Greater);
        assert_eq!(c.compare("a!", "a"), Greater);
        let mut k1 = Vec::new();
        let mut k2 = Vec::new();
        c.eq_key("Hello  ", &mut k1);
        c.eq_key("hELLO", &mut k2);
        assert_eq!(k1, k2);
    }

    #[test]
    fn general_ci_latin1_folds_accents() {
        let c = Collation::MysqlGeneralCi;
        assert_eq!(c.compare("é", "E"), Equal);
        assert_eq!(c.compare("café", "CAFE"), Equal);
        assert_eq!(c.compare("ß", "s"), Equal);
        assert_eq!(c.compare("ÿ", "Y"), Equal);
        assert_eq!(c.compare("Ñ", "n"), Equal);
        assert_eq!(c.compare("æ", "Æ"), Equal);
        assert_eq!(c.compare("æ", "a"), Greater);
        assert_eq!(c.compare("ø", "o"), Greater);
        assert_eq!(c.compare("µ", "μ"), Equal);
        // Beyond Latin-1 (approximated).
        assert_eq!(c.compare("Č", "c"), Equal);
        assert_eq!(c.compare("ά", "Α"), Equal);
        assert_eq!(c.compare("я", "Я"), Equal);
        assert_eq!(c.compare("😀", "😃"), Equal);
    }
}
