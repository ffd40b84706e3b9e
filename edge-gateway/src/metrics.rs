//! Prometheus metrics of the edge gateway: `GET /metrics`, OpenMetrics text with the
//! native gateway's names (`sign_gateway_*`), behind a bearer token.
//!
//! Off unless the Worker has a `METRICS_TOKEN` (secret or var): then `/metrics` answers
//! 404 as if it did not exist, and room objects count nothing. With a token:
//!
//! - each room object counts its own events (messages, bytes, deliveries and their
//!   latency, subscriptions, expiry, error replies) into [`Counters`] in memory, and at
//!   most once per `METRICS_REPORT_MS` (default 5000) sends them, with its current
//!   subscriber and message counts, to the one [`MetricsObject`] in a [`RoomReport`].
//!   The report goes out from a timer after the response, so no request waits for it:
//!   a message's hot path gains no round trip, only a counter increment;
//! - the metrics object adds the counters to its totals and keeps each room's last
//!   subscriber and message counts (persisted in its storage, so an eviction loses
//!   nothing); a room that reports zero of both (it expired, or its streams closed
//!   and it holds no messages) is dropped from the map;
//! - a scrape asks the metrics object, which reads the room count and retained bytes
//!   from the quota object (exact: the same counts the limits are enforced with) and
//!   encodes everything with `prometheus-client`.
//!
//! So the numbers trail events by up to `METRICS_REPORT_MS`, and counts a room object
//! had not reported yet are lost if it is reset (a deploy, a crash); a room's stale
//! subscriber count is corrected by its next report (a reconnecting client) or its
//! expiry.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use gateway_core::metrics::{check_metrics_token, delivery_latency_buckets, status_class};
use gateway_core::GatewayError;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use worker::*;

use crate::{env_num, env_str, internal, Counts, QUOTA};

/// Name of the one metrics object.
const METRICS: &str = "global";
/// Default of `METRICS_REPORT_MS`: how long a room object collects before it reports.
const DEFAULT_REPORT_MS: u64 = 5000;
/// Storage key prefix of a room's last gauges in the metrics object.
const ROOM_KEY: &str = "r:";

/// The metrics token, if `/metrics` is enabled (secret `METRICS_TOKEN`, or a var of
/// that name for local runs).
pub(crate) fn metrics_token(env: &Env) -> Option<String> {
    env.secret("METRICS_TOKEN")
        .ok()
        .map(|v| v.to_string())
        .or_else(|| env_str(env, "METRICS_TOKEN"))
        .filter(|s| !s.trim().is_empty())
}

/// How often a room object reports, in ms, or `None` when metrics are off.
pub(crate) fn report_every_ms(env: &Env) -> Option<u64> {
    metrics_token(env)?;
    Some(env_num(env, "METRICS_REPORT_MS", DEFAULT_REPORT_MS).clamp(10, 600_000))
}

/// Counts of one room object since its last report (or, in the metrics object, over
/// all rooms since the start).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub(crate) struct Counters {
    messages: u64,
    message_bytes: u64,
    delivered: u64,
    subscriptions: u64,
    rooms_expired: u64,
    /// Error replies by status class ([`status_class`]).
    errors: BTreeMap<String, u64>,
    /// Delivery latencies per bucket (not cumulative): one per finite bound of
    /// [`delivery_latency_buckets`], then `+Inf`. Empty until the first observation.
    latency_buckets: Vec<u64>,
    latency_sum: f64,
    latency_count: u64,
}

impl Counters {
    /// A message of `bytes` accepted.
    pub(crate) fn message(&mut self, bytes: u64) {
        self.messages += 1;
        self.message_bytes += bytes;
    }

    /// A subscription opened.
    pub(crate) fn subscribed(&mut self) {
        self.subscriptions += 1;
    }

    /// The room expired.
    pub(crate) fn expired(&mut self) {
        self.rooms_expired += 1;
    }

