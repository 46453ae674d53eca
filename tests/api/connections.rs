//! Connection exhaustion and client addresses (issue 6, points 2 and 5):
//! header and handshake deadlines, connection caps, the token service's
//! hello deadline, idle timer and in-flight caps, the open-files limit, and
//! X-Forwarded-For behind trusted proxies only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings, merge_toml};
use crate::token_service::Conn;

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn slowloris_http_connections_cannot_exhaust_the_open_files_limit() {
    // The scenario with a small open-files limit: more connections
    // with unfinished headers than the process has descriptors for. Without
    // a header timeout and a connection cap, the process runs out of
    // descriptors and never answers a normal client again.
    let prosody = Prosody::start().await;
    let nofile = 96;
    let p = LimitedProcess::spawn(
        &prosody,
        "[http]\nmax_connections = 16\nheader_read_timeout = 1\n\
         [token_service]\nmax_connections = 4\n",
        (nofile, nofile),
    )
    .await;
    let base = p.open_files();
    assert!(
        base + 16 + 4 + 10 < nofile as usize,
        "the process already has {base} files open: raise the test's limit"
    );

    // Arrange: more unfinished requests than the process could ever hold,
    // some trickling a header byte now and then, some an HTTP/2 preface.
    let flood = nofile as usize - base + 20;
    let mut held = Vec::new();
    for i in 0..flood {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        let start: &[u8] = if i % 5 == 0 {
            b"PRI * HTTP/2.0\r\n"
        } else {
            b"GET /healthz HTTP/1.1\r\nHost: a\r\n"
        };
        s.write_all(start).await.unwrap();
        held.push(s);
    }
    let trickle = {
        let mut few: Vec<TcpStream> = held.drain(..5).collect();
        tokio::spawn(async move {
            for _ in 0..40 {
                for s in &mut few {
                    let _ = s.write_all(b"X").await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    // Act: a normal client, while the flood still holds its connections.
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(25))
        .build()
        .unwrap();
    let r = client.get(p.url("/healthz")).send().await;

    // Assert: served once the header timeout freed the flood's slots.
    let r = r.unwrap_or_else(|e| {
        panic!(
            "a normal client was not served: {e}; log:\n{}",
            p.log_tail()
        )
    });
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(20));
    // Every held connection was closed by the server.
    for s in &mut held {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // an error answer (408/400) first is fine
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a connection with unfinished headers was held"
        );
    }
    trickle.abort();
    assert!(p.open_files() < nofile as usize);
}

#[tokio::test]
async fn an_unfinished_tls_handshake_is_closed() {
    let prosody = Prosody::start_tls().await;
    let dir = prosody.dir.path();
    let p = TestApp::spawn_with(
        &prosody,
        Settings::toml(format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n\
                 [http]\nheader_read_timeout = 1\ntls_handshake_timeout = 1\n\
                 [token_service]\nhello_timeout = 1\n",
            dir.join("cert.pem").display().to_string(),
            dir.join("key.pem").display().to_string()
        )),
    )
    .await;
    // A TLS handshake never started, on both listeners.
    for addr in [p.addr, p.token_addr] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_closed_within(&mut s, Duration::from_secs(4)).await;
    }
    // A TLS handshake begun and left unfinished (half a ClientHello).
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    assert_closed_within(&mut s, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn an_unfinished_http2_preface_and_an_idle_connection_are_closed() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[http]\nheader_read_timeout = 1\n"),
    )
    .await;
    // Protocol detection waits for the HTTP/2 preface: it has a deadline too.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert_closed_within(&mut s, Duration::from_secs(4)).await;
    // Nothing sent at all.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    assert_closed_within(&mut s, Duration::from_secs(4)).await;
    // An HTTP/2 connection (prior knowledge) that opens no stream: a GOAWAY,
    // then the end.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let after = assert_closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(
        after >= Duration::from_millis(700),
        "closed at once: {after:?}"
    );
    // An idle keep-alive connection after a complete request.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_closed_within(&mut s, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn http2_connections_advertise_the_stream_limit_and_are_served() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[http]\nhttp2_max_concurrent_streams = 2\n"),
    )
    .await;
    // The server's first frame: SETTINGS with MAX_CONCURRENT_STREAMS (3) = 2.
    let mut raw = TcpStream::connect(p.addr).await.unwrap();
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut head = [0u8; 9];
    raw.read_exact(&mut head).await.unwrap();
    assert_eq!(head[3], 4, "a SETTINGS frame first");
    let mut payload = vec![0u8; usize::from(head[1]) << 8 | usize::from(head[2])];
    raw.read_exact(&mut payload).await.unwrap();
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(settings.contains(&(3, 2)), "{settings:?}");

    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let get = |mut sender: hyper::client::conn::http2::SendRequest<axum::body::Body>| async move {
        sender.ready().await.unwrap();
        let request = axum::http::Request::get("http://a/healthz")
            .body(axum::body::Body::empty())
            .unwrap();
        sender.send_request(request).await.map(|r| r.status())
    };
    // The first answer brings the server's settings (its stream limit).
    assert_eq!(get(sender.clone()).await.unwrap(), 200);
    // Then more requests at once than the limit: the client takes turns.
    let answers: Vec<_> = (0..6).map(|_| tokio::spawn(get(sender.clone()))).collect();
    for answer in answers {
        assert_eq!(answer.await.unwrap().unwrap(), 200);
    }
}

