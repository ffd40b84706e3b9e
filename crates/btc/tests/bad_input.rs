//! Every refusal, each a distinct typed error returned before any plan exists, and
//! random input never panics.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::common::*;
use bitcoin::key::{TapTweak, UntweakedPublicKey};
use bitcoin::psbt::{Psbt, PsbtSighashType};
use bitcoin::sighash::EcdsaSighashType;
use bitcoin::{Amount, ScriptBuf, WScriptHash};
use proptest::prelude::*;
use wallet_btc::{analyze_psbt, BtcError, Network, ScriptKind, MAX_PSBT_BYTES};

fn analyze(w: &TestWallet, psbt: &Psbt) -> Result<wallet_btc::PsbtPlan, BtcError> {
    analyze_psbt(b64(psbt), &w.keys, Network::Mainnet)
}

/// A valid two-input PSBT to break.
fn valid(w: &TestWallet) -> Psbt {
    let (psbt, _) = standard_psbt(w, 2);
    analyze(w, &psbt).expect("the base case is valid");
    psbt
}

/// Replaces input `k`'s coin with one paying `script` (bip32 entry unchanged).
fn spend_script(psbt: &mut Psbt, k: usize, script: ScriptBuf) {
    psbt.inputs[k].witness_utxo.as_mut().unwrap().script_pubkey = script;
}

