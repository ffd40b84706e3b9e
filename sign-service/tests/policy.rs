//! Policy attacks against a real `sign-service` process (and `sign-gateway`), as a
//! compromised device would make them: signed, well-formed StartSign requests for
//! things the policy must refuse. Each refusal must carry `policy_denied` and the rule
//! in google.rpc.ErrorInfo (or `invalid_input` for unsupported transaction types).

use crate::common::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_primitives::{Address, TxKind, U256};
use cosigner_api::pb::cosigner_client::CosignerClient;
use cosigner_api::pb::{self, DigestKind, PayloadKind};
use cosigner_api::{auth, RemoteError};
use tonic::transport::Channel;
use wallet_types::ErrorCode;

const ALLOWED: Address = Address::repeat_byte(0x11);
const ELSEWHERE: Address = Address::repeat_byte(0x22);
const TOKEN: Address = Address::repeat_byte(0x70);
const OTHER_TOKEN: Address = Address::repeat_byte(0x71);
const FRIEND: Address = Address::repeat_byte(0xf0);
const STRANGER: Address = Address::repeat_byte(0x5e);

/// gas limit × max fee per gas of every transaction below: 21000 wei.
fn eip1559(chain_id: u64, to: Address, value: u64, input: Vec<u8>) -> Vec<u8> {
    TxEip1559 {
        chain_id,
        nonce: 3,
        gas_limit: 21_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(to),
        value: U256::from(value),
        access_list: Default::default(),
        input: input.into(),
    }
    .encoded_for_signing()
}

/// ABI `transfer(address,uint256)` (selector a9059cbb), written out by hand.
fn transfer(to: Address, amount: u64) -> Vec<u8> {
    let mut d = vec![0xa9, 0x05, 0x9c, 0xbb];
    d.extend_from_slice(&[0u8; 12]);
    d.extend_from_slice(to.as_slice());
    d.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
    d
}

async fn start_sign(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    preimage: Vec<u8>,
    kind: PayloadKind,
) -> Result<pb::StartSignResponse, tonic::Status> {
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: String::new(),
        preimage,
        digest: DigestKind::Keccak256 as i32,
        payload_kind: kind as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign request");
    client.start_sign(req).await.map(|r| r.into_inner())
}

/// StartSign of a RAW preimage with double SHA-256 (a Bitcoin sighash's digest).
async fn raw_double_sha256(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    preimage: Vec<u8>,
) -> Result<pb::StartSignResponse, tonic::Status> {
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        preimage,
        digest: DigestKind::DoubleSha256 as i32,
        payload_kind: PayloadKind::Raw as i32,
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign request");
    client.start_sign(req).await.map(|r| r.into_inner())
}

/// The refusal's rule, checked to travel as `policy_denied` + `rule` in ErrorInfo.
fn denied_rule(what: &str, r: Result<pb::StartSignResponse, tonic::Status>) -> String {
    let e = match r {
        Ok(started) => panic!(
            "{what}: the cosigner agreed to sign (digest {}, session {:?})",
            started.digest,
            started.session.map(|s| s.session_id)
        ),
        Err(e) => e,
    };
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
    let remote = RemoteError::from(&e);
    assert_eq!(remote.code, ErrorCode::PolicyDenied, "{what}: {remote}");
    assert!(!remote.retryable);
    remote
        .rule
        .unwrap_or_else(|| panic!("{what}: no rule in ErrorInfo"))
}

