//! The cosigner's side of a lifecycle session, in the background: for a replacement
//! the aux info of the new group (as enrollment: wait for the peers, a creation slot, a
//! prime set of the pool) and per account the repair of index 0's share (the cosigner
//! a helper); per account the refresh of its current share. Every session runs at once
//! (the user parties may join them in any order). The result (the new shares, checked:
//! same public key and chain code, complete with the aux info) waits in memory for
//! ConfirmLifecycle; nothing is stored here.

use std::collections::BTreeMap;
use std::sync::Arc;

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PARTY_COSIGNER};
use futures_util::future::try_join_all;
use mpc_core::{Account, AuxInfo, IncompleteKeyShare, Session, SessionOutput};
use mpc_party::run_session;
use mpc_wire::{Roster, SessionId};
use tokio::sync::watch;

use super::{AccountRooms, Kind, Outcome, RunState};
use crate::audit::AuditRecord;
use crate::auxinfo::{admit_to_compute, remaining, run_aux_info, with_context};
use crate::error::CosignerError;
use crate::metrics::SessionKind;
use crate::state::State;
use crate::store::WalletRecord;

/// The index whose share a replacement repairs (the device).
const LOST: u16 = 0;

/// What the background job runs.
pub(super) struct Plan {
    pub lifecycle_id: String,
    /// The wallet as it was when the session opened (its epoch-`e` shares).
    pub wallet: WalletRecord,
    pub kind: Kind,
    pub roster: Roster,
    pub aux_room: Option<pb::SessionRoom>,
    pub accounts: Vec<AccountRooms>,
    pub deadline_ms: u64,
}

/// Runs the sessions of `plan` and publishes the result on `tx`.
pub(super) async fn run(st: Arc<State>, plan: Plan, tx: watch::Sender<RunState>) {
    let result = sessions(&st, &plan).await;
    let (mut state, outcome) = match result {
        Ok(r) => (
            RunState::Done(Arc::new(r)),
            "the cosigner's sessions finished, awaiting ConfirmLifecycle".to_string(),
        ),
        Err(e) => {
            tracing::error!(wallet_id = %plan.wallet.wallet_id, lifecycle_id = %plan.lifecycle_id, error = %e, "lifecycle session failed");
            let text = format!("failed: {e}");
            (RunState::Failed(Arc::new(e)), text)
        }
    };
    let audited = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "lifecycle_sessions",
        wallet_id: plan.wallet.wallet_id.clone(),
        session_id: Some(plan.lifecycle_id.clone()),
        outcome: Some(outcome),
        ..Default::default()
    });
    if let Err(e) = audited {
        // A result that is not in the audit log is not committed.
        state = RunState::Failed(Arc::new(e));
    }
    let _ = tx.send(state);
}

async fn sessions(st: &Arc<State>, plan: &Plan) -> Result<Outcome, CosignerError> {
    let aux = async {
        match &plan.aux_room {
            None => Ok(None),
            Some(room) => {
                let _slot =
                    admit_to_compute(st, room, &plan.roster, plan.deadline_ms, "aux-info").await?;
                let aux =
                    run_aux_info(st, &plan.lifecycle_id, room, &plan.roster, plan.deadline_ms)
                        .await?;
                Ok::<_, CosignerError>(Some(Box::new(aux)))
            }
        }
    };
    let accounts = try_join_all(plan.accounts.iter().map(|rooms| account(st, plan, rooms)));
    let (aux, shares) = tokio::try_join!(aux, accounts)?;
    let group_aux: &AuxInfo = match (&aux, plan.kind) {
        (Some(a), Kind::Replace(_)) => a,
        (None, Kind::Refresh) => &plan.wallet.aux_info,
        _ => {
            return Err(CosignerError::internal(
                "aux info of the wrong session kind",
            ))
        }
    };
    let mut out = Outcome {
        shares: BTreeMap::new(),
        digests: BTreeMap::new(),
        aux: None,
    };
    for (account_id, share) in shares {
        let old = plan
            .wallet
            .accounts
            .get(&account_id)
            .ok_or_else(|| CosignerError::UnknownAccount(account_id.clone()))?;
        check_share(old, &share, group_aux).map_err(|why| CosignerError::SessionFailed {
            party: None,
            reason: format!("refresh of {account_id}: {why}"),
        })?;
        let digest =
            mpc_core::lifecycle::public_data_digest(&share, plan.wallet.share_epoch + 1)
                .map_err(|e| CosignerError::internal(format!("digest of {account_id}: {e}")))?;
        out.digests.insert(account_id.clone(), hex::encode(digest));
        out.shares.insert(account_id, share);
    }
    out.aux = aux;
    Ok(out)
}

