//! Binding a list of devices against binding one, against a real Prosody.
//!
//! Run: `cargo bench --bench binding` (needs `prosody`; `scripts/test.sh`
//! installs it).
//!
//! 1. Starts a Prosody of its own from `config/prosody.cfg.lua` (a free
//!    port, a fresh data directory), as the integration tests do, and
//!    jidgate in-process on port 0 with a fresh SQLite file.
//! 2. Registers one phone (answering its captcha from the database, as the
//!    tests do) and ten devices, and logs them in, over the register API.
//! 3. `ROUNDS` times, alternating: binds one device with a signed
//!    `/set_user_banding` (fresh bind codes from `/get_bind_code`), and ten
//!    devices in one call;
//!    each binding is undone (`/set_user_unbanding`) before the next round.
//!    Only the `/set_user_banding` calls are timed, end to end.
//! 4. Prints p50 and p90 of both, and the ratio of the p50s (the figure:
//!    binding ten devices should take at most twice as long as one), then
//!    the same for the unbinding calls; and, for each, the CPU time Prosody
//!    and jidgate spent per call (mean, from `/proc/PID/stat`): Prosody
//!    handles every stanza of every handshake on one thread, so its CPU time
//!    per call bounds how fast a list can be bound, however concurrent
//!    jidgate is.
//!
//! Absolute numbers depend on the machine; the ratio is the figure. Only the
//! register API is used after start-up, so the same file runs against
//! earlier versions of jidgate.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jidgate::signing::{SigningKey, canonical_text};
use jidgate::{Config, Options, Service};
use serde_json::Value;

