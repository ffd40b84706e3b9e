//! One user party's sessions of a lifecycle session: a refresh (device or recovery), or
//! a replacement (the recovery party as a repair helper, or the new device).

use std::collections::BTreeMap;

use mpc_core::keystore::KeyShareBundle;
use mpc_core::primes::PrimeSet;
use mpc_core::{
    Account, AccountKind, AuxInfo, EpochShare, IncompleteKeyShare, Point, SessionOutput,
};
use mpc_party::PartyError;
use mpc_wire::{IdentityKey, PublicIdentity, Roster};
use wallet_types::{COSIGNER, DEVICE, RECOVERY};

use super::plan::{LifecycleKind, LifecyclePlan};
use super::share_digest;
use super::template::NewDeviceTemplate;
use crate::cosigner::{CosignerMethod, CosignerResponse};
use crate::error::{ClientError, RemoteError};
use crate::party::Party;
use crate::session::{Build, Room, SessionSpec};
use crate::step::{sealed::Flow, RunSession};

/// What the new device needs to receive its share: its fresh identity, its primes and
/// the wallet's public facts (from the recovery party's files: the other identities,
/// each account's kind, label, creation time and chain code).
#[derive(Clone)]
pub struct NewDeviceParams {
    wallet_id: String,
    identity: IdentityKey,
    cosigner: PublicIdentity,
    recovery: PublicIdentity,
    /// The wallet's accounts (public facts).
    template: BTreeMap<String, AccountFacts>,
    primes: PrimeSet,
}

impl std::fmt::Debug for NewDeviceParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDeviceParams")
            .field("wallet_id", &self.wallet_id)
            .finish_non_exhaustive()
    }
}

impl NewDeviceParams {
    /// The new device of `recovery`'s wallet, with its fresh `identity` and `primes`.
    pub fn from_recovery(
        recovery: &Party,
        identity: IdentityKey,
        primes: PrimeSet,
    ) -> Result<Self, ClientError> {
        if !recovery.bundle().peers.contains_key(&COSIGNER) {
            return Err(ClientError::corrupt(
                recovery.wallet_id(),
                "no valid cosigner identity stored",
            ));
        }
        NewDeviceParams::from_template(
            &NewDeviceTemplate::from_recovery(recovery),
            identity,
            primes,
        )
    }

    pub(super) fn new(
        wallet_id: String,
        identity: IdentityKey,
        cosigner: PublicIdentity,
        recovery: PublicIdentity,
        template: BTreeMap<String, AccountFacts>,
        primes: PrimeSet,
    ) -> Self {
        NewDeviceParams {
            wallet_id,
            identity,
            cosigner,
            recovery,
            template,
            primes,
        }
    }

    /// The new device's public identity.
    pub fn public_identity(&self) -> PublicIdentity {
        self.identity.public()
    }
}

/// An account's public facts, as the party held them before the session.
#[derive(Clone, Debug)]
pub(crate) struct AccountFacts {
    pub id: String,
    pub kind: AccountKind,
    pub label: Option<String>,
    pub created_at: u64,
    pub public_key: Point,
    /// Hex, lowercase.
    pub chain_code: Option<String>,
}

impl AccountFacts {
    fn of(a: &Account) -> Self {
        AccountFacts {
            id: a.id.clone(),
            kind: a.kind,
            label: a.label.clone(),
            created_at: a.created_at,
            public_key: a.master_public_key(),
            chain_code: a.share.chain_code.map(hex::encode),
        }
    }
}

/// A party's new shares at the new epoch, to store as PENDING (encrypted, durably)
/// before confirming; they replace the current ones only once the cosigner committed.
#[derive(Clone)]
pub struct PendingShares {
    /// The wallet.
    pub wallet_id: String,
    /// The lifecycle session.
    pub lifecycle_id: String,
    /// The new epoch.
    pub epoch: u64,
    /// When the lifecycle session expires (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// The party's complete new bundle (epoch, accounts, aux info, identities).
    pub bundle: KeyShareBundle,
    /// Per account, the hex digest ConfirmLifecycle carries.
    pub digests: BTreeMap<String, String>,
}

impl std::fmt::Debug for PendingShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingShares")
            .field("wallet_id", &self.wallet_id)
            .field("lifecycle_id", &self.lifecycle_id)
            .field("epoch", &self.epoch)
            .field("party", &self.bundle.party_index)
            .finish_non_exhaustive()
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum LifecycleStep {
    /// Run this party's next session.
    RunSession(RunSession<LifecycleRun>),
    /// Every session ran: store the pending shares, then confirm.
    Done(Box<PendingShares>),
}

