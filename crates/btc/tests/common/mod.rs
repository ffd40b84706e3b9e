//! A software key standing in for the threshold key, and PSBT builders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::str::FromStr;

use bitcoin::absolute::LockTime;
use bitcoin::bip32::{DerivationPath, Xpriv};
use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, NetworkKind, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use wallet_btc::{p2wpkh_script, parse_path, InputSignature, WalletKeys};

/// A deterministic BIP-32 root whose private side the tests hold.
pub struct TestWallet {
    pub secp: Secp256k1<All>,
    pub root: Xpriv,
    pub keys: WalletKeys,
}

impl TestWallet {
    pub fn new(seed: &[u8]) -> Self {
        let secp = Secp256k1::new();
        let root = Xpriv::new_master(NetworkKind::Main, seed).expect("seed");
        let pk = root.private_key.public_key(&secp).serialize();
        let keys = WalletKeys::new(&pk, root.chain_code.as_bytes()).expect("root key");
        TestWallet { secp, root, keys }
    }

    pub fn default() -> Self {
        Self::new(b"wallet-btc test seed, not a real wallet")
    }

    /// Child private key by BIP-32 private derivation (non-hardened steps).
    pub fn secret(&self, path: &DerivationPath) -> SecretKey {
        self.root
            .derive_priv(&self.secp, path)
            .expect("derive")
            .private_key
    }

    pub fn public(&self, path: &DerivationPath) -> bitcoin::secp256k1::PublicKey {
        self.secret(path).public_key(&self.secp)
    }

    pub fn script(&self, path: &DerivationPath) -> ScriptBuf {
        p2wpkh_script(&self.public(path))
    }

    /// Signs a sighash with the child key (RFC 6979, low S), DER.
    pub fn sign(&self, path: &DerivationPath, sighash: [u8; 32]) -> InputSignature {
        let sig = self
            .secp
            .sign_ecdsa(&Message::from_digest(sighash), &self.secret(path));
        InputSignature::Der(sig.serialize_der().to_vec())
    }
}

pub fn path(s: &str) -> DerivationPath {
    parse_path(s).expect("path")
}

pub fn txid(byte: u8) -> Txid {
    Txid::from_str(&format!("{:02x}", byte).repeat(32)).expect("txid")
}

/// A foreign P2WPKH destination (key of another root).
pub fn foreign_script() -> ScriptBuf {
    TestWallet::new(b"somebody else").script(&path("m/84/0/0/0/0"))
}

/// One coin to spend: the outpoint, the output and the wallet path that owns it.
pub struct Coin {
    pub outpoint: OutPoint,
    pub txout: TxOut,
    pub path: DerivationPath,
}

pub fn coin(w: &TestWallet, n: u8, sats: u64, p: &str) -> Coin {
    Coin {
        outpoint: OutPoint {
            txid: txid(n),
            vout: u32::from(n % 3),
        },
        txout: TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: w.script(&path(p)),
        },
        path: path(p),
    }
}

/// An unsigned PSBT spending `coins` to `outputs` (script, sats, optional change path).
pub fn build_psbt(
    w: &TestWallet,
    coins: &[Coin],
    outputs: &[(ScriptBuf, u64, Option<&str>)],
) -> Psbt {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: coins
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(s, sats, _)| TxOut {
                value: Amount::from_sat(*sats),
                script_pubkey: s.clone(),
            })
            .collect(),
    };
    let mut psbt = Psbt::from_unsigned_tx(tx).expect("unsigned tx");
    let fp = w.keys.fingerprint();
    for (input, c) in psbt.inputs.iter_mut().zip(coins) {
        input.witness_utxo = Some(c.txout.clone());
        input.bip32_derivation = BTreeMap::from([(w.public(&c.path), (fp, c.path.clone()))]);
    }
    for (output, (_, _, change)) in psbt.outputs.iter_mut().zip(outputs) {
        if let Some(p) = change {
            let p = path(p);
            output.bip32_derivation = BTreeMap::from([(w.public(&p), (fp, p))]);
        }
    }
    psbt
}

/// A standard spend: `n` coins of 100_000 sat + i, one foreign payment, one change.
pub fn standard_psbt(w: &TestWallet, n: u8) -> (Psbt, Vec<Coin>) {
    let coins: Vec<Coin> = (0..n)
        .map(|i| coin(w, i + 1, 100_000 + u64::from(i), &format!("m/84/0/0/0/{i}")))
        .collect();
    let total: u64 = coins.iter().map(|c| c.txout.value.to_sat()).sum();
    let pay = 60_000;
    let fee = 1_000 + 500 * u64::from(n);
    let psbt = build_psbt(
        w,
        &coins,
        &[
            (foreign_script(), pay, None),
            (
                w.script(&path("m/84/0/0/1/3")),
                total - pay - fee,
                Some("m/84/0/0/1/3"),
            ),
        ],
    );
    (psbt, coins)
}

pub fn b64(psbt: &Psbt) -> String {
    wallet_btc::encode_psbt(psbt)
}

/// A previous transaction whose output `vout` is `out` (other outputs are filler), made
/// unique by `salt`.
pub fn prev_tx_paying(out: &TxOut, vout: u32, salt: u8) -> Transaction {
    let mut outputs: Vec<TxOut> = (0..vout)
        .map(|_| TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: foreign_script(),
        })
        .collect();
    outputs.push(out.clone());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: txid(0xa0 ^ salt),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[salt; 72].as_slice(), [2u8; 33].as_slice()]),
        }],
        output: outputs,
    }
}
