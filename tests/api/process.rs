//! The real `jidgate` binary as a child process, for tests that must see
//! what only a process shows: its log output, its file descriptors, its
//! behaviour under connection floods, SIGKILL and restart.
//!
//! The binary is the one cargo built for this test run
//! (`CARGO_BIN_EXE_jidgate`); its configuration is the test configuration
//! of [`base_toml`] written to a file, with fixed free ports (a process
//! cannot hand its port-0 listeners back to the test).

#![allow(dead_code)] // a harness: each test uses part of it

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::servers::AnyServer;

/// A running `jidgate serve` process.
pub struct JidgateProcess {
    pub addr: SocketAddr,
    pub token_addr: SocketAddr,
    /// The metrics listener (`metrics.listen`).
    pub metrics_addr: SocketAddr,
    pub config_file: PathBuf,
    pub db_file: PathBuf,
    /// Everything the process wrote to stdout and stderr (the log).
    pub log_file: PathBuf,
    pub client: reqwest::Client,
    child: Option<Child>,
    rust_log: String,
    env: Vec<(String, String)>,
    _dir: TempDir,
}

/// How to start the process.
#[derive(Default)]
pub struct ProcessSettings {
    /// Extra TOML merged over the test defaults (written into the file).
    pub toml: String,
    /// `RUST_LOG` for the process; default `info`.
    pub rust_log: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl ProcessSettings {
    /// The test defaults with `toml` merged over them.
    pub fn toml(toml: impl Into<String>) -> ProcessSettings {
        ProcessSettings {
            toml: toml.into(),
            ..Default::default()
        }
    }
}

impl JidgateProcess {
    pub async fn spawn(server: &impl AnyServer) -> JidgateProcess {
        Self::spawn_with(server, ProcessSettings::default()).await
    }

    pub async fn spawn_with(server: &impl AnyServer, settings: ProcessSettings) -> JidgateProcess {
        let dir = tempfile::Builder::new()
            .prefix("jidgate-proc-")
            .tempdir()
            .unwrap();
        let db_file = dir.path().join("jidgate.db");
        let http_port = free_port();
        let token_port = free_port();
        let metrics_port = free_port();
        let ports = format!(
            "[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [token_service]\nlisten = \"127.0.0.1:{token_port}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        );
        // The binary always runs its reconciler (every second with the test
        // defaults): without a grace period it would sweep the `creating`
        // row of a registration in flight and delete its new JID. Tests that
        // want the reconciler sooner set their own grace.
        let grace = "[reconcile]\ngrace = 30\n";
        // One file: the layers merged table by table (later wins).
        let merged = merge_toml(&[&base_toml(server, &db_file), grace, &ports, &settings.toml]);
        let config_file = dir.path().join("jidgate.toml");
        std::fs::write(&config_file, merged).unwrap();
        let log_file = dir.path().join("jidgate.log");
        let mut p = JidgateProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], http_port)),
            token_addr: SocketAddr::from(([127, 0, 0, 1], token_port)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            config_file,
            db_file,
            log_file,
            client: test_client(server.server().ca_file()),
            child: None,
            rust_log: settings.rust_log.unwrap_or_else(|| "info".into()),
            env: settings.env,
            _dir: dir,
        };
        p.start_child();
        p.wait_ready().await;
        p
    }

    /// Starts the binary on this process's configuration, appending to its
    /// log.
    fn start_child(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jidgate"));
        cmd.arg("--config")
            .arg(&self.config_file)
            .arg("serve")
            .env("RUST_LOG", &self.rust_log)
            .env_remove("JIDGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start the jidgate binary"));
    }

    /// Starts the binary again after [`Self::kill`] or [`Self::stop`] (same
    /// configuration, database and ports), without waiting for it.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.start_child();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits for `/readyz`; fails with the process log if it never comes.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the jidgate binary did not become ready; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.id()).expect("running")
    }

    /// A signed GET; checks the answer's `sign` and returns the answer.
    pub async fn call(
        &self,
        app_id: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> serde_json::Value {
        let (query, key) = TestApp::sign(app_id, path, params);
        let nonce = nonce_of(&query);
        let body: serde_json::Value = self
            .client
            .get(self.url(path))
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_signed(&body, &key);
        assert_echoes(&body, &nonce);
        body
    }

    /// SIGKILL (a crash): nothing is flushed politely.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// SIGTERM, and waits for the process to exit (at most 10 s).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
    }
}

/// Merges TOML documents table by table (later wins), so overlays can
/// repeat a table header without producing invalid TOML.
pub fn merge_toml(layers: &[&str]) -> String {
    fn merge(into: &mut toml::Table, from: toml::Table) {
        for (k, v) in from {
            match (into.get_mut(&k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    let mut out = toml::Table::new();
    for layer in layers {
        let t: toml::Table = layer
            .parse()
            .unwrap_or_else(|e| panic!("bad TOML layer: {e}\n{layer}"));
        merge(&mut out, t);
    }
    toml::to_string(&out).unwrap()
}
