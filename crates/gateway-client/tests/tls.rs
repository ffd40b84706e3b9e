//! An `https://` gateway: trusted through `ClientOptions::ca_file`, refused with
//! `ClientError::Tls` (not transient, the certificate named) when its CA is unknown.
//! The server is axum over `server-tls` with certificates rcgen makes here.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_client::{ClientError, ClientOptions, GatewayClient};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA (its PEM) and a server certificate and key it issued, written to `dir`.
fn pki(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (c, k) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (ca.pem(), c, k)
}

#[tokio::test]
async fn a_gateway_certificate_from_an_unknown_ca_is_a_tls_error() {
    let dir = std::env::temp_dir().join(format!("gateway-client-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_pem, cert, key) = pki(&dir);
    let config = server_tls::server_config(&cert, &key, server_tls::ALPN_HTTP1).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = server_tls::TlsListener::new(tcp, config).unwrap();
    let app = axum::Router::new().route(
        "/rooms/{room}/broadcast",
        axum::routing::post(|| async { axum::Json(serde_json::json!({"seq": 1})) }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("https://{addr}");

    // Trusted through the CA file.
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let trusting = GatewayClient::with_options(
        &url,
        ClientOptions {
            ca_file: Some(ca_file),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(trusting.broadcast("r", None, "x").await.unwrap(), 1);

    // Web PKI roots only: refused, a TLS error naming the certificate.
    let fast = ClientOptions {
        request_timeout: Duration::from_secs(5),
        give_up_after: Duration::from_secs(30),
        ..Default::default()
    };
    let plain = GatewayClient::with_options(&url, fast).unwrap();
    let e = plain.broadcast("r", None, "x").await.unwrap_err();
    assert!(matches!(e, ClientError::Tls { .. }), "{e:?}");
    assert!(!e.is_transient());
    let text = e.to_string();
    assert!(
        text.contains("certificate") && text.contains("UnknownIssuer"),
        "{text}"
    );
    // A subscription ends at once with the same error (no reconnection for 30 s).
    let started = std::time::Instant::now();
    let mut sub = Box::pin(plain.subscribe("r", None, None));
    assert!(matches!(
        sub.next().await,
        Some(Err(ClientError::Tls { .. }))
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