#[test]
fn refusals_are_distinct_typed_errors() {
    let w = TestWallet::default();
    let mut codes = BTreeSet::new();
    let mut expect = |r: Result<wallet_btc::PsbtPlan, BtcError>,
                      check: &dyn Fn(&BtcError) -> bool| {
        let e = r.expect_err("must be refused");
        assert!(check(&e), "unexpected error {e:?}");
        codes.insert(e.code());
    };

    // Text that is not base64; base64 that is not a PSBT; binary garbage after the magic.
    expect(
        analyze_psbt("not base64 !!", &w.keys, Network::Mainnet),
        &|e| matches!(e, BtcError::InvalidBase64),
    );
    expect(
        analyze_psbt("aGVsbG8gd29ybGQ=", &w.keys, Network::Mainnet),
        &|e| matches!(e, BtcError::InvalidPsbt(_)),
    );
    expect(
        analyze_psbt(b"psbt\xff\x01\x00garbage", &w.keys, Network::Mainnet),
        &|e| matches!(e, BtcError::InvalidPsbt(_)),
    );
    let huge = vec![b'A'; MAX_PSBT_BYTES + 1];
    expect(analyze_psbt(&huge, &w.keys, Network::Mainnet), &|e| {
        matches!(e, BtcError::TooLarge(_))
    });

    // A version 3 PSBT; a version 2 one whose maps are missing; a version 2 one
    // declaring 2^62 inputs (refused before the parser reserves memory for them).
    let global = |version: u8, inputs: &[u8]| {
        let mut b = b"psbt\xff".to_vec();
        b.extend([0x01, 0xfb, 0x04, version, 0x00, 0x00, 0x00]);
        b.extend([0x01, 0x02, 0x04, 0x02, 0x00, 0x00, 0x00]);
        b.extend([0x01, 0x04, inputs.len() as u8]);
        b.extend(inputs);
        b.extend([0x01, 0x05, 0x01, 0x01, 0x00]);
        b
    };
    expect(
        analyze_psbt(global(3, &[1]), &w.keys, Network::Mainnet),
        &|e| matches!(e, BtcError::UnsupportedPsbtVersion { version: 3 }),
    );
    expect(
        analyze_psbt(global(2, &[1]), &w.keys, Network::Mainnet),
        &|e| matches!(e, BtcError::InvalidPsbt(_)),
    );
    let hostile = global(2, &[0xff, 0, 0, 0, 0, 0, 0, 0, 0x40]);
    expect(
        analyze_psbt(&hostile, &w.keys, Network::Mainnet),
        &|e| matches!(e, BtcError::InvalidPsbt(m) if m.contains("count")),
    );

    // Missing witness UTXO.
    let mut p = valid(&w);
    p.inputs[1].witness_utxo = None;
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::MissingUtxo { input: 1 })
    });

    // non_witness_utxo that is not the spent transaction.
    let mut p = valid(&w);
    let out = p.inputs[0].witness_utxo.clone().unwrap();
    let vout = p.unsigned_tx.input[0].previous_output.vout;
    p.inputs[0].non_witness_utxo = Some(prev_tx_paying(&out, vout, 1));
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::UtxoMismatch { input: 0, .. })
    });

    // non_witness_utxo right, but its amount differs from witness_utxo's.
    let mut p = valid(&w);
    let prev = prev_tx_paying(&out, vout, 1);
    p.unsigned_tx.input[0].previous_output.txid = prev.compute_txid();
    p.inputs[0].non_witness_utxo = Some(prev);
    p.inputs[0].witness_utxo.as_mut().unwrap().value = Amount::from_sat(1);
    expect(analyze(&w, &p), &|e| {
        matches!(
            e,
            BtcError::AmountMismatch {
                input: 0,
                witness_sats: 1,
                ..
            }
        )
    });

    // Foreign fingerprint (the key and path are right).
    let mut p = valid(&w);
    for (_, (fp, _)) in p.inputs[1].bip32_derivation.iter_mut() {
        *fp = bitcoin::bip32::Fingerprint::from([1, 2, 3, 4]);
    }
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::NotOurInput { input: 1 })
    });

    // Our fingerprint, but the path does not derive the listed key.
    let mut p = valid(&w);
    for (_, (_, path)) in p.inputs[0].bip32_derivation.iter_mut() {
        *path = crate::common::path("m/84/0/0/0/99");
    }
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::NotOurInput { input: 0 })
    });

    // Our fingerprint and a right (path, key) pair, but for another key than the spent
    // script's.
    let mut p = valid(&w);
    let other = crate::common::path("m/84/0/0/0/42");
    p.inputs[0].bip32_derivation =
        BTreeMap::from([(w.public(&other), (w.keys.fingerprint(), other))]);
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::NotOurInput { input: 0 })
    });

    // A foreign coin among ours: the whole PSBT is refused.
    let mut p = valid(&w);
    spend_script(&mut p, 1, foreign_script());
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::NotOurInput { input: 1 })
    });

    // A hardened path with our fingerprint.
    let mut p = valid(&w);
    for (_, (_, path)) in p.inputs[0].bip32_derivation.iter_mut() {
        *path = "m/84'/0'/0'/0/0".parse().unwrap();
    }
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::NotOurInput { input: 0 })
    });

    // Unsupported scripts: Taproot, P2PKH, P2SH, P2WSH.
    let key = w.public(&crate::common::path("m/84/0/0/0/0"));
    let secp = bitcoin::secp256k1::Secp256k1::verification_only();
    let (xonly, _) = UntweakedPublicKey::from(key).tap_tweak(&secp, None);
    let cpk = bitcoin::CompressedPublicKey(key);
    let scripts = [
        (ScriptBuf::new_p2tr_tweaked(xonly), ScriptKind::P2tr),
        (
            ScriptBuf::new_p2pkh(&bitcoin::PublicKey::new(key).pubkey_hash()),
            ScriptKind::P2pkh,
        ),
        (
            ScriptBuf::new_p2sh(&ScriptBuf::new_p2wpkh(&cpk.wpubkey_hash()).script_hash()),
            ScriptKind::P2sh,
        ),
        (
            ScriptBuf::new_p2wsh(&WScriptHash::from_raw_hash(
                bitcoin::hashes::Hash::from_byte_array([9u8; 32]),
            )),
            ScriptKind::P2wsh,
        ),
        (ScriptBuf::from_bytes(vec![0x51]), ScriptKind::Other),
    ];
    for (script, kind) in scripts {
        let mut p = valid(&w);
        spend_script(&mut p, 0, script);
        expect(
            analyze(&w, &p),
            &move |e| matches!(e, BtcError::UnsupportedScript { input: 0, kind: k } if *k == kind),
        );
    }

    // Sighash types other than ALL; explicit ALL is fine.
    for t in [
        EcdsaSighashType::None,
        EcdsaSighashType::AllPlusAnyoneCanPay,
        EcdsaSighashType::Single,
    ] {
        let mut p = valid(&w);
        p.inputs[1].sighash_type = Some(PsbtSighashType::from(t));
        expect(
            analyze(&w, &p),
            &move |e| matches!(e, BtcError::UnsupportedSighash { input: 1, sighash } if *sighash == t.to_u32()),
        );
    }
    let mut p = valid(&w);
    p.inputs[0].sighash_type = Some(PsbtSighashType::from(EcdsaSighashType::All));
    analyze(&w, &p).unwrap();

    // Amounts: above 21 million BTC, and sums beyond it.
    let mut p = valid(&w);
    p.inputs[0].witness_utxo.as_mut().unwrap().value = Amount::from_sat(u64::MAX);
    expect(analyze(&w, &p), &|e| matches!(e, BtcError::AmountOverflow));
    let mut p = valid(&w);
    for k in 0..2 {
        p.inputs[k].witness_utxo.as_mut().unwrap().value = Amount::MAX_MONEY;
    }
    expect(analyze(&w, &p), &|e| matches!(e, BtcError::AmountOverflow));
    let mut p = valid(&w);
    p.unsigned_tx.output[0].value = Amount::from_sat(u64::MAX);
    expect(analyze(&w, &p), &|e| matches!(e, BtcError::AmountOverflow));

    // Outputs exceeding inputs.
    let mut p = valid(&w);
    p.unsigned_tx.output[0].value = Amount::from_sat(10_000_000);
    expect(analyze(&w, &p), &|e| {
        matches!(
            e,
            BtcError::NegativeFee {
                total_in_sats: 200_001,
                ..
            }
        )
    });

    // The same outpoint twice.
    let mut p = valid(&w);
    p.unsigned_tx.input[1].previous_output = p.unsigned_tx.input[0].previous_output;
    expect(analyze(&w, &p), &|e| {
        matches!(e, BtcError::DuplicateInput { input: 1 })
    });

    // Each kind of refusal has its own code.
    let expected: BTreeSet<&str> = [
        "invalid_base64",
        "invalid_psbt",
        "too_large",
        "unsupported_psbt_version",
        "missing_utxo",
        "utxo_mismatch",
        "amount_mismatch",
        "not_our_input",
        "unsupported_script",
        "unsupported_sighash",
        "amount_overflow",
        "negative_fee",
        "duplicate_input",
    ]
    .into();
    assert_eq!(codes, expected);
}

