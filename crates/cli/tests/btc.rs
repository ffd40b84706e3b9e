//! `client btc address|descriptor` as a user runs them (real process, real encrypted
//! share files) on the committed test wallet (`testing/fixtures/dev-wallet.json`, keys
//! made by a real DKG), checked against independent code: RustCrypto's `bip32` derives
//! the descriptor's xpub (and, from the wallet's root key and chain code, the account
//! xpub itself), HASH160 + `bech32` make the addresses, and the descriptor checksum is
//! recomputed with BIP-380's reference algorithm written out below.

use std::path::Path;
use std::process::{Command, Output};
use std::str::FromStr;

use bip32::{ChildNumber, ExtendedKeyAttrs, XPub};
use mpc_client::{save_party_files, WalletMeta, WALLET_META_FORMAT};
use mpc_core::keystore::KeyShareBundle;
use sha2::{Digest, Sha256};

const CLIENT: &str = env!("CARGO_BIN_EXE_client");
const WALLET: &str = include_str!("../../../testing/fixtures/dev-wallet.json");
const PASS: &str = "device passphrase";

fn wallet() -> serde_json::Value {
    serde_json::from_str(WALLET).unwrap()
}

/// The test wallet's device share (party 0) saved as `dir/client_key_shares.json`.
fn save_device(dir: &Path) {
    let bundle: KeyShareBundle = serde_json::from_value(wallet()["bundles"][0].clone()).unwrap();
    let meta = WalletMeta {
        format: WALLET_META_FORMAT.into(),
        wallet_id: "dev-wallet".into(),
        party_index: 0,
        cosigner_url: "http://127.0.0.1:9".into(),
        label: String::new(),
        created_at_ms: 0,
    };
    save_party_files(
        &dir.join("client_key_shares.json"),
        PASS,
        true,
        &meta,
        &bundle,
    )
    .unwrap();
}

