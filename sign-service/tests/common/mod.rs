//! Shared pieces of the integration tests: real `sign-gateway` and `sign-service`
//! processes on loopback (the cosigner binds port 0 and reports its port through
//! `--port-file`), and the device / recovery parties played in-process with
//! `mpc-party`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cosigner_api::auth;
use cosigner_api::pb::cosigner_client::CosignerClient;
use cosigner_api::pb::{self, AccountKind};
use gateway_client::GatewayClient;
use gateway_tests::process::{start_native, GatewayProcess, TempDir, TestConfig};
use mpc_core::primes::dev_fixture_primes;
use mpc_core::{Account, Session, SessionOutput};
use mpc_party::{run_session, PartyContext};
use mpc_wire::{IdentityKey, PublicIdentity, Roster, SessionId};
use tonic::transport::Channel;

pub mod btc;

pub const SECRET: &str = "integration-test-room-secret-0123456789";

/// A binary of the root workspace: `env` when set, else built (once per test process,
/// a no-op when up to date) with `cargo build -p pkg --bin bin` in this target dir.
pub fn root_bin(env: &str, pkg: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(bin);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|b| b == bin) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-p", pkg, "--bin", bin])
            .env_remove("CARGO_MANIFEST_DIR")
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {pkg} --bin {bin} failed");
        built.push(bin.to_string());
    }
    path
}

pub fn gateway_bin() -> PathBuf {
    root_bin("SIGN_GATEWAY_BIN", "sign-gateway", "sign-gateway")
}

pub async fn gateway() -> GatewayProcess {
    let cfg = TestConfig {
        secret: Some(SECRET.into()),
        ..TestConfig::default()
    };
    start_native(&gateway_bin(), &cfg)
        .await
        .expect("start sign-gateway")
}

/// A running `sign-service`, killed on drop.
pub struct Service {
    pub child: Child,
    pub url: String,
    pub dir: TempDir,
    pub cfg: PathBuf,
}