/// Who this party is in the session.
enum Role {
    /// Refreshes its own shares (a refresh, or the recovery party of a replacement).
    Holder(Box<KeyShareBundle>),
    /// The new device of a replacement.
    NewDevice(Box<NewDeviceParams>),
}

#[derive(Debug, Clone, Copy)]
enum Task {
    Aux,
    Repair(usize),
    Refresh(usize),
}

/// One party's sessions of a lifecycle session (the state behind every
/// [`LifecycleStep`]).
pub struct LifecycleRun {
    wallet_id: String,
    plan: LifecyclePlan,
    role: Role,
    me: u16,
    identity: IdentityKey,
    roster: Roster,
    primes: Option<PrimeSet>,
    tasks: Vec<Task>,
    next: usize,
    aux: Option<AuxInfo>,
    repaired: BTreeMap<String, IncompleteKeyShare>,
    accounts: BTreeMap<String, Account>,
}

impl LifecycleRun {
    /// `party` (device or recovery) runs its part of `plan`. For a replacement this is
    /// the recovery party (a repair helper), with its `primes` for the new aux info.
    pub fn start(
        party: &Party,
        plan: &LifecyclePlan,
        primes: Option<PrimeSet>,
    ) -> Result<LifecycleStep, ClientError> {
        let me = party.index();
        let bundle = party.bundle();
        if bundle.share_epoch != plan.epoch {
            return Err(ClientError::input(format!(
                "this party's shares are at epoch {}, the session works on epoch {}",
                bundle.share_epoch, plan.epoch
            )));
        }
        let roster = match plan.kind {
            LifecycleKind::Refresh => party.roster(&[DEVICE, COSIGNER, RECOVERY])?,
            LifecycleKind::ReplaceDevice => {
                if me != RECOVERY {
                    return Err(ClientError::config(
                        "in a replacement the old device takes no part: the recovery party \
                         helps the new device",
                    ));
                }
                let new_device = plan
                    .new_device
                    .ok_or_else(|| ClientError::internal("a replacement without a new device"))?;
                let cosigner = party
                    .bundle()
                    .peers
                    .get(&COSIGNER)
                    .and_then(|h| h.parse().ok())
                    .ok_or_else(|| {
                        ClientError::corrupt(party.wallet_id(), "no valid cosigner identity")
                    })?;
                roster_of(new_device, cosigner, party.public_identity())?
            }
        };
        let primes = match (plan.kind, primes) {
            (LifecycleKind::ReplaceDevice, None) => {
                return Err(ClientError::config(
                    "a replacement runs new aux info: give the recovery party's primes",
                ))
            }
            (_, p) => p,
        };
        let flow = LifecycleRun::new(
            party.wallet_id(),
            plan,
            Role::Holder(Box::new(bundle.clone())),
            me,
            party.identity().clone(),
            roster,
            primes,
        );
        flow.and_then(|f| Box::new(f).next())
    }

    /// The new device runs its part of the replacement `plan`.
    pub fn new_device(
        params: NewDeviceParams,
        plan: &LifecyclePlan,
    ) -> Result<LifecycleStep, ClientError> {
        if plan.kind != LifecycleKind::ReplaceDevice {
            return Err(ClientError::input("a new device joins a replacement only"));
        }
        if plan.new_device != Some(params.identity.public()) {
            return Err(ClientError::input(
                "the replacement names another new device identity",
            ));
        }
        for a in &plan.accounts {
            if !params.template.contains_key(&a.account_id) {
                return Err(ClientError::input(format!(
                    "account {} is not in the recovery party's files",
                    a.account_id
                )));
            }
        }
        let roster = roster_of(params.identity.public(), params.cosigner, params.recovery)?;
        let (identity, primes) = (params.identity.clone(), Some(params.primes.clone()));
        let wallet_id = params.wallet_id.clone();
        let flow = LifecycleRun::new(
            &wallet_id,
            plan,
            Role::NewDevice(Box::new(params)),
            DEVICE,
            identity,
            roster,
            primes,
        )?;
        Box::new(flow).next()
    }

    fn new(
        wallet_id: &str,
        plan: &LifecyclePlan,
        role: Role,
        me: u16,
        identity: IdentityKey,
        roster: Roster,
        primes: Option<PrimeSet>,
    ) -> Result<Self, ClientError> {
        let mut tasks = Vec::new();
        if plan.kind == LifecycleKind::ReplaceDevice {
            tasks.push(Task::Aux);
        }
        for (i, a) in plan.accounts.iter().enumerate() {
            if a.repair.is_some() {
                tasks.push(Task::Repair(i));
            }
            tasks.push(Task::Refresh(i));
        }
        Ok(LifecycleRun {
            wallet_id: wallet_id.to_string(),
            plan: plan.clone(),
            role,
            me,
            identity,
            roster,
            primes,
            tasks,
            next: 0,
            aux: None,
            repaired: BTreeMap::new(),
            accounts: BTreeMap::new(),
        })
    }

