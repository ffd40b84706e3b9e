//! In-process fakes of every effect the flows ask for: a cosigner that verifies every
//! request's authentication and runs its sessions for real (party 1's shares), a room
//! that relays sealed envelopes between `PartySession`s exactly like the gateway, an
//! in-memory presignature pool with take-once, and a clock.
//!
//! The core is I/O-free, so this is the real core against pretend I/O; the real
//! components (gateway, cosigner, files) are covered by the e2e and bindings tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use client_core::create::{CreateStep, RecoveryJob};
use client_core::refill::RefillStep;
use client_core::sign::{SignStep, Signed, TakenPresignature};
use client_core::*;
use cosigner_api::{auth, pb};
use mpc_core::keystore::KeyShareBundle;
use mpc_core::presign::{partial_to_bytes, StoredPresignature};
use mpc_core::primes::{dev_fixture_primes, PrimeSet};
use mpc_core::{Account, Session, SessionOutput};
use mpc_party::{PartyError, PartySession, Poll};
use mpc_wire::{IdentityKey, PublicIdentity, Roster, SessionId};
use wallet_types::{AccountKind, ErrorCode, COSIGNER, DEVICE, RECOVERY};

/// The test clock: milliseconds since the epoch, advanced by every call and wait.
pub struct Clock(pub u64);

