//! The wasm-bindgen exports (see API.md). Only value conversion happens here; the
//! logic is in `api`, `driver` and `transport`.

use std::collections::BTreeMap;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use mpc_core::primes::PrimeSet;
use mpc_core::session::Progress;
use mpc_core::{Session, SessionOutput, PARTIES, THRESHOLD};
use mpc_party::Relay;
use mpc_wire::{Roster, SessionId};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::api::{self, BundleCore, PresigCore};
use crate::driver::drive;
use crate::error::{ApiError, ApiResult, Code};
use crate::transport::{Gateway, TransportKind};

// ---------------------------------------------------------------------------------
// Conversions

/// Converts an [`ApiError`] into a JS `Error` with `code` (and `party`, `status`).
pub fn to_js_error(e: ApiError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("MpcError");
    let o: &JsValue = err.as_ref();
    let _ = Reflect::set(o, &"code".into(), &e.code.as_str().into());
    if let Some(p) = e.party {
        let _ = Reflect::set(o, &"party".into(), &JsValue::from(p));
    }
    if let Some(s) = e.status {
        let _ = Reflect::set(o, &"status".into(), &JsValue::from(s));
    }
    err.into()
}

type JsResult<T> = Result<T, JsValue>;

fn js<T>(r: ApiResult<T>) -> JsResult<T> {
    r.map_err(to_js_error)
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> JsResult<JsValue> {
    let s = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    v.serialize(&s).map_err(|e| {
        to_js_error(ApiError::new(
            Code::Internal,
            format!("cannot convert result: {e}"),
        ))
    })
}

fn from_value<T: serde::de::DeserializeOwned>(what: &str, v: JsValue) -> JsResult<T> {
    serde_wasm_bindgen::from_value(v)
        .map_err(|e| to_js_error(ApiError::input(format!("invalid {what}: {e}"))))
}

fn now_ms_u64() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

fn ts_or_now(ts: Option<f64>) -> JsResult<u64> {
    match ts {
        None => Ok(now_ms_u64()),
        Some(t)
            if t.is_finite()
                && (0.0..=9_007_199_254_740_991.0).contains(&t)
                && t.fract() == 0.0 =>
        {
            Ok(t as u64)
        }
        Some(t) => Err(to_js_error(ApiError::input(format!(
            "invalid timestampMs {t}"
        )))),
    }
}

/// Installs the panic hook when the module starts: panics (bugs) are logged to the
/// console, and any hook installed before (e.g. a test harness's) still runs.
#[wasm_bindgen(start)]
pub fn start() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            console_error_panic_hook::hook(info);
            previous(info);
        }));
    });
}

/// The crate version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

// ---------------------------------------------------------------------------------
// Identity and request signatures

/// Generates a device identity: `{ secret: Uint8Array(32), publicIdentity: string }`.
#[wasm_bindgen(js_name = generateIdentity)]
pub fn generate_identity() -> JsResult<JsValue> {
    to_value(&js(api::generate_identity())?)
}

/// The public identity (128 hex) of a 32-byte identity secret.
#[wasm_bindgen(js_name = identityPublic)]
pub fn identity_public(secret: &[u8]) -> JsResult<String> {
    Ok(js(api::identity_from_secret(secret))?.public().to_string())
}

/// Checks a passphrase chosen for a new key file (`mpc_core::keystore::check_passphrase`:
/// at least 12 characters, 6 different ones, no shorter pattern repeated); throws
/// `invalid_input` naming the reason.
#[wasm_bindgen(js_name = checkPassphrase)]
pub fn check_passphrase(passphrase: &str) -> JsResult<()> {
    js(mpc_core::keystore::check_passphrase(passphrase)
        .map_err(|e| api::ApiError::input(e.to_string())))
}

/// Decodes a failed cosigner call (gRPC status code, message, the
/// `grpc-status-details-bin` trailer as base64 text or bytes; empty when absent) into
/// `{ code, rule?, presignature?, party?, retryable }` (see API.md).
#[wasm_bindgen(js_name = decodeCosignerError)]
pub fn decode_cosigner_error(grpc_code: i32, message: &str, details: &[u8]) -> JsResult<JsValue> {
    to_value(&api::decode_cosigner_error(grpc_code, message, details))
}

