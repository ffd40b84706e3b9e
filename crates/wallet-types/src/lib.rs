//! # wallet-types — the wallet's shared vocabulary
//!
//! One definition of what every component must agree on, so that no two places spell
//! it differently:
//! - [`ErrorCode`]: the error codes of the whole system. The cosigner puts them on the
//!   wire (`google.rpc.ErrorInfo.reason`), the Rust client returns them
//!   (`MpcError::code`), the CLI prints them (`--json`), the bindings raise them
//!   (`MpcException.code`) and the npm package throws them (`WalletError.code`).
//!   `docs/errors.md` is the table.
//! - [`party`]: the parties' keygen indices ([`DEVICE`], [`COSIGNER`], [`RECOVERY`]) and
//!   the user's roles ([`PartyRole`]).
//! - [`kinds`]: [`AccountKind`], [`DigestKind`], [`PayloadKind`].
//! - [`limits`]: [`MAX_ACCOUNTS`], [`MAX_PREIMAGE_LEN`], [`PRESIGN_CHUNK`], id rules.
//! - [`origin`]: the browser origins servers list for CORS (web pages and browser
//!   extensions, exact origins only).
//!
//! With the `uniffi` feature the enums derive `uniffi::Enum` here, where they are
//! declared, so the bindings use them as they are.
//!
//! Nothing here does I/O or depends on the protocol library; the crate compiles for
//! every target the wallet runs on.

#![forbid(unsafe_code)]
// (UniFFI's generated scaffolding allows missing docs on its items: deny, not forbid,
// when it is compiled in.)
#![cfg_attr(not(feature = "uniffi"), forbid(missing_docs))]
#![cfg_attr(feature = "uniffi", deny(missing_docs))]

mod error_code;
pub mod kinds;
pub mod limits;
pub mod origin;
pub mod party;

pub use error_code::{ErrorCode, UnknownErrorCode, ERROR_DOMAIN};
pub use kinds::{AccountKind, DigestKind, PayloadKind};
pub use limits::{
    valid_presignature_id, MAX_ACCOUNTS, MAX_ACCOUNT_ID_LEN, MAX_PREIMAGE_LEN,
    MAX_PRESIGNATURE_ID_LEN, PRESIGN_CHUNK,
};
pub use party::{PartyIndex, PartyRole, COSIGNER, DEVICE, PARTIES, RECOVERY, THRESHOLD};

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
