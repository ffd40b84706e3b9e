//! TLS for the wallet's servers (`sign-service`, `sign-gateway`, `recovery-agent`):
//! rustls with the ring provider (no cmake / aws-lc build).
//!
//! - [`server_config`] reads a certificate chain and its private key from PEM files (the
//!   operator's files: a public CA's, or a private CA's whose certificate the clients
//!   are given) and names the file at fault when one does not load.
//! - [`TlsListener`] accepts TCP connections and runs their TLS handshakes concurrently,
//!   each with a deadline, so that a client that connects and never completes its
//!   handshake holds up nobody. It is an [`axum::serve::Listener`], and
//!   [`TlsListener::into_incoming`] is the stream of connections tonic's
//!   `serve_with_incoming_shutdown` takes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let config = server_tls::server_config(
//!     Path::new("cert.pem"),
//!     Path::new("key.pem"),
//!     server_tls::ALPN_HTTP1,
//! )?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let listener = server_tls::TlsListener::new(tcp, config)?;
//! axum::serve(listener, axum::Router::new()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// ALPN of a server that speaks HTTP/1.1 only (the axum servers).
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];
/// ALPN of a server that speaks HTTP/2 and HTTP/1.1 (gRPC and gRPC-web).
pub const ALPN_H2_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; connections over it are closed at once.
const MAX_HANDSHAKES: usize = 1024;

/// Why the TLS configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("TLS certificate file {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error("TLS key file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not belong to the certificate).
    #[error("TLS certificate {cert} with key {key}: {reason}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls' reason.
        reason: String,
    },
}

/// A server configuration (no client authentication) from a PEM certificate chain
/// (the server's certificate first, then intermediates) and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1), offering the ALPN protocols `alpn` (e.g. [`ALPN_HTTP1`]).
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |reason: String| TlsError::Certificate {
        path: cert_file.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err(
            "no certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let pair_err = |e: rustls::Error| TlsError::Pair {
        cert: cert_file.display().to_string(),
        key: key_file.display().to_string(),
        reason: e.to_string(),
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(pair_err)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(pair_err)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A TCP listener whose connections come out after their TLS handshake.
///
/// Handshakes run concurrently in a background task (at most 1,024 at once, each
/// within [`HANDSHAKE_TIMEOUT`]); a failed handshake (an untrusted certificate on the
/// client's side, plain HTTP on a TLS port...) is logged at debug level and its
/// connection dropped. Dropping the listener stops the task.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Starts accepting on `listener` with `config` (call within a tokio runtime).
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local, task })
    }

    /// The next connection whose handshake completed, with the peer's address.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The connections as a stream (tonic's `serve_with_incoming_shutdown`).
    pub fn into_incoming(self) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + Send {
        futures_util::stream::unfold(self, |mut l| async move {
            let (stream, _) = l.accept().await;
            Some((Ok(stream), l))
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        TlsListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

type Handshake = (
    SocketAddr,
    Result<io::Result<TlsStream<TcpStream>>, tokio::time::error::Elapsed>,
);

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let mut handshakes: JoinSet<Handshake> = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    if handshakes.len() >= MAX_HANDSHAKES {
                        tracing::warn!(%peer, "too many TLS handshakes in progress; connection closed");
                        continue;
                    }
                    let acceptor = acceptor.clone();
                    handshakes.spawn(async move {
                        (peer, tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await)
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => match done {
                Ok((peer, Ok(Ok(stream)))) => {
                    if ready.send((stream, peer)).await.is_err() {
                        return;
                    }
                }
                Ok((peer, Ok(Err(e)))) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Ok((peer, Err(_))) => tracing::debug!(%peer, "TLS handshake timed out"),
                Err(e) => tracing::warn!("TLS handshake task failed: {e}"),
            },
            () = ready.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn the_file_at_fault_is_named() {
        let dir = std::env::temp_dir().join(format!("server-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = self_signed(&dir, "a");
        let (_, other_key) = self_signed(&dir, "b");
        let config = server_config(&cert, &key, ALPN_H2_HTTP1).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let missing = dir.join("missing.pem");
        let e = server_config(&missing, &key, ALPN_HTTP1).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = server_config(&key, &key, ALPN_HTTP1).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
        let e = server_config(&cert, &cert, ALPN_HTTP1).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");
        assert!(e.to_string().contains("a.pem"), "{e}");
        let e = server_config(&cert, &other_key, ALPN_HTTP1).unwrap_err();
        assert!(matches!(e, TlsError::Pair { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
