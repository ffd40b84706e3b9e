//! `edge-gateway`: the wallet's SSE room broker as a Cloudflare Worker.
//!
//! Same HTTP contract as the native `sign-gateway` (see `docs/gateways.md`); the room
//! logic, validation, token checks and error bodies come from `gateway-core`, so both
//! answer identically. The Worker validates the request (room id, token, body size) and
//! forwards it to the Durable Object named after the room, which holds the room's
//! sequence, unique-index counter and messages (in memory and in its storage) and serves
//! the SSE streams of its subscribers.
//!
//! Limits over all rooms (`max_rooms`, the byte budget `max_total_bytes`) live in one
//! more Durable Object, [`QuotaObject`] (a single instance): a room asks it once to be
//! admitted when it is created, reserves every message's bytes before appending it, and
//! gives everything back when it expires. So the edge enforces the same limits as the
//! native gateway.
//!
//! With a `METRICS_TOKEN`, `GET /metrics` serves Prometheus metrics with the native
//! gateway's names, aggregated by one more Durable Object ([`metrics`]).
//!
//! Configuration comes from `[vars]` in `wrangler.toml` (secrets: `wrangler secret put
//! ACCESS_SECRET`, `wrangler secret put METRICS_TOKEN`): `ACCESS_SECRET`,
//! `METRICS_TOKEN`, `METRICS_REPORT_MS`, `REQUIRE_PARTY_TOKENS`, `CORS_ORIGINS`
//! (comma-separated), `KEEPALIVE_SECS`, `MAX_MESSAGE_BYTES`, `MAX_MESSAGES_PER_ROOM`,
//! `MAX_ROOM_BYTES`, `MAX_ROOMS`, `MAX_TOTAL_BYTES`, `NEW_ROOM_BUDGET_PERCENT`,
//! `MAX_PARTY_BYTES_PER_ROOM`, `MAX_SUBSCRIPTIONS_PER_PARTY`,
//! `MAX_SUBSCRIBERS_PER_ROOM`, `MAX_UNIQUE_IDX`, `ROOM_IDLE_TTL_SECS`,
//! `ROOM_MAX_LIFETIME_SECS`.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use gateway_core::paths::Route;
use gateway_core::{
    Access, AccessPolicy, Caller, GatewayConfig, GatewayError, Limits, Message, Room,
};
use serde::{Deserialize, Serialize};
use worker::*;

mod metrics;

pub use metrics::MetricsObject;
use metrics::{Counters, Reporter, RoomReport};

/// Capacity of a subscriber's live queue; a subscriber this far behind is disconnected
/// and resumes from the room log with `Last-Event-ID`.
const SUBSCRIBER_QUEUE: usize = 1024;
/// Most bytes per SSE chunk when replaying the log.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Internal header carrying the validated Last-Event-ID to the object.
const H_LAST: &str = "x-gw-last-event-id";
/// Internal header carrying the room id to the object.
const H_ROOM: &str = "x-gw-room";
/// Internal header carrying the caller's party (from its party token) to the object.
const H_PARTY: &str = "x-gw-party";
/// Name of the one quota object.
const QUOTA: &str = "global";

fn env_str(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|s| !s.trim().is_empty())
}

