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
//! | [`MpcClient::refresh_shares`] | device + recovery + cosigner | yes |
//! | [`MpcClient::replace_device`] | recovery + cosigner + a NEW device | yes |
//!
//! **Key lifecycle** (`docs/lifecycle.md`): [`MpcClient::refresh_shares`] re-randomizes
//! every share (addresses unchanged, old shares and presignatures useless);
//! [`MpcClient::replace_device`] gives a new device (fresh identity, its file at a path
//! of the caller's choice) a share of the same keys, revoking the old device. The new
//! shares are stored as pending files (`<file>.pending`) before they are confirmed and
//! swapped in once the cosigner committed; a pending file left by a crash is settled
//! when the file is next opened, or by [`MpcClient::resume_lifecycle`] (see
//! [`lifecycle`]). Key-share files carry their share epoch.
//!
//! This crate is the tokio driver of `client-core`, which owns every flow (creation,
//! signing, the presignature fast path, refills with reconciliation, offline signing)
//! as I/O-free values. What lives here is the platform: the encrypted share files and
//! the presignature pool directory (with its fsynced take-once), the tonic calls to the
//! cosigner, the gateway sessions (`mpc-party`'s tokio runner), background refill
//! tasks and progress callbacks. Errors are [`MpcError`] (the core's `ClientError`):
//! switch on [`MpcError::code`].
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

pub mod backup;
pub mod bitcoin;
mod cosigner;
mod driver;
mod enroll;
pub mod enrollments;
mod error;
pub mod eth;
mod join;
pub mod lifecycle;
mod lifecycle_ops;
mod pool;
mod store;
mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use client_core::{Joined, OfflineParams, SignParams};
use mpc_core::primes::{dev_fixture_primes, PrimeSet, PrimesFile};
use mpc_wire::{IdentityKey, PublicIdentity};
use tokio::sync::Mutex;
use wallet_types::AccountKind as Kind;

pub use backup::{BackupError, BackupImport};
pub use bitcoin::{
    BitcoinAddress, BitcoinNetwork, BitcoinWatchOnly, PsbtError, PsbtSigner, SignedPsbt,
    SignedPsbtInput,
};
pub use client_core::create::{Persist, RecoveryJob};
pub use client_core::{
    bundle_public_keys, parse_path, verify_ethereum, AccountRoom, ControlAction, CreateParams,
    CreatedWallet, EnrollParams, EnrollRecoveryJob, Enrollment, ErrorCode, JoinAux, PairSignParams,
    Room, WalletControls,
};
pub use cosigner::CosignerClient;
pub use driver::{
    create_wallet, create_wallet_from_enrollment, enroll_device, CreateEffects, EnrollEffects,
    SessionSettings,
};
pub use enrollments::EnrollmentInfo;
pub use error::MpcError;
pub use eth::{SignedAuthorization, SignedTransaction};
pub use join::{join_wallet_creation, save_party_files, JoinRequest};
pub use lifecycle::PendingOutcome;
pub use lifecycle_ops::{
    LifecycleResult, OpenedLifecycle, PendingStatus, PossessionProof, RecoveryLifecycle,
};
pub use pool::pool_dir_path;
pub use store::{meta_path, WalletMeta, WALLET_META_FORMAT};
pub use types::{
    AccountInfo, AccountKind, ChainStyle, CosignerHealth, DigestKind, MpcConfig, PartyRole,
    PayloadKind, PresignConfig, PresignMode, PresignPoolStatus, Progress, ProgressEvent,
    ProgressListener, PublicKeyInfo, SignedResult, WalletInfo,
};
pub use wallet_types::{COSIGNER, MAX_ACCOUNTS, MAX_PREIMAGE_LEN};

/// Where one protocol session runs (the core's [`Room`]).
pub type RoomInfo = Room;

