//! Session ids and rosters.

use core::fmt;
use core::str::FromStr;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::identity::{os_random, PublicIdentity};
use crate::WireError;

/// Maximum length of a session id in bytes.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Identifies one protocol run.
///
/// 1 to [`MAX_SESSION_ID_LEN`] characters from `A-Z a-z 0-9 . _ : -`.
///
/// **Must be unique per protocol run**: sequence numbers (and so replay protection)
/// restart with every new [`crate::Channel`], so envelopes recorded in an earlier run
/// with the same session id would be accepted again. Use [`SessionId::random`] or
/// include a random nonce in the id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, WireError> {
        let id = id.into();
        if id.is_empty() {
            return Err(WireError::InvalidSessionId {
                reason: "empty".into(),
            });
        }
        if id.len() > MAX_SESSION_ID_LEN {
            return Err(WireError::InvalidSessionId {
                reason: format!(
                    "{} bytes long, at most {MAX_SESSION_ID_LEN} allowed",
                    id.len()
                ),
            });
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(WireError::InvalidSessionId {
                reason: format!("character {c:?} not allowed (only A-Z a-z 0-9 . _ : -)"),
            });
        }
        Ok(Self(id))
    }

    /// A fresh random session id (128 bits from the OS RNG, 32 hex digits).
    pub fn random() -> Result<Self, WireError> {
        let mut bytes = [0u8; 16];
        os_random(&mut bytes)?;
        Ok(Self(hex::encode(bytes)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = WireError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> Self {
        id.0
    }
}

impl FromStr for SessionId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:?})", self.0)
    }
}

/// The parties of a session: keygen index → public identity.
///
/// All parties must be known in advance and every party must use the same roster.
/// At least two parties; no index or identity may appear twice. Serializes as a JSON
/// object `{"0": "<identity>", "1": ...}`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<u16, PublicIdentity>",
    into = "BTreeMap<u16, PublicIdentity>"
)]
pub struct Roster {
    parties: BTreeMap<u16, PublicIdentity>,
}

impl Roster {
    /// Builds a roster from `(index, identity)` pairs.
    pub fn new(
        parties: impl IntoIterator<Item = (u16, PublicIdentity)>,
    ) -> Result<Self, WireError> {
        let mut map = BTreeMap::new();
        for (index, identity) in parties {
            if map.insert(index, identity).is_some() {
                return Err(WireError::InvalidRoster {
                    reason: format!("party index {index} appears twice"),
                });
            }
        }
        Self::try_from(map)
    }

    /// The identity of party `index`.
    pub fn get(&self, index: u16) -> Option<&PublicIdentity> {
        self.parties.get(&index)
    }

    /// Whether party `index` is in the roster.
    pub fn contains(&self, index: u16) -> bool {
        self.parties.contains_key(&index)
    }

    /// Number of parties.
    pub fn len(&self) -> usize {
        self.parties.len()
    }

    /// Always `false` (a roster has at least two parties); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    /// Parties in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &PublicIdentity)> + '_ {
        self.parties.iter().map(|(i, p)| (*i, p))
    }
}

impl TryFrom<BTreeMap<u16, PublicIdentity>> for Roster {
    type Error = WireError;
    fn try_from(parties: BTreeMap<u16, PublicIdentity>) -> Result<Self, Self::Error> {
        if parties.len() < 2 {
            return Err(WireError::InvalidRoster {
                reason: format!("needs at least 2 parties, has {}", parties.len()),
            });
        }
        // Two parties sharing a signing or an encryption key could speak for each other.
        let signs: BTreeSet<_> = parties.values().map(|p| *p.sign_key().as_bytes()).collect();
        let dhs: BTreeSet<_> = parties.values().map(|p| *p.dh_key().as_bytes()).collect();
        if signs.len() != parties.len() || dhs.len() != parties.len() {
            return Err(WireError::InvalidRoster {
                reason: "two parties share a signing or encryption key".into(),
            });
        }
        Ok(Self { parties })
    }
}

impl From<Roster> for BTreeMap<u16, PublicIdentity> {
    fn from(r: Roster) -> Self {
        r.parties
    }
}
