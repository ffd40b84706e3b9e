//! Known-answer vectors of the cosigner request signatures, computed with
//! `cosigner_api::auth` directly (independently of the wasm API code).

use cosigner_api::auth;
use cosigner_api::pb;
use serde_json::{json, Value};

/// Device seed of the vectors.
pub const DEVICE_SEED: [u8; 32] = [7; 32];
/// Recovery seed of the vectors.
pub const RECOVERY_SEED: [u8; 32] = [9; 32];
/// Seed of the cosigner identity the vectors are signed for (their audience).
pub const COSIGNER_SEED: [u8; 32] = [5; 32];
/// Timestamp of the vectors.
pub const TIMESTAMP_MS: u64 = 1_764_000_000_000;
/// Nonce of the vectors.
pub const NONCE: [u8; 16] = [0xab; 16];

/// The vectors as JSON.
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub fn compute() -> Value {
    let dev = mpc_wire::IdentityKey::from_seed(&DEVICE_SEED);
    let rec = mpc_wire::IdentityKey::from_seed(&RECOVERY_SEED);
    let cos = mpc_wire::IdentityKey::from_seed(&COSIGNER_SEED).public();
    let mut cw = pb::CreateWalletRequest {
        recovery_identity: rec.public().to_string(),
        accounts: 2,
        kind: 1,
        label: "demo wallet".into(),
        ..Default::default()
    };
    auth::sign_device_request_at(&mut cw, &dev, &cos, TIMESTAMP_MS, NONCE).expect("sign");
    let mut confirm = pb::ConfirmWalletRequest {
        auth: None,
        public_keys: [
            ("acct-1".to_string(), "02aa".to_string()),
            ("acct-0".to_string(), "03bb".to_string()),
        ]
        .into_iter()
        .collect(),
    };
    auth::sign_request_at(&mut confirm, &dev, &cos, "wallet-1", 0, TIMESTAMP_MS, NONCE)
        .expect("sign");
    let mut start = pb::StartSignRequest {
        auth: None,
        account_id: "acct-0".into(),
        derivation_path: "m/44/60/0/0/7".into(),
        preimage: b"\x19Ethereum Signed Message:\n5hello".to_vec(),
        digest: 1,
        payload_kind: 3,
        ..Default::default()
    };
    auth::sign_request_at(&mut start, &rec, &cos, "wallet-1", 2, TIMESTAMP_MS, NONCE)
        .expect("sign");
    let mut gpk = pb::GetPublicKeyRequest {
        auth: None,
        account_id: "acct-0".into(),
        derivation_path: "".into(),
    };
    auth::sign_request_at(&mut gpk, &dev, &cos, "wallet-1", 0, TIMESTAMP_MS, NONCE).expect("sign");
    let mut list = pb::ListAccountsRequest { auth: None };
    auth::sign_request_at(&mut list, &dev, &cos, "wallet-1", 0, TIMESTAMP_MS, NONCE).expect("sign");
    let sig = |a: &Option<pb::Auth>| hex::encode(&a.as_ref().expect("auth").signature);
    json!({
        "device_seed": hex::encode(DEVICE_SEED),
        "device_identity": dev.public().to_string(),
        "recovery_seed": hex::encode(RECOVERY_SEED),
        "recovery_identity": rec.public().to_string(),
        "cosigner_seed": hex::encode(COSIGNER_SEED),
        "cosigner_identity": cos.to_string(),
        "timestamp_ms": TIMESTAMP_MS,
        "nonce": hex::encode(NONCE),
        "create_wallet": { "accounts": 2, "kind": 1, "label": "demo wallet", "signature": hex::encode(&cw.signature) },
        "confirm_wallet": { "wallet_id": "wallet-1", "party": 0, "public_keys": {"acct-1": "02aa", "acct-0": "03bb"}, "signature": sig(&confirm.auth) },
        "start_sign": { "wallet_id": "wallet-1", "party": 2, "account_id": "acct-0", "derivation_path": "m/44/60/0/0/7",
                         "preimage": hex::encode(&start.preimage), "digest": 1, "payload_kind": 3, "signature": sig(&start.auth) },
        "get_public_key": { "wallet_id": "wallet-1", "party": 0, "account_id": "acct-0", "derivation_path": "", "signature": sig(&gpk.auth) },
        "list_accounts": { "wallet_id": "wallet-1", "party": 0, "signature": sig(&list.auth) },
    })
}
