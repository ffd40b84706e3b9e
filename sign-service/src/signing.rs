//! Signing: StartSign (policy, then the cosigner's side of a full signing session as
//! a background job) and the presignature fast path, SignWithPresignature (a read-only
//! probe of the presignature, policy, the take-once, the partial signature).

use std::sync::Arc;
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PresignatureState, PARTY_COSIGNER};
use mpc_core::hd::DerivationPath;
use mpc_core::presign::StoredPresignature;
use mpc_core::{AccountKind, DigestKind, Session, SessionError, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{Roster, SessionId};
use tokio::sync::OwnedSemaphorePermit;

use crate::audit::AuditRecord;
use crate::authz::{Authorized, SignAuthorization};
use crate::error::CosignerError;
use crate::metrics::{SessionKind, SignPath};
use crate::policy::bitcoin::BitcoinInput;
use crate::scheduler::presign_account;
use crate::state::{random_id, signers_with, State};
use crate::store::{PresigSlot, PresigState, PresigTake, WalletRecord};

/// A presignature as the cosigner stores it: the record, and the epoch of the wallet's
/// shares it was made with (records stored before share epochs existed: 0). One of
/// another epoch than the wallet's is refused as unknown (a refresh or replacement
/// committed since; the commit also purged them).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct EpochPresignature {
    /// The presignature.
    #[serde(flatten)]
    pub record: StoredPresignature,
    /// The share epoch it was made at.
    #[serde(default)]
    pub share_epoch: u64,
}

/// Largest preimage accepted for signing.
pub const MAX_PREIMAGE: usize = 1 << 20;

/// What the caller asks to sign (fields checked).
pub(crate) struct SignRequest {
    pub account_id: String,
    pub path: DerivationPath,
    pub digest_kind: DigestKind,
    /// The proto payload kind (checked by the policy).
    pub payload_kind: i32,
    /// What the request carried: the preimage, or for typed data its JSON (the policy
    /// reads this).
    pub payload: Vec<u8>,
    /// What is signed: the payload itself, the EIP-712 preimage derived from it, or a
    /// PSBT input's BIP-143 preimage ([`crate::policy::signing_preimage`]).
    pub preimage: Vec<u8>,
    /// The analyzed PSBT and the input signed (`BITCOIN_PSBT_INPUT` only).
    pub bitcoin: Option<BitcoinInput>,
}

/// The request fields of a `BITCOIN_PSBT_INPUT` (ignored for every other kind).
pub(crate) struct BitcoinFields<'a> {
    /// The input to sign.
    pub input_index: u32,
    /// The network the PSBT's addresses are read in.
    pub network: &'a str,
}

impl SignRequest {
    /// Checks the payload kind and size, and derives what is signed (typed data is
    /// decoded here: bad typed data is refused before anything else happens; a PSBT is
    /// analyzed here with `wallet`'s account keys, and refused before anything else
    /// happens unless `bitcoin.input_index` is one of its inputs, all the wallet's, and
    /// `path` that input's path).
    pub(crate) fn new(
        wallet: &WalletRecord,
        account_id: String,
        path: DerivationPath,
        digest_kind: DigestKind,
        payload_kind: i32,
        payload: Vec<u8>,
        bitcoin: BitcoinFields<'_>,
    ) -> Result<Self, CosignerError> {
        let kind = cosigner_api::convert::payload_kind_from_proto(payload_kind)?;
        if payload.is_empty() || payload.len() > MAX_PREIMAGE {
            return Err(CosignerError::invalid(format!(
                "preimage must be 1..={MAX_PREIMAGE} bytes"
            )));
        }
        let bitcoin = if kind == pb::PayloadKind::BitcoinPsbtInput {
            let account = wallet
                .accounts
                .get(&account_id)
                .ok_or_else(|| CosignerError::UnknownAccount(account_id.clone()))?;
            let prepared = crate::policy::bitcoin::prepare(
                &payload,
                account,
                &path,
                digest_kind,
                bitcoin.input_index,
                bitcoin.network,
            )
            .inspect_err(|e| {
                tracing::warn!(wallet_id = %wallet.wallet_id, account_id = %account_id, input_index = bitcoin.input_index, error = %e, "PSBT input refused before the policy");
            })?;
            Some(prepared)
        } else {
            None
        };
        let preimage = crate::policy::signing_preimage(kind, &payload, bitcoin.as_ref())
            .map_err(|e| CosignerError::invalid(e.to_string()))?;
        if let Some(b) = &bitcoin {
            // What the parties sign hashes to the sighash the codec computed.
            if digest_kind.digest(&preimage) != b.input().sighash {
                return Err(CosignerError::internal(format!(
                    "input {}: the double SHA-256 of its BIP-143 preimage is not its sighash",
                    b.input().index
                )));
            }
        }
        Ok(SignRequest {
            account_id,
            path,
            digest_kind,
            payload_kind,
            payload,
            preimage,
            bitcoin,
        })
    }

