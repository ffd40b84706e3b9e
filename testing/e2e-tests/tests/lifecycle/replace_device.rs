//! Issue 17 items 4 and 5 natively, across real processes (sign-gateway + sign-service;
//! the client as the `client` binary and as the `mpc-client` library), as two steps of
//! the one wallet scenario of `e2e.rs` (a wallet creation costs minutes of aux info):
//!
//! 1. [`refresh_keeps_every_address`], while the device is in use: a proactive refresh
//!    (library: `MpcClient::refresh_shares`) moves every share to epoch 1 with
//!    addresses and xpub unchanged and signing working; the epoch-0 device share with
//!    an epoch-1 share does not sign.
//! 2. [`replace_the_lost_device`], after the scenario revoked the lost device: the
//!    device is replaced (`client replace-device`); the old device stays refused; the
//!    new device signs with the cosigner and, with the recovery party, without it; the
//!    old device's shares (epochs 0 and 1) with a new share do not sign; addresses and
//!    xpub unchanged. Then the new group refreshes once more through the binary
//!    (`client refresh`) and `client resume` finds nothing pending; last, the states a
//!    crash can leave: a pending file the cosigner committed is promoted by the next
//!    command, one it did not is kept until its session expires, then deleted (the
//!    current shares sign throughout).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use e2e_tests::*;
use mpc_client::{new_mpc_client, DigestKind, MpcConfig};
use mpc_core::keystore::KeyShareBundle;

const NEW_DEVICE_PASS: &str = "e2e new device passphrase";
const PATH: &str = "m/44/60/0/0/0";

fn step(name: &str) {
    eprintln!("\n[e2e lifecycle] ===== {name}");
}

fn epoch_of(path: &Path, pass: &str) -> Result<u64> {
    Ok(KeyShareBundle::load(path, pass)?.share_epoch)
}

/// The addresses and xpub the wallet shows through `args` (its share file options).
fn public_view(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    args: &[&str],
) -> Result<(serde_json::Value, serde_json::Value)> {
    let with = |more: &[&str]| {
        let mut v = args.to_vec();
        v.extend_from_slice(more);
        client(bins, dir, cosigner, &v)
    };
    let addr = with(&["address", "--path", PATH])?.ok()?;
    let desc = with(&["btc", "descriptor", "--network", "testnet"])?.ok()?;
    Ok((addr, desc["xpub"].clone()))
}

fn no_pending(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().to_string();
        ensure!(!name.contains(".pending"), "a pending file is left: {name}");
    }
    Ok(())
}

/// What the refresh step leaves for the replacement step.
pub struct Refreshed {
    wallet_id: String,
    account: String,
    /// The address at [`PATH`] and the account's testnet xpub, before any lifecycle.
    view: (serde_json::Value, serde_json::Value),
    address: String,
    /// A copy of the device's epoch-0 file.
    epoch0_device: PathBuf,
    /// The library configuration of both user parties' files.
    cfg: MpcConfig,
}

/// Step 1: a refresh while the device is in use (see the module's documentation).
pub fn refresh_keeps_every_address(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    wallet_id: &str,
    account: &str,
) -> Result<Refreshed> {
    let run = |args: &[&str]| client(bins, dir, cosigner, args);
    let device_file = dir.join("client_key_shares.json");
    let recovery_file = dir.join("recovery_key_shares.json");
    let (addr0, xpub0) = public_view(bins, dir, cosigner, &[])?;
    let address = addr0["ethereum_address"]
        .as_str()
        .context("address")?
        .to_string();
    ensure!(epoch_of(&device_file, DEVICE_PASS)? == 0);
    let old_device_copy = dir.join("old-device-epoch0.json");
    std::fs::copy(&device_file, &old_device_copy)?;

    step("refresh (library): both user parties confirm, the cosigner commits epoch 1");
    let mut cfg = MpcConfig::new(device_file.display().to_string(), DEVICE_PASS);
    cfg.cosigner_url = cosigner.to_string();
    cfg.recovery_path = Some(recovery_file.display().to_string());
    cfg.recovery_passphrase = Some(RECOVERY_PASS.into());
    cfg.insecure_fast_kdf = true;
    let rt = tokio::runtime::Runtime::new()?;
    let t = Instant::now();
    let refreshed = rt.block_on(new_mpc_client(cfg.clone())?.refresh_shares(None))?;
    eprintln!(
        "[e2e lifecycle] refresh (1 account, 3 parties): {} ms",
        t.elapsed().as_millis()
    );
    ensure!(refreshed.epoch == 1, "{refreshed:?}");
    ensure!(epoch_of(&device_file, DEVICE_PASS)? == 1);
    ensure!(epoch_of(&recovery_file, RECOVERY_PASS)? == 1);
    no_pending(dir)?;
    ensure!(
        public_view(bins, dir, cosigner, &[])? == (addr0.clone(), xpub0.clone()),
        "addresses or xpub changed by the refresh"
    );
    let sig = run(&["sign-message", "--path", PATH, "after refresh"])?.ok()?;
    verify_eth_signature(&eip191("after refresh"), &sig, &address)?;
    // The pre-refresh device share with the refreshed recovery share: no signature.
    let mut mixed = cfg.clone();
    mixed.key_share_path = old_device_copy.display().to_string();
    let r = rt.block_on(new_mpc_client(mixed)?.offline_sign(
        account.to_string(),
        PATH.into(),
        eip191("mixed"),
        DigestKind::Keccak256,
        mpc_client::ChainStyle::Legacy,
    ));
    ensure!(r.is_err(), "an epoch-0 share signed with an epoch-1 share");

    Ok(Refreshed {
        wallet_id: wallet_id.to_string(),
        account: account.to_string(),
        view: (addr0, xpub0),
        address,
        epoch0_device: old_device_copy,
        cfg,
    })
}

