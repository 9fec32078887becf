//! Columns, raw rows and the per-dialect cell codec.

pub use super::collation::Collation;
use super::error::MergeError;
use super::value::Value;

/// What the merge needs to know of a result column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Int,
    Numeric,
    Float,
    Text(Collation),
    Bool,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Bytes,
    /// Any other type: passed through untouched; the merge refuses to sort,
    /// group or aggregate on it.
    Other,
}

impl ColumnKind {
    pub fn collation(self) -> Collation {
        match self {
            ColumnKind::Text(c) => c,
            _ => Collation::Binary,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Int => "integer",
            ColumnKind::Numeric => "numeric",
            ColumnKind::Float => "float",
            ColumnKind::Text(_) => "text",
            ColumnKind::Bool => "boolean",
            ColumnKind::Date => "date",
            ColumnKind::Time => "time",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::TimestampTz => "timestamptz",
            ColumnKind::Uuid => "uuid",
            ColumnKind::Bytes => "bytes",
            ColumnKind::Other => "other",
        }
    }
}

/// Reads and writes cells of one result in one dialect and format.
///
/// `column` indexes the shards' result columns (hidden ones included).
/// `decode` reads a shard's cell; `encode` writes a merged value in the
/// format the client gets for that column, which for a retyped column (see
/// [`super::Merger::retyped_columns`]) is the new type.
pub trait CellCodec: Send + Sync {
    fn decode(&self, column: usize, raw: &[u8]) -> Result<Value, MergeError>;
    fn encode(&self, column: usize, value: &Value, out: &mut Vec<u8>) -> Result<(), MergeError>;
}

const NULL_START: u32 = u32::MAX;

/// One result row: every cell's raw bytes in one buffer. A cell is `None`
/// for SQL NULL. Two allocations per row however wide it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    buf: Vec<u8>,
    /// (start, len) per cell; start == u32::MAX for NULL.
    cells: Vec<(u32, u32)>,
}

impl Row {
    pub fn new() -> Self {
        Row::default()
    }

    pub fn with_capacity(cells: usize, bytes: usize) -> Self {
        Row { buf: Vec::with_capacity(bytes), cells: Vec::with_capacity(cells) }
    }

    /// A row from cells (convenient in tests and simple front ends).
    pub fn from_cells<'a>(cells: impl IntoIterator<Item = Option<&'a [u8]>>) -> Self {
        let mut r = Row::new();
        for c in cells {
            r.push(c);
        }
        r
    }

    pub fn push(&mut self, cell: Option<&[u8]>) {
        match cell {
            None => self.cells.push((NULL_START, 0)),
            Some(b) => {
                let start = self.buf.len() as u32;
                self.buf.extend_from_slice(b);
                self.cells.push((start, b.len() as u32));
            }
        }
    }

    pub fn push_null(&mut self) {
        self.push(None);
    }

    /// Appends a cell written in place by `write`.
    pub fn push_with<E>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let start = self.buf.len();
        write(&mut self.buf)?;
        self.cells.push((start as u32, (self.buf.len() - start) as u32));
        Ok(())
    }

    /// Appends a value: NULL as NULL, anything else through the codec.
    pub fn push_value(&mut self, codec: &dyn CellCodec, column: usize, value: &Value) -> Result<(), MergeError> {
        if value.is_null() {
            self.push_null();
            Ok(())
        } else {
            self.push_with(|out| codec.encode(column, value, out))
        }
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &(start, len) = self.cells.get(i)?;
        if start == NULL_START { None } else { Some(&self.buf[start as usize..(start + len) as usize]) }
    }

    pub fn is_null(&self, i: usize) -> bool {
        self.cells.get(i).is_none_or(|c| c.0 == NULL_START)
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Keeps the first `n` cells (drops hidden trailing columns).
    pub fn truncate(&mut self, n: usize) {
        if n >= self.cells.len() {
            return;
        }
        self.cells.truncate(n);
        let end = self.cells.iter().filter(|c| c.0 != NULL_START).map(|c| (c.0 + c.1) as usize).max().unwrap_or(0);
        self.buf.truncate(end);
    }

    /// Bytes held (for buffer caps).
    pub fn byte_len(&self) -> usize {
        self.buf.len() + self.cells.len() * std::mem::size_of::<(u32, u32)>()
    }

    pub fn cells(&self) -> impl Iterator<Item = Option<&[u8]>> {
        (0..self.len()).map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hold_cells_and_nulls() {
        let mut r = Row::from_cells([Some(&b"ab"[..]), None, Some(b""), Some(b"xyz")]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(0), Some(&b"ab"[..]));
        assert_eq!(r.get(1), None);
        assert!(r.is_null(1));
        assert_eq!(r.get(2), Some(&b""[..]));
        assert_eq!(r.get(3), Some(&b"xyz"[..]));
        assert_eq!(r.get(4), None);
        r.truncate(2);
        assert_eq!(r.len(), 2);
        assert_eq!(r.cells().collect::<Vec<_>>(), vec![Some(&b"ab"[..]), None]);
        assert_eq!(r.byte_len(), 2 + 16);
    }
}
