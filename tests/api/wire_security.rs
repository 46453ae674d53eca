//! What an attacker holding the public app secret, a leaked token or an old
//! answer could do on the wire (issue 6, points 3, 4, 11, 13 and the token
//! cache race of 15): each is refused and changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jidgate::signing::SigningKey;
use serde_json::{Value, json};

use crate::binding::{bind, bind_code, bindings_of, device, phone};
use crate::helpers::*;
use crate::token_service::Conn;

#[tokio::test]
async fn a_signature_made_for_one_endpoint_is_refused_at_another() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let p = phone(&app, "13800138000", "").await;
    let d = device(&app, "SN-PATH-1", "").await;
    let code = bind_code(&app, &d).await;
    assert_eq!(bind(&app, &p, &[&d.name], &[&code]).await["result"], 0);
    let before = app.snapshot().await;
    let codes_before = app.count("select count(*) from bind_code").await;

    // The device's own /get_user_banding request, sent to /get_bind_code.
    let as_device = [("user_name", d.name.as_str()), ("access_token", &d.token)];
    let (query, _) = TestApp::sign(DEVICE_APP_ID, "/get_user_banding", &as_device);
    let (_, body) = app.raw_get("/get_bind_code", &query).await;
    assert_eq!(body["result"], 6, "{body}");
    assert!(body.get("bind_code").is_none(), "{body}");

    // The seed's spelling and the alias are different endpoints textually.
    let (_, body) = app.raw_get("/get_user_binding", &query).await;
    assert_eq!(body["result"], 6, "{body}");

    // The device's signed get_users naming its owner, posted to
    // /set_user_unbanding.
    let owner_list = serde_json::to_string(&[&p.name]).unwrap();
    let (form, _) = TestApp::sign(
        DEVICE_APP_ID,
        "/get_users",
        &[
            ("user_name", &d.name),
            ("access_token", &d.token),
            ("user_name_ls", &owner_list),
        ],
    );
    let body = raw_post_form(&app, "/set_user_unbanding", &form).await;
    assert_eq!(body["result"], 6, "{body}");

    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.count("select count(*) from bind_code").await,
        codes_before
    );
    assert_eq!(
        bindings_of(&app, &p).await["roster_item"][0]["subscriptionType"],
        "both"
    );

    // Each request works where it was meant to go (the refused attempts
    // did not use up its nonce).
    let (_, body) = app.raw_get("/get_user_banding", &query).await;
    assert_eq!(body["result"], 0, "{body}");
    let body = raw_post_form(&app, "/get_users", &form).await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(body["user_info_ls"][0]["user_name"], p.name.as_str());
}

#[tokio::test]
async fn signed_answers_echo_the_nonce_so_an_old_answer_does_not_verify_for_a_new_request() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let key = SigningKey::from_bytes(APP_SECRET.as_bytes());
    let mut answers = Vec::new();
    for phone in ["13800138001", "13800138002"] {
        let (id, answer, _) = app.captcha().await;
        let (query, _) = TestApp::sign(
            APP_ID,
            "/register",
            &[
                ("user_name", phone),
                ("password", "phone-pass-1"),
                ("type", "1"),
                ("verify_code", &answer),
                ("captcha_id", &id),
            ],
        );
        let (_, body) = app.raw_get("/register", &query).await;
        assert_eq!(body["result"], 0, "{body}");
        assert_signed(&body, &key);
        assert_eq!(body["nonce"], nonce_of(&query).as_str(), "{body}");
        answers.push((nonce_of(&query), body));
    }
    let (first_nonce, first) = &answers[0];
    let (second_nonce, second) = &answers[1];
    assert_ne!(first["sign"], second["sign"], "two requests, two signs");
    // The old answer, offered as the answer to the second request: its
    // nonce is not the second's, and putting the second's in breaks its sign.
    assert_ne!(first["nonce"], second_nonce.as_str());
    let mut forged = first.clone();
    forged["nonce"] = json!(second_nonce);
    assert_ne!(
        key.sign_response(forged.as_object().unwrap()),
        forged["sign"].as_str().unwrap()
    );
    assert_ne!(first_nonce, second_nonce);

    // Errors after the signature check are signed and echo the nonce too.
    let (query, _) = TestApp::sign(
        APP_ID,
        "/get_users",
        &[
            ("access_token", &format!("jgt_{}", "A".repeat(43))),
            ("user_name_ls", "[\"13800138001\"]"),
        ],
    );
    let (_, body) = app.raw_get("/get_users", &query).await;
    assert_eq!(body["result"], 4, "{body}");
    assert_signed(&body, &key);
    assert_eq!(body["nonce"], nonce_of(&query).as_str(), "{body}");
    let (_, body) = app.raw_get("/get_users", &query).await;
    assert_eq!(body["result"], 11, "{body}");
    assert_eq!(body["nonce"], nonce_of(&query).as_str(), "{body}");
}