impl Service {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("out.log")).unwrap_or_default()
    }

    pub fn audit(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("audit.jsonl")).unwrap_or_default()
    }

    /// `http://HOST:PORT` of the admin port (`admin_listen` in the test's YAML).
    pub fn admin_url(&self) -> String {
        let text = std::fs::read_to_string(self.dir.0.join("admin-port"))
            .expect("no admin port file: give admin_listen in the YAML");
        format!("http://{}", text.trim())
    }

    pub async fn client(&self) -> CosignerClient<Channel> {
        CosignerClient::connect(self.url.clone())
            .await
            .expect("connect")
    }

    /// SIGKILL (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the service again on the same data (a new port), with `env` set.
    pub async fn restart(&mut self, env: &[(&str, &str)]) {
        self.kill();
        let (child, url) = spawn(&self.dir.0, &self.cfg, env).await;
        self.child = child;
        self.url = url;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for `sign-service` to write its port file; returns `http://HOST:PORT`.
async fn wait_port_file(child: &mut Child, port_file: &Path, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "sign-service exited early with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(text) = std::fs::read_to_string(port_file) {
            // Written atomically: complete once it exists.
            let addr = text.trim();
            assert!(text.ends_with('\n'), "port file {text:?}");
            let _: std::net::SocketAddr = addr.parse().expect("HOST:PORT in the port file");
            return format!("http://{addr}");
        }
        assert!(
            Instant::now() < deadline,
            "sign-service wrote no port file:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn spawn(dir: &Path, cfg: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let port_file = dir.join("port");
    let _ = std::fs::remove_file(&port_file);
    let _ = std::fs::remove_file(dir.join("admin-port"));
    let log_path = dir.join("out.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sign-service"));
    cmd.arg("--config")
        .arg(cfg)
        .arg("--insecure-dev-store-key")
        .arg("--port-file")
        .arg(&port_file)
        .arg("--admin-port-file")
        .arg(dir.join("admin-port"))
        .env("SIGN_GATEWAY_ACCESS_SECRET", SECRET)
        .env_remove("SIGN_SERVICE_STORE_KEY")
        .env_remove("SIGN_SERVICE_STORE_PASSPHRASE")
        .env_remove("SIGN_SERVICE_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("clone")))
        .stderr(Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn sign-service");
    let url = wait_port_file(&mut child, &port_file, &log_path).await;
    (child, url)
}

/// The YAML of a test cosigner on port 0.
pub fn service_yaml(
    gateway: &GatewayProcess,
    dir: &Path,
    stock_primes: bool,
    extra: &str,
) -> String {
    // Open registration unless the test configures registration itself.
    let open = if extra.contains("dev_open_registration") {
        ""
    } else {
        "dev_open_registration: true\n"
    };
    format!(
        "port: 0\ngateway_url: {}\nkey_store: {}\naudit_log: {}\ninsecure_dev_primes: {}\nprime_pool_size: 0\n\
         cors_origins: [\"http://localhost:5173\", \"chrome-extension://abcdefghijklmnopabcdefghijklmnop\"]\nlogging:\n  level: info\n  format: json\n{open}{extra}",
        gateway.base,
        dir.join("store.redb").display(),
        dir.join("audit.jsonl").display(),
        !stock_primes,
    )
}

/// Starts `sign-service` on port 0. With `stock_primes`, the store is created beforehand
/// with one prime set (the public fixture, to stay fast) in its pool, and the service
/// runs with `insecure_dev_primes: false`, i.e. the production path of the prime pool.
pub async fn start_service(
    gateway: &GatewayProcess,
    extra_yaml: &str,
    stock_primes: bool,
) -> Service {
    let dir = TempDir::new("sign-service-test").expect("tempdir");
    if stock_primes {
        let store = sign_service::store::Store::open(
            &dir.0.join("store.redb"),
            &sign_service::store::KeySource::InsecureDev,
        )
        .expect("open store");
        store
            .push_primes(&dev_fixture_primes()[1])
            .expect("stock primes");
    }
    let cfg = dir.0.join("sign-service.yaml");
    std::fs::write(
        &cfg,
        service_yaml(gateway, &dir.0, stock_primes, extra_yaml),
    )
    .expect("write config");
    let (child, url) = spawn(&dir.0, &cfg, &[]).await;
    Service {
        child,
        url,
        dir,
        cfg,
    }
}

/// The committed dev wallet's three bundles (`sign_service::dev_wallet`).
pub fn dev_wallet_bundles() -> &'static [mpc_core::keystore::KeyShareBundle] {
    sign_service::dev_wallet::bundles()
}

/// Party `party`'s account of `kind` in the dev wallet, named `account-0` (the id the
/// cosigner gives a created wallet's first account).
fn dev_account(party: usize, kind: mpc_core::AccountKind) -> Account {
    let mut a = dev_wallet_bundles()[party]
        .accounts
        .values()
        .find(|a| a.kind == kind)
        .expect("an account of that kind in the dev wallet")
        .clone();
    a.id = "account-0".into();
    a
}

/// Starts `sign-service` (dev primes allowed) whose store already holds one committed
/// one-account wallet per entry of `kinds`, with the dev wallet's shares and aux info
/// and fresh device and recovery identities: what `create_wallet` returns, without
/// minutes of aux info. For the tests of what a wallet does (signing, pools, replay,
/// rollback); the tests of wallet creation itself run the real thing (`create_wallet`).
/// Wallets of the same kind share their keys (different ids and identities).
pub async fn start_service_with_dev_wallets(
    gateway: &GatewayProcess,
    extra_yaml: &str,
    kinds: &[mpc_core::AccountKind],
) -> (Service, Vec<Wallet>) {
    let dir = TempDir::new("sign-service-test").expect("tempdir");
    let made = {
        let store = sign_service::store::Store::open(
            &dir.0.join("store.redb"),
            &sign_service::store::KeySource::InsecureDev,
        )
        .expect("open store");
        seed_dev_wallets(&store, kinds)
    };
    let cfg = dir.0.join("sign-service.yaml");
    std::fs::write(&cfg, service_yaml(gateway, &dir.0, false, extra_yaml)).expect("write config");
    let svc = start_service_in(dir, cfg).await;
    let cosigner = cosigner_identity(&mut svc.client().await).await;
    (svc, dev_wallets(gateway, cosigner, made))
}

/// A wallet [`seed_dev_wallets`] committed: id, device and recovery identities, kind.
pub type SeededWallet = (String, IdentityKey, IdentityKey, mpc_core::AccountKind);

/// Commits one one-account wallet per entry of `kinds` to `store` (the dev wallet's
/// shares and aux info, fresh device and recovery identities), named `dev-wallet-N`.
pub fn seed_dev_wallets(
    store: &sign_service::store::Store,
    kinds: &[mpc_core::AccountKind],
) -> Vec<SeededWallet> {
    let bundles = dev_wallet_bundles();
    let mut made = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let device = IdentityKey::generate().expect("id");
        let recovery = IdentityKey::generate().expect("id");
        let id = format!("dev-wallet-{i}");
        let ours = dev_account(1, kind);
        store
            .insert_wallet(&sign_service::store::WalletRecord {
                wallet_id: id.clone(),
                label: "dev wallet".into(),
                kind,
                device_identity: device.public(),
                recovery_identity: recovery.public(),
                created_at_ms: 1_700_000_000_000,
                insecure_dev_primes: true,
                aux_info: bundles[1].aux_info.clone().expect("aux info"),
                accounts: [(ours.id.clone(), ours)].into_iter().collect(),
                share_epoch: 0,
                last_refresh_at_ms: None,
                retired_device_identities: Vec::new(),
            })
            .expect("insert the dev wallet");
        made.push((id, device, recovery, kind));
    }
    made
}

