//! The HTTP API (see `docs/recovery-agent.md`):
//!
//! ```text
//! GET  /v1/health        -> {"status":"ok","version":"..","party_index":2}      (no token)
//! GET  /v1/identity      -> {"identity":"<128 hex>"}
//! POST /v1/enrollments   -> 202 {"job_id":"..."}
//! POST /v1/wallets       -> 202 {"job_id":"..."}
//! GET  /v1/jobs/{job_id} -> {"state","progress":{"stage","percent"},"public_keys"?,"error"?}
//! POST /v1/wallets/{wallet_id}/controls -> 202 RequestView (awaiting_confirmation)
//! GET  /v1/requests/{request_id}         -> RequestView
//! POST /v1/wallets/{wallet_id}/lifecycle  -> 202 RequestView (refresh | replace_device)
//! POST /v1/requests/{request_id}/possession -> RequestView (the new device's proof)
//! GET  /v1/admin/requests                       -> {"requests": [RequestView]}  (admin token)
//! POST /v1/admin/requests/{request_id}/confirm  -> RequestView (running)       (admin token)
//! POST /v1/admin/requests/{request_id}/reject   -> RequestView (rejected)      (admin token)
//! ```
//!
//! ## Requests that need the user's confirmation
//!
//! `POST /v1/wallets/{wallet_id}/controls` with `{"action": "revoke_device" | "freeze" |
//! "unfreeze", "reason"?, "cosigner_url"}` asks the agent to send that wallet control
//! to the cosigner, signed with the recovery identity. The agent only records it
//! (`awaiting_confirmation`, see [`crate::requests`]) and logs how to confirm it; the
//! user runs `recovery-agent confirm <id>` on the agent's machine, which calls the admin
//! endpoints with the token from `<data dir>/admin.token`. Admin endpoints refuse the
//! pairing token and any request with an `Origin` header (401 `admin_unauthorized`).
//! The page polls `GET /v1/requests/{id}` until `done` (with the wallet's `controls`),
//! `failed` (with the cosigner's error `code`), `rejected` or `expired`.
//!
//! ## Enrollment (aux info ahead of wallet creation)
//!
//! `POST /v1/enrollments` with
//! `{"enrollment_id","cosigner_identity","device_identity","aux_info": SessionRoom}`
//! (what the cosigner's `EnrollDevice` answered the device) starts a job that takes the
//! agent's primes (as for a wallet), runs its side of the aux-info room and stores its
//! enrollment (client-core's encrypted enrollment file, under the agent's passphrase)
//! at `<data dir>/enrollments/<enrollment_id>.json`. Its job ends `done` with no
//! `public_keys`; progress: `primes` 0..10 %, `aux-info` 10..95 %, `saving`. A second
//! enrollment of the same id: 409 `enrollment_exists`.
//!
//! `POST /v1/wallets` then takes `"enrollment_id"` INSTEAD of `"aux_info"` (exactly one
//! of the two, else 400 `invalid_request`): the agent loads that enrollment (404
//! `unknown_enrollment` if it holds none; 403 `enrollment_mismatch` if it was made with
//! another `device_identity` or `cosigner_identity`), runs only the keygens (progress
//! `keygen` 10..95 %), saves the wallet share as usual and deletes the enrollment file.
//!
//! The same validation, body limit, origin guard and pairing token apply to every
//! `POST`.
//!
//! Every request but `OPTIONS` and `/v1/health` needs `Authorization: Bearer <token>`.
//! A request whose `Origin` is not allowed is refused (403) before anything else;
//! allowed origins get CORS headers (including Private Network Access). Errors are
//! `{"error": {"code", "message"}}`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mpc_client::{
    AccountKind, AccountRoom, ChainStyle, DigestKind, RoomInfo, MAX_ACCOUNTS, MAX_PREIMAGE_LEN,
};
use mpc_wire::{PublicIdentity, SessionId};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;
use crate::requests::MAX_REASON_CHARS;
use crate::{
    check_gateway_url, check_http_url, check_wallet_id, Agent, EnrollJob, NewRequest,
    RequestAction, RequestView, SignDetails, WalletAux, WalletJob, PARTY_INDEX, VERSION,
};

