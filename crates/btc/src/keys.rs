//! The threshold wallet's public side as Bitcoin sees it: BIP-32 xpubs, P2WPKH addresses
//! and watch-only descriptors, all derived with non-hardened steps only.

use std::str::FromStr;

use bitcoin::bip32::{ChainCode, ChildNumber, DerivationPath, Fingerprint, Xpub};
use bitcoin::secp256k1::{self, Secp256k1, VerifyOnly};
use bitcoin::{Address, CompressedPublicKey, NetworkKind, ScriptBuf};
use miniscript::descriptor::{Descriptor, DescriptorPublicKey, DescriptorXKey, Wildcard};

use crate::{BtcError, Network};

/// Purpose of BIP-84 (native SegWit P2WPKH) paths.
pub const BIP84_PURPOSE: u32 = 84;

/// Parses a derivation path such as `m/84/0/0/0/5` (the `m/` is optional) and refuses
/// hardened steps (`84'`, `84h`, or indices ≥ 2³¹): the threshold key cannot derive them.
pub fn parse_path(path: &str) -> Result<DerivationPath, BtcError> {
    let trimmed = path.trim();
    let normalized = if trimmed.is_empty() || trimmed == "m" || trimmed.starts_with("m/") {
        trimmed.to_string()
    } else {
        format!("m/{trimmed}")
    };
    let parsed = DerivationPath::from_str(if normalized.is_empty() {
        "m"
    } else {
        &normalized
    })
    .map_err(|e| BtcError::InvalidPath {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    check_non_hardened(&parsed)?;
    Ok(parsed)
}

/// Errors with [`BtcError::HardenedPath`] if any step of `path` is hardened.
pub fn check_non_hardened(path: &DerivationPath) -> Result<(), BtcError> {
    if path.into_iter().any(|c| c.is_hardened()) {
        return Err(BtcError::HardenedPath {
            path: path_string(path),
        });
    }
    Ok(())
}

/// Writes a path as `m/84/0/0/0/5` (the form `mpc-core` parses), `m` for the root.
pub fn path_string(path: &DerivationPath) -> String {
    let mut s = String::from("m");
    for c in path {
        s.push('/');
        s.push_str(&c.to_string());
    }
    s
}

/// The default account path for a network: `m/84/0/0` on mainnet and `m/84/1/0` on the
/// test networks. It is BIP-84's layout without the hardened marks (see the crate docs):
/// receive addresses are `account/0/i`, change addresses `account/1/i`.
pub fn default_account_path(network: Network) -> DerivationPath {
    DerivationPath::from(vec![
        ChildNumber::Normal {
            index: BIP84_PURPOSE,
        },
        ChildNumber::Normal {
            index: network.coin_type(),
        },
        ChildNumber::Normal { index: 0 },
    ])
}

/// The P2WPKH output script paying to `key`.
pub fn p2wpkh_script(key: &secp256k1::PublicKey) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&CompressedPublicKey(*key).wpubkey_hash())
}

/// The watch-only descriptors of one account: receive (`…/0/*`) and change (`…/1/*`),
/// each with its BIP-380 checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDescriptors {
    /// `wpkh([fingerprint/account]xpub/0/*)#checksum`.
    pub receive: String,
    /// `wpkh([fingerprint/account]xpub/1/*)#checksum`.
    pub change: String,
}

/// The wallet's root public key and chain code, as the threshold wallet holds them.
///
/// Derivation is BIP-32 public (non-hardened) derivation from this root; the root
/// fingerprint (first 4 bytes of HASH160 of the compressed root key) identifies the
/// wallet in PSBT `bip32_derivation` entries and descriptor key origins.
#[derive(Debug, Clone)]
pub struct WalletKeys {
    root: Xpub,
    secp: Secp256k1<VerifyOnly>,
}

impl WalletKeys {
    /// From the root public key (compressed SEC1, 33 bytes) and chain code (32 bytes).
    pub fn new(root_public_key: &[u8], chain_code: &[u8; 32]) -> Result<Self, BtcError> {
        if root_public_key.len() != 33 {
            return Err(BtcError::InvalidPublicKey(format!(
                "expected 33 bytes (compressed SEC1), got {}",
                root_public_key.len()
            )));
        }
        let public_key = secp256k1::PublicKey::from_slice(root_public_key)
            .map_err(|e| BtcError::InvalidPublicKey(e.to_string()))?;
        let root = Xpub {
            network: NetworkKind::Main,
            depth: 0,
            parent_fingerprint: Fingerprint::default(),
            child_number: ChildNumber::Normal { index: 0 },
            public_key,
            chain_code: ChainCode::from(*chain_code),
        };
        Ok(WalletKeys {
            root,
            secp: Secp256k1::verification_only(),
        })
    }

