//! Requests that act with the recovery share on the page's behalf, held until the user
//! confirms them on the agent's machine: wallet controls sent to the cosigner, and
//! signatures made with the device without the cosigner.
//!
//! The pairing token lives in the browser profile. Whoever holds that profile (a thief
//! with the lost laptop, a compromised extension) holds the token. So nothing that uses the recovery
//! share for the page (today: the wallet controls at the cosigner, above all
//! `unfreeze`) runs on the token alone. The page submits a request (`POST
//! /v1/wallets/{id}/controls`); the agent logs it and keeps it *awaiting confirmation*;
//! the user confirms or rejects it on the agent's machine (`recovery-agent requests`,
//! `recovery-agent confirm ID`), which authenticates with the admin token that the agent
//! writes to its data directory at start-up (0600, never sent to a page). An
//! unconfirmed request expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpc_client::{ChainStyle, ControlAction, DigestKind, SignedResult, WalletControls};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
pub use crate::lifecycle::{
    LifecycleOutcome, LifecycleView, PossessionChallenge, RequestOutcome, POSSESSION_WITHIN,
};

/// Requests awaiting confirmation at once, at most (a page cannot flood the user).
pub const MAX_AWAITING: usize = 8;
/// Requests remembered at once (awaiting, running and finished), at most.
pub const MAX_REMEMBERED: usize = 128;
/// Longest reason, in characters (the cosigner's limit).
pub const MAX_REASON_CHARS: usize = 200;

/// What a request asks the cosigner for, signed with the recovery identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestAction {
    /// Revoke the device identity (party 0) at once.
    RevokeDevice,
    /// Freeze the wallet.
    Freeze,
    /// Ask to unfreeze (effective after the cosigner's delay).
    Unfreeze,
    /// Sign with the device, without the cosigner (`sign` holds what).
    Sign,
    /// A proactive refresh of every share (the page joins with the device's).
    Refresh,
    /// Replace the device by a new browser profile (`new_device_identity`), keeping
    /// every address.
    ReplaceDevice,
}

impl RequestAction {
    /// The client flow's action.
    pub fn control(self, reason: &str) -> Option<ControlAction> {
        Some(match self {
            RequestAction::RevokeDevice => ControlAction::RevokeDevice {
                reason: reason.to_string(),
            },
            RequestAction::Freeze => ControlAction::Freeze {
                reason: reason.to_string(),
            },
            RequestAction::Unfreeze => ControlAction::Unfreeze,
            RequestAction::Sign | RequestAction::Refresh | RequestAction::ReplaceDevice => {
                return None
            }
        })
    }

    /// What the confirmation prompt calls it.
    pub fn describe(self) -> &'static str {
        match self {
            RequestAction::RevokeDevice => "REVOKE the device identity of",
            RequestAction::Freeze => "FREEZE",
            RequestAction::Unfreeze => "UNFREEZE (after the cosigner's delay)",
            RequestAction::Sign => "SIGN, with the device and without the cosigner, for",
            RequestAction::Refresh => "REFRESH every key share of",
            RequestAction::ReplaceDevice => "REPLACE THE DEVICE (the old one revoked at once) of",
        }
    }
}

/// What a signing request signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignDetails {
    /// The account.
    pub account_id: String,
    /// Non-hardened derivation path.
    pub path: String,
    /// The bytes whose digest is signed, hex.
    pub preimage_hex: String,
    /// How the preimage is hashed.
    pub digest: DigestKind,
    /// How Ethereum's `v` is formed.
    pub chain: ChainStyle,
    /// The text of an EIP-191 personal message, when the preimage is one (what the
    /// user is shown before confirming).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The room the agent opened for a confirmed signing, with the DEVICE's token: the
/// page runs its half there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaySession {
    /// Session id.
    pub session_id: String,
    /// Room on the agent's relay.
    pub room: String,
    /// The device's room token (party 0, read and write).
    pub room_token: String,
    /// The relay's base URL (`<agent>/v1/relay`).
    pub gateway_url: String,
}

