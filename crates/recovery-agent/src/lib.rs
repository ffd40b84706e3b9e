//! # recovery-agent — the wallet's recovery party (index 2) as a local HTTP service
//!
//! A browser wallet (party 0) cannot keep the user's second share itself: the recovery
//! share belongs on another device. This agent runs there (the user's desktop, or a
//! local process in tests). The page pairs with it (a bearer token), learns its
//! identity, and hands it the rooms the cosigner opened; the agent then runs the
//! recovery party's aux info and one DKG per account over the gateway (`mpc-party`,
//! via [`mpc_client::join_wallet_creation`]) and writes the recovery share exactly like
//! `mpc-client` does (encrypted key-share bundle + `.wallet.json`), so
//! `client --role recovery` can sign with it later.
//!
//! It can also enroll ahead of time (`POST /v1/enrollments`: its aux info alone, stored
//! encrypted under `<data dir>/enrollments/`), so that a later `POST /v1/wallets` with
//! that `enrollment_id` runs the keygens only.
//!
//! The HTTP contract is in `docs/recovery-agent.md` and [`api`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod error;
pub mod identity;
pub mod jobs;
pub mod lifecycle;
mod lifecycle_api;
pub mod primes;
pub mod requests;
pub mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpc_client::{
    bundle_public_keys, join_wallet_creation, save_party_files, AccountKind, AccountRoom,
    Enrollment, JoinAux, JoinRequest, MpcError, ProgressEvent, ProgressListener, RoomInfo,
    WalletMeta, WALLET_META_FORMAT,
};
use mpc_wire::{IdentityKey, PublicIdentity};
use zeroize::Zeroizing;

pub use error::{ApiError, ErrorBody, SetupError};
pub use jobs::{JobState, JobView, Jobs};
pub use primes::PrimeSource;
pub use requests::{
    NewRequest, Outcome, RelaySession, RequestAction, RequestState, RequestView, Requests,
    SignDetails,
};
pub use token::PairingToken;

/// Version reported by `/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The agent's party index.
pub const PARTY_INDEX: u16 = identity::RECOVERY_INDEX;
/// File name of a wallet's recovery share inside `<data dir>/wallets/<wallet id>/`.
pub const SHARE_FILE: &str = "recovery_key_shares.json";
/// File name of the admin token inside the data directory (written at every start,
/// 0600): what `recovery-agent confirm` presents to confirm a page's request.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// How long a page's request waits for the user's confirmation.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(600);

/// Settings of a running agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// Data directory (identity, wallets).
    pub data_dir: PathBuf,
    /// Passphrase of the identity file and of every share file.
    pub passphrase: Zeroizing<String>,
    /// Browser origins allowed to call the API (exact `scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Gateway URL used instead of the one in the rooms.
    pub gateway_url: Option<String>,
    /// A PEM file of extra CA certificates trusted for an `https://` gateway (beside
    /// the web PKI roots).
    pub ca_file: Option<String>,
    /// Weak, fast passphrase hashing (tests only).
    pub insecure_fast_kdf: bool,
    /// Wallet creations running at once at most.
    pub max_jobs: usize,
    /// How long finished jobs stay visible.
    pub job_ttl: Duration,
    /// Deadline of each protocol session.
    pub session_timeout: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("data_dir", &self.data_dir)
            .field("allowed_origins", &self.allowed_origins)
            .field("gateway_url", &self.gateway_url)
            .field("ca_file", &self.ca_file)
            .field("insecure_fast_kdf", &self.insecure_fast_kdf)
            .field("max_jobs", &self.max_jobs)
            .field("job_ttl", &self.job_ttl)
            .field("session_timeout", &self.session_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// Checks an allowed origin: an exact web or browser-extension origin
/// ([`wallet_types::origin::parse_origin`]); no wildcard.
pub fn check_origin(o: &str) -> Result<String, SetupError> {
    if o.trim() == "*" {
        return Err(SetupError::Config(
            "a wildcard origin is not allowed: list the exact origins".into(),
        ));
    }
    wallet_types::origin::parse_origin(o).map_err(|e| SetupError::Config(e.to_string()))
}

/// Checks a gateway URL (`http(s)://...`).
pub fn check_gateway_url(u: &str) -> Result<(), String> {
    check_http_url("gateway", u)
}

/// Checks a server URL (`http(s)://...`, at most 2048 bytes, no whitespace); `what`
/// names it in the error.
pub fn check_http_url(what: &str, u: &str) -> Result<(), String> {
    let u = u.trim();
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048 {
        let shown: String = u.chars().take(100).collect();
        return Err(format!(
            "{what} URL {shown:?} must be http(s)://host[:port][/path]"
        ));
    }
    if u.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("{what} URL contains whitespace"));
    }
    Ok(())
}

