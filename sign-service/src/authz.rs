//! Who may ask, and what may be signed: request authentication against the identities
//! registered for a wallet (with the replay cache), and the policy decision of a sign
//! request with its daily spend and its `sign_request` audit record.

use std::sync::Arc;

use cosigner_api::auth::{self, now_ms, AuthError, AuthenticatedRequest};
use cosigner_api::{pb, ReplayCache};
use mpc_core::hd::DerivationPath;
use mpc_wire::PublicIdentity;

use crate::audit::AuditRecord;
use crate::error::CosignerError;
use crate::policy::{self, Verdict};
use crate::state::{random_id, State};
use crate::store::{Store, StoreError, WalletControls, WalletRecord};

/// The replay cache at start-up: bounded per signing identity, with the unexpired
/// nonces of the store loaded back (the expired ones are deleted), so a request
/// accepted before a restart is still refused after it.
///
/// What is persisted: each accepted request's (scope, nonce) with its expiry (timestamp
/// or arrival, whichever is later, plus the skew window), written in the request's path
/// before it is served; entries leave the store when the cache forgets them (expired)
/// or at the next start. Nonces rather than per-identity monotonic counters: a client
/// sends requests concurrently (a refill beside a signature), which may arrive out of
/// order within the same millisecond.
pub(crate) fn open_replay_cache(
    store: &Store,
    window_ms: u64,
    per_identity: usize,
) -> Result<ReplayCache, StoreError> {
    let cache = ReplayCache::new(window_ms, per_identity);
    let now = now_ms();
    let mut loaded = 0usize;
    for e in store.replay_load(now)? {
        if cache.restore(&e.scope, e.nonce, e.expiry_ms, now) {
            loaded += 1;
        }
    }
    if loaded > 0 {
        tracing::info!(nonces = loaded, "replay cache restored from the store");
    }
    Ok(cache)
}

/// The replay scope of a wallet's party.
fn party_scope(wallet_id: &str, party: u32) -> String {
    format!("{wallet_id}/{party}")
}

/// The replay scope of a CreateWallet's device identity.
pub(crate) fn create_scope(device_identity: &str) -> String {
    format!("create/{device_identity}")
}

/// The replay scope of an EnrollDevice's device identity (apart from its
/// CreateWallets': the two requests are signed over different domains).
pub(crate) fn enroll_scope(device_identity: &str) -> String {
    format!("enroll/{device_identity}")
}

impl State {
    /// Records the nonce of a **verified** request in `scope` (the signing identity):
    /// refuses a nonce seen before (`unauthorized`) and one more nonce of an identity at
    /// its bound (`rate_limited`), then persists it (its request is refused if that
    /// fails).
    pub(crate) async fn record_nonce(
        &self,
        scope: String,
        nonce: &[u8],
        timestamp_ms: u64,
        now: u64,
    ) -> Result<(), CosignerError> {
        let rec = self
            .replay
            .check_and_insert(&scope, nonce, timestamp_ms, now)?;
        let n: [u8; 16] = nonce
            .try_into()
            .map_err(|_| AuthError::BadNonce(nonce.len()))?;
        let s = scope.clone();
        let res = self
            .blocking(move |st| st.replay_record(&s, &n, rec.expiry_ms, &rec.expired))
            .await;
        match res {
            Ok(true) => Ok(()),
            // Recorded already: accepted by another instance sharing the store. The
            // entry stays in this instance's cache too (a replay either way).
            Ok(false) => Err(AuthError::Replayed.into()),
            Err(e) => {
                self.replay.forget(&scope, nonce);
                Err(e)
            }
        }
    }

    /// Forgets a recorded nonce whose request was not served after all (CreateWallet
    /// refused for lack of capacity): only served requests keep their space.
    pub(crate) async fn forget_nonce(&self, scope: String, nonce: &[u8]) {
        self.replay.forget(&scope, nonce);
        let Ok(n) = <[u8; 16]>::try_from(nonce) else {
            return;
        };
        if let Err(e) = self.blocking(move |st| st.replay_forget(&scope, &n)).await {
            // Harmless: the entry expires with the window and is pruned at start-up.
            tracing::warn!(error = %e, "cannot delete a request nonce from the store");
        }
    }

    /// Verifies `req`'s audience, signature by `identity` and freshness, then records
    /// its nonce (only a valid request takes space in the replay cache).
    pub(crate) async fn verify_as<R: AuthenticatedRequest>(
        &self,
        req: &R,
        identity: &PublicIdentity,
    ) -> Result<(), CosignerError> {
        let now = now_ms();
        let me = self.public_identity();
        let auth = auth::verify_request(req, identity, &me, now, self.window_ms())?;
        let scope = party_scope(&auth.wallet_id, auth.party);
        self.admission.check_request(&scope)?;
        self.record_nonce(scope, &auth.nonce, auth.timestamp_ms, now)
            .await
    }

