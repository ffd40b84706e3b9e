//! The gateway's Prometheus metrics (`prometheus-client`, OpenMetrics text): counters
//! of messages, bytes, deliveries, subscriptions, expired rooms and error replies by
//! status class; the delivery latency (a message accepted → written to a subscriber);
//! and the registry's gauges (rooms, subscribers, retained messages and bytes), set
//! from [`RegistryStats`] at each scrape.

use std::time::Duration;

use gateway_core::metrics::{delivery_latency_buckets, status_class};
use gateway_core::RegistryStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Every metric of one gateway process.
pub struct Metrics {
    registry: Registry,
    /// Messages accepted by `broadcast`.
    messages: Counter,
    /// Bytes of accepted messages.
    message_bytes: Counter,
    /// Events written to subscribers.
    delivered: Counter,
    /// Subscriptions opened.
    subscriptions: Counter,
    /// Rooms expired.
    rooms_expired: Counter,
    errors: Family<StatusLabels, Counter>,
    delivery: Histogram,
    rooms: Gauge,
    subscribers: Gauge,
    retained_messages: Gauge,
    retained_bytes: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered under the `sign_gateway` prefix.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("sign_gateway");
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let messages = counter(r, "messages", "Messages accepted by broadcast");
        let message_bytes = counter(
            r,
            "message_bytes",
            "Bytes of messages accepted by broadcast",
        );
        let delivered = counter(r, "events_delivered", "SSE events written to subscribers");
        let subscriptions = counter(r, "subscriptions", "SSE subscriptions opened");
        let rooms_expired = counter(r, "rooms_expired", "Rooms expired");
        let errors = Family::<StatusLabels, Counter>::default();
        r.register("errors", "Error responses by status class", errors.clone());
        // 0.1 ms to ~6.5 s.
        let delivery = Histogram::new(delivery_latency_buckets());
        r.register_with_unit(
            "delivery_latency",
            "From a message accepted to its event written to a subscriber (resumes \
             included)",
            Unit::Seconds,
            delivery.clone(),
        );
        let rooms = gauge(r, "rooms", "Live rooms");
        let subscribers = gauge(r, "subscribers", "Open SSE subscriptions");
        let retained_messages = gauge(
            r,
            "retained_messages",
            "Messages retained for resume over all rooms",
        );
        let retained_bytes = gauge(r, "retained_bytes", "Message bytes retained over all rooms");
        Self {
            registry: root,
            messages,
            message_bytes,
            delivered,
            subscriptions,
            rooms_expired,
            errors,
            delivery,
            rooms,
            subscribers,
            retained_messages,
            retained_bytes,
        }
    }

    /// Counts an error response with HTTP `status`.
    pub fn count_error(&self, status: u16) {
        self.errors
            .get_or_create(&StatusLabels {
                status: status_class(status),
            })
            .inc();
    }

    /// Counts a message of `bytes` accepted.
    pub fn message(&self, bytes: usize) {
        self.messages.inc();
        self.message_bytes.inc_by(bytes as u64);
    }

    /// Counts a subscription opened.
    pub fn subscribed(&self) {
        self.subscriptions.inc();
    }

    /// Counts `n` rooms expired.
    pub fn expired(&self, n: usize) {
        self.rooms_expired.inc_by(n as u64);
    }

    /// Records an event written to a subscriber, `latency` after its message was
    /// accepted (`None`: not known).
    pub fn delivered(&self, latency: Option<Duration>) {
        self.delivered.inc();
        if let Some(l) = latency {
            self.delivery.observe(l.as_secs_f64());
        }
    }

    /// The OpenMetrics text of every metric, with the gauges set from `s`.
    pub fn render(&self, s: &RegistryStats) -> String {
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.rooms, s.rooms);
        set(&self.subscribers, s.subscribers);
        set(&self.retained_messages, s.messages);
        set(&self.retained_bytes, s.bytes);
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