/// The device's and recovery's side of the wallets [`seed_dev_wallets`] committed,
/// for the cosigner `cosigner`.
pub fn dev_wallets(
    gateway: &GatewayProcess,
    cosigner: PublicIdentity,
    made: Vec<SeededWallet>,
) -> Vec<Wallet> {
    let bundles = dev_wallet_bundles();
    let gw = GatewayClient::new(&gateway.base).expect("gateway client");
    made.into_iter()
        .map(|(id, device, recovery, kind)| Wallet {
            id,
            device,
            recovery,
            cosigner,
            gw: gw.clone(),
            device_aux: bundles[0].aux_info.clone().expect("aux info"),
            device_accounts: vec![dev_account(0, kind)],
            recovery_aux: bundles[2].aux_info.clone().expect("aux info"),
            recovery_accounts: vec![dev_account(2, kind)],
        })
        .collect()
}

/// The one wallet of [`start_service_with_dev_wallets`].
pub fn one(wallets: Vec<Wallet>) -> [Wallet; 1] {
    wallets.try_into().ok().expect("one wallet")
}

/// The two wallets of [`start_service_with_dev_wallets`].
pub fn two(wallets: Vec<Wallet>) -> [Wallet; 2] {
    wallets.try_into().ok().expect("two wallets")
}

/// Starts `sign-service` with an existing data directory and config.
pub async fn start_service_in(dir: TempDir, cfg: PathBuf) -> Service {
    let (child, url) = spawn(&dir.0, &cfg, &[]).await;
    Service {
        child,
        url,
        dir,
        cfg,
    }
}

pub fn ctx(
    gw: &GatewayClient,
    room: &pb::SessionRoom,
    me: u16,
    id: &IdentityKey,
    roster: &Roster,
) -> PartyContext {
    PartyContext {
        gateway: gw.clone(),
        room: room.room.clone(),
        token: (!room.room_token.is_empty()).then(|| room.room_token.clone()),
        session_id: SessionId::new(room.session_id.clone()).expect("session id"),
        me,
        identity: id.clone(),
        roster: roster.clone(),
        timeout: Duration::from_secs(300),
        stop: None,
    }
}

/// One party's side of aux info and every DKG of a created wallet.
pub async fn run_party_dkg(
    gw: GatewayClient,
    created: pb::CreateWalletResponse,
    me: u16,
    id: IdentityKey,
    roster: Roster,
    kind: mpc_core::AccountKind,
) -> (mpc_core::AuxInfo, Vec<Account>) {
    let aux_room = created.aux_info.clone().expect("aux room");
    let aux = run_party_aux(&gw, &aux_room, me, &id, &roster).await;
    let accounts = run_party_keygens(&gw, &created, me, &id, &roster, kind).await;
    (aux, accounts)
}

