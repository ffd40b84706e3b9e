//! The platform-independent core of the exports: plain Rust in, plain Rust out, so it
//! is unit tested natively and in the browser alike. `js.rs` only converts values.

use std::collections::BTreeMap;

use cosigner_api::auth::{self, AuthenticatedRequest, NONCE_LEN};
use cosigner_api::pb;
use mpc_core::account::AccountKind;
use mpc_core::address::{bitcoin_p2wpkh_address, ethereum_address, BitcoinNetwork};
use mpc_core::digest::{DigestKind, SignRequest};
use mpc_core::hd::DerivationPath;
use mpc_core::keystore::{KdfParams, KeyShareBundle};
use mpc_core::presign::{PresignaturePublicDataRepr, StoredPresignature};
use mpc_core::{Account, AuxInfo, IncompleteKeyShare, PartialSignature, Point, Signature};
use mpc_wire::{IdentityKey, PublicIdentity, SEED_LEN};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult, Code};

// ---------------------------------------------------------------------------------
// Identity

/// A freshly generated identity.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedIdentity {
    /// The 32-byte seed (secret).
    #[serde(with = "serde_bytes")]
    pub secret: Vec<u8>,
    /// The public identity, 128 hex.
    pub public_identity: String,
}

/// Generates a device identity key.
pub fn generate_identity() -> ApiResult<GeneratedIdentity> {
    let key = IdentityKey::generate()?;
    let seed_hex = key.to_seed_hex();
    let secret = hex::decode(seed_hex.as_bytes())
        .map_err(|e| ApiError::new(Code::Internal, format!("seed encoding: {e}")))?;
    Ok(GeneratedIdentity {
        secret,
        public_identity: key.public().to_string(),
    })
}

/// The identity key of a 32-byte seed.
pub fn identity_from_secret(secret: &[u8]) -> ApiResult<IdentityKey> {
    let seed: Zeroizing<[u8; SEED_LEN]> = Zeroizing::new(secret.try_into().map_err(|_| {
        ApiError::input(format!(
            "identity secret must be {SEED_LEN} bytes, got {}",
            secret.len()
        ))
    })?);
    Ok(IdentityKey::from_seed(&seed))
}

/// Parses a public identity (128 hex).
pub fn parse_identity(what: &str, s: &str) -> ApiResult<PublicIdentity> {
    s.parse()
        .map_err(|e| ApiError::input(format!("{what}: {e}")))
}

// ---------------------------------------------------------------------------------
// Cosigner request authentication (delegates to cosigner_api::auth)

/// The caller-provided fields of a `CreateWalletRequest`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWalletInput {
    /// Recovery party's public identity.
    pub recovery_identity: String,
    /// Number of accounts.
    pub accounts: u32,
    /// Proto `AccountKind` value.
    #[serde(default)]
    pub kind: i32,
    /// Label.
    #[serde(default)]
    pub label: String,
}

/// A signed `CreateWalletRequest` (all proto fields).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateWalletSigned {
    /// Device identity (from the secret).
    pub device_identity: String,
    /// Recovery identity.
    pub recovery_identity: String,
    /// Accounts.
    pub accounts: u32,
    /// Proto `AccountKind`.
    pub kind: i32,
    /// Label.
    pub label: String,
    /// Timestamp.
    pub timestamp_ms: u64,
    /// 16-byte nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

fn nonce_or_random(nonce: Option<&[u8]>) -> ApiResult<[u8; NONCE_LEN]> {
    match nonce {
        Some(n) => n.try_into().map_err(|_| {
            ApiError::input(format!("nonce must be {NONCE_LEN} bytes, got {}", n.len()))
        }),
        None => Ok(auth::random_nonce()?),
    }
}

/// Signs a `CreateWalletRequest` with the device identity (`cosigner_api::auth::sign_create_wallet_at`).
pub fn sign_create_wallet(
    device_secret: &[u8],
    input: CreateWalletInput,
    timestamp_ms: u64,
    nonce: Option<&[u8]>,
) -> ApiResult<CreateWalletSigned> {
    let device = identity_from_secret(device_secret)?;
    parse_identity("recoveryIdentity", &input.recovery_identity)?;
    let nonce = nonce_or_random(nonce)?;
    let mut req = pb::CreateWalletRequest {
        recovery_identity: input.recovery_identity,
        accounts: input.accounts,
        kind: input.kind,
        label: input.label,
        ..Default::default()
    };
    auth::sign_create_wallet_at(&mut req, &device, timestamp_ms, nonce)?;
    Ok(CreateWalletSigned {
        device_identity: req.device_identity,
        recovery_identity: req.recovery_identity,
        accounts: req.accounts,
        kind: req.kind,
        label: req.label,
        timestamp_ms: req.timestamp_ms,
        nonce: req.nonce,
        signature: req.signature,
    })
}

