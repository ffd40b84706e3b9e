//! ConfirmLifecycle: a user party (authenticated by the handler) reports the digests of
//! its new shares. Once the cosigner's sessions finished, both user parties confirmed
//! and every digest equals ours, the result is committed in ONE store transaction
//! (`Store::commit_lifecycle`). A failed session or a mismatch ends the session
//! (nothing changes); a session still running or waiting for the other party answers
//! `wallet_not_ready` (retryable).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cosigner_api::auth::now_ms;
use cosigner_api::pb;

use super::{Kind, Outcome, Pending, RunState};
use crate::audit::AuditRecord;
use crate::error::CosignerError;
use crate::state::State;
use crate::store::{LifecycleCommit, LifecycleOutcome, WalletRecord};

/// The user parties that must confirm.
const USER_PARTIES: [u16; 2] = [0, 2];

fn norm_hex(s: &str) -> String {
    s.trim().trim_start_matches("0x").to_ascii_lowercase()
}

/// Compares the caller's digests with ours: same account set, same digests.
fn digests_match(
    ours: &BTreeMap<String, String>,
    theirs: &HashMap<String, String>,
) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!(
            "expected digests of {} accounts, got {}",
            ours.len(),
            theirs.len()
        ));
    }
    for (id, d) in ours {
        match theirs.get(id) {
            None => return Err(format!("no digest for account {id}")),
            Some(t) if norm_hex(t) != *d => {
                return Err(format!("the new share's digest of account {id} differs"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// ConfirmLifecycle of the pending session `p` by `party` (already authenticated).
pub(crate) async fn confirm(
    st: &Arc<State>,
    party: u16,
    p: &Arc<Pending>,
    digests: &HashMap<String, String>,
) -> Result<pb::ConfirmLifecycleResponse, CosignerError> {
    let wait = Duration::from_secs(st.cfg.confirm_wait_secs);
    let mut rx = p.state.clone();
    let state = tokio::time::timeout(wait, async {
        rx.wait_for(|s| !matches!(s, RunState::Running))
            .await
            .map(|r| (*r).clone())
    })
    .await;
    let not_ready = |why| CosignerError::LifecycleNotReady(p.lifecycle_id.clone(), why);
    let out = match state {
        Err(_) | Ok(Ok(RunState::Running)) => {
            return Err(not_ready("the cosigner's sessions are still running"))
        }
        Ok(Err(_)) => return Err(CosignerError::internal("the lifecycle task vanished")),
        Ok(Ok(RunState::Failed(e))) => {
            end(st, p, party, format!("the cosigner's sessions failed: {e}"))?;
            return Err(CosignerError::SessionFailed {
                party: e.party(),
                reason: format!(
                    "lifecycle session {} failed on the cosigner: {e}; nothing changed",
                    p.lifecycle_id
                ),
            });
        }
        Ok(Ok(RunState::Done(out))) => out,
    };
    if let Err(why) = digests_match(&out.digests, digests) {
        end(st, p, party, why.clone())?;
        return Err(CosignerError::KeyMismatch(format!(
            "{why}: lifecycle session {} ended, nothing changed",
            p.lifecycle_id
        )));
    }
    let confirmed: Vec<u16> = {
        let mut c = p.lock_confirmed();
        c.insert(party);
        c.iter().copied().collect()
    };
    st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "lifecycle_confirm",
        wallet_id: p.wallet_id.clone(),
        party: Some(party),
        session_id: Some(p.lifecycle_id.clone()),
        decision: Some("allow"),
        outcome: Some(format!("digests match; confirmed by {confirmed:?}")),
        ..Default::default()
    })?;
    let epoch = if USER_PARTIES.iter().all(|q| confirmed.contains(q)) {
        commit(st, p, party, &out).await?
    } else {
        // Wait (as long as a confirmation waits for the sessions) for the other party.
        let mut committed = p.committed.subscribe();
        let waited = tokio::time::timeout(wait, committed.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(e)) => (*e).unwrap_or_default(),
            _ => return Err(not_ready("waiting for the other user party's confirmation")),
        }
    };
    Ok(pb::ConfirmLifecycleResponse {
        committed: true,
        epoch,
        confirmed_parties: USER_PARTIES.iter().copied().map(u32::from).collect(),
    })
}

/// Ends the pending session `p` without committing anything, audited.
fn end(st: &State, p: &Arc<Pending>, party: u16, why: String) -> Result<(), CosignerError> {
    st.lifecycles.remove(p);
    tracing::warn!(wallet_id = %p.wallet_id, lifecycle_id = %p.lifecycle_id, party, reason = %why, "lifecycle session ended without a commit");
    st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "lifecycle_confirm",
        wallet_id: p.wallet_id.clone(),
        party: Some(party),
        session_id: Some(p.lifecycle_id.clone()),
        decision: Some("deny"),
        reason: Some(why),
        outcome: Some("ended, nothing committed".into()),
        ..Default::default()
    })
}

