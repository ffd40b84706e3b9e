//! Key lifecycle (`docs/lifecycle.md`): a proactive refresh of every share, and the
//! replacement of a lost device keeping every address. Three flows per party:
//!
//! ```text
//! StartLifecycle::refresh (device or recovery) ─► CallCosigner(StartRefresh) ─► Done(plan)
//! StartLifecycle::replace_device (recovery + the NEW device's identity)
//!   ─► CallCosigner(ReplaceDevice, with the new device's proof of possession) ─► Done(plan)
//!
//! LifecycleRun (one per user party taking part, all at once; started from the plan)
//!   refresh:      RunSession(refresh) per account ─► Done(PendingShares)
//!   replacement:  RunSession(aux-info, the new roster)
//!                 ─► per account RunSession(repair) ─► RunSession(refresh)
//!                 ─► Done(PendingShares)
//!       (the recovery party helps with `repair_helper(lost = 0)`, the new device
//!        receives its share with `repair_new`, checked against the account's public key)
//!
//! the driver stores PendingShares::bundle encrypted as a PENDING file, durably, then
//! ConfirmLifecycle::start ─► CallCosigner(ConfirmLifecycle)
//!   ─► wallet_not_ready / cosigner_unavailable: Wait(500 ms) and again, until the
//!      lifecycle expires ─► Done(Committed): the driver promotes the pending file
//! ```
//!
//! The cosigner's answer is checked against this party's shares before any session
//! runs: the epoch must be this party's, the accounts exactly this wallet's (with their
//! public keys), every room present and every session id distinct.

mod confirm;
mod plan;
mod run;
mod start;
mod template;

pub use confirm::{Committed, ConfirmLifecycle, ConfirmParams, ConfirmStep, EpochCheck, EpochStep};
pub use plan::{LifecycleAccount, LifecycleKind, LifecyclePlan};
pub use run::{LifecycleRun, LifecycleStep, NewDeviceParams, PendingShares};
pub use start::{StartLifecycle, StartStep};
pub use template::{NewDeviceTemplate, TemplateAccount};

/// Pause between two ConfirmLifecycle calls while the other parties finish.
pub const CONFIRM_RETRY_MS: u64 = 500;
/// Most ConfirmLifecycle calls (besides the lifecycle's own expiry).
pub const CONFIRM_ATTEMPTS: u32 = 1200;

/// Hex of the digest of a share's public data at `epoch`: what ConfirmLifecycle
/// carries per account.
pub fn share_digest(
    share: &mpc_core::IncompleteKeyShare,
    epoch: u64,
) -> Result<String, crate::error::ClientError> {
    mpc_core::lifecycle::public_data_digest(share, epoch)
        .map(hex::encode)
        .map_err(|e| crate::error::ClientError::internal(format!("share digest: {e}")))
}