/// A compromised device sends an Ethereum transaction to a non-allowed address as a RAW
/// keccak-256 preimage: refused by default (`allow_raw`), although the cosigner has an
/// Ethereum destination list. Listing the wallet with `allow_raw: true` enables raw
/// preimages for that wallet only, with a start-up warning naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_keccak_preimage_of_a_transaction_is_refused_by_default() {
    let gw = gateway().await;
    let policy = format!(
        "session_timeout_secs: 5\npolicy:\n  ethereum:\n    allowed_destinations: [\"{ALLOWED}\"]\n"
    );
    let (mut svc, wallets) =
        start_service_with_dev_wallets(&gw, &policy, &[mpc_core::AccountKind::Independent; 2])
            .await;
    let mut client = svc.client().await;
    let [w, other] = two(wallets);
    let tx = eip1559(1, ELSEWHERE, 1, vec![]);

    // Decoded as a transaction, the destination rule refuses it.
    let r = start_sign(
        &mut client,
        &w,
        tx.clone(),
        PayloadKind::EthereumTransaction,
    )
    .await;
    assert_eq!(denied_rule("as a transaction", r), "allowed_destinations");
    // As a raw keccak preimage (the same digest): refused by default.
    for kind in [PayloadKind::Raw, PayloadKind::Unspecified] {
        let r = start_sign(&mut client, &w, tx.clone(), kind).await;
        assert_eq!(denied_rule("as a raw preimage", r), "allow_raw");
    }
    // A raw Bitcoin sighash preimage (double SHA-256): refused by default too.
    let r = raw_double_sha256(&mut client, &w, tx.clone()).await;
    assert_eq!(denied_rule("a raw double SHA-256 preimage", r), "allow_raw");
    let audit = svc.audit();
    assert!(audit.contains("allow_raw"), "{audit}");

    // Enabled for this wallet only: raw preimages are co-signed for it, with a warning.
    let cfg = std::fs::read_to_string(&svc.cfg).expect("config");
    let cfg = cfg.replace(
        "policy:\n",
        &format!(
            "policy:\n  wallets:\n    \"{}\":\n      allow_raw: true\n",
            w.id
        ),
    );
    std::fs::write(&svc.cfg, cfg).expect("write config");
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    start_sign(&mut client, &w, tx.clone(), PayloadKind::Raw)
        .await
        .expect("raw allowed for the listed wallet");
    raw_double_sha256(&mut client, &w, tx.clone())
        .await
        .expect("raw double SHA-256 allowed for the listed wallet");
    let r = raw_double_sha256(&mut client, &other, tx.clone()).await;
    assert_eq!(
        denied_rule("raw double SHA-256, another wallet", r),
        "allow_raw"
    );
    let r = start_sign(&mut client, &other, tx, PayloadKind::Raw).await;
    assert_eq!(denied_rule("another wallet", r), "allow_raw");
    let log = svc.log();
    assert!(
        log.lines()
            .any(|l| l.contains("RAW PAYLOADS ENABLED") && l.contains(&w.id)),
        "no start-up warning naming {}:\n{log}",
        w.id
    );
}