impl Clock {
    pub fn now(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

pub fn clock() -> Clock {
    Clock(1_800_000_000_000)
}

/// Runs the sessions of one room to their ends, relaying the bodies each posts to all
/// (a gateway room: one log, every party reads all of it, own echoes included).
pub fn run_room(parties: Vec<PartySession>) -> Vec<Result<SessionOutput, PartyError>> {
    let n = parties.len();
    let mut parties: Vec<Option<PartySession>> = parties.into_iter().map(Some).collect();
    let mut results: Vec<Option<Result<SessionOutput, PartyError>>> =
        (0..n).map(|_| None).collect();
    let mut log: Vec<String> = Vec::new();
    let mut cursor = vec![0usize; n];
    loop {
        let mut progressed = false;
        for i in 0..n {
            let Some(p) = parties[i].as_mut() else {
                continue;
            };
            while cursor[i] < log.len() {
                let (seq, body) = (cursor[i] as u64 + 1, log[cursor[i]].clone());
                cursor[i] += 1;
                progressed = true;
                if let Err(e) = p.deliver(seq, &body) {
                    results[i] = Some(Err(e));
                    break;
                }
            }
            if results[i].is_some() {
                parties[i] = None;
                continue;
            }
            match p.poll() {
                Ok(Poll::Post(bodies)) => {
                    log.extend(bodies);
                    progressed = true;
                }
                Ok(Poll::Continue) => progressed = true,
                Ok(Poll::Waiting) => {}
                Ok(Poll::Finished(o)) => {
                    results[i] = Some(Ok(o));
                    parties[i] = None;
                    progressed = true;
                }
                Err(e) => {
                    results[i] = Some(Err(e));
                    parties[i] = None;
                    progressed = true;
                }
            }
        }
        if parties.iter().all(Option::is_none) {
            break;
        }
        if !progressed {
            // Everybody left waits and nothing is in flight: a stall.
            for i in 0..n {
                if let Some(p) = parties[i].take() {
                    results[i] = Some(Err(p.timed_out(std::time::Duration::from_secs(1))));
                }
            }
            break;
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every party ended"))
        .collect()
}

/// What the fake cosigner runs in a room when the client runs its side there.
#[derive(Clone)]
enum Planned {
    AuxInfo,
    /// The aux info of an enrollment (stored under its id).
    EnrollAux {
        enrollment_id: String,
    },
    Keygen {
        account_id: String,
    },
    Sign {
        account_id: String,
        path: Option<Vec<u32>>,
        digest: wallet_types::DigestKind,
        preimage: Vec<u8>,
        signers: Vec<u16>,
    },
    Presign {
        account_id: String,
        signers: Vec<u16>,
        path: mpc_core::hd::DerivationPath,
    },
}

/// How the fake cosigner misbehaves (or refuses).
#[derive(Default, Clone)]
pub struct Knobs {
    /// The digest it announces (StartSign, SignWithPresignature) instead of the real one.
    pub digest: Option<String>,
    /// The signer set it announces.
    pub signers: Option<Vec<u32>>,
    /// The partial signature it returns instead of its own.
    pub partial: Option<Vec<u8>>,
    /// Its answer to the next StartSign / SignWithPresignature / StartPresign.
    pub refuse: Option<RemoteError>,
    /// ConfirmWallet answers `wallet_not_ready` this many times first.
    pub not_ready: u32,
    /// PresignPoolStatus reports this many running sessions for this many calls.
    pub running_for: u32,
    /// StartPresign answers `pool_full`.
    pub pool_full: bool,
    /// The identity Health announces, if not its own.
    pub health_identity: Option<String>,
    /// CreateWallet opens this many accounts instead of the number asked for.
    pub accounts: Option<usize>,
    /// CreateWallet with an enrollment answers `wallet_not_ready` this many times first
    /// (its aux info still being stored).
    pub enrollment_not_ready: u32,
    /// CreateWallet with an enrollment opens an aux-info room anyway (a protocol
    /// violation).
    pub aux_room_for_enrollment: bool,
}

/// The fake cosigner's record of an enrollment.
#[derive(Clone)]
pub struct FakeEnrollment {
    pub device: PublicIdentity,
    pub recovery: PublicIdentity,
    /// Its aux info, once the aux-info session ran.
    pub aux: Option<mpc_core::AuxInfo>,
    /// A wallet was created from it.
    pub spent: bool,
}

/// The cosigner (party 1), in process.
pub struct FakeCosigner {
    pub identity: IdentityKey,
    pub wallet_id: String,
    pub device: Option<PublicIdentity>,
    pub recovery: Option<PublicIdentity>,
    pub bundle: KeyShareBundle,
    kind: AccountKind,
    primes: PrimeSet,
    planned: BTreeMap<String, Planned>,
    pub presigs: BTreeMap<String, StoredPresignature>,
    pub used: BTreeSet<String>,
    pub released: Vec<String>,
    pub knobs: Knobs,
    /// Enrollments by id.
    pub enrollments: BTreeMap<String, FakeEnrollment>,
    /// Every method called, in order.
    pub calls: Vec<CosignerMethod>,
    counter: u64,
    pub now: u64,
    pub cap: u32,
    /// The PSBT inputs asked for (StartSign, SignWithPresignature): index and network.
    pub psbt_inputs: Vec<(u32, String)>,
}

fn err(code: ErrorCode, msg: &str) -> RemoteError {
    RemoteError::new(code, msg)
}

impl FakeCosigner {
    pub fn new() -> Self {
        FakeCosigner {
            identity: IdentityKey::generate().unwrap(),
            wallet_id: String::new(),
            device: None,
            recovery: None,
            bundle: KeyShareBundle::new(COSIGNER),
            kind: AccountKind::Hd,
            primes: dev_fixture_primes()[1].clone(),
            planned: BTreeMap::new(),
            presigs: BTreeMap::new(),
            used: BTreeSet::new(),
            released: Vec::new(),
            knobs: Knobs::default(),
            enrollments: BTreeMap::new(),
            calls: Vec::new(),
            counter: 0,
            now: 0,
            cap: 8,
            psbt_inputs: Vec::new(),
        }
    }

    fn id(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}-{}", self.counter)
    }

    fn room(&mut self, what: &str) -> pb::SessionRoom {
        let sid = self.id(what);
        pb::SessionRoom {
            room: format!("room-{sid}"),
            session_id: sid,
            room_token: String::new(),
            gateway_url: "http://gateway.invalid".into(),
        }
    }

    fn identity_of(&self, party: u16) -> PublicIdentity {
        match party {
            DEVICE => self.device.expect("device registered"),
            RECOVERY => self.recovery.expect("recovery registered"),
            _ => self.identity.public(),
        }
    }

    fn verify<R: auth::AuthenticatedRequest>(&self, req: &R) -> Result<u16, RemoteError> {
        let (a, party) =
            auth::auth_of(req).map_err(|e| err(ErrorCode::Unauthorized, &e.to_string()))?;
        if a.wallet_id != self.wallet_id {
            return Err(err(ErrorCode::NotFound, "unknown wallet"));
        }
        auth::verify_request(
            req,
            &self.identity_of(party),
            &self.identity.public(),
            self.now,
            120_000,
        )
        .map_err(|e| err(ErrorCode::Unauthorized, &e.to_string()))?;
        Ok(party)
    }

    /// What is signed for a request: the preimage itself, or for a PSBT input the
    /// input's BIP-143 preimage, read from the PSBT as the real cosigner does (the input
    /// must be the wallet's and the request's path the input's).
    fn signed_preimage(
        &mut self,
        account_id: &str,
        payload_kind: i32,
        wire: &[u8],
        input_index: u32,
        network: &str,
        derivation_path: &str,
    ) -> Result<Vec<u8>, RemoteError> {
        if payload_kind != pb::PayloadKind::BitcoinPsbtInput as i32 {
            return Ok(wire.to_vec());
        }
        self.psbt_inputs.push((input_index, network.to_string()));
        let account = self
            .bundle
            .accounts
            .get(account_id)
            .ok_or_else(|| err(ErrorCode::NotFound, "unknown account"))?;
        let keys = wallet_btc::WalletKeys::new(
            &account.master_public_key().to_bytes(true),
            &account.share.chain_code.unwrap_or([0; 32]),
        )
        .map_err(|e| err(ErrorCode::Internal, &e.to_string()))?;
        let network: wallet_btc::Network = network
            .parse()
            .map_err(|_| err(ErrorCode::InvalidInput, "network"))?;
        let plan = wallet_btc::analyze_psbt(wire, &keys, network)
            .map_err(|e| err(ErrorCode::InvalidInput, &e.to_string()))?;
        let input = plan
            .inputs
            .get(input_index as usize)
            .ok_or_else(|| err(ErrorCode::InvalidInput, "no such input"))?;
        if input.path_string() != derivation_path {
            return Err(err(ErrorCode::InvalidInput, "not the input's path"));
        }
        Ok(input.preimage.clone())
    }

    fn pair(party: u16) -> Vec<u16> {
        let mut v = vec![party, COSIGNER];
        v.sort_unstable();
        v
    }

    /// Answers one request (the request exactly as the client would send it).
    pub fn handle(
        &mut self,
        req: CosignerRequest,
        now: u64,
    ) -> Result<CosignerResponse, RemoteError> {
        self.now = now;
        self.calls.push(req.method());
        match req {
            CosignerRequest::ListAccounts(_)
            | CosignerRequest::RevokeDevice(_)
            | CosignerRequest::FreezeWallet(_)
            | CosignerRequest::UnfreezeWallet(_)
            | CosignerRequest::StartRefresh(_)
            | CosignerRequest::ReplaceDevice(_)
            | CosignerRequest::ConfirmLifecycle(_) => Err(err(
                ErrorCode::CosignerRejected,
                "the wallet controls and the key lifecycle are not played by this fake (real \
                 processes: testing/e2e-tests)",
            )),
            CosignerRequest::Health(_) => Ok(CosignerResponse::Health(pb::HealthResponse {
                status: "ok".into(),
                identity: self
                    .knobs
                    .health_identity
                    .clone()
                    .unwrap_or_else(|| self.identity.public().to_string()),
                ..Default::default()
            })),
            CosignerRequest::EnrollDevice(r) => {
                let (device, recovery) =
                    auth::verify_device_request(&r, &self.identity.public(), now, 120_000)
                        .map_err(|e| err(ErrorCode::Unauthorized, &e.to_string()))?;
                self.device = Some(device);
                self.recovery = Some(recovery);
                let enrollment_id = self.id("enrollment");
                let aux = self.room("enroll-aux");
                self.planned.insert(
                    aux.session_id.clone(),
                    Planned::EnrollAux {
                        enrollment_id: enrollment_id.clone(),
                    },
                );
                self.enrollments.insert(
                    enrollment_id.clone(),
                    FakeEnrollment {
                        device,
                        recovery,
                        aux: None,
                        spent: false,
                    },
                );
                Ok(CosignerResponse::EnrollDevice(pb::EnrollDeviceResponse {
                    enrollment_id,
                    cosigner_identity: self.identity.public().to_string(),
                    aux_info: Some(aux),
                    expires_at_ms: now + 3_600_000,
                    enrollment_expires_at_ms: now + 30 * 86_400_000,
                }))
            }
            CosignerRequest::CreateWallet(r) => {
                let (device, recovery) =
                    auth::verify_device_request(&r, &self.identity.public(), now, 120_000)
                        .map_err(|e| err(ErrorCode::Unauthorized, &e.to_string()))?;
                let enrolled = !r.enrollment_id.is_empty();
                if enrolled {
                    let e = self
                        .enrollments
                        .get(&r.enrollment_id)
                        .filter(|e| !e.spent)
                        .ok_or_else(|| err(ErrorCode::NotFound, "unknown enrollment"))?;
                    if e.device != device || e.recovery != recovery {
                        return Err(err(ErrorCode::Unauthorized, "another device's enrollment"));
                    }
                    if self.knobs.enrollment_not_ready > 0 || e.aux.is_none() {
                        self.knobs.enrollment_not_ready =
                            self.knobs.enrollment_not_ready.saturating_sub(1);
                        return Err(err(ErrorCode::WalletNotReady, "aux info still running"));
                    }
                    self.bundle = KeyShareBundle::new(COSIGNER);
                    self.bundle.aux_info = e.aux.clone();
                    if let Some(e) = self.enrollments.get_mut(&r.enrollment_id) {
                        e.spent = true;
                    }
                }
                self.device = Some(device);
                self.recovery = Some(recovery);
                self.wallet_id = self.id("wallet");
                self.kind = cosigner_api::convert::account_kind_from_proto(r.kind).unwrap();
                let aux = if enrolled && !self.knobs.aux_room_for_enrollment {
                    None
                } else {
                    let aux = self.room("aux");
                    self.planned
                        .insert(aux.session_id.clone(), Planned::AuxInfo);
                    Some(aux)
                };
                let n = self.knobs.accounts.unwrap_or(r.accounts as usize);
                let accounts = (0..n)
                    .map(|k| {
                        let keygen = self.room("keygen");
                        let account_id = format!("account-{k}");
                        self.planned.insert(
                            keygen.session_id.clone(),
                            Planned::Keygen {
                                account_id: account_id.clone(),
                            },
                        );
                        pb::AccountSession {
                            account_id,
                            keygen: Some(keygen),
                        }
                    })
                    .collect();
                Ok(CosignerResponse::CreateWallet(pb::CreateWalletResponse {
                    wallet_id: self.wallet_id.clone(),
                    cosigner_identity: self.identity.public().to_string(),
                    aux_info: aux,
                    accounts,
                    expires_at_ms: now + 3_600_000,
                }))
            }
            CosignerRequest::ConfirmWallet(r) => {
                self.verify(&r)?;
                if self.knobs.not_ready > 0 {
                    self.knobs.not_ready -= 1;
                    return Err(err(ErrorCode::WalletNotReady, "DKG still running"));
                }
                let ours: BTreeMap<String, String> = self
                    .bundle
                    .accounts
                    .values()
                    .map(|a| (a.id.clone(), a.public_key.clone()))
                    .collect();
                let theirs: BTreeMap<String, String> = r.public_keys.into_iter().collect();
                if ours != theirs {
                    return Err(err(ErrorCode::SessionFailed, "keys differ"));
                }
                Ok(CosignerResponse::ConfirmWallet(pb::ConfirmWalletResponse {
                    committed: true,
                    accounts: vec![],
                }))
            }
            CosignerRequest::StartSign(r) => {
                let party = self.verify(&r)?;
                if let Some(e) = self.knobs.refuse.take() {
                    return Err(e);
                }
                let digest = cosigner_api::convert::digest_kind_from_proto(r.digest).unwrap();
                let preimage = self.signed_preimage(
                    &r.account_id,
                    r.payload_kind,
                    &r.preimage,
                    r.input_index,
                    &r.bitcoin_network,
                    &r.derivation_path,
                )?;
                let path = if r.derivation_path.is_empty() {
                    None
                } else {
                    Some(parse_path(&r.derivation_path).unwrap().indices().to_vec())
                };
                let signers = Self::pair(party);
                let room = self.room("sign");
                self.planned.insert(
                    room.session_id.clone(),
                    Planned::Sign {
                        account_id: r.account_id,
                        path,
                        digest: digest.into(),
                        preimage: preimage.clone(),
                        signers: signers.clone(),
                    },
                );
                Ok(CosignerResponse::StartSign(pb::StartSignResponse {
                    session: Some(room),
                    signers: self
                        .knobs
                        .signers
                        .clone()
                        .unwrap_or(signers.iter().map(|&s| u32::from(s)).collect()),
                    digest: self
                        .knobs
                        .digest
                        .clone()
                        .unwrap_or_else(|| hex::encode(digest.digest(&preimage))),
                    request_id: self.id("request"),
                }))
            }
            CosignerRequest::StartPresign(r) => {
                let party = self.verify(&r)?;
                if let Some(e) = self.knobs.refuse.take() {
                    return Err(e);
                }
                if self.knobs.pool_full {
                    return Err(err(ErrorCode::PoolFull, "pool full"));
                }
                for id in &r.release_ids {
                    self.presigs.remove(id);
                    self.released.push(id.clone());
                }
                let signers = Self::pair(party);
                let path = mpc_core::hd::DerivationPath::parse(&r.derivation_path).unwrap();
                let room_count =
                    (r.count as usize).min((self.cap as usize).saturating_sub(self.presigs.len()));
                let sessions = (0..room_count)
                    .map(|_| {
                        let room = self.room("presig");
                        self.planned.insert(
                            room.session_id.clone(),
                            Planned::Presign {
                                account_id: r.account_id.clone(),
                                signers: signers.clone(),
                                path: path.clone(),
                            },
                        );
                        pb::PresignSession {
                            presignature_id: room.session_id.clone(),
                            session: Some(room),
                            derivation_path: r.derivation_path.clone(),
                        }
                    })
                    .collect();
                Ok(CosignerResponse::StartPresign(pb::StartPresignResponse {
                    derivation_path: r.derivation_path.clone(),
                    sessions,
                    signers: signers.iter().map(|&s| u32::from(s)).collect(),
                    cap: self.cap,
                    ..Default::default()
                }))
            }
            CosignerRequest::PresignPoolStatus(r) => {
                let party = self.verify(&r)?;
                let running = if self.knobs.running_for > 0 {
                    self.knobs.running_for -= 1;
                    1
                } else {
                    0
                };
                Ok(CosignerResponse::PresignPoolStatus(
                    pb::PresignPoolStatusResponse {
                        pools: {
                            // One pool per path (the root's always).
                            let mut by_path: BTreeMap<String, Vec<String>> =
                                BTreeMap::from([(String::new(), Vec::new())]);
                            for (id, p) in &self.presigs {
                                let wire = if p.path().is_root() {
                                    String::new()
                                } else {
                                    p.path().to_string()
                                };
                                by_path.entry(wire).or_default().push(id.clone());
                            }
                            by_path
                                .into_iter()
                                .map(|(derivation_path, presignature_ids)| pb::PresignPool {
                                    derivation_path,
                                    account_id: r.account_id.clone(),
                                    signers: Self::pair(party)
                                        .iter()
                                        .map(|&s| u32::from(s))
                                        .collect(),
                                    presignature_ids,
                                    running,
                                    cap: self.cap,
                                })
                                .collect()
                        },
                    },
                ))
            }
            CosignerRequest::SignWithPresignature(r) => {
                self.verify(&r)?;
                if let Some(e) = self.knobs.refuse.take() {
                    return Err(e);
                }
                let Some(stored) = self.presigs.remove(&r.presignature_id) else {
                    let used = self.used.contains(&r.presignature_id);
                    let mut e = err(ErrorCode::PresignatureUnavailable, "not held");
                    e.presignature = Some(if used {
                        PresignatureState::Used
                    } else {
                        PresignatureState::Unknown
                    });
                    return Err(e);
                };
                self.used.insert(r.presignature_id.clone());
                let digest = cosigner_api::convert::digest_kind_from_proto(r.digest).unwrap();
                let preimage = self.signed_preimage(
                    &r.account_id,
                    r.payload_kind,
                    &r.preimage,
                    r.input_index,
                    &r.bitcoin_network,
                    &r.derivation_path,
                )?;
                let request = mpc_core::SignRequest { preimage, digest };
                let signers = stored.signers.clone();
                let at = mpc_core::hd::DerivationPath::parse(&r.derivation_path).unwrap();
                let partial = match stored.issue_partial(&request, &at) {
                    Ok(p) => partial_to_bytes(&p).to_vec(),
                    Err(e) => return Err(err(ErrorCode::InvalidInput, &e.to_string())),
                };
                Ok(CosignerResponse::SignWithPresignature(
                    pb::SignWithPresignatureResponse {
                        partial_signature: self.knobs.partial.clone().unwrap_or(partial),
                        signers: self
                            .knobs
                            .signers
                            .clone()
                            .unwrap_or(signers.iter().map(|&s| u32::from(s)).collect()),
                        digest: self
                            .knobs
                            .digest
                            .clone()
                            .unwrap_or_else(|| hex::encode(request.digest_bytes())),
                        request_id: self.id("request"),
                    },
                ))
            }
        }
    }

    /// Runs the client's session `spec`, the `others`' sessions of the same room and
    /// the cosigner's side (if it planned one there) together; stores the cosigner's
    /// output and returns the client's and the others' results.
    pub fn run(
        &mut self,
        spec: SessionSpec,
        others: Vec<SessionSpec>,
    ) -> (
        Result<SessionOutput, PartyError>,
        Vec<Result<SessionOutput, PartyError>>,
    ) {
        let room = spec.room().clone();
        let parties = spec.parties();
        let mut sessions = vec![spec.open().expect("client session opens")];
        for o in others {
            assert_eq!(o.room(), &room, "the other party runs the same room");
            sessions.push(o.open().expect("other session opens"));
        }
        let planned = self.planned.remove(&room.session_id);
        if let Some(planned) = &planned {
            sessions.push(self.open(&room, &parties, planned));
        }
        let mut results = run_room(sessions);
        if let Some(planned) = planned {
            let ours = results.pop().expect("the cosigner's result");
            self.store(&room, planned, ours);
        }
        let mine = results.remove(0);
        (mine, results)
    }

    fn open(&self, room: &Room, parties: &[u16], planned: &Planned) -> PartySession {
        let roster = Roster::new(parties.iter().map(|&p| (p, self.identity_of(p)))).unwrap();
        let sid = SessionId::new(room.session_id.clone()).unwrap();
        let bytes = room.session_id.as_bytes().to_vec();
        let share = |account_id: &str| {
            self.bundle.accounts[account_id]
                .complete(self.bundle.aux_info.as_ref().unwrap())
                .unwrap()
        };
        let session = match planned {
            Planned::AuxInfo | Planned::EnrollAux { .. } => {
                Session::aux_info(&bytes, COSIGNER, 3, self.primes.to_pregenerated().unwrap())
            }
            Planned::Keygen { .. } => Session::keygen(&bytes, COSIGNER, 3, 2),
            Planned::Sign {
                account_id,
                path,
                digest,
                preimage,
                signers,
            } => Session::sign(
                &bytes,
                signers.clone(),
                share(account_id),
                path.clone(),
                mpc_core::digest::data_to_sign(*digest, preimage),
            ),
            Planned::Presign {
                account_id,
                signers,
                path,
            } => Session::presign(
                &bytes,
                signers.clone(),
                share(account_id),
                (!path.is_root()).then(|| path.indices().to_vec()),
            ),
        };
        PartySession::open(sid, COSIGNER, self.identity.clone(), roster, || session).unwrap()
    }

    fn store(&mut self, room: &Room, planned: Planned, out: Result<SessionOutput, PartyError>) {
        let Ok(out) = out else { return };
        match (planned, out) {
            (Planned::AuxInfo, SessionOutput::AuxInfo(a)) => self.bundle.aux_info = Some(*a),
            (Planned::EnrollAux { enrollment_id }, SessionOutput::AuxInfo(a)) => {
                if let Some(e) = self.enrollments.get_mut(&enrollment_id) {
                    e.aux = Some(*a);
                }
            }
            (Planned::Keygen { account_id }, SessionOutput::Keygen(s)) => {
                let a = Account::new(account_id.clone(), self.kind, *s, 0);
                self.bundle.accounts.insert(account_id, a);
            }
            (
                Planned::Presign {
                    account_id,
                    signers,
                    path,
                },
                SessionOutput::Presignature(p, public),
            ) => {
                self.presigs.insert(
                    room.session_id.clone(),
                    StoredPresignature {
                        id: room.session_id.clone(),
                        account_id,
                        signers,
                        presignature: *p,
                        public: mpc_core::presign::PresignaturePublicDataRepr::new(
                            public.as_ref(),
                            path,
                        ),
                    },
                );
            }
            _ => {}
        }
    }

    /// A fresh copy with the same wallet and keys (no planned sessions, default knobs).
    pub fn fork(&self) -> FakeCosigner {
        FakeCosigner {
            identity: self.identity.clone(),
            wallet_id: self.wallet_id.clone(),
            device: self.device,
            recovery: self.recovery,
            bundle: self.bundle.clone(),
            kind: self.kind,
            primes: self.primes.clone(),
            planned: BTreeMap::new(),
            presigs: BTreeMap::new(),
            used: BTreeSet::new(),
            released: Vec::new(),
            knobs: Knobs::default(),
            enrollments: self.enrollments.clone(),
            calls: Vec::new(),
            counter: self.counter + 1000,
            now: 0,
            cap: self.cap,
            psbt_inputs: Vec::new(),
        }
    }
}

/// The protobuf body of a response (what a gRPC-web driver would receive).
pub fn encode(r: &CosignerResponse) -> Vec<u8> {
    r.encode_to_vec()
}

/// An in-memory presignature pool with take-once and tombstones.
#[derive(Default)]
pub struct MemPool {
    /// (account, id) → stored bytes, in insertion order.
    pub items: Vec<(String, String, Vec<u8>)>,
    pub taken: BTreeSet<String>,
    /// Ids reported as in flight.
    pub in_flight: Vec<String>,
}

impl MemPool {
    pub fn list(&self, account: &str) -> Vec<String> {
        self.items
            .iter()
            .filter(|(a, _, _)| a == account)
            .map(|(_, id, _)| id.clone())
            .collect()
    }

    pub fn take(&mut self, account: &str, id: &str) -> Option<Vec<u8>> {
        let k = self
            .items
            .iter()
            .position(|(a, i, _)| a == account && i == id)?;
        self.taken.insert(id.to_string());
        Some(self.items.remove(k).2)
    }

    pub fn take_oldest(&mut self, account: &str) -> Option<(String, Vec<u8>)> {
        let id = self.list(account).into_iter().next()?;
        let bytes = self.take(account, &id)?;
        Some((id, bytes))
    }

    pub fn put(&mut self, account: &str, id: &str, bytes: Vec<u8>) -> Result<(), ClientError> {
        if self.taken.contains(id) || self.items.iter().any(|(_, i, _)| i == id) {
            return Err(ClientError::io(
                "pool",
                format!("{id} was stored or taken before"),
            ));
        }
        self.items.push((account.into(), id.into(), bytes));
        Ok(())
    }
}

/// Everything the flows touch: the cosigner, the clock, the pool, a trace.
pub struct World {
    pub cosigner: FakeCosigner,
    pub clock: Clock,
    pub pool: MemPool,
    /// Steps the drivers met, in order.
    pub trace: Vec<String>,
    /// Whether the next reply goes in as bytes (alternates, to cover both).
    bytes: bool,
    /// Sessions the drivers ran.
    pub sessions: usize,
    /// The recovery party's keys as reported to the creation (a test may alter them).
    pub tamper_recovery_keys: bool,
}

/// Sends a flow's call to the fake cosigner, with the clock, and answers it (typed or as
/// bytes, alternately).
#[macro_export]
macro_rules! call {
    ($w:expr, $call:expr) => {{
        let (req, awaiting) = $call.send($w.clock.now())?;
        let now = $w.clock.now();
        let answer = $w.cosigner.handle(req, now);
        $w.trace.push(format!(
            "call {} {}",
            awaiting.method().name(),
            if answer.is_ok() { "ok" } else { "err" }
        ));
        if $w.flip() {
            awaiting.reply_bytes(answer.map(|r| $crate::common::encode(&r)))
        } else {
            awaiting.reply(answer)
        }
    }};
}

/// The wallet every signing test starts from (created once by the create flow).
pub struct Fixture {
    pub device: KeyShareBundle,
    pub recovery: KeyShareBundle,
    pub cosigner: FakeCosigner,
    pub created: CreatedWallet,
    /// The steps of the creation.
    pub trace: Vec<String>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut w = World::new(FakeCosigner::new());
        // The cosigner's DKG "still runs" for two ConfirmWallet calls.
        w.cosigner.knobs.not_ready = 2;
        let (created, device, recovery) = w
            .create(CreateParams {
                accounts: 2,
                kind: AccountKind::Independent,
                label: "fixture".into(),
                registration_credential: None,
            })
            .expect("the fixture wallet is created");
        Fixture {
            device,
            recovery,
            cosigner: w.cosigner.fork(),
            created,
            trace: w.trace,
        }
    })
}

impl Fixture {
    pub fn device(&self) -> Party {
        Party::new(
            self.created.wallet_id.clone(),
            self.device.clone(),
            "device",
        )
        .unwrap()
    }

