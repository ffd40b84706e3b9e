//! The platform-independent core of the exports: plain Rust in, plain Rust out, so it
//! is unit tested natively and in the browser alike. `js.rs` only converts values.

use mpc_core::account::AccountKind;
use mpc_core::address::{bitcoin_p2wpkh_address, ethereum_address, BitcoinNetwork};
use mpc_core::digest::DigestKind;
use mpc_core::hd::DerivationPath;
use mpc_core::keystore::{KdfParams, KeyShareBundle};
use mpc_core::{Account, Point, Signature};
use mpc_wire::{IdentityKey, PublicIdentity};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult, Code};

// ---------------------------------------------------------------------------------
// Identity

/// Parses a public identity (128 hex).
pub fn parse_identity(what: &str, s: &str) -> ApiResult<PublicIdentity> {
    s.parse()
        .map_err(|e| ApiError::input(format!("{what}: {e}")))
}

// ---------------------------------------------------------------------------------
// Encodings and helpers

/// Checks a passphrase chosen for a new key file (`mpc_core::keystore::check_passphrase`);
/// `invalid_input` naming the reason.
pub fn check_passphrase(passphrase: &str) -> ApiResult<()> {
    mpc_core::keystore::check_passphrase(passphrase).map_err(|e| ApiError::input(e.to_string()))
}

/// A failed cosigner call as the browser reads it (`decodeCosignerError`).
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CosignerErrorInfo {
    /// The wallet's error code (`docs/errors.md`).
    pub code: String,
    /// The policy rule that refused (`policy_denied`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `unknown` | `used` (`presignature_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presignature: Option<String>,
    /// The party the error concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<u16>,
    /// Whether the same call may succeed later unchanged.
    pub retryable: bool,
}

/// Decodes a failed cosigner call from its gRPC status code, message and
/// `grpc-status-details-bin` (base64 as the grpc-web trailer carries it, or raw bytes):
/// `cosigner_api`'s one decoder of the cosigner's `google.rpc.ErrorInfo`, so the
/// browser switches on the same codes as the native client, never on message text.
pub fn decode_cosigner_error(grpc_code: i32, message: &str, details: &[u8]) -> CosignerErrorInfo {
    let e = cosigner_api::error::RemoteError::from_grpc(grpc_code, message, details);
    CosignerErrorInfo {
        code: e.code.as_str().to_string(),
        rule: e.rule,
        presignature: e.presignature.map(|p| p.as_str().to_string()),
        party: e.party,
        retryable: e.retryable,
    }
}

/// Parses a digest kind name.
pub fn parse_digest(kind: &str) -> ApiResult<DigestKind> {
    DigestKind::parse(kind).ok_or_else(|| {
        ApiError::input(format!(
            "unknown digest {kind:?} (keccak256, double_sha256, sha256)"
        ))
    })
}

/// Parses a SEC1 public key (compressed or uncompressed hex).
pub fn parse_point(hex_key: &str) -> ApiResult<Point> {
    let bytes = hex::decode(hex_key.trim_start_matches("0x"))
        .map_err(|e| ApiError::input(format!("public key is not hex: {e}")))?;
    Point::from_bytes(&bytes).map_err(|e| ApiError::input(format!("invalid public key: {e}")))
}

