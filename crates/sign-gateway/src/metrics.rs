//! Prometheus metrics (text exposition format, no extra dependency).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_core::RegistryStats;

/// Counters of one gateway process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages accepted by `broadcast`.
    pub messages: AtomicU64,
    /// Bytes of accepted messages.
    pub message_bytes: AtomicU64,
    /// Events written to subscribers.
    pub delivered: AtomicU64,
    /// Subscriptions opened.
    pub subscriptions: AtomicU64,
    /// Rooms expired.
    pub rooms_expired: AtomicU64,
    /// Error responses by class: 400, 401, 403, 404/405, 409/410, 413, 429, 5xx.
    errors: [AtomicU64; 8],
}

const ERROR_CLASSES: [&str; 8] = ["400", "401", "403", "404", "410", "413", "429", "5xx"];

impl Metrics {
    /// Counts an error response with HTTP `status`.
    pub fn count_error(&self, status: u16) {
        let i = match status {
            400 => 0,
            401 => 1,
            403 => 2,
            404 | 405 => 3,
            409 | 410 => 4,
            413 => 5,
            429 => 6,
            _ => 7,
        };
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the metrics with the registry's current gauges.
    pub fn render(&self, s: &RegistryStats) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {v}");
        };
        metric("sign_gateway_rooms", "gauge", "Live rooms.", s.rooms);
        metric(
            "sign_gateway_subscribers",
            "gauge",
            "Open SSE subscriptions.",
            s.subscribers,
        );
        metric(
            "sign_gateway_retained_messages",
            "gauge",
            "Messages retained for resume over all rooms.",
            s.messages,
        );
        metric(
            "sign_gateway_retained_bytes",
            "gauge",
            "Message bytes retained over all rooms.",
            s.bytes,
        );
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "sign_gateway_messages_total",
            "counter",
            "Messages accepted by broadcast.",
            ld(&self.messages),
        );
        metric(
            "sign_gateway_message_bytes_total",
            "counter",
            "Bytes of messages accepted by broadcast.",
            ld(&self.message_bytes),
        );
        metric(
            "sign_gateway_events_delivered_total",
            "counter",
            "SSE events written to subscribers.",
            ld(&self.delivered),
        );
        metric(
            "sign_gateway_subscriptions_total",
            "counter",
            "SSE subscriptions opened.",
            ld(&self.subscriptions),
        );
        metric(
            "sign_gateway_rooms_expired_total",
            "counter",
            "Rooms expired.",
            ld(&self.rooms_expired),
        );
        let _ = writeln!(
            out,
            "# HELP sign_gateway_errors_total Error responses by status class."
        );
        let _ = writeln!(out, "# TYPE sign_gateway_errors_total counter");
        for (i, class) in ERROR_CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "sign_gateway_errors_total{{status=\"{class}\"}} {}",
                ld(&self.errors[i])
            );
        }
        out
    }
}