    pub fn recovery(&self) -> Party {
        Party::new(
            self.created.wallet_id.clone(),
            self.recovery.clone(),
            "recovery",
        )
        .unwrap()
    }

    pub fn world(&self) -> World {
        World::new(self.cosigner.fork())
    }

    pub fn account(&self, k: usize) -> String {
        self.created.accounts[k].account_id.clone()
    }
}

impl World {
    pub fn new(cosigner: FakeCosigner) -> Self {
        World {
            cosigner,
            clock: clock(),
            pool: MemPool::default(),
            trace: Vec::new(),
            bytes: false,
            sessions: 0,
            tamper_recovery_keys: false,
        }
    }

    pub fn flip(&mut self) -> bool {
        self.bytes = !self.bytes;
        self.bytes
    }

    /// Drives a wallet creation; returns it with the device's and the recovery party's
    /// bundles.
    pub fn create(
        &mut self,
        params: CreateParams,
    ) -> Result<(CreatedWallet, KeyShareBundle, KeyShareBundle), ClientError> {
        self.create_with(params, None)
    }

    /// Drives a wallet creation, from the (device, recovery) enrollments if given.
    pub fn create_with(
        &mut self,
        params: CreateParams,
        enrollments: Option<(Enrollment, Enrollment)>,
    ) -> Result<(CreatedWallet, KeyShareBundle, KeyShareBundle), ClientError> {
        let recovery_key = IdentityKey::generate().unwrap();
        let mut recovery: Option<JoinStep> = None;
        let mut recovery_bundle = None;
        let mut device_bundle = None;
        let (mut step, recovery_enrollment) = match enrollments {
            Some((device, recovery)) => (Create::from_enrollment(params, device)?, Some(recovery)),
            None => (Create::start(params)?, None),
        };
        loop {
            step = match step {
                CreateStep::CallCosigner(c) => call!(self, c)?,
                CreateStep::RecoveryIdentity(r) => {
                    self.trace.push("recovery identity".into());
                    r.provide(recovery_key.public())?
                }
                CreateStep::Primes(p) => {
                    self.trace.push("primes".into());
                    p.provide(dev_fixture_primes()[0].clone())?
                }
                CreateStep::StartRecovery(s) => {
                    self.trace.push("start recovery".into());
                    let job: &RecoveryJob = s.job();
                    let params = match &recovery_enrollment {
                        Some(e) => job.join_params_enrolled(e, self.clock.now() / 1000)?,
                        None => job.join_params(
                            recovery_key.clone(),
                            dev_fixture_primes()[2].clone(),
                            self.clock.now() / 1000,
                        )?,
                    };
                    recovery = Some(Join::start(params)?);
                    s.started()?
                }
                CreateStep::RunSession(run) => {
                    let (spec, running) = run.start();
                    self.trace.push(format!("session {}", spec.stage()));
                    self.sessions += 1;
                    let Some(JoinStep::RunSession(rrun)) = recovery.take() else {
                        panic!("the recovery party is not at a session")
                    };
                    let (rspec, rrunning) = rrun.start();
                    let (mine, others) = self.cosigner.run(spec, vec![rspec]);
                    recovery = Some(rrunning.finished(others.into_iter().next().unwrap())?);
                    running.finished(mine)?
                }
                CreateStep::AwaitRecovery(a) => {
                    self.trace.push("await recovery".into());
                    let Some(JoinStep::Done(j)) = recovery.take() else {
                        panic!("the recovery party did not finish")
                    };
                    let mut keys = j.public_keys.clone();
                    if self.tamper_recovery_keys {
                        if let Some(v) = keys.values_mut().next() {
                            *v = j.public_keys.values().last().unwrap().clone();
                        }
                    }
                    recovery_bundle = Some(j.bundle);
                    a.finished(keys)?
                }
                CreateStep::Persist(p) => {
                    self.trace.push("persist".into());
                    assert!(!p.wallet_id().is_empty());
                    device_bundle = Some(p.bundle().clone());
                    p.persisted()?
                }
                CreateStep::Wait(w) => {
                    self.trace.push(format!("wait {}", w.millis()));
                    self.clock.0 += w.millis();
                    w.done()?
                }
                CreateStep::Done(c) => {
                    self.trace.push("done".into());
                    return Ok((c, device_bundle.unwrap(), recovery_bundle.unwrap()));
                }
            }
        }
    }