/// Step 2: the lost device, revoked by the scenario, is replaced (see the module's
/// documentation).
pub fn replace_the_lost_device(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    before: &Refreshed,
) -> Result<()> {
    let run = |args: &[&str]| client(bins, dir, cosigner, args);
    let Refreshed {
        wallet_id,
        account,
        view,
        address,
        epoch0_device: old_device_copy,
        cfg,
    } = before;
    let (addr0, xpub0) = view;
    let device_file = dir.join("client_key_shares.json");
    let recovery_file = dir.join("recovery_key_shares.json");
    let new_dir = dir.join("new-device");
    std::fs::create_dir_all(&new_dir)?;
    let new_file = new_dir.join("client_key_shares.json");
    let new_file_arg = new_file.to_str().context("path")?.to_string();
    let pass_file = dir.join("new-device.pass");
    std::fs::write(&pass_file, NEW_DEVICE_PASS)?;
    let pass_arg = pass_file.to_str().context("path")?.to_string();
    // The new device's file and its own passphrase.
    let new_args = [
        "--share-file",
        new_file_arg.as_str(),
        "--passphrase-file",
        pass_arg.as_str(),
    ];
    let with_new = |more: &[&str]| client(bins, dir, cosigner, &[&new_args[..], more].concat());
    let rt = tokio::runtime::Runtime::new()?;
    ensure!(epoch_of(&device_file, DEVICE_PASS)? == 1);

    step("replace the device (CLI): recovery + cosigner rebuild its share for a new identity");
    let t = Instant::now();
    let mut cmd = client_command(
        bins,
        dir,
        cosigner,
        &[
            "replace-device",
            "--new-share-file",
            &new_file_arg,
            "--insecure-dev-primes",
            "--reason",
            "e2e: device lost",
        ],
    );
    cmd.env("WALLET_NEW_DEVICE_PASSPHRASE", NEW_DEVICE_PASS);
    let out = cmd.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "replace-device failed: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!(
        "[e2e lifecycle] replace-device (aux info + repair + refresh): {} ms",
        t.elapsed().as_millis()
    );
    let replaced: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .context("no output")?,
    )?;
    ensure!(replaced["epoch"] == 2, "{replaced}");
    ensure!(
        stderr.contains("[repair") && stderr.contains("[refresh"),
        "no session progress on stderr: {stderr}"
    );
    ensure!(epoch_of(&new_file, NEW_DEVICE_PASS)? == 2);
    ensure!(epoch_of(&recovery_file, RECOVERY_PASS)? == 2);
    ensure!(
        epoch_of(&device_file, DEVICE_PASS)? == 1,
        "the old device's file was touched"
    );
    no_pending(dir)?;
    no_pending(&new_dir)?;

    step("the old device is still refused");
    let r = run(&["sign-message", "--path", PATH, "old device"])?;
    ensure!(
        r.code == 4 && r.json()?["error"]["code"] == "unauthorized",
        "the old device was not refused: {r:?}"
    );

    step("the new device signs with the cosigner; addresses and xpub unchanged");
    ensure!(
        public_view(bins, dir, cosigner, &new_args)? == (addr0.clone(), xpub0.clone()),
        "addresses or xpub changed by the replacement"
    );
    let sig = with_new(&["sign-message", "--path", PATH, "new device"])?.ok()?;
    verify_eth_signature(&eip191("new device"), &sig, address)?;
    ensure!(sig["signers"] == serde_json::json!([0, 1]), "{sig}");
    let sig = with_new(&["offline-sign", "--path", PATH, "--message", "cli offline"])?.ok()?;
    verify_eth_signature(&eip191("cli offline"), &sig, address)?;
    ensure!(sig["signers"] == serde_json::json!([0, 2]), "{sig}");

    step("the new device + recovery sign without the cosigner; the old share with a new one does not");
    let mut offline = cfg.clone();
    offline.key_share_path = new_file.display().to_string();
    offline.passphrase = NEW_DEVICE_PASS.into();
    let sig = rt.block_on(new_mpc_client(offline)?.offline_sign_message(
        account.to_string(),
        PATH.into(),
        b"new device + recovery".to_vec(),
    ))?;
    ensure!(
        sig.ethereum_address.eq_ignore_ascii_case(address),
        "{sig:?}"
    );
    ensure!(sig.signers == vec![0, 2], "{sig:?}");
    for old in [&device_file, old_device_copy] {
        let mut mixed = cfg.clone();
        mixed.key_share_path = old.display().to_string();
        let r = rt.block_on(new_mpc_client(mixed)?.offline_sign_message(
            account.to_string(),
            PATH.into(),
            b"old + new".to_vec(),
        ));
        ensure!(
            r.is_err(),
            "the old device share {} signed with the new recovery share",
            old.display()
        );
    }

    step("the new group refreshes again (CLI) and nothing is left pending");
    let epoch2_new = dir.join("new-device-epoch2.json");
    std::fs::copy(&new_file, &epoch2_new)?;
    let r = with_new(&["refresh"])?.ok()?;
    ensure!(r["epoch"] == 3, "{r}");
    ensure!(epoch_of(&new_file, NEW_DEVICE_PASS)? == 3);
    no_pending(&new_dir)?;
    let settled = with_new(&["resume"])?.ok()?;
    ensure!(
        settled
            .as_array()
            .is_some_and(|v| v.iter().all(|s| s["outcome"] == "none")),
        "{settled}"
    );
    let sig = with_new(&["sign-message", "--path", PATH, "epoch 3"])?.ok()?;
    verify_eth_signature(&eip191("epoch 3"), &sig, address)?;

    step("crash after the commit, before the swap: the next command promotes the pending file");
    let sidecar = |epoch: u64, expires_at_ms: u64| {
        serde_json::json!({
            "format": mpc_client::lifecycle::PENDING_FORMAT,
            "wallet_id": wallet_id,
            "party_index": 0,
            "lifecycle_id": "crashed",
            "epoch": epoch,
            "expires_at_ms": expires_at_ms,
        })
        .to_string()
    };
    let pending = mpc_client::lifecycle::pending_path(&new_file);
    let pending_meta = mpc_client::lifecycle::pending_meta_path(&new_file);
    std::fs::rename(&new_file, &pending)?;
    std::fs::write(&pending_meta, sidecar(3, u64::MAX))?;
    std::fs::copy(&epoch2_new, &new_file)?;
    let sig = with_new(&["sign-message", "--path", PATH, "after a crash"])?.ok()?;
    verify_eth_signature(&eip191("after a crash"), &sig, address)?;
    ensure!(epoch_of(&new_file, NEW_DEVICE_PASS)? == 3, "not promoted");
    no_pending(&new_dir)?;

    step("an uncommitted pending file: kept while its session may commit, deleted once expired");
    let mut never = KeyShareBundle::load(&new_file, NEW_DEVICE_PASS)?;
    never.share_epoch = 4;
    never.save(
        &pending,
        NEW_DEVICE_PASS,
        mpc_core::keystore::KdfParams::insecure_for_tests(),
    )?;
    std::fs::write(&pending_meta, sidecar(4, u64::MAX))?;
    let kept = with_new(&["resume"])?.ok()?;
    ensure!(kept[0]["outcome"] == "kept", "{kept}");
    std::fs::write(&pending_meta, sidecar(4, 1))?;
    let dropped = with_new(&["resume"])?.ok()?;
    ensure!(dropped[0]["outcome"] == "discarded", "{dropped}");
    no_pending(&new_dir)?;
    ensure!(epoch_of(&new_file, NEW_DEVICE_PASS)? == 3);
    let sig = with_new(&["sign-message", "--path", PATH, "still epoch 3"])?.ok()?;
    verify_eth_signature(&eip191("still epoch 3"), &sig, address)?;
    Ok(())
}
