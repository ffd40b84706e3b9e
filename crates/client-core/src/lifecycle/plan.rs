//! The cosigner's answer to StartRefresh / ReplaceDevice, checked against the shares of
//! the party that will run it.

use std::collections::{BTreeMap, BTreeSet};

use cosigner_api::pb;
use mpc_core::keystore::KeyShareBundle;
use mpc_wire::PublicIdentity;
use wallet_types::MAX_ACCOUNTS;

use crate::controls::WalletControls;
use crate::error::ClientError;
use crate::session::Room;

/// Which lifecycle session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleKind {
    /// A proactive refresh (StartRefresh).
    Refresh,
    /// A device replacement (ReplaceDevice): aux info, repair, refresh.
    ReplaceDevice,
}

impl LifecycleKind {
    /// `refresh` or `replace-device`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleKind::Refresh => "refresh",
            LifecycleKind::ReplaceDevice => "replace-device",
        }
    }
}

/// One account's rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleAccount {
    /// The account id.
    pub account_id: String,
    /// The repair room (a replacement only).
    pub repair: Option<Room>,
    /// The refresh room.
    pub refresh: Room,
    /// The account's public key (compressed SEC1 hex), as this wallet holds it.
    pub public_key: String,
}

/// A lifecycle session the cosigner opened, checked.
#[derive(Debug, Clone)]
pub struct LifecyclePlan {
    /// Refresh or replacement.
    pub kind: LifecycleKind,
    /// Names the session (ConfirmLifecycle).
    pub lifecycle_id: String,
    /// The epoch the sessions work on; the result is `epoch + 1`.
    pub epoch: u64,
    /// The aux-info room of the new group (a replacement only).
    pub aux_info: Option<Room>,
    /// The accounts, in the cosigner's order.
    pub accounts: Vec<LifecycleAccount>,
    /// When the rooms and the pending session expire (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// The cosigner's audit reference.
    pub request_id: String,
    /// The new device's identity (a replacement only).
    pub new_device: Option<PublicIdentity>,
    /// The wallet's controls after the request.
    pub controls: WalletControls,
}

/// Longest lifecycle id accepted.
const MAX_LIFECYCLE_ID_LEN: usize = 256;

impl LifecyclePlan {
    /// Checks the cosigner's answer against `bundle` (the shares of the party that
    /// asked): the epoch, the exact set of accounts and their public keys, the rooms.
    pub fn from_pb(
        kind: LifecycleKind,
        r: pb::LifecycleResponse,
        bundle: &KeyShareBundle,
        new_device: Option<PublicIdentity>,
    ) -> Result<Self, ClientError> {
        let keys: BTreeMap<String, String> = bundle
            .accounts
            .iter()
            .map(|(id, a)| (id.clone(), a.public_key.clone()))
            .collect();
        LifecyclePlan::check(kind, r, bundle.share_epoch, &keys, new_device)
    }

    /// Checks the cosigner's answer against a party's facts: its share `epoch` and its
    /// accounts' public keys (compressed hex, by account id).
    pub(super) fn check(
        kind: LifecycleKind,
        r: pb::LifecycleResponse,
        epoch: u64,
        public_keys: &BTreeMap<String, String>,
        new_device: Option<PublicIdentity>,
    ) -> Result<Self, ClientError> {
        let bad = |r: String| ClientError::invalid_response(r);
        if r.lifecycle_id.is_empty() || r.lifecycle_id.len() > MAX_LIFECYCLE_ID_LEN {
            return Err(bad(format!(
                "the lifecycle id must have 1..={MAX_LIFECYCLE_ID_LEN} characters"
            )));
        }
        if r.epoch != epoch {
            return Err(bad(format!(
                "the cosigner's shares are at epoch {}, this party's at epoch {}: a lifecycle \
                 session must start from the same epoch (run `resume` if a previous one \
                 committed)",
                r.epoch, epoch
            )));
        }
        if r.epoch == u64::MAX {
            return Err(bad("the share epoch cannot grow past u64::MAX".into()));
        }
        if r.accounts.len() > public_keys.len() || r.accounts.len() > MAX_ACCOUNTS as usize {
            return Err(bad(format!(
                "the cosigner sent {} accounts, this wallet has {}",
                r.accounts.len(),
                public_keys.len()
            )));
        }
        let aux_info = match (kind, r.aux_info) {
            (LifecycleKind::ReplaceDevice, room) => Some(Room::from_pb(room, "aux-info")?),
            (LifecycleKind::Refresh, None) => None,
            (LifecycleKind::Refresh, Some(_)) => {
                return Err(bad(
                    "a refresh keeps the aux info, yet the cosigner opened an aux-info room".into(),
                ))
            }
        };
        let mut sessions: BTreeSet<String> =
            aux_info.iter().map(|r| r.session_id.clone()).collect();
        let mut seen = BTreeSet::new();
        let mut accounts = Vec::with_capacity(r.accounts.len());
        for a in r.accounts {
            let mine = public_keys.get(&a.account_id).ok_or_else(|| {
                bad(format!(
                    "the cosigner named account {:?}, which this wallet does not have",
                    a.account_id
                ))
            })?;
            if !seen.insert(a.account_id.clone()) {
                return Err(bad(format!("account {} is named twice", a.account_id)));
            }
            if !a.public_key.eq_ignore_ascii_case(mine) {
                return Err(bad(format!(
                    "account {}: the cosigner's public key {} is not this wallet's {}",
                    a.account_id, a.public_key, mine
                )));
            }
            let what = |s: &str| format!("{s} of account {}", a.account_id);
            let refresh = Room::from_pb(a.refresh, &what("refresh"))?;
            let repair = match (kind, a.repair) {
                (LifecycleKind::ReplaceDevice, room) => Some(Room::from_pb(room, &what("repair"))?),
                (LifecycleKind::Refresh, None) => None,
                (LifecycleKind::Refresh, Some(_)) => {
                    return Err(bad(format!(
                        "account {}: a refresh repairs nothing, yet the cosigner opened a \
                         repair room",
                        a.account_id
                    )))
                }
            };
            for room in repair.iter().chain([&refresh]) {
                if !sessions.insert(room.session_id.clone()) {
                    return Err(bad(format!("session id {} is used twice", room.session_id)));
                }
            }
            accounts.push(LifecycleAccount {
                account_id: a.account_id,
                repair,
                refresh,
                public_key: mine.clone(),
            });
        }
        let missing: Vec<&String> = public_keys
            .keys()
            .filter(|id| !seen.contains(*id))
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "the cosigner left out accounts {missing:?}: every account of the wallet must \
                 change epoch together"
            )));
        }
        if kind == LifecycleKind::ReplaceDevice && new_device.is_none() {
            return Err(ClientError::internal("a replacement names the new device"));
        }
        Ok(LifecyclePlan {
            kind,
            lifecycle_id: r.lifecycle_id,
            epoch: r.epoch,
            aux_info,
            accounts,
            expires_at_ms: r.expires_at_ms,
            request_id: r.request_id,
            new_device,
            controls: WalletControls::from_pb(r.controls).unwrap_or_default(),
        })
    }

    /// The new epoch.
    pub fn next_epoch(&self) -> u64 {
        self.epoch.saturating_add(1)
    }

    /// The public keys by account id.
    pub fn public_keys(&self) -> BTreeMap<String, String> {
        self.accounts
            .iter()
            .map(|a| (a.account_id.clone(), a.public_key.clone()))
            .collect()
    }
}
