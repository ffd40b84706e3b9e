//! End to end with a software key standing in for the threshold key: build a PSBT,
//! analyze it, sign each sighash with the child key, finalize, and have Bitcoin Core's
//! script interpreter (libbitcoinconsensus) verify every input of the extracted
//! transaction against the spent script and amount.

use crate::common::*;
use bitcoin::consensus::encode::serialize;
use bitcoin::secp256k1::constants::CURVE_ORDER;
use bitcoin::secp256k1::{ecdsa, Message};
use bitcoin::{Transaction, TxOut};
use wallet_btc::{
    analyze_psbt, finalize_psbt, path_string, BtcError, InputSignature, Network, PsbtPlan,
};

/// Bitcoin Core's verdict on input `index` of `tx` spending `spent`.
fn core_verify(
    tx: &Transaction,
    index: usize,
    spent: &TxOut,
) -> Result<(), bitcoinconsensus::Error> {
    bitcoinconsensus::verify(
        spent.script_pubkey.as_bytes(),
        spent.value.to_sat(),
        &serialize(tx),
        None,
        index,
    )
}

fn sign_all(w: &TestWallet, plan: &PsbtPlan) -> Vec<(usize, InputSignature)> {
    plan.inputs
        .iter()
        .map(|i| (i.index, w.sign(&i.path, i.sighash)))
        .collect()
}

fn spend_and_verify(n: u8) {
    let w = TestWallet::default();
    let (psbt, coins) = standard_psbt(&w, n);
    let b64 = b64(&psbt);
    let plan = analyze_psbt(&b64, &w.keys, Network::Mainnet).unwrap();

    // The plan is the PSBT's.
    assert_eq!(plan.inputs.len(), usize::from(n));
    for (i, (p, c)) in plan.inputs.iter().zip(&coins).enumerate() {
        assert_eq!(p.index, i);
        assert_eq!(p.path, c.path);
        assert_eq!(p.amount_sats, c.txout.value.to_sat());
        assert_eq!(p.public_key, w.public(&c.path));
        assert_eq!(path_string(&p.path), format!("m/84/0/0/0/{i}"));
    }
    let total_in: u64 = coins.iter().map(|c| c.txout.value.to_sat()).sum();
    assert_eq!(plan.total_in_sats, total_in);
    assert_eq!(plan.fee_sats, 1_000 + 500 * u64::from(n));
    assert_eq!(plan.total_out_sats, total_in - plan.fee_sats);
    assert_eq!(plan.external_out_sats, 60_000);
    assert!(!plan.outputs[0].is_change);
    assert!(plan.outputs[0]
        .address
        .as_deref()
        .unwrap()
        .starts_with("bc1q"));
    assert!(plan.outputs[1].is_change);
    assert_eq!(
        path_string(plan.outputs[1].change_path.as_ref().unwrap()),
        "m/84/0/0/1/3"
    );

    let signed = finalize_psbt(&b64, &w.keys, Network::Mainnet, &sign_all(&w, &plan)).unwrap();
    assert_eq!(
        signed.txid, plan.txid,
        "signing does not change a SegWit txid"
    );
    assert_eq!(signed.tx_hex, hex::encode(serialize(&signed.tx)));

    // Bitcoin Core's interpreter accepts every input.
    for (i, c) in coins.iter().enumerate() {
        core_verify(&signed.tx, i, &c.txout)
            .unwrap_or_else(|e| panic!("input {i} refused by libbitcoinconsensus: {e:?}"));
    }
    // ... and only against the right amount (BIP-143 commits to it).
    let mut wrong = coins[0].txout.clone();
    wrong.value = bitcoin::Amount::from_sat(wrong.value.to_sat() + 1);
    assert!(core_verify(&signed.tx, 0, &wrong).is_err());

    // The predicted size bounds the real one from above, by at most 1 vB per input
    // (a DER signature is 71 or 72 bytes, the prediction assumes 72).
    let real = signed.tx.vsize() as u64;
    assert!(
        plan.vsize >= real && plan.vsize <= real + u64::from(n),
        "{} vs {real}",
        plan.vsize
    );
    assert!(plan.fee_rate_sat_per_vb() > 0.0);

    // The finalized PSBT: final witnesses, the rest cleared, and it decodes again.
    let again = wallet_btc::decode_psbt(signed.psbt_base64.as_bytes()).unwrap();
    for input in &again.inputs {
        assert!(input.final_script_witness.is_some());
        assert!(input.partial_sigs.is_empty() && input.bip32_derivation.is_empty());
        assert!(input.witness_utxo.is_some());
    }
    assert_eq!(again.extract_tx_unchecked_fee_rate(), signed.tx);
    // A finalized PSBT is not signed again.
    assert!(matches!(
        analyze_psbt(&signed.psbt_base64, &w.keys, Network::Mainnet),
        Err(BtcError::AlreadyFinalized { input: 0 })
    ));
}

