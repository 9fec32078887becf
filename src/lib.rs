//! shardgate: a database sharding proxy for PostgreSQL and MySQL.
//!
//! The path of one statement through the crate:
//! client bytes → [`protocol`] front end → session → [`route`] (plan) →
//! executor (fan-out) → merge → [`protocol`] → client.
//! See ARCHITECTURE.md for the drawing.

pub mod backend;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod error;
pub mod merge;
pub mod pool;
pub mod protocol;
pub mod route;
pub mod rules;
pub mod server;
pub mod sharding;
