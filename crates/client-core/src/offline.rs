//! Signing with the device AND the recovery share, without the cosigner (both parties
//! run in one process: `mpc_core::local`).
//!
//! ```text
//! OfflineSign::start ─► RunLocal (the driver runs both sessions in-process:
//!                       mpc_core::local::run_sessions, or LocalRun step by step)
//!                    ─► verify ─► Done
//! ```

use mpc_core::{KeyShare, Session, SessionError, SessionOutput};
use mpc_wire::SessionId;
use wallet_types::{DigestKind, DEVICE, RECOVERY};

use crate::error::ClientError;
use crate::party::{parse_path, Party};
use crate::types::{ChainStyle, SignedResult};
use crate::verify::{check_preimage, PairExpectation};

/// What to sign offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineParams {
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
}

/// What the driver does next in an offline signing.
#[derive(Debug)]
pub enum OfflineStep {
    /// Run both parties' sessions in this process.
    RunLocal(RunLocal),
    /// Signed and verified (`elapsed_ms` is the driver's to set).
    Done(SignedResult),
}

/// The two sessions to run in-process: [`start`](RunLocal::start) gives them.
pub struct RunLocal {
    flow: OfflineSign,
    sessions: LocalSessions,
}

impl std::fmt::Debug for RunLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLocal")
            .field("session_id", &self.flow.expected.session_id)
            .finish_non_exhaustive()
    }
}

impl RunLocal {
    /// The sessions to run and the state that takes their outputs.
    pub fn start(self) -> (LocalSessions, OfflineSign) {
        (self.sessions, self.flow)
    }
}

/// Both parties' sessions, described (a value that can move to another thread).
pub struct LocalSessions {
    session_id: String,
    shares: Vec<KeyShare>,
    path: Option<Vec<u32>>,
    digest: DigestKind,
    preimage: Vec<u8>,
}

impl std::fmt::Debug for LocalSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSessions")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl LocalSessions {
    /// Builds the sessions (on the thread that runs them: sessions are not `Send`).
    pub fn open(self) -> Result<Vec<Session>, SessionError> {
        let signers = vec![DEVICE, RECOVERY];
        self.shares
            .into_iter()
            .map(|share| {
                Session::sign(
                    self.session_id.as_bytes(),
                    signers.clone(),
                    share,
                    self.path.clone(),
                    mpc_core::digest::data_to_sign(self.digest, &self.preimage),
                )
            })
            .collect()
    }
}

/// An offline signing in progress: give it the sessions' outputs.
#[derive(Debug)]
pub struct OfflineSign {
    expected: PairExpectation,
}

impl OfflineSign {
    /// Starts an offline signing with both user parties of one wallet.
    pub fn start(
        device: &Party,
        recovery: &Party,
        params: OfflineParams,
    ) -> Result<OfflineStep, ClientError> {
        let path = parse_path(&params.path)?;
        check_preimage(&params.preimage)?;
        if device.index() != DEVICE || recovery.index() != RECOVERY {
            return Err(ClientError::config(
                "offline signing needs the device's and the recovery party's shares",
            ));
        }
        if device.wallet_id() != recovery.wallet_id() {
            return Err(ClientError::config(format!(
                "the device share belongs to wallet {} and the recovery share to wallet {}",
                device.wallet_id(),
                recovery.wallet_id()
            )));
        }
        let public_key = device.account(&params.account_id)?.public_key_at(&path)?;
        let shares = vec![
            device.key_share(&params.account_id)?,
            recovery.key_share(&params.account_id)?,
        ];
        if shares[0].core.shared_public_key != shares[1].core.shared_public_key {
            return Err(ClientError::config(format!(
                "the device and recovery shares hold different keys for account {}",
                params.account_id
            )));
        }
        let session_id = SessionId::random()
            .map_err(|e| ClientError::internal(e.to_string()))?
            .to_string();
        let digest = mpc_core::digest::digest(params.digest, &params.preimage);
        let sessions = LocalSessions {
            session_id: session_id.clone(),
            shares,
            path: (!path.is_root()).then(|| path.indices().to_vec()),
            digest: params.digest,
            preimage: params.preimage,
        };
        Ok(OfflineStep::RunLocal(RunLocal {
            flow: OfflineSign {
                expected: PairExpectation {
                    account_id: params.account_id,
                    path,
                    public_key,
                    digest,
                    chain: params.chain,
                    session_id,
                },
            },
            sessions,
        }))
    }

    /// The sessions' outputs (as `mpc_core::local` returns them).
    pub fn finished(
        self,
        out: Result<Vec<SessionOutput>, (u16, SessionError)>,
    ) -> Result<OfflineStep, ClientError> {
        let failed = |reason: String| ClientError::SessionFailed {
            stage: "offline-sign".into(),
            session_id: self.expected.session_id.clone(),
            reason,
            blamed: Vec::new(),
        };
        let out = out.map_err(|(p, e)| failed(format!("party {p}: {e}")))?;
        let sig = match out.into_iter().next() {
            Some(SessionOutput::Signature(s)) => s,
            _ => return Err(failed("the sessions produced no signature".into())),
        };
        Ok(OfflineStep::Done(self.expected.finish(&sig)?))
    }
}
