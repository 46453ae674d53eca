//! Request ids: one per request in `X-Request-Id` and in the request's
//! span, chosen by a trusted proxy only; JSON log lines carry it with the
//! user name and never a password.

use serde_json::Value;

use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings};

fn id_of(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_answer_has_its_own_request_id_and_a_client_cannot_choose_it() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let a = app.client.get(app.url("/healthz")).send().await.unwrap();
    let b = app.client.get(app.url("/nowhere")).send().await.unwrap();
    let (a, b) = (id_of(&a), id_of(&b));
    assert_eq!(a.len(), 16, "{a}");
    assert_ne!(a, b);
    // 127.0.0.1 is no trusted proxy here: its id is replaced.
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "chosen-by-client")
        .send()
        .await
        .unwrap();
    assert_ne!(id_of(&r), "chosen-by-client");
}

#[tokio::test]
async fn a_trusted_proxy_passes_its_request_id_on() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[http]\ntrusted_proxies = [\"127.0.0.1\"]\n"),
    )
    .await;
    let (query, _) = TestApp::sign(
        DEVICE_APP_ID,
        "/login",
        &[("user_name", "x"), ("type", "2")],
    );
    for (sent, kept) in [("edge-4711", true), ("bad id with spaces", false)] {
        let r = app
            .client
            .get(app.url("/login"))
            .query(&query)
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        assert_eq!(id_of(&r) == sent, kept, "{sent}");
    }
}

#[tokio::test]
async fn json_log_lines_carry_the_request_id_and_user_but_no_password() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml(
            "[log]\nformat = \"json\"\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        ),
    )
    .await;
    let serial = format!("traced-{}", jidgate::crypto::random_token::<6>());
    let password = "secret-device-pass-9";
    let (query, _) = TestApp::sign(
        DEVICE_APP_ID,
        "/register",
        &[
            ("user_name", &serial),
            ("password", password),
            ("type", "2"),
            ("device_type", "lamp"),
            ("des", ""),
        ],
    );
    let r = p
        .client
        .get(p.url("/register"))
        .query(&query)
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), "trace-me-1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"], 0, "{body}");

    eventually("the registration is logged", || async {
        p.log().contains("account registered")
    })
    .await;
    let log = p.log();
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "account registered")
        .unwrap_or_else(|| panic!("no JSON line for the registration in\n{log}"));
    let span = &line["span"];
    assert_eq!(span["request_id"], "trace-me-1", "{line}");
    assert_eq!(span["user"], serial.as_str(), "{line}");
    assert_eq!(span["route"], "/register", "{line}");
    assert!(!log.contains(password), "the password reached the log");
}
