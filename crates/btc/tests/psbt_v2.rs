//! PSBT version 2 (BIP-370): the same transaction as a version 0 PSBT gives the same
//! plan; signed and finalized it stays version 2 and passes Bitcoin Core's interpreter.

use crate::common::*;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bitcoin::consensus::encode::serialize;
use bitcoin::transaction::Version;
use proptest::prelude::*;
use psbt_v2::v2;
use wallet_btc::{analyze_psbt, finalize_psbt, BtcError, InputSignature, Network};

/// The version 2 form of a version 0 PSBT built by `standard_psbt`.
fn to_v2(psbt: &bitcoin::psbt::Psbt) -> v2::Psbt {
    let mut c = v2::Creator::new()
        .transaction_version(Version::TWO)
        .constructor_modifiable();
    for (txin, input) in psbt.unsigned_tx.input.iter().zip(&psbt.inputs) {
        let mut i = v2::Input::new(&txin.previous_output);
        i.sequence = Some(txin.sequence);
        i.witness_utxo = input.witness_utxo.clone();
        i.bip32_derivations = input
            .bip32_derivation
            .iter()
            .map(|(k, v)| (bitcoin::PublicKey::new(*k), v.clone()))
            .collect();
        c = c.input(i);
    }
    for (txout, output) in psbt.unsigned_tx.output.iter().zip(&psbt.outputs) {
        let mut o = v2::Output::new(txout.clone());
        o.bip32_derivations = output
            .bip32_derivation
            .iter()
            .map(|(k, v)| (bitcoin::PublicKey::new(*k), v.clone()))
            .collect();
        c = c.output(o);
    }
    c.psbt().expect("lock time")
}

#[test]
fn version_2_signs_like_version_0_and_passes_bitcoin_core() {
    let w = TestWallet::default();
    let (v0, coins) = standard_psbt(&w, 3);
    let v2_psbt = to_v2(&v0);
    assert_eq!(v2_psbt.global.version, psbt_v2::Version::TWO);
    let v2_b64 = BASE64.encode(v2_psbt.serialize());

    let plan0 = analyze_psbt(b64(&v0), &w.keys, Network::Mainnet).unwrap();
    let plan2 = analyze_psbt(&v2_b64, &w.keys, Network::Mainnet).unwrap();
    assert_eq!(plan0.psbt_version, 0);
    assert_eq!(plan2.psbt_version, 2);
    assert_eq!(plan2.txid, plan0.txid);
    assert_eq!(plan2.inputs, plan0.inputs);
    assert_eq!(plan2.outputs, plan0.outputs);
    assert_eq!(plan2.fee_sats, plan0.fee_sats);
    assert!(plan2.outputs[1].is_change);

    let sigs: Vec<(usize, InputSignature)> = plan2
        .inputs
        .iter()
        .map(|i| (i.index, w.sign(&i.path, i.sighash)))
        .collect();
    let signed = finalize_psbt(&v2_b64, &w.keys, Network::Mainnet, &sigs).unwrap();
    assert_eq!(signed.psbt_version, 2);
    assert_eq!(signed.txid, plan2.txid);
    for (i, c) in coins.iter().enumerate() {
        bitcoinconsensus::verify(
            c.txout.script_pubkey.as_bytes(),
            c.txout.value.to_sat(),
            &serialize(&signed.tx),
            None,
            i,
        )
        .unwrap_or_else(|e| panic!("input {i}: {e:?}"));
    }

    // The returned PSBT is version 2, finalized (final witness, no final scriptSig for
    // native SegWit, as BIP-174 and Bitcoin Core write it), no longer modifiable, and
    // gives the same transaction.
    let back = v2::Psbt::deserialize(&BASE64.decode(&signed.psbt_base64).unwrap()).unwrap();
    assert_eq!(back.global.version, psbt_v2::Version::TWO);
    assert_eq!(back.global.tx_modifiable_flags, 0);
    for input in &back.inputs {
        assert!(input.final_script_witness.is_some() && input.final_script_sig.is_none());
        assert!(input.bip32_derivations.is_empty() && input.partial_sigs.is_empty());
        assert!(input.witness_utxo.is_some());
    }
    let again = wallet_btc::decode_psbt(signed.psbt_base64.as_bytes()).unwrap();
    assert_eq!(again.extract_tx_unchecked_fee_rate(), signed.tx);
    assert!(matches!(
        analyze_psbt(&signed.psbt_base64, &w.keys, Network::Mainnet),
        Err(BtcError::AlreadyFinalized { input: 0 })
    ));
}

#[test]
fn version_2_gets_the_same_refusals() {
    let w = TestWallet::default();
    let (mut v0, _) = standard_psbt(&w, 2);
    v0.inputs[1].witness_utxo.as_mut().unwrap().script_pubkey = foreign_script();
    let v2_b64 = BASE64.encode(to_v2(&v0).serialize());
    assert!(matches!(
        analyze_psbt(&v2_b64, &w.keys, Network::Mainnet),
        Err(BtcError::NotOurInput { input: 1 })
    ));
    let (mut v0, _) = standard_psbt(&w, 2);
    v0.inputs[0].witness_utxo = None;
    let v2_b64 = BASE64.encode(to_v2(&v0).serialize());
    assert!(matches!(
        analyze_psbt(&v2_b64, &w.keys, Network::Mainnet),
        Err(BtcError::MissingUtxo { input: 0 })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    /// A valid version 2 PSBT with one byte changed (and optionally cut short): the
    /// `psbt-v2` parser must not panic on it through us.
    #[test]
    fn mutated_version_2_never_panics(
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let w = TestWallet::default();
        let (v0, _) = standard_psbt(&w, 2);
        let mut bytes = to_v2(&v0).serialize();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = analyze_psbt(&bytes, &w.keys, Network::Mainnet);
    }
}
