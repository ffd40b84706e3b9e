//! The gateway contract, as checks run against a live gateway process.
//!
//! Every check takes a [`GatewayProcess`] and fails with a descriptive error. The same
//! checks run against `sign-gateway` and `edge-gateway`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use futures_util::StreamExt;
use gateway_client::{SseItem, SseParser};
use gateway_core::{issue_party_token, issue_room_token, Access, ErrorBody, Limits};
use reqwest::{Client, StatusCode};

use crate::process::{GatewayProcess, TestConfig};

/// Secret used by the secured profile.
pub const SECRET: &str = "contract-test-secret-0123456789";
/// Origin allowed by the open profile.
pub const ALLOWED_ORIGIN: &str = "http://allowed.example";
/// A browser extension's origin allowed by the open profile (an MV3 wallet calling the
/// gateway from its service worker or offscreen document).
pub const EXTENSION_ORIGIN: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

/// Open gateway, small limits, CORS for [`ALLOWED_ORIGIN`], 1 s keep-alive.
pub fn open_profile() -> TestConfig {
    TestConfig {
        secret: None,
        cors_origins: vec![ALLOWED_ORIGIN.into(), EXTENSION_ORIGIN.into()],
        keepalive_secs: 1,
        limits: Limits {
            max_message_bytes: 4096,
            max_messages_per_room: 100,
            max_room_bytes: 64 * 1024,
            max_rooms: 1000,
            max_subscribers_per_room: 4,
            max_unique_idx: 40,
            room_idle_ttl_secs: 600,
            room_max_lifetime_secs: 3600,
            ..Limits::default()
        },
        ..TestConfig::default()
    }
}

/// Secured gateway (room tokens) with a 2 s idle TTL.
pub fn secured_profile() -> TestConfig {
    TestConfig {
        secret: Some(SECRET.into()),
        cors_origins: vec![],
        keepalive_secs: 1,
        limits: Limits {
            room_idle_ttl_secs: 2,
            ..open_profile().limits
        },
        ..TestConfig::default()
    }
}

/// Party tokens required, per-party quotas and a small global byte budget: 8 KiB in
/// all, new rooms refused from half of it, 4 KiB per party and room, one stream per
/// party.
pub fn quota_profile() -> TestConfig {
    TestConfig {
        secret: Some(SECRET.into()),
        require_party_tokens: true,
        keepalive_secs: 1,
        limits: Limits {
            max_message_bytes: 4096,
            max_room_bytes: 8192,
            max_total_bytes: 8192,
            new_room_budget_percent: 50,
            max_party_bytes_per_room: 4096,
            max_subscriptions_per_party: 1,
            ..open_profile().limits
        },
        ..TestConfig::default()
    }
}

/// A unique room id for one check.
pub fn room(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token_for(gw: &GatewayProcess, room: &str) -> Option<String> {
    gw.config
        .secret
        .as_ref()
        .map(|s| issue_room_token(s.as_bytes(), room, now_unix() + 600))
}

/// An open SSE subscription read event by event.
pub struct Subscription {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
    items: std::collections::VecDeque<SseItem>,
    /// Raw bytes received so far.
    pub raw: Vec<u8>,
}

impl Subscription {
    /// Next item (event or comment), or `None` on end of stream / timeout.
    pub async fn next_item(&mut self, timeout: Duration) -> Result<Option<SseItem>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.items.pop_front() {
                return Ok(Some(i));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(b))) => {
                    self.raw.extend_from_slice(&b);
                    self.items.extend(self.parser.feed(&b));
                }
            }
        }
    }

    /// Next event as `(seq, data)`, skipping comments.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<(u64, String)>> {
        loop {
            match self.next_item(timeout).await? {
                None => return Ok(None),
                Some(SseItem::Comment(_)) => continue,
                Some(SseItem::Event { id, data, .. }) => {
                    let seq = id
                        .as_deref()
                        .and_then(|s| s.parse().ok())
                        .with_context(|| format!("event without numeric id: {id:?}"))?;
                    return Ok(Some((seq, data)));
                }
            }
        }
    }

    /// Collects exactly `n` events (fails on timeout).
    pub async fn take(&mut self, n: usize, timeout: Duration) -> Result<Vec<(u64, String)>> {
        let mut out = Vec::with_capacity(n);
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await? {
                Some(e) => out.push(e),
                None => bail!("only {} of {n} events within {timeout:?}", out.len()),
            }
        }
        Ok(out)
    }

    /// Waits for the opening comment (the subscription is registered once it arrives).
    pub async fn opened(&mut self) -> Result<()> {
        match self.next_item(Duration::from_secs(10)).await? {
            Some(SseItem::Comment(c)) if c == "open" => Ok(()),
            other => bail!("expected the opening comment, got {other:?}"),
        }
    }
}