fn parse_32(what: &str, h: &str) -> ApiResult<[u8; 32]> {
    let bytes = hex::decode(h.trim_start_matches("0x"))
        .map_err(|e| ApiError::input(format!("{what} is not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| ApiError::input(format!("{what} must be 32 bytes")))
}

/// Parses a derivation path (empty = root).
pub fn parse_path(path: Option<&str>) -> ApiResult<DerivationPath> {
    match path.map(str::trim) {
        None | Some("") | Some("m") => Ok(DerivationPath::root()),
        Some(p) => Ok(DerivationPath::parse(p)?),
    }
}

/// Every encoding of a verified signature.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignatureResult {
    /// r, hex.
    pub r: String,
    /// s (low-s), hex.
    pub s: String,
    /// y parity.
    pub y_parity: u8,
    /// Signed digest, hex.
    pub digest: String,
    /// Bitcoin DER, hex.
    pub der: String,
    /// r‖s‖(27+y), hex.
    pub rsv: String,
    /// Compressed public key of the signer, hex.
    pub public_key: String,
    /// EIP-55 address of the signer.
    pub ethereum_address: String,
}

/// Verifies `sig` over `digest` for `public_key` and encodes it every way.
pub fn encode_signature(
    public_key: &Point,
    digest: &[u8; 32],
    sig: &Signature,
) -> ApiResult<SignatureResult> {
    let enc = mpc_core::signature::encode_all(public_key, digest, sig)?;
    let rsv = format!("{}{}{:02x}", enc.r, enc.s, 27 + enc.y_parity);
    Ok(SignatureResult {
        r: enc.r,
        s: enc.s,
        y_parity: enc.y_parity,
        digest: enc.digest,
        der: enc.der,
        rsv,
        public_key: hex::encode(public_key.to_bytes(true)),
        ethereum_address: ethereum_address(public_key),
    })
}

fn signature_from_hex(r: &str, s: &str) -> ApiResult<Signature> {
    let scalar = |what: &str,
                  h: &str|
     -> ApiResult<generic_ec::NonZero<generic_ec::Scalar<mpc_core::Curve>>> {
        let b = parse_32(what, h)?;
        let sc = generic_ec::Scalar::<mpc_core::Curve>::from_be_bytes(b)
            .map_err(|_| ApiError::input(format!("{what} is not below the curve order")))?;
        generic_ec::NonZero::from_scalar(sc)
            .ok_or_else(|| ApiError::input(format!("{what} is zero")))
    };
    Ok(Signature::from_raw_parts(scalar("r", r)?, scalar("s", s)?))
}

/// Encodes (after verifying) a signature given as hex r, s.
pub fn encode_signature_hex(
    r: &str,
    s: &str,
    digest: &str,
    public_key: &str,
) -> ApiResult<SignatureResult> {
    let sig = signature_from_hex(r, s)?;
    encode_signature(
        &parse_point(public_key)?,
        &parse_32("digest", digest)?,
        &sig,
    )
}

/// Whether (r, s) verifies over `digest` for `public_key`.
pub fn verify_signature(public_key: &str, digest: &str, r: &str, s: &str) -> ApiResult<bool> {
    let pk = parse_point(public_key)?;
    let d = parse_32("digest", digest)?;
    let sig = signature_from_hex(r, s)?;
    Ok(mpc_core::signature::verify_digest(&pk, &d, &sig).is_ok())
}

/// Public key and addresses at a path.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyInfo {
    /// Compressed hex.
    pub public_key: String,
    /// EIP-55.
    pub ethereum_address: String,
    /// P2WPKH mainnet.
    pub bitcoin_address: String,
    /// Path as normalised.
    pub derivation_path: String,
}

/// A Bitcoin network name.
pub fn parse_network(n: Option<&str>) -> ApiResult<BitcoinNetwork> {
    match n.unwrap_or("mainnet") {
        "mainnet" | "bitcoin" => Ok(BitcoinNetwork::Mainnet),
        "testnet" | "signet" => Ok(BitcoinNetwork::Testnet),
        "regtest" => Ok(BitcoinNetwork::Regtest),
        other => Err(ApiError::input(format!(
            "unknown bitcoin network {other:?}"
        ))),
    }
}

/// Derives a child public key (non-hardened BIP-32).
pub fn derive_public_key(public_key: &str, chain_code: &str, path: &str) -> ApiResult<String> {
    let pk = parse_point(public_key)?;
    let cc = parse_32("chain code", chain_code)?;
    let path = parse_path(Some(path))?;
    let child = mpc_core::hd::derive_public_key(&pk, &cc, &path)?;
    Ok(hex::encode(child.to_bytes(true)))
}

/// Bitcoin P2WPKH address of a public key.
pub fn bitcoin_address(public_key: &str, network: Option<&str>) -> ApiResult<String> {
    Ok(bitcoin_p2wpkh_address(
        &parse_point(public_key)?,
        parse_network(network)?,
    )?)
}

// ---------------------------------------------------------------------------------
// Protocol outputs and the key-share bundle

/// Serializes a value to JSON bytes.
pub fn to_json_bytes<T: Serialize>(what: &str, v: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v)
        .map_err(|e| ApiError::new(Code::Internal, format!("cannot serialize {what}: {e}")))
}