/// Where one protocol session runs (as the cosigner announced it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRoom {
    /// Session id bound into every envelope.
    pub session_id: String,
    /// Room on the gateway.
    pub room: String,
    /// Room token (empty for an open gateway).
    #[serde(default)]
    pub room_token: String,
    /// Gateway URL (the agent's `--gateway-url` overrides it).
    #[serde(default)]
    pub gateway_url: String,
}

/// One account of `POST /v1/wallets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRequest {
    /// Account id.
    pub account_id: String,
    /// Its DKG room.
    pub keygen: SessionRoom,
}

/// Body of `POST /v1/wallets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateWalletRequest {
    /// The cosigner's wallet id.
    pub wallet_id: String,
    /// The cosigner's public identity (128 hex).
    pub cosigner_identity: String,
    /// The device's public identity (128 hex).
    pub device_identity: String,
    /// `hd` or `independent`.
    pub kind: String,
    /// Aux-info room (exactly one of this and `enrollment_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_info: Option<SessionRoom>,
    /// The enrollment whose aux info the agent reuses (`POST /v1/enrollments`; exactly
    /// one of this and `aux_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<String>,
    /// One keygen room per account.
    pub accounts: Vec<AccountRequest>,
}

/// Body of `POST /v1/enrollments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateEnrollmentRequest {
    /// The cosigner's enrollment id.
    pub enrollment_id: String,
    /// The cosigner's public identity (128 hex).
    pub cosigner_identity: String,
    /// The device's public identity (128 hex).
    pub device_identity: String,
    /// The aux-info room.
    pub aux_info: SessionRoom,
}

impl CreateEnrollmentRequest {
    /// Validates the request against the agent's own identity.
    pub fn validate(
        &self,
        own: &PublicIdentity,
        gateway_override: bool,
    ) -> Result<EnrollJob, ApiError> {
        check_wallet_id(&self.enrollment_id)
            .map_err(|e| bad(e.replace("wallet_id", "enrollment_id")))?;
        let (device, cosigner) = identities(self, own)?;
        Ok(EnrollJob {
            enrollment_id: self.enrollment_id.clone(),
            device,
            cosigner,
            aux_info: room("aux_info", &self.aux_info, gateway_override)?,
        })
    }
}

/// The device and cosigner identities of a request: valid, and all three different.
fn identities(
    r: &impl PeerIdentities,
    own: &PublicIdentity,
) -> Result<(PublicIdentity, PublicIdentity), ApiError> {
    let device = parse_identity("device_identity", r.device_identity())?;
    let cosigner = parse_identity("cosigner_identity", r.cosigner_identity())?;
    let ids = [device.to_bytes(), cosigner.to_bytes(), own.to_bytes()];
    if ids[0] == ids[1] || ids[0] == ids[2] || ids[1] == ids[2] {
        return Err(bad(
            "the device, cosigner and recovery identities must all differ",
        ));
    }
    Ok((device, cosigner))
}

/// The two peer identities a request names.
trait PeerIdentities {
    fn device_identity(&self) -> &str;
    fn cosigner_identity(&self) -> &str;
}

impl PeerIdentities for CreateWalletRequest {
    fn device_identity(&self) -> &str {
        &self.device_identity
    }
    fn cosigner_identity(&self) -> &str {
        &self.cosigner_identity
    }
}

impl PeerIdentities for CreateEnrollmentRequest {
    fn device_identity(&self) -> &str {
        &self.device_identity
    }
    fn cosigner_identity(&self) -> &str {
        &self.cosigner_identity
    }
}

pub(crate) fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(reason.into())
}

fn parse_identity(field: &str, hex_str: &str) -> Result<PublicIdentity, ApiError> {
    let h = hex_str.trim();
    if h.len() != 128 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("{field} must be 128 hex characters")));
    }
    h.parse()
        .map_err(|e| bad(format!("{field} is not a valid identity: {e}")))
}

