//! The store key from a file (`SIGN_SERVICE_STORE_KEY_FILE` / `store_key_file`): the
//! service starts with it, keeps the deprecated variable working with a warning, and
//! refuses two sources, an empty file and a wrong key.

use std::path::Path;
use std::process::{Child, Command};

use gateway_tests::process::TempDir;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sign-service"));
    c.env("SIGN_SERVICE_PORT", "0")
        .env("SIGN_SERVICE_KEY_STORE", dir.join("store.redb"))
        .env("SIGN_SERVICE_AUDIT_LOG", dir.join("audit.jsonl"))
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .env_remove("SIGN_SERVICE_STORE_KEY_FILE")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE_FILE")
        .env_remove("SIGN_SERVICE_CONFIG")
        .arg("--port-file")
        .arg(dir.join("port"));
    c
}

/// Starts the service; returns it once its port file exists, with its log so far.
fn serve(c: Command, dir: &Path) -> (Child, String) {
    crate::common::spawn_listening(c, &dir.join("port"), &dir.join("out.log"))
}

fn refused(mut c: Command) -> String {
    let out = c.output().expect("run");
    assert!(!out.status.success(), "started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_store_key_comes_from_a_file() {
    let dir = TempDir::new("sign-service-keyfile").expect("tempdir");
    let d = dir.0.as_path();
    let key_file = d.join("store.key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &key_file);
    let (mut child, log) = serve(c, d);
    assert!(!log.contains("deprecated"), "{log}");
    child.kill().expect("kill");
    child.wait().expect("wait");

    // The deprecated variable still opens the same store, with a warning.
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_KEY", KEY);
    let (mut child, log) = serve(c, d);
    assert!(
        log.contains("SIGN_SERVICE_STORE_KEY is deprecated") && log.contains("/proc/<pid>/environ"),
        "{log}"
    );
    child.kill().expect("kill");
    child.wait().expect("wait");

    // Two sources, an empty file, a wrong key: refused with a message.
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &key_file)
        .env("SIGN_SERVICE_STORE_KEY", KEY);
    assert!(refused(c).contains("more than once"));
    let empty = d.join("empty.key");
    std::fs::write(&empty, "\n").expect("write");
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &empty);
    assert!(refused(c).contains("is empty"));
    let wrong = d.join("wrong.key");
    std::fs::write(&wrong, KEY.replace('0', "1")).expect("write");
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &wrong);
    assert!(refused(c).contains("does not open this key store"));
}

/// `sign-service store rekey`: the store moves from the hex key to a passphrase (and
/// back to another hex key), the service then starts with the new key only and keeps
/// its identity, the audit log records each rotation, and a rekey with a wrong old key
/// or without a new one fails saying so, changing nothing.
#[test]
fn store_rekey_rotates_the_key_across_key_sources() {
    let dir = TempDir::new("sign-service-rekey").expect("tempdir");
    let d = &dir.0;
    let old = d.join("old.key");
    std::fs::write(&old, format!("{KEY}\n")).expect("key");
    let pass = d.join("new.pass");
    std::fs::write(&pass, "a long new store passphrase\n").expect("pass");
    let newer = d.join("newer.key");
    std::fs::write(&newer, format!("{}\n", "ab".repeat(32))).expect("key");
    for f in [&old, &pass, &newer] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // A store with an identity under the old key (the service ran once).
    let (mut child, _) = serve(
        {
            let mut c = command(d);
            c.env("SIGN_SERVICE_STORE_KEY_FILE", &old);
            c
        },
        d,
    );
    let _ = child.kill();
    let _ = child.wait();
    let identity_before = {
        let s = sign_service::store::Store::open(
            &d.join("store.redb"),
            &sign_service::store::KeySource::Hex(KEY.to_string().into()),
        )
        .expect("open with the old key");
        s.load_or_create_identity().expect("identity").public()
    };

    let rekey = |key_env: &Path, new_flag: &str, new_file: &Path| {
        let mut c = command(d);
        c.env("SIGN_SERVICE_STORE_KEY_FILE", key_env)
            .args(["store", "rekey", new_flag])
            .arg(new_file);
        c.output().expect("run rekey")
    };
    // Without a new key: refused, nothing changes.
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_KEY_FILE", &old)
        .args(["store", "rekey"]);
    let out = c.output().expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--new-key-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Hex → passphrase.
    let out = rekey(&old, "--new-passphrase-file", &pass);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    assert_eq!(line["key_source"], "passphrase");
    assert!(line["records"].as_u64().unwrap_or(0) >= 2, "{line}");
    // The old key is refused now, by the service and by another rekey.
    let msg = refused({
        let mut c = command(d);
        c.env("SIGN_SERVICE_STORE_KEY_FILE", &old);
        c
    });
    assert!(msg.contains("wrong") || msg.contains("key"), "{msg}");
    let out = rekey(&old, "--new-key-file", &newer);
    assert!(!out.status.success(), "rekeyed with the old key");
    // Passphrase → another hex key; the service starts with it, same identity.
    let out = rekey(&pass, "--new-key-file", &newer);
    // (the passphrase goes through the passphrase-file variable)
    assert!(
        !out.status.success(),
        "a passphrase file given as a key file"
    );
    let mut c = command(d);
    c.env("SIGN_SERVICE_STORE_PASSPHRASE_FILE", &pass)
        .args(["store", "rekey", "--new-key-file"])
        .arg(&newer);
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut child, _) = serve(
        {
            let mut c = command(d);
            c.env("SIGN_SERVICE_STORE_KEY_FILE", &newer);
            c
        },
        d,
    );
    let _ = child.kill();
    let _ = child.wait();
    let s = sign_service::store::Store::open(
        &d.join("store.redb"),
        &sign_service::store::KeySource::Hex("ab".repeat(32).into()),
    )
    .expect("open with the newest key");
    assert_eq!(
        s.load_or_create_identity().expect("identity").public(),
        identity_before
    );
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).expect("audit");
    assert_eq!(audit.matches("\"store_rekey\"").count(), 2, "{audit}");
}
