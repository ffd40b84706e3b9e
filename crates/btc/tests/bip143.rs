//! BIP-143's published native P2WPKH example through our sighash path.

use std::collections::BTreeMap;

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut};
use wallet_btc::{
    analyze_psbt, encode_psbt, finalize_psbt, p2wpkh_script, parse_path, segwit_v0_sighash,
    InputSignature, Network, WalletKeys,
};

// BIP-143, "Native P2WPKH": the unsigned transaction, input 1 spends 6 BTC from
// 0014 1d0f172a0ecb48aee1be1f2687d2963ae33f71a1 with the private key below.
const UNSIGNED_TX: &str = "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000";
const INPUT1_SCRIPT: &str = "00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1";
const INPUT1_AMOUNT: u64 = 600_000_000;
const INPUT1_KEY: &str = "619c335025c7f4012e556c2a58b2506e30b8511b53ade95ea316fd8c3286feb9";
const INPUT1_PUBKEY: &str = "025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357";
const EXPECTED_SIGHASH: &str = "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670";
// BIP-143's sigHash preimage of input 1 (version, hashPrevouts, hashSequence, outpoint,
// scriptCode, amount, nSequence, hashOutputs, nLockTime, nHashType).
const EXPECTED_PREIMAGE: &str = "0100000096b827c8483d4e9b96712b6713a7b68d6e8003a781feba36c31143470b4efd3752b0a642eea2fb7ae638c36f6252b6750293dbe574a806984b8e4d8548339a3bef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a010000001976a9141d0f172a0ecb48aee1be1f2687d2963ae33f71a188ac0046c32300000000ffffffff863ef3e1a92afbfdb97f31ad0fc7683ee943e9abcf2501590ff8f6551f47e5e51100000001000000";
// The signature of input 1 in the BIP's signed transaction (with its SIGHASH_ALL byte).
const EXPECTED_SIG: &str = "304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee01";

fn tx() -> Transaction {
    deserialize_hex(UNSIGNED_TX).unwrap()
}

#[test]
fn sighash_function_gives_the_bip143_vector() {
    let script = ScriptBuf::from_hex(INPUT1_SCRIPT).unwrap();
    let got = segwit_v0_sighash(&tx(), 1, &script, Amount::from_sat(INPUT1_AMOUNT)).unwrap();
    assert_eq!(hex::encode(got), EXPECTED_SIGHASH);
    // A different amount is a different sighash (the amount is committed).
    let other = segwit_v0_sighash(&tx(), 1, &script, Amount::from_sat(INPUT1_AMOUNT + 1)).unwrap();
    assert_ne!(hex::encode(other), EXPECTED_SIGHASH);
}

/// The same vector through `analyze_psbt`: a wallet whose root IS the BIP's key (path `m`).
/// Input 0 (a P2PK coin in the BIP) is given as a P2WPKH coin of the same key: BIP-143's
/// sighash of input 1 commits to input 0's outpoint and sequence only.
#[test]
fn analyze_and_finalize_give_the_bip143_vector() {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&hex::decode(INPUT1_KEY).unwrap()).unwrap();
    let pk = sk.public_key(&secp);
    assert_eq!(hex::encode(pk.serialize()), INPUT1_PUBKEY);
    let keys = WalletKeys::new(&pk.serialize(), &[7u8; 32]).unwrap();
    let script = ScriptBuf::from_hex(INPUT1_SCRIPT).unwrap();
    assert_eq!(p2wpkh_script(&pk), script);

    let mut psbt = bitcoin::psbt::Psbt::from_unsigned_tx(tx()).unwrap();
    let root = parse_path("m").unwrap();
    for (input, amount) in psbt.inputs.iter_mut().zip([625_000_000, INPUT1_AMOUNT]) {
        input.witness_utxo = Some(TxOut {
            value: Amount::from_sat(amount),
            script_pubkey: script.clone(),
        });
        input.bip32_derivation = BTreeMap::from([(pk, (keys.fingerprint(), root.clone()))]);
    }
    let b64 = encode_psbt(&psbt);
    let plan = analyze_psbt(&b64, &keys, Network::Mainnet).unwrap();
    assert_eq!(hex::encode(plan.inputs[1].sighash), EXPECTED_SIGHASH);
    assert_eq!(plan.inputs[1].amount_sats, INPUT1_AMOUNT);
    assert_eq!(hex::encode(&plan.inputs[1].preimage), EXPECTED_PREIMAGE);
    // The preimage is what the sighash hashes (double SHA-256).
    use bitcoin::hashes::{sha256d, Hash};
    assert_eq!(
        sha256d::Hash::hash(&plan.inputs[1].preimage).to_byte_array(),
        plan.inputs[1].sighash
    );

    // RFC 6979 signing with the BIP's key reproduces the BIP's signature byte for byte,
    // and the finalized witness carries it.
    let sigs: Vec<_> = plan
        .inputs
        .iter()
        .map(|i| {
            let s = secp.sign_ecdsa(&Message::from_digest(i.sighash), &sk);
            (i.index, InputSignature::Der(s.serialize_der().to_vec()))
        })
        .collect();
    let signed = finalize_psbt(&b64, &keys, Network::Mainnet, &sigs).unwrap();
    let witness = &signed.tx.input[1].witness;
    assert_eq!(witness.len(), 2);
    assert_eq!(hex::encode(&witness[0]), EXPECTED_SIG);
    assert_eq!(hex::encode(&witness[1]), INPUT1_PUBKEY);
}
