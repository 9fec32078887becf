//! Wire front ends, one per database protocol. Everything dialect-specific
//! lives here; what they share (router, pools, transaction policy, merge)
//! lives outside.

pub mod postgres;