    /// [`SignRequest::new`] for a request of `party`, with a refused PSBT (the codec's or
    /// the first checks' refusal, before the policy's rules run) written to the audit log
    /// as a denied `sign_request` naming the reason: the operator sees hostile or broken
    /// PSBTs, not only the policy's decisions. A failing audit write fails the request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audited(
        st: &State,
        wallet: &WalletRecord,
        party: u16,
        account_id: String,
        path: DerivationPath,
        digest_kind: DigestKind,
        payload_kind: i32,
        payload: Vec<u8>,
        bitcoin: BitcoinFields<'_>,
    ) -> Result<Self, CosignerError> {
        let (account, at, input) = (account_id.clone(), path.to_string(), bitcoin.input_index);
        match Self::new(
            wallet,
            account_id,
            path,
            digest_kind,
            payload_kind,
            payload,
            bitcoin,
        ) {
            Err(e @ CosignerError::Psbt(_)) => {
                let rule = e
                    .metadata()
                    .remove(cosigner_api::error::META_RULE)
                    .unwrap_or_else(|| "invalid_input".into());
                st.audit(AuditRecord {
                    timestamp_ms: now_ms(),
                    event: "sign_request",
                    wallet_id: wallet.wallet_id.clone(),
                    party: Some(party),
                    account_id: Some(account),
                    path: Some(at),
                    payload_kind: Some(pb::PayloadKind::BitcoinPsbtInput.as_str_name().into()),
                    decision: Some("deny"),
                    reason: Some(format!("{rule}: input {input}: {e}")),
                    insecure_dev_primes: wallet.insecure_dev_primes.then_some(true),
                    ..Default::default()
                })?;
                Err(e)
            }
            other => other,
        }
    }

    fn authorization<'a>(
        &'a self,
        wallet: &'a WalletRecord,
        party: u16,
        session_id: Option<String>,
        presignature_id: Option<String>,
    ) -> SignAuthorization<'a> {
        SignAuthorization {
            wallet,
            party,
            account_id: &self.account_id,
            path: &self.path,
            digest_kind: self.digest_kind,
            payload_kind: self.payload_kind,
            payload: &self.payload,
            preimage: &self.preimage,
            bitcoin: self.bitcoin.as_ref(),
            session_id,
            presignature_id,
        }
    }
}

/// A signing session the cosigner has joined.
pub(crate) struct SignStarted {
    pub room: pb::SessionRoom,
    pub signers: Vec<u16>,
    pub authorized: Authorized,
}

/// StartSign: checks the account and path, applies the policy (audited) and starts the
/// cosigner's side of the signing session in the background.
pub(crate) async fn start_sign(
    st: &Arc<State>,
    wallet: WalletRecord,
    party: u16,
    req: SignRequest,
) -> Result<SignStarted, CosignerError> {
    let account = wallet
        .accounts
        .get(&req.account_id)
        .ok_or_else(|| CosignerError::UnknownAccount(req.account_id.clone()))?;
    if account.kind == AccountKind::Independent && !req.path.is_root() {
        return Err(CosignerError::invalid(
            "independent accounts sign at the root path only",
        ));
    }
    let permit = st.permit()?;
    let now = now_ms();
    let session = random_id()?;
    let authorized = st
        .authorize_sign(req.authorization(&wallet, party, Some(session.to_string()), None))
        .await?;
    let expiry_unix = now / 1000 + st.cfg.session_timeout_secs + 1;
    let room = st.room(&session, expiry_unix);
    let signers = signers_with(party);
    tracing::info!(wallet_id = %wallet.wallet_id, account_id = %req.account_id, request_id = %authorized.request_id, session = %session, party, "signing session started");
    tokio::spawn(run_sign(
        Arc::clone(st),
        wallet,
        req,
        room.clone(),
        signers.clone(),
        authorized.request_id.clone(),
        party,
        permit,
    ));
    Ok(SignStarted {
        room,
        signers,
        authorized,
    })
}