    fn spec(&self, room: Room, account: Option<String>, build: Build) -> SessionSpec {
        SessionSpec::new(
            room,
            self.me,
            account,
            self.identity.clone(),
            self.roster.clone(),
            build,
        )
    }

    /// The public facts of account `id` as this party held it before (a holder's
    /// account, the template's for the new device).
    fn old_facts(&self, id: &str) -> Result<AccountFacts, ClientError> {
        let facts = match &self.role {
            Role::Holder(b) => b.accounts.get(id).map(AccountFacts::of),
            Role::NewDevice(p) => p.template.get(id).cloned(),
        };
        facts.ok_or_else(|| ClientError::internal(format!("account {id} vanished")))
    }

    /// A holder's share of account `id`.
    fn old_share(&self, id: &str) -> Result<IncompleteKeyShare, ClientError> {
        match &self.role {
            Role::Holder(b) => b.accounts.get(id).map(|a| a.share.clone()),
            Role::NewDevice(_) => None,
        }
        .ok_or_else(|| ClientError::internal(format!("no share of account {id}")))
    }

    fn next(mut self: Box<Self>) -> Result<LifecycleStep, ClientError> {
        let Some(&task) = self.tasks.get(self.next) else {
            return self.finish();
        };
        let epoch = self.plan.epoch;
        let spec = match task {
            Task::Aux => {
                let room = self
                    .plan
                    .aux_info
                    .clone()
                    .ok_or_else(|| ClientError::internal("no aux-info room"))?;
                let primes = self
                    .primes
                    .take()
                    .ok_or_else(|| ClientError::internal("no primes"))?;
                self.spec(room, None, Build::AuxInfo(primes))
            }
            Task::Repair(i) => {
                let a = self.account_plan(i)?;
                let room = a
                    .repair
                    .clone()
                    .ok_or_else(|| ClientError::internal("no repair room"))?;
                let id = a.account_id.clone();
                let build = match &self.role {
                    Role::Holder(_) => Build::RepairHelper {
                        share: Box::new(self.old_share(&id)?),
                        epoch,
                        lost: DEVICE,
                    },
                    Role::NewDevice(_) => Build::RepairNew {
                        epoch,
                        expected_public_key: Box::new(self.old_facts(&id)?.public_key),
                    },
                };
                self.spec(room, Some(id), build)
            }
            Task::Refresh(i) => {
                let a = self.account_plan(i)?;
                let (room, id) = (a.refresh.clone(), a.account_id.clone());
                let share = match &self.role {
                    Role::Holder(_) => self.old_share(&id)?,
                    Role::NewDevice(_) => self.repaired.get(&id).cloned().ok_or_else(|| {
                        ClientError::internal(format!("account {id} was not repaired"))
                    })?,
                };
                self.spec(
                    room,
                    Some(id),
                    Build::Refresh {
                        share: Box::new(share),
                        epoch,
                    },
                )
            }
        };
        Ok(LifecycleStep::RunSession(RunSession::new(self, spec)))
    }

    fn account_plan(&self, i: usize) -> Result<&super::plan::LifecycleAccount, ClientError> {
        self.plan
            .accounts
            .get(i)
            .ok_or_else(|| ClientError::internal("account index out of range"))
    }

    fn finished(&mut self, out: Result<SessionOutput, PartyError>) -> Result<(), ClientError> {
        let task = *self
            .tasks
            .get(self.next)
            .ok_or_else(|| ClientError::internal("a session nobody asked for"))?;
        self.next += 1;
        match task {
            Task::Aux => {
                let sid = self.plan.aux_info.as_ref().map(|r| r.session_id.clone());
                let sid = sid.unwrap_or_default();
                match out.map_err(|e| ClientError::session("aux-info", &sid, e))? {
                    SessionOutput::AuxInfo(a) => self.aux = Some(*a),
                    _ => return Err(unexpected("aux-info", &sid)),
                }
            }
            Task::Repair(i) => {
                let a = self.account_plan(i)?.clone();
                let sid = a.repair.as_ref().map(|r| r.session_id.clone());
                let sid = sid.unwrap_or_default();
                let out = out.map_err(|e| ClientError::session("repair", &sid, e))?;
                match (&self.role, out) {
                    (Role::Holder(_), SessionOutput::RepairHelped) => {}
                    (Role::NewDevice(_), SessionOutput::Repaired(s)) => {
                        let old = self.old_facts(&a.account_id)?;
                        let share = self.check_share("repair", &sid, *s, self.plan.epoch, &old)?;
                        self.repaired.insert(a.account_id.clone(), share);
                    }
                    _ => return Err(unexpected("repair", &sid)),
                }
            }
            Task::Refresh(i) => {
                let a = self.account_plan(i)?.clone();
                let sid = a.refresh.session_id.clone();
                let s = match out.map_err(|e| ClientError::session("refresh", &sid, e))? {
                    SessionOutput::Refreshed(s) => *s,
                    _ => return Err(unexpected("refresh", &sid)),
                };
                let old = self.old_facts(&a.account_id)?;
                let share = self.check_share("refresh", &sid, s, self.plan.next_epoch(), &old)?;
                let mut acct = Account::new(old.id.clone(), old.kind, share, old.created_at);
                acct.label = old.label.clone();
                self.accounts.insert(acct.id.clone(), acct);
            }
        }
        Ok(())
    }

