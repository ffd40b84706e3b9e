//! UniFFI bindings (Swift, Kotlin, Python) over [`mpc_client`], the native client of the
//! 2-of-3 threshold wallet.
//!
//! The shared vocabulary (`ErrorCode`, `PartyRole`, `AccountKind`, `DigestKind`,
//! `PayloadKind`) is `wallet-types`' own, with its UniFFI derives (feature `uniffi`).
//! The other exported types mirror `mpc-client`'s public types (plain records and
//! enums, converted with `From`), so that `mpc-client` itself carries no FFI attributes.
//! Async methods run on a multi-threaded tokio runtime owned by this library: the
//! foreign side's future only waits for the spawned task, so the protocol's CPU work never
//! blocks the caller's event loop (Python asyncio, Kotlin coroutines, Swift tasks).

use std::sync::{Arc, OnceLock};

use mpc_client as mc;
pub use wallet_types::{AccountKind, DigestKind, ErrorCode, PartyRole, PayloadKind};

uniffi::setup_scaffolding!();

// ----------------------------------------------------------------------------- runtime

fn runtime() -> Result<&'static tokio::runtime::Runtime, MpcError> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wallet-mpc-ffi")
        .build()
        .map_err(|e| MpcError::internal(format!("cannot start the tokio runtime: {e}")))?;
    Ok(RT.get_or_init(|| rt))
}

/// Runs `fut` on the library's runtime and waits for it from any executor.
async fn on_runtime<T, E, F>(fut: F) -> Result<T, MpcError>
where
    T: Send + 'static,
    E: Into<MpcError> + Send + 'static,
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
{
    let handle = runtime()?.spawn(fut);
    match handle.await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(MpcError::internal(format!("task failed: {e}"))),
    }
}

// ------------------------------------------------------------------------------ errors

/// Why an operation failed.
///
/// Every variant carries `code`, the wallet's one error vocabulary
/// ([`ErrorCode`](wallet_types::ErrorCode), the same codes the CLI's `--json` output,
/// the cosigner's wire errors and the npm package use): switch on `e.code` (Python:
/// `e.code == ErrorCode.POLICY_DENIED`; Kotlin: `when (e.code) { ErrorCode.POLICY_DENIED
/// -> ... }` on the subclass; Swift: the associated value). The variant is the
/// category, with the structured fields an app needs (`rule` for `policy_denied`,
/// `blamed` parties for `session_failed`...), and `detail` the readable message.
///
/// (The text field is called `detail`, not `message`, because `message` collides with
/// `Throwable.message` in the generated Kotlin exception classes.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum MpcError {
    /// The configuration is incomplete or inconsistent (`config`).
    #[error("{detail}")]
    Config { code: ErrorCode, detail: String },
    /// A file could not be read or written (`storage`).
    #[error("{detail}")]
    Io {
        code: ErrorCode,
        path: String,
        detail: String,
    },
    /// The passphrase does not open the key-share file (`wrong_passphrase`).
    #[error("{detail}")]
    WrongPassphrase {
        code: ErrorCode,
        path: String,
        detail: String,
    },
    /// A file exists but is damaged or belongs to something else (`storage`).
    #[error("{detail}")]
    CorruptFile {
        code: ErrorCode,
        path: String,
        detail: String,
    },
    /// `create_wallet` would overwrite an existing key-share file (`wallet_exists`).
    #[error("{detail}")]
    WalletExists {
        code: ErrorCode,
        path: String,
        detail: String,
    },
    /// `import_backup`: the share file holds another wallet's share; both wallet ids
    /// are named (`wallet_exists`). Nothing was written.
    #[error("{detail}")]
    OtherWallet {
        code: ErrorCode,
        path: String,
        existing_wallet_id: String,
        backup_wallet_id: String,
        detail: String,
    },
    /// No wallet has been created yet (`no_wallet`).
    #[error("{detail}")]
    NoWallet {
        code: ErrorCode,
        path: String,
        detail: String,
    },
    /// The account id is not in this wallet (`unknown_account`).
    #[error("{detail}")]
    UnknownAccount {
        code: ErrorCode,
        account_id: String,
        available: Vec<String>,
        detail: String,
    },
    /// An argument is invalid (`invalid_input`).
    #[error("{detail}")]
    InvalidInput { code: ErrorCode, detail: String },
    /// The cosigner cannot be reached or went away; retry later (`cosigner_unavailable`).
    #[error("{detail}")]
    CosignerUnavailable { code: ErrorCode, detail: String },
    /// A TLS connection failed: the server's certificate is not trusted (give the CA
    /// file in `MpcConfig.ca_file`), is for another name or expired, or the handshake
    /// failed (`tls_failed`). Retrying does not help until the configuration changes.
    #[error("{detail}")]
    Tls { code: ErrorCode, detail: String },
    /// The cosigner refused the caller's credentials (`unauthorized`).
    #[error("{detail}")]
    Unauthorized { code: ErrorCode, detail: String },
    /// The cosigner's policy refused to co-sign (`policy_denied`); `rule` names the rule
    /// when the cosigner does (e.g. `allowed_destinations`).
    #[error("{detail}")]
    PolicyDenied {
        code: ErrorCode,
        rule: Option<String>,
        detail: String,
    },
    /// The cosigner refused for another reason: `code` says which (`not_found`,
    /// `wallet_not_ready`, `pool_full`, `busy`, `rate_limited`, `cosigner_rejected`...).
    #[error("{detail}")]
    Cosigner { code: ErrorCode, detail: String },
    /// The presignature taken is unusable, or none is left in `require` mode
    /// (`presignature_unavailable`).
    #[error("{detail}")]
    PresignatureUnavailable {
        code: ErrorCode,
        presignature_id: Option<String>,
        detail: String,
    },
    /// The message gateway could not be reached or refused us (`gateway_unavailable`).
    #[error("{detail}")]
    GatewayUnavailable { code: ErrorCode, detail: String },
    /// A protocol session failed; `blamed` lists the keygen indices the protocol blames
    /// (`session_failed`).
    #[error("{detail}")]
    SessionFailed {
        code: ErrorCode,
        stage: String,
        session_id: String,
        blamed: Vec<u16>,
        detail: String,
    },
    /// An operation did not finish in time (`timeout`).
    #[error("{detail}")]
    Timeout {
        code: ErrorCode,
        stage: String,
        after_secs: u64,
        detail: String,
    },
    /// The cosigner announced another digest than the local one; nothing was signed
    /// (`digest_mismatch`).
    #[error("{detail}")]
    DigestMismatch { code: ErrorCode, detail: String },
    /// A signature does not verify (`verification_failed`).
    #[error("{detail}")]
    VerificationFailed { code: ErrorCode, detail: String },
    /// A service answered with something malformed (`invalid_response`).
    #[error("{detail}")]
    InvalidResponse { code: ErrorCode, detail: String },
    /// An internal error, a bug (`internal`).
    #[error("{detail}")]
    Internal { code: ErrorCode, detail: String },
}