/// ERC-20 calldata, the fee, the chain id and pre-EIP-155 transactions, each attacked
/// with a signed StartSign; the refusal names its rule. Then, on the same (HD) wallet
/// (a wallet costs CI minutes), the Bitcoin PSBT rules: [`bitcoin_rules`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereum_and_bitcoin_rules_refuse_each_attack_naming_the_rule() {
    let gw = gateway().await;
    let dest = crate::common::btc::regtest(&crate::common::btc::elsewhere(1));
    let policy = format!(
        "session_timeout_secs: 5\npresign_pool_cap: 2\npolicy:\n  ethereum:\n    allowed_chain_ids: [1]\n    \
         allowed_destinations: [\"{ALLOWED}\"]\n    max_value_per_tx_wei: \"1000000\"\n    \
         erc20:\n      allowed_recipients: [\"{FRIEND}\"]\n      tokens:\n        \
         \"{TOKEN}\":\n          max_amount_per_tx: \"1000\"\n  \
         bitcoin:\n    allowed_networks: [regtest, signet]\n    allowed_destinations: [\"{dest}\"]\n    \
         max_sats_per_tx: 100000\n    daily_limit_sats: 150000\n    max_fee_sats: 5000\n    \
         max_fee_rate_sat_per_vb: 10\n"
    );
    let (mut svc, wallets) =
        start_service_with_dev_wallets(&gw, &policy, &[mpc_core::AccountKind::Hd]).await;
    let mut client = svc.client().await;
    let [w] = one(wallets);
    let kind = PayloadKind::EthereumTransaction;

    let attacks: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "ERC-20 transfer to a recipient not allowed",
            eip1559(1, TOKEN, 0, transfer(STRANGER, 1)),
            "erc20_recipients",
        ),
        (
            "ERC-20 transfer above the token's limit",
            eip1559(1, TOKEN, 0, transfer(FRIEND, 1001)),
            "erc20_max_amount",
        ),
        (
            "ERC-20 transfer of a token not allowed",
            eip1559(1, OTHER_TOKEN, 0, transfer(FRIEND, 1)),
            "erc20_tokens",
        ),
        (
            "value within the limit, value + fee above it",
            eip1559(1, ALLOWED, 1_000_000 - 21_000 + 1, vec![]),
            "max_value_per_tx_wei",
        ),
        (
            "a chain id not allowed",
            eip1559(10, ALLOWED, 1, vec![]),
            "allowed_chain_ids",
        ),
        (
            "a legacy transaction without a chain id (pre-EIP-155)",
            TxLegacy {
                chain_id: None,
                nonce: 0,
                gas_price: 1,
                gas_limit: 21_000,
                to: TxKind::Call(ALLOWED),
                value: U256::from(1),
                input: Default::default(),
            }
            .encoded_for_signing(),
            "eip155_required",
        ),
    ];
    for (what, tx, want) in attacks {
        let r = start_sign(&mut client, &w, tx, kind).await;
        assert_eq!(denied_rule(what, r), want, "{what}");
    }
    // A transaction type that does not exist: invalid input.
    for ty in [5u8, 0x7f] {
        let e = start_sign(&mut client, &w, vec![ty, 0xc0], kind)
            .await
            .expect_err("unknown type");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert_eq!(RemoteError::from(&e).code, ErrorCode::InvalidInput);
        assert!(e.message().contains("unknown transaction type"), "{e:?}");
    }
    // A malformed EIP-7702 transaction is refused by the transaction rule.
    let r = start_sign(&mut client, &w, vec![4, 0xc0], kind).await;
    assert_eq!(denied_rule("malformed type 4", r), "ethereum_transaction");
    // What the rules allow is still signed: the exact limit with the fee, and an
    // allowed ERC-20 transfer (its decoded call is audited).
    start_sign(
        &mut client,
        &w,
        eip1559(1, ALLOWED, 1_000_000 - 21_000, vec![]),
        kind,
    )
    .await
    .expect("value + fee at the limit");
    start_sign(
        &mut client,
        &w,
        eip1559(1, TOKEN, 0, transfer(FRIEND, 1000)),
        kind,
    )
    .await
    .expect("allowed ERC-20 transfer");
    let audit = svc.audit();
    assert!(audit.contains("\"function\":\"transfer\""), "{audit}");
    assert!(audit.contains("erc20_recipients"), "{audit}");
    bitcoin_rules(&mut svc, &w).await;
}

/// An EIP-2612 permit for `spender` of `value` units of `TOKEN` on `chain`, as the JSON
/// of eth_signTypedData_v4.
fn permit(chain: u64, spender: Address, value: u64) -> Vec<u8> {
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
            ],
            "Permit": [
                {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "Permit",
        "domain": {"name": "Token", "version": "1", "chainId": chain, "verifyingContract": TOKEN.to_string()},
        "message": {
            "owner": ALLOWED.to_string(), "spender": spender.to_string(),
            "value": value.to_string(), "nonce": "0", "deadline": "4102444800"
        }
    })
    .to_string()
    .into_bytes()
}

fn authorization(chain: u64, delegate: Address) -> Vec<u8> {
    wallet_evm::AuthorizationFields {
        chain_id: U256::from(chain),
        delegate,
        nonce: 0,
    }
    .signing_payload()
}