/// A refreshed share must keep the account's public key, chain code and our index,
/// and make a complete key share with the group's aux info.
fn check_share(old: &Account, new: &IncompleteKeyShare, aux: &AuxInfo) -> Result<(), String> {
    if new.shared_public_key != old.share.shared_public_key {
        return Err("the new share is of another public key".into());
    }
    if new.chain_code != old.share.chain_code {
        return Err("the new share has another chain code".into());
    }
    if new.i != PARTY_COSIGNER {
        return Err(format!("the new share is of party {}", new.i));
    }
    let mut a = old.clone();
    a.share = new.clone();
    a.complete(aux)
        .map(drop)
        .map_err(|e| format!("the new share does not complete with the aux info: {e}"))
}

/// One account: the repair (a replacement) beside the refresh of the cosigner's share.
async fn account(
    st: &Arc<State>,
    plan: &Plan,
    rooms: &AccountRooms,
) -> Result<(String, IncompleteKeyShare), CosignerError> {
    let id = &rooms.account_id;
    let share = plan
        .wallet
        .accounts
        .get(id)
        .map(|a| a.share.clone())
        .ok_or_else(|| CosignerError::UnknownAccount(id.clone()))?;
    let epoch = plan.wallet.share_epoch;
    let repair = async {
        let Some(room) = &rooms.repair else {
            return Ok(());
        };
        let (sid, ctx) = context(st, plan, room)?;
        let share = share.clone();
        let out = run_session(
            ctx,
            move || Session::repair_helper(&sid, &share, epoch, LOST),
            |_| {},
        )
        .await;
        st.metrics.session(SessionKind::Repair, out.is_ok());
        let out = out.map_err(|e| with_context(&format!("repair of {id}"), e.into()))?;
        match out {
            SessionOutput::RepairHelped => Ok(()),
            _ => Err(CosignerError::internal(format!(
                "repair of {id} produced another output"
            ))),
        }
    };
    let refresh = async {
        let (sid, ctx) = context(st, plan, &rooms.refresh)?;
        let share = share.clone();
        let out = run_session(ctx, move || Session::refresh(&sid, &share, epoch), |_| {}).await;
        st.metrics.session(SessionKind::Refresh, out.is_ok());
        let out = out.map_err(|e| with_context(&format!("refresh of {id}"), e.into()))?;
        let SessionOutput::Refreshed(new) = out else {
            return Err(CosignerError::internal(format!(
                "refresh of {id} produced another output"
            )));
        };
        if new.epoch != epoch + 1 {
            return Err(CosignerError::internal(format!(
                "refresh of {id} produced epoch {}, not {}",
                new.epoch,
                epoch + 1
            )));
        }
        tracing::info!(wallet_id = %plan.wallet.wallet_id, account_id = %id, epoch = new.epoch, "refresh done");
        Ok(new.share)
    };
    let ((), share) = tokio::try_join!(repair, refresh)?;
    Ok((id.clone(), share))
}

/// The session id bytes and the party context of `room`.
fn context(
    st: &State,
    plan: &Plan,
    room: &pb::SessionRoom,
) -> Result<(Vec<u8>, mpc_party::PartyContext), CosignerError> {
    let sid = SessionId::new(room.session_id.clone()).map_err(CosignerError::internal)?;
    let bytes = sid.as_str().as_bytes().to_vec();
    let ctx = st.party_ctx(room, sid, plan.roster.clone(), remaining(plan.deadline_ms));
    Ok((bytes, ctx))
}
