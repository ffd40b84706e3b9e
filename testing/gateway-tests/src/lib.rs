//! Contract test harness of the wallet's two SSE gateways.
//!
//! - [`process`]: starts `sign-gateway` or `edge-gateway` (under `wrangler dev`) as a real
//!   process on a free loopback port and stops it on drop;
//! - [`contract`]: the contract checks, run unchanged against both;
//! - [`metrics`]: reads `/metrics` (OpenMetrics text) and checks the edge's;
//! - [`redis`]: a real `redis-server` for the gateway's Redis room store (the
//!   `test-servers` crate's, re-exported);
//! - [`tls`]: a CA and server certificates made at run time for the TLS tests.
//!
//! The suite itself is `crates/sign-gateway/tests/contract.rs` (it needs the
//! `sign-gateway` binary, which Cargo only provides to that package's tests). This is test
//! support code, so it reports failures with `anyhow`.

pub mod contract;
pub mod metrics;
pub mod process;
pub use test_servers::redis;
pub mod tls;
