//! What a new device needs from the recovery party when it does not run on the same
//! machine (a browser profile joining the recovery agent's replacement): the wallet's
//! public facts, and the cosigner's plan as bytes, checked exactly as the flow that
//! received it checks it.

use std::collections::BTreeMap;

use cosigner_api::pb;
use mpc_core::primes::PrimeSet;
use mpc_core::Point;
use mpc_wire::{IdentityKey, PublicIdentity};
use prost::Message;
use serde::{Deserialize, Serialize};
use wallet_types::{AccountKind, COSIGNER, MAX_ACCOUNTS};

use super::plan::{LifecycleKind, LifecyclePlan};
use super::run::{AccountFacts, NewDeviceParams};
use crate::error::ClientError;
use crate::party::Party;

/// The public facts a new device needs (what [`NewDeviceParams::from_recovery`] reads
/// from the recovery bundle), sent by the recovery agent to the page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewDeviceTemplate {
    /// The wallet.
    pub wallet_id: String,
    /// The cosigner's identity (party 1, hex).
    pub cosigner_identity: String,
    /// The recovery party's identity (party 2, hex).
    pub recovery_identity: String,
    /// The accounts by id.
    pub accounts: BTreeMap<String, TemplateAccount>,
}

/// One account's public facts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateAccount {
    /// The account's label.
    pub label: Option<String>,
    /// HD or independent key.
    pub kind: AccountKind,
    /// Creation time (as the wallet stores it).
    pub created_at: u64,
    /// Compressed SEC1 hex: the repaired share and the plan must both match it.
    pub public_key: String,
    /// The HD chain code (hex; `None` for an independent key): the repaired and
    /// refreshed shares must carry it, so every address stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_code: Option<String>,
}

impl NewDeviceTemplate {
    /// The template of `recovery`'s wallet (public fields only).
    pub fn from_recovery(recovery: &Party) -> Self {
        let b = recovery.bundle();
        NewDeviceTemplate {
            wallet_id: recovery.wallet_id().to_string(),
            cosigner_identity: b.peers.get(&COSIGNER).cloned().unwrap_or_default(),
            recovery_identity: recovery.public_identity().to_string(),
            accounts: b
                .accounts
                .iter()
                .map(|(id, a)| {
                    let t = TemplateAccount {
                        label: a.label.clone(),
                        kind: a.kind,
                        created_at: a.created_at,
                        public_key: a.public_key.clone(),
                        chain_code: a.share.chain_code.map(hex::encode),
                    };
                    (id.clone(), t)
                })
                .collect(),
        }
    }

    /// The accounts' facts, parsed (public keys as points).
    pub(super) fn facts(&self) -> Result<BTreeMap<String, AccountFacts>, ClientError> {
        if self.accounts.is_empty() || self.accounts.len() > MAX_ACCOUNTS as usize {
            return Err(ClientError::input(format!(
                "the template must have 1..={MAX_ACCOUNTS} accounts"
            )));
        }
        let mut out = BTreeMap::new();
        for (id, a) in &self.accounts {
            let bad = |what: &str| ClientError::input(format!("account {id}: {what}"));
            let bytes = hex::decode(&a.public_key).map_err(|_| bad("public key is not hex"))?;
            let public_key =
                Point::from_bytes(&bytes).map_err(|_| bad("public key is not a curve point"))?;
            if public_key.is_zero() {
                return Err(bad("public key is the identity point"));
            }
            if let Some(c) = &a.chain_code {
                let ok = c.len() == 64 && hex::decode(c).is_ok();
                if !ok {
                    return Err(bad("chain code is not 32 bytes of hex"));
                }
            }
            let facts = AccountFacts {
                id: id.clone(),
                kind: a.kind,
                label: a.label.clone(),
                created_at: a.created_at,
                public_key,
                chain_code: a.chain_code.as_ref().map(|c| c.to_ascii_lowercase()),
            };
            out.insert(id.clone(), facts);
        }
        Ok(out)
    }

    /// The public keys by account id (lowercase hex).
    fn public_keys(&self) -> BTreeMap<String, String> {
        self.accounts
            .iter()
            .map(|(id, a)| (id.clone(), a.public_key.to_ascii_lowercase()))
            .collect()
    }
}

impl NewDeviceParams {
    /// The new device of the wallet `t` describes, with its fresh `identity` and
    /// `primes`.
    pub fn from_template(
        t: &NewDeviceTemplate,
        identity: IdentityKey,
        primes: PrimeSet,
    ) -> Result<Self, ClientError> {
        primes
            .to_pregenerated()
            .map_err(|e| ClientError::config(format!("primes: {e}")))?;
        let parse = |h: &str, who: &str| {
            h.parse::<PublicIdentity>()
                .map_err(|_| ClientError::input(format!("the template's {who} identity")))
        };
        let cosigner = parse(&t.cosigner_identity, "cosigner")?;
        let recovery = parse(&t.recovery_identity, "recovery")?;
        let me = identity.public();
        if me == cosigner || me == recovery || cosigner == recovery {
            return Err(ClientError::input(
                "the new device, the cosigner and the recovery party need distinct identities",
            ));
        }
        cosigner_api::auth::validate_wallet_id(&t.wallet_id)
            .map_err(|e| ClientError::input(format!("wallet id: {e}")))?;
        Ok(NewDeviceParams::new(
            t.wallet_id.clone(),
            identity,
            cosigner,
            recovery,
            t.facts()?,
            primes,
        ))
    }
}

impl LifecyclePlan {
    /// A plan from the cosigner's `LifecycleResponse` bytes, checked against `party`'s
    /// shares (as [`super::StartLifecycle`] checks the answer it receives).
    pub fn from_bytes_for_party(
        kind: LifecycleKind,
        bytes: &[u8],
        party: &Party,
    ) -> Result<Self, ClientError> {
        if kind == LifecycleKind::ReplaceDevice {
            return Err(ClientError::input(
                "in a replacement the old device takes no part: the new device checks the \
                 plan with from_bytes_for_new_device",
            ));
        }
        LifecyclePlan::from_pb(kind, decode(bytes)?, party.bundle(), None)
    }

    /// A replacement plan from the cosigner's `LifecycleResponse` bytes, checked for the
    /// new device `new_device` against the wallet's template: the same accounts with the
    /// same public keys, every room present, every session id distinct.
    pub fn from_bytes_for_new_device(
        bytes: &[u8],
        t: &NewDeviceTemplate,
        new_device: PublicIdentity,
    ) -> Result<Self, ClientError> {
        let r = decode(bytes)?;
        let epoch = r.epoch;
        LifecyclePlan::check(
            LifecycleKind::ReplaceDevice,
            r,
            epoch,
            &t.public_keys(),
            Some(new_device),
        )
    }
}

fn decode(bytes: &[u8]) -> Result<pb::LifecycleResponse, ClientError> {
    pb::LifecycleResponse::decode(bytes)
        .map_err(|e| ClientError::input(format!("the lifecycle plan does not decode: {e}")))
}