/// The running agent's state.
pub struct Agent {
    cfg: AgentConfig,
    identity: IdentityKey,
    token: PairingToken,
    primes: PrimeSource,
    jobs: Jobs,
    admin: PairingToken,
    requests: Requests,
    relay: sign_gateway::Shared,
    relay_secret: Zeroizing<String>,
    relay_stop: tokio::sync::watch::Sender<bool>,
    public_url: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("cfg", &self.cfg)
            .field("identity", &self.identity.public())
            .field("primes", &self.primes)
            .finish_non_exhaustive()
    }
}

/// Where a wallet creation's aux info comes from.
#[derive(Debug, Clone)]
pub enum WalletAux {
    /// Run it in this room (with the agent's primes).
    Run(RoomInfo),
    /// Reuse the agent's enrollment of this id.
    Enrollment(String),
}

/// One enrollment, validated (`POST /v1/enrollments`).
#[derive(Debug, Clone)]
pub struct EnrollJob {
    /// The cosigner's enrollment id (a safe file name).
    pub enrollment_id: String,
    /// Party 0.
    pub device: PublicIdentity,
    /// Party 1.
    pub cosigner: PublicIdentity,
    /// Aux-info room.
    pub aux_info: RoomInfo,
}

/// One wallet creation, validated.
#[derive(Debug, Clone)]
pub struct WalletJob {
    /// The cosigner's wallet id (a safe file name).
    pub wallet_id: String,
    /// Party 0.
    pub device: PublicIdentity,
    /// Party 1.
    pub cosigner: PublicIdentity,
    /// Account kind.
    pub kind: AccountKind,
    /// Aux info: an aux-info room, or an enrollment.
    pub aux: WalletAux,
    /// Keygen rooms.
    pub accounts: Vec<AccountRoom>,
}