impl MpcError {
    fn internal(detail: String) -> Self {
        MpcError::Internal {
            code: ErrorCode::Internal,
            detail,
        }
    }
}

impl From<mc::MpcError> for MpcError {
    fn from(e: mc::MpcError) -> Self {
        let detail = e.to_string();
        let code = e.code();
        use mc::MpcError as E;
        match e {
            E::Config { .. } => MpcError::Config { code, detail },
            E::Io { path, .. } => MpcError::Io { code, path, detail },
            E::WrongPassphrase { path } => MpcError::WrongPassphrase { code, path, detail },
            E::CorruptFile { path, .. } => MpcError::CorruptFile { code, path, detail },
            E::WalletExists { path } => MpcError::WalletExists { code, path, detail },
            E::NoWallet { path } => MpcError::NoWallet { code, path, detail },
            E::UnknownAccount {
                account_id,
                available,
            } => MpcError::UnknownAccount {
                code,
                account_id,
                available,
                detail,
            },
            E::InvalidInput { .. } => MpcError::InvalidInput { code, detail },
            E::CosignerUnavailable { .. } => MpcError::CosignerUnavailable { code, detail },
            E::Tls { .. } => MpcError::Tls { code, detail },
            E::Unauthorized { .. } | E::IdentityRevoked { .. } => {
                MpcError::Unauthorized { code, detail }
            }
            E::WalletFrozen { .. } => MpcError::Cosigner { code, detail },
            E::PolicyDenied { rule, .. } => MpcError::PolicyDenied { code, rule, detail },
            E::Cosigner { .. } => MpcError::Cosigner { code, detail },
            E::PresignatureUnavailable {
                presignature_id, ..
            } => MpcError::PresignatureUnavailable {
                code,
                presignature_id,
                detail,
            },
            E::GatewayUnavailable { .. } => MpcError::GatewayUnavailable { code, detail },
            E::SessionFailed {
                stage,
                session_id,
                blamed,
                ..
            } => MpcError::SessionFailed {
                code,
                stage,
                session_id,
                blamed,
                detail,
            },
            E::Timeout {
                stage, after_secs, ..
            } => MpcError::Timeout {
                code,
                stage,
                after_secs,
                detail,
            },
            E::DigestMismatch { .. } => MpcError::DigestMismatch { code, detail },
            E::VerificationFailed { .. } => MpcError::VerificationFailed { code, detail },
            E::InvalidResponse { .. } => MpcError::InvalidResponse { code, detail },
            // (Categories added to the client later read as their code's nearest.)
            _ => MpcError::Cosigner { code, detail },
        }
    }
}

impl From<mc::BackupError> for MpcError {
    /// A backup that does not open is `WrongPassphrase`, one that is not a backup
    /// `CorruptFile` (path `backup`), a different share of the same wallet
    /// `WalletExists`, another wallet's share `OtherWallet`.
    fn from(e: mc::BackupError) -> Self {
        let detail = e.to_string();
        let code = e.code();
        use mc::BackupError as B;
        match e {
            B::WrongPassphrase => MpcError::WrongPassphrase {
                code,
                path: "backup".into(),
                detail,
            },
            B::NotABackup { .. } => MpcError::CorruptFile {
                code,
                path: "backup".into(),
                detail,
            },
            B::OtherWallet {
                path,
                existing_wallet_id,
                backup_wallet_id,
            } => MpcError::OtherWallet {
                code,
                path,
                existing_wallet_id,
                backup_wallet_id,
                detail,
            },
            B::DifferentShare { path, .. } => MpcError::WalletExists { code, path, detail },
            B::Client(e) => e.into(),
            _ => MpcError::CorruptFile {
                code,
                path: "backup".into(),
                detail,
            },
        }
    }
}

