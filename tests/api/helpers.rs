//! Test harness: a real Prosody started from `config/prosody.cfg.lua` on a
//! free port with its own data directory (ejabberd: `crate::ejabberd`; both
//! behind `crate::servers::XmppServer`), and jidgate started in-process on
//! port 0 against it with a fresh SQLite file, or, with
//! `JIDGATE_TEST_DATABASE=postgres`, a fresh database on the tests' own
//! PostgreSQL server (`database_url`).

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jidgate::signing::{SigningKey, canonical_text};
use jidgate::xmpp::{Connector, Session, XmppError};
use jidgate::{Config, FaultHook, Faults, Options, Service};
use serde_json::{Value, json};
use sqlx::AnyPool;
use tempfile::TempDir;
use tokio::sync::oneshot;
use xmpp_parsers::jid::BareJid;

use crate::servers::{AnyServer, XmppServer, xmpp_toml_for};

pub const DOMAIN: &str = "localhost";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const JID_KEY: &str = "5f1d3c2b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f001";
pub const APP_ID: &str = "phone-app";
pub const APP_SECRET: &str = "phone-app-secret-for-tests-0123456789";
pub const DEVICE_APP_ID: &str = "lamp-product";
pub const DEVICE_SECRET: &str = "lamp-product-secret-for-tests-0123456";
pub const SERVICE_APP_ID: &str = "billing";
pub const SERVICE_SECRET: &str = "billing-service-secret-for-tests-0123";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (never skips) when a tool the tests need is missing.
pub fn require_tool(tool: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: {install} (scripts/test.sh installs it)"
    );
}

/// A port nobody listens on, for a server to bind later: below the kernel's
/// ephemeral range (so no port-0 listener of another test, and no outgoing
/// connection, takes it meanwhile, or while its server is killed and
/// resumed), and never the same twice in this test run.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = 12000;
    let mut given = GIVEN.lock().unwrap();
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = if ephemeral_start > low + 1000 {
            let span = u64::from(ephemeral_start - low);
            low + (u64::from_le_bytes(jidgate::crypto::random_bytes::<8>()) % span) as u16
        } else {
            StdListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        if !given.contains(&port) && StdListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port");
}

/// TLS material for a Prosody that requires StartTLS: a CA and a leaf for
/// `localhost` signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        // rcgen's default validity ends in 4096; ejabberd's certificate
        // store cannot set its expiry timers that far and refuses the
        // certificate.
        let validity = |p: &mut CertificateParams| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2099, 12, 31);
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        validity(&mut ca_params);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jidgate test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        validity(&mut leaf_params);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestCa {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// Writes ca.pem, cert.pem, key.pem into `dir`.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let ca = dir.join("ca.pem");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&ca, &self.ca_pem).unwrap();
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (ca, cert, key)
    }
}

struct ProsodyState {
    child: Option<Child>,
}

/// A Prosody process of our own.
#[derive(Clone)]
pub struct Prosody {
    pub port: u16,
    pub dir: Arc<TempDir>,
    pub ca_file: Option<PathBuf>,
    tls: Option<(PathBuf, PathBuf)>,
    state: Arc<Mutex<ProsodyState>>,
}

impl Prosody {
    /// Plaintext on loopback.
    pub async fn start() -> Prosody {
        Self::start_with(false).await
    }