/// Opens `GET /rooms/{room}/subscribe`; returns the response status on failure.
pub async fn subscribe(
    http: &Client,
    gw: &GatewayProcess,
    room: &str,
    last_event_id: Option<&str>,
    auth: Auth<'_>,
) -> Result<std::result::Result<Subscription, (StatusCode, String)>> {
    let mut req = http.get(gw.url(&format!("/rooms/{room}/subscribe")));
    if let Some(l) = last_event_id {
        req = req.header("Last-Event-ID", l);
    }
    req = auth.apply(req, gw, room);
    let resp = req.send().await?;
    if !resp.status().is_success() {
        let s = resp.status();
        return Ok(Err((s, resp.text().await.unwrap_or_default())));
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(
        ct.starts_with("text/event-stream"),
        "subscribe content-type is {ct:?}"
    );
    Ok(Ok(Subscription {
        body: Box::pin(resp.bytes_stream()),
        parser: SseParser::new(),
        items: Default::default(),
        raw: vec![],
    }))
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// A valid token for the room if the gateway has a secret, else nothing.
    Auto,
    /// No token.
    None,
    /// This exact `Authorization` header value.
    Header(&'a str),
    /// This exact `?token=` value.
    Query(&'a str),
}

impl Auth<'_> {
    fn apply(
        self,
        req: reqwest::RequestBuilder,
        gw: &GatewayProcess,
        room: &str,
    ) -> reqwest::RequestBuilder {
        match self {
            Auth::Auto => match token_for(gw, room) {
                Some(t) => req.bearer_auth(t),
                None => req,
            },
            Auth::None => req,
            Auth::Header(h) => req.header("Authorization", h),
            Auth::Query(t) => req.query(&[("token", t)]),
        }
    }
}

/// `POST /rooms/{room}/{action}` with `body`; returns (status, body text).
pub async fn post(
    http: &Client,
    gw: &GatewayProcess,
    room: &str,
    action: &str,
    body: impl Into<reqwest::Body>,
    auth: Auth<'_>,
) -> Result<(StatusCode, String)> {
    let req = http
        .post(gw.url(&format!("/rooms/{room}/{action}")))
        .body(body);
    let resp = auth.apply(req, gw, room).send().await?;
    let s = resp.status();
    Ok((s, resp.text().await?))
}

/// Broadcasts and expects success; returns the sequence number.
pub async fn broadcast_ok(
    http: &Client,
    gw: &GatewayProcess,
    room: &str,
    body: &str,
) -> Result<u64> {
    let (s, text) = post(http, gw, room, "broadcast", body.to_owned(), Auth::Auto).await?;
    ensure!(s == StatusCode::OK, "broadcast answered {s}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["seq"]
        .as_u64()
        .with_context(|| format!("no seq in {text}"))
}

/// Expects an error with `status` and JSON `code`.
pub fn expect_error(what: &str, got: (StatusCode, String), status: u16, code: &str) -> Result<()> {
    ensure!(
        got.0.as_u16() == status,
        "{what}: expected {status} {code}, got {} {}",
        got.0,
        got.1
    );
    let b: ErrorBody = serde_json::from_str(&got.1)
        .with_context(|| format!("{what}: error body is not the JSON error shape: {}", got.1))?;
    ensure!(b.error == code, "{what}: expected code {code}, got {b:?}");
    Ok(())
}

async fn sub_err(
    http: &Client,
    gw: &GatewayProcess,
    room: &str,
    last: Option<&str>,
    auth: Auth<'_>,
) -> Result<(StatusCode, String)> {
    match subscribe(http, gw, room, last, auth).await? {
        Ok(_) => bail!("subscribe to {room} unexpectedly succeeded"),
        Err(e) => Ok(e),
    }
}

async fn sub_ok(
    http: &Client,
    gw: &GatewayProcess,
    room: &str,
    last: Option<&str>,
    auth: Auth<'_>,
) -> Result<Subscription> {
    match subscribe(http, gw, room, last, auth).await? {
        Ok(s) => Ok(s),
        Err((s, b)) => bail!("subscribe to {room} failed: {s} {b}"),
    }
}

/// `GET /health` answers 200 `{"status":"ok"}`; an edge gateway without a metrics
/// token has no `/metrics` (404).
pub async fn check_health(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let r = http.get(gw.url("/health")).send().await?;
    ensure!(r.status() == 200, "health: {}", r.status());
    let v: serde_json::Value = r.json().await?;
    ensure!(v["status"] == "ok", "health body {v}");
    if gw.kind == crate::process::Kind::Edge && gw.config.metrics_token.is_none() {
        let r = http.get(gw.url("/metrics")).send().await?;
        let got = (r.status(), r.text().await?);
        expect_error("/metrics without METRICS_TOKEN", got, 404, "not_found")?;
    }
    Ok(())
}

/// 3 subscribers, 3 concurrent publishers: everyone sees one identical order with
/// ids 1..=N, and each publisher's messages in the order it sent them.
pub async fn check_ordering(gw: &GatewayProcess) -> Result<()> {
    const PER_PUBLISHER: usize = 30;
    let http = Client::new();
    let room = room("order");
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut s = sub_ok(&http, gw, &room, None, Auth::Auto).await?;
        s.opened().await?;
        subs.push(s);
    }
    let mut pubs = Vec::new();
    for p in 0..3 {
        let (http, room) = (http.clone(), room.clone());
        let base = gw.base.clone();
        let token = token_for(gw, &room);
        pubs.push(tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                let mut req = http
                    .post(format!("{base}/rooms/{room}/broadcast"))
                    .body(format!("{{\"from\":{p},\"i\":{i}}}"));
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await?;
                ensure!(r.status() == 200, "publisher {p}: {}", r.status());
            }
            anyhow::Ok(())
        }));
    }
    for p in pubs {
        p.await??;
    }
    let n = 3 * PER_PUBLISHER;
    let mut seen = Vec::new();
    for s in &mut subs {
        seen.push(s.take(n, Duration::from_secs(30)).await?);
    }
    let ids: Vec<u64> = seen[0].iter().map(|e| e.0).collect();
    ensure!(
        ids == (1..=n as u64).collect::<Vec<_>>(),
        "ids are not 1..={n}: {ids:?}"
    );
    ensure!(
        seen[0] == seen[1] && seen[1] == seen[2],
        "subscribers saw different orders"
    );
    let mut next: HashMap<u64, u64> = HashMap::new();
    for (_, data) in &seen[0] {
        let v: serde_json::Value = serde_json::from_str(data)?;
        let from = v["from"].as_u64().context("from")?;
        let i = v["i"].as_u64().context("i")?;
        let e = next.entry(from).or_insert(0);
        ensure!(*e == i, "publisher {from}: got {i}, expected {e}");
        *e += 1;
    }
    // Nothing more arrives.
    for s in &mut subs {
        if let Some(e) = s.next_event(Duration::from_millis(300)).await? {
            bail!("unexpected extra event {e:?}");
        }
    }
    Ok(())
}

