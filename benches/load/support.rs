//! The load bench's parts: the server under test, signed calls, the
//! client loop and its figures, and the floods.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jidgate::config::AppKind;
use jidgate::db::account::{insert_creating, transition};
use jidgate::db::{AccountState, NewAccount, UserType};
use jidgate::signing::{SigningKey, canonical_request, canonical_text};
use secrecy::SecretString;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

pub const NORMAL_CLIENTS: usize = 20;
const DEVICE_APP: &str = "load-lamp";
const DEVICE_SECRET: &str = "load-lamp-product-secret-0123456789";
const SERVICE_APP: &str = "load-svc";
const SERVICE_SECRET: &str = "load-service-secret-0123456789abcdef";
const PASSWORD: &str = "load-pass-1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn device_name(i: usize) -> String {
    format!("SN-LOAD-{i:05}")
}

/// The `jidgate serve` process and what the clients need to reach it.
pub struct Server {
    pub http: SocketAddr,
    pub token: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy)]
pub struct Addrs {
    pub http: SocketAddr,
    pub token: SocketAddr,
}

impl Server {
    /// A database with `devices` device accounts, and the binary on it.
    pub async fn start(devices: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (http, token) = (free_port(), free_port());
        let toml = format!(
            "[http]\nlisten = \"127.0.0.1:{http}\"\nmax_connections = 16384\n\
             [database]\nurl = \"sqlite://{}\"\n\
             [xmpp]\nserver = \"127.0.0.1:9\"\nsecurity = \"plaintext\"\n\
             [secrets]\njid_key = \"{}\"\n\
             [passwords]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nqueue = 1024\n\
             [token_service]\nlisten = \"127.0.0.1:{token}\"\nidle_timeout = 600\nmax_connections = 16384\n\
             [rate_limits]\nfailed_login_per_ip_per_minute = 1000000\n\
             get_users_names_per_account_per_minute = 1000000\nget_users_names_per_ip_per_minute = 1000000\n\
             [reconcile]\ninterval = 3600\ndrift_interval = 0\n\
             [[apps]]\napp_id = \"{DEVICE_APP}\"\nsecret = \"{DEVICE_SECRET}\"\nkind = \"device\"\n\
             [[apps]]\napp_id = \"{SERVICE_APP}\"\nsecret = \"{SERVICE_SECRET}\"\nkind = \"service\"\n",
            dir.path().join("load.db").display(),
            "cd".repeat(32)
        );
        prepare(&toml, devices).await;
        let config = dir.path().join("load.toml");
        std::fs::write(&config, &toml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_jidgate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start jidgate");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", token)).await.is_err() {
            assert!(Instant::now() < deadline, "jidgate did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Server {
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            token: SocketAddr::from(([127, 0, 0, 1], token)),
            child,
            _dir: dir,
        }
    }

    pub fn clone_addrs(&self) -> Addrs {
        Addrs {
            http: self.http,
            token: self.token,
        }
    }
}