/// One party's side of an aux-info session (the public fixture primes).
pub async fn run_party_aux(
    gw: &GatewayClient,
    room: &pb::SessionRoom,
    me: u16,
    id: &IdentityKey,
    roster: &Roster,
) -> mpc_core::AuxInfo {
    let sid = room.session_id.clone().into_bytes();
    let primes = dev_fixture_primes()[usize::from(me)]
        .to_pregenerated()
        .expect("primes");
    let out = run_session(
        ctx(gw, room, me, id, roster),
        move || Session::aux_info(&sid, me, 3, primes),
        |_| {},
    )
    .await
    .expect("aux info");
    let SessionOutput::AuxInfo(aux) = out else {
        panic!("aux output")
    };
    *aux
}

/// One party's side of every keygen of a created wallet (its aux info done).
pub async fn run_party_keygens(
    gw: &GatewayClient,
    created: &pb::CreateWalletResponse,
    me: u16,
    id: &IdentityKey,
    roster: &Roster,
    kind: mpc_core::AccountKind,
) -> Vec<Account> {
    let mut accounts = Vec::new();
    for a in &created.accounts {
        let room = a.keygen.clone().expect("keygen room");
        let sid = room.session_id.clone().into_bytes();
        let out = run_session(
            ctx(gw, &room, me, id, roster),
            move || Session::keygen(&sid, me, 3, 2),
            |_| {},
        )
        .await
        .expect("keygen");
        let SessionOutput::Keygen(share) = out else {
            panic!("keygen output")
        };
        accounts.push(Account::new(a.account_id.clone(), kind, *share, 0));
    }
    accounts
}

/// A CreateWallet the cosigner must refuse; its error.
pub async fn refused(
    client: &mut CosignerClient<Channel>,
    req: pb::CreateWalletRequest,
) -> cosigner_api::RemoteError {
    let e = client.create_wallet(req).await.expect_err("refused");
    cosigner_api::RemoteError::from(&e)
}

/// ConfirmWallet of `wallet_id` with `public_keys`, signed by the device (party 0); it
/// must succeed.
pub async fn confirm_wallet(
    client: &mut CosignerClient<Channel>,
    device: &IdentityKey,
    me: &PublicIdentity,
    wallet_id: &str,
    public_keys: HashMap<String, String>,
) -> pb::ConfirmWalletResponse {
    let mut confirm = pb::ConfirmWalletRequest {
        auth: None,
        public_keys,
    };
    auth::sign_request(&mut confirm, device, me, wallet_id, 0).expect("sign");
    client
        .confirm_wallet(confirm)
        .await
        .expect("confirm")
        .into_inner()
}

/// A wallet created, generated and confirmed, with the device's and recovery's shares.
pub struct Wallet {
    pub id: String,
    pub device: IdentityKey,
    pub recovery: IdentityKey,
    pub cosigner: PublicIdentity,
    pub gw: GatewayClient,
    pub device_aux: mpc_core::AuxInfo,
    pub device_accounts: Vec<Account>,
    pub recovery_aux: mpc_core::AuxInfo,
    pub recovery_accounts: Vec<Account>,
}

/// A CreateWalletRequest from a new device identity naming a new recovery identity,
/// signed by the device: (device, recovery, request).
pub fn signed_create_request(
    cosigner: &PublicIdentity,
    accounts: u32,
    kind: AccountKind,
    label: &str,
) -> (IdentityKey, IdentityKey, pb::CreateWalletRequest) {
    signed_create_request_with(cosigner, accounts, kind, label, "")
}

/// [`signed_create_request`] carrying a registration credential.
pub fn signed_create_request_with(
    cosigner: &PublicIdentity,
    accounts: u32,
    kind: AccountKind,
    label: &str,
    registration_credential: &str,
) -> (IdentityKey, IdentityKey, pb::CreateWalletRequest) {
    let device = IdentityKey::generate().expect("id");
    let recovery = IdentityKey::generate().expect("id");
    let mut req = pb::CreateWalletRequest {
        recovery_identity: recovery.public().to_string(),
        accounts,
        kind: kind as i32,
        label: label.into(),
        registration_credential: registration_credential.into(),
        ..Default::default()
    };
    auth::sign_device_request(&mut req, &device, cosigner).expect("sign");
    (device, recovery, req)
}