    /// Drives a device enrollment; returns the device's and the recovery party's
    /// enrollments.
    pub fn enroll(&mut self) -> Result<(Enrollment, Enrollment), ClientError> {
        let recovery_key = IdentityKey::generate().unwrap();
        let mut recovery: Option<(JoinStep, EnrollRecoveryJob)> = None;
        let mut recovery_enrollment = None;
        let mut persisted = None;
        let mut step = Enroll::start(EnrollParams::default())?;
        loop {
            step = match step {
                EnrollStep::CallCosigner(c) => call!(self, c)?,
                EnrollStep::RecoveryIdentity(r) => {
                    self.trace.push("recovery identity".into());
                    r.provide(recovery_key.public())?
                }
                EnrollStep::Primes(p) => {
                    self.trace.push("primes".into());
                    p.provide(dev_fixture_primes()[0].clone())?
                }
                EnrollStep::StartRecovery(s) => {
                    self.trace.push("start recovery".into());
                    let job = s.job().clone();
                    let params =
                        job.join_params(recovery_key.clone(), dev_fixture_primes()[2].clone())?;
                    recovery = Some((Join::start(params)?, job));
                    s.started()?
                }
                EnrollStep::RunSession(run) => {
                    let (spec, running) = run.start();
                    self.trace.push(format!("session {}", spec.stage()));
                    self.sessions += 1;
                    let Some((JoinStep::RunSession(rrun), job)) = recovery.take() else {
                        panic!("the recovery party is not at a session")
                    };
                    let (rspec, rrunning) = rrun.start();
                    let (mine, others) = self.cosigner.run(spec, vec![rspec]);
                    recovery = Some((rrunning.finished(others.into_iter().next().unwrap())?, job));
                    running.finished(mine)?
                }
                EnrollStep::AwaitRecovery(a) => {
                    self.trace.push("await recovery".into());
                    let Some((JoinStep::Done(j), job)) = recovery.take() else {
                        panic!("the recovery party did not finish")
                    };
                    assert!(j.public_keys.is_empty());
                    recovery_enrollment = Some(job.enrollment(&j)?);
                    a.finished()?
                }
                EnrollStep::Persist(p) => {
                    self.trace.push("persist".into());
                    persisted = Some(p.enrollment().enrollment_id.clone());
                    p.persisted()?
                }
                EnrollStep::Done(e) => {
                    self.trace.push("done".into());
                    assert_eq!(persisted.as_deref(), Some(e.enrollment_id.as_str()));
                    return Ok((e, recovery_enrollment.unwrap()));
                }
            }
        }
    }