/// Deserializes JSON bytes (never panics on bad input).
pub fn from_json_bytes<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(b)
        .map_err(|e| ApiError::new(Code::Storage, format!("invalid {what}: {e}")))
}

/// Public summary of an account.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    /// Id.
    pub account_id: String,
    /// "hd" | "independent".
    pub kind: AccountKind,
    /// Compressed hex.
    pub public_key: String,
    /// Chain code hex (HD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_code: Option<String>,
    /// EIP-55 address of the root key.
    pub ethereum_address: String,
    /// Threshold.
    pub threshold: u16,
    /// Parties.
    pub parties: u16,
    /// Seconds since the epoch.
    pub created_at: u64,
}

impl From<&Account> for AccountInfo {
    fn from(a: &Account) -> Self {
        AccountInfo {
            account_id: a.id.clone(),
            kind: a.kind,
            public_key: a.public_key.clone(),
            chain_code: a.chain_code.clone(),
            ethereum_address: ethereum_address(&a.master_public_key()),
            threshold: a.threshold,
            parties: a.parties,
            created_at: a.created_at,
        }
    }
}

/// Parses an account kind name.
pub fn parse_kind(kind: &str) -> ApiResult<AccountKind> {
    match kind {
        "hd" => Ok(AccountKind::Hd),
        "independent" => Ok(AccountKind::Independent),
        other => Err(ApiError::input(format!(
            "unknown account kind {other:?} (hd, independent)"
        ))),
    }
}

/// `bundle` as a passphrase-encrypted keystore file (Argon2id + XChaCha20-Poly1305; the
/// fast KDF only for tests).
pub fn encrypt_bundle(
    bundle: &KeyShareBundle,
    passphrase: &str,
    insecure_fast_kdf: bool,
) -> ApiResult<String> {
    let params = if insecure_fast_kdf {
        KdfParams::insecure_for_tests()
    } else {
        KdfParams::default()
    };
    Ok(bundle.encrypt(passphrase, params)?)
}

/// A party's bundle with the operations the browser needs.
#[derive(Clone)]
pub struct BundleCore {
    /// The bundle (same content and JSON as the native client's).
    pub bundle: KeyShareBundle,
}

impl BundleCore {
    fn check(bundle: KeyShareBundle) -> ApiResult<Self> {
        let secret = bundle
            .identity_secret
            .as_deref()
            .ok_or_else(|| ApiError::new(Code::Storage, "bundle has no identity key"))?;
        IdentityKey::from_seed_hex(secret)
            .map_err(|e| ApiError::new(Code::Storage, format!("identity key: {e}")))?;
        Ok(BundleCore { bundle })
    }

    /// The identity key.
    pub fn identity(&self) -> ApiResult<IdentityKey> {
        let secret = self
            .bundle
            .identity_secret
            .as_deref()
            .ok_or_else(|| ApiError::new(Code::Storage, "bundle has no identity key"))?;
        IdentityKey::from_seed_hex(secret)
            .map_err(|e| ApiError::new(Code::Storage, format!("identity key: {e}")))
    }

    /// Accounts.
    pub fn accounts(&self) -> Vec<AccountInfo> {
        self.bundle
            .accounts
            .values()
            .map(AccountInfo::from)
            .collect()
    }

    /// The account `id`.
    pub fn account(&self, id: &str) -> ApiResult<&Account> {
        self.bundle
            .accounts
            .get(id)
            .ok_or_else(|| ApiError::input(format!("unknown account {id:?}")))
    }

    /// The complete key share of an account (with the aux info).
    pub fn key_share(&self, id: &str) -> ApiResult<mpc_core::KeyShare> {
        let aux = self
            .bundle
            .aux_info
            .as_ref()
            .ok_or_else(|| ApiError::new(Code::Storage, "bundle has no aux info"))?;
        Ok(self.account(id)?.complete(aux)?)
    }

