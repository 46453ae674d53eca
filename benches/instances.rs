//! Registrations and token verifications per second with one jidgate
//! instance on SQLite, one on PostgreSQL, and two on one PostgreSQL, in the
//! same run, printed as ratios to the one SQLite instance.
//!
//! Run: `scripts/bench.sh instances` (or `cargo bench --bench instances`).
//!
//! Each set-up gets a fresh Prosody (from `config/prosody.cfg.lua`, free
//! port) and a fresh database (SQLite file, or a database on a PostgreSQL
//! server of the benchmark's own, `tests/support/postgres.rs`), and runs
//! the real `jidgate serve` binary:
//! 1. `REGISTRATIONS` device registrations, `CONCURRENCY` at a time, spread
//!    round-robin over the instances. Argon2 runs with the test settings
//!    (256 KiB, 1 iteration) so that the figure is not Argon2's: each
//!    registration is then bounded by the XMPP server (an XEP-0133 add-user
//!    on the admin session and a login as the new account, on Prosody's one
//!    thread).
//! 2. Token verifications over the token service: `CONNECTIONS` connections
//!    (spread over the instances), pipeline depth `PIPELINE`, one device's
//!    token (answered from each instance's cache, the hot path).
//!
//! `ROUNDS` rounds run the three set-ups in turn; the medians and their
//! ratios are printed. Absolute numbers depend on the machine; the ratios
//! are the figures. The load clients run on the same machine as everything
//! else.

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jidgate::signing::{SigningKey, canonical_request, canonical_text};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REGISTRATIONS: usize = 300;
const CONCURRENCY: usize = 16;
const CONNECTIONS: usize = 50;
const PIPELINE: usize = 16;
const VERIFICATIONS: usize = 600_000;
const ROUNDS: usize = 3;
const DOMAIN: &str = "localhost";
const ADMIN_PASSWORD: &str = "admin-password-for-the-benchmark";
const JID_KEY: &str = "5f1d3c2b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f001";
const DEVICE_APP_ID: &str = "lamp-product";
const DEVICE_SECRET: &str = "lamp-product-secret-for-the-benchmark-01";
const SERVICE_SECRET: &str = "benchmark-service-secret-0123456789abcdef";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Prosody of the benchmark's own.
struct Prosody {
    port: u16,
    _child: Killed,
    _dir: tempfile::TempDir,
}

impl Prosody {
    fn command(program: &str, dir: &Path, port: u16) -> Command {
        let mut c = Command::new(program);
        c.arg("--config")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/prosody.cfg.lua"))
            .env("JIDGATE_PROSODY_DIR", dir)
            .env("JIDGATE_PROSODY_PORT", port.to_string())
            .env("JIDGATE_XMPP_DOMAIN", DOMAIN)
            .env("JIDGATE_PROSODY_LOG_LEVEL", "error");
        c
    }

    async fn start() -> Prosody {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = Self::command("prosodyctl", dir.path(), port)
            .args(["register", "admin", DOMAIN, ADMIN_PASSWORD])
            .output()
            .expect("`prosodyctl` is not installed: apt-get install -y prosody");
        assert!(out.status.success(), "prosodyctl register failed");
        let child = Self::command("prosody", dir.path(), port)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start prosody");
        wait_port(port).await;
        Prosody {
            port,
            _child: Killed(child),
            _dir: dir,
        }
    }
}

/// One running `jidgate serve`.
struct Instance {
    http: u16,
    token: u16,
    _child: Killed,
}