/// The cosigner's public identity, from Health (the audience of every request).
pub async fn cosigner_identity(client: &mut CosignerClient<Channel>) -> PublicIdentity {
    client
        .health(pb::HealthRequest {})
        .await
        .expect("health")
        .into_inner()
        .identity
        .parse()
        .expect("cosigner identity")
}

/// The ids in the cosigner's presignature pool of `account` for the device's signer
/// pair; `None` when the cosigner reports no such pool.
pub async fn pool_ids(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
) -> Option<Vec<String>> {
    pool(client, w, account).await.map(|p| p.presignature_ids)
}

/// CreateWallet → aux info + DKG (device and recovery in-process) → ConfirmWallet.
pub async fn create_wallet(
    client: &mut CosignerClient<Channel>,
    accounts: u32,
    kind: mpc_core::AccountKind,
) -> Wallet {
    create_wallet_with(client, accounts, kind, "").await
}

/// [`create_wallet`] with a registration credential.
pub async fn create_wallet_with(
    client: &mut CosignerClient<Channel>,
    accounts: u32,
    kind: mpc_core::AccountKind,
    registration_credential: &str,
) -> Wallet {
    let proto_kind = match kind {
        mpc_core::AccountKind::Hd => AccountKind::Hd,
        mpc_core::AccountKind::Independent => AccountKind::Independent,
    };
    let me = cosigner_identity(client).await;
    let (device, recovery, req) =
        signed_create_request_with(&me, accounts, proto_kind, "test", registration_credential);
    let created = client
        .create_wallet(req)
        .await
        .expect("create")
        .into_inner();
    let aux_room = created.aux_info.clone().expect("aux");
    let cosigner: PublicIdentity = created.cosigner_identity.parse().expect("identity");
    let roster =
        Roster::new([(0, device.public()), (1, cosigner), (2, recovery.public())]).expect("roster");
    let gw = GatewayClient::new(&aux_room.gateway_url).expect("gateway client");
    let (d, r) = tokio::join!(
        run_party_dkg(
            gw.clone(),
            created.clone(),
            0,
            device.clone(),
            roster.clone(),
            kind
        ),
        run_party_dkg(
            gw.clone(),
            created.clone(),
            2,
            recovery.clone(),
            roster.clone(),
            kind
        ),
    );
    let keys: HashMap<String, String> =
        d.1.iter()
            .map(|a| (a.id.clone(), a.public_key.clone()))
            .collect();
    let confirmed = confirm_wallet(client, &device, &me, &created.wallet_id, keys).await;
    assert!(confirmed.committed);
    Wallet {
        id: created.wallet_id,
        device,
        recovery,
        cosigner,
        gw,
        device_aux: d.0,
        device_accounts: d.1,
        recovery_aux: r.0,
        recovery_accounts: r.1,
    }
}

