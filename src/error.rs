//! Error codes shared by both front ends.
//!
//! Every error shardgate raises on its own (as opposed to errors a shard
//! returns, which are forwarded untouched) belongs to one [`ErrorCode`]. The
//! code decides the SQLSTATE a PostgreSQL client sees and the error number a
//! MySQL client sees, so that drivers and applications can react to the class
//! of the error without parsing its message.

/// The classes of errors shardgate raises itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A write inside a transaction needs a shard other than the one the
    /// transaction is pinned to.
    CrossShardTransaction,
    /// The statement cannot be routed or merged exactly (a join or subquery
    /// across shards, an unsupported construct, a sharding-key update, a
    /// write without a sharding key).
    Unsupported,
    /// The statement could not be parsed.
    Syntax,
    /// A table with no rule and no default shard.
    UnknownTable,
    /// A guard rail or buffer cap refused the statement.
    LimitExceeded,
    /// A shard is down or unreachable.
    ShardUnavailable,
    /// A statement or checkout ran past its timeout.
    Timeout,
    /// An INSERT gives NULL for the sharding key.
    NullKey,
    /// A sharding-key value has no shard (outside every time range).
    NoShardForKey,
    /// A sharding-key value cannot be read as the key's type.
    InvalidKeyValue,
    /// A parameter reference with no bound value, or a malformed parameter.
    InvalidParameter,
}

impl ErrorCode {
    /// The PostgreSQL SQLSTATE for this class.
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorCode::CrossShardTransaction | ErrorCode::Unsupported => "0A000",
            ErrorCode::Syntax => "42601",
            ErrorCode::UnknownTable => "42P01",
            ErrorCode::LimitExceeded => "54000",
            ErrorCode::ShardUnavailable => "08006",
            ErrorCode::Timeout => "57014",
            ErrorCode::NullKey => "23502",
            // The code PostgreSQL itself gives when no partition accepts a row.
            ErrorCode::NoShardForKey => "23514",
            ErrorCode::InvalidKeyValue => "22P02",
            ErrorCode::InvalidParameter => "08P01",
        }
    }

    /// The MySQL error number and SQLSTATE for this class.
    pub fn mysql(self) -> (u16, &'static str) {
        match self {
            ErrorCode::CrossShardTransaction | ErrorCode::Unsupported => (1235, "42000"),
            ErrorCode::Syntax => (1064, "42000"),
            ErrorCode::UnknownTable => (1146, "42S02"),
            ErrorCode::LimitExceeded => (1104, "42000"),
            ErrorCode::ShardUnavailable => (1105, "HY000"),
            ErrorCode::Timeout => (3024, "HY000"),
            ErrorCode::NullKey => (1048, "23000"),
            // ER_NO_PARTITION_FOR_GIVEN_VALUE
            ErrorCode::NoShardForKey => (1526, "HY000"),
            // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
            ErrorCode::InvalidKeyValue => (1366, "HY000"),
            // ER_WRONG_ARGUMENTS
            ErrorCode::InvalidParameter => (1210, "HY000"),
        }
    }
}

/// Anything that can be reported to a client with a code.
pub trait Coded: std::error::Error {
    fn code(&self) -> ErrorCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_required_by_both_front_ends() {
        assert_eq!(ErrorCode::CrossShardTransaction.sqlstate(), "0A000");
        assert_eq!(ErrorCode::CrossShardTransaction.mysql(), (1235, "42000"));
        assert_eq!(ErrorCode::Syntax.mysql(), (1064, "42000"));
        assert_eq!(ErrorCode::UnknownTable.sqlstate(), "42P01");
        assert_eq!(ErrorCode::UnknownTable.mysql(), (1146, "42S02"));
        assert_eq!(ErrorCode::LimitExceeded.sqlstate(), "54000");
        assert_eq!(ErrorCode::ShardUnavailable.mysql(), (1105, "HY000"));
        assert_eq!(ErrorCode::Timeout.sqlstate(), "57014");
        assert_eq!(ErrorCode::Timeout.mysql(), (3024, "HY000"));
    }
}