/// Creates the device accounts (one password hash for all).
async fn prepare(toml: &str, devices: usize) {
    let config = jidgate::Config::from_toml(toml).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let app = jidgate::build_app(config, jidgate::Faults::none(), stop.clone())
        .await
        .unwrap();
    let hash = app
        .hasher
        .hash(SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    for i in 0..devices {
        let local = format!("d.load{i:05}");
        let jid = format!("{local}@localhost");
        let enc = app
            .jid_cipher
            .encrypt(&jid, &SecretString::from("unused-jid-pwd".to_owned()));
        let name = device_name(i);
        let id = insert_creating(
            &app.db,
            &NewAccount {
                user_name: &name,
                type_: UserType::Device,
                device_type: Some("lamp"),
                des: "",
                password_hash: &hash,
                jid_local: &local,
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
    }
    stop.cancel();
    app.db.close().await;
}

/// A signed query for `path`.
fn signed(
    app: &str,
    kind: AppKind,
    user: Option<&str>,
    path: &str,
    params: &[(&str, &str)],
) -> Vec<(String, String)> {
    let ts = jidgate::now().to_string();
    let nonce = jidgate::crypto::random_token::<12>();
    let mut pairs: Vec<(&str, &str)> = vec![("app_id", app), ("ts", &ts), ("nonce", &nonce)];
    pairs.extend_from_slice(params);
    let key = match kind {
        AppKind::Device => SigningKey::derive_device(DEVICE_SECRET.as_bytes(), user.unwrap()),
        _ => SigningKey::from_bytes(SERVICE_SECRET.as_bytes()),
    };
    let sign = key.sign(canonical_text(path, pairs.iter().copied()).as_bytes());
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.push(("param_sign".into(), sign));
    out
}

/// Latencies (µs) per call, and errors.
#[derive(Default)]
pub struct Stats {
    pub ops: std::collections::BTreeMap<&'static str, Vec<u64>>,
    pub errors: Vec<String>,
}

impl Stats {
    pub fn errors(&self) -> usize {
        self.errors.len()
    }

    fn merge(&mut self, other: Stats) {
        for (k, v) in other.ops {
            self.ops.entry(k).or_default().extend(v);
        }
        self.errors.extend(other.errors);
    }

    fn p(v: &[u64], q: f64) -> u64 {
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    }

    /// (call, p99 here, p99 there).
    pub fn compare(&self, other: &Stats) -> Vec<(&'static str, u64, u64)> {
        self.ops
            .iter()
            .filter_map(|(k, v)| Some((*k, Self::p(v, 0.99), Self::p(other.ops.get(k)?, 0.99))))
            .collect()
    }

    pub fn print(&mut self, what: &str) {
        let total: usize = self.ops.values().map(Vec::len).sum();
        println!("{what}: {total} calls, {} errors", self.errors.len());
        for (k, v) in self.ops.iter_mut() {
            v.sort_unstable();
            println!(
                "  {k:<24} {:>8} calls  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
                v.len(),
                Self::p(v, 0.5) as f64 / 1000.0,
                Self::p(v, 0.99) as f64 / 1000.0,
                *v.last().unwrap() as f64 / 1000.0
            );
        }
        for e in self.errors.iter().take(5) {
            println!("  error: {e}");
        }
    }
}

/// Runs one client per device in `devices` for `span`; with `token`, also
/// one token-service client verifying tokens.
pub async fn run_clients(
    server: &Server,
    devices: Range<usize>,
    span: Duration,
    token: Option<&Server>,
) -> Stats {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = Instant::now() + span;
    let base = format!("http://{}", server.http);
    let mut tasks: Vec<_> = devices
        .map(|i| {
            tokio::spawn(http_client(
                http.clone(),
                base.clone(),
                device_name(i),
                deadline,
            ))
        })
        .collect();
    if let Some(s) = token {
        let (http, base, addr) = (http.clone(), base.clone(), s.token);
        tasks.push(tokio::spawn(async move {
            token_client(http, base, addr, deadline).await
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(t.await.unwrap());
    }
    stats
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    query: Vec<(String, String)>,
) -> Result<Value, String> {
    let r = http
        .get(format!("{base}{path}"))
        .query(&query)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if v["result"] == 0 {
        Ok(v)
    } else {
        Err(format!("{path}: {v}"))
    }
}

async fn login(http: &reqwest::Client, base: &str, name: &str) -> Result<String, String> {
    let q = signed(
        DEVICE_APP,
        AppKind::Device,
        Some(name),
        "/login",
        &[("user_name", name), ("password", PASSWORD), ("type", "2")],
    );
    let v = call(http, base, "/login", q).await?;
    Ok(v["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn http_client(
    http: reqwest::Client,
    base: String,
    name: String,
    deadline: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let mut token = match login(&http, &base, &name).await {
        Ok(t) => t,
        Err(e) => {
            stats.errors.push(e);
            return stats;
        }
    };
    let list = serde_json::to_string(&[&name]).unwrap();
    let mut k = 0usize;
    while Instant::now() < deadline {
        k += 1;
        let start = Instant::now();
        let (op, r) = match k % 3 {
            0 => ("login", login(&http, &base, &name).await.map(|t| token = t)),
            1 => {
                let q = signed(
                    DEVICE_APP,
                    AppKind::Device,
                    Some(&name),
                    "/get_users",
                    &[
                        ("user_name", &name),
                        ("access_token", &token),
                        ("user_name_ls", &list),
                    ],
                );
                (
                    "get_users",
                    call(&http, &base, "/get_users", q).await.map(drop),
                )
            }
            _ => {
                let q = signed(
                    SERVICE_APP,
                    AppKind::Service,
                    None,
                    "/verify_access_token",
                    &[("access_token", &token)],
                );
                (
                    "verify_access_token",
                    call(&http, &base, "/verify_access_token", q)
                        .await
                        .map(drop),
                )
            }
        };
        stats
            .ops
            .entry(op)
            .or_default()
            .push(start.elapsed().as_micros() as u64);
        if let Err(e) = r {
            stats.errors.push(e);
        }
    }
    stats
}

fn hello_line() -> String {
    let ts = jidgate::now().to_string();
    let nonce = jidgate::crypto::random_token::<12>();
    let params = [
        ("seq", "0"),
        ("cmd", "hello"),
        ("app_id", SERVICE_APP),
        ("ts", ts.as_str()),
        ("nonce", nonce.as_str()),
    ];
    let sign = SigningKey::from_bytes(SERVICE_SECRET.as_bytes())
        .sign(canonical_request(params).as_bytes());
    format!(
        "{{\"seq\":0,\"cmd\":\"hello\",\"app_id\":\"{SERVICE_APP}\",\"ts\":\"{ts}\",\"nonce\":\"{nonce}\",\"param_sign\":\"{sign}\"}}\n"
    )
}

/// A token-service connection after its hello.
async fn greeted(stream: TcpStream) -> std::io::Result<BufReader<TcpStream>> {
    let mut s = BufReader::new(stream);
    s.get_mut().write_all(hello_line().as_bytes()).await?;
    let mut line = String::new();
    s.read_line(&mut line).await?;
    if !line.contains("\"result\":0") {
        return Err(std::io::Error::other(format!("hello refused: {line}")));
    }
    Ok(s)
}

async fn token_client(
    http: reqwest::Client,
    base: String,
    addr: SocketAddr,
    deadline: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let token = match login(&http, &base, &device_name(NORMAL_CLIENTS)).await {
        Ok(t) => t,
        Err(e) => {
            stats.errors.push(e);
            return stats;
        }
    };
    let mut s = match greeted(TcpStream::connect(addr).await.unwrap()).await {
        Ok(s) => s,
        Err(e) => {
            stats.errors.push(e.to_string());
            return stats;
        }
    };
    let request =
        format!("{{\"seq\":1,\"cmd\":\"verify_access_token\",\"access_token\":\"{token}\"}}\n");
    let mut line = String::new();
    while Instant::now() < deadline {
        let start = Instant::now();
        line.clear();
        let r = async {
            s.get_mut().write_all(request.as_bytes()).await?;
            s.read_line(&mut line).await
        }
        .await;
        stats
            .ops
            .entry("token service verify")
            .or_default()
            .push(start.elapsed().as_micros() as u64);
        match r {
            Ok(_) if line.contains("\"validate\":true") => {}
            Ok(_) => stats.errors.push(format!("token service: {line}")),
            Err(e) => stats.errors.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stats
}

#[derive(Debug, Clone, Copy)]
pub enum Flood {
    /// Token-service connections that said hello and then nothing.
    TokenServiceIdle,
    /// HTTP connections trickling a request one byte per second.
    HttpSlowloris,
}

/// Keeps `n` flood connections open until `stop`, reopening those the
/// server closes; counts openings and closings.
pub async fn run_flood(
    addrs: Addrs,
    kind: Flood,
    n: usize,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
            tokio::spawn(async move {
                // Spread the openings over the first seconds.
                tokio::time::sleep(Duration::from_micros((i as u64) * 500)).await;
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 20) as u8));
                while !stop.load(Ordering::SeqCst) {
                    let socket = TcpSocket::new_v4().unwrap();
                    if socket.bind(SocketAddr::new(source, 0)).is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    let target = match kind {
                        Flood::TokenServiceIdle => addrs.token,
                        Flood::HttpSlowloris => addrs.http,
                    };
                    let Ok(stream) = socket.connect(target).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::SeqCst);
                    match kind {
                        Flood::TokenServiceIdle => idle(stream, &stop).await,
                        Flood::HttpSlowloris => trickle(stream, &stop).await,
                    }
                    if !stop.load(Ordering::SeqCst) {
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Says hello, then waits for the server to close (or for `stop`).
async fn idle(stream: TcpStream, stop: &AtomicBool) {
    let Ok(mut s) = greeted(stream).await else {
        return;
    };
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        match tokio::time::timeout(Duration::from_millis(500), s.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            _ => {}
        }
    }
}

/// Sends a request one byte a second until the server closes.
async fn trickle(mut stream: TcpStream, stop: &AtomicBool) {
    let request = b"GET /healthz HTTP/1.1\r\nHost: load\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    for b in request.iter().cycle() {
        if stop.load(Ordering::SeqCst) || stream.write_all(&[*b]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
