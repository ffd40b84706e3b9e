//! Request authentication.
//!
//! Every request except `Health` is signed with ed25519 by a party's `mpc-wire`
//! identity key:
//!
//! - `CreateWallet` by the **device** identity it registers, over
//!   [`create_wallet_message`];
//! - `ConfirmWallet`, `StartSign`, `GetPublicKey`, `ListAccounts`, `StartPresign`,
//!   `PresignPoolStatus` and `SignWithPresignature` carry a
//!   [`pb::Auth`] by the device (party 0) or recovery (party 1 is the cosigner, so 2)
//!   identity registered at wallet creation, over [`auth_message`], which binds the
//!   audience, the method, the wallet, the party, a timestamp, a 16-byte random nonce
//!   and the method's [`AuthenticatedRequest::request_digest`] (SHA-256 over the
//!   request's canonical fields, see [`RequestDigest`]).
//!
//! Every signed request names its **audience**: the public identity of the cosigner it
//! is meant for (from `Health` before a wallet exists, from the wallet's party 1
//! afterwards). The audience is sent (`Auth.audience`, `CreateWalletRequest.audience`)
//! and signed; a cosigner refuses a request for another audience
//! ([`AuthError::WrongAudience`]) before looking at its signature, so a request captured
//! on its way to one deployment (staging, another operator) does not play at another.
//!
//! The server refuses timestamps outside its clock-skew window ([`check_freshness`])
//! and nonces it has seen before ([`ReplayCache`]).
//!
//! Clients: [`sign_request`] / [`sign_device_request`]. Servers: [`auth_of`] to learn the
//! wallet and party, then [`verify_request`] with that party's registered identity, then
//! [`ReplayCache::check_and_insert`] (only once the request is valid: an invalid
//! request must not take space in the cache); [`verify_device_request`] for
//! `CreateWallet`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer, SigningKey};
use hkdf::Hkdf;
use mpc_wire::{IdentityKey, PublicIdentity};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::pb;

/// Domain tag of [`auth_message`].
pub const AUTH_DOMAIN: &[u8] = b"wallet-mpc/cosigner-auth/v2";
/// Domain tag of the request digests.
pub const REQUEST_DOMAIN: &[u8] = b"wallet-mpc/cosigner-request/v1";
/// Domain tag of [`create_wallet_message`].
pub const CREATE_WALLET_DOMAIN: &[u8] = b"wallet-mpc/cosigner-create-wallet/v3";
/// Domain tag of the `EnrollDeviceRequest` signature.
pub const ENROLL_DEVICE_DOMAIN: &[u8] = b"wallet-mpc/cosigner-enroll-device/v1";
/// Length of a request nonce.
pub const NONCE_LEN: usize = 16;
/// Default clock-skew window: requests whose timestamp is further than this from the
/// server's clock (either way) are refused.
pub const DEFAULT_SKEW_WINDOW_MS: u64 = 120_000;
/// Default bound of [`ReplayCache`]: nonces remembered per signing identity within the
/// clock-skew window (10,000 in 2 minutes: 83 requests a second, sustained, by one
/// party of one wallet).
pub const DEFAULT_NONCES_PER_IDENTITY: usize = 10_000;
/// Longest wallet id accepted.
pub const MAX_WALLET_ID_LEN: usize = 128;

// Derivation of the ed25519 signing key from an identity seed, exactly as `mpc-wire`
// does it (`identity.rs`); `signing_key` checks the result against the public identity,
// so a change on either side is caught instead of producing bad signatures.
const IDENTITY_SALT: &[u8] = b"wallet-mpc/identity/v1";
const INFO_SIGN: &[u8] = b"wallet-mpc/identity/v1/ed25519-signing-key";

/// Why a request's authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request has no `auth` field.
    #[error("the request carries no auth")]
    MissingAuth,
    /// `auth.party` is not 0 (device) or 2 (recovery).
    #[error("party {0} cannot authenticate requests (only 0 = device and 2 = recovery)")]
    BadParty(u32),
    /// The wallet id is empty, too long or has characters outside `A-Z a-z 0-9 . _ : -`.
    #[error("invalid wallet id: {0}")]
    BadWalletId(String),
    /// The nonce is not 16 bytes.
    #[error("nonce must be {NONCE_LEN} bytes, got {0}")]
    BadNonce(usize),
    /// The signature is not 64 bytes or does not verify.
    #[error("signature does not verify for the registered identity of party {party}")]
    BadSignature {
        /// Party whose identity was used.
        party: u32,
    },
    /// The timestamp is outside the clock-skew window.
    #[error("request timestamp {timestamp_ms} is {skew_ms} ms away from the server clock (window {window_ms} ms): check the clock")]
    Stale {
        /// Timestamp of the request.
        timestamp_ms: u64,
        /// Absolute difference to the server clock.
        skew_ms: u64,
        /// Allowed window.
        window_ms: u64,
    },
    /// The nonce was used before (replayed request).
    #[error("nonce already used (replayed request)")]
    Replayed,
    /// The signing identity has as many unexpired nonces as the replay cache keeps per
    /// identity (refusing is the safe choice; other identities are not affected).
    #[error("too many requests by this identity in the clock-skew window; retry later")]
    ReplayCacheFull,
    /// The request was signed for another cosigner (its `audience`).
    #[error("the request is signed for cosigner {got:?}, this cosigner is {expected}")]
    WrongAudience {
        /// This cosigner's public identity.
        expected: String,
        /// The audience the request names.
        got: String,
    },
    /// A public identity string is malformed.
    #[error("invalid identity: {0}")]
    BadIdentity(String),
    /// The identity key's derived signing key does not match its public identity
    /// (mpc-wire changed its key derivation).
    #[error("identity key derivation mismatch (mpc-wire changed?)")]
    KeyDerivation,
    /// The operating system's RNG failed.
    #[error("randomness unavailable: {0}")]
    Randomness(String),
}

/// The authenticated methods (their RPC names are signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `CreateWallet` (signed over [`create_wallet_message`], not an `Auth`).
    CreateWallet,
    /// `ConfirmWallet`.
    ConfirmWallet,
    /// `StartSign`.
    StartSign,
    /// `GetPublicKey`.
    GetPublicKey,
    /// `ListAccounts`.
    ListAccounts,
    /// `StartPresign`.
    StartPresign,
    /// `PresignPoolStatus`.
    PresignPoolStatus,
    /// `SignWithPresignature`.
    SignWithPresignature,
    /// `RevokeDevice`.
    RevokeDevice,
    /// `FreezeWallet`.
    FreezeWallet,
    /// `UnfreezeWallet`.
    UnfreezeWallet,
    /// `StartRefresh`.
    StartRefresh,
    /// `ReplaceDevice`.
    ReplaceDevice,
    /// `ConfirmLifecycle`.
    ConfirmLifecycle,
}

