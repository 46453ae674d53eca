use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

async fn a_device_registers_logs_in_uses_its_jid_and_cancel_removes_it(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;

    // Act: register (signed with the device's own key, no captcha), log in.
    app.register_device("SN-0001", "device-pass-1", "Kitchen lamp")
        .await;
    let login = app.login_device("SN-0001", "device-pass-1").await;

    // Assert: the answer has what a device needs, and never the password.
    assert_eq!(login["result"], 0, "{login}");
    let info = &login["user_info"];
    assert_eq!(info["user_name"], "SN-0001");
    assert_eq!(info["des"], "Kitchen lamp");
    assert_eq!(info["type"], 2);
    assert_eq!(info["device_type"], "lamp");
    assert!(info.get("password").is_none(), "{info}");
    let jid = info["jid"].as_str().unwrap().to_owned();
    let jid_pwd = info["jid_pwd"].as_str().unwrap().to_owned();
    assert!(
        jid.starts_with("d.") && jid.ends_with("@localhost"),
        "{jid}"
    );
    assert!(jid_pwd.len() >= 32, "JID password has at least 128 bits");
    assert!(login["access_token"].as_str().unwrap().starts_with("jgt_"));
    assert!(login["expires_at"].as_i64().unwrap() > jidgate::now());
    let local = jid.split('@').next().unwrap();
    assert!(xmpp.has_account(local));

    // A real XMPP client logs in with the returned credentials.
    let session = xmpp.login(&jid, &jid_pwd).await.expect("XMPP login");
    assert_eq!(session.jid().to_bare().to_string(), jid);
    session.close().await;

    // Cancel: the JID is gone, and so is the account.
    let cancel = app.cancel_device("SN-0001", "device-pass-1").await;
    assert_eq!(cancel["result"], 0, "{cancel}");
    let err = xmpp
        .login(&jid, &jid_pwd)
        .await
        .err()
        .expect("login must fail");
    assert!(err.is_auth(), "{err}");
    assert!(!xmpp.has_account(local));
    assert_eq!(app.count("select count(*) from account").await, 0);
    assert_eq!(app.count("select count(*) from token").await, 0);
    let again = app.login_device("SN-0001", "device-pass-1").await;
    assert_eq!(again["result"], 104, "{again}");
}

async fn a_phone_registers_with_a_correct_captcha_given_as_parameter_or_cookie(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;

    // Captcha id as a parameter, answer in upper case (case-insensitive).
    let (id, answer, png) = app.captcha().await;
    assert_eq!(&png[..4], b"\x89PNG");
    let upper = answer.to_uppercase();
    let body = app
        .call_form(
            APP_ID,
            "/register",
            &[
                ("user_name", "+8613800138000"),
                ("password", "phone-pass-1"),
                ("type", "1"),
                ("verify_code", &upper),
                ("captcha_id", &id),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");

    // Captcha id in the cookie, JSON body.
    let (id2, answer2, _) = app.captcha().await;
    let (pairs, key) = TestApp::sign(
        APP_ID,
        "/register",
        &[
            ("user_name", "13900139000"),
            ("password", "phone-pass-2"),
            ("type", "1"),
            ("verify_code", &answer2),
        ],
    );
    let nonce = nonce_of(&pairs);
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let request = app
        .client
        .post(app.url("/register"))
        .header("cookie", format!("captcha_id={id2}"))
        .json(&object);
    let body = app.answer_to(request, &key, &nonce).await;
    assert_eq!(body["result"], 0, "{body}");

    let rows = app.account_rows().await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(_, state, local)| state == "active" && local.starts_with("p."))
    );
    for (_, _, local) in &rows {
        assert!(xmpp.has_account(local));
    }

    // The phone logs in (login needs a captcha too) and its JID works.
    let login = app.login_phone("+8613800138000", "phone-pass-1").await;
    assert_eq!(login["result"], 0, "{login}");
    let s = xmpp
        .login(
            login["user_info"]["jid"].as_str().unwrap(),
            login["user_info"]["jid_pwd"].as_str().unwrap(),
        )
        .await
        .expect("XMPP login");
    s.close().await;
}

