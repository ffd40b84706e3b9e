//! The commit of a key-lifecycle session (ConfirmLifecycle, `crate::lifecycle`): every
//! account's new share and the epoch + 1; for a device replacement also the new device
//! identity (the old one retired), the new aux info and the revocation of index 0
//! cleared; every presignature of the wallet purged (their ids marked used). ONE write
//! transaction: a crash leaves either the old epoch or the new one, never a mix.

use std::collections::BTreeMap;

use mpc_core::{AuxInfo, IncompleteKeyShare};
use mpc_wire::PublicIdentity;

use super::{
    consume_presignatures, Outcome, RetiredIdentity, Store, StoreError, Table, WalletRecord,
};

/// What [`Store::commit_lifecycle`] writes.
pub struct LifecycleCommit {
    /// The wallet.
    pub wallet_id: String,
    /// The epoch the session worked on: the wallet must still be at it.
    pub from_epoch: u64,
    /// The cosigner's new core share of every account of the wallet, by account id.
    pub shares: BTreeMap<String, IncompleteKeyShare>,
    /// A device replacement: the new group's aux info and the new device identity.
    pub replacement: Option<(Box<AuxInfo>, PublicIdentity)>,
    /// When, ms since the Unix epoch.
    pub now_ms: u64,
}

impl std::fmt::Debug for LifecycleCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleCommit")
            .field("wallet_id", &self.wallet_id)
            .field("from_epoch", &self.from_epoch)
            .field("accounts", &self.shares.keys().collect::<Vec<_>>())
            .field("replacement", &self.replacement.as_ref().map(|r| r.1))
            .finish_non_exhaustive()
    }
}

/// What [`Store::commit_lifecycle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleOutcome {
    /// Committed: the wallet is at `epoch` now.
    Committed {
        /// The new epoch.
        epoch: u64,
        /// Presignatures of the wallet deleted.
        presignatures_deleted: usize,
    },
    /// Nothing written: the wallet is at another epoch than `from_epoch` (this or
    /// another session committed already).
    EpochMoved(u64),
}

impl Store {
    /// Commits a lifecycle session's result (see the module documentation). The caller
    /// checked the shares (same public keys, complete with the aux info).
    pub fn commit_lifecycle(&self, c: &LifecycleCommit) -> Result<LifecycleOutcome, StoreError> {
        let id = c.wallet_id.as_str();
        self.write(|tx| {
            let Some(v) = tx.get(Table::Wallets, id)? else {
                return Err(StoreError::NotFound(format!("wallet {id}")));
            };
            let mut w: WalletRecord = self.decode("wallets", id, &v)?;
            if w.share_epoch != c.from_epoch {
                return Ok((LifecycleOutcome::EpochMoved(w.share_epoch), Outcome::Abort));
            }
            let epoch = w.share_epoch + 1;
            if w.accounts.len() != c.shares.len() {
                return Err(StoreError::Malformed(
                    format!("lifecycle commit of wallet {id}"),
                    format!(
                        "{} new shares for {} accounts",
                        c.shares.len(),
                        w.accounts.len()
                    ),
                ));
            }
            for (account_id, a) in w.accounts.iter_mut() {
                let share = c.shares.get(account_id).ok_or_else(|| {
                    StoreError::Malformed(
                        format!("lifecycle commit of wallet {id}"),
                        format!("no new share for account {account_id}"),
                    )
                })?;
                a.share = share.clone();
            }
            if let Some((aux, device)) = &c.replacement {
                w.retired_device_identities.push(RetiredIdentity {
                    identity: w.device_identity,
                    retired_at_ms: c.now_ms,
                    epoch,
                });
                w.device_identity = *device;
                w.aux_info = (**aux).clone();
                w.insecure_dev_primes = crate::import::uses_public_primes(&w.aux_info);
                let mut controls = self.controls_in(tx, id)?;
                if controls.revoked.remove(&0).is_some() {
                    self.put_controls_in(tx, id, &controls)?;
                }
            }
            w.share_epoch = epoch;
            w.last_refresh_at_ms = Some(c.now_ms);
            let deleted = consume_presignatures(tx, &format!("{id}/"), c.now_ms)?;
            let sealed = self.encode("wallets", id, &w)?;
            tx.put(Table::Wallets, id, &sealed)?;
            Ok((
                LifecycleOutcome::Committed {
                    epoch,
                    presignatures_deleted: deleted,
                },
                Outcome::Commit,
            ))
        })
    }
}
