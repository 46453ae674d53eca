//! The console and the playground in a real browser: headless Chromium from
//! Debian driven over WebDriver (`chromedriver`, the fantoccini crate),
//! against the real binary and Prosody. Screenshots go to
//! `target/screenshots/` (linked from docs/console.md). Without Chromium the
//! test fails with the command that installs it (scripts/test.sh runs it).

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use jidgate::xmpp::roster;
use serde_json::Value;
use xmpp_parsers::jid::BareJid;

use crate::helpers::*;
use crate::process::JidgateProcess;

const INSTALL: &str = "apt-get install chromium chromium-driver";

/// A headless Chromium session and its chromedriver.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Browser {
        require_tool("chromedriver", INSTALL);
        require_tool("chromium", INSTALL);
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser {
            client,
            _driver: driver,
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until the element's text satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
                && ok(&t)
            {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never matched; page:\n{}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");
        std::fs::create_dir_all(dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
    }
}

/// A logged-in account of the process.
struct Account {
    name: String,
    token: String,
    jid: String,
    jid_pwd: String,
}

async fn captcha(p: &JidgateProcess) -> (String, String) {
    let r = p.client.get(p.url("/verify_code")).send().await.unwrap();
    let id = r.headers()["x-captcha-id"].to_str().unwrap().to_owned();
    let db = crate::helpers::connect_db(&p.db_file).await;
    let answer = sqlx::query_scalar("select answer from captcha where id = $1")
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    (id, answer)
}

async fn account(p: &JidgateProcess, name: &str, device: bool) -> Account {
    let (app, ty) = if device {
        (DEVICE_APP_ID, "2")
    } else {
        (APP_ID, "1")
    };
    let mut params = vec![
        ("user_name", name.to_owned()),
        ("password", "pass-word-1".to_owned()),
        ("type", ty.to_owned()),
    ];
    let with_captcha = |mut v: Vec<(&'static str, String)>, (id, answer): (String, String)| {
        v.push(("captcha_id", id));
        v.push(("verify_code", answer));
        v
    };
    let mut register = params.clone();
    if device {
        register.push(("device_type", "lamp".into()));
    } else {
        register = with_captcha(register, captcha(p).await);
    }
    let pairs: Vec<(&str, &str)> = register.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(p.call(app, "/register", &pairs).await["result"], 0);
    if !device {
        params = with_captcha(params, captcha(p).await);
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let login: Value = p.call(app, "/login", &pairs).await;
    assert_eq!(login["result"], 0, "{login}");
    Account {
        name: name.to_owned(),
        token: login["access_token"].as_str().unwrap().to_owned(),
        jid: login["user_info"]["jid"].as_str().unwrap().to_owned(),
        jid_pwd: login["user_info"]["jid_pwd"].as_str().unwrap().to_owned(),
    }
}

async fn add_operator(p: &JidgateProcess) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jidgate"))
        .arg("--config")
        .arg(&p.config_file)
        .args(["operator", "add", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "operator-pass-1").unwrap();
    assert!(child.wait().unwrap().success());
}

async fn verify(p: &JidgateProcess, token: &str) -> Value {
    p.call(
        SERVICE_APP_ID,
        "/verify_access_token",
        &[("access_token", token)],
    )
    .await
}

#[tokio::test]
async fn an_operator_works_the_console_and_a_developer_the_playground_in_chromium() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn(&prosody).await;
    add_operator(&p).await;
    let phone = account(&p, "13700137001", false).await;
    let lamp = account(&p, "SN-BROWSER-1", true).await;
    let code = p
        .call(
            DEVICE_APP_ID,
            "/get_bind_code",
            &[("user_name", &lamp.name), ("access_token", &lamp.token)],
        )
        .await["bind_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let bound = p
        .call(
            APP_ID,
            "/set_user_banding",
            &[
                ("user_name", &phone.name),
                ("access_token", &phone.token),
                ("user_name_ls", &format!("[\"{}\"]", lamp.name)),
                ("bind_code_ls", &format!("[\"{code}\"]")),
            ],
        )
        .await;
    assert_eq!(bound["result"], 0, "{bound}");

    let b = Browser::start().await;
    let c = &b.client;
    // A wrong password is refused.
    c.goto(&p.url("/console/login")).await.unwrap();
    b.fill("#name", "alice").await;
    b.fill("#password", "wrong-pass-1").await;
    b.click("#login").await;
    b.wait_text("#message", |t| t.contains("Wrong name or password"))
        .await;
    b.screenshot("console-login-refused").await;
    b.fill("#password", "operator-pass-1").await;
    b.click("#login").await;
    b.wait_text("#operator", |t| t == "alice").await;

    // Find the phone; its page shows the binding and the live roster.
    b.fill("#q", "137001").await;
    b.click("#search").await;
    b.wait_text("#accounts", |t| t.contains("13700137001"))
        .await;
    b.screenshot("console-accounts").await;
    c.find(Locator::LinkText("13700137001"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let roster = b.wait_text("#roster", |t| t.contains("SN-BROWSER-1")).await;
    assert!(roster.contains("both"), "{roster}");
    assert!(b.text("#bindings").await.contains("bound"));
    b.text("#no_drift").await;
    let phone_page = c.current_url().await.unwrap();
    b.screenshot("console-account").await;

    // Drift behind jidgate's back: the phone's own client drops the lamp.
    let s = prosody.login(&phone.jid, &phone.jid_pwd).await.unwrap();
    roster::remove_item(&s, &BareJid::new(&lamp.jid).unwrap())
        .await
        .unwrap();
    s.close().await;
    c.goto(phone_page.as_str()).await.unwrap();
    b.wait_text("#drift", |t| t.contains("SN-BROWSER-1")).await;
    b.screenshot("console-drift").await;
    c.goto(&p.url("/console/reconcile")).await.unwrap();
    // The binary's own reconciler has swept (every second in the tests).
    let last = b.text("#last_sweeps").await;
    assert!(last.contains("0 done, 0 failed"), "{last}");
    b.click("#dry_run").await;
    b.wait_text("#ran", |t| t.contains("Dry run: 1 change(s)"))
        .await;
    assert!(b.text("#actions").await.contains("rebind"));
    b.screenshot("console-reconcile-dry-run").await;
    b.click("#real_run").await;
    b.wait_text("#ran", |t| t.contains("Run: 1 done, 0 failed"))
        .await;
    c.goto(phone_page.as_str()).await.unwrap();
    b.text("#no_drift").await;

    // Revoke the lamp's session: its token fails verification.
    assert_eq!(verify(&p, &lamp.token).await["result"], 0);
    b.fill_search_and_open(&lamp.name).await;
    b.click(".revoke").await;
    b.wait_text("#sessions", |t| !t.contains("lamp-product"))
        .await;
    assert_ne!(verify(&p, &lamp.token).await["result"], 0);

    // A form without its CSRF token is refused; with it, the lamp is
    // disabled: its login and its JID's login are refused.
    c.execute(
        "document.querySelector('form[action$=\"/disable\"] input[name=csrf]').remove()",
        vec![],
    )
    .await
    .unwrap();
    b.click("#disable").await;
    b.wait_text("h1", |t| t == "403").await;
    c.back().await.unwrap();
    c.refresh().await.unwrap();
    b.click("#disable").await;
    b.wait_text("#disabled", |t| t.contains("disabled since"))
        .await;
    b.screenshot("console-disabled").await;
    let refused = p
        .call(
            DEVICE_APP_ID,
            "/login",
            &[
                ("user_name", &lamp.name),
                ("password", "pass-word-1"),
                ("type", "2"),
            ],
        )
        .await;
    assert_eq!(refused["result"], 100, "{refused}");
    assert!(prosody.login(&lamp.jid, &lamp.jid_pwd).await.is_err());
    c.goto(&p.url("/console/audit")).await.unwrap();
    let audit = b.text("#audit").await;
    for action in [
        "login_failed",
        "reconcile_dry_run",
        "reconcile_run",
        "revoke_session",
        "disable_account",
    ] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
    b.screenshot("console-audit").await;

    // The playground signs a device registration in the browser.
    c.goto(&p.url("/playground")).await.unwrap();
    b.wait_text("#endpoint", |t| t.contains("/register")).await;
    c.find(Locator::Css("#endpoint"))
        .await
        .unwrap()
        .select_by_value("/register")
        .await
        .unwrap();
    b.fill("#app_id", DEVICE_APP_ID).await;
    c.find(Locator::Css("#key_kind"))
        .await
        .unwrap()
        .select_by_value("product")
        .await
        .unwrap();
    b.fill("#key", DEVICE_SECRET).await;
    b.fill("#p_user_name", "SN-PLAYGROUND-1").await;
    b.fill("#p_password", "pass-word-1").await;
    b.fill("#p_type", "2").await;
    b.fill("#p_device_type", "lamp").await;
    b.click("#send").await;
    b.wait_text("#verified", |t| !t.is_empty()).await;
    assert_eq!(b.text("#result").await, "0", "{}", b.text("#answer").await);
    assert_eq!(b.text("#verified").await, "yes");
    assert!(b.text("#canonical").await.starts_with("/register\n"));
    b.screenshot("playground-register").await;
    c.clone().close().await.unwrap();
}

impl Browser {
    /// Searches for `name` and opens its page.
    async fn fill_search_and_open(&self, name: &str) {
        let url = self.client.current_url().await.unwrap();
        self.client
            .goto(url.join("/console/accounts").unwrap().as_str())
            .await
            .unwrap();
        self.fill("#q", name).await;
        self.click("#search").await;
        self.wait_text("#accounts", |t| t.contains(name)).await;
        self.client
            .find(Locator::LinkText(name))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_text("#user_name", |t| t == name).await;
    }
}