fn env_num<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    env_str(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The gateway configuration from the Worker's environment.
fn config(env: &Env) -> GatewayConfig {
    let d = Limits::default();
    let access_secret = env
        .secret("ACCESS_SECRET")
        .ok()
        .map(|v| v.to_string())
        .or_else(|| env_str(env, "ACCESS_SECRET"))
        .filter(|s| !s.is_empty());
    GatewayConfig {
        cors_origins: env_str(env, "CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        keepalive_secs: env_num(env, "KEEPALIVE_SECS", 15),
        access_secret,
        require_party_tokens: env_num(env, "REQUIRE_PARTY_TOKENS", false),
        limits: Limits {
            max_message_bytes: env_num(env, "MAX_MESSAGE_BYTES", d.max_message_bytes),
            max_messages_per_room: env_num(env, "MAX_MESSAGES_PER_ROOM", d.max_messages_per_room),
            max_room_bytes: env_num(env, "MAX_ROOM_BYTES", d.max_room_bytes),
            max_rooms: env_num(env, "MAX_ROOMS", d.max_rooms),
            max_total_bytes: env_num(env, "MAX_TOTAL_BYTES", d.max_total_bytes),
            new_room_budget_percent: env_num(
                env,
                "NEW_ROOM_BUDGET_PERCENT",
                d.new_room_budget_percent,
            ),
            max_party_bytes_per_room: env_num(
                env,
                "MAX_PARTY_BYTES_PER_ROOM",
                d.max_party_bytes_per_room,
            ),
            max_subscriptions_per_party: env_num(
                env,
                "MAX_SUBSCRIPTIONS_PER_PARTY",
                d.max_subscriptions_per_party,
            ),
            max_subscribers_per_room: env_num(
                env,
                "MAX_SUBSCRIBERS_PER_ROOM",
                d.max_subscribers_per_room,
            ),
            max_unique_idx: env_num(env, "MAX_UNIQUE_IDX", d.max_unique_idx),
            room_idle_ttl_secs: env_num(env, "ROOM_IDLE_TTL_SECS", d.room_idle_ttl_secs),
            room_max_lifetime_secs: env_num(
                env,
                "ROOM_MAX_LIFETIME_SECS",
                d.room_max_lifetime_secs,
            ),
        },
    }
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn error_response(e: &GatewayError) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    if let Some(v) = e.www_authenticate() {
        headers.set("www-authenticate", v)?;
    }
    Ok(Response::ok(e.body_json())?
        .with_status(e.status())
        .with_headers(headers))
}

fn json_response(body: String) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(body)?.with_headers(headers))
}

/// The allowed origin to echo for this request, if any.
fn allowed_origin(cfg: &GatewayConfig, req: &Request) -> Option<String> {
    let origin = req.headers().get("origin").ok().flatten()?;
    if cfg.cors_origins.iter().any(|o| o == "*") {
        return Some("*".into());
    }
    cfg.allows_origin(&origin).then_some(origin)
}

fn with_cors(resp: Response, origin: Option<&str>) -> Result<Response> {
    let Some(o) = origin else {
        return Ok(resp);
    };
    // Responses fetched from a Durable Object have immutable headers: copy them.
    let h = Headers::new();
    for (k, v) in resp.headers().entries() {
        h.append(&k, &v)?;
    }
    h.set("access-control-allow-origin", o)?;
    h.append("vary", "origin")?;
    Ok(resp.with_headers(h))
}

fn preflight(cfg: &GatewayConfig, req: &Request) -> Result<Response> {
    let mut resp = Response::empty()?.with_status(200);
    let h = resp.headers_mut();
    h.set(
        "vary",
        "origin, access-control-request-method, access-control-request-headers",
    )?;
    if let Some(o) = allowed_origin(cfg, req) {
        h.set("access-control-allow-origin", &o)?;
        h.set("access-control-allow-methods", "GET,POST,OPTIONS")?;
        h.set(
            "access-control-allow-headers",
            "authorization,content-type,last-event-id",
        )?;
        h.set("access-control-max-age", "600")?;
    }
    Ok(resp)
}

fn query_token(url: &Url) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let cfg = config(&env);
    let origin = allowed_origin(&cfg, &req);
    if req.method() == Method::Options && !cfg.cors_origins.is_empty() {
        return preflight(&cfg, &req);
    }
    let resp = match handle(&mut req, &env, &cfg).await {
        Ok(r) => r,
        Err(e) => error_response(&e)?,
    };
    with_cors(resp, origin.as_deref())
}