    /// A request that failed verification as `party`'s registered identity: if it
    /// verifies as a device identity a replacement retired, the replaced device learns
    /// it was revoked (`unauthorized`, `identity: revoked`), as it did between
    /// ReplaceDevice and the commit; otherwise `refused` stands. Only the holder of the
    /// retired identity can tell the two apart. No nonce is recorded: nothing runs.
    fn retired_or<R: AuthenticatedRequest>(
        &self,
        req: &R,
        wallet: &WalletRecord,
        party: u16,
        refused: CosignerError,
    ) -> CosignerError {
        let me = self.public_identity();
        let now = now_ms();
        let retired = party == 0
            && wallet.retired_device_identities.iter().any(|r| {
                auth::verify_request(req, &r.identity, &me, now, self.window_ms()).is_ok()
            });
        if retired {
            CosignerError::IdentityRevoked {
                wallet_id: wallet.wallet_id.clone(),
                party,
            }
        } else {
            refused
        }
    }

    /// A committed wallet with its controls (as of `now`).
    pub(crate) async fn load_wallet(
        &self,
        wallet_id: &str,
        now: u64,
    ) -> Result<Option<(WalletRecord, WalletControls)>, CosignerError> {
        let id = wallet_id.to_string();
        self.blocking(move |s| match s.get_wallet(&id)? {
            Some(w) => Ok(Some((w, s.wallet_controls(&id, now)?))),
            None => Ok(None),
        })
        .await
    }

    /// Verifies an authenticated request against a committed wallet and returns it with
    /// the caller's party. A wallet still being created answers `wallet_not_ready`, and
    /// only to a request signed by one of its registered parties. A revoked identity is
    /// refused (`unauthorized`, `identity: revoked`) whatever it asks; a frozen wallet
    /// still answers (reads and the controls themselves): the RPCs that sign or start
    /// sessions use [`State::authenticate_to_sign`].
    pub(crate) async fn authenticate<R: AuthenticatedRequest>(
        &self,
        req: &R,
    ) -> Result<(WalletRecord, u16), CosignerError> {
        self.authenticate_with_controls(req)
            .await
            .map(|(w, p, _)| (w, p))
    }

    /// [`State::authenticate`] for the RPCs that sign or start protocol sessions: a
    /// frozen wallet is refused too (`wallet_not_ready`, `wallet: frozen`).
    pub(crate) async fn authenticate_to_sign<R: AuthenticatedRequest>(
        &self,
        req: &R,
    ) -> Result<(WalletRecord, u16), CosignerError> {
        let (wallet, party, controls) = self.authenticate_with_controls(req).await?;
        if controls.is_frozen(now_ms()) {
            return Err(CosignerError::WalletFrozen {
                wallet_id: wallet.wallet_id,
                unfreeze_at_ms: controls.unfreeze_at_ms,
            });
        }
        Ok((wallet, party))
    }

    /// [`State::authenticate`], with the wallet's controls.
    pub(crate) async fn authenticate_with_controls<R: AuthenticatedRequest>(
        &self,
        req: &R,
    ) -> Result<(WalletRecord, u16, WalletControls), CosignerError> {
        let (auth, party) = auth::auth_of(req)?;
        let wallet_id = auth.wallet_id.clone();
        let Some((wallet, controls)) = self.load_wallet(&wallet_id, now_ms()).await? else {
            if let Some(pending) = self.creations.get(&wallet_id) {
                self.verify_as(req, &pending.identity_of(party)).await?;
                return Err(CosignerError::WalletNotConfirmed(wallet_id));
            }
            return Err(CosignerError::UnknownWallet(wallet_id));
        };
        let identity = *wallet
            .identity_of(party)
            .ok_or(AuthError::BadParty(u32::from(party)))?;
        // The signature first: only the holder of the identity learns it is revoked.
        if let Err(e) = self.verify_as(req, &identity).await {
            return Err(self.retired_or(req, &wallet, party, e));
        }
        if controls.is_revoked(party) {
            return Err(CosignerError::IdentityRevoked { wallet_id, party });
        }
        Ok((wallet, party, controls))
    }
}

/// What a sign request (StartSign or SignWithPresignature) asks for.
pub(crate) struct SignAuthorization<'a> {
    pub wallet: &'a WalletRecord,
    pub party: u16,
    pub account_id: &'a str,
    pub path: &'a DerivationPath,
    pub digest_kind: mpc_core::DigestKind,
    pub payload_kind: i32,
    /// What the request carried (the policy reads it).
    pub payload: &'a [u8],
    /// What is signed (its digest is audited and returned).
    pub preimage: &'a [u8],
    /// The analyzed PSBT and the input signed (`BITCOIN_PSBT_INPUT`).
    pub bitcoin: Option<&'a policy::bitcoin::BitcoinInput>,
    pub session_id: Option<String>,
    pub presignature_id: Option<String>,
}

