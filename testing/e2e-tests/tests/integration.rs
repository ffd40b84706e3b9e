//! End-to-end tests across real processes on loopback.
//! One test binary (each file of `tests/` is a module of it) instead of one per file:
//! the shared code and the dependencies are compiled and linked once (CI time);
//! nextest still runs every test in its own process, named `file::test`.

mod e2e;
mod evm;
mod presign;
