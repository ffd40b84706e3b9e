//! Protocol sessions described as values: where a session runs ([`Room`]), as whom,
//! and what it builds ([`SessionSpec`]). The generic session driver runs them.

use cosigner_api::pb;
use mpc_core::primes::PrimeSet;
use mpc_core::session::SessionKind;
use mpc_core::{IncompleteKeyShare, KeyShare, PartyIndex, Point, Session, SessionError};
use mpc_party::{PartyError, PartySession};
use mpc_wire::{IdentityKey, Roster, SessionId};
use wallet_types::{DigestKind, PARTIES, THRESHOLD};

use crate::error::ClientError;

/// Where one protocol session runs (as the cosigner announced it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Session id bound into every envelope (and the execution id).
    pub session_id: String,
    /// Room on the gateway.
    pub room: String,
    /// Room token (empty: an open gateway).
    pub room_token: String,
    /// Gateway URL announced by the cosigner (a driver may reach the gateway under
    /// another URL of its configuration).
    pub gateway_url: String,
}

/// Longest room name and token accepted from the cosigner.
const MAX_ROOM_LEN: usize = 256;
const MAX_TOKEN_LEN: usize = 4096;

impl Room {
    /// Checks a room: a valid session id, a room name of 1..=256 characters, a token of
    /// at most 4096.
    pub fn check(&self, what: &str) -> Result<(), String> {
        if self.room.is_empty() || self.room.len() > MAX_ROOM_LEN {
            return Err(format!(
                "room {what}: the room name must have 1..={MAX_ROOM_LEN} characters"
            ));
        }
        SessionId::new(self.session_id.clone())
            .map_err(|e| format!("room {what}: invalid session id: {e}"))?;
        if self.room_token.len() > MAX_TOKEN_LEN {
            return Err(format!("room {what}: room token too long"));
        }
        Ok(())
    }

    /// The room token, `None` for an open gateway.
    pub fn token(&self) -> Option<&str> {
        (!self.room_token.is_empty()).then_some(self.room_token.as_str())
    }

    /// The room of a cosigner response, checked.
    pub(crate) fn from_pb(r: Option<pb::SessionRoom>, what: &str) -> Result<Room, ClientError> {
        let r = r.ok_or_else(|| {
            ClientError::invalid_response(format!("the cosigner sent no {what} room"))
        })?;
        let room = Room {
            session_id: r.session_id,
            room: r.room,
            room_token: r.room_token,
            gateway_url: r.gateway_url,
        };
        room.check(what).map_err(ClientError::invalid_response)?;
        Ok(room)
    }

    /// The protobuf form (what the cosigner sent).
    pub fn to_pb(&self) -> pb::SessionRoom {
        pb::SessionRoom {
            session_id: self.session_id.clone(),
            room: self.room.clone(),
            room_token: self.room_token.clone(),
            gateway_url: self.gateway_url.clone(),
        }
    }
}

/// The keygen room of one account of a new wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRoom {
    /// The account id (shared by all parties).
    pub account_id: String,
    /// Where its DKG runs.
    pub keygen: Room,
}

/// What a session builds.
#[derive(Clone)]
pub(crate) enum Build {
    AuxInfo(PrimeSet),
    Keygen,
    Sign {
        signers: Vec<u16>,
        share: Box<KeyShare>,
        path: Option<Vec<u32>>,
        digest: DigestKind,
        preimage: Vec<u8>,
    },
    Presign {
        signers: Vec<u16>,
        share: Box<KeyShare>,
        /// The HD path the presignature will sign at (`None`: the root).
        path: Option<Vec<u32>>,
    },
    /// A proactive refresh of `share` (at `epoch`) among the three parties.
    Refresh {
        share: Box<IncompleteKeyShare>,
        epoch: u64,
    },
    /// This party helps rebuild party `lost`'s share.
    RepairHelper {
        share: Box<IncompleteKeyShare>,
        epoch: u64,
        lost: PartyIndex,
    },
    /// This party (a new holder of its index) receives its rebuilt share; the helpers
    /// must prove the account's public key.
    RepairNew {
        epoch: u64,
        expected_public_key: Box<Point>,
    },
}