impl Method {
    /// The RPC name, as signed.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::CreateWallet => "CreateWallet",
            Method::ConfirmWallet => "ConfirmWallet",
            Method::StartSign => "StartSign",
            Method::GetPublicKey => "GetPublicKey",
            Method::ListAccounts => "ListAccounts",
            Method::StartPresign => "StartPresign",
            Method::PresignPoolStatus => "PresignPoolStatus",
            Method::SignWithPresignature => "SignWithPresignature",
            Method::RevokeDevice => "RevokeDevice",
            Method::FreezeWallet => "FreezeWallet",
            Method::UnfreezeWallet => "UnfreezeWallet",
            Method::StartRefresh => "StartRefresh",
            Method::ReplaceDevice => "ReplaceDevice",
            Method::ConfirmLifecycle => "ConfirmLifecycle",
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh random nonce.
pub fn random_nonce() -> Result<[u8; NONCE_LEN], AuthError> {
    let mut n = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut n)
        .map_err(|e| AuthError::Randomness(e.to_string()))?;
    Ok(n)
}

/// Builder of a request digest: SHA-256 over `REQUEST_DOMAIN 0x00 method 0x00` followed
/// by the fields in order, each byte string as `u32 BE length ‖ bytes` and each integer
/// as fixed-width big-endian.
#[derive(Clone)]
pub struct RequestDigest(Sha256);

impl RequestDigest {
    /// Starts the digest of `method`.
    pub fn new(method: Method) -> Self {
        let mut h = Sha256::new();
        h.update(REQUEST_DOMAIN);
        h.update([0]);
        h.update(method.as_str().as_bytes());
        h.update([0]);
        Self(h)
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(mut self, b: &[u8]) -> Self {
        // Lengths above u32::MAX cannot come through gRPC (4 MiB messages by default);
        // saturating keeps this total and unambiguous in practice.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.update(len.to_be_bytes());
        self.0.update(b);
        self
    }

    /// Appends a length-prefixed UTF-8 string.
    pub fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }

    /// Appends a `u32` (big-endian).
    pub fn u32(mut self, v: u32) -> Self {
        self.0.update(v.to_be_bytes());
        self
    }

    /// Appends a length-prefixed string that was added to a request after its first
    /// version, only when it is not empty: requests without it keep their digest (older
    /// clients), and since it comes last after length-prefixed or fixed-size fields, a
    /// digest with it never equals one without it.
    pub fn trailing_str(self, s: &str) -> Self {
        if s.is_empty() {
            self
        } else {
            self.str(s)
        }
    }

    /// For a `BITCOIN_PSBT_INPUT` payload, appends `input_index` (u32) and
    /// `bitcoin_network`; for any other payload kind, nothing (the request's digest is
    /// then what it was before these fields existed). The payload kind itself is signed
    /// earlier, so the two forms cannot be confused.
    pub fn bitcoin_input(self, payload_kind: i32, input_index: u32, network: &str) -> Self {
        if payload_kind == pb::PayloadKind::BitcoinPsbtInput as i32 {
            self.u32(input_index).str(network)
        } else {
            self
        }
    }

    /// Appends an `i32` enum value (as its two's-complement `u32`, big-endian).
    pub fn enum_i32(self, v: i32) -> Self {
        self.u32(v as u32)
    }

