//! Signing with the cosigner: the presignature fast path, and full signing.
//!
//! ```text
//! Sign::start ──► eligible (independent account at the root, HD account at a child
//!                 path: the pool of that path) and mode ≠ off?
//!    yes ─► TakePresignature ─► none left ─► (require: error) full signing
//!                         └► taken ─► this party's partial (consumes it)
//!                                  ─► CallCosigner(SignWithPresignature)
//!                                       ├► partial ─► combine, verify ─► Done
//!                                       ├► presignature_unavailable ─► (require: error)
//!                                       │                               full signing
//!                                       └► other error ─► error
//!    full signing: CallCosigner(StartSign) ─► check digest and signers
//!                  ─► RunSession(sign) ─► verify ─► Done
//! ```
//!
//! One input of a Bitcoin PSBT ([`PayloadKind::BitcoinPsbtInput`]) goes through the same
//! flow ([`Sign::start_with`] and a [`BitcoinInput`]): the cosigner receives the whole
//! PSBT (`cosigner_payload`) with the input's index and network (both signed into the
//! request), the parties sign the input's BIP-143 preimage (`preimage`, double SHA-256)
//! at the input's path, and the digest the cosigner announces (its own BIP-143 sighash)
//! must be the local one.

use cosigner_api::pb;
use mpc_core::hd::DerivationPath;
use mpc_core::presign::{combine_pair, partial_from_bytes, StoredPresignature};
use mpc_core::{Point, SessionOutput, SignRequest};
use mpc_party::PartyError;
use wallet_types::{AccountKind, DigestKind, ErrorCode, PayloadKind};
use zeroize::Zeroizing;

use crate::cosigner::{signer_list, CosignerMethod, CosignerRequest, CosignerResponse, Unsigned};
use crate::error::{ClientError, PresignatureState, RemoteError};
use crate::party::{parse_path, Party};
use crate::session::{Build, Room, SessionSpec};
use crate::step::{sealed::Flow, Call, RunSession};
use crate::types::{ChainStyle, PresignMode, SignedResult};
use crate::verify::{check_preimage, finish, Signing};

/// What to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignParams {
    /// The account.
    pub account_id: String,
    /// Non-hardened derivation path (`m` for the root).
    pub path: String,
    /// The bytes whose digest is signed (1 byte to 1 MiB).
    pub preimage: Vec<u8>,
    /// How the preimage is hashed.
    pub digest: DigestKind,
    /// What the preimage is (for the cosigner's policy).
    pub payload: PayloadKind,
    /// What the cosigner receives in place of the preimage, for the one kind whose wire
    /// payload is not the preimage: the typed data's JSON for
    /// [`PayloadKind::EthereumTypedData`] (required there, refused elsewhere). The
    /// cosigner derives the preimage from it itself; the digests are then compared.
    pub cosigner_payload: Option<Vec<u8>>,
    /// How Ethereum's `v` is formed.
    pub chain: ChainStyle,
    /// Whether the presignature pool is used.
    pub presign: PresignMode,
}

/// Which input of a PSBT a [`PayloadKind::BitcoinPsbtInput`] signing signs (sent to
/// the cosigner and signed into the request; see [`Sign::start_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoinInput {
    /// The input's index in the PSBT.
    pub input_index: u32,
    /// The network the PSBT's addresses are read in, as the cosigner names it:
    /// `bitcoin`, `testnet`, `signet` or `regtest`.
    pub network: String,
}

/// The network names the cosigner accepts in [`BitcoinInput::network`].
pub const BITCOIN_NETWORKS: [&str; 4] = ["bitcoin", "testnet", "signet", "regtest"];

/// A presignature taken from the pool (the driver's take-once, already committed).
pub struct TakenPresignature {
    /// The id it was stored under.
    pub id: String,
    /// Its stored plaintext (what [`crate::refill::StorePresignature`] handed out).
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TakenPresignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakenPresignature")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a presignature taken from the pool was dropped without a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    /// The stored record did not parse or was filed under another name.
    Unreadable,
    /// The cosigner did not hold it.
    Unknown,
    /// The cosigner had used it already.
    Used,
}

