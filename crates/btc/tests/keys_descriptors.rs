//! Keys, addresses and descriptors: published vectors, an independent BIP-32
//! implementation, and the threshold wallet's own derivation (mpc-core).

use std::str::FromStr;

use crate::common::*;
use bitcoin::bip32::Xpub;
use miniscript::descriptor::{Descriptor, DescriptorPublicKey};
use wallet_btc::{
    default_account_path, descriptor_checksum, parse_path, path_string, BtcError, Network,
    WalletKeys,
};

// BIP-32 test vector 1: the master xpub and its fingerprint (the parent fingerprint of
// m/0H).
const BIP32_TV1_MASTER: &str = "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8";

fn tv1_keys() -> WalletKeys {
    let x = Xpub::from_str(BIP32_TV1_MASTER).unwrap();
    WalletKeys::new(&x.public_key.serialize(), x.chain_code.as_bytes()).unwrap()
}

#[test]
fn root_xpub_and_fingerprint_match_bip32_vector_1() {
    let keys = tv1_keys();
    assert_eq!(keys.fingerprint().to_string(), "3442193e");
    assert_eq!(
        keys.xpub(&parse_path("m").unwrap(), Network::Mainnet)
            .unwrap()
            .to_string(),
        BIP32_TV1_MASTER
    );
}

/// BIP-380 / Bitcoin Core's published checksums.
#[test]
fn descriptor_checksums_match_published_vectors() {
    // BIP-380 "Test Vectors".
    assert_eq!(descriptor_checksum("raw(deadbeef)").unwrap(), "89f8spxm");
    // Bitcoin Core doc/descriptors.md.
    assert_eq!(
        descriptor_checksum("pkh([d34db33f/44'/0'/0']xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL/1/*)").unwrap(),
        "ml40v0wf"
    );
    // Bitcoin Core's getdescriptorinfo output for a testnet wpkh descriptor.
    assert_eq!(
        descriptor_checksum("wpkh([e18dae20/84h/1h/0h]tpubDC4ujMbsd9REzpGk3gnTjkrfJFw1NnvCpx6QBbLj3CHBzcLmVzssTVP8meRAM1WW4pZnK6SCCPGyzi9eMfzSXoeFMNprqtgxG71VRXTmetu/0/*)").unwrap(),
        "3658f8sn"
    );
    // BIP-380's invalid ones: a payload error changes the checksum; a non-ASCII
    // character is refused.
    assert_ne!(descriptor_checksum("raw(Deadbeef)").unwrap(), "89f8spxm");
    assert!(descriptor_checksum("raw(Ü)").is_err());
}

#[test]
fn descriptors_have_root_origin_and_their_addresses_are_ours() {
    let w = TestWallet::default();
    let fp = w.keys.fingerprint().to_string();
    for network in Network::ALL {
        let account = default_account_path(network);
        let d = w.keys.descriptors(&account, network).unwrap();
        let coin = network.coin_type();
        let prefix = if network == Network::Mainnet {
            "xpub"
        } else {
            "tpub"
        };
        for (desc, chain) in [(&d.receive, 0u32), (&d.change, 1)] {
            assert!(
                desc.starts_with(&format!("wpkh([{fp}/84/{coin}/0]{prefix}")),
                "{desc}"
            );
            let (body, checksum) = desc.split_once('#').unwrap();
            assert!(body.ends_with(&format!("/{chain}/*)")), "{desc}");
            assert_eq!(descriptor_checksum(body).unwrap(), checksum);

            // Parsing checks the checksum; the descriptor's addresses are ours.
            let parsed = Descriptor::<DescriptorPublicKey>::from_str(desc).unwrap();
            for i in 0..5u32 {
                let from_desc = parsed
                    .at_derivation_index(i)
                    .unwrap()
                    .address(network.to_bitcoin())
                    .unwrap();
                let p = parse_path(&format!("{}/{chain}/{i}", path_string(&account))).unwrap();
                assert_eq!(from_desc, w.keys.address(&p, network).unwrap());
                // ... and the private key's (standard BIP-32 private derivation).
                assert_eq!(w.keys.public_key(&p).unwrap(), w.public(&p));
            }
        }
        // A corrupted checksum is refused by a descriptor parser.
        let mut bad = d.receive.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'q' { 'p' } else { 'q' });
        assert!(Descriptor::<DescriptorPublicKey>::from_str(&bad).is_err());
    }
}

