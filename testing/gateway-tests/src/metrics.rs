//! Scraping a gateway's `GET /metrics` in tests: a strict reader of the OpenMetrics
//! text both gateways write (`prometheus-client`), and the edge gateway's metrics
//! check.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use reqwest::{Client, StatusCode};

use crate::contract::{self, Auth};
use crate::process::GatewayProcess;

/// One scrape: every sample by its series (`name` or `name{labels}` as written) and
/// every family's declared type.
#[derive(Debug)]
pub struct Scrape {
    /// Sample values by series.
    pub samples: BTreeMap<String, f64>,
    /// `# TYPE` of each metric family.
    pub types: BTreeMap<String, String>,
    /// The text as received.
    pub text: String,
}

impl Scrape {
    /// The value of `series`, if present.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }
}

/// Parses OpenMetrics text: `# HELP`/`# TYPE`/`# UNIT` lines, one sample per line
/// (`series value`) of a family declared before it, no series twice, `# EOF` last.
pub fn parse(text: &str) -> Result<Scrape> {
    let body = text
        .strip_suffix("# EOF\n")
        .context("the text does not end with `# EOF`")?;
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for (n, line) in body.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut it = meta.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    ensure!(
                        types.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "{}: family declared twice",
                        at()
                    );
                }
                (Some("HELP" | "UNIT"), Some(_), _) => {}
                _ => bail!("{}: unknown comment", at()),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').with_context(at)?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().with_context(at)?,
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Some(labels) = series.strip_prefix(name) {
            ensure!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{}: bad labels",
                at()
            );
        }
        ensure!(
            types.keys().any(|f| name.starts_with(f.as_str())),
            "{}: sample of an undeclared family",
            at()
        );
        ensure!(
            samples.insert(series.to_owned(), value).is_none(),
            "{}: series twice",
            at()
        );
    }
    Ok(Scrape {
        samples,
        types,
        text: text.to_owned(),
    })
}