/// How a request ended well.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The cosigner applied a control.
    Controls(WalletControls),
    /// The signature, verified.
    Signed(Box<SignedResult>),
    /// The lifecycle session committed; the agent's share is at this epoch.
    Lifecycle(u64),
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for the user on the agent's machine.
    AwaitingConfirmation,
    /// Confirmed; talking to the cosigner.
    Running,
    /// A confirmed replacement waits for the new device's proof of possession
    /// (`possession_challenge`).
    AwaitingDevice,
    /// The cosigner applied it (`controls` is the wallet's state after it).
    Done,
    /// It ran and failed (`error`).
    Failed,
    /// The user rejected it; nothing was sent.
    Rejected,
    /// Nobody confirmed it in time; nothing was sent.
    Expired,
}

/// One request as the API shows it (`GET /v1/requests/{id}`, the admin list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    /// Its id (32 hex).
    pub request_id: String,
    /// The wallet.
    pub wallet_id: String,
    /// What it asks for.
    pub action: RequestAction,
    /// The user's reason (goes to the cosigner's audit log).
    pub reason: String,
    /// The cosigner it goes to (empty for a signing).
    pub cosigner_url: String,
    /// The page's origin, when the request came from a browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// What a signing request signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignDetails>,
    /// Where a confirmed signing runs (the device's token in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<RelaySession>,
    /// State.
    pub state: RequestState,
    /// When it was made (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// Until when it can be confirmed (ms since the Unix epoch).
    pub confirm_by_ms: u64,
    /// The wallet's controls after it ran, when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controls: Option<WalletControls>,
    /// The signature, when a signing is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignedResult>,
    /// Why it failed, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// A replacement's new device identity (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_device_identity: Option<String>,
    /// What the new device signs (state `awaiting_device`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub possession_challenge: Option<PossessionChallenge>,
    /// The lifecycle session the page joins, once opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleView>,
    /// How a lifecycle request ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RequestOutcome>,
}

/// A new request, validated by the API.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The wallet (held by this agent).
    pub wallet_id: String,
    /// The action.
    pub action: RequestAction,
    /// The reason (may be empty).
    pub reason: String,
    /// The cosigner URL (empty for a signing).
    pub cosigner_url: String,
    /// The page's origin.
    pub origin: Option<String>,
    /// What to sign (`RequestAction::Sign` only).
    pub sign: Option<SignDetails>,
    /// The new device's identity (`RequestAction::ReplaceDevice` only).
    pub new_device_identity: Option<String>,
}

struct Entry {
    view: RequestView,
    deadline: Instant,
    finished_at: Option<Instant>,
    /// Where the new device's proof goes (state `awaiting_device`).
    possession: Option<tokio::sync::oneshot::Sender<[u8; 64]>>,
}

