//! Bitcoin addresses and watch-only export of the wallet's accounts, on `wallet-btc`
//! (rust-bitcoin): native SegWit (P2WPKH) addresses on mainnet, testnet, signet and
//! regtest, the account xpub, and `wpkh([fingerprint/path]xpub/0/*)#checksum` receive and
//! change descriptors for Bitcoin Core (`importdescriptors`) or Sparrow.
//!
//! Everything is computed locally from the active party's share file (the account's
//! root public key and chain code); nothing goes to the network. The threshold key has no
//! private key anywhere, so only **non-hardened** paths exist: a hardened step (`84'`,
//! `84h`) is refused with [`MpcError::InvalidInput`] (code `invalid_input`) whose reason
//! names the hardened path, before the share file is opened.
//!
//! Accounts follow BIP-84's layout without the hardened marks:
//! [`default_account_path`] is `m/84/0/0` on mainnet and `m/84/1/0` on the test
//! networks; receive addresses are `account/0/i`, change `account/1/i`.

use serde::{Deserialize, Serialize};
use wallet_btc::bitcoin::bip32::DerivationPath;
use wallet_btc::{BtcError, WalletKeys};

pub use wallet_btc::Network as BitcoinNetwork;

use crate::{MpcClient, MpcError};

/// A P2WPKH address of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitcoinAddress {
    /// Account id.
    pub account_id: String,
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The (non-hardened) derivation path, `m/84/0/0/0/0` form.
    pub path: String,
    /// The key at `path`, compressed SEC1, hex.
    pub public_key: String,
    /// The native SegWit address (`bc1q…`, `tb1q…`, `bcrt1q…`).
    pub address: String,
}

/// What a watch-only wallet (Bitcoin Core, Sparrow) needs to follow an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitcoinWatchOnly {
    /// Account id.
    pub account_id: String,
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The account's (non-hardened) path, e.g. `m/84/0/0`.
    pub account_path: String,
    /// The root key's fingerprint (8 hex digits), the key origin of the descriptors.
    pub fingerprint: String,
    /// The extended public key at `account_path` (`xpub…` on mainnet, `tpub…` on the
    /// test networks).
    pub xpub: String,
    /// `wpkh([fingerprint/account_path]xpub/0/*)#checksum`: the receive addresses.
    pub receive_descriptor: String,
    /// `wpkh([fingerprint/account_path]xpub/1/*)#checksum`: the change addresses.
    pub change_descriptor: String,
}

/// The default account path of `network`: `m/84/0/0` on mainnet, `m/84/1/0` on the test
/// networks.
pub fn default_account_path(network: BitcoinNetwork) -> String {
    wallet_btc::path_string(&wallet_btc::default_account_path(network))
}

/// The default receive address path of `network`: the first receive address of the
/// default account (`m/84/0/0/0/0` on mainnet, `m/84/1/0/0/0` on the test networks).
pub fn default_address_path(network: BitcoinNetwork) -> String {
    format!("{}/0/0", default_account_path(network))
}

/// Parses a network name (`mainnet` or `bitcoin`, `testnet`, `signet`, `regtest`).
pub fn parse_network(name: &str) -> Result<BitcoinNetwork, MpcError> {
    name.parse().map_err(btc_error)
}

/// Maps the codec's errors: bad arguments are `invalid_input`, a root key the codec
/// refuses means a damaged file, anything else is a bug.
fn btc_error(e: BtcError) -> MpcError {
    match e {
        BtcError::InvalidPath { .. }
        | BtcError::HardenedPath { .. }
        | BtcError::UnknownNetwork(_) => MpcError::input(e.to_string()),
        other => MpcError::internal(format!("bitcoin: {other}")),
    }
}

fn parse_path(path: &str) -> Result<DerivationPath, MpcError> {
    wallet_btc::parse_path(path).map_err(btc_error)
}

impl MpcClient {
    /// The BIP-32 view of an account: its root public key and chain code (from the
    /// active party's share file). An account without a chain code has only its root key
    /// (`has_chain_code` false): the root path works, derivation is refused.
    async fn bitcoin_keys(&self, account_id: &str) -> Result<(WalletKeys, bool), MpcError> {
        let files = self.active_party().await?;
        let account = files.party.account(account_id)?;
        let root = account.master_public_key().to_bytes(true);
        let chain_code = account.share.chain_code;
        let keys = WalletKeys::new(&root, &chain_code.unwrap_or([0; 32])).map_err(|e| {
            MpcError::corrupt(
                self.config.key_share_path.clone(),
                format!("account {account_id}: {e}"),
            )
        })?;
        Ok((keys, chain_code.is_some()))
    }