async fn handle(
    req: &mut Request,
    env: &Env,
    cfg: &GatewayConfig,
) -> std::result::Result<Response, GatewayError> {
    let url = req.url().map_err(|_| GatewayError::NotFound)?;
    let route = gateway_core::paths::parse(url.path()).ok_or(GatewayError::NotFound)?;
    let method = req.method();
    let (room, want) = match route {
        Route::Health => {
            if method != Method::Get {
                return Err(GatewayError::MethodNotAllowed);
            }
            return json_response("{\"status\":\"ok\"}".into()).map_err(internal);
        }
        // 404 unless a metrics token is configured.
        Route::Metrics => return metrics::scrape(req, env).await,
        Route::Subscribe(r) => (r, Method::Get),
        Route::IssueUniqueIdx(r) | Route::Broadcast(r) => (r, Method::Post),
    };
    if method != want {
        return Err(GatewayError::MethodNotAllowed);
    }
    gateway_core::validate_room_id(room)?;
    let auth = req.headers().get("authorization").map_err(internal)?;
    let qt = query_token(&url);
    let needed = match route {
        Route::Subscribe(_) => Access::Read,
        _ => Access::Write,
    };
    let caller = gateway_core::authorize(
        AccessPolicy {
            secret: cfg.access_secret.as_deref().map(str::as_bytes),
            require_party_tokens: cfg.require_party_tokens,
        },
        room,
        auth.as_deref(),
        qt.as_deref(),
        now_ms() / 1000,
        needed,
    )?;
    let headers = Headers::new();
    headers.set(H_ROOM, room).map_err(internal)?;
    if let Some(p) = caller.party {
        headers.set(H_PARTY, &p.to_string()).map_err(internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method);
    let inner_path = match route {
        Route::Subscribe(_) => {
            let last = req.headers().get("last-event-id").map_err(internal)?;
            let last = gateway_core::parse_last_event_id(last.as_deref())?;
            headers.set(H_LAST, &last.to_string()).map_err(internal)?;
            "subscribe"
        }
        Route::Broadcast(_) => {
            let limit = cfg.limits.max_message_bytes;
            if let Some(len) = req
                .headers()
                .get("content-length")
                .ok()
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
            {
                if len > limit {
                    return Err(GatewayError::MessageTooLarge { size: len, limit });
                }
            }
            let body = req.bytes().await.map_err(internal)?;
            let text = gateway_core::validate_body(&body, &cfg.limits)?;
            init.with_body(Some(wasm_bindgen::JsValue::from_str(text)));
            "broadcast"
        }
        _ => "issue_unique_idx",
    };
    init.with_headers(headers);
    let inner =
        Request::new_with_init(&format!("https://room/{inner_path}"), &init).map_err(internal)?;
    let ns = env.durable_object("ROOMS").map_err(internal)?;
    let stub = ns
        .id_from_name(room)
        .and_then(|id| id.get_stub())
        .map_err(internal)?;
    stub.fetch_with_request(inner).await.map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    console_error!("internal error: {e}");
    GatewayError::Internal
}

/// Persisted per-room metadata.
#[derive(Serialize, Deserialize, Default)]
struct Meta {
    created_ms: u64,
    last_active_ms: u64,
    next_idx: u16,
    expired: bool,
    /// Bytes posted per party token.
    #[serde(default)]
    party_bytes: BTreeMap<u16, u64>,
    /// Whether the quota object admitted this room.
    #[serde(default)]
    admitted: bool,
    /// Bytes this room reserved at the quota object (released when it is wiped).
    #[serde(default)]
    held_bytes: u64,
}

/// The caller's party, as the Worker passed it (from a verified party token).
fn caller_of(req: &Request) -> Caller {
    Caller {
        party: req
            .headers()
            .get(H_PARTY)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok()),
    }
}

fn msg_key(seq: u64) -> String {
    format!("m:{seq:016}")
}

struct Inner {
    /// `None` until loaded from storage; then the live room.
    room: Option<Room<()>>,
    expired: bool,
    loaded: bool,
    /// The quota object counts this room (and its bytes) until it is wiped.
    admitted: bool,
    /// Bytes reserved at the quota object.
    held_bytes: u64,
    subscribers: Vec<mpsc::Sender<Message>>,
    /// Counts for the metrics object (`None`: metrics are off).
    report: Option<Reporter>,
}

