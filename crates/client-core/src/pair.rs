//! Signing by the device and the recovery party on two machines, without the cosigner:
//! each runs its half of one signing session in a room that the recovery agent hosts
//! and opened for this one signature (after its user confirmed it). The browser is
//! the device (party 0), the agent the recovery party (party 2).
//!
//! ```text
//! PairSign::start ─► RunSession (signers [0, 2], in the given room) ─► verify ─► Done
//! ```
//!
//! Both sides verify the signature against the account's key at the path before they
//! report it; [`OfflineSign`](crate::OfflineSign) is the same signing with both shares
//! in one process.

use mpc_core::SessionOutput;
use mpc_party::PartyError;
use wallet_types::{DigestKind, DEVICE, RECOVERY};

use crate::cosigner::{CosignerMethod, CosignerResponse};
use crate::error::{ClientError, RemoteError};
use crate::party::{parse_path, Party};
use crate::session::{Build, Room, SessionSpec};
use crate::step::{sealed::Flow, RunSession};
use crate::types::{ChainStyle, SignedResult};
use crate::verify::{check_preimage, PairExpectation};

/// The signers of a pair signing: the device and the recovery party.
pub const PAIR_SIGNERS: [u16; 2] = [DEVICE, RECOVERY];

/// What to sign, and where the session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSignParams {
    /// The account.
    pub account_id: String,
    /// Non-hardened derivation path (`m` for the root).
    pub path: String,
    /// The bytes whose digest is signed.
    pub preimage: Vec<u8>,
    /// How the preimage is hashed.
    pub digest: DigestKind,
    /// How Ethereum's `v` is formed.
    pub chain: ChainStyle,
    /// The room the recovery agent opened (this party's token in it).
    pub room: Room,
}

/// What the driver does next in a pair signing.
#[derive(Debug)]
pub enum PairStep {
    /// Run this party's signing session over the room's relay.
    RunSession(RunSession<PairSign>),
    /// Signed and verified.
    Done(Box<SignedResult>),
}

/// A pair signing in progress.
#[derive(Debug)]
pub struct PairSign {
    expected: PairExpectation,
}

impl PairSign {
    /// Starts this party's half (the party must be the device or the recovery party).
    pub fn start(party: &Party, params: PairSignParams) -> Result<PairStep, ClientError> {
        let path = parse_path(&params.path)?;
        check_preimage(&params.preimage)?;
        params
            .room
            .check("pair signing")
            .map_err(ClientError::input)?;
        let me = party.index();
        if !PAIR_SIGNERS.contains(&me) {
            return Err(ClientError::config(
                "only the device and the recovery party sign without the cosigner",
            ));
        }
        let public_key = party.account(&params.account_id)?.public_key_at(&path)?;
        let digest = mpc_core::digest::digest(params.digest, &params.preimage);
        let signers = PAIR_SIGNERS.to_vec();
        let spec = SessionSpec::new(
            params.room.clone(),
            me,
            Some(params.account_id.clone()),
            party.identity().clone(),
            party.roster(&signers)?,
            Build::Sign {
                signers,
                share: Box::new(party.key_share(&params.account_id)?),
                path: (!path.is_root()).then(|| path.indices().to_vec()),
                digest: params.digest,
                preimage: params.preimage,
            },
        );
        let flow = PairSign {
            expected: PairExpectation {
                account_id: params.account_id,
                path,
                public_key,
                digest,
                chain: params.chain,
                session_id: params.room.session_id,
            },
        };
        Ok(PairStep::RunSession(RunSession::new(Box::new(flow), spec)))
    }
}

impl Flow for PairSign {
    type Step = PairStep;

    fn on_reply(
        self: Box<Self>,
        _method: CosignerMethod,
        _sent_at_ms: u64,
        _reply: Result<CosignerResponse, RemoteError>,
    ) -> Result<PairStep, ClientError> {
        Err(ClientError::internal("a pair signing talks to no cosigner"))
    }

    fn on_session(
        self: Box<Self>,
        out: Result<SessionOutput, PartyError>,
    ) -> Result<PairStep, ClientError> {
        let session_id = &self.expected.session_id;
        let sig = match out.map_err(|e| ClientError::session("sign", session_id, e))? {
            SessionOutput::Signature(s) => s,
            _ => {
                return Err(ClientError::SessionFailed {
                    stage: "sign".into(),
                    session_id: session_id.clone(),
                    reason: "the session produced another kind of output".into(),
                    blamed: Vec::new(),
                })
            }
        };
        Ok(PairStep::Done(Box::new(self.expected.finish(&sig)?)))
    }
}