    /// StartTLS required, certificate from a fresh test CA.
    pub async fn start_tls() -> Prosody {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Prosody {
        require_tool("prosody", "apt-get install -y prosody");
        require_tool("prosodyctl", "apt-get install -y prosody");
        let dir = tempfile::Builder::new()
            .prefix("jidgate-prosody-")
            .tempdir()
            .unwrap();
        let (ca_file, tls) = if tls {
            let (ca, cert, key) = TestCa::new().write(dir.path());
            (Some(ca), Some((cert, key)))
        } else {
            (None, None)
        };
        let prosody = Prosody {
            port: free_port(),
            dir: Arc::new(dir),
            ca_file,
            tls,
            state: Arc::new(Mutex::new(ProsodyState { child: None })),
        };
        let out = prosody
            .command("prosodyctl")
            .args(["register", "admin", DOMAIN, ADMIN_PASSWORD])
            .output()
            .expect("run prosodyctl");
        assert!(
            out.status.success(),
            "prosodyctl register failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        prosody.resume().await;
        prosody
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.arg("--config")
            .arg(repo().join("config/prosody.cfg.lua"))
            .env("JIDGATE_PROSODY_DIR", self.dir.path())
            .env("JIDGATE_PROSODY_PORT", self.port.to_string())
            .env("JIDGATE_XMPP_DOMAIN", DOMAIN)
            .env("JIDGATE_PROSODY_LOG_LEVEL", "error");
        if let Some((cert, key)) = &self.tls {
            c.env("JIDGATE_PROSODY_CERT", cert)
                .env("JIDGATE_PROSODY_KEY", key);
        }
        c
    }

    /// Starts (again) and waits for the c2s port.
    pub async fn resume(&self) {
        let child = self
            .command("prosody")
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prosody");
        self.state.lock().unwrap().child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "prosody did not open its port");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process (SIGKILL: a crash, nothing flushed politely) and
    /// waits until the port is closed.
    pub fn kill(&self) {
        let child = self.state.lock().unwrap().child.take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The account files Prosody has (localparts), read from its data dir.
    pub fn accounts(&self) -> Vec<String> {
        let dir = self.dir.path().join(DOMAIN).join("accounts");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_suffix(".dat").map(|s| s.replace("%2e", "."))
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[allow(dead_code)] // the tests that use it run on each server
    pub fn has_account(&self, localpart: &str) -> bool {
        self.accounts().iter().any(|a| a == localpart)
    }

    /// Connection settings for a client of this Prosody.
    pub fn connector(&self) -> Connector {
        let cfg = Config::from_toml(&self.xmpp_toml()).unwrap();
        Connector::from_config(&cfg.xmpp).unwrap()
    }

    /// The `[xmpp]` and `[secrets]` tables for a jidgate using this Prosody.
    pub fn xmpp_toml(&self) -> String {
        xmpp_toml_for(self.port, self.ca_file.as_deref())
    }

    /// Logs in as a user, as any XMPP client would.
    pub async fn login(&self, jid: &str, password: &str) -> Result<Session, XmppError> {
        let jid = BareJid::new(jid).unwrap();
        self.connector().login(&jid, password, "test").await
    }
}

impl Drop for ProsodyState {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a test wants jidgate set up.
#[derive(Default)]
pub struct Settings {
    /// Extra TOML merged over the test defaults.
    pub toml: String,
    pub faults: Option<Arc<dyn FaultHook>>,
    /// Reuse this database file (restart scenarios).
    pub db_file: Option<PathBuf>,
    /// Start the background reconciler (off by default: tests drive it).
    pub reconciler: bool,
}

impl Settings {
    /// The test defaults with `toml` merged over them.
    pub fn toml(toml: impl Into<String>) -> Settings {
        Settings {
            toml: toml.into(),
            ..Default::default()
        }
    }
}

/// A running jidgate.
pub struct TestApp {
    pub addr: SocketAddr,
    pub token_addr: SocketAddr,
    pub app: jidgate::App,
    /// The database, backend-neutral (`$1` placeholders).
    pub db: AnyPool,
    pub db_file: PathBuf,
    /// The XMPP server this jidgate uses.
    pub xmpp: XmppServer,
    pub client: reqwest::Client,
    pub scheme: &'static str,
    _dir: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Test configuration: fast Argon2, generous rate limits, our apps.
pub fn base_toml(server: &impl AnyServer, db_file: &Path) -> String {
    format!(
        "{}\n[database]\nurl = \"{}\"\n\
         [passwords]\nargon2_memory_kib = 256\nargon2_iterations = 1\n\
         [rate_limits]\nverify_code_per_minute = 1000\nregister_per_minute = 1000\n\
         failed_login_per_ip_per_minute = 1000\nfailed_login_per_account_per_minute = 1000\n\
         bind_code_per_minute = 1000\nfailed_bind_code_per_ip_per_minute = 1000\n\
         [reconcile]\ngrace = 0\ninterval = 1\ndrift_interval = 0\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\
         [[apps]]\napp_id = \"{APP_ID}\"\nsecret = \"{APP_SECRET}\"\nkind = \"app\"\n\
         [[apps]]\napp_id = \"{DEVICE_APP_ID}\"\nsecret = \"{DEVICE_SECRET}\"\nkind = \"device\"\n\
         [[apps]]\napp_id = \"{SERVICE_APP_ID}\"\nsecret = \"{SERVICE_SECRET}\"\nkind = \"service\"\n",
        server.server().xmpp_toml(),
        database_url(db_file)
    )
}

/// The database of a test whose database file is `db_file`: that file
/// (SQLite), or with `JIDGATE_TEST_DATABASE=postgres` a PostgreSQL database
/// named after it, created on first use (a restart with the same file finds
/// the same rows).
pub fn database_url(db_file: &Path) -> String {
    use std::hash::{Hash, Hasher};
    if crate::postgres::suite_on_postgres() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        db_file.hash(&mut h);
        crate::postgres::database_named(&format!("f{:016x}", h.finish()))
    } else {
        format!("sqlite://{}", db_file.display())
    }
}

/// A small backend-neutral pool on a test's database (see [`database_url`]).
pub async fn connect_db(db_file: &Path) -> AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&database_url(db_file))
        .await
        .unwrap()
}

struct FnHook<F>(F);

impl<F> FaultHook for FnHook<F>
where
    F: Fn(&'static str) -> BoxFuture<'static, Result<(), String>> + Send + Sync,
{
    fn hit(&self, point: &'static str) -> BoxFuture<'static, Result<(), String>> {
        (self.0)(point)
    }
}

/// A fault hook from a closure.
pub fn hook<F>(f: F) -> Arc<dyn FaultHook>
where
    F: Fn(&'static str) -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
{
    Arc::new(FnHook(f))
}

/// A hook that kills the XMPP server the first time `at` is reached (and
/// lets the request go on); the flag tells whether it fired.
pub fn kill_server_once_at(
    server: &impl AnyServer,
    at: &'static str,
) -> (Arc<dyn FaultHook>, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fired = Arc::new(AtomicBool::new(false));
    let (p, f) = (server.server(), fired.clone());
    let faults = hook(move |point| {
        if point == at && !f.swap(true, Ordering::SeqCst) {
            p.kill();
        }
        Box::pin(async { Ok(()) })
    });
    (faults, fired)
}

impl TestApp {
    pub async fn spawn(server: &impl AnyServer) -> TestApp {
        Self::spawn_with(server, Settings::default()).await
    }

    pub async fn spawn_with(server: &impl AnyServer, settings: Settings) -> TestApp {
        let xmpp = server.server();
        let (dir, db_file) = match settings.db_file {
            Some(f) => (None, f),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("jidgate-db-")
                    .tempdir()
                    .unwrap();
                let f = dir.path().join("jidgate.db");
                (Some(dir), f)
            }
        };
        let base = base_toml(&xmpp, &db_file);
        let config = Config::from_toml_layers(&[&base, &settings.toml])
            .unwrap_or_else(|e| panic!("{e}\n{base}\n{}", settings.toml));
        let scheme = if config.tls.enabled() {
            "https"
        } else {
            "http"
        };
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tokens = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = Service::build(
            config,
            Options {
                http: Some(http),
                token_service: Some(tokens),
                metrics: None,
                faults: settings.faults.map(Faults::with).unwrap_or_default(),
                no_reconciler: !settings.reconciler,
            },
        )
        .await
        .unwrap();
        let addr = service.http_addr();
        let token_addr = service.token_service_addr().unwrap();
        let app = service.app();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run_until(async move {
            let _ = stopped.await;
        }));
        let db = connect_db(&db_file).await;
        let client = test_client(xmpp.ca_file());
        let test_app = TestApp {
            addr,
            token_addr,
            app,
            db,
            db_file,
            xmpp,
            client,
            scheme,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        };
        test_app.wait_ready().await;
        test_app
    }

    /// Waits for `/readyz` (database and XMPP admin session).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "jidgate did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the service and waits for it (the database file stays).
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.db.close().await;
        self._dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Signs `params` for `app_id` and the endpoint `path` (device products
    /// derive the key from `user_name`), adding `app_id`, `ts`, `nonce` and
    /// `param_sign`.
    pub fn sign(
        app_id: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> (Vec<(String, String)>, SigningKey) {
        Self::sign_at(
            app_id,
            path,
            params,
            jidgate::now(),
            &jidgate::crypto::random_token::<12>(),
        )
    }

    /// [`TestApp::sign`] with a chosen `ts` and `nonce`.
    pub fn sign_at(
        app_id: &str,
        path: &str,
        params: &[(&str, &str)],
        ts: i64,
        nonce: &str,
    ) -> (Vec<(String, String)>, SigningKey) {
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("app_id".into(), app_id.into()));
        all.push(("ts".into(), ts.to_string()));
        all.push(("nonce".into(), nonce.into()));
        let key = key_for(app_id, params);
        let signature = sign_pairs(&key, path, &all);
        all.push(("param_sign".into(), signature));
        (all, key)
    }

    /// A signed GET; checks the answer's `sign` and nonce echo and returns
    /// the answer.
    pub async fn call(&self, app_id: &str, path: &str, params: &[(&str, &str)]) -> Value {
        let (query, key) = Self::sign(app_id, path, params);
        let nonce = nonce_of(&query);
        self.answer_to(self.client.get(self.url(path)).query(&query), &key, &nonce)
            .await
    }

    /// A signed POST with a form body.
    pub async fn call_form(&self, app_id: &str, path: &str, params: &[(&str, &str)]) -> Value {
        let (form, key) = Self::sign(app_id, path, params);
        let nonce = nonce_of(&form);
        self.answer_to(self.client.post(self.url(path)).form(&form), &key, &nonce)
            .await
    }

    /// A signed POST with a JSON body.
    pub async fn call_json(&self, app_id: &str, path: &str, params: &[(&str, &str)]) -> Value {
        let (pairs, key) = Self::sign(app_id, path, params);
        let nonce = nonce_of(&pairs);
        let object: serde_json::Map<String, Value> = pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        self.answer_to(self.client.post(self.url(path)).json(&object), &key, &nonce)
            .await
    }

    /// Sends a request, checks the answer's `sign` with `key`, returns it.
    pub async fn answer(&self, request: reqwest::RequestBuilder, key: &SigningKey) -> Value {
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        assert_signed(&body, key);
        body
    }

    /// [`TestApp::answer`], also checking that a signed answer echoes the
    /// request's `nonce`.
    pub async fn answer_to(
        &self,
        request: reqwest::RequestBuilder,
        key: &SigningKey,
        nonce: &str,
    ) -> Value {
        let body = self.answer(request, key).await;
        assert_echoes(&body, nonce);
        body
    }

    /// A raw GET of already-built parameters (for bad-input tests).
    pub async fn raw_get(&self, path: &str, query: &[(String, String)]) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Fetches a captcha: (id, answer read from the database, PNG).
    pub async fn captcha(&self) -> (String, String, Vec<u8>) {
        let r = self
            .client
            .get(self.url("/verify_code"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["x-captcha-id"].to_str().unwrap().to_owned();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.starts_with(&format!("captcha_id={id};")), "{cookie}");
        let png = r.bytes().await.unwrap().to_vec();
        (id.clone(), self.captcha_answer(&id).await, png)
    }

    /// The answer of a captcha, read from the database (as an attacker with
    /// the database could; no service hook exposes it).
    pub async fn captcha_answer(&self, id: &str) -> String {
        sqlx::query_scalar("select answer from captcha where id = $1")
            .bind(id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Registers a device; asserts success.
    pub async fn register_device(&self, serial: &str, password: &str, des: &str) {
        let body = self.try_register_device(serial, password, des).await;
        assert_eq!(body["result"], 0, "{body}");
    }

    /// Registers a device; returns the answer, whatever it is.
    pub async fn try_register_device(&self, serial: &str, password: &str, des: &str) -> Value {
        self.call(
            DEVICE_APP_ID,
            "/register",
            &[
                ("user_name", serial),
                ("password", password),
                ("type", "2"),
                ("device_type", "lamp"),
                ("des", des),
            ],
        )
        .await
    }

    /// Cancels a device; returns the answer.
    pub async fn cancel_device(&self, serial: &str, password: &str) -> Value {
        self.call(
            DEVICE_APP_ID,
            "/cancel",
            &[("user_name", serial), ("password", password), ("type", "2")],
        )
        .await
    }

    /// Registers a phone (solving a captcha); asserts success.
    pub async fn register_phone(&self, phone: &str, password: &str, des: &str) {
        let (id, answer, _) = self.captcha().await;
        let body = self
            .call(
                APP_ID,
                "/register",
                &[
                    ("user_name", phone),
                    ("password", password),
                    ("type", "1"),
                    ("des", des),
                    ("verify_code", &answer),
                    ("captcha_id", &id),
                ],
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
    }

    /// Logs a device in; returns the answer.
    pub async fn login_device(&self, serial: &str, password: &str) -> Value {
        self.call(
            DEVICE_APP_ID,
            "/login",
            &[("user_name", serial), ("password", password), ("type", "2")],
        )
        .await
    }

    /// Logs a phone in (solving a captcha); returns the answer.
    pub async fn login_phone(&self, phone: &str, password: &str) -> Value {
        let (id, answer, _) = self.captcha().await;
        self.call(
            APP_ID,
            "/login",
            &[
                ("user_name", phone),
                ("password", password),
                ("type", "1"),
                ("verify_code", &answer),
                ("captcha_id", &id),
            ],
        )
        .await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    /// Accounts in the database: (user_name, state, jid_local).
    pub async fn account_rows(&self) -> Vec<(String, String, String)> {
        sqlx::query_as("select user_name, state, jid_local from account order by id")
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    /// The whole observable state: database accounts and bindings, and the
    /// accounts on the XMPP server.
    pub async fn snapshot(&self) -> Value {
        let bindings: Vec<(i64, i64, String)> =
            sqlx::query_as("select owner_id, device_id, state from binding order by id")
                .fetch_all(&self.db)
                .await
                .unwrap();
        json!({
            "accounts": self.account_rows().await,
            "bindings": bindings,
            "tokens": self.count("select count(*) from token").await,
            "xmpp": self.xmpp.accounts(),
        })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The key a test request is signed with.
pub fn key_for(app_id: &str, params: &[(&str, &str)]) -> SigningKey {
    match app_id {
        DEVICE_APP_ID => {
            let user = params
                .iter()
                .find(|(k, _)| *k == "user_name")
                .map(|(_, v)| *v)
                .unwrap_or("");
            SigningKey::derive_device(DEVICE_SECRET.as_bytes(), user)
        }
        APP_ID => SigningKey::from_bytes(APP_SECRET.as_bytes()),
        SERVICE_APP_ID => SigningKey::from_bytes(SERVICE_SECRET.as_bytes()),
        _ => SigningKey::from_bytes(b"unknown".to_vec()),
    }
}

/// `param_sign` of `pairs` for the endpoint `path`, with `key`.
pub fn sign_pairs(key: &SigningKey, path: &str, pairs: &[(String, String)]) -> String {
    let canonical = canonical_text(path, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    key.sign(canonical.as_bytes())
}

/// The `nonce` among signed parameters.
pub fn nonce_of(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.clone())
        .expect("signed parameters carry a nonce")
}

/// Asserts an answer's `sign` is right for `key` (or empty when the
/// request could not be attributed to a key), and that a signed answer
/// carries a `nonce`.
pub fn assert_signed(body: &Value, key: &SigningKey) {
    let sign = body["sign"].as_str().expect("every answer has sign");
    if sign.is_empty() {
        let code = body["result"].as_i64().unwrap();
        assert!(
            [2, 6, 10, 12].contains(&code),
            "unsigned answer must be a signature failure: {body}"
        );
        return;
    }
    let map = body.as_object().unwrap();
    assert!(
        body["nonce"].is_string(),
        "a signed answer echoes the request's nonce: {body}"
    );
    assert_eq!(sign, key.sign_response(map), "answer sign mismatch: {body}");
}

/// Asserts that a signed answer echoes `nonce` (so its `sign` covers it).
pub fn assert_echoes(body: &Value, nonce: &str) {
    if body["sign"].as_str().is_some_and(|s| !s.is_empty()) {
        assert_eq!(
            body["nonce"], nonce,
            "a signed answer echoes the nonce: {body}"
        );
    }
}

/// An HTTP client trusting the test CA (if any).
pub fn test_client(ca: Option<&Path>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in rustls_pemfile::certs(&mut std::fs::read(ca).unwrap().as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits until `check` is true (polling), or fails with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
