//! The wallet's client flows (`client-core`) driven on the browser's event loop.
//!
//! `client-core` owns every flow (wallet creation, full signing, the presignature fast
//! path, refills with reconciliation) as values that say which effect comes next; this
//! module performs the effects that belong to wasm (signing and serializing cosigner
//! requests, running protocol sessions over the gateway, the clock) and hands the ones
//! that belong to the platform to a **host** object the TypeScript package passes in:
//! sending the request bytes, IndexedDB, the recovery agent, the prepared primes. The
//! identity secret and the key shares stay in wasm memory: the host only ever sees
//! request bytes, encrypted (or, for WebCrypto protection, to-be-encrypted) bundles and
//! presignature records.
//!
//! ## The host (all methods may return a value or a Promise)
//!
//! | method | when | answer |
//! |---|---|---|
//! | `callCosigner(path, body)` | every cosigner RPC | `{ body }` (response bytes), `{ grpcCode, message, details? }` (the failed call's status; `details` = `grpc-status-details-bin`), or `{ unavailable: reason }` (no answer) |
//! | `onProgress(event)` | optional | `{ phase, round, totalRounds, percent, finished, accountId? }` |
//! | `recoveryIdentity()` | create, enroll | the recovery agent's public identity (hex) |
//! | `primes()` | create, enroll | the device's prime set `{ primes: [p, q, p̂, q̂] }` |
//! | `startRecovery(job)` | create | starts the agent's job (rooms, identities) |
//! | `awaitRecovery()` | create | the agent's public keys by account id |
//! | `persist(wallet)` | create | stores `{ walletId, accounts, passphraseFile }` or `{ …, bundle }` durably |
//! | `startEnrollment(job)` | enroll | starts the agent's enrollment job (`{ enrollmentId, cosignerIdentity, deviceIdentity, recoveryIdentity, auxInfo, expiresAtMs }`) |
//! | `awaitEnrollment()` | enroll | resolves once the agent stored its enrollment |
//! | `persistEnrollment(e)` | enroll | stores `{ enrollmentId, expiresAtMs, passphraseFile }` or `{ …, bytes }` (to encrypt with WebCrypto) durably |
//! | `takePresignature(pool, signers)` | sign | takes the oldest record ONCE (committed): `{ id, plaintext }` or `null` |
//! | `presignatureOutcome(pool, id, outcome)` | sign | `signed` / `unavailable` / `corrupt` / `failed` (best effort) |
//! | `listPresignatures(pool, signers, inFlightMs)` | refill | `{ ids, inFlight }` (oldest first; taken less than `inFlightMs` ago) |
//! | `discardPresignatures(pool, signers, ids)` | refill | how many were removed |
//! | `storePresignature(pool, signers, id, plaintext)` | refill | stored durably |
//!
//! `pool` names one presignature pool ([`client_core::pool_key`]): the account id for
//! an account's root (independent accounts), `accountId@m/44/60/0/0/0` for an HD
//! account's path (a presignature signs at the path it was generated for). Hosts keep
//! the pools apart by this name.
//!
//! A host method that throws (or rejects) ends the flow with that very error.

use std::collections::BTreeMap;
use std::rc::Rc;

use client_core::create::Persist;
use client_core::refill::RefillStep;
use client_core::sign::Discarded;
use client_core::{
    ClientError, CosignerRequest, CreateParams, CreateStep, Party, PresignMode, RemoteError,
    SessionSpec, SignParams, SignStep, Signed, TakenPresignature,
};
use futures_util::StreamExt;
use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use mpc_core::primes::PrimeSet;
use mpc_core::session::Progress;
use mpc_core::SessionOutput;
use mpc_party::PartyError;
use mpc_wire::PublicIdentity;
use serde::{Deserialize, Serialize};
use wallet_types::{AccountKind, DigestKind, ErrorCode, PayloadKind};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use zeroize::Zeroizing;

use crate::api::{self, BundleCore};
use crate::transport::{now_ms, sleep, Gateway, TransportKind};

// ---------------------------------------------------------------------------------
// Errors

/// Why a flow ended: the core's error, or the host's own (passed through unchanged).
pub(crate) enum FlowError {
    Client(ClientError),
    Host(JsValue),
}

impl From<ClientError> for FlowError {
    fn from(e: ClientError) -> Self {
        FlowError::Client(e)
    }
}

pub(crate) type FlowResult<T> = Result<T, FlowError>;

/// A JS `Error` (name `FlowError`) with the wallet's `code` (`docs/errors.md`),
/// `retryable`, and the facts a caller acts on (`rule`, `presignatureId`,
/// `presignature`, `blamed`, `stage`, `sessionId`, `walletRefusal`: `identity_revoked`
/// or `frozen` with `unfreezeAtMs`).
pub fn client_error_to_js(e: &ClientError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name("FlowError");
    let o: &JsValue = err.as_ref();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(o, &k.into(), &v);
    };
    set("code", e.code().as_str().into());
    set("retryable", e.retryable().into());
    if let Some(r) = e.rule() {
        set("rule", r.into());
    }
    match e {
        ClientError::PresignatureUnavailable {
            presignature_id,
            state,
            ..
        } => {
            if let Some(id) = presignature_id {
                set("presignatureId", id.as_str().into());
            }
            if let Some(s) = state {
                set("presignature", s.as_str().into());
            }
        }
        ClientError::SessionFailed {
            stage,
            session_id,
            blamed,
            ..
        } => {
            set("stage", stage.as_str().into());
            set("sessionId", session_id.as_str().into());
            let a = Array::new();
            for b in blamed {
                a.push(&JsValue::from(*b));
            }
            set("blamed", a.into());
        }
        ClientError::Timeout { stage, .. } => set("stage", stage.as_str().into()),
        ClientError::IdentityRevoked { .. } => set("walletRefusal", "identity_revoked".into()),
        ClientError::WalletFrozen { unfreeze_at_ms, .. } => {
            set("walletRefusal", "frozen".into());
            if let Some(t) = unfreeze_at_ms {
                set("unfreezeAtMs", JsValue::from(*t as f64));
            }
        }
        ClientError::EnrollmentUnusable { enrollment_id, .. } => {
            set("enrollmentId", enrollment_id.as_str().into());
            set("enrollmentUnusable", true.into());
        }
        _ => {}
    }
    err.into()
}

impl FlowError {
    fn into_js(self) -> JsValue {
        match self {
            FlowError::Client(e) => client_error_to_js(&e),
            FlowError::Host(v) => v,
        }
    }
}

pub(crate) fn input(reason: impl Into<String>) -> FlowError {
    FlowError::Client(ClientError::input(reason))
}

pub(crate) fn to_js<T: Serialize + ?Sized>(v: &T) -> FlowResult<JsValue> {
    crate::js::js_value(v)
        .map_err(|e| FlowError::Client(ClientError::internal(format!("result: {e}"))))
}

pub(crate) fn from_js<T: serde::de::DeserializeOwned>(what: &str, v: JsValue) -> FlowResult<T> {
    serde_wasm_bindgen::from_value(v).map_err(|e| input(format!("invalid {what}: {e}")))
}

pub(crate) fn flow_promise<F>(f: F) -> Promise
where
    F: std::future::Future<Output = FlowResult<JsValue>> + 'static,
{
    future_to_promise(async move { f.await.map_err(FlowError::into_js) })
}

// ---------------------------------------------------------------------------------
// The host

/// The platform's side of the flows (see the module docs).
#[derive(Clone)]
pub(crate) struct Host(Rc<JsValue>);

impl Host {
    pub(crate) fn new(v: JsValue) -> FlowResult<Self> {
        if !v.is_object() {
            return Err(input("the flow host must be an object"));
        }
        Ok(Host(Rc::new(v)))
    }