// ------------------------------------------------------- token service

#[tokio::test]
async fn a_token_service_connection_without_a_hello_is_closed_at_the_hello_deadline() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[token_service]\nhello_timeout = 1\nidle_timeout = 60\n"),
    )
    .await;
    // One byte every 300 ms, never a line.
    let mut trickler = TcpStream::connect(p.token_addr).await.unwrap();
    // Complete lines, but never a good hello.
    let mut chatter = LineConn::open(p.token_addr).await;
    let started = Instant::now();
    let mut closed = (None, None);
    while started.elapsed() < Duration::from_secs(5) && (closed.0.is_none() || closed.1.is_none()) {
        if closed.0.is_none() && trickler.write_all(b"{").await.is_err() {
            closed.0 = Some(started.elapsed());
        }
        if closed.1.is_none() {
            let r = chatter
                .ask_or_closed(json!({"seq": 1, "cmd": "ping"}))
                .await;
            match r {
                Some(r) => assert_eq!(r["result"], 100, "{r}"),
                None => closed.1 = Some(started.elapsed()),
            }
        }
        if closed.0.is_none() && peer_closed(&mut trickler).await {
            closed.0 = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (what, when) in [("trickling", closed.0), ("chatty", closed.1)] {
        let when = when.unwrap_or_else(|| panic!("the {what} connection without hello was held"));
        assert!(
            when >= Duration::from_millis(700),
            "{what}: closed early {when:?}"
        );
    }
}

#[tokio::test]
async fn bytes_trickled_without_a_newline_do_not_keep_a_connection_open() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[token_service]\nidle_timeout = 1\n"),
    )
    .await;
    let mut c = LineConn::open(p.token_addr).await;
    let r = c.ask(Conn::hello(SERVICE_APP_ID, 0)).await;
    assert_eq!(r["result"], 0, "{r}");
    // Complete requests keep it open past the idle timeout.
    for i in 1..=4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(c.ask(json!({"seq": i, "cmd": "ping"})).await["result"], 0);
    }
    // A byte at a time, never a newline: closed after about the idle time.
    let started = Instant::now();
    let mut closed = None;
    while started.elapsed() < Duration::from_secs(6) {
        if c.wr.write_all(b" ").await.is_err() || c.closed_now().await {
            closed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = closed.expect("a connection trickling bytes without a newline was held");
    assert!(
        closed >= Duration::from_millis(700),
        "closed early: {closed:?}"
    );
}

#[tokio::test]
async fn a_token_service_connection_over_the_cap_gets_a_busy_line() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[token_service]\nmax_connections = 2\n"),
    )
    .await;
    let mut a = LineConn::open(p.token_addr).await;
    assert_eq!(a.ask(Conn::hello(SERVICE_APP_ID, 0)).await["result"], 0);
    let mut b = LineConn::open(p.token_addr).await;
    assert_eq!(b.ask(json!({"seq": 1, "cmd": "ping"})).await["result"], 100);

    // The third: one line with code 13, then the end.
    let mut c = LineConn::open(p.token_addr).await;
    let busy = c.recv_or_closed(Duration::from_secs(3)).await;
    let busy = busy.expect("a busy line for the connection over the cap");
    assert_eq!(busy["result"], 13, "{busy}");
    assert_eq!(busy["seq"], Value::Null);
    assert!(busy["error"].as_str().unwrap().contains("busy"), "{busy}");
    assert!(c.recv_or_closed(Duration::from_secs(3)).await.is_none());

    // The others are unharmed; a freed slot takes a new connection.
    assert_eq!(a.ask(json!({"seq": 2, "cmd": "ping"})).await["result"], 0);
    drop(b);
    let mut d = None;
    for _ in 0..50 {
        let mut c = LineConn::open(p.token_addr).await;
        if let Some(r) = c.ask_or_closed(Conn::hello(SERVICE_APP_ID, 3)).await
            && r["result"] == 0
        {
            d = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut d = d.expect("a connection once a slot is free");
    assert_eq!(d.ask(json!({"seq": 4, "cmd": "ping"})).await["result"], 0);
}

/// A verification that the database answers (well-formed, unknown).
fn db_request(seq: usize) -> String {
    format!(
        "{}\n",
        json!({"seq": seq, "cmd": "verify_access_token", "access_token": format!("jgt_{:043}", seq)})
    )
}

fn ping(seq: usize) -> String {
    format!("{}\n", json!({"seq": seq, "cmd": "ping"}))
}

#[tokio::test]
async fn pipelining_past_the_in_flight_cap_answers_every_request() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[token_service]\nmax_in_flight = 1\n"),
    )
    .await;
    let mut c = LineConn::open(p.token_addr).await;
    assert_eq!(c.ask(Conn::hello(SERVICE_APP_ID, 0)).await["result"], 0);

    // Database look-ups and pings, in one write. With one look-up in flight
    // at most, the connection handles nothing more when it meets the next
    // look-up until the one in flight is answered.
    let n = 400;
    let batch: String = (1..=n)
        .map(|i| if i % 2 == 1 { db_request(i) } else { ping(i) })
        .collect();
    c.wr.write_all(batch.as_bytes()).await.unwrap();
    let mut position = vec![usize::MAX; n + 1];
    for at in 0..n {
        let r = c.recv().await;
        let seq = r["seq"].as_u64().unwrap() as usize;
        let expected = if seq % 2 == 1 { 4 } else { 0 };
        assert_eq!(r["result"], expected, "{r}");
        assert_eq!(position[seq], usize::MAX, "answered twice: {seq}");
        position[seq] = at;
    }
    // Look-up 2j+1 starts only once 2j-1 is answered, and the ping after
    // it is read only then: it cannot overtake look-up 2j-1.
    for j in 1..n / 2 {
        assert!(
            position[2 * j + 2] > position[2 * j - 1],
            "ping {} overtook look-up {}",
            2 * j + 2,
            2 * j - 1
        );
    }
}