/// What happened on the fast path (drivers record it, e.g. on their tombstones).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FastPath {
    /// Whether the pool was asked at all.
    pub tried: bool,
    /// Presignatures taken and dropped, in order.
    pub discarded: Vec<(String, Discarded)>,
    /// The presignature that signed, if any.
    pub used: Option<String>,
    /// Whether the pool was empty (full signing followed, in `auto` mode).
    pub empty: bool,
}

/// A finished signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The verified signature.
    pub result: SignedResult,
    /// What the fast path did.
    pub fast_path: FastPath,
}

/// What the driver does next in a signing.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // `Done` is the last step: moved once.
pub enum SignStep {
    /// Take the oldest presignature of [`TakePresignature::account_id`] and
    /// [`TakePresignature::signers`] from the pool, ONCE, durably (the removal is
    /// committed before anything else happens), then [`TakePresignature::taken`].
    TakePresignature(TakePresignature),
    /// Call the cosigner (`SignWithPresignature`, `StartSign`).
    CallCosigner(Call<Sign>),
    /// Run the signing session.
    RunSession(RunSession<Sign>),
    /// Signed and verified.
    Done(Signed),
}

/// Take one presignature from the pool. See [`SignStep::TakePresignature`].
pub struct TakePresignature {
    flow: Box<Sign>,
}

impl std::fmt::Debug for TakePresignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakePresignature")
            .field("account_id", &self.flow.account_id)
            .finish_non_exhaustive()
    }
}

impl TakePresignature {
    /// The account whose pool to take from.
    pub fn account_id(&self) -> &str {
        &self.flow.account_id
    }

    /// The local pool to take from ([`crate::pool_key`]: the account and the path
    /// signed at).
    pub fn pool(&self) -> String {
        crate::pool_key(&self.flow.account_id, &self.flow.path)
    }

    /// The signer pair of the pool.
    pub fn signers(&self) -> &[u16] {
        &self.flow.signers
    }

    /// The presignature taken, or `None` when the pool has none.
    pub fn taken(self, taken: Option<TakenPresignature>) -> Result<SignStep, ClientError> {
        self.flow.taken(taken)
    }
}

/// A signing in progress (the state behind every [`SignStep`]).
pub struct Sign {
    party: Party,
    account_id: String,
    path: DerivationPath,
    public_key: Point,
    request: SignRequest,
    local_digest: [u8; 32],
    payload: PayloadKind,
    cosigner_payload: Option<Vec<u8>>,
    bitcoin: Option<BitcoinInput>,
    chain: ChainStyle,
    mode: PresignMode,
    signers: Vec<u16>,
    fast: FastPath,
    pending: Pending,
}

/// What the flow waits for.
enum Pending {
    Nothing,
    /// The cosigner's partial for presignature `id`.
    Partial {
        id: String,
        public: Box<mpc_core::presign::PresignaturePublicDataRepr>,
        mine: Box<mpc_core::PartialSignature>,
    },
    /// StartSign's answer.
    Started,
    /// The signing session.
    Session {
        session_id: String,
        request_id: String,
    },
}

impl Sign {
    /// Starts signing as `party`. Checks the arguments before anything else.
    ///
    /// Every payload kind but [`PayloadKind::BitcoinPsbtInput`] (which needs a
    /// [`BitcoinInput`]: [`Sign::start_with`]).
    pub fn start(party: &Party, params: SignParams) -> Result<SignStep, ClientError> {
        Self::start_with(party, params, None)
    }

