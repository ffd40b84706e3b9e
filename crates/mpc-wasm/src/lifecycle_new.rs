//! The new profile of a device replacement (`crate::lifecycle` has the overview).
//!
//! [`NewDevice`] holds the new identity key, generated here: its secret never crosses
//! into JavaScript, except inside the pending bundle (encrypted under the passphrase,
//! or handed to the host's WebCrypto key exactly like a new wallet's bundle).

use client_core::lifecycle::{
    LifecycleKind, LifecyclePlan, LifecycleRun, NewDeviceParams, NewDeviceTemplate,
};
use client_core::ClientError;
use js_sys::Promise;
use mpc_core::primes::PrimeSet;
use mpc_wire::IdentityKey;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::flows::{client_error_to_js, flow_promise, from_js, input, FlowError, FlowResult, Host};
use crate::lifecycle::{finish, RunSettings};

/// What the page passes to run the new device's half.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewDeviceIn {
    /// The cosigner's `LifecycleResponse` bytes (the agent's `plan_b64`).
    #[serde(with = "serde_bytes")]
    plan: Vec<u8>,
    /// The agent's `NewDeviceTemplate` (its JSON as a string).
    template: String,
    /// This profile's prime set `{ primes: [p, q, p̂, q̂] }` (the new aux info).
    primes: PrimeSet,
    #[serde(flatten)]
    settings: RunSettings,
}

/// A new device of a replacement: its identity key lives in this object only.
#[wasm_bindgen]
pub struct NewDevice {
    wallet_id: String,
    identity: IdentityKey,
}

#[wasm_bindgen]
impl NewDevice {
    /// Generates the new identity for wallet `walletId`.
    #[wasm_bindgen(constructor)]
    pub fn new(wallet_id: &str) -> Result<NewDevice, JsValue> {
        if wallet_id.trim().is_empty() {
            return Err(client_error_to_js(&ClientError::input(
                "the wallet id is empty",
            )));
        }
        let identity = IdentityKey::generate().map_err(|e| {
            client_error_to_js(&ClientError::internal(format!("new identity: {e}")))
        })?;
        Ok(NewDevice {
            wallet_id: wallet_id.to_string(),
            identity,
        })
    }

    /// The new public identity (128 hex), for the agent's `new_device_identity`.
    #[wasm_bindgen(getter)]
    pub fn identity(&self) -> String {
        self.identity.public().to_string()
    }

    /// Signs the agent's possession challenge with the new identity, after checking
    /// that `messageHex` is exactly `replace_device_possession_message(audience, this
    /// wallet, this identity, timestampMs, nonce)`: the key signs nothing else.
    /// Returns the signature (128 hex); throws a `FlowError` (`invalid_input`).
    #[wasm_bindgen(js_name = signPossession)]
    pub fn sign_possession(
        &self,
        message_hex: &str,
        audience: &str,
        timestamp_ms: f64,
        nonce_hex: &str,
    ) -> Result<String, JsValue> {
        let bad = |r: &str| client_error_to_js(&ClientError::input(r));
        let nonce = hex::decode(nonce_hex).map_err(|_| bad("the challenge nonce is not hex"))?;
        let given = hex::decode(message_hex).map_err(|_| bad("the challenge is not hex"))?;
        if !(0.0..=9.007_199_254_740_991e15).contains(&timestamp_ms) || nonce.len() != 16 {
            return Err(bad("the challenge's timestamp or nonce is malformed"));
        }
        let expected = cosigner_api::auth::replace_device_possession_message(
            audience,
            &self.wallet_id,
            &self.identity.public().to_string(),
            timestamp_ms as u64,
            &nonce,
        );
        if given != expected {
            return Err(bad(
                "the possession challenge is not a replacement of this wallet by this identity",
            ));
        }
        let sig = cosigner_api::auth::sign_bytes(&self.identity, &expected)
            .map_err(|e| client_error_to_js(&ClientError::internal(e.to_string())))?;
        Ok(hex::encode(sig))
    }

    /// Runs the new device's half of the replacement: `params` `{ plan, template
    /// (JSON text), primes, passphrase?, insecureFastKdf?, gatewayUrl?, transport?,
    /// sessionTimeoutMs? }`; the host needs `callCosigner`, `persistPending` and
    /// optionally `onProgress`. The new shares' public keys must be the template's
    /// (the addresses stay). Resolves once committed, like `WalletParty.joinRefresh`.
    pub fn run(&self, host: JsValue, params: JsValue) -> Promise {
        let (wallet_id, identity) = (self.wallet_id.clone(), self.identity.clone());
        flow_promise(async move {
            let host = Host::new(host)?;
            let params: NewDeviceIn = from_js("replacement parameters", params)?;
            new_device_flow(host, wallet_id, identity, params).await
        })
    }
}

async fn new_device_flow(
    host: Host,
    wallet_id: String,
    identity: IdentityKey,
    params: NewDeviceIn,
) -> FlowResult<JsValue> {
    params.settings.check()?;
    let template: NewDeviceTemplate = serde_json::from_str(&params.template)
        .map_err(|e| input(format!("invalid replacement template: {e}")))?;
    if template.wallet_id != wallet_id {
        return Err(input("the replacement template names another wallet"));
    }
    let expected = template
        .accounts
        .iter()
        .map(|(id, a)| (id.clone(), a.public_key.clone()))
        .collect();
    let plan =
        LifecyclePlan::from_bytes_for_new_device(&params.plan, &template, identity.public())?;
    let device = NewDeviceParams::from_template(&template, identity, params.primes)?;
    let step = LifecycleRun::new_device(device, &plan).map_err(FlowError::Client)?;
    finish(
        &host,
        LifecycleKind::ReplaceDevice,
        step,
        &expected,
        &params.settings,
    )
    .await
}