/// Method-specific fields of an authenticated request (proto3 defaults when absent).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthFields {
    /// ConfirmWallet: account id → compressed public key hex.
    pub public_keys: BTreeMap<String, String>,
    /// StartSign / GetPublicKey.
    pub account_id: String,
    /// StartSign / GetPublicKey.
    pub derivation_path: String,
    /// StartSign.
    #[serde(with = "serde_bytes")]
    pub preimage: Vec<u8>,
    /// StartSign: proto `DigestKind`.
    pub digest: i32,
    /// StartSign: proto `PayloadKind`.
    pub payload_kind: i32,
    /// StartPresign: presignatures asked for.
    pub count: u32,
    /// StartPresign: presignatures the caller no longer holds.
    pub release_ids: Vec<String>,
    /// SignWithPresignature: the presignature used.
    pub presignature_id: String,
}

/// A proto `Auth`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthOut {
    /// Wallet id.
    pub wallet_id: String,
    /// Party (0 or 2).
    pub party: u32,
    /// Timestamp.
    pub timestamp_ms: u64,
    /// Nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl From<pb::Auth> for AuthOut {
    fn from(a: pb::Auth) -> Self {
        AuthOut {
            wallet_id: a.wallet_id,
            party: a.party,
            timestamp_ms: a.timestamp_ms,
            nonce: a.nonce,
            signature: a.signature,
        }
    }
}