/// What `import_backup` did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BackupImport {
    /// The wallet of the imported share.
    pub wallet_id: String,
    /// Its party index (0 device, 2 recovery).
    pub party_index: u16,
    /// The share file written (or found identical).
    pub path: String,
    /// `true` when the identical share was already there (nothing was written).
    pub already_present: bool,
    /// The wallet's accounts.
    pub accounts: Vec<AccountInfo>,
}

impl From<mc::BackupImport> for BackupImport {
    fn from(b: mc::BackupImport) -> Self {
        BackupImport {
            wallet_id: b.wallet_id,
            party_index: b.party_index,
            path: b.path,
            already_present: b.already_present,
            accounts: b.accounts.into_iter().map(Into::into).collect(),
        }
    }
}

// ------------------------------------------------------------------------------ config

/// Client configuration (see `default_mpc_config` for the defaults).
#[derive(Clone, uniffi::Record)]
pub struct MpcConfig {
    /// Cosigner (sign-service) gRPC URL, e.g. `http://127.0.0.1:50051` or
    /// `https://cosigner.example:443` (TLS: the web PKI roots, plus `ca_file`).
    pub cosigner_url: String,
    /// Gateway URL to use instead of the one the cosigner announces.
    pub gateway_url: Option<String>,
    /// The device's encrypted key-share file.
    pub key_share_path: String,
    /// Passphrase of the device's key-share file.
    pub passphrase: String,
    /// The recovery party's encrypted key-share file.
    pub recovery_path: Option<String>,
    /// Passphrase of the recovery file.
    pub recovery_passphrase: Option<String>,
    /// Which party signs with the cosigner.
    pub role: PartyRole,
    /// Timeout of each gRPC call, in seconds.
    pub request_timeout_secs: u64,
    /// Timeout of one signing session, in seconds.
    pub sign_timeout_secs: u64,
    /// Timeout of each wallet-creation session, in seconds.
    pub setup_timeout_secs: u64,
    /// Use the repository's PUBLIC test primes (development only).
    pub insecure_dev_primes: bool,
    /// A primes file (`key-gen --save-primes` format).
    pub primes_path: Option<String>,
    /// Fast, weak passphrase hashing for the key files (tests only).
    pub insecure_fast_kdf: bool,
    /// Accept weak passphrases for new key files (the explicit override of the strength
    /// check: at least 12 characters, 6 different).
    #[uniffi(default = false)]
    pub allow_weak_passphrase: bool,
    /// The registration credential (`wmreg1.…`) the cosigner's operator issued for the
    /// next wallet creation (required unless the cosigner is in dev mode).
    #[uniffi(default = None)]
    pub registration_credential: Option<String>,
    /// A PEM file of extra CA certificates to trust for `https://` cosigner and gateway
    /// URLs, beside the web PKI roots (for a cosigner whose certificate a private CA
    /// issued). `None`: the web PKI roots only.
    #[uniffi(default = None)]
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for MpcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&mc::MpcConfig::from(self.clone()), f)
    }
}

impl From<MpcConfig> for mc::MpcConfig {
    fn from(c: MpcConfig) -> Self {
        mc::MpcConfig {
            cosigner_url: c.cosigner_url,
            gateway_url: c.gateway_url,
            key_share_path: c.key_share_path,
            passphrase: c.passphrase,
            recovery_path: c.recovery_path,
            recovery_passphrase: c.recovery_passphrase,
            role: c.role,
            request_timeout_secs: c.request_timeout_secs,
            sign_timeout_secs: c.sign_timeout_secs,
            setup_timeout_secs: c.setup_timeout_secs,
            insecure_dev_primes: c.insecure_dev_primes,
            primes_path: c.primes_path,
            insecure_fast_kdf: c.insecure_fast_kdf,
            allow_weak_passphrase: c.allow_weak_passphrase,
            registration_credential: c.registration_credential,
            ca_file: c.ca_file,
        }
    }
}

impl From<mc::MpcConfig> for MpcConfig {
    fn from(c: mc::MpcConfig) -> Self {
        MpcConfig {
            cosigner_url: c.cosigner_url,
            gateway_url: c.gateway_url,
            key_share_path: c.key_share_path,
            passphrase: c.passphrase,
            recovery_path: c.recovery_path,
            recovery_passphrase: c.recovery_passphrase,
            role: c.role,
            request_timeout_secs: c.request_timeout_secs,
            sign_timeout_secs: c.sign_timeout_secs,
            setup_timeout_secs: c.setup_timeout_secs,
            insecure_dev_primes: c.insecure_dev_primes,
            primes_path: c.primes_path,
            insecure_fast_kdf: c.insecure_fast_kdf,
            allow_weak_passphrase: c.allow_weak_passphrase,
            registration_credential: c.registration_credential,
            ca_file: c.ca_file,
        }
    }
}

