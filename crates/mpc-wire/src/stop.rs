//! Stop notices: a party that ends a session early (a server draining for a restart)
//! tells its peers why, in a signed broadcast envelope of the reserved round
//! [`STOP_ROUND`], so they fail at once with its error code instead of waiting for their
//! deadline.
//!
//! A notice is authenticated like any envelope (roster identity, session, sequence
//! number), so whoever can only inject into the gateway cannot stop a session; a peer
//! that can sign could stall the session by going silent anyway, so accepting its stop
//! gives it nothing new. The code is a wire error code (`[a-z0-9_]`, at most
//! [`MAX_STOP_CODE`] bytes) for the peer to act on; the reason is for people.

use serde::{Deserialize, Serialize};

use crate::WireError;

/// The round number of stop notices (no protocol gets near it).
pub const STOP_ROUND: u16 = u16::MAX;
/// Longest stop code accepted.
pub const MAX_STOP_CODE: usize = 64;
/// Longest stop reason accepted (bytes).
pub const MAX_STOP_REASON: usize = 512;

/// Why a party ended a session early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopNotice {
    /// A wire error code (`cosigner_unavailable` for a draining cosigner).
    pub code: String,
    /// What happened, for people.
    pub reason: String,
}

fn check(code: &str, reason: &str) -> Result<(), String> {
    if code.is_empty()
        || code.len() > MAX_STOP_CODE
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "stop code {code:?} is not [a-z0-9_]{{1,{MAX_STOP_CODE}}}"
        ));
    }
    if reason.len() > MAX_STOP_REASON {
        return Err(format!(
            "stop reason of {} bytes (at most {MAX_STOP_REASON})",
            reason.len()
        ));
    }
    Ok(())
}

impl StopNotice {
    /// A notice with `code` and `reason`, checked.
    pub fn new(code: &str, reason: &str) -> Result<Self, WireError> {
        check(code, reason).map_err(|reason| WireError::Malformed {
            sender: None,
            reason,
        })?;
        Ok(Self {
            code: code.to_string(),
            reason: reason.to_string(),
        })
    }

    /// The envelope payload (JSON).
    pub(crate) fn to_payload(&self) -> Result<Vec<u8>, WireError> {
        serde_json::to_vec(self).map_err(|e| WireError::Malformed {
            sender: None,
            reason: format!("stop notice: {e}"),
        })
    }

    /// The notice in a stop envelope's payload from `sender`, checked.
    pub(crate) fn from_payload(sender: u16, payload: &[u8]) -> Result<Self, WireError> {
        let malformed = |reason: String| WireError::Malformed {
            sender: Some(sender),
            reason: format!("stop notice: {reason}"),
        };
        let n: StopNotice =
            serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
        check(&n.code, &n.reason).map_err(malformed)?;
        Ok(n)
    }
}