/// `Last-Event-ID` resumes with exactly the messages after it, none lost, none twice;
/// multi-line bodies arrive byte for byte; the wire format is `id:` + `data:`.
pub async fn check_resume(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let room = room("resume");
    for i in 1..=10 {
        ensure!(broadcast_ok(&http, gw, &room, &format!("m{i}")).await? == i);
    }
    // From the start.
    let mut s = sub_ok(&http, gw, &room, None, Auth::Auto).await?;
    let all = s.take(10, Duration::from_secs(10)).await?;
    ensure!(all.iter().map(|e| e.0).eq(1..=10), "from start: {all:?}");
    ensure!(all[0].1 == "m1" && all[9].1 == "m10");
    ensure!(
        String::from_utf8_lossy(&s.raw).contains("id: 1\ndata: m1\n\n"),
        "wire format: {:?}",
        String::from_utf8_lossy(&s.raw)
    );
    drop(s);
    // Resume after 4, then live messages, then a dropped connection and a resume.
    let mut s = sub_ok(&http, gw, &room, Some("4"), Auth::Auto).await?;
    let got = s.take(6, Duration::from_secs(10)).await?;
    ensure!(got.iter().map(|e| e.0).eq(5..=10), "after 4: {got:?}");
    broadcast_ok(&http, gw, &room, "line1\nline2\n\n{\"x\": \"é\"}").await?;
    let e = s.take(1, Duration::from_secs(10)).await?;
    ensure!(
        e[0] == (11, "line1\nline2\n\n{\"x\": \"é\"}".to_string()),
        "multi-line: {e:?}"
    );
    drop(s);
    for i in 12..=15 {
        broadcast_ok(&http, gw, &room, &format!("m{i}")).await?;
    }
    let mut s = sub_ok(&http, gw, &room, Some("11"), Auth::Auto).await?;
    let got = s.take(4, Duration::from_secs(10)).await?;
    ensure!(
        got.iter().map(|e| e.0).eq(12..=15),
        "resume after 11: {got:?}"
    );
    if let Some(e) = s.next_event(Duration::from_millis(300)).await? {
        bail!("duplicate/extra event after resume: {e:?}");
    }
    // Resume at the head: nothing until the next message.
    let mut s = sub_ok(&http, gw, &room, Some("15"), Auth::Auto).await?;
    s.opened().await?;
    broadcast_ok(&http, gw, &room, "m16").await?;
    let e = s.take(1, Duration::from_secs(10)).await?;
    ensure!(e[0] == (16, "m16".to_string()), "at head: {e:?}");
    Ok(())
}