#[tokio::test]
async fn json_bodies_with_a_repeated_key_are_code_2_and_change_nothing() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let before = app.snapshot().await;
    let device = [
        ("user_name", "SN-DUP-1"),
        ("password", "device-pass-2"),
        ("type", "2"),
        ("device_type", "lamp"),
    ];

    // A repeated member at the top level, signed over the value a
    // last-one-wins parser keeps.
    let (pairs, _) = TestApp::sign(DEVICE_APP_ID, "/register", &device);
    let mut members: Vec<String> = vec!["\"password\":\"device-pass-1\"".into()];
    members.extend(
        pairs
            .iter()
            .map(|(k, v)| format!("{}:{}", json!(k), json!(v))),
    );
    let body = raw_post_json(&app, "/register", format!("{{{}}}", members.join(","))).await;
    assert_eq!(body["result"], 2, "{body}");

    // A repeated member inside an object inside an array.
    let mut with_des = device.to_vec();
    with_des.push(("des", "[{\"a\":2}]"));
    let (pairs, _) = TestApp::sign(DEVICE_APP_ID, "/register", &with_des);
    let members: Vec<String> = pairs
        .iter()
        .map(|(k, v)| match k.as_str() {
            "des" => "\"des\":[{\"a\":1,\"a\":2}]".to_owned(),
            _ => format!("{}:{}", json!(k), json!(v)),
        })
        .collect();
    let body = raw_post_json(&app, "/register", format!("{{{}}}", members.join(","))).await;
    assert_eq!(body["result"], 2, "{body}");
    assert_eq!(app.snapshot().await, before);

    // The token service: a hello with its nonce twice, and a repeated
    // member in a later line.
    let mut c = Conn::open(&app).await;
    let ts = jidgate::now().to_string();
    let nonce = jidgate::crypto::random_token::<12>();
    let params = [
        ("seq", "1"),
        ("cmd", "hello"),
        ("app_id", SERVICE_APP_ID),
        ("ts", ts.as_str()),
        ("nonce", nonce.as_str()),
    ];
    let sign =
        key_for(SERVICE_APP_ID, &[]).sign(jidgate::signing::canonical_request(params).as_bytes());
    c.send(&format!(
        "{{\"seq\":1,\"cmd\":\"hello\",\"app_id\":\"{SERVICE_APP_ID}\",\"ts\":\"{ts}\",\
         \"nonce\":\"first-nonce-1\",\"nonce\":\"{nonce}\",\"param_sign\":\"{sign}\"}}\n"
    ))
    .await;
    let r = c.recv().await;
    assert_eq!(r["result"], 2, "{r}");
    let mut c = Conn::authenticated(&app).await;
    c.send("{\"seq\":2,\"cmd\":\"ping\",\"x\":1,\"x\":2}\n")
        .await;
    assert_eq!(c.recv().await["result"], 2);
    c.send("{\"seq\":3,\"cmd\":\"ping\",\"x\":{\"y\":1,\"y\":2}}\n")
        .await;
    assert_eq!(c.recv().await["result"], 2);
    assert_eq!(c.ask(json!({"seq": 4, "cmd": "ping"})).await["result"], 0);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_device_token_under_the_public_app_secret_gets_no_bind_code_refresh_or_control() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let p = phone(&app, "13800138000", "").await;
    app.register_device("SN-LEAK-1", "device-pass-1", "").await;
    let login = app.login_device("SN-LEAK-1", "device-pass-1").await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let other = device(&app, "SN-LEAK-2", "").await;
    let d = crate::binding::User {
        name: "SN-LEAK-1".into(),
        password: "device-pass-1".into(),
        token: access.clone(),
        jid: String::new(),
        jid_pwd: String::new(),
        is_device: true,
    };
    let code = bind_code(&app, &d).await;
    assert_eq!(bind(&app, &p, &[&d.name], &[&code]).await["result"], 0);
    let before = app.snapshot().await;
    let as_leaked = [
        ("user_name", "SN-LEAK-1"),
        ("access_token", access.as_str()),
    ];

    // The leaked token with the phone app's (public) secret.
    let body = app.call(APP_ID, "/get_bind_code", &as_leaked).await;
    assert_eq!(body["result"], 4, "{body}");
    assert_eq!(app.count("select count(*) from bind_code").await, 0);
    let body = app
        .call(APP_ID, "/refresh_token", &[("refresh_token", &refresh)])
        .await;
    assert_eq!(body["result"], 4, "{body}");
    let body = app
        .call(
            APP_ID,
            "/refresh_token",
            &[("user_name", "SN-LEAK-1"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(body["result"], 4, "{body}");
    let body = app.call(APP_ID, "/get_user_banding", &as_leaked).await;
    assert_eq!(body["result"], 4, "{body}");
    let mut unbind = as_leaked.to_vec();
    let owners = serde_json::to_string(&[&p.name]).unwrap();
    unbind.push(("user_name_ls", &owners));
    let body = app.call(APP_ID, "/set_user_unbanding", &unbind).await;
    assert_eq!(body["result"], 4, "{body}");
    let lookup = [("access_token", access.as_str()), ("user_name_ls", &owners)];
    let body = app.call(APP_ID, "/get_users", &lookup).await;
    assert_eq!(body["result"], 4, "{body}");

    // The leaked token with another device's own key (naming that device,
    // or naming the owner of the token but signed for the other device).
    let as_other = [
        ("user_name", other.name.as_str()),
        ("access_token", &access),
    ];
    let body = app.call(DEVICE_APP_ID, "/get_bind_code", &as_other).await;
    assert_eq!(body["result"], 4, "{body}");
    let (mut query, _) = TestApp::sign(DEVICE_APP_ID, "/get_bind_code", &as_other);
    for (k, v) in query.iter_mut() {
        if k == "user_name" {
            *v = "SN-LEAK-1".into();
        }
    }
    let (_, body) = app.raw_get("/get_bind_code", &query).await;
    assert_eq!(body["result"], 6, "{body}");

    // Nothing was issued, refreshed or unbound.
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.count("select count(*) from bind_code").await, 0);
    let body = app
        .call(
            SERVICE_APP_ID,
            "/verify_access_token",
            &[("access_token", &access)],
        )
        .await;
    assert_eq!(body["validate"], true, "{body}");
    assert_eq!(body["app_id"], DEVICE_APP_ID, "{body}");

    // The device itself, with its own key, still can.
    assert_eq!(
        app.call(DEVICE_APP_ID, "/get_bind_code", &as_leaked).await["result"],
        0
    );
    let body = app
        .call(
            DEVICE_APP_ID,
            "/refresh_token",
            &[("user_name", "SN-LEAK-1"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
}

const APP2_ID: &str = "phone-app-2";
const APP2_SECRET: &str = "second-phone-app-secret-for-tests-0123";

/// The test apps plus a second app of kind `app`.
fn two_phone_apps() -> String {
    format!(
        "[[apps]]\napp_id = \"{APP_ID}\"\nsecret = \"{APP_SECRET}\"\nkind = \"app\"\n\
         [[apps]]\napp_id = \"{APP2_ID}\"\nsecret = \"{APP2_SECRET}\"\nkind = \"app\"\n\
         [[apps]]\napp_id = \"{DEVICE_APP_ID}\"\nsecret = \"{DEVICE_SECRET}\"\nkind = \"device\"\n\
         [[apps]]\napp_id = \"{SERVICE_APP_ID}\"\nsecret = \"{SERVICE_SECRET}\"\nkind = \"service\"\n"
    )
}

#[tokio::test]
async fn a_token_is_refused_for_another_user_and_under_another_app() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(&prosody, Settings::toml(two_phone_apps())).await;
    let alice = phone(&app, "13800138001", "").await;
    let bob = phone(&app, "13800138002", "").await;
    let before = app.snapshot().await;

    // Bob's token naming Alice.
    let body = app
        .call(
            APP_ID,
            "/get_user_banding",
            &[("user_name", &alice.name), ("access_token", &bob.token)],
        )
        .await;
    assert_eq!(body["result"], 4, "{body}");
    // Alice's token, naming Alice, signed by another phone app.
    let key2 = SigningKey::from_bytes(APP2_SECRET.as_bytes());
    let mut pairs: Vec<(String, String)> = [
        ("user_name", alice.name.as_str()),
        ("access_token", &alice.token),
        ("app_id", APP2_ID),
        ("ts", &jidgate::now().to_string()),
        ("nonce", &jidgate::crypto::random_token::<12>()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = sign_pairs(&key2, "/get_user_banding", &pairs);
    pairs.push(("param_sign".into(), signature));
    let (_, body) = app.raw_get("/get_user_banding", &pairs).await;
    assert_eq!(body["result"], 4, "{body}");
    assert_signed(&body, &key2);
    // Alice's token with /get_users, naming Bob, or signed by the other app.
    let list = serde_json::to_string(&[&bob.name]).unwrap();
    let body = app
        .call(
            APP_ID,
            "/get_users",
            &[
                ("user_name", &bob.name),
                ("access_token", &alice.token),
                ("user_name_ls", &list),
            ],
        )
        .await;
    assert_eq!(body["result"], 4, "{body}");

    // A service has no token to use: those calls are not for its kind.
    for path in ["/get_users", "/get_user_banding", "/logout"] {
        let body = app
            .call(
                SERVICE_APP_ID,
                path,
                &[
                    ("user_name", &alice.name),
                    ("access_token", &alice.token),
                    ("user_name_ls", &list),
                ],
            )
            .await;
        assert_eq!(body["result"], 12, "{path}: {body}");
    }

    assert_eq!(app.snapshot().await, before);
    // Her own app, her own name: fine.
    let body = app
        .call(
            APP_ID,
            "/get_users",
            &[("access_token", &alice.token), ("user_name_ls", &list)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
}

#[tokio::test]
async fn logins_past_the_session_cap_revoke_the_oldest_session() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[tokens]\nmax_sessions_per_account = 10\n"),
    )
    .await;
    app.register_device("SN-CAP-1", "device-pass-1", "").await;
    let mut c = Conn::authenticated(&app).await;
    let mut logins = Vec::new();
    for _ in 0..10 {
        let login = app.login_device("SN-CAP-1", "device-pass-1").await;
        assert_eq!(login["result"], 0, "{login}");
        logins.push(login);
    }
    let first = logins[0]["access_token"].as_str().unwrap().to_owned();
    let verify =
        |seq: i64, t: &str| json!({"seq": seq, "cmd": "verify_access_token", "access_token": t});
    // Cached as valid before the eleventh login.
    assert_eq!(c.ask(verify(1, &first)).await["validate"], true);
    let login = app.login_device("SN-CAP-1", "device-pass-1").await;
    assert_eq!(login["result"], 0, "{login}");
    logins.push(login);

    assert_eq!(c.ask(verify(2, &first)).await["result"], 4);
    let body = app
        .call(
            DEVICE_APP_ID,
            "/refresh_token",
            &[
                ("user_name", "SN-CAP-1"),
                (
                    "refresh_token",
                    logins[0]["refresh_token"].as_str().unwrap(),
                ),
            ],
        )
        .await;
    assert_eq!(body["result"], 113, "{body}");
    for (i, login) in logins.iter().enumerate().skip(1) {
        let t = login["access_token"].as_str().unwrap();
        assert_eq!(
            c.ask(verify(10 + i as i64, t)).await["validate"],
            true,
            "login {i}"
        );
    }
    assert_eq!(app.count("select count(*) from session").await, 10);
    assert_eq!(app.count("select count(*) from token").await, 20);
}

#[tokio::test]
async fn logout_revokes_the_session_of_the_token_presented_and_no_other() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    app.register_device("SN-OUT-1", "device-pass-1", "").await;
    let one = app.login_device("SN-OUT-1", "device-pass-1").await;
    let two = app.login_device("SN-OUT-1", "device-pass-1").await;
    let (a1, r1) = (
        one["access_token"].as_str().unwrap(),
        one["refresh_token"].as_str().unwrap(),
    );
    let (a2, r2) = (
        two["access_token"].as_str().unwrap(),
        two["refresh_token"].as_str().unwrap(),
    );
    let mut c = Conn::authenticated(&app).await;
    let verify =
        |seq: i64, t: &str| json!({"seq": seq, "cmd": "verify_access_token", "access_token": t});
    assert_eq!(c.ask(verify(1, a1)).await["validate"], true);

    // Not with the public app secret, nor without the token.
    let body = app
        .call(
            APP_ID,
            "/logout",
            &[("user_name", "SN-OUT-1"), ("access_token", a1)],
        )
        .await;
    assert_eq!(body["result"], 4, "{body}");
    let body = app
        .call(DEVICE_APP_ID, "/logout", &[("user_name", "SN-OUT-1")])
        .await;
    assert_eq!(body["result"], 2, "{body}");
    assert_eq!(c.ask(verify(2, a1)).await["validate"], true);
    assert_eq!(app.count("select count(*) from session").await, 2);

    // The device's own key.
    let body = app
        .call(
            DEVICE_APP_ID,
            "/logout",
            &[("user_name", "SN-OUT-1"), ("access_token", a1)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(
        c.ask(verify(3, a1)).await["result"],
        4,
        "cached entry dropped"
    );
    let refresh = |t: &str| {
        let t = t.to_owned();
        let app = &app;
        async move {
            app.call(
                DEVICE_APP_ID,
                "/refresh_token",
                &[("user_name", "SN-OUT-1"), ("refresh_token", &t)],
            )
            .await
        }
    };
    assert_eq!(refresh(r1).await["result"], 113);
    let body = app
        .call(
            DEVICE_APP_ID,
            "/logout",
            &[("user_name", "SN-OUT-1"), ("access_token", a1)],
        )
        .await;
    assert_eq!(body["result"], 4, "{body}");
    // The other session lives on.
    assert_eq!(c.ask(verify(4, a2)).await["validate"], true);
    assert_eq!(refresh(r2).await["result"], 0);
    assert_eq!(app.count("select count(*) from session").await, 1);

    // A phone logs out with the app's key.
    let p = phone(&app, "13800138000", "").await;
    let body = app
        .call(
            APP_ID,
            "/logout",
            &[("user_name", &p.name), ("access_token", &p.token)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(c.ask(verify(5, &p.token)).await["result"], 4);
}

#[tokio::test]
async fn a_token_read_just_before_its_revocation_is_not_cached_as_valid_after_it() {
    let prosody = Prosody::start().await;
    let armed = Arc::new(AtomicBool::new(false));
    let reached = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (a, r, l) = (armed.clone(), reached.clone(), release.clone());
    // The first database read of a token after arming waits, having read
    // the token as valid, until the test has revoked it.
    let faults = hook(move |point| {
        let fire = point == "tokens.lookup.after_read" && a.swap(false, Ordering::SeqCst);
        let (r, l) = (r.clone(), l.clone());
        Box::pin(async move {
            if fire {
                r.notify_one();
                l.notified().await;
            }
            Ok(())
        })
    });
    let app = TestApp::spawn_with(
        &prosody,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    app.register_device("SN-RACE-1", "device-pass-1", "").await;
    let login = app.login_device("SN-RACE-1", "device-pass-1").await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let verify = || async {
        app.call(
            SERVICE_APP_ID,
            "/verify_access_token",
            &[("access_token", access.as_str())],
        )
        .await
    };

    armed.store(true, Ordering::SeqCst);
    let revoke = async {
        reached.notified().await;
        // Revoked (every session of the account) while the read is paused.
        let body = app
            .call(
                DEVICE_APP_ID,
                "/change_password",
                &[
                    ("user_name", "SN-RACE-1"),
                    ("password", "device-pass-1"),
                    ("type", "2"),
                    ("new_password", "device-pass-2"),
                ],
            )
            .await;
        assert_eq!(body["result"], 0, "{body}");
        release.notify_one();
    };
    let (during, ()) = tokio::join!(verify(), revoke);
    // The request that raced the revocation may see the token as it was...
    assert_eq!(during["result"], 0, "{during}");
    // ...but nothing after the revocation may.
    let after = verify().await;
    assert_eq!(after["result"], 4, "{after}");
    let mut c = Conn::authenticated(&app).await;
    let r = c
        .ask(json!({"seq": 1, "cmd": "verify_access_token", "access_token": access}))
        .await;
    assert_eq!(r["result"], 4, "{r}");
}

/// A POST of already-signed form parameters, answer unchecked.
async fn raw_post_form(app: &TestApp, path: &str, form: &[(String, String)]) -> Value {
    app.client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A POST of a JSON body given as text, answer unchecked.
async fn raw_post_json(app: &TestApp, path: &str, body: String) -> Value {
    app.client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
