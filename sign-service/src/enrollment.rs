//! Device enrollment (EnrollDevice): the cosigner's side of a device's aux info, run
//! ahead of wallet creation. While it runs the enrollment is held in memory (counted
//! with the pending wallets against `max_pending_creations`); once it finished the
//! enrollment is stored durably (its aux info sealed under the store key like every
//! record) until `enrollment_ttl_secs` after the request, or until a wallet created
//! from it is committed (spent). A failed aux info leaves nothing: the id is then
//! unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cosigner_api::auth::now_ms;
use cosigner_api::{pb, PARTY_COSIGNER};
use mpc_wire::{PublicIdentity, Roster};

use crate::audit::AuditRecord;
use crate::auxinfo::{admit_to_compute, run_aux_info};
use crate::creation::Enrolled;
use crate::error::CosignerError;
use crate::state::{random_id, State};
use crate::store::EnrollmentRecord;

/// An enrollment whose aux info still runs on the cosigner.
struct Running {
    device: PublicIdentity,
    recovery: PublicIdentity,
    /// The aux-info deadline (the job ends by then, successful or not).
    deadline_ms: u64,
}

/// The enrollments whose aux info still runs, by id.
#[derive(Default)]
pub(crate) struct Enrollments {
    running: Mutex<HashMap<String, Running>>,
}

