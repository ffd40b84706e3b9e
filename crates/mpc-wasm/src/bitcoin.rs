//! Bitcoin for the browser, on `wallet-btc` (rust-bitcoin) — the same codec the native
//! client and the cosigner use, so the page, the CLI and the cosigner agree on every
//! sighash, address and descriptor: nothing Bitcoin-specific is written here.
//!
//! Everything takes the account's root public key and chain code (the stored account
//! record's, public): addresses on every network, the watch-only export (xpub and
//! `wpkh([fingerprint/path]xpub/0/*)#checksum` descriptors), and the two halves of PSBT
//! signing around the threshold signatures — [`psbt_plan`] (the strict analysis: every
//! input ours, P2WPKH, with its UTXO, SIGHASH_ALL; each input's path, BIP-143 preimage
//! and sighash) and [`psbt_finalize`] (low-S, verify, finalize, extract). The signing
//! in between is the ordinary signing flow, one per input, with the whole PSBT sent to
//! the cosigner (`bitcoin_psbt_input`), which analyzes it again itself.
//!
//! A refusal is `invalid_input` whose `reason` is the codec's code (`not_our_input`,
//! `missing_utxo`, `unsupported_script`, …); a signature that does not verify at
//! finalization is `verification_failed`.

use serde::{Deserialize, Serialize};
use wallet_btc::{BtcError, InputSignature, Network, WalletKeys};

use crate::api::parse_point;
use crate::error::{ApiError, ApiResult, Code};

/// The largest PSBT accepted: the codec's own bound ([`wallet_btc::MAX_PSBT_BYTES`]) is
/// larger than what one cosigner request carries, so the request's bound applies.
pub const MAX_PSBT_BYTES: usize = wallet_types::MAX_PREIMAGE_LEN;

fn btc(e: BtcError) -> ApiError {
    let code = match e {
        BtcError::SignatureMismatch { .. } | BtcError::InvalidSignature { .. } => {
            Code::VerificationFailed
        }
        _ => Code::InvalidInput,
    };
    ApiError::new(code, format!("bitcoin ({}): {e}", e.code())).with_reason(e.code())
}

/// Parses a network name: `mainnet` (or `bitcoin`), `testnet`, `signet`, `regtest`;
/// none is mainnet.
pub fn parse_network(name: Option<&str>) -> ApiResult<Network> {
    match name {
        None | Some("") => Ok(Network::Mainnet),
        Some(n) => n.parse().map_err(btc),
    }
}

/// The account's BIP-32 view from its root public key and chain code (hex).
fn keys(root_public_key: &str, chain_code: &str) -> ApiResult<WalletKeys> {
    let root = parse_point(root_public_key)?;
    let cc = hex::decode(chain_code.trim_start_matches("0x"))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::input("chain code must be 32 bytes of hex"))?;
    WalletKeys::new(&root.to_bytes(true), &cc).map_err(btc)
}

/// The native SegWit (P2WPKH) address at a non-hardened `path` of an HD account.
pub fn address(
    root_public_key: &str,
    chain_code: &str,
    path: &str,
    network: Option<&str>,
) -> ApiResult<String> {
    let network = parse_network(network)?;
    let path = wallet_btc::parse_path(path).map_err(btc)?;
    Ok(keys(root_public_key, chain_code)?
        .address(&path, network)
        .map_err(btc)?
        .to_string())
}

/// What a watch-only wallet (Bitcoin Core, Sparrow) needs to follow an account.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WatchOnly {
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// The account path, e.g. `m/84/0/0`.
    pub account_path: String,
    /// The root key's fingerprint (8 hex digits).
    pub fingerprint: String,
    /// The xpub (`tpub` on the test networks) at `account_path`.
    pub xpub: String,
    /// `wpkh([fingerprint/path]xpub/0/*)#checksum`.
    pub receive_descriptor: String,
    /// `wpkh([fingerprint/path]xpub/1/*)#checksum`.
    pub change_descriptor: String,
}

