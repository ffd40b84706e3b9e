//! Load benchmark of the native `sign-gateway`: many rooms × N subscribers × steady
//! publishing, against a real gateway process on loopback.
//!
//! ```text
//! cargo build --release -p sign-gateway -p gateway-tests
//! target/release/gateway-bench --rooms 300 --subscribers 3 --rate 5 --duration 20
//! ```
//! (or `scripts/gateway-bench.sh`). Prints messages/s delivered, p50/p99 delivery
//! latency, peak RSS of the gateway (VmHWM) and the most concurrent SSE subscribers the
//! gateway reported holding.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::StreamExt;
use gateway_client::{SseItem, SseParser};
use gateway_core::Limits;
use gateway_tests::process::{start_native, TestConfig};

#[derive(Parser, Debug)]
#[command(about = "Load benchmark of sign-gateway")]
struct Args {
    /// sign-gateway binary (default: next to this binary, or $SIGN_GATEWAY_BIN).
    #[arg(long, env = "SIGN_GATEWAY_BIN")]
    gateway_bin: Option<PathBuf>,
    /// Rooms.
    #[arg(long, default_value_t = 300)]
    rooms: usize,
    /// Subscribers per room.
    #[arg(long, default_value_t = 3)]
    subscribers: usize,
    /// Messages per second published into each room.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Publishing time in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn gateway_bin(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.gateway_bin {
        return Ok(p.clone());
    }
    let me = std::env::current_exe()?;
    let p = me.parent().context("no parent dir")?.join("sign-gateway");
    if !p.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p sign-gateway) or pass --gateway-bin",
            p.display()
        );
    }
    Ok(p)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = gateway_bin(&args)?;
    let per_room = (args.rate * args.duration as f64).ceil() as u64 + 10;
    let cfg = TestConfig {
        limits: Limits {
            max_rooms: args.rooms as u64 + 10,
            max_subscribers_per_room: args.subscribers as u32 + 1,
            max_messages_per_room: per_room,
            max_message_bytes: (args.size as u64 + 64).max(1024),
            ..Limits::default()
        },
        ..TestConfig::default()
    };
    let gw = start_native(&bin, &cfg).await?;
    let pid = gw.pid();
    let base = gw.base.clone();
    let t0 = Instant::now();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    // Subscribers.
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let expected_total = Arc::new(AtomicU64::new(0));
    let mut sub_tasks = Vec::new();
    for r in 0..args.rooms {
        for _ in 0..args.subscribers {
            let url = format!("{base}/rooms/bench-{r}/subscribe");
            let (http, lat, del, opened) = (
                http.clone(),
                latencies.clone(),
                delivered.clone(),
                opened.clone(),
            );
            sub_tasks.push(tokio::spawn(async move {
                let resp = http.get(url).send().await?;
                if !resp.status().is_success() {
                    bail!("subscribe: {}", resp.status());
                }
                let mut body = resp.bytes_stream();
                let mut parser = SseParser::new();
                let mut local = Vec::new();
                let mut next_seq = 1u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    let now = t0.elapsed().as_micros() as u64;
                    for item in parser.feed(&chunk) {
                        match item {
                            SseItem::Comment(c) if c == "open" => {
                                opened.fetch_add(1, Ordering::Relaxed);
                            }
                            SseItem::Event { id, data, .. } => {
                                let seq: u64 = id.as_deref().unwrap_or("").parse()?;
                                if seq != next_seq {
                                    bail!("gap/dup: got {seq}, expected {next_seq}");
                                }
                                next_seq += 1;
                                if data == "end" {
                                    del.fetch_add(local.len() as u64, Ordering::Relaxed);
                                    lat.lock()
                                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                                        .extend(local);
                                    return Ok(());
                                }
                                let sent: u64 =
                                    data.split_once(' ').map(|(t, _)| t).unwrap_or("").parse()?;
                                local.push(now.saturating_sub(sent));
                            }
                            _ => {}
                        }
                    }
                }
                bail!("stream ended early")
            }));
        }
    }
    let want = (args.rooms * args.subscribers) as u64;
    let open_deadline = Instant::now() + Duration::from_secs(60);
    while opened.load(Ordering::Relaxed) < want {
        if Instant::now() > open_deadline {
            bail!(
                "only {} of {want} subscribers opened",
                opened.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Sample the gateway's subscriber gauge.
    let max_subs = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (http, base, max_subs) = (http.clone(), base.clone(), max_subs.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
                    if let Ok(t) = r.text().await {
                        if let Some(v) = t
                            .lines()
                            .find_map(|l| l.strip_prefix("sign_gateway_subscribers "))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                        {
                            max_subs.fetch_max(v, Ordering::Relaxed);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    // Publishers: one per room, steady rate, then an "end" marker.
    let pad = "x".repeat(args.size.saturating_sub(24));
    let start_pub = Instant::now();
    let mut pubs = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    for r in 0..args.rooms {
        let (http, base, pad, exp) = (
            http.clone(),
            base.clone(),
            pad.clone(),
            expected_total.clone(),
        );
        let duration = Duration::from_secs(args.duration);
        // Spread rooms over the interval so publishing is steady, not bursty.
        let offset = interval.mul_f64(r as f64 / args.rooms as f64);
        pubs.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let url = format!("{base}/rooms/bench-{r}/broadcast");
            let until = Instant::now() + duration;
            while Instant::now() < until {
                tick.tick().await;
                let body = format!("{} {pad}", t0.elapsed().as_micros());
                let resp = http.post(&url).body(body).send().await?;
                if !resp.status().is_success() {
                    bail!("broadcast: {}", resp.status());
                }
                exp.fetch_add(1, Ordering::Relaxed);
            }
            let resp = http.post(&url).body("end").send().await?;
            if !resp.status().is_success() {
                bail!("broadcast end: {}", resp.status());
            }
            anyhow::Ok(())
        }));
    }
    for p in pubs {
        p.await??;
    }
    let pub_secs = start_pub.elapsed().as_secs_f64();
    for s in sub_tasks {
        tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .context("subscriber did not finish")???;
    }
    let total_secs = start_pub.elapsed().as_secs_f64();
    sampler.abort();
    let hwm = vm_hwm_kib(pid);
    let mut lat = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    lat.sort_unstable();
    let published = expected_total.load(Ordering::Relaxed);
    let delivered = delivered.load(Ordering::Relaxed);
    let expect_delivered = published * args.subscribers as u64;
    if delivered != expect_delivered {
        bail!("delivered {delivered}, expected {expect_delivered}");
    }
    println!();
    println!("sign-gateway load benchmark (loopback, release build)");
    println!(
        "  {} rooms x {} subscribers, {} msg/s per room for {} s, {} B messages",
        args.rooms, args.subscribers, args.rate, args.duration, args.size
    );
    println!("| metric                              | value |");
    println!("|-------------------------------------|-------|");
    println!("| messages published                  | {published} |");
    println!("| events delivered (all subscribers)  | {delivered} |");
    println!(
        "| delivered messages/s                | {:.0} |",
        delivered as f64 / total_secs
    );
    println!(
        "| published messages/s                | {:.0} |",
        published as f64 / pub_secs
    );
    println!(
        "| delivery latency p50                | {:.2} ms |",
        pct(&lat, 0.50) as f64 / 1000.0
    );
    println!(
        "| delivery latency p99                | {:.2} ms |",
        pct(&lat, 0.99) as f64 / 1000.0
    );
    println!(
        "| delivery latency max                | {:.2} ms |",
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    match hwm {
        Some(k) => println!(
            "| gateway peak RSS (VmHWM)            | {:.1} MiB |",
            k as f64 / 1024.0
        ),
        None => println!("| gateway peak RSS (VmHWM)            | n/a |"),
    }
    println!(
        "| max concurrent SSE subscribers held | {} |",
        max_subs.load(Ordering::Relaxed)
    );
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "suite": "gateway",
            "rooms": args.rooms,
            "subscribers_per_room": args.subscribers,
            "rate_per_room": args.rate,
            "duration_secs": args.duration,
            "message_bytes": args.size,
            "published": published,
            "delivered": delivered,
            "delivered_per_sec": delivered as f64 / total_secs,
            "published_per_sec": published as f64 / pub_secs,
            "latency_p50_ms": pct(&lat, 0.50) as f64 / 1000.0,
            "latency_p99_ms": pct(&lat, 0.99) as f64 / 1000.0,
            "latency_max_ms": lat.last().copied().unwrap_or(0) as f64 / 1000.0,
            "peak_rss_mib": hwm.map(|k| k as f64 / 1024.0),
            "max_subscribers": max_subs.load(Ordering::Relaxed),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(gw);
    Ok(())
}