impl Enrollments {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many enrollments are running.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Drops the running entries past their deadline at `now` (their job ends with
    /// a timeout); returns how many.
    pub(crate) fn expire(&self, now: u64) -> usize {
        let mut r = self.lock();
        let before = r.len();
        r.retain(|_, e| e.deadline_ms > now);
        before - r.len()
    }

    /// `Some(Ok)` when the enrollment `id` of (`device`, `recovery`) still runs,
    /// `Some(Err(NotYourEnrollment))` when it runs for other identities, `None` when it
    /// does not run.
    fn running_for(
        &self,
        id: &str,
        device: &PublicIdentity,
        recovery: &PublicIdentity,
    ) -> Option<Result<(), CosignerError>> {
        self.lock().get(id).map(|e| {
            if e.device == *device && e.recovery == *recovery {
                Ok(())
            } else {
                Err(CosignerError::NotYourEnrollment(id.to_string()))
            }
        })
    }
}

/// A started enrollment: where the parties meet.
pub(crate) struct Started {
    pub enrollment_id: String,
    pub aux_room: pb::SessionRoom,
    /// The aux-info room's expiry, ms.
    pub expires_at_ms: u64,
    /// The stored enrollment's expiry, ms.
    pub enrollment_expires_at_ms: u64,
}

/// Registers a running enrollment of (`device`, `recovery`) and starts the cosigner's
/// side of its aux info in the background (bounded with the pending wallets by
/// `max_pending_creations`; `busy` beyond). `registration` names what admitted it.
pub(crate) fn start(
    st: &Arc<State>,
    device: PublicIdentity,
    recovery: PublicIdentity,
    now: u64,
    registration: &str,
) -> Result<Started, CosignerError> {
    let me = st.identity.public();
    let roster = Roster::new([(0, device), (PARTY_COSIGNER, me), (2, recovery)])
        .map_err(|e| CosignerError::invalid(e.to_string()))?;
    st.check_pending_capacity()?;
    let enrollment_id = random_id()?.to_string();
    let deadline_ms = now + st.cfg.wallet_creation_timeout_secs * 1000;
    let aux_room = st.room(&random_id()?, deadline_ms / 1000 + 1);
    let enrollment_expires_at_ms = now + st.cfg.enrollment_ttl_secs * 1000;
    st.enrollments.lock().insert(
        enrollment_id.clone(),
        Running {
            device,
            recovery,
            deadline_ms,
        },
    );
    let audited = st.audit(AuditRecord {
        timestamp_ms: now,
        event: "enroll_device",
        wallet_id: enrollment_id.clone(),
        party: Some(0),
        session_id: Some(aux_room.session_id.clone()),
        outcome: Some(format!("started: registration {registration}")),
        ..Default::default()
    });
    if let Err(e) = audited {
        st.enrollments.remove(&enrollment_id);
        return Err(e);
    }
    tracing::info!(enrollment_id = %enrollment_id, "enrollment started");
    let record = EnrollmentSeed {
        enrollment_id: enrollment_id.clone(),
        device,
        recovery,
        created_at_ms: now,
        expires_at_ms: enrollment_expires_at_ms,
    };
    tokio::spawn(run(
        Arc::clone(st),
        record,
        aux_room.clone(),
        roster,
        deadline_ms,
    ));
    Ok(Started {
        enrollment_id,
        aux_room,
        expires_at_ms: deadline_ms,
        enrollment_expires_at_ms,
    })
}

/// What the stored record will hold besides the aux info.
struct EnrollmentSeed {
    enrollment_id: String,
    device: PublicIdentity,
    recovery: PublicIdentity,
    created_at_ms: u64,
    expires_at_ms: u64,
}

/// The background job: aux info, then the durable record; the running entry is
/// removed either way (after the record is stored, so a CreateWallet never finds
/// neither while it succeeds).
async fn run(
    st: Arc<State>,
    seed: EnrollmentSeed,
    room: pb::SessionRoom,
    roster: Roster,
    deadline_ms: u64,
) {
    let id = seed.enrollment_id.clone();
    let result = aux_and_store(&st, seed, &room, &roster, deadline_ms).await;
    st.enrollments.remove(&id);
    let outcome = match &result {
        Ok(()) => "stored".to_string(),
        Err(e) => {
            tracing::error!(enrollment_id = %id, error = %e, "enrollment failed");
            format!("failed: {e}")
        }
    };
    // The record is stored already; an audit failure is logged loudly by `audit`.
    let _ = st.audit(AuditRecord {
        timestamp_ms: now_ms(),
        event: "enrollment_aux",
        wallet_id: id,
        outcome: Some(outcome),
        ..Default::default()
    });
}

async fn aux_and_store(
    st: &Arc<State>,
    seed: EnrollmentSeed,
    room: &pb::SessionRoom,
    roster: &Roster,
    deadline_ms: u64,
) -> Result<(), CosignerError> {
    let _slot = admit_to_compute(st, room, roster, deadline_ms, "aux-info").await?;
    let aux = run_aux_info(st, &seed.enrollment_id, room, roster, deadline_ms).await?;
    let rec = EnrollmentRecord {
        enrollment_id: seed.enrollment_id,
        device_identity: seed.device,
        recovery_identity: seed.recovery,
        aux_info: aux,
        created_at_ms: seed.created_at_ms,
        expires_at_ms: seed.expires_at_ms,
        spent_by: None,
    };
    let id = rec.enrollment_id.clone();
    st.blocking(move |s| s.insert_enrollment(&rec)).await?;
    tracing::info!(enrollment_id = %id, "enrollment stored");
    Ok(())
}

/// The enrollment `id` for a CreateWallet by (`device`, `recovery`) at `now`:
/// `enrollment_running` while its aux info runs, `not_found` when unknown, failed,
/// expired or spent, `unauthorized` when it is another device's.
pub(crate) async fn usable(
    st: &State,
    id: &str,
    device: &PublicIdentity,
    recovery: &PublicIdentity,
    now: u64,
) -> Result<Enrolled, CosignerError> {
    if let Some(running) = st.enrollments.running_for(id, device, recovery) {
        running?;
        return Err(CosignerError::EnrollmentRunning(id.to_string()));
    }
    let key = id.to_string();
    let rec = st
        .blocking(move |s| s.get_enrollment(&key))
        .await?
        .filter(|r| r.usable(now))
        .ok_or_else(|| CosignerError::UnknownEnrollment(id.to_string()))?;
    if rec.device_identity != *device || rec.recovery_identity != *recovery {
        return Err(CosignerError::NotYourEnrollment(id.to_string()));
    }
    Ok(Enrolled {
        id: rec.enrollment_id,
        aux: Box::new(rec.aux_info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_enrollments_answer_by_identity_and_expire() {
        let e = Enrollments::default();
        let (d, r, other) = (
            mpc_wire::IdentityKey::generate().unwrap().public(),
            mpc_wire::IdentityKey::generate().unwrap().public(),
            mpc_wire::IdentityKey::generate().unwrap().public(),
        );
        e.lock().insert(
            "e1".into(),
            Running {
                device: d,
                recovery: r,
                deadline_ms: 100,
            },
        );
        assert!(matches!(e.running_for("e1", &d, &r), Some(Ok(()))));
        assert!(matches!(
            e.running_for("e1", &other, &r),
            Some(Err(CosignerError::NotYourEnrollment(_)))
        ));
        assert!(matches!(
            e.running_for("e1", &d, &other),
            Some(Err(CosignerError::NotYourEnrollment(_)))
        ));
        assert!(e.running_for("e2", &d, &r).is_none());
        assert_eq!(e.expire(50), 0);
        assert_eq!(e.expire(100), 1);
        assert_eq!(e.len(), 0);
    }
}