/// The cosigner's side of one signing session; checks the joint signature.
async fn sign_session(
    st: &Arc<State>,
    wallet: &WalletRecord,
    req: SignRequest,
    room: &pb::SessionRoom,
    signers: Vec<u16>,
    party: u16,
) -> Result<(), CosignerError> {
    let account = wallet
        .accounts
        .get(&req.account_id)
        .cloned()
        .ok_or_else(|| CosignerError::UnknownAccount(req.account_id.clone()))?;
    let expected_pk = account
        .public_key_at(&req.path)
        .map_err(|e| CosignerError::invalid(e.to_string()))?;
    let digest_kind = req.digest_kind;
    let digest = digest_kind.digest(&req.preimage);
    let caller = *wallet
        .identity_of(party)
        .ok_or_else(|| CosignerError::internal(format!("party {party} cannot sign")))?;
    let roster = Roster::new([(party, caller), (PARTY_COSIGNER, st.identity.public())])
        .map_err(CosignerError::internal)?;
    let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
    let sid_bytes = sid.as_str().as_bytes().to_vec();
    let ctx = st.party_ctx(
        room,
        sid,
        roster,
        Duration::from_secs(st.cfg.session_timeout_secs),
    );
    let aux = wallet.aux_info.clone();
    let indices = (!req.path.is_root()).then(|| req.path.indices().to_vec());
    let preimage = req.preimage;
    let out = run_session(
        ctx,
        move || {
            let share = account
                .complete(&aux)
                .map_err(|e| SessionError::InvalidParams(e.to_string()))?;
            Session::sign(
                &sid_bytes,
                signers,
                share,
                indices,
                digest_kind.data_to_sign(&preimage),
            )
        },
        |_| {},
    )
    .await?;
    let SessionOutput::Signature(sig) = out else {
        return Err(CosignerError::internal(
            "signing session produced another output",
        ));
    };
    mpc_core::signature::verify_digest(&expected_pk, &digest, &sig).map_err(|e| {
        CosignerError::SessionFailed {
            party: Some(party),
            reason: format!("the joint signature does not verify: {e}"),
        }
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_sign(
    st: Arc<State>,
    wallet: WalletRecord,
    req: SignRequest,
    room: pb::SessionRoom,
    signers: Vec<u16>,
    request_id: String,
    party: u16,
    _permit: OwnedSemaphorePermit,
) {
    let started = std::time::Instant::now();
    let account_id = req.account_id.clone();
    let outcome = sign_session(&st, &wallet, req, &room, signers, party).await;
    st.metrics.session(SessionKind::Sign, outcome.is_ok());
    if outcome.is_ok() {
        st.metrics.signed(SignPath::Full, started.elapsed());
    }
    let ms = started.elapsed().as_millis() as u64;
    let outcome_text = match &outcome {
        Ok(()) => {
            tracing::info!(wallet_id = %wallet.wallet_id, account_id = %account_id, request_id = %request_id, ms, "signed");
            "signed".to_string()
        }
        Err(e) => {
            tracing::error!(wallet_id = %wallet.wallet_id, account_id = %account_id, request_id = %request_id, ms, error = %e, code = %e.code(), "signing failed");
            format!("failed: {e}")
        }
    };
    // The signature has left with the protocol's last round: a failed write cannot undo
    // it. `State::audit` logs it loudly with the record (the request's `sign_request`
    // record, written before the session started, is in the log).
    let _logged_on_failure = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "sign_outcome",
        wallet_id: wallet.wallet_id.clone(),
        party: Some(party),
        account_id: Some(account_id),
        request_id: Some(request_id),
        session_id: Some(room.session_id),
        outcome: Some(outcome_text),
        ..Default::default()
    });
}

/// The cosigner's partial signature made with a presignature.
pub(crate) struct Partial {
    pub bytes: Vec<u8>,
    pub signers: Vec<u16>,
    pub authorized: Authorized,
}

/// SignWithPresignature. An unknown or used id, or one generated for another path than
/// `req.path`, is refused by a read-only probe before the policy (and its daily spend):
/// nothing is consumed; then the presignature is taken once (one committed
/// transaction: removed and recorded as used, refused again there if its path
/// differs) and only then is the partial computed, after its sealed record's own path
/// is checked once more (a mismatch there issues nothing).
pub(crate) async fn sign_with_presignature(
    st: &Arc<State>,
    wallet: &WalletRecord,
    party: u16,
    presignature_id: String,
    req: SignRequest,
) -> Result<Partial, CosignerError> {
    presign_account(wallet, &req.account_id, &req.path)?;
    let id = presignature_id;
    if SessionId::new(id.clone()).is_err() {
        return Err(CosignerError::invalid(format!(
            "presignature_id {id:?} is not a valid id"
        )));
    }
    let slot = PresigSlot {
        wallet_id: wallet.wallet_id.clone(),
        account_id: req.account_id.clone(),
        party,
        path: req.path.to_string(),
    };
    let unavailable = |state| CosignerError::PresignatureUnavailable {
        id: id.clone(),
        state,
    };
    let other_path = |bound: String| CosignerError::PresignaturePathMismatch {
        id: id.clone(),
        bound,
        requested: req.path.to_string(),
    };
    // A store older than its rollback anchor answers nothing about its presignatures.
    st.guarded(|g, s| g.check(s)).await?;
    let (slot2, id2) = (slot.clone(), id.clone());
    match st
        .blocking(move |s| s.presignature_state(&slot2, &id2))
        .await?
    {
        PresigState::Available => {}
        PresigState::OtherPath(bound) => {
            tracing::warn!(wallet_id = %wallet.wallet_id, account_id = %req.account_id, presignature_id = %id, bound = %bound, requested = %req.path, "SignWithPresignature at another path than the presignature's: refused, not consumed");
            return Err(other_path(bound));
        }
        PresigState::Used => return Err(unavailable(PresignatureState::Used)),
        PresigState::Unknown => return Err(unavailable(PresignatureState::Unknown)),
    }
    let authorized = st
        .authorize_sign(req.authorization(wallet, party, None, Some(id.clone())))
        .await?;
    // Consume first (committed), compute after.
    let (slot2, id2) = (slot.clone(), id.clone());
    let now = now_ms();
    let taken = st
        .guarded(move |g, s| g.take::<EpochPresignature>(s, &slot2, &id2, now))
        .await;
    let outcome = |text: String| AuditRecord {
        timestamp_ms: now_ms(),
        event: "sign_outcome",
        wallet_id: wallet.wallet_id.clone(),
        party: Some(party),
        account_id: Some(req.account_id.clone()),
        path: Some(req.path.to_string()),
        request_id: Some(authorized.request_id.clone()),
        presignature_id: Some(id.clone()),
        outcome: Some(text),
        ..Default::default()
    };
    let stored = match taken {
        Ok(PresigTake::Taken(p)) if p.share_epoch != wallet.share_epoch => {
            // Made with the shares of another epoch (a refresh or a replacement
            // committed since): consumed, refused exactly as an unknown one.
            st.audit(outcome(format!(
                "refused: presignature of share epoch {}, the wallet is at {}",
                p.share_epoch, wallet.share_epoch
            )))?;
            return Err(unavailable(PresignatureState::Unknown));
        }
        Ok(PresigTake::Taken(p)) => p.record,
        Ok(PresigTake::OtherPath(bound)) => {
            st.audit(outcome(format!(
                "refused: presignature of path {bound}, not consumed"
            )))?;
            return Err(other_path(bound));
        }
        Ok(other) => {
            // Raced with another request for the same id.
            st.audit(outcome("refused: presignature unavailable".into()))?;
            return Err(unavailable(match other {
                PresigTake::Used => PresignatureState::Used,
                _ => PresignatureState::Unknown,
            }));
        }
        Err(e) => {
            st.audit(outcome(format!("failed: {e}")))?;
            return Err(e);
        }
    };
    tracing::info!(wallet_id = %wallet.wallet_id, account_id = %req.account_id, presignature_id = %id, request_id = %authorized.request_id, "presignature consumed");
    crate::hooks::after_presign_take().await;
    let signers = signers_with(party);
    if stored.signers != signers || stored.account_id != req.account_id {
        st.audit(outcome("failed: presignature record mismatch".into()))?;
        return Err(CosignerError::internal(format!(
            "presignature {id} does not belong to this account and signer pair"
        )));
    }
    let request = mpc_core::SignRequest {
        preimage: req.preimage.clone(),
        digest: req.digest_kind,
    };
    // The sealed record's own path (the store's index said the same; a mismatch here
    // means a damaged store): nothing is issued.
    let partial = match stored.issue_partial(&request, &req.path) {
        Ok(p) => p,
        Err(e) => {
            st.audit(outcome(format!("failed: {e}")))?;
            return Err(CosignerError::internal(format!(
                "presignature {id}: its record does not match its index: {e}"
            )));
        }
    };
    let bytes = mpc_core::presign::partial_to_bytes(&partial).to_vec();
    st.audit(outcome("partial signature issued".into()))?;
    Ok(Partial {
        bytes,
        signers,
        authorized,
    })
}
