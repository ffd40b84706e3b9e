//! A wallet's controls: revoked identities and the freeze (RevokeDevice, FreezeWallet,
//! UnfreezeWallet). Sealed like every other record (the store key authenticates them:
//! a record edited or moved in the database does not open), one per wallet in
//! [`Table::WalletControls`]; a wallet without a record has no revoked identity and is
//! not frozen. Every change is one write transaction (serializable on PostgreSQL: two
//! cosigner instances cannot interleave a revocation with a presignature's store).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Outcome, Store, StoreError, Table, Tx};

/// The record name in the AEAD's associated data (the table's name).
const NAME: &str = "wallet_controls";

/// Who changed a control, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlChange {
    /// Keygen index of the identity that signed the request (0 device, 2 recovery).
    pub by_party: u16,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// What a wallet may do now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletControls {
    /// Revoked identities by keygen index (the device: 0).
    #[serde(default)]
    pub revoked: BTreeMap<u16, ControlChange>,
    /// The freeze in force, if any.
    #[serde(default)]
    pub frozen: Option<ControlChange>,
    /// When a requested unfreeze takes effect (the freeze ends then).
    #[serde(default)]
    pub unfreeze_at_ms: Option<u64>,
}

impl WalletControls {
    /// Whether `party`'s identity is revoked.
    pub fn is_revoked(&self, party: u16) -> bool {
        self.revoked.contains_key(&party)
    }

    /// Whether signing is refused at `now_ms`: frozen, and no unfreeze in effect yet.
    pub fn is_frozen(&self, now_ms: u64) -> bool {
        self.frozen.is_some() && self.unfreeze_at_ms.is_none_or(|t| now_ms < t)
    }

    /// These controls as seen at `now_ms`: a freeze whose unfreeze took effect is gone.
    pub fn at(mut self, now_ms: u64) -> Self {
        if self.frozen.is_some() && !self.is_frozen(now_ms) {
            self.frozen = None;
            self.unfreeze_at_ms = None;
        }
        self
    }
}

/// A change of [`Store::change_wallet_controls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// Revoke the identity of party `.0` (its presignatures are deleted in the same
    /// transaction).
    Revoke(u16),
    /// Freeze (cancels an unfreeze not in effect yet).
    Freeze,
    /// Unfreeze at `.0` ms since the epoch (the freeze stays until then).
    UnfreezeAt(u64),
}

/// What [`Store::change_wallet_controls`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOutcome {
    /// The controls after the change (as seen at the change's time).
    pub controls: WalletControls,
    /// Whether anything changed (a second revocation, or an unfreeze of a wallet that is
    /// not frozen, changes nothing).
    pub changed: bool,
    /// Presignatures deleted (a revocation: every unused one with that party).
    pub presignatures_deleted: usize,
}

impl Store {
    /// The controls of `wallet_id` as seen at `now_ms` (none recorded: nothing revoked,
    /// not frozen).
    pub fn wallet_controls(
        &self,
        wallet_id: &str,
        now_ms: u64,
    ) -> Result<WalletControls, StoreError> {
        let c = self.read(|tx| self.controls_in(tx, wallet_id))?;
        Ok(c.at(now_ms))
    }

    /// The recorded controls of `wallet_id` in `tx` (as stored, not aged).
    pub(super) fn controls_in(
        &self,
        tx: &mut dyn Tx,
        wallet_id: &str,
    ) -> Result<WalletControls, StoreError> {
        match tx.get(Table::WalletControls, wallet_id)? {
            Some(v) => self.decode(NAME, wallet_id, &v),
            None => Ok(WalletControls::default()),
        }
    }

    /// Writes the controls of `wallet_id` in `tx` (sealed).
    pub(super) fn put_controls_in(
        &self,
        tx: &mut dyn Tx,
        wallet_id: &str,
        c: &WalletControls,
    ) -> Result<(), StoreError> {
        let sealed = self.encode(NAME, wallet_id, c)?;
        tx.put(Table::WalletControls, wallet_id, &sealed)
    }

    /// Whether `party`'s identity is revoked for `wallet_id`, read inside the write
    /// transaction `tx` (so a store of a presignature and a revocation never interleave).
    pub(super) fn party_revoked_in(
        &self,
        tx: &mut dyn Tx,
        wallet_id: &str,
        party: u16,
    ) -> Result<bool, StoreError> {
        Ok(self.controls_in(tx, wallet_id)?.is_revoked(party))
    }

    /// Applies `action` by `by_party` to the controls of `wallet_id` at `now_ms`, in ONE
    /// write transaction with, for a revocation, the deletion of every unused
    /// presignature the revoked party holds with the cosigner (their ids are marked
    /// used, so a copy never signs). The wallet must exist.
    pub fn change_wallet_controls(
        &self,
        wallet_id: &str,
        action: ControlAction,
        by_party: u16,
        now_ms: u64,
    ) -> Result<ControlOutcome, StoreError> {
        self.write(|tx| {
            if tx.get(Table::Wallets, wallet_id)?.is_none() {
                return Err(StoreError::NotFound(format!("wallet {wallet_id}")));
            }
            let before = self.controls_in(tx, wallet_id)?.at(now_ms);
            let mut c = before.clone();
            let change = ControlChange {
                by_party,
                at_ms: now_ms,
            };
            let mut deleted = 0;
            match action {
                ControlAction::Revoke(party) => {
                    c.revoked.entry(party).or_insert(change);
                    deleted = delete_party_presignatures(tx, wallet_id, party, now_ms)?;
                }
                ControlAction::Freeze => {
                    if c.frozen.is_none() {
                        c.frozen = Some(change);
                    }
                    c.unfreeze_at_ms = None;
                }
                ControlAction::UnfreezeAt(at) => {
                    if c.frozen.is_some() && c.unfreeze_at_ms.is_none() {
                        c.unfreeze_at_ms = Some(at);
                    }
                }
            }
            let changed = c != before || deleted > 0;
            if changed {
                let sealed = self.encode(NAME, wallet_id, &c)?;
                tx.put(Table::WalletControls, wallet_id, &sealed)?;
            }
            let outcome = if changed {
                Outcome::Commit
            } else {
                Outcome::Abort
            };
            Ok((
                ControlOutcome {
                    controls: c,
                    changed,
                    presignatures_deleted: deleted,
                },
                outcome,
            ))
        })
    }
}

/// Deletes the unused presignatures of `wallet_id` held with `party` (keys
/// `wallet/account/party/id`), marking their ids used. Returns how many.
fn delete_party_presignatures(
    tx: &mut dyn Tx,
    wallet_id: &str,
    party: u16,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let prefix = format!("{wallet_id}/");
    let mut keys = Vec::new();
    for (k, _) in tx.entries(Table::Presignatures, &prefix)? {
        // k = wallet/account/party/id; account ids have no '/'.
        let rest = k.strip_prefix(prefix.as_str()).unwrap_or_default();
        let mut parts = rest.splitn(3, '/');
        let (_account, p) = (parts.next(), parts.next());
        if p.and_then(|p| p.parse::<u16>().ok()) == Some(party) {
            keys.push(k);
        }
    }
    for k in &keys {
        tx.remove(Table::Presignatures, k)?;
        tx.remove(Table::PresignaturePaths, k)?;
        tx.put_ms(Table::PresignaturesUsed, k, now_ms)?;
    }
    Ok(keys.len())
}