    /// The digest.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// A request authenticated by a [`pb::Auth`].
pub trait AuthenticatedRequest {
    /// The method.
    const METHOD: Method;
    /// SHA-256 over the request's canonical fields (everything but `auth`).
    fn request_digest(&self) -> [u8; 32];
    /// The request's auth, if any.
    fn auth(&self) -> Option<&pb::Auth>;
    /// Sets the auth.
    fn set_auth(&mut self, auth: pb::Auth);
}

/// Implements [`AuthenticatedRequest`] for a request with an `auth` field: its method
/// and the digest of its canonical fields (`r` is the request).
macro_rules! authenticated_request {
    ($(#[$doc:meta])* $request:ty, $method:expr, |$r:ident| $digest:block) => {
        impl AuthenticatedRequest for $request {
            const METHOD: Method = $method;
            $(#[$doc])*
            fn request_digest(&self) -> [u8; 32] {
                let $r = self;
                $digest
            }
            fn auth(&self) -> Option<&pb::Auth> {
                self.auth.as_ref()
            }
            fn set_auth(&mut self, auth: pb::Auth) {
                self.auth = Some(auth);
            }
        }
    };
}

authenticated_request!(
    /// Fields: number of entries (u32), then `account_id`, `public_key` of each entry in
    /// ascending `account_id` order.
    pb::ConfirmWalletRequest,
    Method::ConfirmWallet,
    |r| {
        let mut entries: Vec<(&String, &String)> = r.public_keys.iter().collect();
        entries.sort();
        let n = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let mut d = RequestDigest::new(Method::ConfirmWallet).u32(n);
        for (k, v) in entries {
            d = d.str(k).str(v);
        }
        d.finish()
    }
);

authenticated_request!(
    /// Fields: `account_id`, `derivation_path`, `preimage`, `digest` (u32),
    /// `payload_kind` (u32); for `BITCOIN_PSBT_INPUT` then `input_index` (u32) and
    /// `bitcoin_network` ([`RequestDigest::bitcoin_input`]).
    pb::StartSignRequest,
    Method::StartSign,
    |r| {
        RequestDigest::new(Method::StartSign)
            .str(&r.account_id)
            .str(&r.derivation_path)
            .bytes(&r.preimage)
            .enum_i32(r.digest)
            .enum_i32(r.payload_kind)
            .bitcoin_input(r.payload_kind, r.input_index, &r.bitcoin_network)
            .finish()
    }
);

authenticated_request!(
    /// Fields: `account_id`, `derivation_path`.
    pb::GetPublicKeyRequest,
    Method::GetPublicKey,
    |r| {
        RequestDigest::new(Method::GetPublicKey)
            .str(&r.account_id)
            .str(&r.derivation_path)
            .finish()
    }
);

authenticated_request!(
    /// No fields.
    pb::ListAccountsRequest,
    Method::ListAccounts,
    |_r| {
        RequestDigest::new(Method::ListAccounts).finish()
    }
);

authenticated_request!(
    /// Fields: `reason`.
    pb::RevokeDeviceRequest,
    Method::RevokeDevice,
    |r| {
        RequestDigest::new(Method::RevokeDevice)
            .str(&r.reason)
            .finish()
    }
);

authenticated_request!(
    /// Fields: `reason`.
    pb::FreezeWalletRequest,
    Method::FreezeWallet,
    |r| {
        RequestDigest::new(Method::FreezeWallet)
            .str(&r.reason)
            .finish()
    }
);

authenticated_request!(
    /// No fields.
    pb::UnfreezeWalletRequest,
    Method::UnfreezeWallet,
    |_r| {
        RequestDigest::new(Method::UnfreezeWallet).finish()
    }
);

authenticated_request!(
    /// No fields.
    pb::StartRefreshRequest,
    Method::StartRefresh,
    |_r| {
        RequestDigest::new(Method::StartRefresh).finish()
    }
);

authenticated_request!(
    /// Fields: `new_device_identity`, `reason`. (`new_device_signature` is a signature
    /// over [`replace_device_possession_message`], which binds this request's auth.)
    pb::ReplaceDeviceRequest,
    Method::ReplaceDevice,
    |r| {
        RequestDigest::new(Method::ReplaceDevice)
            .str(&r.new_device_identity)
            .str(&r.reason)
            .finish()
    }
);

authenticated_request!(
    /// Fields: `lifecycle_id`, number of digests (u32), then `account_id`, digest of each
    /// entry in ascending `account_id` order.
    pb::ConfirmLifecycleRequest,
    Method::ConfirmLifecycle,
    |r| {
        let mut entries: Vec<(&String, &String)> = r.share_digests.iter().collect();
        entries.sort();
        let n = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let mut d = RequestDigest::new(Method::ConfirmLifecycle)
            .str(&r.lifecycle_id)
            .u32(n);
        for (k, v) in entries {
            d = d.str(k).str(v);
        }
        d.finish()
    }
);

authenticated_request!(
    /// Fields: `account_id`, `count` (u32), number of `release_ids` (u32), then each
    /// release id in request order, then `derivation_path` when not empty
    /// ([`RequestDigest::trailing_str`]).
    pb::StartPresignRequest,
    Method::StartPresign,
    |r| {
        let n = u32::try_from(r.release_ids.len()).unwrap_or(u32::MAX);
        let mut d = RequestDigest::new(Method::StartPresign)
            .str(&r.account_id)
            .u32(r.count)
            .u32(n);
        for id in &r.release_ids {
            d = d.str(id);
        }
        d.trailing_str(&r.derivation_path).finish()
    }
);

authenticated_request!(
    /// Fields: `account_id`.
    pb::PresignPoolStatusRequest,
    Method::PresignPoolStatus,
    |r| {
    RequestDigest::new(Method::PresignPoolStatus)
        .str(&r.account_id)
        .finish()
    }
);

authenticated_request!(
    /// Fields: `account_id`, `presignature_id`, `preimage`, `digest` (u32),
    /// `payload_kind` (u32), then `derivation_path` when not empty
    /// ([`RequestDigest::trailing_str`]); for `BITCOIN_PSBT_INPUT` then `input_index`
    /// (u32) and `bitcoin_network` ([`RequestDigest::bitcoin_input`]).
    pb::SignWithPresignatureRequest,
    Method::SignWithPresignature,
    |r| {
    RequestDigest::new(Method::SignWithPresignature)
        .str(&r.account_id)
        .str(&r.presignature_id)
        .bytes(&r.preimage)
        .enum_i32(r.digest)
        .enum_i32(r.payload_kind)
        .trailing_str(&r.derivation_path)
        .bitcoin_input(r.payload_kind, r.input_index, &r.bitcoin_network)
        .finish()
    }
);

/// Checks a wallet id: 1..=128 characters from `A-Z a-z 0-9 . _ : -`.
pub fn validate_wallet_id(id: &str) -> Result<(), AuthError> {
    if id.is_empty() || id.len() > MAX_WALLET_ID_LEN {
        return Err(AuthError::BadWalletId(format!(
            "length {} not in 1..={MAX_WALLET_ID_LEN}",
            id.len()
        )));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return Err(AuthError::BadWalletId(
            "only A-Z a-z 0-9 . _ : - allowed".into(),
        ));
    }
    Ok(())
}

/// The canonical byte string an [`pb::Auth`] signature covers:
/// `"wallet-mpc/cosigner-auth/v2" 0x00 audience 0x00 method 0x00 wallet_id 0x00
/// party (u16 BE) timestamp_ms (u64 BE) nonce (16 bytes) request_digest (32 bytes)`,
/// where `audience` is the cosigner's public identity (128 hex characters, as
/// `PublicIdentity` displays it).
pub fn auth_message(
    audience: &str,
    method: Method,
    wallet_id: &str,
    party: u16,
    timestamp_ms: u64,
    nonce: &[u8; NONCE_LEN],
    request_digest: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_DOMAIN.len() + audience.len() + wallet_id.len() + 80);
    m.extend_from_slice(AUTH_DOMAIN);
    m.push(0);
    m.extend_from_slice(audience.as_bytes());
    m.push(0);
    m.extend_from_slice(method.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(wallet_id.as_bytes());
    m.push(0);
    m.extend_from_slice(&party.to_be_bytes());
    m.extend_from_slice(&timestamp_ms.to_be_bytes());
    m.extend_from_slice(nonce);
    m.extend_from_slice(request_digest);
    m
}

/// The canonical byte string the `CreateWalletRequest.signature` covers:
/// `"wallet-mpc/cosigner-create-wallet/v3" 0x00` then, length-prefixed (u32 BE) or
/// fixed-width big-endian: `audience`, `device_identity`, `recovery_identity`,
/// `accounts` (u32), `kind` (u32), `label`, `timestamp_ms` (u64), `nonce`,
/// `registration_credential`, and `enrollment_id` only when it is non-empty (so the
/// signatures of requests without one are unchanged).
pub fn create_wallet_message(req: &pb::CreateWalletRequest) -> Vec<u8> {
    let mut m = Vec::with_capacity(540 + req.label.len());
    m.extend_from_slice(CREATE_WALLET_DOMAIN);
    m.push(0);
    lp(&mut m, req.audience.as_bytes());
    lp(&mut m, req.device_identity.as_bytes());
    lp(&mut m, req.recovery_identity.as_bytes());
    m.extend_from_slice(&req.accounts.to_be_bytes());
    m.extend_from_slice(&(req.kind as u32).to_be_bytes());
    lp(&mut m, req.label.as_bytes());
    m.extend_from_slice(&req.timestamp_ms.to_be_bytes());
    lp(&mut m, &req.nonce);
    lp(&mut m, req.registration_credential.as_bytes());
    if !req.enrollment_id.is_empty() {
        lp(&mut m, req.enrollment_id.as_bytes());
    }
    m
}

/// Appends `b` length-prefixed (u32 BE).
fn lp(m: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(b);
}

/// The canonical byte string the `EnrollDeviceRequest.signature` covers:
/// `"wallet-mpc/cosigner-enroll-device/v1" 0x00` then, length-prefixed (u32 BE) or
/// fixed-width big-endian: `audience`, `device_identity`, `recovery_identity`,
/// `timestamp_ms` (u64), `nonce`, `registration_credential`.
pub fn enroll_device_message(req: &pb::EnrollDeviceRequest) -> Vec<u8> {
    let mut m = Vec::with_capacity(400 + req.registration_credential.len());
    m.extend_from_slice(ENROLL_DEVICE_DOMAIN);
    m.push(0);
    lp(&mut m, req.audience.as_bytes());
    lp(&mut m, req.device_identity.as_bytes());
    lp(&mut m, req.recovery_identity.as_bytes());
    m.extend_from_slice(&req.timestamp_ms.to_be_bytes());
    lp(&mut m, &req.nonce);
    lp(&mut m, req.registration_credential.as_bytes());
    m
}

/// Domain of the new device's proof of possession in `ReplaceDevice`.
pub const REPLACE_DEVICE_POSSESSION_DOMAIN: &[u8] = b"wallet-mpc/cosigner-replace-device/v1";

/// What the NEW device identity signs in `ReplaceDevice` (`new_device_signature`):
/// `"wallet-mpc/cosigner-replace-device/v1" 0x00`, then, length-prefixed (u32 BE), the
/// audience, the wallet id, the new identity (hex), then the request's auth timestamp
/// (u64 BE) and nonce. Bound to one request (its nonce), so it cannot be replayed into
/// another replacement.
pub fn replace_device_possession_message(
    audience: &str,
    wallet_id: &str,
    new_device_identity: &str,
    timestamp_ms: u64,
    nonce: &[u8],
) -> Vec<u8> {
    let mut m = REPLACE_DEVICE_POSSESSION_DOMAIN.to_vec();
    m.push(0);
    lp(&mut m, audience.as_bytes());
    lp(&mut m, wallet_id.as_bytes());
    lp(&mut m, new_device_identity.as_bytes());
    m.extend_from_slice(&timestamp_ms.to_be_bytes());
    lp(&mut m, nonce);
    m
}

/// The ed25519 signing key of an identity (derived from its seed like `mpc-wire` does),
/// checked against the identity's public key.
fn signing_key(key: &IdentityKey) -> Result<SigningKey, AuthError> {
    let seed_hex = key.to_seed_hex();
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(seed_hex.as_bytes(), seed.as_mut())
        .map_err(|_| AuthError::KeyDerivation)?;
    let hk = Hkdf::<Sha256>::new(Some(IDENTITY_SALT), seed.as_ref());
    let mut sk = Zeroizing::new([0u8; 32]);
    hk.expand(INFO_SIGN, sk.as_mut())
        .map_err(|_| AuthError::KeyDerivation)?;
    let signing = SigningKey::from_bytes(&sk);
    if signing.verifying_key() != *key.public().sign_key() {
        return Err(AuthError::KeyDerivation);
    }
    Ok(signing)
}

/// Signs `message` with the identity's ed25519 key (no prefix added: callers pass one of
/// the domain-tagged canonical messages of this module).
pub fn sign_bytes(key: &IdentityKey, message: &[u8]) -> Result<[u8; 64], AuthError> {
    Ok(signing_key(key)?.sign(message).to_bytes())
}

/// Verifies an ed25519 signature (strict: no malleable or small-order forms) by
/// `identity` over `message`.
pub fn verify_bytes(identity: &PublicIdentity, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    identity
        .sign_key()
        .verify_strict(message, &Signature::from_bytes(&sig))
        .is_ok()
}

/// Refuses a timestamp further than `window_ms` from `now_ms`.
pub fn check_freshness(timestamp_ms: u64, now_ms: u64, window_ms: u64) -> Result<(), AuthError> {
    let skew_ms = timestamp_ms.abs_diff(now_ms);
    if skew_ms > window_ms {
        return Err(AuthError::Stale {
            timestamp_ms,
            skew_ms,
            window_ms,
        });
    }
    Ok(())
}

fn nonce_array(nonce: &[u8]) -> Result<[u8; NONCE_LEN], AuthError> {
    <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| AuthError::BadNonce(nonce.len()))
}

/// Signs `req` for the cosigner `audience` as `party` of `wallet_id` with a fresh
/// timestamp and nonce.
pub fn sign_request<R: AuthenticatedRequest>(
    req: &mut R,
    key: &IdentityKey,
    audience: &PublicIdentity,
    wallet_id: &str,
    party: u16,
) -> Result<(), AuthError> {
    let nonce = random_nonce()?;
    sign_request_at(req, key, audience, wallet_id, party, now_ms(), nonce)
}

/// [`sign_request`] with a given timestamp and nonce (tests, replays).
pub fn sign_request_at<R: AuthenticatedRequest>(
    req: &mut R,
    key: &IdentityKey,
    audience: &PublicIdentity,
    wallet_id: &str,
    party: u16,
    timestamp_ms: u64,
    nonce: [u8; NONCE_LEN],
) -> Result<(), AuthError> {
    validate_wallet_id(wallet_id)?;
    let audience = audience.to_string();
    let msg = auth_message(
        &audience,
        R::METHOD,
        wallet_id,
        party,
        timestamp_ms,
        &nonce,
        &req.request_digest(),
    );
    let signature = sign_bytes(key, &msg)?;
    req.set_auth(pb::Auth {
        audience,
        wallet_id: wallet_id.to_string(),
        party: u32::from(party),
        timestamp_ms,
        nonce: nonce.to_vec(),
        signature: signature.to_vec(),
    });
    Ok(())
}

/// The request's auth, with its wallet id and party checked (party 0 or 2), so the
/// server can look up the identity to verify it with.
pub fn auth_of<R: AuthenticatedRequest>(req: &R) -> Result<(&pb::Auth, u16), AuthError> {
    let auth = req.auth().ok_or(AuthError::MissingAuth)?;
    validate_wallet_id(&auth.wallet_id)?;
    let party = match auth.party {
        0 => 0u16,
        2 => 2u16,
        p => return Err(AuthError::BadParty(p)),
    };
    Ok((auth, party))
}

/// Refuses a request whose `audience` is not `me` (the verifying cosigner).
pub fn check_audience(audience: &str, me: &PublicIdentity) -> Result<(), AuthError> {
    let expected = me.to_string();
    if audience != expected {
        return Err(AuthError::WrongAudience {
            expected,
            got: audience.chars().take(200).collect(),
        });
    }
    Ok(())
}

/// Verifies `req`'s auth against `identity` (the registered identity of `auth.party`)
/// for the cosigner `me`: wallet id, party, audience, nonce length, clock skew and
/// signature. The caller still has to check the nonce with a [`ReplayCache`].
pub fn verify_request<'r, R: AuthenticatedRequest>(
    req: &'r R,
    identity: &PublicIdentity,
    me: &PublicIdentity,
    now_ms: u64,
    window_ms: u64,
) -> Result<&'r pb::Auth, AuthError> {
    let (auth, party) = auth_of(req)?;
    check_audience(&auth.audience, me)?;
    let nonce = nonce_array(&auth.nonce)?;
    check_freshness(auth.timestamp_ms, now_ms, window_ms)?;
    let msg = auth_message(
        &auth.audience,
        R::METHOD,
        &auth.wallet_id,
        party,
        auth.timestamp_ms,
        &nonce,
        &req.request_digest(),
    );
    if !verify_bytes(identity, &msg, &auth.signature) {
        return Err(AuthError::BadSignature { party: auth.party });
    }
    Ok(auth)
}

