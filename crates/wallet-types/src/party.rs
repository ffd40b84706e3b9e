//! The three parties of every key, by their keygen index.

use serde::{Deserialize, Serialize};

/// Keygen index of a party (fixed at key generation: 0 device, 1 cosigner, 2 recovery).
pub type PartyIndex = u16;

/// Party 0: the user's device (browser, mobile app or CLI).
pub const DEVICE: PartyIndex = 0;
/// Party 1: the cosigner (`sign-service`).
pub const COSIGNER: PartyIndex = 1;
/// Party 2: the recovery party (CLI on another machine, or the recovery agent).
pub const RECOVERY: PartyIndex = 2;
/// Number of parties sharing every key.
pub const PARTIES: u16 = 3;
/// Number of parties needed to sign.
pub const THRESHOLD: u16 = 2;

/// Which of the user's two parties a client acts as (the cosigner is never a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    /// Party 0, the device share. The normal case.
    #[default]
    Device,
    /// Party 2, the recovery share: signs with the cosigner when the device is lost.
    Recovery,
}

impl PartyRole {
    /// The keygen index of this role.
    pub const fn index(self) -> PartyIndex {
        match self {
            PartyRole::Device => DEVICE,
            PartyRole::Recovery => RECOVERY,
        }
    }

    /// The role of a user party's keygen index (`None` for the cosigner and others).
    pub const fn of_index(index: PartyIndex) -> Option<PartyRole> {
        match index {
            DEVICE => Some(PartyRole::Device),
            RECOVERY => Some(PartyRole::Recovery),
            _ => None,
        }
    }

    /// The signer pair of this role with the cosigner, sorted (`[0, 1]` or `[1, 2]`).
    pub const fn pair_with_cosigner(self) -> [PartyIndex; 2] {
        match self {
            PartyRole::Device => [DEVICE, COSIGNER],
            PartyRole::Recovery => [COSIGNER, RECOVERY],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_indices() {
        for r in [PartyRole::Device, PartyRole::Recovery] {
            assert_eq!(PartyRole::of_index(r.index()), Some(r));
            let pair = r.pair_with_cosigner();
            assert!(pair[0] < pair[1] && pair.contains(&COSIGNER) && pair.contains(&r.index()));
        }
        assert_eq!(PartyRole::of_index(COSIGNER), None);
        assert_eq!(
            serde_json::to_string(&PartyRole::Recovery).unwrap(),
            "\"recovery\""
        );
    }
}
