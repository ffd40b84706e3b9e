//! The four Bitcoin networks the wallet makes addresses for.

use std::fmt;
use std::str::FromStr;

use crate::BtcError;

/// A Bitcoin network.
///
/// Testnet and signet share address prefixes (`tb1…`, `tpub…`); regtest has its own
/// bech32 prefix (`bcrt1…`) and the test networks' `tpub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// Bitcoin mainnet (`bc1…`, `xpub…`).
    Mainnet,
    /// Testnet (version 3; `tb1…`, `tpub…`).
    Testnet,
    /// Signet (`tb1…`, `tpub…`).
    Signet,
    /// Regtest (`bcrt1…`, `tpub…`).
    Regtest,
}

impl Network {
    /// All four, mainnet first.
    pub const ALL: [Network; 4] = [
        Network::Mainnet,
        Network::Testnet,
        Network::Signet,
        Network::Regtest,
    ];

    /// The `bitcoin` crate's network.
    pub fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Mainnet => bitcoin::Network::Bitcoin,
            Network::Testnet => bitcoin::Network::Testnet,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }

    /// BIP-44 coin type: 0 on mainnet, 1 on every test network.
    pub fn coin_type(self) -> u32 {
        match self {
            Network::Mainnet => 0,
            _ => 1,
        }
    }

    /// The canonical name (`mainnet`, `testnet`, `signet`, `regtest`).
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }
}

impl Network {
    /// The name on the cosigner's wire (`StartSignRequest.bitcoin_network`): `bitcoin`
    /// for mainnet (the `bitcoin` crate's name), otherwise [`Network::as_str`].
    pub fn wire_name(self) -> &'static str {
        match self {
            Network::Mainnet => "bitcoin",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = BtcError;

    /// Accepts `mainnet` or `bitcoin`, `testnet`, `signet`, `regtest` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mainnet" | "bitcoin" => Ok(Network::Mainnet),
            "testnet" => Ok(Network::Testnet),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            _ => Err(BtcError::UnknownNetwork(s.to_string())),
        }
    }
}

impl From<Network> for bitcoin::Network {
    fn from(n: Network) -> Self {
        n.to_bitcoin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in Network::ALL {
            assert_eq!(n.to_string().parse::<Network>().unwrap(), n);
        }
        assert_eq!("bitcoin".parse::<Network>().unwrap(), Network::Mainnet);
        assert_eq!("Regtest".parse::<Network>().unwrap(), Network::Regtest);
        assert!(matches!(
            "testnet4x".parse::<Network>(),
            Err(BtcError::UnknownNetwork(_))
        ));
        assert_eq!(Network::Mainnet.coin_type(), 0);
        assert_eq!(Network::Signet.coin_type(), 1);
        for n in Network::ALL {
            assert_eq!(n.wire_name().parse::<Network>().unwrap(), n);
        }
        assert_eq!(Network::Mainnet.wire_name(), "bitcoin");
    }
}
