//! Backup and restore across real processes, a step of `wallet_lifecycle_across_processes`
//! (`tests/e2e.rs`, on its wallet: no wallet of its own). The wallet's device share is
//! exported with `client backup export` and restored with `client backup import` into
//! another directory (another device), where it signs with the cosigner: same account,
//! same address, the signature verified independently. On the way: the backup holds no
//! plaintext secret, an existing output file is never overwritten, a wrong backup
//! passphrase is refused with nothing written, re-importing the identical share is
//! accepted and writes nothing. (Another wallet's share in the way is refused naming both
//! wallets: `crates/mpc-client/tests/backup.rs`, on the dev wallet.)

use std::path::Path;

use anyhow::{ensure, Context, Result};
use e2e_tests::*;

const BACKUP_PASS: &str = "e2e backup passphrase";

fn step(name: &str) {
    eprintln!("\n[backup-e2e] ===== {name}");
}

fn backup_cmd(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    args: &[&str],
    pass: &str,
) -> Result<ClientRun> {
    let started = std::time::Instant::now();
    let out = client_command(bins, dir, cosigner, args)
        .env("WALLET_BACKUP_PASSPHRASE", pass)
        .output()
        .context("cannot run client")?;
    Ok(ClientRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        wall: started.elapsed(),
    })
}

fn listing(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() {
            v.push((p.display().to_string(), std::fs::read(&p)?));
        }
    }
    v.sort();
    Ok(v)
}

/// Exports the device share of the wallet in `old` (`wallet_id`, whose `account` has
/// `address` at its root), restores it in the empty directory `new` and signs there.
pub fn restore_on_a_new_device(
    bins: &Bins,
    cosigner: &str,
    old: &Path,
    new: &Path,
    wallet_id: &str,
    account: &str,
    address: &str,
) -> Result<()> {
    step("export the device share");
    let backup = old.join("device.backup");
    std::fs::create_dir_all(new)?;
    let out = backup_cmd(
        bins,
        old,
        cosigner,
        &["backup", "export", "--out", "device.backup"],
        BACKUP_PASS,
    )?
    .ok()?;
    ensure!(out["wallet_id"] == wallet_id, "{out}");
    let bytes = std::fs::read(&backup)?;
    // No plaintext secret: the device file's share scalar and identity secret are
    // nowhere in the backup (hex, either case).
    let share =
        mpc_core::keystore::KeyShareBundle::load(&old.join("client_key_shares.json"), DEVICE_PASS)?;
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    for a in share.accounts.values() {
        let x = serde_json::to_value(&a.share)?["x"]
            .as_str()
            .context("no x")?
            .to_lowercase();
        ensure!(
            x.len() == 64 && !text.contains(&x),
            "secret scalar in the backup"
        );
        let raw = hex::decode(&x)?;
        ensure!(
            !bytes.windows(32).any(|w| w == raw.as_slice()),
            "raw scalar in the backup"
        );
    }
    let id = share.identity_secret.clone().context("no identity")?;
    ensure!(
        !text.contains(&id.to_lowercase()),
        "identity secret in the backup"
    );
    // Existing output files are never overwritten.
    let again = backup_cmd(
        bins,
        old,
        cosigner,
        &["backup", "export", "--out", "device.backup"],
        BACKUP_PASS,
    )?;
    ensure!(
        again.code != 0 && again.json()?["error"]["code"] == "wallet_exists",
        "{again:?}"
    );

    step("wrong backup passphrase: refused, nothing written");
    let wrong = backup_cmd(
        bins,
        new,
        cosigner,
        &["backup", "import", backup.to_str().context("path")?],
        "not the backup passphrase",
    )?;
    ensure!(
        wrong.code == 1 && wrong.json()?["error"]["code"] == "wrong_passphrase",
        "{wrong:?}"
    );
    ensure!(
        listing(new)?.is_empty(),
        "files written after a wrong passphrase"
    );

    step("restore on the new device");
    let done = backup_cmd(
        bins,
        new,
        cosigner,
        &["backup", "import", backup.to_str().context("path")?],
        BACKUP_PASS,
    )?
    .ok()?;
    ensure!(
        done["wallet_id"] == wallet_id && done["already_present"] == false,
        "{done}"
    );
    let before = listing(new)?;
    let again = backup_cmd(
        bins,
        new,
        cosigner,
        &["backup", "import", backup.to_str().context("path")?],
        BACKUP_PASS,
    )?
    .ok()?;
    ensure!(again["already_present"] == true, "{again}");
    ensure!(listing(new)? == before, "the identical re-import wrote");

    step("the restored device signs with the cosigner, same address");
    let accounts = client(bins, new, cosigner, &["list-accounts"])?.ok()?;
    ensure!(accounts[0]["ethereum_address"] == address, "{accounts}");
    let msg = "signed after a restore";
    let sig = client(
        bins,
        new,
        cosigner,
        &["sign-message", "--account", account, msg],
    )?
    .ok()?;
    ensure!(sig["ethereum_address"] == address, "{sig}");
    verify_eth_signature(&eip191(msg), &sig, address)?;

    Ok(())
}
