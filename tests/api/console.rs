//! The operator console over HTTP (the browser tests are in `browser.rs`):
//! login with a captcha after failures, cookies, CSRF, idle expiry, search,
//! the account page, revoking a session, the reconciler, the audit table;
//! and `jidgate operator add`.

use std::io::Write;
use std::process::Stdio;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use secrecy::SecretString;

use crate::helpers::*;
use crate::process::merge_toml;

pub const OPERATOR: &str = "alice";
pub const OPERATOR_PASSWORD: &str = "operator-pass-1";

/// A console client: no redirects followed, cookies carried by hand.
pub struct Console {
    http: reqwest::Client,
    base: String,
    pub cookies: Vec<(String, String)>,
}

/// The value of `name="<field>" value="..."` in a page.
pub fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in\n{html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

impl Console {
    pub fn new(app: &TestApp) -> Console {
        Console {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &reqwest::Response) -> Vec<String> {
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        set
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&r);
        (r.status(), r.text().await.unwrap())
    }

    /// A form POST; the status, `Location` and body.
    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String, Vec<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        let set = self.keep_cookies(&r);
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status(), location, r.text().await.unwrap(), set)
    }

    /// Logs in (no captcha needed); the session's CSRF token.
    pub async fn log_in(&mut self, name: &str, password: &str) -> String {
        let (_, page) = self.get("/console/login").await;
        let token = field(&page, "form_token");
        let (status, location, _, _) = self
            .post(
                "/console/login",
                &[
                    ("form_token", &token),
                    ("name", name),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/console/accounts"));
        let (status, page) = self.get("/console/accounts").await;
        assert_eq!(status, 200);
        field(&page, "csrf")
    }
}

pub async fn add_operator(app: &TestApp) {
    jidgate::console::add_operator(
        &app.app.db,
        &app.app.hasher,
        OPERATOR,
        SecretString::from(OPERATOR_PASSWORD),
        false,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_operator_logs_in_with_a_captcha_after_failures_and_csrf_guards_every_form() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(&prosody, Settings::toml("[console]\ncaptcha_after = 2\n")).await;
    add_operator(&app).await;
    let login = app
        .client
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap();
    let h = login.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    let mut c = Console::new(&app);
    // Pages need a session.
    let (status, _) = c.get("/console/accounts").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A login without the form's token is refused.
    let (status, ..) = c
        .post(
            "/console/login",
            &[("name", OPERATOR), ("password", OPERATOR_PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Two wrong passwords, then the right one needs a captcha.
    for _ in 0..2 {
        let (_, page) = c.get("/console/login").await;
        let token = field(&page, "form_token");
        let (status, _, body, _) = c
            .post(
                "/console/login",
                &[
                    ("form_token", &token),
                    ("name", OPERATOR),
                    ("password", "wrong-pass-1"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("Wrong name or password"), "{body}");
    }
    let (_, page) = c.get("/console/login").await;
    let token = field(&page, "form_token");
    let (status, _, body, _) = c
        .post(
            "/console/login",
            &[
                ("form_token", &token),
                ("name", OPERATOR),
                ("password", OPERATOR_PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("id=\"captcha\""), "{body}");
    let (captcha_id, answer, _) = app.captcha().await;
    let token = field(&body, "form_token");
    let (status, location, _, set) = c
        .post(
            "/console/login",
            &[
                ("form_token", &token),
                ("name", OPERATOR),
                ("password", OPERATOR_PASSWORD),
                ("captcha_id", &captcha_id),
                ("verify_code", &answer),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{set:?}");
    assert_eq!(location.as_deref(), Some("/console/accounts"));
    let session = set
        .iter()
        .find(|c| c.starts_with("jidgate_console="))
        .unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(!session.contains("Secure"), "plain HTTP: {session}");

    // A form without the session's CSRF token is refused.
    let (status, ..) = c.post("/console/reconcile", &[("mode", "dry")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, page) = c.get("/console/reconcile").await;
    let csrf = field(&page, "csrf");
    let (status, _, body, _) = c
        .post("/console/reconcile", &[("mode", "dry"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Dry run: 0 change(s)"), "{body}");

    let (_, audit) = c.get("/console/audit").await;
    for action in ["login_failed", "login", "reconcile_dry_run", "operator_add"] {
        assert!(
            audit.contains(&format!(">{action}<")),
            "{action} in\n{audit}"
        );
    }

    // An idle session is over.
    sqlx::query("update operator_session set last_seen = 0")
        .execute(&app.db)
        .await
        .unwrap();
    let (status, _) = c.get("/console/accounts").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_operator_finds_an_account_and_revokes_its_session() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    add_operator(&app).await;
    let serial = format!("console-{}", jidgate::crypto::random_token::<6>());
    app.register_device(&serial, "device-pass-1", "kitchen lamp")
        .await;
    let login = app.login_device(&serial, "device-pass-1").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let mut c = Console::new(&app);
    c.log_in(OPERATOR, OPERATOR_PASSWORD).await;

    let (_, page) = c
        .get(&format!("/console/accounts?q={}&type=2", &serial[..10]))
        .await;
    assert!(page.contains(&serial), "{page}");
    let (_, none) = c
        .get(&format!("/console/accounts?q={}&type=1", &serial[..10]))
        .await;
    assert!(!none.contains(&serial), "{none}");
    let at = page.find("/console/accounts/").unwrap();
    let id: String = page[at + 18..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (status, account) = c.get(&format!("/console/accounts/{id}")).await;
    assert_eq!(status, 200);
    assert!(account.contains("kitchen lamp"), "{account}");
    assert!(account.contains("id=\"no_drift\""), "{account}");
    let at = account.find("/sessions/").unwrap();
    let session: String = account[at + 10..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let revoke = format!("/console/accounts/{id}/sessions/{session}/revoke");
    let (status, ..) = c.post(&revoke, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(app.app.tokens.verify(&token, jidgate::now()).await.is_ok());
    let csrf = field(&account, "csrf");
    let (status, ..) = c.post(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(app.app.tokens.verify(&token, jidgate::now()).await.is_err());
    let (_, audit) = c.get("/console/audit").await;
    assert!(audit.contains(">revoke_session<"), "{audit}");
}

#[tokio::test]
async fn operators_are_added_on_the_command_line_with_the_password_from_stdin() {
    let prosody = Prosody::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("jidgate.db");
    let config = dir.path().join("jidgate.toml");
    std::fs::write(&config, merge_toml(&[&base_toml(&prosody, &db_file)])).unwrap();
    let run = |replace: bool, password: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jidgate"));
        cmd.arg("--config")
            .arg(&config)
            .args(["operator", "add", "bob"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if replace {
            cmd.arg("--replace");
        }
        let mut child = cmd.spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(false, "bob-pass-123");
    assert!(out.status.success(), "{out:?}");
    let again = run(false, "bob-pass-456");
    assert!(!again.status.success(), "a name is added once");
    let replaced = run(true, "bob-pass-456");
    assert!(replaced.status.success(), "{replaced:?}");
    let db = crate::helpers::connect_db(&db_file).await;
    let hash: String = sqlx::query_scalar("select password_hash from operator where name = 'bob'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_nor_its_jid_and_is_enabled_again() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    add_operator(&app).await;
    let serial = format!("disable-{}", jidgate::crypto::random_token::<6>());
    app.register_device(&serial, "device-pass-1", "").await;
    let login = app.login_device(&serial, "device-pass-1").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let jid = login["user_info"]["jid"].as_str().unwrap().to_owned();
    let old_jid_pwd = login["user_info"]["jid_pwd"].as_str().unwrap().to_owned();
    let id: i64 = sqlx::query_scalar("select id from account where user_name = $1")
        .bind(&serial)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let mut c = Console::new(&app);
    let csrf = c.log_in(OPERATOR, OPERATOR_PASSWORD).await;
    // The device is online on the XMPP server.
    let online = prosody.login(&jid, &old_jid_pwd).await.unwrap();

    let (status, ..) = c
        .post(
            &format!("/console/accounts/{id}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Prosody offers end-user-session: the live session is closed.
    tokio::time::timeout(std::time::Duration::from_secs(10), online.closed())
        .await
        .expect("the disabled JID's session is ended");
    let (_, page) = c.get(&format!("/console/accounts/{id}")).await;
    assert!(page.contains("disabled since"), "{page}");
    let refused = app.login_device(&serial, "device-pass-1").await;
    assert_eq!(refused["result"], 100, "{refused}");
    assert!(app.app.tokens.verify(&token, jidgate::now()).await.is_err());
    assert!(prosody.login(&jid, &old_jid_pwd).await.is_err());

    let (status, ..) = c
        .post(
            &format!("/console/accounts/{id}/enable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let again = app.login_device(&serial, "device-pass-1").await;
    assert_eq!(again["result"], 0, "{again}");
    let new_jid_pwd = again["user_info"]["jid_pwd"].as_str().unwrap();
    assert_ne!(new_jid_pwd, old_jid_pwd);
    prosody
        .login(&jid, new_jid_pwd)
        .await
        .unwrap()
        .close()
        .await;
    let (_, audit) = c.get("/console/audit").await;
    assert!(audit.contains(">disable_account<") && audit.contains(">enable_account<"));
    assert!(
        audit.contains("sessions revoked, JID password rotated, XMPP sessions ended"),
        "{audit}"
    );
}