/// Concurrent `issue_unique_idx` calls get distinct indices 1..=n; the response shape
/// is `{"unique_idx": n}`; past `max_unique_idx` → 409.
pub async fn check_unique_idx(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let room = room("idx");
    let n = usize::from(gw.config.limits.max_unique_idx);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (http, room) = (http.clone(), room.clone());
        let url = gw.url(&format!("/rooms/{room}/issue_unique_idx"));
        let token = token_for(gw, &room);
        tasks.push(tokio::spawn(async move {
            let mut req = http.post(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await?;
            ensure!(r.status() == 200, "issue: {}", r.status());
            let v: serde_json::Value = r.json().await?;
            let obj = v.as_object().context("not an object")?;
            ensure!(obj.len() == 1, "extra fields in {v}");
            let idx = v["unique_idx"].as_u64().context("no unique_idx")?;
            anyhow::Ok(idx)
        }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        ensure!(got.insert(t.await??), "duplicate index");
    }
    ensure!(
        got == (1..=n as u64).collect::<BTreeSet<_>>(),
        "indices {got:?}"
    );
    let r = post(&http, gw, &room, "issue_unique_idx", "", Auth::Auto).await?;
    expect_error("idx exhausted", r, 409, "unique_idx_exhausted")
}

/// Size, count and subscriber limits.
pub async fn check_limits(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let l = &gw.config.limits;
    let room_a = room("limits");
    let max = l.max_message_bytes as usize;
    ensure!(broadcast_ok(&http, gw, &room_a, &"a".repeat(max)).await? == 1);
    let r = post(
        &http,
        gw,
        &room_a,
        "broadcast",
        "a".repeat(max + 1),
        Auth::Auto,
    )
    .await?;
    expect_error("max+1 bytes", r, 413, "message_too_large")?;
    let r = post(
        &http,
        gw,
        &room_a,
        "broadcast",
        "a".repeat(4 * max + 7),
        Auth::Auto,
    )
    .await?;
    expect_error("4x bytes", r, 413, "message_too_large")?;
    // Messages per room.
    let room_b = room("full");
    for i in 0..l.max_messages_per_room {
        broadcast_ok(&http, gw, &room_b, &format!("{i}")).await?;
    }
    let r = post(&http, gw, &room_b, "broadcast", "x", Auth::Auto).await?;
    expect_error("room full", r, 429, "room_full")?;
    // The room still serves its log.
    let mut s = sub_ok(&http, gw, &room_b, None, Auth::Auto).await?;
    s.take(l.max_messages_per_room as usize, Duration::from_secs(20))
        .await?;
    drop(s);
    // Subscribers per room.
    let room_c = room("subs");
    let mut subs = Vec::new();
    for _ in 0..l.max_subscribers_per_room {
        let mut s = sub_ok(&http, gw, &room_c, None, Auth::Auto).await?;
        s.opened().await?;
        subs.push(s);
    }
    let r = sub_err(&http, gw, &room_c, None, Auth::Auto).await?;
    expect_error("too many subscribers", r, 429, "too_many_subscribers")?;
    // A subscriber leaving frees its slot.
    subs.pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match subscribe(&http, gw, &room_c, None, Auth::Auto).await? {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("slot not freed: {e:?}"),
        }
    }
    Ok(())
}

/// Keep-alive comments arrive on an idle stream.
pub async fn check_keepalive(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let room = room("ka");
    let mut s = sub_ok(&http, gw, &room, None, Auth::Auto).await?;
    s.opened().await?;
    let wait = Duration::from_secs(gw.config.keepalive_secs * 3 + 2);
    match s.next_item(wait).await? {
        Some(SseItem::Comment(c)) if c == "keep-alive" => Ok(()),
        other => bail!("expected a keep-alive comment within {wait:?}, got {other:?}"),
    }
}

/// Room ids, bodies, `Last-Event-ID`, unknown paths and methods.
pub async fn check_malformed(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let long = "a".repeat(129);
    for bad in ["a.b", "a%20b", "%C3%A9", long.as_str(), "a%2Fb"] {
        let r = post(&http, gw, bad, "broadcast", "x", Auth::None).await?;
        expect_error(&format!("broadcast room {bad}"), r, 400, "invalid_room_id")?;
        let r = post(&http, gw, bad, "issue_unique_idx", "", Auth::None).await?;
        expect_error(&format!("issue room {bad}"), r, 400, "invalid_room_id")?;
        let r = sub_err(&http, gw, bad, None, Auth::None).await?;
        expect_error(&format!("subscribe room {bad}"), r, 400, "invalid_room_id")?;
    }
    let ok128 = "b".repeat(128);
    broadcast_ok(&http, gw, &ok128, "x").await?;
    let room = room("malformed");
    let r = post(&http, gw, &room, "broadcast", "", Auth::Auto).await?;
    expect_error("empty body", r, 400, "invalid_body")?;
    let r = post(
        &http,
        gw,
        &room,
        "broadcast",
        vec![0xffu8, 0xfe],
        Auth::Auto,
    )
    .await?;
    expect_error("non-UTF-8 body", r, 400, "invalid_body")?;
    let r = post(&http, gw, &room, "broadcast", "a\r\nb", Auth::Auto).await?;
    expect_error("CR in body", r, 400, "invalid_body")?;
    broadcast_ok(&http, gw, &room, "one").await?;
    for bad in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let r = sub_err(&http, gw, &room, Some(bad), Auth::Auto).await?;
        expect_error(
            &format!("Last-Event-ID {bad}"),
            r,
            400,
            "invalid_last_event_id",
        )?;
    }
    let r = sub_err(&http, gw, &room, Some("2"), Auth::Auto).await?;
    expect_error("Last-Event-ID ahead", r, 400, "invalid_last_event_id")?;
    // Unknown paths and wrong methods.
    for path in ["/nope", "/rooms/x/nope", "/rooms", "/rooms/x"] {
        let r = http.get(gw.url(path)).send().await?;
        let s = r.status();
        expect_error(path, (s, r.text().await?), 404, "not_found")?;
    }
    let r = http
        .get(gw.url(&format!("/rooms/{room}/broadcast")))
        .send()
        .await?;
    let s = r.status();
    expect_error(
        "GET broadcast",
        (s, r.text().await?),
        405,
        "method_not_allowed",
    )?;
    let r = http
        .post(gw.url(&format!("/rooms/{room}/subscribe")))
        .send()
        .await?;
    let s = r.status();
    expect_error(
        "POST subscribe",
        (s, r.text().await?),
        405,
        "method_not_allowed",
    )?;
    Ok(())
}

