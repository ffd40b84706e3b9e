//! Refresh and device replacement through the agent (`docs/lifecycle.md`, "In the
//! browser"): the agent is the recovery party and starts every lifecycle session; the
//! page joins with the device's share (a refresh) or as the new device (a replacement).
//!
//! ```text
//! POST /v1/wallets/{id}/lifecycle ─► awaiting_confirmation ─(recovery-agent confirm)─►
//!   refresh:        running ─► StartRefresh ─► `lifecycle` {plan_b64} ─► page joins
//!   replace_device: awaiting_device {possession_challenge}
//!                     ─(POST /v1/requests/{id}/possession, within 60 s)─► running
//!                     ─► ReplaceDevice ─► `lifecycle` {plan_b64, template} ─► page joins
//! ─► the agent's half: sessions, pending file, ConfirmLifecycle, promote ─► done {epoch}
//! ```
//!
//! The possession challenge carries the timestamp and nonce the agent WILL sign its
//! ReplaceDevice auth with, so the proof binds exactly that request; the agent checks
//! the page's signature before sending it. The cosigner URL is remembered in the
//! wallet's metadata so that a pending file left by a crash is settled at the next
//! start-up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use client_core::lifecycle::NewDeviceTemplate;
use mpc_client::{
    MpcError, OpenedLifecycle, PossessionProof, RecoveryLifecycle, WalletMeta, WALLET_META_FORMAT,
};
use mpc_wire::PublicIdentity;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::requests::{Outcome, RequestAction, RequestView};
use crate::Agent;

/// How long the page has to post the new device's proof of possession (within the
/// cosigner's clock-skew window for the auth timestamp it binds).
pub const POSSESSION_WITHIN: Duration = Duration::from_secs(60);

/// What the new device signs (state `awaiting_device`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PossessionChallenge {
    /// `cosigner_api::auth::replace_device_possession_message(audience, wallet_id,
    /// new_identity, timestamp_ms, nonce)`, hex: sign these bytes (ed25519, the new
    /// identity key).
    pub message_hex: String,
    /// The cosigner's identity (the auth audience).
    pub audience: String,
    /// The auth timestamp the agent will use.
    pub timestamp_ms: u64,
    /// The auth nonce the agent will use (hex, 16 bytes).
    pub nonce_hex: String,
}

impl PossessionChallenge {
    /// Whether `signature` is `identity`'s (hex) over the challenge.
    pub fn verify(&self, identity: &str, signature: &[u8; 64]) -> bool {
        let (Ok(id), Ok(msg)) = (
            identity.parse::<PublicIdentity>(),
            hex::decode(&self.message_hex),
        ) else {
            return false;
        };
        cosigner_api::auth::verify_bytes(&id, &msg, signature)
    }
}

/// The lifecycle session the page joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleView {
    /// `refresh` or `replace_device`.
    pub kind: RequestAction,
    /// The cosigner's `LifecycleResponse` (protobuf), base64 (standard, padded).
    pub plan_b64: String,
    /// A replacement's template for the new device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<NewDeviceTemplate>,
}

/// How a lifecycle request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOutcome {
    /// The committed lifecycle session.
    pub lifecycle: LifecycleOutcome,
}