    /// [`Sign::start`] with the PSBT input signed, for [`PayloadKind::BitcoinPsbtInput`]
    /// (required there, refused elsewhere): `params.cosigner_payload` is then the whole
    /// PSBT (binary), `params.preimage` the input's BIP-143 preimage,
    /// `params.digest` [`DigestKind::DoubleSha256`] and `params.path` the input's path.
    pub fn start_with(
        party: &Party,
        params: SignParams,
        bitcoin: Option<BitcoinInput>,
    ) -> Result<SignStep, ClientError> {
        let path = parse_path(&params.path)?;
        check_preimage(&params.preimage)?;
        match (params.payload, &params.cosigner_payload) {
            (PayloadKind::EthereumTypedData, None) => return Err(ClientError::input(
                "EIP-712 typed data is signed with its JSON for the cosigner (cosigner_payload)",
            )),
            (PayloadKind::BitcoinPsbtInput, None) => {
                return Err(ClientError::input(
                    "a PSBT input is signed with the whole PSBT for the cosigner (cosigner_payload)",
                ))
            }
            (PayloadKind::EthereumTypedData | PayloadKind::BitcoinPsbtInput, Some(p)) => {
                check_preimage(p)?
            }
            (_, Some(_)) => {
                return Err(ClientError::input(
                    "only EIP-712 typed data and PSBT inputs send the cosigner something other than the preimage",
                ))
            }
            (_, None) => {}
        }
        match (params.payload, &bitcoin) {
            (PayloadKind::BitcoinPsbtInput, None) => {
                return Err(ClientError::input(
                    "a PSBT input signing names its input index and network",
                ))
            }
            (PayloadKind::BitcoinPsbtInput, Some(b)) => {
                if !BITCOIN_NETWORKS.contains(&b.network.as_str()) {
                    return Err(ClientError::input(format!(
                        "unknown Bitcoin network {:?} (expected one of {BITCOIN_NETWORKS:?})",
                        b.network
                    )));
                }
                if params.digest != DigestKind::DoubleSha256 {
                    return Err(ClientError::input(
                        "a PSBT input's BIP-143 preimage is hashed with double SHA-256",
                    ));
                }
            }
            (_, Some(_)) => {
                return Err(ClientError::input(
                    "only a PSBT input signing names an input index and network",
                ))
            }
            (_, None) => {}
        }
        let account = party.account(&params.account_id)?;
        let public_key = account.public_key_at(&path)?;
        // A presignature signs at the path it was generated for: the pool of that path.
        let eligible = match account.kind {
            AccountKind::Independent => path.is_root(),
            AccountKind::Hd => !path.is_root(),
        };
        if params.presign == PresignMode::Require && !eligible {
            party.presign_account(&params.account_id, &path)?;
        }
        let request = SignRequest {
            preimage: params.preimage,
            digest: params.digest.into(),
        };
        let local_digest = request.digest_bytes();
        let flow = Box::new(Sign {
            party: party.clone(),
            account_id: params.account_id,
            path,
            public_key,
            request,
            local_digest,
            payload: params.payload,
            cosigner_payload: params.cosigner_payload,
            bitcoin,
            chain: params.chain,
            mode: params.presign,
            signers: party.pair_with_cosigner(),
            fast: FastPath::default(),
            pending: Pending::Nothing,
        });
        if eligible && params.presign != PresignMode::Off {
            let mut flow = flow;
            flow.fast.tried = true;
            return Ok(SignStep::TakePresignature(TakePresignature { flow }));
        }
        Ok(flow.start_sign())
    }

