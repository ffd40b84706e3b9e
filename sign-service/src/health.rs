//! Readiness: whether this cosigner can do its work now, checked the same way for the
//! admin port's `/readyz` (`crate::admin`), the `cosigner_ready` metric and the
//! standard gRPC health service (`grpc.health.v1.Health`, `tonic-health`) on the API
//! port, which a background task keeps current.
//!
//! The checks: not shutting down; the key store answers a read; the audit log can take
//! records (a request whose record cannot be written is refused, so a broken log stops
//! all signing); the gateway answers; and, when the operator asks for it
//! (`readiness_min_prime_sets`), enough safe-prime sets in the pool for new wallets
//! (an empty pool only delays wallet creation: by default it is reported, not
//! required).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::state::State;

/// The name the API service has in `grpc.health.v1` (the empty name is the whole
/// server; both carry the same status).
pub const GRPC_SERVICE: &str = "wallet.cosigner.v1.Cosigner";

/// How long the gateway may take to answer the readiness probe.
const GATEWAY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One readiness check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What is checked: `serving`, `key_store`, `audit_log`, `gateway`, `prime_pool`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// Whether readiness needs it (a failed check that is not required is reported
    /// only).
    pub required: bool,
    /// What was found.
    pub detail: String,
}

/// The result of every check.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    /// Whether every required check passes.
    pub ready: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

fn check(name: &'static str, required: bool, r: Result<String, String>) -> Check {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        name,
        ok,
        required,
        detail,
    }
}

/// Runs every check (the gateway probe waits at most 2 s).
pub async fn readiness(st: &Arc<State>) -> Readiness {
    let serving = check(
        "serving",
        true,
        match st.check_serving() {
            Ok(()) => Ok("accepting work".into()),
            Err(_) => Err("shutting down: new work is refused".into()),
        },
    );
    let store = check(
        "key_store",
        true,
        st.blocking(|s| s.wallet_count())
            .await
            .map(|n| format!("{n} wallets"))
            .map_err(|e| e.to_string()),
    );
    let audit = check(
        "audit_log",
        true,
        st.audit_check()
            .map(|()| "appending".into())
            .map_err(|e| e.to_string()),
    );
    let gateway = check(
        "gateway",
        true,
        match tokio::time::timeout(GATEWAY_PROBE_TIMEOUT, st.gateway.probe()).await {
            Ok(Ok(())) => Ok(format!("{} answers", st.cfg.gateway_url)),
            Ok(Err(e)) => Err(format!("{}: {e}", st.cfg.gateway_url)),
            Err(_) => Err(format!(
                "{}: no answer within {GATEWAY_PROBE_TIMEOUT:?}",
                st.cfg.gateway_url
            )),
        },
    );
    let min = st.cfg.readiness_min_prime_sets;
    let primes = if st.cfg.insecure_dev_primes {
        check("prime_pool", false, Ok("insecure dev primes".into()))
    } else {
        let have = st.primes.len();
        let detail = format!(
            "{have} sets in the pool (target {}, readiness needs {min})",
            st.cfg.prime_pool_size
        );
        check(
            "prime_pool",
            min > 0,
            if have >= min.max(1) {
                Ok(detail)
            } else {
                Err(detail)
            },
        )
    };
    let checks = vec![serving, store, audit, gateway, primes];
    Readiness {
        ready: checks.iter().all(|c| c.ok || !c.required),
        checks,
    }
}

/// The gRPC health service's statuses (`grpc.health.v1`): the whole server and the
/// API service, always the same.
#[derive(Debug)]
pub struct GrpcHealth {
    reporter: HealthReporter,
    /// Orders publications, so a check that started before a drain cannot publish
    /// `SERVING` after the drain's `NOT_SERVING`.
    order: tokio::sync::Mutex<()>,
}

impl GrpcHealth {
    /// The statuses (`SERVING` until the first check) and the gRPC service serving
    /// them.
    pub fn new() -> (Arc<Self>, HealthServer<HealthService>) {
        let reporter = HealthReporter::new();
        let server = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        (
            Arc::new(Self {
                reporter,
                order: tokio::sync::Mutex::new(()),
            }),
            server,
        )
    }

    /// Publishes `ready`, or `NOT_SERVING` whatever `ready` says once `st` drains.
    pub async fn publish(&self, st: &State, ready: bool) {
        let _order = self.order.lock().await;
        let status = if ready && st.check_serving().is_ok() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(GRPC_SERVICE, status).await;
    }
}

/// Keeps the gRPC health status (and the cached readiness of the metrics) current:
/// checks every `health_check_interval_secs`, logging each change, until the service
/// drains.
pub fn spawn_reporter(st: Arc<State>, health: Arc<GrpcHealth>) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(Duration::from_secs(st.cfg.health_check_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<bool> = None;
        while st.check_serving().is_ok() {
            tick.tick().await;
            let r = readiness(&st).await;
            st.set_ready(r.ready);
            if last != Some(r.ready) {
                if r.ready {
                    tracing::info!("ready");
                } else {
                    let failing: Vec<String> = r
                        .checks
                        .iter()
                        .filter(|c| !c.ok && c.required)
                        .map(|c| format!("{}: {}", c.name, c.detail))
                        .collect();
                    tracing::warn!(failing = ?failing, "not ready");
                }
                last = Some(r.ready);
            }
            health.publish(&st, r.ready).await;
        }
    });
}