/// One session of this party, described: where it runs, as whom, what it builds.
///
/// A value that can move to another thread; [`SessionSpec::open`] builds the session
/// and its envelope relay (a [`PartySession`]) on the thread that will step it (sessions
/// are not `Send`). The identity key inside never leaves: only the relay holds it.
#[derive(Clone)]
pub struct SessionSpec {
    room: Room,
    me: u16,
    kind: SessionKind,
    account_id: Option<String>,
    identity: IdentityKey,
    roster: Roster,
    build: Build,
}

impl std::fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSpec")
            .field("room", &self.room)
            .field("me", &self.me)
            .field("kind", &self.kind)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl SessionSpec {
    pub(crate) fn new(
        room: Room,
        me: u16,
        account_id: Option<String>,
        identity: IdentityKey,
        roster: Roster,
        build: Build,
    ) -> Self {
        let kind = match &build {
            Build::AuxInfo(_) => SessionKind::AuxInfo,
            Build::Keygen => SessionKind::Keygen,
            Build::Sign { .. } => SessionKind::Sign,
            Build::Presign { .. } => SessionKind::Presign,
            Build::Refresh { .. } => SessionKind::Refresh,
            Build::RepairHelper { .. } | Build::RepairNew { .. } => SessionKind::Repair,
        };
        SessionSpec {
            room,
            me,
            kind,
            account_id,
            identity,
            roster,
            build,
        }
    }

    /// Where the session runs.
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.room.session_id
    }

    /// This party's keygen index.
    pub fn me(&self) -> u16 {
        self.me
    }

    /// Which protocol.
    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// `aux-info`, `keygen`, `sign`, `presign`, `refresh` or `repair`.
    pub fn stage(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The account the session concerns (keygen, sign, presign).
    pub fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }

    /// Keygen indices of the session's parties, sorted.
    pub fn parties(&self) -> Vec<u16> {
        self.roster.iter().map(|(p, _)| p).collect()
    }

    /// Builds the session and its relay. Call it where the session will be stepped.
    pub fn open(self) -> Result<PartySession, PartyError> {
        let sid = SessionId::new(self.room.session_id.clone())?;
        let sid_bytes = self.room.session_id.as_bytes().to_vec();
        let me = self.me;
        let build = self.build;
        PartySession::open(sid, me, self.identity, self.roster, move || match build {
            Build::AuxInfo(primes) => {
                let primes = primes
                    .to_pregenerated()
                    .map_err(|e| SessionError::InvalidParams(format!("primes: {e}")))?;
                Session::aux_info(&sid_bytes, me, PARTIES, primes)
            }
            Build::Keygen => Session::keygen(&sid_bytes, me, PARTIES, THRESHOLD),
            Build::Sign {
                signers,
                share,
                path,
                digest,
                preimage,
            } => Session::sign(
                &sid_bytes,
                signers,
                *share,
                path,
                mpc_core::digest::data_to_sign(digest, &preimage),
            ),
            Build::Presign {
                signers,
                share,
                path,
            } => Session::presign(&sid_bytes, signers, *share, path),
            Build::Refresh { share, epoch } => Session::refresh(&sid_bytes, &share, epoch),
            Build::RepairHelper { share, epoch, lost } => {
                Session::repair_helper(&sid_bytes, &share, epoch, lost)
            }
            Build::RepairNew {
                epoch,
                expected_public_key,
            } => Session::repair_new(&sid_bytes, me, epoch, *expected_public_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_move_between_threads() {
        fn send<T: Send + 'static>() {}
        send::<SessionSpec>();
    }

    #[test]
    fn rooms_are_checked() {
        let good = Room {
            session_id: "s-1".into(),
            room: "r".into(),
            room_token: String::new(),
            gateway_url: "http://g".into(),
        };
        assert!(good.check("x").is_ok());
        assert_eq!(good.token(), None);
        let mut bad = good.clone();
        bad.room = String::new();
        assert!(bad.check("x").is_err());
        let mut bad = good.clone();
        bad.session_id = "has space".into();
        assert!(bad.check("x").is_err());
        assert!(Room::from_pb(None, "sign").is_err());
        assert_eq!(Room::from_pb(Some(good.to_pb()), "sign").unwrap(), good);
    }
}
