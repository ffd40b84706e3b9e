//! `RevokeDevice`, `FreezeWallet` and `UnfreezeWallet`: the wallet controls a user
//! reaches for when a device is lost or stolen. Each is authenticated like every other
//! request (a revoked identity is refused by `authenticate` itself), applied in one
//! store transaction (`Store::change_wallet_controls`) and audited.

use std::sync::Arc;

use cosigner_api::auth::now_ms;
use cosigner_api::pb;

use crate::audit::AuditRecord;
use crate::config::Config;
use crate::error::CosignerError;
use crate::state::State;
use crate::store::{ControlAction, ControlOutcome, WalletControls, WalletRecord};

/// Longest `reason` kept (characters).
const MAX_REASON_CHARS: usize = 200;

/// The device's keygen index.
pub(super) const DEVICE: u16 = 0;
/// The recovery party's keygen index.
pub(super) const RECOVERY: u16 = 2;

/// A request's `reason` for the audit log: at most 200 printable characters, trimmed
/// (`None` when empty).
pub(super) fn reason_of(reason: &str) -> Result<Option<String>, CosignerError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(CosignerError::invalid(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(CosignerError::invalid("reason: no control characters"));
    }
    Ok(Some(reason.trim().to_string()).filter(|r| !r.is_empty()))
}

/// The controls of `wallet` on the wire, with the refresh schedule (`cfg`).
pub(super) fn controls_pb(
    cfg: &Config,
    wallet: &WalletRecord,
    c: &WalletControls,
) -> pb::WalletControls {
    pb::WalletControls {
        frozen: c.frozen.is_some(),
        frozen_at_ms: c.frozen.as_ref().map_or(0, |f| f.at_ms),
        unfreeze_at_ms: c.unfreeze_at_ms.unwrap_or(0),
        revoked_parties: c.revoked.keys().copied().map(u32::from).collect(),
        refresh_due_at_ms: refresh_due_at_ms(cfg, wallet),
    }
}

/// When the refresh schedule (`refresh_interval_days`) asks for the wallet's next
/// refresh: its last refresh (or replacement), else its creation, plus the interval;
/// 0 without a schedule.
pub(crate) fn refresh_due_at_ms(cfg: &Config, wallet: &WalletRecord) -> u64 {
    if cfg.refresh_interval_days == 0 {
        return 0;
    }
    let from = wallet.last_refresh_at_ms.unwrap_or(wallet.created_at_ms);
    from.saturating_add(cfg.refresh_interval_days.saturating_mul(86_400_000))
}

/// Applies `action` by `party` to `wallet`, audits it as `event` and answers.
pub(super) async fn apply(
    st: &Arc<State>,
    wallet: &WalletRecord,
    party: u16,
    action: ControlAction,
    event: &'static str,
    reason: Option<String>,
) -> Result<pb::WalletControlsResponse, CosignerError> {
    let now = now_ms();
    let wallet_id = wallet.wallet_id.clone();
    let wid = wallet_id.clone();
    let out: ControlOutcome = st
        .blocking(move |s| s.change_wallet_controls(&wid, action, party, now))
        .await?;
    let outcome = match (out.changed, out.presignatures_deleted) {
        (false, _) => "unchanged".to_string(),
        (true, 0) => "applied".to_string(),
        (true, n) => format!("applied; {n} presignatures deleted"),
    };
    st.audit(AuditRecord {
        timestamp_ms: now,
        event,
        wallet_id: wallet_id.clone(),
        party: Some(party),
        reason,
        outcome: Some(outcome),
        ..Default::default()
    })?;
    tracing::warn!(
        %wallet_id,
        party,
        event,
        changed = out.changed,
        presignatures_deleted = out.presignatures_deleted,
        "wallet controls changed"
    );
    Ok(pb::WalletControlsResponse {
        controls: Some(controls_pb(&st.cfg, wallet, &out.controls)),
    })
}

pub(super) async fn revoke_device(
    st: &Arc<State>,
    req: pb::RevokeDeviceRequest,
) -> Result<pb::WalletControlsResponse, CosignerError> {
    let reason = reason_of(&req.reason)?;
    let (wallet, party) = st.authenticate(&req).await?;
    apply(
        st,
        &wallet,
        party,
        ControlAction::Revoke(DEVICE),
        "device_revoked",
        reason,
    )
    .await
}

pub(super) async fn freeze_wallet(
    st: &Arc<State>,
    req: pb::FreezeWalletRequest,
) -> Result<pb::WalletControlsResponse, CosignerError> {
    let reason = reason_of(&req.reason)?;
    let (wallet, party) = st.authenticate(&req).await?;
    apply(
        st,
        &wallet,
        party,
        ControlAction::Freeze,
        "wallet_frozen",
        reason,
    )
    .await
}

pub(super) async fn unfreeze_wallet(
    st: &Arc<State>,
    req: pb::UnfreezeWalletRequest,
) -> Result<pb::WalletControlsResponse, CosignerError> {
    let (wallet, party) = st.authenticate(&req).await?;
    if party != RECOVERY {
        return Err(CosignerError::RecoveryIdentityOnly {
            method: "UnfreezeWallet",
            party,
        });
    }
    let at = now_ms().saturating_add(st.cfg.unfreeze_delay_secs.saturating_mul(1000));
    apply(
        st,
        &wallet,
        party,
        ControlAction::UnfreezeAt(at),
        "wallet_unfreeze_requested",
        Some(format!(
            "takes effect at {at} ms (unfreeze_delay_secs {})",
            st.cfg.unfreeze_delay_secs
        )),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_schedule_counts_from_the_last_refresh_or_the_creation() {
        let mut wallet = crate::store::WalletRecord {
            wallet_id: "w".into(),
            label: String::new(),
            kind: mpc_core::AccountKind::Independent,
            device_identity: mpc_wire::IdentityKey::generate().unwrap().public(),
            recovery_identity: mpc_wire::IdentityKey::generate().unwrap().public(),
            created_at_ms: 1_000,
            insecure_dev_primes: true,
            aux_info: crate::dev_wallet::cosigner_aux(),
            accounts: Default::default(),
            share_epoch: 0,
            last_refresh_at_ms: None,
            retired_device_identities: Vec::new(),
        };
        let mut cfg = Config::default();
        assert_eq!(
            refresh_due_at_ms(&cfg, &wallet),
            0,
            "no schedule by default"
        );
        cfg.refresh_interval_days = 2;
        assert_eq!(refresh_due_at_ms(&cfg, &wallet), 1_000 + 2 * 86_400_000);
        wallet.last_refresh_at_ms = Some(5_000);
        assert_eq!(refresh_due_at_ms(&cfg, &wallet), 5_000 + 2 * 86_400_000);
        for bad in ["refresh_interval_days: 3651", "lifecycle_timeout_secs: 5"] {
            let e = Config::from_yaml(bad).unwrap().validate().unwrap_err();
            assert!(
                e.to_string().contains(bad.split(':').next().unwrap()),
                "{e}"
            );
        }
    }

    #[test]
    fn reasons_are_bounded_and_printable() {
        assert_eq!(reason_of("").unwrap(), None);
        assert_eq!(reason_of("  lost  ").unwrap(), Some("lost".into()));
        assert!(reason_of(&"x".repeat(201)).is_err());
        assert!(reason_of("line\nbreak").is_err());
        assert!(reason_of("\u{1b}[31m").is_err());
    }
}