    /// A session's share: at `epoch`, of this party, for the account's public key and
    /// chain code.
    fn check_share(
        &self,
        stage: &str,
        sid: &str,
        s: EpochShare,
        epoch: u64,
        old: &AccountFacts,
    ) -> Result<IncompleteKeyShare, ClientError> {
        if s.epoch != epoch {
            return Err(failed(
                stage,
                sid,
                &format!("the new share is at epoch {}, expected {epoch}", s.epoch),
            ));
        }
        if s.share.i != self.me {
            return Err(failed(stage, sid, "the new share is another party's"));
        }
        if *s.share.shared_public_key != old.public_key {
            return Err(failed(stage, sid, "the new share has another public key"));
        }
        if s.share.chain_code.map(hex::encode) != old.chain_code {
            return Err(failed(stage, sid, "the new share has another chain code"));
        }
        Ok(s.share)
    }

    fn finish(self: Box<Self>) -> Result<LifecycleStep, ClientError> {
        let epoch = self.plan.next_epoch();
        let mut bundle = match &self.role {
            Role::Holder(b) => {
                let mut b = (**b).clone();
                if let Some(new_device) = self.plan.new_device {
                    b.peers.insert(DEVICE, new_device.to_string());
                }
                b
            }
            Role::NewDevice(p) => {
                let mut b = KeyShareBundle::new(DEVICE);
                b.identity_secret = Some(p.identity.to_seed_hex().to_string());
                b.peers = BTreeMap::from([
                    (COSIGNER, p.cosigner.to_string()),
                    (RECOVERY, p.recovery.to_string()),
                ]);
                b
            }
        };
        if let Some(aux) = self.aux.clone() {
            bundle.aux_info = Some(aux);
        }
        let aux = bundle
            .aux_info
            .clone()
            .ok_or_else(|| ClientError::internal("no aux info for the new shares"))?;
        let mut digests = BTreeMap::new();
        for (id, a) in &self.accounts {
            a.complete(&aux).map_err(|e| ClientError::SessionFailed {
                stage: "refresh".into(),
                session_id: self.plan.lifecycle_id.clone(),
                reason: format!("account {id}: the new share does not fit the aux info: {e}"),
                blamed: Vec::new(),
            })?;
            digests.insert(id.clone(), share_digest(&a.share, epoch)?);
        }
        bundle.accounts = self.accounts.clone();
        bundle.share_epoch = epoch;
        Ok(LifecycleStep::Done(Box::new(PendingShares {
            wallet_id: self.wallet_id.clone(),
            lifecycle_id: self.plan.lifecycle_id.clone(),
            epoch,
            expires_at_ms: self.plan.expires_at_ms,
            bundle,
            digests,
        })))
    }
}

fn roster_of(
    device: PublicIdentity,
    cosigner: PublicIdentity,
    recovery: PublicIdentity,
) -> Result<Roster, ClientError> {
    Roster::new(vec![
        (DEVICE, device),
        (COSIGNER, cosigner),
        (RECOVERY, recovery),
    ])
    .map_err(|e| ClientError::input(format!("roster: {e}")))
}

fn failed(stage: &str, sid: &str, reason: &str) -> ClientError {
    ClientError::SessionFailed {
        stage: stage.into(),
        session_id: sid.into(),
        reason: reason.into(),
        blamed: Vec::new(),
    }
}

fn unexpected(stage: &str, sid: &str) -> ClientError {
    failed(stage, sid, "the session produced another kind of output")
}

impl Flow for LifecycleRun {
    type Step = LifecycleStep;

    fn on_reply(
        self: Box<Self>,
        _: CosignerMethod,
        _: u64,
        _: Result<CosignerResponse, RemoteError>,
    ) -> Result<LifecycleStep, ClientError> {
        Err(ClientError::internal("a lifecycle run calls no cosigner"))
    }

    fn on_session(
        mut self: Box<Self>,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<LifecycleStep, ClientError> {
        self.finished(out)?;
        self.next()
    }
}