fn client(dir: &Path, args: &[&str]) -> Output {
    Command::new(CLIENT)
        .args(args)
        .current_dir(dir)
        .env("WALLET_CLIENT_PASSPHRASE", PASS)
        .env_remove("WALLET_RECOVERY_PASSPHRASE")
        .env("WALLET_COSIGNER_URL", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

fn ok_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = client(dir, args);
    assert!(
        o.status.success(),
        "client {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn hash160(data: &[u8]) -> [u8; 20] {
    ripemd::Ripemd160::digest(Sha256::digest(data)).into()
}

/// The P2WPKH address of a compressed key, by HASH160 and bech32 (segwit v0).
fn p2wpkh(key: &[u8], hrp: &str) -> String {
    let hrp = bech32::Hrp::parse(hrp).unwrap();
    bech32::segwit::encode(hrp, bech32::segwit::VERSION_0, &hash160(key)).unwrap()
}

/// BIP-380's descriptor checksum, from the BIP's reference code.
fn descriptor_checksum(desc: &str) -> String {
    const INPUT: &str = "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
    const CHECKSUM: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GENERATOR: [u64; 5] = [
        0xf5dee51989,
        0xa9fdca3312,
        0x1bab10e32d,
        0x3706b1677a,
        0x644d626ffd,
    ];
    fn polymod(symbols: &[u64]) -> u64 {
        let mut chk = 1u64;
        for &v in symbols {
            let top = chk >> 35;
            chk = ((chk & 0x7ffffffff) << 5) ^ v;
            for (i, g) in GENERATOR.iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }
    let mut symbols = Vec::new();
    let mut groups = Vec::new();
    for c in desc.chars() {
        let v = INPUT.find(c).unwrap() as u64;
        symbols.push(v & 31);
        groups.push(v >> 5);
        if groups.len() == 3 {
            symbols.push(groups[0] * 9 + groups[1] * 3 + groups[2]);
            groups.clear();
        }
    }
    match groups.len() {
        1 => symbols.push(groups[0]),
        2 => symbols.push(groups[0] * 3 + groups[1]),
        _ => {}
    }
    symbols.extend([0; 8]);
    let c = polymod(&symbols) ^ 1;
    (0..8)
        .map(|i| CHECKSUM[((c >> (5 * (7 - i))) & 31) as usize] as char)
        .collect()
}

fn child(x: &XPub, i: u32) -> XPub {
    x.derive_child(ChildNumber::new(i, false).unwrap()).unwrap()
}

#[test]
fn btc_descriptor_and_addresses_match_an_independent_derivation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    save_device(d);
    let w = wallet();
    let account = &w["bundles"][0]["accounts"]["hd-0"];
    let root_key = hex::decode(account["public_key"].as_str().unwrap()).unwrap();
    let chain_code: [u8; 32] = hex::decode(account["chain_code"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    // The wallet's root as an xpub of the independent implementation.
    let root = XPub::new(
        <bip32::secp256k1::ecdsa::VerifyingKey as bip32::PublicKey>::from_bytes(
            root_key.as_slice().try_into().unwrap(),
        )
        .unwrap(),
        ExtendedKeyAttrs {
            depth: 0,
            parent_fingerprint: [0; 4],
            child_number: ChildNumber(0),
            chain_code,
        },
    );

    for (network, hrp, coin, xprefix) in [
        ("mainnet", "bc", 0u32, "xpub"),
        ("testnet", "tb", 1, "tpub"),
        ("signet", "tb", 1, "tpub"),
        ("regtest", "bcrt", 1, "tpub"),
    ] {
        let desc = ok_json(
            d,
            &[
                "btc",
                "descriptor",
                "--account",
                "hd-0",
                "--network",
                network,
                "--json",
            ],
        );
        let account_path = format!("m/84/{coin}/0");
        assert_eq!(desc["account_path"], account_path.as_str(), "{desc}");
        assert_eq!(desc["network"], network);
        let fingerprint = hex::encode(&hash160(&root_key)[..4]);
        assert_eq!(desc["fingerprint"], fingerprint.as_str(), "{desc}");
        let xpub = desc["xpub"].as_str().unwrap();
        assert!(xpub.starts_with(xprefix), "{xpub}");
        // The account xpub is the root's child at 84/coin/0 in the independent code.
        let theirs = XPub::from_str(xpub).unwrap();
        let expected = child(&child(&child(&root, 84), coin), 0);
        assert_eq!(theirs.to_bytes(), expected.to_bytes(), "{network}");
        assert_eq!(
            theirs.attrs().chain_code,
            expected.attrs().chain_code,
            "{network}"
        );
        for (field, chain) in [("receive_descriptor", 0u32), ("change_descriptor", 1)] {
            let text = desc[field].as_str().unwrap();
            let (body, sum) = text.split_once('#').unwrap();
            assert_eq!(
                body,
                format!("wpkh([{fingerprint}/84/{coin}/0]{xpub}/{chain}/*)"),
                "{network} {field}"
            );
            assert_eq!(sum, descriptor_checksum(body), "{network} {field}");
        }
        // The descriptor's first receive addresses are `client btc address` at
        // account/0/i, on this network.
        let receive = child(&theirs, 0);
        for i in 0..3u32 {
            let key = child(&receive, i).to_bytes();
            let path = format!("{account_path}/0/{i}");
            let a = ok_json(
                d,
                &[
                    "btc",
                    "address",
                    "--path",
                    &path,
                    "--network",
                    network,
                    "--json",
                ],
            );
            let address = a["address"].as_str().unwrap();
            assert_eq!(address, p2wpkh(&key, hrp), "{network} {path}");
            assert!(address.starts_with(&format!("{hrp}1q")), "{address}");
            assert_eq!(a["public_key"], hex::encode(key).as_str());
            assert_eq!(a["path"], path.as_str());
        }
        // No --path: the first receive address of the default account.
        let first = ok_json(d, &["btc", "address", "--network", network, "--json"]);
        assert_eq!(
            first["address"].as_str().unwrap(),
            p2wpkh(&child(&receive, 0).to_bytes(), hrp)
        );
    }

    // Mainnet is the default, and `client address` keeps its mainnet address.
    let default = ok_json(d, &["btc", "address", "--path", "m/84/0/0/0/1", "--json"]);
    assert_eq!(default["network"], "mainnet");
    let old = ok_json(d, &["address", "--path", "m/84/0/0/0/1", "--json"]);
    assert_eq!(old["bitcoin_address"], default["address"]);
    assert_eq!(old["bitcoin_testnet_address"], {
        let t = ok_json(
            d,
            &[
                "btc",
                "address",
                "--path",
                "m/84/0/0/0/1",
                "--network",
                "testnet",
                "--json",
            ],
        );
        t["address"].clone()
    });
    // Human output.
    let o = client(d, &["btc", "descriptor", "--account-path", "m/84/0/3"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("receive     wpkh(["), "{text}");
    assert!(text.contains("/84/0/3]xpub"), "{text}");
}

#[test]
fn btc_refuses_hardened_paths_and_unknown_networks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    save_device(d);
    for args in [
        &["btc", "address", "--path", "m/84'/0'/0'/0/0", "--json"][..],
        &["btc", "descriptor", "--account-path", "m/84h/0/0", "--json"][..],
        &["btc", "address", "--network", "testnet4x", "--json"][..],
        &["btc", "address", "--path", "m/x", "--json"][..],
    ] {
        let o = client(d, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(e["error"]["code"], "invalid_input", "{args:?}: {e}");
    }
    let o = client(d, &["btc", "address", "--path", "m/84'/0", "--json"]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("hardened"),
        "{e}"
    );
    // Unknown account.
    let o = client(d, &["btc", "descriptor", "--account", "nope", "--json"]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["error"]["code"], "unknown_account", "{e}");
}

// ------------------------------------------------------------------ btc sign-psbt

mod sign_psbt {
    use super::*;
    use wallet_btc::bitcoin::consensus::encode::{deserialize, serialize};
    use wallet_btc::bitcoin::psbt::Psbt;
    use wallet_btc::bitcoin::{ScriptBuf, Transaction, TxOut};
    use wallet_btc::WalletKeys;

    const RECOVERY_PASS: &str = "recovery passphrase";

    /// The test wallet's HD account keys.
    fn keys() -> WalletKeys {
        let a = &wallet()["bundles"][0]["accounts"]["hd-0"];
        let root = hex::decode(a["public_key"].as_str().unwrap()).unwrap();
        let cc: [u8; 32] = hex::decode(a["chain_code"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        WalletKeys::new(&root, &cc).unwrap()
    }

    fn save_recovery(dir: &Path) {
        let bundle: KeyShareBundle =
            serde_json::from_value(wallet()["bundles"][2].clone()).unwrap();
        let meta = WalletMeta {
            format: WALLET_META_FORMAT.into(),
            wallet_id: "dev-wallet".into(),
            party_index: 2,
            cosigner_url: "http://127.0.0.1:9".into(),
            label: String::new(),
            created_at_ms: 0,
        };
        save_party_files(
            &dir.join("recovery_key_shares.json"),
            RECOVERY_PASS,
            true,
            &meta,
            &bundle,
        )
        .unwrap();
    }

    fn run(dir: &Path, args: &[&str]) -> Output {
        Command::new(CLIENT)
            .args(args)
            .current_dir(dir)
            .env("WALLET_CLIENT_PASSPHRASE", PASS)
            .env("WALLET_RECOVERY_PASSPHRASE", RECOVERY_PASS)
            .env("WALLET_COSIGNER_URL", "http://127.0.0.1:9")
            .output()
            .unwrap()
    }

    /// A regtest PSBT spending `n` coins of the wallet at `m/84/1/0/0/i`, with change
    /// (wallet_btc::testing).
    fn regtest_psbt(keys: &WalletKeys, n: u32) -> (Psbt, Vec<TxOut>) {
        wallet_btc::testing::regtest_spend(keys, 0, n)
    }

    /// `client btc sign-psbt --offline` (device + recovery, no cosigner) on a base64
    /// file: the printed transaction passes Bitcoin Core's interpreter, --out holds the
    /// finalized PSBT, and it is never overwritten.
    #[test]
    fn btc_sign_psbt_offline_passes_bitcoin_core() {
        let dir = tempfile::tempdir().unwrap();
        save_device(dir.path());
        save_recovery(dir.path());
        let (psbt, spent) = regtest_psbt(&keys(), 1);
        std::fs::write(
            dir.path().join("spend.psbt"),
            wallet_btc::encode_psbt(&psbt),
        )
        .unwrap();
        let o = run(
            dir.path(),
            &[
                "--json",
                "btc",
                "sign-psbt",
                "spend.psbt",
                "--account",
                "hd-0",
                "--network",
                "regtest",
                "--offline",
                "--out",
                "signed.psbt",
            ],
        );
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let tx: Transaction =
            deserialize(&hex::decode(v["tx_hex"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(tx.compute_txid().to_string(), v["txid"].as_str().unwrap());
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
        let written = std::fs::read_to_string(dir.path().join("signed.psbt")).unwrap();
        assert_eq!(written.trim(), v["psbt_base64"].as_str().unwrap());
        // --out is never overwritten.
        let o = run(
            dir.path(),
            &[
                "btc",
                "sign-psbt",
                "spend.psbt",
                "--network",
                "regtest",
                "--offline",
                "--out",
                "signed.psbt",
            ],
        );
        assert!(!o.status.success());
    }

    /// A foreign input, a missing witness UTXO, Taproot and bad base64 are refused with
    /// `invalid_input` before any request: the configured cosigner (nothing listens
    /// there) is never reached, which would be `cosigner_unavailable`.
    #[test]
    fn btc_sign_psbt_refuses_bad_psbts_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        save_device(dir.path());
        let keys = keys();
        let (good, _) = regtest_psbt(&keys, 2);
        let other = WalletKeys::new(
            &keys
                .public_key(&wallet_btc::parse_path("m/9").unwrap())
                .unwrap()
                .serialize(),
            &[9; 32],
        )
        .unwrap();
        let mut foreign = good.clone();
        foreign.inputs[1] = regtest_psbt(&other, 1).0.inputs[0].clone();
        let mut missing = good.clone();
        missing.inputs[1].witness_utxo = None;
        let mut taproot = good.clone();
        if let Some(u) = taproot.inputs[0].witness_utxo.as_mut() {
            u.script_pubkey = ScriptBuf::new_p2tr_tweaked(
                wallet_btc::bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(
                    keys.root_public_key().x_only_public_key().0,
                ),
            );
        }
        let cases: [(&str, Vec<u8>); 4] = [
            (
                "not_our_input",
                wallet_btc::encode_psbt(&foreign).into_bytes(),
            ),
            ("missing_utxo", missing.serialize()),
            ("unsupported_script", taproot.serialize()),
            ("invalid_base64", b"cHNidP8B***".to_vec()),
        ];
        for (code, bytes) in cases {
            std::fs::write(dir.path().join("bad.psbt"), bytes).unwrap();
            let o = run(
                dir.path(),
                &[
                    "--json",
                    "btc",
                    "sign-psbt",
                    "bad.psbt",
                    "--network",
                    "regtest",
                ],
            );
            assert!(!o.status.success(), "{code}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("invalid_input"), "{code}: {err}");
            assert!(err.contains(code), "{code}: {err}");
            assert!(!err.contains("cosigner_unavailable"), "{code}: {err}");
        }
    }
}