async fn sign_with_presignature(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    id: &str,
    preimage: Vec<u8>,
    kind: PayloadKind,
) -> Result<pb::SignWithPresignatureResponse, tonic::Status> {
    let mut req = pb::SignWithPresignatureRequest {
        auth: None,
        account_id: "account-0".into(),
        presignature_id: id.into(),
        preimage,
        digest: DigestKind::Keccak256 as i32,
        payload_kind: kind as i32,
        derivation_path: String::new(),
        ..Default::default()
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign request");
    client
        .sign_with_presignature(req)
        .await
        .map(|r| r.into_inner())
}

/// EIP-712 permits and EIP-7702 authorizations, each attacked with a signed StartSign
/// and over the fast path (SignWithPresignature); the refusal names its rule, a refused
/// fast-path request leaves the presignature unused, and what the rules allow is signed
/// over the preimage the cosigner derived from the typed data itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_data_and_authorizations_refuse_each_attack_naming_the_rule() {
    use alloy_primitives::keccak256;
    let gw = gateway().await;
    let policy = format!(
        "session_timeout_secs: 5\npolicy:\n  ethereum:\n    allowed_chain_ids: [31337]\n    \
         erc20:\n      tokens:\n        \"{TOKEN}\":\n          max_amount_per_tx: \"1000\"\n    \
         typed_data:\n      permit_spenders: [\"{FRIEND}\"]\n    \
         eip7702:\n      allowed_delegates: [\"{ALLOWED}\"]\n"
    );
    let (svc, wallets) =
        start_service_with_dev_wallets(&gw, &policy, &[mpc_core::AccountKind::Independent]).await;
    let mut client = svc.client().await;
    let [w] = one(wallets);
    let typed = PayloadKind::EthereumTypedData;
    let auth_kind = PayloadKind::EthereumAuthorization;
    let attacks: Vec<(&str, Vec<u8>, PayloadKind, &str)> = vec![
        (
            "a permit to a spender not allowed",
            permit(31337, STRANGER, 1),
            typed,
            "permit_spenders",
        ),
        (
            "a permit above the token's limit",
            permit(31337, FRIEND, 1001),
            typed,
            "erc20_max_amount",
        ),
        (
            "a permit on a chain not allowed",
            permit(1, FRIEND, 1),
            typed,
            "allowed_chain_ids",
        ),
        (
            "an authorization to a delegate not allowed",
            authorization(31337, ELSEWHERE),
            auth_kind,
            "eip7702_delegates",
        ),
        (
            "an authorization for every chain",
            authorization(0, ALLOWED),
            auth_kind,
            "eip7702_any_chain",
        ),
        (
            "an authorization on a chain not allowed",
            authorization(1, ALLOWED),
            auth_kind,
            "allowed_chain_ids",
        ),
    ];
    for (what, payload, kind, want) in &attacks {
        let r = start_sign(&mut client, &w, payload.clone(), *kind).await;
        assert_eq!(denied_rule(what, r), *want, "{what}");
    }
    // Malformed typed data: invalid input before anything else.
    for bad in [
        &b"{"[..],
        b"[]",
        br#"{"types":{},"primaryType":"X","domain":{},"message":{}}"#,
    ] {
        let e = start_sign(&mut client, &w, bad.to_vec(), typed)
            .await
            .expect_err("malformed typed data");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert_eq!(RemoteError::from(&e).code, ErrorCode::InvalidInput);
    }
    // Allowed: the cosigner signs keccak(0x1901 ‖ domainSeparator ‖ hashStruct), which
    // it computed from the JSON (never the JSON's own hash).
    let good = permit(31337, FRIEND, 1000);
    let started = start_sign(&mut client, &w, good.clone(), typed)
        .await
        .expect("allowed permit");
    let want = keccak256(
        wallet_evm::TypedDataPayload::parse(&good)
            .unwrap()
            .preimage(),
    );
    assert_eq!(started.digest, hex::encode(want));
    assert_ne!(started.digest, hex::encode(keccak256(&good)));
    start_sign(&mut client, &w, authorization(31337, ALLOWED), auth_kind)
        .await
        .expect("allowed authorization");

    // The fast path applies the same rules, and a refusal consumes nothing.
    let id = presign_one(&mut client, &w, "account-0").await;
    for (what, payload, kind, want) in attacks {
        let e = sign_with_presignature(&mut client, &w, &id, payload, kind)
            .await
            .expect_err(what);
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
        let remote = RemoteError::from(&e);
        assert_eq!(remote.rule.as_deref(), Some(want), "{what}: {remote}");
    }
    assert!(
        pool_ids(&mut client, &w, "account-0")
            .await
            .expect("pool")
            .contains(&id),
        "a refused request consumed the presignature"
    );
    let partial = sign_with_presignature(&mut client, &w, &id, good, typed)
        .await
        .expect("allowed permit over the fast path");
    assert_eq!(partial.digest, hex::encode(want));
    let audit = svc.audit();
    assert!(audit.contains("permit_spenders"), "{audit}");
    assert!(audit.contains("\"standard\":\"EIP-2612\""), "{audit}");
    assert!(audit.contains("\"kind\":\"eip7702\""), "{audit}");
}