/// A request signed by the device identity before any wallet exists (`CreateWallet`,
/// `EnrollDevice`): it carries its own audience, identities, timestamp, nonce and
/// signature fields instead of an [`pb::Auth`], and its signed message has its own domain.
pub trait DeviceSignedRequest {
    /// The bytes the device identity signs (domain-separated, every field bound).
    fn message(&self) -> Vec<u8>;
    /// `(audience, device_identity, recovery_identity, timestamp_ms, nonce, signature)`.
    #[allow(clippy::type_complexity)]
    fn fields(&self) -> (&str, &str, &str, u64, &[u8], &[u8]);
    /// Sets `audience`, `device_identity`, `timestamp_ms` and `nonce`.
    fn set_header(&mut self, audience: String, device: String, timestamp_ms: u64, nonce: Vec<u8>);
    /// Sets the signature.
    fn set_signature(&mut self, signature: Vec<u8>);
}

/// Both device-signed requests have the same header fields; only the message differs.
macro_rules! device_signed_request {
    ($request:ty, $message:path) => {
        impl DeviceSignedRequest for $request {
            fn message(&self) -> Vec<u8> {
                $message(self)
            }
            fn fields(&self) -> (&str, &str, &str, u64, &[u8], &[u8]) {
                (
                    &self.audience,
                    &self.device_identity,
                    &self.recovery_identity,
                    self.timestamp_ms,
                    &self.nonce,
                    &self.signature,
                )
            }
            fn set_header(
                &mut self,
                audience: String,
                device: String,
                timestamp_ms: u64,
                nonce: Vec<u8>,
            ) {
                (
                    self.audience,
                    self.device_identity,
                    self.timestamp_ms,
                    self.nonce,
                ) = (audience, device, timestamp_ms, nonce);
            }
            fn set_signature(&mut self, signature: Vec<u8>) {
                self.signature = signature;
            }
        }
    };
}