    /// The native SegWit (P2WPKH) address of an account at a non-hardened `path` on
    /// `network`. Computed locally; a hardened path is `invalid_input`.
    pub async fn bitcoin_address(
        &self,
        account_id: String,
        path: String,
        network: BitcoinNetwork,
    ) -> Result<BitcoinAddress, MpcError> {
        let parsed = parse_path(&path)?;
        let (keys, hd) = self.bitcoin_keys(&account_id).await?;
        if !hd && !parsed.is_master() {
            return Err(not_hd(&account_id, &parsed));
        }
        let key = keys.public_key(&parsed).map_err(btc_error)?;
        let address = keys.address(&parsed, network).map_err(btc_error)?;
        Ok(BitcoinAddress {
            account_id,
            network: network.to_string(),
            path: wallet_btc::path_string(&parsed),
            public_key: key.to_string(),
            address: address.to_string(),
        })
    }

    /// The watch-only export of the account at `account_path` (default:
    /// [`default_account_path`] of `network`): the xpub and the receive and change
    /// descriptors with key origin and checksum. Computed locally.
    pub async fn bitcoin_watch_only(
        &self,
        account_id: String,
        account_path: Option<String>,
        network: BitcoinNetwork,
    ) -> Result<BitcoinWatchOnly, MpcError> {
        let path = account_path.unwrap_or_else(|| default_account_path(network));
        let parsed = parse_path(&path)?;
        let (keys, hd) = self.bitcoin_keys(&account_id).await?;
        if !hd {
            return Err(not_hd(&account_id, &parsed));
        }
        let xpub = keys.xpub(&parsed, network).map_err(btc_error)?;
        let d = keys.descriptors(&parsed, network).map_err(btc_error)?;
        Ok(BitcoinWatchOnly {
            account_id,
            network: network.to_string(),
            account_path: wallet_btc::path_string(&parsed),
            fingerprint: keys.fingerprint().to_string(),
            xpub: xpub.to_string(),
            receive_descriptor: d.receive,
            change_descriptor: d.change,
        })
    }
}