fn room(what: &str, r: &SessionRoom, override_url: bool) -> Result<RoomInfo, ApiError> {
    if r.room.is_empty() || r.room.len() > 256 {
        return Err(bad(format!("{what}.room must have 1..=256 characters")));
    }
    SessionId::new(r.session_id.clone())
        .map_err(|e| bad(format!("{what}.session_id is invalid: {e}")))?;
    if r.room_token.len() > 4096 {
        return Err(bad(format!("{what}.room_token is too long")));
    }
    if !r.gateway_url.is_empty() || !override_url {
        check_gateway_url(&r.gateway_url).map_err(|e| bad(format!("{what}.gateway_url: {e}")))?;
    }
    Ok(RoomInfo {
        session_id: r.session_id.clone(),
        room: r.room.clone(),
        room_token: r.room_token.clone(),
        gateway_url: r.gateway_url.trim().to_string(),
    })
}

impl CreateWalletRequest {
    /// Validates the request against the agent's own identity.
    pub fn validate(
        &self,
        own: &PublicIdentity,
        gateway_override: bool,
    ) -> Result<WalletJob, ApiError> {
        check_wallet_id(&self.wallet_id).map_err(bad)?;
        let (device, cosigner) = identities(self, own)?;
        let kind = match self.kind.as_str() {
            "hd" => AccountKind::Hd,
            "independent" => AccountKind::Independent,
            other => {
                return Err(bad(format!(
                    "kind must be hd or independent, not {other:?}"
                )))
            }
        };
        if self.accounts.is_empty() || self.accounts.len() > MAX_ACCOUNTS as usize {
            return Err(bad(format!(
                "accounts must have 1..={MAX_ACCOUNTS} entries"
            )));
        }
        let mut sessions = BTreeSet::new();
        let aux = match (&self.aux_info, &self.enrollment_id) {
            (Some(r), None) => {
                let r = room("aux_info", r, gateway_override)?;
                sessions.insert(r.session_id.clone());
                WalletAux::Run(r)
            }
            (None, Some(id)) => {
                check_wallet_id(id).map_err(|e| bad(e.replace("wallet_id", "enrollment_id")))?;
                WalletAux::Enrollment(id.clone())
            }
            _ => return Err(bad("give exactly one of aux_info and enrollment_id")),
        };
        let mut names = BTreeSet::new();
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for (k, a) in self.accounts.iter().enumerate() {
            if a.account_id.is_empty()
                || a.account_id.len() > 128
                || !a.account_id.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(bad(format!(
                    "accounts[{k}].account_id must be 1..=128 visible ASCII characters"
                )));
            }
            if !names.insert(a.account_id.clone()) {
                return Err(bad(format!("account id {} appears twice", a.account_id)));
            }
            let keygen = room(
                &format!("accounts[{k}].keygen"),
                &a.keygen,
                gateway_override,
            )?;
            if !sessions.insert(keygen.session_id.clone()) {
                return Err(bad(format!(
                    "session id {} is used by two sessions",
                    keygen.session_id
                )));
            }
            accounts.push(AccountRoom {
                account_id: a.account_id.clone(),
                keygen,
            });
        }
        Ok(WalletJob {
            wallet_id: self.wallet_id.clone(),
            device,
            cosigner,
            kind,
            aux,
            accounts,
        })
    }
}

/// Builds the router.
pub fn router(agent: Arc<Agent>) -> Router {
    let origins: Vec<HeaderValue> = agent
        .config()
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .allow_private_network(true)
        .max_age(Duration::from_secs(600));
    let limit = agent.config().max_body_bytes;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/identity", get(identity))
        .route("/v1/wallets", post(create_wallet))
        .route("/v1/enrollments", post(create_enrollment))
        .route("/v1/jobs/{job_id}", get(job))
        .route("/v1/wallets/{wallet_id}/controls", post(request_control))
        .route("/v1/wallets/{wallet_id}/sign-requests", post(request_sign))
        .route("/v1/requests/{request_id}", get(request))
        .route(
            "/v1/wallets/{wallet_id}/lifecycle",
            post(crate::lifecycle_api::request_lifecycle),
        )
        .route(
            "/v1/requests/{request_id}/possession",
            post(crate::lifecycle_api::post_possession),
        )
        .route("/v1/admin/requests", get(admin_list))
        .route(
            "/v1/admin/requests/{request_id}/confirm",
            post(admin_confirm),
        )
        .route("/v1/admin/requests/{request_id}/reject", post(admin_reject))
        .nest_service("/v1/relay", sign_gateway::router(Arc::clone(agent.relay())))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(Arc::clone(&agent), auth))
        .layer(cors)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&agent),
            origin_guard,
        ))
        .with_state(agent)
}

