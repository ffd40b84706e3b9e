//! Key lifecycle in the browser (`docs/lifecycle.md`, "In the browser"): this
//! profile's half of a lifecycle session the recovery agent started.
//!
//! The agent asks the cosigner (StartRefresh / ReplaceDevice, signed as the recovery
//! party) and hands the page the cosigner's `LifecycleResponse` bytes (the plan). The
//! page then:
//!
//! - **refresh** (an existing wallet): [`WalletParty::join_refresh`] checks the plan
//!   against this party's shares exactly as the native flow checks the answer it
//!   received (`LifecyclePlan::from_pb`: epoch, the exact set of accounts and public
//!   keys, distinct rooms), runs `LifecycleRun::start` (one refresh session per
//!   account), checks the new shares' public keys (the addresses) are the old ones,
//!   hands the new bundle to the host's `persistPending` (encrypted here with the
//!   passphrase, or as plaintext for the host's WebCrypto key) and only then confirms
//!   (`ConfirmLifecycle`, signed with the bundle's identity) until the cosigner
//!   committed;
//! - **replacement** (a new profile): [`NewDevice`] generates the new identity inside
//!   wasm (its secret leaves only inside the encrypted pending bundle), signs the
//!   agent's possession challenge, runs `LifecycleRun::new_device` and stores and
//!   confirms the same way with the NEW identity.
//!
//! Host methods used besides `callCosigner` / `onProgress`: `persistPending(p)` with
//! `{ walletId, lifecycleId, epoch, expiresAtMs, digests, accounts, passphraseFile }`
//! or `{ …, bundle }` (stores it durably as PENDING; the flow confirms only once it
//! resolved).

use std::collections::BTreeMap;

use client_core::lifecycle::{
    ConfirmLifecycle, ConfirmParams, ConfirmStep, EpochCheck, EpochStep, LifecycleKind,
    LifecyclePlan, LifecycleRun, LifecycleStep, PendingShares,
};
use client_core::{ClientError, Party};
use js_sys::{Promise, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::api;
use crate::flows::{
    check_passphrase, elapsed, flow_promise, from_js, phase, put_bundle, run_spec, to_js,
    FlowError, FlowResult, Host, SessionConfig, WalletParty,
};
use crate::transport::{now_ms, sleep};

/// What the page passes to join a lifecycle session.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinIn {
    /// The cosigner's `LifecycleResponse` protobuf bytes (the agent's `plan_b64`).
    #[serde(with = "serde_bytes")]
    plan: Vec<u8>,
    #[serde(flatten)]
    settings: RunSettings,
}

/// How a lifecycle run stores its pending bundle and runs its sessions (both kinds).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunSettings {
    /// Encrypt the pending bundle with this passphrase; without one the host receives
    /// the plaintext to encrypt with its WebCrypto key.
    #[serde(default)]
    passphrase: Option<String>,
    #[serde(default)]
    insecure_fast_kdf: bool,
    #[serde(flatten)]
    session: SessionConfig,
}

impl RunSettings {
    /// Refuses an empty passphrase before any work.
    pub(crate) fn check(&self) -> FlowResult<()> {
        check_passphrase(self.passphrase.as_deref())
    }
}

/// The result of this party's half.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleOut {
    wallet_id: String,
    lifecycle_id: String,
    kind: &'static str,
    epoch: u64,
    committed: bool,
    confirmed_parties: Vec<u16>,
    accounts: Vec<api::AccountInfo>,
    digests: BTreeMap<String, String>,
    timings: LifecycleTimings,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct LifecycleTimings {
    sessions_ms: u64,
    confirm_ms: u64,
    total_ms: u64,
}

/// Runs the sessions of a lifecycle run until the pending shares exist.
pub(crate) async fn run_sessions(
    host: &Host,
    mut step: LifecycleStep,
    cfg: &SessionConfig,
) -> FlowResult<PendingShares> {
    loop {
        step = match step {
            LifecycleStep::RunSession(run) => {
                let (spec, running) = run.start();
                running.finished(run_spec(spec, cfg, Some(host)).await)?
            }
            LifecycleStep::Done(p) => return Ok(*p),
        };
    }
}

/// The addresses stay: every account of the new bundle has the public key `expected`
/// names for it, and no account is missing or added.
pub(crate) fn check_public_keys(
    expected: &BTreeMap<String, String>,
    pending: &PendingShares,
) -> FlowResult<()> {
    let got: BTreeMap<&String, &String> = pending
        .bundle
        .accounts
        .iter()
        .map(|(id, a)| (id, &a.public_key))
        .collect();
    let same = got.len() == expected.len()
        && expected.iter().all(|(id, pk)| {
            got.get(id)
                .is_some_and(|mine| mine.eq_ignore_ascii_case(pk))
        });
    if !same {
        return Err(FlowError::Client(ClientError::internal(
            "the new shares' public keys are not the wallet's: the addresses would change; \
             nothing was stored",
        )));
    }
    Ok(())
}