/// Counts an event into the room's next metrics report (`f` may count nothing: a gauge
/// changed) and makes sure that report is sent: a timer started by the first event
/// after a report sends it `METRICS_REPORT_MS` later, after the response, so no
/// request waits for the metrics object. Nothing when metrics are off.
fn note(cell: &Rc<RefCell<Inner>>, env: &Env, f: impl FnOnce(&mut Counters)) {
    let Ok(mut inner) = cell.try_borrow_mut() else {
        console_error!("metrics: the room is busy, an event goes uncounted");
        return;
    };
    let Some(rep) = inner.report.as_mut() else {
        return;
    };
    f(&mut rep.pending);
    if rep.scheduled {
        return;
    }
    rep.scheduled = true;
    let every = Duration::from_millis(rep.every_ms);
    drop(inner);
    let (cell, env) = (cell.clone(), env.clone());
    wasm_bindgen_futures::spawn_local(async move {
        Delay::from(every).await;
        if let Err(e) = report_now(&cell, &env).await {
            console_error!("metrics: report failed: {e}");
        }
    });
}

/// Sends the room's pending counts and current gauges to the metrics object now; on
/// failure the counts stay pending for the next report. One report of a room is in
/// flight at a time, so they arrive in order (a stale subscriber count cannot land
/// after the expired room's zeros): a call while one is in flight leaves its work to
/// that one, which sends again when it is done.
async fn report_now(cell: &Rc<RefCell<Inner>>, env: &Env) -> Result<()> {
    {
        let mut inner = cell.borrow_mut();
        let Some(rep) = inner.report.as_mut() else {
            return Ok(());
        };
        if rep.in_flight {
            rep.again = true;
            return Ok(());
        }
        rep.in_flight = true;
    }
    loop {
        let report = {
            let mut inner = cell.borrow_mut();
            let (subscribers, messages) = inner
                .room
                .as_ref()
                .map(|r| (u64::from(r.subscribers()), r.len() as u64))
                .unwrap_or((0, 0));
            let Some(rep) = inner.report.as_mut() else {
                return Ok(());
            };
            rep.scheduled = false;
            rep.again = false;
            RoomReport {
                room: rep.id.clone(),
                counters: std::mem::take(&mut rep.pending),
                subscribers,
                messages,
            }
        };
        let sent = metrics::send(env, &report).await;
        let mut inner = cell.borrow_mut();
        let Some(rep) = inner.report.as_mut() else {
            return sent;
        };
        if sent.is_err() {
            rep.pending.add(&report.counters);
        }
        if sent.is_err() || !rep.again {
            rep.in_flight = false;
            return sent;
        }
    }
}

/// One room: its sequence, indices, messages and subscribers.
#[durable_object]
pub struct RoomObject {
    state: State,
    env: Env,
    inner: Rc<RefCell<Inner>>,
}