/// The descriptor's xpub through an independent BIP-32 implementation (RustCrypto's
/// `bip32`, on k256) gives the same keys as our addresses.
#[test]
fn descriptor_xpub_derives_the_same_keys_in_an_independent_implementation() {
    let w = TestWallet::default();
    let account = default_account_path(Network::Mainnet);
    let d = w.keys.descriptors(&account, Network::Mainnet).unwrap();
    let xpub_text = d
        .receive
        .split(']')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let theirs = bip32::XPub::from_str(xpub_text).unwrap();
    let receive = theirs
        .derive_child(bip32::ChildNumber::new(0, false).unwrap())
        .unwrap();
    for i in 0..5 {
        let child = receive
            .derive_child(bip32::ChildNumber::new(i, false).unwrap())
            .unwrap();
        let p = parse_path(&format!("m/84/0/0/0/{i}")).unwrap();
        assert_eq!(
            child.to_bytes(),
            w.keys.public_key(&p).unwrap().serialize(),
            "receive {i}"
        );
    }
}

/// Our derivation (rust-bitcoin's `Xpub::derive_pub`) equals the threshold wallet's
/// (`mpc-core`, on `hd-wallet`), which is what the signing parties use.
#[test]
fn derivation_equals_mpc_core() {
    let w = TestWallet::default();
    let root = w.keys.root_public_key().serialize();
    let chain_code = *w.root.chain_code.as_bytes();
    let point = mpc_core::Point::from_bytes(root).unwrap();
    for p in [
        "m",
        "m/0",
        "m/1/2",
        "m/84/0/0/0/5",
        "m/84/1/0/1/9",
        "m/44/60/0/0/7",
        "m/2147483647/0",
    ] {
        let theirs = mpc_core::hd::derive_public_key(
            &point,
            &chain_code,
            &mpc_core::hd::DerivationPath::parse(p).unwrap(),
        )
        .unwrap();
        let ours = w.keys.public_key(&parse_path(p).unwrap()).unwrap();
        assert_eq!(
            theirs.to_bytes(true).as_ref(),
            ours.serialize().as_slice(),
            "{p}"
        );
        // And our path text is what mpc-core parses.
        assert_eq!(
            mpc_core::hd::DerivationPath::parse(&path_string(&parse_path(p).unwrap()))
                .unwrap()
                .to_string(),
            p
        );
    }
}

#[test]
fn addresses_on_every_network() {
    let keys = tv1_keys();
    let p = parse_path("m/84/0/0/0/0").unwrap();
    let expected = [
        (Network::Mainnet, "bc1q"),
        (Network::Testnet, "tb1q"),
        (Network::Signet, "tb1q"),
        (Network::Regtest, "bcrt1q"),
    ];
    let mut programs = Vec::new();
    for (network, prefix) in expected {
        let a = keys.address(&p, network).unwrap();
        let text = a.to_string();
        assert!(text.starts_with(prefix), "{network}: {text}");
        // The address parses back on its own network only.
        let back = bitcoin::Address::from_str(&text).unwrap();
        assert!(back.is_valid_for_network(network.to_bitcoin()));
        if network == Network::Mainnet {
            assert!(!back.is_valid_for_network(bitcoin::Network::Regtest));
        }
        programs.push(a.script_pubkey());
        let x = keys.xpub(&p, network).unwrap().to_string();
        assert!(x.starts_with(if network == Network::Mainnet {
            "xpub"
        } else {
            "tpub"
        }));
    }
    // Same key, same script everywhere.
    assert!(programs.windows(2).all(|w| w[0] == w[1]));
    // Different paths, different addresses.
    assert_ne!(
        keys.address(&parse_path("m/84/0/0/0/1").unwrap(), Network::Mainnet)
            .unwrap(),
        keys.address(&p, Network::Mainnet).unwrap()
    );
    // Hardened steps are refused, as a path and inside a `bitcoin` path value.
    let hardened = bitcoin::bip32::DerivationPath::from_str("m/84'/0'/0'").unwrap();
    assert!(matches!(
        keys.address(&hardened, Network::Mainnet),
        Err(BtcError::HardenedPath { .. })
    ));
    assert!(matches!(
        keys.descriptors(&hardened, Network::Mainnet),
        Err(BtcError::HardenedPath { .. })
    ));
}