/// Signs a CreateWalletRequest (see API.md).
#[wasm_bindgen(js_name = signCreateWallet)]
pub fn sign_create_wallet(
    device_secret: &[u8],
    req: JsValue,
    timestamp_ms: Option<f64>,
    nonce: Option<Vec<u8>>,
) -> JsResult<JsValue> {
    let input: api::CreateWalletInput = from_value("CreateWallet fields", req)?;
    let ts = ts_or_now(timestamp_ms)?;
    to_value(&js(api::sign_create_wallet(
        device_secret,
        input,
        ts,
        nonce.as_deref(),
    ))?)
}

/// Signs an authenticated request and returns its proto `Auth` (see API.md).
#[wasm_bindgen(js_name = signAuth)]
pub fn sign_auth(
    secret: &[u8],
    method: &str,
    wallet_id: &str,
    party: u16,
    fields: JsValue,
    timestamp_ms: Option<f64>,
    nonce: Option<Vec<u8>>,
) -> JsResult<JsValue> {
    let fields: api::AuthFields = if fields.is_undefined() || fields.is_null() {
        api::AuthFields::default()
    } else {
        from_value("request fields", fields)?
    };
    let ts = ts_or_now(timestamp_ms)?;
    to_value(&js(api::sign_auth(
        secret,
        method,
        wallet_id,
        party,
        fields,
        ts,
        nonce.as_deref(),
    ))?)
}

// ---------------------------------------------------------------------------------
// Helpers

/// Hex digest of `preimage` (`keccak256`, `double_sha256`, `sha256`).
#[wasm_bindgen]
pub fn digest(kind: &str, preimage: &[u8]) -> JsResult<String> {
    Ok(hex::encode(js(api::parse_digest(kind))?.digest(preimage)))
}

/// The EIP-191 personal-message preimage of a string or bytes.
#[wasm_bindgen(js_name = eip191Preimage)]
pub fn eip191_preimage(message: JsValue) -> JsResult<Vec<u8>> {
    let bytes = if let Some(s) = message.as_string() {
        s.into_bytes()
    } else if message.is_instance_of::<Uint8Array>() {
        Uint8Array::from(message).to_vec()
    } else {
        return Err(to_js_error(ApiError::input(
            "message must be a string or a Uint8Array",
        )));
    };
    Ok(mpc_core::digest::eip191_preimage(&bytes))
}

/// EIP-55 Ethereum address of a public key (compressed or uncompressed hex).
#[wasm_bindgen(js_name = ethereumAddress)]
pub fn ethereum_address(public_key: &str) -> JsResult<String> {
    Ok(mpc_core::address::ethereum_address(&js(api::parse_point(
        public_key,
    ))?))
}

/// P2WPKH address of a public key.
#[wasm_bindgen(js_name = bitcoinAddress)]
pub fn bitcoin_address(public_key: &str, network: Option<String>) -> JsResult<String> {
    js(api::bitcoin_address(public_key, network.as_deref()))
}

/// Non-hardened BIP-32 public derivation.
#[wasm_bindgen(js_name = derivePublicKey)]
pub fn derive_public_key(public_key: &str, chain_code: &str, path: &str) -> JsResult<String> {
    js(api::derive_public_key(public_key, chain_code, path))
}

/// Whether (r, s) verifies over the digest for the public key.
#[wasm_bindgen(js_name = verifySignature)]
pub fn verify_signature(public_key: &str, digest_hex: &str, r: &str, s: &str) -> JsResult<bool> {
    js(api::verify_signature(public_key, digest_hex, r, s))
}

/// Every encoding of a signature (verified first).
#[wasm_bindgen(js_name = encodeSignature)]
pub fn encode_signature(r: &str, s: &str, digest_hex: &str, public_key: &str) -> JsResult<JsValue> {
    to_value(&js(api::encode_signature_hex(
        r, s, digest_hex, public_key,
    ))?)
}