/// The watch-only export of the account at `account_path` (default: BIP-84's layout
/// without hardening, `m/84/0/0` on mainnet, `m/84/1/0` on the test networks).
pub fn watch_only(
    root_public_key: &str,
    chain_code: &str,
    account_path: Option<&str>,
    network: Option<&str>,
) -> ApiResult<WatchOnly> {
    let network = parse_network(network)?;
    let path = match account_path.map(str::trim) {
        None | Some("") => wallet_btc::default_account_path(network),
        Some(p) => wallet_btc::parse_path(p).map_err(btc)?,
    };
    let k = keys(root_public_key, chain_code)?;
    let xpub = k.xpub(&path, network).map_err(btc)?;
    let d = k.descriptors(&path, network).map_err(btc)?;
    Ok(WatchOnly {
        network: network.as_str().into(),
        account_path: wallet_btc::path_string(&path),
        fingerprint: k.fingerprint().to_string(),
        xpub: xpub.to_string(),
        receive_descriptor: d.receive,
        change_descriptor: d.change,
    })
}

/// One input to sign, as [`psbt_plan`] found it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedInput {
    /// Its index in the transaction.
    pub index: u32,
    /// Its non-hardened path, `m/84/1/0/0/3` form.
    pub path: String,
    /// The key at `path`, compressed SEC1 hex.
    pub public_key: String,
    /// The amount it spends, in satoshis.
    pub amount_sats: u64,
    /// Its BIP-143 preimage (signed with double SHA-256).
    #[serde(with = "serde_bytes")]
    pub preimage: Vec<u8>,
    /// Its sighash, hex.
    pub sighash: String,
}

/// One output, for the confirmation screen.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedOutput {
    /// Its index.
    pub index: u32,
    /// Its address on the network (none for a script without one, e.g. OP_RETURN).
    pub address: Option<String>,
    /// The amount, in satoshis.
    pub amount_sats: u64,
    /// Whether it pays back to this account (change: a derivation of ours).
    pub is_change: bool,
}

/// A PSBT checked and ready to sign.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PsbtPlan {
    /// The PSBT, binary (what the cosigner receives with each input's signing).
    #[serde(with = "serde_bytes")]
    pub psbt: Vec<u8>,
    /// BIP-174 version 0 or BIP-370 version 2.
    pub psbt_version: u32,
    /// The network its addresses are read in.
    pub network: String,
    /// The unsigned transaction's txid.
    pub txid: String,
    /// Inputs to sign, in order (every input: a PSBT is signed whole or not at all).
    pub inputs: Vec<PlannedInput>,
    /// Outputs.
    pub outputs: Vec<PlannedOutput>,
    /// Sum of the inputs.
    pub total_in_sats: u64,
    /// Sum of the outputs paying elsewhere than this account.
    pub external_out_sats: u64,
    /// The fee.
    pub fee_sats: u64,
    /// The predicted virtual size of the signed transaction.
    pub vsize: u64,
    /// The fee rate, sat/vB.
    pub fee_rate_sat_per_vb: f64,
}