/// A configuration with `mpc-client`'s defaults: cosigner `http://127.0.0.1:50051`,
/// gRPC timeout 30 s, signing 120 s, wallet-creation sessions 900 s, device role.
#[uniffi::export]
pub fn default_mpc_config(key_share_path: String, passphrase: String) -> MpcConfig {
    mc::MpcConfig::new(key_share_path, passphrase).into()
}

// ------------------------------------------------------------------------ plain types

/// How the Ethereum `v` value is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChainStyle {
    /// `v = 27 + y_parity`.
    Legacy,
    /// `v = chain_id * 2 + 35 + y_parity`.
    Eip155 { chain_id: u64 },
    /// `v = y_parity` (typed transactions).
    Typed,
}

impl From<ChainStyle> for mc::ChainStyle {
    fn from(c: ChainStyle) -> Self {
        match c {
            ChainStyle::Legacy => mc::ChainStyle::Legacy,
            ChainStyle::Eip155 { chain_id } => mc::ChainStyle::Eip155 { chain_id },
            ChainStyle::Typed => mc::ChainStyle::Typed,
        }
    }
}

/// A verified signature in every encoding.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedResult {
    pub account_id: String,
    pub derivation_path: String,
    /// r, 32 bytes, hex (no prefix).
    pub r: String,
    /// s (low-s), 32 bytes, hex.
    pub s: String,
    pub y_parity: u8,
    /// Ethereum `v` in the requested chain style.
    pub v: u64,
    /// 65-byte `r || s || v`, hex.
    pub rsv: String,
    /// Bitcoin strict DER (low s), hex.
    pub der: String,
    /// The signed digest, hex.
    pub digest: String,
    /// Compressed public key at the path, hex.
    pub public_key: String,
    pub ethereum_address: String,
    pub signers: Vec<u16>,
    pub session_id: String,
    /// Cosigner's audit reference (empty for offline signing).
    pub request_id: String,
    pub elapsed_ms: u64,
}

impl From<mc::SignedResult> for SignedResult {
    fn from(s: mc::SignedResult) -> Self {
        SignedResult {
            account_id: s.account_id,
            derivation_path: s.derivation_path,
            r: s.r,
            s: s.s,
            y_parity: s.y_parity,
            v: s.v,
            rsv: s.rsv,
            der: s.der,
            digest: s.digest,
            public_key: s.public_key,
            ethereum_address: s.ethereum_address,
            signers: s.signers,
            session_id: s.session_id,
            request_id: s.request_id,
            elapsed_ms: s.elapsed_ms,
        }
    }
}

/// A signed Ethereum transaction, ready for `eth_sendRawTransaction`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedTransaction {
    /// The signature (`v` in the transaction's own style).
    pub signature: SignedResult,
    /// The transaction type (0 legacy, 1, 2, 3 blob, 4 EIP-7702).
    pub tx_type: u8,
    /// The EIP-2718 encoding of the signed transaction (a blob transaction without its
    /// sidecar).
    pub raw_transaction: Vec<u8>,
    /// The same, `0x` hex (what `eth_sendRawTransaction` takes).
    pub raw_transaction_hex: String,
    /// The transaction hash, `0x` hex.
    pub transaction_hash: String,
}

impl TryFrom<mc::SignedTransaction> for SignedTransaction {
    type Error = MpcError;

    fn try_from(t: mc::SignedTransaction) -> Result<Self, MpcError> {
        let raw = hex::decode(t.raw_transaction.trim_start_matches("0x"))
            .map_err(|e| MpcError::internal(format!("the signed transaction is not hex: {e}")))?;
        Ok(SignedTransaction {
            signature: t.signature.into(),
            tx_type: t.tx_type,
            raw_transaction: raw,
            raw_transaction_hex: t.raw_transaction,
            transaction_hash: t.transaction_hash,
        })
    }
}

/// A signed EIP-7702 authorization: an entry of a type-4 transaction's
/// `authorization_list`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedAuthorization {
    /// The signature.
    pub signature: SignedResult,
    /// Chain id, decimal (`0`: every chain).
    pub chain_id: String,
    /// The delegate contract, `0x` hex (EIP-55).
    pub address: String,
    /// The authority's account nonce.
    pub nonce: u64,
    /// y parity (0 or 1).
    pub y_parity: u8,
    /// r, `0x` hex.
    pub r: String,
    /// s, `0x` hex.
    pub s: String,
}

impl From<mc::SignedAuthorization> for SignedAuthorization {
    fn from(a: mc::SignedAuthorization) -> Self {
        SignedAuthorization {
            signature: a.signature.into(),
            chain_id: a.chain_id,
            address: a.address,
            nonce: a.nonce,
            y_parity: a.y_parity,
            r: a.r,
            s: a.s,
        }
    }
}

/// A public key and its addresses.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PublicKeyInfo {
    pub account_id: String,
    pub derivation_path: String,
    /// Compressed SEC1 public key, hex.
    pub public_key: String,
    pub ethereum_address: String,
    pub bitcoin_address: String,
    pub bitcoin_testnet_address: String,
}