    fn signing(&self) -> Signing<'_> {
        Signing {
            account_id: &self.account_id,
            path: &self.path,
            public_key: &self.public_key,
            digest: &self.local_digest,
            chain: self.chain,
        }
    }

    fn pb_digest(&self) -> i32 {
        cosigner_api::convert::digest_kind_to_proto(self.request.digest) as i32
    }

    /// The bytes the cosigner receives: the typed data's JSON or the preimage.
    fn wire_payload(&self) -> Vec<u8> {
        self.cosigner_payload
            .clone()
            .unwrap_or_else(|| self.request.preimage.clone())
    }

    /// The PSBT input's index and network on the wire (zero and empty for other kinds).
    fn pb_bitcoin(&self) -> (u32, String) {
        self.bitcoin
            .as_ref()
            .map(|b| (b.input_index, b.network.clone()))
            .unwrap_or_default()
    }

    fn pb_payload(&self) -> i32 {
        crate::convert::payload_kind_to_proto(self.payload) as i32
    }

    /// Full signing: ask the cosigner to open a session.
    fn start_sign(mut self: Box<Self>) -> SignStep {
        let (input_index, bitcoin_network) = self.pb_bitcoin();
        let req = pb::StartSignRequest {
            auth: None,
            account_id: self.account_id.clone(),
            derivation_path: if self.path.is_root() {
                String::new()
            } else {
                self.path.to_string()
            },
            preimage: self.wire_payload(),
            digest: self.pb_digest(),
            payload_kind: self.pb_payload(),
            input_index,
            bitcoin_network,
        };
        self.pending = Pending::Started;
        let call = Unsigned::new(CosignerRequest::StartSign(req), self.party.signer());
        SignStep::CallCosigner(Call::new(self, call))
    }

    fn taken(
        mut self: Box<Self>,
        taken: Option<TakenPresignature>,
    ) -> Result<SignStep, ClientError> {
        let Some(taken) = taken else {
            if self.mode == PresignMode::Require {
                return Err(ClientError::PresignatureUnavailable {
                    reason: format!(
                        "no presignature left for account {}: refill the pool \
                         (refill_presignatures / `client presign refill`) or allow full signing",
                        self.account_id
                    ),
                    presignature_id: None,
                    state: None,
                });
            }
            self.fast.empty = true;
            return Ok(self.start_sign());
        };
        let stored = match serde_json::from_slice::<StoredPresignature>(&taken.plaintext) {
            // The path is bound into the record: one of another path (filed in the
            // wrong pool) is never used here.
            Ok(p)
                if p.id == taken.id
                    && p.account_id == self.account_id
                    && p.signers == self.signers
                    && p.check_path(&self.path).is_ok() =>
            {
                p
            }
            // Filed under the wrong name, or unreadable: dropped; take the next one.
            _ => {
                self.fast.discarded.push((taken.id, Discarded::Unreadable));
                return Ok(SignStep::TakePresignature(TakePresignature { flow: self }));
            }
        };
        let id = stored.id.clone();
        let public = Box::new(stored.public.clone());
        // Consumes the presignature: it can never issue another partial.
        let mine = Box::new(
            stored
                .issue_partial(&self.request, &self.path)
                .map_err(|e| ClientError::internal(e.to_string()))?,
        );
        let (input_index, bitcoin_network) = self.pb_bitcoin();
        let req = pb::SignWithPresignatureRequest {
            auth: None,
            account_id: self.account_id.clone(),
            presignature_id: id.clone(),
            preimage: self.wire_payload(),
            digest: self.pb_digest(),
            payload_kind: self.pb_payload(),
            derivation_path: crate::refill::wire_path(&self.path),
            input_index,
            bitcoin_network,
        };
        self.pending = Pending::Partial { id, public, mine };
        let call = Unsigned::new(
            CosignerRequest::SignWithPresignature(req),
            self.party.signer(),
        );
        Ok(SignStep::CallCosigner(Call::new(self, call)))
    }

    fn check_digest(&self, announced: &str) -> Result<(), ClientError> {
        let announced = announced.trim_start_matches("0x").to_ascii_lowercase();
        if announced != hex::encode(self.local_digest) {
            return Err(ClientError::DigestMismatch {
                local: hex::encode(self.local_digest),
                cosigner: announced,
            });
        }
        Ok(())
    }

    fn check_signers(&self, got: &[u32]) -> Result<(), ClientError> {
        let got = signer_list(got)?;
        if got != self.signers {
            return Err(ClientError::invalid_response(format!(
                "signers {got:?}, expected {:?}",
                self.signers
            )));
        }
        Ok(())
    }

    fn on_partial(
        mut self: Box<Self>,
        id: String,
        public: Box<mpc_core::presign::PresignaturePublicDataRepr>,
        mine: mpc_core::PartialSignature,
        reply: Result<pb::SignWithPresignatureResponse, RemoteError>,
    ) -> Result<SignStep, ClientError> {
        let theirs = match reply {
            Ok(r) => r,
            Err(e) if e.code == ErrorCode::PresignatureUnavailable => {
                let why = match e.presignature {
                    Some(PresignatureState::Used) => Discarded::Used,
                    _ => Discarded::Unknown,
                };
                self.fast.discarded.push((id.clone(), why));
                if self.mode == PresignMode::Require {
                    return Err(ClientError::PresignatureUnavailable {
                        reason: e.message,
                        presignature_id: Some(id),
                        state: e.presignature,
                    });
                }
                return Ok(self.start_sign());
            }
            Err(e) => return Err(e.into()),
        };
        self.check_digest(&theirs.digest)?;
        self.check_signers(&theirs.signers)?;
        let their_partial = partial_from_bytes(&theirs.partial_signature).map_err(|e| {
            ClientError::invalid_response(format!("the cosigner's partial signature: {e}"))
        })?;
        let sig = combine_pair(
            &public,
            &self.signers,
            self.party.index(),
            mine,
            their_partial,
            &self.request,
            &self.path,
            &self.public_key,
        )
        .map_err(|_| ClientError::VerificationFailed {
            reason: format!(
                "the cosigner's partial signature does not match presignature {id}; nothing usable was signed"
            ),
        })?;
        let result = finish(
            &self.signing(),
            &sig,
            self.signers.clone(),
            id.clone(),
            theirs.request_id,
            true,
        )?;
        self.fast.used = Some(id);
        Ok(SignStep::Done(Signed {
            result,
            fast_path: self.fast,
        }))
    }

    fn on_started(
        mut self: Box<Self>,
        reply: Result<pb::StartSignResponse, RemoteError>,
    ) -> Result<SignStep, ClientError> {
        let started = reply?;
        self.check_digest(&started.digest)?;
        self.check_signers(&started.signers)?;
        let room = Room::from_pb(started.session, "signing")?;
        let spec = SessionSpec::new(
            room.clone(),
            self.party.index(),
            Some(self.account_id.clone()),
            self.party.identity().clone(),
            self.party.roster(&self.signers)?,
            Build::Sign {
                signers: self.signers.clone(),
                share: Box::new(self.party.key_share(&self.account_id)?),
                path: (!self.path.is_root()).then(|| self.path.indices().to_vec()),
                digest: self.request.digest.into(),
                preimage: self.request.preimage.clone(),
            },
        );
        self.pending = Pending::Session {
            session_id: room.session_id,
            request_id: started.request_id,
        };
        Ok(SignStep::RunSession(RunSession::new(self, spec)))
    }
}