/// Analyzes a PSBT (binary or base64; version 0 or 2) for the account on `network`:
/// every refusal happens here, before any request or session.
pub fn psbt_plan(
    root_public_key: &str,
    chain_code: &str,
    psbt: &[u8],
    network: Option<&str>,
) -> ApiResult<PsbtPlan> {
    let network = parse_network(network)?;
    let binary = wallet_btc::psbt_binary(psbt).map_err(btc)?;
    if binary.len() > MAX_PSBT_BYTES {
        return Err(btc(BtcError::TooLarge(binary.len())));
    }
    let k = keys(root_public_key, chain_code)?;
    let plan = wallet_btc::analyze_psbt(&binary, &k, network).map_err(btc)?;
    let index = |i: usize| u32::try_from(i).map_err(|_| ApiError::input("a PSBT index above 2^32"));
    let inputs = plan
        .inputs
        .iter()
        .map(|i| {
            Ok(PlannedInput {
                index: index(i.index)?,
                path: i.path_string(),
                public_key: i.public_key.to_string(),
                amount_sats: i.amount_sats,
                preimage: i.preimage.clone(),
                sighash: hex::encode(i.sighash),
            })
        })
        .collect::<ApiResult<_>>()?;
    let outputs = plan
        .outputs
        .iter()
        .map(|o| {
            Ok(PlannedOutput {
                index: index(o.index)?,
                address: o.address.clone(),
                amount_sats: o.amount_sats,
                is_change: o.is_change,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(PsbtPlan {
        psbt: binary,
        psbt_version: plan.psbt_version,
        network: network.as_str().into(),
        txid: plan.txid.clone(),
        inputs,
        outputs,
        total_in_sats: plan.total_in_sats,
        external_out_sats: plan.external_out_sats,
        fee_sats: plan.fee_sats,
        vsize: plan.vsize,
        fee_rate_sat_per_vb: plan.fee_rate_sat_per_vb(),
    })
}

/// One input's threshold signature (DER hex, no sighash byte), for [`psbt_finalize`].
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct InputSig {
    /// The input's index.
    pub index: u32,
    /// DER, hex.
    pub der: String,
}

/// The finalized PSBT.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finalized {
    /// 0 or 2: the version it was given in.
    pub psbt_version: u32,
    /// The finalized PSBT, base64 (bitcoinjs-lib's `Psbt.fromBase64` reads it).
    pub psbt_base64: String,
    /// The network transaction, hex (`sendrawtransaction`).
    pub tx_hex: String,
    /// Its txid.
    pub txid: String,
}

/// Adds one signature per input (normalized to low S and verified against the input's
/// sighash and key), finalizes every input and extracts the transaction.
pub fn psbt_finalize(
    root_public_key: &str,
    chain_code: &str,
    psbt: &[u8],
    network: Option<&str>,
    signatures: &[InputSig],
) -> ApiResult<Finalized> {
    let network = parse_network(network)?;
    let k = keys(root_public_key, chain_code)?;
    let sigs = signatures
        .iter()
        .map(|s| {
            let der = hex::decode(&s.der).map_err(|e| {
                ApiError::input(format!("input {}: signature is not hex: {e}", s.index))
            })?;
            Ok((s.index as usize, InputSignature::Der(der)))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let done = wallet_btc::finalize_psbt(psbt, &k, network, &sigs).map_err(btc)?;
    Ok(Finalized {
        psbt_version: done.psbt_version,
        psbt_base64: done.psbt_base64,
        tx_hex: done.tx_hex,
        txid: done.txid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wallet_btc::bitcoin::bip32::Xpriv;
    use wallet_btc::bitcoin::secp256k1::{Message, Secp256k1};
    use wallet_btc::bitcoin::NetworkKind;
    use wallet_btc::testing::{self, Spend};

    /// A BIP-32 root whose private side the test holds, standing in for the threshold key
    /// (the codec sees only its public key and chain code, as with the real wallet).
    struct Soft {
        root: Xpriv,
        pk: String,
        cc: String,
        keys: WalletKeys,
    }

    fn soft() -> Soft {
        let secp = Secp256k1::new();
        let root = Xpriv::new_master(NetworkKind::Test, b"mpc-wasm bitcoin test").unwrap();
        let pk = root.private_key.public_key(&secp).serialize();
        let keys = WalletKeys::new(&pk, root.chain_code.as_bytes()).unwrap();
        Soft {
            root,
            pk: hex::encode(pk),
            cc: hex::encode(root.chain_code.as_bytes()),
            keys,
        }
    }

    fn sign(s: &Soft, input: &PlannedInput) -> InputSig {
        let secp = Secp256k1::new();
        let key = s
            .root
            .derive_priv(&secp, &testing::path(&input.path))
            .unwrap()
            .private_key;
        let digest: [u8; 32] = hex::decode(&input.sighash).unwrap().try_into().unwrap();
        let sig = secp.sign_ecdsa(&Message::from_digest(digest), &key);
        InputSig {
            index: input.index,
            der: hex::encode(sig.serialize_der()),
        }
    }

    #[test]
    fn plan_sign_finalize_a_two_input_regtest_spend() {
        let s = soft();
        let (psbt, spent) = testing::regtest_spend(&s.keys, 0, 2);
        let b64 = wallet_btc::encode_psbt(&psbt);
        let plan = psbt_plan(&s.pk, &s.cc, b64.as_bytes(), Some("regtest")).unwrap();
        assert_eq!(plan.network, "regtest");
        assert_eq!(plan.inputs.len(), 2);
        assert_eq!(plan.inputs[1].path, "m/84/1/0/0/1");
        assert_eq!(plan.fee_sats, 2_000);
        assert!(plan.outputs[1].is_change && !plan.outputs[0].is_change);
        assert_eq!(plan.psbt, psbt.serialize(), "base64 in, binary out");
        let sigs: Vec<InputSig> = plan.inputs.iter().map(|i| sign(&s, i)).collect();
        let done = psbt_finalize(&s.pk, &s.cc, &plan.psbt, Some("regtest"), &sigs).unwrap();
        let tx: wallet_btc::bitcoin::Transaction =
            wallet_btc::bitcoin::consensus::encode::deserialize(
                &hex::decode(&done.tx_hex).unwrap(),
            )
            .unwrap();
        assert_eq!(tx.compute_txid().to_string(), done.txid);
        assert_eq!(tx.input.len(), spent.len());
        assert!(tx.input.iter().all(|i| i.witness.len() == 2));
    }

    #[test]
    fn refusals_carry_the_codec_reason() {
        let s = soft();
        let foreign = testing::psbt(
            &s.keys,
            9,
            &[
                ("m/84/1/0/0/0", 50_000, Spend::Ours),
                ("m/84/1/0/0/1", 50_000, Spend::Foreign),
            ],
            &[(testing::elsewhere(3), 90_000, None)],
        );
        let taproot = testing::psbt(
            &s.keys,
            9,
            &[("m/84/1/0/0/0", 50_000, Spend::Taproot)],
            &[(testing::elsewhere(3), 40_000, None)],
        );
        let cases: [(&[u8], Option<&str>, &str); 4] = [
            (&foreign.serialize(), Some("regtest"), "not_our_input"),
            (&taproot.serialize(), Some("regtest"), "unsupported_script"),
            (b"not a psbt !!", Some("regtest"), "invalid_base64"),
            (&foreign.serialize(), Some("litecoin"), "unknown_network"),
        ];
        for (bytes, net, reason) in cases {
            let e = psbt_plan(&s.pk, &s.cc, bytes, net).unwrap_err();
            assert_eq!(e.code, Code::InvalidInput, "{reason}: {e}");
            assert_eq!(e.reason, Some(reason), "{e}");
        }
        // Larger than one cosigner request carries (the codec alone reads up to 4 MiB).
        let mut big = b"psbt\xff".to_vec();
        big.resize(MAX_PSBT_BYTES + 1, 0);
        assert_eq!(
            psbt_plan(&s.pk, &s.cc, &big, None).unwrap_err().reason,
            Some("too_large")
        );
        assert!(psbt_plan(&s.pk, "00", &foreign.serialize(), None).is_err());
    }

    #[test]
    fn a_signature_over_another_input_does_not_finalize() {
        let s = soft();
        let (psbt, _) = testing::regtest_spend(&s.keys, 0, 2);
        let plan = psbt_plan(&s.pk, &s.cc, &psbt.serialize(), Some("regtest")).unwrap();
        let mut sigs: Vec<InputSig> = plan.inputs.iter().map(|i| sign(&s, i)).collect();
        sigs[1].der = sigs[0].der.clone();
        let e = psbt_finalize(&s.pk, &s.cc, &plan.psbt, Some("regtest"), &sigs).unwrap_err();
        assert_eq!(e.code, Code::VerificationFailed, "{e}");
        let e = psbt_finalize(&s.pk, &s.cc, &plan.psbt, Some("regtest"), &sigs[..1]).unwrap_err();
        assert_eq!(e.reason, Some("missing_signature"), "{e}");
    }

    #[test]
    fn addresses_and_descriptors_follow_the_network() {
        let s = soft();
        let main = address(&s.pk, &s.cc, "m/84/0/0/0/0", None).unwrap();
        let reg = address(&s.pk, &s.cc, "m/84/1/0/0/0", Some("regtest")).unwrap();
        let sig = address(&s.pk, &s.cc, "m/84/1/0/0/0", Some("signet")).unwrap();
        assert!(main.starts_with("bc1q"), "{main}");
        assert!(reg.starts_with("bcrt1q"), "{reg}");
        assert!(sig.starts_with("tb1q"), "{sig}");
        assert_eq!(
            reg,
            testing::regtest_address(&testing::ours(&s.keys, "m/84/1/0/0/0"))
        );
        let w = watch_only(&s.pk, &s.cc, None, Some("testnet")).unwrap();
        assert_eq!(w.account_path, "m/84/1/0");
        assert!(w.xpub.starts_with("tpub"), "{}", w.xpub);
        assert!(w
            .receive_descriptor
            .starts_with(&format!("wpkh([{}/84/1/0]", w.fingerprint)));
        assert!(w.receive_descriptor.contains("/0/*)#"));
        assert_eq!(
            address(&s.pk, &s.cc, "m/84h/0/0", None).unwrap_err().reason,
            Some("hardened_path")
        );
    }
}
