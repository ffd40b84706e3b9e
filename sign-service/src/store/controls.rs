//! A wallet's controls: revoked identities and the freeze (RevokeDevice, FreezeWallet,
//! UnfreezeWallet). Sealed like every other record (the store key authenticates them:
//! a record edited on disk does not open), one per wallet in [`WALLET_CONTROLS`]; a
//! wallet without a record has no revoked identity and is not frozen.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{db_err, Store, StoreError, PRESIGS, PRESIGS_USED, PRESIG_PATHS};

/// Wallet id -> sealed [`WalletControls`].
pub(super) const WALLET_CONTROLS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("wallet_controls");
/// The record name in the AEAD's associated data.
pub(super) const WALLET_CONTROLS_NAME: &str = "wallet_controls";

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
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = match tx.open_table(WALLET_CONTROLS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(WalletControls::default()),
            Err(e) => return Err(db_err(e)),
        };
        let Some(v) = t.get(wallet_id).map_err(db_err)? else {
            return Ok(WalletControls::default());
        };
        let c: WalletControls = self.decode(WALLET_CONTROLS_NAME, wallet_id, v.value())?;
        Ok(c.at(now_ms))
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
        let tx = self.db.begin_write().map_err(db_err)?;
        let outcome = {
            let wallets = tx.open_table(super::WALLETS).map_err(db_err)?;
            if wallets.get(wallet_id).map_err(db_err)?.is_none() {
                return Err(StoreError::NotFound(format!("wallet {wallet_id}")));
            }
            let mut t = tx.open_table(WALLET_CONTROLS).map_err(db_err)?;
            let before: WalletControls = match t.get(wallet_id).map_err(db_err)? {
                Some(v) => self.decode(WALLET_CONTROLS_NAME, wallet_id, v.value())?,
                None => WalletControls::default(),
            };
            let mut c = before.clone().at(now_ms);
            let change = ControlChange {
                by_party,
                at_ms: now_ms,
            };
            let mut deleted = 0;
            match action {
                ControlAction::Revoke(party) => {
                    c.revoked.entry(party).or_insert(change);
                    deleted = delete_party_presignatures(&tx, wallet_id, party, now_ms)?;
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
            let changed = c != before.at(now_ms) || deleted > 0;
            if changed {
                let sealed = self.encode(WALLET_CONTROLS_NAME, wallet_id, &c)?;
                t.insert(wallet_id, sealed.as_slice()).map_err(db_err)?;
            }
            ControlOutcome {
                controls: c,
                changed,
                presignatures_deleted: deleted,
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(outcome)
    }
}

impl Store {
    /// Whether `party`'s identity is revoked for `wallet_id`, read inside the write
    /// transaction `tx` (so a store of a presignature and a revocation never interleave).
    pub(super) fn party_revoked_in(
        &self,
        tx: &redb::WriteTransaction,
        wallet_id: &str,
        party: u16,
    ) -> Result<bool, StoreError> {
        let t = tx.open_table(WALLET_CONTROLS).map_err(db_err)?;
        let Some(v) = t.get(wallet_id).map_err(db_err)? else {
            return Ok(false);
        };
        let c: WalletControls = self.decode(WALLET_CONTROLS_NAME, wallet_id, v.value())?;
        Ok(c.is_revoked(party))
    }
}

/// Deletes the unused presignatures of `wallet_id` held with `party` (keys
/// `wallet/account/party/id`), marking their ids used. Returns how many.
fn delete_party_presignatures(
    tx: &redb::WriteTransaction,
    wallet_id: &str,
    party: u16,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let prefix = format!("{wallet_id}/");
    let mut t = tx.open_table(PRESIGS).map_err(db_err)?;
    let mut keys = Vec::new();
    for item in t.range::<&str>(prefix.as_str()..).map_err(db_err)? {
        let (k, _) = item.map_err(db_err)?;
        let k = k.value();
        let Some(rest) = k.strip_prefix(prefix.as_str()) else {
            break;
        };
        // rest = account/party/id; account ids have no '/'.
        let mut parts = rest.splitn(3, '/');
        let (_account, p) = (parts.next(), parts.next());
        if p.and_then(|p| p.parse::<u16>().ok()) == Some(party) {
            keys.push(k.to_string());
        }
    }
    let mut used = tx.open_table(PRESIGS_USED).map_err(db_err)?;
    let mut paths = tx.open_table(PRESIG_PATHS).map_err(db_err)?;
    for k in &keys {
        t.remove(k.as_str()).map_err(db_err)?;
        paths.remove(k.as_str()).map_err(db_err)?;
        used.insert(k.as_str(), now_ms).map_err(db_err)?;
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{KeySource, PresigSlot, PresigState, WalletRecord, ROOT_PATH};
    use mpc_core::AccountKind;
    use mpc_wire::IdentityKey;
    use zeroize::Zeroizing;

    fn store(name: &str, key: u8) -> (Store, std::path::PathBuf) {
        let d = std::env::temp_dir().join(format!(
            "sign-service-controls-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        let p = d.join("store.redb");
        let k = KeySource::Hex(Zeroizing::new(hex::encode([key; 32])));
        (Store::open(&p, &k).unwrap(), p)
    }

    fn wallet(s: &Store, id: &str) {
        s.insert_wallet(&WalletRecord {
            wallet_id: id.into(),
            label: String::new(),
            kind: AccountKind::Independent,
            device_identity: IdentityKey::generate().unwrap().public(),
            recovery_identity: IdentityKey::generate().unwrap().public(),
            created_at_ms: 1,
            insecure_dev_primes: true,
            aux_info: crate::dev_wallet::cosigner_aux(),
            accounts: Default::default(),
        })
        .unwrap();
    }

    fn slot(wallet: &str, party: u16) -> PresigSlot {
        PresigSlot {
            wallet_id: wallet.into(),
            account_id: "a".into(),
            party,
            path: ROOT_PATH.into(),
        }
    }

    #[test]
    fn a_revocation_deletes_that_partys_presignatures_only_and_stops_new_ones() {
        let (s, _) = store("revoke", 1);
        wallet(&s, "w");
        wallet(&s, "w2");
        for (w, p, id) in [
            ("w", 0, "d1"),
            ("w", 0, "d2"),
            ("w", 2, "r1"),
            ("w2", 0, "o1"),
        ] {
            s.put_presignature(&slot(w, p), id, &1u8).unwrap();
        }
        assert_eq!(
            s.wallet_controls("w", 10).unwrap(),
            WalletControls::default()
        );
        let out = s
            .change_wallet_controls("w", ControlAction::Revoke(0), 2, 10)
            .unwrap();
        assert!(out.changed);
        assert_eq!(out.presignatures_deleted, 2);
        assert!(out.controls.is_revoked(0) && !out.controls.is_revoked(2));
        for (w, p, id, want) in [
            ("w", 0, "d1", PresigState::Used),
            ("w", 0, "d2", PresigState::Used),
            ("w", 2, "r1", PresigState::Available),
            ("w2", 0, "o1", PresigState::Available),
        ] {
            assert_eq!(s.presignature_state(&slot(w, p), id).unwrap(), want, "{id}");
        }
        // A session that finishes after the revocation stores nothing.
        assert!(matches!(
            s.put_presignature(&slot("w", 0), "late", &1u8),
            Err(StoreError::Revoked { party: 0, .. })
        ));
        s.put_presignature(&slot("w2", 0), "fine", &1u8).unwrap();
        // Again: nothing changes.
        let again = s
            .change_wallet_controls("w", ControlAction::Revoke(0), 0, 20)
            .unwrap();
        assert!(!again.changed);
        assert_eq!(
            again.controls.revoked[&0].by_party, 2,
            "the first one stays"
        );
        // An unknown wallet is refused.
        assert!(matches!(
            s.change_wallet_controls("nope", ControlAction::Freeze, 0, 1),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn freeze_unfreeze_after_a_delay_and_a_freeze_cancels_a_pending_unfreeze() {
        let (s, p) = store("freeze", 2);
        wallet(&s, "w");
        // Unfreezing a wallet that is not frozen changes nothing.
        let c = s
            .change_wallet_controls("w", ControlAction::UnfreezeAt(50), 2, 10)
            .unwrap();
        assert!(!c.changed && c.controls.unfreeze_at_ms.is_none());
        let c = s
            .change_wallet_controls("w", ControlAction::Freeze, 0, 100)
            .unwrap();
        assert!(c.changed && c.controls.is_frozen(100));
        let c = s
            .change_wallet_controls("w", ControlAction::UnfreezeAt(1_000), 2, 200)
            .unwrap();
        assert_eq!(c.controls.unfreeze_at_ms, Some(1_000));
        assert!(s.wallet_controls("w", 999).unwrap().is_frozen(999));
        // A second unfreeze does not move the time.
        let c = s
            .change_wallet_controls("w", ControlAction::UnfreezeAt(300), 2, 250)
            .unwrap();
        assert_eq!(c.controls.unfreeze_at_ms, Some(1_000));
        // A freeze cancels it.
        let c = s
            .change_wallet_controls("w", ControlAction::Freeze, 0, 300)
            .unwrap();
        assert_eq!(c.controls.unfreeze_at_ms, None);
        assert_eq!(c.controls.frozen.as_ref().map(|f| f.at_ms), Some(100));
        assert!(s.wallet_controls("w", 5_000).unwrap().is_frozen(5_000));
        s.change_wallet_controls("w", ControlAction::UnfreezeAt(6_000), 2, 5_000)
            .unwrap();
        // Persisted, and thawed once the time passed.
        drop(s);
        let k = KeySource::Hex(Zeroizing::new(hex::encode([2u8; 32])));
        let s = Store::open(&p, &k).unwrap();
        assert!(s.wallet_controls("w", 5_999).unwrap().is_frozen(5_999));
        assert_eq!(
            s.wallet_controls("w", 6_000).unwrap(),
            WalletControls::default()
        );
        // Frozen again later: a new freeze.
        let c = s
            .change_wallet_controls("w", ControlAction::Freeze, 2, 7_000)
            .unwrap();
        assert_eq!(c.controls.frozen.as_ref().map(|f| f.at_ms), Some(7_000));
    }

    #[test]
    fn controls_are_sealed_and_follow_a_rekey() {
        let (s, p) = store("sealed", 3);
        wallet(&s, "w");
        s.change_wallet_controls("w", ControlAction::Revoke(0), 2, 10)
            .unwrap();
        let new = KeySource::Hex(Zeroizing::new(hex::encode([4u8; 32])));
        s.rekey(&new).unwrap();
        drop(s);
        let s = Store::open(&p, &new).unwrap();
        assert!(s.wallet_controls("w", 20).unwrap().is_revoked(0));
        // A record moved to another wallet does not open (bound to its key).
        wallet(&s, "w2");
        {
            let tx = s.db.begin_write().unwrap();
            {
                let mut t = tx.open_table(WALLET_CONTROLS).unwrap();
                let v = t.get("w").unwrap().unwrap().value().to_vec();
                t.insert("w2", v.as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        assert!(matches!(
            s.wallet_controls("w2", 20),
            Err(StoreError::Tampered { .. })
        ));
    }
}