#[tokio::test]
async fn database_tasks_are_capped_across_connections() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[token_service]\nmax_db_tasks = 1\nmax_in_flight = 64\n"),
    )
    .await;
    let n = 200;
    let batch: String = (0..n)
        .map(|i| if i % 2 == 0 { db_request(i) } else { ping(i) })
        .collect();
    let mut conns = Vec::new();
    for k in 0..2 {
        let mut c = LineConn::open(p.token_addr).await;
        assert_eq!(c.ask(Conn::hello(SERVICE_APP_ID, k)).await["result"], 0);
        conns.push(c);
    }
    for c in &mut conns {
        c.wr.write_all(batch.as_bytes()).await.unwrap();
    }
    for c in &mut conns {
        let mut position = vec![usize::MAX; n];
        for at in 0..n {
            let r = c.recv().await;
            let seq = r["seq"].as_u64().unwrap() as usize;
            assert_eq!(position[seq], usize::MAX, "answered twice: {seq}");
            position[seq] = at;
        }
        // One database task at a time in the whole service: the look-up
        // 2j waits for 2j-2 to finish, and the ping after it waits too.
        for j in 1..n / 2 {
            assert!(
                position[2 * j + 1] > position[2 * j - 2],
                "ping {} overtook look-up {}",
                2 * j + 1,
                2 * j - 2
            );
        }
    }
}

// ------------------------------------------------------ open files

#[tokio::test]
async fn the_open_files_limit_is_raised_to_the_hard_limit_at_start_up() {
    let prosody = Prosody::start().await;
    let p = LimitedProcess::spawn(&prosody, "", (256, 4096)).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
    let log = p.log_tail();
    assert!(
        log.contains("open files limit") && log.contains("4096"),
        "{log}"
    );
}

// ------------------------------------------------- client addresses