    /// Drives a signing as `party`.
    pub fn sign(&mut self, party: &Party, params: SignParams) -> Result<Signed, ClientError> {
        self.sign_with(party, params, None)
    }

    /// [`Self::sign`] of a PSBT input (`bitcoin`: [`Sign::start_with`]).
    pub fn sign_with(
        &mut self,
        party: &Party,
        params: SignParams,
        bitcoin: Option<BitcoinInput>,
    ) -> Result<Signed, ClientError> {
        let mut step = Sign::start_with(party, params, bitcoin)?;
        loop {
            step = match step {
                SignStep::TakePresignature(t) => {
                    let taken =
                        self.pool
                            .take_oldest(&t.pool())
                            .map(|(id, bytes)| TakenPresignature {
                                id,
                                plaintext: zeroize::Zeroizing::new(bytes),
                            });
                    self.trace.push(format!("take {}", taken.is_some()));
                    t.taken(taken)?
                }
                SignStep::CallCosigner(c) => call!(self, c)?,
                SignStep::RunSession(run) => {
                    let (spec, running) = run.start();
                    self.trace.push(format!("session {}", spec.stage()));
                    self.sessions += 1;
                    let (mine, _) = self.cosigner.run(spec, vec![]);
                    running.finished(mine)?
                }
                SignStep::Done(s) => return Ok(s),
            }
        }
    }

