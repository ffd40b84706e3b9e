//! Native client of the wallet's SSE gateways (`sign-gateway`, `edge-gateway`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), gateway_client::ClientError> {
//! use futures_util::StreamExt;
//! let gw = gateway_client::GatewayClient::new("http://127.0.0.1:8080")?;
//! let token = None; // or Some("<expiry>.<hex mac>") issued by the cosigner
//! let idx = gw.issue_unique_idx("room-1", token).await?;
//! let mut events = Box::pin(gw.subscribe("room-1", token, None));
//! gw.broadcast("room-1", token, &format!("hello from {idx}")).await?;
//! while let Some(ev) = events.next().await {
//!     let (seq, body) = ev?;
//!     println!("{seq}: {body}");
//! #   break;
//! }
//! # Ok(()) }
//! ```
//!
//! Room tokens are sent as `Authorization: Bearer <token>`. (The gateways also accept
//! `?token=<token>` on `subscribe`, for browsers' `EventSource`, which cannot set
//! headers.) [`GatewayClient::subscribe`] reconnects by itself after a dropped stream,
//! resuming with `Last-Event-ID`, so the caller sees every message exactly once and in
//! the room's order; it gives up with [`ClientError::GaveUp`] after
//! [`ClientOptions::give_up_after`] without a working connection.
//!
//! `https://` gateways are verified against the web PKI roots (Mozilla's, compiled in)
//! plus the CA certificates of [`ClientOptions::ca_file`], if any. A certificate that
//! does not verify (or any other TLS failure) is [`ClientError::Tls`], which is not
//! transient: nothing is retried.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The SSE parser (re-exported from the dependency-free `sse-codec` crate).
pub use sse_codec as sse;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;

pub use sse::{SseItem, SseParser};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL or room id cannot form a request URL.
    #[error("invalid gateway URL: {0}")]
    InvalidUrl(String),
    /// The gateway answered with an error status (with its JSON error code if any).
    #[error("gateway answered {status} {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The gateway's error code (e.g. `room_expired`), or `"unknown"`.
        code: String,
        /// The gateway's message, or the raw body.
        message: String,
    },
    /// Network or HTTP-level failure.
    #[error("transport error: {0}")]
    Transport(reqwest::Error),
    /// The TLS connection failed: the gateway's certificate does not verify against
    /// the trusted CAs (the web PKI roots and [`ClientOptions::ca_file`]), names another
    /// host or expired, or the handshake failed (e.g. `https` to a plain-HTTP port).
    #[error("TLS failed (the gateway's certificate or the TLS handshake): {reason}")]
    Tls {
        /// The TLS library's reason, e.g. `invalid peer certificate: UnknownIssuer`.
        reason: String,
    },
    /// The CA file of [`ClientOptions::ca_file`] cannot be read or holds no
    /// certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The gateway sent something that is not the contract (bad JSON, bad event id...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The subscription could not be re-established within the configured time.
    #[error("gave up reconnecting after {after:?}: {last}")]
    GaveUp {
        /// How long reconnection was tried.
        after: Duration,
        /// The last failure.
        last: Box<ClientError>,
    },
}

impl From<reqwest::Error> for ClientError {
    /// A TLS failure anywhere in the error's causes is [`ClientError::Tls`]; anything
    /// else [`ClientError::Transport`].
    fn from(e: reqwest::Error) -> Self {
        match tls_cause(&e) {
            Some(t) => ClientError::Tls {
                reason: t.to_string(),
            },
            None => ClientError::Transport(e),
        }
    }
}

/// The TLS error among `e`'s causes, if any: rustls' error, possibly inside (nested)
/// `std::io::Error`s of the connection. (An `io::Error`'s `source()` skips the error it
/// wraps, so the walk goes into `get_ref()` instead.) Shared with `mpc-client`, whose
/// tonic connection errors carry rustls' error the same way.
pub fn tls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        cur = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

