//! The WebSocket facade (`/ws`, docs/facade.md): sessions, frames and
//! errors.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::binding::phone;
use crate::facade_client::{Ws, deflate};
use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

on_each_server!(every_bad_frame_gets_its_error_and_the_session_goes_on,);

#[tokio::test]
async fn a_token_in_the_query_opens_a_session_and_session_start_draws_the_first_screen() {
    // Arrange
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let u = phone(&app, "13800000001", "my phone").await;

    // Act
    let mut ws = Ws::login(&app, &u.token).await;
    let first = ws.ok("session.start", json!({})).await;
    let pong = ws.ok("session.ping", json!({})).await;

    // Assert
    assert_eq!(first["user"]["uid"], "13800000001", "{first}");
    assert_eq!(first["user"]["des"], "my phone");
    assert!(first["user"].get("jid_pwd").is_none());
    assert!(first["friends"].as_array().unwrap().is_empty());
    assert!(first["resume_token"].as_str().unwrap().len() > 20);
    assert!(pong["time"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn the_first_frame_must_be_session_start_with_a_valid_token() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let u = phone(&app, "13800000002", "").await;

    // Any other first frame: errno 1, cdata back, closed.
    let mut ws = Ws::connect(&app, "").await;
    let r = ws.call("session.ping", json!({})).await;
    assert_eq!(
        (r["errno"].clone(), r["cdata"].clone()),
        (json!(1), json!("c1"))
    );
    assert!(ws.closed().await.is_empty());

    // A wrong token: errno 1, closed.
    let mut ws = Ws::connect(&app, "").await;
    let r = ws
        .call("session.start", json!({"access_token": "jgt_nope"}))
        .await;
    assert_eq!(r["errno"], 1, "{r}");
    assert!(ws.closed().await.is_empty());

    // The right one, in the first frame.
    let mut ws = Ws::connect(&app, "").await;
    let first = ws
        .ok("session.start", json!({"access_token": u.token}))
        .await;
    assert_eq!(first["user"]["uid"], "13800000002");
}

async fn every_bad_frame_gets_its_error_and_the_session_goes_on(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(
        &xmpp,
        Settings::toml("[facade]\nmax_frame_bytes = 2000\nmax_content_chars = 50\n"),
    )
    .await;
    let u = phone(&app, "13800000003", "").await;
    let mut ws = Ws::login(&app, &u.token).await;
    ws.ok("session.ping", json!({})).await;

    // Invalid JSON: no readable cdata.
    ws.send_json("{not json").await;
    let r = ws.reply_to(&Value::Null).await;
    assert_eq!(r["errno"], 5001, "{r}");
    // func not a string: cdata comes back.
    ws.send_json(r#"{"func":1,"cdata":{"n":[1]}}"#).await;
    let r = ws.reply_to(&json!({"n":[1]})).await;
    assert_eq!(r["errno"], 5001, "{r}");
    // Unknown func.
    assert_eq!(ws.call("user.fly", json!({})).await["errno"], 5002);
    // Missing, wrong-typed, too long, control characters, smuggled JIDs.
    for parm in [
        json!({}),
        json!({"to": 5, "content": "x"}),
        json!({"to": "13800000003", "content": "x".repeat(51)}),
        json!({"to": "13800000003", "content": "a\u{1}b"}),
        json!({"to": "a@b/evil", "content": "x"}),
        json!({"to": "<x/>", "content": "x"}),
    ] {
        let r = ws.call("message.send", parm.clone()).await;
        assert_eq!(r["errno"], 5003, "{parm}: {r}");
    }
    // parm not an object.
    ws.send_json(r#"{"func":"session.ping","parm":[1],"cdata":"p"}"#)
        .await;
    assert_eq!(ws.reply_to(&json!("p")).await["errno"], 5003);
    // Oversized.
    let big = json!({"func":"session.ping","parm":{"x":"y".repeat(3000)},"cdata":"big"});
    ws.send_json(&big.to_string()).await;
    assert_eq!(ws.reply_to(&Value::Null).await["errno"], 5004);
    // A binary frame without usezlib.
    ws.send_raw(Message::Binary(deflate(b"{}").into())).await;
    assert_eq!(ws.reply_to(&Value::Null).await["errno"], 5005);
    // An unknown user.
    let r = ws
        .call("message.send", json!({"to": "13899999999", "content": "x"}))
        .await;
    assert_eq!(r["errno"], 3, "{r}");

    // Assert: still alive.
    ws.ok("session.ping", json!({})).await;
}

#[tokio::test]
async fn compressed_mode_carries_every_frame_as_raw_deflate_both_ways() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let u = phone(&app, "13800000004", "").await;
    let mut ws = Ws::connect(&app, &format!("usezlib=1&access_token={}", u.token)).await;
    let first = ws.ok("session.start", json!({})).await;
    assert_eq!(first["user"]["uid"], "13800000004");
    // Bad deflate data: its error, and the session goes on.
    ws.send_raw(Message::Binary(vec![0xff, 0xfe, 0x00].into()))
        .await;
    assert_eq!(ws.reply_to(&Value::Null).await["errno"], 5005);
    // A text frame in compressed mode.
    ws.send_raw(Message::Text("{}".into())).await;
    assert_eq!(ws.reply_to(&Value::Null).await["errno"], 5005);
    ws.ok("session.ping", json!({})).await;
}

#[tokio::test]
async fn requests_beyond_the_rate_are_too_fast() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[facade]\nrequests_per_second = 3\n"),
    )
    .await;
    let u = phone(&app, "13800000005", "").await;
    let mut ws = Ws::login(&app, &u.token).await;
    let mut errnos = Vec::new();
    for i in 0..6 {
        let req = json!({"func": "session.ping", "cdata": i});
        ws.send_json(&req.to_string()).await;
    }
    for i in 0..6 {
        errnos.push(ws.reply_to(&json!(i)).await["errno"].as_i64().unwrap());
    }
    assert_eq!(errnos.iter().filter(|e| **e == 4).count(), 3, "{errnos:?}");
    assert!(errnos.iter().all(|e| *e == 0 || *e == 4));
}
