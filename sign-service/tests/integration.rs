//! The cosigner's integration tests, as ONE test binary (each file below is a module):
//! real `sign-service` and `sign-gateway` processes on loopback, the device and
//! recovery parties played in-process (`common`). One binary instead of one per file:
//! `common` and the dependencies are compiled and linked once (CI time), and nextest
//! still runs every test in its own process (`file::test_name`, e.g.
//! `cargo nextest run --manifest-path sign-service/Cargo.toml -E 'test(/^policy::/)'`).

mod common;

mod audit;
mod controls;
mod creation;
mod drain;
mod enroll;
mod import;
mod keyfile;
mod lifecycle;
mod observability;
mod paillier_bound;
mod pkcs11;
mod policy;
mod postgres;
mod presign;
mod presign_fair;
mod registration;
mod replay;
mod rollback;
mod server;
mod tls;
