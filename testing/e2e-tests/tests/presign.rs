//! Presignature pools across real processes: `sign-gateway` + `sign-service` + `client`,
//! one wallet of INDEPENDENT accounts (created once, reused by every step):
//!
//! 1. an empty pool falls back to full signing;
//! 2. refill, then sign from the pool (message, EIP-1559 tx, raw double SHA-256), every
//!    signature verified independently; the presignature is gone on both sides;
//! 3. a replayed SignWithPresignature with the same id is refused (`used`), an unknown
//!    id too (`unknown`); policy still applies on the fast path;
//! 4. wrong account / derivation path on the fast path: clear errors;
//! 5. the cosigner's pool cap is enforced;
//! 6. the cosigner's answer to a SignWithPresignature is lost: after a restart that
//!    presignature is never used again, and the client whose copy is then refused
//!    falls back to full signing (the SIGKILL between the take and the answer is
//!    `sign-service/tests/presign.rs`, which builds the cosigner with its test hooks);
//! 7. recovery + cosigner use their own pool.
//!
//! Run: `cargo test -p e2e-tests --test integration presign:: -- --nocapture`.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cosigner_api::{auth, pb};
use e2e_tests::*;

const ETH: u128 = 1_000_000_000_000_000_000;
/// The cosigner's per-account cap in this test.
const CAP: u32 = 5;

