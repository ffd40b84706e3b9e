//! A party's enrollment: the aux info it ran ahead of wallet creation, with the
//! identities it ran it with, stored encrypted until a wallet is created from it.
//!
//! An enrollment is a key-share bundle with aux info and no accounts
//! ([`mpc_core::keystore::KeyShareBundle`], same Argon2id + XChaCha20-Poly1305 file)
//! plus the cosigner's enrollment id and expiry, in a small versioned envelope:
//!
//! ```json
//! { "format": "wallet-mpc/enrollment", "version": 1, "party_index": 0,
//!   "enrollment_id": "…", "expires_at_ms": 1800000000000,
//!   "shares": { "format": "wallet-mpc/key-shares", "version": 1, … } }
//! ```
//!
//! The envelope's fields are bound into the key derivation of the inner file (the
//! passphrase is extended with them), so editing any of them is detected exactly like
//! a wrong passphrase, and an enrollment's inner file does not open as a key-share file
//! under the plain passphrase.

use std::collections::BTreeMap;

use cosigner_api::auth;
use mpc_core::keystore::{KdfParams, KeyShareBundle, KeystoreError};
use mpc_core::AuxInfo;
use mpc_wire::{IdentityKey, PublicIdentity};
use serde::{Deserialize, Serialize};
use wallet_types::{COSIGNER, DEVICE, PARTIES, RECOVERY};
use zeroize::Zeroizing;

use crate::error::ClientError;

/// The `format` field of an enrollment file.
pub const ENROLLMENT_FORMAT: &str = "wallet-mpc/enrollment";
/// The enrollment file version this build writes and reads.
pub const ENROLLMENT_VERSION: u32 = 1;

