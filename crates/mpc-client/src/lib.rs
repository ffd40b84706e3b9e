//! # mpc-client — the native client API of the 2-of-3 threshold wallet
//!
//! The user holds two of the three shares of every key: the **device** share (party 0)
//! and the **recovery** share (party 2, kept in its own encrypted file, ideally on
//! another machine). The **cosigner** (`sign-service`, party 1) holds the third. Any two
//! sign:
//!
//! | operation | parties | needs the cosigner |
//! |---|---|---|
//! | [`MpcClient::sign_tx`] (role [`PartyRole::Device`]) | device + cosigner | yes |
//! | [`MpcClient::sign_tx`] (role [`PartyRole::Recovery`]) | recovery + cosigner | yes |
//! | [`MpcClient::offline_sign`] | device + recovery | no |
//!
//! The client speaks gRPC to the cosigner (to open rooms, authenticate, and get policy
//! decisions) and runs its parties' protocol sessions itself over the SSE gateway, with
//! authenticated, encrypted envelopes (`mpc-party`). Signatures are always verified here
//! before they are returned, and the digest the cosigner announces must equal the one
//! computed locally from the preimage.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mpc_client::MpcError> {
//! use mpc_client::*;
//! let mut cfg = MpcConfig::new("client_key_shares.json", "device passphrase");
//! cfg.recovery_path = Some("recovery_key_shares.json".into());
//! cfg.recovery_passphrase = Some("recovery passphrase".into());
//! let client = new_mpc_client(cfg)?;
//! let wallet = client.create_wallet(1, AccountKind::Hd, "my wallet".into(), None).await?;
//! let account = wallet.accounts[0].account_id.clone();
//! let sig = client.sign_message(account, "m/44/60/0/0/0".into(), b"hello".to_vec()).await?;
//! println!("0x{}", sig.rsv);
//! # Ok(()) }
//! ```
//!
//! The public API uses owned, non-generic types so that UniFFI bindings can wrap it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cosigner;
mod error;
pub mod eth;
mod join;
mod pool;
mod store;
mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_client::GatewayClient;
use mpc_core::hd::DerivationPath;
use mpc_core::presign::StoredPresignature;
use mpc_core::primes::{dev_fixture_primes, PrimeSet, PrimesFile};
use mpc_core::session::Progress as SessionProgress;
use mpc_core::signature::{
    bitcoin_der, ethereum_signature, recover_ethereum_address, verify_digest,
};
use mpc_core::{address, Account, Session, SessionOutput};
use mpc_party::{run_session, PartyContext};
use mpc_wire::{IdentityKey, PublicIdentity, Roster, SessionId};
use tokio::sync::Mutex;

pub use cosigner::{CosignerClient, RoomInfo};
pub use error::MpcError;
pub use join::{
    bundle_public_keys, join_wallet_creation, save_party_files, AccountRoom, JoinRequest,
    WalletRooms, MAX_ACCOUNTS,
};
pub use pool::pool_dir_path;
pub use store::{meta_path, WalletMeta, WALLET_META_FORMAT};
pub use types::{
    AccountInfo, AccountKind, ChainStyle, CosignerHealth, DigestKind, MpcConfig, PartyRole,
    PayloadKind, PresignConfig, PresignMode, PresignPoolStatus, Progress, ProgressEvent,
    ProgressListener, PublicKeyInfo, SignedResult, WalletInfo,
};

use store::PartyFiles;

/// Index of the cosigner.
pub const COSIGNER: u16 = 1;
/// Largest preimage accepted for signing (1 MiB).
pub const MAX_PREIMAGE: usize = 1 << 20;

/// Creates a client. Checks the configuration; does not touch the network or the files
/// (they are opened on first use).
pub fn new_mpc_client(config: MpcConfig) -> Result<MpcClient, MpcError> {
    config.validate()?;
    Ok(MpcClient {
        config,
        cache: Mutex::new(BTreeMap::new()),
        progress: std::sync::Mutex::new(Arc::new(types::NoProgress)),
        presign: std::sync::Mutex::new(PresignConfig::default()),
        refills: std::sync::Mutex::new(BTreeMap::new()),
        grpc: Mutex::new(None),
    })
}

/// The client. Cheap operations (`list_accounts`, `get_public_key`) work offline; signing
/// with the cosigner needs the cosigner and the gateway.
pub struct MpcClient {
    config: MpcConfig,
    /// Decrypted bundles by party index (decryption costs a second of Argon2).
    cache: Mutex<BTreeMap<u16, Arc<PartyFiles>>>,
    /// Receives the progress of signing sessions.
    progress: std::sync::Mutex<Progress>,
    /// Presignature pool settings.
    presign: std::sync::Mutex<PresignConfig>,
    /// Background refills by (party, account).
    refills: std::sync::Mutex<BTreeMap<(u16, String), tokio::task::JoinHandle<()>>>,
    /// The cosigner connection, reused (it reconnects by itself).
    grpc: Mutex<Option<CosignerClient>>,
}

impl std::fmt::Debug for MpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpcClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

async fn connect_cosigner(config: &MpcConfig) -> Result<CosignerClient, MpcError> {
    CosignerClient::connect(
        &config.cosigner_url,
        Duration::from_secs(config.request_timeout_secs),
    )
    .await
}

fn gateway_for(config: &MpcConfig, room: &RoomInfo) -> Result<GatewayClient, MpcError> {
    let url = config
        .gateway_url
        .clone()
        .unwrap_or_else(|| room.gateway_url.clone());
    if url.is_empty() {
        return Err(MpcError::config(
            "the cosigner announced no gateway URL; set gateway_url",
        ));
    }
    GatewayClient::new(&url).map_err(|e| MpcError::GatewayUnavailable {
        reason: format!("{url}: {e}"),
    })
}

