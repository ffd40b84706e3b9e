//! The cosigner's Prometheus metrics (`prometheus-client`, OpenMetrics text), served on
//! the admin port (`crate::admin`): signing latency by path (presignature pool or full
//! protocol), protocol sessions by kind and outcome, policy refusals by rule, and the
//! gauges read when scraped (presignatures and prime sets in store, wallets, sessions
//! running, pending creations, readiness).
//!
//! Label values come from fixed sets (session kinds, outcomes, the policy's rule names,
//! error codes): never from a request, so a caller cannot grow the series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// A protocol session the cosigner runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Full signing (StartSign).
    Sign,
    /// A presignature (StartPresign, or a refill).
    Presign,
    /// Aux info (wallet creation or enrollment).
    AuxInfo,
    /// A DKG (one per account of a wallet).
    Keygen,
    /// A share refresh (one per account of a refresh or a device replacement).
    Refresh,
    /// A share repair for a new device (one per account of a device replacement).
    Repair,
}

impl SessionKind {
    fn label(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Presign => "presign",
            Self::AuxInfo => "aux_info",
            Self::Keygen => "keygen",
            Self::Refresh => "refresh",
            Self::Repair => "repair",
        }
    }
}

/// How a signature was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignPath {
    /// From a presignature: SignWithPresignature, one round trip.
    Pool,
    /// The whole protocol: StartSign's session.
    Full,
}

impl SignPath {
    fn label(self) -> &'static str {
        match self {
            Self::Pool => "pool",
            Self::Full => "full",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

/// The gauges read from the state at each scrape (`crate::admin`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Unused presignatures in the store (every wallet, account, party and path).
    pub presignatures: u64,
    /// Safe-prime sets in the pool for aux info.
    pub prime_sets: u64,
    /// Committed wallets.
    pub wallets: u64,
    /// Protocol sessions holding a slot now.
    pub active_sessions: u64,
    /// Wallet creations and enrollments not finished.
    pub pending_creations: u64,
    /// Whether every readiness check passes (`crate::health`).
    pub ready: bool,
    /// Whether a shutdown has begun.
    pub draining: bool,
}

/// Every metric of one cosigner process.
pub struct Metrics {
    registry: Registry,
    sign_seconds: Family<PathLabels, Histogram, fn() -> Histogram>,
    sessions: Family<SessionLabels, Counter>,
    policy_refusals: Family<RuleLabels, Counter>,
    errors: Family<CodeLabels, Counter>,
    presignatures: Gauge,
    prime_sets: Gauge,
    wallets: Gauge,
    active_sessions: Gauge,
    pending_creations: Gauge,
    ready: Gauge,
    draining: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// 0.5 ms to ~33 s: a pool signature is milliseconds, a full signing seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered under the `cosigner` prefix.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("cosigner");
        let sign_seconds = Family::<PathLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        r.register_with_unit(
            "sign_duration",
            "Time to sign, by path: pool (SignWithPresignature, request to partial \
             signature) or full (the StartSign session, start to verified signature)",
            Unit::Seconds,
            sign_seconds.clone(),
        );
        let sessions = Family::<SessionLabels, Counter>::default();
        r.register(
            "sessions",
            "Protocol sessions the cosigner ran, by kind and outcome (ok or failed)",
            sessions.clone(),
        );
        let policy_refusals = Family::<RuleLabels, Counter>::default();
        r.register(
            "policy_refusals",
            "Sign requests the policy refused, by rule",
            policy_refusals.clone(),
        );
        let errors = Family::<CodeLabels, Counter>::default();
        r.register(
            "errors",
            "Error replies, by wire error code",
            errors.clone(),
        );
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let presignatures = gauge(
            r,
            "presignatures",
            "Unused presignatures in the store (all wallets, accounts, parties and paths)",
        );
        let prime_sets = gauge(r, "prime_sets", "Safe-prime sets in the pool for aux info");
        let wallets = gauge(r, "wallets", "Committed wallets");
        let active_sessions = gauge(r, "active_sessions", "Protocol sessions running now");
        let pending_creations = gauge(
            r,
            "pending_creations",
            "Wallet creations and enrollments not finished",
        );
        let ready = gauge(r, "ready", "1 when every readiness check passes");
        let draining = gauge(r, "draining", "1 once a shutdown has begun");
        Self {
            registry: root,
            sign_seconds,
            sessions,
            policy_refusals,
            errors,
            presignatures,
            prime_sets,
            wallets,
            active_sessions,
            pending_creations,
            ready,
            draining,
        }
    }

    /// Counts a finished protocol session.
    pub fn session(&self, kind: SessionKind, ok: bool) {
        self.sessions
            .get_or_create(&SessionLabels {
                kind: kind.label(),
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Records the time a signature took on `path`.
    pub fn signed(&self, path: SignPath, took: Duration) {
        self.sign_seconds
            .get_or_create(&PathLabels { path: path.label() })
            .observe(took.as_secs_f64());
    }

    /// Counts a policy refusal by its rule.
    pub fn policy_refused(&self, rule: &'static str) {
        self.policy_refusals
            .get_or_create(&RuleLabels { rule })
            .inc();
    }

    /// Counts an error reply by its wire code.
    pub fn error(&self, code: wallet_types::ErrorCode) {
        self.errors
            .get_or_create(&CodeLabels {
                code: code.as_str(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric, with the gauges set from `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.presignatures, now.presignatures);
        set(&self.prime_sets, now.prime_sets);
        set(&self.wallets, now.wallets);
        set(&self.active_sessions, now.active_sessions);
        set(&self.pending_creations, now.pending_creations);
        set(&self.ready, u64::from(now.ready));
        set(&self.draining, u64::from(now.draining));
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new();
        m.session(SessionKind::Sign, true);
        m.session(SessionKind::Sign, false);
        m.session(SessionKind::Sign, false);
        m.signed(SignPath::Pool, Duration::from_millis(3));
        m.policy_refused("ethereum.allowed_destinations");
        m.error(wallet_types::ErrorCode::PolicyDenied);
        let text = m.render(&Snapshot {
            presignatures: 7,
            ready: true,
            ..Default::default()
        });
        for line in [
            "cosigner_sessions_total{kind=\"sign\",outcome=\"ok\"} 1",
            "cosigner_sessions_total{kind=\"sign\",outcome=\"failed\"} 2",
            "cosigner_sign_duration_seconds_count{path=\"pool\"} 1",
            "cosigner_policy_refusals_total{rule=\"ethereum.allowed_destinations\"} 1",
            "cosigner_errors_total{code=\"policy_denied\"} 1",
            "cosigner_presignatures 7",
            "cosigner_ready 1",
            "cosigner_draining 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
