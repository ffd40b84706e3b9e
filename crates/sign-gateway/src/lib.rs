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
//! Rooms live in a [`RoomStore`] chosen by configuration ([`rooms`]): in this process
//! (the default) or in Redis, shared by any number of instances.
//!
//! Memory is bounded: every room retains at most `limits.max_room_bytes`; subscribers
//! have no queue of their own, they read the room's retained log from their cursor in
//! batches of at most [`MAX_BATCH_BYTES`], so a slow reader only holds one batch and
//! catches up from the log.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod metrics;
pub mod rooms;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use gateway_core::{
    Access, AccessPolicy, Caller, GatewayConfig, GatewayError, SSE_KEEPALIVE, SSE_OPENING,
};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use metrics::Metrics;
pub use rooms::{MemoryRooms, RedisRooms, RoomStore, SharedStore, MAX_BATCH_MESSAGES};

/// Most bytes of messages a subscriber takes from the room log at once.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Shared state of a running gateway.
pub struct AppState {
    config: GatewayConfig,
    secret: Option<Vec<u8>>,
    store: SharedStore,
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
    /// New state with rooms in memory. Flip `shutdown` to `true` to end every open
    /// subscription (graceful shutdown).
    pub fn new(config: GatewayConfig, shutdown: watch::Receiver<bool>) -> Shared {
        let store = Arc::new(MemoryRooms::new(config.limits.clone()));
        Self::with_store(config, store, shutdown)
    }

    /// New state with rooms in `store` (see [`rooms::open`]).
    pub fn with_store(
        config: GatewayConfig,
        store: SharedStore,
        shutdown: watch::Receiver<bool>,
    ) -> Shared {
        let secret = config.access_secret.as_ref().map(|s| s.as_bytes().to_vec());
        Arc::new(AppState {
            store,
            secret,
            config,
            metrics: Metrics::default(),
            shutdown,
        })
    }

    /// Removes expired rooms (ending their subscriptions). Returns how many expired.
    pub async fn sweep(&self) -> Result<usize, GatewayError> {
        let n = self.store.sweep().await?;
        self.metrics.expired(n);
        Ok(n)
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

    /// The Prometheus text exposition of this gateway's metrics. With the Redis store
    /// the room, message and byte gauges cover every instance and the subscriber gauge
    /// this one; when Redis cannot be reached they read 0.
    pub async fn render_metrics(&self) -> String {
        let stats = match self.store.stats().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no room gauges for /metrics");
                Default::default()
            }
        };
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

/// Ready while not shutting down and while the room store answers (always, in memory).
async fn readyz(State(state): State<Shared>) -> Response {
    let reason = if *state.shutdown.borrow() {
        Some("shutting down")
    } else if state.store.ready().await.is_err() {
        Some("room store unavailable")
    } else {
        None
    };
    if let Some(reason) = reason {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            format!("{{\"ready\":false,\"reason\":\"{reason}\"}}"),
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
        state.render_metrics().await,
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
    let r = async {
        gateway_core::validate_room_id(&room)?;
        state.authorize(&room, &headers, &uri, Access::Write)?;
        state.store.issue_unique_idx(&room).await
    };
    let idx = r.await.map_err(|e| count_error(&state, e))?;
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
    let r = async {
        let text = gateway_core::validate_body(&bytes, &state.config.limits)?;
        state.store.append(&room, text, caller).await
    };
    let seq = r.await.map_err(|e| count_error(&state, e))?;
    state.metrics.message(bytes.len());
    Ok(json_ok(format!("{{\"seq\":{seq}}}")))
}

async fn subscribe(
    State(state): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let r = async {
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
        let reader = state.store.subscribe(&room, caller, cursor).await?;
        Ok((cursor, reader))
    };
    let (cursor, reader) = r.await.map_err(|e| count_error(&state, e))?;
    state.metrics.subscribed();
    let stream = sse_stream(state.clone(), reader, cursor);
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

struct SubState {
    state: Shared,
    /// The room's subscription (unregisters the subscriber when dropped).
    reader: Box<dyn rooms::RoomReader>,
    cursor: u64,
    shutdown: watch::Receiver<bool>,
    period: Duration,
    next_keepalive: tokio::time::Instant,
    opened: bool,
}

/// The SSE text of `msgs` (stopping at [`MAX_BATCH_BYTES`]) and the last sequence
/// number it holds; counts the deliveries.
fn format_batch(state: &AppState, msgs: Vec<gateway_core::Message>, cursor: u64) -> (String, u64) {
    let mut out = String::new();
    let mut last = cursor;
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
    (out, last)
}

fn sse_stream(
    state: Shared,
    reader: Box<dyn rooms::RoomReader>,
    cursor: u64,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let period = Duration::from_secs(state.config.keepalive_secs.max(1));
    let st = SubState {
        shutdown: state.shutdown.clone(),
        state,
        reader,
        cursor,
        period,
        next_keepalive: tokio::time::Instant::now() + period,
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
            let now = tokio::time::Instant::now();
            if now >= st.next_keepalive {
                st.next_keepalive = now + st.period;
                return Some((Ok(Bytes::from_static(SSE_KEEPALIVE.as_bytes())), st));
            }
            let wait = st.next_keepalive - now;
            let read = tokio::select! {
                r = st.reader.read(st.cursor, wait) => r,
                _ = st.shutdown.changed() => return None,
            };
            match read {
                Ok(rooms::Read::Messages(msgs)) => {
                    let (text, last) = format_batch(&st.state, msgs, st.cursor);
                    st.cursor = last;
                    return Some((Ok(Bytes::from(text)), st));
                }
                Ok(rooms::Read::Idle) => {}
                // Expired: deliver nothing more; the reconnect gets 410.
                Ok(rooms::Read::Gone) => return None,
                Err(e) => {
                    // The store went away: end the stream; the client reconnects with
                    // Last-Event-ID and gets the error (or the rest) then.
                    tracing::warn!(error = %e, "subscription ended by a room store error");
                    return None;
                }
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