device_signed_request!(pb::CreateWalletRequest, create_wallet_message);
device_signed_request!(pb::EnrollDeviceRequest, enroll_device_message);

/// Fills `audience`, `device_identity`, `timestamp_ms`, `nonce` and `signature` of a
/// device-signed request for the cosigner `audience`, at a given time and nonce (the
/// other fields must be set before: they are signed).
pub fn sign_device_request_at<R: DeviceSignedRequest>(
    req: &mut R,
    device: &IdentityKey,
    audience: &PublicIdentity,
    timestamp_ms: u64,
    nonce: [u8; NONCE_LEN],
) -> Result<(), AuthError> {
    req.set_header(
        audience.to_string(),
        device.public().to_string(),
        timestamp_ms,
        nonce.to_vec(),
    );
    let signature = sign_bytes(device, &req.message())?.to_vec();
    req.set_signature(signature);
    Ok(())
}

/// Verifies a device-signed request for the cosigner `me` (audience, identities, nonce
/// length, clock skew, signature by the device identity) and returns the (device,
/// recovery) identities. The caller still has to check the nonce with a
/// [`ReplayCache`] (in the device identity's scope).
pub fn verify_device_request<R: DeviceSignedRequest>(
    req: &R,
    me: &PublicIdentity,
    now_ms: u64,
    window_ms: u64,
) -> Result<(PublicIdentity, PublicIdentity), AuthError> {
    let (audience, device, recovery, timestamp_ms, nonce, signature) = req.fields();
    check_audience(audience, me)?;
    let device: PublicIdentity = device
        .parse()
        .map_err(|e| AuthError::BadIdentity(format!("device_identity: {e}")))?;
    let recovery: PublicIdentity = recovery
        .parse()
        .map_err(|e| AuthError::BadIdentity(format!("recovery_identity: {e}")))?;
    nonce_array(nonce)?;
    check_freshness(timestamp_ms, now_ms, window_ms)?;
    if !verify_bytes(&device, &req.message(), signature) {
        return Err(AuthError::BadSignature { party: 0 });
    }
    Ok((device, recovery))
}

/// [`sign_device_request_at`] with a fresh nonce at the current time.
pub fn sign_device_request<R: DeviceSignedRequest>(
    req: &mut R,
    device: &IdentityKey,
    audience: &PublicIdentity,
) -> Result<(), AuthError> {
    sign_device_request_at(req, device, audience, now_ms(), random_nonce()?)
}

/// Server-side cache of the nonces seen within the clock-skew window, bounded per
/// signing identity.
///
/// A nonce is remembered in its scope (the signing identity: wallet and party, or the
/// device identity of a `CreateWallet`) until its request's timestamp leaves the window,
/// after which [`check_freshness`] refuses the request anyway. Each scope holds at most
/// `per_identity` unexpired nonces: one more from that identity is refused
/// ([`AuthError::ReplayCacheFull`]) rather than a nonce forgotten, and no other identity
/// is affected. Callers insert only requests that verified (an invalid request never
/// takes space), so the number of scopes is bounded by the identities that can sign.
/// Empty scopes are dropped. Thread-safe. Persistence is the caller's: what
/// [`ReplayCache::check_and_insert`] recorded and expired is returned for that, and
/// [`ReplayCache::restore`] loads it back.
#[derive(Debug)]
pub struct ReplayCache {
    window_ms: u64,
    per_identity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    scopes: HashMap<String, ScopeNonces>,
    inserts: u64,
}

#[derive(Debug, Default)]
struct ScopeNonces {
    seen: HashMap<[u8; NONCE_LEN], u64>,
    /// (expiry, nonce), approximately in expiry order (entries kept a little longer
    /// are harmless).
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
}

impl ScopeNonces {
    /// Forgets the entries expired at `now`, pushing them to `out`.
    fn expire(&mut self, scope: &str, now: u64, out: &mut Vec<(String, [u8; NONCE_LEN])>) {
        while let Some(&(expiry, nonce)) = self.order.front() {
            if expiry >= now {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&nonce) == Some(&expiry) {
                self.seen.remove(&nonce);
                out.push((scope.to_string(), nonce));
            }
        }
    }
}

/// A nonce [`ReplayCache::check_and_insert`] recorded: its expiry, and the entries it
/// forgot on the way (expired), for a persistent copy to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// When the nonce may be forgotten (ms since the epoch).
    pub expiry_ms: u64,
    /// (scope, nonce) of the entries forgotten because they expired.
    pub expired: Vec<(String, [u8; NONCE_LEN])>,
}

/// Every this many insertions, every scope is swept for expired entries (identities
/// that went quiet).
const SWEEP_EVERY: u64 = 4096;