impl From<mc::PublicKeyInfo> for PublicKeyInfo {
    fn from(p: mc::PublicKeyInfo) -> Self {
        PublicKeyInfo {
            account_id: p.account_id,
            derivation_path: p.derivation_path,
            public_key: p.public_key,
            ethereum_address: p.ethereum_address,
            bitcoin_address: p.bitcoin_address,
            bitcoin_testnet_address: p.bitcoin_testnet_address,
        }
    }
}

/// A Bitcoin network (addresses: `bc1q…` mainnet, `tb1q…` testnet and signet,
/// `bcrt1q…` regtest; xpubs: `xpub…` mainnet, `tpub…` the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum BitcoinNetwork {
    Mainnet,
    Testnet,
    Signet,
    Regtest,
}

impl From<BitcoinNetwork> for mc::BitcoinNetwork {
    fn from(n: BitcoinNetwork) -> Self {
        match n {
            BitcoinNetwork::Mainnet => mc::BitcoinNetwork::Mainnet,
            BitcoinNetwork::Testnet => mc::BitcoinNetwork::Testnet,
            BitcoinNetwork::Signet => mc::BitcoinNetwork::Signet,
            BitcoinNetwork::Regtest => mc::BitcoinNetwork::Regtest,
        }
    }
}

/// A native SegWit (P2WPKH) address of an account.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BitcoinAddress {
    pub account_id: String,
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The non-hardened derivation path (`m/84/0/0/0/0` form).
    pub path: String,
    /// The key at `path`, compressed SEC1, hex.
    pub public_key: String,
    pub address: String,
}

impl From<mc::BitcoinAddress> for BitcoinAddress {
    fn from(a: mc::BitcoinAddress) -> Self {
        BitcoinAddress {
            account_id: a.account_id,
            network: a.network,
            path: a.path,
            public_key: a.public_key,
            address: a.address,
        }
    }
}

/// The watch-only export of an account (Bitcoin Core `importdescriptors`, Sparrow).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BitcoinWatchOnly {
    pub account_id: String,
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The account's non-hardened path, e.g. `m/84/0/0`.
    pub account_path: String,
    /// The root key's fingerprint, 8 hex digits (the descriptors' key origin).
    pub fingerprint: String,
    /// The extended public key at `account_path`.
    pub xpub: String,
    /// The receive descriptor, `wpkh([fingerprint/account_path]xpub/0/<wildcard>)#checksum`
    /// (no literal slash-star in these docs: Kotlin's KDoc would read it as a nested
    /// comment opening, see `bindings/test.sh`).
    pub receive_descriptor: String,
    /// The change descriptor, `wpkh([fingerprint/account_path]xpub/1/<wildcard>)#checksum`.
    pub change_descriptor: String,
}

impl From<mc::BitcoinWatchOnly> for BitcoinWatchOnly {
    fn from(w: mc::BitcoinWatchOnly) -> Self {
        BitcoinWatchOnly {
            account_id: w.account_id,
            network: w.network,
            account_path: w.account_path,
            fingerprint: w.fingerprint,
            xpub: w.xpub,
            receive_descriptor: w.receive_descriptor,
            change_descriptor: w.change_descriptor,
        }
    }
}

/// One signed input of a [`SignedPsbt`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedPsbtInput {
    /// The input's index in the transaction.
    pub index: u32,
    /// Its non-hardened derivation path (`m/84/1/0/0/3` form).
    pub path: String,
    /// The key at `path`, compressed SEC1, hex.
    pub public_key: String,
    /// The amount it spends, in satoshis.
    pub amount_sats: u64,
    /// Its BIP-143 sighash (the signed digest), hex.
    pub sighash: String,
    /// Whether it was signed from a presignature pool.
    pub presigned: bool,
    /// The signing session id (the presignature id on the fast path).
    pub session_id: String,
    /// The cosigner's audit reference (empty offline).
    pub request_id: String,
}

/// A PSBT signed and finalized (`sign_psbt`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignedPsbt {
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The PSBT version it was given in and is returned in (0 or 2).
    pub psbt_version: u32,
    /// The finalized PSBT, base64.
    pub psbt_base64: String,
    /// The network transaction, hex (what `sendrawtransaction` takes).
    pub tx_hex: String,
    /// Its txid.
    pub txid: String,
    /// The fee, in satoshis.
    pub fee_sats: u64,
    /// The signed inputs, in order.
    pub inputs: Vec<SignedPsbtInput>,
    /// Wall time of the whole signing, in milliseconds.
    pub elapsed_ms: u64,
}

impl From<mc::SignedPsbt> for SignedPsbt {
    fn from(p: mc::SignedPsbt) -> Self {
        SignedPsbt {
            network: p.network,
            psbt_version: p.psbt_version,
            psbt_base64: p.psbt_base64,
            tx_hex: p.tx_hex,
            txid: p.txid,
            fee_sats: p.fee_sats,
            inputs: p
                .inputs
                .into_iter()
                .map(|i| SignedPsbtInput {
                    index: i.index,
                    path: i.path,
                    public_key: i.public_key,
                    amount_sats: i.amount_sats,
                    sighash: i.sighash,
                    presigned: i.presigned,
                    session_id: i.session_id,
                    request_id: i.request_id,
                })
                .collect(),
            elapsed_ms: p.elapsed_ms,
        }
    }
}

