//! A throwaway PostgreSQL server for tests and benchmarks (sign-service's unit tests and,
//! through its `test-hooks` feature, its integration tests; the scale benchmark):
//! `initdb` in a temporary folder, `pg_ctl start` on a free loopback port, trust
//! authentication, stopped and deleted on drop. As root, the server runs as the
//! `postgres` system user (PostgreSQL refuses to run as root). Databases are made and
//! queried with the server's own `createdb` and `psql`: no client library.
//!
//! Missing server binaries are a test FAILURE naming `scripts/setup.sh`, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The superuser of the test cluster.
const USER: &str = "wallet";

/// A running test server.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_user: Option<&'static str>,
    next_db: AtomicU32,
}

/// The folder of `initdb` and `pg_ctl`: Debian's newest `/usr/lib/postgresql/N/bin`,
/// else the `PATH`.
fn find_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return dir;
        }
    }
    panic!(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: run \
         scripts/setup.sh (Debian package postgresql)"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    /// Starts a server (about a second).
    pub fn start() -> PgServer {
        Self::start_with(&[], "")
    }

    /// Starts a server with `files` (name, contents) in its folder, readable by the
    /// server only (certificates, keys, a `pg_hba.conf`), and `conf` appended to its
    /// `postgresql.conf`, `{dir}` in it replaced by that folder (e.g. `ssl = on`,
    /// `ssl_cert_file = '{dir}/server.pem'`).
    pub fn start_with(files: &[(&str, &[u8])], conf: &str) -> PgServer {
        let bin = find_bin();
        let as_user = is_root().then_some("postgres");
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "test-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary folder");
        if let Some(user) = as_user {
            let ok = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown {user} {}", dir.display());
        }
        let mut server = PgServer {
            dir,
            bin,
            port: 0,
            as_user,
            next_db: AtomicU32::new(0),
        };
        for (name, contents) in files {
            let path = server.dir.join(name);
            std::fs::write(&path, contents).expect("write a server file");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod a server file");
            if let Some(user) = as_user {
                let ok = Command::new("chown")
                    .arg(format!("{user}:"))
                    .arg(&path)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown {user} {}", path.display());
            }
        }
        let data = server.dir.join("data");
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        );
        if !conf.is_empty() {
            use std::io::Write;
            let conf = conf.replace("{dir}", &server.dir.display().to_string());
            std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .and_then(|mut f| writeln!(f, "\n{conf}"))
                .expect("append to postgresql.conf");
        }
        // A port found free may be taken before the server binds it: try a few.
        for attempt in 0..5 {
            server.port = free_port();
            let opts = server.options();
            let log = server.dir.join("log");
            let ok = server.try_run(
                "pg_ctl",
                &[
                    "start".as_ref(),
                    "-w".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    opts.as_ref(),
                ],
            );
            if ok {
                return server;
            }
            if attempt == 4 {
                let log = std::fs::read_to_string(server.dir.join("log")).unwrap_or_default();
                panic!("pg_ctl start failed:\n{log}");
            }
        }
        unreachable!()
    }

    /// The server's options: its socket in its folder, loopback TCP on its port, no
    /// fsync (a test's data need not survive a crash), little shared memory.
    fn options(&self) -> String {
        format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off -c max_connections=100 \
             -c shared_buffers=16MB",
            self.dir.display(),
            self.port
        )
    }

    fn command(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Command {
        let exe = self.bin.join(tool);
        let mut c = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        c.args(args).current_dir(&self.dir);
        c
    }

    fn try_run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> bool {
        let out = self
            .command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        out.status.success()
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let out = self
            .command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new empty database and returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let port = self.port.to_string();
        self.run(
            "createdb",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                USER.as_ref(),
                name.as_ref(),
            ],
        );
        self.url(&name)
    }

    /// Runs `sql` with `psql` on database `db` of this server (its name, or its URL from
    /// [`PgServer::database`]) and returns the output:
    /// one line per row, columns separated by `|`, no header (`psql -At`). Stops at the
    /// first error, which is returned with psql's message.
    pub fn query(&self, db: &str, sql: &str) -> std::io::Result<String> {
        let port = self.port.to_string();
        let out = self
            .command(
                "psql",
                &[
                    "-h".as_ref(),
                    "127.0.0.1".as_ref(),
                    "-p".as_ref(),
                    port.as_ref(),
                    "-U".as_ref(),
                    USER.as_ref(),
                    "-d".as_ref(),
                    db.as_ref(),
                    "-v".as_ref(),
                    "ON_ERROR_STOP=1".as_ref(),
                    "-At".as_ref(),
                    "-c".as_ref(),
                    sql.as_ref(),
                ],
            )
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/{db}?connect_timeout=5",
            self.port
        )
    }

    /// Stops the server now (fast shutdown); a URL of it then refuses connections.
    pub fn stop(&self) {
        let data = self.dir.join("data");
        let _ = self.try_run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-w".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        );
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = self.options();
        self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
            ],
        );
    }

    /// The server's folder (data and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.try_run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