impl Flow for Sign {
    type Step = SignStep;

    fn on_reply(
        mut self: Box<Self>,
        _method: CosignerMethod,
        _sent_at_ms: u64,
        reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<SignStep, ClientError> {
        match (
            std::mem::replace(&mut self.pending, Pending::Nothing),
            reply,
        ) {
            (
                Pending::Partial { id, public, mine },
                Ok(CosignerResponse::SignWithPresignature(r)),
            ) => self.on_partial(id, public, *mine, Ok(r)),
            (Pending::Partial { id, public, mine }, Err(e)) => {
                self.on_partial(id, public, *mine, Err(e))
            }
            (Pending::Started, Ok(CosignerResponse::StartSign(r))) => self.on_started(Ok(r)),
            (Pending::Started, Err(e)) => self.on_started(Err(e)),
            _ => Err(ClientError::internal(
                "a reply the signing flow did not ask for",
            )),
        }
    }

    fn on_session(
        mut self: Box<Self>,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<SignStep, ClientError> {
        let Pending::Session {
            session_id,
            request_id,
        } = std::mem::replace(&mut self.pending, Pending::Nothing)
        else {
            return Err(ClientError::internal(
                "a session the signing flow did not ask for",
            ));
        };
        let sig = match out.map_err(|e| ClientError::session("sign", &session_id, e))? {
            SessionOutput::Signature(s) => s,
            _ => {
                return Err(ClientError::SessionFailed {
                    stage: "sign".into(),
                    session_id,
                    reason: "the session produced another kind of output".into(),
                    blamed: Vec::new(),
                })
            }
        };
        let result = finish(
            &self.signing(),
            &sig,
            self.signers.clone(),
            session_id,
            request_id,
            false,
        )?;
        Ok(SignStep::Done(Signed {
            result,
            fast_path: self.fast,
        }))
    }
}