impl ClientError {
    /// True for failures worth retrying (network, 5xx, 429, dropped stream).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Tuning of [`GatewayClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Timeout of `broadcast` / `issue_unique_idx` requests and of connecting (default 30 s).
    pub request_timeout: Duration,
    /// First reconnect delay (default 100 ms); doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Largest reconnect delay (default 5 s).
    pub backoff_max: Duration,
    /// Give up reconnecting after this long without a working stream (default 60 s).
    pub give_up_after: Duration,
    /// A stream silent for this long (no event, no keep-alive) is treated as dropped
    /// (default 45 s, three keep-alive periods of the default gateway config).
    pub idle_timeout: Duration,
    /// Largest event accepted from the gateway (default 2 MiB); larger → protocol error.
    pub max_event_bytes: usize,
    /// A PEM file of CA certificates trusted for `https://` gateways beside the web PKI
    /// roots (a gateway whose certificate a private CA issued). Default: none.
    pub ca_file: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            give_up_after: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(45),
            max_event_bytes: 2 * 1024 * 1024,
            ca_file: None,
        }
    }
}

/// A client of one gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    base: url::Url,
    http: reqwest::Client,
    opts: ClientOptions,
}

#[derive(Deserialize)]
struct UniqueIdx {
    unique_idx: u16,
}

#[derive(Deserialize)]
struct Seq {
    seq: u64,
}

#[derive(Deserialize)]
struct ErrBody {
    error: String,
    message: String,
}

impl GatewayClient {
    /// A client of the gateway at `base_url` (e.g. `http://127.0.0.1:8080`) with default
    /// options.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_options(base_url, ClientOptions::default())
    }

    /// A client with explicit options.
    pub fn with_options(base_url: &str, opts: ClientOptions) -> Result<Self, ClientError> {
        let mut base =
            url::Url::parse(base_url).map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl(format!(
                "{base_url} is not an http(s) base URL"
            )));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let mut builder = reqwest::Client::builder().connect_timeout(opts.request_timeout);
        if let Some(path) = &opts.ca_file {
            for cert in load_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build()?;
        Ok(GatewayClient { base, http, opts })
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn url(&self, room: &str, action: &str) -> Result<url::Url, ClientError> {
        // Room ids are [A-Za-z0-9_-]; refuse anything else locally with the same rule
        // as the gateway rather than building a surprising URL.
        if room.is_empty()
            || room.len() > 128
            || !room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ClientError::InvalidUrl(format!("invalid room id {room:?}")));
        }
        self.base
            .join(&format!("rooms/{room}/{action}"))
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))
    }

    async fn post(
        &self,
        room: &str,
        action: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Result<Bytes, ClientError> {
        let mut req = self
            .http
            .post(self.url(room, action)?)
            .timeout(self.opts.request_timeout);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(b);
        }
        let resp = req.send().await?;
        let resp = check_status(resp).await?;
        Ok(resp.bytes().await?)
    }

    /// Whether the gateway answers: `GET /health` within the request timeout. Any HTTP
    /// answer below 500 counts (a gateway without that route answers 404, and still
    /// serves rooms); a connection, TLS or timeout failure, or a 5xx, is the error.
    pub async fn probe(&self) -> Result<(), ClientError> {
        let url = self
            .base
            .join("health")
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        let resp = self
            .http
            .get(url)
            .timeout(self.opts.request_timeout)
            .send()
            .await?;
        if resp.status().is_server_error() {
            return check_status(resp).await.map(|_| ());
        }
        Ok(())
    }

    /// Appends `body` to the room; returns its sequence number.
    pub async fn broadcast(
        &self,
        room: &str,
        token: Option<&str>,
        body: &str,
    ) -> Result<u64, ClientError> {
        let bytes = self
            .post(room, "broadcast", token, Some(body.to_owned()))
            .await?;
        let s: Seq = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("bad broadcast answer: {e}")))?;
        Ok(s.seq)
    }

    /// Gets a participant index unique in the room (1, 2, 3, ...).
    pub async fn issue_unique_idx(
        &self,
        room: &str,
        token: Option<&str>,
    ) -> Result<u16, ClientError> {
        let bytes = self.post(room, "issue_unique_idx", token, None).await?;
        let s: UniqueIdx = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("bad issue_unique_idx answer: {e}")))?;
        Ok(s.unique_idx)
    }

    /// Subscribes to the room's messages after `last_event_id` (`None`: from the first).
    ///
    /// Yields `(seq, body)` in the room's order, each once. Dropped streams are resumed
    /// with `Last-Event-ID` after a bounded exponential backoff. The stream ends after
    /// yielding an error: a non-transient gateway answer (e.g. 401, 403, 410), a protocol
    /// violation, or [`ClientError::GaveUp`].
    pub fn subscribe(
        &self,
        room: &str,
        token: Option<&str>,
        last_event_id: Option<u64>,
    ) -> impl Stream<Item = Result<(u64, String), ClientError>> + Send + 'static {
        let st = Sub {
            client: self.clone(),
            room: room.to_owned(),
            token: token.map(str::to_owned),
            last: last_event_id.unwrap_or(0),
            body: None,
            parser: SseParser::new(),
            pending: VecDeque::new(),
            failing_since: None,
            backoff: self.opts.backoff_initial,
            connected_once: false,
            done: false,
        };
        futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        })
    }
}

