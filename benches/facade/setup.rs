//! The benchmark's servers: a Prosody and a jidgate process of its own
//! (a child, so its memory is measured apart from the clients'), and
//! device accounts made over the register API.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jidgate::signing::{SigningKey, canonical_text};
use serde_json::Value;

pub const DOMAIN: &str = "localhost";
const ADMIN_PASSWORD: &str = "admin-password-for-the-benchmark";
const JID_KEY: &str = "5f1d3c2b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f001";
const DEVICE_APP_ID: &str = "lamp-product";
const DEVICE_SECRET: &str = "lamp-product-secret-for-the-benchmark-01";
const PASSWORD: &str = "benchmark-password";

pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

async fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{what} did not open its port");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prosody from `config/prosody.cfg.lua`, and jidgate using it.
pub struct Servers {
    pub prosody: Proc,
    pub prosody_port: u16,
    pub jidgate: Proc,
    pub http_port: u16,
    _dir: tempfile::TempDir,
}

impl Servers {
    pub async fn start() -> Servers {
        let dir = tempfile::Builder::new()
            .prefix("jidgate-bench-facade-")
            .tempdir()
            .unwrap();
        let pdir = dir.path().join("prosody");
        std::fs::create_dir(&pdir).unwrap();
        let prosody_port = free_port();
        let prosody_cmd = |program: &str| {
            let mut c = Command::new(program);
            c.arg("--config")
                .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/prosody.cfg.lua"))
                .env("JIDGATE_PROSODY_DIR", &pdir)
                .env("JIDGATE_PROSODY_PORT", prosody_port.to_string())
                .env("JIDGATE_XMPP_DOMAIN", DOMAIN)
                .env("JIDGATE_PROSODY_LOG_LEVEL", "error");
            c
        };
        let out = prosody_cmd("prosodyctl")
            .args(["register", "admin", DOMAIN, ADMIN_PASSWORD])
            .output()
            .expect("`prosodyctl` is not installed: apt-get install -y prosody");
        assert!(out.status.success(), "prosodyctl register failed");
        let prosody = Proc(
            prosody_cmd("prosody")
                .arg("-F")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start prosody"),
        );
        wait_port(prosody_port, "prosody").await;

        let http_port = free_port();
        let config = dir.path().join("jidgate.toml");
        std::fs::write(
            &config,
            jidgate_toml(prosody_port, http_port, &dir.path().join("j.db")),
        )
        .unwrap();
        // FACADE_BENCH_WRAP="perf record -g -o /tmp/facade.perf --" (or
        // heaptrack) runs jidgate under a profiler; the memory figures are
        // then the profiler's.
        let wrap = std::env::var("FACADE_BENCH_WRAP").unwrap_or_default();
        let mut words: Vec<&str> = wrap.split_whitespace().collect();
        words.push(env!("CARGO_BIN_EXE_jidgate"));
        let jidgate = Proc(
            Command::new(words[0])
                .args(&words[1..])
                .arg("--config")
                .arg(&config)
                .arg("serve")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start jidgate"),
        );
        wait_port(http_port, "jidgate").await;
        let servers = Servers {
            prosody,
            prosody_port,
            jidgate,
            http_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        loop {
            let url = format!("http://127.0.0.1:{http_port}/readyz");
            if let Ok(r) = client.get(url).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "jidgate did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        servers
    }

    /// A connector for plain XMPP clients of the same Prosody.
    pub fn connector(&self) -> jidgate::xmpp::Connector {
        let cfg = jidgate::Config::from_toml(&jidgate_toml(self.prosody_port, 1, Path::new("x")))
            .unwrap();
        jidgate::xmpp::Connector::from_config(&cfg.xmpp).unwrap()
    }
}

fn jidgate_toml(prosody_port: u16, http_port: u16, db: &Path) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:{http_port}\"\nmax_connections = 1000\n\
         [token_service]\nlisten = \"\"\n\
         [xmpp]\ndomain = \"{DOMAIN}\"\nserver = \"127.0.0.1:{prosody_port}\"\nsecurity = \"plaintext\"\n\
         admin_jid = \"admin@{DOMAIN}\"\nadmin_password = \"{ADMIN_PASSWORD}\"\ntimeout = 30\n\
         [secrets]\njid_key = \"{JID_KEY}\"\n\
         [database]\nurl = \"sqlite://{}\"\n\
         [passwords]\nargon2_memory_kib = 256\nargon2_iterations = 1\n\
         [rate_limits]\nregister_per_minute = 10000000\nverify_code_per_minute = 10000000\n\
         failed_login_per_ip_per_minute = 10000000\nfailed_login_per_account_per_minute = 10000000\n\
         [reconcile]\ndrift_interval = 0\n\
         [facade]\nmax_sessions = 50000\nrequests_per_second = 1000000\nmax_unacked = 400\n\
         [[apps]]\napp_id = \"{DEVICE_APP_ID}\"\nsecret = \"{DEVICE_SECRET}\"\nkind = \"device\"\n",
        db.display()
    )
}

/// A device account: its name, access token, JID and JID password.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub token: String,
    pub jid: String,
    pub jid_pwd: String,
}

/// Registers and logs in `names`, `concurrency` at a time.
pub async fn accounts(http_port: u16, names: Vec<String>, concurrency: usize) -> Vec<Account> {
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http_port}");
    futures::stream::iter(names)
        .map(|name| {
            let (client, base) = (client.clone(), base.clone());
            async move { account(&client, &base, name).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

async fn account(client: &reqwest::Client, base: &str, name: String) -> Account {
    let reg = [
        ("user_name", name.as_str()),
        ("password", PASSWORD),
        ("type", "2"),
        ("device_type", "lamp"),
    ];
    let body = call(client, base, "/register", &reg).await;
    assert_eq!(body["result"], 0, "{body}");
    let body = call(client, base, "/login", &reg[..3]).await;
    assert_eq!(body["result"], 0, "{body}");
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    Account {
        token: s(&body["access_token"]),
        jid: s(&body["user_info"]["jid"]),
        jid_pwd: s(&body["user_info"]["jid_pwd"]),
        name,
    }
}

/// A register API call signed with the device's derived key.
async fn call(client: &reqwest::Client, base: &str, path: &str, params: &[(&str, &str)]) -> Value {
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
    let r = client
        .post(format!("{base}{path}"))
        .form(&all)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}