/// An output claiming to be change is change only if its derivation is really ours.
#[test]
fn change_is_recognized_only_on_our_own_paths() {
    let w = TestWallet::default();
    let mut p = valid(&w);
    let plan = analyze(&w, &p).unwrap();
    assert!(plan.outputs[1].is_change);
    // A foreign output that lists one of our keys is not change.
    let ours = crate::common::path("m/84/0/0/1/3");
    p.outputs[0].bip32_derivation =
        BTreeMap::from([(w.public(&ours), (w.keys.fingerprint(), ours))]);
    // The change output's derivation under a foreign fingerprint is not change.
    for (_, (fp, _)) in p.outputs[1].bip32_derivation.iter_mut() {
        *fp = bitcoin::bip32::Fingerprint::from([0xde, 0xad, 0xbe, 0xef]);
    }
    let plan = analyze(&w, &p).unwrap();
    assert!(!plan.outputs[0].is_change && !plan.outputs[1].is_change);
    assert_eq!(plan.external_out_sats, plan.total_out_sats);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let w = TestWallet::default();
        let _ = analyze_psbt(&bytes, &w.keys, Network::Mainnet);
        let mut magic = b"psbt\xff".to_vec();
        magic.extend(&bytes);
        let _ = analyze_psbt(&magic, &w.keys, Network::Mainnet);
    }

    #[test]
    fn random_base64_never_panics(text in "[A-Za-z0-9+/=]{0,400}") {
        let w = TestWallet::default();
        let _ = analyze_psbt(text.as_bytes(), &w.keys, Network::Mainnet);
    }

    /// A valid PSBT with one byte changed: refused, or still a plan of our inputs.
    #[test]
    fn mutated_psbts_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let w = TestWallet::default();
        let mut bytes = valid(&w).serialize();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(plan) = analyze_psbt(&bytes, &w.keys, Network::Mainnet) {
            for input in &plan.inputs {
                prop_assert_eq!(w.public(&input.path), input.public_key);
            }
        }
    }
}
