//! The token service over TCP, and tokens over HTTP.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::helpers::*;

pub struct Conn {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    wr: OwnedWriteHalf,
}

impl Conn {
    pub async fn open(app: &TestApp) -> Conn {
        Conn::open_at(app.token_addr).await
    }

    pub async fn open_at(addr: std::net::SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        let (rd, wr) = s.into_split();
        Conn {
            lines: BufReader::new(rd).lines(),
            wr,
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.wr.write_all(text.as_bytes()).await.unwrap();
    }

    pub async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("a reply in time")
            .unwrap()
            .expect("connection open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    pub async fn ask(&mut self, request: Value) -> Value {
        self.send(&format!("{request}\n")).await;
        self.recv().await
    }

    /// A signed hello for `app_id`.
    pub fn hello(app_id: &str, seq: i64) -> Value {
        let ts = jidgate::now().to_string();
        let nonce = jidgate::crypto::random_token::<12>();
        let seq_text = seq.to_string();
        let params = [
            ("seq", seq_text.as_str()),
            ("cmd", "hello"),
            ("app_id", app_id),
            ("ts", ts.as_str()),
            ("nonce", nonce.as_str()),
        ];
        let key = key_for(app_id, &[]);
        let sign = key.sign(jidgate::signing::canonical_request(params).as_bytes());
        json!({"seq": seq, "cmd": "hello", "app_id": app_id, "ts": ts, "nonce": nonce, "param_sign": sign})
    }

    pub async fn authenticated(app: &TestApp) -> Conn {
        let mut c = Conn::open(app).await;
        let r = c.ask(Conn::hello(SERVICE_APP_ID, 0)).await;
        assert_eq!(r["result"], 0, "{r}");
        assert_eq!(r["app_id"], SERVICE_APP_ID);
        c
    }
}

async fn device_token(app: &TestApp, serial: &str) -> String {
    app.register_device(serial, "device-pass-1", "").await;
    let login = app.login_device(serial, "device-pass-1").await;
    login["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_connection_must_say_a_signed_service_hello_first() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let token = device_token(&app, "SN-TS-1").await;
    let mut c = Conn::open(&app).await;

    let verify = json!({"seq": 1, "cmd": "verify_access_token", "access_token": token});
    let r = c.ask(verify.clone()).await;
    assert_eq!(r["result"], 100, "{r}");

    // A hello signed with the wrong key, by a non-service app, replayed.
    let mut bad = Conn::hello(SERVICE_APP_ID, 2);
    bad["param_sign"] = json!("0".repeat(64));
    assert_eq!(c.ask(bad).await["result"], 6);
    assert_eq!(c.ask(Conn::hello(APP_ID, 3)).await["result"], 12);
    let hello = Conn::hello(SERVICE_APP_ID, 4);
    assert_eq!(c.ask(hello.clone()).await["result"], 0);
    assert_eq!(
        c.ask(json!({"seq": 5, "cmd": "hello"})).await["result"],
        100
    );
    let mut c2 = Conn::open(&app).await;
    assert_eq!(c2.ask(hello).await["result"], 11, "nonce replay");

    let r = c.ask(verify).await;
    assert_eq!(
        r,
        json!({
            "seq": 1, "result": 0, "validate": true, "user_name": "SN-TS-1", "type": 2,
            "expires_at": r["expires_at"].clone(), "app_id": DEVICE_APP_ID
        })
    );
    assert!(r["expires_at"].as_i64().unwrap() > jidgate::now());
}

#[tokio::test]
async fn requests_are_pipelined_and_replies_may_come_out_of_order() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let token = device_token(&app, "SN-PIPE-1").await;
    let mut c = Conn::authenticated(&app).await;
    // Warm the cache so verifications are answered from memory.
    assert_eq!(
        c.ask(json!({"seq": "warm", "cmd": "verify_access_token", "access_token": token}))
            .await["validate"],
        true
    );

    // One write: a look-up that needs the database first, then 300
    // verifications (valid and invalid), one more look-up, a ping.
    let mut batch = String::new();
    batch.push_str(&format!(
        "{}\n",
        json!({"seq": 0, "cmd": "get_users", "user_name_ls": ["SN-PIPE-1", "nobody-1"]})
    ));
    for i in 1..=300 {
        let t = if i % 3 == 0 {
            format!("jgt_{}", "x".repeat(43))
        } else {
            token.clone()
        };
        batch.push_str(&format!(
            "{}\n",
            json!({"seq": i, "cmd": "verify_access_token", "access_token": t})
        ));
    }
    batch.push_str(&format!(
        "{}\n",
        json!({"seq": 301, "cmd": "get_users", "user_name_ls": "[\"SN-PIPE-1\"]"})
    ));
    batch.push_str("{\"seq\":302,\"cmd\":\"ping\"}\n");
    c.send(&batch).await;

    let mut order = Vec::new();
    for _ in 0..=302 {
        let r = c.recv().await;
        let seq = r["seq"].as_i64().unwrap();
        match seq {
            0 => {
                assert_eq!(r["user_info_ls"][0]["user_name"], "SN-PIPE-1", "{r}");
                assert_eq!(r["unknown_ls"], json!(["nobody-1"]));
                assert!(r["user_info_ls"][0].get("jid_pwd").is_none());
            }
            301 => assert_eq!(r["user_info_ls"][0]["type"], 2, "{r}"),
            302 => assert_eq!(r["result"], 0),
            i if i % 3 == 0 => assert_eq!(
                (r["result"].clone(), r["validate"].clone()),
                (json!(4), json!(false))
            ),
            _ => assert_eq!(r["validate"], true, "{r}"),
        }
        order.push(seq);
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..=302).collect::<Vec<_>>(),
        "every request answered once"
    );
    assert_ne!(
        order[0],
        0,
        "the database look-up was overtaken: {:?}",
        &order[..5]
    );
}