fn step(name: &str) {
    eprintln!("\n[presign-e2e] ===== {name}");
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn service_config(gateway_url: &str, dir: &Path, port: u16) -> ServiceConfig {
    ServiceConfig {
        port,
        gateway_url: gateway_url.to_string(),
        data_dir: dir.to_path_buf(),
        // Raw preimages are refused by default: this scenario signs one from the pool
        // (double SHA-256), so its wallets opt in (see `raw_payload_policy_yaml`).
        max_value_per_tx_wei: None,
        session_timeout_secs: 60,
        extra_yaml: format!(
            "presign_pool_cap: {CAP}\npresign_workers: 2\npresign_max_per_request: 8\n{}",
            raw_payload_policy_yaml(ETH)
        ),
    }
}

#[test]
fn presignature_pools_across_processes() -> Result<()> {
    let total = Instant::now();
    let bins = bins()?;
    let root = TempDir::new("wallet-presign-e2e")?;
    let gw_dir = root.0.join("gateway");
    let client_dir = root.0.join("client");
    let svc_dir = root.0.join("service");
    for d in [&gw_dir, &client_dir, &svc_dir] {
        std::fs::create_dir_all(d)?;
    }
    let (_gateway, gateway_url) = start_gateway(&bins, &gw_dir)?;
    let mut svc_cfg = service_config(&gateway_url, &svc_dir, 0);
    let mut service = start_service(&bins, &mut svc_cfg)?;
    let cosigner = svc_cfg.url();
    let result = scenario(&bins, &client_dir, &cosigner, &mut svc_cfg, &mut service);
    if let Err(e) = &result {
        eprintln!(
            "[presign-e2e] FAILED: {e:#}\n--- sign-service log (tail) ---\n{}",
            tail(&service.output(), 60)
        );
    }
    result?;
    eprintln!(
        "[presign-e2e] whole scenario {:.1}s",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

/// An HD account across real processes: `client presign refill --path` fills the pool of
/// one BIP-44 path on both sides; `client sign-message --path` signs from it, verified
/// against the DERIVED address (not the root's); each presignature is used once on each
/// side; the cosigner refuses a SignWithPresignature at another path than the
/// presignature's (the attack: policy judging one address, the key of another signing)
/// without consuming it; a path with no pool falls back to full signing.
#[test]
fn hd_presignature_pools_across_processes() -> Result<()> {
    let bins = bins()?;
    let root = TempDir::new("wallet-presign-hd-e2e")?;
    let gw_dir = root.0.join("gateway");
    let dir = root.0.join("client");
    let svc_dir = root.0.join("service");
    for d in [&gw_dir, &dir, &svc_dir] {
        std::fs::create_dir_all(d)?;
    }
    let (_gateway, gateway_url) = start_gateway(&bins, &gw_dir)?;
    let mut svc_cfg = service_config(&gateway_url, &svc_dir, 0);
    let service = start_service(&bins, &mut svc_cfg)?;
    let cosigner = svc_cfg.url();
    let result = (|| -> Result<()> {
        let run = |args: &[&str]| client(&bins, &dir, &cosigner, args);
        step("HD wallet; the pool of m/44/60/0/0/3");
        let w = run(&[
            "create-wallet",
            "--kind",
            "hd",
            "--accounts",
            "1",
            "--insecure-dev-primes",
        ])?
        .ok()?;
        ensure!(w["accounts"][0]["kind"] == "hd", "{w}");
        let account = w["accounts"][0]["account_id"]
            .as_str()
            .context("account")?
            .to_string();
        let root_address = w["accounts"][0]["ethereum_address"]
            .as_str()
            .context("address")?
            .to_string();
        let path = "m/44/60/0/0/3";
        let a = run(&["address", "--path", path])?.ok()?;
        let address = a["ethereum_address"]
            .as_str()
            .context("derived address")?
            .to_string();
        ensure!(address != root_address, "{a}");
        let s = run(&["presign", "refill", "--path", path, "--target", "2"])?.ok()?;
        ensure!(
            s["generated"] == 2 && s["local"] == 2 && s["usable"] == 2 && s["path"] == path,
            "{s}"
        );
        let raw = Raw::new(&dir, &cosigner, false)?;
        let remote = raw.cosigner_ids_at(&account, path)?;
        ensure!(remote.len() == 2, "{remote:?}");

        step("sign from the path's pool: the derived address signs");
        let m = "hd from the pool";
        let sig = run(&["--presign", "require", "sign-message", "--path", path, m])?.ok()?;
        ensure!(sig["presigned"] == true, "{sig}");
        verify_eth_signature(&eip191(m), &sig, &address)?;
        ensure!(
            verify_eth_signature(&eip191(m), &sig, &root_address).is_err(),
            "the root address verifies an HD presignature's signature"
        );
        let used = sig["session_id"].as_str().context("id")?.to_string();
        let remote = raw.cosigner_ids_at(&account, path)?;
        ensure!(!remote.contains(&used) && remote.len() == 1, "{remote:?}");
        let e = raw
            .sign_at(&account, path, &used, "again")?
            .err()
            .context("a used presignature signed again")?;
        ensure!(presign_error(&e) == "used", "{e:?}");

        step("the remaining presignature at another path: refused, not consumed");
        let left = remote[0].clone();
        for wrong in ["m/44/60/0/0/4", ""] {
            let e = raw
                .sign_at(&account, wrong, &left, "steal")?
                .err()
                .context("a presignature signed at another path")?;
            ensure!(e.code() == tonic::Code::InvalidArgument, "{wrong:?}: {e:?}");
            ensure!(
                raw.cosigner_ids_at(&account, path)? == vec![left.clone()],
                "refused at {wrong:?} and consumed"
            );
        }

        step("a path without a pool: require refuses, auto signs in full");
        let other = "m/44/60/0/0/4";
        let r = run(&["--presign", "require", "sign-message", "--path", other, "x"])?;
        ensure!(
            r.code != 0 && r.json()?["error"]["code"] == "presignature_unavailable",
            "require at a path without a pool: {r:?}"
        );
        let m = "hd full signing";
        let sig = run(&["sign-message", "--path", other, m])?.ok()?;
        ensure!(sig["presigned"] == false, "{sig}");
        let other_address = run(&["address", "--path", other])?.ok()?["ethereum_address"]
            .as_str()
            .context("address")?
            .to_string();
        verify_eth_signature(&eip191(m), &sig, &other_address)?;
        Ok(())
    })();
    if let Err(e) = &result {
        eprintln!(
            "[presign-e2e] FAILED: {e:#}\n--- sign-service log (tail) ---\n{}",
            tail(&service.output(), 60)
        );
    }
    result
}

/// Raw gRPC access to the cosigner as the device (or recovery).
struct Raw {
    rt: tokio::runtime::Runtime,
    url: String,
    key: mpc_wire::IdentityKey,
    wallet_id: String,
    party: u16,
    /// The cosigner's identity (party 1 of the bundle): the requests' audience.
    audience: mpc_wire::PublicIdentity,
}

impl Raw {
    fn new(dir: &Path, cosigner: &str, recovery: bool) -> Result<Self> {
        let (file, pass, party) = if recovery {
            ("recovery_key_shares.json", RECOVERY_PASS, 2)
        } else {
            ("client_key_shares.json", DEVICE_PASS, 0)
        };
        let (key, wallet_id) = party_identity(&dir.join(file), pass)?;
        let audience = mpc_core::keystore::KeyShareBundle::load(&dir.join(file), pass)?
            .peers
            .get(&1)
            .context("no cosigner identity in the bundle")?
            .parse()?;
        Ok(Raw {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            url: cosigner.to_string(),
            key,
            wallet_id,
            party,
            audience,
        })
    }

    fn grpc(&self) -> Result<pb::cosigner_client::CosignerClient<tonic::transport::Channel>> {
        Ok(self
            .rt
            .block_on(pb::cosigner_client::CosignerClient::connect(
                self.url.clone(),
            ))?)
    }

    /// The cosigner's pools of `account` (every path), as PresignPoolStatus reports them.
    fn cosigner_pools(&self, account: &str) -> Result<Vec<pb::PresignPool>> {
        let mut req = pb::PresignPoolStatusRequest {
            auth: None,
            account_id: account.to_string(),
        };
        auth::sign_request(
            &mut req,
            &self.key,
            &self.audience,
            &self.wallet_id,
            self.party,
        )?;
        let mut g = self.grpc()?;
        Ok(self
            .rt
            .block_on(g.presign_pool_status(req))?
            .into_inner()
            .pools)
    }

    fn cosigner_ids(&self, account: &str) -> Result<Vec<String>> {
        Ok(self
            .cosigner_pools(account)?
            .into_iter()
            .find(|p| p.account_id == account)
            .context("no pool")?
            .presignature_ids)
    }

    /// The ids of the cosigner's pool of `account` at `path` (an HD path; empty when it
    /// reports no such pool).
    fn cosigner_ids_at(&self, account: &str, path: &str) -> Result<Vec<String>> {
        Ok(self
            .cosigner_pools(account)?
            .into_iter()
            .find(|p| p.account_id == account && p.derivation_path == path)
            .map(|p| p.presignature_ids)
            .unwrap_or_default())
    }

    fn sign_req(
        &self,
        account: &str,
        id: &str,
        msg: &str,
    ) -> Result<pb::SignWithPresignatureRequest> {
        self.sign_req_at(account, "", id, msg)
    }

    fn sign_req_at(
        &self,
        account: &str,
        path: &str,
        id: &str,
        msg: &str,
    ) -> Result<pb::SignWithPresignatureRequest> {
        let mut req = pb::SignWithPresignatureRequest {
            auth: None,
            account_id: account.to_string(),
            presignature_id: id.to_string(),
            preimage: eip191(msg),
            digest: pb::DigestKind::Keccak256 as i32,
            payload_kind: pb::PayloadKind::EthereumMessage as i32,
            derivation_path: path.to_string(),
            ..Default::default()
        };
        auth::sign_request(
            &mut req,
            &self.key,
            &self.audience,
            &self.wallet_id,
            self.party,
        )?;
        Ok(req)
    }

    fn sign(
        &self,
        account: &str,
        id: &str,
        msg: &str,
    ) -> Result<std::result::Result<pb::SignWithPresignatureResponse, tonic::Status>> {
        let req = self.sign_req(account, id, msg)?;
        let mut g = self.grpc()?;
        Ok(self
            .rt
            .block_on(g.sign_with_presignature(req))
            .map(|r| r.into_inner()))
    }

    fn sign_at(
        &self,
        account: &str,
        path: &str,
        id: &str,
        msg: &str,
    ) -> Result<std::result::Result<pb::SignWithPresignatureResponse, tonic::Status>> {
        let req = self.sign_req_at(account, path, id, msg)?;
        let mut g = self.grpc()?;
        Ok(self
            .rt
            .block_on(g.sign_with_presignature(req))
            .map(|r| r.into_inner()))
    }

    fn start_presign(
        &self,
        account: &str,
        count: u32,
    ) -> Result<std::result::Result<pb::StartPresignResponse, tonic::Status>> {
        let mut req = pb::StartPresignRequest {
            auth: None,
            account_id: account.to_string(),
            count,
            release_ids: Vec::new(),
            derivation_path: String::new(),
        };
        auth::sign_request(
            &mut req,
            &self.key,
            &self.audience,
            &self.wallet_id,
            self.party,
        )?;
        let mut g = self.grpc()?;
        Ok(self
            .rt
            .block_on(g.start_presign(req))
            .map(|r| r.into_inner()))
    }
}

/// `unknown` / `used` from the cosigner's ErrorInfo (empty for other errors).
fn presign_error(s: &tonic::Status) -> String {
    let e = cosigner_api::RemoteError::from(s);
    if e.code != wallet_types::ErrorCode::PresignatureUnavailable {
        return String::new();
    }
    e.presignature.map(|p| p.to_string()).unwrap_or_default()
}

/// Local presignature ids of the device's (or recovery's) pool, oldest first.
fn local_ids(dir: &Path, cosigner: &str, account: &str, recovery: bool) -> Result<Vec<String>> {
    let mut cfg = mpc_client::MpcConfig::new(
        dir.join("client_key_shares.json").display().to_string(),
        DEVICE_PASS,
    );
    cfg.cosigner_url = cosigner.to_string();
    cfg.recovery_path = Some(dir.join("recovery_key_shares.json").display().to_string());
    cfg.recovery_passphrase = Some(RECOVERY_PASS.into());
    if recovery {
        cfg.role = mpc_client::PartyRole::Recovery;
    }
    let client = mpc_client::new_mpc_client(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(client.local_presignatures(account.to_string()))?)
}

fn scenario(
    bins: &Bins,
    dir: &Path,
    cosigner: &str,
    svc_cfg: &mut ServiceConfig,
    service: &mut Proc,
) -> Result<()> {
    let run = |args: &[&str]| client(bins, dir, cosigner, args);

    step("create a wallet of independent accounts (insecure dev primes)");
    let t = Instant::now();
    let w = run(&[
        "create-wallet",
        "--kind",
        "independent",
        "--accounts",
        "1",
        "--insecure-dev-primes",
    ])?
    .ok()?;
    eprintln!("[presign-e2e] created in {:.1}s", t.elapsed().as_secs_f64());
    ensure!(w["committed"] == true, "{w}");
    ensure!(w["accounts"][0]["kind"] == "independent", "{w}");
    let account = w["accounts"][0]["account_id"]
        .as_str()
        .context("account")?
        .to_string();
    let address = w["accounts"][0]["ethereum_address"]
        .as_str()
        .context("address")?
        .to_string();
    let raw = Raw::new(dir, cosigner, false)?;

    step("empty pool: signing falls back to full signing");
    let status = run(&["presign", "status"])?.ok()?;
    ensure!(status["local"] == 0 && status["cosigner"] == 0, "{status}");
    let m = "empty pool";
    let sig = run(&["sign-message", m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;
    ensure!(sig["presigned"] == false, "{sig}");
    let r = run(&["--presign", "require", "sign-message", m])?;
    ensure!(
        r.code != 0 && r.json()?["error"]["code"] == "presignature_unavailable",
        "require with an empty pool: {r:?}"
    );

    step("refill to 3, then sign from the pool");
    let t = Instant::now();
    let s = run(&["presign", "refill", "--target", "3"])?.ok()?;
    eprintln!(
        "[presign-e2e] refill of 3: {:.1}s ({s})",
        t.elapsed().as_secs_f64()
    );
    ensure!(
        s["generated"] == 3 && s["local"] == 3 && s["cosigner"] == 3 && s["usable"] == 3,
        "{s}"
    );
    let before = local_ids(dir, cosigner, &account, false)?;
    ensure!(before.len() == 3, "{before:?}");
    let m = "from the pool";
    let r = run(&["--presign", "require", "sign-message", m])?;
    let sig = r.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;
    ensure!(sig["presigned"] == true, "{sig}");
    ensure!(sig["signers"] == serde_json::json!([0, 1]), "{sig}");
    let used = sig["session_id"].as_str().context("id")?.to_string();
    ensure!(used == before[0], "the oldest presignature is used first");
    eprintln!(
        "[presign-e2e] fast-path sign: client-measured {} ms, process wall {:.0} ms",
        sig["elapsed_ms"],
        r.wall.as_secs_f64() * 1000.0
    );

    step("the used presignature is gone on both sides");
    let local = local_ids(dir, cosigner, &account, false)?;
    ensure!(!local.contains(&used) && local.len() == 2, "{local:?}");
    let remote = raw.cosigner_ids(&account)?;
    ensure!(!remote.contains(&used) && remote.len() == 2, "{remote:?}");
    let audit = std::fs::read_to_string(svc_cfg.audit_log())?;
    ensure!(
        audit.lines().any(|l| l.contains(&used)
            && l.contains("\"sign_request\"")
            && l.contains("\"allow\"")),
        "no sign_request audit record for {used}"
    );
    ensure!(
        audit
            .lines()
            .any(|l| l.contains(&used) && l.contains("partial signature issued")),
        "no sign_outcome audit record for {used}"
    );

    step("replayed SignWithPresignature with the same id, and an unknown id, are refused");
    let e = raw
        .sign(&account, &used, "replay")?
        .err()
        .context("a used presignature signed again")?;
    ensure!(
        e.code() == tonic::Code::FailedPrecondition && presign_error(&e) == "used",
        "replay: {e:?}"
    );
    let e = raw
        .sign(&account, "0123456789abcdef0123456789abcdef", "unknown")?
        .err()
        .context("an unknown presignature signed")?;
    ensure!(presign_error(&e) == "unknown", "unknown id: {e:?}");

    step("EIP-1559 transaction and raw double SHA-256 from the pool");
    let tx = eip1559(ETH / 2, 0);
    let sig = run(&["sign-tx", &hex::encode(&tx)])?.ok()?;
    verify_eth_signature(&tx, &sig, &address)?;
    ensure!(sig["presigned"] == true, "{sig}");
    let preimage = b"bitcoin sighash preimage stand-in".to_vec();
    let sig = run(&[
        "sign-raw",
        "--digest",
        "double_sha256",
        &hex::encode(&preimage),
    ])?
    .ok()?;
    ensure!(sig["presigned"] == true, "{sig}");
    verify_der_double_sha256(&preimage, &sig)?;

    step("policy applies on the fast path");
    ensure!(local_ids(dir, cosigner, &account, false)?.is_empty());
    run(&["presign", "refill", "--target", "2"])?.ok()?;
    let big = eip1559(2 * ETH, 1);
    let r = run(&["--presign", "require", "sign-tx", &hex::encode(&big)])?;
    ensure!(
        r.code == 3 && r.stderr.contains("max_value_per_tx"),
        "{r:?}"
    );

    step("wrong account and derivation path on the fast path: clear errors");
    let r = run(&[
        "--presign",
        "require",
        "sign-message",
        "--account",
        "nope",
        "x",
    ])?;
    ensure!(r.code != 0 && r.stderr.contains("unknown_account"), "{r:?}");
    let r = run(&["--presign", "require", "sign-message", "--path", "m/1", "x"])?;
    ensure!(
        r.code != 0 && r.stderr.contains("its presignature pool is at the root"),
        "{r:?}"
    );
    let e = raw
        .start_presign("nope", 1)?
        .err()
        .context("StartPresign on an unknown account")?;
    ensure!(e.code() == tonic::Code::NotFound, "{e:?}");
    let e = raw
        .sign("nope", &local_ids(dir, cosigner, &account, false)?[0], "x")?
        .err()
        .context("SignWithPresignature on an unknown account")?;
    ensure!(e.code() == tonic::Code::NotFound, "{e:?}");

    step(&format!("the cosigner's pool cap ({CAP}) is enforced"));
    let s = run(&["presign", "refill", "--target", "20"])?.ok()?;
    // The policy refusal above consumed the device's copy of one presignature: the
    // refill releases the cosigner's orphan, then fills up to the cap.
    ensure!(s["cosigner"] == CAP && s["local"] == CAP, "{s}");
    ensure!(
        u64::from(CAP) == s["cosigner_cap"].as_u64().unwrap_or(0),
        "{s}"
    );
    let e = raw
        .start_presign(&account, 1)?
        .err()
        .context("StartPresign above the cap")?;
    ensure!(
        e.code() == tonic::Code::ResourceExhausted && e.message().contains("cap"),
        "{e:?}"
    );

    step("the cosigner's answer is lost after it consumed a presignature; then a restart");
    let victim = local_ids(dir, cosigner, &account, false)?[0].clone();
    ensure!(raw.cosigner_ids(&account)?.contains(&victim));
    // The cosigner consumes it and answers; the answer never reaches the client (its
    // copy stays in the local pool).
    raw.sign(&account, &victim, "lost answer")?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    service.terminate();
    *service = start_service(bins, svc_cfg)?;
    ensure!(
        !raw.cosigner_ids(&account)?.contains(&victim),
        "the consumed presignature is back after the restart"
    );
    let e = raw
        .sign(&account, &victim, "after restart")?
        .err()
        .context("the consumed presignature signed after a restart")?;
    ensure!(presign_error(&e) == "used", "{e:?}");
    // The client still holds its copy (it never used it): the cosigner refuses it, the
    // client discards it and falls back to full signing.
    ensure!(local_ids(dir, cosigner, &account, false)?[0] == victim);
    let m = "after the crash";
    let sig = run(&["sign-message", m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;
    ensure!(sig["presigned"] == false, "expected the fallback: {sig}");
    ensure!(!local_ids(dir, cosigner, &account, false)?.contains(&victim));
    let m = "fast again";
    let sig = run(&["sign-message", m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;
    ensure!(sig["presigned"] == true, "{sig}");
    let r = run(&["--presign", "off", "sign-message", m])?.ok()?;
    ensure!(r["presigned"] == false, "{r}");

    step("recovery + cosigner: their own pool");
    let s = run(&["--recovery", "presign", "refill", "--target", "1"])?.ok()?;
    ensure!(
        s["signers"] == serde_json::json!([1, 2]) && s["local"] == 1,
        "{s}"
    );
    let m = "recovery fast path";
    let sig = run(&["--recovery", "--presign", "require", "sign-message", m])?.ok()?;
    verify_eth_signature(&eip191(m), &sig, &address)?;
    ensure!(sig["signers"] == serde_json::json!([1, 2]) && sig["presigned"] == true);
    ensure!(local_ids(dir, cosigner, &account, true)?.is_empty());
    Ok(())
}

/// Verifies the DER signature of a raw preimage under double SHA-256 with k256.
fn verify_der_double_sha256(preimage: &[u8], sig: &serde_json::Value) -> Result<()> {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::digest(Sha256::digest(preimage)).into();
    ensure!(
        sig["digest"] == hex::encode(digest),
        "digest mismatch: {sig}"
    );
    let pk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&hex::decode(
        sig["public_key"].as_str().context("public_key")?,
    )?)?;
    let der = k256::ecdsa::Signature::from_der(&hex::decode(sig["der"].as_str().context("der")?)?)?;
    ensure!(der.normalize_s().is_none(), "DER s is not low");
    pk.verify_prehash(&digest, &der)
        .context("DER signature does not verify")?;
    Ok(())
}
