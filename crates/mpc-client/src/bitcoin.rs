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
use wallet_btc::{BtcError, InputSignature, WalletKeys};
use wallet_types::{DigestKind, PayloadKind};

use crate::ChainStyle;

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

// ------------------------------------------------------------------------ PSBT signing

/// How [`MpcClient::sign_psbt`] signs each input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsbtSigner {
    /// With the cosigner, as the configured role: each input from its path's
    /// presignature pool where the [`crate::PresignConfig`] mode allows it and the pool
    /// has one, otherwise a signing session.
    #[default]
    Cosigner,
    /// With the device AND recovery shares on this machine, without the cosigner
    /// ([`MpcClient::offline_sign`]: both files and passphrases configured).
    Offline,
}

/// One signed input of a [`SignedPsbt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPsbtInput {
    /// The input's index in the transaction.
    pub index: u32,
    /// Its (non-hardened) derivation path, `m/84/1/0/0/3` form.
    pub path: String,
    /// The key at `path`, compressed SEC1, hex.
    pub public_key: String,
    /// The amount it spends, in satoshis.
    pub amount_sats: u64,
    /// Its BIP-143 sighash (the signed digest), hex.
    pub sighash: String,
    /// Whether it was signed from a presignature pool.
    pub presigned: bool,
    /// The signing session id (the presignature id on the fast path).
    pub session_id: String,
    /// The cosigner's audit reference (empty offline).
    pub request_id: String,
}

/// A PSBT signed and finalized by [`MpcClient::sign_psbt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPsbt {
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The PSBT version it was given in and is returned in (0 or 2).
    pub psbt_version: u32,
    /// The finalized PSBT, base64.
    pub psbt_base64: String,
    /// The network transaction, hex (what `sendrawtransaction` takes).
    pub tx_hex: String,
    /// Its txid.
    pub txid: String,
    /// The fee, in satoshis.
    pub fee_sats: u64,
    /// The signed inputs, in order.
    pub inputs: Vec<SignedPsbtInput>,
    /// Wall time of the whole signing, in milliseconds.
    pub elapsed_ms: u64,
}

