//! The Bitcoin rules, one by one, on PSBTs built with the `bitcoin` crate (the process
//! level, with a real wallet, is in `tests/policy.rs`), and property tests: arbitrary
//! bytes as a PSBT never panic and never pass.

use mpc_core::hd::DerivationPath as CorePath;
use mpc_core::DigestKind;
use proptest::prelude::*;
use wallet_btc::bitcoin::secp256k1::{Secp256k1, SecretKey};
use wallet_btc::bitcoin::ScriptBuf;
use wallet_btc::{Network, WalletKeys};

use super::bitcoin::{evaluate, prepare_with_keys, BitcoinDaily, BitcoinInput, PsbtRefusal};
use super::config::{BitcoinPolicy, ConfigBtcAddress, ConfigNetwork, PolicyConfig, Sats};
use super::{rule, Verdict};

pub(crate) fn keys() -> WalletKeys {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[7u8; 32]).unwrap();
    let pk = sk.public_key(&secp).serialize();
    WalletKeys::new(&pk, &[9u8; 32]).unwrap()
}

pub(crate) use wallet_btc::testing::{elsewhere, path, Spend};

/// A PSBT (version 0) spending `inputs` (path, sats, kind; outpoint txids `[1 + i; 32]`)
/// to `outputs` (script, sats, change path).
pub(crate) fn psbt(
    keys: &WalletKeys,
    inputs: &[(&str, u64, Spend)],
    outputs: &[(ScriptBuf, u64, Option<&str>)],
) -> Vec<u8> {
    wallet_btc::testing::psbt(keys, 1, inputs, outputs).serialize()
}

const IN0: &str = "m/84/1/0/0/0";
const IN1: &str = "m/84/1/0/0/1";
const CHANGE: &str = "m/84/1/0/1/0";

fn prep(psbt: &[u8], path: &str, index: u32, net: Network) -> Result<BitcoinInput, PsbtRefusal> {
    prepare_with_keys(
        psbt,
        &keys(),
        &CorePath::parse(path).unwrap(),
        DigestKind::DoubleSha256,
        index,
        net,
    )
}

fn good() -> Vec<u8> {
    let k = keys();
    let change = wallet_btc::p2wpkh_script(&k.public_key(&path(CHANGE)).unwrap());
    psbt(
        &k,
        &[(IN0, 60_000, Spend::Ours), (IN1, 50_000, Spend::Ours)],
        &[(elsewhere(1), 70_000, None), (change, 39_000, Some(CHANGE))],
    )
}

fn rule_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Deny { rule, .. } => rule,
        Verdict::Allow { .. } => "allowed",
        Verdict::Unsupported(_) => "unsupported",
    }
}

fn regtest_address(script: &ScriptBuf) -> ConfigBtcAddress {
    let a =
        wallet_btc::bitcoin::Address::from_script(script, wallet_btc::bitcoin::Network::Regtest)
            .unwrap();
    ConfigBtcAddress(a.to_string().parse().unwrap())
}

#[test]
fn the_input_its_path_and_preimage() {
    let p = good();
    let b = prep(&p, IN1, 1, Network::Regtest).expect("input 1");
    assert_eq!(b.input().index, 1);
    assert_eq!(
        DigestKind::DoubleSha256.digest(&b.input().preimage),
        b.input().sighash
    );
    assert_eq!(b.plan.external_out_sats, 70_000);
    assert_eq!(b.plan.fee_sats, 1_000);
    // The preimage the parties sign is the input's BIP-143 preimage, not the PSBT.
    let pre = super::signing_preimage(
        cosigner_api::pb::PayloadKind::BitcoinPsbtInput,
        &p,
        Some(&b),
    )
    .unwrap();
    assert_eq!(pre, b.input().preimage);
    // Without the analysis, the kind is refused (never signed as raw bytes).
    assert!(
        super::signing_preimage(cosigner_api::pb::PayloadKind::BitcoinPsbtInput, &p, None).is_err()
    );
    // The wrong path for the input, an input that does not exist.
    assert!(matches!(
        prep(&p, IN0, 1, Network::Regtest),
        Err(PsbtRefusal::PathMismatch { index: 1, .. })
    ));
    assert!(matches!(
        prep(&p, IN0, 2, Network::Regtest),
        Err(PsbtRefusal::NoSuchInput { index: 2, count: 2 })
    ));
    // Another digest.
    assert!(matches!(
        prepare_with_keys(
            &p,
            &keys(),
            &CorePath::parse(IN0).unwrap(),
            DigestKind::Sha256,
            0,
            Network::Regtest
        ),
        Err(PsbtRefusal::Digest(_))
    ));
    assert!(matches!(
        super::bitcoin::parse_network("mainnet-ish"),
        Err(PsbtRefusal::Network(_))
    ));
}