/// Commits the result of `p`: returns the new epoch.
async fn commit(
    st: &Arc<State>,
    p: &Arc<Pending>,
    party: u16,
    out: &Outcome,
) -> Result<u64, CosignerError> {
    let now = now_ms();
    let replacement = match p.kind {
        Kind::Refresh => None,
        Kind::Replace(new) => Some((
            out.aux
                .clone()
                .ok_or_else(|| CosignerError::internal("a replacement without aux info"))?,
            new,
        )),
    };
    let c = LifecycleCommit {
        wallet_id: p.wallet_id.clone(),
        from_epoch: p.epoch,
        shares: out.shares.clone(),
        replacement,
        now_ms: now,
    };
    let done = st.blocking(move |s| s.commit_lifecycle(&c)).await?;
    let (epoch, deleted) = match done {
        LifecycleOutcome::Committed {
            epoch,
            presignatures_deleted,
        } => (epoch, Some(presignatures_deleted)),
        // A concurrent confirmation of the other party committed it.
        LifecycleOutcome::EpochMoved(e) if e == p.epoch + 1 => (e, None),
        LifecycleOutcome::EpochMoved(e) => {
            end(
                st,
                p,
                party,
                format!("the wallet moved to share epoch {e} meanwhile"),
            )?;
            return Err(CosignerError::SessionFailed {
                party: None,
                reason: format!(
                    "the wallet's shares changed meanwhile (epoch {e}): lifecycle session {} ended",
                    p.lifecycle_id
                ),
            });
        }
    };
    st.lifecycles.remove(p);
    p.committed.send_replace(Some(epoch));
    if let Some(deleted) = deleted {
        let device = match p.kind {
            Kind::Replace(new) => {
                format!("; device identity replaced by {new}, the old one retired")
            }
            Kind::Refresh => String::new(),
        };
        st.audit(AuditRecord {
            timestamp_ms: now,
            event: "lifecycle_committed",
            wallet_id: p.wallet_id.clone(),
            session_id: Some(p.lifecycle_id.clone()),
            decision: Some("allow"),
            outcome: Some(format!(
                "{} committed: share epoch {} -> {epoch}, {} accounts, {deleted} presignatures deleted{device}",
                p.kind.as_str(),
                p.epoch,
                out.shares.len()
            )),
            ..Default::default()
        })?;
        tracing::warn!(wallet_id = %p.wallet_id, lifecycle_id = %p.lifecycle_id, kind = p.kind.as_str(), epoch, presignatures_deleted = deleted, "lifecycle committed: new shares in use");
    }
    Ok(epoch)
}

/// A confirmation with no pending session (a retry after the commit, also after a
/// restart): committed if the digests are those of the wallet's current shares at its
/// current epoch (which a commit produced), else the session is unknown.
pub(crate) fn reconfirm(
    wallet: &WalletRecord,
    lifecycle_id: &str,
    digests: &HashMap<String, String>,
) -> Result<pb::ConfirmLifecycleResponse, CosignerError> {
    let ours = wallet
        .accounts
        .iter()
        .map(|(id, a)| {
            let d = mpc_core::lifecycle::public_data_digest(&a.share, wallet.share_epoch)
                .map_err(|e| CosignerError::internal(format!("digest of {id}: {e}")))?;
            Ok((id.clone(), hex::encode(d)))
        })
        .collect::<Result<BTreeMap<String, String>, CosignerError>>()?;
    if wallet.share_epoch == 0 || digests_match(&ours, digests).is_err() {
        return Err(CosignerError::UnknownLifecycle(lifecycle_id.to_string()));
    }
    Ok(pb::ConfirmLifecycleResponse {
        committed: true,
        epoch: wallet.share_epoch,
        confirmed_parties: USER_PARTIES.iter().copied().map(u32::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_comparison() {
        let ours: BTreeMap<String, String> = [("a", "ab01"), ("b", "cd02")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let theirs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(digests_match(&ours, &theirs(&[("a", "0xAB01"), ("b", "cd02")])).is_ok());
        assert!(digests_match(&ours, &theirs(&[("a", "ab01")])).is_err());
        assert!(digests_match(&ours, &theirs(&[("a", "ab01"), ("c", "cd02")])).is_err());
        assert!(digests_match(&ours, &theirs(&[("a", "ab01"), ("b", "cd03")])).is_err());
    }
}