/// An account of the wallet.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountInfo {
    pub account_id: String,
    pub kind: AccountKind,
    /// Master public key, compressed, hex.
    pub public_key: String,
    pub ethereum_address: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

impl From<mc::AccountInfo> for AccountInfo {
    fn from(a: mc::AccountInfo) -> Self {
        AccountInfo {
            account_id: a.account_id,
            kind: a.kind,
            public_key: a.public_key,
            ethereum_address: a.ethereum_address,
            created_at: a.created_at,
        }
    }
}

/// The wallet as created.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WalletInfo {
    pub wallet_id: String,
    pub accounts: Vec<AccountInfo>,
    pub key_share_path: String,
    pub recovery_path: String,
    pub committed: bool,
    pub elapsed_ms: u64,
}

impl From<mc::WalletInfo> for WalletInfo {
    fn from(w: mc::WalletInfo) -> Self {
        WalletInfo {
            wallet_id: w.wallet_id,
            accounts: w.accounts.into_iter().map(Into::into).collect(),
            key_share_path: w.key_share_path,
            recovery_path: w.recovery_path,
            committed: w.committed,
            elapsed_ms: w.elapsed_ms,
        }
    }
}

/// A stored device enrollment (`enroll_device`): a later `create_wallet_from_enrollment`
/// with its id runs only the DKGs.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EnrollmentInfo {
    pub enrollment_id: String,
    /// The cosigner forgets it then (ms since the Unix epoch; 0: unknown).
    pub expires_at_ms: u64,
    /// The device's enrollment file.
    pub path: String,
}

impl From<mc::EnrollmentInfo> for EnrollmentInfo {
    fn from(e: mc::EnrollmentInfo) -> Self {
        EnrollmentInfo {
            enrollment_id: e.enrollment_id,
            expires_at_ms: e.expires_at_ms,
            path: e.path,
        }
    }
}

/// The cosigner's health report.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CosignerHealth {
    pub status: String,
    pub version: String,
    pub backend: String,
    pub identity: String,
}

impl From<mc::CosignerHealth> for CosignerHealth {
    fn from(h: mc::CosignerHealth) -> Self {
        CosignerHealth {
            status: h.status,
            version: h.version,
            backend: h.backend,
            identity: h.identity,
        }
    }
}

// ---------------------------------------------------------------------------- progress

/// A progress report of a long operation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProgressEvent {
    /// `primes`, `aux-info`, `keygen`, `confirm`, `sign`.
    pub stage: String,
    /// Keygen index of the reporting party, if any.
    pub party: Option<u16>,
    pub account_id: Option<String>,
    pub done: u32,
    pub total: u32,
    pub finished: bool,
}

impl From<mc::ProgressEvent> for ProgressEvent {
    fn from(e: mc::ProgressEvent) -> Self {
        ProgressEvent {
            stage: e.stage,
            party: e.party,
            account_id: e.account_id,
            done: e.done,
            total: e.total,
            finished: e.finished,
        }
    }
}

/// Receives progress reports, implemented by the app. Called from background threads:
/// return quickly and hop to the UI thread yourself.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    /// One progress report.
    fn on_progress(&self, event: ProgressEvent);
}

/// Adapts a foreign listener to `mpc-client`'s trait.
struct ListenerAdapter(Arc<dyn ProgressListener>);

impl mc::ProgressListener for ListenerAdapter {
    fn on_progress(&self, event: mc::ProgressEvent) {
        self.0.on_progress(event.into());
    }
}

fn adapt(listener: Arc<dyn ProgressListener>) -> mc::Progress {
    Arc::new(ListenerAdapter(listener))
}

// ------------------------------------------------------------------------------ client

/// The wallet client. `list_accounts` and `get_public_key` work offline (from the local
/// key-share file); signing with the cosigner needs the cosigner and the gateway.
#[derive(uniffi::Object)]
pub struct MpcClient {
    inner: Arc<mc::MpcClient>,
}

impl std::fmt::Debug for MpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.inner, f)
    }
}

/// Creates a client. Checks the configuration; touches neither the network nor the files
/// (they are opened on first use).
#[uniffi::export]
pub async fn new_mpc_client(config: MpcConfig) -> Result<Arc<MpcClient>, MpcError> {
    MpcClient::new(config)
}

/// Verifies an Ethereum signature (`r || s || v` hex) over keccak-256(`preimage`) against
/// an address; returns the recovered EIP-55 address.
#[uniffi::export]
pub fn verify_ethereum(
    preimage: Vec<u8>,
    rsv_hex: String,
    expected_address: String,
) -> Result<String, MpcError> {
    mc::verify_ethereum(&preimage, &rsv_hex, &expected_address).map_err(Into::into)
}