    /// Public key and addresses of an account at a path.
    pub fn public_key(&self, id: &str, path: Option<&str>) -> ApiResult<PublicKeyInfo> {
        let path = parse_path(path)?;
        let pk = self.account(id)?.public_key_at(&path)?;
        Ok(PublicKeyInfo {
            public_key: hex::encode(pk.to_bytes(true)),
            ethereum_address: ethereum_address(&pk),
            bitcoin_address: bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Mainnet)?,
            derivation_path: path.to_string(),
        })
    }

    /// The roster of `parties` (own identity and peers).
    pub fn roster(&self, parties: &[u16]) -> ApiResult<mpc_wire::Roster> {
        let me = self.bundle.party_index;
        let own = self.identity()?.public();
        let mut ids = Vec::new();
        for &p in parties {
            let id = if p == me {
                own
            } else {
                let h = self.bundle.peers.get(&p).ok_or_else(|| {
                    ApiError::input(format!("the bundle has no identity of party {p}"))
                })?;
                parse_identity(&format!("identity of party {p}"), h)?
            };
            ids.push((p, id));
        }
        Ok(mpc_wire::Roster::new(ids)?)
    }

    /// Plaintext JSON bytes (encrypt before storing).
    pub fn to_bytes(&self) -> ApiResult<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(to_json_bytes("bundle", &self.bundle)?))
    }

    /// Parses plaintext JSON bytes.
    pub fn from_bytes(b: &[u8]) -> ApiResult<Self> {
        Self::check(from_json_bytes("key-share bundle", b)?)
    }

    /// Passphrase-encrypted keystore file (Argon2id + XChaCha20-Poly1305).
    pub fn encrypt(&self, passphrase: &str, insecure_fast_kdf: bool) -> ApiResult<String> {
        encrypt_bundle(&self.bundle, passphrase, insecure_fast_kdf)
    }

    /// Decrypts a keystore file.
    pub fn decrypt(file: &str, passphrase: &str) -> ApiResult<Self> {
        Self::check(KeyShareBundle::decrypt(file, passphrase)?)
    }
}

// ---------------------------------------------------------------------------------
// Backups (the format is `mpc_core::backup`, the native client's too)

pub use mpc_core::backup::{WalletMember, WALLET_META_FORMAT};

/// A backup error as the browser reads it: `wrong_passphrase` (reason
/// `wrong_passphrase`), `storage` with reason `not_a_backup`, `invalid_input` (empty
/// passphrase), `internal`.
pub fn backup_error(e: mpc_core::backup::BackupFormatError) -> ApiError {
    use mpc_core::backup::BackupFormatError as E;
    let msg = e.to_string();
    match e {
        E::WrongPassphrase => {
            ApiError::new(Code::WrongPassphrase, msg).with_reason("wrong_passphrase")
        }
        E::NotABackup(_) => ApiError::new(Code::Storage, msg).with_reason("not_a_backup"),
        E::EmptyPassphrase => ApiError::input(msg),
        _ => ApiError::new(Code::Internal, msg),
    }
}

/// The backup of a device or recovery `bundle` of wallet `wallet_id` under `passphrase`
/// (`mpc_core::backup::encrypt_backup`: the native client's format). `allow_weak`
/// skips the strength check of new key files.
pub fn export_backup(
    bundle: &KeyShareBundle,
    meta: &WalletMember,
    passphrase: &str,
    allow_weak: bool,
    insecure_fast_kdf: bool,
) -> ApiResult<Vec<u8>> {
    if passphrase.is_empty() {
        return Err(ApiError::input("the backup passphrase is empty"));
    }
    if !allow_weak {
        mpc_core::keystore::check_passphrase(passphrase).map_err(|e| {
            ApiError::input(format!(
                "the backup passphrase: {e} (allowWeakPassphrase overrides)"
            ))
        })?;
    }
    let params = if insecure_fast_kdf {
        KdfParams::insecure_for_tests()
    } else {
        KdfParams::default()
    };
    mpc_core::backup::encrypt_backup(bundle, meta, passphrase, params).map_err(backup_error)
}

/// Opens a backup for party `expect_party` (the browser holds the device's, 0):
/// decrypts it and checks that its share is usable (aux info, identity key) before
/// anything is stored. Errors carry `reason` (see [`backup_error`]).
pub fn open_backup(
    bytes: &[u8],
    passphrase: &str,
    expect_party: u16,
) -> ApiResult<mpc_core::backup::OpenedBackup<WalletMember>> {
    let opened = mpc_core::backup::decrypt_backup::<WalletMember>(bytes, passphrase)
        .map_err(backup_error)?;
    let not = |m: String| ApiError::new(Code::Storage, m).with_reason("not_a_backup");
    if opened.bundle.party_index != expect_party {
        return Err(not(format!(
            "the backup holds the share of party {} (2: recovery; import it with `client backup \
             import`), this wallet needs party {expect_party}'s",
            opened.bundle.party_index
        )));
    }
    client_core::Party::new(
        opened.meta.wallet_id.clone(),
        opened.bundle.clone(),
        "the backup",
    )
    .map_err(|e| not(format!("not a usable share: {e}")))?;
    Ok(opened)
}

