//! `key-gen` and `local-sign` as a user runs them: real processes, real files.

use std::path::Path;
use std::process::{Command, Output};

const KEY_GEN: &str = env!("CARGO_BIN_EXE_key-gen");
const LOCAL_SIGN: &str = env!("CARGO_BIN_EXE_local-sign");

fn run(bin: &str, dir: &Path, args: &[&str], pass: [&str; 3]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("WALLET_CLIENT_PASSPHRASE", pass[0])
        .env("WALLET_SERVICE_PASSPHRASE", pass[1])
        .env("WALLET_RECOVERY_PASSPHRASE", pass[2])
        .output()
        .expect("run binary")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const PASS: [&str; 3] = ["device pw", "service pw", "recovery pw"];

#[test]
fn dkg_shares_sign_with_any_two_and_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Missing passphrase: refused before any work.
    let o = Command::new(KEY_GEN)
        .arg("--insecure-dev-primes")
        .current_dir(d)
        .env_remove("WALLET_CLIENT_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("WALLET_CLIENT_PASSPHRASE"),
        "{}",
        text(&o)
    );

    // The public fixture primes are refused without the explicit flag, even renamed.
    let fixture = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../mpc-core/fixtures/dev-primes.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    v["insecure_public_fixture"] = false.into();
    std::fs::write(d.join("primes.json"), v.to_string()).unwrap();
    let o = run(KEY_GEN, d, &["--primes", "primes.json"], PASS);
    assert!(!o.status.success());
    assert!(text(&o).contains("PUBLIC test primes"), "{}", text(&o));
    // Missing primes file.
    let o = run(KEY_GEN, d, &["--primes", "nope.json"], PASS);
    assert!(
        !o.status.success() && text(&o).contains("nope.json"),
        "{}",
        text(&o)
    );

    // Real DKG for two accounts.
    let o = run(
        KEY_GEN,
        d,
        &[
            "--primes",
            "primes.json",
            "--insecure-dev-primes",
            "--accounts",
            "2",
            "--insecure-fast-kdf",
        ],
        PASS,
    );
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "client_key_shares.json",
        "service_key_shares.json",
        "recovery_key_shares.json",
    ] {
        let t = std::fs::read_to_string(d.join(f)).unwrap();
        assert!(t.contains("\"format\": \"wallet-mpc/key-shares\""), "{f}");
        assert!(
            !t.contains("aux_info") && !t.contains("account-0"),
            "{f} must be encrypted"
        );
    }
    // No overwrite without --force.
    let o = run(KEY_GEN, d, &["--insecure-dev-primes"], PASS);
    assert!(
        !o.status.success() && text(&o).contains("--force"),
        "{}",
        text(&o)
    );

    // Every pair signs; each signature is verified and ecrecovered by local-sign.
    let pairs = [
        (
            "client_key_shares.json",
            "service_key_shares.json",
            "account-0",
        ),
        (
            "client_key_shares.json",
            "recovery_key_shares.json",
            "account-0",
        ),
        (
            "service_key_shares.json",
            "recovery_key_shares.json",
            "account-1",
        ),
    ];
    let mut addresses = Vec::new();
    for (a, b, acct) in pairs {
        let o = run(
            LOCAL_SIGN,
            d,
            &[
                a,
                b,
                "--account",
                acct,
                "--path",
                "m/44/60/0/0/3",
                "--message",
                "hello",
            ],
            PASS,
        );
        assert!(o.status.success(), "{a}+{b}: {}", text(&o));
        assert!(text(&o).contains("verified     yes"), "{}", text(&o));
        let addr = text(&o)
            .lines()
            .find(|l| l.starts_with("address"))
            .unwrap()
            .to_string();
        addresses.push((acct, addr));
    }
    assert_eq!(
        addresses[0], addresses[1],
        "same account, same address whichever pair signs"
    );
    assert_ne!(
        addresses[0].1, addresses[2].1,
        "accounts are independent keys"
    );

    // Bad inputs: wrong passphrase, hardened path, unknown account, same party twice.
    let o = run(
        LOCAL_SIGN,
        d,
        &[
            "client_key_shares.json",
            "service_key_shares.json",
            "--message",
            "x",
        ],
        ["wrong", PASS[1], PASS[2]],
    );
    assert!(
        !o.status.success() && text(&o).contains("wrong passphrase"),
        "{}",
        text(&o)
    );
    let o = run(
        LOCAL_SIGN,
        d,
        &[
            "client_key_shares.json",
            "service_key_shares.json",
            "--path",
            "m/44'/60",
            "--message",
            "x",
        ],
        PASS,
    );
    assert!(
        !o.status.success() && text(&o).contains("hardened"),
        "{}",
        text(&o)
    );
    let o = run(
        LOCAL_SIGN,
        d,
        &[
            "client_key_shares.json",
            "service_key_shares.json",
            "--account",
            "nope",
            "--message",
            "x",
        ],
        PASS,
    );
    assert!(
        !o.status.success() && text(&o).contains("not found"),
        "{}",
        text(&o)
    );
    let o = run(
        LOCAL_SIGN,
        d,
        &[
            "client_key_shares.json",
            "client_key_shares.json",
            "--message",
            "x",
        ],
        PASS,
    );
    assert!(
        !o.status.success() && text(&o).contains("different parties"),
        "{}",
        text(&o)
    );
    std::fs::write(
        d.join("garbage.json"),
        "{\"party_index\": 0, \"format\": \"x\"}",
    )
    .unwrap();
    let o = run(
        LOCAL_SIGN,
        d,
        &["client_key_shares.json", "garbage.json", "--message", "x"],
        PASS,
    );
    assert!(
        !o.status.success() && text(&o).contains("garbage.json"),
        "{}",
        text(&o)
    );
}

#[test]
fn import_hex_keeps_the_address_of_the_imported_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = "0000000000000000000000000000000000000000000000000000000000000001";
    let o = run(
        KEY_GEN,
        d,
        &[
            "--insecure-dev-primes",
            "--import-hex",
            key,
            "--insecure-fast-kdf",
        ],
        PASS,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("trusted dealer"),
        "the SPOF warning is shown"
    );
    // Private key 1's well-known address.
    assert!(
        text(&o).contains("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"),
        "{}",
        text(&o)
    );
    let o = run(
        LOCAL_SIGN,
        d,
        &[
            "service_key_shares.json",
            "recovery_key_shares.json",
            "--message",
            "imported",
        ],
        PASS,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"),
        "{}",
        text(&o)
    );
    // Bad key material.
    let o = run(
        KEY_GEN,
        d,
        &[
            "--insecure-dev-primes",
            "--import-hex",
            "zz",
            "--out-dir",
            "sub",
        ],
        PASS,
    );
    assert!(
        !o.status.success() && text(&o).contains("not hex"),
        "{}",
        text(&o)
    );
}
