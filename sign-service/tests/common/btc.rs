//! PSBTs for the tests, built with the `bitcoin` crate (re-exported by wallet-btc):
//! inputs spending P2WPKH outputs of the wallet (witness UTXO, bip32_derivation with
//! the root fingerprint), or foreign / Taproot / P2PKH ones.

use std::str::FromStr;

use wallet_btc::bitcoin::bip32::DerivationPath;
use wallet_btc::bitcoin::hashes::Hash as _;
use wallet_btc::bitcoin::psbt::Psbt;
use wallet_btc::bitcoin::transaction::Version;
use wallet_btc::bitcoin::{
    absolute, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use wallet_btc::WalletKeys;

/// What an input spends.
#[derive(Clone, Copy, Debug)]
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

pub fn path(s: &str) -> DerivationPath {
    DerivationPath::from_str(s).expect("path")
}

/// The wallet keys of an HD account of the test wallet.
pub fn wallet_keys(a: &mpc_core::Account) -> WalletKeys {
    let root = hex::decode(&a.public_key).expect("hex");
    let cc: [u8; 32] = hex::decode(a.chain_code.as_ref().expect("chain code"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    WalletKeys::new(&root, &cc).expect("keys")
}

/// Someone else's P2WPKH script.
pub fn elsewhere(b: u8) -> ScriptBuf {
    let mut s = vec![0x00, 0x14];
    s.extend_from_slice(&[b; 20]);
    ScriptBuf::from_bytes(s)
}

/// The wallet's P2WPKH script at `p`.
pub fn ours(keys: &WalletKeys, p: &str) -> ScriptBuf {
    wallet_btc::p2wpkh_script(&keys.public_key(&path(p)).expect("key"))
}

/// The regtest address of `script`.
pub fn regtest(script: &ScriptBuf) -> String {
    wallet_btc::bitcoin::Address::from_script(script, wallet_btc::bitcoin::Network::Regtest)
        .expect("address")
        .to_string()
}

/// A version 0 PSBT: `inputs` (path, sats, kind; outpoints `salt+i`), `outputs`
/// (script, sats, change path).
pub fn psbt(
    keys: &WalletKeys,
    salt: u8,
    inputs: &[(&str, u64, Spend)],
    outputs: &[(ScriptBuf, u64, Option<&str>)],
) -> Vec<u8> {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
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
            Spend::Ours | Spend::Foreign => wallet_btc::p2wpkh_script(&key),
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
            Spend::Foreign => [0xde, 0xad, 0xbe, 0xef].into(),
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
    p.serialize()
}