const IN0: &str = "m/84/1/0/0/0";
const IN1: &str = "m/84/1/0/0/1";
const CHANGE: &str = "m/84/1/0/1/0";

/// A signed StartSign of input `index` of `psbt` at `path` on `network`.
async fn start_sign_input(
    client: &mut CosignerClient<Channel>,
    w: &Wallet,
    psbt: &[u8],
    index: u32,
    path: &str,
    network: &str,
    digest: DigestKind,
) -> Result<pb::StartSignResponse, tonic::Status> {
    let mut req = pb::StartSignRequest {
        auth: None,
        account_id: "account-0".into(),
        derivation_path: path.into(),
        preimage: psbt.to_vec(),
        digest: digest as i32,
        payload_kind: PayloadKind::BitcoinPsbtInput as i32,
        input_index: index,
        bitcoin_network: network.into(),
    };
    auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign request");
    client.start_sign(req).await.map(|r| r.into_inner())
}

/// The `ErrorInfo.metadata` of a refusal.
fn metadata(e: &tonic::Status) -> std::collections::HashMap<String, String> {
    use tonic_types::StatusExt;
    e.get_error_details()
        .error_info()
        .map(|i| i.metadata.clone())
        .unwrap_or_default()
}

/// The device's side of a StartSign'd input: the joint signature, verified by
/// wallet-btc (libsecp256k1) against the input's sighash and key when finalized.
async fn device_sign(
    w: &Wallet,
    started: &pb::StartSignResponse,
    path: &str,
    preimage: Vec<u8>,
) -> Vec<u8> {
    use mpc_wire::Roster;
    let room = started.session.clone().expect("room");
    let share = w.device_accounts[0]
        .complete(&w.device_aux)
        .expect("complete");
    let sid = room.session_id.clone().into_bytes();
    let roster = Roster::new([(0, w.device.public()), (1, w.cosigner)]).expect("roster");
    let indices = mpc_core::hd::DerivationPath::parse(path)
        .expect("path")
        .indices()
        .to_vec();
    let data = mpc_core::DigestKind::DoubleSha256.data_to_sign(&preimage);
    let out = mpc_party::run_session(
        ctx(&w.gw, &room, 0, &w.device, &roster),
        move || mpc_core::Session::sign(&sid, vec![0, 1], share, Some(indices), data),
        |_| {},
    )
    .await
    .expect("signing session");
    let mpc_core::SessionOutput::Signature(sig) = out else {
        panic!("signature")
    };
    mpc_core::signature::bitcoin_der(&sig).expect("DER")
}