/// Refuses requests from origins that are not allowed (before CORS and auth).
async fn origin_guard(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        if !agent.config().allowed_origins.iter().any(|a| a == o) {
            let shown: String = o.chars().take(100).collect();
            tracing::warn!(origin = %shown, "request from a foreign origin refused");
            return ApiError::OriginNotAllowed(format!("{shown:?}")).into_response();
        }
    }
    next.run(req).await
}

/// Requires the pairing token (except for `OPTIONS` and the health check); the admin
/// endpoints (`/v1/admin/...`) require the admin token instead, and refuse any request
/// that carries a browser `Origin`: a page never confirms its own request.
async fn auth(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS || req.uri().path() == "/v1/health" {
        return next.run(req).await;
    }
    // The relay checks its own room tokens (minted per signing, bound to one party).
    if req.uri().path().starts_with("/v1/relay/") {
        return next.run(req).await;
    }
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if req.uri().path().starts_with("/v1/admin/") {
        if req.headers().contains_key(header::ORIGIN) || !agent.admin_token().verify_header(value) {
            return ApiError::AdminUnauthorized.into_response();
        }
        return next.run(req).await;
    }
    if !agent.token().verify_header(value) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(req).await
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    party_index: u16,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: VERSION,
        party_index: PARTY_INDEX,
    })
}

#[derive(Serialize)]
struct Identity {
    identity: String,
}

async fn identity(State(agent): State<Arc<Agent>>) -> Json<Identity> {
    Json(Identity {
        identity: agent.public_identity().to_string(),
    })
}

#[derive(Serialize)]
struct Started {
    job_id: String,
}

/// The JSON body of a `POST`: `application/json`, within the limit, well-formed.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    agent: &Agent,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    let body = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(agent.config().max_body_bytes)
        } else {
            ApiError::InvalidJson(rej.body_text())
        }
    })?;
    if !json_type {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            bad(e.to_string())
        } else {
            ApiError::InvalidJson(e.to_string())
        }
    })
}

async fn create_wallet(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateWalletRequest = json_body(&agent, &headers, body)?;
    let job = req.validate(
        &agent.public_identity(),
        agent.config().gateway_url.is_some(),
    )?;
    let wallet = job.wallet_id.clone();
    let accounts = job.accounts.len();
    let job_id = agent.start(job).await?;
    tracing::info!(job = %job_id, wallet = %wallet, accounts, "wallet creation started");
    Ok((StatusCode::ACCEPTED, Json(Started { job_id })).into_response())
}

async fn create_enrollment(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateEnrollmentRequest = json_body(&agent, &headers, body)?;
    let job = req.validate(
        &agent.public_identity(),
        agent.config().gateway_url.is_some(),
    )?;
    let enrollment = job.enrollment_id.clone();
    let job_id = agent.start_enrollment(job)?;
    tracing::info!(job = %job_id, enrollment = %enrollment, "enrollment started");
    Ok((StatusCode::ACCEPTED, Json(Started { job_id })).into_response())
}

async fn job(
    State(agent): State<Arc<Agent>>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(agent.jobs().get(&job_id)?).into_response())
}

/// The request's `Origin` (the page's), if any.
pub(crate) fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `POST /v1/wallets/{wallet_id}/controls`: a wallet control signed with the recovery
/// identity, held until the user confirms it on the agent's machine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    action: RequestAction,
    #[serde(default)]
    reason: String,
    cosigner_url: String,
}

