//! Policy attacks against a real `sign-service` process (and `sign-gateway`), as a
//! compromised device would make them: signed, well-formed StartSign requests for
//! things the policy must refuse. Each refusal must carry `policy_denied` and the rule
//! in google.rpc.ErrorInfo (or `invalid_input` for unsupported transaction types).

mod common;

use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_primitives::{Address, TxKind, U256};
use common::*;
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
    let mut svc = start_service(&gw, &policy, false).await;
    let mut client = svc.client().await;
    let w = create_wallet(&mut client, 1, mpc_core::AccountKind::Independent).await;
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
    let audit = svc.audit();
    assert!(audit.contains("allow_raw"), "{audit}");

    // Enabled for this wallet only: raw preimages are co-signed for it, with a warning.
    let other = create_wallet(&mut client, 1, mpc_core::AccountKind::Independent).await;
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
/// with a signed StartSign; the refusal names its rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereum_rules_refuse_each_attack_naming_the_rule() {
    let gw = gateway().await;
    let policy = format!(
        "session_timeout_secs: 5\npolicy:\n  ethereum:\n    allowed_chain_ids: [1]\n    \
         allowed_destinations: [\"{ALLOWED}\"]\n    max_value_per_tx_wei: \"1000000\"\n    \
         erc20:\n      allowed_recipients: [\"{FRIEND}\"]\n      tokens:\n        \
         \"{TOKEN}\":\n          max_amount_per_tx: \"1000\"\n"
    );
    let svc = start_service(&gw, &policy, false).await;
    let mut client = svc.client().await;
    let w = create_wallet(&mut client, 1, mpc_core::AccountKind::Independent).await;
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
    let svc = start_service(&gw, &policy, false).await;
    let mut client = svc.client().await;
    let w = create_wallet(&mut client, 1, mpc_core::AccountKind::Independent).await;
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