/// The committed **public** dev prime fixtures (tests and demos only: insecure).
#[wasm_bindgen(js_name = devFixturePrimes)]
pub fn dev_fixture_primes() -> JsResult<JsValue> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Fixture {
        insecure_public_fixture: bool,
        warning: &'static str,
        parties: Vec<PrimeSet>,
    }
    to_value(&Fixture {
        insecure_public_fixture: true,
        warning: "PUBLIC test primes: anyone can break keys whose aux info uses them. Tests and demos only.",
        parties: mpc_core::primes::dev_fixture_primes(),
    })
}

/// Checks a prime set; throws `invalid_input`.
#[wasm_bindgen(js_name = validatePrimes)]
pub fn validate_primes(set: JsValue) -> JsResult<()> {
    let set: PrimeSet = from_value("prime set", set)?;
    js(api::validate_primes(&set)).map(|_| ())
}

/// Whether a prime set contains a public fixture prime.
#[wasm_bindgen(js_name = isPublicFixturePrimes)]
pub fn is_public_fixture_primes(set: JsValue) -> JsResult<bool> {
    let set: PrimeSet = from_value("prime set", set)?;
    Ok(set.is_public_fixture())
}

/// Generates a prime set with our sieve-first generator (`safe-primes`; one blocking
/// computation in this thread: run it in a Web Worker). `onProgress(done)` runs after
/// each of the 4 primes. The output goes to `runAuxInfo`.
#[wasm_bindgen(js_name = generatePrimes)]
pub fn generate_primes(on_progress: Option<Function>) -> Promise {
    future_to_promise(async move {
        // Let the caller's event loop run once before the long computation.
        crate::transport::sleep(0).await;
        let mut seen = 0u64;
        let set = PrimeSet::generate_fast(1, None, &mut |p| {
            while seen < p.found.min(4) {
                seen += 1;
                if let Some(f) = &on_progress {
                    let _ = f.call1(&JsValue::NULL, &JsValue::from(seen as u32));
                }
            }
        })
        .map_err(|e| {
            to_js_error(ApiError::new(
                Code::Internal,
                format!("prime generation failed: {e}"),
            ))
        })?;
        to_value(&set)
    })
}

// ---------------------------------------------------------------------------------
// Opaque protocol outputs

/// Aux info of one party (secret: Paillier keys).
#[wasm_bindgen]
pub struct AuxInfo {
    inner: mpc_core::AuxInfo,
}

#[wasm_bindgen]
impl AuxInfo {
    /// Serialized (JSON bytes; secret).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> JsResult<Vec<u8>> {
        js(api::to_json_bytes("aux info", &self.inner))
    }
    /// Parses bytes from `toBytes`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<AuxInfo> {
        Ok(AuxInfo {
            inner: js(api::from_json_bytes("aux info", bytes))?,
        })
    }
}

/// A party's share of a new key (before it joins a bundle).
#[wasm_bindgen]
pub struct KeygenShare {
    inner: mpc_core::IncompleteKeyShare,
}

#[wasm_bindgen]
impl KeygenShare {
    /// Compressed hex of the shared public key.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> String {
        hex::encode(self.inner.shared_public_key.to_bytes(true))
    }
    /// Chain code hex (HD keys).
    #[wasm_bindgen(getter, js_name = chainCode)]
    pub fn chain_code(&self) -> Option<String> {
        self.inner.chain_code.map(hex::encode)
    }
    /// Keygen index of the holder.
    #[wasm_bindgen(getter, js_name = partyIndex)]
    pub fn party_index(&self) -> u16 {
        self.inner.i
    }
    /// Serialized (JSON bytes; secret).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> JsResult<Vec<u8>> {
        js(api::to_json_bytes("key share", &self.inner))
    }
    /// Parses bytes from `toBytes`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<KeygenShare> {
        Ok(KeygenShare {
            inner: js(api::from_json_bytes("key share", bytes))?,
        })
    }
}

/// A presignature (secret, single use).
#[wasm_bindgen]
pub struct Presignature {
    inner: PresigCore,
}