    /// Drives a refill (`Some(target)`) or a status query (`None`).
    pub fn refill(
        &mut self,
        party: &Party,
        account_id: &str,
        target: Option<u32>,
    ) -> Result<PresignPoolStatus, ClientError> {
        self.refill_at(party, account_id, "m", target)
    }

    /// [`Self::refill`] of the pool at `path`.
    pub fn refill_at(
        &mut self,
        party: &Party,
        account_id: &str,
        path: &str,
        target: Option<u32>,
    ) -> Result<PresignPoolStatus, ClientError> {
        let mut step = match target {
            Some(t) => Refill::start_at(party, account_id, path, t)?,
            None => Refill::status_at(party, account_id, path)?,
        };
        loop {
            step = match step {
                RefillStep::CallCosigner(c) => call!(self, c)?,
                RefillStep::ListPresignatures(l) => {
                    self.trace.push("list".into());
                    let ids = self.pool.list(&l.pool());
                    let in_flight = self.pool.in_flight.clone();
                    l.listed(ids, in_flight)?
                }
                RefillStep::DiscardPresignatures(d) => {
                    self.trace.push(format!("discard {:?}", d.ids()));
                    let mut n = 0;
                    for id in d.ids().to_vec() {
                        if self.pool.take(&d.pool(), &id).is_some() {
                            n += 1;
                        }
                    }
                    d.discarded(n)?
                }
                RefillStep::RunPresigns(mut batch) => {
                    let jobs = batch.jobs();
                    self.trace.push(format!("presign {}", jobs.len()));
                    for job in jobs {
                        let (spec, end) = job.start();
                        self.sessions += 1;
                        let (mine, _) = self.cosigner.run(spec, vec![]);
                        let outcome = match end.finished(mine) {
                            Ok(store) => {
                                let r =
                                    self.pool
                                        .put(&store.pool, &store.id, store.plaintext.to_vec());
                                store.stored(r)
                            }
                            Err(o) => o,
                        };
                        batch.report(outcome);
                    }
                    batch.done()?
                }
                RefillStep::Wait(w) => {
                    self.trace.push(format!("wait {}", w.millis()));
                    self.clock.0 += w.millis();
                    w.done()?
                }
                RefillStep::Done(s) => return Ok(s),
            }
        }
    }
}