/// The committed lifecycle session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleOutcome {
    /// The new share epoch.
    pub epoch: u64,
    /// Always true (the agent's half confirmed and promoted).
    pub committed: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Agent {
    /// Runs a confirmed refresh or replacement: opens the session (for a replacement
    /// after the new device's proof), shows the plan to the page, runs the agent's half,
    /// stores, confirms and promotes its new share.
    pub(crate) async fn run_lifecycle(&self, req: &RequestView) -> Result<Outcome, MpcError> {
        let client = self.recovery_client(&req.wallet_id, &req.cosigner_url)?;
        self.remember_cosigner(&req.wallet_id, &req.cosigner_url);
        let (start, primes) = match req.action {
            RequestAction::Refresh => (RecoveryLifecycle::Refresh, None),
            RequestAction::ReplaceDevice => {
                // Primes first: the page's 60 s are for its signature only.
                let primes = self
                    .primes
                    .take(|_| {})
                    .await
                    .map_err(|reason| MpcError::Internal { reason })?;
                let proof = self.possession(&client, req).await?;
                (
                    RecoveryLifecycle::ReplaceDevice(Box::new(proof)),
                    Some(primes),
                )
            }
            _ => return Err(MpcError::internal("not a lifecycle request")),
        };
        let OpenedLifecycle {
            plan,
            response,
            template,
        } = client.open_recovery_lifecycle(start).await?;
        tracing::info!(request = %req.request_id, wallet = %req.wallet_id, lifecycle = %plan.lifecycle_id, epoch = plan.epoch, "lifecycle session open: the page joins");
        self.requests().set_lifecycle(
            &req.request_id,
            LifecycleView {
                kind: req.action,
                plan_b64: base64::engine::general_purpose::STANDARD.encode(&response),
                template,
            },
        );
        let done = client.run_recovery_lifecycle(&plan, primes, None).await?;
        tracing::info!(request = %req.request_id, wallet = %req.wallet_id, epoch = done.epoch, "lifecycle committed: the recovery share is at the new epoch");
        Ok(Outcome::Lifecycle(done.epoch))
    }

    /// Shows the possession challenge and waits for the page's proof.
    async fn possession(
        &self,
        client: &mpc_client::MpcClient,
        req: &RequestView,
    ) -> Result<PossessionProof, MpcError> {
        let new_device: PublicIdentity = req
            .new_device_identity
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| MpcError::input("a replacement without a valid new device identity"))?;
        let timestamp_ms = now_ms();
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let (audience, message) = client
            .possession_message(new_device, timestamp_ms, &nonce)
            .await?;
        let challenge = PossessionChallenge {
            message_hex: hex::encode(&message),
            audience,
            timestamp_ms,
            nonce_hex: hex::encode(nonce),
        };
        let rx = self
            .requests()
            .await_device(&req.request_id, challenge)
            .map_err(|e| MpcError::internal(e.to_string()))?;
        tracing::info!(request = %req.request_id, "waiting for the new device's proof of possession");
        let signature = match tokio::time::timeout(POSSESSION_WITHIN, rx).await {
            Ok(Ok(sig)) => sig,
            _ => {
                return Err(MpcError::Timeout {
                    stage: "possession".into(),
                    after_secs: POSSESSION_WITHIN.as_secs(),
                    reason: "the new device did not prove possession of its identity in time"
                        .into(),
                })
            }
        };
        Ok(PossessionProof {
            new_device,
            timestamp_ms,
            nonce,
            signature,
            reason: req.reason.clone(),
        })
    }

    /// Records `cosigner_url` in the wallet's metadata (for settling at start-up).
    fn remember_cosigner(&self, wallet_id: &str, cosigner_url: &str) {
        let path = self.share_path(wallet_id);
        let mut meta = WalletMeta::load(&path).unwrap_or_else(|_| WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: wallet_id.to_string(),
            party_index: crate::PARTY_INDEX,
            cosigner_url: String::new(),
            label: String::new(),
            created_at_ms: now_ms(),
        });
        if meta.cosigner_url != cosigner_url {
            meta.cosigner_url = cosigner_url.to_string();
            if let Err(e) = meta.save(&path) {
                tracing::warn!(wallet = %wallet_id, error = %e, "cannot record the cosigner URL");
            }
        }
    }

    /// At start-up: settles the pending file of every wallet this agent holds (left by
    /// a refresh or replacement interrupted after its new share was stored): promoted
    /// when the cosigner committed, deleted when the session expired uncommitted, kept
    /// otherwise.
    pub async fn settle_pending(self: &Arc<Self>) {
        let dir = self.config().data_dir.join("wallets");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let wallet_id = entry.file_name().to_string_lossy().to_string();
            if crate::check_wallet_id(&wallet_id).is_err() {
                continue;
            }
            let path = self.share_path(&wallet_id);
            if !mpc_client::lifecycle::pending_path(&path).exists() {
                continue;
            }
            if let Err(e) = self.settle_one(&wallet_id, &path).await {
                tracing::warn!(wallet = %wallet_id, error = %e, "pending share left unsettled");
            }
        }
    }

    async fn settle_one(&self, wallet_id: &str, path: &Path) -> Result<(), MpcError> {
        let meta = WalletMeta::load(path)?;
        if meta.cosigner_url.is_empty() {
            return Err(MpcError::config("no cosigner URL recorded for the wallet"));
        }
        let client = self.recovery_client(wallet_id, &meta.cosigner_url)?;
        for s in client.resume_lifecycle().await? {
            tracing::info!(wallet = %wallet_id, path = %s.path, outcome = ?s.outcome, "pending share settled");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mpc_wire::IdentityKey;

    use super::*;
    use crate::error::ApiError;
    use crate::requests::{NewRequest, RequestState, Requests};

    fn replacement(r: &Requests, new: &IdentityKey) -> String {
        let v = r
            .submit(NewRequest {
                wallet_id: "w".into(),
                action: RequestAction::ReplaceDevice,
                reason: String::new(),
                cosigner_url: "http://127.0.0.1:1".into(),
                origin: None,
                sign: None,
                new_device_identity: Some(new.public().to_string()),
            })
            .unwrap();
        v.request_id
    }

    fn challenge() -> PossessionChallenge {
        PossessionChallenge {
            message_hex: hex::encode(b"the possession message"),
            audience: "aa".into(),
            timestamp_ms: 1,
            nonce_hex: "00".repeat(16),
        }
    }

    fn sign(key: &IdentityKey) -> String {
        hex::encode(cosigner_api::auth::sign_bytes(key, b"the possession message").unwrap())
    }

    #[tokio::test]
    async fn a_replacement_waits_for_the_new_devices_proof_then_runs() {
        let r = Requests::new(Duration::from_secs(600), Duration::from_secs(600));
        let new = IdentityKey::generate().unwrap();
        let id = replacement(&r, &new);
        // Not before the user confirmed.
        assert!(matches!(
            r.post_possession(&id, &sign(&new)),
            Err(ApiError::RequestNotAwaiting {
                state: RequestState::AwaitingConfirmation,
                ..
            })
        ));
        r.confirm(&id).unwrap();
        assert!(matches!(
            r.post_possession(&id, &sign(&new)),
            Err(ApiError::RequestNotAwaiting {
                state: RequestState::Running,
                ..
            })
        ));
        let rx = r.await_device(&id, challenge()).unwrap();
        let v = r.get(&id).unwrap();
        assert_eq!(v.state, RequestState::AwaitingDevice);
        assert_eq!(v.possession_challenge, Some(challenge()));
        // Malformed, or by another key: 400 invalid_input, still waiting.
        for bad in [
            "zz".to_string(),
            "00".repeat(63),
            sign(&IdentityKey::generate().unwrap()),
        ] {
            let e = r.post_possession(&id, &bad).unwrap_err();
            assert_eq!((e.code(), e.status().as_u16()), ("invalid_input", 400));
        }
        assert_eq!(r.get(&id).unwrap().state, RequestState::AwaitingDevice);
        let v = r.post_possession(&id, &sign(&new)).unwrap();
        assert_eq!(v.state, RequestState::Running);
        assert!(v.possession_challenge.is_none());
        assert_eq!(
            hex::encode(rx.await.unwrap()),
            sign(&new),
            "the proof reaches the run"
        );
        // Once only.
        let e = r.post_possession(&id, &sign(&new)).unwrap_err();
        assert_eq!(
            (e.code(), e.status().as_u16()),
            ("request_not_awaiting", 409)
        );
        let view = LifecycleView {
            kind: RequestAction::ReplaceDevice,
            plan_b64: "AA==".into(),
            template: None,
        };
        r.set_lifecycle(&id, view.clone());
        r.finish(&id, Ok(Outcome::Lifecycle(1)));
        let v = r.get(&id).unwrap();
        assert_eq!(v.state, RequestState::Done);
        assert_eq!(v.lifecycle, Some(view));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["action"], "replace_device");
        assert_eq!(json["outcome"]["lifecycle"]["epoch"], 1);
        assert_eq!(json["outcome"]["lifecycle"]["committed"], true);
    }

    #[test]
    fn a_proof_that_does_not_come_in_time_fails_the_request() {
        let r = Requests::new(Duration::from_secs(600), Duration::from_secs(600))
            .with_possession_within(Duration::ZERO);
        let new = IdentityKey::generate().unwrap();
        let id = replacement(&r, &new);
        r.confirm(&id).unwrap();
        let _rx = r.await_device(&id, challenge()).unwrap();
        let v = r.get(&id).unwrap();
        assert_eq!(v.state, RequestState::Failed);
        assert_eq!(v.error.unwrap().code, "timeout");
        assert!(v.possession_challenge.is_none());
        let e = r.post_possession(&id, &sign(&new)).unwrap_err();
        assert_eq!(e.code(), "request_not_awaiting");
        // A refresh never waits for a device.
        let v = r
            .submit(NewRequest {
                wallet_id: "w".into(),
                action: RequestAction::Refresh,
                reason: String::new(),
                cosigner_url: "http://127.0.0.1:1".into(),
                origin: None,
                sign: None,
                new_device_identity: None,
            })
            .unwrap();
        r.confirm(&v.request_id).unwrap();
        assert!(r.await_device(&v.request_id, challenge()).is_err());
    }
}