fn not_hd(account_id: &str, path: &DerivationPath) -> MpcError {
    MpcError::input(format!(
        "account {account_id} has no chain code (not an HD key): it has only its root key, \
         no key at {} nor an xpub",
        wallet_btc::path_string(path)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{new_mpc_client, save_party_files, AccountKind, MpcConfig, WalletMeta};
    use crate::{ErrorCode, WALLET_META_FORMAT};
    use mpc_core::keystore::KeyShareBundle;

    const WALLET: &str = include_str!("../../../testing/fixtures/dev-wallet.json");

    /// The committed test wallet's party `index` (0 device, 2 recovery) saved as a share
    /// file, and a client on it in that role.
    fn client(dir: &std::path::Path, recovery: bool) -> crate::MpcClient {
        let v: serde_json::Value = serde_json::from_str(WALLET).unwrap();
        let mut cfg = MpcConfig::new(dir.join("device.json").display().to_string(), "pw");
        cfg.recovery_path = Some(dir.join("recovery.json").display().to_string());
        cfg.recovery_passphrase = Some("rpw".into());
        cfg.insecure_fast_kdf = true;
        for (i, file, pass) in [(0usize, "device.json", "pw"), (2, "recovery.json", "rpw")] {
            let path = dir.join(file);
            if path.exists() {
                continue;
            }
            let bundle: KeyShareBundle = serde_json::from_value(v["bundles"][i].clone()).unwrap();
            let meta = WalletMeta {
                format: WALLET_META_FORMAT.into(),
                wallet_id: "dev-wallet".into(),
                party_index: bundle.party_index,
                cosigner_url: cfg.cosigner_url.clone(),
                label: String::new(),
                created_at_ms: 0,
            };
            save_party_files(&path, pass, true, &meta, &bundle).unwrap();
        }
        if recovery {
            cfg.role = crate::PartyRole::Recovery;
        }
        new_mpc_client(cfg).unwrap()
    }

    #[tokio::test]
    async fn addresses_and_descriptors_of_the_test_wallet() {
        let dir = tempfile::tempdir().unwrap();
        let device = client(dir.path(), false);
        let recovery = client(dir.path(), true);
        let accounts = device.list_accounts().await.unwrap();
        let hd = accounts
            .iter()
            .find(|a| a.kind == AccountKind::Hd)
            .unwrap()
            .account_id
            .clone();

        // Same key as the wallet's own derivation (mpc-core's), on mainnet and testnet.
        let path = "m/84/0/0/0/3";
        let pk = device
            .get_public_key(hd.clone(), path.into())
            .await
            .unwrap();
        for (net, expected) in [
            (BitcoinNetwork::Mainnet, &pk.bitcoin_address),
            (BitcoinNetwork::Testnet, &pk.bitcoin_testnet_address),
        ] {
            let a = device
                .bitcoin_address(hd.clone(), path.into(), net)
                .await
                .unwrap();
            assert_eq!(&a.address, expected);
            assert_eq!(a.public_key, pk.public_key);
            assert_eq!(a.path, path);
        }
        // Prefixes per network; device and recovery agree.
        for (net, prefix) in [
            (BitcoinNetwork::Mainnet, "bc1q"),
            (BitcoinNetwork::Testnet, "tb1q"),
            (BitcoinNetwork::Signet, "tb1q"),
            (BitcoinNetwork::Regtest, "bcrt1q"),
        ] {
            let a = device
                .bitcoin_address(hd.clone(), path.into(), net)
                .await
                .unwrap();
            assert!(a.address.starts_with(prefix), "{net}: {}", a.address);
            assert_eq!(a.network, net.to_string());
            let r = recovery
                .bitcoin_address(hd.clone(), path.into(), net)
                .await
                .unwrap();
            assert_eq!(a, r);
            let w = device
                .bitcoin_watch_only(hd.clone(), None, net)
                .await
                .unwrap();
            assert_eq!(w.account_path, default_account_path(net));
            assert_eq!(
                w,
                recovery
                    .bitcoin_watch_only(hd.clone(), None, net)
                    .await
                    .unwrap()
            );
            let xprefix = if net == BitcoinNetwork::Mainnet {
                "xpub"
            } else {
                "tpub"
            };
            assert!(w.xpub.starts_with(xprefix), "{}", w.xpub);
            let origin = format!(
                "wpkh([{}/{}]{}/",
                w.fingerprint,
                &w.account_path[2..],
                w.xpub
            );
            assert!(
                w.receive_descriptor.starts_with(&format!("{origin}0/*)#")),
                "{}",
                w.receive_descriptor
            );
            assert!(
                w.change_descriptor.starts_with(&format!("{origin}1/*)#")),
                "{}",
                w.change_descriptor
            );
            let (body, sum) = w.receive_descriptor.split_once('#').unwrap();
            assert_eq!(wallet_btc::descriptor_checksum(body).unwrap(), sum);
        }
        // An explicit account path.
        let w = device
            .bitcoin_watch_only(hd.clone(), Some("m/84/0/7".into()), BitcoinNetwork::Mainnet)
            .await
            .unwrap();
        assert_eq!(w.account_path, "m/84/0/7");
        assert!(
            w.receive_descriptor.contains("/84/0/7]xpub"),
            "{}",
            w.receive_descriptor
        );
    }

    #[tokio::test]
    async fn hardened_paths_and_bad_input_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let device = client(dir.path(), false);
        let accounts = device.list_accounts().await.unwrap();
        let hd = accounts[0].account_id.clone();
        for bad in ["m/84'/0'/0'/0/0", "m/84h/0/0", "m/2147483648"] {
            let e = device
                .bitcoin_address(hd.clone(), bad.into(), BitcoinNetwork::Mainnet)
                .await
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad}: {e}");
            let e = device
                .bitcoin_watch_only(hd.clone(), Some(bad.into()), BitcoinNetwork::Mainnet)
                .await
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad}: {e}");
        }
        let e = device
            .bitcoin_address(hd.clone(), "m/84'/0".into(), BitcoinNetwork::Mainnet)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("hardened"), "{e}");
        let e = device
            .bitcoin_address(hd.clone(), "m/x".into(), BitcoinNetwork::Mainnet)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
        let e = device
            .bitcoin_address(
                "nope".into(),
                "m/84/0/0/0/0".into(),
                BitcoinNetwork::Mainnet,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownAccount, "{e}");
        assert_eq!(
            parse_network("testnet4x").unwrap_err().code(),
            ErrorCode::InvalidInput
        );
        assert_eq!(parse_network("Signet").unwrap(), BitcoinNetwork::Signet);
        // Hardened paths are refused before the share file is opened.
        let empty = tempfile::tempdir().unwrap();
        let none = new_mpc_client(MpcConfig::new(
            empty.path().join("x.json").display().to_string(),
            "pw",
        ))
        .unwrap();
        let e = none
            .bitcoin_address("0".into(), "m/84'/0".into(), BitcoinNetwork::Mainnet)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    }
}