impl Agent {
    /// Opens (or creates) the identity in `cfg.data_dir` and builds the agent.
    pub fn open(
        cfg: AgentConfig,
        token: PairingToken,
        primes: PrimeSource,
    ) -> Result<(Arc<Self>, bool), SetupError> {
        if cfg.passphrase.is_empty() {
            return Err(SetupError::Config(
                "the recovery passphrase is empty".into(),
            ));
        }
        if cfg.max_jobs == 0 || cfg.max_jobs > 16 {
            return Err(SetupError::Config("max jobs must be in 1..=16".into()));
        }
        if cfg.max_body_bytes < 1024 || cfg.max_body_bytes > 16 << 20 {
            return Err(SetupError::Config(
                "max body bytes must be in 1024..=16777216".into(),
            ));
        }
        if cfg.session_timeout.is_zero() {
            return Err(SetupError::Config("the session timeout is zero".into()));
        }
        if let Some(u) = &cfg.gateway_url {
            check_gateway_url(u).map_err(SetupError::Config)?;
        }
        std::fs::create_dir_all(cfg.data_dir.join("wallets"))
            .map_err(|e| SetupError::io(&cfg.data_dir, e))?;
        std::fs::create_dir_all(cfg.data_dir.join("enrollments"))
            .map_err(|e| SetupError::io(&cfg.data_dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let (identity, created) = identity::load_or_create(
            &cfg.data_dir.join("identity.key"),
            &cfg.passphrase,
            cfg.insecure_fast_kdf,
        )?;
        let jobs = Jobs::new(cfg.max_jobs, cfg.job_ttl);
        let admin = write_admin_token(&cfg.data_dir.join(ADMIN_TOKEN_FILE))?;
        let requests = Requests::new(CONFIRM_WITHIN, cfg.job_ttl);
        // The relay of signings without the cosigner: rooms in memory, party tokens only,
        // under a secret that lives as long as this process. CORS comes from the agent's
        // own layer (one set of headers).
        let relay_secret = token::generate();
        let (relay_stop, stopped) = tokio::sync::watch::channel(false);
        let relay = sign_gateway::AppState::new(
            gateway_core::GatewayConfig {
                access_secret: Some(relay_secret.to_string()),
                require_party_tokens: true,
                ..gateway_core::GatewayConfig::default()
            },
            stopped,
        );
        Ok((
            Arc::new(Agent {
                cfg,
                identity,
                token,
                primes,
                jobs,
                admin,
                requests,
                relay,
                relay_secret,
                relay_stop,
                public_url: std::sync::OnceLock::new(),
            }),
            created,
        ))
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// The agent's public identity.
    pub fn public_identity(&self) -> PublicIdentity {
        self.identity.public()
    }

    /// The jobs.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The pairing token checker.
    pub fn token(&self) -> &PairingToken {
        &self.token
    }

    /// The admin token checker (the token in [`ADMIN_TOKEN_FILE`]).
    pub fn admin_token(&self) -> &PairingToken {
        &self.admin
    }

    /// The requests awaiting (or past) the user's confirmation.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// Records a page's request to act with the recovery share of a wallet this agent
    /// holds, and tells the user on the agent's side how to confirm it.
    pub fn submit_request(&self, req: NewRequest) -> Result<RequestView, ApiError> {
        if !self.share_path(&req.wallet_id).exists() {
            return Err(ApiError::UnknownWallet(req.wallet_id));
        }
        let v = self.requests.submit(req)?;
        if let Some(sign) = &v.sign {
            tracing::warn!(
                request = %v.request_id,
                wallet = %v.wallet_id,
                origin = v.origin.as_deref().unwrap_or("-"),
                "CONFIRMATION NEEDED: a page asks to SIGN without the cosigner, with wallet {} \
                 account {} at {}: {}; confirm with `recovery-agent confirm {}` (or reject \
                 with `recovery-agent reject {}`) within {} s",
                v.wallet_id,
                sign.account_id,
                sign.path,
                match &sign.message {
                    Some(m) => format!("the message {m:?}"),
                    None => format!(
                        "{} bytes hashed with {} ({}…)",
                        sign.preimage_hex.len() / 2,
                        sign.digest.as_str(),
                        &sign.preimage_hex[..sign.preimage_hex.len().min(64)]
                    ),
                },
                v.request_id,
                v.request_id,
                CONFIRM_WITHIN.as_secs(),
            );
            return Ok(v);
        }
        if let Some(new) = &v.new_device_identity {
            tracing::warn!(
                request = %v.request_id,
                wallet = %v.wallet_id,
                origin = v.origin.as_deref().unwrap_or("-"),
                "CONFIRMATION NEEDED: a page asks to {} wallet {} at {}: the NEW device's \
                 identity starts with {} (compare it with the one the new browser shows); \
                 the old device stops working at once; confirm with `recovery-agent confirm \
                 {}` (or reject with `recovery-agent reject {}`) within {} s",
                v.action.describe(),
                v.wallet_id,
                v.cosigner_url,
                new.get(..16).unwrap_or(new),
                v.request_id,
                v.request_id,
                CONFIRM_WITHIN.as_secs(),
            );
            return Ok(v);
        }
        tracing::warn!(
            request = %v.request_id,
            wallet = %v.wallet_id,
            action = ?v.action,
            cosigner = %v.cosigner_url,
            origin = v.origin.as_deref().unwrap_or("-"),
            "CONFIRMATION NEEDED: a page asks to {} wallet {} at {}; confirm with \
             `recovery-agent confirm {}` (or reject with `recovery-agent reject {}`) \
             within {} s",
            v.action.describe(),
            v.wallet_id,
            v.cosigner_url,
            v.request_id,
            v.request_id,
            CONFIRM_WITHIN.as_secs(),
        );
        Ok(v)
    }

    /// The relay that serves the rooms of signings without the cosigner
    /// (`/v1/relay/...`, the gateway contract).
    pub fn relay(&self) -> &sign_gateway::Shared {
        &self.relay
    }

    /// Ends the relay's open subscriptions (at shutdown).
    pub fn stop_relay(&self) {
        let _ = self.relay_stop.send(true);
    }

    /// Records the URL the agent serves on (`scheme://host:port`), once it listens: the
    /// relay's URL in the rooms it opens is `<url>/v1/relay`.
    pub fn set_public_url(&self, url: String) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_string());
    }

    /// The user confirmed request `id`: run it (in the background) and return its view
    /// (for a signing, with the room the page joins).
    pub fn confirm_request(self: &Arc<Self>, id: &str) -> Result<RequestView, ApiError> {
        let v = self.requests.confirm(id)?;
        tracing::info!(request = %v.request_id, wallet = %v.wallet_id, action = ?v.action, "request confirmed");
        let agent = Arc::clone(self);
        let mut run = v.clone();
        let mine = if v.action == RequestAction::Sign {
            match self.open_sign_room(&v) {
                Ok((device, mine)) => {
                    self.requests.set_session(id, device);
                    Some(mine)
                }
                Err(e) => {
                    self.requests.finish(id, Err(e.body()));
                    return Err(e);
                }
            }
        } else {
            None
        };
        if let Some(room) = &mine {
            run.session = Some(room.clone());
        }
        tokio::spawn(async move {
            let outcome = agent.run_request(&run).await.map_err(|e| {
                tracing::warn!(request = %run.request_id, error = %e, code = e.code().as_str(), "request failed");
                ErrorBody {
                    code: e.code().as_str().to_string(),
                    message: e.to_string(),
                }
            });
            if outcome.is_ok() {
                tracing::info!(request = %run.request_id, wallet = %run.wallet_id, "request done");
            }
            agent.requests.finish(&run.request_id, outcome);
        });
        self.requests.get(id)
    }

    /// Opens the relay room of a confirmed signing: the device's view of it (its token)
    /// and the agent's own (its token, the relay reached on the agent's own URL).
    fn open_sign_room(&self, v: &RequestView) -> Result<(RelaySession, RelaySession), ApiError> {
        let base = self
            .public_url
            .get()
            .ok_or_else(|| ApiError::Internal("the agent's URL is not known yet".into()))?;
        let session_id = mpc_wire::SessionId::random()
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .to_string();
        let room = format!("recovery-sign-{}", v.request_id);
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_add(self.cfg.session_timeout.as_secs());
        let token = |party: u16| {
            gateway_core::issue_party_token(
                self.relay_secret.as_bytes(),
                &room,
                party,
                gateway_core::Access::ReadWrite,
                expiry,
            )
        };
        let session = |room_token: String| RelaySession {
            session_id: session_id.clone(),
            room: room.clone(),
            room_token,
            gateway_url: format!("{base}/v1/relay"),
        };
        Ok((
            session(token(wallet_types::DEVICE)),
            session(token(PARTY_INDEX)),
        ))
    }

    /// A client of the recovery share of `wallet_id` (recovery role).
    fn recovery_client(
        &self,
        wallet_id: &str,
        cosigner_url: &str,
    ) -> Result<mpc_client::MpcClient, MpcError> {
        let share = self.share_path(wallet_id).display().to_string();
        let pass = self.cfg.passphrase.to_string();
        let mut cfg = mpc_client::MpcConfig::new(share.clone(), pass.clone());
        // A signing without the cosigner never calls it; the configuration wants a URL.
        cfg.cosigner_url = if cosigner_url.is_empty() {
            "http://127.0.0.1:9".into()
        } else {
            cosigner_url.to_string()
        };
        cfg.recovery_path = Some(share);
        cfg.recovery_passphrase = Some(pass);
        cfg.role = mpc_client::PartyRole::Recovery;
        cfg.ca_file = self.cfg.ca_file.clone();
        cfg.insecure_fast_kdf = self.cfg.insecure_fast_kdf;
        cfg.request_timeout_secs = self.cfg.session_timeout.as_secs().clamp(1, 60);
        cfg.sign_timeout_secs = self.cfg.session_timeout.as_secs().clamp(1, 86_400);
        mpc_client::new_mpc_client(cfg)
    }

    /// Runs a confirmed request: a control sent to the cosigner, or the agent's half of
    /// a signing in the relay room.
    async fn run_request(&self, req: &RequestView) -> Result<Outcome, MpcError> {
        if matches!(
            req.action,
            RequestAction::Refresh | RequestAction::ReplaceDevice
        ) {
            return self.run_lifecycle(req).await;
        }
        let client = self.recovery_client(&req.wallet_id, &req.cosigner_url)?;
        if let Some(control) = req.action.control(&req.reason) {
            return Ok(Outcome::Controls(client.wallet_control(control).await?));
        }
        let (Some(sign), Some(room)) = (&req.sign, &req.session) else {
            return Err(MpcError::internal(
                "a signing request without its details or room",
            ));
        };
        let preimage = hex::decode(&sign.preimage_hex)
            .map_err(|e| MpcError::input(format!("preimage_hex: {e}")))?;
        let signed = client
            .pair_sign(mpc_client::PairSignParams {
                account_id: sign.account_id.clone(),
                path: sign.path.clone(),
                preimage,
                digest: sign.digest,
                chain: sign.chain,
                room: mpc_client::Room {
                    session_id: room.session_id.clone(),
                    room: room.room.clone(),
                    room_token: room.room_token.clone(),
                    gateway_url: room.gateway_url.clone(),
                },
            })
            .await?;
        Ok(Outcome::Signed(Box::new(signed)))
    }

    /// Where the share of `wallet_id` is (or would be) stored.
    pub fn share_path(&self, wallet_id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("wallets")
            .join(wallet_id)
            .join(SHARE_FILE)
    }

    /// Whether the agent holds files of `wallet_id`.
    pub fn holds(&self, wallet_id: &str) -> bool {
        let p = self.share_path(wallet_id);
        p.exists() || mpc_client::meta_path(&p).exists()
    }

    /// Where the enrollment `enrollment_id` is (or would be) stored.
    pub fn enrollment_path(&self, enrollment_id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("enrollments")
            .join(format!("{enrollment_id}.json"))
    }

    /// Loads the agent's enrollment `id` and checks it was made with these device and
    /// cosigner identities.
    async fn load_enrollment(
        &self,
        id: &str,
        device: PublicIdentity,
        cosigner: PublicIdentity,
    ) -> Result<Enrollment, ApiError> {
        let path = self.enrollment_path(id);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::UnknownEnrollment(id.to_string()))
            }
            Err(e) => return Err(ApiError::Internal(format!("{}: {e}", path.display()))),
        };
        let pass = self.cfg.passphrase.clone();
        let shown = path.display().to_string();
        let e = tokio::task::spawn_blocking(move || Enrollment::decrypt(&text, &pass, &shown))
            .await
            .map_err(|e| ApiError::Internal(format!("loading task failed: {e}")))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if e.enrollment_id != id
            || e.party_index != PARTY_INDEX
            || e.identity.public() != self.identity.public()
        {
            return Err(ApiError::Internal(format!(
                "{} is not this agent's enrollment {id}",
                path.display()
            )));
        }
        if e.device_identity() != Some(device) || e.cosigner_identity() != Some(cosigner) {
            return Err(ApiError::EnrollmentMismatch(id.to_string()));
        }
        Ok(e)
    }

    /// Starts a wallet-creation job; returns its id. For a wallet from an enrollment,
    /// the enrollment is loaded and checked first (404 / 403).
    pub async fn start(self: &Arc<Self>, job: WalletJob) -> Result<String, ApiError> {
        let aux = match &job.aux {
            WalletAux::Run(_) => None,
            WalletAux::Enrollment(id) => {
                Some(self.load_enrollment(id, job.device, job.cosigner).await?)
            }
        };
        let id = self
            .jobs
            .start(&job.wallet_id, || self.holds(&job.wallet_id))?;
        let agent = Arc::clone(self);
        let job_id = id.clone();
        tokio::spawn(async move {
            let wallet = job.wallet_id.clone();
            match agent.run(&job_id, job, aux).await {
                Ok(keys) => {
                    tracing::info!(job = %job_id, wallet = %wallet, "recovery share written");
                    agent.jobs.finish(&job_id, keys);
                }
                Err(e) => {
                    tracing::warn!(job = %job_id, wallet = %wallet, error = %e, "wallet creation failed");
                    agent.jobs.fail(&job_id, job_error(&e));
                }
            }
        });
        Ok(id)
    }

    /// Starts an enrollment job; returns its id.
    pub fn start_enrollment(self: &Arc<Self>, job: EnrollJob) -> Result<String, ApiError> {
        let path = self.enrollment_path(&job.enrollment_id);
        let key = format!("enrollment:{}", job.enrollment_id);
        let id = self
            .jobs
            .start(&key, || path.exists())
            .map_err(|e| match e {
                ApiError::WalletExists(_) => ApiError::EnrollmentExists(job.enrollment_id.clone()),
                other => other,
            })?;
        let agent = Arc::clone(self);
        let job_id = id.clone();
        tokio::spawn(async move {
            let enrollment = job.enrollment_id.clone();
            match agent.run_enrollment(&job_id, job).await {
                Ok(()) => {
                    tracing::info!(job = %job_id, enrollment = %enrollment, "enrollment stored");
                    agent.jobs.finish_enrollment(&job_id);
                }
                Err(e) => {
                    tracing::warn!(job = %job_id, enrollment = %enrollment, error = %e, "enrollment failed");
                    agent.jobs.fail(&job_id, job_error(&e));
                }
            }
        });
        Ok(id)
    }

    /// The agent's primes for one job (progress `primes` 0..10 %).
    async fn primes(
        self: &Arc<Self>,
        job_id: &str,
    ) -> Result<mpc_core::primes::PrimeSet, MpcError> {
        self.jobs.progress(job_id, "primes", 0);
        let (agent, jid) = (Arc::clone(self), job_id.to_string());
        self.primes
            .take(move |k| agent.jobs.progress(&jid, "primes", (k * 10 / 4) as u8))
            .await
            .map_err(|reason| MpcError::Internal { reason })
    }

    async fn run_enrollment(
        self: &Arc<Self>,
        job_id: &str,
        job: EnrollJob,
    ) -> Result<(), MpcError> {
        let listener: Arc<dyn ProgressListener> = Arc::new(JobProgress {
            agent: Arc::clone(self),
            job_id: job_id.to_string(),
            accounts: 0,
            positions: BTreeMap::new(),
            aux_span: (10.0, 85.0),
            keygen_span: (95.0, 0.0),
        });
        let primes = self.primes(job_id).await?;
        let req = JoinRequest {
            me: PARTY_INDEX,
            identity: self.identity.clone(),
            peers: BTreeMap::from([(0, job.device), (1, job.cosigner)]),
            aux: JoinAux::Run {
                room: job.aux_info.clone(),
                primes,
            },
            kind: AccountKind::Hd,
            accounts: Vec::new(),
            gateway_url: self.cfg.gateway_url.clone(),
            ca_file: self.cfg.ca_file.clone(),
            session_timeout: self.cfg.session_timeout,
        };
        let bundle = join_wallet_creation(req, listener).await?;
        self.jobs.progress(job_id, "saving", 96);
        let enrollment = Enrollment::from_bundle(job.enrollment_id.clone(), 0, &bundle)?;
        let path = self.enrollment_path(&job.enrollment_id);
        let (pass, fast) = (self.cfg.passphrase.clone(), self.cfg.insecure_fast_kdf);
        tokio::task::spawn_blocking(move || {
            mpc_client::enrollments::save_enrollment(&path, &pass, fast, &enrollment)
        })
        .await
        .map_err(|e| MpcError::Internal {
            reason: format!("saving task failed: {e}"),
        })?
    }

    async fn run(
        self: &Arc<Self>,
        job_id: &str,
        job: WalletJob,
        enrollment: Option<Enrollment>,
    ) -> Result<BTreeMap<String, String>, MpcError> {
        let accounts = job.accounts.len() as u32;
        let listener: Arc<dyn ProgressListener> = Arc::new(JobProgress {
            agent: Arc::clone(self),
            job_id: job_id.to_string(),
            accounts,
            positions: job
                .accounts
                .iter()
                .enumerate()
                .map(|(k, a)| (a.account_id.clone(), k as u32))
                .collect(),
            aux_span: (10.0, 50.0),
            // From an enrollment: no primes, no aux info; the keygens are the job.
            keygen_span: if enrollment.is_some() {
                (10.0, 85.0)
            } else {
                (60.0, 35.0)
            },
        });
        let aux = match (&job.aux, &enrollment) {
            (_, Some(e)) => JoinAux::Ready(Box::new(e.aux_info.clone())),
            (WalletAux::Run(room), None) => JoinAux::Run {
                room: room.clone(),
                primes: self.primes(job_id).await?,
            },
            (WalletAux::Enrollment(id), None) => {
                return Err(MpcError::internal(format!("enrollment {id} not loaded")))
            }
        };
        let req = JoinRequest {
            me: PARTY_INDEX,
            identity: self.identity.clone(),
            peers: BTreeMap::from([(0, job.device), (1, job.cosigner)]),
            aux,
            kind: job.kind,
            accounts: job.accounts.clone(),
            gateway_url: self.cfg.gateway_url.clone(),
            ca_file: self.cfg.ca_file.clone(),
            session_timeout: self.cfg.session_timeout,
        };
        let bundle = join_wallet_creation(req, listener).await?;
        let keys = bundle_public_keys(&bundle);

        self.jobs.progress(job_id, "saving", 96);
        let path = self.share_path(&job.wallet_id);
        let meta = WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: job.wallet_id.clone(),
            party_index: PARTY_INDEX,
            cosigner_url: String::new(),
            label: "recovery-agent".into(),
            created_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        let pass = self.cfg.passphrase.clone();
        let fast = self.cfg.insecure_fast_kdf;
        let p = path.clone();
        let saved =
            tokio::task::spawn_blocking(move || save_party_files(&p, &pass, fast, &meta, &bundle))
                .await
                .map_err(|e| MpcError::Internal {
                    reason: format!("saving task failed: {e}"),
                })?;
        if let Err(e) = saved {
            if !matches!(e, MpcError::WalletExists { .. }) {
                if let Some(dir) = path.parent() {
                    // Only removes the wallet's directory if it is empty.
                    let _ = std::fs::remove_dir(dir);
                }
            }
            return Err(e);
        }
        // The share holds the enrollment's aux info now.
        if let WalletAux::Enrollment(id) = &job.aux {
            mpc_client::enrollments::remove_enrollment(&self.enrollment_path(id))?;
        }
        Ok(keys)
    }
}