impl RoomObject {
    async fn load(&self) -> Result<()> {
        if self.inner.borrow().loaded {
            return Ok(());
        }
        let storage = self.state.storage();
        let meta: Option<Meta> = storage.get("meta").await?;
        let mut msgs = Vec::new();
        if matches!(&meta, Some(m) if !m.expired) {
            let map = storage
                .list_with_options(ListOptions::new().prefix("m:"))
                .await?;
            for entry in map.entries() {
                let entry = entry.map_err(|e| Error::from(format!("{e:?}")))?;
                let pair = js_sys::Array::from(&entry);
                let key = pair.get(0).as_string().unwrap_or_default();
                let seq = key
                    .strip_prefix("m:")
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| Error::from(format!("bad message key {key:?}")))?;
                let body = pair
                    .get(1)
                    .as_string()
                    .ok_or_else(|| Error::from(format!("message {seq} is not a string")))?;
                msgs.push(Message {
                    seq,
                    body: Arc::from(body.as_str()),
                    // Storage keeps no time: no delivery latency for reloaded messages.
                    posted_ms: 0,
                });
            }
            msgs.sort_by_key(|m| m.seq);
        }
        let mut inner = self.inner.borrow_mut();
        if inner.loaded {
            return Ok(());
        }
        inner.loaded = true;
        match meta {
            Some(m) if m.expired => inner.expired = true,
            Some(m) => {
                inner.admitted = m.admitted;
                inner.held_bytes = m.held_bytes;
                inner.room = Some(Room::restore(
                    m.created_ms,
                    m.last_active_ms,
                    m.next_idx,
                    msgs,
                    m.party_bytes,
                    (),
                ))
            }
            None => {}
        }
        Ok(())
    }

    async fn save_meta(&self) -> Result<()> {
        let meta = {
            let inner = self.inner.borrow();
            match &inner.room {
                Some(r) => Meta {
                    created_ms: r.created_ms(),
                    last_active_ms: r.last_active_ms(),
                    next_idx: r.next_idx(),
                    expired: false,
                    party_bytes: r.party_bytes().clone(),
                    admitted: inner.admitted,
                    held_bytes: inner.held_bytes,
                },
                None => Meta {
                    expired: inner.expired,
                    ..Default::default()
                },
            }
        };
        self.state.storage().put("meta", meta).await
    }

    /// Expires the room if due; returns the live room guard or `RoomExpired`.
    fn live_room(
        &self,
        limits: &Limits,
        now: u64,
        create: bool,
    ) -> std::result::Result<std::cell::RefMut<'_, Inner>, GatewayError> {
        let mut inner = self.inner.borrow_mut();
        if inner.expired {
            return Err(GatewayError::RoomExpired);
        }
        let due = inner
            .room
            .as_ref()
            .map(|r| r.expiry(limits, now) != gateway_core::Expiry::Live)
            .unwrap_or(false);
        if due {
            inner.room = None;
            inner.expired = true;
            inner.subscribers.clear();
            return Err(GatewayError::RoomExpired);
        }
        if inner.room.is_none() && create {
            inner.room = Some(Room::new(now, ()));
        }
        Ok(inner)
    }

    fn quota(&self) -> std::result::Result<Stub, GatewayError> {
        let ns = self.env.durable_object("QUOTA").map_err(internal)?;
        let id = ns.id_from_name(QUOTA).map_err(internal)?;
        id.get_stub().map_err(internal)
    }

    /// Asks the quota object; `Ok` when it agreed, its error otherwise.
    async fn ask_quota(&self, path: &str) -> std::result::Result<(), GatewayError> {
        let mut resp = self
            .quota()?
            .fetch_with_str(&format!("https://quota/{path}"))
            .await
            .map_err(internal)?;
        if resp.status_code() == 200 {
            return Ok(());
        }
        let body: gateway_core::ErrorBody = resp.json().await.map_err(internal)?;
        Err(match body.error.as_str() {
            "too_many_rooms" => GatewayError::TooManyRooms(0),
            "gateway_busy" if path.starts_with("admit") => {
                GatewayError::GatewayBusy("new rooms are refused")
            }
            "gateway_busy" => GatewayError::GatewayBusy("posts are refused"),
            _ => GatewayError::Internal,
        })
    }

    /// The room is live, or is created now if the quota object admits one more room.
    async fn ensure_room(
        &self,
        limits: &Limits,
        now: u64,
    ) -> std::result::Result<(), GatewayError> {
        {
            let inner = self.live_room(limits, now, false)?;
            if inner.room.is_some() {
                return Ok(());
            }
        }
        self.ask_quota("admit").await?;
        // Another request may have created the room while the quota object answered:
        // then this admission is one too many and goes back.
        let extra = {
            let mut inner = self.live_room(limits, now, false)?;
            if inner.room.is_some() && inner.admitted {
                true
            } else {
                inner.room = Some(Room::new(now, ()));
                inner.admitted = true;
                false
            }
        };
        if extra {
            self.ask_quota("release?rooms=1&bytes=0").await?;
        }
        Ok(())
    }

    async fn schedule(&self, limits: &Limits) -> Result<()> {
        let at = {
            let inner = self.inner.borrow();
            match &inner.room {
                Some(r) => r.expires_at_ms(limits),
                None => return Ok(()),
            }
        };
        // With subscribers a room does not idle out, so its idle deadline may be past:
        // look again later rather than firing in a loop.
        let at = at.max(now_ms() + 1000);
        self.state.storage().set_alarm(at as i64 + 50).await
    }

    async fn wipe(&self) -> Result<()> {
        // The room's last report: expired, no subscribers, no messages.
        note(&self.inner, &self.env, Counters::expired);
        if let Err(e) = report_now(&self.inner, &self.env).await {
            console_error!("metrics: the expired room's report failed: {e}");
        }
        // Give the room and its bytes back to the budget (once: `admitted` goes false).
        let held = {
            let mut inner = self.inner.borrow_mut();
            let held = inner.admitted.then_some(inner.held_bytes);
            inner.admitted = false;
            inner.held_bytes = 0;
            held
        };
        if let Some(bytes) = held {
            if let Err(e) = self
                .ask_quota(&format!("release?rooms=1&bytes={bytes}"))
                .await
            {
                console_error!("releasing the room's quota failed: {e}");
            }
        }
        let storage = self.state.storage();
        storage.delete_all().await?;
        storage
            .put(
                "meta",
                Meta {
                    expired: true,
                    ..Default::default()
                },
            )
            .await
    }

    async fn serve(
        &self,
        req: Request,
        cfg: &GatewayConfig,
    ) -> std::result::Result<Response, GatewayError> {
        self.load().await.map_err(internal)?;
        let was_expired = self.inner.borrow().expired;
        let res = self.act(req, cfg).await;
        // Whichever way the request ended (a room found expired answers 410 through
        // `?` above), a room that expired during it is wiped once: its quota goes back
        // and its last metrics report goes out.
        if !was_expired && self.inner.borrow().expired {
            self.wipe().await.map_err(internal)?;
        }
        res
    }

    /// The request itself, on a loaded room object.
    async fn act(
        &self,
        req: Request,
        cfg: &GatewayConfig,
    ) -> std::result::Result<Response, GatewayError> {
        let limits = &cfg.limits;
        let now = now_ms();
        let path = req.path();
        match path.as_str() {
            "/issue_unique_idx" => {
                self.ensure_room(limits, now).await?;
                let idx = {
                    let mut inner = self.live_room(limits, now, false)?;
                    let room = inner.room.as_mut().ok_or(GatewayError::Internal)?;
                    room.issue_unique_idx(limits, now)?
                };
                self.save_meta().await.map_err(internal)?;
                self.schedule(limits).await.map_err(internal)?;
                json_response(format!("{{\"unique_idx\":{idx}}}")).map_err(internal)
            }
            "/broadcast" => {
                let caller = caller_of(&req);
                let mut req = req;
                let body = req.text().await.map_err(internal)?;
                self.ensure_room(limits, now).await?;
                // The global budget first (as the native registry does), then the room's
                // and the party's limits; a refused append gives its reservation back.
                let size = body.len() as u64;
                self.ask_quota(&format!("reserve?bytes={size}")).await?;
                let appended = {
                    let mut inner = self.live_room(limits, now, false)?;
                    let inner = &mut *inner;
                    match inner.room.as_mut() {
                        None => Err(GatewayError::Internal),
                        Some(room) => room.append_as(&body, caller, limits, now).inspect(|msg| {
                            inner.held_bytes += size;
                            // Deliver in append order, synchronously: one order for
                            // everyone.
                            inner
                                .subscribers
                                .retain_mut(|tx| tx.try_send(msg.clone()).is_ok());
                        }),
                    }
                };
                let msg = match appended {
                    Ok(m) => {
                        note(&self.inner, &self.env, |c| c.message(size));
                        m
                    }
                    Err(e) => {
                        if let Err(r) = self
                            .ask_quota(&format!("release?rooms=0&bytes={size}"))
                            .await
                        {
                            console_error!("returning a refused post's reservation failed: {r}");
                        }
                        return Err(e);
                    }
                };
                let storage = self.state.storage();
                storage
                    .put(&msg_key(msg.seq), body)
                    .await
                    .map_err(internal)?;
                self.save_meta().await.map_err(internal)?;
                self.schedule(limits).await.map_err(internal)?;
                json_response(format!("{{\"seq\":{}}}", msg.seq)).map_err(internal)
            }
            "/subscribe" => {
                let last = req
                    .headers()
                    .get(H_LAST)
                    .ok()
                    .flatten()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let caller = caller_of(&req);
                self.ensure_room(limits, now).await?;
                let (backlog, rx) = {
                    let mut inner = self.live_room(limits, now, false)?;
                    let room = inner.room.as_mut().ok_or(GatewayError::Internal)?;
                    room.check_resume(last)?;
                    room.subscribe_as(caller, limits, now)?;
                    let backlog = room.messages_after(last, usize::MAX);
                    let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
                    inner.subscribers.push(tx);
                    (backlog, rx)
                };
                let is_new = self
                    .inner
                    .borrow()
                    .room
                    .as_ref()
                    .map(|r| r.is_empty())
                    .unwrap_or(false);
                note(&self.inner, &self.env, Counters::subscribed);
                if is_new {
                    self.save_meta().await.map_err(internal)?;
                }
                self.schedule(limits).await.map_err(internal)?;
                self.sse(backlog, rx, caller, cfg.keepalive_secs)
                    .map_err(internal)
            }
            _ => Err(GatewayError::NotFound),
        }
    }

    fn sse(
        &self,
        backlog: Vec<Message>,
        rx: mpsc::Receiver<Message>,
        caller: Caller,
        keepalive_secs: u64,
    ) -> Result<Response> {
        // Each chunk with the acceptance times of the events in it (for the metrics).
        let mut chunks: VecDeque<(String, Vec<u64>)> = VecDeque::new();
        chunks.push_back((gateway_core::SSE_OPENING.to_owned(), Vec::new()));
        let (mut cur, mut posted) = (String::new(), Vec::new());
        for m in backlog {
            if !cur.is_empty() && cur.len() + m.body.len() > MAX_BATCH_BYTES {
                chunks.push_back((std::mem::take(&mut cur), std::mem::take(&mut posted)));
            }
            cur.push_str(&gateway_core::format_sse_event(m.seq, &m.body));
            posted.push(m.posted_ms);
        }
        if !cur.is_empty() {
            chunks.push_back((cur, posted));
        }
        let guard = SubGuard {
            inner: self.inner.clone(),
            env: self.env.clone(),
            caller,
        };
        let period = Duration::from_secs(keepalive_secs.max(1));
        let st = (chunks, rx, guard);
        let stream =
            futures_util::stream::unfold(st, move |(mut chunks, mut rx, guard)| async move {
                if let Some((c, posted)) = chunks.pop_front() {
                    guard.delivered(&posted);
                    return Some((Ok::<Vec<u8>, Error>(c.into_bytes()), (chunks, rx, guard)));
                }
                let next = rx.next();
                let delay = Delay::from(period);
                match select(next, delay).await {
                    Either::Left((Some(m), _)) => {
                        let mut out = gateway_core::format_sse_event(m.seq, &m.body);
                        let mut posted = vec![m.posted_ms];
                        // Take whatever else is queued already.
                        while out.len() < MAX_BATCH_BYTES {
                            match rx.try_recv() {
                                Ok(m) => {
                                    out.push_str(&gateway_core::format_sse_event(m.seq, &m.body));
                                    posted.push(m.posted_ms);
                                }
                                Err(_) => break,
                            }
                        }
                        guard.delivered(&posted);
                        Some((Ok(out.into_bytes()), (chunks, rx, guard)))
                    }
                    // Dropped by the room (expired, or too far behind): end the stream.
                    Either::Left((None, _)) => None,
                    Either::Right(_) => Some((
                        Ok(gateway_core::SSE_KEEPALIVE.as_bytes().to_vec()),
                        (chunks, rx, guard),
                    )),
                }
            });
        let headers = Headers::new();
        headers.set("content-type", "text/event-stream")?;
        headers.set("cache-control", "no-cache")?;
        Ok(Response::from_stream(stream)?.with_headers(headers))
    }
}

