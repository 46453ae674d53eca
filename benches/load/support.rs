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

/// The flood in its own process (this bench binary again, with
/// `LOAD_FLOOD_CHILD` set), at `nice -n FLOOD_NICE` (default 10): on the
/// same 2 cores, an attacker in the measuring process would slow the
/// normal clients' own runtime, and one at the server's priority takes
/// CPU from the server that a remote attacker would not. Counts
/// openings and closings from the child's reports until `stop`.
pub async fn run_flood(
    addrs: Addrs,
    kind: Flood,
    n: usize,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
) {
    let nice = std::env::var("FLOOD_NICE").unwrap_or_else(|_| "10".into());
    let mut child = tokio::process::Command::new("nice")
        .args(["-n", &nice])
        .arg(std::env::current_exe().unwrap())
        .env("LOAD_FLOOD_CHILD", format!("{kind:?}"))
        .env("LOAD_FLOOD_N", n.to_string())
        .env("LOAD_FLOOD_HTTP", addrs.http.to_string())
        .env("LOAD_FLOOD_TOKEN", addrs.token.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the flood process");
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stopping = tokio::time::interval(Duration::from_millis(100));
    let mut stdin = Some(stdin);
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let mut it = line.split_whitespace().map(|w| w.parse::<usize>().unwrap_or(0));
                opened.store(it.next().unwrap_or(0), Ordering::SeqCst);
                closed.store(it.next().unwrap_or(0), Ordering::SeqCst);
            }
            _ = stopping.tick() => {
                if stop.load(Ordering::SeqCst) {
                    // Its stdin closed: the child stops and reports last.
                    stdin = None;
                }
            }
        }
    }
    drop(stdin);
    let _ = child.wait().await;
}

/// The flood process: keeps `LOAD_FLOOD_N` connections of the kind
/// `LOAD_FLOOD_CHILD` open until its stdin closes, printing "opened
/// closed" every 200 ms and once at the end.
pub async fn flood_child(kind: &str) {
    let var = |name: &str| std::env::var(name).unwrap();
    let addrs = Addrs {
        http: var("LOAD_FLOOD_HTTP").parse().unwrap(),
        token: var("LOAD_FLOOD_TOKEN").parse().unwrap(),
    };
    let n: usize = var("LOAD_FLOOD_N").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let report = |opened: &AtomicUsize, closed: &AtomicUsize| {
        println!(
            "{} {}",
            opened.load(Ordering::SeqCst),
            closed.load(Ordering::SeqCst)
        );
    };
    let flood = match kind {
        "TokenServiceIdle" => tokio::spawn(idle_flood(
            addrs.token,
            n,
            stop.clone(),
            opened.clone(),
            closed.clone(),
        )),
        "HttpSlowloris" => tokio::spawn(slowloris(
            addrs.http,
            n,
            stop.clone(),
            opened.clone(),
            closed.clone(),
        )),
        other => panic!("no flood {other}"),
    };
    let (o, c) = (opened.clone(), closed.clone());
    let reporter = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            report(&o, &c);
        }
    });
    // Until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    stop.store(true, Ordering::SeqCst);
    reporter.abort();
    let _ = flood.await;
    report(&opened, &closed);
}

/// The flood's source address for connection `i` (127.0.0.2–21: one
/// source address has too few ports for 10,000 connections and their
/// TIME_WAITs).
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 20) as u8))
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    socket.connect(to).await.ok()
}

/// `n` token-service connections that said hello, reopened when closed.
async fn idle_flood(
    addr: SocketAddr,
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
                while !stop.load(Ordering::SeqCst) {
                    let Some(stream) = connect_from(source(i), addr).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::SeqCst);
                    idle(stream, &stop).await;
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

/// The slowloris request, sent one byte a second, over and over.
const SLOW_REQUEST: &[u8] =
    b"GET /healthz HTTP/1.1\r\nHost: load\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";

/// `n` HTTP connections each trickling [`SLOW_REQUEST`] one byte a second,
/// reopened when the server closes them. Driven by 20 tasks (one per
/// source address), each waking every 100 ms for a tenth of its sockets:
/// 200 wake-ups a second instead of one timer per connection. At most 20
/// openings per task per tick (4,000/s in all), so the openings, and the
/// server's closings `http.header_read_timeout` later, stay spread out.
async fn slowloris(
    addr: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
) {
    const GROUPS: usize = 20;
    const PHASES: usize = 10;
    let tasks: Vec<_> = (0..GROUPS)
        .map(|g| {
            let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
            let count = n / GROUPS + usize::from(g < n % GROUPS);
            tokio::spawn(async move {
                // (socket, next byte) per slot.
                let mut slots: Vec<Option<(TcpStream, usize)>> = (0..count).map(|_| None).collect();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut phase = 0;
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let mut opening = 20;
                    for slot in slots.iter_mut().skip(phase).step_by(PHASES) {
                        if let Some((stream, next)) = slot {
                            // Closed (or answered, e.g. 408) by the server?
                            let gone = match stream.try_read(&mut buf) {
                                Ok(_) => true,
                                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                            };
                            let byte = [SLOW_REQUEST[*next % SLOW_REQUEST.len()]];
                            let gone = gone
                                || matches!(stream.try_write(&byte), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
                            if gone {
                                closed.fetch_add(1, Ordering::SeqCst);
                                *slot = None;
                            } else {
                                *next += 1;
                            }
                        }
                        if slot.is_none() && opening > 0 {
                            opening -= 1;
                            if let Some(mut stream) = connect_from(source(g), addr).await {
                                if stream.write_all(&SLOW_REQUEST[..1]).await.is_ok() {
                                    opened.fetch_add(1, Ordering::SeqCst);
                                    *slot = Some((stream, 1));
                                }
                            }
                        }
                    }
                    phase = (phase + 1) % PHASES;
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