#[tokio::test]
async fn bad_lines_get_error_replies_and_the_connection_stays_usable() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[token_service]\nmax_line_bytes = 1024\n"),
    )
    .await;
    let token = device_token(&app, "SN-BAD-1").await;
    let mut c = Conn::authenticated(&app).await;

    c.send("this is not json\n").await;
    let r = c.recv().await;
    assert_eq!(
        (r["seq"].clone(), r["result"].clone()),
        (Value::Null, json!(2)),
        "{r}"
    );
    assert_eq!(c.ask(json!({"seq": 1, "cmd": "fly"})).await["result"], 2);
    assert_eq!(
        c.ask(json!({"seq": 2, "cmd": "verify_access_token"})).await["result"],
        2
    );
    assert_eq!(
        c.ask(json!({"seq": {"a": 1}, "cmd": "ping"})).await["result"],
        2
    );
    assert_eq!(
        c.ask(json!({"seq": 3, "cmd": "get_users", "user_name_ls": "nope"}))
            .await["result"],
        2
    );
    // An oversized line (sent in pieces), then a good request.
    c.send(&format!("{{\"seq\":4,\"pad\":\"{}", "a".repeat(3000)))
        .await;
    c.send(&format!("{}\"}}\n", "b".repeat(3000))).await;
    let r = c.recv().await;
    assert_eq!(r["result"], 2, "{r}");
    assert!(r["error"].as_str().unwrap().contains("longer"), "{r}");
    let r = c
        .ask(json!({"seq": 5, "cmd": "verify_access_token", "access_token": token}))
        .await;
    assert_eq!(
        (r["seq"].clone(), r["validate"].clone()),
        (json!(5), json!(true)),
        "{r}"
    );
    // Blank lines are ignored; CRLF is accepted.
    c.send("\n\r\n{\"seq\":6,\"cmd\":\"ping\"}\r\n").await;
    assert_eq!(c.recv().await["seq"], 6);
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[token_service]\nidle_timeout = 1\n"),
    )
    .await;
    let mut s = TcpStream::connect(app.token_addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap();
    assert_eq!(n, 0, "EOF");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Activity keeps it open past the timeout.
    let mut c = Conn::authenticated(&app).await;
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(c.ask(json!({"seq": i, "cmd": "ping"})).await["result"], 0);
    }
}

