//! The SSE gateway from the browser: subscribe (EventSource, or a fetch-stream reader
//! where `EventSource` is missing, e.g. extension service workers), broadcast and
//! issue_unique_idx via fetch with the room token. Same contract as the native
//! `gateway-client`: `GET rooms/{room}/subscribe` (`Last-Event-ID` resumes;
//! `?token=` for EventSource, `Authorization: Bearer` otherwise),
//! `POST rooms/{room}/broadcast` (text body → `{"seq"}`),
//! `POST rooms/{room}/issue_unique_idx` (→ `{"unique_idx"}`), errors as
//! `{"error": code, "message"}`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc;
use futures_util::future::{select, Either, LocalBoxFuture};
use futures_util::StreamExt;
use gloo_net::http::{Request, Response};
use js_sys::{Function, Promise, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::error::{ApiError, ApiResult, Code};
use crate::sse::{SseItem, SseParser};

/// Events of a room: `(seq, body)` in the room's order, each once, or a fatal error.
pub type Inbox = mpsc::UnboundedReceiver<ApiResult<(u64, String)>>;
type InboxTx = mpsc::UnboundedSender<ApiResult<(u64, String)>>;

/// Largest event accepted from the gateway.
pub const MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;
/// Give up reconnecting the fetch stream after this long without a working stream.
const GIVE_UP_MS: f64 = 60_000.0;
/// A fetch stream silent this long (keep-alives included) is reconnected.
const IDLE_MS: i32 = 45_000;

/// `Date.now()`.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Resolves after `ms` milliseconds (setTimeout of whatever global scope we run in:
/// window, dedicated worker, service worker).
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&global, &resolve, &JsValue::from(ms.max(0)));
            }
            // No timers at all: resolve at once (a microtask).
            None => {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Something that can post message bodies to the room.
pub trait Post {
    /// Appends `body` to the room.
    fn post(&self, body: String) -> LocalBoxFuture<'_, ApiResult<()>>;
}

/// Which subscription mechanism to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// EventSource if the global scope has one, else fetch-stream.
    #[default]
    Auto,
    /// Browser EventSource (token in the query string).
    EventSource,
    /// fetch with a streamed body (token in the Authorization header).
    Fetch,
}

/// One room on one gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    base: String,
    room: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct ErrBody {
    error: String,
    message: String,
}

#[derive(Deserialize)]
struct Seq {
    #[allow(dead_code)]
    seq: u64,
}

#[derive(Deserialize)]
struct UniqueIdx {
    unique_idx: u16,
}

fn gw_err(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::GatewayUnavailable, message)
}

