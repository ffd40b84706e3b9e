//! A real Redis (`redis-server`, the Debian package) for the gateway's Redis room store
//! (its tests, the scale benchmark): started on a free loopback port in a temporary
//! directory, with no persistence, killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// Why a Redis server could not be started.
#[derive(Debug)]
pub enum RedisError {
    /// `redis-server` is not installed.
    NotInstalled,
    /// A file, a port or the process could not be set up.
    Io(std::io::Error),
    /// The server did not come up; its output or the reason.
    NotStarted(String),
}

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisError::NotInstalled => write!(
                f,
                "redis-server is not installed: run scripts/setup.sh native \
                 (it installs the Debian package redis-server)"
            ),
            RedisError::Io(e) => write!(f, "cannot start redis-server: {e}"),
            RedisError::NotStarted(why) => write!(f, "cannot start redis-server: {why}"),
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for RedisError {
    fn from(e: std::io::Error) -> Self {
        RedisError::Io(e)
    }
}

/// A running `redis-server`; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

/// The `redis-server` binary.
pub fn redis_server_bin() -> Result<PathBuf, RedisError> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or(RedisError::NotInstalled)
}

impl RedisServer {
    /// Starts a fresh, empty Redis on a free loopback port (a few tries: a port found
    /// free can be taken by another test before Redis binds it).
    pub fn start() -> Result<Self, RedisError> {
        let bin = redis_server_bin()?;
        let dir = TempDir::new("redis-test")?;
        let mut last = None;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match Self::spawn(&bin, &dir, port) {
                Ok(child) => {
                    return Ok(RedisServer {
                        child: Some(child),
                        port,
                        dir,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RedisError::NotStarted("no try".into())))
    }

    fn spawn(bin: &std::path::Path, dir: &TempDir, port: u16) -> Result<Child, RedisError> {
        let log = dir.0.join(format!("redis-{port}.log"));
        let out = std::fs::File::create(&log)?;
        let mut child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()?;
        let start = Instant::now();
        loop {
            if ping(port).is_ok() {
                return Ok(child);
            }
            if let Some(status) = child.try_wait()? {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(RedisError::NotStarted(format!(
                    "redis-server exited with {status}:\n{out}"
                )));
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RedisError::NotStarted(format!(
                    "redis-server on port {port} does not answer PING after 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops Redis (an outage): connections to its port are refused from now on.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts Redis again on the same port (empty: no persistence), after [`stop`].
    ///
    /// [`stop`]: RedisServer::stop
    pub fn restart(&mut self) -> Result<(), RedisError> {
        self.stop();
        let child = Self::spawn(&redis_server_bin()?, &self.dir, self.port)?;
        self.child = Some(child);
        Ok(())
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("redis-{}.log", self.port)))
            .unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `PING` to the Redis on `port` and expects `+PONG`.
fn ping(port: u16) -> std::io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    if &buf != b"+PONG\r\n" {
        return Err(std::io::Error::other(format!(
            "unexpected answer to PING: {:?}",
            String::from_utf8_lossy(&buf)
        )));
    }
    Ok(())
}
