//! Can a browser page talk to `sign-gateway` and `sign-service` cross-origin? Starts both
//! real binaries with their CORS origins set through the environment
//! (`SIGN_GATEWAY_CORS_ORIGINS`, `SIGN_SERVICE_CORS_ORIGINS`) and sends the requests and
//! preflights Chromium sends for `EventSource` / `fetch` (gateway) and for
//! `@connectrpc/connect-web`'s gRPC-web transport (cosigner).

use std::time::Duration;

use crate::common::server_bins;
use anyhow::Result;
use e2e_tests::{start_gateway_with_env, start_service_with_env, ServiceConfig, TempDir};
use reqwest::{Method, Response, StatusCode};

const PAGE: &str = "http://localhost:5173";
const EVIL: &str = "http://evil.example";

fn h(r: &Response, k: &str) -> String {
    r.headers()
        .get(k)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_and_cosigner_accept_browser_origins() -> Result<()> {
    let bins = server_bins()?;
    let dir = TempDir::new("agent-cors")?;
    let c = client();

    // ---------------------------------------------------------------- sign-gateway
    let origins = format!("{PAGE}, http://other.example");
    let (_gw, gw_url) = start_gateway_with_env(
        &bins,
        &dir.0.join("gw"),
        &[("SIGN_GATEWAY_CORS_ORIGINS", &origins)],
    )?;

    // fetch() POST with the room token: preflighted.
    let r = c
        .request(
            Method::OPTIONS,
            format!("{gw_url}/rooms/cors-room/broadcast"),
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await?;
    assert!(r.status().is_success(), "preflight {}", r.status());
    assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
    assert!(h(&r, "access-control-allow-methods").contains("post"));
    assert!(h(&r, "access-control-allow-headers").contains("authorization"));
    assert!(h(&r, "access-control-allow-headers").contains("content-type"));
    let r = c
        .post(format!("{gw_url}/rooms/cors-room/broadcast"))
        .header("origin", PAGE)
        .header("content-type", "text/plain;charset=UTF-8")
        .body("hello from a page")
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
    // EventSource GET (resumed with Last-Event-ID, which a script-driven reconnect sends
    // as a header and so preflights).
    let r = c
        .request(
            Method::OPTIONS,
            format!("{gw_url}/rooms/cors-room/subscribe"),
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await?;
    assert!(r.status().is_success());
    assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
    assert!(h(&r, "access-control-allow-headers").contains("last-event-id"));
    let r = c
        .get(format!("{gw_url}/rooms/cors-room/subscribe"))
        .header("origin", PAGE)
        .header("accept", "text/event-stream")
        .header("last-event-id", "0")
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
    assert!(h(&r, "content-type").starts_with("text/event-stream"));
    drop(r);
    // Other origins get no CORS grant.
    let r = c
        .request(
            Method::OPTIONS,
            format!("{gw_url}/rooms/cors-room/broadcast"),
        )
        .header("origin", EVIL)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await?;
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // ---------------------------------------------------------------- sign-service
    let mut svc_cfg = ServiceConfig {
        port: 0,
        gateway_url: gw_url.clone(),
        data_dir: dir.0.join("svc"),
        max_value_per_tx_wei: None,
        session_timeout_secs: 60,
        extra_yaml: String::new(),
    };
    let _svc = start_service_with_env(&bins, &mut svc_cfg, &[("SIGN_SERVICE_CORS_ORIGINS", PAGE)])?;
    let svc_url = svc_cfg.url();

    // connect-web's grpc-web transport: POST, content-type application/grpc-web+proto,
    // x-grpc-web, x-user-agent, grpc-timeout (when a timeout is set).
    for method in ["Health", "CreateWallet", "StartSign"] {
        let r = c
            .request(
                Method::OPTIONS,
                format!("{svc_url}/wallet.cosigner.v1.Cosigner/{method}"),
            )
            .header("origin", PAGE)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,grpc-timeout,x-grpc-web,x-user-agent",
            )
            .send()
            .await?;
        assert!(r.status().is_success(), "{method} preflight {}", r.status());
        assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
        let allowed = h(&r, "access-control-allow-headers");
        for want in ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"] {
            assert!(allowed.contains(want), "{want} not in {allowed}");
        }
        assert!(h(&r, "access-control-allow-methods").contains("post"));
    }
    // A real grpc-web call that FAILS (empty CreateWalletRequest): the status travels in
    // headers (trailers-only), which scripts can read only when exposed.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&0u32.to_be_bytes());
    let r = c
        .post(format!(
            "{svc_url}/wallet.cosigner.v1.Cosigner/CreateWallet"
        ))
        .header("origin", PAGE)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-user-agent", "connect-es/2.0.0")
        .body(frame.clone())
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
    let expose = h(&r, "access-control-expose-headers");
    assert!(
        expose.contains("grpc-status") && expose.contains("grpc-message"),
        "{expose}"
    );
    let status = h(&r, "grpc-status");
    assert!(
        !status.is_empty() && status != "0",
        "grpc-status {status:?}"
    );
    assert!(!h(&r, "grpc-message").is_empty());
    // A successful call (Health) from the page.
    let r = c
        .post(format!("{svc_url}/wallet.cosigner.v1.Cosigner/Health"))
        .header("origin", PAGE)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-user-agent", "connect-es/2.0.0")
        .body(frame)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h(&r, "access-control-allow-origin"), PAGE);
    assert!(h(&r, "content-type").starts_with("application/grpc-web"));
    // Foreign origins get nothing.
    let r = c
        .request(
            Method::OPTIONS,
            format!("{svc_url}/wallet.cosigner.v1.Cosigner/Health"),
        )
        .header("origin", EVIL)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
        .await?;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    Ok(())
}
