//! # wallet-types — the wallet's shared vocabulary
//!
//! One definition of what every component must agree on, so that no two places spell
//! it differently:
//! - [`ErrorCode`]: the error codes of the whole system. The cosigner puts them on the
//!   wire (`google.rpc.ErrorInfo.reason`), the Rust client returns them
//!   (`MpcError::code`), the CLI prints them (`--json`), the bindings raise them
//!   (`MpcException` variants) and the npm package throws them (`WalletError.code`).
//!   `docs/errors.md` is the table.
//!
//! Nothing here does I/O or depends on the protocol library; the crate compiles for
//! every target the wallet runs on.

#![forbid(unsafe_code)]
#![forbid(missing_docs)]

mod error_code;

pub use error_code::{ErrorCode, UnknownErrorCode, ERROR_DOMAIN};