async fn check(resp: Response) -> ApiResult<Response> {
    if resp.ok() {
        return Ok(resp);
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrBody>(&text) {
        Ok(b) => (b.error, b.message),
        Err(_) => ("unknown".to_owned(), text.chars().take(512).collect()),
    };
    let mut e = gw_err(format!("gateway answered {status} {code}: {message}"));
    e.status = Some(status);
    Err(e)
}

fn transient(e: &ApiError) -> bool {
    match e.status {
        None => true,
        Some(s) => s >= 500 || s == 429,
    }
}

impl Gateway {
    /// A room on the gateway at `base` (http(s) URL), with an optional room token.
    pub fn new(base: &str, room: &str, token: Option<&str>) -> ApiResult<Self> {
        let base = base.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::input(format!(
                "gateway URL {base:?} is not http(s)"
            )));
        }
        if room.is_empty()
            || room.len() > 128
            || !room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ApiError::input(format!("invalid room id {room:?}")));
        }
        Ok(Gateway {
            base: base.trim_end_matches('/').to_owned(),
            room: room.to_owned(),
            token: token.filter(|t| !t.is_empty()).map(str::to_owned),
        })
    }

    fn url(&self, action: &str) -> String {
        format!("{}/rooms/{}/{action}", self.base, self.room)
    }

    async fn post_raw(&self, action: &str, body: Option<String>) -> ApiResult<Response> {
        let mut req = Request::post(&self.url(action));
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(b)
                .map_err(|e| gw_err(format!("cannot build request: {e}")))?,
            None => req
                .build()
                .map_err(|e| gw_err(format!("cannot build request: {e}")))?,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| gw_err(format!("cannot reach the gateway at {}: {e}", self.base)))?;
        check(resp).await
    }

    /// Appends `body` to the room.
    pub async fn broadcast(&self, body: String) -> ApiResult<()> {
        let resp = self.post_raw("broadcast", Some(body)).await?;
        let text = resp.text().await.map_err(|e| gw_err(e.to_string()))?;
        serde_json::from_str::<Seq>(&text)
            .map_err(|e| gw_err(format!("bad broadcast answer: {e}")))?;
        Ok(())
    }

    /// A participant index unique in the room.
    pub async fn issue_unique_idx(&self) -> ApiResult<u16> {
        let resp = self.post_raw("issue_unique_idx", None).await?;
        let text = resp.text().await.map_err(|e| gw_err(e.to_string()))?;
        Ok(serde_json::from_str::<UniqueIdx>(&text)
            .map_err(|e| gw_err(format!("bad issue_unique_idx answer: {e}")))?
            .unique_idx)
    }

    /// Subscribes to the room from its first message.
    pub fn subscribe(&self, kind: TransportKind) -> ApiResult<(Inbox, Subscription)> {
        let has_es =
            Reflect::has(&js_sys::global(), &JsValue::from_str("EventSource")).unwrap_or(false);
        let use_es = match kind {
            TransportKind::Auto => has_es,
            TransportKind::EventSource => {
                if !has_es {
                    return Err(ApiError::input(
                        "EventSource is not available here; use transport \"fetch\"",
                    ));
                }
                true
            }
            TransportKind::Fetch => false,
        };
        let (tx, rx) = mpsc::unbounded();
        let sub = if use_es {
            self.subscribe_es(tx)?
        } else {
            self.subscribe_fetch(tx)
        };
        Ok((rx, sub))
    }

    fn subscribe_es(&self, tx: InboxTx) -> ApiResult<Subscription> {
        let mut url = self.url("subscribe");
        if let Some(t) = &self.token {
            url.push_str("?token=");
            url.push_str(&String::from(js_sys::encode_uri_component(t)));
        }
        let mut es = gloo_net::eventsource::futures::EventSource::new(&url)
            .map_err(|e| gw_err(format!("cannot open EventSource: {e}")))?;
        let mut sub = es
            .subscribe("message")
            .map_err(|e| gw_err(format!("cannot subscribe: {e}")))?;
        let closed = Rc::new(Cell::new(false));
        let closed2 = closed.clone();
        let es = Rc::new(RefCell::new(Some(es)));
        let es2 = es.clone();
        spawn_local(async move {
            let mut last = 0u64;
            while let Some(item) = sub.next().await {
                if closed2.get() || tx.is_closed() {
                    break;
                }
                match item {
                    Ok((_, ev)) => {
                        let Some(seq) = ev.last_event_id().parse::<u64>().ok() else {
                            let _ = tx.unbounded_send(Err(gw_err(format!(
                                "event without a numeric id: {:?}",
                                ev.last_event_id()
                            ))));
                            break;
                        };
                        let Some(data) = ev.data().as_string() else {
                            continue;
                        };
                        if seq > last {
                            last = seq;
                            let _ = tx.unbounded_send(Ok((seq, data)));
                        }
                    }
                    Err(_) => {
                        // gloo reports only errors that leave the EventSource closed (the
                        // browser retries transient ones by itself, with Last-Event-ID).
                        let state = es2
                            .borrow()
                            .as_ref()
                            .map(|e| e.state())
                            .unwrap_or(gloo_net::eventsource::State::Closed);
                        if state == gloo_net::eventsource::State::Closed {
                            let _ = tx.unbounded_send(Err(gw_err(
                                "the gateway refused or closed the event stream (wrong room token, expired room, or CORS)",
                            )));
                            break;
                        }
                    }
                }
            }
        });
        Ok(Subscription {
            closed,
            abort: None,
            es: Some(es),
        })
    }

    fn subscribe_fetch(&self, tx: InboxTx) -> Subscription {
        let closed = Rc::new(Cell::new(false));
        let abort = web_sys::AbortController::new().ok();
        let signal = abort.as_ref().map(|a| a.signal());
        let gw = self.clone();
        let closed2 = closed.clone();
        spawn_local(async move {
            let mut last = 0u64;
            let mut backoff = 100i32;
            let mut failing_since: Option<f64> = None;
            loop {
                if closed2.get() || tx.is_closed() {
                    return;
                }
                let err = match gw
                    .stream_once(
                        &mut last,
                        signal.as_ref(),
                        &tx,
                        &closed2,
                        &mut failing_since,
                    )
                    .await
                {
                    Ok(()) => return,
                    Err(e) => e,
                };
                if closed2.get() || tx.is_closed() {
                    return;
                }
                if !transient(&err) {
                    let _ = tx.unbounded_send(Err(err));
                    return;
                }
                let since = *failing_since.get_or_insert_with(now_ms);
                if now_ms() - since >= GIVE_UP_MS {
                    let _ = tx.unbounded_send(Err(gw_err(format!(
                        "gave up reconnecting to the gateway after {} s: {}",
                        GIVE_UP_MS / 1000.0,
                        err.message
                    ))));
                    return;
                }
                sleep(backoff).await;
                backoff = (backoff * 2).min(5_000);
            }
        });
        Subscription {
            closed,
            abort,
            es: None,
        }
    }

    /// One connection of the fetch stream; `Ok` only when the subscriber went away.
    async fn stream_once(
        &self,
        last: &mut u64,
        signal: Option<&web_sys::AbortSignal>,
        tx: &InboxTx,
        closed: &Cell<bool>,
        failing_since: &mut Option<f64>,
    ) -> ApiResult<()> {
        let mut req = Request::get(&self.url("subscribe")).header("Accept", "text/event-stream");
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        if *last > 0 {
            req = req.header("Last-Event-ID", &last.to_string());
        }
        let resp = req
            .abort_signal(signal)
            .send()
            .await
            .map_err(|e| gw_err(format!("cannot reach the gateway at {}: {e}", self.base)))?;
        let resp = check(resp).await?;
        let body = resp
            .body()
            .ok_or_else(|| gw_err("the gateway sent no body"))?;
        let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        let mut parser = SseParser::new();
        loop {
            if closed.get() || tx.is_closed() {
                let _ = reader.cancel();
                return Ok(());
            }
            let read = JsFuture::from(reader.read());
            let timeout = sleep(IDLE_MS);
            futures_util::pin_mut!(read, timeout);
            let chunk = match select(read, timeout).await {
                Either::Left((r, _)) => {
                    r.map_err(|e| gw_err(format!("stream read failed: {e:?}")))?
                }
                Either::Right(_) => {
                    let _ = reader.cancel();
                    return Err(gw_err("the event stream was idle too long"));
                }
            };
            let done = Reflect::get(&chunk, &JsValue::from_str("done"))
                .ok()
                .and_then(|d| d.as_bool())
                .unwrap_or(true);
            if done {
                return Err(gw_err("the gateway closed the stream"));
            }
            let value =
                Reflect::get(&chunk, &JsValue::from_str("value")).unwrap_or(JsValue::UNDEFINED);
            let Ok(bytes) = value.dyn_into::<Uint8Array>() else {
                return Err(gw_err("the stream yielded a non-byte chunk"));
            };
            *failing_since = None;
            for item in parser.feed(&bytes.to_vec()) {
                let SseItem::Event { id, data, .. } = item else {
                    continue; // comments: "open", keep-alives
                };
                let Some(seq) = id.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                    let mut e = gw_err(format!("event without a numeric id: {id:?}"));
                    e.status = Some(400);
                    return Err(e);
                };
                if seq > *last {
                    *last = seq;
                    let _ = tx.unbounded_send(Ok((seq, data)));
                }
            }
            if parser.buffered() > MAX_EVENT_BYTES {
                let mut e = gw_err(format!("event larger than {MAX_EVENT_BYTES} bytes"));
                e.status = Some(413);
                return Err(e);
            }
        }
    }
}

impl Post for Gateway {
    fn post(&self, body: String) -> LocalBoxFuture<'_, ApiResult<()>> {
        Box::pin(self.broadcast(body))
    }
}

/// Keeps a subscription open; dropping it closes the stream.
pub struct Subscription {
    closed: Rc<Cell<bool>>,
    abort: Option<web_sys::AbortController>,
    es: Option<Rc<RefCell<Option<gloo_net::eventsource::futures::EventSource>>>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.closed.set(true);
        if let Some(a) = &self.abort {
            a.abort();
        }
        if let Some(es) = self.es.take() {
            if let Some(es) = es.borrow_mut().take() {
                es.close();
            }
        }
    }
}