/// Hands the pending bundle to the host's `persistPending`.
async fn persist_pending(
    host: &Host,
    p: &PendingShares,
    settings: &RunSettings,
) -> FlowResult<Vec<api::AccountInfo>> {
    let accounts: Vec<api::AccountInfo> = p
        .bundle
        .accounts
        .values()
        .map(api::AccountInfo::from)
        .collect();
    let out = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| {
        let _ = Reflect::set(&out, &k.into(), v);
    };
    set("walletId", &p.wallet_id.as_str().into());
    set("lifecycleId", &p.lifecycle_id.as_str().into());
    set("epoch", &JsValue::from(p.epoch as f64));
    set("expiresAtMs", &JsValue::from(p.expires_at_ms as f64));
    set("digests", &to_js(&p.digests)?);
    set("accounts", &to_js(&accounts)?);
    put_bundle(
        &out,
        &p.bundle,
        settings.passphrase.as_deref(),
        settings.insecure_fast_kdf,
    )?;
    host.call("persistPending", &[out.into()]).await?;
    Ok(accounts)
}

/// ConfirmLifecycle until committed.
async fn confirm(host: &Host, p: &PendingShares) -> FlowResult<client_core::lifecycle::Committed> {
    let mut step = ConfirmLifecycle::start(&p.bundle, ConfirmParams::from(p))?;
    loop {
        step = match step {
            ConfirmStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                let reply = host.call_cosigner(&req).await?;
                awaiting.reply_bytes(reply)?
            }
            ConfirmStep::Wait(w) => {
                sleep(i32::try_from(w.millis()).unwrap_or(i32::MAX)).await;
                w.done()?
            }
            ConfirmStep::Done(c) => return Ok(c),
        };
    }
}

/// Runs, stores as pending, confirms: the part both kinds share once the run started.
pub(crate) async fn finish(
    host: &Host,
    kind: LifecycleKind,
    step: LifecycleStep,
    expected: &BTreeMap<String, String>,
    settings: &RunSettings,
) -> FlowResult<JsValue> {
    let started = now_ms();
    let pending = run_sessions(host, step, &settings.session).await?;
    check_public_keys(expected, &pending)?;
    let sessions_ms = elapsed(started);
    phase(host, "store", 0.0, false);
    let accounts = persist_pending(host, &pending, settings).await?;
    phase(host, "store", 100.0, true);
    phase(host, "confirm", 0.0, false);
    let t = now_ms();
    let committed = confirm(host, &pending).await?;
    phase(host, "confirm", 100.0, true);
    to_js(&LifecycleOut {
        wallet_id: pending.wallet_id.clone(),
        lifecycle_id: pending.lifecycle_id.clone(),
        kind: match kind {
            LifecycleKind::Refresh => "refresh",
            LifecycleKind::ReplaceDevice => "replace_device",
        },
        epoch: committed.epoch,
        committed: true,
        confirmed_parties: committed.confirmed_parties,
        accounts,
        digests: pending.digests.clone(),
        timings: LifecycleTimings {
            sessions_ms,
            confirm_ms: elapsed(t),
            total_ms: elapsed(started),
        },
    })
}

async fn refresh_flow(host: Host, party: Party, params: JoinIn) -> FlowResult<JsValue> {
    params.settings.check()?;
    let plan = LifecyclePlan::from_bytes_for_party(LifecycleKind::Refresh, &params.plan, &party)?;
    let expected = plan.public_keys();
    let step = LifecycleRun::start(&party, &plan, None)?;
    finish(
        &host,
        LifecycleKind::Refresh,
        step,
        &expected,
        &params.settings,
    )
    .await
}

async fn epoch_flow(host: Host, party: Party) -> FlowResult<JsValue> {
    let mut step = EpochCheck::start(&party);
    loop {
        step = match step {
            EpochStep::CallCosigner(call) => {
                let (req, awaiting) = call.send(now_ms().max(0.0) as u64)?;
                let reply = host.call_cosigner(&req).await?;
                awaiting.reply_bytes(reply)?
            }
            EpochStep::Done(e) => return Ok(JsValue::from(e as f64)),
        };
    }
}

#[wasm_bindgen]
impl WalletParty {
    /// The epoch of this party's shares (0 until the first refresh).
    #[wasm_bindgen(getter, js_name = shareEpoch)]
    pub fn share_epoch(&self) -> f64 {
        self.party.bundle().share_epoch as f64
    }

    /// This party's half of a refresh the recovery agent started: `params` `{ plan
    /// (the cosigner's LifecycleResponse bytes), passphrase?, insecureFastKdf?,
    /// gatewayUrl?, transport?, sessionTimeoutMs? }`; the host needs `callCosigner`,
    /// `persistPending` and optionally `onProgress` (module docs). Resolves once the
    /// cosigner committed: `{ walletId, lifecycleId, kind, epoch, committed,
    /// confirmedParties, accounts, digests, timings }` (the host then promotes the
    /// pending record); rejects with a `FlowError`. This object keeps the OLD shares.
    #[wasm_bindgen(js_name = joinRefresh)]
    pub fn join_refresh(&self, host: JsValue, params: JsValue) -> Promise {
        let party = self.party.clone();
        flow_promise(async move {
            let host = Host::new(host)?;
            let params: JoinIn = from_js("lifecycle parameters", params)?;
            refresh_flow(host, party, params).await
        })
    }

    /// The share epoch the cosigner's accounts are at (`ListAccounts`, signed by this
    /// party): to settle a pending record. Resolves to a number; rejects with a
    /// `FlowError` (`identity_revoked` once this device was replaced).
    #[wasm_bindgen(js_name = cosignerEpoch)]
    pub fn cosigner_epoch(&self, host: JsValue) -> Promise {
        let party = self.party.clone();
        flow_promise(async move { epoch_flow(Host::new(host)?, party).await })
    }
}
