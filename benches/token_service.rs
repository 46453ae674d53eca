//! Token service throughput against Redis, in the same run.
//!
//! Run: `scripts/bench.sh` (or `cargo bench --bench token_service`).
//!
//! 1. Prepares a SQLite database with one device account and an access
//!    token, and starts the real `jidgate serve` binary on it (token service
//!    on loopback).
//! 2. Starts `redis-server` from Debian on loopback.
//! 3. Alternates, `ROUNDS` times: `redis-benchmark -t get` and our load
//!    client, both with 50 connections and pipeline depth 16, the same way
//!    (each connection writes 16 requests, reads 16 replies, repeats).
//! 4. Prints requests per second for both and their ratio (median round),
//!    then p50/p99 latency of one verification (1 connection, no pipeline)
//!    beside redis-benchmark's own for GET.
//!
//! Absolute numbers depend on the machine; the ratio is the figure.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jidgate::db::account::{insert_creating, transition};
use jidgate::db::{AccountState, NewAccount, UserType};
use jidgate::signing::{SigningKey, canonical_request};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 50;
const PIPELINE: usize = 16;
const REQUESTS: usize = 2_000_000;
const LATENCY_REQUESTS: usize = 20_000;
const ROUNDS: usize = 5;
const SERVICE_SECRET: &str = "benchmark-service-secret-0123456789abcdef";

fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not installed: apt-get install -y redis-server redis-tools (scripts/bench.sh does it)"
    );
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates the database with one account and returns an access token.
async fn prepare(dir: &Path, config_toml: &str) -> String {
    let config = jidgate::Config::from_toml(config_toml).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let app = jidgate::build_app(config, jidgate::Faults::none(), stop.clone())
        .await
        .unwrap();
    let local = "d.benchmarkdevice01";
    let jid = format!("{local}@localhost");
    let enc = app
        .jid_cipher
        .encrypt(&jid, &SecretString::from("unused-jid-password".to_owned()));
    let id = insert_creating(
        &app.db,
        &NewAccount {
            user_name: "SN-BENCH-0001",
            type_: UserType::Device,
            device_type: Some("lamp"),
            des: "",
            password_hash: "unused",
            jid_local: local,
            jid_pwd_enc: &enc,
        },
        jidgate::now(),
    )
    .await
    .unwrap();
    transition(
        &app.db,
        id,
        AccountState::Creating,
        AccountState::Active,
        jidgate::now(),
    )
    .await
    .unwrap();
    let device = jidgate::tokens::Caller {
        app_id: "lamp-product",
        kind: jidgate::config::AppKind::Device,
    };
    let issued = app.tokens.issue(id, device, jidgate::now()).await.unwrap();
    stop.cancel();
    app.db.close().await;
    let _ = dir;
    issued.access_token
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

/// What one load client sends and how it recognises the replies.
struct Load {
    /// Makes the first line of every connection (the token service's
    /// signed hello, with a fresh nonce each time).
    hello: Option<fn() -> Vec<u8>>,
    request: Vec<u8>,
    /// Newlines in one reply (JSON line: 1; RESP bulk string: 2).
    newlines_per_reply: usize,
    /// Occurs once in every good reply.
    success: &'static [u8],
}

impl Load {
    fn jidgate(token: &str) -> Load {
        Load {
            hello: Some(hello_line),
            request: format!(
                "{{\"seq\":1,\"cmd\":\"verify_access_token\",\"access_token\":\"{token}\"}}\n"
            )
            .into_bytes(),
            newlines_per_reply: 1,
            success: b"\"validate\":true",
        }
    }

    /// The GET redis-benchmark sends, for our client against Redis.
    fn redis() -> Load {
        Load {
            hello: None,
            request: b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n".to_vec(),
            newlines_per_reply: 2,
            success: b"$100\r\n",
        }
    }

    async fn connect(&self, port: u16) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        if let Some(hello) = &self.hello {
            s.write_all(&hello()).await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            let reply = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(reply.contains("\"result\":0"), "hello refused: {reply}");
        }
        s
    }

    /// Reads until `count` replies arrived; checks every one succeeded.
    async fn read_replies(&self, s: &mut TcpStream, buf: &mut Vec<u8>, count: usize) {
        buf.clear();
        let want = count * self.newlines_per_reply;
        let mut lines = 0;
        let mut scanned = 0;
        while lines < want {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            let n = s.read_buf(buf).await.unwrap();
            assert!(n > 0, "server closed the connection");
            lines += memchr::memchr_iter(b'\n', &buf[scanned..]).count();
            scanned = buf.len();
        }
        let ok = memchr::memmem::find_iter(buf, self.success).count();
        assert_eq!(ok, count, "every request must succeed");
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Shaped like redis-benchmark: one thread, each connection writes
/// `PIPELINE` requests, reads as many replies, repeats.
fn throughput(port: u16, load: Load) -> f64 {
    current_thread().block_on(async {
        let load = std::sync::Arc::new(load);
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            conns.push(load.connect(port).await);
        }
        let batch: Vec<u8> = load.request.repeat(PIPELINE);
        let rounds_per_conn = REQUESTS / CONNECTIONS / PIPELINE;
        let started = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                let batch = batch.clone();
                let load = load.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(64 * 1024);
                    for _ in 0..rounds_per_conn {
                        s.write_all(&batch).await.unwrap();
                        load.read_replies(&mut s, &mut buf, PIPELINE).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (rounds_per_conn * CONNECTIONS * PIPELINE) as f64 / started.elapsed().as_secs_f64()
    })
}

/// p50 and p99 (µs) of single requests on one connection.
fn latency(port: u16, load: Load) -> (f64, f64) {
    current_thread().block_on(async {
        let mut s = load.connect(port).await;
        let mut buf = Vec::new();
        let mut samples = Vec::with_capacity(LATENCY_REQUESTS);
        for _ in 0..LATENCY_REQUESTS {
            let t = Instant::now();
            s.write_all(&load.request).await.unwrap();
            load.read_replies(&mut s, &mut buf, 1).await;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        (pct(0.50), pct(0.99))
    })
}

/// redis-benchmark GET: (requests/s, p50 ms, p99 ms).
fn redis_get(port: u16, clients: usize, pipeline: usize, requests: usize) -> (f64, f64, f64) {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args([
            "-n",
            &requests.to_string(),
            "-d",
            "100",
            "-t",
            "get",
            "--csv",
        ])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if fields.first() == Some(&"GET") {
            let rps: f64 = fields[1].parse().unwrap();
            // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
            let p50: f64 = fields
                .get(4)
                .and_then(|f| f.parse().ok())
                .unwrap_or(f64::NAN);
            let p99: f64 = fields
                .get(6)
                .and_then(|f| f.parse().ok())
                .unwrap_or(f64::NAN);
            return (rps, p50, p99);
        }
    }
    panic!("no GET line from redis-benchmark: {text}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    require("redis-server");
    require("redis-benchmark");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let token_port = free_port();
    let http_port = free_port();
    let config_toml = format!(
        "[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
         [database]\nurl = \"sqlite://{}\"\n\
         [xmpp]\nserver = \"127.0.0.1:9\"\nsecurity = \"plaintext\"\n\
         [secrets]\njid_key = \"{}\"\n\
         [token_service]\nlisten = \"127.0.0.1:{token_port}\"\nidle_timeout = 600\n\
         [reconcile]\ninterval = 3600\ndrift_interval = 0\n\
         [[apps]]\napp_id = \"bench\"\nsecret = \"{SERVICE_SECRET}\"\nkind = \"service\"\n",
        db.display(),
        "ab".repeat(32)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = rt.block_on(prepare(dir.path(), &config_toml));
    let config_file = dir.path().join("bench.toml");
    std::fs::write(&config_file, &config_toml).unwrap();

    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_jidgate"))
            .arg("--config")
            .arg(&config_file)
            .arg("serve")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jidgate"),
    );
    let redis_port = free_port();
    let _redis = Killed(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    rt.block_on(wait_port(token_port));
    rt.block_on(wait_port(redis_port));
    // The key redis-benchmark GETs, with a value as large as our reply.
    let set = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &redis_port.to_string()])
        .args(["-c", "1", "-n", "1", "-d", "100", "-t", "set", "-q"])
        .output()
        .unwrap();
    assert!(set.status.success());

    // Warm up both.
    latency(token_port, Load::jidgate(&token));
    redis_get(redis_port, CONNECTIONS, PIPELINE, 200_000);

    println!(
        "token service vs Redis GET: {CONNECTIONS} connections, pipeline {PIPELINE}, {REQUESTS} requests, {ROUNDS} rounds"
    );
    let mut ratios = Vec::new();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut same_client = Vec::new();
    for round in 1..=ROUNDS {
        let (redis_rps, _, _) = redis_get(redis_port, CONNECTIONS, PIPELINE, REQUESTS);
        let jid_rps = throughput(token_port, Load::jidgate(&token));
        let redis_ours = throughput(redis_port, Load::redis());
        println!(
            "  round {round}: jidgate {jid_rps:>10.0} verifications/s   redis-benchmark GET {redis_rps:>10.0}/s   \
             ratio {:.2}x   (our client on Redis GET {redis_ours:>10.0}/s)",
            jid_rps / redis_rps
        );
        ratios.push(jid_rps / redis_rps);
        ours.push(jid_rps);
        theirs.push(redis_rps);
        same_client.push(redis_ours);
    }
    println!(
        "median: jidgate {:.0}/s, redis-benchmark GET {:.0}/s, ratio {:.2}x Redis; \
         our load client against Redis: {:.0}/s",
        median(ours),
        median(theirs),
        median(ratios),
        median(same_client)
    );

    let (p50, p99) = latency(token_port, Load::jidgate(&token));
    let (_, rp50, rp99) = redis_get(redis_port, 1, 1, LATENCY_REQUESTS);
    println!(
        "latency of one verification (1 connection, no pipeline, {LATENCY_REQUESTS} requests): \
         p50 {p50:.0} µs, p99 {p99:.0} µs; redis GET p50 {:.0} µs, p99 {:.0} µs",
        rp50 * 1000.0,
        rp99 * 1000.0
    );
}