/// CORS: preflight from an allowed origin is answered with that origin, the methods
/// and the headers the clients need; other origins get no CORS headers.
pub async fn check_cors(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let room = room("cors");
    let url = gw.url(&format!("/rooms/{room}/broadcast"));
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", ALLOWED_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,last-event-id",
        )
        .send()
        .await?;
    ensure!(r.status().is_success(), "preflight status {}", r.status());
    let h = r.headers();
    let get = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    ensure!(
        get("access-control-allow-origin") == ALLOWED_ORIGIN,
        "allow-origin {:?}",
        get("access-control-allow-origin")
    );
    ensure!(get("access-control-allow-methods").contains("post"));
    ensure!(get("access-control-allow-methods").contains("get"));
    for needed in ["authorization", "content-type", "last-event-id"] {
        ensure!(
            get("access-control-allow-headers").contains(needed),
            "allow-headers lacks {needed}: {:?}",
            get("access-control-allow-headers")
        );
    }
    // The allowed extension gets its exact origin back; another extension gets none.
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", EXTENSION_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await?;
    ensure!(
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            == Some(EXTENSION_ORIGIN),
        "the allowed extension origin got {:?}",
        r.headers().get("access-control-allow-origin")
    );
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header(
            "Origin",
            "chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba",
        )
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await?;
    ensure!(
        r.headers().get("access-control-allow-origin").is_none(),
        "another extension was allowed"
    );
    // A foreign origin gets no allow-origin.
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await?;
    ensure!(
        r.headers().get("access-control-allow-origin").is_none(),
        "foreign origin allowed"
    );
    // Actual requests from the allowed origin carry the header too.
    let r = http
        .post(&url)
        .header("Origin", ALLOWED_ORIGIN)
        .body("x")
        .send()
        .await?;
    ensure!(r.status() == 200);
    ensure!(
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            == Some(ALLOWED_ORIGIN)
    );
    Ok(())
}