#[wasm_bindgen]
impl Presignature {
    /// Id (the presign session id).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> JsResult<String> {
        js(self.inner.id())
    }
    /// Account id.
    #[wasm_bindgen(getter, js_name = accountId)]
    pub fn account_id(&self) -> JsResult<String> {
        js(self.inner.account_id())
    }
    /// Signers (keygen indices).
    #[wasm_bindgen(getter)]
    pub fn signers(&self) -> JsResult<Vec<u16>> {
        js(self.inner.signers())
    }
    /// Serialized (secret; store encrypted; use once).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> JsResult<Vec<u8>> {
        js(self.inner.to_bytes())
    }
    /// Parses bytes from `toBytes`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<Presignature> {
        Ok(Presignature {
            inner: js(PresigCore::from_bytes(bytes))?,
        })
    }
    /// Public data for `combinePartialSignatures`.
    #[wasm_bindgen(js_name = publicData)]
    pub fn public_data(&self) -> JsResult<Vec<u8>> {
        js(self.inner.public_data())
    }
    /// Issues this party's partial signature; consumes the presignature.
    #[wasm_bindgen(js_name = issuePartial)]
    pub fn issue_partial(&mut self, preimage: &[u8], digest: &str) -> JsResult<Vec<u8>> {
        let d = js(api::parse_digest(digest))?;
        js(self.inner.issue_partial(preimage, d))
    }
}

/// Combines partial signatures (in signers order) into a verified signature.
#[wasm_bindgen(js_name = combinePartialSignatures)]
pub fn combine_partial_signatures(
    public_data: &[u8],
    partials: Vec<Uint8Array>,
    preimage: &[u8],
    digest: &str,
    public_key: &str,
) -> JsResult<JsValue> {
    let d = js(api::parse_digest(digest))?;
    let partials: Vec<Vec<u8>> = partials.iter().map(Uint8Array::to_vec).collect();
    to_value(&js(api::combine_partials(
        public_data,
        &partials,
        preimage,
        d,
        public_key,
    ))?)
}

// ---------------------------------------------------------------------------------
// Bundle

/// A party's key-share bundle (same content as the native client's).
#[wasm_bindgen]
pub struct Bundle {
    inner: BundleCore,
}

#[wasm_bindgen]
impl Bundle {
    /// A new bundle: party index, own identity secret, the other parties' identities.
    #[wasm_bindgen(constructor)]
    pub fn new(party_index: u16, identity_secret: &[u8], peers: JsValue) -> JsResult<Bundle> {
        let peers = js(index_map("peers", from_value("peers", peers)?))?;
        Ok(Bundle {
            inner: js(BundleCore::new(party_index, identity_secret, peers))?,
        })
    }
    /// Sets the aux info (consumes it).
    #[wasm_bindgen(js_name = setAuxInfo)]
    pub fn set_aux_info(&mut self, aux: AuxInfo) {
        self.inner.set_aux_info(aux.inner);
    }
    /// Adds an account from a DKG share (consumes it).
    #[wasm_bindgen(js_name = addAccount)]
    pub fn add_account(
        &mut self,
        account_id: &str,
        kind: &str,
        share: KeygenShare,
        created_at_secs: Option<f64>,
    ) -> JsResult<JsValue> {
        let kind = js(api::parse_kind(kind))?;
        let created = created_at_secs.unwrap_or_else(|| (js_sys::Date::now() / 1000.0).floor());
        let info =
            js(self
                .inner
                .add_account(account_id, kind, share.inner, created.max(0.0) as u64))?;
        to_value(&info)
    }
    /// Keygen index.
    #[wasm_bindgen(getter, js_name = partyIndex)]
    pub fn party_index(&self) -> u16 {
        self.inner.bundle.party_index
    }
    /// Own public identity.
    #[wasm_bindgen(js_name = identityPublic)]
    pub fn identity_public(&self) -> JsResult<String> {
        Ok(js(self.inner.identity())?.public().to_string())
    }
    /// Own identity secret (32 bytes).
    #[wasm_bindgen(js_name = identitySecret)]
    pub fn identity_secret(&self) -> JsResult<Vec<u8>> {
        let id = js(self.inner.identity())?;
        hex::decode(id.to_seed_hex().as_bytes())
            .map_err(|e| to_js_error(ApiError::new(Code::Internal, e.to_string())))
    }
    /// The other parties' identities.
    pub fn peers(&self) -> JsResult<JsValue> {
        to_value(&self.inner.bundle.peers)
    }
    /// Accounts.
    pub fn accounts(&self) -> JsResult<JsValue> {
        to_value(&self.inner.accounts())
    }
    /// Public key and addresses of an account at a path.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(
        &self,
        account_id: &str,
        derivation_path: Option<String>,
    ) -> JsResult<JsValue> {
        to_value(&js(self
            .inner
            .public_key(account_id, derivation_path.as_deref()))?)
    }
    /// Plaintext JSON bytes (encrypt with WebCrypto before storing).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> JsResult<Vec<u8>> {
        Ok(js(self.inner.to_bytes())?.to_vec())
    }
    /// Parses plaintext bytes.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<Bundle> {
        Ok(Bundle {
            inner: js(BundleCore::from_bytes(bytes))?,
        })
    }
    /// Passphrase-encrypted keystore file (Argon2id), same format as the native client.
    #[wasm_bindgen(js_name = encryptWithPassphrase)]
    pub fn encrypt_with_passphrase(
        &self,
        passphrase: &str,
        insecure_fast_kdf: Option<bool>,
    ) -> JsResult<String> {
        js(self
            .inner
            .encrypt(passphrase, insecure_fast_kdf.unwrap_or(false)))
    }
    /// Decrypts a keystore file.
    #[wasm_bindgen(js_name = decryptWithPassphrase)]
    pub fn decrypt_with_passphrase(file: &str, passphrase: &str) -> JsResult<Bundle> {
        Ok(Bundle {
            inner: js(BundleCore::decrypt(file, passphrase))?,
        })
    }
}

