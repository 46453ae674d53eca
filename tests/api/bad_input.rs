//! Bad input: every request below is refused with its documented code, and
//! neither the database nor the XMPP server changes.

use serde_json::Value;

use crate::helpers::*;

type Pairs = Vec<(String, String)>;

fn pairs(p: &[(&str, &str)]) -> Pairs {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Re-signs `pairs` (already containing app_id, ts, nonce) with `key`.
fn resign(mut pairs: Pairs, key: &jidgate::signing::SigningKey) -> Pairs {
    pairs.retain(|(k, _)| k != "param_sign");
    let signature = sign_pairs(key, "/register", &pairs);
    pairs.push(("param_sign".into(), signature));
    pairs
}

const DEVICE: &[(&str, &str)] = &[
    ("user_name", "SN-NEW-1"),
    ("password", "device-pass-1"),
    ("type", "2"),
    ("device_type", "lamp"),
];

fn with(base: &[(&str, &str)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| *k != name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.push((name.to_owned(), value.to_owned()));
    v
}

fn without(base: &[(&str, &str)], name: &str) -> Vec<(String, String)> {
    base.iter()
        .filter(|(k, _)| *k != name)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn device_register(app: &TestApp, params: Vec<(String, String)>) -> Value {
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.call(DEVICE_APP_ID, "/register", &borrowed).await
}

#[tokio::test]
async fn malformed_and_missing_registration_fields_are_code_2_and_change_nothing() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    app.register_device("SN-OLD-1", "device-pass-1", "").await;
    let before = app.snapshot().await;

    let long_des = "x".repeat(129);
    let huge = "p".repeat(9000);
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no password", without(DEVICE, "password")),
        ("no type", without(DEVICE, "type")),
        ("type 4", with(DEVICE, "type", "4")),
        ("type word", with(DEVICE, "type", "device")),
        ("device without device_type", without(DEVICE, "device_type")),
        ("bad device_type", with(DEVICE, "device_type", "lamp v2")),
        ("bad serial", with(DEVICE, "user_name", "SN/1/2/3")),
        ("short serial", with(DEVICE, "user_name", "SN1")),
        ("des too long", with(DEVICE, "des", &long_des)),
        ("des with newline", with(DEVICE, "des", "a\nb")),
        ("short password", with(DEVICE, "password", "12345")),
        ("password too long", with(DEVICE, "password", &huge)),
    ];
    for (what, params) in cases {
        let body = device_register(&app, params).await;
        assert_eq!(body["result"], 2, "{what}: {body}");
    }
    // A missing user_name leaves a device key underivable: still code 2.
    let body = app
        .call(
            DEVICE_APP_ID,
            "/register",
            &[
                ("password", "device-pass-1"),
                ("type", "2"),
                ("device_type", "x"),
            ],
        )
        .await;
    assert_eq!(body["result"], 2, "{body}");

    // Phone numbers.
    for bad in ["1234", "+1234567890123456", "138 0013 8000", "phone"] {
        let (id, answer, _) = app.captcha().await;
        let body = app
            .call(
                APP_ID,
                "/register",
                &[
                    ("user_name", bad),
                    ("password", "phone-pass"),
                    ("type", "1"),
                    ("verify_code", &answer),
                    ("captcha_id", &id),
                ],
            )
            .await;
        assert_eq!(body["result"], 2, "{bad}: {body}");
    }

    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn broken_signatures_timestamps_nonces_and_apps_are_refused_and_change_nothing() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let before = app.snapshot().await;
    let now = jidgate::now();
    let key = key_for(DEVICE_APP_ID, DEVICE);

    // Bad signature: a parameter changed after signing.
    let (mut p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
    for kv in p.iter_mut() {
        if kv.0 == "password" {
            kv.1 = "other-password".into();
        }
    }
    let (_, body) = app.raw_get("/register", &p).await;
    assert_eq!(body["result"], 6, "{body}");
    assert_eq!(body["sign"], "", "no key, no signed answer");

    // Signed with another device's key.
    let (p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
    let other = jidgate::signing::SigningKey::derive_device(DEVICE_SECRET.as_bytes(), "SN-OTHER");
    let (_, body) = app.raw_get("/register", &resign(p, &other)).await;
    assert_eq!(body["result"], 6, "{body}");

    // Not hex at all.
    let (mut p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
    p.last_mut().unwrap().1 = "zz".into();
    let (_, body) = app.raw_get("/register", &p).await;
    assert_eq!(body["result"], 6, "{body}");

    // ts outside ±300 s, either way, correctly signed.
    for ts in [now - 301, now + 400] {
        let (p, _) = TestApp::sign_at(DEVICE_APP_ID, "/register", DEVICE, ts, "nonce-ts-test-1");
        let (_, body) = app.raw_get("/register", &p).await;
        assert_eq!(body["result"], 10, "ts {ts}: {body}");
    }
    // ts not a number.
    let mut p = pairs(DEVICE);
    p.extend(pairs(&[
        ("app_id", DEVICE_APP_ID),
        ("ts", "soon"),
        ("nonce", "abcdefgh12"),
    ]));
    let (_, body) = app.raw_get("/register", &resign(p, &key)).await;
    assert_eq!(body["result"], 2, "{body}");

    // Malformed nonce.
    let (p, _) = TestApp::sign_at(DEVICE_APP_ID, "/register", DEVICE, now, "short");
    let (_, body) = app.raw_get("/register", &p).await;
    assert_eq!(body["result"], 2, "{body}");

    // Missing signature parameters.
    for missing in ["app_id", "ts", "nonce", "param_sign"] {
        let (mut p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
        p.retain(|(k, _)| k != missing);
        let (_, body) = app.raw_get("/register", &p).await;
        assert_eq!(body["result"], 2, "without {missing}: {body}");
    }

    // Unknown app.
    let (p, _) = TestApp::sign("no-such-app", "/register", DEVICE);
    let (_, body) = app.raw_get("/register", &p).await;
    assert_eq!(body["result"], 12, "{body}");

    // A device registered with the phone app's key (no captcha, no device
    // key): refused as the wrong kind of app.
    let body = app.call(APP_ID, "/register", DEVICE).await;
    assert_eq!(body["result"], 12, "{body}");
    // A service key cannot register anything.
    let body = app.call(SERVICE_APP_ID, "/register", DEVICE).await;
    assert_eq!(body["result"], 12, "{body}");

    assert_eq!(app.snapshot().await, before);

    // A replayed request: the first is served, the copy refused.
    let (p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
    let (_, first) = app.raw_get("/register", &p).await;
    assert_eq!(first["result"], 0, "{first}");
    let after_first = app.snapshot().await;
    let (_, second) = app.raw_get("/register", &p).await;
    assert_eq!(second["result"], 11, "{second}");
    assert_eq!(app.snapshot().await, after_first);
}

#[tokio::test]
async fn malformed_bodies_are_code_2() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let before = app.snapshot().await;
    let url = app.url("/register");
    let post = |body: String, content_type: &'static str| {
        let req = app
            .client
            .post(url.clone())
            .header("content-type", content_type)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    // Larger than http.max_body_bytes.
    let (p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
    let mut form = serde_urlencoded::to_string(&p).unwrap();
    form.push_str(&format!("&padding={}", "a".repeat(20_000)));
    assert_eq!(
        post(form, "application/x-www-form-urlencoded").await["result"],
        2
    );
    // Not JSON, a JSON array, a nested object.
    assert_eq!(
        post("{\"user_name\":".into(), "application/json").await["result"],
        2
    );
    assert_eq!(post("[1,2]".into(), "application/json").await["result"], 2);
    assert_eq!(
        post("{\"des\":{\"a\":1}}".into(), "application/json").await["result"],
        2
    );
    // A parameter given twice, a bad name, invalid UTF-8.
    let (p, _) = TestApp::sign(DEVICE_APP_ID, "/register", DEVICE);
    let form = format!("{}&type=1", serde_urlencoded::to_string(&p).unwrap());
    assert_eq!(
        post(form, "application/x-www-form-urlencoded").await["result"],
        2
    );
    assert_eq!(
        post("a%20b=1".into(), "application/x-www-form-urlencoded").await["result"],
        2
    );
    assert_eq!(
        post("des=%FF".into(), "application/x-www-form-urlencoded").await["result"],
        2
    );
    // Unsupported content type.
    assert_eq!(post("x".into(), "text/plain").await["result"], 2);
    // Unknown endpoint.
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn duplicate_names_wrong_passwords_unknown_users_and_wrong_types_are_refused() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    app.register_device("12345678", "device-pass-1", "").await;
    app.register_phone("13800138000", "phone-pass-1", "").await;
    let before = app.snapshot().await;

    // Duplicate user name: as a device, and as a phone with the same name.
    let body = app
        .call(
            DEVICE_APP_ID,
            "/register",
            &[
                ("user_name", "12345678"),
                ("password", "x-pass-123"),
                ("type", "2"),
                ("device_type", "lamp"),
            ],
        )
        .await;
    assert_eq!(body["result"], 103, "{body}");
    let (id, answer, _) = app.captcha().await;
    let body = app
        .call(
            APP_ID,
            "/register",
            &[
                ("user_name", "12345678"),
                ("password", "x-pass-123"),
                ("type", "1"),
                ("verify_code", &answer),
                ("captcha_id", &id),
            ],
        )
        .await;
    assert_eq!(body["result"], 103, "{body}");

    // Wrong password, unknown user.
    let body = app.login_device("12345678", "device-pass-2").await;
    assert_eq!(body["result"], 102, "{body}");
    let body = app.login_device("87654321", "device-pass-1").await;
    assert_eq!(body["result"], 104, "{body}");
    // Wrong type: the device's name logged in as a phone is unknown to
    // phones (answering 102 would tell that the name exists).
    let body = app.login_phone("12345678", "device-pass-1").await;
    assert_eq!(body["result"], 104, "{body}");
    // A phone login without a captcha.
    let body = app
        .call(
            APP_ID,
            "/login",
            &[
                ("user_name", "13800138000"),
                ("password", "phone-pass-1"),
                ("type", "1"),
            ],
        )
        .await;
    assert_eq!(body["result"], 5, "{body}");
    // Cancel with a wrong password.
    let body = app.cancel_device("12345678", "wrong-pass").await;
    assert_eq!(body["result"], 102, "{body}");

    // get_users: no token, a bad token, a malformed list.
    let body = app
        .call(APP_ID, "/get_users", &[("user_name_ls", "[\"12345678\"]")])
        .await;
    assert_eq!(body["result"], 2, "{body}");
    let fake = format!("jgt_{}", "A".repeat(43));
    let body = app
        .call(
            APP_ID,
            "/get_users",
            &[("access_token", &fake), ("user_name_ls", "[\"12345678\"]")],
        )
        .await;
    assert_eq!(body["result"], 4, "{body}");
    let login = app.login_device("12345678", "device-pass-1").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let before_lists = app.snapshot().await;
    for bad in ["12345678", "[]", "[1]", "[\"a b\"]", "{\"a\":1}"] {
        let body = app
            .call(
                APP_ID,
                "/get_users",
                &[("access_token", &token), ("user_name_ls", bad)],
            )
            .await;
        assert_eq!(body["result"], 2, "{bad}: {body}");
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("user{i}")).collect();
    let body = app
        .call(
            APP_ID,
            "/get_users",
            &[
                ("access_token", &token),
                ("user_name_ls", &serde_json::to_string(&too_many).unwrap()),
            ],
        )
        .await;
    assert_eq!(body["result"], 2, "{body}");
    assert_eq!(app.snapshot().await, before_lists);
    // Everything before the successful login changed nothing.
    assert_eq!(before["accounts"], before_lists["accounts"]);
    assert_eq!(before["xmpp"], before_lists["xmpp"]);
}

#[tokio::test]
async fn get_users_answers_public_fields_and_reports_unknown_names() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    app.register_device("SN-PUB-1", "device-pass-1", "Porch light")
        .await;
    app.register_phone("13800138000", "phone-pass-1", "Alice")
        .await;
    let login = app.login_phone("13800138000", "phone-pass-1").await;
    let token = login["access_token"].as_str().unwrap();
    let body = app
        .call_json(
            APP_ID,
            "/get_users",
            &[
                ("access_token", token),
                (
                    "user_name_ls",
                    "[\"SN-PUB-1\",\"nobody-here\",\"13800138000\"]",
                ),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    let infos = body["user_info_ls"].as_array().unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0]["user_name"], "SN-PUB-1");
    assert_eq!(infos[0]["des"], "Porch light");
    assert_eq!(infos[0]["type"], 2);
    assert!(infos[0]["jid"].as_str().unwrap().starts_with("d."));
    for info in infos {
        assert!(
            info.get("jid_pwd").is_none() && info.get("password").is_none(),
            "{info}"
        );
    }
    assert_eq!(body["unknown_ls"], serde_json::json!(["nobody-here"]));
}

#[tokio::test]
async fn rate_limits_answer_code_9() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml(
            "[rate_limits]\nverify_code_per_minute = 3\nregister_per_minute = 2\n\
                   failed_login_per_account_per_minute = 2\n",
        ),
    )
    .await;
    // Captchas per address.
    for _ in 0..3 {
        let r = app
            .client
            .get(app.url("/verify_code"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .client
        .get(app.url("/verify_code"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"], 9, "{body}");

    // Registrations per address.
    app.register_device("SN-RATE-1", "device-pass-1", "").await;
    app.register_device("SN-RATE-2", "device-pass-1", "").await;
    let body = device_register(&app, with(DEVICE, "user_name", "SN-RATE-3")).await;
    assert_eq!(body["result"], 9, "{body}");
    assert_eq!(app.count("select count(*) from account").await, 2);

    // Failed logins per device: after two failures even the right password
    // waits.
    for _ in 0..2 {
        let body = app.login_device("SN-RATE-1", "wrong-password").await;
        assert_eq!(body["result"], 102, "{body}");
    }
    let body = app.login_device("SN-RATE-1", "wrong-password").await;
    assert_eq!(body["result"], 9, "{body}");
    let body = app.login_device("SN-RATE-1", "device-pass-1").await;
    assert_eq!(body["result"], 9, "{body}");
    assert!(body["retry_after"].as_u64().unwrap() >= 1);
    // Another account is not affected.
    let body = app.login_device("SN-RATE-2", "device-pass-1").await;
    assert_eq!(body["result"], 0, "{body}");
}
