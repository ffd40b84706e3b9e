//! The admin port (`admin_listen`): plain HTTP for the operator's probes and scraper,
//! never the API's callers. Bind it to a private interface.
//!
//! - `GET /healthz`: liveness, `200 ok` while the process serves HTTP;
//! - `GET /readyz`: readiness (`crate::health`), `200` or `503`, with every check as
//!   JSON (`{"ready":…,"checks":[{"name","ok","required","detail"}]}`);
//! - `GET /metrics`: Prometheus metrics (`crate::metrics`, OpenMetrics text).

use std::future::Future;
use std::sync::Arc;

use axum::extract::State as Extract;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::Snapshot;
use crate::state::State;

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The admin routes.
pub fn router(st: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(st)
}

/// Serves the admin routes on `listener` until `shutdown` completes.
pub async fn serve(
    st: Arc<State>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(st))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(Extract(st): Extract<Arc<State>>) -> Response {
    let r = crate::health::readiness(&st).await;
    st.set_ready(r.ready);
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r)).into_response()
}

async fn metrics(Extract(st): Extract<Arc<State>>) -> Response {
    let counts = st
        .blocking(|s| Ok((s.presignature_count()?, s.wallet_count()?, s.prime_count()?)))
        .await;
    let (presignatures, wallets, prime_sets) = match counts {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the store's counts");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the key store: {e}\n"),
            )
                .into_response();
        }
    };
    let text = st.metrics.render(&Snapshot {
        presignatures,
        prime_sets,
        wallets,
        active_sessions: st.active_sessions() as u64,
        pending_creations: st.pending_creations() as u64,
        ready: st.is_ready(),
        draining: st.check_serving().is_err(),
    });
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
        text,
    )
        .into_response()
}