impl ReplayCache {
    /// A cache for the given clock-skew window holding at most `per_identity` nonces per
    /// scope.
    pub fn new(window_ms: u64, per_identity: usize) -> Self {
        Self {
            window_ms,
            per_identity: per_identity.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The clock-skew window this cache was built for.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The bound per scope.
    pub fn per_identity(&self) -> usize {
        self.per_identity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `nonce` in `scope`; fails if it was seen before (`Replayed`) or if the
    /// scope already holds `per_identity` unexpired nonces (`ReplayCacheFull`).
    pub fn check_and_insert(
        &self,
        scope: &str,
        nonce: &[u8],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<Recorded, AuthError> {
        let nonce = nonce_array(nonce)?;
        let mut inner = self.lock();
        let mut expired = Vec::new();
        inner.inserts += 1;
        if inner.inserts.is_multiple_of(SWEEP_EVERY) {
            inner.scopes.retain(|s, n| {
                n.expire(s, now_ms, &mut expired);
                !n.seen.is_empty()
            });
        }
        let entry = inner.scopes.entry(scope.to_string()).or_default();
        entry.expire(scope, now_ms, &mut expired);
        if entry.seen.contains_key(&nonce) {
            return Err(AuthError::Replayed);
        }
        if entry.seen.len() >= self.per_identity {
            return Err(AuthError::ReplayCacheFull);
        }
        let expiry_ms = timestamp_ms.max(now_ms).saturating_add(self.window_ms);
        entry.seen.insert(nonce, expiry_ms);
        entry.order.push_back((expiry_ms, nonce));
        Ok(Recorded { expiry_ms, expired })
    }

    /// Forgets `nonce` of `scope` (a recorded request that was not served after all,
    /// or whose persistent copy failed).
    pub fn forget(&self, scope: &str, nonce: &[u8]) {
        let Ok(nonce) = nonce_array(nonce) else {
            return;
        };
        let mut inner = self.lock();
        if let Some(s) = inner.scopes.get_mut(scope) {
            s.seen.remove(&nonce);
            s.order.retain(|(_, n)| *n != nonce);
            if s.seen.is_empty() {
                inner.scopes.remove(scope);
            }
        }
    }

    /// Loads a persisted entry back (at start-up): `false` (not loaded) if it expired
    /// at `now_ms`. Entries beyond a scope's bound are loaded too (they were accepted).
    pub fn restore(
        &self,
        scope: &str,
        nonce: [u8; NONCE_LEN],
        expiry_ms: u64,
        now_ms: u64,
    ) -> bool {
        if expiry_ms < now_ms {
            return false;
        }
        let mut inner = self.lock();
        let s = inner.scopes.entry(scope.to_string()).or_default();
        if s.seen.insert(nonce, expiry_ms).is_none() {
            // Keep `order` sorted by expiry (the store gives no useful order).
            let at = s.order.partition_point(|(e, _)| *e <= expiry_ms);
            s.order.insert(at, (expiry_ms, nonce));
        }
        true
    }

    /// Number of nonces remembered (all scopes).
    pub fn len(&self) -> usize {
        self.lock().scopes.values().map(|s| s.seen.len()).sum()
    }

    /// Number of scopes holding nonces.
    pub fn scopes(&self) -> usize {
        self.lock().scopes.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> IdentityKey {
        IdentityKey::from_seed(&[b; 32])
    }

    /// The cosigner the test requests are for.
    fn aud() -> PublicIdentity {
        key(42).public()
    }

    fn sign_req() -> pb::StartSignRequest {
        pb::StartSignRequest {
            auth: None,
            account_id: "account-0".into(),
            derivation_path: "m/44/60/0/0/0".into(),
            preimage: b"hello".to_vec(),
            digest: pb::DigestKind::Keccak256 as i32,
            payload_kind: pb::PayloadKind::Raw as i32,
            ..Default::default()
        }
    }

    #[test]
    fn derived_signing_key_matches_identity() {
        let k = key(7);
        let sig = sign_bytes(&k, b"x").unwrap();
        assert!(verify_bytes(&k.public(), b"x", &sig));
        assert!(!verify_bytes(&k.public(), b"y", &sig));
        assert!(!verify_bytes(&k.public(), b"x", &sig[..63]));
    }

    #[test]
    fn auth_message_layout() {
        let m = auth_message("c0ffee", Method::StartSign, "w1", 2, 5, &[9; 16], &[8; 32]);
        let mut want = b"wallet-mpc/cosigner-auth/v2\0c0ffee\0StartSign\0w1\0".to_vec();
        want.extend_from_slice(&[0, 2]);
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(&[9; 16]);
        want.extend_from_slice(&[8; 32]);
        assert_eq!(m, want);
    }

    #[test]
    fn sign_and_verify_each_method() {
        let k = key(1);
        let now = 1_700_000_000_000;
        let mut a = sign_req();
        sign_request_at(&mut a, &k, &aud(), "wallet", 0, now, [1; 16]).unwrap();
        verify_request(&a, &k.public(), &aud(), now, 1000).unwrap();
        let mut b = pb::ListAccountsRequest { auth: None };
        sign_request_at(&mut b, &k, &aud(), "wallet", 2, now, [2; 16]).unwrap();
        verify_request(&b, &k.public(), &aud(), now + 500, 1000).unwrap();
        let mut c = pb::GetPublicKeyRequest {
            auth: None,
            account_id: "a".into(),
            derivation_path: String::new(),
        };
        sign_request_at(&mut c, &k, &aud(), "wallet", 0, now, [3; 16]).unwrap();
        verify_request(&c, &k.public(), &aud(), now, 1000).unwrap();
        let mut d = pb::ConfirmWalletRequest {
            auth: None,
            public_keys: [
                ("b".to_string(), "02ab".to_string()),
                ("a".into(), "03cd".into()),
            ]
            .into_iter()
            .collect(),
        };
        sign_request_at(&mut d, &k, &aud(), "wallet", 0, now, [4; 16]).unwrap();
        verify_request(&d, &k.public(), &aud(), now, 1000).unwrap();
        d.public_keys.insert("a".into(), "03ce".into());
        assert_eq!(
            verify_request(&d, &k.public(), &aud(), now, 1000),
            Err(AuthError::BadSignature { party: 0 })
        );
    }

    #[test]
    fn presign_methods_bind_their_fields() {
        let k = key(1);
        let now = 1_700_000_000_000;
        let mut a = pb::StartPresignRequest {
            auth: None,
            account_id: "account-0".into(),
            count: 4,
            release_ids: vec!["x".into(), "y".into()],
            derivation_path: String::new(),
        };
        sign_request_at(&mut a, &k, &aud(), "wallet", 0, now, [5; 16]).unwrap();
        verify_request(&a, &k.public(), &aud(), now, 1000).unwrap();
        let mut t = a.clone();
        t.count = 5;
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        let mut t = a.clone();
        t.release_ids = vec!["xy".into()];
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        // The path is signed: a root request does not authenticate one at a path.
        let mut t = a.clone();
        t.derivation_path = "m/44/60/0/0/0".into();
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        let mut b = pb::PresignPoolStatusRequest {
            auth: None,
            account_id: String::new(),
        };
        sign_request_at(&mut b, &k, &aud(), "wallet", 2, now, [6; 16]).unwrap();
        verify_request(&b, &k.public(), &aud(), now, 1000).unwrap();
        let mut c = pb::SignWithPresignatureRequest {
            auth: None,
            account_id: "account-0".into(),
            presignature_id: "p1".into(),
            preimage: b"hello".to_vec(),
            digest: pb::DigestKind::Keccak256 as i32,
            payload_kind: pb::PayloadKind::EthereumMessage as i32,
            derivation_path: "m/44/60/0/0/3".into(),
            ..Default::default()
        };
        sign_request_at(&mut c, &k, &aud(), "wallet", 0, now, [7; 16]).unwrap();
        verify_request(&c, &k.public(), &aud(), now, 1000).unwrap();
        let mut t = c.clone();
        t.presignature_id = "p2".into();
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        // The path is signed: changing it (or dropping it) invalidates the request.
        for path in ["m/44/60/0/0/4", ""] {
            let mut t = c.clone();
            t.derivation_path = path.into();
            assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        }
        // A StartSign signature does not authenticate a SignWithPresignature with the
        // same fields (the method is signed).
        let mut s = sign_req();
        sign_request_at(&mut s, &k, &aud(), "wallet", 0, now, [8; 16]).unwrap();
        let mut t = c.clone();
        t.auth = s.auth.clone();
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
    }

    #[test]
    fn rejects_wrong_key_tampering_party_and_staleness() {
        let k = key(1);
        let now = 1_700_000_000_000;
        let mut a = sign_req();
        sign_request_at(&mut a, &k, &aud(), "wallet", 0, now, [1; 16]).unwrap();
        // Wrong key.
        assert!(matches!(
            verify_request(&a, &key(2).public(), &aud(), now, 1000),
            Err(AuthError::BadSignature { .. })
        ));
        // Tampered field.
        let mut t = a.clone();
        t.preimage.push(0);
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        // Other wallet / party claimed.
        let mut t = a.clone();
        if let Some(auth) = t.auth.as_mut() {
            auth.wallet_id = "other".into();
        }
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        let mut t = a.clone();
        if let Some(auth) = t.auth.as_mut() {
            auth.party = 2;
        }
        assert!(verify_request(&t, &k.public(), &aud(), now, 1000).is_err());
        let mut t = a.clone();
        if let Some(auth) = t.auth.as_mut() {
            auth.party = 1;
        }
        assert_eq!(
            verify_request(&t, &k.public(), &aud(), now, 1000),
            Err(AuthError::BadParty(1))
        );
        // Stale and future timestamps.
        assert!(matches!(
            verify_request(&a, &k.public(), &aud(), now + 1001, 1000),
            Err(AuthError::Stale { .. })
        ));
        assert!(matches!(
            verify_request(&a, &k.public(), &aud(), now - 1001, 1000),
            Err(AuthError::Stale { .. })
        ));
        // Missing auth, bad nonce.
        assert_eq!(
            verify_request(&sign_req(), &k.public(), &aud(), now, 1000),
            Err(AuthError::MissingAuth)
        );
        let mut t = a.clone();
        if let Some(auth) = t.auth.as_mut() {
            auth.nonce.pop();
        }
        assert_eq!(
            verify_request(&t, &k.public(), &aud(), now, 1000),
            Err(AuthError::BadNonce(15))
        );
        // Method binding: a signature for GetPublicKey does not authorise ListAccounts.
        let mut g = pb::GetPublicKeyRequest::default();
        sign_request_at(&mut g, &k, &aud(), "wallet", 0, now, [5; 16]).unwrap();
        let l = pb::ListAccountsRequest {
            auth: g.auth.clone(),
        };
        assert!(verify_request(&l, &k.public(), &aud(), now, 1000).is_err());
    }

    #[test]
    fn create_wallet_signature() {
        let dev = key(1);
        let rec = key(2);
        let now = 1_700_000_000_000;
        let mut req = pb::CreateWalletRequest {
            recovery_identity: rec.public().to_string(),
            accounts: 2,
            kind: pb::AccountKind::Hd as i32,
            label: "main".into(),
            ..Default::default()
        };
        sign_device_request_at(&mut req, &dev, &aud(), now, [7; 16]).unwrap();
        let (d, r) = verify_device_request(&req, &aud(), now, 1000).unwrap();
        assert_eq!(d, dev.public());
        assert_eq!(r, rec.public());
        let mut t = req.clone();
        t.accounts = 3;
        assert_eq!(
            verify_device_request(&t, &aud(), now, 1000),
            Err(AuthError::BadSignature { party: 0 })
        );
        let mut t = req.clone();
        t.recovery_identity = key(3).public().to_string();
        assert!(verify_device_request(&t, &aud(), now, 1000).is_err());
        let mut t = req.clone();
        t.device_identity = "zz".into();
        assert!(matches!(
            verify_device_request(&t, &aud(), now, 1000),
            Err(AuthError::BadIdentity(_))
        ));
        assert!(matches!(
            verify_device_request(&req, &aud(), now + 5000, 1000),
            Err(AuthError::Stale { .. })
        ));
    }

    #[test]
    fn enrollment_id_is_signed_into_create_wallet() {
        let dev = key(1);
        let now = 1_700_000_000_000;
        let mut req = pb::CreateWalletRequest {
            recovery_identity: key(2).public().to_string(),
            accounts: 1,
            enrollment_id: "e1".into(),
            ..Default::default()
        };
        sign_device_request_at(&mut req, &dev, &aud(), now, [7; 16]).unwrap();
        verify_device_request(&req, &aud(), now, 1000).unwrap();
        // Another enrollment, or none, is not what the device signed.
        for other in ["e2", ""] {
            let mut t = req.clone();
            t.enrollment_id = other.into();
            assert_eq!(
                verify_device_request(&t, &aud(), now, 1000),
                Err(AuthError::BadSignature { party: 0 })
            );
        }
    }

    #[test]
    fn enroll_device_signature() {
        let dev = key(1);
        let rec = key(2);
        let now = 1_700_000_000_000;
        let mut req = pb::EnrollDeviceRequest {
            recovery_identity: rec.public().to_string(),
            registration_credential: "wmreg1.x".into(),
            ..Default::default()
        };
        sign_device_request_at(&mut req, &dev, &aud(), now, [7; 16]).unwrap();
        let (d, r) = verify_device_request(&req, &aud(), now, 1000).unwrap();
        assert_eq!((d, r), (dev.public(), rec.public()));
        let mut t = req.clone();
        t.recovery_identity = key(3).public().to_string();
        assert_eq!(
            verify_device_request(&t, &aud(), now, 1000),
            Err(AuthError::BadSignature { party: 0 })
        );
        let mut t = req.clone();
        t.registration_credential = "wmreg1.y".into();
        assert!(verify_device_request(&t, &aud(), now, 1000).is_err());
        assert!(verify_device_request(&req, &key(9).public(), now, 1000).is_err());
        assert!(matches!(
            verify_device_request(&req, &aud(), now + 5000, 1000),
            Err(AuthError::Stale { .. })
        ));
        // A CreateWallet signature is no enrollment (and the other way round): the
        // domains differ.
        let mut cw = pb::CreateWalletRequest {
            recovery_identity: rec.public().to_string(),
            ..Default::default()
        };
        sign_device_request_at(&mut cw, &dev, &aud(), now, [7; 16]).unwrap();
        let mut forged = req.clone();
        forged.signature = cw.signature.clone();
        assert!(verify_device_request(&forged, &aud(), now, 1000).is_err());
    }

    #[test]
    fn replay_cache_is_bounded_per_identity() {
        let c = ReplayCache::new(1000, 2);
        let r = c.check_and_insert("w/0", &[1; 16], 10_000, 10_000).unwrap();
        assert_eq!(r.expiry_ms, 11_000);
        assert!(r.expired.is_empty());
        assert_eq!(
            c.check_and_insert("w/0", &[1; 16], 10_000, 10_001),
            Err(AuthError::Replayed)
        );
        // Other scope: independent.
        c.check_and_insert("w/2", &[1; 16], 10_000, 10_001).unwrap();
        c.check_and_insert("w/0", &[2; 16], 10_000, 10_001).unwrap();
        // w/0 is at its bound: its next nonce is refused, other scopes go on.
        assert_eq!(
            c.check_and_insert("w/0", &[3; 16], 10_000, 10_001),
            Err(AuthError::ReplayCacheFull)
        );
        c.check_and_insert("w/2", &[3; 16], 10_000, 10_001).unwrap();
        c.check_and_insert("v/0", &[3; 16], 10_000, 10_001).unwrap();
        assert_eq!(c.len(), 5);
        // After the window, entries are forgotten (and reported for the persistent
        // copy).
        let r = c.check_and_insert("w/0", &[3; 16], 12_000, 12_000).unwrap();
        assert_eq!(r.expired.len(), 2);
        assert!(r.expired.contains(&("w/0".to_string(), [1; 16])));
        assert_eq!(
            c.check_and_insert("w/0", &[3; 15], 12_000, 12_000),
            Err(AuthError::BadNonce(15))
        );
        // Forget frees the slot; forgetting an unknown nonce is harmless.
        c.forget("w/0", &[3; 16]);
        c.forget("nobody", &[3; 16]);
        c.check_and_insert("w/0", &[3; 16], 12_000, 12_000).unwrap();
    }

    #[test]
    fn replay_cache_restores_unexpired_entries() {
        let c = ReplayCache::new(1000, 2);
        assert!(c.restore("w/0", [1; 16], 11_000, 10_500));
        assert!(!c.restore("w/0", [2; 16], 10_000, 10_500));
        assert!(c.restore("w/0", [3; 16], 10_800, 10_500));
        assert_eq!(
            c.check_and_insert("w/0", &[1; 16], 10_400, 10_500),
            Err(AuthError::Replayed)
        );
        assert_eq!(
            c.check_and_insert("w/0", &[4; 16], 10_400, 10_500),
            Err(AuthError::ReplayCacheFull)
        );
        // [3] expires first (order kept by expiry, not by load order).
        let r = c.check_and_insert("w/0", &[4; 16], 10_500, 10_900).unwrap();
        assert_eq!(r.expired, vec![("w/0".to_string(), [3; 16])]);
    }

    #[test]
    fn the_audience_is_signed_and_checked() {
        let k = key(1);
        let now = 1_700_000_000_000;
        let other = key(43).public();
        // In the canonical bytes: a different audience, different bytes.
        let d = [8; 32];
        let a = auth_message(
            &aud().to_string(),
            Method::StartSign,
            "w",
            0,
            now,
            &[1; 16],
            &d,
        );
        let b = auth_message(
            &other.to_string(),
            Method::StartSign,
            "w",
            0,
            now,
            &[1; 16],
            &d,
        );
        assert_ne!(a, b);
        assert!(a.windows(128).any(|w| w == aud().to_string().as_bytes()));
        let mut req = sign_req();
        sign_request_at(&mut req, &k, &aud(), "wallet", 0, now, [1; 16]).unwrap();
        assert_eq!(req.auth.as_ref().unwrap().audience, aud().to_string());
        verify_request(&req, &k.public(), &aud(), now, 1000).unwrap();
        // Another cosigner refuses it by name.
        assert_eq!(
            verify_request(&req, &k.public(), &other, now, 1000),
            Err(AuthError::WrongAudience {
                expected: other.to_string(),
                got: aud().to_string(),
            })
        );
        // Rewriting the audience breaks the signature.
        let mut t = req.clone();
        t.auth.as_mut().unwrap().audience = other.to_string();
        assert_eq!(
            verify_request(&t, &k.public(), &other, now, 1000),
            Err(AuthError::BadSignature { party: 0 })
        );
        // No audience at all (an old client): refused as another audience.
        let mut t = req.clone();
        t.auth.as_mut().unwrap().audience = String::new();
        assert!(matches!(
            verify_request(&t, &k.public(), &aud(), now, 1000),
            Err(AuthError::WrongAudience { .. })
        ));

        // CreateWallet: the same.
        let mut cw = pb::CreateWalletRequest {
            recovery_identity: key(2).public().to_string(),
            accounts: 1,
            ..Default::default()
        };
        sign_device_request_at(&mut cw, &k, &aud(), now, [2; 16]).unwrap();
        assert_eq!(cw.audience, aud().to_string());
        let m = create_wallet_message(&cw);
        let mut other_cw = cw.clone();
        other_cw.audience = other.to_string();
        assert_ne!(m, create_wallet_message(&other_cw));
        verify_device_request(&cw, &aud(), now, 1000).unwrap();
        assert!(matches!(
            verify_device_request(&cw, &other, now, 1000),
            Err(AuthError::WrongAudience { .. })
        ));
        assert_eq!(
            verify_device_request(&other_cw, &other, now, 1000),
            Err(AuthError::BadSignature { party: 0 })
        );
    }

    #[test]
    fn wallet_id_rules() {
        assert!(validate_wallet_id("abc-01").is_ok());
        assert!(validate_wallet_id("").is_err());
        assert!(validate_wallet_id("a\0b").is_err());
        assert!(validate_wallet_id(&"a".repeat(129)).is_err());
    }
}