async fn spawn(dir: &Path, name: &str, url: &str, prosody: &Prosody, count: usize) -> Instance {
    let (http, token) = (free_port(), free_port());
    let toml = format!(
        "[http]\nlisten = \"127.0.0.1:{http}\"\n\
         [token_service]\nlisten = \"127.0.0.1:{token}\"\nidle_timeout = 600\n\
         [instance]\nid = \"{name}\"\ncount = {count}\n\
         [xmpp]\ndomain = \"{DOMAIN}\"\nserver = \"127.0.0.1:{}\"\nsecurity = \"plaintext\"\n\
         admin_jid = \"admin@{DOMAIN}\"\nadmin_password = \"{ADMIN_PASSWORD}\"\n\
         [secrets]\njid_key = \"{JID_KEY}\"\n\
         [database]\nurl = \"{url}\"\n\
         [passwords]\nargon2_memory_kib = 256\nargon2_iterations = 1\n\
         [rate_limits]\nregister_per_minute = 1000000\n\
         failed_login_per_ip_per_minute = 1000000\n\
         [reconcile]\ngrace = 60\ndrift_interval = 0\n\
         [[apps]]\napp_id = \"{DEVICE_APP_ID}\"\nsecret = \"{DEVICE_SECRET}\"\nkind = \"device\"\n\
         [[apps]]\napp_id = \"bench\"\nsecret = \"{SERVICE_SECRET}\"\nkind = \"service\"\n",
        prosody.port
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, toml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_jidgate"))
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jidgate");
    let instance = Instance {
        http,
        token,
        _child: Killed(child),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{http}/readyz"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return instance;
        }
        assert!(
            Instant::now() < deadline,
            "jidgate {name} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A device's signed call.
async fn call(client: &reqwest::Client, port: u16, path: &str, params: &[(&str, &str)]) -> Value {
    let user = params.iter().find(|(k, _)| *k == "user_name").unwrap().1;
    let key = SigningKey::derive_device(DEVICE_SECRET.as_bytes(), user);
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("app_id".into(), DEVICE_APP_ID.into()));
    all.push(("ts".into(), jidgate::now().to_string()));
    all.push(("nonce".into(), jidgate::crypto::random_token::<12>()));
    let canonical = canonical_text(path, all.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    all.push(("param_sign".into(), key.sign(canonical.as_bytes())));
    client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .form(&all)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn register_params(serial: &str) -> [(&str, &str); 5] {
    [
        ("user_name", serial),
        ("password", "device-pass-1"),
        ("type", "2"),
        ("device_type", "lamp"),
        ("des", ""),
    ]
}

/// Registrations per second, spread round-robin over `ports`.
async fn registrations(ports: &[u16], tag: &str) -> f64 {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, ports) = (client.clone(), next.clone(), ports.to_vec());
            let tag = tag.to_owned();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= REGISTRATIONS {
                        return;
                    }
                    let serial = format!("SN-{tag}-{i}");
                    let body = call(
                        &client,
                        ports[i % ports.len()],
                        "/register",
                        &register_params(&serial),
                    )
                    .await;
                    assert_eq!(body["result"], 0, "{serial}: {body}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    REGISTRATIONS as f64 / started.elapsed().as_secs_f64()
}

fn hello_line() -> Vec<u8> {
    let ts = jidgate::now().to_string();
    let nonce = jidgate::crypto::random_token::<12>();
    let params = [
        ("seq", "0"),
        ("cmd", "hello"),
        ("app_id", "bench"),
        ("ts", ts.as_str()),
        ("nonce", nonce.as_str()),
    ];
    let sign = SigningKey::from_bytes(SERVICE_SECRET.as_bytes())
        .sign(canonical_request(params).as_bytes());
    format!(
        "{{\"seq\":0,\"cmd\":\"hello\",\"app_id\":\"bench\",\"ts\":\"{ts}\",\"nonce\":\"{nonce}\",\"param_sign\":\"{sign}\"}}\n"
    )
    .into_bytes()
}

/// Verifications per second over `ports` (connections spread over them).
async fn verifications(ports: &[u16], token: &str) -> f64 {
    let request =
        format!("{{\"seq\":1,\"cmd\":\"verify_access_token\",\"access_token\":\"{token}\"}}\n");
    let batch = Arc::new(request.repeat(PIPELINE).into_bytes());
    let rounds = VERIFICATIONS / CONNECTIONS / PIPELINE;
    let mut conns = vec![];
    for c in 0..CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", ports[c % ports.len()]))
            .await
            .unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&hello_line()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .contains("\"result\":0")
        );
        conns.push(s);
    }
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            let batch = batch.clone();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(64 * 1024);
                for _ in 0..rounds {
                    s.write_all(&batch).await.unwrap();
                    buf.clear();
                    let mut lines = 0;
                    while lines < PIPELINE {
                        let from = buf.len();
                        let n = s.read_buf(&mut buf).await.unwrap();
                        assert!(n > 0, "connection closed");
                        lines += memchr::memchr_iter(b'\n', &buf[from..]).count();
                    }
                    let ok = memchr::memmem::find_iter(&buf, b"\"validate\":true").count();
                    assert_eq!(ok, PIPELINE, "every verification must succeed");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (rounds * CONNECTIONS * PIPELINE) as f64 / started.elapsed().as_secs_f64()
}

/// Runs one set-up: (registrations/s, verifications/s).
async fn run(label: &str, tag: &str, url: &str, instances: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let prosody = Prosody::start().await;
    let mut running = vec![];
    for i in 0..instances {
        running.push(spawn(dir.path(), &format!("{tag}{i}"), url, &prosody, instances).await);
    }
    let http: Vec<u16> = running.iter().map(|i| i.http).collect();
    let token: Vec<u16> = running.iter().map(|i| i.token).collect();
    // Warm up: a few registrations, and the token's cache entry everywhere.
    let client = reqwest::Client::new();
    for (i, port) in http.iter().enumerate() {
        let serial = format!("SN-WARM-{i}");
        assert_eq!(
            call(&client, *port, "/register", &register_params(&serial)).await["result"],
            0
        );
    }
    let login = [
        ("user_name", "SN-WARM-0"),
        ("password", "device-pass-1"),
        ("type", "2"),
    ];
    let body = call(&client, http[0], "/login", &login).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let regs = registrations(&http, tag).await;
    verifications(&token, &access).await;
    let verifs = verifications(&token, &access).await;
    println!("  {label:<26} {regs:>8.1} registrations/s   {verifs:>10.0} verifications/s");
    (regs, verifs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{REGISTRATIONS} registrations ({CONCURRENCY} at a time), {VERIFICATIONS} verifications \
         ({CONNECTIONS} connections, pipeline {PIPELINE}); Argon2 256 KiB, 1 iteration; \
         {ROUNDS} rounds, the three set-ups in turn"
    );
    let dir = tempfile::tempdir().unwrap();
    let setups = [
        "one instance, SQLite",
        "one instance, PostgreSQL",
        "two instances, PostgreSQL",
    ];
    let mut results: Vec<Vec<(f64, f64)>> = vec![vec![]; setups.len()];
    for round in 0..ROUNDS {
        println!("round {}", round + 1);
        let sqlite = format!(
            "sqlite://{}",
            dir.path().join(format!("bench{round}.db")).display()
        );
        results[0].push(rt.block_on(run(setups[0], &format!("SQ{round}"), &sqlite, 1)));
        let url = postgres::new_database();
        results[1].push(rt.block_on(run(setups[1], &format!("PGA{round}"), &url, 1)));
        let url = postgres::new_database();
        results[2].push(rt.block_on(run(setups[2], &format!("PGB{round}"), &url, 2)));
    }
    let medians: Vec<(f64, f64)> = results
        .iter()
        .map(|r| {
            (
                median(r.iter().map(|x| x.0).collect()),
                median(r.iter().map(|x| x.1).collect()),
            )
        })
        .collect();
    println!("medians, and ratios to one instance on SQLite:");
    for (label, (r, v)) in setups.iter().zip(&medians) {
        println!(
            "  {label:<26} {r:>8.1} registrations/s ({:.2}x)   {v:>10.0} verifications/s ({:.2}x)",
            r / medians[0].0,
            v / medians[0].1
        );
    }
}