/// Whether two bundles are the same share (their deterministic JSON compared).
pub fn same_share(a: &KeyShareBundle, b: &KeyShareBundle) -> ApiResult<bool> {
    let ser = |x: &KeyShareBundle| to_json_bytes("bundle", x).map(Zeroizing::new);
    Ok(*ser(a)? == *ser(b)?)
}

/// Checks a prime set (four primes of the right size).
pub fn validate_primes(
    set: &mpc_core::primes::PrimeSet,
) -> ApiResult<mpc_core::primes::PregeneratedPrimes> {
    set.to_pregenerated()
        .map_err(|e| ApiError::input(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_reject_bad_input() {
        assert!(parse_point("zz").is_err());
        assert!(parse_point("02").is_err());
        assert!(parse_digest("md5").is_err());
        assert!(parse_path(Some("m/1'/2")).is_err());
        assert!(verify_signature("02", "00", "00", "00").is_err());
        assert!(BundleCore::from_bytes(b"{").is_err());
        assert!(BundleCore::decrypt("{}", "pw").is_err());
    }

    #[test]
    fn backups_open_with_typed_errors() {
        let meta = |party: u16| WalletMember {
            format: WALLET_META_FORMAT.into(),
            wallet_id: "w".into(),
            party_index: party,
            cosigner_url: String::new(),
            label: String::new(),
            created_at_ms: 0,
        };
        let bundle = KeyShareBundle::new(0);
        // Weak passphrases are refused unless allowed.
        let e = export_backup(&bundle, &meta(0), "short", false, true).unwrap_err();
        assert_eq!(e.code, Code::InvalidInput);
        let bytes = export_backup(&bundle, &meta(0), "short", true, true).unwrap();
        let e = open_backup(&bytes, "other", 0).unwrap_err();
        assert_eq!(
            (e.code, e.reason),
            (Code::WrongPassphrase, Some("wrong_passphrase"))
        );
        let e = open_backup(b"garbage", "short", 0).unwrap_err();
        assert_eq!((e.code, e.reason), (Code::Storage, Some("not_a_backup")));
        // An empty bundle (no aux info, no identity) is no usable share.
        let e = open_backup(&bytes, "short", 0).unwrap_err();
        assert_eq!((e.code, e.reason), (Code::Storage, Some("not_a_backup")));
        // A recovery share is not the device's.
        let rec = export_backup(&KeyShareBundle::new(2), &meta(2), "short", true, true).unwrap();
        let e = open_backup(&rec, "short", 0).unwrap_err();
        assert_eq!(e.reason, Some("not_a_backup"));
        assert!(same_share(&bundle, &KeyShareBundle::new(0)).unwrap());
        assert!(!same_share(&bundle, &KeyShareBundle::new(2)).unwrap());
    }

    #[test]
    fn cosigner_errors_decode_by_code_not_text() {
        use wallet_types::ErrorCode;
        let bin = cosigner_api::error::encode_details(
            7,
            "refused",
            ErrorCode::PolicyDenied,
            &[("rule", "allowed_destinations")],
        );
        let e = decode_cosigner_error(7, "refused", &bin);
        assert_eq!(e.code, "policy_denied");
        assert_eq!(e.rule.as_deref(), Some("allowed_destinations"));
        let bin = cosigner_api::error::encode_details(
            9,
            "",
            ErrorCode::PresignatureUnavailable,
            &[("presignature", "used")],
        );
        let e = decode_cosigner_error(9, "", &bin);
        assert_eq!(e.presignature.as_deref(), Some("used"));
        // No details: the gRPC code decides, never the text.
        let e = decode_cosigner_error(9, "policy refused: presignature used", b"");
        assert_eq!(
            (e.code.as_str(), e.rule, e.presignature),
            ("cosigner_rejected", None, None)
        );
    }
}