#[test]
fn foreign_taproot_p2pkh_and_malformed_psbts_are_refused_naming_the_input() {
    let k = keys();
    let out = [(elsewhere(1), 1_000, None)];
    for (kind, code) in [
        (Spend::Foreign, "not_our_input"),
        (Spend::Taproot, "unsupported_script"),
        (Spend::P2pkh, "unsupported_script"),
    ] {
        let p = psbt(&k, &[(IN0, 60_000, Spend::Ours), (IN1, 50_000, kind)], &out);
        // Whichever input is asked for: nothing is signed partially.
        for index in [0, 1] {
            let path = if index == 0 { IN0 } else { IN1 };
            match prep(&p, path, index, Network::Regtest) {
                Err(e @ PsbtRefusal::Psbt(_)) => {
                    let PsbtRefusal::Psbt(ref inner) = e else {
                        unreachable!()
                    };
                    assert_eq!(inner.code(), code);
                    assert_eq!(e.input(), Some(1), "{e}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }
    for bad in [&b""[..], b"psbt\xff", b"not a psbt", &good()[..40]] {
        assert!(matches!(
            prep(bad, IN0, 0, Network::Regtest),
            Err(PsbtRefusal::Psbt(_))
        ));
    }
}

#[test]
fn every_rule_refuses_naming_itself() {
    let p = good();
    let b = prep(&p, IN0, 0, Network::Regtest).unwrap();
    let dest = regtest_address(&elsewhere(1));
    let open = BitcoinPolicy::default();
    assert_eq!(rule_of(evaluate(&open, &b)), "allowed");
    let cases: Vec<(BitcoinPolicy, &str)> = vec![
        (
            BitcoinPolicy {
                allowed_networks: vec![ConfigNetwork(Network::Testnet)],
                ..Default::default()
            },
            rule::BITCOIN_NETWORKS,
        ),
        (
            BitcoinPolicy {
                allowed_destinations: vec![regtest_address(&elsewhere(2))],
                ..Default::default()
            },
            rule::BITCOIN_DESTINATIONS,
        ),
        (
            BitcoinPolicy {
                max_sats_per_tx: Some(Sats(69_999)),
                ..Default::default()
            },
            rule::BITCOIN_MAX_SATS_PER_TX,
        ),
        (
            BitcoinPolicy {
                max_fee_sats: Some(Sats(999)),
                ..Default::default()
            },
            rule::BITCOIN_MAX_FEE_SATS,
        ),
        (
            BitcoinPolicy {
                max_fee_rate_sat_per_vb: Some(b.plan.fee_rate_sat_per_vb() - 0.01),
                ..Default::default()
            },
            rule::BITCOIN_MAX_FEE_RATE,
        ),
    ];
    for (p, want) in cases {
        assert_eq!(rule_of(evaluate(&p, &b)), want);
    }
    // At the limits (change neither counted nor checked against the destinations).
    let exact = BitcoinPolicy {
        allowed_networks: vec![ConfigNetwork(Network::Regtest)],
        allowed_destinations: vec![dest],
        max_sats_per_tx: Some(Sats(70_000)),
        daily_limit_sats: Some(Sats(100_000)),
        max_fee_sats: Some(Sats(1_000)),
        max_fee_rate_sat_per_vb: Some(b.plan.fee_rate_sat_per_vb()),
    };
    match evaluate(&exact, &b) {
        Verdict::Allow {
            bitcoin_daily,
            fields,
            ..
        } => {
            assert_eq!(
                bitcoin_daily,
                Some(BitcoinDaily {
                    txid: b.plan.txid.clone(),
                    sats: 70_000,
                    limit: 100_000
                })
            );
            let f = fields.unwrap();
            assert_eq!(f["txid"], b.plan.txid.as_str());
            assert_eq!(f["fee_sats"], 1_000);
            assert_eq!(f["input"], 0);
        }
        v => panic!("{v:?}"),
    }
    // A mainnet address in the list matches no regtest output.
    let main = wallet_btc::bitcoin::Address::from_script(
        &elsewhere(1),
        wallet_btc::bitcoin::Network::Bitcoin,
    )
    .unwrap();
    let p = BitcoinPolicy {
        allowed_destinations: vec![ConfigBtcAddress(main.to_string().parse().unwrap())],
        ..Default::default()
    };
    assert_eq!(rule_of(evaluate(&p, &b)), rule::BITCOIN_DESTINATIONS);
    // A change output that claims a key of ours at a path whose script is not its own
    // is external (counted).
    let k = keys();
    let fake_change = psbt(
        &k,
        &[(IN0, 60_000, Spend::Ours)],
        &[(elsewhere(3), 59_000, Some(CHANGE))],
    );
    let b = prep(&fake_change, IN0, 0, Network::Regtest).unwrap();
    assert_eq!(b.plan.external_out_sats, 59_000);
    assert_eq!(
        rule_of(evaluate(
            &BitcoinPolicy {
                max_sats_per_tx: Some(Sats(1)),
                ..Default::default()
            },
            &b
        )),
        rule::BITCOIN_MAX_SATS_PER_TX
    );
}

#[test]
fn the_bitcoin_section_parses_and_checks() {
    let addr = wallet_btc::bitcoin::Address::from_script(
        &elsewhere(1),
        wallet_btc::bitcoin::Network::Regtest,
    )
    .unwrap();
    let c: PolicyConfig = serde_yaml::from_str(&format!(
        "bitcoin:\n  allowed_networks: [regtest, bitcoin]\n  allowed_destinations: [\"{addr}\"]\n  \
         max_sats_per_tx: \"1_000_000\"\n  daily_limit_sats: 5000000\n  max_fee_sats: 10000\n  max_fee_rate_sat_per_vb: 50.5\n",
    ))
    .expect("bitcoin section");
    assert_eq!(c.bitcoin.allowed_networks.len(), 2);
    assert_eq!(c.bitcoin.max_sats_per_tx, Some(Sats(1_000_000)));
    assert_eq!(c.bitcoin.max_fee_rate_sat_per_vb, Some(50.5));
    c.check(false).expect("valid");
    for bad in [
        "bitcoin:\n  allowed_networks: [moon]\n",
        "bitcoin:\n  allowed_destinations: [\"bc1qnotanaddress\"]\n",
        "bitcoin:\n  max_sats_per_tx: 2100000000000001\n",
        "bitcoin:\n  max_fee: 1\n",
    ] {
        assert!(serde_yaml::from_str::<PolicyConfig>(bad).is_err(), "{bad}");
    }
    // An address of a network that is not allowed.
    let c: PolicyConfig = serde_yaml::from_str(&format!(
        "bitcoin:\n  allowed_networks: [mainnet]\n  allowed_destinations: [\"{addr}\"]\n",
    ))
    .unwrap();
    assert_eq!(
        c.check(false).unwrap_err().0,
        "policy.bitcoin.allowed_destinations"
    );
    let c: PolicyConfig =
        serde_yaml::from_str("bitcoin:\n  max_fee_rate_sat_per_vb: -1\n").unwrap();
    assert!(c.check(false).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    /// Arbitrary bytes as a PSBT: never a panic, never an input to sign.
    #[test]
    fn arbitrary_bytes_never_pass(bytes in proptest::collection::vec(any::<u8>(), 0..600), index in 0u32..3) {
        prop_assert!(prep(&bytes, IN0, index, Network::Regtest).is_err());
        let mut magic = b"psbt\xff".to_vec();
        magic.extend_from_slice(&bytes);
        prop_assert!(prep(&magic, IN0, index, Network::Regtest).is_err());
    }

    /// One byte of a good PSBT changed: never a panic; whatever still passes is an input
    /// of ours at its own path whose preimage hashes to its sighash.
    #[test]
    fn mutated_psbts_never_sign_anything_else(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut p = good();
        let i = pos.index(p.len());
        p[i] = byte;
        if let Ok(b) = prep(&p, IN0, 0, Network::Regtest) {
            let k = keys();
            prop_assert_eq!(b.input().public_key, k.public_key(&path(IN0)).unwrap());
            prop_assert_eq!(DigestKind::DoubleSha256.digest(&b.input().preimage), b.input().sighash);
            prop_assert!(b.plan.inputs.iter().all(|i| i.public_key == k.public_key(&i.path).unwrap()));
        }
    }
}