    fn method(&self, name: &str) -> FlowResult<Function> {
        Reflect::get(&self.0, &name.into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
            .ok_or_else(|| {
                FlowError::Client(ClientError::internal(format!(
                    "the flow host has no method {name}"
                )))
            })
    }

    /// Calls `name(args…)` and awaits the answer if it is a Promise.
    pub(crate) async fn call(&self, name: &str, args: &[JsValue]) -> FlowResult<JsValue> {
        let f = self.method(name)?;
        let a = Array::new();
        for x in args {
            a.push(x);
        }
        let out = f.apply(&self.0, &a).map_err(FlowError::Host)?;
        match out.dyn_into::<Promise>() {
            Ok(p) => JsFuture::from(p).await.map_err(FlowError::Host),
            Err(v) => Ok(v),
        }
    }

    /// Reports progress; a missing or throwing `onProgress` is ignored.
    fn progress(&self, ev: &ProgressOut) {
        if let Ok(f) = self.method("onProgress") {
            if let Ok(v) = to_js(ev) {
                let _ = f.call1(&self.0, &v);
            }
        }
    }

    /// One cosigner RPC: the signed request's bytes out, the response bytes (or the
    /// decoded failure) back.
    pub(crate) async fn call_cosigner(
        &self,
        req: &CosignerRequest,
    ) -> FlowResult<Result<Vec<u8>, RemoteError>> {
        let body = Uint8Array::from(req.encode_to_vec().as_slice());
        let answer = self
            .call("callCosigner", &[req.path().into(), body.into()])
            .await?;
        let field = |k: &str| Reflect::get(&answer, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let body = field("body");
        if body.is_instance_of::<Uint8Array>() {
            return Ok(Ok(Uint8Array::new(&body).to_vec()));
        }
        if let Some(code) = field("grpcCode").as_f64() {
            let message = field("message").as_string().unwrap_or_default();
            let details = field("details");
            let details = if details.is_instance_of::<Uint8Array>() {
                Uint8Array::new(&details).to_vec()
            } else {
                details.as_string().unwrap_or_default().into_bytes()
            };
            return Ok(Err(RemoteError::from_grpc(code as i32, &message, &details)));
        }
        let reason = field("unavailable")
            .as_string()
            .unwrap_or_else(|| "the cosigner call gave no answer".into());
        Ok(Err(RemoteError::new(
            ErrorCode::CosignerUnavailable,
            reason,
        )))
    }
}

/// Progress of a flow, as the host receives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProgressOut {
    phase: String,
    round: u32,
    total_rounds: u32,
    percent: f64,
    finished: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
}

pub(crate) fn phase(host: &Host, phase: &str, percent: f64, finished: bool) {
    host.progress(&ProgressOut {
        phase: phase.into(),
        round: 0,
        total_rounds: 0,
        percent,
        finished,
        account_id: None,
    });
}

// ---------------------------------------------------------------------------------
// Sessions

/// How this browser runs sessions (the package's `WalletConfig`).
#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionConfig {
    /// Gateway URL to use instead of the one the cosigner announces.
    #[serde(default)]
    gateway_url: Option<String>,
    /// Subscription mechanism.
    #[serde(default)]
    transport: TransportKind,
    /// Deadline of each session (default: 10 min for aux info, 2 min otherwise).
    #[serde(default)]
    session_timeout_ms: Option<f64>,
}

/// Runs this party's side of `spec` over the gateway on the event loop; with `host`,
/// its rounds are reported as progress of the session's stage.
pub(crate) async fn run_spec(
    spec: SessionSpec,
    cfg: &SessionConfig,
    host: Option<&Host>,
) -> Result<SessionOutput, PartyError> {
    let room = spec.room().clone();
    let url = cfg
        .gateway_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or(&room.gateway_url)
        .to_string();
    if url.trim().is_empty() {
        return Err(PartyError::Gateway(
            "the cosigner announced no gateway URL; set gatewayUrl".into(),
        ));
    }
    let gateway = Gateway::new(&url, &room.room, room.token())
        .map_err(|e| PartyError::Gateway(format!("{url}: {}", e.message)))?;
    let timeout_ms =
        cfg.session_timeout_ms
            .filter(|t| *t > 0.0)
            .unwrap_or(if spec.stage() == "aux-info" {
                600_000.0
            } else {
                120_000.0
            });
    let (stage, account) = (spec.stage(), spec.account_id().map(str::to_string));
    let party = spec.open()?;
    let (mut inbox, _subscription) = gateway
        .subscribe(cfg.transport)
        .map_err(|e| PartyError::Gateway(format!("{url}: {}", e.message)))?;
    let host = host.cloned();
    let progress = move |p: Progress| {
        let Some(host) = &host else { return };
        host.progress(&ProgressOut {
            phase: stage.into(),
            round: u32::from(p.round.min(p.total_rounds)),
            total_rounds: u32::from(p.total_rounds),
            percent: f64::from(p.percent()),
            finished: p.finished,
            account_id: account.clone(),
        })
    };
    crate::driver::drive(party, &gateway, &mut inbox, timeout_ms, &progress).await
}

// ---------------------------------------------------------------------------------
// Wallet creation

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateIn {
    accounts: u32,
    kind: AccountKind,
    #[serde(default)]
    label: String,
    /// The operator-issued registration credential (`wmreg1.…`).
    #[serde(default)]
    registration_credential: Option<String>,
    /// Encrypt the bundle with this passphrase (Argon2id keystore) before `persist`;
    /// without one the host receives the plaintext bundle to encrypt with WebCrypto.
    #[serde(default)]
    passphrase: Option<String>,
    #[serde(default)]
    insecure_fast_kdf: bool,
    /// Create from this stored device enrollment (keygens only): opened with
    /// `passphrase` (passphrase file) or from the host's decrypted bytes.
    #[serde(default)]
    enrollment: Option<StoredEnrollmentIn>,
    #[serde(flatten)]
    session: SessionConfig,
}

/// A stored enrollment as the host hands it back: the passphrase file (opened with the
/// flow's `passphrase`) or the plaintext bytes the host decrypted with WebCrypto.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEnrollmentIn {
    #[serde(default)]
    passphrase_file: Option<String>,
    #[serde(default, with = "serde_bytes")]
    bytes: Option<Vec<u8>>,
}

/// The plaintext form of an enrollment handed to the host for WebCrypto encryption
/// (never stored in clear by the host).
#[derive(Serialize, Deserialize)]
struct EnrollmentBytes {
    format: String,
    enrollment_id: String,
    expires_at_ms: u64,
    bundle: mpc_core::keystore::KeyShareBundle,
}

const ENROLLMENT_BYTES_FORMAT: &str = "wallet-mpc-web/enrollment-bytes/v1";