#[tokio::test]
async fn a_wrong_expired_or_reused_captcha_creates_nothing() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(&prosody, Settings::toml("[captcha]\nttl = 1\n")).await;
    let register = |id: String, answer: String| {
        let app = &app;
        async move {
            app.call(
                APP_ID,
                "/register",
                &[
                    ("user_name", "13700137000"),
                    ("password", "phone-pass-1"),
                    ("type", "1"),
                    ("verify_code", &answer),
                    ("captcha_id", &id),
                ],
            )
            .await
        }
    };
    let before = app.snapshot().await;

    // Wrong answer; the captcha is used up by the attempt.
    let (id, answer, _) = app.captcha().await;
    let wrong = format!("{answer}x");
    assert_eq!(register(id.clone(), wrong).await["result"], 5);
    assert_eq!(
        register(id, answer).await["result"],
        5,
        "a captcha is single use"
    );

    // No captcha at all, or an unknown id.
    let (pairs, _) = TestApp::sign(
        APP_ID,
        "/register",
        &[
            ("user_name", "13700137000"),
            ("password", "phone-pass-1"),
            ("type", "1"),
        ],
    );
    let (_, body) = app.raw_get("/register", &pairs).await;
    assert_eq!(body["result"], 5, "{body}");
    assert_eq!(register("nope".into(), "abcde".into()).await["result"], 5);

    // Expired.
    let (id, answer, _) = app.captcha().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(register(id, answer).await["result"], 5);

    // Reused after a success: the first use registers, the second is refused.
    let (id, answer, _) = app.captcha().await;
    assert_eq!(register(id.clone(), answer.clone()).await["result"], 0);
    let body = app
        .call(
            APP_ID,
            "/register",
            &[
                ("user_name", "13700137001"),
                ("password", "phone-pass-1"),
                ("type", "1"),
                ("verify_code", &answer),
                ("captcha_id", &id),
            ],
        )
        .await;
    assert_eq!(body["result"], 5, "{body}");

    // Only the one good registration happened.
    let after = app.snapshot().await;
    assert_eq!(after["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(
        after["xmpp"].as_array().unwrap().len(),
        before["xmpp"].as_array().unwrap().len() + 1
    );
}

#[tokio::test]
async fn a_wechat_user_registers_with_a_captcha_and_logs_in_without_one() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let (id, answer, _) = app.captcha().await;
    let body = app
        .call(
            APP_ID,
            "/register",
            &[
                ("user_name", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
                ("password", "wechat-pass"),
                ("type", "3"),
                ("verify_code", &answer),
                ("captcha_id", &id),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    let login = app
        .call(
            APP_ID,
            "/login",
            &[
                ("user_name", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
                ("password", "wechat-pass"),
                ("type", "3"),
            ],
        )
        .await;
    assert_eq!(login["result"], 0, "{login}");
    assert!(
        login["user_info"]["jid"]
            .as_str()
            .unwrap()
            .starts_with("w.")
    );
}

async fn the_real_binary_serves_a_device_registration(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let mut jidgate = crate::process::JidgateProcess::spawn(&xmpp).await;

    let body = jidgate
        .call(
            DEVICE_APP_ID,
            "/register",
            &[
                ("user_name", "SN-BIN-1"),
                ("password", "device-pass-1"),
                ("type", "2"),
                ("device_type", "lamp"),
            ],
        )
        .await;

    assert_eq!(body["result"], 0, "{body}\n{}", jidgate.log());
    assert_eq!(xmpp.accounts().len(), 2, "admin and the device");
    jidgate.stop().await;
}

on_each_server!(
    a_device_registers_logs_in_uses_its_jid_and_cancel_removes_it,
    a_phone_registers_with_a_correct_captcha_given_as_parameter_or_cookie,
    the_real_binary_serves_a_device_registration,
);
