//! The gateway contract suite, run against both gateways as real processes on loopback:
//! `sign-gateway` (this package's binary) and `edge-gateway` under `wrangler dev`.
//!
//! The native gateway also runs with its rooms on Redis (`redis_rooms`, a real
//! `redis-server` per test).
//!
//! Edge runs need `scripts/gateway-edge-build.sh` first. Without a build they print a loud
//! skip notice, unless `REQUIRE_EDGE_GATEWAY=1` (CI) makes that a failure.

use std::path::Path;
use std::time::Duration;

use gateway_tests::contract;
use gateway_tests::process::{start_edge, start_native, TestConfig};

#[path = "contract/redis_rooms.rs"]
mod redis_rooms;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sign-gateway"))
}

async fn native(cfg: TestConfig) -> gateway_tests::process::GatewayProcess {
    match start_native(bin(), &cfg).await {
        Ok(p) => p,
        Err(e) => panic!("cannot start sign-gateway: {e:#}"),
    }
}

fn report(r: anyhow::Result<()>, gw: &gateway_tests::process::GatewayProcess) {
    if let Err(e) = r {
        panic!(
            "{:?} gateway failed the contract: {e:#}\n--- gateway output ---\n{}",
            gw.kind,
            gw.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_open_profile() {
    let gw = native(contract::open_profile()).await;
    report(contract::open_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn native_secured_profile() {
    let gw = native(contract::secured_profile()).await;
    report(contract::secured_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_room_limit() {
    let mut cfg = contract::open_profile();
    cfg.limits.max_rooms = 3;
    let gw = native(cfg).await;
    report(contract::check_room_limit(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_quota_profile() {
    let gw = native(contract::quota_profile()).await;
    report(contract::quota_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_quota_profile() {
    let gw = match start_edge(&contract::quota_profile()).await {
        Ok(Some(gw)) => gw,
        Ok(None) => return,
        Err(e) => panic!("cannot start edge-gateway: {e:#}"),
    };
    report(contract::quota_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_room_limit() {
    let mut cfg = contract::open_profile();
    cfg.limits.max_rooms = 3;
    let gw = match start_edge(&cfg).await {
        Ok(Some(gw)) => gw,
        Ok(None) => return,
        Err(e) => panic!("cannot start edge-gateway: {e:#}"),
    };
    report(contract::check_room_limit(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_open_profile() {
    let gw = match start_edge(&contract::open_profile()).await {
        Ok(Some(gw)) => gw,
        Ok(None) => return,
        Err(e) => panic!("cannot start edge-gateway: {e:#}"),
    };
    report(contract::open_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_secured_profile() {
    let gw = match start_edge(&contract::secured_profile()).await {
        Ok(Some(gw)) => gw,
        Ok(None) => return,
        Err(e) => panic!("cannot start edge-gateway: {e:#}"),
    };
    report(contract::secured_suite(&gw).await, &gw);
}

/// The edge gateway's `/metrics` (`METRICS_TOKEN`): refused without the bearer token,
/// and with it the native gateway's metric names following the rooms, messages, bytes,
/// subscribers and deliveries of the test, down to zero when the rooms expire (an idle
/// TTL of 10 s: long enough for the first checks, short enough to wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_metrics() {
    let mut cfg = TestConfig {
        metrics_token: Some("edge-metrics-test-token".into()),
        ..contract::open_profile()
    };
    cfg.limits.room_idle_ttl_secs = 10;
    let gw = match start_edge(&cfg).await {
        Ok(Some(gw)) => gw,
        Ok(None) => return,
        Err(e) => panic!("cannot start edge-gateway: {e:#}"),
    };
    report(gateway_tests::metrics::check_edge_metrics(&gw).await, &gw);
}

/// The binary itself: zero-config defaults, readable errors for a bad config file and a
/// busy port (non-zero exit, no panic), graceful shutdown on SIGTERM with open streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_errors_and_shutdown() {
    let dir = gateway_tests::process::TempDir::new("sg-bin").unwrap();
    // Bad YAML.
    let bad = dir.0.join("bad.yaml");
    std::fs::write(&bad, "port: [1, 2\n").unwrap();
    let out = std::process::Command::new(bin())
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid config file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Missing file.
    let out = std::process::Command::new(bin())
        .args(["--config", "/nonexistent/sign-gateway.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    // Busy port: start one gateway, then a second one on the same port.
    let mut gw = native(contract::open_profile()).await;
    let port = gw.base.rsplit(':').next().unwrap().to_string();
    let out = std::process::Command::new(bin())
        .env("SIGN_GATEWAY_PORT", &port)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("port is busy"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Graceful shutdown with an open SSE stream.
    let http = reqwest::Client::new();
    let _sub = contract::subscribe(&http, &gw, "shutdown-room", None, contract::Auth::None)
        .await
        .unwrap()
        .unwrap();
    let status = gw.terminate(Duration::from_secs(8)).unwrap();
    assert!(status.success(), "exit status {status}; log:\n{}", gw.log());
}

/// The open-gateway warning is in the start-up log, and /metrics reports the gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_log_and_metrics() {
    let gw = native(contract::open_profile()).await;
    let http = reqwest::Client::new();
    contract::broadcast_ok(&http, &gw, "metrics-room", "hello")
        .await
        .unwrap();
    let text = http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sign_gateway_rooms 1",
        "sign_gateway_messages_total 1",
        "sign_gateway_message_bytes_total 5",
        "sign_gateway_subscribers 0",
        "sign_gateway_delivery_latency_seconds_count 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
    // The reader the edge's metrics test uses reads the native text too.
    let scrape = gateway_tests::metrics::parse(&text).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(scrape.get("sign_gateway_rooms"), Some(1.0), "{text}");
    // A subscriber gets the message: one delivery, its latency observed.
    let mut sub = http
        .get(gw.url("/rooms/metrics-room/subscribe"))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("hello") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sub.chunk())
            .await
            .expect("no event within 10 s")
            .unwrap()
            .expect("the stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let text = http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sign_gateway_events_delivered_total 1",
        "sign_gateway_delivery_latency_seconds_count 1",
        "sign_gateway_subscriptions_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    drop(sub);
    for probe in ["/healthz", "/readyz"] {
        let r = http.get(gw.url(probe)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{probe}");
    }
    // Log level "warn" in tests: the open-gateway warning must still be there.
    assert!(gw.log().contains("GATEWAY IS OPEN"), "{}", gw.log());
}

/// Port 0 and `--port-file`: once listening, the file holds the bound `HOST:PORT` and a
/// newline, the log line names the same address, and the gateway answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_is_reported_in_the_port_file_and_the_log() {
    let dir = gateway_tests::process::TempDir::new("sg-port-file").unwrap();
    let port_file = dir.0.join("sign-gateway.port");
    let log = std::fs::File::create(dir.0.join("out.log")).unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("--port-file")
        .arg(&port_file)
        .env("SIGN_GATEWAY_PORT", "0")
        .env("SIGN_GATEWAY_LOG", "info")
        .env_remove("SIGN_GATEWAY_CONFIG")
        .env_remove("SIGN_GATEWAY_HOST")
        .env_remove("SIGN_GATEWAY_PORT_FILE")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr =
        gateway_tests::process::wait_port_file(&mut child, &port_file, Duration::from_secs(20));
    let health = match &addr {
        Ok(a) => reqwest::get(format!("http://{a}/health"))
            .await
            .map(|r| r.status()),
        Err(_) => Ok(reqwest::StatusCode::SERVICE_UNAVAILABLE),
    };
    let _ = child.kill();
    let _ = child.wait();
    let out = std::fs::read_to_string(dir.0.join("out.log")).unwrap_or_default();
    let addr = addr.unwrap_or_else(|e| panic!("{e:#}; output:\n{out}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_eq!(
        std::fs::read_to_string(&port_file).unwrap(),
        format!("{addr}\n")
    );
    assert!(
        out.contains(&format!("sign-gateway listening on http://{addr}")),
        "{out}"
    );
    assert!(health.unwrap().is_success(), "health at {addr}");
}