#[tokio::test]
async fn tokens_refresh_and_are_revoked_by_cancel_and_password_change() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    app.register_device("SN-TOK-1", "device-pass-1", "").await;
    let login = app.login_device("SN-TOK-1", "device-pass-1").await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let old_jid_pwd = login["user_info"]["jid_pwd"].as_str().unwrap().to_owned();
    let jid = login["user_info"]["jid"].as_str().unwrap().to_owned();
    let mut c = Conn::authenticated(&app).await;
    let verify =
        |seq: i64, t: &str| json!({"seq": seq, "cmd": "verify_access_token", "access_token": t});
    assert_eq!(c.ask(verify(1, &access)).await["validate"], true);

    // Over HTTP, for services only.
    let body = app
        .call(
            SERVICE_APP_ID,
            "/verify_access_token",
            &[("access_token", &access)],
        )
        .await;
    assert_eq!(
        (body["result"].clone(), body["user_name"].clone()),
        (json!(0), json!("SN-TOK-1"))
    );
    let body = app
        .call(APP_ID, "/verify_access_token", &[("access_token", &access)])
        .await;
    assert_eq!(body["result"], 12, "{body}");

    // Refresh: a new pair; the old access token is revoked at once.
    let body = app
        .call(
            DEVICE_APP_ID,
            "/refresh_token",
            &[("user_name", "SN-TOK-1"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    let refresh2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(c.ask(verify(2, &access)).await["result"], 4);
    assert_eq!(c.ask(verify(3, &access2)).await["validate"], true);
    // A used refresh token is refused and ends the session (theft).
    let body = app
        .call(
            DEVICE_APP_ID,
            "/refresh_token",
            &[("user_name", "SN-TOK-1"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(body["result"], 113, "{body}");
    assert_eq!(c.ask(verify(4, &access2)).await["result"], 4);
    let body = app
        .call(
            DEVICE_APP_ID,
            "/refresh_token",
            &[("user_name", "SN-TOK-1"), ("refresh_token", &refresh2)],
        )
        .await;
    assert_eq!(body["result"], 113, "{body}");

    // A password change revokes tokens and gives a new JID password.
    let login = app.login_device("SN-TOK-1", "device-pass-1").await;
    let access3 = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.ask(verify(5, &access3)).await["validate"], true);
    let body = app
        .call(
            DEVICE_APP_ID,
            "/change_password",
            &[
                ("user_name", "SN-TOK-1"),
                ("password", "device-pass-1"),
                ("type", "2"),
                ("new_password", "device-pass-2"),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(c.ask(verify(6, &access3)).await["result"], 4);
    assert_eq!(
        app.login_device("SN-TOK-1", "device-pass-1").await["result"],
        102
    );
    let login = app.login_device("SN-TOK-1", "device-pass-2").await;
    assert_eq!(login["result"], 0, "{login}");
    let new_jid_pwd = login["user_info"]["jid_pwd"].as_str().unwrap().to_owned();
    assert_ne!(new_jid_pwd, old_jid_pwd);
    assert!(
        prosody
            .login(&jid, &old_jid_pwd)
            .await
            .err()
            .unwrap()
            .is_auth()
    );
    prosody
        .login(&jid, &new_jid_pwd)
        .await
        .expect("new JID password")
        .close()
        .await;

    // Cancel revokes the rest.
    let access4 = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.ask(verify(7, &access4)).await["validate"], true);
    let body = app.cancel_device("SN-TOK-1", "device-pass-2").await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(c.ask(verify(8, &access4)).await["result"], 4);
}