/// An allowed sign request: its id (returned to the caller) and hex digest.
pub(crate) struct Authorized {
    pub request_id: String,
    pub digest: String,
}

impl State {
    /// Policy check (with the daily spend) and the `sign_request` audit record, shared
    /// by StartSign and SignWithPresignature: `policy_denied` naming the rule, or the
    /// request id and digest.
    pub(crate) async fn authorize_sign(
        self: &Arc<Self>,
        a: SignAuthorization<'_>,
    ) -> Result<Authorized, CosignerError> {
        let payload_kind = cosigner_api::convert::payload_kind_from_proto(a.payload_kind)?;
        let digest = hex::encode(a.digest_kind.digest(a.preimage));
        let now = now_ms();
        let request_id = random_id()?.to_string();
        let mut verdict = match a.bitcoin {
            Some(b) => policy::bitcoin::evaluate(&self.cfg.policy.bitcoin, b),
            None => policy::evaluate(
                &self.cfg.policy,
                &a.wallet.wallet_id,
                payload_kind,
                a.digest_kind,
                a.payload,
            ),
        };
        if let Verdict::Allow {
            daily: Some((amount, limit)),
            ..
        } = &verdict
        {
            let (amount, limit) = (*amount, *limit);
            let wid = a.wallet.wallet_id.clone();
            let day = policy::utc_day(now);
            let res = self
                .blocking(move |s| s.add_daily_spend(&wid, day, amount, limit))
                .await?;
            if let Err(spent) = res {
                verdict = Verdict::Deny {
                    rule: policy::rule::DAILY_VALUE_LIMIT_WEI,
                    reason: format!(
                        "value + maximum fee {amount} wei would exceed the daily limit {limit} wei \
                         (already {spent} wei today)"
                    ),
                };
            }
        }
        if let Verdict::Allow {
            bitcoin_daily: Some(d),
            ..
        } = &verdict
        {
            let d = d.clone();
            let wid = a.wallet.wallet_id.clone();
            let day = policy::utc_day(now);
            let (txid, sats, limit) = (d.txid.clone(), d.sats, d.limit);
            let res = self
                .blocking(move |s| s.add_bitcoin_daily_spend(&wid, day, &txid, sats, limit))
                .await?;
            if let Err(spent) = res {
                verdict = Verdict::Deny {
                    rule: policy::rule::BITCOIN_DAILY_LIMIT_SATS,
                    reason: format!(
                        "transaction {} sends {} sat to external outputs, which would exceed the \
                         daily limit {} sat (already {spent} sat today)",
                        d.txid, d.sats, d.limit
                    ),
                };
            }
        }
        let (decision, reason, tx, decoded) = match &verdict {
            Verdict::Allow { tx, fields, .. } => (
                "allow",
                None,
                tx.as_deref().map(policy::audit_summary),
                fields.clone(),
            ),
            Verdict::Deny { rule, reason } => (
                "deny",
                Some(format!("{rule}: {reason}")),
                None,
                a.bitcoin.map(policy::bitcoin::audit_summary),
            ),
            Verdict::Unsupported(why) => ("deny", Some(format!("unsupported: {why}")), None, None),
        };
        self.audit(AuditRecord {
            timestamp_ms: now,
            event: "sign_request",
            wallet_id: a.wallet.wallet_id.clone(),
            party: Some(a.party),
            account_id: Some(a.account_id.to_string()),
            path: Some(a.path.to_string()),
            digest: Some(digest.clone()),
            payload_kind: Some(
                pb::PayloadKind::try_from(a.payload_kind)
                    .map(|k| k.as_str_name().to_string())
                    .unwrap_or_default(),
            ),
            decision: Some(decision),
            reason: reason.clone(),
            request_id: Some(request_id.clone()),
            session_id: a.session_id.filter(|_| decision == "allow"),
            presignature_id: a.presignature_id,
            insecure_dev_primes: a.wallet.insecure_dev_primes.then_some(true),
            transaction: tx,
            decoded,
            ..Default::default()
        })?;
        match verdict {
            Verdict::Allow { .. } => {}
            Verdict::Deny { rule, reason } => {
                self.metrics.policy_refused(rule);
                tracing::warn!(wallet_id = %a.wallet.wallet_id, request_id = %request_id, rule, %reason, "policy refused a sign request");
                return Err(CosignerError::PolicyDenied {
                    rule: rule.to_string(),
                    reason,
                });
            }
            Verdict::Unsupported(why) => return Err(CosignerError::InvalidInput(why)),
        }
        Ok(Authorized { request_id, digest })
    }
}