/// Token errors (secured profile): missing/malformed/expired → 401, foreign/forged → 403,
/// valid header or `?token=` → accepted.
pub async fn check_tokens(gw: &GatewayProcess) -> Result<()> {
    let secret = gw
        .config
        .secret
        .clone()
        .context("needs the secured profile")?;
    let http = Client::new();
    let room = room("tok");
    let good = issue_room_token(secret.as_bytes(), &room, now_unix() + 600);
    let expired = issue_room_token(secret.as_bytes(), &room, now_unix() - 1);
    let foreign = issue_room_token(secret.as_bytes(), "another-room", now_unix() + 600);
    let forged = issue_room_token(b"not-the-gateway-secret", &room, now_unix() + 600);
    let h = |t: &str| format!("Bearer {t}");
    let (h_expired, h_foreign, h_forged) = (h(&expired), h(&foreign), h(&forged));
    let cases: Vec<(String, Auth, u16, &str)> = vec![
        ("none".into(), Auth::None, 401, "token_missing"),
        (
            "basic".into(),
            Auth::Header("Basic abc"),
            401,
            "token_malformed",
        ),
        (
            "garbage".into(),
            Auth::Header("Bearer xyz"),
            401,
            "token_malformed",
        ),
        (
            "expired".into(),
            Auth::Header(&h_expired),
            401,
            "token_expired",
        ),
        (
            "foreign".into(),
            Auth::Header(&h_foreign),
            403,
            "token_invalid",
        ),
        (
            "forged".into(),
            Auth::Header(&h_forged),
            403,
            "token_invalid",
        ),
    ];
    for (name, auth, status, code) in cases {
        for action in ["broadcast", "issue_unique_idx"] {
            let r = post(&http, gw, &room, action, "x", auth).await?;
            expect_error(&format!("{action} with {name} token"), r, status, code)?;
        }
        let r = sub_err(&http, gw, &room, None, auth).await?;
        expect_error(&format!("subscribe with {name} token"), r, status, code)?;
    }
    // Valid token: header everywhere, query on subscribe.
    let hv = h(&good);
    let (s, t) = post(&http, gw, &room, "broadcast", "hi", Auth::Header(&hv)).await?;
    ensure!(s == 200, "valid header token: {s} {t}");
    let (s, t) = post(&http, gw, &room, "issue_unique_idx", "", Auth::Header(&hv)).await?;
    ensure!(s == 200, "valid header token (idx): {s} {t}");
    let mut sub = sub_ok(&http, gw, &room, None, Auth::Query(&good)).await?;
    let e = sub.take(1, Duration::from_secs(10)).await?;
    ensure!(e[0] == (1, "hi".to_string()));
    let r = sub_err(&http, gw, &room, None, Auth::Query(&forged)).await?;
    expect_error("query forged token", r, 403, "token_invalid")?;
    Ok(())
}