    /// An error reply with HTTP `status`.
    pub(crate) fn error(&mut self, status: u16) {
        *self
            .errors
            .entry(status_class(status).to_owned())
            .or_default() += 1;
    }

    /// An event written to a subscriber at `now_ms`, its message accepted at
    /// `posted_ms` (0: not known, e.g. reloaded from storage: no latency observed).
    pub(crate) fn delivered(&mut self, now_ms: u64, posted_ms: u64) {
        self.delivered += 1;
        if posted_ms == 0 {
            return;
        }
        let secs = now_ms.saturating_sub(posted_ms) as f64 / 1000.0;
        let i = delivery_latency_buckets()
            .position(|b| secs <= b)
            .unwrap_or(usize::from(gateway_core::metrics::LATENCY_BUCKETS));
        self.bucket_mut(i, 1);
        self.latency_sum += secs;
        self.latency_count += 1;
    }

    fn bucket_mut(&mut self, i: usize, n: u64) {
        let len = usize::from(gateway_core::metrics::LATENCY_BUCKETS) + 1;
        if self.latency_buckets.len() != len {
            self.latency_buckets.resize(len, 0);
        }
        if let Some(b) = self.latency_buckets.get_mut(i) {
            *b = b.saturating_add(n);
        }
    }

    /// Adds `o` to these counts.
    pub(crate) fn add(&mut self, o: &Counters) {
        self.messages = self.messages.saturating_add(o.messages);
        self.message_bytes = self.message_bytes.saturating_add(o.message_bytes);
        self.delivered = self.delivered.saturating_add(o.delivered);
        self.subscriptions = self.subscriptions.saturating_add(o.subscriptions);
        self.rooms_expired = self.rooms_expired.saturating_add(o.rooms_expired);
        for (k, v) in &o.errors {
            let e = self.errors.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
        for (i, n) in o.latency_buckets.iter().enumerate() {
            self.bucket_mut(i, *n);
        }
        self.latency_sum += o.latency_sum;
        self.latency_count = self.latency_count.saturating_add(o.latency_count);
    }
}

/// What a room object sends to the metrics object.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct RoomReport {
    /// The room object's id.
    pub(crate) room: String,
    /// Counts since its last report.
    pub(crate) counters: Counters,
    /// Its open SSE subscriptions now.
    pub(crate) subscribers: u64,
    /// Messages it retains now.
    pub(crate) messages: u64,
}

/// A room object's reporting state.
pub(crate) struct Reporter {
    /// The room object's id.
    pub(crate) id: String,
    /// How long counts collect before they are sent.
    pub(crate) every_ms: u64,
    /// Counts not sent yet.
    pub(crate) pending: Counters,
    /// A report is scheduled (a timer runs).
    pub(crate) scheduled: bool,
    /// A report is on its way to the metrics object.
    pub(crate) in_flight: bool,
    /// Something asked for a report while one was in flight: send another after it.
    pub(crate) again: bool,
}

