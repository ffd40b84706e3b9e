//! `sign-gateway`: the native SSE room broker (axum + tokio).
//!
//! The HTTP contract (shared with `edge-gateway`, see `docs/gateways.md`):
//! - `GET  /rooms/{room}/subscribe` — `text/event-stream`, one event per message with
//!   `id: <seq>`; `Last-Event-ID: k` resumes after message k; keep-alive comments.
//! - `POST /rooms/{room}/issue_unique_idx` — `{"unique_idx": <u16>}`.
//! - `POST /rooms/{room}/broadcast` — body = one UTF-8 message; answers `{"seq": n}`.
//! - `GET /health` and `GET /healthz` (liveness), `GET /readyz` (503 once shutting
//!   down), `GET /metrics` (Prometheus, OpenMetrics text).
//!
//! Room tokens travel as `Authorization: Bearer <token>` or, for browsers' `EventSource`
//! which cannot set headers, as `?token=<token>`.
//!
//! Memory is bounded: every room retains at most `limits.max_room_bytes`; subscribers
//! have no queue of their own, they read the room's retained log from their cursor in
//! batches of at most [`MAX_BATCH_BYTES`], so a slow reader only holds one batch and
//! catches up from the log.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod metrics;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use gateway_core::{
    Access, AccessPolicy, Caller, GatewayConfig, GatewayError, Registry, SSE_KEEPALIVE, SSE_OPENING,
};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use metrics::Metrics;

/// Most bytes of messages a subscriber takes from the room log at once.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Most messages a subscriber takes from the room log at once.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// Per-room runtime data: wakes subscribers when a message is appended. Dropping it (when
/// the room expires) ends every subscription of the room.
#[derive(Debug)]
pub struct RoomWake {
    tx: watch::Sender<u64>,
}

impl RoomWake {
    fn new() -> Self {
        RoomWake {
            tx: watch::channel(0).0,
        }
    }
}

/// Shared state of a running gateway.
pub struct AppState {
    config: GatewayConfig,
    secret: Option<Vec<u8>>,
    registry: Mutex<Registry<RoomWake>>,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
}

