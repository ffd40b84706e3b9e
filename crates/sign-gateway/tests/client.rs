//! `gateway-client` against a real `sign-gateway` process, including resume after the
//! connection is cut mid-stream (by a TCP proxy the test controls).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_client::{ClientError, ClientOptions, GatewayClient};
use gateway_core::issue_room_token;
use gateway_tests::contract;
use gateway_tests::process::{start_native, GatewayProcess, TestConfig};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

async fn gateway(cfg: TestConfig) -> GatewayProcess {
    match start_native(Path::new(env!("CARGO_BIN_EXE_sign-gateway")), &cfg).await {
        Ok(p) => p,
        Err(e) => panic!("cannot start sign-gateway: {e:#}"),
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        give_up_after: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A proxied connection: the cut generation it was accepted at, and its task.
type Connection = (u64, tokio::task::JoinHandle<()>);

/// A TCP proxy to `upstream`; `cut().await` closes every connection open at that moment
/// and returns only once they are closed, so nothing published afterwards can still
/// flow through them (a cut that merely signalled its connections could lose the race
/// with data already on its way, and the client would never notice the cut).
struct Proxy {
    addr: String,
    /// Cut generation: a connection accepted at generation `g` ends once it exceeds `g`.
    generation: tokio::sync::watch::Sender<u64>,
    open: Arc<std::sync::Mutex<Vec<Connection>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (g, o, n) = (generation.clone(), open.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let up = upstream.clone();
                let mut cut = g.subscribe();
                let mine = *cut.borrow_and_update();
                let task = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(up).await else {
                        return;
                    };
                    tokio::select! {
                        biased;
                        _ = cut.wait_for(|now| *now > mine) => {}
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
                o.lock().unwrap().push((mine, task));
            }
        });
        Proxy {
            addr,
            generation,
            open,
            accepted,
        }
    }

    async fn cut(&self) {
        let mut now = 0;
        self.generation.send_modify(|g| {
            *g += 1;
            now = *g;
        });
        let doomed: Vec<_> = {
            let mut open = self.open.lock().unwrap();
            let (doomed, kept) = open.drain(..).partition(|(g, _)| *g < now);
            *open = kept;
            doomed
        };
        for (_, task) in doomed {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("a cut connection did not close")
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_subscribe_idx_open_gateway() {
    let gw = gateway(contract::open_profile()).await;
    let c = GatewayClient::with_options(&gw.base, fast()).unwrap();
    assert_eq!(c.issue_unique_idx("cl-1", None).await.unwrap(), 1);
    assert_eq!(c.issue_unique_idx("cl-1", None).await.unwrap(), 2);
    let mut s = Box::pin(c.subscribe("cl-1", None, None));
    assert_eq!(c.broadcast("cl-1", None, "a").await.unwrap(), 1);
    assert_eq!(c.broadcast("cl-1", None, "b\nc").await.unwrap(), 2);
    assert_eq!(s.next().await.unwrap().unwrap(), (1, "a".to_string()));
    assert_eq!(s.next().await.unwrap().unwrap(), (2, "b\nc".to_string()));
    // Start after 1.
    let mut s2 = Box::pin(c.subscribe("cl-1", None, Some(1)));
    assert_eq!(s2.next().await.unwrap().unwrap().0, 2);
    // Gateway errors are typed, with the gateway's code.
    match c.broadcast("cl-1", None, &"x".repeat(5000)).await {
        Err(ClientError::Status {
            status: 413, code, ..
        }) => assert_eq!(code, "message_too_large"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.broadcast("bad id", None, "x").await,
        Err(ClientError::InvalidUrl(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_and_fatal_errors_end_the_stream() {
    let gw = gateway(contract::secured_profile()).await;
    let c = GatewayClient::with_options(&gw.base, fast()).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let t = issue_room_token(contract::SECRET.as_bytes(), "cl-tok", exp);
    assert_eq!(c.issue_unique_idx("cl-tok", Some(&t)).await.unwrap(), 1);
    assert_eq!(c.broadcast("cl-tok", Some(&t), "m").await.unwrap(), 1);
    let mut s = Box::pin(c.subscribe("cl-tok", Some(&t), None));
    assert_eq!(s.next().await.unwrap().unwrap(), (1, "m".to_string()));
    // Missing token: 401, not retried, stream ends.
    let mut s = Box::pin(c.subscribe("cl-tok", None, None));
    match s.next().await {
        Some(Err(ClientError::Status { status: 401, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert!(s.next().await.is_none());
    // A token of another room: 403.
    match c.broadcast("cl-other", Some(&t), "m").await {
        Err(ClientError::Status { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumes_after_cut_connections_without_loss_or_duplicates() {
    let gw = gateway(contract::open_profile()).await;
    let upstream = gw.base.trim_start_matches("http://").to_string();
    let proxy = Proxy::start(upstream).await;
    let direct = GatewayClient::new(&gw.base).unwrap();
    let via_proxy = GatewayClient::with_options(&proxy.addr, fast()).unwrap();
    let room = "cl-resume";
    let mut s = Box::pin(via_proxy.subscribe(room, None, None));
    let mut got = Vec::new();
    let mut published = 0u64;
    let publish = |n: u64, from: u64| {
        let direct = direct.clone();
        async move {
            for i in from + 1..=from + n {
                direct
                    .broadcast(room, None, &format!("m{i}"))
                    .await
                    .unwrap();
            }
        }
    };
    for _round in 0..4 {
        publish(10, published).await;
        published += 10;
        // Read everything so far (the stream is live), then cut it and publish more
        // while the client is disconnected.
        while (got.len() as u64) < published {
            got.push(s.next().await.unwrap().unwrap());
        }
        proxy.cut().await;
        publish(3, published).await;
        published += 3;
    }
    while (got.len() as u64) < published {
        let ev = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("client stalled after cut")
            .unwrap()
            .unwrap();
        got.push(ev);
    }
    let want: Vec<(u64, String)> = (1..=published).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(got, want);
    // Every cut forced a reconnect (4 cuts: at least 5 connections).
    let n = proxy.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 5, "only {n} connections: the cuts did not take effect");
    // Nothing extra.
    assert!(tokio::time::timeout(Duration::from_millis(500), s.next())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gives_up_when_gateway_goes_away() {
    let mut gw = gateway(contract::open_profile()).await;
    let c = GatewayClient::with_options(
        &gw.base,
        ClientOptions {
            give_up_after: Duration::from_secs(1),
            ..fast()
        },
    )
    .unwrap();
    c.broadcast("cl-gone", None, "x").await.unwrap();
    let mut s = Box::pin(c.subscribe("cl-gone", None, None));
    assert_eq!(s.next().await.unwrap().unwrap().0, 1);
    // The clock starts before the gateway goes away: the client's give-up timer starts at
    // its first failed reconnect, which is later, so it cannot give up before this + 1 s
    // (taken after `terminate`, a slow exit would have eaten into the bound).
    let started = std::time::Instant::now();
    gw.terminate(Duration::from_secs(8)).unwrap();
    match tokio::time::timeout(Duration::from_secs(30), s.next()).await {
        Ok(Some(Err(ClientError::GaveUp { .. }))) => {}
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
}