/// Sends `report` to the metrics object.
pub(crate) async fn send(env: &Env, report: &RoomReport) -> Result<()> {
    let body = serde_json::to_string(report).map_err(|e| Error::from(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
    let req = Request::new_with_init("https://metrics/report", &init)?;
    let resp = metrics_stub(env)?.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(Error::from(format!(
            "the metrics object answered {}",
            resp.status_code()
        )));
    }
    Ok(())
}

fn metrics_stub(env: &Env) -> Result<Stub> {
    env.durable_object("METRICS")?
        .id_from_name(METRICS)?
        .get_stub()
}

/// `GET /metrics` at the Worker: 404 without a configured token, 401/403 without the
/// right bearer token, else the metrics object's text.
pub(crate) async fn scrape(
    req: &Request,
    env: &Env,
) -> std::result::Result<Response, GatewayError> {
    let token = metrics_token(env).ok_or(GatewayError::NotFound)?;
    if req.method() != Method::Get {
        return Err(GatewayError::MethodNotAllowed);
    }
    let auth = req.headers().get("authorization").map_err(internal)?;
    check_metrics_token(&token, auth.as_deref())?;
    metrics_stub(env)
        .map_err(internal)?
        .fetch_with_str("https://metrics/render")
        .await
        .map_err(internal)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// The delivery-latency histogram from summed bucket counts (`prometheus-client`'s own
/// `Histogram` can only be fed observations one by one).
#[derive(Debug)]
struct SummedHistogram {
    /// (upper bound, count in this bucket), `+Inf` last as `f64::INFINITY`.
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl EncodeMetric for SummedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::result::Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The OpenMetrics text: `totals`, the summed room gauges, and the quota object's
/// `counts` (live rooms, retained bytes).
fn render(totals: &Counters, subscribers: u64, messages: u64, counts: Counts) -> String {
    let mut root = Registry::default();
    let r = root.sub_registry_with_prefix("sign_gateway");
    let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    r.register(
        "messages",
        "Messages accepted by broadcast",
        ConstCounter::new(totals.messages),
    );
    r.register(
        "message_bytes",
        "Bytes of messages accepted by broadcast",
        ConstCounter::new(totals.message_bytes),
    );
    r.register(
        "events_delivered",
        "SSE events written to subscribers",
        ConstCounter::new(totals.delivered),
    );
    r.register(
        "subscriptions",
        "SSE subscriptions opened",
        ConstCounter::new(totals.subscriptions),
    );
    r.register(
        "rooms_expired",
        "Rooms expired",
        ConstCounter::new(totals.rooms_expired),
    );
    let errors = Family::<StatusLabels, Counter>::default();
    for (status, n) in &totals.errors {
        errors
            .get_or_create(&StatusLabels {
                status: status.clone(),
            })
            .inc_by(*n);
    }
    r.register(
        "errors",
        "Error responses by status class (those of room objects)",
        errors,
    );
    let per_bucket = |i: usize| totals.latency_buckets.get(i).copied().unwrap_or(0);
    let mut buckets: Vec<(f64, u64)> = delivery_latency_buckets()
        .enumerate()
        .map(|(i, b)| (b, per_bucket(i)))
        .collect();
    buckets.push((f64::INFINITY, per_bucket(buckets.len())));
    r.register_with_unit(
        "delivery_latency",
        "From a message accepted to its event written to a subscriber (resumes \
         included; millisecond clock)",
        Unit::Seconds,
        SummedHistogram {
            buckets,
            sum: totals.latency_sum,
            count: totals.latency_count,
        },
    );
    r.register("rooms", "Live rooms", gauge(counts.rooms));
    r.register("subscribers", "Open SSE subscriptions", gauge(subscribers));
    r.register(
        "retained_messages",
        "Messages retained for resume over all rooms",
        gauge(messages),
    );
    r.register(
        "retained_bytes",
        "Message bytes retained over all rooms",
        gauge(counts.bytes),
    );
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &root);
    out
}

/// What the metrics object holds: totals over all rooms and each reporting room's last
/// (subscribers, messages).
#[derive(Default)]
struct Aggregate {
    totals: Counters,
    rooms: HashMap<String, (u64, u64)>,
}

/// The one object the room objects report to and `/metrics` reads from.
#[durable_object]
pub struct MetricsObject {
    state: State,
    env: Env,
    data: RefCell<Option<Aggregate>>,
}

impl MetricsObject {
    async fn load(&self) -> Result<()> {
        if self.data.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let totals: Counters = storage.get("totals").await?.unwrap_or_default();
        let mut rooms = HashMap::new();
        let map = storage
            .list_with_options(ListOptions::new().prefix(ROOM_KEY))
            .await?;
        for entry in map.entries() {
            let entry = entry.map_err(|e| Error::from(format!("{e:?}")))?;
            let pair = js_sys::Array::from(&entry);
            let key = pair.get(0).as_string().unwrap_or_default();
            let value = pair.get(1).as_string().unwrap_or_default();
            let parsed = key.strip_prefix(ROOM_KEY).zip(value.split_once(' '));
            match parsed.and_then(|(id, (s, m))| Some((id, s.parse().ok()?, m.parse().ok()?))) {
                Some((id, s, m)) => {
                    rooms.insert(id.to_owned(), (s, m));
                }
                None => console_error!("metrics: ignoring bad entry {key:?} = {value:?}"),
            }
        }
        let mut data = self.data.borrow_mut();
        if data.is_none() {
            *data = Some(Aggregate { totals, rooms });
        }
        Ok(())
    }

    async fn report(&self, report: RoomReport) -> Result<()> {
        self.load().await?;
        let key = format!("{ROOM_KEY}{}", report.room);
        let keep = report.subscribers > 0 || report.messages > 0;
        let totals = {
            let mut data = self.data.borrow_mut();
            let data = data.get_or_insert_with(Aggregate::default);
            data.totals.add(&report.counters);
            if keep {
                data.rooms
                    .insert(report.room, (report.subscribers, report.messages));
            } else {
                data.rooms.remove(&report.room);
            }
            data.totals.clone()
        };
        let storage = self.state.storage();
        if keep {
            storage
                .put(&key, format!("{} {}", report.subscribers, report.messages))
                .await?;
        } else {
            storage.delete(&key).await?;
        }
        storage.put("totals", totals).await
    }

    async fn render(&self) -> Result<String> {
        self.load().await?;
        let mut resp = self
            .env
            .durable_object("QUOTA")?
            .id_from_name(QUOTA)?
            .get_stub()?
            .fetch_with_str("https://quota/counts")
            .await?;
        let counts: Counts = resp.json().await?;
        let data = self.data.borrow();
        let Some(data) = data.as_ref() else {
            return Err(Error::from("metrics not loaded"));
        };
        let (subscribers, messages) = data.rooms.values().fold((0u64, 0u64), |(s, m), (rs, rm)| {
            (s.saturating_add(*rs), m.saturating_add(*rm))
        });
        Ok(render(&data.totals, subscribers, messages, counts))
    }
}

impl DurableObject for MetricsObject {
    fn new(state: State, env: Env) -> Self {
        MetricsObject {
            state,
            env,
            data: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/report" => {
                let report: RoomReport = req.json().await?;
                self.report(report).await?;
                Response::ok("ok")
            }
            "/render" => {
                let text = self.render().await?;
                let headers = Headers::new();
                headers.set(
                    "content-type",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )?;
                Ok(Response::ok(text)?.with_headers(headers))
            }
            _ => Response::error("not found", 404),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_latency_buckets() {
        let mut a = Counters::default();
        a.message(5);
        a.delivered(1_000, 999); // 1 ms: bucket 0.0016 (index 4)
        a.delivered(1_000, 0); // reloaded: counted, no latency
        a.delivered(100_000, 1); // ~100 s: +Inf
        a.error(404);
        a.error(405);
        let mut t = Counters::default();
        t.add(&a);
        t.add(&a);
        assert_eq!(t.messages, 2);
        assert_eq!(t.message_bytes, 10);
        assert_eq!(t.delivered, 6);
        assert_eq!(t.latency_count, 4);
        assert_eq!(t.latency_buckets.len(), 18);
        assert_eq!(t.latency_buckets[4], 2);
        assert_eq!(t.latency_buckets[17], 2);
        assert_eq!(t.errors.get("404"), Some(&4));
        let text = render(&t, 3, 7, Counts { rooms: 2, bytes: 9 });
        for line in [
            "sign_gateway_messages_total 2",
            "sign_gateway_message_bytes_total 10",
            "sign_gateway_events_delivered_total 6",
            "sign_gateway_errors_total{status=\"404\"} 4",
            "sign_gateway_delivery_latency_seconds_count 4",
            "sign_gateway_delivery_latency_seconds_bucket{le=\"+Inf\"} 4",
            "sign_gateway_rooms 2",
            "sign_gateway_subscribers 3",
            "sign_gateway_retained_messages 7",
            "sign_gateway_retained_bytes 9",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
