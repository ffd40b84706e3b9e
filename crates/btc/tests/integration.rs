//! wallet-btc's integration tests: BIP-143 vectors, PSBT analysis, Bitcoin Core's script interpreter.
//! One test binary (each file of `tests/` is a module of it) instead of one per file:
//! the shared code and the dependencies are compiled and linked once (CI time);
//! nextest still runs every test in its own process, named `file::test`.

mod common;

mod bad_input;
mod bip143;
mod end_to_end;
mod keys_descriptors;
mod psbt_v2;