/// One party's enrollment (device or recovery): its identity key, its aux info, the
/// peers' public identities, and the cosigner's enrollment id and expiry. Independent
/// of the accounts' kind: any wallet can be created from it, once.
#[derive(Clone)]
pub struct Enrollment {
    /// The cosigner's enrollment id (a later `CreateWallet.enrollment_id`).
    pub enrollment_id: String,
    /// This party's keygen index (0 device, 2 recovery).
    pub party_index: u16,
    /// This party's identity key (secret).
    pub identity: IdentityKey,
    /// This party's aux info (the Paillier keys and proofs).
    pub aux_info: AuxInfo,
    /// The public identities of the two other parties, by keygen index.
    pub peers: BTreeMap<u16, PublicIdentity>,
    /// The cosigner forgets the enrollment then (ms since the Unix epoch; 0: unknown).
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("enrollment_id", &self.enrollment_id)
            .field("party_index", &self.party_index)
            .field("identity", &self.identity.public())
            .field("peers", &self.peers)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Checks an enrollment id (the wallet id's alphabet: 1..=128 of `A-Z a-z 0-9 . _ : -`,
/// and not only dots, so that it can name a file).
pub fn validate_enrollment_id(id: &str) -> Result<(), ClientError> {
    auth::validate_wallet_id(id).map_err(|e| ClientError::input(format!("enrollment id: {e}")))?;
    if id.chars().all(|c| c == '.') {
        return Err(ClientError::input("enrollment id: only dots"));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct FileRepr {
    format: String,
    version: u64,
    party_index: u16,
    enrollment_id: String,
    expires_at_ms: u64,
    shares: serde_json::Value,
}

/// What an enrollment file says in clear (not authenticated until it is decrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentHeader {
    /// The enrollment id.
    pub enrollment_id: String,
    /// The party whose enrollment it is.
    pub party_index: u16,
    /// The cosigner forgets it then (ms since the Unix epoch; 0: unknown).
    pub expires_at_ms: u64,
}

impl EnrollmentHeader {
    /// Reads the clear part of an enrollment file (to list enrollments without the
    /// passphrase); `path` names it in errors.
    pub fn read(text: &str, path: &str) -> Result<Self, ClientError> {
        let file: FileRepr = serde_json::from_str(text)
            .map_err(|e| ClientError::corrupt(path, format!("not an enrollment file: {e}")))?;
        if file.format != ENROLLMENT_FORMAT {
            return Err(ClientError::corrupt(path, "not an enrollment file"));
        }
        Ok(EnrollmentHeader {
            enrollment_id: file.enrollment_id,
            party_index: file.party_index,
            expires_at_ms: file.expires_at_ms,
        })
    }
}

impl Enrollment {
    /// The cosigner's public identity (party 1).
    pub fn cosigner_identity(&self) -> Option<PublicIdentity> {
        self.peers.get(&COSIGNER).copied()
    }

    /// The device's public identity (party 0: this party's own for a device
    /// enrollment).
    pub fn device_identity(&self) -> Option<PublicIdentity> {
        if self.party_index == DEVICE {
            Some(self.identity.public())
        } else {
            self.peers.get(&DEVICE).copied()
        }
    }

    /// The recovery party's public identity (party 2).
    pub fn recovery_identity(&self) -> Option<PublicIdentity> {
        if self.party_index == RECOVERY {
            Some(self.identity.public())
        } else {
            self.peers.get(&RECOVERY).copied()
        }
    }

    /// Whether the cosigner has forgotten it at `now_ms` (never when the expiry is
    /// unknown).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && now_ms >= self.expires_at_ms
    }

    /// Checks the id, the party index and the peers (the other two parties, distinct
    /// identities).
    pub fn validate(&self) -> Result<(), ClientError> {
        validate_enrollment_id(&self.enrollment_id)?;
        if self.party_index >= PARTIES || self.party_index == COSIGNER {
            return Err(ClientError::input(format!(
                "an enrollment of party {} (only 0 and 2 enroll)",
                self.party_index
            )));
        }
        let expected: Vec<u16> = (0..PARTIES).filter(|&i| i != self.party_index).collect();
        if self.peers.keys().copied().collect::<Vec<_>>() != expected {
            return Err(ClientError::input(format!(
                "an enrollment needs the identities of parties {expected:?}"
            )));
        }
        let me = self.identity.public();
        let ids: Vec<PublicIdentity> = self.peers.values().copied().collect();
        if ids.contains(&me) || ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(ClientError::input(
                "the three parties' identities must differ",
            ));
        }
        Ok(())
    }

    /// The enrollment as a key-share bundle with no accounts (aux info, identity secret,
    /// peers), the form the keystore encrypts.
    pub fn to_bundle(&self) -> KeyShareBundle {
        let mut b = KeyShareBundle::new(self.party_index);
        b.aux_info = Some(self.aux_info.clone());
        b.identity_secret = Some(self.identity.to_seed_hex().to_string());
        b.peers = self
            .peers
            .iter()
            .map(|(&i, id)| (i, id.to_string()))
            .collect();
        b
    }

    /// An enrollment from a party's bundle holding aux info and no accounts (what a
    /// [`crate::Join`] of the aux-info room alone gives).
    pub fn from_bundle(
        enrollment_id: String,
        expires_at_ms: u64,
        bundle: &KeyShareBundle,
    ) -> Result<Self, ClientError> {
        let bad = |why: String| ClientError::corrupt("enrollment", why);
        if !bundle.accounts.is_empty() {
            return Err(bad("an enrollment holds no accounts".into()));
        }
        let aux_info = bundle
            .aux_info
            .clone()
            .ok_or_else(|| bad("no aux info".into()))?;
        let secret = bundle
            .identity_secret
            .as_deref()
            .ok_or_else(|| bad("no identity secret".into()))?;
        let identity =
            IdentityKey::from_seed_hex(secret).map_err(|e| bad(format!("identity: {e}")))?;
        let peers = bundle
            .peers
            .iter()
            .map(|(&i, hex)| {
                hex.parse::<PublicIdentity>()
                    .map(|id| (i, id))
                    .map_err(|e| bad(format!("identity of party {i}: {e}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let e = Enrollment {
            enrollment_id,
            party_index: bundle.party_index,
            identity,
            aux_info,
            peers,
            expires_at_ms,
        };
        e.validate().map_err(|err| match err {
            ClientError::InvalidInput { reason } => bad(reason),
            other => other,
        })?;
        Ok(e)
    }

    /// The enrollment file, encrypted under `passphrase` (see the module docs).
    pub fn encrypt(&self, passphrase: &str, params: KdfParams) -> Result<String, ClientError> {
        self.validate()?;
        if passphrase.is_empty() {
            return Err(ClientError::config("the passphrase is empty"));
        }
        let mut file = FileRepr {
            format: ENROLLMENT_FORMAT.into(),
            version: u64::from(ENROLLMENT_VERSION),
            party_index: self.party_index,
            enrollment_id: self.enrollment_id.clone(),
            expires_at_ms: self.expires_at_ms,
            shares: serde_json::Value::Null,
        };
        let key = bound_passphrase(passphrase, &file);
        let inner = self
            .to_bundle()
            .encrypt(&key, params)
            .map_err(|e| keystore_error("enrollment", e))?;
        file.shares = serde_json::from_str(&inner)
            .map_err(|e| ClientError::internal(format!("enrollment: {e}")))?;
        serde_json::to_string_pretty(&file)
            .map_err(|e| ClientError::internal(format!("enrollment: {e}")))
    }

    /// Opens an enrollment file; `path` names it in errors. A wrong passphrase and any
    /// modification give [`ClientError::WrongPassphrase`]; another file or version
    /// [`ClientError::CorruptFile`].
    pub fn decrypt(text: &str, passphrase: &str, path: &str) -> Result<Self, ClientError> {
        if passphrase.is_empty() {
            return Err(ClientError::config("the passphrase is empty"));
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ClientError::corrupt(path, format!("not JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(ENROLLMENT_FORMAT) {
            return Err(ClientError::corrupt(
                path,
                format!("not an enrollment file (missing \"format\": \"{ENROLLMENT_FORMAT}\")"),
            ));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(ENROLLMENT_VERSION) => {}
            Some(v) => {
                return Err(ClientError::corrupt(
                    path,
                    format!(
                        "unsupported enrollment file version {v} (this build reads version {ENROLLMENT_VERSION})"
                    ),
                ))
            }
            None => return Err(ClientError::corrupt(path, "missing version")),
        }
        let file: FileRepr =
            serde_json::from_value(value).map_err(|e| ClientError::corrupt(path, e))?;
        let key = bound_passphrase(passphrase, &file);
        let inner = file.shares.to_string();
        let bundle = KeyShareBundle::decrypt(&inner, &key).map_err(|e| keystore_error(path, e))?;
        if bundle.party_index != file.party_index {
            return Err(ClientError::corrupt(path, "party index mismatch"));
        }
        Enrollment::from_bundle(file.enrollment_id, file.expires_at_ms, &bundle).map_err(
            |e| match e {
                ClientError::CorruptFile { reason, .. } => ClientError::corrupt(path, reason),
                other => other,
            },
        )
    }
}

/// The passphrase of the inner key-share file: the user's, extended with the envelope's
/// fields (so that they are authenticated by the AEAD through the derived key).
fn bound_passphrase(passphrase: &str, file: &FileRepr) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{passphrase}\u{0}{ENROLLMENT_FORMAT}/v{}\u{0}{}\u{0}{}\u{0}{}",
        file.version, file.party_index, file.enrollment_id, file.expires_at_ms
    ))
}

/// A keystore error on `path` as the client's error.
pub fn keystore_error(path: &str, e: KeystoreError) -> ClientError {
    match e {
        KeystoreError::WrongPassphrase => ClientError::WrongPassphrase { path: path.into() },
        KeystoreError::EmptyPassphrase => ClientError::config("the passphrase is empty"),
        KeystoreError::WeakPassphrase(w) => ClientError::config(format!("passphrase: {w}")),
        KeystoreError::Io { path, source } => ClientError::io(path, source),
        other => ClientError::corrupt(path, other),
    }
}
