//! A PostgreSQL server of the tests' own: started once per test binary
//! (`initdb` in a temp dir, a free port on 127.0.0.1 only, `fsync=off`), as
//! the user `postgres` when the tests run as root (PostgreSQL refuses root),
//! with a template database already migrated; each test gets its own
//! database copied from it (`create database … template …`, a few ms).
//!
//! A watchdog reading a pipe from the test binary stops the server and
//! removes its directory when the binary exits. Missing binaries fail the
//! test with an install hint: they are never a reason to skip.

#![allow(dead_code)] // shared by two test binaries, each using part of it

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install -y postgresql (scripts/test.sh installs it)";
const TEMPLATE: &str = "jidgate_template";

/// The running server.
pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    _processes: Mutex<(Child, Child, ChildStdin)>,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The binary's server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(PgServer::start)
}

/// Which backend the integration suite runs on: `JIDGATE_TEST_DATABASE`
/// `postgres` (or `postgresql`) or `sqlite` (the default).
pub fn suite_on_postgres() -> bool {
    match std::env::var("JIDGATE_TEST_DATABASE").as_deref() {
        Ok("postgres" | "postgresql" | "pg") => true,
        Ok("" | "sqlite") | Err(_) => false,
        Ok(other) => panic!("JIDGATE_TEST_DATABASE must be sqlite or postgres, not {other:?}"),
    }
}

/// A new empty (migrated) database; its URL.
pub fn new_database() -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    database_named(&name)
}

/// The database called `name`, created (migrated) if it does not exist
/// yet: the same name gives the same database (restart scenarios).
pub fn database_named(name: &str) -> String {
    let s = server();
    let sql = format!("create database \"{name}\" template {TEMPLATE}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.psql("postgres", &sql) {
            Ok(()) => break,
            Err(e) if e.contains("already exists") => break,
            // Another copy of the template in progress.
            Err(e) if e.contains("being accessed by other users") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot create database {name}: {e}"),
        }
    }
    s.url(name)
}

impl PgServer {
    /// The URL of database `db` (user `postgres`, trusted on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one SQL command in database `db` with `psql`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<(), String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-d", db, "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn start() -> PgServer {
        let bin = bin_dir();
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("jidgate-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let data = dir.join("data");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "-D"])
            .arg(&data)
            .stdout(Stdio::null());
        let out = as_user(&mut initdb, run_as).output().expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid)).unwrap();
        }
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-F",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=400", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .process_group(0);
        let child = as_user(&mut postgres, run_as)
            .spawn()
            .expect("start postgres");
        // Reads its stdin until the test binary is gone (the write end is
        // ours), then stops the server fast and removes its directory.
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg("read _; kill -INT \"$1\" 2>/dev/null; sleep 1; kill -KILL \"$1\" 2>/dev/null; rm -rf -- \"$2\"")
            .arg("watchdog")
            .arg(child.id().to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the watchdog");
        let lifeline = watchdog.stdin.take().unwrap();
        let server = PgServer {
            port,
            bin,
            dir: dir.clone(),
            _processes: Mutex::new((child, watchdog, lifeline)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = server.psql("postgres", "select 1") {
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {e}\n{}",
                std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
            .psql("postgres", &format!("create database {TEMPLATE}"))
            .unwrap();
        server.migrate(&server.url(TEMPLATE));
        server
    }

    /// Migrates the template with jidgate's own migrations, on a thread of
    /// its own (the caller may be inside a runtime).
    fn migrate(&self, url: &str) {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let cfg: jidgate::config::DatabaseConfig =
                    toml::from_str(&format!("url = \"{url}\"\nmax_connections = 1\n")).unwrap();
                let db = jidgate::db::Db::connect(&cfg).await.unwrap();
                db.migrate().await.unwrap();
                db.close().await;
            });
        })
        .join()
        .unwrap();
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

/// Where `initdb`, `postgres` and `psql` are: Debian's
/// /usr/lib/postgresql/<newest>/bin, else PATH.
fn bin_dir() -> PathBuf {
    let debian = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
        .unwrap_or_else(|| panic!("PostgreSQL's initdb and postgres are not installed: {INSTALL}"))
}

/// Whom the server runs as: as root, the user `postgres` (uid, gid);
/// otherwise the tests' own user.
fn run_as() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("effective uid");
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let user = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "postgres").then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    });
    Some(user.unwrap_or_else(|| {
        panic!("the tests run as root and there is no user `postgres` to run PostgreSQL: {INSTALL}")
    }))
}

fn as_user(c: &mut Command, run_as: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = run_as {
        c.uid(uid).gid(gid);
    }
    c
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
