//! The client's error: the core's one error type ([`client_core::ClientError`]), with
//! `code()` and `rule()`; plus the mapping of this crate's file errors onto it.

use mpc_core::keystore::KeystoreError;

/// Why a client operation failed: one flat enum a mobile app can switch on, with
/// [`MpcError::code`] (a `wallet_types::ErrorCode`) as the machine-readable category.
pub use client_core::ClientError as MpcError;

/// Maps a key-store error on the file at `path`.
pub(crate) fn keystore_error(path: &std::path::Path, e: KeystoreError) -> MpcError {
    let p = path.display().to_string();
    match e {
        KeystoreError::WrongPassphrase => MpcError::WrongPassphrase { path: p },
        KeystoreError::EmptyPassphrase => {
            MpcError::config(format!("the passphrase for {p} is empty"))
        }
        KeystoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            MpcError::NoWallet { path: p }
        }
        KeystoreError::Io { source, .. } => MpcError::io(p, source),
        other => MpcError::corrupt(p, other),
    }
}

/// A file error at `path`.
pub(crate) fn io_error(path: &std::path::Path, e: impl std::fmt::Display) -> MpcError {
    MpcError::io(path.display(), e)
}