/// `GET /metrics` with `Authorization: Bearer <token>` (none: no header); returns the
/// status and body.
pub async fn get(
    http: &Client,
    gw: &GatewayProcess,
    token: Option<&str>,
) -> Result<(StatusCode, String)> {
    let mut req = http.get(gw.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    Ok((status, resp.text().await?))
}

/// Scrapes with `token` until every `(series, value)` of `want` holds (the edge's room
/// objects report in batches, so the numbers arrive a little after the events), or
/// fails after `timeout` naming what differs.
pub async fn wait_for(
    http: &Client,
    gw: &GatewayProcess,
    token: &str,
    want: &[(&str, f64)],
    timeout: Duration,
) -> Result<Scrape> {
    let start = Instant::now();
    loop {
        let (status, text) = get(http, gw, Some(token)).await?;
        ensure!(
            status == StatusCode::OK,
            "/metrics answered {status}: {text}"
        );
        let scrape = parse(&text)?;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(s, v)| scrape.get(s) != Some(*v))
            .map(|(s, v)| format!("{s}: want {v}, got {:?}", scrape.get(s)))
            .collect();
        if wrong.is_empty() {
            return Ok(scrape);
        }
        if start.elapsed() > timeout {
            bail!("after {timeout:?}: {}\n{text}", wrong.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The edge gateway's `/metrics` (started with a `metrics_token` and a
/// `room_idle_ttl_secs` of a few seconds): refused without the token or with a wrong
/// one; with it, OpenMetrics text with the native gateway's names whose rooms,
/// messages, bytes, subscribers, deliveries and errors follow what happened, whose
/// subscriber gauge falls when a stream closes, and whose gauges return to zero when
/// the rooms expire.
pub async fn check_edge_metrics(gw: &GatewayProcess) -> Result<()> {
    let token = gw
        .config
        .metrics_token
        .as_deref()
        .context("start the gateway with a metrics_token")?;
    let http = Client::new();
    // Refused without the token, with a wrong one, and with another scheme.
    let got = get(&http, gw, None).await?;
    contract::expect_error("/metrics without a token", got, 401, "token_missing")?;
    let got = get(&http, gw, Some("not-the-token")).await?;
    contract::expect_error("/metrics with a wrong token", got, 403, "token_invalid")?;
    let got = get(&http, gw, Some(&format!("{token}x"))).await?;
    contract::expect_error("/metrics with a longer token", got, 403, "token_invalid")?;
    let resp = http
        .get(gw.url("/metrics"))
        .header("Authorization", format!("Basic {token}"))
        .send()
        .await?;
    let got = (resp.status(), resp.text().await?);
    contract::expect_error("/metrics with Basic", got, 401, "token_missing")?;

    // Before anything happened: OpenMetrics text, every family typed as natively.
    let first = wait_for(
        &http,
        gw,
        token,
        &[
            ("sign_gateway_rooms", 0.0),
            ("sign_gateway_messages_total", 0.0),
        ],
        Duration::from_secs(20),
    )
    .await?;
    for (family, kind) in [
        ("sign_gateway_rooms", "gauge"),
        ("sign_gateway_subscribers", "gauge"),
        ("sign_gateway_retained_messages", "gauge"),
        ("sign_gateway_retained_bytes", "gauge"),
        ("sign_gateway_messages", "counter"),
        ("sign_gateway_message_bytes", "counter"),
        ("sign_gateway_events_delivered", "counter"),
        ("sign_gateway_subscriptions", "counter"),
        ("sign_gateway_rooms_expired", "counter"),
        ("sign_gateway_delivery_latency_seconds", "histogram"),
    ] {
        ensure!(
            first.types.get(family).map(String::as_str) == Some(kind),
            "{family} is not a {kind}:\n{}",
            first.text
        );
    }

    // Room A: two subscribers, two messages (5 + 6 bytes); room B: one message (1 byte).
    let (a, b) = (contract::room("metrics-a"), contract::room("metrics-b"));
    let mut subs = Vec::new();
    for _ in 0..2 {
        let mut s = match contract::subscribe(&http, gw, &a, None, Auth::Auto).await? {
            Ok(s) => s,
            Err((s, t)) => bail!("subscribe to {a}: {s} {t}"),
        };
        s.opened().await?;
        subs.push(s);
    }
    contract::broadcast_ok(&http, gw, &a, "hello").await?;
    contract::broadcast_ok(&http, gw, &a, "world!").await?;
    contract::broadcast_ok(&http, gw, &b, "x").await?;
    for s in &mut subs {
        let got = s.take(2, Duration::from_secs(10)).await?;
        ensure!(got.len() == 2, "subscriber got {got:?}");
    }
    // A room object's error (a resume ahead of the room) is counted; a refusal by the
    // Worker in front of the rooms (an invalid room id) is not.
    let got = contract::subscribe(&http, gw, &a, Some("99"), Auth::Auto).await?;
    match got {
        Err((s, body)) => {
            contract::expect_error("resume ahead", (s, body), 400, "invalid_last_event_id")?
        }
        Ok(_) => bail!("a resume ahead of the room was accepted"),
    }
    let got = contract::post(&http, gw, "bad.room", "broadcast", "x", Auth::None).await?;
    contract::expect_error("invalid room id", got, 400, "invalid_room_id")?;

    let after = wait_for(
        &http,
        gw,
        token,
        &[
            ("sign_gateway_rooms", 2.0),
            ("sign_gateway_subscribers", 2.0),
            ("sign_gateway_retained_messages", 3.0),
            ("sign_gateway_retained_bytes", 12.0),
            ("sign_gateway_messages_total", 3.0),
            ("sign_gateway_message_bytes_total", 12.0),
            ("sign_gateway_subscriptions_total", 2.0),
            ("sign_gateway_events_delivered_total", 4.0),
            ("sign_gateway_delivery_latency_seconds_count", 4.0),
            (
                "sign_gateway_delivery_latency_seconds_bucket{le=\"+Inf\"}",
                4.0,
            ),
            ("sign_gateway_errors_total{status=\"400\"}", 1.0),
            ("sign_gateway_rooms_expired_total", 0.0),
        ],
        Duration::from_secs(20),
    )
    .await?;
    // (A family without samples is not written, so the errors only now.)
    ensure!(
        after.types.get("sign_gateway_errors").map(String::as_str) == Some("counter"),
        "sign_gateway_errors is not a counter:\n{}",
        after.text
    );

    // One stream closes: the gauge follows; the counters stay.
    subs.pop();
    wait_for(
        &http,
        gw,
        token,
        &[
            ("sign_gateway_subscribers", 1.0),
            ("sign_gateway_subscriptions_total", 2.0),
            ("sign_gateway_messages_total", 3.0),
        ],
        Duration::from_secs(20),
    )
    .await?;

    // The last stream closes and both rooms idle out (a post after the TTL finds them
    // expired, if their alarms have not already): the room objects' last reports take
    // their gauges back to zero, and the quota object no longer counts them.
    subs.clear();
    let ttl = gw.config.limits.room_idle_ttl_secs;
    ensure!(
        ttl <= 30,
        "start the gateway with a short room_idle_ttl_secs, not {ttl}"
    );
    // The rooms idle from the moment the last stream is unregistered (it reports then).
    wait_for(
        &http,
        gw,
        token,
        &[("sign_gateway_subscribers", 0.0)],
        Duration::from_secs(20),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(ttl * 1000 + 1500)).await;
    for r in [&a, &b] {
        let got = contract::post(&http, gw, r, "broadcast", "late", Auth::Auto).await?;
        contract::expect_error("post to an idled-out room", got, 410, "room_expired")?;
    }
    wait_for(
        &http,
        gw,
        token,
        &[
            ("sign_gateway_rooms_expired_total", 2.0),
            ("sign_gateway_rooms", 0.0),
            ("sign_gateway_subscribers", 0.0),
            ("sign_gateway_retained_messages", 0.0),
            ("sign_gateway_retained_bytes", 0.0),
            ("sign_gateway_messages_total", 3.0),
            ("sign_gateway_errors_total{status=\"410\"}", 2.0),
        ],
        Duration::from_secs(20),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_prometheus_client_writes() {
        let text = "# HELP g_rooms Live rooms.\n# TYPE g_rooms gauge\ng_rooms 2\n\
                    # HELP g_errors Errors.\n# TYPE g_errors counter\n\
                    g_errors_total{status=\"400\"} 1\n\
                    # TYPE g_lat_seconds histogram\n# UNIT g_lat_seconds seconds\n\
                    g_lat_seconds_sum 0.5\ng_lat_seconds_count 1\n\
                    g_lat_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        let s = parse(text).unwrap();
        assert_eq!(s.get("g_rooms"), Some(2.0));
        assert_eq!(s.get("g_errors_total{status=\"400\"}"), Some(1.0));
        assert_eq!(s.get("g_lat_seconds_bucket{le=\"+Inf\"}"), Some(1.0));
        assert_eq!(s.types.get("g_lat_seconds").unwrap(), "histogram");
        for bad in [
            "g 1\n",                                // no # EOF
            "g 1\n# EOF\n",                         // undeclared family
            "# TYPE g gauge\ng x\n# EOF\n",         // not a number
            "# TYPE g gauge\ng 1\ng 2\n# EOF\n",    // twice
            "# TYPE g gauge\ng{a=\"1\" 1\n# EOF\n", // bad labels
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
