//! Property tests of what a caller reaches first: the request decoding (prost) and the
//! authentication of every RPC (`cosigner_api::auth` canonical encodings, through the
//! server's own `State::authenticate` against a wallet in a real store, and
//! `verify_device_request` for CreateWallet). Arbitrary requests never panic and never
//! authenticate; a validly signed request changed in any byte never authenticates.
//!
//! Case counts: `PROPTEST_CASES` when set (long runs, docs/SECURITY.md), else the
//! numbers below (CI: a few seconds in all).

use std::sync::{Arc, OnceLock};

use cosigner_api::auth::{self, AuthenticatedRequest};
use cosigner_api::pb;
use mpc_core::keystore::KeyShareBundle;
use mpc_core::AccountKind;
use mpc_wire::IdentityKey;
use proptest::prelude::*;
use prost::Message;

use crate::config::Config;
use crate::state::State;
use crate::store::{KeySource, Store, WalletRecord};
use crate::CosignerError;

/// `PROPTEST_CASES` if set, else `default`.
pub(crate) fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

/// A cosigner state whose store holds one committed wallet (the committed test wallet
/// of `testing/fixtures`, party 1's shares), with the device's and recovery's keys.
struct Fixture {
    st: Arc<State>,
    rt: tokio::runtime::Runtime,
    wallet_id: String,
    device: IdentityKey,
    recovery: IdentityKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let bundles = crate::dev_wallet::bundles();
        let key = |b: &KeyShareBundle| {
            IdentityKey::from_seed_hex(b.identity_secret.as_deref().expect("identity"))
                .expect("identity key")
        };
        let (device, recovery) = (key(&bundles[0]), key(&bundles[2]));
        let ours = &bundles[1];
        let dir = std::env::temp_dir().join(format!("sign-service-props-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("s.redb"), &KeySource::InsecureDev).expect("store");
        let wallet_id = "props-wallet".to_string();
        store
            .insert_wallet(&WalletRecord {
                wallet_id: wallet_id.clone(),
                label: "props".into(),
                kind: AccountKind::Independent,
                device_identity: device.public(),
                recovery_identity: recovery.public(),
                created_at_ms: 0,
                insecure_dev_primes: true,
                aux_info: ours.aux_info.clone().expect("aux info"),
                accounts: ours
                    .accounts
                    .iter()
                    .filter(|(_, a)| a.kind == AccountKind::Independent)
                    .map(|(k, a)| (k.clone(), a.clone()))
                    .collect(),
                share_epoch: 0,
                last_refresh_at_ms: None,
                retired_device_identities: Vec::new(),
            })
            .expect("insert wallet");
        let cfg = Config {
            audit_log: dir.join("audit.jsonl"),
            insecure_dev_primes: true,
            // Thousands of verified requests by one wallet party in seconds: the
            // properties are about authentication, not the rate limits.
            rate_limits: crate::config::RateLimits {
                requests_per_identity_per_second: 1_000_000,
                requests_burst_per_identity: 1_000_000,
                ..Default::default()
            },
            ..Config::default()
        };
        let st = State::new(cfg, Arc::new(store)).expect("state");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture {
            st,
            rt,
            wallet_id,
            device,
            recovery,
        }
    })
}

/// What the server answers for `req`: authenticated (the party) or the error.
fn authenticate<R: AuthenticatedRequest + Sync>(req: &R) -> Result<u16, CosignerError> {
    let f = fixture();
    f.rt.block_on(f.st.authenticate(req))
        .map(|(_, party)| party)
}

/// A fresh-looking auth for the real wallet with a signature of nobody.
fn forged_auth(party: u32, nonce: [u8; 16], signature: Vec<u8>) -> pb::Auth {
    pb::Auth {
        audience: fixture().st.public_identity().to_string(),
        wallet_id: fixture().wallet_id.clone(),
        party,
        timestamp_ms: auth::now_ms(),
        nonce: nonce.to_vec(),
        signature,
    }
}

/// One byte-level change of an encoded message.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        Mutation::Flip(i, x) if n > 0 => bytes[i % n] ^= x,
        Mutation::Insert(i, x) => bytes.insert(i % (n + 1), x),
        Mutation::Delete(i) if n > 0 => {
            bytes.remove(i % n);
        }
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        _ => {}
    }
}