struct JobProgress {
    agent: Arc<Agent>,
    job_id: String,
    accounts: u32,
    /// Position of each account id in the job.
    positions: BTreeMap<String, u32>,
    /// (start, width) in percent of the aux-info session.
    aux_span: (f64, f64),
    /// (start, width) in percent of all the keygens.
    keygen_span: (f64, f64),
}

impl ProgressListener for JobProgress {
    fn on_progress(&self, e: ProgressEvent) {
        let frac = |e: &ProgressEvent| {
            if e.total == 0 {
                0.0
            } else {
                f64::from(e.done.min(e.total)) / f64::from(e.total)
            }
        };
        // Combined: aux info 10..60 %, keygens 60..95 %; an enrollment: aux info
        // 10..95 %; a wallet from an enrollment: keygens 10..95 %.
        let percent = match e.stage.as_str() {
            "aux-info" => self.aux_span.0 + self.aux_span.1 * frac(&e),
            "keygen" => {
                let index = e
                    .account_id
                    .as_deref()
                    .and_then(|a| self.positions.get(a))
                    .copied()
                    .unwrap_or(0);
                self.keygen_span.0
                    + self.keygen_span.1 * (f64::from(index) + frac(&e))
                        / f64::from(self.accounts.max(1))
            }
            _ => return,
        };
        self.agent
            .jobs
            .progress(&self.job_id, &e.stage, percent.clamp(0.0, 99.0) as u8);
    }
}