/// The certificates of a PEM file (at least one).
fn load_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let err = |reason: String| ClientError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            "no certificate (-----BEGIN CERTIFICATE-----) in it".into()
        ));
    }
    Ok(certs)
}

async fn check_status(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrBody>(&text) {
        Ok(b) => (b.error, b.message),
        Err(_) => ("unknown".to_owned(), text.chars().take(512).collect()),
    };
    Err(ClientError::Status {
        status: status.as_u16(),
        code,
        message,
    })
}

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

struct Sub {
    client: GatewayClient,
    room: String,
    token: Option<String>,
    last: u64,
    body: Option<BodyStream>,
    parser: SseParser,
    pending: VecDeque<(u64, String)>,
    failing_since: Option<Instant>,
    backoff: Duration,
    connected_once: bool,
    done: bool,
}

impl Sub {
    async fn connect(&mut self) -> Result<BodyStream, ClientError> {
        let c = &self.client;
        let mut req = c
            .http
            .get(c.url(&self.room, "subscribe")?)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if self.last > 0 {
            req = req.header("Last-Event-ID", self.last.to_string());
        }
        let resp = match tokio::time::timeout(c.opts.request_timeout, req.send()).await {
            // A connect timeout is as transient as a refused connection.
            Err(_) => {
                return Err(ClientError::Status {
                    status: 504,
                    code: "timeout".into(),
                    message: "timed out connecting".into(),
                })
            }
            Ok(r) => r?,
        };
        let resp = check_status(resp).await?;
        Ok(Box::pin(resp.bytes_stream()))
    }

    /// Handles a failure: fatal → end, transient → wait and let the caller retry.
    async fn failed(&mut self, e: ClientError) -> Option<ClientError> {
        self.body = None;
        self.parser = SseParser::new();
        if !e.is_transient() {
            self.done = true;
            return Some(e);
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        let elapsed = since.elapsed();
        if elapsed >= self.client.opts.give_up_after {
            self.done = true;
            return Some(ClientError::GaveUp {
                after: elapsed,
                last: Box::new(e),
            });
        }
        tracing::debug!(room = %self.room, error = %e, delay = ?self.backoff, "gateway stream dropped, reconnecting");
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.client.opts.backoff_max);
        None
    }

