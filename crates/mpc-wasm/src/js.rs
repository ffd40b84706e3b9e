//! The wasm-bindgen exports (see API.md). Only value conversion happens here; the
//! logic is in `api`, `driver` and `transport`.

use js_sys::{Function, Promise, Reflect, Uint8Array};
use mpc_core::primes::PrimeSet;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::api;
use crate::error::{ApiError, ApiResult, Code};

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
    if let Some(r) = e.reason {
        let _ = Reflect::set(o, &"reason".into(), &r.into());
    }
    err.into()
}

type JsResult<T> = Result<T, JsValue>;

fn js<T>(r: ApiResult<T>) -> JsResult<T> {
    r.map_err(to_js_error)
}

/// A Rust value as a plain JS value (maps as objects), for every export's results.
pub(crate) fn js_value<T: Serialize + ?Sized>(v: &T) -> Result<JsValue, serde_wasm_bindgen::Error> {
    v.serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> JsResult<JsValue> {
    js_value(v).map_err(|e| {
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
// Checks and decoders the package uses outside the flows

/// Throws `invalid_input` when a new wallet's passphrase is too weak (at least 12
/// characters, 6 distinct, no repeated pattern: `mpc_core::keystore::check_passphrase`).
#[wasm_bindgen(js_name = checkPassphrase)]
pub fn check_passphrase(passphrase: &str) -> JsResult<()> {
    js(api::check_passphrase(passphrase))
}

/// Decodes a failed cosigner call (gRPC status code, message, the
/// `grpc-status-details-bin` trailer as base64 text or bytes; empty when absent) into
/// `{ code, rule?, presignature?, party?, retryable }` (see API.md).
#[wasm_bindgen(js_name = decodeCosignerError)]
pub fn decode_cosigner_error(grpc_code: i32, message: &str, details: &[u8]) -> JsResult<JsValue> {
    to_value(&api::decode_cosigner_error(grpc_code, message, details))
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

/// P2WPKH address of an HD account at a non-hardened path on a network (`mainnet`,
/// `testnet`, `signet`, `regtest`), by the wallet's Bitcoin codec.
#[wasm_bindgen(js_name = bitcoinAddressAt)]
pub fn bitcoin_address_at(
    public_key: &str,
    chain_code: &str,
    path: &str,
    network: Option<String>,
) -> JsResult<String> {
    js(crate::bitcoin::address(
        public_key,
        chain_code,
        path,
        network.as_deref(),
    ))
}

/// Watch-only export of an HD account (xpub, fingerprint, receive and change
/// descriptors with key origin and checksum).
#[wasm_bindgen(js_name = bitcoinWatchOnly)]
pub fn bitcoin_watch_only(
    public_key: &str,
    chain_code: &str,
    account_path: Option<String>,
    network: Option<String>,
) -> JsResult<JsValue> {
    to_value(&js(crate::bitcoin::watch_only(
        public_key,
        chain_code,
        account_path.as_deref(),
        network.as_deref(),
    ))?)
}

/// Analyzes a PSBT (binary or base64 bytes) for an HD account: every refusal happens
/// here, before anything is signed (see `bitcoin::psbt_plan`).
#[wasm_bindgen(js_name = psbtPlan)]
pub fn psbt_plan(
    public_key: &str,
    chain_code: &str,
    psbt: &[u8],
    network: Option<String>,
) -> JsResult<JsValue> {
    to_value(&js(crate::bitcoin::psbt_plan(
        public_key,
        chain_code,
        psbt,
        network.as_deref(),
    ))?)
}

/// Adds the inputs' signatures (`[{ index, der }]`), finalizes and extracts.
#[wasm_bindgen(js_name = psbtFinalize)]
pub fn psbt_finalize(
    public_key: &str,
    chain_code: &str,
    psbt: &[u8],
    network: Option<String>,
    signatures: JsValue,
) -> JsResult<JsValue> {
    let sigs: Vec<crate::bitcoin::InputSig> = from_value("signatures", signatures)?;
    to_value(&js(crate::bitcoin::psbt_finalize(
        public_key,
        chain_code,
        psbt,
        network.as_deref(),
        &sigs,
    ))?)
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