impl MpcClient {
    /// [`Self::create_wallet`], from the stored enrollment `enrollment_id` when given.
    async fn create(
        &self,
        accounts: u32,
        kind: AccountKind,
        label: String,
        enrollment_id: Option<String>,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<WalletInfo, MpcError> {
        let c = self.inner.clone();
        let progress = progress.map(adapt);
        on_runtime(async move {
            c.create_wallet_with(accounts, kind, label, enrollment_id, progress)
                .await
                .map(Into::into)
        })
        .await
    }
}

#[uniffi::export]
impl MpcClient {
    /// Creates a client (synchronous twin of `new_mpc_client`).
    #[uniffi::constructor]
    pub fn new(config: MpcConfig) -> Result<Arc<Self>, MpcError> {
        // Start the runtime now so that a failure shows up here, not on first use.
        runtime()?;
        let inner = mc::new_mpc_client(config.into())?;
        Ok(Arc::new(MpcClient {
            inner: Arc::new(inner),
        }))
    }

    /// The configuration in use.
    pub fn config(&self) -> MpcConfig {
        self.inner.config().clone().into()
    }

    /// Sets (or clears, with `None`) the listener of signing progress.
    pub fn set_progress_listener(&self, listener: Option<Arc<dyn ProgressListener>>) {
        match listener {
            Some(l) => self.inner.set_progress_listener(adapt(l)),
            None => self.inner.set_progress_listener(Arc::new(Silent)),
        }
    }