/// Opens a stored enrollment (see [`StoredEnrollmentIn`]).
fn open_enrollment(
    stored: StoredEnrollmentIn,
    passphrase: Option<&str>,
) -> FlowResult<client_core::Enrollment> {
    match (stored.passphrase_file, stored.bytes) {
        (Some(file), None) => {
            let pass =
                passphrase.ok_or_else(|| input("a passphrase enrollment needs the passphrase"))?;
            Ok(client_core::Enrollment::decrypt(&file, pass, "enrollment")?)
        }
        (None, Some(bytes)) => {
            let bytes = Zeroizing::new(bytes);
            let e: EnrollmentBytes = serde_json::from_slice(&bytes).map_err(|e| {
                FlowError::Client(ClientError::corrupt("enrollment", e.to_string()))
            })?;
            if e.format != ENROLLMENT_BYTES_FORMAT {
                return Err(FlowError::Client(ClientError::corrupt(
                    "enrollment",
                    "not an enrollment",
                )));
            }
            Ok(client_core::Enrollment::from_bundle(
                e.enrollment_id,
                e.expires_at_ms,
                &e.bundle,
            )?)
        }
        _ => Err(input(
            "the enrollment needs exactly one of passphraseFile and bytes",
        )),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomOut {
    session_id: String,
    room: String,
    room_token: String,
    gateway_url: String,
}

impl From<&client_core::session::Room> for RoomOut {
    fn from(r: &client_core::session::Room) -> Self {
        RoomOut {
            session_id: r.session_id.clone(),
            room: r.room.clone(),
            room_token: r.room_token.clone(),
            gateway_url: r.gateway_url.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountRoomOut {
    account_id: String,
    keygen: RoomOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecoveryJobOut {
    wallet_id: String,
    cosigner_identity: String,
    device_identity: String,
    recovery_identity: String,
    kind: AccountKind,
    /// `None` for a wallet created from an enrollment (`enrollment_id` set).
    #[serde(skip_serializing_if = "Option::is_none")]
    aux_info: Option<RoomOut>,
    accounts: Vec<AccountRoomOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedOut {
    wallet_id: String,
    cosigner_identity: String,
    accounts: Vec<api::AccountInfo>,
    committed: bool,
    timings: CreateTimings,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateTimings {
    aux_info_ms: u64,
    keygen_ms: u64,
    confirm_ms: u64,
    total_ms: u64,
}

pub(crate) fn elapsed(since: f64) -> u64 {
    (now_ms() - since).max(0.0) as u64
}

/// An empty passphrase is refused (`invalid_input`) before any work; none means the
/// host encrypts with its WebCrypto key.
pub(crate) fn check_passphrase(passphrase: Option<&str>) -> FlowResult<()> {
    if passphrase.is_some_and(str::is_empty) {
        return Err(input("the passphrase is empty"));
    }
    Ok(())
}

/// Puts `bundle` on `out` for the host to store: `passphraseFile`, encrypted here with
/// `passphrase` (Argon2id keystore), or `bundle`, the plaintext bytes for the host's
/// WebCrypto key (wiped here once copied).
pub(crate) fn put_bundle(
    out: &js_sys::Object,
    bundle: &mpc_core::keystore::KeyShareBundle,
    passphrase: Option<&str>,
    insecure_fast_kdf: bool,
) -> FlowResult<()> {
    let internal = |e: crate::ApiError| FlowError::Client(ClientError::internal(e.message));
    let (key, value): (&str, JsValue) = match passphrase {
        Some(pass) => (
            "passphraseFile",
            api::encrypt_bundle(bundle, pass, insecure_fast_kdf)
                .map_err(internal)?
                .into(),
        ),
        None => {
            let bytes = Zeroizing::new(api::to_json_bytes("bundle", bundle).map_err(internal)?);
            ("bundle", Uint8Array::from(bytes.as_slice()).into())
        }
    };
    let _ = Reflect::set(out, &key.into(), &value);
    Ok(())
}

/// Stores the new bundle through the host: encrypted here with the passphrase, or in
/// plaintext for the host's WebCrypto key. Returns the accounts (with chain codes).
async fn persist(
    host: &Host,
    p: &Persist,
    passphrase: Option<&str>,
    insecure_fast_kdf: bool,
) -> FlowResult<Vec<api::AccountInfo>> {
    let bundle = p.bundle();
    let accounts: Vec<api::AccountInfo> = bundle
        .accounts
        .values()
        .map(api::AccountInfo::from)
        .collect();
    let out = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| {
        let _ = Reflect::set(&out, &k.into(), v);
    };
    set("walletId", &p.wallet_id().into());
    set("accounts", &to_js(&accounts)?);
    put_bundle(&out, bundle, passphrase, insecure_fast_kdf)?;
    host.call("persist", &[out.into()]).await?;
    Ok(accounts)
}

async fn create_flow(host: Host, params: CreateIn) -> FlowResult<JsValue> {
    let started = now_ms();
    check_passphrase(params.passphrase.as_deref())?;
    let mut timings = CreateTimings::default();
    let mut accounts_out: Vec<api::AccountInfo> = Vec::new();
    let mut stage_started = now_ms();
    let create = CreateParams {
        accounts: params.accounts,
        kind: params.kind,
        label: params.label.clone(),
        registration_credential: params.registration_credential.clone(),
    };
    let mut step = match params.enrollment {
        Some(stored) => {
            let enrollment = open_enrollment(stored, params.passphrase.as_deref())?;
            client_core::Create::from_enrollment(create, enrollment)?
        }
        None => client_core::Create::start(create)?,
    };
    loop {
        step = match step {
            CreateStep::CallCosigner(call) => {
                let method = call.method();
                if method == client_core::CosignerMethod::ConfirmWallet {
                    phase(&host, "confirm", 0.0, false);
                    stage_started = now_ms();
                }
                let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                let reply = cosigner_reply(&host, method, &req).await?;
                let next = awaiting.reply_bytes(reply)?;
                if method == client_core::CosignerMethod::ConfirmWallet {
                    timings.confirm_ms += elapsed(stage_started);
                }
                next
            }
            CreateStep::RecoveryIdentity(r) => r.provide(recovery_identity(&host).await?)?,
            CreateStep::Primes(p) => p.provide(host_primes(&host).await?)?,
            CreateStep::StartRecovery(s) => {
                let job = s.job();
                let out = RecoveryJobOut {
                    wallet_id: job.wallet_id.clone(),
                    cosigner_identity: job.cosigner_identity.to_string(),
                    device_identity: job.device_identity.to_string(),
                    recovery_identity: job.recovery_identity.to_string(),
                    kind: job.kind,
                    aux_info: job.enrollment_id.is_none().then(|| (&job.aux_info).into()),
                    enrollment_id: job.enrollment_id.clone(),
                    accounts: job
                        .accounts
                        .iter()
                        .map(|a| AccountRoomOut {
                            account_id: a.account_id.clone(),
                            keygen: (&a.keygen).into(),
                        })
                        .collect(),
                };
                host.call("startRecovery", &[to_js(&out)?]).await?;
                stage_started = now_ms();
                s.started()?
            }
            CreateStep::RunSession(run) => {
                let (spec, running) = run.start();
                let aux = spec.stage() == "aux-info";
                let (out, ms) = timed_session(spec, &params.session, &host).await;
                if aux {
                    timings.aux_info_ms += ms;
                } else {
                    timings.keygen_ms += ms;
                }
                running.finished(out)?
            }
            CreateStep::AwaitRecovery(a) => {
                let (keys, _) = await_agent(&host, "awaitRecovery", |v| {
                    from_js::<BTreeMap<String, String>>("recovery public keys", v)
                })
                .await?;
                a.finished(keys)?
            }
            CreateStep::Persist(p) => {
                phase(&host, "store", 0.0, false);
                accounts_out = persist(
                    &host,
                    &p,
                    params.passphrase.as_deref(),
                    params.insecure_fast_kdf,
                )
                .await?;
                phase(&host, "store", 100.0, true);
                p.persisted()?
            }
            CreateStep::Wait(w) => {
                sleep(i32::try_from(w.millis()).unwrap_or(i32::MAX)).await;
                w.done()?
            }
            CreateStep::Done(created) => {
                phase(&host, "confirm", 100.0, true);
                timings.total_ms = elapsed(started);
                return to_js(&CreatedOut {
                    wallet_id: created.wallet_id,
                    cosigner_identity: created.cosigner_identity,
                    accounts: accounts_out,
                    committed: created.committed,
                    timings,
                });
            }
        };
    }
}

/// Creates a wallet as the device with `client-core`'s flow: `host` performs the
/// platform effects (module docs), `params` is `{ accounts, kind, label?, passphrase?,
/// insecureFastKdf?, enrollment?, gatewayUrl?, transport?, sessionTimeoutMs? }`; with
/// `enrollment` (`{ passphraseFile }` opened with `passphrase`, or `{ bytes }` the host
/// decrypted) the wallet is created from that device enrollment (`Create::from_enrollment`:
/// no primes, no aux info, only the keygens; `startRecovery`'s job then has
/// `enrollmentId` and no `auxInfo`), and an enrollment the cosigner no longer accepts
/// rejects with `enrollmentUnusable: true`. Resolves to
/// `{ walletId, cosignerIdentity, accounts, committed, timings }`; rejects with a
/// `FlowError` (`code` from `docs/errors.md`) or the host's own error.
#[wasm_bindgen(js_name = createWallet)]
pub fn create_wallet(host: JsValue, params: JsValue) -> Promise {
    flow_promise(async move {
        let host = Host::new(host)?;
        let params: CreateIn = from_js("create parameters", params)?;
        create_flow(host, params).await
    })
}

// ---------------------------------------------------------------------------------
// Device enrollment (the aux info ahead of wallet creation)

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnrollIn {
    /// The operator-issued registration credential (`wmreg1.…`).
    #[serde(default)]
    registration_credential: Option<String>,
    /// Encrypt the enrollment with this passphrase before `persistEnrollment`; without
    /// one the host receives the plaintext bytes to encrypt with WebCrypto.
    #[serde(default)]
    passphrase: Option<String>,
    #[serde(default)]
    insecure_fast_kdf: bool,
    #[serde(flatten)]
    session: SessionConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnrollJobOut {
    enrollment_id: String,
    cosigner_identity: String,
    device_identity: String,
    recovery_identity: String,
    aux_info: RoomOut,
    expires_at_ms: u64,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct EnrollTimings {
    aux_info_ms: u64,
    agent_ms: u64,
    total_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnrolledOut {
    enrollment_id: String,
    expires_at_ms: u64,
    timings: EnrollTimings,
}

/// Hands the device's enrollment to the host to store: encrypted here with the
/// passphrase, or as plaintext bytes for the host's WebCrypto key.
async fn persist_enrollment(
    host: &Host,
    e: &client_core::Enrollment,
    passphrase: Option<&str>,
    insecure_fast_kdf: bool,
) -> FlowResult<()> {
    let out = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| {
        let _ = Reflect::set(&out, &k.into(), v);
    };
    set("enrollmentId", &e.enrollment_id.as_str().into());
    set("expiresAtMs", &JsValue::from(e.expires_at_ms as f64));
    match passphrase {
        Some(pass) => {
            let kdf = if insecure_fast_kdf {
                mpc_core::keystore::KdfParams::insecure_for_tests()
            } else {
                mpc_core::keystore::KdfParams::default()
            };
            set("passphraseFile", &e.encrypt(pass, kdf)?.into());
        }
        None => {
            let repr = EnrollmentBytes {
                format: ENROLLMENT_BYTES_FORMAT.into(),
                enrollment_id: e.enrollment_id.clone(),
                expires_at_ms: e.expires_at_ms,
                bundle: e.to_bundle(),
            };
            let internal = |e: crate::ApiError| FlowError::Client(ClientError::internal(e.message));
            let bytes = Zeroizing::new(api::to_json_bytes("enrollment", &repr).map_err(internal)?);
            set("bytes", &Uint8Array::from(bytes.as_slice()).into());
        }
    }
    host.call("persistEnrollment", &[out.into()]).await?;
    Ok(())
}

// The step handlers the `Create` and `Enroll` driver loops share.

/// One cosigner RPC of a flow: the host's answer; the health check reports "connect".
async fn cosigner_reply(
    host: &Host,
    method: client_core::CosignerMethod,
    req: &CosignerRequest,
) -> FlowResult<Result<Vec<u8>, RemoteError>> {
    let reply = host.call_cosigner(req).await?;
    if method == client_core::CosignerMethod::Health {
        phase(host, "connect", 50.0, false);
    }
    Ok(reply)
}

/// The recovery agent's identity from the host (`recoveryIdentity()`, a hex string).
async fn recovery_identity(host: &Host) -> FlowResult<PublicIdentity> {
    let hex = host.call("recoveryIdentity", &[]).await?;
    let hex = hex
        .as_string()
        .ok_or_else(|| input("recoveryIdentity() must give a hex string"))?;
    let id = hex
        .trim()
        .parse::<PublicIdentity>()
        .map_err(|e| input(format!("the recovery agent's identity: {e}")))?;
    phase(host, "connect", 100.0, true);
    Ok(id)
}

/// The device's prime set from the host (`primes()`).
async fn host_primes(host: &Host) -> FlowResult<PrimeSet> {
    from_js("prime set", host.call("primes", &[]).await?)
}

/// Runs a session (`run_spec` with progress) and measures it in milliseconds.
async fn timed_session(
    spec: SessionSpec,
    cfg: &SessionConfig,
    host: &Host,
) -> (Result<SessionOutput, PartyError>, u64) {
    let t = now_ms();
    let out = run_spec(spec, cfg, Some(host)).await;
    (out, elapsed(t))
}

/// Awaits the recovery agent's job through the host's `method`, between the "agent"
/// phase's start and end: its answer as `parse` reads it, and the wait in milliseconds.
async fn await_agent<T>(
    host: &Host,
    method: &str,
    parse: impl FnOnce(JsValue) -> FlowResult<T>,
) -> FlowResult<(T, u64)> {
    phase(host, "agent", 0.0, false);
    let t = now_ms();
    let answer = host.call(method, &[]).await?;
    let ms = elapsed(t);
    let out = parse(answer)?;
    phase(host, "agent", 100.0, true);
    Ok((out, ms))
}

async fn enroll_flow(host: Host, params: EnrollIn) -> FlowResult<JsValue> {
    use client_core::EnrollStep;
    let started = now_ms();
    check_passphrase(params.passphrase.as_deref())?;
    let mut timings = EnrollTimings::default();
    let mut step = client_core::Enroll::start(client_core::EnrollParams {
        registration_credential: params.registration_credential.clone(),
    })?;
    loop {
        step = match step {
            EnrollStep::CallCosigner(call) => {
                let method = call.method();
                let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                let reply = cosigner_reply(&host, method, &req).await?;
                awaiting.reply_bytes(reply)?
            }
            EnrollStep::RecoveryIdentity(r) => r.provide(recovery_identity(&host).await?)?,
            EnrollStep::Primes(p) => p.provide(host_primes(&host).await?)?,
            EnrollStep::StartRecovery(s) => {
                let job = s.job();
                let out = EnrollJobOut {
                    enrollment_id: job.enrollment_id.clone(),
                    cosigner_identity: job.cosigner_identity.to_string(),
                    device_identity: job.device_identity.to_string(),
                    recovery_identity: job.recovery_identity.to_string(),
                    aux_info: (&job.aux_info).into(),
                    expires_at_ms: job.expires_at_ms,
                };
                host.call("startEnrollment", &[to_js(&out)?]).await?;
                s.started()?
            }
            EnrollStep::RunSession(run) => {
                let (spec, running) = run.start();
                let (out, ms) = timed_session(spec, &params.session, &host).await;
                timings.aux_info_ms += ms;
                running.finished(out)?
            }
            EnrollStep::AwaitRecovery(a) => {
                let ((), ms) = await_agent(&host, "awaitEnrollment", |_| Ok(())).await?;
                timings.agent_ms = ms;
                a.finished()?
            }
            EnrollStep::Persist(p) => {
                phase(&host, "store", 0.0, false);
                persist_enrollment(
                    &host,
                    p.enrollment(),
                    params.passphrase.as_deref(),
                    params.insecure_fast_kdf,
                )
                .await?;
                phase(&host, "store", 100.0, true);
                p.persisted()?
            }
            EnrollStep::Done(e) => {
                timings.total_ms = elapsed(started);
                return to_js(&EnrolledOut {
                    enrollment_id: e.enrollment_id.clone(),
                    expires_at_ms: e.expires_at_ms,
                    timings,
                });
            }
        };
    }
}

/// Enrolls the device (its aux info ahead of wallet creation) with `client-core`'s
/// `Enroll` flow: `host` performs the platform effects (module docs: `callCosigner`,
/// `recoveryIdentity`, `primes`, `startEnrollment`, `awaitEnrollment`,
/// `persistEnrollment`, `onProgress`), `params` is `{ registrationCredential?,
/// passphrase?, insecureFastKdf?, gatewayUrl?, transport?, sessionTimeoutMs? }`. The
/// enrollment (identity secret, Paillier keys) leaves wasm only encrypted under the
/// passphrase, or as bytes for the host's WebCrypto key. Resolves to `{ enrollmentId,
/// expiresAtMs, timings: { auxInfoMs, agentMs, totalMs } }`; rejects with a `FlowError`
/// or the host's own error. `createWallet`'s `enrollment` parameter uses it.
#[wasm_bindgen(js_name = enrollDevice)]
pub fn enroll_device(host: JsValue, params: JsValue) -> Promise {
    flow_promise(async move {
        let host = Host::new(host)?;
        let params: EnrollIn = from_js("enroll parameters", params)?;
        enroll_flow(host, params).await
    })
}

// ---------------------------------------------------------------------------------
// A stored party: signing and presignature pools

/// A user party of a stored wallet, opened in wasm: its key shares and identity key
/// never leave this object (there is no getter for them).
#[wasm_bindgen]
pub struct WalletParty {
    pub(crate) party: Party,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn {
    account_id: String,
    #[serde(default)]
    derivation_path: String,
    #[serde(with = "serde_bytes")]
    preimage: Vec<u8>,
    digest: String,
    payload_kind: PayloadKind,
    /// EIP-712 only: the typed data's JSON, which the cosigner receives in place of
    /// the preimage (the page derives the preimage with viem; the cosigner derives its
    /// own with alloy and the digests must agree).
    #[serde(default, with = "serde_bytes")]
    cosigner_payload: Option<Vec<u8>>,
    #[serde(default)]
    presign: PresignMode,
    /// `bitcoin_psbt_input` only: which input of the PSBT (`cosigner_payload`) this is.
    #[serde(default)]
    bitcoin: Option<BitcoinIn>,
    #[serde(flatten)]
    session: SessionConfig,
}

/// The PSBT input a `bitcoin_psbt_input` signing signs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BitcoinIn {
    input_index: u32,
    /// `mainnet` (or `bitcoin`), `testnet`, `signet`, `regtest`.
    network: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedOut {
    account_id: String,
    derivation_path: String,
    r: String,
    s: String,
    y_parity: u8,
    rsv: String,
    der: String,
    digest: String,
    public_key: String,
    ethereum_address: String,
    signers: Vec<u16>,
    request_id: String,
    session_id: String,
    presigned: bool,
    elapsed_ms: u64,
    fast_path: FastPathOut,
}

impl SignedOut {
    fn new(r: client_core::SignedResult, elapsed_ms: f64, fast_path: FastPathOut) -> Self {
        SignedOut {
            account_id: r.account_id,
            derivation_path: r.derivation_path,
            r: r.r,
            s: r.s,
            y_parity: r.y_parity,
            rsv: r.rsv,
            der: r.der,
            digest: r.digest,
            public_key: r.public_key,
            ethereum_address: r.ethereum_address,
            signers: r.signers,
            request_id: r.request_id,
            session_id: r.session_id,
            presigned: r.presigned,
            elapsed_ms: elapsed_ms.max(0.0) as u64,
            fast_path,
        }
    }
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct FastPathOut {
    tried: bool,
    empty: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<String>,
    /// `[id, "corrupt" | "unknown" | "used"]`, in order.
    discarded: Vec<(String, &'static str)>,
    /// The pooled signature's online time, ms (fast path only).
    #[serde(skip_serializing_if = "Option::is_none")]
    timings: Option<FastTimings>,
}

#[derive(Serialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct FastTimings {
    /// The host's take-once (IndexedDB commit and decryption).
    take_ms: f64,
    /// The `SignWithPresignature` round trip.
    rpc_ms: f64,
    /// wasm: this device's partial, the request signature, combining and verifying.
    compute_ms: f64,
    /// All of it.
    total_ms: f64,
}

fn discarded_name(d: Discarded) -> &'static str {
    match d {
        Discarded::Unreadable => "corrupt",
        Discarded::Unknown => "unknown",
        Discarded::Used => "used",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefillIn {
    account_id: String,
    /// The pool's derivation path (`m`, the default: an independent account's root; a
    /// child path for an HD account).
    #[serde(default = "root_path")]
    derivation_path: String,
    /// `None`: only report the status.
    #[serde(default)]
    target: Option<u32>,
    #[serde(default = "one")]
    concurrency: u32,
    #[serde(flatten)]
    session: SessionConfig,
}

fn one() -> u32 {
    1
}

fn root_path() -> String {
    "m".into()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolOut {
    account_id: String,
    signers: Vec<u16>,
    local: u32,
    cosigner: Option<u32>,
    usable: Option<u32>,
    cosigner_running: u32,
    cosigner_cap: u32,
    generated: u32,
    failed: u32,
    discarded: u32,
    elapsed_ms: u64,
}

/// The message of a thrown JS value (an `Error`'s, or the value as text).
fn js_message(v: &JsValue) -> String {
    v.as_string().unwrap_or_else(|| {
        js_sys::Error::from(v.clone())
            .message()
            .as_string()
            .unwrap_or_default()
    })
}

fn u16_array(v: &[u16]) -> JsValue {
    let a = Array::new();
    for x in v {
        a.push(&JsValue::from(*x));
    }
    a.into()
}

fn str_array(v: &[String]) -> JsValue {
    let a = Array::new();
    for x in v {
        a.push(&JsValue::from(x.as_str()));
    }
    a.into()
}

/// The presignature taken by a signing and what became of it, for the host's tombstone
/// (best effort: a failing host call is ignored).
async fn report_outcome(host: &Host, account: &str, id: &str, outcome: &str) {
    let _ = host
        .call(
            "presignatureOutcome",
            &[account.into(), id.into(), outcome.into()],
        )
        .await;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ControlIn {
    action: String,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlsOut {
    frozen: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    frozen_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unfreeze_at_ms: Option<u64>,
    revoked_parties: Vec<u16>,
}

async fn control_flow(host: Host, party: Party, params: ControlIn) -> FlowResult<JsValue> {
    use client_core::{ControlAction, ControlStep};
    let action = match params.action.as_str() {
        "status" => ControlAction::Status,
        "freeze" => ControlAction::Freeze {
            reason: params.reason,
        },
        "unfreeze" => ControlAction::Unfreeze,
        "revokeDevice" => ControlAction::RevokeDevice {
            reason: params.reason,
        },
        other => {
            return Err(input(format!(
                "unknown wallet control {other:?} (status, freeze, unfreeze, revokeDevice)"
            )))
        }
    };
    let mut step = client_core::Control::start(&party, action)?;
    loop {
        step = match step {
            ControlStep::CallCosigner(call) => {
                let method = call.method();
                let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                let reply = cosigner_reply(&host, method, &req).await?;
                awaiting.reply_bytes(reply)?
            }
            ControlStep::Done(c) => {
                return to_js(&ControlsOut {
                    frozen: c.frozen,
                    frozen_at_ms: c.frozen_at_ms,
                    unfreeze_at_ms: c.unfreeze_at_ms,
                    revoked_parties: c.revoked_parties,
                })
            }
        };
    }
}

async fn sign_flow(host: Host, party: Party, params: SignIn) -> FlowResult<JsValue> {
    let started = now_ms();
    let digest = DigestKind::parse(&params.digest)
        .ok_or_else(|| input(format!("unknown digest {:?}", params.digest)))?;
    let account_id = client_core::parse_path(&params.derivation_path)
        .map(|p| client_core::pool_key(&params.account_id, &p))
        .unwrap_or_else(|_| params.account_id.clone());
    let bitcoin = match &params.bitcoin {
        None => None,
        Some(b) => Some(client_core::BitcoinInput {
            input_index: b.input_index,
            network: crate::bitcoin::parse_network(Some(&b.network))
                .map_err(|e| input(e.message))?
                .wire_name()
                .into(),
        }),
    };
    let mut step = client_core::Sign::start_with(
        &party,
        SignParams {
            account_id: params.account_id.clone(),
            path: params.derivation_path.clone(),
            preimage: params.preimage.clone(),
            digest,
            payload: params.payload_kind,
            cosigner_payload: params.cosigner_payload.clone(),
            chain: client_core::ChainStyle::Legacy,
            presign: params.presign,
        },
        bitcoin,
    )?;
    phase(&host, "connect", 0.0, false);
    // Presignatures taken by this signature whose outcome is not reported yet.
    let mut taken: Vec<String> = Vec::new();
    let mut fast = FastTimings::default();
    let out: FlowResult<Signed> = async {
        loop {
            step = match step {
                SignStep::TakePresignature(take) => {
                    let t = now_ms();
                    let answer = host
                        .call(
                            "takePresignature",
                            &[take.pool().into(), u16_array(take.signers())],
                        )
                        .await?;
                    fast.take_ms += now_ms() - t;
                    let got = if answer.is_null() || answer.is_undefined() {
                        None
                    } else {
                        let id = Reflect::get(&answer, &"id".into())
                            .ok()
                            .and_then(|v| v.as_string())
                            .ok_or_else(|| input("takePresignature: no id"))?;
                        let pt = Reflect::get(&answer, &"plaintext".into())
                            .unwrap_or(JsValue::UNDEFINED);
                        let plaintext = if pt.is_instance_of::<Uint8Array>() {
                            let arr = Uint8Array::new(&pt);
                            let v = Zeroizing::new(arr.to_vec());
                            arr.fill(0, 0, arr.length());
                            v
                        } else {
                            Zeroizing::new(Vec::new())
                        };
                        taken.push(id.clone());
                        Some(TakenPresignature { id, plaintext })
                    };
                    take.taken(got)?
                }
                SignStep::CallCosigner(call) => {
                    let method = call.method();
                    let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                    let t = now_ms();
                    let reply = host.call_cosigner(&req).await?;
                    if method == client_core::CosignerMethod::SignWithPresignature {
                        fast.rpc_ms += now_ms() - t;
                    } else {
                        phase(&host, "connect", 100.0, true);
                    }
                    awaiting.reply_bytes(reply)?
                }
                SignStep::RunSession(run) => {
                    let (spec, running) = run.start();
                    running.finished(run_spec(spec, &params.session, Some(&host)).await)?
                }
                SignStep::Done(signed) => return Ok(signed),
            };
        }
    }
    .await;
    // The tombstones: what became of every presignature this signature took.
    let fast_path = match &out {
        Ok(s) => Some(&s.fast_path),
        Err(_) => None,
    };
    for id in &taken {
        let outcome = match fast_path {
            Some(f) if f.used.as_deref() == Some(id.as_str()) => "signed",
            Some(f) => match f.discarded.iter().find(|(d, _)| d == id) {
                Some((_, Discarded::Unreadable)) => "corrupt",
                Some(_) => "unavailable",
                None => "failed",
            },
            None => "failed",
        };
        report_outcome(&host, &account_id, id, outcome).await;
    }
    let signed = out?;
    let total = now_ms() - started;
    let r = signed.result;
    let presigned = r.presigned;
    phase(&host, "sign", 100.0, true);
    to_js(&SignedOut::new(
        r,
        total,
        FastPathOut {
            tried: signed.fast_path.tried,
            empty: signed.fast_path.empty,
            used: signed.fast_path.used.clone(),
            discarded: signed
                .fast_path
                .discarded
                .iter()
                .map(|(id, d)| (id.clone(), discarded_name(*d)))
                .collect(),
            timings: presigned.then(|| FastTimings {
                compute_ms: (total - fast.take_ms - fast.rpc_ms).max(0.0),
                total_ms: total,
                ..fast
            }),
        },
    ))
}

/// A room as the recovery agent describes it (camelCase from the page).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomIn {
    session_id: String,
    room: String,
    #[serde(default)]
    room_token: String,
    gateway_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairSignIn {
    account_id: String,
    #[serde(default)]
    derivation_path: String,
    #[serde(with = "serde_bytes")]
    preimage: Vec<u8>,
    digest: String,
    room: RoomIn,
    #[serde(default)]
    transport: TransportKind,
    #[serde(default)]
    session_timeout_ms: Option<f64>,
}

async fn pair_flow(host: Host, party: Party, params: PairSignIn) -> FlowResult<JsValue> {
    let started = now_ms();
    let digest = DigestKind::parse(&params.digest)
        .ok_or_else(|| input(format!("unknown digest {:?}", params.digest)))?;
    // The relay is the agent's: the configuration's gateway override is not for it.
    let session = SessionConfig {
        gateway_url: None,
        transport: params.transport,
        session_timeout_ms: params.session_timeout_ms,
    };
    let mut step = client_core::PairSign::start(
        &party,
        client_core::PairSignParams {
            account_id: params.account_id,
            path: params.derivation_path,
            preimage: params.preimage,
            digest,
            chain: client_core::ChainStyle::Legacy,
            room: client_core::Room {
                session_id: params.room.session_id,
                room: params.room.room,
                room_token: params.room.room_token,
                gateway_url: params.room.gateway_url,
            },
        },
    )?;
    let r = loop {
        step = match step {
            client_core::PairStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, &session, Some(&host)).await)?
            }
            client_core::PairStep::Done(r) => break *r,
        };
    };
    phase(&host, "sign", 100.0, true);
    to_js(&SignedOut::new(
        r,
        now_ms() - started,
        FastPathOut::default(),
    ))
}

async fn refill_flow(host: Host, party: Party, params: RefillIn) -> FlowResult<JsValue> {
    let started = now_ms();
    let mut step = match params.target {
        Some(t) => {
            client_core::Refill::start_at(&party, &params.account_id, &params.derivation_path, t)?
        }
        None => {
            client_core::Refill::status_at(&party, &params.account_id, &params.derivation_path)?
        }
    };
    let want = params.target.unwrap_or(0);
    let stored_total = std::cell::Cell::new(0u32);
    loop {
        step = match step {
            RefillStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                awaiting.reply_bytes(host.call_cosigner(&req).await?)?
            }
            RefillStep::ListPresignatures(list) => {
                let answer = host
                    .call(
                        "listPresignatures",
                        &[
                            list.pool().into(),
                            u16_array(list.signers()),
                            JsValue::from(client_core::refill::IN_FLIGHT_MS as f64),
                        ],
                    )
                    .await?;
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Listed {
                    ids: Vec<String>,
                    #[serde(default)]
                    in_flight: Vec<String>,
                }
                let l: Listed = from_js("listPresignatures answer", answer)?;
                list.listed(l.ids, l.in_flight)?
            }
            RefillStep::DiscardPresignatures(d) => {
                let n = host
                    .call(
                        "discardPresignatures",
                        &[d.pool().into(), u16_array(d.signers()), str_array(d.ids())],
                    )
                    .await?
                    .as_f64()
                    .unwrap_or(0.0);
                d.discarded(n.max(0.0) as u32)?
            }
            RefillStep::RunPresigns(mut batch) => {
                let jobs = batch.jobs();
                let (host_ref, session, stored) = (&host, &params.session, &stored_total);
                let report = |n: u32| {
                    host_ref.progress(&ProgressOut {
                        phase: "presign".into(),
                        round: n,
                        total_rounds: want,
                        percent: if want == 0 {
                            100.0
                        } else {
                            f64::from(n.min(want)) * 100.0 / f64::from(want)
                        },
                        finished: false,
                        account_id: Some(params.account_id.clone()),
                    })
                };
                let outcomes: Vec<_> = futures_util::stream::iter(jobs)
                    .map(|job| async move {
                        let (spec, end) = job.start();
                        let store = match end.finished(run_spec(spec, session, None).await) {
                            Ok(s) => s,
                            Err(outcome) => return (outcome, None),
                        };
                        let plaintext = Uint8Array::from(store.plaintext.as_slice());
                        let put = host_ref
                            .call(
                                "storePresignature",
                                &[
                                    store.pool.as_str().into(),
                                    u16_array(&store.signers),
                                    store.id.as_str().into(),
                                    plaintext.clone().into(),
                                ],
                            )
                            .await;
                        plaintext.fill(0, 0, plaintext.length());
                        let (result, host_error) = match put {
                            Ok(_) => {
                                stored.set(stored.get() + 1);
                                report(stored.get());
                                (Ok(()), None)
                            }
                            Err(FlowError::Host(v)) => (
                                Err(ClientError::io("presignature pool", js_message(&v))),
                                Some(v),
                            ),
                            Err(FlowError::Client(e)) => (Err(e), None),
                        };
                        (store.stored(result), host_error)
                    })
                    .buffer_unordered(params.concurrency.clamp(1, 4) as usize)
                    .collect()
                    .await;
                let mut first_host_error = None;
                for (o, host_error) in outcomes {
                    if first_host_error.is_none() {
                        first_host_error = host_error;
                    }
                    batch.report(o);
                }
                match batch.done() {
                    Ok(next) => next,
                    // Nothing stored because storage failed: the host's own error.
                    Err(e) => match first_host_error {
                        Some(v) if stored_total.get() == 0 => return Err(FlowError::Host(v)),
                        _ => return Err(e.into()),
                    },
                }
            }
            RefillStep::Wait(w) => {
                sleep(i32::try_from(w.millis()).unwrap_or(i32::MAX)).await;
                w.done()?
            }
            RefillStep::Done(status) => {
                return to_js(&PoolOut {
                    account_id: status.account_id,
                    signers: status.signers,
                    local: status.local,
                    cosigner: status.cosigner,
                    usable: status.usable,
                    cosigner_running: status.cosigner_running,
                    cosigner_cap: status.cosigner_cap,
                    generated: status.generated,
                    failed: status.failed,
                    discarded: status.discarded,
                    elapsed_ms: elapsed(started),
                });
            }
        };
    }
}

#[wasm_bindgen]
impl WalletParty {
    /// Opens a stored party from its plaintext bundle bytes (decrypted by the host's
    /// WebCrypto key; the caller wipes its copy). `source` names the storage for errors.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(wallet_id: &str, bytes: &[u8], source: &str) -> Result<WalletParty, JsValue> {
        let core = BundleCore::from_bytes(bytes)
            .map_err(|e| client_error_to_js(&ClientError::corrupt(source, e.message)))?;
        Self::open(wallet_id, core, source)
    }

    /// Opens a stored party from its passphrase-encrypted keystore file.
    #[wasm_bindgen(js_name = fromPassphraseFile)]
    pub fn from_passphrase_file(
        wallet_id: &str,
        file: &str,
        passphrase: &str,
        source: &str,
    ) -> Result<WalletParty, JsValue> {
        let core = BundleCore::decrypt(file, passphrase).map_err(|e| {
            let err = if e.code == crate::error::Code::WrongPassphrase {
                ClientError::WrongPassphrase {
                    path: source.to_string(),
                }
            } else {
                ClientError::corrupt(source, e.message)
            };
            client_error_to_js(&err)
        })?;
        Self::open(wallet_id, core, source)
    }

    fn open(wallet_id: &str, core: BundleCore, source: &str) -> Result<WalletParty, JsValue> {
        let party =
            Party::new(wallet_id, core.bundle, source).map_err(|e| client_error_to_js(&e))?;
        Ok(WalletParty { party })
    }

    /// Keygen index (0 for the device).
    #[wasm_bindgen(getter, js_name = partyIndex)]
    pub fn party_index(&self) -> u16 {
        self.party.index()
    }

    /// The wallet id.
    #[wasm_bindgen(getter, js_name = walletId)]
    pub fn wallet_id(&self) -> String {
        self.party.wallet_id().to_string()
    }

    /// The 32-byte key that encrypts this party's presignature pool in a passphrase
    /// wallet: HKDF-SHA-256 of the identity secret (salt `wallet-mpc-web/presign-pool/v1`,
    /// info `<walletName>\0<walletId>\0party <index>`). The host imports it as a
    /// non-extractable AES-GCM key and wipes these bytes; the identity secret itself
    /// never leaves wasm.
    #[wasm_bindgen(js_name = poolKeyMaterial)]
    pub fn pool_key_material(&self, wallet_name: &str) -> Result<Vec<u8>, JsValue> {
        let secret = self
            .party
            .bundle()
            .identity_secret
            .as_deref()
            .ok_or_else(|| client_error_to_js(&ClientError::internal("no identity key")))?;
        let ikm = Zeroizing::new(hex::decode(secret).map_err(|e| {
            client_error_to_js(&ClientError::internal(format!("identity key: {e}")))
        })?);
        let info = format!(
            "{wallet_name}\u{0}{}\u{0}party {}",
            self.party.wallet_id(),
            self.party.index()
        );
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"wallet-mpc-web/presign-pool/v1"), &ikm);
        let mut okm = vec![0u8; 32];
        hk.expand(info.as_bytes(), &mut okm)
            .map_err(|e| client_error_to_js(&ClientError::internal(e.to_string())))?;
        Ok(okm)
    }

    /// Signs with the cosigner (`client-core`'s signing flow: the presignature fast path
    /// where the account and `presign` mode allow it, else a signing session). `params`:
    /// `{ accountId, derivationPath?, preimage, digest, payloadKind, presign?,
    /// gatewayUrl?, transport?, sessionTimeoutMs? }`. Resolves to the verified
    /// signature with `fastPath` (what the pool did); rejects with a `FlowError`.
    pub fn sign(&self, host: JsValue, params: JsValue) -> Promise {
        let party = self.party.clone();
        flow_promise(async move {
            let host = Host::new(host)?;
            let params: SignIn = from_js("sign parameters", params)?;
            sign_flow(host, party, params).await
        })
    }

    /// This party's half of a signing by the device and the recovery party without the
    /// cosigner (`client-core`'s `PairSign`), in the room the recovery agent opened
    /// after its user confirmed: `params` `{ accountId, derivationPath?, preimage,
    /// digest, room: { sessionId, room, roomToken, gatewayUrl }, transport?,
    /// sessionTimeoutMs? }` (the room's own relay URL is used: no `gatewayUrl`
    /// override). Resolves to the verified signature (signers `[0, 2]`); rejects with a
    /// `FlowError`.
    #[wasm_bindgen(js_name = pairSign)]
    pub fn pair_sign(&self, host: JsValue, params: JsValue) -> Promise {
        let party = self.party.clone();
        flow_promise(async move {
            let host = Host::new(host)?;
            let params: PairSignIn = from_js("pair signing parameters", params)?;
            pair_flow(host, party, params).await
        })
    }

    /// A wallet control at the cosigner, signed by this party (`client-core`'s
    /// `Control`): `params` `{ action: "status" | "freeze" | "unfreeze" |
    /// "revokeDevice", reason? }` (the device may freeze and revoke itself; only the
    /// recovery party may unfreeze). Resolves to `{ frozen, frozenAtMs?, unfreezeAtMs?,
    /// revokedParties }`; rejects with a `FlowError`.
    #[wasm_bindgen(js_name = walletControl)]
    pub fn wallet_control(&self, host: JsValue, params: JsValue) -> Promise {
        let party = self.party.clone();
        flow_promise(async move {
            let host = Host::new(host)?;
            let params: ControlIn = from_js("wallet control parameters", params)?;
            control_flow(host, party, params).await
        })
    }

    /// An encrypted backup of this party's key shares: the native client's backup
    /// format (`mpc_core::backup`: the key-share file, Argon2id + XChaCha20-Poly1305,
    /// under `passphrase`, with the `wallet` metadata member), so `client backup import`
    /// restores it. `passphrase` must pass the strength check of new key files unless
    /// `allowWeak`. Argon2id runs here (about a second): call it in a Worker. Throws an
    /// `MpcError` (`invalid_input`, `internal`).
    #[wasm_bindgen(js_name = exportBackup)]
    pub fn export_backup(
        &self,
        passphrase: &str,
        cosigner_url: &str,
        created_at_ms: f64,
        allow_weak: bool,
        insecure_fast_kdf: bool,
    ) -> Result<Vec<u8>, JsValue> {
        let meta = api::WalletMember {
            format: api::WALLET_META_FORMAT.into(),
            wallet_id: self.party.wallet_id().to_string(),
            party_index: self.party.index(),
            cosigner_url: cosigner_url.to_string(),
            label: String::new(),
            created_at_ms: created_at_ms.max(0.0) as u64,
        };
        api::export_backup(
            self.party.bundle(),
            &meta,
            passphrase,
            allow_weak,
            insecure_fast_kdf,
        )
        .map_err(crate::js::to_js_error)
    }

    /// Fills (with `target`) or only reports (without) the presignature pool of an
    /// account at one path (`derivationPath`: `m`, the default, for an independent
    /// account; a child path such as `m/44/60/0/0/0` for an HD account) (`client-core`'s
    /// refill flow: reconciliation, StartPresign chunks, `concurrency` sessions at once,
    /// settling). `params`: `{ accountId, derivationPath?, target?, concurrency?,
    /// gatewayUrl?, transport?, sessionTimeoutMs? }`. Resolves to
    /// `{ accountId, path, signers, local, cosigner, usable, cosignerRunning, cosignerCap,
    /// generated, failed, discarded, elapsedMs }`.
    pub fn refill(&self, host: JsValue, params: JsValue) -> Promise {
        let party = self.party.clone();
        flow_promise(async move {
            let host = Host::new(host)?;
            let params: RefillIn = from_js("refill parameters", params)?;
            refill_flow(host, party, params).await
        })
    }
}

// ---------------------------------------------------------------------------------
// Restoring a backup

/// A backup opened in wasm (`BackupRestore.open`): its share stays here; the host
/// learns the public facts, checks for a wallet in the way (`sameShare`), and gets the
/// share only re-encrypted for its storage (`passphraseFile`) or as the plaintext it
/// encrypts at once under its WebCrypto key (`bundleBytes`).
#[wasm_bindgen]
pub struct BackupRestore {
    bundle: mpc_core::keystore::KeyShareBundle,
    meta: api::WalletMember,
}

#[wasm_bindgen]
impl BackupRestore {
    /// Opens a backup of the device's share (party 0) made by `exportBackup` or by the
    /// native `client backup export`: decrypts it (Argon2id: call it in a Worker) and
    /// checks the share. Throws an `MpcError` whose `code` is `wrong_passphrase` or
    /// `storage` and whose `reason` is `wrong_passphrase` / `not_a_backup`
    /// (`invalid_input`: empty passphrase).
    pub fn open(bytes: &[u8], passphrase: &str) -> Result<BackupRestore, JsValue> {
        let opened = api::open_backup(bytes, passphrase, 0).map_err(crate::js::to_js_error)?;
        Ok(BackupRestore {
            bundle: opened.bundle,
            meta: opened.meta,
        })
    }

    /// The wallet id of the backup.
    #[wasm_bindgen(getter, js_name = walletId)]
    pub fn wallet_id(&self) -> String {
        self.meta.wallet_id.clone()
    }

    /// The party index of the share (0).
    #[wasm_bindgen(getter, js_name = partyIndex)]
    pub fn party_index(&self) -> u16 {
        self.bundle.party_index
    }

    /// The cosigner URL recorded at creation (informational).
    #[wasm_bindgen(getter, js_name = cosignerUrl)]
    pub fn cosigner_url(&self) -> String {
        self.meta.cosigner_url.clone()
    }

    /// The wallet's creation time, ms since the Unix epoch.
    #[wasm_bindgen(getter, js_name = createdAtMs)]
    pub fn created_at_ms(&self) -> f64 {
        self.meta.created_at_ms as f64
    }

    /// The accounts of the share (`AccountInfo[]`, as `createWallet` reports them).
    pub fn accounts(&self) -> Result<JsValue, JsValue> {
        let accounts: Vec<api::AccountInfo> = self
            .bundle
            .accounts
            .values()
            .map(api::AccountInfo::from)
            .collect();
        crate::js::js_value(&accounts).map_err(|e| {
            crate::js::to_js_error(crate::ApiError::new(
                crate::Code::Internal,
                format!("accounts: {e}"),
            ))
        })
    }

    /// Whether `party` (the stored wallet, opened) holds exactly this share.
    #[wasm_bindgen(js_name = sameShare)]
    pub fn same_share(&self, party: &WalletParty) -> Result<bool, JsValue> {
        api::same_share(&self.bundle, party.party.bundle()).map_err(crate::js::to_js_error)
    }

    /// The share as a passphrase-encrypted keystore file (a passphrase wallet's record).
    #[wasm_bindgen(js_name = passphraseFile)]
    pub fn passphrase_file(
        &self,
        passphrase: &str,
        insecure_fast_kdf: bool,
    ) -> Result<String, JsValue> {
        api::encrypt_bundle(&self.bundle, passphrase, insecure_fast_kdf)
            .map_err(crate::js::to_js_error)
    }

    /// The share's plaintext bytes, for the host to encrypt at once under the wallet's
    /// non-extractable WebCrypto key (then it wipes them).
    #[wasm_bindgen(js_name = bundleBytes)]
    pub fn bundle_bytes(&self) -> Result<Vec<u8>, JsValue> {
        api::to_json_bytes("bundle", &self.bundle).map_err(crate::js::to_js_error)
    }
}
