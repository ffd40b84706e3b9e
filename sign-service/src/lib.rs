//! # sign-service — the wallet's native cosigner (party 1)
//!
//! A tonic gRPC server (and gRPC-web, for browsers, on the same port) implementing
//! `wallet.cosigner.v1.Cosigner` (see the `cosigner-api` crate).
//!
//! - [`service`]: the thin RPC adapter, one module per RPC group (authenticate and
//!   extract, call the domain, map the result);
//! - [`error`]: [`CosignerError`], the one error type, and its one conversion to a
//!   `tonic::Status` with a `google.rpc.ErrorInfo`;
//! - the domain: `admission` (registration credentials for CreateWallet, rate limits
//!   per identity and global), `authz` (request authentication, replay, policy decision and its
//!   audit record), `creation` (pending wallets, the DKG job, confirmation), `signing`
//!   (StartSign job, presignature fast path), `scheduler` (presignature sessions on the
//!   bounded worker pool), [`import`] (key-gen share files as wallets);
//! - [`state`]: the shared state; [`store`]: a redb key store whose every record is
//!   encrypted (XChaCha20-Poly1305); [`primes`]: a pool of fresh safe primes for aux
//!   info, generated with GMP; [`policy`]: Ethereum transaction decoding and the
//!   configured signing rules; [`audit`]: a hash-chained, append-only JSON-lines audit
//!   log; [`rollback`]: the presignature rollback anchor outside the store;
//! - operations: [`health`] (readiness checks, the `grpc.health.v1` service on the API
//!   port), [`metrics`] (Prometheus), [`admin`] (the admin port: `/healthz`,
//!   `/readyz`, `/metrics`);
//! - `mpc-party` runs the cosigner's side of every protocol session over the gateway.
//!
//! See `docs/cosigner.md` for the protocol flow and operations.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The cosigner computes every partial signature and the Paillier proofs of every
// session it joins: it is GMP or it is not built. (The protocol library silently falls
// back to num-bigint when both backends are enabled, so the check is on the backend in
// effect, not on the feature asked for.)
const _: () = assert!(
    mpc_core::BACKEND_IS_GMP,
    "sign-service must be built with GMP only: mpc-core's `backend-rug` and not `backend-num-bigint` \
     (build it from its own workspace: `cargo build --manifest-path sign-service/Cargo.toml`)"
);

pub mod admin;
mod admission;
pub mod audit;
mod authz;
mod auxinfo;
pub mod config;
mod creation;
#[cfg(any(test, feature = "test-hooks"))]
pub mod dev_wallet;
mod enrollment;
pub mod error;
pub mod health;
mod hooks;
pub mod import;
mod lifecycle;
pub mod metrics;
pub mod pkcs11;
pub mod policy;
pub mod primes;
#[cfg(test)]
mod props;
pub mod rollback;
mod scheduler;
pub mod service;
mod signing;
pub mod state;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cosigner_api::pb::cosigner_server::CosignerServer;
use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderValue, Method};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

pub use error::CosignerError;
pub use service::CosignerService;
pub use signing::MAX_PREIMAGE;
pub use state::State;

/// CORS for gRPC-web callers: the configured origins, POST, the gRPC-web request headers,
/// and `grpc-status` / `grpc-message` / `grpc-status-details-bin` (the error details,
/// see [`error`]) exposed to scripts.
pub fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("grpc-accept-encoding"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        // Validated at start-up; the form a browser sends in `Origin`.
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| wallet_types::origin::parse_origin(o).ok())
            .filter_map(|o| HeaderValue::from_str(&o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Serves the API on `listener` until `shutdown` completes, then drains: new work is
/// refused with `cosigner_unavailable` (retryable) and `grpc.health.v1` says
/// `NOT_SERVING`, while running sessions finish until `drain_deadline_secs`; the ones
/// left then end with a signed stop notice (their peers fail at once with
/// `cosigner_unavailable`), and the server stops after the in-flight requests. Starts
/// the background tasks.
pub async fn serve(
    state: Arc<State>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_incoming(
        state,
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        shutdown,
    )
    .await
}

/// [`serve`] on the connections of `incoming`: TLS connections whose handshake is done
/// (`server_tls::TlsListener::into_incoming`), or plain TCP.
pub async fn serve_incoming<I, IO, IE>(
    state: Arc<State>,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    I: futures_util::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    state.spawn_background();
    let (grpc_health, health_svc) = health::GrpcHealth::new();
    health::spawn_reporter(Arc::clone(&state), Arc::clone(&grpc_health));
    let draining = Arc::clone(&state);
    let shutdown = async move {
        shutdown.await;
        draining.begin_drain();
        grpc_health.publish(&draining, false).await;
        // The API keeps answering while the running work finishes (ConfirmWallet of a
        // creation whose DKG ends now, status calls); new work is refused.
        draining.drain().await;
    };
    let svc = CosignerServer::new(CosignerService::new(Arc::clone(&state)));
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(cors_layer(&state.cfg.cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(svc)
        .add_service(health_svc)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