/// The job error reported for a failed creation.
fn job_error(e: &MpcError) -> ErrorBody {
    let code = match e {
        MpcError::GatewayUnavailable { .. } => "gateway_unavailable",
        MpcError::SessionFailed { .. } => "session_failed",
        MpcError::Timeout { .. } => "timeout",
        MpcError::WalletExists { .. } => "wallet_exists",
        MpcError::Io { .. } => "io_error",
        MpcError::InvalidInput { .. } => "invalid_request",
        MpcError::Config { .. } => "config_error",
        _ => "internal",
    };
    ErrorBody {
        code: code.into(),
        message: e.to_string(),
    }
}

/// Whether `addr` is a loopback address.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Checks a wallet id: 1..=128 characters of `[A-Za-z0-9_-]` (it names a directory).
pub fn check_wallet_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err("wallet_id must have 1..=128 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("wallet_id may only contain letters, digits, '-' and '_'".into());
    }
    Ok(())
}

/// Writes a fresh admin token to `path` (0600, atomically) and returns its checker.
fn write_admin_token(path: &Path) -> Result<PairingToken, SetupError> {
    let t = token::generate();
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(|e| SetupError::io(&tmp, e))?;
        f.write_all(t.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| SetupError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| SetupError::io(path, e))?;
    PairingToken::new(&t)
}

/// Reads a secret file (trimmed), refusing an empty one.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, SetupError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| SetupError::io(path, e))?);
    let t = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string());
    if t.is_empty() {
        return Err(SetupError::Config(format!("{} is empty", path.display())));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_ids() {
        assert_eq!(
            check_origin("http://localhost:5173/").unwrap(),
            "http://localhost:5173"
        );
        assert!(check_origin("https://wallet.example").is_ok());
        assert!(check_origin("chrome-extension://abcdefghijklmnopabcdefghijklmnop").is_ok());
        assert!(check_origin("chrome-extension://abcdef").is_err());
        assert!(check_origin("chrome-extension://*").is_err());
        assert!(check_origin("*").is_err());
        assert!(check_origin("localhost:5173").is_err());
        assert!(check_origin("http://a.example/path").is_err());
        assert!(check_wallet_id("w-1_A").is_ok());
        for bad in ["", "../x", "a/b", "a.b", &"x".repeat(129)] {
            assert!(check_wallet_id(bad).is_err(), "{bad}");
        }
        assert!(check_gateway_url("http://127.0.0.1:8080").is_ok());
        assert!(check_gateway_url("ftp://x").is_err());
        assert!(check_gateway_url("http://a b").is_err());
    }
}