/// The three properties for one request type: arbitrary bytes, arbitrary fields with a
/// forged auth for the real wallet, and one-byte changes of a validly signed request
/// (which itself authenticates: the test can fail).
fn check_request<R>(
    bytes: &[u8],
    party: u32,
    nonce: [u8; 16],
    signature: Vec<u8>,
    m: &Mutation,
    signer: u16,
) -> Result<(), TestCaseError>
where
    R: AuthenticatedRequest + Message + Default + Clone + PartialEq + Sync,
{
    // Arbitrary bytes: decoding never panics, and nothing decoded authenticates.
    if let Ok(req) = R::decode(bytes) {
        prop_assert!(authenticate(&req).is_err(), "arbitrary bytes authenticated");
        // The same fields with a fresh auth for the real wallet: a bad signature.
        let mut forged = req;
        forged.set_auth(forged_auth(party, nonce, signature));
        let e = authenticate(&forged).expect_err("a forged request authenticated");
        prop_assert_eq!(e.code(), wallet_types::ErrorCode::Unauthorized, "{}", e);
    }
    // A validly signed request, changed in one byte.
    let f = fixture();
    let key = if signer == 0 { &f.device } else { &f.recovery };
    let mut valid = R::decode(bytes).unwrap_or_default();
    let me = f.st.public_identity();
    auth::sign_request(&mut valid, key, &me, &f.wallet_id, signer).expect("sign");
    let mut encoded = valid.encode_to_vec();
    apply(&mut encoded, m);
    if let Ok(changed) = R::decode(encoded.as_slice()) {
        if changed != valid {
            prop_assert!(
                authenticate(&changed).is_err(),
                "a changed request authenticated: {:?}",
                m
            );
        }
    }
    // The unchanged request authenticates (once: its nonce is now used).
    prop_assert_eq!(authenticate(&valid).ok(), Some(signer));
    prop_assert!(authenticate(&valid).is_err(), "a replay authenticated");
    Ok(())
}

macro_rules! request_props {
    ($($name:ident: $ty:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(config(192))]
            $(
                #[test]
                fn $name(
                    bytes in proptest::collection::vec(any::<u8>(), 0..160),
                    party in prop_oneof![Just(0u32), Just(2u32), any::<u32>()],
                    nonce in any::<[u8; 16]>(),
                    signature in proptest::collection::vec(any::<u8>(), 0..80),
                    m in mutation(),
                    signer in prop_oneof![Just(0u16), Just(2u16)],
                ) {
                    check_request::<$ty>(&bytes, party, nonce, signature, &m, signer)?;
                }
            )*
        }
    };
}

request_props! {
    confirm_wallet_requests: pb::ConfirmWalletRequest,
    start_sign_requests: pb::StartSignRequest,
    get_public_key_requests: pb::GetPublicKeyRequest,
    list_accounts_requests: pb::ListAccountsRequest,
    start_presign_requests: pb::StartPresignRequest,
    presign_pool_status_requests: pb::PresignPoolStatusRequest,
    sign_with_presignature_requests: pb::SignWithPresignatureRequest,
}

proptest! {
    #![proptest_config(config(1024))]

    /// CreateWallet: arbitrary requests never verify; a validly signed one changed in
    /// one byte never verifies.
    #[test]
    fn create_wallet_requests(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        m in mutation(),
    ) {
        let window = 120_000;
        let me = fixture().st.public_identity();
        if let Ok(req) = pb::CreateWalletRequest::decode(bytes.as_slice()) {
            prop_assert!(auth::verify_device_request(&req, &me, auth::now_ms(), window).is_err());
        }
        let f = fixture();
        let mut valid = pb::CreateWalletRequest::decode(bytes.as_slice()).unwrap_or_default();
        valid.recovery_identity = f.recovery.public().to_string();
        auth::sign_device_request(&mut valid, &f.device, &me).expect("sign");
        prop_assert!(auth::verify_device_request(&valid, &me, auth::now_ms(), window).is_ok());
        let mut encoded = valid.encode_to_vec();
        apply(&mut encoded, &m);
        if let Ok(changed) = pb::CreateWalletRequest::decode(encoded.as_slice()) {
            if changed != valid {
                prop_assert!(
                    auth::verify_device_request(&changed, &me, auth::now_ms(), window).is_err(),
                    "a changed CreateWallet verified: {:?}", m
                );
            }
        }
    }
}