/// Why a PSBT was not signed: the stage and the codec's or flow's error. Converts into
/// [`MpcError`] (what the public API returns) with the existing codes.
#[derive(Debug, thiserror::Error)]
pub enum PsbtError {
    /// The PSBT was refused before any signing started (malformed, a foreign input, a
    /// missing witness UTXO, an unsupported script...): `invalid_input`, nothing signed.
    #[error("PSBT refused ({code}): {0}", code = .0.code())]
    Refused(#[source] BtcError),
    /// Signing input `input` failed (the flow's error, with its own code). The inputs
    /// signed before it are discarded: nothing is returned signed partially.
    #[error("signing input {input} failed: {source}")]
    Input {
        /// The input's index.
        input: usize,
        /// Why.
        #[source]
        source: MpcError,
    },
    /// The signatures did not finalize the PSBT (a signature that does not verify:
    /// `verification_failed`; anything else is a bug: `internal`).
    #[error("finalizing the PSBT ({code}): {0}", code = .0.code())]
    Finalize(#[source] BtcError),
}

impl From<PsbtError> for MpcError {
    fn from(e: PsbtError) -> Self {
        match e {
            PsbtError::Refused(b) => MpcError::input(format!("PSBT refused ({}): {b}", b.code())),
            // The flow's error as it is: its code and fields are what the caller acts on.
            PsbtError::Input { source, .. } => source,
            PsbtError::Finalize(
                b @ (BtcError::SignatureMismatch { .. } | BtcError::InvalidSignature { .. }),
            ) => MpcError::VerificationFailed {
                reason: format!("PSBT ({}): {b}", b.code()),
            },
            PsbtError::Finalize(b) => MpcError::internal(format!("finalizing the PSBT: {b}")),
        }
    }
}

impl MpcClient {
    /// Signs every input of a PSBT (BIP-174 version 0 or BIP-370 version 2, binary or
    /// base64) and finalizes it.
    ///
    /// The PSBT is analyzed first ([`wallet_btc::analyze_psbt`] with the account's keys
    /// on `network`): any refusal (malformed, an input that is not the wallet's, a
    /// missing witness UTXO, Taproot or another script than P2WPKH...) comes back as
    /// `invalid_input` before any request or session. Then one signing per input, in
    /// order, at the input's path over its BIP-143 preimage (double SHA-256): with the
    /// cosigner (which receives the whole PSBT, the input index and the network, and
    /// applies its Bitcoin policy) from the path's presignature pool where the
    /// [`crate::PresignConfig`] allows it, or offline with device + recovery
    /// ([`PsbtSigner::Offline`]). A failure on any input returns that error and no PSBT:
    /// nothing is returned signed partially. Finally each signature is normalized to low
    /// S, verified and the PSBT finalized ([`wallet_btc::finalize_psbt`]).
    pub async fn sign_psbt(
        &self,
        account_id: String,
        psbt: Vec<u8>,
        network: BitcoinNetwork,
        signer: PsbtSigner,
    ) -> Result<SignedPsbt, MpcError> {
        let started = std::time::Instant::now();
        let binary = wallet_btc::psbt_binary(&psbt).map_err(PsbtError::Refused)?;
        if binary.len() > crate::MAX_PREIMAGE_LEN {
            return Err(PsbtError::Refused(BtcError::TooLarge(binary.len())).into());
        }
        let (keys, _) = self.bitcoin_keys(&account_id).await?;
        let plan = wallet_btc::analyze_psbt(&binary, &keys, network).map_err(PsbtError::Refused)?;
        let mut signatures = Vec::with_capacity(plan.inputs.len());
        let mut inputs = Vec::with_capacity(plan.inputs.len());
        for input in &plan.inputs {
            let path = input.path_string();
            let index = u32::try_from(input.index)
                .map_err(|_| MpcError::input("a PSBT input index above 2^32"))?;
            let signed = match signer {
                PsbtSigner::Cosigner => {
                    self.sign_with_cosigner(
                        account_id.clone(),
                        path.clone(),
                        input.preimage.clone(),
                        DigestKind::DoubleSha256,
                        PayloadKind::BitcoinPsbtInput,
                        Some(binary.clone()),
                        Some(client_core::BitcoinInput {
                            input_index: index,
                            network: network.wire_name().into(),
                        }),
                        ChainStyle::Legacy,
                    )
                    .await
                }
                PsbtSigner::Offline => {
                    self.offline_sign(
                        account_id.clone(),
                        path.clone(),
                        input.preimage.clone(),
                        DigestKind::DoubleSha256,
                        ChainStyle::Legacy,
                    )
                    .await
                }
            }
            .map_err(|source| PsbtError::Input {
                input: input.index,
                source,
            })?;
            if signed.digest != hex::encode(input.sighash) {
                return Err(MpcError::VerificationFailed {
                    reason: format!(
                        "input {}: signed digest {} is not its sighash {}",
                        input.index,
                        signed.digest,
                        hex::encode(input.sighash)
                    ),
                });
            }
            let der = hex::decode(&signed.der)
                .map_err(|e| MpcError::internal(format!("signature encoding: {e}")))?;
            signatures.push((input.index, InputSignature::Der(der)));
            inputs.push(SignedPsbtInput {
                index,
                path,
                public_key: input.public_key.to_string(),
                amount_sats: input.amount_sats,
                sighash: hex::encode(input.sighash),
                presigned: signed.presigned,
                session_id: signed.session_id,
                request_id: signed.request_id,
            });
        }
        let done = wallet_btc::finalize_psbt(&binary, &keys, network, &signatures)
            .map_err(PsbtError::Finalize)?;
        Ok(SignedPsbt {
            network: network.to_string(),
            psbt_version: done.psbt_version,
            psbt_base64: done.psbt_base64,
            tx_hex: done.tx_hex,
            txid: done.txid,
            fee_sats: plan.fee_sats,
            inputs,
            elapsed_ms: started.elapsed().as_millis() as u64,
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

    // ------------------------------------------------------------------ PSBT signing

    use wallet_btc::bitcoin::consensus::encode::serialize;
    use wallet_btc::bitcoin::psbt::Psbt;
    use wallet_btc::bitcoin::{ScriptBuf, Transaction, TxOut};

    /// A regtest PSBT spending `n` P2WPKH coins of the wallet at `m/84/1/0/0/i` to a
    /// foreign address, with change to `m/84/1/0/1/0`; and the spent outputs.
    fn regtest_psbt(keys: &WalletKeys, n: u32) -> (Psbt, Vec<TxOut>) {
        wallet_btc::testing::regtest_spend(keys, 0, n)
    }

    /// Bitcoin Core's interpreter on every input of the signed transaction.
    fn core_verifies(signed: &SignedPsbt, spent: &[TxOut]) {
        let tx: Transaction = wallet_btc::bitcoin::consensus::encode::deserialize(
            &hex::decode(&signed.tx_hex).unwrap(),
        )
        .unwrap();
        assert_eq!(tx.compute_txid().to_string(), signed.txid);
        for (i, out) in spent.iter().enumerate() {
            bitcoinconsensus::verify(
                out.script_pubkey.as_bytes(),
                out.value.to_sat(),
                &serialize(&tx),
                None,
                i,
            )
            .unwrap_or_else(|e| panic!("input {i}: {e:?}"));
        }
    }

    async fn hd_keys(c: &crate::MpcClient) -> (String, WalletKeys) {
        let accounts = c.list_accounts().await.unwrap();
        let hd = accounts
            .iter()
            .find(|a| a.kind == AccountKind::Hd)
            .unwrap()
            .account_id
            .clone();
        let (keys, _) = c.bitcoin_keys(&hd).await.unwrap();
        (hd, keys)
    }

    #[tokio::test]
    async fn psbt_signed_offline_passes_bitcoin_core() {
        let dir = tempfile::tempdir().unwrap();
        let device = client(dir.path(), false);
        let (hd, keys) = hd_keys(&device).await;
        for n in [1, 2] {
            let (psbt, spent) = regtest_psbt(&keys, n);
            // Base64 in, as Core and Sparrow hand it out.
            let signed = device
                .sign_psbt(
                    hd.clone(),
                    wallet_btc::encode_psbt(&psbt).into_bytes(),
                    BitcoinNetwork::Regtest,
                    PsbtSigner::Offline,
                )
                .await
                .unwrap();
            assert_eq!(signed.inputs.len(), n as usize);
            assert_eq!(signed.fee_sats, 2_000);
            assert!(signed
                .inputs
                .iter()
                .all(|i| !i.presigned && i.request_id.is_empty()));
            assert_eq!(signed.inputs[0].path, "m/84/1/0/0/0");
            core_verifies(&signed, &spent);
            // The finalized PSBT extracts to the same transaction.
            let back = wallet_btc::decode_psbt(signed.psbt_base64.as_bytes()).unwrap();
            assert_eq!(
                back.extract_tx_unchecked_fee_rate()
                    .compute_txid()
                    .to_string(),
                signed.txid
            );
        }
    }

    #[tokio::test]
    async fn psbt_refusals_come_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        // No cosigner listens at the configured URL: a refusal with `invalid_input`
        // (not `cosigner_unavailable`) shows that nothing was sent.
        let device = client(dir.path(), false);
        let (hd, keys) = hd_keys(&device).await;
        let (good, _) = regtest_psbt(&keys, 2);
        let mut foreign = good.clone();
        let other = WalletKeys::new(
            &keys
                .public_key(&wallet_btc::parse_path("m/7").unwrap())
                .unwrap()
                .serialize(),
            &[7; 32],
        )
        .unwrap();
        let (theirs, _) = regtest_psbt(&other, 1);
        foreign.inputs[1] = theirs.inputs[0].clone();
        let mut missing = good.clone();
        missing.inputs[0].witness_utxo = None;
        let mut taproot = good.clone();
        if let Some(u) = taproot.inputs[0].witness_utxo.as_mut() {
            u.script_pubkey = ScriptBuf::new_p2tr_tweaked(
                wallet_btc::bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(
                    keys.root_public_key().x_only_public_key().0,
                ),
            );
        }
        let cases: [(&str, Vec<u8>); 5] = [
            ("not_our_input", foreign.serialize()),
            ("missing_utxo", missing.serialize()),
            ("unsupported_script", taproot.serialize()),
            ("invalid_base64", b"cHNidP8B!!not base64".to_vec()),
            ("invalid_psbt", b"psbt\xff\x00garbage".to_vec()),
        ];
        for (code, bytes) in cases {
            for signer in [PsbtSigner::Cosigner, PsbtSigner::Offline] {
                let e = device
                    .sign_psbt(hd.clone(), bytes.clone(), BitcoinNetwork::Regtest, signer)
                    .await
                    .unwrap_err();
                assert_eq!(e.code(), ErrorCode::InvalidInput, "{code}: {e}");
                assert!(e.to_string().contains(code), "{code}: {e}");
            }
        }
        // A mainnet PSBT read as regtest is still the wallet's (paths say the coin type);
        // an unknown account is refused as such.
        let e = device
            .sign_psbt(
                "nope".into(),
                good.serialize(),
                BitcoinNetwork::Regtest,
                PsbtSigner::Cosigner,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownAccount, "{e}");
    }
}