#[test]
fn one_input_verified_by_bitcoin_core() {
    spend_and_verify(1);
}

#[test]
fn five_inputs_verified_by_bitcoin_core() {
    spend_and_verify(5);
}

/// Inputs given with their full previous transaction (`non_witness_utxo`) only.
#[test]
fn non_witness_utxo_inputs_verified_by_bitcoin_core() {
    let w = TestWallet::default();
    let (mut psbt, coins) = standard_psbt(&w, 2);
    let mut spent = Vec::new();
    for (k, input) in psbt.inputs.iter_mut().enumerate() {
        let out = input.witness_utxo.take().unwrap();
        let prev = crate::common::prev_tx_paying(
            &out,
            psbt.unsigned_tx.input[k].previous_output.vout,
            k as u8,
        );
        psbt.unsigned_tx.input[k].previous_output.txid = prev.compute_txid();
        input.non_witness_utxo = Some(prev);
        spent.push(out);
    }
    let b64 = b64(&psbt);
    let plan = analyze_psbt(&b64, &w.keys, Network::Mainnet).unwrap();
    assert_eq!(
        plan.total_in_sats,
        coins.iter().map(|c| c.txout.value.to_sat()).sum::<u64>()
    );
    let signed = finalize_psbt(&b64, &w.keys, Network::Mainnet, &sign_all(&w, &plan)).unwrap();
    for (i, out) in spent.iter().enumerate() {
        core_verify(&signed.tx, i, out).unwrap();
    }
}