    async fn next(&mut self) -> Option<Result<(u64, String), ClientError>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                match self.connect().await {
                    Ok(b) => {
                        self.body = Some(b);
                        self.connected_once = true;
                    }
                    Err(e) => {
                        if let Some(e) = self.failed(e).await {
                            return Some(Err(e));
                        }
                    }
                }
                continue;
            };
            let chunk = tokio::time::timeout(self.client.opts.idle_timeout, body.next()).await;
            let err = match chunk {
                Ok(Some(Ok(bytes))) => {
                    // Data flows: the connection works.
                    self.failing_since = None;
                    self.backoff = self.client.opts.backoff_initial;
                    for item in self.parser.feed(&bytes) {
                        let SseItem::Event { id, data, .. } = item else {
                            continue;
                        };
                        let Some(seq) = id.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                            self.done = true;
                            return Some(Err(ClientError::Protocol(format!(
                                "event without a numeric id: {id:?}"
                            ))));
                        };
                        // Exactly-once: ignore anything at or before the resume point.
                        if seq > self.last {
                            self.last = seq;
                            self.pending.push_back((seq, data));
                        }
                    }
                    if self.parser.buffered() > self.client.opts.max_event_bytes {
                        self.done = true;
                        return Some(Err(ClientError::Protocol(format!(
                            "event larger than {} bytes",
                            self.client.opts.max_event_bytes
                        ))));
                    }
                    continue;
                }
                Ok(Some(Err(e))) => ClientError::Transport(e),
                Ok(None) => ClientError::Status {
                    status: 503,
                    code: "stream_closed".into(),
                    message: "the gateway closed the stream".into(),
                },
                Err(_) => ClientError::Status {
                    status: 504,
                    code: "idle_timeout".into(),
                    message: format!("no data for {:?}", self.client.opts.idle_timeout),
                },
            };
            if let Some(e) = self.failed(err).await {
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_are_found_inside_nested_io_errors() {
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        let outer = std::io::Error::other(inner);
        let t = tls_cause(&outer).expect("the TLS cause");
        assert!(t.to_string().contains("UnknownIssuer"), "{t}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(tls_cause(&std::io::Error::other(refused)).is_none());
    }

    #[test]
    fn urls() {
        let c = GatewayClient::new("http://127.0.0.1:8080/base").unwrap();
        assert_eq!(
            c.url("r-1", "subscribe").unwrap().as_str(),
            "http://127.0.0.1:8080/base/rooms/r-1/subscribe"
        );
        assert!(c.url("a/b", "subscribe").is_err());
        assert!(c.url("", "subscribe").is_err());
        assert!(GatewayClient::new("ftp://x").is_err());
        assert!(GatewayClient::new("not a url").is_err());
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = std::env::temp_dir().join(format!("gw-client-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [empty, dir.join("missing.pem")] {
            let opts = ClientOptions {
                ca_file: Some(path.clone()),
                ..Default::default()
            };
            match GatewayClient::with_options("https://127.0.0.1:1", opts) {
                Err(ClientError::CaFile { path: p, .. }) => {
                    assert_eq!(p, path.display().to_string())
                }
                other => panic!("{path:?}: expected CaFile, got {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Paused tokio clock: the client's timers (backoff, give-up, request timeout) run on
    // virtual time, so the bounds below hold however loaded the machine is.
    #[tokio::test(start_paused = true)]
    async fn gives_up_on_unreachable_gateway() {
        // Port 9 (discard) on loopback: connection refused, a transient error (as is a
        // connect timeout, which virtual time may fire first).
        let c = GatewayClient::with_options(
            "http://127.0.0.1:9",
            ClientOptions {
                request_timeout: Duration::from_millis(100),
                backoff_initial: Duration::from_millis(10),
                backoff_max: Duration::from_millis(50),
                give_up_after: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .unwrap();
        let started = Instant::now();
        let mut s = Box::pin(c.subscribe("r", None, None));
        match s.next().await {
            Some(Err(ClientError::GaveUp { after, .. })) => {
                assert!(after >= Duration::from_millis(300), "{after:?}")
            }
            other => panic!("expected GaveUp, got {other:?}"),
        }
        assert!(s.next().await.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
