//! Errors of the merge.

use crate::error::{Coded, ErrorCode};

/// What can go wrong while combining the shards' rows.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A cell could not be read as its column's type.
    #[error("column {column}: cannot read a {kind} value: {detail}")]
    Decode { column: usize, kind: &'static str, detail: String },
    /// A merged value could not be written in the column's format.
    #[error("column {column}: cannot write the merged value: {detail}")]
    Encode { column: usize, detail: String },
    /// A buffered merge (GROUP BY, aggregates, DISTINCT) passed its cap.
    #[error(
        "the merge would buffer more than {limit} {what} across shards; narrow the query or raise the merge buffer cap"
    )]
    LimitExceeded { what: &'static str, limit: u64 },
    /// A row has another width than the result's columns.
    #[error("a shard row has {got} columns, the result has {expected}")]
    Width { got: usize, expected: usize },
    /// The plan names a column the result does not have.
    #[error("the merge plan names column {column} of a {width}-column result")]
    BadColumn { column: String, width: usize },
    /// A value the merge cannot combine exactly (NaN numerics, sums of a
    /// type that has no sum, …).
    #[error("cannot merge {0}")]
    Unsupported(String),
    /// A combined value does not fit its type (a sum of bigints past 2^63).
    #[error("{0} out of range")]
    Overflow(&'static str),
}

impl Coded for MergeError {
    fn code(&self) -> ErrorCode {
        match self {
            MergeError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            // No data-exception class exists yet; these are refusals to
            // answer something the proxy cannot answer exactly.
            MergeError::Decode { .. }
            | MergeError::Encode { .. }
            | MergeError::Width { .. }
            | MergeError::BadColumn { .. }
            | MergeError::Unsupported(_)
            | MergeError::Overflow(_) => ErrorCode::Unsupported,
        }
    }
}

/// An error while reading merged rows: a shard's own error (forwarded
/// untouched, with the index of the shard) or the merge's.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    #[error("shard {shard}: {error}")]
    Shard { shard: usize, error: E },
    #[error(transparent)]
    Merge(#[from] MergeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_map_to_limit_exceeded() {
        let e = MergeError::LimitExceeded { what: "rows", limit: 10 };
        assert_eq!(e.code(), ErrorCode::LimitExceeded);
        assert_eq!(e.code().sqlstate(), "54000");
        assert!(e.to_string().contains("10 rows"));
        assert_eq!(MergeError::Overflow("bigint").code(), ErrorCode::Unsupported);
    }
}
