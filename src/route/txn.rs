//! The transaction policy: reads may span shards, writes pin a transaction
//! to one shard.
//!
//! A transaction's first write pins it to the write's shard; a later write
//! that needs another shard, or several, is a cross-shard transaction and
//! is refused (the session then puts the transaction in the failed state).
//! Reads go wherever they must, so that drivers that never leave a
//! transaction (autocommit off) can still run scatter reads. The `strict`
//! policy refuses any second shard, reads included; `multi_shard_writes`
//! lets writes reach several shards and documents that the commit is not
//! atomic.

use crate::rules::Rules;
use crate::sharding::ShardId;

use super::error::RouteError;
use super::plan::Plan;

/// How a transaction may use shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnPolicy {
    /// Reads anywhere, writes to one shard.
    #[default]
    SingleShardWrites,
    /// One shard for everything.
    Strict,
    /// Writes to several shards, committed one by one (not atomic).
    MultiShardWrites,
}

/// What the session knows about its open transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnState {
    /// The shard the transaction writes to (or, under `strict`, uses).
    pub pinned: Option<ShardId>,
    /// Shards the transaction has touched, in first-use order.
    pub touched: Vec<ShardId>,
}

impl TxnState {
    /// Admits a planned statement into the transaction, pinning it on its
    /// first write; refuses it when it breaks the policy.
    pub fn admit(&mut self, plan: &Plan, policy: TxnPolicy, rules: &Rules) -> Result<(), RouteError> {
        let writes = plan.writes();
        let shards: Vec<ShardId> = plan.shards().collect();
        let pins = match policy {
            TxnPolicy::Strict => true,
            TxnPolicy::SingleShardWrites => writes,
            TxnPolicy::MultiShardWrites => false,
        };
        if pins {
            let wanted =
                |shards: &[ShardId]| shards.iter().map(|s| rules.shard(*s).name.clone()).collect::<Vec<_>>().join(", ");
            let candidate = match (self.pinned, shards.as_slice()) {
                (Some(p), s) if s.iter().all(|x| *x == p) => p,
                (None, [one]) if policy != TxnPolicy::Strict || self.touched.iter().all(|t| t == one) => *one,
                (pinned, s) => {
                    let pinned = pinned.or_else(|| self.touched.first().copied());
                    return Err(RouteError::CrossShardTransaction {
                        pinned: pinned.map(|p| rules.shard(p).name.clone()),
                        wanted: wanted(s),
                    });
                }
            };
            self.pinned = Some(candidate);
        }
        for s in shards {
            if !self.touched.contains(&s) {
                self.touched.push(s);
            }
        }
        Ok(())
    }
}