async fn captcha_from(app: &TestApp, forwarded_for: &str) -> u16 {
    app.client
        .get(app.url("/verify_code"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_forged_x_forwarded_for_does_not_bypass_the_per_ip_captcha_limit() {
    let prosody = Prosody::start().await;
    // The test client plays the reverse proxy on 127.0.0.1, which appends
    // the address it saw (203.0.113.9) to what the client sent.
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml(
            "[http]\nclient_ip_header = \"x-forwarded-for\"\n\
                   trusted_proxies = [\"127.0.0.1/32\", \"10.1.0.0/16\"]\n\
                   [rate_limits]\nverify_code_per_minute = 3\n",
        ),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let forged = format!("198.51.100.{i}, 203.0.113.9, 10.1.2.3");
        statuses.push(captcha_from(&app, &forged).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    // Another client behind the same proxies has its own budget.
    assert_eq!(captcha_from(&app, "203.0.113.10, 10.1.2.3").await, 200);
    app.stop().await;

    // From a peer that is not a trusted proxy the header is ignored: the
    // peer's own address counts, however the header varies.
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml(
            "[http]\nclient_ip_header = \"x-forwarded-for\"\n\
                   trusted_proxies = [\"10.0.0.0/8\"]\n\
                   [rate_limits]\nverify_code_per_minute = 3\n",
        ),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(captcha_from(&app, &format!("203.0.113.{i}")).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

// ------------------------------------------------------------ helpers

/// Waits for the server to close `s`; returns how long that took.
async fn assert_closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection was still open after {:?}",
        started.elapsed()
    );
    started.elapsed()
}

/// Whether the server closed `s` (a read that does not wait).
async fn peer_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_millis(10), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A token service connection that tells a closed connection apart.
struct LineConn {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    wr: OwnedWriteHalf,
}

impl LineConn {
    async fn open(addr: SocketAddr) -> LineConn {
        let (rd, wr) = TcpStream::connect(addr).await.unwrap().into_split();
        LineConn {
            lines: BufReader::new(rd).lines(),
            wr,
        }
    }

    async fn recv(&mut self) -> Value {
        self.recv_or_closed(Duration::from_secs(10))
            .await
            .expect("connection open")
    }

    /// The next line, or `None` if the server closed the connection.
    async fn recv_or_closed(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .expect("a reply or the end in time");
        match line {
            Ok(Some(line)) => {
                Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
            }
            Ok(None) | Err(_) => None,
        }
    }

    async fn ask(&mut self, request: Value) -> Value {
        self.ask_or_closed(request).await.expect("connection open")
    }

    async fn ask_or_closed(&mut self, request: Value) -> Option<Value> {
        if self
            .wr
            .write_all(format!("{request}\n").as_bytes())
            .await
            .is_err()
        {
            return None;
        }
        self.recv_or_closed(Duration::from_secs(10)).await
    }

    /// Whether the server has closed the connection (waits 10 ms at most).
    async fn closed_now(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_millis(10), self.lines.next_line()).await,
            Ok(Ok(None)) | Ok(Err(_))
        )
    }
}

/// The jidgate binary started under `prlimit` with a given open-files
/// limit (soft, hard): what [`JidgateProcess`] cannot set.
struct LimitedProcess {
    addr: SocketAddr,
    log_file: PathBuf,
    child: Child,
    _dir: TempDir,
}

impl LimitedProcess {
    async fn spawn(prosody: &Prosody, toml: &str, (soft, hard): (u64, u64)) -> LimitedProcess {
        require_tool("prlimit", "apt-get install -y util-linux");
        let dir = tempfile::Builder::new()
            .prefix("jidgate-nofile-")
            .tempdir()
            .unwrap();
        let db_file = dir.path().join("jidgate.db");
        let (http_port, token_port) = (free_port(), free_port());
        let ports = format!(
            "[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [token_service]\nlisten = \"127.0.0.1:{token_port}\"\n"
        );
        let config_file = dir.path().join("jidgate.toml");
        std::fs::write(
            &config_file,
            merge_toml(&[&base_toml(prosody, &db_file), &ports, toml]),
        )
        .unwrap();
        let log_file = dir.path().join("jidgate.log");
        let log = std::fs::File::create(&log_file).unwrap();
        let child = Command::new("prlimit")
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_jidgate"))
            .arg("--config")
            .arg(&config_file)
            .arg("serve")
            .env("RUST_LOG", "info")
            .env_remove("JIDGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("start jidgate under prlimit");
        let p = LimitedProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], http_port)),
            log_file,
            child,
            _dir: dir,
        };
        // No connection pool: the readiness probe must not hold a slot.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(p.url("/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "jidgate did not become ready; its log:\n{}",
                p.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Descriptors the process has open now.
    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}