/// Handle to a gateway's state (cheap to clone).
pub type Shared = Arc<AppState>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AppState {
    /// New state. Flip `shutdown` to `true` to end every open subscription (graceful
    /// shutdown).
    pub fn new(config: GatewayConfig, shutdown: watch::Receiver<bool>) -> Shared {
        let secret = config.access_secret.as_ref().map(|s| s.as_bytes().to_vec());
        Arc::new(AppState {
            registry: Mutex::new(Registry::new(config.limits.clone())),
            secret,
            config,
            metrics: Metrics::default(),
            shutdown,
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry<RoomWake>> {
        // A poisoned lock means a panic elsewhere; the registry itself stays consistent
        // (every mutation is a single step), so keep serving.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes expired rooms (ending their subscriptions). Returns how many expired.
    pub fn sweep(&self) -> usize {
        let expired = self.registry().sweep(now_ms());
        let n = expired.len();
        self.metrics.expired(n);
        for (id, _room) in expired {
            tracing::debug!(room = %id, "room expired");
        }
        n
    }

    /// Interval at which [`AppState::sweep`] should run.
    pub fn sweep_interval(&self) -> Duration {
        let l = &self.config.limits;
        let ms = l
            .room_idle_ttl_secs
            .min(l.room_max_lifetime_secs)
            .saturating_mul(1000)
            / 4;
        Duration::from_millis(ms.clamp(100, 10_000))
    }

    /// Checks the caller's token for `room` and `needed` access; returns who it is.
    fn authorize(
        &self,
        room: &str,
        headers: &HeaderMap,
        uri: &Uri,
        needed: Access,
    ) -> Result<Caller, GatewayError> {
        let auth = match headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| GatewayError::TokenMalformed)?),
        };
        let query_token = query_param(uri, "token");
        gateway_core::authorize(
            AccessPolicy {
                secret: self.secret.as_deref(),
                require_party_tokens: self.config.require_party_tokens,
            },
            room,
            auth,
            query_token.as_deref(),
            now_ms() / 1000,
            needed,
        )
    }

    /// The Prometheus text exposition of this gateway's metrics.
    pub fn render_metrics(&self) -> String {
        let stats = self.registry().stats();
        self.metrics.render(&stats)
    }
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let q = uri.query()?;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return Some(percent_decode(v));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gateway error as an HTTP response (status, JSON body, `WWW-Authenticate` on 401).
pub struct ApiError(pub GatewayError);

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

fn error_response(e: &GatewayError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, e.body_json()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = e.www_authenticate() {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    resp
}

fn json_ok(body: String) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Builds the router (CORS included) for `state`.
pub fn router(state: Shared) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/rooms/{room}/subscribe", get(subscribe))
        .route("/rooms/{room}/issue_unique_idx", post(issue_unique_idx))
        .route("/rooms/{room}/broadcast", post(broadcast))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(tower_http::trace::TraceLayer::new_for_http())
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Validated at start-up (gateway-core); the form a browser sends in `Origin`.
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| wallet_types::origin::parse_origin(o).ok())
                .filter_map(|o| HeaderValue::from_str(&o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

async fn health() -> Response {
    json_ok("{\"status\":\"ok\"}".into())
}

/// Ready while not shutting down (rooms live in this process: nothing else to check).
async fn readyz(State(state): State<Shared>) -> Response {
    if *state.shutdown.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{\"ready\":false,\"reason\":\"shutting down\"}",
        )
            .into_response();
    }
    json_ok("{\"ready\":true}".into())
}

async fn not_found() -> Response {
    error_response(&GatewayError::NotFound)
}

async fn method_not_allowed() -> Response {
    error_response(&GatewayError::MethodNotAllowed)
}

async fn metrics_handler(State(state): State<Shared>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.render_metrics(),
    )
        .into_response()
}

fn count_error(state: &AppState, e: GatewayError) -> ApiError {
    state.metrics.count_error(e.status());
    ApiError(e)
}

async fn issue_unique_idx(
    State(state): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let r = (|| {
        gateway_core::validate_room_id(&room)?;
        state.authorize(&room, &headers, &uri, Access::Write)?;
        let now = now_ms();
        let mut reg = state.registry();
        let limits = reg.limits().clone();
        let r = reg.get_or_create(&room, now, RoomWake::new)?;
        r.issue_unique_idx(&limits, now)
    })();
    let idx = r.map_err(|e| count_error(&state, e))?;
    Ok(json_ok(format!("{{\"unique_idx\":{idx}}}")))
}

async fn broadcast(
    State(state): State<Shared>,
    Path(room): Path<String>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let pre = (|| {
        gateway_core::validate_room_id(&room)?;
        let caller = state.authorize(&room, &parts.headers, &parts.uri, Access::Write)?;
        let limit = state.config.limits.max_message_bytes;
        if let Some(len) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > limit {
                return Err(GatewayError::MessageTooLarge { size: len, limit });
            }
        }
        Ok((limit, caller))
    })();
    let (limit, caller) = pre.map_err(|e| count_error(&state, e))?;
    // Read at most limit + 1 bytes: anything longer is refused without buffering it.
    let read_cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let bytes: Bytes = match axum::body::to_bytes(body, read_cap).await {
        Ok(b) => b,
        Err(_) => {
            return Err(count_error(
                &state,
                GatewayError::MessageTooLarge {
                    size: limit.saturating_add(1),
                    limit,
                },
            ))
        }
    };
    let r = (|| {
        let text = gateway_core::validate_body(&bytes, &state.config.limits)?;
        let now = now_ms();
        let mut reg = state.registry();
        let (room_state, msg) = reg.append(&room, text, caller, now, RoomWake::new)?;
        room_state.ext.tx.send_replace(msg.seq);
        Ok(msg.seq)
    })();
    let seq = r.map_err(|e| count_error(&state, e))?;
    state.metrics.message(bytes.len());
    Ok(json_ok(format!("{{\"seq\":{seq}}}")))
}

async fn subscribe(
    State(state): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let r = (|| {
        gateway_core::validate_room_id(&room)?;
        let caller = state.authorize(&room, &headers, &uri, Access::Read)?;
        let last = match headers.get("last-event-id") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| GatewayError::InvalidLastEventId("not ASCII"))?,
            ),
        };
        let cursor = gateway_core::parse_last_event_id(last)?;
        let now = now_ms();
        let mut reg = state.registry();
        let limits = reg.limits().clone();
        let r = reg.get_or_create(&room, now, RoomWake::new)?;
        r.check_resume(cursor)?;
        r.subscribe_as(caller, &limits, now)?;
        Ok((cursor, r.ext.tx.subscribe(), caller))
    })();
    let (cursor, wake, caller) = r.map_err(|e| count_error(&state, e))?;
    state.metrics.subscribed();
    let stream = sse_stream(state.clone(), room, caller, cursor, wake);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// Unregisters a subscriber when its stream is dropped (client gone or stream ended).
