//! Scripted calls to the real binary ([`JidgateProcess`]), as a client
//! would make them (GET or POST form), each answer checked for its `sign`
//! and recorded, and the accounts they log in.

#![allow(dead_code)] // a harness: each test uses part of it

use std::sync::Mutex;

use serde_json::Value;
use xmpp_parsers::jid::BareJid;

use crate::helpers::*;
use crate::process::JidgateProcess;

/// base64 of `\0localpart\0password`: what SASL PLAIN would send.
pub fn plain_blob(jid: &str, password: &str) -> String {
    use base64::Engine;
    let local = jid.split('@').next().unwrap();
    base64::engine::general_purpose::STANDARD.encode(format!("\0{local}\0{password}"))
}

pub fn token_fields(body: &Value) -> Vec<String> {
    ["access_token", "refresh_token"]
        .iter()
        .filter_map(|k| body[*k].as_str().map(str::to_owned))
        .collect()
}

/// A logged-in account of the process.
pub struct ProcUser {
    pub name: String,
    pub jid: String,
    pub jid_pwd: String,
    pub token: String,
    pub refresh: String,
    pub is_device: bool,
}

impl ProcUser {
    pub fn bare(&self) -> BareJid {
        BareJid::new(&self.jid).unwrap()
    }

    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.jid_pwd.clone(),
            self.token.clone(),
            self.refresh.clone(),
        ]
    }

    pub fn app(&self) -> &'static str {
        if self.is_device {
            DEVICE_APP_ID
        } else {
            APP_ID
        }
    }
}

/// Scripted calls to a [`JidgateProcess`] (GET or POST form).
pub struct ScriptedProcess<'a> {
    proc: &'a JidgateProcess,
    /// Every answer so far: (path, body).
    answers: Mutex<Vec<(String, Value)>>,
}

impl<'a> ScriptedProcess<'a> {
    pub fn new(proc: &'a JidgateProcess) -> Self {
        ScriptedProcess {
            proc,
            answers: Mutex::new(Vec::new()),
        }
    }

    pub async fn call(
        &self,
        app_id: &str,
        path: &str,
        params: &[(&str, &str)],
        form: bool,
    ) -> Value {
        let body = if form {
            self.post_form(app_id, path, params).await
        } else {
            self.proc.call(app_id, path, params).await
        };
        self.answers
            .lock()
            .unwrap()
            .push((path.to_owned(), body.clone()));
        body
    }

    /// Every answer so far: (path, body).
    pub fn answers(&self) -> Vec<(String, Value)> {
        self.answers.lock().unwrap().clone()
    }

    async fn post_form(&self, app_id: &str, path: &str, params: &[(&str, &str)]) -> Value {
        let (pairs, key) = TestApp::sign(app_id, path, params);
        let body: Value = self
            .proc
            .client
            .post(self.proc.url(path))
            .form(&pairs)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_signed(&body, &key);
        body
    }

    /// A captcha: (id, answer read from the process's database).
    pub async fn captcha(&self) -> (String, String) {
        let r = self
            .proc
            .client
            .get(self.proc.url("/verify_code"))
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-captcha-id"].to_str().unwrap().to_owned();
        let db = crate::helpers::connect_db(&self.proc.db_file).await;
        let answer: String = sqlx::query_scalar("select answer from captcha where id = $1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;
        (id, answer)
    }

    pub async fn register_device(&self, serial: &str, password: &str) {
        let body = self
            .call(
                DEVICE_APP_ID,
                "/register",
                &[
                    ("user_name", serial),
                    ("password", password),
                    ("type", "2"),
                    ("device_type", "lamp"),
                    ("des", "Lamp"),
                ],
                false,
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
    }

    pub async fn register_phone(&self, phone: &str, password: &str) {
        let (id, answer) = self.captcha().await;
        let body = self
            .call(
                APP_ID,
                "/register",
                &[
                    ("user_name", phone),
                    ("password", password),
                    ("type", "1"),
                    ("verify_code", &answer),
                    ("captcha_id", &id),
                ],
                true,
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
    }

    pub async fn try_login_device(&self, serial: &str, password: &str) -> Value {
        self.call(
            DEVICE_APP_ID,
            "/login",
            &[("user_name", serial), ("password", password), ("type", "2")],
            false,
        )
        .await
    }

    pub async fn login_device(&self, serial: &str, password: &str) -> ProcUser {
        let body = self.try_login_device(serial, password).await;
        user_of(serial, &body, true)
    }

    pub async fn login_phone(&self, phone: &str, password: &str) -> ProcUser {
        let (id, answer) = self.captcha().await;
        let body = self
            .call(
                APP_ID,
                "/login",
                &[
                    ("user_name", phone),
                    ("password", password),
                    ("type", "1"),
                    ("verify_code", &answer),
                    ("captcha_id", &id),
                ],
                true,
            )
            .await;
        user_of(phone, &body, false)
    }

    pub async fn bind_code(&self, d: &ProcUser) -> String {
        let body = self
            .call(
                DEVICE_APP_ID,
                "/get_bind_code",
                &[("user_name", &d.name), ("access_token", &d.token)],
                false,
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
        body["bind_code"].as_str().unwrap().to_owned()
    }

    pub async fn bind(&self, owner: &ProcUser, device: &str, code: &str) -> Value {
        self.call(
            owner.app(),
            "/set_user_banding",
            &[
                ("user_name", &owner.name),
                ("access_token", &owner.token),
                ("user_name_ls", &serde_json::to_string(&[device]).unwrap()),
                ("bind_code_ls", &serde_json::to_string(&[code]).unwrap()),
            ],
            true,
        )
        .await
    }

    pub async fn unbind(&self, who: &ProcUser, other: &str) -> Value {
        self.call(
            who.app(),
            "/set_user_unbanding",
            &[
                ("user_name", &who.name),
                ("access_token", &who.token),
                ("user_name_ls", &serde_json::to_string(&[other]).unwrap()),
            ],
            false,
        )
        .await
    }

    pub async fn bindings(&self, who: &ProcUser) -> Value {
        self.call(
            who.app(),
            "/get_user_banding",
            &[("user_name", &who.name), ("access_token", &who.token)],
            false,
        )
        .await
    }

    pub async fn refresh_phone(&self, p: &ProcUser) -> Value {
        let body = self
            .call(
                APP_ID,
                "/refresh_token",
                &[("refresh_token", &p.refresh)],
                true,
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
        body
    }
}

pub fn user_of(name: &str, login: &Value, is_device: bool) -> ProcUser {
    assert_eq!(login["result"], 0, "{login}");
    ProcUser {
        name: name.to_owned(),
        jid: login["user_info"]["jid"].as_str().unwrap().to_owned(),
        jid_pwd: login["user_info"]["jid_pwd"].as_str().unwrap().to_owned(),
        token: login["access_token"].as_str().unwrap().to_owned(),
        refresh: login["refresh_token"].as_str().unwrap().to_owned(),
        is_device,
    }
}