/// Polls `cond` (an RPC, a file) until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// StartPresign of `count` presignatures of `account`, signed by the device.
pub async fn start_presign(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
    count: u32,
) -> Result<pb::StartPresignResponse, tonic::Status> {
    let mut req = pb::StartPresignRequest {
        auth: None,
        account_id: account.into(),
        count,
        release_ids: Vec::new(),
        derivation_path: String::new(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    client.start_presign(req).await.map(|r| r.into_inner())
}

/// The device's side of one session StartPresign granted for the wallet's first
/// account, given up after `timeout`.
pub async fn device_presign(
    w: &Wallet,
    session: &pb::PresignSession,
    timeout: Duration,
) -> Result<(), mpc_party::PartyError> {
    let room = session.session.clone().expect("room");
    let share = w.device_accounts[0]
        .complete(&w.device_aux)
        .expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let mut c = ctx(&w.gw, &room, 0, &w.device, &roster);
    c.timeout = timeout;
    let out = run_session(
        c,
        move || Session::presign(&sid, vec![0, 1], share, None),
        |_| {},
    )
    .await?;
    assert!(matches!(out, SessionOutput::Presignature(..)));
    Ok(())
}

/// The cosigner's presignature pool of `account` at the root for the device's signer
/// pair (ids ready, sessions running); `None` when the cosigner reports no such pool.
pub async fn pool(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
) -> Option<pb::PresignPool> {
    pool_at(client, w, account, "").await
}

/// [`pool`] at `path` (as the wire names it: empty for the root).
pub async fn pool_at(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
    path: &str,
) -> Option<pb::PresignPool> {
    let mut req = pb::PresignPoolStatusRequest {
        auth: None,
        account_id: account.into(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    client
        .presign_pool_status(req)
        .await
        .expect("pool status")
        .into_inner()
        .pools
        .into_iter()
        .find(|p| p.account_id == account && p.derivation_path == path)
}

/// A wallet creation opened at the cosigner whose user parties the test runs itself:
/// their keys, the cosigner's answer, the roster and a client of the aux-info room's
/// gateway.
pub struct OpenedCreation {
    pub device: IdentityKey,
    pub recovery: IdentityKey,
    pub created: pb::CreateWalletResponse,
    pub roster: Roster,
    pub gw: GatewayClient,
}

/// CreateWallet (one independent account, `label`) for the cosigner `audience`.
pub async fn open_creation(
    client: &mut CosignerClient<Channel>,
    audience: &PublicIdentity,
    label: &str,
) -> OpenedCreation {
    let (device, recovery, req) =
        signed_create_request(audience, 1, AccountKind::Independent, label);
    let created = client
        .create_wallet(req)
        .await
        .expect("create")
        .into_inner();
    let cosigner: PublicIdentity = created.cosigner_identity.parse().expect("identity");
    let roster =
        Roster::new([(0, device.public()), (1, cosigner), (2, recovery.public())]).expect("roster");
    let gw = GatewayClient::new(&created.aux_info.as_ref().expect("aux room").gateway_url)
        .expect("gateway client");
    OpenedCreation {
        device,
        recovery,
        created,
        roster,
        gw,
    }
}

/// ConfirmWallet (its keys do not matter: these creations must end in a refusal) until
/// the cosigner's side of the creation has an outcome other than `wallet_not_ready`;
/// panics with `stalled` after `within`.
pub async fn creation_outcome(
    client: &mut CosignerClient<Channel>,
    device: &IdentityKey,
    audience: &PublicIdentity,
    wallet_id: &str,
    within: Duration,
    stalled: &str,
) -> tonic::Status {
    let deadline = Instant::now() + within;
    loop {
        let mut confirm = pb::ConfirmWalletRequest {
            auth: None,
            public_keys: HashMap::from([("account-0".to_string(), "02ab".to_string())]),
        };
        auth::sign_request(&mut confirm, device, audience, wallet_id, 0).expect("sign");
        let e = client
            .confirm_wallet(confirm)
            .await
            .expect_err("the wallet was confirmed");
        if cosigner_api::RemoteError::from(&e).code != wallet_types::ErrorCode::WalletNotReady {
            return e;
        }
        assert!(Instant::now() < deadline, "{stalled}");
    }
}

/// StartPresign of one, the device's side of the session in-process; returns the id
/// once the cosigner has stored its half.
pub async fn presign_one(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
) -> String {
    presign_kept(client, w, account).await.id
}

/// [`presign_one`], keeping the device's half (a compromised device could use it as
/// often as it likes).
pub async fn presign_kept(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
) -> mpc_core::presign::StoredPresignature {
    presign_kept_at(client, w, account, "").await
}

/// [`presign_kept`] at `path` (empty: the root) of the wallet's first account.
pub async fn presign_kept_at(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    account: &str,
    path: &str,
) -> mpc_core::presign::StoredPresignature {
    let parsed = mpc_core::hd::DerivationPath::parse(path).expect("path");
    let mut req = pb::StartPresignRequest {
        auth: None,
        account_id: account.into(),
        count: 1,
        release_ids: Vec::new(),
        derivation_path: path.into(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    let started = client
        .start_presign(req)
        .await
        .expect("start presign")
        .into_inner();
    assert_eq!(started.signers, vec![0, 1]);
    assert_eq!(started.derivation_path, path);
    let s = started.sessions.into_iter().next().expect("a session");
    assert_eq!(s.derivation_path, path);
    let indices = (!parsed.is_root()).then(|| parsed.indices().to_vec());
    let room = s.session.expect("room");
    let share = w.device_accounts[0]
        .complete(&w.device_aux)
        .expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let out = run_session(
        ctx(&w.gw, &room, 0, &w.device, &roster),
        move || Session::presign(&sid, vec![0, 1], share, indices),
        |_| {},
    )
    .await
    .expect("presign session");
    let SessionOutput::Presignature(p, public) = out else {
        panic!("presign output")
    };
    let id = s.presignature_id;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pool_at(client, w, account, path)
        .await
        .map(|p| p.presignature_ids)
        .unwrap_or_default()
        .contains(&id)
    {
        assert!(Instant::now() < deadline, "the cosigner never stored {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mpc_core::presign::StoredPresignature {
        id,
        account_id: account.into(),
        signers: vec![0, 1],
        presignature: *p,
        public: mpc_core::presign::PresignaturePublicDataRepr::new(public.as_ref(), parsed),
    }
}

/// A StartSign request of the wallet's device for the EIP-191 message `text` at the root
/// of its first account (keccak-256), signed.
pub fn message_sign_request(w: &Wallet, text: &[u8]) -> pb::StartSignRequest {
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: String::new(),
        preimage: mpc_core::digest::eip191_preimage(text),
        digest: pb::DigestKind::Keccak256 as i32,
        payload_kind: pb::PayloadKind::EthereumMessage as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign");
    req
}

/// StartSign of the EIP-191 message `msg` at the root of the wallet's first account,
/// with the device's side in-process; the signature is verified. Returns the time.
pub async fn full_sign(client: &mut CosignerClient<Channel>, w: &Wallet, msg: &str) -> Duration {
    let t0 = Instant::now();
    let req = message_sign_request(w, msg.as_bytes());
    let preimage = req.preimage.clone();
    let started = client
        .start_sign(req)
        .await
        .expect("StartSign")
        .into_inner();
    let room = started.session.expect("room");
    let share = w.device_accounts[0]
        .complete(&w.device_aux)
        .expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let data = mpc_core::DigestKind::Keccak256.data_to_sign(&preimage);
    let out = run_session(
        ctx(&w.gw, &room, 0, &w.device, &roster),
        move || Session::sign(&sid, vec![0, 1], share, None, data),
        |_| {},
    )
    .await
    .expect("the device's signing session");
    let SessionOutput::Signature(sig) = out else {
        panic!("signature")
    };
    let root = w.device_accounts[0].master_public_key();
    mpc_core::signature::verify_digest(
        &root,
        &mpc_core::DigestKind::Keccak256.digest(&preimage),
        &sig,
    )
    .expect("the signature verifies");
    t0.elapsed()
}

/// `GET /readyz` on the admin port `admin`: the status and the JSON body.
pub async fn readyz(http: &reqwest::Client, admin: &str) -> (u16, serde_json::Value) {
    let r = http
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    let status = r.status().as_u16();
    let text = r.text().await.expect("readyz body");
    (status, serde_json::from_str(&text).expect("readyz JSON"))
}

/// The `grpc.health.v1` status of `service` (`""`: the whole server) at `url`.
pub async fn grpc_health(url: &str, service: &str) -> tonic_health::ServingStatus {
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("Health.Check")
        .into_inner()
        .status;
    match Wire::try_from(status) {
        Ok(Wire::Serving) => tonic_health::ServingStatus::Serving,
        Ok(Wire::NotServing) => tonic_health::ServingStatus::NotServing,
        _ => tonic_health::ServingStatus::Unknown,
    }
}

/// Spawns `c` (a `sign-service` that writes `port`, `--port-file`) with its stdout and
/// stderr in `log`; returns it once the port file exists, with its log so far (panics,
/// with the log, if it exits first or writes no port file within 60 s).
pub fn spawn_listening(mut c: Command, port: &Path, log: &Path) -> (Child, String) {
    let _ = std::fs::remove_file(port);
    let f = std::fs::File::create(log).expect("log");
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone().expect("clone")))
        .stderr(Stdio::from(f))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port.exists() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no port file");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, std::fs::read_to_string(log).unwrap_or_default())
}
