//! `rooms: redis`: the contract suite against gateways whose rooms live in a real Redis
//! started by each test, two instances sharing one Redis, and a Redis that goes away.
//! Without `redis-server` these tests fail, naming the setup script.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use gateway_tests::contract::{self, Auth};
use gateway_tests::process::{GatewayProcess, RedisRooms, TestConfig};
use gateway_tests::redis::RedisServer;
use reqwest::Client;

use super::{native, report};

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e:#}"))
}

/// `cfg` with its rooms on `redis` under the default test prefix.
fn on(redis: &RedisServer, mut cfg: TestConfig) -> TestConfig {
    cfg.redis = Some(RedisRooms {
        url: redis.url(),
        key_prefix: "test:".into(),
    });
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_open_profile() {
    let r = redis();
    let gw = native(on(&r, contract::open_profile())).await;
    report(contract::open_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_secured_profile() {
    let r = redis();
    let gw = native(on(&r, contract::secured_profile())).await;
    report(contract::secured_suite(&gw).await, &gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_quota_profile_and_room_limit() {
    let r = redis();
    let gw = native(on(&r, contract::quota_profile())).await;
    report(contract::quota_suite(&gw).await, &gw);
    let r = redis();
    let mut cfg = contract::open_profile();
    cfg.limits.max_rooms = 3;
    let gw = native(on(&r, cfg)).await;
    report(contract::check_room_limit(&gw).await, &gw);
}

/// Two instances on one Redis: a subscriber on one sees what is posted on the other,
/// concurrent posts through both get one sequence without gaps or duplicates, unique
/// indices and the subscriber limit hold across both, and after the first instance is
/// killed the second resumes from `Last-Event-ID` with nothing lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_instances_share_rooms() {
    let r = redis();
    let cfg = on(&r, contract::open_profile());
    let a = native(cfg.clone()).await;
    let b = native(cfg).await;
    if let Err(e) = two_instances(&a, &b).await {
        panic!(
            "two instances on one Redis: {e:#}\n--- gateway A ---\n{}\n--- gateway B ---\n{}",
            a.log(),
            b.log()
        );
    }
    if let Err(e) = resume_after_kill(a, &b).await {
        panic!(
            "resume on B after A was killed: {e:#}\n--- gateway B ---\n{}",
            b.log()
        );
    }
}

async fn two_instances(a: &GatewayProcess, b: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let room = contract::room("shared");
    let mut sub = contract::subscribe(&http, a, &room, None, Auth::None)
        .await?
        .map_err(|e| anyhow::anyhow!("subscribe on A: {e:?}"))?;
    sub.opened().await?;
    // 20 concurrent posts, alternating between the instances.
    let mut posts = Vec::new();
    for i in 0..20 {
        let gw = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (http, room) = (http.clone(), room.clone());
        posts.push(tokio::spawn(async move {
            let r = http
                .post(format!("{gw}/rooms/{room}/broadcast"))
                .body(format!("m{i}"))
                .send()
                .await?;
            ensure!(r.status() == 200, "post {i}: {}", r.status());
            let v: serde_json::Value = r.json().await?;
            v["seq"].as_u64().context("no seq")
        }));
    }
    let mut seqs = BTreeSet::new();
    for p in posts {
        ensure!(seqs.insert(p.await??), "a sequence number was given twice");
    }
    ensure!(seqs == (1..=20).collect(), "sequence numbers {seqs:?}");
    let got = sub.take(20, Duration::from_secs(10)).await?;
    ensure!(
        got.iter().map(|e| e.0).eq(1..=20),
        "A's subscriber saw {got:?}"
    );
    // Unique indices issued through both instances at once are distinct.
    let idx_room = contract::room("shared-idx");
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (http, room) = (http.clone(), idx_room.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{gw}/rooms/{room}/issue_unique_idx"))
                .send()
                .await?;
            ensure!(r.status() == 200, "issue {i}: {}", r.status());
            let v: serde_json::Value = r.json().await?;
            v["unique_idx"].as_u64().context("no unique_idx")
        }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        ensure!(got.insert(t.await??), "an index was issued twice");
    }
    ensure!(got == (1..=n).collect(), "indices {got:?}");
    for gw in [a, b] {
        let r = contract::post(&http, gw, &idx_room, "issue_unique_idx", "", Auth::None).await?;
        contract::expect_error("exhausted across instances", r, 409, "unique_idx_exhausted")?;
    }
    // The subscriber limit (4) counts the subscriptions of both instances.
    let subs_room = contract::room("shared-subs");
    let mut held = Vec::new();
    for gw in [a, a, b, b] {
        let mut s = contract::subscribe(&http, gw, &subs_room, None, Auth::None)
            .await?
            .map_err(|e| anyhow::anyhow!("subscribe: {e:?}"))?;
        s.opened().await?;
        held.push(s);
    }
    for gw in [a, b] {
        match contract::subscribe(&http, gw, &subs_room, None, Auth::None).await? {
            Ok(_) => anyhow::bail!("a fifth subscription was accepted"),
            Err(e) => contract::expect_error("fifth subscriber", e, 429, "too_many_subscribers")?,
        }
    }
    Ok(())
}

async fn resume_after_kill(a: GatewayProcess, b: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let room = contract::room("failover");
    for i in 1..=5 {
        ensure!(contract::broadcast_ok(&http, &a, &room, &format!("m{i}")).await? == i);
    }
    let mut sub = contract::subscribe(&http, &a, &room, None, Auth::None)
        .await?
        .map_err(|e| anyhow::anyhow!("subscribe on A: {e:?}"))?;
    let seen = sub.take(5, Duration::from_secs(10)).await?;
    let last = seen.last().map(|e| e.0).context("nothing seen")?;
    drop(a); // killed (SIGKILL), its subscription with it
    for i in 6..=8 {
        ensure!(contract::broadcast_ok(&http, b, &room, &format!("m{i}")).await? == i);
    }
    let mut sub = contract::subscribe(&http, b, &room, Some(&last.to_string()), Auth::None)
        .await?
        .map_err(|e| anyhow::anyhow!("resume on B: {e:?}"))?;
    let got = sub.take(3, Duration::from_secs(10)).await?;
    let want: Vec<(u64, String)> = (6..=8).map(|i| (i, format!("m{i}"))).collect();
    ensure!(got == want, "resumed with {got:?}");
    if let Some(e) = sub.next_event(Duration::from_millis(500)).await? {
        anyhow::bail!("an extra event after the resume: {e:?}");
    }
    Ok(())
}

/// `/metrics` with rooms on Redis: the room, message and byte gauges come from Redis
/// (the same on both instances), the subscriber gauge and the counters per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_metrics() {
    let r = redis();
    let cfg = on(&r, contract::open_profile());
    let a = native(cfg.clone()).await;
    let b = native(cfg).await;
    let http = Client::new();
    let mut sub = contract::subscribe(&http, &a, "metrics-room", None, Auth::None)
        .await
        .unwrap()
        .unwrap();
    sub.opened().await.unwrap();
    contract::broadcast_ok(&http, &b, "metrics-room", "hello")
        .await
        .unwrap();
    sub.take(1, Duration::from_secs(10)).await.unwrap();
    let metrics = |gw: &GatewayProcess| {
        let (http, url) = (http.clone(), gw.url("/metrics"));
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (text_a, text_b) = (metrics(&a).await, metrics(&b).await);
    let has = |text: &str, line: &str| text.lines().any(|l| l == line);
    for text in [&text_a, &text_b] {
        for line in [
            "sign_gateway_rooms 1",
            "sign_gateway_retained_messages 1",
            "sign_gateway_retained_bytes 5",
        ] {
            assert!(has(text, line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
    }
    for line in [
        "sign_gateway_subscribers 1",
        "sign_gateway_events_delivered_total 1",
        "sign_gateway_delivery_latency_seconds_count 1",
    ] {
        assert!(has(&text_a, line), "A: missing {line:?} in\n{text_a}");
    }
    assert!(has(&text_b, "sign_gateway_subscribers 0"), "{text_b}");
    assert!(has(&text_b, "sign_gateway_messages_total 1"), "{text_b}");
}

/// An idle room expires for every instance: expired on A's watch, 410 on B's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_expiry_and_tombstone_across_instances() {
    let r = redis();
    let mut cfg = on(&r, contract::open_profile());
    cfg.limits.room_idle_ttl_secs = 1;
    let a = native(cfg.clone()).await;
    let b = native(cfg).await;
    let http = Client::new();
    let room = contract::room("tomb");
    contract::broadcast_ok(&http, &a, &room, "x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = contract::post(&http, &b, &room, "broadcast", "y", Auth::None)
        .await
        .unwrap();
    contract::expect_error("post on B to a room expired on A", got, 410, "room_expired").unwrap();
    let got = contract::post(&http, &a, &room, "issue_unique_idx", "", Auth::None)
        .await
        .unwrap();
    contract::expect_error("issue on A", got, 410, "room_expired").unwrap();
}

/// Redis going away: every room request answers 503 `store_unavailable`, `/readyz`
/// 503, liveness and `/metrics` still answer, and nothing panics. A gateway that cannot
/// reach Redis at start-up exits with a readable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_store_unavailable() {
    let mut r = redis();
    let gw = native(on(&r, contract::open_profile())).await;
    let http = Client::new();
    let room = contract::room("outage");
    contract::broadcast_ok(&http, &gw, &room, "before")
        .await
        .unwrap();
    r.stop();
    for action in ["broadcast", "issue_unique_idx"] {
        let got = contract::post(&http, &gw, &room, action, "x", Auth::None)
            .await
            .unwrap();
        contract::expect_error(action, got, 503, "store_unavailable")
            .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.log()));
    }
    match contract::subscribe(&http, &gw, &room, None, Auth::None)
        .await
        .unwrap()
    {
        Ok(_) => panic!("subscribed without Redis"),
        Err(e) => contract::expect_error("subscribe", e, 503, "store_unavailable").unwrap(),
    }
    let ready = http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready
        .text()
        .await
        .unwrap()
        .contains("room store unavailable"));
    for probe in ["/healthz", "/metrics"] {
        let got = http.get(gw.url(probe)).send().await.unwrap();
        assert_eq!(got.status(), 200, "{probe}");
    }
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
    // Redis back (empty): the gateway reconnects by itself.
    r.restart().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = contract::post(&http, &gw, "after-outage", "broadcast", "x", Auth::None)
            .await
            .unwrap();
        if got.0 == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnection to Redis within 10 s: {got:?}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Start-up without Redis: a clear error, no panic.
    let refused = gateway_tests::process::RefusedPort::new().unwrap();
    let mut cfg = contract::open_profile();
    cfg.redis = Some(RedisRooms {
        url: refused.url().unwrap().replace("http://", "redis://"),
        key_prefix: "test:".into(),
    });
    let err = match gateway_tests::process::start_native(super::bin(), &cfg).await {
        Ok(_) => panic!("started without Redis"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("cannot connect to Redis"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