    /// The cosigner's health report.
    pub async fn health(&self) -> Result<CosignerHealth, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move { c.health().await.map(Into::into) }).await
    }

    /// Accounts of the wallet (local file; no network).
    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.list_accounts()
                .await
                .map(|v| v.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// The cosigner's wallet id (local metadata file).
    pub async fn wallet_id(&self) -> Result<String, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move { c.wallet_id().await }).await
    }

    /// Public key and addresses of an account at a non-hardened path (`m` = root).
    pub async fn get_public_key(
        &self,
        account_id: String,
        path: String,
    ) -> Result<PublicKeyInfo, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move { c.get_public_key(account_id, path).await.map(Into::into) }).await
    }

    /// The native SegWit (P2WPKH) address of an account at a non-hardened `path` on
    /// `network` (local file; no network). A hardened path is `InvalidInput`.
    pub async fn bitcoin_address(
        &self,
        account_id: String,
        path: String,
        network: BitcoinNetwork,
    ) -> Result<BitcoinAddress, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.bitcoin_address(account_id, path, network.into())
                .await
                .map(Into::into)
        })
        .await
    }

    /// The watch-only export (xpub, receive and change descriptors with key origin and
    /// checksum) of the account at `account_path` (`None`: `m/84/0/0` on mainnet,
    /// `m/84/1/0` on the test networks). Local file; no network.
    pub async fn bitcoin_watch_only(
        &self,
        account_id: String,
        account_path: Option<String>,
        network: BitcoinNetwork,
    ) -> Result<BitcoinWatchOnly, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.bitcoin_watch_only(account_id, account_path, network.into())
                .await
                .map(Into::into)
        })
        .await
    }

    /// Signs every input of a PSBT (base64, BIP-174 v0 or BIP-370 v2; P2WPKH inputs of
    /// this wallet) with the cosigner and finalizes it: each input at its path, from
    /// that path's presignature pool when the presign mode allows it and the pool has
    /// one. A foreign input, a missing witness UTXO, an unsupported script (Taproot,
    /// P2PKH) or bad base64 is `InvalidInput` before any request; nothing is signed
    /// partially. Every signature is verified; `tx_hex` is ready to broadcast.
    pub async fn sign_psbt(
        &self,
        account_id: String,
        psbt_base64: String,
        network: BitcoinNetwork,
    ) -> Result<SignedPsbt, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.sign_psbt(
                account_id,
                psbt_base64.into_bytes(),
                network.into(),
                mc::PsbtSigner::Cosigner,
            )
            .await
            .map(Into::into)
        })
        .await
    }

    /// `sign_psbt` with the device AND recovery shares, without the cosigner.
    pub async fn offline_sign_psbt(
        &self,
        account_id: String,
        psbt_base64: String,
        network: BitcoinNetwork,
    ) -> Result<SignedPsbt, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.sign_psbt(
                account_id,
                psbt_base64.into_bytes(),
                network.into(),
                mc::PsbtSigner::Offline,
            )
            .await
            .map(Into::into)
        })
        .await
    }

    /// Creates a wallet with the cosigner (`accounts` keys, 1..=100). Long: aux info and
    /// one DKG per account; `progress` receives the steps.
    pub async fn create_wallet(
        &self,
        accounts: u32,
        kind: AccountKind,
        label: String,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<WalletInfo, MpcError> {
        self.create(accounts, kind, label, None, progress).await
    }

    /// Enrolls this device ahead of wallet creation: registers both user parties'
    /// identities with the cosigner and runs their aux info (minutes: primes and
    /// Paillier work); each party's enrollment is stored encrypted next to its share
    /// file. `progress` receives `primes`, `enroll` and `aux-info` events.
    pub async fn enroll_device(
        &self,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<EnrollmentInfo, MpcError> {
        let c = self.inner.clone();
        let progress = progress.map(adapt);
        on_runtime(async move { c.enroll_device(progress).await.map(Into::into) }).await
    }

    /// The device's stored enrollments, soonest to expire first (no decryption).
    pub fn list_enrollments(&self) -> Result<Vec<EnrollmentInfo>, MpcError> {
        self.inner
            .list_enrollments()
            .map(|v| v.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }

    /// Creates a wallet from the stored enrollment `enrollment_id`: only the DKGs run
    /// (about a second per account); the enrollment is removed once the shares are
    /// stored.
    pub async fn create_wallet_from_enrollment(
        &self,
        enrollment_id: String,
        accounts: u32,
        kind: AccountKind,
        label: String,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<WalletInfo, MpcError> {
        self.create(accounts, kind, label, Some(enrollment_id), progress)
            .await
    }

    /// Signs `preimage` (hashed with `digest`) with the cosigner, as the configured role;
    /// the signature is verified before it is returned.
    pub async fn sign_tx(
        &self,
        account_id: String,
        path: String,
        preimage: Vec<u8>,
        digest: DigestKind,
        payload: PayloadKind,
        chain: ChainStyle,
    ) -> Result<SignedResult, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.sign_tx(account_id, path, preimage, digest, payload, chain.into())
                .await
                .map(Into::into)
        })
        .await
    }

    /// Signs an EIP-191 personal message with the cosigner (`v` = 27/28).
    pub async fn sign_message(
        &self,
        account_id: String,
        path: String,
        message: Vec<u8>,
    ) -> Result<SignedResult, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.sign_message(account_id, path, message)
                .await
                .map(Into::into)
        })
        .await
    }

    /// Signs an unsigned Ethereum transaction (its signing payload: legacy RLP with its
    /// EIP-155 chain id, or `type ‖ rlp` for types 1-4) with the cosigner; returns it
    /// signed and hashed. Anything that does not decode is refused before any request.
    pub async fn sign_transaction(
        &self,
        account_id: String,
        path: String,
        payload: Vec<u8>,
    ) -> Result<SignedTransaction, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move { c.sign_transaction(account_id, path, payload).await })
            .await?
            .try_into()
    }

    /// `sign_transaction` with the device AND recovery shares, without the cosigner.
    pub async fn offline_sign_transaction(
        &self,
        account_id: String,
        path: String,
        payload: Vec<u8>,
    ) -> Result<SignedTransaction, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            let tx = mc::eth::decode_transaction(&payload)?;
            c.offline_sign_transaction(account_id, path, tx).await
        })
        .await?
        .try_into()
    }

    /// Signs EIP-712 typed data (the JSON of `eth_signTypedData_v4`) with the cosigner,
    /// which decodes and hashes the JSON itself and applies its typed-data rules (e.g.
    /// permit spenders). `v` is 27/28.
    pub async fn sign_typed_data(
        &self,
        account_id: String,
        path: String,
        typed_data_json: String,
    ) -> Result<SignedResult, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.sign_typed_data(account_id, path, typed_data_json.into_bytes())
                .await
                .map(Into::into)
        })
        .await
    }

    /// Signs an EIP-7702 authorization delegating the account to `delegate` on
    /// `chain_id` (0: every chain, refused by default) for the account nonce `nonce`.
    pub async fn sign_authorization(
        &self,
        account_id: String,
        path: String,
        chain_id: u64,
        delegate: String,
        nonce: u64,
    ) -> Result<SignedAuthorization, MpcError> {
        let delegate = wallet_evm::parse_address(&delegate).map_err(|e| {
            MpcError::from(mc::MpcError::input(format!("delegate {delegate:?}: {e}")))
        })?;
        let c = self.inner.clone();
        on_runtime(async move {
            c.sign_authorization(account_id, path, chain_id, delegate, nonce)
                .await
                .map(Into::into)
        })
        .await
    }

    /// An encrypted backup of the `party`'s share (device or recovery): the key-share
    /// file format (Argon2id + XChaCha20-Poly1305) under `passphrase`, with the wallet
    /// id; no plaintext key material. The CLI's `backup import` and the browser
    /// package's `importBackup` read it.
    pub async fn export_backup(
        &self,
        party: PartyRole,
        passphrase: String,
    ) -> Result<Vec<u8>, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move { c.export_backup(party, passphrase).await }).await
    }

    /// Restores a backup into this client's share file of its party, encrypted under
    /// that file's configured passphrase. Refuses a backup that does not open
    /// (`WrongPassphrase`) and another wallet's share in the way (`OtherWallet`) with
    /// nothing written; the identical share again succeeds (`already_present`).
    pub async fn import_backup(
        &self,
        backup: Vec<u8>,
        passphrase: String,
    ) -> Result<BackupImport, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move { c.import_backup(backup, passphrase).await.map(Into::into) }).await
    }

    /// Signs with the device AND recovery shares on this machine, without the cosigner.
    pub async fn offline_sign(
        &self,
        account_id: String,
        path: String,
        preimage: Vec<u8>,
        digest: DigestKind,
        chain: ChainStyle,
    ) -> Result<SignedResult, MpcError> {
        let c = self.inner.clone();
        on_runtime(async move {
            c.offline_sign(account_id, path, preimage, digest, chain.into())
                .await
                .map(Into::into)
        })
        .await
    }
}

/// Listener installed by `set_progress_listener(None)`.
struct Silent;

impl mc::ProgressListener for Silent {
    fn on_progress(&self, _event: mc::ProgressEvent) {}
}
