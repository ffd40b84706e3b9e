//! The throwaway servers of the tests and benchmarks, in one place:
//!
//! - [`postgres`]: a PostgreSQL server (`initdb` + `pg_ctl` in a temporary folder,
//!   loopback port, trust authentication), for the cosigner's PostgreSQL store
//!   (sign-service's tests, the scale benchmark);
//! - [`redis`]: a `redis-server` on a loopback port without persistence, for the
//!   gateway's Redis rooms (the gateway contract tests, the scale benchmark).
//!
//! Both are the Debian packages `scripts/setup.sh` installs; a missing server is an
//! error naming that script, never a skipped test. Standard library only: the crate is
//! used from the root workspace and from sign-service's own workspace.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod postgres;
pub mod redis;

/// A fresh directory under the system temp dir, `<prefix>-<pid>-<n>`, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// Creates the directory (an old one of the same name is removed first).
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