/// Idle rooms expire (secured profile: 2 s TTL): every endpoint then answers 410; a room
/// with an open subscriber does not idle out.
pub async fn check_expiry(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let ttl = Duration::from_secs(gw.config.limits.room_idle_ttl_secs);
    let idle = room("idle");
    let busy = room("busy");
    broadcast_ok(&http, gw, &idle, "x").await?;
    broadcast_ok(&http, gw, &busy, "x").await?;
    let mut sub = sub_ok(&http, gw, &busy, None, Auth::Auto).await?;
    sub.take(1, Duration::from_secs(5)).await?;
    tokio::time::sleep(ttl + Duration::from_millis(1500)).await;
    let r = post(&http, gw, &idle, "broadcast", "y", Auth::Auto).await?;
    expect_error("broadcast to expired room", r, 410, "room_expired")?;
    let r = post(&http, gw, &idle, "issue_unique_idx", "", Auth::Auto).await?;
    expect_error("issue in expired room", r, 410, "room_expired")?;
    let r = sub_err(&http, gw, &idle, None, Auth::Auto).await?;
    expect_error("subscribe to expired room", r, 410, "room_expired")?;
    // The busy room is alive and still delivers.
    ensure!(broadcast_ok(&http, gw, &busy, "y").await? == 2);
    let e = sub.take(1, Duration::from_secs(5)).await?;
    ensure!(e[0] == (2, "y".to_string()));
    Ok(())
}

/// Room count limit: the (n+1)-th live room → 503.
pub async fn check_room_limit(gw: &GatewayProcess) -> Result<()> {
    let http = Client::new();
    let n = gw.config.limits.max_rooms;
    for i in 0..n {
        broadcast_ok(&http, gw, &format!("cap-{i}"), "x").await?;
    }
    let r = post(&http, gw, "cap-over", "broadcast", "x", Auth::Auto).await?;
    expect_error("too many rooms", r, 503, "too_many_rooms")
}

fn party_token(gw: &GatewayProcess, room: &str, party: u16, access: Access) -> Result<String> {
    let secret = gw.config.secret.as_ref().context("needs a secret")?;
    Ok(format!(
        "Bearer {}",
        issue_party_token(secret.as_bytes(), room, party, access, now_unix() + 600)
    ))
}

/// Party tokens (quota profile): a read token cannot post, a write token cannot
/// subscribe, room tokens are refused when party tokens are required, and each party
/// has its own byte and stream quota in a room, so one party cannot shut out another.
/// Returns the room it used (5 KiB posted).
pub async fn check_party_tokens(gw: &GatewayProcess) -> Result<String> {
    let http = Client::new();
    let q = room("party");
    let r0 = party_token(gw, &q, 0, Access::Read)?;
    let w0 = party_token(gw, &q, 0, Access::Write)?;
    let w1 = party_token(gw, &q, 1, Access::Write)?;
    let rw1 = party_token(gw, &q, 1, Access::ReadWrite)?;
    let v1 = format!("Bearer {}", token_for(gw, &q).context("needs a secret")?);
    for (name, auth) in [("read token", r0.as_str()), ("room token", v1.as_str())] {
        let r = post(&http, gw, &q, "broadcast", "x", Auth::Header(auth)).await?;
        expect_error(&format!("post with a {name}"), r, 403, "token_not_allowed")?;
        let r = post(&http, gw, &q, "issue_unique_idx", "", Auth::Header(auth)).await?;
        expect_error(&format!("issue with a {name}"), r, 403, "token_not_allowed")?;
    }
    let r = sub_err(&http, gw, &q, None, Auth::Header(&w0)).await?;
    expect_error("subscribe with a write token", r, 403, "token_not_allowed")?;
    // Party 0 spends its 4 KiB; party 1 still posts.
    let (s, t) = post(
        &http,
        gw,
        &q,
        "broadcast",
        "a".repeat(2000),
        Auth::Header(&w0),
    )
    .await?;
    ensure!(s == 200, "party 0 post: {s} {t}");
    let (s, t) = post(
        &http,
        gw,
        &q,
        "broadcast",
        "b".repeat(2000),
        Auth::Header(&w0),
    )
    .await?;
    ensure!(s == 200, "party 0 second post: {s} {t}");
    let r = post(
        &http,
        gw,
        &q,
        "broadcast",
        "c".repeat(200),
        Auth::Header(&w0),
    )
    .await?;
    expect_error("party 0 over its quota", r, 429, "party_quota_exceeded")?;
    let (s, t) = post(
        &http,
        gw,
        &q,
        "broadcast",
        "d".repeat(1000),
        Auth::Header(&w1),
    )
    .await?;
    ensure!(
        s == 200,
        "party 1 post while party 0 is out of quota: {s} {t}"
    );
    // One stream per party: a second one of party 0 is refused, party 1 gets its own.
    let mut sub0 = sub_ok(&http, gw, &q, None, Auth::Header(&r0)).await?;
    let r = sub_err(&http, gw, &q, None, Auth::Header(&r0)).await?;
    expect_error("second stream of party 0", r, 429, "party_quota_exceeded")?;
    let mut sub1 = sub_ok(&http, gw, &q, None, Auth::Header(&rw1)).await?;
    for sub in [&mut sub0, &mut sub1] {
        let got = sub.take(3, Duration::from_secs(10)).await?;
        ensure!(got.iter().map(|(seq, _)| *seq).collect::<Vec<_>>() == [1, 2, 3]);
    }
    Ok(q)
}