// ---------------------------------------------------------------------------------
// Sessions

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomIn {
    #[serde(alias = "session_id")]
    session_id: String,
    room: String,
    #[serde(default, alias = "room_token")]
    room_token: Option<String>,
    #[serde(alias = "gateway_url")]
    gateway_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionOptionsIn {
    room: RoomIn,
    me: u16,
    #[serde(with = "serde_bytes")]
    identity_secret: Vec<u8>,
    roster: BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<f64>,
    #[serde(default)]
    transport: TransportKind,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignOptionsIn {
    room: RoomIn,
    signers: Vec<u16>,
    account_id: String,
    #[serde(default)]
    derivation_path: Option<String>,
    #[serde(with = "serde_bytes")]
    preimage: Vec<u8>,
    digest: String,
    #[serde(default)]
    timeout_ms: Option<f64>,
    #[serde(default)]
    transport: TransportKind,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresignOptionsIn {
    room: RoomIn,
    signers: Vec<u16>,
    account_id: String,
    #[serde(default)]
    timeout_ms: Option<f64>,
    #[serde(default)]
    transport: TransportKind,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProgressOut {
    phase: &'static str,
    round: u16,
    total_rounds: u16,
    percent: u8,
    finished: bool,
}

fn progress_fn(cb: Option<Function>) -> impl Fn(Progress) {
    move |p: Progress| {
        if let Some(f) = &cb {
            let out = ProgressOut {
                phase: p.kind.as_str(),
                round: p.round,
                total_rounds: p.total_rounds,
                percent: p.percent(),
                finished: p.finished,
            };
            if let Ok(v) = to_value(&out) {
                // A throwing callback must not break the session.
                let _ = f.call1(&JsValue::NULL, &v);
            }
        }
    }
}

/// JS object keys are strings: `{ 1: "..." }` arrives as `{"1": "..."}`.
fn index_map(what: &str, m: BTreeMap<String, String>) -> ApiResult<BTreeMap<u16, String>> {
    m.into_iter()
        .map(|(k, v)| {
            k.parse::<u16>()
                .map(|k| (k, v))
                .map_err(|_| ApiError::input(format!("{what}: key {k:?} is not a party index")))
        })
        .collect()
}

fn session_id(s: &str) -> ApiResult<SessionId> {
    SessionId::new(s).map_err(|e| ApiError::input(format!("session id: {e}")))
}

fn roster_of(map: &BTreeMap<u16, String>) -> ApiResult<Roster> {
    let ids = map
        .iter()
        .map(|(p, h)| api::parse_identity(&format!("roster entry {p}"), h).map(|id| (*p, id)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Roster::new(ids)?)
}

/// Everything needed to run a session, prepared synchronously.
struct Prepared {
    gateway: Gateway,
    transport: TransportKind,
    relay: Relay,
    timeout_ms: f64,
}

fn prepare(
    room: &RoomIn,
    me: u16,
    identity: mpc_wire::IdentityKey,
    roster: Roster,
    timeout_ms: f64,
    transport: TransportKind,
) -> ApiResult<Prepared> {
    let sid = session_id(&room.session_id)?;
    let gateway = Gateway::new(&room.gateway_url, &room.room, room.room_token.as_deref())?;
    if roster.get(me) != Some(&identity.public()) {
        return Err(ApiError::input(format!(
            "the roster entry of party {me} is not the identity of the given secret"
        )));
    }
    let relay = Relay::new(sid, me, identity, roster)?;
    if !(timeout_ms.is_finite() && timeout_ms > 0.0) {
        return Err(ApiError::input(format!("invalid timeoutMs {timeout_ms}")));
    }
    Ok(Prepared {
        gateway,
        transport,
        relay,
        timeout_ms,
    })
}

async fn run_prepared(
    p: Prepared,
    session: Session,
    progress: impl Fn(Progress),
) -> ApiResult<SessionOutput> {
    let (mut inbox, _subscription) = p.gateway.subscribe(p.transport)?;
    drive(
        session,
        p.relay,
        &p.gateway,
        &mut inbox,
        p.timeout_ms,
        &progress,
    )
    .await
}

fn unexpected(what: &str) -> ApiError {
    ApiError::new(Code::Internal, format!("the session produced no {what}"))
}

/// Runs this party's aux-info session over the gateway. Resolves to an `AuxInfo`.
#[wasm_bindgen(js_name = runAuxInfo)]
pub fn run_aux_info(
    opts: JsValue,
    primes: JsValue,
    on_progress: Option<Function>,
) -> JsResult<Promise> {
    let o: SessionOptionsIn = from_value("session options", opts)?;
    let set: PrimeSet = from_value("prime set", primes)?;
    let pre = js(api::validate_primes(&set))?;
    let identity = js(api::identity_from_secret(&o.identity_secret))?;
    let roster = js(index_map("roster", o.roster.clone()).and_then(|m| roster_of(&m)))?;
    let prepared = js(prepare(
        &o.room,
        o.me,
        identity,
        roster,
        o.timeout_ms.unwrap_or(600_000.0),
        o.transport,
    ))?;
    let session = js(
        Session::aux_info(o.room.session_id.as_bytes(), o.me, PARTIES, pre).map_err(ApiError::from),
    )?;
    let progress = progress_fn(on_progress);
    Ok(future_to_promise(async move {
        match js(run_prepared(prepared, session, progress).await)? {
            SessionOutput::AuxInfo(a) => Ok(AuxInfo { inner: *a }.into()),
            _ => Err(to_js_error(unexpected("aux info"))),
        }
    }))
}

/// Runs this party's DKG session over the gateway. Resolves to a `KeygenShare`.
#[wasm_bindgen(js_name = runKeygen)]
pub fn run_keygen(opts: JsValue, on_progress: Option<Function>) -> JsResult<Promise> {
    let o: SessionOptionsIn = from_value("session options", opts)?;
    let identity = js(api::identity_from_secret(&o.identity_secret))?;
    let roster = js(index_map("roster", o.roster.clone()).and_then(|m| roster_of(&m)))?;
    let prepared = js(prepare(
        &o.room,
        o.me,
        identity,
        roster,
        o.timeout_ms.unwrap_or(120_000.0),
        o.transport,
    ))?;
    let session = js(
        Session::keygen(o.room.session_id.as_bytes(), o.me, PARTIES, THRESHOLD)
            .map_err(ApiError::from),
    )?;
    let progress = progress_fn(on_progress);
    Ok(future_to_promise(async move {
        match js(run_prepared(prepared, session, progress).await)? {
            SessionOutput::Keygen(s) => Ok(KeygenShare { inner: *s }.into()),
            _ => Err(to_js_error(unexpected("key share"))),
        }
    }))
}

/// What a sign session needs besides the transport.
pub(crate) struct SignPlan {
    pub session: Session,
    pub public_key: mpc_core::Point,
    pub digest: [u8; 32],
}

pub(crate) fn plan_sign(
    bundle: &BundleCore,
    session_id: &str,
    signers: Vec<u16>,
    account_id: &str,
    path: Option<&str>,
    preimage: &[u8],
    digest: &str,
) -> ApiResult<SignPlan> {
    let kind = api::parse_digest(digest)?;
    let share = bundle.key_share(account_id)?;
    let path = api::parse_path(path)?;
    let public_key = bundle.account(account_id)?.public_key_at(&path)?;
    let indices = if path.is_root() {
        None
    } else {
        Some(path.indices().to_vec())
    };
    let session = Session::sign(
        session_id.as_bytes(),
        signers,
        share,
        indices,
        kind.data_to_sign(preimage),
    )?;
    Ok(SignPlan {
        session,
        public_key,
        digest: kind.digest(preimage),
    })
}

pub(crate) fn finish_sign(
    plan_pk: &mpc_core::Point,
    digest: &[u8; 32],
    out: SessionOutput,
) -> ApiResult<api::SignatureResult> {
    match out {
        SessionOutput::Signature(sig) => api::encode_signature(plan_pk, digest, &sig),
        _ => Err(unexpected("signature")),
    }
}

/// Runs a full signing session over the gateway. Resolves to a verified `SignatureResult`.
#[wasm_bindgen(js_name = runSign)]
pub fn run_sign(
    bundle: &Bundle,
    opts: JsValue,
    on_progress: Option<Function>,
) -> JsResult<Promise> {
    let o: SignOptionsIn = from_value("sign options", opts)?;
    let b = &bundle.inner;
    let identity = js(b.identity())?;
    let roster = js(b.roster(&o.signers))?;
    let plan = js(plan_sign(
        b,
        &o.room.session_id,
        o.signers.clone(),
        &o.account_id,
        o.derivation_path.as_deref(),
        &o.preimage,
        &o.digest,
    ))?;
    let prepared = js(prepare(
        &o.room,
        b.bundle.party_index,
        identity,
        roster,
        o.timeout_ms.unwrap_or(120_000.0),
        o.transport,
    ))?;
    let progress = progress_fn(on_progress);
    Ok(future_to_promise(async move {
        let SignPlan {
            session,
            public_key,
            digest,
        } = plan;
        let out = js(run_prepared(prepared, session, progress).await)?;
        to_value(&js(finish_sign(&public_key, &digest, out))?)
    }))
}

pub(crate) fn stored_presignature(
    session_id: &str,
    account_id: &str,
    signers: Vec<u16>,
    out: SessionOutput,
) -> ApiResult<mpc_core::presign::StoredPresignature> {
    match out {
        SessionOutput::Presignature(p, public) => Ok(mpc_core::presign::StoredPresignature {
            id: session_id.to_owned(),
            account_id: account_id.to_owned(),
            signers,
            presignature: *p,
            public: (&*public).into(),
        }),
        _ => Err(unexpected("presignature")),
    }
}

/// Runs a presignature session over the gateway. Resolves to a `Presignature`.
#[wasm_bindgen(js_name = runPresign)]
pub fn run_presign(
    bundle: &Bundle,
    opts: JsValue,
    on_progress: Option<Function>,
) -> JsResult<Promise> {
    let o: PresignOptionsIn = from_value("presign options", opts)?;
    let b = &bundle.inner;
    let identity = js(b.identity())?;
    let roster = js(b.roster(&o.signers))?;
    let share = js(b.key_share(&o.account_id))?;
    let session = js(
        Session::presign(o.room.session_id.as_bytes(), o.signers.clone(), share)
            .map_err(ApiError::from),
    )?;
    let prepared = js(prepare(
        &o.room,
        b.bundle.party_index,
        identity,
        roster,
        o.timeout_ms.unwrap_or(120_000.0),
        o.transport,
    ))?;
    let progress = progress_fn(on_progress);
    Ok(future_to_promise(async move {
        let out = js(run_prepared(prepared, session, progress).await)?;
        let stored = js(stored_presignature(
            &o.room.session_id,
            &o.account_id,
            o.signers,
            out,
        ))?;
        Ok(Presignature {
            inner: PresigCore::new(stored),
        }
        .into())
    }))
}

/// A participant index unique in the room (gateway `issue_unique_idx`).
#[wasm_bindgen(js_name = gatewayIssueUniqueIdx)]
pub fn gateway_issue_unique_idx(
    gateway_url: &str,
    room: &str,
    token: Option<String>,
) -> JsResult<Promise> {
    let gw = js(Gateway::new(gateway_url, room, token.as_deref()))?;
    Ok(future_to_promise(async move {
        Ok(JsValue::from(js(gw.issue_unique_idx().await)?))
    }))
}

// ---------------------------------------------------------------------------------
// Chunked, resumable safe-prime search (for Web Workers; see API.md "Fast primes")

/// One resumable safe-prime search (`safe-primes`' joint sieve + Fermat + Miller–Rabin).
/// Run it in chunks with `run(budget)`; persist `checkpoint()` (SECRET) to resume.
#[wasm_bindgen]
pub struct PrimeSearch {
    inner: crate::primes::PrimeSearchCore,
}

#[wasm_bindgen]
impl PrimeSearch {
    /// A new search from an OS-random seed; `bits` defaults to 1536 (aux info).
    #[wasm_bindgen(constructor)]
    pub fn new(bits: Option<u32>) -> JsResult<PrimeSearch> {
        Ok(PrimeSearch {
            inner: js(crate::primes::PrimeSearchCore::new(bits))?,
        })
    }

    /// Resumes from `checkpoint()` bytes; throws `invalid_checkpoint` on anything else
    /// (or on a checkpoint of another size than `expectBits`, when given).
    pub fn resume(checkpoint: &[u8], expect_bits: Option<u32>) -> JsResult<PrimeSearch> {
        Ok(PrimeSearch {
            inner: js(crate::primes::PrimeSearchCore::resume(
                checkpoint,
                expect_bits,
            ))?,
        })
    }

    /// Looks at up to `budget` candidates; returns the safe prime (hex) or `undefined`.
    pub fn run(&mut self, budget: u32) -> JsResult<Option<String>> {
        js(self.inner.run(budget))
    }

    /// Cumulative counters `{ candidates, survivors, fermatQ, fermatP, millerRabin, seeds, found }`.
    pub fn progress(&self) -> JsResult<JsValue> {
        to_value(&self.inner.progress())
    }

    /// Secret snapshot (bytes) for `PrimeSearch.resume`; store it encrypted.
    pub fn checkpoint(&self) -> JsResult<Vec<u8>> {
        Ok(js(self.inner.checkpoint())?.to_vec())
    }

    /// Prime size in bits.
    #[wasm_bindgen(getter)]
    pub fn bits(&self) -> u32 {
        self.inner.bits()
    }
}

/// Assembles four found safe primes (hex) into a validated `PrimeSet` for `runAuxInfo`
/// (distinct, not close, right size); throws `invalid_input`.
#[wasm_bindgen(js_name = assemblePrimeSet)]
pub fn assemble_prime_set(primes: Vec<String>) -> JsResult<JsValue> {
    to_value(&js(crate::primes::assemble_prime_set(&primes))?)
}

/// Whether two primes (hex) are equal or too close to share one Paillier modulus.
#[wasm_bindgen(js_name = primesConflict)]
pub fn primes_conflict(a: &str, b: &str) -> JsResult<bool> {
    js(crate::primes::primes_conflict(a, b))
}
