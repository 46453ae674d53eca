//! Secrets (issue 11): a whole scripted session against the real binary
//! logging at trace level (register, login, bind, refresh, verify, change
//! password, unbind, logout, cancel, and failures). Every log line and
//! every answer is searched for each password, JID password, token, bind
//! code, app secret and key used: none appears where it does not belong.

use serde_json::Value;

use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings};
use crate::scripted::{ScriptedProcess, plain_blob, token_fields};

#[tokio::test]
async fn no_secret_appears_in_the_log_at_trace_level_or_in_an_answer_where_it_does_not_belong() {
    // Arrange: the real binary logging everything it can.
    let prosody = Prosody::start().await;
    let proc = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings {
            rust_log: Some("trace".into()),
            // The reconciler must not race the requests in flight.
            toml: "[reconcile]\ngrace = 30\n".into(),
            ..Default::default()
        },
    )
    .await;
    let s = ScriptedProcess::new(&proc);
    let mut secrets: Vec<String> = vec![
        APP_SECRET.into(),
        DEVICE_SECRET.into(),
        SERVICE_SECRET.into(),
        ADMIN_PASSWORD.into(),
        JID_KEY.into(),
        hex::encode(key_for(DEVICE_APP_ID, &[("user_name", "SN-LOG-1")]).bytes()),
    ];

    // Act: a whole session, with failures.
    s.register_device("SN-LOG-1", "device-secret-pass-1").await;
    s.register_phone("13800138006", "phone-secret-pass-1").await;
    secrets.extend(["device-secret-pass-1".into(), "phone-secret-pass-1".into()]);
    let d = s.login_device("SN-LOG-1", "device-secret-pass-1").await;
    let p = s.login_phone("13800138006", "phone-secret-pass-1").await;
    secrets.extend(d.secrets());
    secrets.extend(p.secrets());
    let code = s.bind_code(&d).await;
    secrets.push(code.clone());
    assert_eq!(s.bind(&p, &d.name, &code).await["result"], 0);
    let view = s.bindings(&p).await;
    assert_eq!(view["consistent"], true, "{view}");
    let refreshed = s.refresh_phone(&p).await;
    secrets.extend(token_fields(&refreshed));
    let (captcha_id, answer) = s.captcha().await;
    let body = s
        .call(
            APP_ID,
            "/change_password",
            &[
                ("user_name", &p.name),
                ("password", "phone-secret-pass-1"),
                ("type", "1"),
                ("new_password", "phone-secret-pass-2"),
                ("verify_code", &answer),
                ("captcha_id", &captcha_id),
            ],
            true,
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    secrets.push("phone-secret-pass-2".into());
    let p2 = s.login_phone("13800138006", "phone-secret-pass-2").await;
    secrets.extend(p2.secrets());
    // Failures: a wrong password, a wrong bind code, a stale token.
    let wrong = s.try_login_device("SN-LOG-1", "wrong-secret-pass-9").await;
    assert_eq!(wrong["result"], 102, "{wrong}");
    secrets.push("wrong-secret-pass-9".into());
    assert_ne!(s.bind(&p2, &d.name, "WRONGCODE1").await["result"], 0);
    assert_eq!(s.bindings(&p).await["result"], 4);
    assert_eq!(s.unbind(&p2, &d.name).await["result"], 0);
    let body = s
        .call(
            DEVICE_APP_ID,
            "/cancel",
            &[
                ("user_name", "SN-LOG-1"),
                ("password", "device-secret-pass-1"),
                ("type", "2"),
            ],
            false,
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");

    // A service verifies the last token; the stale one is refused; the
    // phone logs out.
    let verified = s
        .call(
            SERVICE_APP_ID,
            "/verify_access_token",
            &[("access_token", &p2.token)],
            false,
        )
        .await;
    assert_eq!(verified["validate"], true, "{verified}");
    let stale = s
        .call(
            SERVICE_APP_ID,
            "/verify_access_token",
            &[("access_token", &p.token)],
            false,
        )
        .await;
    assert_eq!(stale["validate"], false, "{stale}");
    let out = s
        .call(
            APP_ID,
            "/logout",
            &[("user_name", &p2.name), ("access_token", &p2.token)],
            true,
        )
        .await;
    assert_eq!(out["result"], 0, "{out}");

    // Assert: no answer holds a secret except where it belongs: a login's
    // own `user_info.jid_pwd`, the tokens a login or refresh issues, the
    // bind code (and its URI) `/get_bind_code` gives.
    let mut answer_secrets = secrets.clone();
    for u in [&d, &p, &p2] {
        answer_secrets.push(plain_blob(&u.jid, &u.jid_pwd));
    }
    let answers = s.answers();
    assert!(answers.len() >= 15, "{}", answers.len());
    for (path, body) in &answers {
        let mut rest = body.clone();
        let o = rest.as_object_mut().unwrap();
        match path.as_str() {
            "/login" => {
                o.remove("access_token");
                o.remove("refresh_token");
                if let Some(info) = o.get_mut("user_info").and_then(Value::as_object_mut) {
                    info.remove("jid_pwd");
                }
            }
            "/refresh_token" => {
                o.remove("access_token");
                o.remove("refresh_token");
            }
            "/get_bind_code" => {
                o.remove("bind_code");
                o.remove("bind_uri");
            }
            _ => {}
        }
        let text = rest.to_string();
        for secret in &answer_secrets {
            assert!(
                !text.contains(secret.as_str()),
                "the answer to {path} holds the secret {secret:?}: {body}"
            );
        }
    }

    // Assert: the log is there and verbose, and holds none of the secrets
    // (nor the SASL PLAIN blob of a JID password).
    let log = proc.log();
    assert!(
        log.lines().count() > 50 && log.contains("TRACE") && log.contains("sqlx::query"),
        "{log}"
    );
    for u in [&d, &p, &p2] {
        secrets.push(plain_blob(&u.jid, &u.jid_pwd));
    }
    for secret in &secrets {
        assert!(secret.len() >= 8, "{secret}");
        assert!(
            !log.contains(secret.as_str()),
            "the log contains the secret {secret:?}:\n{}",
            log.lines()
                .filter(|l| l.contains(secret.as_str()))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