fn context_for(
    config: &MpcConfig,
    room: &RoomInfo,
    me: u16,
    identity: &IdentityKey,
    roster: &Roster,
    timeout: Duration,
) -> Result<PartyContext, MpcError> {
    Ok(PartyContext {
        gateway: gateway_for(config, room)?,
        room: room.room.clone(),
        token: (!room.room_token.is_empty()).then(|| room.room_token.clone()),
        session_id: SessionId::new(room.session_id.clone()).map_err(|e| {
            MpcError::CosignerRejected {
                code: "invalid_response".into(),
                reason: format!("cosigner sent an invalid session id: {e}"),
            }
        })?,
        me,
        identity: identity.clone(),
        roster: roster.clone(),
        timeout,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn emit(
    progress: &Progress,
    stage: &str,
    party: Option<u16>,
    account: Option<&str>,
    done: u32,
    total: u32,
    finished: bool,
) {
    progress.on_progress(ProgressEvent {
        stage: stage.into(),
        party,
        account_id: account.map(str::to_string),
        done,
        total,
        finished,
    });
}

fn session_progress(
    progress: &Progress,
    stage: &'static str,
    party: u16,
    account: Option<String>,
) -> impl Fn(SessionProgress) + Send + 'static {
    let progress = progress.clone();
    move |p: SessionProgress| {
        progress.on_progress(ProgressEvent {
            stage: stage.into(),
            party: Some(party),
            account_id: account.clone(),
            done: u32::from(p.round.min(p.total_rounds)),
            total: u32::from(p.total_rounds),
            finished: p.finished,
        })
    }
}

/// Parses a derivation path argument.
fn parse_path(path: &str) -> Result<DerivationPath, MpcError> {
    DerivationPath::parse(path).map_err(|e| MpcError::input(e.to_string()))
}

fn account_info(a: &Account) -> AccountInfo {
    AccountInfo {
        account_id: a.id.clone(),
        kind: a.kind.into(),
        public_key: a.public_key.clone(),
        ethereum_address: address::ethereum_address(&a.master_public_key()),
        created_at: a.created_at,
    }
}

/// What a finished session must produce.
fn expect_output<T>(
    stage: &str,
    sid: &str,
    out: SessionOutput,
    f: impl FnOnce(SessionOutput) -> Option<T>,
) -> Result<T, MpcError> {
    f(out).ok_or_else(|| MpcError::SessionFailed {
        stage: stage.into(),
        session_id: sid.into(),
        reason: "the session produced an unexpected kind of output".into(),
        blamed: Vec::new(),
    })
}

impl MpcClient {
    /// The configuration in use.
    pub fn config(&self) -> &MpcConfig {
        &self.config
    }

    /// Sets the listener that receives the progress of signing sessions (stage `sign`,
    /// one event per protocol round of each local party). Wallet creation takes its
    /// listener as an argument.
    pub fn set_progress_listener(&self, listener: Progress) {
        if let Ok(mut p) = self.progress.lock() {
            *p = listener;
        }
    }

    fn sign_progress(&self) -> Progress {
        match self.progress.lock() {
            Ok(p) => p.clone(),
            Err(_) => Arc::new(types::NoProgress),
        }
    }

    fn device_path(&self) -> PathBuf {
        PathBuf::from(&self.config.key_share_path)
    }

    fn recovery_path(&self) -> Result<PathBuf, MpcError> {
        self.config
            .recovery_path
            .as_ref()
            .map(PathBuf::from)
            .ok_or_else(|| MpcError::config("recovery_path is not set"))
    }

    fn recovery_passphrase(&self) -> Result<String, MpcError> {
        match &self.config.recovery_passphrase {
            Some(p) if !p.is_empty() => Ok(p.clone()),
            _ => Err(MpcError::config("the recovery passphrase is not set")),
        }
    }

    /// Opens (once) the files of party 0 or 2.
    async fn party(&self, index: u16) -> Result<Arc<PartyFiles>, MpcError> {
        let mut cache = self.cache.lock().await;
        if let Some(p) = cache.get(&index) {
            return Ok(p.clone());
        }
        let (path, pass) = match index {
            0 => (self.device_path(), self.config.passphrase.clone()),
            2 => (self.recovery_path()?, self.recovery_passphrase()?),
            other => {
                return Err(MpcError::internal(format!(
                    "no local files for party {other}"
                )))
            }
        };
        // Argon2 takes a second: keep it off the async threads.
        let files = tokio::task::spawn_blocking(move || PartyFiles::load(&path, &pass, index))
            .await
            .map_err(|e| MpcError::internal(format!("loading task failed: {e}")))??;
        let files = Arc::new(files);
        cache.insert(index, files.clone());
        Ok(files)
    }

    /// The party that signs with the cosigner (device, or recovery in recovery mode).
    async fn active_party(&self) -> Result<Arc<PartyFiles>, MpcError> {
        self.party(self.config.role.index()).await
    }

    async fn cosigner(&self) -> Result<CosignerClient, MpcError> {
        let mut cached = self.grpc.lock().await;
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let c = connect_cosigner(&self.config).await?;
        *cached = Some(c.clone());
        Ok(c)
    }

    fn context(
        &self,
        room: &RoomInfo,
        me: u16,
        identity: &IdentityKey,
        roster: &Roster,
        timeout: Duration,
    ) -> Result<PartyContext, MpcError> {
        context_for(&self.config, room, me, identity, roster, timeout)
    }

    /// The cosigner's health report.
    pub async fn health(&self) -> Result<CosignerHealth, MpcError> {
        self.cosigner().await?.health().await
    }

    /// Accounts of the wallet (from the local key-share file of the active party).
    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, MpcError> {
        let p = self.active_party().await?;
        Ok(p.bundle.accounts.values().map(account_info).collect())
    }

    /// The wallet id (from the local metadata file of the active party).
    pub async fn wallet_id(&self) -> Result<String, MpcError> {
        Ok(self.active_party().await?.meta.wallet_id.clone())
    }

    /// The public key and addresses of an account at a non-hardened path (`m` = root).
    /// Computed locally from the share file; no network.
    pub async fn get_public_key(
        &self,
        account_id: String,
        path: String,
    ) -> Result<PublicKeyInfo, MpcError> {
        let p = self.active_party().await?;
        let path = parse_path(&path)?;
        let pk = p.account(&account_id)?.public_key_at(&path)?;
        Ok(PublicKeyInfo {
            account_id,
            derivation_path: path.to_string(),
            public_key: hex::encode(pk.to_bytes(true)),
            ethereum_address: address::ethereum_address(&pk),
            bitcoin_address: address::bitcoin_p2wpkh_address(
                &pk,
                address::BitcoinNetwork::Mainnet,
            )?,
            bitcoin_testnet_address: address::bitcoin_p2wpkh_address(
                &pk,
                address::BitcoinNetwork::Testnet,
            )?,
        })
    }

    // ------------------------------------------------------------------ wallet creation

    async fn load_primes(&self, progress: &Progress) -> Result<(PrimeSet, PrimeSet), MpcError> {
        if let Some(path) = &self.config.primes_path {
            let text =
                std::fs::read_to_string(path).map_err(|e| MpcError::io(Path::new(path), e))?;
            let file = PrimesFile::from_json(&text).map_err(|e| MpcError::CorruptFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if file.is_public_fixture() && !self.config.insecure_dev_primes {
                return Err(MpcError::config(format!(
                    "{path} contains the repository's PUBLIC test primes: keys built from them are not \
                     secret-safe. Enable insecure_dev_primes (--insecure-dev-primes) to use them for development"
                )));
            }
            let sets = match file.parties.len() {
                3 => (file.parties[0].clone(), file.parties[2].clone()),
                2 => (file.parties[0].clone(), file.parties[1].clone()),
                n => {
                    return Err(MpcError::CorruptFile {
                        path: path.clone(),
                        reason: format!(
                            "holds {n} prime sets; need 3 (by party index) or 2 (device, recovery)"
                        ),
                    })
                }
            };
            if sets.0 == sets.1 {
                return Err(MpcError::config(format!(
                    "{path}: the device and recovery prime sets are identical"
                )));
            }
            for s in [&sets.0, &sets.1] {
                s.to_pregenerated().map_err(|e| MpcError::CorruptFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            return Ok(sets);
        }
        if self.config.insecure_dev_primes {
            tracing::warn!(
                "using the repository's PUBLIC test primes: development only, not secret-safe"
            );
            let f = dev_fixture_primes();
            return match (f.first(), f.get(2)) {
                (Some(a), Some(b)) => Ok((a.clone(), b.clone())),
                _ => Err(MpcError::internal("the dev prime fixture is missing")),
            };
        }
        // Generate: two parties in parallel, 4 primes each.
        emit(progress, "primes", None, None, 0, 8, false);
        let done = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let gen = |party: u16| {
            let progress = progress.clone();
            let done = done.clone();
            tokio::task::spawn_blocking(move || {
                // Our sieve-first generator (safe-primes), one thread per party.
                let mut seen = 0u64;
                PrimeSet::generate_fast(1, None, &mut |p| {
                    while seen < p.found.min(4) {
                        seen += 1;
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        emit(&progress, "primes", Some(party), None, d, 8, d == 8);
                    }
                })
            })
        };
        let (a, b) = tokio::join!(gen(0), gen(2));
        let join =
            |e: tokio::task::JoinError| MpcError::internal(format!("prime generation failed: {e}"));
        let gen_err =
            |e: mpc_core::CoreError| MpcError::internal(format!("prime generation failed: {e}"));
        Ok((
            a.map_err(join)?.map_err(gen_err)?,
            b.map_err(join)?.map_err(gen_err)?,
        ))
    }

    /// Creates a wallet with the cosigner: `accounts` keys (1..=100) of `kind`.
    ///
    /// Generates the device's and recovery party's identity keys, registers them with
    /// the cosigner, runs aux info and one DKG per account for both parties, writes the
    /// device share to `key_share_path` and the recovery share to `recovery_path` (each
    /// encrypted under its own passphrase, with a `.wallet.json` metadata file next to
    /// it), then confirms the public keys with the cosigner. Existing files are never
    /// overwritten.
    pub async fn create_wallet(
        &self,
        accounts: u32,
        kind: AccountKind,
        label: String,
        progress: Option<Progress>,
    ) -> Result<WalletInfo, MpcError> {
        let started = Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(types::NoProgress));
        if !(1..=100).contains(&accounts) {
            return Err(MpcError::input(format!(
                "accounts must be between 1 and 100, got {accounts}"
            )));
        }
        let device_path = self.device_path();
        let recovery_path = self.recovery_path()?;
        let recovery_pass = self.recovery_passphrase()?;
        if self.config.passphrase.is_empty() {
            return Err(MpcError::config("the device passphrase is empty"));
        }
        if device_path == recovery_path {
            return Err(MpcError::config(
                "the device and recovery files must be different files",
            ));
        }
        for p in [&device_path, &recovery_path] {
            for f in [p.clone(), meta_path(p)] {
                if f.exists() {
                    return Err(MpcError::WalletExists {
                        path: f.display().to_string(),
                    });
                }
            }
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| MpcError::io(dir, e))?;
            }
        }

        // Reach the cosigner before minutes of prime generation.
        let cosigner = self.cosigner().await?;
        let (primes_device, primes_recovery) = self.load_primes(&progress).await?;
        for set in [&primes_device, &primes_recovery] {
            set.to_pregenerated()
                .map_err(|e| MpcError::config(format!("primes: {e}")))?;
        }

        let device_id = IdentityKey::generate().map_err(|e| MpcError::internal(e.to_string()))?;
        let recovery_id = IdentityKey::generate().map_err(|e| MpcError::internal(e.to_string()))?;
        let rooms = cosigner
            .open_wallet(&device_id, &recovery_id.public(), accounts, kind, &label)
            .await?;
        let cosigner_identity: PublicIdentity =
            rooms
                .cosigner_identity
                .parse()
                .map_err(|e| MpcError::CosignerRejected {
                    code: "invalid_response".into(),
                    reason: format!("cosigner identity: {e}"),
                })?;

        // Both user parties join the cosigner's rooms, concurrently, in this process.
        let join = |me: u16, identity: &IdentityKey, other: (u16, PublicIdentity), primes| {
            join::join_wallet_creation(
                join::JoinRequest {
                    me,
                    identity: identity.clone(),
                    peers: BTreeMap::from([(COSIGNER, cosigner_identity), other]),
                    primes,
                    kind,
                    aux_info: rooms.aux_info.clone(),
                    accounts: rooms.accounts.clone(),
                    gateway_url: self.config.gateway_url.clone(),
                    session_timeout: Duration::from_secs(self.config.setup_timeout_secs),
                },
                Arc::clone(&progress),
            )
        };
        let (device, recovery) = tokio::try_join!(
            join(0, &device_id, (2, recovery_id.public()), primes_device),
            join(2, &recovery_id, (0, device_id.public()), primes_recovery),
        )?;
        let public_keys = join::bundle_public_keys(&device);
        if public_keys != join::bundle_public_keys(&recovery) {
            return Err(MpcError::SessionFailed {
                stage: "keygen".into(),
                session_id: rooms.aux_info.session_id.clone(),
                reason: "the device and recovery parties obtained different public keys".into(),
                blamed: Vec::new(),
            });
        }

        // Persist before confirming: the shares are the user's funds from now on.
        let created_at_ms = now_ms();
        let fast_kdf = self.config.insecure_fast_kdf;
        let files = [
            (device_path.clone(), self.config.passphrase.clone(), &device),
            (recovery_path.clone(), recovery_pass, &recovery),
        ];
        for (path, pass, bundle) in files {
            let meta = WalletMeta {
                format: WALLET_META_FORMAT.into(),
                wallet_id: rooms.wallet_id.clone(),
                party_index: bundle.party_index,
                cosigner_url: self.config.cosigner_url.clone(),
                label: label.clone(),
                created_at_ms,
            };
            let bundle = bundle.clone();
            tokio::task::spawn_blocking(move || {
                join::save_party_files(&path, &pass, fast_kdf, &meta, &bundle)
            })
            .await
            .map_err(|e| MpcError::internal(format!("saving task failed: {e}")))??;
        }

        emit(&progress, "confirm", None, None, 0, 1, false);
        let committed = cosigner
            .confirm_wallet_keys(&device_id, &rooms.wallet_id, public_keys)
            .await
            .map_err(|e| match e {
                MpcError::CosignerUnavailable { reason } => MpcError::CosignerUnavailable {
                    reason: format!(
                        "{reason}; the shares were saved but the wallet is not confirmed: create a new wallet"
                    ),
                },
                other => other,
            })?;
        emit(&progress, "confirm", None, None, 1, 1, true);
        self.cache.lock().await.clear();
        Ok(WalletInfo {
            wallet_id: rooms.wallet_id,
            accounts: device.accounts.values().map(account_info).collect(),
            key_share_path: device_path.display().to_string(),
            recovery_path: recovery_path.display().to_string(),
            committed,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    // ------------------------------------------------------------------------- signing

    /// Signs an EIP-191 personal message (`personal_sign`), `v` = 27/28.
    pub async fn sign_message(
        &self,
        account_id: String,
        path: String,
        message: Vec<u8>,
    ) -> Result<SignedResult, MpcError> {
        let preimage = mpc_core::digest::eip191_preimage(&message);
        self.sign_tx(
            account_id,
            path,
            preimage,
            DigestKind::Keccak256,
            PayloadKind::EthereumMessage,
            ChainStyle::Legacy,
        )
        .await
    }

    /// Signs `preimage` (hashed with `digest`) with the cosigner, as the configured role.
    ///
    /// The cosigner checks its policy first (a refusal is [`MpcError::PolicyRefused`]);
    /// its announced digest must equal the local one. The signature is verified against
    /// the account's (derived) public key before it is returned.
    pub async fn sign_tx(
        &self,
        account_id: String,
        path: String,
        preimage: Vec<u8>,
        digest: DigestKind,
        payload: PayloadKind,
        chain: ChainStyle,
    ) -> Result<SignedResult, MpcError> {
        let started = Instant::now();
        let dpath = parse_path(&path)?;
        check_preimage(&preimage)?;
        let party = self.active_party().await?;
        let me = party.bundle.party_index;
        let pk = party.account(&account_id)?.public_key_at(&dpath)?;

        // The fast path: independent accounts at the root, from the presignature pool.
        let presign = self.presign_config();
        let eligible = party.account(&account_id)?.kind == mpc_core::AccountKind::Independent
            && dpath.is_root();
        if presign.mode == PresignMode::Require && !eligible {
            return Err(not_fast_path_eligible(&party, &account_id, &dpath));
        }
        if eligible && presign.mode != PresignMode::Off {
            let fast = self
                .sign_presigned(
                    &party,
                    &account_id,
                    &pk,
                    &preimage,
                    digest,
                    payload,
                    chain,
                    started,
                )
                .await;
            self.maybe_refill(&party, &account_id, &presign);
            match fast? {
                FastPath::Signed(r) => return Ok(*r),
                FastPath::Unavailable(reason) if presign.mode == PresignMode::Require => {
                    return Err(MpcError::CosignerRejected {
                        code: "presignature_unavailable".into(),
                        reason,
                    })
                }
                FastPath::Empty if presign.mode == PresignMode::Require => {
                    return Err(MpcError::input(format!(
                        "no presignature left for account {account_id}: refill the pool \
                         (refill_presignatures / `client presign refill`) or allow full signing"
                    )))
                }
                FastPath::Unavailable(reason) => {
                    tracing::info!(%reason, "falling back to full signing")
                }
                FastPath::Empty => {
                    tracing::debug!(account_id = %account_id, "presignature pool empty: full signing")
                }
            }
        }

        let share = party.key_share(&account_id)?;
        let local_digest = mpc_core::DigestKind::from(digest).digest(&preimage);

        let cosigner = self.cosigner().await?;
        let start = cosigner
            .start_sign(
                &party.identity,
                &party.meta.wallet_id,
                me,
                &account_id,
                &dpath.to_string(),
                &preimage,
                digest,
                payload,
            )
            .await?;
        let announced = start.digest.trim_start_matches("0x").to_ascii_lowercase();
        if announced != hex::encode(local_digest) {
            return Err(MpcError::DigestMismatch {
                local: hex::encode(local_digest),
                cosigner: start.digest,
            });
        }
        let mut expected = vec![me, COSIGNER];
        expected.sort_unstable();
        if start.signers != expected {
            return Err(MpcError::CosignerRejected {
                code: "invalid_response".into(),
                reason: format!("signers {:?}, expected {expected:?}", start.signers),
            });
        }
        let roster = party.roster(&expected)?;
        let timeout = Duration::from_secs(self.config.sign_timeout_secs);
        let ctx = self.context(&start.session, me, &party.identity, &roster, timeout)?;
        let sid = start.session.session_id.clone();
        let request = mpc_core::SignRequest {
            preimage,
            digest: digest.into(),
        };
        let data = request.data_to_sign();
        let hd = (!dpath.is_root()).then(|| dpath.indices().to_vec());
        let signers = expected.clone();
        let sid2 = sid.clone();
        let pr = session_progress(&self.sign_progress(), "sign", me, Some(account_id.clone()));
        let session = run_session(
            ctx,
            move || Session::sign(sid2.as_bytes(), signers, share, hd, data),
            pr,
        );
        let out = tokio::select! {
            r = session => r.map_err(|e| MpcError::party("sign", &sid, e))?,
            e = cosigner.watch(Duration::from_secs(1), 3) => {
                let cause = match e {
                    MpcError::CosignerUnavailable { reason } => reason,
                    other => other.to_string(),
                };
                return Err(MpcError::CosignerUnavailable {
                    reason: format!("the cosigner stopped responding during signing session {sid} ({cause}); nothing was signed, try again"),
                })
            }
        };
        let sig = expect_output("sign", &sid, out, |o| match o {
            SessionOutput::Signature(s) => Some(s),
            _ => None,
        })?;
        finish_signature(
            &account_id,
            &dpath,
            &pk,
            &local_digest,
            &sig,
            chain,
            expected,
            sid,
            start.request_id,
            started,
        )
    }

    // ------------------------------------------------------------ presignature pools

    /// Sets the presignature pool settings (mode, pool size, background refill).
    pub fn set_presign_config(&self, config: PresignConfig) -> Result<(), MpcError> {
        config.validate()?;
        if let Ok(mut p) = self.presign.lock() {
            *p = config;
        }
        Ok(())
    }

    /// The presignature pool settings in effect.
    pub fn presign_config(&self) -> PresignConfig {
        self.presign.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Fills the presignature pool of an INDEPENDENT account (for the active party and
    /// the cosigner) up to `target`, running the presignature sessions now (at most
    /// `concurrency` at once). The local pool and the cosigner's are reconciled first:
    /// presignatures only one side still holds are discarded. The cosigner's cap may
    /// stop the refill short of `target` (see the returned status).
    pub async fn refill_presignatures(
        &self,
        account_id: String,
        target: u32,
    ) -> Result<PresignPoolStatus, MpcError> {
        let party = self.active_party().await?;
        let cosigner = self.cosigner().await?;
        let cfg = self.presign_config();
        refill(
            RefillJob {
                config: self.config.clone(),
                cosigner,
                party,
                account_id,
                target,
                concurrency: cfg.concurrency,
            },
            self.sign_progress(),
        )
        .await
    }

    /// Starts a background refill of an account's pool to `target` (a tokio task; it
    /// never blocks signing). Returns `false` if one is already running for it.
    pub async fn spawn_refill(&self, account_id: String, target: u32) -> Result<bool, MpcError> {
        let party = self.active_party().await?;
        Ok(self.spawn_refill_for(&party, &account_id, target))
    }

    /// Waits for the background refills started so far to finish.
    pub async fn wait_refills(&self) {
        let handles: Vec<_> = match self.refills.lock() {
            Ok(mut m) => std::mem::take(&mut *m).into_values().collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.await;
        }
    }

    /// The pool of an account: the local count, and the cosigner's view (ids it holds,
    /// sessions running, cap).
    pub async fn presign_pool_status(
        &self,
        account_id: String,
    ) -> Result<PresignPoolStatus, MpcError> {
        let started = Instant::now();
        let party = self.active_party().await?;
        check_independent(&party, &account_id)?;
        let me = party.bundle.party_index;
        let signers = pair_with_cosigner(me);
        let local = party.pool().list(&account_id, &signers)?;
        let remote = self
            .cosigner()
            .await?
            .presign_pool(&party.identity, &party.meta.wallet_id, me, &account_id)
            .await?;
        let usable = local
            .iter()
            .filter(|id| remote.presignature_ids.contains(id))
            .count() as u32;
        Ok(PresignPoolStatus {
            account_id,
            signers,
            local: local.len() as u32,
            cosigner: Some(remote.presignature_ids.len() as u32),
            cosigner_running: remote.running,
            cosigner_cap: remote.cap,
            usable: Some(usable),
            generated: 0,
            failed: 0,
            discarded: 0,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Ids of the presignatures in the local pool of an account (no network).
    pub async fn local_presignatures(&self, account_id: String) -> Result<Vec<String>, MpcError> {
        let party = self.active_party().await?;
        party.account(&account_id)?;
        party
            .pool()
            .list(&account_id, &pair_with_cosigner(party.bundle.party_index))
    }

    fn spawn_refill_for(&self, party: &Arc<PartyFiles>, account_id: &str, target: u32) -> bool {
        let Ok(mut refills) = self.refills.lock() else {
            return false;
        };
        let key = (party.bundle.party_index, account_id.to_string());
        if refills.get(&key).is_some_and(|h| !h.is_finished()) {
            return false;
        }
        let job_party = party.clone();
        let config = self.config.clone();
        let cached = self.grpc.try_lock().ok().and_then(|g| g.clone());
        let concurrency = self.presign_config().concurrency;
        let progress = self.sign_progress();
        let account = account_id.to_string();
        let handle = tokio::spawn(async move {
            let cosigner = match cached {
                Some(c) => c,
                None => match connect_cosigner(&config).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "background presignature refill: no cosigner");
                        return;
                    }
                },
            };
            let job = RefillJob {
                config,
                cosigner,
                party: job_party,
                account_id: account.clone(),
                target,
                concurrency,
            };
            match refill(job, progress).await {
                Ok(s) => {
                    tracing::info!(account_id = %account, local = s.local, generated = s.generated, failed = s.failed, "background presignature refill done")
                }
                Err(e) => {
                    tracing::warn!(account_id = %account, error = %e, "background presignature refill failed")
                }
            }
        });
        refills.insert(key, handle);
        true
    }

    /// Starts a background refill when the pool fell below the low-water mark.
    fn maybe_refill(&self, party: &Arc<PartyFiles>, account_id: &str, cfg: &PresignConfig) {
        if !cfg.auto_refill || cfg.mode == PresignMode::Off || cfg.pool_target == 0 {
            return;
        }
        let signers = pair_with_cosigner(party.bundle.party_index);
        let have = party
            .pool()
            .list(account_id, &signers)
            .map(|v| v.len() as u32)
            .unwrap_or(0);
        if have < cfg.low_water.max(1) {
            self.spawn_refill_for(party, account_id, cfg.pool_target);
        }
    }

    /// Signs with one presignature of the pool (taken once, committed before use).
    #[allow(clippy::too_many_arguments)]
    async fn sign_presigned(
        &self,
        party: &Arc<PartyFiles>,
        account_id: &str,
        pk: &mpc_core::Point,
        preimage: &[u8],
        digest: DigestKind,
        payload: PayloadKind,
        chain: ChainStyle,
        started: Instant,
    ) -> Result<FastPath, MpcError> {
        let me = party.bundle.party_index;
        let signers = pair_with_cosigner(me);
        let pool = party.pool();
        let mut taken = None;
        for id in pool.list(account_id, &signers)? {
            let Some(plain) = pool.take(account_id, &signers, &id)? else {
                continue; // taken meanwhile by another signer of this pool
            };
            match serde_json::from_slice::<StoredPresignature>(&plain) {
                Ok(p) if p.id == id && p.account_id == account_id && p.signers == signers => {
                    taken = Some(p);
                    break;
                }
                Ok(_) => {
                    tracing::warn!(presignature_id = %id, "discarded a presignature filed under the wrong name")
                }
                Err(e) => {
                    tracing::warn!(presignature_id = %id, error = %e, "discarded an unreadable presignature")
                }
            }
        }
        let Some(stored) = taken else {
            return Ok(FastPath::Empty);
        };
        let id = stored.id.clone();
        let request = mpc_core::SignRequest {
            preimage: preimage.to_vec(),
            digest: digest.into(),
        };
        let local_digest = request.digest_bytes();
        let answer = self
            .cosigner()
            .await?
            .sign_with_presignature(
                &party.identity,
                &party.meta.wallet_id,
                me,
                account_id,
                &id,
                preimage,
                digest,
                payload,
            )
            .await?;
        let theirs = match answer {
            Ok(p) => p,
            Err(unavailable) => {
                tracing::warn!(presignature_id = %id, used = unavailable.used, reason = %unavailable.reason, "the cosigner cannot use this presignature; discarded");
                return Ok(FastPath::Unavailable(unavailable.reason));
            }
        };
        let announced = theirs.digest.trim_start_matches("0x").to_ascii_lowercase();
        if announced != hex::encode(local_digest) {
            return Err(MpcError::DigestMismatch {
                local: hex::encode(local_digest),
                cosigner: theirs.digest,
            });
        }
        if theirs.signers != signers {
            return Err(MpcError::CosignerRejected {
                code: "invalid_response".into(),
                reason: format!("signers {:?}, expected {signers:?}", theirs.signers),
            });
        }
        let their_partial =
            mpc_core::presign::partial_from_bytes(&theirs.partial).map_err(|e| {
                MpcError::CosignerRejected {
                    code: "invalid_response".into(),
                    reason: format!("partial signature: {e}"),
                }
            })?;
        let public = stored.public.clone();
        let mine = stored.issue_partial(&request);
        let sig = mpc_core::presign::combine_pair(
            &public,
            &signers,
            me,
            mine,
            their_partial,
            &request,
            pk,
        )
        .map_err(|_| MpcError::InvalidSignature {
            reason: format!(
                "the cosigner's partial signature does not match presignature {id}; nothing usable was signed"
            ),
        })?;
        let mut r = finish_signature(
            account_id,
            &DerivationPath::root(),
            pk,
            &local_digest,
            &sig,
            chain,
            signers,
            id,
            theirs.request_id,
            started,
        )?;
        r.presigned = true;
        Ok(FastPath::Signed(Box::new(r)))
    }

    /// Signs with the device AND recovery shares on this machine, without the cosigner
    /// (both files and passphrases must be configured). The session runs in-process.
    pub async fn offline_sign(
        &self,
        account_id: String,
        path: String,
        preimage: Vec<u8>,
        digest: DigestKind,
        chain: ChainStyle,
    ) -> Result<SignedResult, MpcError> {
        let started = Instant::now();
        let dpath = parse_path(&path)?;
        check_preimage(&preimage)?;
        let (device, recovery) = tokio::try_join!(self.party(0), self.party(2))?;
        if device.meta.wallet_id != recovery.meta.wallet_id {
            return Err(MpcError::config(format!(
                "the device file belongs to wallet {} and the recovery file to wallet {}",
                device.meta.wallet_id, recovery.meta.wallet_id
            )));
        }
        let pk = device.account(&account_id)?.public_key_at(&dpath)?;
        let shares = [
            device.key_share(&account_id)?,
            recovery.key_share(&account_id)?,
        ];
        if shares[0].core.shared_public_key != shares[1].core.shared_public_key {
            return Err(MpcError::config(format!(
                "the device and recovery files hold different keys for account {account_id}"
            )));
        }
        let request = mpc_core::SignRequest {
            preimage,
            digest: digest.into(),
        };
        let local_digest = request.digest_bytes();
        let sid = SessionId::random()
            .map_err(|e| MpcError::internal(e.to_string()))?
            .to_string();
        let signers = vec![0u16, 2];
        let (sid2, signers2, hd) = (
            sid.clone(),
            signers.clone(),
            (!dpath.is_root()).then(|| dpath.indices().to_vec()),
        );
        let out = tokio::task::spawn_blocking(move || {
            let sessions = shares
                .into_iter()
                .map(|share| {
                    Session::sign(
                        sid2.as_bytes(),
                        signers2.clone(),
                        share,
                        hd.clone(),
                        request.data_to_sign(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            mpc_core::local::run_sessions(sessions, None)
                .map_err(|(p, e)| format!("party {p}: {e}"))
        })
        .await
        .map_err(|e| MpcError::internal(format!("signing task failed: {e}")))?
        .map_err(|reason| MpcError::SessionFailed {
            stage: "offline-sign".into(),
            session_id: sid.clone(),
            reason,
            blamed: Vec::new(),
        })?;
        let first = out
            .into_iter()
            .next()
            .ok_or_else(|| MpcError::internal("no session output"))?;
        let sig = expect_output("offline-sign", &sid, first, |o| match o {
            SessionOutput::Signature(s) => Some(s),
            _ => None,
        })?;
        finish_signature(
            &account_id,
            &dpath,
            &pk,
            &local_digest,
            &sig,
            chain,
            signers,
            sid,
            String::new(),
            started,
        )
    }

    /// Signs an EIP-191 personal message with device + recovery, without the cosigner.
    pub async fn offline_sign_message(
        &self,
        account_id: String,
        path: String,
        message: Vec<u8>,
    ) -> Result<SignedResult, MpcError> {
        let preimage = mpc_core::digest::eip191_preimage(&message);
        self.offline_sign(
            account_id,
            path,
            preimage,
            DigestKind::Keccak256,
            ChainStyle::Legacy,
        )
        .await
    }
}

fn check_preimage(preimage: &[u8]) -> Result<(), MpcError> {
    if preimage.is_empty() {
        return Err(MpcError::input("the preimage is empty"));
    }
    if preimage.len() > MAX_PREIMAGE {
        return Err(MpcError::input(format!(
            "the preimage has {} bytes; at most {MAX_PREIMAGE} are accepted",
            preimage.len()
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish_signature(
    account_id: &str,
    path: &DerivationPath,
    pk: &mpc_core::Point,
    digest: &[u8; 32],
    sig: &mpc_core::Signature,
    chain: ChainStyle,
    signers: Vec<u16>,
    session_id: String,
    request_id: String,
    started: Instant,
) -> Result<SignedResult, MpcError> {
    verify_digest(pk, digest, sig).map_err(|e| MpcError::InvalidSignature {
        reason: format!("the session's signature does not verify: {e}"),
    })?;
    let eth = ethereum_signature(pk, digest, sig, chain.into())?;
    let addr = address::ethereum_address(pk);
    let recovered = recover_ethereum_address(digest, &eth)?;
    if recovered != addr {
        return Err(MpcError::InvalidSignature {
            reason: format!("recovers to {recovered}, not {addr}"),
        });
    }
    Ok(SignedResult {
        account_id: account_id.to_string(),
        derivation_path: path.to_string(),
        r: hex::encode(eth.r),
        s: hex::encode(eth.s),
        y_parity: eth.y_parity,
        v: eth.v,
        rsv: hex::encode(eth.to_rsv_bytes()),
        der: hex::encode(bitcoin_der(sig)?),
        digest: hex::encode(digest),
        public_key: hex::encode(pk.to_bytes(true)),
        ethereum_address: addr,
        signers,
        session_id,
        request_id,
        elapsed_ms: started.elapsed().as_millis() as u64,
        presigned: false,
    })
}

/// Outcome of the fast path.
enum FastPath {
    Signed(Box<SignedResult>),
    /// The pool had no presignature for this account and signer pair.
    Empty,
    /// The cosigner did not have (or had used) the presignature taken; discarded.
    Unavailable(String),
}

/// The signer pair of `me` with the cosigner, sorted.
fn pair_with_cosigner(me: u16) -> Vec<u16> {
    let mut v = vec![me, COSIGNER];
    v.sort_unstable();
    v
}

fn check_independent(party: &PartyFiles, account_id: &str) -> Result<(), MpcError> {
    if party.account(account_id)?.kind != mpc_core::AccountKind::Independent {
        return Err(MpcError::input(format!(
            "account {account_id} is an HD account: presignatures exist only for independent \
             accounts (the protocol forbids presignatures with HD derivation); create the wallet \
             with independent accounts for the fast path"
        )));
    }
    Ok(())
}

fn not_fast_path_eligible(party: &PartyFiles, account_id: &str, path: &DerivationPath) -> MpcError {
    if let Err(e) = check_independent(party, account_id) {
        return e;
    }
    MpcError::input(format!(
        "the presignature fast path signs at the root of an independent account only, not at {path} \
         (the protocol forbids presignatures with HD derivation)"
    ))
}

/// What a refill needs, owned (it may run in a background task).
struct RefillJob {
    config: MpcConfig,
    cosigner: CosignerClient,
    party: Arc<PartyFiles>,
    account_id: String,
    target: u32,
    concurrency: u32,
}

/// Most sessions asked for in one StartPresign.
const PRESIGN_CHUNK: u32 = 16;

async fn refill(job: RefillJob, progress: Progress) -> Result<PresignPoolStatus, MpcError> {
    use futures_util::StreamExt;
    let started = Instant::now();
    let RefillJob {
        config,
        cosigner,
        party,
        account_id,
        target,
        concurrency,
    } = job;
    check_independent(&party, &account_id)?;
    let me = party.bundle.party_index;
    let wallet_id = party.meta.wallet_id.clone();
    let signers = pair_with_cosigner(me);
    let pool = Arc::new(party.pool());

    // Reconcile with the cosigner: a presignature only one side holds is useless.
    let remote = cosigner
        .presign_pool(&party.identity, &wallet_id, me, &account_id)
        .await?;
    let local = pool.list(&account_id, &signers)?;
    let mut discarded = 0u32;
    let mut discarded_local = 0u32;
    let mut release = Vec::new();
    if remote.running == 0 {
        for id in local
            .iter()
            .filter(|id| !remote.presignature_ids.contains(id))
        {
            if pool.take(&account_id, &signers, id)?.is_some() {
                discarded_local += 1;
            }
        }
        discarded += discarded_local;
        release = remote
            .presignature_ids
            .iter()
            .filter(|id| !local.contains(id))
            .cloned()
            .collect();
        discarded += release.len() as u32;
    }
    let mut have = (local.len() as u32).saturating_sub(discarded_local);
    let (mut generated, mut failed) = (0u32, 0u32);
    let mut last_error = None;
    let timeout = Duration::from_secs(config.sign_timeout_secs);
    while have < target {
        let want = (target - have).min(PRESIGN_CHUNK);
        let Some(batch) = cosigner
            .start_presign(
                &party.identity,
                &wallet_id,
                me,
                &account_id,
                want,
                std::mem::take(&mut release),
            )
            .await?
        else {
            break; // the cosigner's pool is full
        };
        if batch.signers != signers {
            return Err(MpcError::CosignerRejected {
                code: "invalid_response".into(),
                reason: format!("signers {:?}, expected {signers:?}", batch.signers),
            });
        }
        if batch.sessions.is_empty() {
            break;
        }
        let share = party.key_share(&account_id)?;
        let roster = party.roster(&signers)?;
        let results: Vec<Result<(), MpcError>> = futures_util::stream::iter(batch.sessions)
            .map(|(id, room)| {
                let ctx = context_for(&config, &room, me, &party.identity, &roster, timeout);
                let (share, signers, pool, account_id) = (
                    share.clone(),
                    signers.clone(),
                    pool.clone(),
                    account_id.clone(),
                );
                let pr = session_progress(&progress, "presign", me, Some(account_id.clone()));
                async move {
                    let ctx = ctx?;
                    let sid = id.clone();
                    let signers2 = signers.clone();
                    let out = run_session(
                        ctx,
                        move || Session::presign(sid.as_bytes(), signers2, share),
                        pr,
                    )
                    .await
                    .map_err(|e| MpcError::party("presign", &id, e))?;
                    let (p, public) = expect_output("presign", &id, out, |o| match o {
                        SessionOutput::Presignature(p, public) => Some((p, public)),
                        _ => None,
                    })?;
                    let stored = StoredPresignature {
                        id: id.clone(),
                        account_id: account_id.clone(),
                        signers: signers.clone(),
                        presignature: *p,
                        public: public.as_ref().into(),
                    };
                    let plain = zeroize::Zeroizing::new(
                        serde_json::to_vec(&stored)
                            .map_err(|e| MpcError::internal(e.to_string()))?,
                    );
                    tokio::task::spawn_blocking(move || {
                        pool.put(&account_id, &signers, &id, &plain)
                    })
                    .await
                    .map_err(|e| MpcError::internal(format!("pool task failed: {e}")))?
                }
            })
            .buffer_unordered(concurrency.max(1) as usize)
            .collect()
            .await;
        let mut batch_failed = false;
        for r in results {
            match r {
                Ok(()) => {
                    generated += 1;
                    have += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a presignature session failed");
                    failed += 1;
                    batch_failed = true;
                    last_error = Some(e);
                }
            }
        }
        if batch_failed {
            break;
        }
    }
    if generated == 0 {
        if let Some(e) = last_error {
            return Err(e);
        }
    }
    // Our sessions are done; give the cosigner a moment to store its halves so the
    // status reflects the settled pool.
    let settle = Instant::now();
    let remote = loop {
        let remote = cosigner
            .presign_pool(&party.identity, &wallet_id, me, &account_id)
            .await?;
        if remote.running == 0 || settle.elapsed() > Duration::from_secs(5) {
            break remote;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let local = pool.list(&account_id, &signers)?;
    let usable = local
        .iter()
        .filter(|id| remote.presignature_ids.contains(id))
        .count() as u32;
    Ok(PresignPoolStatus {
        account_id,
        signers,
        local: local.len() as u32,
        cosigner: Some(remote.presignature_ids.len() as u32),
        cosigner_running: remote.running,
        cosigner_cap: remote.cap,
        usable: Some(usable),
        generated,
        failed,
        discarded,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Verifies an Ethereum signature (`r || s || v`, 65 bytes hex, v = 27/28/0/1 or
/// EIP-155) over the keccak-256 of `preimage` against an address; returns the
/// recovered EIP-55 address.
pub fn verify_ethereum(
    preimage: &[u8],
    rsv_hex: &str,
    expected_address: &str,
) -> Result<String, MpcError> {
    let bytes = hex::decode(rsv_hex.trim().trim_start_matches("0x"))
        .map_err(|e| MpcError::input(format!("signature is not hex: {e}")))?;
    if bytes.len() != 65 {
        return Err(MpcError::input(format!(
            "signature must be 65 bytes (r, s, v), got {}",
            bytes.len()
        )));
    }
    let v = u64::from(bytes[64]);
    let y_parity = match v {
        0 | 1 => v as u8,
        27 | 28 => (v - 27) as u8,
        v if v >= 35 => ((v - 35) % 2) as u8,
        other => return Err(MpcError::input(format!("invalid v {other}"))),
    };
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&bytes[..32]);
    s.copy_from_slice(&bytes[32..64]);
    let sig = mpc_core::signature::EthereumSignature { r, s, y_parity, v };
    let digest = mpc_core::DigestKind::Keccak256.digest(preimage);
    let recovered =
        recover_ethereum_address(&digest, &sig).map_err(|e| MpcError::InvalidSignature {
            reason: e.to_string(),
        })?;
    if !recovered.eq_ignore_ascii_case(expected_address.trim()) {
        return Err(MpcError::InvalidSignature {
            reason: format!("signed by {recovered}, not {expected_address}"),
        });
    }
    Ok(recovered)
}
