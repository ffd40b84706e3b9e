//! The store key from a file (`SIGN_SERVICE_STORE_KEY_FILE` / `store_key_file`): the
//! service starts with it, keeps the deprecated variable working with a warning, and
//! refuses two sources, an empty file and a wrong key.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
fn serve(mut c: Command, dir: &Path) -> (Child, String) {
    let log = dir.join("out.log");
    let _ = std::fs::remove_file(dir.join("port"));
    let f = std::fs::File::create(&log).expect("log");
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone().expect("clone")))
        .stderr(Stdio::from(f))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("port").exists() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no port file");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, std::fs::read_to_string(&log).unwrap_or_default())
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