/// The Bitcoin rules against the running cosigner with an HD wallet: a good 2-input
/// PSBT signs (both inputs, through StartSign; the cosigner announces each input's
/// sighash; the signatures finalize the PSBT, checked by wallet-btc with libsecp256k1),
/// the daily limit counts that transaction once and survives a restart, every rule
/// refuses naming itself, and foreign / Taproot / P2PKH inputs, malformed bytes, a
/// wrong path, input, network or digest are refused before any session, through
/// StartSign and SignWithPresignature (whose refusals consume nothing).
async fn bitcoin_rules(svc: &mut Service, w: &Wallet) {
    use crate::common::btc::{elsewhere, ours, psbt, Spend};
    let mut client = svc.client().await;
    let keys = crate::common::btc::wallet_keys(&w.device_accounts[0]);
    let net = wallet_btc::Network::Regtest;
    let change = ours(&keys, CHANGE);
    // 110 000 in, 70 000 to the allowed destination, 39 000 change, fee 1 000.
    let good = psbt(
        &keys,
        1,
        &[(IN0, 60_000, Spend::Ours), (IN1, 50_000, Spend::Ours)],
        &[
            (elsewhere(1), 70_000, None),
            (change.clone(), 39_000, Some(CHANGE)),
        ],
    );
    let plan = wallet_btc::analyze_psbt(&good, &keys, net).expect("plan");
    let dsha = DigestKind::DoubleSha256;
    let mut sigs = Vec::new();
    for (i, path) in [(0u32, IN0), (1, IN1)] {
        let started = start_sign_input(&mut client, w, &good, i, path, "regtest", dsha)
            .await
            .unwrap_or_else(|e| panic!("input {i}: {e:?}"));
        let input = &plan.inputs[i as usize];
        assert_eq!(started.digest, hex::encode(input.sighash), "input {i}");
        let der = device_sign(w, &started, path, input.preimage.clone()).await;
        sigs.push((i as usize, wallet_btc::InputSignature::Der(der)));
    }
    let signed = wallet_btc::finalize_psbt(&good, &keys, net, &sigs).expect("signatures verify");
    assert_eq!(signed.txid, plan.txid);

    // The daily limit (150 000): the 2-input transaction counted once (70 000), so a
    // second one of 70 000 passes, and a third of 20 000 does not.
    let second = psbt(
        &keys,
        10,
        &[(IN0, 80_000, Spend::Ours)],
        &[
            (elsewhere(1), 70_000, None),
            (change.clone(), 9_000, Some(CHANGE)),
        ],
    );
    start_sign_input(&mut client, w, &second, 0, IN0, "regtest", dsha)
        .await
        .expect("the second transaction within the daily limit");
    let third = psbt(
        &keys,
        20,
        &[(IN0, 30_000, Spend::Ours)],
        &[
            (elsewhere(1), 20_000, None),
            (change.clone(), 9_000, Some(CHANGE)),
        ],
    );
    let r = start_sign_input(&mut client, w, &third, 0, IN0, "regtest", dsha).await;
    assert_eq!(denied_rule("daily", r), "bitcoin_daily_limit_sats");
    // Across a restart: the same, and the first transaction signed again adds nothing.
    svc.restart(&[]).await;
    let mut client = svc.client().await;
    let r = start_sign_input(&mut client, w, &third, 0, IN0, "regtest", dsha).await;
    assert_eq!(
        denied_rule("daily after a restart", r),
        "bitcoin_daily_limit_sats"
    );
    start_sign_input(&mut client, w, &good, 1, IN1, "regtest", dsha)
        .await
        .expect("a transaction already counted");

    // Each rule.
    let one_in = |salt: u8, outputs: &[(wallet_btc::bitcoin::ScriptBuf, u64, Option<&str>)]| {
        psbt(&keys, salt, &[(IN0, 200_000, Spend::Ours)], outputs)
    };
    let attacks: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an output to an address not allowed",
            one_in(
                30,
                &[
                    (elsewhere(2), 1_000, None),
                    (change.clone(), 198_000, Some(CHANGE)),
                ],
            ),
            "bitcoin_allowed_destinations",
        ),
        (
            "a change output claiming our key at another script",
            one_in(
                31,
                &[
                    (elsewhere(2), 198_000, Some(CHANGE)),
                    (elsewhere(1), 1_000, None),
                ],
            ),
            "bitcoin_allowed_destinations",
        ),
        (
            "above the per-transaction limit",
            one_in(
                32,
                &[
                    (elsewhere(1), 100_001, None),
                    (change.clone(), 98_999, Some(CHANGE)),
                ],
            ),
            "bitcoin_max_sats_per_tx",
        ),
        (
            "a fee above the limit",
            one_in(
                33,
                &[
                    (elsewhere(1), 1_000, None),
                    (change.clone(), 192_999, Some(CHANGE)),
                ],
            ),
            "bitcoin_max_fee_sats",
        ),
        (
            "a fee rate above the limit",
            one_in(
                34,
                &[
                    (elsewhere(1), 1_000, None),
                    (change.clone(), 197_000, Some(CHANGE)),
                ],
            ),
            "bitcoin_max_fee_rate_sat_per_vb",
        ),
    ];
    for (what, p, want) in &attacks {
        let r = start_sign_input(&mut client, w, p, 0, IN0, "regtest", dsha).await;
        assert_eq!(denied_rule(what, r), *want, "{what}");
    }
    // A network not allowed (the PSBT is fine on testnet too).
    let r = start_sign_input(&mut client, w, &good, 0, IN0, "testnet", dsha).await;
    assert_eq!(denied_rule("testnet", r), "bitcoin_allowed_networks");

    // Refused before any session: what the PSBT is, naming the input.
    let out = [(elsewhere(1), 1_000, None)];
    let bad_inputs: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a foreign input",
            psbt(
                &keys,
                40,
                &[(IN0, 5_000, Spend::Ours), (IN1, 5_000, Spend::Foreign)],
                &out,
            ),
            "not_our_input",
        ),
        (
            "a Taproot input",
            psbt(
                &keys,
                41,
                &[(IN0, 5_000, Spend::Ours), (IN1, 5_000, Spend::Taproot)],
                &out,
            ),
            "unsupported_script",
        ),
        (
            "a P2PKH input",
            psbt(
                &keys,
                42,
                &[(IN0, 5_000, Spend::Ours), (IN1, 5_000, Spend::P2pkh)],
                &out,
            ),
            "unsupported_script",
        ),
    ];
    for (what, p, code) in &bad_inputs {
        let e = start_sign_input(&mut client, w, p, 0, IN0, "regtest", dsha)
            .await
            .expect_err(what);
        let m = metadata(&e);
        assert_eq!(
            RemoteError::from(&e).code,
            ErrorCode::PolicyDenied,
            "{what}: {e:?}"
        );
        assert_eq!(
            m.get("rule").map(String::as_str),
            Some("bitcoin_psbt"),
            "{what}"
        );
        assert_eq!(
            m.get("psbt_error").map(String::as_str),
            Some(*code),
            "{what}"
        );
        assert_eq!(m.get("input").map(String::as_str), Some("1"), "{what}");
    }
    // Refused before the policy's rules, and still audited: a denied sign_request naming
    // the codec's reason (an operator sees hostile PSBTs, not only rule decisions).
    let audit = svc.audit();
    for (what, _, code) in &bad_inputs {
        assert!(
            audit
                .lines()
                .any(|l| l.contains("\"event\":\"sign_request\"")
                    && l.contains("\"decision\":\"deny\"")
                    && l.contains("PAYLOAD_KIND_BITCOIN_PSBT_INPUT")
                    && l.contains(&format!(
                        "bitcoin_psbt: input 0: the PSBT is refused ({code})"
                    ))),
            "{what} is not audited: {audit}"
        );
    }
    for bad in [&b"not a psbt"[..], &good[..good.len() / 2]] {
        let e = start_sign_input(&mut client, w, bad, 0, IN0, "regtest", dsha)
            .await
            .expect_err("malformed");
        assert_eq!(
            metadata(&e).get("rule").map(String::as_str),
            Some("bitcoin_psbt")
        );
    }
    // A wrong path, input or network name: invalid input; another digest: refused.
    for (what, index, path, network) in [
        ("the path of another input", 0, IN1, "regtest"),
        ("an input that does not exist", 2, IN0, "regtest"),
        ("a network that does not exist", 0, IN0, "moon"),
    ] {
        let e = start_sign_input(&mut client, w, &good, index, path, network, dsha)
            .await
            .expect_err(what);
        assert_eq!(
            RemoteError::from(&e).code,
            ErrorCode::InvalidInput,
            "{what}: {e:?}"
        );
    }
    let r = start_sign_input(&mut client, w, &good, 0, IN0, "regtest", DigestKind::Sha256).await;
    assert_eq!(denied_rule("sha256", r), "payload_kind");

    // The fast path: the same refusals consume nothing; the good input signs.
    let half = presign_kept_at(&mut client, w, "account-0", IN0).await;
    let id = half.id.clone();
    let fast = |p: &[u8], path: &str, network: &str| {
        let mut req = pb::SignWithPresignatureRequest {
            auth: None,
            account_id: "account-0".into(),
            presignature_id: id.clone(),
            preimage: p.to_vec(),
            digest: dsha as i32,
            payload_kind: PayloadKind::BitcoinPsbtInput as i32,
            derivation_path: path.into(),
            input_index: 0,
            bitcoin_network: network.into(),
        };
        auth::sign_request(&mut req, &w.device, &w.cosigner, &w.id, 0).expect("sign request");
        req
    };
    let refused = [
        fast(&bad_inputs[0].1, IN0, "regtest"),
        fast(&attacks[0].1, IN0, "regtest"),
        fast(&good, IN0, "testnet"),
        fast(b"not a psbt", IN0, "regtest"),
    ];
    for req in refused {
        let e = client
            .sign_with_presignature(req)
            .await
            .expect_err("refused");
        assert!(
            matches!(
                RemoteError::from(&e).code,
                ErrorCode::PolicyDenied | ErrorCode::InvalidInput
            ),
            "{e:?}"
        );
    }
    assert!(
        pool_ids_at(&mut client, w, IN0).await.contains(&id),
        "a refused request consumed the presignature"
    );
    let partial = client
        .sign_with_presignature(fast(&good, IN0, "regtest"))
        .await
        .expect("fast path")
        .into_inner();
    assert_eq!(partial.digest, hex::encode(plan.inputs[0].sighash));
    let request = mpc_core::SignRequest {
        preimage: plan.inputs[0].preimage.clone(),
        digest: mpc_core::DigestKind::DoubleSha256,
    };
    let parsed = mpc_core::hd::DerivationPath::parse(IN0).expect("path");
    let child = w.device_accounts[0].public_key_at(&parsed).expect("child");
    let mine = half
        .clone()
        .issue_partial(&request, &parsed)
        .expect("device partial");
    let theirs =
        mpc_core::presign::partial_from_bytes(&partial.partial_signature).expect("partial");
    let sig = mpc_core::presign::combine_pair(
        &half.public,
        &[0, 1],
        0,
        mine,
        theirs,
        &request,
        &parsed,
        &child,
    )
    .expect("combines");
    let der = mpc_core::signature::bitcoin_der(&sig).expect("DER");
    sigs[0] = (0, wallet_btc::InputSignature::Der(der));
    wallet_btc::finalize_psbt(&good, &keys, net, &sigs).expect("the fast-path signature verifies");

    // Audited: txid, input, amounts and fee.
    let audit = svc.audit();
    assert!(
        audit.lines().any(|l| l.contains(&plan.txid)
            && l.contains("\"fee_sats\":1000")
            && l.contains("\"external_out_sats\":70000")
            && l.contains("\"input\":1")),
        "{audit}"
    );
    assert!(audit.contains("bitcoin_daily_limit_sats"), "{audit}");
}

/// The ids of the wallet's first account's pool at `path`.
async fn pool_ids_at(client: &mut CosignerClient<Channel>, w: &Wallet, path: &str) -> Vec<String> {
    pool_at(client, w, "account-0", path)
        .await
        .map(|p| p.presignature_ids)
        .unwrap_or_default()
}