use driver::{now_ms, SessionSettings as Settings};
use error::io_error;
use store::PartyFiles;

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
    CosignerClient::connect_with(
        &config.cosigner_url,
        Duration::from_secs(config.request_timeout_secs),
        config.ca_file.as_deref().map(Path::new),
    )
    .await
}

fn emit_party(
    progress: &Progress,
    stage: &str,
    party: Option<u16>,
    done: u32,
    total: u32,
    finished: bool,
) {
    progress.on_progress(ProgressEvent {
        stage: stage.into(),
        party,
        account_id: None,
        done,
        total,
        finished,
    });
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

    fn settings(&self, timeout_secs: u64) -> Settings {
        Settings {
            gateway_url: self.config.gateway_url.clone(),
            ca_file: self.config.ca_file.clone(),
            timeout: Duration::from_secs(timeout_secs),
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
        let files = Arc::new(self.load_party_files(path, pass, index).await?);
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

    /// The cosigner's health report.
    pub async fn health(&self) -> Result<CosignerHealth, MpcError> {
        self.cosigner().await?.health().await
    }

    /// Accounts of the wallet (from the local key-share file of the active party).
    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, MpcError> {
        Ok(self.active_party().await?.party.accounts())
    }

    /// The wallet id (from the local metadata file of the active party).
    pub async fn wallet_id(&self) -> Result<String, MpcError> {
        Ok(self.active_party().await?.party.wallet_id().to_string())
    }

    /// The public key and addresses of an account at a non-hardened path (`m` = root).
    /// Computed locally from the share file; no network.
    pub async fn get_public_key(
        &self,
        account_id: String,
        path: String,
    ) -> Result<PublicKeyInfo, MpcError> {
        self.active_party()
            .await?
            .party
            .public_key(&account_id, &path)
    }

    // --------------------------------------------------------------- backup and restore

    /// The path and passphrase of the local files of party 0 (device) or 2 (recovery).
    fn party_file(&self, index: u16) -> Result<(PathBuf, String), MpcError> {
        match index {
            0 => Ok((self.device_path(), self.config.passphrase.clone())),
            2 => Ok((self.recovery_path()?, self.recovery_passphrase()?)),
            other => Err(MpcError::input(format!(
                "party {other} has no local share (0 device, 2 recovery)"
            ))),
        }
    }

    /// An encrypted backup of one party's key shares: its key-share file (Argon2id +
    /// XChaCha20-Poly1305, the format of the share files and of the browser package's
    /// passphrase wallets) encrypted under `passphrase`, with the wallet's public
    /// metadata as its `wallet` member (see [`backup`]). The backup holds no plaintext
    /// key material. `passphrase` must pass the strength check of new key files unless
    /// `allow_weak_passphrase` (or `insecure_fast_kdf`) is set. Write the bytes to a
    /// file; [`Self::import_backup`] restores them on another device.
    pub async fn export_backup(
        &self,
        party: PartyRole,
        passphrase: String,
    ) -> Result<Vec<u8>, MpcError> {
        backup::check_backup_passphrase(
            &passphrase,
            self.config.allow_weak_passphrase || self.config.insecure_fast_kdf,
        )?;
        let files = self.party(party.index()).await?;
        let meta = WalletMeta::load(&files.path)?;
        let bundle = files.party.bundle().clone();
        let params = store::kdf(self.config.insecure_fast_kdf);
        tokio::task::spawn_blocking(move || {
            backup::encrypt_backup(&bundle, &meta, &passphrase, params)
        })
        .await
        .map_err(|e| MpcError::internal(format!("backup task failed: {e}")))?
    }

    /// Restores a backup made by [`Self::export_backup`] (or by the browser package's
    /// `exportBackup`): decrypts it with `passphrase` and writes the share it holds to
    /// this client's file of that party (the device's `key_share_path` or the
    /// recovery's `recovery_path`), encrypted under that file's configured passphrase,
    /// with its `.wallet.json` metadata.
    ///
    /// Nothing is written when the backup does not open
    /// ([`BackupError::WrongPassphrase`]), is not a backup
    /// ([`BackupError::NotABackup`]), or when the file holds another wallet's share
    /// ([`BackupError::OtherWallet`], naming both wallet ids) or a different share of
    /// the same wallet ([`BackupError::DifferentShare`]). Importing the identical share
    /// again succeeds without writing (`already_present`). The imported share signs as
    /// before: same identity, same keys, same addresses.
    pub async fn import_backup(
        &self,
        backup: Vec<u8>,
        passphrase: String,
    ) -> Result<BackupImport, BackupError> {
        let opened =
            tokio::task::spawn_blocking(move || backup::decrypt_backup(&backup, &passphrase))
                .await
                .map_err(|e| MpcError::internal(format!("backup task failed: {e}")))??;
        let index = opened.bundle.party_index;
        let (path, pass) = self.party_file(index)?;
        if pass.is_empty() {
            return Err(MpcError::config(format!("no passphrase for {}", path.display())).into());
        }
        // The share must be usable before anything is written.
        let party = client_core::Party::new(
            opened.meta.wallet_id.clone(),
            opened.bundle.clone(),
            "the backup",
        )?;
        let accounts = party.accounts();
        let strength_ok = self.config.allow_weak_passphrase || self.config.insecure_fast_kdf;
        let fast = self.config.insecure_fast_kdf;
        let target = path.clone();
        let already_present = tokio::task::spawn_blocking(move || -> Result<bool, BackupError> {
            if backup::check_target(&target, &pass, &opened)?.is_some() {
                return Ok(true);
            }
            if !strength_ok {
                mpc_core::keystore::check_passphrase(&pass).map_err(|e| {
                    MpcError::config(format!(
                        "the passphrase of {}: {e} (allow_weak_passphrase overrides)",
                        target.display()
                    ))
                })?;
            }
            save_party_files(&target, &pass, fast, &opened.meta, &opened.bundle)?;
            Ok(false)
        })
        .await
        .map_err(|e| MpcError::internal(format!("import task failed: {e}")))??;
        self.cache.lock().await.remove(&index);
        Ok(BackupImport {
            wallet_id: party.wallet_id().to_string(),
            party_index: index,
            path: path.display().to_string(),
            already_present,
            accounts,
        })
    }

    // ------------------------------------------------------------------ wallet creation

    async fn load_primes(&self, progress: &Progress) -> Result<(PrimeSet, PrimeSet), MpcError> {
        if let Some(path) = &self.config.primes_path {
            let text = std::fs::read_to_string(path).map_err(|e| io_error(Path::new(path), e))?;
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
        emit_party(progress, "primes", None, 0, 8, false);
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
                        emit_party(&progress, "primes", Some(party), d, 8, d == 8);
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

    /// Checks the new files' passphrases and that no wallet files exist yet; creates
    /// their directories. Returns the device and recovery paths and the recovery
    /// passphrase.
    fn prepare_new_files(&self) -> Result<(PathBuf, PathBuf, String), MpcError> {
        let device_path = self.device_path();
        let recovery_path = self.recovery_path()?;
        let recovery_pass = self.recovery_passphrase()?;
        if self.config.passphrase.is_empty() {
            return Err(MpcError::config("the device passphrase is empty"));
        }
        // Before minutes of aux info: the new files' passphrases must be strong enough.
        if !(self.config.allow_weak_passphrase || self.config.insecure_fast_kdf) {
            for (who, p) in [
                ("device", &self.config.passphrase),
                ("recovery", &recovery_pass),
            ] {
                mpc_core::keystore::check_passphrase(p).map_err(|e| {
                    MpcError::config(format!(
                        "the {who} passphrase: {e} (allow_weak_passphrase overrides)"
                    ))
                })?;
            }
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
                std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            }
        }
        Ok((device_path, recovery_path, recovery_pass))
    }

    /// Creates a wallet with the cosigner: `accounts` keys (1..=100) of `kind`.
    ///
    /// Generates the device's and recovery party's identity keys, registers them with
    /// the cosigner, runs aux info and one DKG per account for both parties (both in
    /// this process), writes the recovery share to `recovery_path` and the device share
    /// to `key_share_path` (each encrypted under its own passphrase, with a
    /// `.wallet.json` metadata file next to it), then confirms the public keys with the
    /// cosigner. Existing files are never overwritten.
    pub async fn create_wallet(
        &self,
        accounts: u32,
        kind: AccountKind,
        label: String,
        progress: Option<Progress>,
    ) -> Result<WalletInfo, MpcError> {
        self.create_wallet_with(accounts, kind, label, None, progress)
            .await
    }

    /// [`Self::create_wallet`], from the stored enrollment `enrollment_id`
    /// ([`Self::enroll_device`]) when given: the identities and aux info of the
    /// enrollment are reused, so only the DKGs run (about a second per account) and no
    /// registration credential is needed. Both parties' enrollment files are removed
    /// once both shares are stored. The result is the same wallet as without one.
    pub async fn create_wallet_with(
        &self,
        accounts: u32,
        kind: AccountKind,
        label: String,
        enrollment_id: Option<String>,
        progress: Option<Progress>,
    ) -> Result<WalletInfo, MpcError> {
        let started = std::time::Instant::now();
        let progress: Progress = progress.unwrap_or_else(|| Arc::new(types::NoProgress));
        if !(1..=MAX_ACCOUNTS).contains(&accounts) {
            return Err(MpcError::input(format!(
                "accounts must be between 1 and {MAX_ACCOUNTS}, got {accounts}"
            )));
        }
        let (device_path, recovery_path, recovery_pass) = self.prepare_new_files()?;
        let enrollment = match &enrollment_id {
            Some(id) => Some(self.load_enrollments(id).await?),
            None => None,
        };
        // Reach the cosigner before minutes of prime generation.
        let cosigner = self.cosigner().await?;
        let settings = self.settings(self.config.setup_timeout_secs);
        let mut effects = LocalCreation {
            client: self,
            progress: Arc::clone(&progress),
            recovery_key: IdentityKey::generate().map_err(|e| MpcError::internal(e.to_string()))?,
            recovery_primes: None,
            task: None,
            settings: settings.clone(),
            files: [
                (device_path.clone(), self.config.passphrase.clone()),
                (recovery_path.clone(), recovery_pass),
            ],
            label: label.clone(),
            created_at_ms: now_ms(),
            wallet_id: String::new(),
            recovery_enrollment: None,
            enrollment_files: Vec::new(),
        };
        let params = CreateParams {
            accounts,
            kind,
            label,
            registration_credential: self.config.registration_credential.clone(),
        };
        let created = match enrollment {
            Some(stored) => {
                effects.recovery_enrollment = Some(stored.recovery);
                effects.enrollment_files = stored.files.to_vec();
                driver::create_wallet_from_enrollment(
                    &cosigner,
                    params,
                    stored.device,
                    &mut effects,
                    &settings,
                    &progress,
                )
                .await?
            }
            None => {
                driver::create_wallet(&cosigner, params, &mut effects, &settings, &progress).await?
            }
        };
        self.cache.lock().await.clear();
        Ok(WalletInfo {
            wallet_id: created.wallet_id,
            accounts: created.accounts,
            key_share_path: device_path.display().to_string(),
            recovery_path: recovery_path.display().to_string(),
            committed: created.committed,
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
    /// Independent accounts at the root sign from the presignature pool first (see
    /// [`PresignConfig`]). The cosigner checks its policy first (a refusal has code
    /// `policy_denied` and names its rule); its announced digest must equal the local
    /// one. The signature is verified against the account's (derived) public key before
    /// it is returned.
    pub async fn sign_tx(
        &self,
        account_id: String,
        path: String,
        preimage: Vec<u8>,
        digest: DigestKind,
        payload: PayloadKind,
        chain: ChainStyle,
    ) -> Result<SignedResult, MpcError> {
        self.sign_with_cosigner(
            account_id, path, preimage, digest, payload, None, None, chain,
        )
        .await
    }

    /// [`Self::sign_tx`] with what the cosigner receives in place of the preimage
    /// (EIP-712 typed data: its JSON; a PSBT input: the PSBT, with `bitcoin`).
    #[allow(clippy::too_many_arguments)] // the flow's parameters, passed through once
    pub(crate) async fn sign_with_cosigner(
        &self,
        account_id: String,
        path: String,
        preimage: Vec<u8>,
        digest: DigestKind,
        payload: PayloadKind,
        cosigner_payload: Option<Vec<u8>>,
        bitcoin: Option<client_core::BitcoinInput>,
        chain: ChainStyle,
    ) -> Result<SignedResult, MpcError> {
        let presign = self.presign_config();
        let params = SignParams {
            account_id: account_id.clone(),
            path: path.clone(),
            preimage,
            digest,
            payload,
            cosigner_payload,
            chain,
            presign: presign.mode,
        };
        // Arguments are checked before any file or network access.
        client_core::parse_path(&path)?;
        if params.preimage.is_empty() || params.preimage.len() > MAX_PREIMAGE_LEN {
            return Err(MpcError::input(format!(
                "the preimage must have 1..={MAX_PREIMAGE_LEN} bytes, got {}",
                params.preimage.len()
            )));
        }
        let files = self.active_party().await?;
        // Independent accounts: the root pool; HD accounts: the pool of the path.
        let fast_path = presign.mode != PresignMode::Off
            && files
                .party
                .account(&account_id)
                .is_ok_and(|a| match a.kind {
                    Kind::Independent => path_is_root(&path),
                    Kind::Hd => !path_is_root(&path),
                });
        let cosigner = self.cosigner().await?;
        let settings = self.settings(self.config.sign_timeout_secs);
        let signed = driver::sign(
            &cosigner,
            &files.party,
            &files.pool(),
            params,
            bitcoin,
            &settings,
            &self.sign_progress(),
        )
        .await;
        if fast_path {
            self.maybe_refill(&files, &account_id, &path, &presign);
        }
        Ok(signed?.result)
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

    /// Fills the root presignature pool of an INDEPENDENT account (for the active party
    /// and the cosigner) up to `target`, running the presignature sessions now (at most
    /// `concurrency` at once). The local pool and the cosigner's are reconciled first:
    /// presignatures only one side still holds are discarded. The cosigner's cap may
    /// stop the refill short of `target` (see the returned status).
    pub async fn refill_presignatures(
        &self,
        account_id: String,
        target: u32,
    ) -> Result<PresignPoolStatus, MpcError> {
        self.refill_presignatures_at(account_id, "m".into(), target)
            .await
    }

    /// [`Self::refill_presignatures`] for the pool at `path`: `m` for an independent
    /// account, a child path such as `m/44/60/0/0/0` for an HD account (each path has
    /// its own pool: a presignature signs at the path it was generated for).
    pub async fn refill_presignatures_at(
        &self,
        account_id: String,
        path: String,
        target: u32,
    ) -> Result<PresignPoolStatus, MpcError> {
        let files = self.active_party().await?;
        let cosigner = self.cosigner().await?;
        refill(
            &self.config,
            &cosigner,
            &files,
            &account_id,
            &path,
            Some(target),
            self.presign_config().concurrency,
            &self.sign_progress(),
        )
        .await
    }

    /// Starts a background refill of an account's pool to `target` (a tokio task; it
    /// never blocks signing). Returns `false` if one is already running for it.
    pub async fn spawn_refill(&self, account_id: String, target: u32) -> Result<bool, MpcError> {
        let files = self.active_party().await?;
        Ok(self.spawn_refill_for(&files, &account_id, "m", target))
    }

    /// [`Self::spawn_refill`] for the pool at `path`.
    pub async fn spawn_refill_at(
        &self,
        account_id: String,
        path: String,
        target: u32,
    ) -> Result<bool, MpcError> {
        client_core::parse_path(&path)?;
        let files = self.active_party().await?;
        Ok(self.spawn_refill_for(&files, &account_id, &path, target))
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
        self.presign_pool_status_at(account_id, "m".into()).await
    }

    /// [`Self::presign_pool_status`] of the pool at `path`.
    pub async fn presign_pool_status_at(
        &self,
        account_id: String,
        path: String,
    ) -> Result<PresignPoolStatus, MpcError> {
        let files = self.active_party().await?;
        let cosigner = self.cosigner().await?;
        refill(
            &self.config,
            &cosigner,
            &files,
            &account_id,
            &path,
            None,
            1,
            &self.sign_progress(),
        )
        .await
    }

    /// Ids of the presignatures in the local pool of an account (no network).
    pub async fn local_presignatures(&self, account_id: String) -> Result<Vec<String>, MpcError> {
        self.local_presignatures_at(account_id, "m".into()).await
    }

    /// [`Self::local_presignatures`] of the pool at `path`.
    pub async fn local_presignatures_at(
        &self,
        account_id: String,
        path: String,
    ) -> Result<Vec<String>, MpcError> {
        let path = client_core::parse_path(&path)?;
        let files = self.active_party().await?;
        files.party.account(&account_id)?;
        files.pool().list(
            &client_core::pool_key(&account_id, &path),
            &files.party.pair_with_cosigner(),
        )
    }

    fn spawn_refill_for(
        &self,
        files: &Arc<PartyFiles>,
        account_id: &str,
        path: &str,
        target: u32,
    ) -> bool {
        let Ok(mut refills) = self.refills.lock() else {
            return false;
        };
        let Ok(parsed) = client_core::parse_path(path) else {
            return false;
        };
        let key = (
            files.party.index(),
            client_core::pool_key(account_id, &parsed),
        );
        if refills.get(&key).is_some_and(|h| !h.is_finished()) {
            return false;
        }
        let files = files.clone();
        let config = self.config.clone();
        let cached = self.grpc.try_lock().ok().and_then(|g| g.clone());
        let concurrency = self.presign_config().concurrency;
        let progress = self.sign_progress();
        let account = account_id.to_string();
        let path = path.to_string();
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
            let r = refill(
                &config,
                &cosigner,
                &files,
                &account,
                &path,
                Some(target),
                concurrency,
                &progress,
            )
            .await;
            match r {
                Ok(s) => {
                    tracing::info!(account_id = %account, path = %path, local = s.local, generated = s.generated, failed = s.failed, "background presignature refill done")
                }
                Err(e) => {
                    tracing::warn!(account_id = %account, error = %e, code = %e.code(), "background presignature refill failed")
                }
            }
        });
        refills.insert(key, handle);
        true
    }

    /// Starts a background refill when the pool fell below the low-water mark.
    fn maybe_refill(
        &self,
        files: &Arc<PartyFiles>,
        account_id: &str,
        path: &str,
        cfg: &PresignConfig,
    ) {
        if !cfg.auto_refill || cfg.mode == PresignMode::Off || cfg.pool_target == 0 {
            return;
        }
        let Ok(parsed) = client_core::parse_path(path) else {
            return;
        };
        let have = files
            .pool()
            .list(
                &client_core::pool_key(account_id, &parsed),
                &files.party.pair_with_cosigner(),
            )
            .map(|v| v.len() as u32)
            .unwrap_or(0);
        if have < cfg.low_water.max(1) {
            self.spawn_refill_for(files, account_id, path, cfg.pool_target);
        }
    }

    // ------------------------------------------------------------------ wallet controls

    /// Asks the cosigner for a wallet control, signed by the active party (the device,
    /// or the recovery party when `role` is recovery), and returns the controls after
    /// it. See [`ControlAction`]: the device may revoke itself and freeze; the recovery
    /// party may revoke the device, freeze and unfreeze (effective after the cosigner's
    /// `unfreeze_delay_secs`).
    pub async fn wallet_control(&self, action: ControlAction) -> Result<WalletControls, MpcError> {
        let files = self.active_party().await?;
        let cosigner = self.cosigner().await?;
        driver::control(&cosigner, &files.party, action).await
    }

    /// This party's half of a signing by the device and the recovery party on two
    /// machines, without the cosigner, in the room `params.room` (which the recovery
    /// agent opened after its user confirmed the request; `gateway_url` of this
    /// configuration overrides the room's). The active party (the device, or the
    /// recovery share in recovery mode) signs with the other; the result is verified.
    pub async fn pair_sign(
        &self,
        params: client_core::PairSignParams,
    ) -> Result<SignedResult, MpcError> {
        let files = self.active_party().await?;
        driver::pair_sign(
            &files.party,
            params,
            &self.settings(self.config.sign_timeout_secs),
            &self.sign_progress(),
        )
        .await
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
        client_core::parse_path(&path)?;
        let (device, recovery) = tokio::try_join!(self.party(0), self.party(2))?;
        let params = OfflineParams {
            account_id,
            path,
            preimage,
            digest,
            chain,
        };
        driver::offline_sign(&device.party, &recovery.party, params).await
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

/// Whether `path` names the root (`m`).
fn path_is_root(path: &str) -> bool {
    client_core::parse_path(path).is_ok_and(|p| p.is_root())
}

/// A refill (or status, with no target) of the active party's pool at `path`.
#[allow(clippy::too_many_arguments)] // the pool's coordinates and the run's settings
async fn refill(
    config: &MpcConfig,
    cosigner: &CosignerClient,
    files: &Arc<PartyFiles>,
    account_id: &str,
    path: &str,
    target: Option<u32>,
    concurrency: u32,
    progress: &Progress,
) -> Result<PresignPoolStatus, MpcError> {
    let settings = Settings {
        gateway_url: config.gateway_url.clone(),
        ca_file: config.ca_file.clone(),
        timeout: Duration::from_secs(config.sign_timeout_secs),
    };
    let job = driver::PoolJob {
        pool: Arc::new(files.pool()),
        account_id,
        path,
        target,
        concurrency,
    };
    driver::refill(cosigner, &files.party, job, &settings, progress).await
}

/// Wallet creation with both user parties in this process: the recovery party is a
/// [`client_core::Join`] of its own on a tokio task, and both shares go to files.
struct LocalCreation<'a> {
    client: &'a MpcClient,
    progress: Progress,
    recovery_key: IdentityKey,
    recovery_primes: Option<PrimeSet>,
    task: Option<tokio::task::JoinHandle<Result<Joined, MpcError>>>,
    settings: Settings,
    /// (path, passphrase) of the device's and the recovery party's files.
    files: [(PathBuf, String); 2],
    label: String,
    created_at_ms: u64,
    /// The wallet id, once the cosigner opened it.
    wallet_id: String,
    /// The recovery party's enrollment, for a wallet created from one.
    recovery_enrollment: Option<client_core::Enrollment>,
    /// The enrollment files to remove once both shares are stored.
    enrollment_files: Vec<PathBuf>,
}

impl Drop for LocalCreation<'_> {
    fn drop(&mut self) {
        // A creation that ends early takes its recovery party with it.
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl LocalCreation<'_> {
    async fn save(
        &self,
        which: usize,
        wallet_id: &str,
        bundle: &mpc_core::keystore::KeyShareBundle,
    ) -> Result<(), MpcError> {
        let (path, pass) = self.files[which].clone();
        let meta = WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: wallet_id.to_string(),
            party_index: bundle.party_index,
            cosigner_url: self.client.config.cosigner_url.clone(),
            label: self.label.clone(),
            created_at_ms: self.created_at_ms,
        };
        let (bundle, fast) = (bundle.clone(), self.client.config.insecure_fast_kdf);
        tokio::task::spawn_blocking(move || save_party_files(&path, &pass, fast, &meta, &bundle))
            .await
            .map_err(|e| MpcError::internal(format!("saving task failed: {e}")))?
    }
}

impl CreateEffects for LocalCreation<'_> {
    async fn recovery_identity(&mut self) -> Result<PublicIdentity, MpcError> {
        Ok(self.recovery_key.public())
    }

    async fn device_primes(&mut self) -> Result<PrimeSet, MpcError> {
        let (device, recovery) = self.client.load_primes(&self.progress).await?;
        self.recovery_primes = Some(recovery);
        Ok(device)
    }

    async fn start_recovery(&mut self, job: RecoveryJob) -> Result<(), MpcError> {
        let at = self.created_at_ms / 1000;
        // A wallet from an enrollment needs no primes (its aux info is ready).
        let params = match &self.recovery_enrollment {
            Some(e) => job.join_params_enrolled(e, at)?,
            None => {
                let primes = self
                    .recovery_primes
                    .take()
                    .ok_or_else(|| MpcError::internal("no recovery primes"))?;
                job.join_params(self.recovery_key.clone(), primes, at)?
            }
        };
        self.wallet_id = job.wallet_id.clone();
        let (settings, progress) = (self.settings.clone(), Arc::clone(&self.progress));
        self.task = Some(tokio::spawn(async move {
            driver::join(params, &settings, &progress).await
        }));
        Ok(())
    }

    async fn await_recovery(&mut self) -> Result<BTreeMap<String, String>, MpcError> {
        let task = self
            .task
            .take()
            .ok_or_else(|| MpcError::internal("the recovery party was not started"))?;
        let joined = task
            .await
            .map_err(|e| MpcError::internal(format!("recovery task failed: {e}")))??;
        // The recovery share is stored first: it is the user's way back.
        let wallet_id = self.wallet_id.clone();
        self.save(1, &wallet_id, &joined.bundle).await?;
        Ok(joined.public_keys)
    }

    async fn persist(&mut self, p: &Persist) -> Result<(), MpcError> {
        self.save(0, p.wallet_id(), p.bundle()).await?;
        // Both shares hold the enrollment's identity and aux info now.
        for f in std::mem::take(&mut self.enrollment_files) {
            if let Err(e) = enrollments::remove_enrollment(&f) {
                tracing::warn!(path = %f.display(), error = %e, "cannot remove a used enrollment");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod passphrase_tests {
    use super::*;

    fn config(dir: &Path, device: &str, recovery: &str) -> MpcConfig {
        let mut c = MpcConfig::new(dir.join("device.json").display().to_string(), device);
        c.recovery_path = Some(dir.join("recovery.json").display().to_string());
        c.recovery_passphrase = Some(recovery.into());
        // Nothing listens here: the check must come before any call.
        c.cosigner_url = "http://127.0.0.1:9".into();
        c
    }

    #[tokio::test]
    async fn weak_passphrases_are_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        for (device, recovery, who) in [
            ("short", "a strong recovery passphrase", "device"),
            (
                "a strong device passphrase",
                "aaaaaaaaaaaaaaaaaa",
                "recovery",
            ),
        ] {
            let client = new_mpc_client(config(dir.path(), device, recovery)).unwrap();
            let e = client
                .create_wallet(1, AccountKind::Independent, String::new(), None)
                .await
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::Config, "{e}");
            assert!(
                e.to_string().contains(&format!("the {who} passphrase")),
                "{e}"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // The explicit override gets past the check (to the unreachable cosigner).
        let mut c = config(dir.path(), "short", "short too");
        c.allow_weak_passphrase = true;
        let e = new_mpc_client(c)
            .unwrap()
            .create_wallet(1, AccountKind::Independent, String::new(), None)
            .await
            .unwrap_err();
        assert_ne!(e.code(), ErrorCode::Config, "{e}");
    }
}
