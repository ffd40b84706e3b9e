//! PSBT builders for tests (feature `testing`): unsigned PSBTs spending P2WPKH outputs
//! of a [`WalletKeys`] (public derivation only: the threshold wallet's own keys work),
//! with the `witness_utxo` and `bip32_derivation` a watch-only wallet writes, plus the
//! bad inputs a hostile or broken PSBT carries. Built with the `bitcoin` crate.
//!
//! Never enable this feature outside tests: nothing here is checked like the codec.

use std::str::FromStr;

use bitcoin::absolute::LockTime;
use bitcoin::bip32::{DerivationPath, Fingerprint};
use bitcoin::hashes::Hash as _;
use bitcoin::psbt::Psbt;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness,
};

use crate::{p2wpkh_script, WalletKeys};

/// What an input spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spend {
    /// The wallet's P2WPKH at the path, with its derivation.
    Ours,
    /// The wallet's key at the path, claimed with another wallet's fingerprint.
    Foreign,
    /// A Taproot output.
    Taproot,
    /// A P2PKH output.
    P2pkh,
}

/// A derivation path (panics on a bad one: test input).
pub fn path(s: &str) -> DerivationPath {
    DerivationPath::from_str(s).expect("path")
}

/// Someone else's P2WPKH script (the hash is `[b; 20]`).
pub fn elsewhere(b: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([b; 20]))
}

/// The wallet's P2WPKH script at `p`.
pub fn ours(keys: &WalletKeys, p: &str) -> ScriptBuf {
    p2wpkh_script(&keys.public_key(&path(p)).expect("key"))
}

/// The regtest address of `script`.
pub fn regtest_address(script: &ScriptBuf) -> String {
    bitcoin::Address::from_script(script, bitcoin::Network::Regtest)
        .expect("address")
        .to_string()
}

/// A version 0 PSBT: `inputs` (path, sats, what it spends; outpoint txids
/// `[salt + i; 32]`), `outputs` (script, sats, change path).
pub fn psbt(
    keys: &WalletKeys,
    salt: u8,
    inputs: &[(&str, u64, Spend)],
    outputs: &[(ScriptBuf, u64, Option<&str>)],
) -> Psbt {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..inputs.len())
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array([salt.wrapping_add(i as u8); 32]),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(s, v, _)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: s.clone(),
            })
            .collect(),
    };
    let mut p = Psbt::from_unsigned_tx(tx).expect("psbt");
    for (i, (pth, sats, kind)) in inputs.iter().enumerate() {
        let dp = path(pth);
        let key = keys.public_key(&dp).expect("key");
        let script = match kind {
            Spend::Ours | Spend::Foreign => p2wpkh_script(&key),
            Spend::Taproot => {
                let mut b = vec![0x51, 0x20];
                b.extend_from_slice(&[0x42; 32]);
                ScriptBuf::from_bytes(b)
            }
            Spend::P2pkh => {
                let mut b = vec![0x76, 0xa9, 0x14];
                b.extend_from_slice(&[0x42; 20]);
                b.extend_from_slice(&[0x88, 0xac]);
                ScriptBuf::from_bytes(b)
            }
        };
        p.inputs[i].witness_utxo = Some(TxOut {
            value: Amount::from_sat(*sats),
            script_pubkey: script,
        });
        let fp = match kind {
            Spend::Foreign => Fingerprint::from([0xde, 0xad, 0xbe, 0xef]),
            _ => keys.fingerprint(),
        };
        p.inputs[i].bip32_derivation.insert(key, (fp, dp));
    }
    for (j, (_, _, change)) in outputs.iter().enumerate() {
        if let Some(c) = change {
            let dp = path(c);
            let key = keys.public_key(&dp).expect("key");
            p.outputs[j]
                .bip32_derivation
                .insert(key, (keys.fingerprint(), dp));
        }
    }
    p
}

/// A standard regtest spend: `n` coins of the wallet at `m/84/1/0/0/{first + i}`
/// (100 000 + i sat each) paying 60 000 sat elsewhere, the rest less a 2 000 sat fee as
/// change to `m/84/1/0/1/0`; and the spent outputs, in input order (what Bitcoin
/// Core's interpreter needs).
pub fn regtest_spend(keys: &WalletKeys, first: u32, n: u32) -> (Psbt, Vec<TxOut>) {
    let coins: Vec<(String, u64)> = (first..first + n)
        .map(|i| (format!("m/84/1/0/0/{i}"), 100_000 + u64::from(i)))
        .collect();
    let total: u64 = coins.iter().map(|(_, v)| v).sum();
    let inputs: Vec<(&str, u64, Spend)> = coins
        .iter()
        .map(|(p, v)| (p.as_str(), *v, Spend::Ours))
        .collect();
    let p = psbt(
        keys,
        (first as u8).wrapping_mul(7).wrapping_add(1),
        &inputs,
        &[
            (elsewhere(0x11), 60_000, None),
            (
                ours(keys, "m/84/1/0/1/0"),
                total - 60_000 - 2_000,
                Some("m/84/1/0/1/0"),
            ),
        ],
    );
    let spent = p
        .inputs
        .iter()
        .map(|i| i.witness_utxo.clone().expect("utxo"))
        .collect();
    (p, spent)
}