    /// The root key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.root.fingerprint()
    }

    /// The root public key.
    pub fn root_public_key(&self) -> secp256k1::PublicKey {
        self.root.public_key
    }

    /// A verification context (shared with the PSBT code).
    pub(crate) fn secp(&self) -> &Secp256k1<VerifyOnly> {
        &self.secp
    }

    fn derive(&self, path: &DerivationPath) -> Result<Xpub, BtcError> {
        check_non_hardened(path)?;
        self.root
            .derive_pub(&self.secp, path)
            .map_err(|e| BtcError::InvalidPath {
                path: path_string(path),
                reason: e.to_string(),
            })
    }

    /// The public key at `path` (non-hardened).
    pub fn public_key(&self, path: &DerivationPath) -> Result<secp256k1::PublicKey, BtcError> {
        Ok(self.derive(path)?.public_key)
    }

    /// The extended public key at `path`, encoded for `network` (`xpub…` on mainnet,
    /// `tpub…` on the test networks).
    pub fn xpub(&self, path: &DerivationPath, network: Network) -> Result<Xpub, BtcError> {
        let mut x = self.derive(path)?;
        x.network = NetworkKind::from(network.to_bitcoin());
        Ok(x)
    }

    /// The native SegWit (P2WPKH) address of the key at `path` on `network`.
    pub fn address(&self, path: &DerivationPath, network: Network) -> Result<Address, BtcError> {
        let key = self.public_key(path)?;
        Ok(Address::p2wpkh(
            &CompressedPublicKey(key),
            network.to_bitcoin(),
        ))
    }

    /// The receive and change descriptors of the account at `account_path`:
    /// `wpkh([root_fingerprint/account_path]xpub/0/*)#checksum` and `…/1/*`. The key
    /// origin carries the root fingerprint and the full (non-hardened) account path, so
    /// Bitcoin Core or Sparrow can both watch the wallet and fill PSBT derivation data
    /// this crate recognises.
    pub fn descriptors(
        &self,
        account_path: &DerivationPath,
        network: Network,
    ) -> Result<AccountDescriptors, BtcError> {
        let account = self.xpub(account_path, network)?;
        let make = |chain: u32| -> Result<String, BtcError> {
            let key = DescriptorPublicKey::XPub(DescriptorXKey {
                origin: Some((self.fingerprint(), account_path.clone())),
                xkey: account,
                derivation_path: DerivationPath::from(vec![ChildNumber::Normal { index: chain }]),
                wildcard: Wildcard::Unhardened,
            });
            let d = Descriptor::new_wpkh(key).map_err(|e| BtcError::Descriptor(e.to_string()))?;
            Ok(d.to_string())
        };
        Ok(AccountDescriptors {
            receive: make(0)?,
            change: make(1)?,
        })
    }

    /// Whether `(fingerprint, path)` claims `key` correctly for this wallet: the
    /// fingerprint is ours, the path is non-hardened and derives exactly `key`.
    pub(crate) fn owns(
        &self,
        key: &secp256k1::PublicKey,
        fingerprint: Fingerprint,
        path: &DerivationPath,
    ) -> bool {
        fingerprint == self.fingerprint()
            && self.public_key(path).map(|k| k == *key).unwrap_or(false)
    }
}

/// The BIP-380 checksum of a descriptor (without its `#…` part), as Bitcoin Core
/// computes it.
pub fn descriptor_checksum(descriptor: &str) -> Result<String, BtcError> {
    miniscript::descriptor::checksum::desc_checksum(descriptor)
        .map_err(|e| BtcError::Descriptor(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_refuse_hardened() {
        assert_eq!(
            path_string(&parse_path("m/84/0/0/0/5").unwrap()),
            "m/84/0/0/0/5"
        );
        assert_eq!(path_string(&parse_path("84/1").unwrap()), "m/84/1");
        assert_eq!(path_string(&parse_path("m").unwrap()), "m");
        assert_eq!(path_string(&parse_path("").unwrap()), "m");
        for bad in ["m/84'/0", "m/84h"] {
            assert!(
                matches!(parse_path(bad), Err(BtcError::HardenedPath { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_path("m/2147483648"),
            Err(BtcError::InvalidPath { .. } | BtcError::HardenedPath { .. })
        ));
        assert!(matches!(
            parse_path("m/x"),
            Err(BtcError::InvalidPath { .. })
        ));
        assert_eq!(
            path_string(&default_account_path(Network::Mainnet)),
            "m/84/0/0"
        );
        assert_eq!(
            path_string(&default_account_path(Network::Regtest)),
            "m/84/1/0"
        );
    }

    #[test]
    fn refuses_bad_root_keys() {
        assert!(matches!(
            WalletKeys::new(&[2u8; 32], &[0; 32]),
            Err(BtcError::InvalidPublicKey(_))
        ));
        let mut not_on_curve = [0u8; 33];
        not_on_curve[0] = 2;
        assert!(matches!(
            WalletKeys::new(&not_on_curve, &[0; 32]),
            Err(BtcError::InvalidPublicKey(_))
        ));
    }
}
