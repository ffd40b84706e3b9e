//! The recovery agent's integration tests: real agent, gateway and cosigner processes.
//! One test binary (each file of `tests/` is a module of it) instead of one per file:
//! the shared code and the dependencies are compiled and linked once (CI time);
//! nextest still runs every test in its own process, named `file::test`.

mod common;

mod agent_lifecycle;

mod browser_cors;
mod enroll_wallet;
mod enrollment;
mod http;
mod tls;
mod wallet;