async fn request_control(
    State(agent): State<Arc<Agent>>,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ControlRequest = json_body(&agent, &headers, body)?;
    check_wallet_id(&wallet_id).map_err(bad)?;
    if req.action.control("").is_none() {
        return Err(bad(
            "action must be revoke_device, freeze or unfreeze (signings and lifecycle \
             requests have their own endpoints)",
        ));
    }
    check_http_url("cosigner", &req.cosigner_url).map_err(bad)?;
    if req.reason.chars().count() > MAX_REASON_CHARS || req.reason.chars().any(|c| c.is_control()) {
        return Err(bad(format!(
            "reason must be at most {MAX_REASON_CHARS} characters without control characters"
        )));
    }
    let origin = origin_of(&headers);
    let v = agent.submit_request(NewRequest {
        wallet_id,
        action: req.action,
        reason: req.reason,
        cosigner_url: req.cosigner_url.trim().to_string(),
        origin,
        sign: None,
        new_device_identity: None,
    })?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

/// `POST /v1/wallets/{wallet_id}/sign-requests`: a signature by the device and the
/// recovery share without the cosigner, held until the user confirms it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequestBody {
    account_id: String,
    path: String,
    preimage_hex: String,
    digest: DigestKind,
    chain: ChainStyle,
}

/// The text of an EIP-191 personal message (`0x19 "Ethereum Signed Message:\n" len
/// text`), when `preimage` is one with UTF-8 text.
fn eip191_text(preimage: &[u8]) -> Option<String> {
    let rest = preimage.strip_prefix(b"\x19Ethereum Signed Message:\n")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let len: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let text = &rest[digits..];
    (text.len() == len).then(|| String::from_utf8(text.to_vec()).ok())?
}

async fn request_sign(
    State(agent): State<Arc<Agent>>,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: SignRequestBody = json_body(&agent, &headers, body)?;
    check_wallet_id(&wallet_id).map_err(bad)?;
    if req.account_id.is_empty()
        || req.account_id.len() > 128
        || !req.account_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad("account_id must have 1..128 visible ASCII characters"));
    }
    mpc_client::parse_path(&req.path).map_err(|e| bad(e.to_string()))?;
    let preimage = hex::decode(req.preimage_hex.trim_start_matches("0x"))
        .map_err(|e| bad(format!("preimage_hex: {e}")))?;
    if preimage.is_empty() || preimage.len() > MAX_PREIMAGE_LEN {
        return Err(bad(format!(
            "the preimage must have 1..={MAX_PREIMAGE_LEN} bytes"
        )));
    }
    let origin = origin_of(&headers);
    let v = agent.submit_request(NewRequest {
        wallet_id,
        action: RequestAction::Sign,
        reason: String::new(),
        cosigner_url: String::new(),
        origin,
        sign: Some(SignDetails {
            account_id: req.account_id,
            path: req.path,
            message: eip191_text(&preimage),
            preimage_hex: hex::encode(&preimage),
            digest: req.digest,
            chain: req.chain,
        }),
        new_device_identity: None,
    })?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

async fn request(
    State(agent): State<Arc<Agent>>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(agent.requests().get(&request_id)?).into_response())
}

#[derive(Serialize)]
struct RequestList {
    requests: Vec<RequestView>,
}

async fn admin_list(State(agent): State<Arc<Agent>>) -> Result<Response, ApiError> {
    Ok(Json(RequestList {
        requests: agent.requests().list()?,
    })
    .into_response())
}

async fn admin_confirm(
    State(agent): State<Arc<Agent>>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(agent.confirm_request(&request_id)?).into_response())
}

async fn admin_reject(
    State(agent): State<Arc<Agent>>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let v = agent.requests().reject(&request_id)?;
    tracing::info!(request = %v.request_id, wallet = %v.wallet_id, "request rejected by the user");
    Ok(Json(v).into_response())
}

/// Serves the API on `listener` until `shutdown` completes; expires finished jobs in
/// the background.
pub async fn serve<L>(
    agent: Arc<Agent>,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let a = Arc::clone(&agent);
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            a.jobs().expire();
            let _ = a.relay().sweep().await;
        }
    });
    let a = Arc::clone(&agent);
    let r = axum::serve(listener, router(agent))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open relay subscriptions would hold the graceful shutdown forever.
            a.stop_relay();
        })
        .await;
    expiry.abort();
    r
}