struct SubscriptionGuard {
    state: Shared,
    room: String,
    caller: Caller,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        let now = now_ms();
        let mut reg = self.state.registry();
        // The room may be gone already (expired); then there is nothing to unregister.
        if let Ok(Some(r)) = reg.get_mut(&self.room, now) {
            r.unsubscribe_as(self.caller, now);
        }
    }
}

struct SubState {
    guard: SubscriptionGuard,
    cursor: u64,
    wake: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    keepalive: tokio::time::Interval,
    opened: bool,
}

enum Next {
    Batch(String, u64),
    Wait,
    End,
}

fn next_batch(st: &SubState) -> Next {
    let state = &st.guard.state;
    let mut reg = state.registry();
    let room = match reg.get_mut(&st.guard.room, now_ms()) {
        Ok(Some(r)) => r,
        // Expired or gone: end the stream; the reconnect gets 410.
        _ => return Next::End,
    };
    let msgs = room.messages_after(st.cursor, MAX_BATCH_MESSAGES);
    drop(reg);
    if msgs.is_empty() {
        return Next::Wait;
    }
    let mut out = String::new();
    let mut last = st.cursor;
    let now = now_ms();
    for (n, m) in msgs.into_iter().enumerate() {
        if n > 0 && out.len() + m.body.len() > MAX_BATCH_BYTES {
            break;
        }
        out.push_str(&gateway_core::format_sse_event(m.seq, &m.body));
        last = m.seq;
        let latency =
            (m.posted_ms > 0).then(|| Duration::from_millis(now.saturating_sub(m.posted_ms)));
        state.metrics.delivered(latency);
    }
    Next::Batch(out, last)
}

fn sse_stream(
    state: Shared,
    room: String,
    caller: Caller,
    cursor: u64,
    wake: watch::Receiver<u64>,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let period = Duration::from_secs(state.config.keepalive_secs.max(1));
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let st = SubState {
        shutdown: state.shutdown.clone(),
        guard: SubscriptionGuard {
            state,
            room,
            caller,
        },
        cursor,
        wake,
        keepalive,
        opened: false,
    };
    stream::unfold(st, |mut st| async move {
        if !st.opened {
            st.opened = true;
            return Some((Ok(Bytes::from_static(SSE_OPENING.as_bytes())), st));
        }
        loop {
            if *st.shutdown.borrow() {
                return None;
            }
            // Mark the current version seen *before* reading the log, so an append
            // racing with the read wakes us up below.
            st.wake.borrow_and_update();
            match next_batch(&st) {
                Next::End => return None,
                Next::Batch(text, last) => {
                    st.cursor = last;
                    return Some((Ok(Bytes::from(text)), st));
                }
                Next::Wait => {}
            }
            tokio::select! {
                changed = st.wake.changed() => {
                    if changed.is_err() {
                        // Room dropped (expired): deliver nothing more.
                        return None;
                    }
                }
                _ = st.keepalive.tick() => {
                    return Some((Ok(Bytes::from_static(SSE_KEEPALIVE.as_bytes())), st));
                }
                _ = st.shutdown.changed() => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let u: Uri = "/x?a=1&token=12.ab%63&b".parse().unwrap();
        assert_eq!(query_param(&u, "token").as_deref(), Some("12.abc"));
        assert_eq!(query_param(&u, "b").as_deref(), Some(""));
        assert_eq!(query_param(&u, "c"), None);
        let u: Uri = "/x?token=%zz%4".parse().unwrap();
        assert_eq!(query_param(&u, "token").as_deref(), Some("%zz%4"));
    }
}