/// Builds the proto request of `method` from `fields`, signs it and returns its `Auth`.
pub fn sign_auth(
    secret: &[u8],
    method: &str,
    wallet_id: &str,
    party: u16,
    fields: AuthFields,
    timestamp_ms: u64,
    nonce: Option<&[u8]>,
) -> ApiResult<AuthOut> {
    if party != 0 && party != 2 {
        return Err(ApiError::input(format!(
            "party {party} cannot authenticate requests (only 0 = device and 2 = recovery)"
        )));
    }
    let key = identity_from_secret(secret)?;
    let nonce = nonce_or_random(nonce)?;
    fn go<R: AuthenticatedRequest>(
        mut req: R,
        key: &IdentityKey,
        wallet_id: &str,
        party: u16,
        ts: u64,
        nonce: [u8; NONCE_LEN],
    ) -> ApiResult<AuthOut> {
        auth::sign_request_at(&mut req, key, wallet_id, party, ts, nonce)?;
        req.auth()
            .cloned()
            .map(AuthOut::from)
            .ok_or_else(|| ApiError::new(Code::Internal, "auth was not set"))
    }
    match method {
        "ConfirmWallet" => go(
            pb::ConfirmWalletRequest {
                auth: None,
                public_keys: fields.public_keys.into_iter().collect(),
            },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        "StartSign" => go(
            pb::StartSignRequest {
                auth: None,
                account_id: fields.account_id,
                derivation_path: fields.derivation_path,
                preimage: fields.preimage,
                digest: fields.digest,
                payload_kind: fields.payload_kind,
            },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        "GetPublicKey" => go(
            pb::GetPublicKeyRequest {
                auth: None,
                account_id: fields.account_id,
                derivation_path: fields.derivation_path,
            },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        "ListAccounts" => go(
            pb::ListAccountsRequest { auth: None },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        "StartPresign" => go(
            pb::StartPresignRequest {
                auth: None,
                account_id: fields.account_id,
                count: fields.count,
                release_ids: fields.release_ids,
            },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        "PresignPoolStatus" => go(
            pb::PresignPoolStatusRequest {
                auth: None,
                account_id: fields.account_id,
            },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        "SignWithPresignature" => go(
            pb::SignWithPresignatureRequest {
                auth: None,
                account_id: fields.account_id,
                presignature_id: fields.presignature_id,
                preimage: fields.preimage,
                digest: fields.digest,
                payload_kind: fields.payload_kind,
            },
            &key,
            wallet_id,
            party,
            timestamp_ms,
            nonce,
        ),
        other => Err(ApiError::input(format!(
            "unknown method {other:?} (ConfirmWallet, StartSign, GetPublicKey, ListAccounts, \
             StartPresign, PresignPoolStatus, SignWithPresignature)"
        ))),
    }
}

// ---------------------------------------------------------------------------------
// Encodings and helpers

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
        .map_err(|e| ApiError::new(Code::Keystore, format!("invalid {what}: {e}")))
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

/// A party's bundle with the operations the browser needs.
#[derive(Clone)]
pub struct BundleCore {
    /// The bundle (same content and JSON as the native client's).
    pub bundle: KeyShareBundle,
}

impl BundleCore {
    /// A new bundle for `party_index` with its identity and its peers' identities.
    pub fn new(
        party_index: u16,
        identity_secret: &[u8],
        peers: BTreeMap<u16, String>,
    ) -> ApiResult<Self> {
        if party_index >= mpc_core::PARTIES {
            return Err(ApiError::input(format!(
                "party index {party_index} out of range"
            )));
        }
        let key = identity_from_secret(identity_secret)?;
        for (p, id) in &peers {
            if *p == party_index || *p >= mpc_core::PARTIES {
                return Err(ApiError::input(format!(
                    "peer index {p} is invalid for party {party_index}"
                )));
            }
            parse_identity(&format!("identity of party {p}"), id)?;
        }
        let mut bundle = KeyShareBundle::new(party_index);
        bundle.identity_secret = Some(key.to_seed_hex().to_string());
        bundle.peers = peers;
        Ok(BundleCore { bundle })
    }

    /// Checks what a loaded bundle must have.
    fn check(bundle: KeyShareBundle) -> ApiResult<Self> {
        let secret = bundle
            .identity_secret
            .as_deref()
            .ok_or_else(|| ApiError::new(Code::Keystore, "bundle has no identity key"))?;
        IdentityKey::from_seed_hex(secret)
            .map_err(|e| ApiError::new(Code::Keystore, format!("identity key: {e}")))?;
        Ok(BundleCore { bundle })
    }

    /// The identity key.
    pub fn identity(&self) -> ApiResult<IdentityKey> {
        let secret = self
            .bundle
            .identity_secret
            .as_deref()
            .ok_or_else(|| ApiError::new(Code::Keystore, "bundle has no identity key"))?;
        IdentityKey::from_seed_hex(secret)
            .map_err(|e| ApiError::new(Code::Keystore, format!("identity key: {e}")))
    }

    /// Sets the aux info.
    pub fn set_aux_info(&mut self, aux: AuxInfo) {
        self.bundle.aux_info = Some(aux);
    }

    /// Adds an account from a fresh DKG share, checking it fits the aux info.
    pub fn add_account(
        &mut self,
        account_id: &str,
        kind: AccountKind,
        share: IncompleteKeyShare,
        created_at: u64,
    ) -> ApiResult<AccountInfo> {
        if account_id.is_empty() {
            return Err(ApiError::input("account id is empty"));
        }
        if share.i != self.bundle.party_index {
            return Err(ApiError::input(format!(
                "the share belongs to party {}, the bundle to party {}",
                share.i, self.bundle.party_index
            )));
        }
        if self.bundle.accounts.contains_key(account_id) {
            return Err(ApiError::input(format!(
                "account {account_id} already exists"
            )));
        }
        let account = Account::new(account_id, kind, share, created_at);
        let aux = self
            .bundle
            .aux_info
            .as_ref()
            .ok_or_else(|| ApiError::input("set the aux info before adding accounts"))?;
        account.complete(aux)?;
        let info = AccountInfo::from(&account);
        self.bundle.accounts.insert(account.id.clone(), account);
        Ok(info)
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
            .ok_or_else(|| ApiError::new(Code::Keystore, "bundle has no aux info"))?;
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
        let params = if insecure_fast_kdf {
            KdfParams::insecure_for_tests()
        } else {
            KdfParams::default()
        };
        Ok(self.bundle.encrypt(passphrase, params)?)
    }

    /// Decrypts a keystore file.
    pub fn decrypt(file: &str, passphrase: &str) -> ApiResult<Self> {
        Self::check(KeyShareBundle::decrypt(file, passphrase)?)
    }
}

/// A presignature handle that can be used once.
pub struct PresigCore {
    inner: Option<StoredPresignature>,
}

impl PresigCore {
    /// Wraps a stored presignature.
    pub fn new(p: StoredPresignature) -> Self {
        PresigCore { inner: Some(p) }
    }

    fn get(&self) -> ApiResult<&StoredPresignature> {
        self.inner.as_ref().ok_or_else(|| {
            ApiError::new(Code::PresignatureUsed, "this presignature was already used")
        })
    }

    /// Id.
    pub fn id(&self) -> ApiResult<String> {
        Ok(self.get()?.id.clone())
    }
    /// Account id.
    pub fn account_id(&self) -> ApiResult<String> {
        Ok(self.get()?.account_id.clone())
    }
    /// Signers.
    pub fn signers(&self) -> ApiResult<Vec<u16>> {
        Ok(self.get()?.signers.clone())
    }
    /// Serialized (secret!).
    pub fn to_bytes(&self) -> ApiResult<Vec<u8>> {
        to_json_bytes("presignature", self.get()?)
    }
    /// Parses.
    pub fn from_bytes(b: &[u8]) -> ApiResult<Self> {
        Ok(Self::new(from_json_bytes("presignature", b)?))
    }
    /// Public data, serialized.
    pub fn public_data(&self) -> ApiResult<Vec<u8>> {
        to_json_bytes("presignature public data", &self.get()?.public)
    }
    /// Issues the partial signature, consuming the presignature.
    pub fn issue_partial(&mut self, preimage: &[u8], digest: DigestKind) -> ApiResult<Vec<u8>> {
        let p = self.inner.take().ok_or_else(|| {
            ApiError::new(Code::PresignatureUsed, "this presignature was already used")
        })?;
        let req = SignRequest {
            preimage: preimage.to_vec(),
            digest,
        };
        to_json_bytes("partial signature", &p.issue_partial(&req))
    }
}

/// Combines partial signatures (in signers order) and verifies the result.
pub fn combine_partials(
    public_data: &[u8],
    partials: &[Vec<u8>],
    preimage: &[u8],
    digest: DigestKind,
    public_key: &str,
) -> ApiResult<SignatureResult> {
    let public: PresignaturePublicDataRepr =
        from_json_bytes("presignature public data", public_data)?;
    // Each partial is either this crate's `issuePartial` output (JSON) or the wire form
    // a peer sends (SignWithPresignatureResponse.partial_signature: 32 bytes big-endian);
    // a JSON encoding is never 32 bytes long.
    let partials = partials
        .iter()
        .map(|b| {
            if b.len() == mpc_core::presign::PARTIAL_SIGNATURE_LEN {
                mpc_core::presign::partial_from_bytes(b).map_err(ApiError::from)
            } else {
                from_json_bytes::<PartialSignature>("partial signature", b)
            }
        })
        .collect::<ApiResult<Vec<_>>>()?;
    if partials.len() != public.commitments.len() {
        return Err(ApiError::input(format!(
            "{} partial signatures given, {} signers",
            partials.len(),
            public.commitments.len()
        )));
    }
    let req = SignRequest {
        preimage: preimage.to_vec(),
        digest,
    };
    let sig = mpc_core::presign::combine(&public, &partials, &req)?;
    encode_signature(&parse_point(public_key)?, &req.digest_bytes(), &sig)
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

    fn to_pb(a: AuthOut) -> Option<pb::Auth> {
        Some(pb::Auth {
            wallet_id: a.wallet_id,
            party: a.party,
            timestamp_ms: a.timestamp_ms,
            nonce: a.nonce,
            signature: a.signature,
        })
    }

    /// The three presignature methods bind their fields as cosigner-api verifies them.
    fn presign_methods_verify(secret: &[u8], id: &PublicIdentity, now: u64) {
        let a = sign_auth(
            secret,
            "StartPresign",
            "w-1",
            0,
            AuthFields {
                account_id: "a".into(),
                count: 3,
                release_ids: vec!["r1".into(), "r2".into()],
                ..Default::default()
            },
            now,
            None,
        )
        .unwrap();
        let mut req = pb::StartPresignRequest {
            auth: to_pb(a),
            account_id: "a".into(),
            count: 3,
            release_ids: vec!["r1".into(), "r2".into()],
        };
        auth::verify_request(&req, id, now, 1000).unwrap();
        req.release_ids.pop();
        assert!(auth::verify_request(&req, id, now, 1000).is_err());

        let a = sign_auth(
            secret,
            "PresignPoolStatus",
            "w-1",
            0,
            AuthFields {
                account_id: "a".into(),
                ..Default::default()
            },
            now,
            None,
        )
        .unwrap();
        let req = pb::PresignPoolStatusRequest {
            auth: to_pb(a),
            account_id: "a".into(),
        };
        auth::verify_request(&req, id, now, 1000).unwrap();

        let a = sign_auth(
            secret,
            "SignWithPresignature",
            "w-1",
            0,
            AuthFields {
                account_id: "a".into(),
                presignature_id: "p1".into(),
                preimage: b"hello".to_vec(),
                digest: 1,
                payload_kind: 3,
                ..Default::default()
            },
            now,
            None,
        )
        .unwrap();
        let mut req = pb::SignWithPresignatureRequest {
            auth: to_pb(a),
            account_id: "a".into(),
            presignature_id: "p1".into(),
            preimage: b"hello".to_vec(),
            digest: 1,
            payload_kind: 3,
        };
        auth::verify_request(&req, id, now, 1000).unwrap();
        req.presignature_id = "p2".into();
        assert!(auth::verify_request(&req, id, now, 1000).is_err());
    }

    #[test]
    fn identity_round_trip_and_bad_length() {
        let g = generate_identity().unwrap();
        assert_eq!(g.secret.len(), 32);
        let k = identity_from_secret(&g.secret).unwrap();
        assert_eq!(k.public().to_string(), g.public_identity);
        assert_eq!(
            identity_from_secret(&[1, 2, 3]).unwrap_err().code,
            Code::InvalidInput
        );
    }

    #[test]
    fn signatures_verify_with_the_server_code() {
        let dev = generate_identity().unwrap();
        let rec = generate_identity().unwrap();
        let now = auth::now_ms();
        let signed = sign_create_wallet(
            &dev.secret,
            CreateWalletInput {
                recovery_identity: rec.public_identity.clone(),
                accounts: 2,
                kind: 1,
                label: "x".into(),
            },
            now,
            None,
        )
        .unwrap();
        let req = pb::CreateWalletRequest {
            device_identity: signed.device_identity,
            recovery_identity: signed.recovery_identity,
            accounts: signed.accounts,
            kind: signed.kind,
            label: signed.label,
            timestamp_ms: signed.timestamp_ms,
            nonce: signed.nonce,
            signature: signed.signature,
        };
        auth::verify_create_wallet(&req, now, 1000).unwrap();

        let a = sign_auth(
            &dev.secret,
            "GetPublicKey",
            "w-1",
            0,
            AuthFields {
                account_id: "a".into(),
                derivation_path: "m/1".into(),
                ..Default::default()
            },
            now,
            None,
        )
        .unwrap();
        let req = pb::GetPublicKeyRequest {
            auth: Some(pb::Auth {
                wallet_id: a.wallet_id,
                party: a.party,
                timestamp_ms: a.timestamp_ms,
                nonce: a.nonce,
                signature: a.signature,
            }),
            account_id: "a".into(),
            derivation_path: "m/1".into(),
        };
        let id: PublicIdentity = dev.public_identity.parse().unwrap();
        auth::verify_request(&req, &id, now, 1000).unwrap();
        presign_methods_verify(&dev.secret, &id, now);
        assert_eq!(
            sign_auth(
                &dev.secret,
                "Nope",
                "w",
                0,
                AuthFields::default(),
                now,
                None
            )
            .unwrap_err()
            .code,
            Code::InvalidInput
        );
        assert_eq!(
            sign_auth(
                &dev.secret,
                "ListAccounts",
                "w",
                1,
                AuthFields::default(),
                now,
                None
            )
            .unwrap_err()
            .code,
            Code::InvalidInput
        );
        assert_eq!(
            sign_auth(
                &dev.secret,
                "ListAccounts",
                "bad id!",
                0,
                AuthFields::default(),
                now,
                None
            )
            .unwrap_err()
            .code,
            Code::Auth
        );
    }

    #[test]
    fn helpers_reject_bad_input() {
        assert!(parse_point("zz").is_err());
        assert!(parse_point("02").is_err());
        assert!(parse_digest("md5").is_err());
        assert!(parse_path(Some("m/1'/2")).is_err());
        assert!(verify_signature("02", "00", "00", "00").is_err());
        assert!(BundleCore::from_bytes(b"{").is_err());
        assert!(BundleCore::decrypt("{}", "pw").is_err());
        assert!(PresigCore::from_bytes(b"[]").is_err());
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
