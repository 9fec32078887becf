//! Splitting COPY … FROM STDIN data into rows and reading each row's key.
//!
//! Rows are passed on byte for byte; only the key field is decoded (text
//! format escapes, CSV quoting) so that the router can place the row.

use crate::route::CopyFormat;

/// A field's value as COPY would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Null,
    Value(String),
}

/// One complete row of input.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    /// The row's bytes, line end included.
    pub bytes: Vec<u8>,
    /// The key field, when a key column was asked for; `None` for the
    /// end-of-data marker `\.`.
    pub key: Option<Field>,
    pub end_marker: bool,
}

/// Accumulates CopyData payloads and yields whole rows.
pub struct RowSplitter {
    format: CopyFormat,
    key_index: Option<usize>,
    buf: Vec<u8>,
    /// The first row of a CSV file with HEADER is not data.
    skip_header: bool,
}

impl RowSplitter {
    pub fn new(format: CopyFormat, key_index: Option<usize>) -> Self {
        let skip_header = matches!(format, CopyFormat::Csv { header: true, .. });
        RowSplitter { format, key_index, buf: Vec::new(), skip_header }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether unterminated bytes remain (a last line without newline).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Treats the remaining bytes as a last row without a line end.
    pub fn finish(&mut self) -> Result<Option<(Row, bool)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        self.buf.push(b'\n');
        self.next_row()
    }

    /// The next complete row, and whether it is the CSV header.
    pub fn next_row(&mut self) -> Result<Option<(Row, bool)>, String> {
        let end = match &self.format {
            CopyFormat::Text { .. } => self.buf.iter().position(|&b| b == b'\n'),
            CopyFormat::Csv { quote, escape, .. } => csv_line_end(&self.buf, *quote, *escape),
        };
        let Some(end) = end else { return Ok(None) };
        let bytes: Vec<u8> = self.buf.drain(..=end).collect();
        let header = std::mem::take(&mut self.skip_header);
        let line = trim_line_end(&bytes);
        if line == b"\\." {
            return Ok(Some((Row { bytes, key: None, end_marker: true }, false)));
        }
        let key = match (self.key_index, header) {
            (Some(k), false) => Some(match &self.format {
                CopyFormat::Text { delimiter, null } => text_field(line, *delimiter, null, k)?,
                CopyFormat::Csv { delimiter, quote, escape, null, .. } => {
                    csv_field(line, *delimiter, *quote, *escape, null, k)?
                }
            }),
            _ => None,
        };
        Ok(Some((Row { bytes, key, end_marker: false }, header)))
    }
}

fn trim_line_end(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Where a CSV record ends: the first newline outside quotes.
fn csv_line_end(buf: &[u8], quote: u8, escape: u8) -> Option<usize> {
    let mut in_quotes = false;
    let mut i = 0;
    while i < buf.len() {
        let b = buf[i];
        if in_quotes {
            if b == escape && escape != quote && buf.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            if b == quote {
                if buf.get(i + 1) == Some(&quote) && escape == quote {
                    i += 2;
                    continue;
                }
                in_quotes = false;
            }
        } else if b == quote {
            in_quotes = true;
        } else if b == b'\n' {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Field `k` of a text-format line, unescaped.
fn text_field(line: &[u8], delimiter: u8, null: &str, k: usize) -> Result<Field, String> {
    let raw = line.split(|&b| b == delimiter).nth(k).ok_or_else(|| format!("the row has no column {}", k + 1))?;
    if raw == null.as_bytes() {
        return Ok(Field::Null);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            let c = raw[i + 1];
            out.push(match c {
                b'b' => 8,
                b'f' => 12,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 11,
                other => other,
            });
            i += 2;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Field::Value).map_err(|_| "the key is not valid UTF-8".to_string())
}

/// Field `k` of a CSV record, unquoted.
fn csv_field(line: &[u8], delimiter: u8, quote: u8, escape: u8, null: &str, k: usize) -> Result<Field, String> {
    let mut field = 0;
    let mut i = 0;
    loop {
        // Parse one field starting at i.
        let mut value = Vec::new();
        let mut quoted = false;
        if line.get(i) == Some(&quote) {
            quoted = true;
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err("unterminated CSV quoted field".into()),
                    // A distinct escape character escapes a quote or itself.
                    Some(&b)
                        if escape != quote
                            && b == escape
                            && matches!(line.get(i + 1), Some(&n) if n == quote || n == escape) =>
                    {
                        value.push(line[i + 1]);
                        i += 2;
                    }
                    Some(&b) if b == quote => {
                        if escape == quote && line.get(i + 1) == Some(&quote) {
                            value.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        }
        while let Some(&b) = line.get(i) {
            if b == delimiter {
                break;
            }
            value.push(b);
            i += 1;
        }
        if field == k {
            if !quoted && value == null.as_bytes() {
                return Ok(Field::Null);
            }
            return String::from_utf8(value).map(Field::Value).map_err(|_| "the key is not valid UTF-8".to_string());
        }
        if line.get(i) != Some(&delimiter) {
            return Err(format!("the row has no column {}", k + 1));
        }
        i += 1;
        field += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> CopyFormat {
        CopyFormat::Text { delimiter: b'\t', null: "\\N".into() }
    }

    fn csv(header: bool) -> CopyFormat {
        CopyFormat::Csv { delimiter: b',', quote: b'"', escape: b'"', header, null: String::new() }
    }

    fn rows(format: CopyFormat, key: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, Option<Field>, bool)> {
        let mut s = RowSplitter::new(format, Some(key));
        let mut out = Vec::new();
        for c in chunks {
            s.push(c);
            while let Some((r, header)) = s.next_row().unwrap() {
                out.push((r.bytes, r.key, header));
            }
        }
        while let Some((r, header)) = s.finish().unwrap() {
            out.push((r.bytes, r.key, header));
        }
        out
    }

    #[test]
    fn text_rows_split_across_chunks() {
        let r = rows(text(), 1, &[b"a\t4", b"2\tx\nb\t\\N\ty\nc\t7\\t\tz"]);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].0, b"a\t42\tx\n");
        assert_eq!(r[0].1, Some(Field::Value("42".into())));
        assert_eq!(r[1].1, Some(Field::Null));
        assert_eq!(r[2].1, Some(Field::Value("7\t".into())));
        assert_eq!(r[2].0, b"c\t7\\t\tz\n", "a last line without newline gets one");
    }

    #[test]
    fn csv_quotes_and_newlines() {
        let r = rows(csv(true), 0, &[b"id,name\n1,\"a\nb\"\n\"2\",\"say \"\"hi\"\"\"\n,x\n"]);
        assert_eq!(r.len(), 4);
        assert!(r[0].2, "header");
        assert_eq!(r[0].1, None);
        assert_eq!(r[1].1, Some(Field::Value("1".into())));
        assert_eq!(r[1].0, b"1,\"a\nb\"\n");
        assert_eq!(r[2].1, Some(Field::Value("2".into())));
        assert_eq!(r[3].1, Some(Field::Null));
    }

    #[test]
    fn end_marker() {
        let mut s = RowSplitter::new(text(), Some(0));
        s.push(b"1\n\\.\n");
        assert!(!s.next_row().unwrap().unwrap().0.end_marker);
        assert!(s.next_row().unwrap().unwrap().0.end_marker);
    }
}