/// The registry of requests.
pub struct Requests {
    inner: Mutex<HashMap<String, Entry>>,
    confirm_within: Duration,
    ttl: Duration,
    possession_within: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Requests {
    /// A registry whose requests must be confirmed within `confirm_within`, finished
    /// ones kept for `ttl`.
    pub fn new(confirm_within: Duration, ttl: Duration) -> Self {
        Requests {
            inner: Mutex::new(HashMap::new()),
            confirm_within,
            ttl,
            possession_within: POSSESSION_WITHIN,
        }
    }

    /// The same, with another time for the new device's proof of possession (tests).
    pub fn with_possession_within(mut self, d: Duration) -> Self {
        self.possession_within = d;
        self
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, ApiError> {
        self.inner
            .lock()
            .map_err(|_| ApiError::Internal("request registry poisoned".into()))
    }

    /// Expires unconfirmed requests past their deadline and forgets finished ones past
    /// the TTL.
    fn sweep(&self, map: &mut HashMap<String, Entry>) {
        let now = Instant::now();
        for e in map.values_mut() {
            if e.view.state == RequestState::AwaitingConfirmation && now >= e.deadline {
                e.view.state = RequestState::Expired;
                e.finished_at = Some(now);
            }
            if e.view.state == RequestState::AwaitingDevice && now >= e.deadline {
                fail_timeout(e, now);
            }
        }
        let ttl = self.ttl;
        map.retain(|_, e| e.finished_at.is_none_or(|t| t.elapsed() < ttl));
    }

    /// Records a request awaiting confirmation.
    pub fn submit(&self, req: NewRequest) -> Result<RequestView, ApiError> {
        let mut map = self.lock()?;
        self.sweep(&mut map);
        let awaiting = map
            .values()
            .filter(|e| e.view.state == RequestState::AwaitingConfirmation)
            .count();
        if awaiting >= MAX_AWAITING || map.len() >= MAX_REMEMBERED {
            return Err(ApiError::TooManyRequests(MAX_AWAITING));
        }
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        let created = now_ms();
        let view = RequestView {
            request_id: id.clone(),
            wallet_id: req.wallet_id,
            action: req.action,
            reason: req.reason,
            cosigner_url: req.cosigner_url,
            origin: req.origin,
            sign: req.sign,
            session: None,
            state: RequestState::AwaitingConfirmation,
            created_at_ms: created,
            confirm_by_ms: created.saturating_add(self.confirm_within.as_millis() as u64),
            controls: None,
            signature: None,
            error: None,
            new_device_identity: req.new_device_identity,
            possession_challenge: None,
            lifecycle: None,
            outcome: None,
        };
        map.insert(
            id,
            Entry {
                view: view.clone(),
                deadline: Instant::now() + self.confirm_within,
                finished_at: None,
                possession: None,
            },
        );
        Ok(view)
    }

    /// A request's view.
    pub fn get(&self, id: &str) -> Result<RequestView, ApiError> {
        let mut map = self.lock()?;
        self.sweep(&mut map);
        map.get(id)
            .map(|e| e.view.clone())
            .ok_or_else(|| ApiError::UnknownRequest(truncate(id)))
    }

    /// Every remembered request, oldest first.
    pub fn list(&self) -> Result<Vec<RequestView>, ApiError> {
        let mut map = self.lock()?;
        self.sweep(&mut map);
        let mut v: Vec<RequestView> = map.values().map(|e| e.view.clone()).collect();
        v.sort_by(|a, b| (a.created_at_ms, &a.request_id).cmp(&(b.created_at_ms, &b.request_id)));
        Ok(v)
    }

    /// Moves an awaiting request to running (the user confirmed) and returns it. A
    /// request confirms once: a second confirmation, or one after a rejection or the
    /// deadline, is refused.
    pub fn confirm(&self, id: &str) -> Result<RequestView, ApiError> {
        self.decide(id, RequestState::Running)
    }

    /// Rejects an awaiting request.
    pub fn reject(&self, id: &str) -> Result<RequestView, ApiError> {
        self.decide(id, RequestState::Rejected)
    }

    fn decide(&self, id: &str, to: RequestState) -> Result<RequestView, ApiError> {
        let mut map = self.lock()?;
        self.sweep(&mut map);
        let e = map
            .get_mut(id)
            .ok_or_else(|| ApiError::UnknownRequest(truncate(id)))?;
        if e.view.state != RequestState::AwaitingConfirmation {
            return Err(ApiError::RequestNotAwaiting {
                id: truncate(id),
                state: e.view.state,
            });
        }
        e.view.state = to;
        if to == RequestState::Rejected {
            e.finished_at = Some(Instant::now());
        }
        Ok(e.view.clone())
    }

    /// Records where a running signing runs (shown to the page).
    pub fn set_session(&self, id: &str, session: RelaySession) {
        if let Ok(mut map) = self.inner.lock() {
            if let Some(e) = map.get_mut(id) {
                if e.view.state == RequestState::Running {
                    e.view.session = Some(session);
                }
            }
        }
    }

    /// A confirmed replacement now waits for the new device's proof of possession
    /// over `challenge`, for at most the possession time (then it fails, `timeout`):
    /// the proof arrives on the returned channel.
    pub fn await_device(
        &self,
        id: &str,
        challenge: PossessionChallenge,
    ) -> Result<tokio::sync::oneshot::Receiver<[u8; 64]>, ApiError> {
        let mut map = self.lock()?;
        let e = map
            .get_mut(id)
            .ok_or_else(|| ApiError::UnknownRequest(truncate(id)))?;
        if e.view.state != RequestState::Running || e.view.action != RequestAction::ReplaceDevice {
            return Err(ApiError::RequestNotAwaiting {
                id: truncate(id),
                state: e.view.state,
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        e.view.state = RequestState::AwaitingDevice;
        e.view.possession_challenge = Some(challenge);
        e.deadline = Instant::now() + self.possession_within;
        e.possession = Some(tx);
        Ok(rx)
    }

    /// The new device's proof of possession (`signature_hex`, 128 hex), checked against
    /// the challenge: the request runs on. Refused (409 `request_not_awaiting`) unless
    /// the request waits for it; a malformed or wrong signature is `invalid_input` and
    /// the request keeps waiting.
    pub fn post_possession(&self, id: &str, signature_hex: &str) -> Result<RequestView, ApiError> {
        let mut map = self.lock()?;
        self.sweep(&mut map);
        let e = map
            .get_mut(id)
            .ok_or_else(|| ApiError::UnknownRequest(truncate(id)))?;
        if e.view.state != RequestState::AwaitingDevice {
            return Err(ApiError::RequestNotAwaiting {
                id: truncate(id),
                state: e.view.state,
            });
        }
        let (Some(challenge), Some(identity)) =
            (&e.view.possession_challenge, &e.view.new_device_identity)
        else {
            return Err(ApiError::Internal(
                "a device awaited without a challenge".into(),
            ));
        };
        let signature = parse_signature(signature_hex)?;
        if !challenge.verify(identity, &signature) {
            return Err(ApiError::InvalidInput(
                "the signature does not verify with the new device identity over the \
                 challenge"
                    .into(),
            ));
        }
        let tx = e
            .possession
            .take()
            .ok_or_else(|| ApiError::Internal("the possession channel is gone".into()))?;
        if tx.send(signature).is_err() {
            fail_timeout(e, Instant::now());
            return Ok(e.view.clone());
        }
        e.view.state = RequestState::Running;
        e.view.possession_challenge = None;
        Ok(e.view.clone())
    }

    /// Records the lifecycle session the page joins (a running lifecycle request).
    pub fn set_lifecycle(&self, id: &str, lifecycle: LifecycleView) {
        if let Ok(mut map) = self.inner.lock() {
            if let Some(e) = map.get_mut(id) {
                if e.view.state == RequestState::Running {
                    e.view.lifecycle = Some(lifecycle);
                }
            }
        }
    }

    /// Records the outcome of a running request.
    pub fn finish(&self, id: &str, outcome: Result<Outcome, ErrorBody>) {
        if let Ok(mut map) = self.inner.lock() {
            if let Some(e) = map.get_mut(id) {
                if !matches!(
                    e.view.state,
                    RequestState::Running | RequestState::AwaitingDevice
                ) {
                    return;
                }
                e.possession = None;
                e.view.possession_challenge = None;
                match outcome {
                    Ok(Outcome::Controls(c)) => {
                        e.view.state = RequestState::Done;
                        e.view.controls = Some(c);
                    }
                    Ok(Outcome::Signed(s)) => {
                        e.view.state = RequestState::Done;
                        e.view.signature = Some(*s);
                    }
                    Ok(Outcome::Lifecycle(epoch)) => {
                        e.view.state = RequestState::Done;
                        e.view.outcome = Some(RequestOutcome {
                            lifecycle: LifecycleOutcome {
                                epoch,
                                committed: true,
                            },
                        });
                    }
                    Err(err) => {
                        e.view.state = RequestState::Failed;
                        e.view.error = Some(err);
                    }
                }
                e.finished_at = Some(Instant::now());
            }
        }
    }
}

/// A request whose new device did not prove possession in time fails (`timeout`).
fn fail_timeout(e: &mut Entry, now: Instant) {
    e.possession = None;
    e.view.possession_challenge = None;
    e.view.state = RequestState::Failed;
    e.view.error = Some(ErrorBody {
        code: wallet_types::ErrorCode::Timeout.as_str().to_string(),
        message: "the new device did not prove possession of its identity in time".into(),
    });
    e.finished_at = Some(now);
}

fn parse_signature(h: &str) -> Result<[u8; 64], ApiError> {
    let mut sig = [0u8; 64];
    hex::decode_to_slice(h.trim(), &mut sig)
        .map_err(|_| ApiError::InvalidInput("signature_hex must be 128 hex characters".into()))?;
    Ok(sig)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(wallet: &str) -> NewRequest {
        NewRequest {
            wallet_id: wallet.into(),
            action: RequestAction::Unfreeze,
            reason: String::new(),
            cosigner_url: "http://127.0.0.1:1".into(),
            origin: None,
            sign: None,
            new_device_identity: None,
        }
    }

    #[test]
    fn a_request_confirms_once_and_only_while_awaiting() {
        let r = Requests::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let a = r.submit(req("w")).unwrap();
        assert_eq!(a.state, RequestState::AwaitingConfirmation);
        assert_eq!(
            r.confirm(&a.request_id).unwrap().state,
            RequestState::Running
        );
        assert!(matches!(
            r.confirm(&a.request_id),
            Err(ApiError::RequestNotAwaiting {
                state: RequestState::Running,
                ..
            })
        ));
        assert!(r.reject(&a.request_id).is_err());
        r.finish(
            &a.request_id,
            Ok(Outcome::Controls(WalletControls::default())),
        );
        let v = r.get(&a.request_id).unwrap();
        assert_eq!(v.state, RequestState::Done);
        assert_eq!(v.controls, Some(WalletControls::default()));
        // A finished request does not change again.
        r.finish(
            &a.request_id,
            Err(ErrorBody {
                code: "x".into(),
                message: "y".into(),
            }),
        );
        assert_eq!(r.get(&a.request_id).unwrap().state, RequestState::Done);

        let b = r.submit(req("w")).unwrap();
        assert_eq!(
            r.reject(&b.request_id).unwrap().state,
            RequestState::Rejected
        );
        assert!(r.confirm(&b.request_id).is_err());
        assert!(matches!(r.get("nope"), Err(ApiError::UnknownRequest(_))));
    }

    #[test]
    fn unconfirmed_requests_expire_and_cannot_be_confirmed_after() {
        let r = Requests::new(Duration::ZERO, Duration::from_secs(3600));
        let a = r.submit(req("w")).unwrap();
        assert_eq!(r.get(&a.request_id).unwrap().state, RequestState::Expired);
        assert!(matches!(
            r.confirm(&a.request_id),
            Err(ApiError::RequestNotAwaiting {
                state: RequestState::Expired,
                ..
            })
        ));
    }

    #[test]
    fn a_page_cannot_queue_more_than_the_limit() {
        let r = Requests::new(Duration::from_secs(3600), Duration::from_secs(3600));
        for _ in 0..MAX_AWAITING {
            r.submit(req("w")).unwrap();
        }
        assert!(matches!(
            r.submit(req("w")),
            Err(ApiError::TooManyRequests(_))
        ));
        let first = r.list().unwrap().remove(0);
        r.reject(&first.request_id).unwrap();
        r.submit(req("w")).unwrap();
    }
}