/// Counts a subscriber's deliveries, and unregisters it when its stream is dropped.
struct SubGuard {
    inner: Rc<RefCell<Inner>>,
    env: Env,
    caller: Caller,
}

impl SubGuard {
    /// Events accepted at `posted` (ms) are being written to the subscriber now.
    fn delivered(&self, posted: &[u64]) {
        if posted.is_empty() {
            return;
        }
        let now = now_ms();
        note(&self.inner, &self.env, |c| {
            for p in posted {
                c.delivered(now, *p);
            }
        });
    }
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.subscribers.retain(|tx| !tx.is_closed());
            let now = now_ms();
            if let Some(r) = inner.room.as_mut() {
                r.unsubscribe_as(self.caller, now);
            }
        }
        // The subscriber gauge changed.
        note(&self.inner, &self.env, |_| {});
    }
}

impl DurableObject for RoomObject {
    fn new(state: State, env: Env) -> Self {
        let report = metrics::report_every_ms(&env).map(|every_ms| Reporter {
            id: state.id().to_string(),
            every_ms,
            pending: Counters::default(),
            scheduled: false,
            in_flight: false,
            again: false,
        });
        RoomObject {
            state,
            env,
            inner: Rc::new(RefCell::new(Inner {
                room: None,
                expired: false,
                loaded: false,
                admitted: false,
                held_bytes: 0,
                subscribers: Vec::new(),
                report,
            })),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let cfg = config(&self.env);
        match self.serve(req, &cfg).await {
            Ok(r) => Ok(r),
            Err(e) => {
                note(&self.inner, &self.env, |c| c.error(e.status()));
                error_response(&e)
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.load().await?;
        let cfg = config(&self.env);
        let now = now_ms();
        let was_expired = self.inner.borrow().expired;
        match self.live_room(&cfg.limits, now, false) {
            Ok(inner) => {
                drop(inner);
                // Not due yet (activity moved the deadline, or subscribers hold it open).
                self.schedule(&cfg.limits).await?;
            }
            Err(_) => {
                if !was_expired {
                    self.wipe().await?;
                }
            }
        }
        Response::ok("ok")
    }
}

/// Counts over all rooms, kept by the one [`QuotaObject`].
#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct Counts {
    rooms: u64,
    bytes: u64,
}

/// The limits over all rooms (`max_rooms`, `max_total_bytes` and the new-room
/// threshold): one instance, asked by every room object. A Durable Object handles one
/// event at a time, so its counts stay exact.
#[durable_object]
pub struct QuotaObject {
    state: State,
    env: Env,
    counts: RefCell<Option<Counts>>,
}

impl QuotaObject {
    async fn counts(&self) -> Result<Counts> {
        if let Some(c) = *self.counts.borrow() {
            return Ok(c);
        }
        let c: Counts = self
            .state
            .storage()
            .get("counts")
            .await?
            .unwrap_or_default();
        *self.counts.borrow_mut() = Some(c);
        Ok(c)
    }

    async fn store(&self, c: Counts) -> Result<()> {
        *self.counts.borrow_mut() = Some(c);
        self.state.storage().put("counts", c).await
    }

    async fn decide(&self, req: &Request) -> std::result::Result<(), GatewayError> {
        let cfg = config(&self.env);
        let l = &cfg.limits;
        let url = req.url().map_err(internal)?;
        let num = |name: &str| -> u64 {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        let mut c = self.counts().await.map_err(internal)?;
        match url.path() {
            "/admit" => {
                if c.rooms >= l.max_rooms {
                    return Err(GatewayError::TooManyRooms(l.max_rooms));
                }
                let over = u128::from(c.bytes) * 100
                    >= u128::from(l.max_total_bytes) * u128::from(l.new_room_budget_percent);
                if over {
                    return Err(GatewayError::GatewayBusy("new rooms are refused"));
                }
                c.rooms += 1;
            }
            "/reserve" => {
                let n = num("bytes");
                if c.bytes.saturating_add(n) > l.max_total_bytes {
                    return Err(GatewayError::GatewayBusy("posts are refused"));
                }
                c.bytes += n;
            }
            "/release" => {
                c.rooms = c.rooms.saturating_sub(num("rooms"));
                c.bytes = c.bytes.saturating_sub(num("bytes"));
            }
            _ => return Err(GatewayError::NotFound),
        }
        self.store(c).await.map_err(internal)
    }
}

impl DurableObject for QuotaObject {
    fn new(state: State, env: Env) -> Self {
        QuotaObject {
            state,
            env,
            counts: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == "/counts" {
            // For the metrics object: live rooms and retained bytes.
            let c = self.counts().await?;
            return json_response(
                serde_json::to_string(&c).map_err(|e| Error::from(e.to_string()))?,
            );
        }
        match self.decide(&req).await {
            Ok(()) => json_response("{\"ok\":true}".into()),
            Err(e) => error_response(&e),
        }
    }
}