const ROUNDS: usize = 30;
const WARM_UP: usize = 3;
const DEVICES: usize = 10;
const DOMAIN: &str = "localhost";
const ADMIN_PASSWORD: &str = "admin-password-for-the-benchmark";
const JID_KEY: &str = "5f1d3c2b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f001";
const APP_ID: &str = "phone-app";
const APP_SECRET: &str = "phone-app-secret-for-the-benchmark-0123";
const DEVICE_APP_ID: &str = "lamp-product";
const DEVICE_SECRET: &str = "lamp-product-secret-for-the-benchmark-01";
const PHONE: &str = "13800138000";
const PASSWORD: &str = "benchmark-password";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prosody of our own, killed when dropped.
struct Prosody {
    child: Child,
    port: u16,
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
        let dir = tempfile::Builder::new()
            .prefix("jidgate-bench-prosody-")
            .tempdir()
            .unwrap();
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "prosody did not open its port");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Prosody {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(prosody: &Prosody, db_file: &Path) -> Config {
    Config::from_toml(&format!(
        "[xmpp]\ndomain = \"{DOMAIN}\"\nserver = \"127.0.0.1:{}\"\nsecurity = \"plaintext\"\n\
         admin_jid = \"admin@{DOMAIN}\"\nadmin_password = \"{ADMIN_PASSWORD}\"\n\
         [secrets]\njid_key = \"{JID_KEY}\"\n\
         [database]\nurl = \"sqlite://{}\"\n\
         [passwords]\nargon2_memory_kib = 256\nargon2_iterations = 1\n\
         [rate_limits]\nbind_code_per_minute = 100000\nregister_per_minute = 100000\n\
         verify_code_per_minute = 100000\n\
         [reconcile]\ndrift_interval = 0\n[metrics]\nlisten = \"\"\n\
         [[apps]]\napp_id = \"{APP_ID}\"\nsecret = \"{APP_SECRET}\"\nkind = \"app\"\n\
         [[apps]]\napp_id = \"{DEVICE_APP_ID}\"\nsecret = \"{DEVICE_SECRET}\"\nkind = \"device\"\n",
        prosody.port,
        db_file.display()
    ))
    .unwrap()
}

/// The register API, signing as the phone app or, for a device, with the
/// device's own key.
struct Api {
    client: reqwest::Client,
    base: String,
    db_file: PathBuf,
}

impl Api {
    /// A signed call; returns the answer. Devices (`SN-...`) sign with their
    /// derived key.
    async fn call(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let user = params.iter().find(|(k, _)| *k == "user_name").map(|p| p.1);
        let (app_id, key) = match user {
            Some(u) if u.starts_with("SN-") => (
                DEVICE_APP_ID,
                SigningKey::derive_device(DEVICE_SECRET.as_bytes(), u),
            ),
            _ => (APP_ID, SigningKey::from_bytes(APP_SECRET.as_bytes())),
        };
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("app_id".into(), app_id.into()));
        all.push(("ts".into(), jidgate::now().to_string()));
        all.push(("nonce".into(), jidgate::crypto::random_token::<12>()));
        let canonical = canonical_text(path, all.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        all.push(("param_sign".into(), key.sign(canonical.as_bytes())));
        self.client
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A fresh captcha: its id and answer (read from the database, as the
    /// tests do).
    async fn captcha(&self) -> (String, String) {
        let r = self
            .client
            .get(format!("{}/verify_code", self.base))
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-captcha-id"].to_str().unwrap().to_owned();
        let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db_file.display()))
            .await
            .unwrap();
        let answer: String = sqlx::query_scalar("select answer from captcha where id = ?")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;
        (id, answer)
    }

    /// Registers and logs in an account; returns its access token.
    async fn account(&self, name: &str) -> String {
        let device = name.starts_with("SN-");
        let mut params = vec![("user_name", name), ("password", PASSWORD)];
        params.push(("type", if device { "2" } else { "1" }));
        let captcha = if device {
            params.push(("device_type", "lamp"));
            None
        } else {
            Some(self.captcha().await)
        };
        if let Some((id, answer)) = &captcha {
            params.extend([
                ("captcha_id", id.as_str()),
                ("verify_code", answer.as_str()),
            ]);
        }
        let body = self.call("/register", &params).await;
        assert_eq!(body["result"], 0, "{body}");
        params.truncate(3);
        let fresh = if device {
            None
        } else {
            Some(self.captcha().await)
        };
        if let Some((id, answer)) = &fresh {
            params.extend([
                ("captcha_id", id.as_str()),
                ("verify_code", answer.as_str()),
            ]);
        }
        let body = self.call("/login", &params).await;
        assert_eq!(body["result"], 0, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A device's bind code.
    async fn bind_code(&self, device: &str, token: &str) -> String {
        let body = self
            .call(
                "/get_bind_code",
                &[("user_name", device), ("access_token", token)],
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
        body["bind_code"].as_str().unwrap().to_owned()
    }
}

/// CPU time (user and system) a process has used so far, in seconds (at
/// the kernel's tick resolution, 10 ms: per-call figures are means).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// One kind of call: wall times, and CPU seconds spent by Prosody and by
/// jidgate (this process).
#[derive(Default)]
struct Calls {
    wall: Vec<Duration>,
    prosody_cpu: f64,
    jidgate_cpu: f64,
}

impl Calls {
    fn cpu_ms(&self) -> (f64, f64) {
        let n = self.wall.len() as f64;
        (self.prosody_cpu * 1000.0 / n, self.jidgate_cpu * 1000.0 / n)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, one: &mut Calls, many: &mut Calls) {
    one.wall.sort_unstable();
    many.wall.sort_unstable();
    let (p50_one, p50_many) = (percentile(&one.wall, 0.5), percentile(&many.wall, 0.5));
    println!(
        "{what} 1 device: p50 {:.1} ms, p90 {:.1} ms; {DEVICES} devices in one call: p50 {:.1} ms, p90 {:.1} ms; ratio of p50s {:.2}x",
        ms(p50_one),
        ms(percentile(&one.wall, 0.9)),
        ms(p50_many),
        ms(percentile(&many.wall, 0.9)),
        p50_many.as_secs_f64() / p50_one.as_secs_f64()
    );
    let ((p1, j1), (pn, jn)) = (one.cpu_ms(), many.cpu_ms());
    println!(
        "{what} CPU per call: 1 device: Prosody {p1:.1} ms, jidgate {j1:.1} ms; {DEVICES} devices: Prosody {pn:.1} ms, jidgate {jn:.1} ms"
    );
}

#[tokio::main]
async fn main() {
    let prosody = Prosody::start().await;
    let db_dir = tempfile::tempdir().unwrap();
    let db_file = db_dir.path().join("jidgate.db");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = Service::build(
        config(&prosody, &db_file),
        Options {
            http: Some(http),
            token_service: None,
            metrics: None,
            faults: Default::default(),
            no_reconciler: true,
        },
    )
    .await
    .unwrap();
    let app = service.app();
    let base = format!("http://{}", service.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.run_until(async {
        let _ = stopped.await;
    }));
    assert!(
        app.provisioner.wait_ready(Duration::from_secs(15)).await,
        "the XMPP admin session did not come up"
    );

    // reqwest is built without a TLS provider of its own (plain HTTP here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = Api {
        client: reqwest::Client::new(),
        base,
        db_file,
    };
    let token = api.account(PHONE).await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let name = format!("SN-BENCH-{i:02}");
        let device_token = api.account(&name).await;
        devices.push((name, device_token));
    }

    let prosody_pid = prosody.child.id();
    let bind = |n: usize| {
        let (api, token, devices) = (&api, &token, &devices);
        async move {
            let mut names = Vec::new();
            let mut codes = Vec::new();
            for (name, device_token) in &devices[..n] {
                names.push(name.clone());
                codes.push(api.bind_code(name, device_token).await);
            }
            let names = serde_json::to_string(&names).unwrap();
            let codes = serde_json::to_string(&codes).unwrap();
            let params = [
                ("user_name", PHONE),
                ("access_token", token.as_str()),
                ("user_name_ls", names.as_str()),
                ("bind_code_ls", codes.as_str()),
            ];
            let start = Instant::now();
            let cpu = (cpu_seconds(prosody_pid), cpu_seconds(std::process::id()));
            let body = api.call("/set_user_banding", &params).await;
            let bound = (
                start.elapsed(),
                cpu_seconds(prosody_pid) - cpu.0,
                cpu_seconds(std::process::id()) - cpu.1,
            );
            assert_eq!(body["result"], 0, "{body}");
            let params = [
                ("user_name", PHONE),
                ("access_token", token.as_str()),
                ("user_name_ls", names.as_str()),
            ];
            let start = Instant::now();
            let cpu = (cpu_seconds(prosody_pid), cpu_seconds(std::process::id()));
            let body = api.call("/set_user_unbanding", &params).await;
            let unbound = (
                start.elapsed(),
                cpu_seconds(prosody_pid) - cpu.0,
                cpu_seconds(std::process::id()) - cpu.1,
            );
            assert_eq!(body["result"], 0, "{body}");
            (bound, unbound)
        }
    };

    println!("binding against Prosody: {ROUNDS} rounds (after {WARM_UP} to warm up)");
    let (mut bind_one, mut bind_many, mut unbind_one, mut unbind_many) = (
        Calls::default(),
        Calls::default(),
        Calls::default(),
        Calls::default(),
    );
    let record = |calls: &mut Calls, (wall, prosody, jidgate): (Duration, f64, f64)| {
        calls.wall.push(wall);
        calls.prosody_cpu += prosody;
        calls.jidgate_cpu += jidgate;
    };
    for round in 0..WARM_UP + ROUNDS {
        let (b1, u1) = bind(1).await;
        let (bn, un) = bind(DEVICES).await;
        if round >= WARM_UP {
            record(&mut bind_one, b1);
            record(&mut unbind_one, u1);
            record(&mut bind_many, bn);
            record(&mut unbind_many, un);
        }
    }
    report("bind:  ", &mut bind_one, &mut bind_many);
    report("unbind:", &mut unbind_one, &mut unbind_many);

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
