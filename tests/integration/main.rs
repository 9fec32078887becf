//! Integration tests: one test binary, so shared clusters (see
//! `support::cluster`) start once per run.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod demo;
mod differential;
mod pg_cancel;
mod pg_copy;
mod pg_frontend;
mod pg_session_pool;
mod pg_settings;
mod pg_tls;
mod pgbench;
