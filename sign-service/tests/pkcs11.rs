//! The store key in an HSM: a real PKCS#11 token (Debian's SoftHSM, a token made for
//! the test in a temporary directory) holds a non-extractable AES key that wraps the
//! store's data key. The service starts with the token, the store moves from the token
//! to a hex key and back (`store rekey`) keeping its identity, and a wrong PIN, a
//! missing key label and a store opened without the token are refused, saying why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use gateway_tests::process::TempDir;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "wallet-mpc-test";
const PIN: &str = "123456";
const KEY_LABEL: &str = "store-wrapping-key";
const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A SoftHSM configuration and token of our own (never the machine's), with the
/// wrapping key generated on the token (non-extractable).
fn token(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("conf");
    // This test binary has one test: the variable is ours.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            PIN,
            "--so-pin",
            "654321",
        ])
        .output()
        .expect("softhsm2-util (Debian softhsm2; scripts/setup.sh native installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx = Pkcs11::new(MODULE).expect("load SoftHSM");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("initialize");
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).expect("info").label().trim_end() == TOKEN)
        .expect("our token");
    let session = ctx.open_rw_session(slot).expect("session");
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .expect("login");
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32u64.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(KEY_LABEL.as_bytes().to_vec()),
            ],
        )
        .expect("generate the wrapping key");
    drop(session);
    ctx.finalize().expect("finalize");
    conf
}

fn command(dir: &Path, conf: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sign-service"));
    c.env("SIGN_SERVICE_PORT", "0")
        .env("SIGN_SERVICE_KEY_STORE", dir.join("store.redb"))
        .env("SIGN_SERVICE_AUDIT_LOG", dir.join("audit.jsonl"))
        .env("SOFTHSM2_CONF", conf)
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .env_remove("SIGN_SERVICE_STORE_KEY_FILE")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE_FILE")
        .env_remove("SIGN_SERVICE_CONFIG")
        .stdin(Stdio::null());
    c
}

fn with_token(c: &mut Command, pin_file: &Path, key_label: &str) {
    c.env("SIGN_SERVICE_STORE_PKCS11_MODULE", MODULE)
        .env("SIGN_SERVICE_STORE_PKCS11_TOKEN", TOKEN)
        .env("SIGN_SERVICE_STORE_PKCS11_KEY_LABEL", key_label)
        .env("SIGN_SERVICE_STORE_PKCS11_PIN_FILE", pin_file);
}

/// Starts the service, waits for its port file, stops it; returns its log.
fn serve_once(mut c: Command, dir: &Path) -> String {
    let port = dir.join("port");
    c.arg("--port-file").arg(&port);
    let (mut child, log) = crate::common::spawn_listening(c, &port, &dir.join("out.log"));
    let _ = child.kill();
    let _ = child.wait();
    log
}

fn run(mut c: Command) -> (bool, String, String) {
    let out = c.output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn identity(dir: &Path, source: &sign_service::store::KeySource) -> String {
    sign_service::store::Store::open(&dir.join("store.redb"), source)
        .expect("open")
        .load_or_create_identity()
        .expect("identity")
        .public()
        .to_string()
}

#[test]
fn the_store_key_is_wrapped_on_a_pkcs11_token_and_rekeys_across_sources() {
    let dir = TempDir::new("sign-service-pkcs11").expect("tempdir");
    let d = &dir.0;
    let conf = token(d);
    let pin = secret(d, "pin", PIN);
    let wrong_pin = secret(d, "wrong-pin", "000000");
    let hex = secret(d, "hex.key", HEX);

    // A new store under the token: the service starts and creates its identity.
    let mut c = command(d, &conf);
    with_token(&mut c, &pin, KEY_LABEL);
    serve_once(c, d);
    let token_source = || {
        sign_service::store::KeySource::Pkcs11(sign_service::pkcs11::Pkcs11Key {
            module: MODULE.into(),
            token_label: TOKEN.into(),
            key_label: KEY_LABEL.into(),
            pin: PIN.to_string().into(),
        })
    };
    let id = identity(d, &token_source());

    // Without the token, or with a wrong PIN or key label: refused, saying why.
    let mut c = command(d, &conf);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &hex)
        .arg("--port-file")
        .arg(d.join("never"));
    let (ok, _, err) = run(c);
    assert!(!ok);
    assert!(err.contains("store key does not open"), "{err}");
    let mut c = command(d, &conf);
    with_token(&mut c, &wrong_pin, KEY_LABEL);
    c.arg("--port-file").arg(d.join("never"));
    let (ok, _, err) = run(c);
    assert!(!ok);
    assert!(err.contains("C_Login"), "{err}");
    let mut c = command(d, &conf);
    with_token(&mut c, &pin, "no-such-key");
    c.arg("--port-file").arg(d.join("never"));
    let (ok, _, err) = run(c);
    assert!(!ok);
    assert!(err.contains("no AES key labelled"), "{err}");

    // Token → hex key.
    let mut c = command(d, &conf);
    with_token(&mut c, &pin, KEY_LABEL);
    c.args(["store", "rekey", "--new-key-file"]).arg(&hex);
    let (ok, out, err) = run(c);
    assert!(ok, "{err}");
    assert!(out.contains("\"key_source\":\"hex\""), "{out}");
    assert_eq!(
        identity(
            d,
            &sign_service::store::KeySource::Hex(HEX.to_string().into())
        ),
        id
    );
    // Hex key → back to the token (a fresh data key wrapped there).
    let mut c = command(d, &conf);
    with_token(&mut c, &pin, KEY_LABEL);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &hex)
        .args(["store", "rekey", "--new-pkcs11"]);
    let (ok, out, err) = run(c);
    assert!(ok, "{err}");
    assert!(out.contains("\"key_source\":\"pkcs11\""), "{out}");
    let mut c = command(d, &conf);
    with_token(&mut c, &pin, KEY_LABEL);
    serve_once(c, d);
    assert_eq!(identity(d, &token_source()), id);
    assert!(
        sign_service::store::Store::open(
            &d.join("store.redb"),
            &sign_service::store::KeySource::Hex(HEX.to_string().into())
        )
        .is_err(),
        "the old hex key still opens the store"
    );
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).expect("audit");
    assert_eq!(audit.matches("\"store_rekey\"").count(), 2, "{audit}");
}