fn high_s(sig: &ecdsa::Signature) -> [u8; 64] {
    let mut rs = sig.serialize_compact();
    // s := n - s (big-endian subtraction).
    let mut borrow = 0i16;
    for k in (0..32).rev() {
        let d = i16::from(CURVE_ORDER[k]) - i16::from(rs[32 + k]) - borrow;
        rs[32 + k] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    rs
}

/// The threshold protocol may return high S: accepted as `r‖s`, normalized to low S (a
/// relay rule of Bitcoin Core, not a consensus one, so checked here directly), and the
/// result passes Core's interpreter.
#[test]
fn high_s_signatures_are_normalized() {
    let w = TestWallet::default();
    let (psbt, coins) = standard_psbt(&w, 2);
    let b64 = b64(&psbt);
    let plan = analyze_psbt(&b64, &w.keys, Network::Mainnet).unwrap();
    let sigs: Vec<_> = plan
        .inputs
        .iter()
        .map(|i| {
            let low = w
                .secp
                .sign_ecdsa(&Message::from_digest(i.sighash), &w.secret(&i.path));
            let high = high_s(&low);
            assert_ne!(high, low.serialize_compact());
            // Not low-S: libsecp256k1 itself refuses to verify it as given.
            let parsed = ecdsa::Signature::from_compact(&high).unwrap();
            assert!(w
                .secp
                .verify_ecdsa(&Message::from_digest(i.sighash), &parsed, &i.public_key)
                .is_err());
            (i.index, InputSignature::RawRs(high))
        })
        .collect();
    let signed = finalize_psbt(&b64, &w.keys, Network::Mainnet, &sigs).unwrap();
    for (i, c) in coins.iter().enumerate() {
        core_verify(&signed.tx, i, &c.txout).unwrap();
        let in_witness = &signed.tx.input[i].witness[0];
        let (sighash_byte, der) = in_witness.split_last().unwrap();
        assert_eq!(*sighash_byte, 0x01);
        let sig = ecdsa::Signature::from_der(der).unwrap();
        let mut normalized = sig;
        normalized.normalize_s();
        assert_eq!(sig, normalized, "input {i}: final signature is high-S");
    }
}

#[test]
fn a_signature_over_the_wrong_sighash_is_refused_and_fails_core() {
    let w = TestWallet::default();
    let (psbt, coins) = standard_psbt(&w, 2);
    let b64 = b64(&psbt);
    let plan = analyze_psbt(&b64, &w.keys, Network::Mainnet).unwrap();
    let mut sigs = sign_all(&w, &plan);
    // Input 1 signed over input 0's sighash.
    sigs[1].1 = w.sign(&plan.inputs[1].path, plan.inputs[0].sighash);
    assert!(matches!(
        finalize_psbt(&b64, &w.keys, Network::Mainnet, &sigs),
        Err(BtcError::SignatureMismatch { input: 1 })
    ));
    // Signed by the wrong key (input 0's) over the right sighash.
    sigs[1].1 = w.sign(&plan.inputs[0].path, plan.inputs[1].sighash);
    assert!(matches!(
        finalize_psbt(&b64, &w.keys, Network::Mainnet, &sigs),
        Err(BtcError::SignatureMismatch { input: 1 })
    ));

    // The same bad signature put in the witness by hand: Core refuses that input.
    let good = finalize_psbt(&b64, &w.keys, Network::Mainnet, &sign_all(&w, &plan)).unwrap();
    let mut tx = good.tx.clone();
    let bad = w.secp.sign_ecdsa(
        &Message::from_digest(plan.inputs[0].sighash),
        &w.secret(&plan.inputs[1].path),
    );
    let bad = bitcoin::ecdsa::Signature::sighash_all(bad);
    tx.input[1].witness = bitcoin::Witness::p2wpkh(&bad, &plan.inputs[1].public_key);
    core_verify(&tx, 0, &coins[0].txout).unwrap();
    assert!(core_verify(&tx, 1, &coins[1].txout).is_err());
}

#[test]
fn every_input_needs_exactly_one_signature() {
    let w = TestWallet::default();
    let (psbt, _) = standard_psbt(&w, 2);
    let b64 = b64(&psbt);
    let plan = analyze_psbt(&b64, &w.keys, Network::Mainnet).unwrap();
    let sigs = sign_all(&w, &plan);
    assert!(matches!(
        finalize_psbt(&b64, &w.keys, Network::Mainnet, &sigs[..1]),
        Err(BtcError::MissingSignature { input: 1 })
    ));
    let dup = vec![sigs[0].clone(), sigs[1].clone(), sigs[1].clone()];
    assert!(matches!(
        finalize_psbt(&b64, &w.keys, Network::Mainnet, &dup),
        Err(BtcError::DuplicateSignature { input: 1 })
    ));
    let extra = vec![sigs[0].clone(), sigs[1].clone(), (2, sigs[1].1.clone())];
    assert!(matches!(
        finalize_psbt(&b64, &w.keys, Network::Mainnet, &extra),
        Err(BtcError::UnknownInput { input: 2 })
    ));
    let garbage = vec![
        sigs[0].clone(),
        (1, InputSignature::Der(vec![0x30, 0x01, 0x00])),
    ];
    assert!(matches!(
        finalize_psbt(&b64, &w.keys, Network::Mainnet, &garbage),
        Err(BtcError::InvalidSignature { input: 1 })
    ));
}