/// The global byte budget (quota profile, after [`check_party_tokens`] left about
/// 5 KiB in `room`, past half of the 8 KiB budget): new rooms are refused with 503
/// `gateway_busy` while the open room keeps posting, up to the budget itself.
pub async fn check_budget(gw: &GatewayProcess, open_room: &str) -> Result<()> {
    let http = Client::new();
    let budget = gw.config.limits.max_total_bytes;
    let b = room("budget-new");
    let wb = party_token(gw, &b, 0, Access::Write)?;
    let r = post(&http, gw, &b, "broadcast", "z", Auth::Header(&wb)).await?;
    expect_error("new room past half the budget", r, 503, "gateway_busy")?;
    let r = post(&http, gw, &b, "issue_unique_idx", "", Auth::Header(&wb)).await?;
    expect_error(
        "new room (index) past half the budget",
        r,
        503,
        "gateway_busy",
    )?;
    let rb = party_token(gw, &b, 0, Access::Read)?;
    let r = sub_err(&http, gw, &b, None, Auth::Header(&rb)).await?;
    expect_error(
        "new room (stream) past half the budget",
        r,
        503,
        "gateway_busy",
    )?;
    // The open room goes on (a third party, within its own quota) until the budget
    // itself is spent.
    let w2 = party_token(gw, open_room, 2, Access::Write)?;
    let mut posted = 0;
    loop {
        let r = post(
            &http,
            gw,
            open_room,
            "broadcast",
            "w".repeat(1000),
            Auth::Header(&w2),
        )
        .await?;
        if r.0 == StatusCode::OK {
            posted += 1;
            ensure!(posted <= 3, "the budget of {budget} bytes never ran out");
            continue;
        }
        ensure!(
            posted == 3,
            "the open room could post only {posted} KiB more: {r:?}"
        );
        return expect_error("post past the budget", r, 503, "gateway_busy");
    }
}

/// Runs every check of the quota profile.
pub async fn quota_suite(gw: &GatewayProcess) -> Result<()> {
    let open_room = check_party_tokens(gw).await.context("party tokens")?;
    check_budget(gw, &open_room).await.context("budget")?;
    Ok(())
}

/// Runs every check of the open profile.
pub async fn open_suite(gw: &GatewayProcess) -> Result<()> {
    check_health(gw).await.context("health")?;
    check_ordering(gw).await.context("ordering")?;
    check_resume(gw).await.context("resume")?;
    check_unique_idx(gw).await.context("unique_idx")?;
    check_limits(gw).await.context("limits")?;
    check_malformed(gw).await.context("malformed")?;
    check_cors(gw).await.context("cors")?;
    check_keepalive(gw).await.context("keepalive")?;
    Ok(())
}

/// Runs every check of the secured profile.
pub async fn secured_suite(gw: &GatewayProcess) -> Result<()> {
    check_health(gw).await.context("health")?;
    check_tokens(gw).await.context("tokens")?;
    check_ordering(gw).await.context("ordering with tokens")?;
    check_expiry(gw).await.context("expiry")?;
    Ok(())
}
