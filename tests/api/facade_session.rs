//! The facade session's token: renewal on the socket, the end of the
//! session when the token is revoked; resuming by URL; and several
//! logins at once with `facade.multi_login`.

use std::time::Duration;

use serde_json::json;

use crate::binding::phone;
use crate::facade_client::Ws;
use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

on_each_server!(
    session_renew_swaps_the_token_without_dropping_the_socket,
    a_revoked_token_ends_the_session_with_session_end,
    a_socket_resumes_by_url_with_resume_token_and_last_pid,
);

async fn session_renew_swaps_the_token_without_dropping_the_socket(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    app.register_phone("13800000121", "phone-pass-1", "").await;
    let login = app.login_phone("13800000121", "phone-pass-1").await;
    let token = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let mut ws = Ws::login(&app, token).await;

    // Act
    let renewed = ws
        .ok("session.renew", json!({"refresh_token": refresh}))
        .await;
    let again = ws
        .call("session.renew", json!({"refresh_token": refresh}))
        .await;

    // Assert: a new pair; the used refresh token is refused (113) and the
    // socket goes on.
    let fresh = renewed["access_token"].as_str().unwrap();
    assert!(fresh.starts_with("jgt_") && fresh != token, "{renewed}");
    assert!(
        renewed["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("jgr_")
    );
    assert_eq!(again["errno"], 113, "{again}");
    ws.ok("session.ping", json!({})).await;
}

async fn a_revoked_token_ends_the_session_with_session_end(kind: Kind) {
    // Arrange: the token is checked every second.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(&xmpp, Settings::toml("[facade]\nidle_timeout = 3\n")).await;
    let u = phone(&app, "13800000131", "").await;
    let mut ws = Ws::login(&app, &u.token).await;
    ws.ok("session.ping", json!({})).await;

    // Act: the user logs out over the register API.
    let body = app
        .call(
            APP_ID,
            "/logout",
            &[("user_name", &u.name), ("access_token", &u.token)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");

    // Assert
    let end = ws.push("session_end").await;
    assert!(end["pid"].as_u64().unwrap() > 0, "{end}");
    ws.closed().await;
}

#[tokio::test]
async fn with_multi_login_two_sessions_of_one_user_both_stay_and_both_get_messages() {
    // Arrange
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(&prosody, Settings::toml("[facade]\nmulti_login = true\n")).await;
    let u = phone(&app, "13800000141", "").await;
    let other = phone(&app, "13800000142", "").await;
    let mut one = Ws::started(&app, &u.token).await;
    let mut two = Ws::started(&app, &u.token).await;

    // Act
    let mut o = Ws::login(&app, &other.token).await;
    o.ok("message.send", json!({"to": u.name, "content": "to both"}))
        .await;

    // Assert
    for ws in [&mut one, &mut two] {
        let m = ws.push("newmsg").await;
        assert_eq!(m["data"]["message"]["content"], "to both");
        assert!(!ws.pushes.iter().any(|p| p["type"] == "anotherlogin"));
    }
}

async fn a_socket_resumes_by_url_with_resume_token_and_last_pid(kind: Kind) {
    // Arrange: b gets two messages, then its socket drops.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000141", "").await;
    let ub = phone(&app, "13800000142", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::login(&app, &ub.token).await;
    let rt = b.ok("session.start", json!({})).await["resume_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for text in ["one", "two"] {
        a.ok("message.send", json!({"to": ub.name, "content": text}))
            .await;
    }
    let one = b.push("newmsg").await;
    let two = b.push("newmsg").await;
    b.drop_abruptly();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act: resume in the URL, having the first push.
    let query = format!(
        "access_token={}&resume_token={rt}&last_pid={}",
        ub.token, one["pid"]
    );
    let mut b2 = Ws::connect(&app, &query).await;
    let again = b2.push("newmsg").await;
    b2.ok("session.ping", json!({})).await;
    let mut stranger = Ws::connect(
        &app,
        &format!("access_token={}&resume_token=no-such-session", ub.token),
    )
    .await;

    // Assert: only the second push again, same pid and msgid; an unknown
    // resume token is errno 3 and the socket closes.
    assert_eq!(again["pid"], two["pid"], "{again}");
    assert_eq!(
        again["data"]["message"]["msgid"],
        two["data"]["message"]["msgid"]
    );
    assert!(
        !b2.pushes.iter().any(|p| p["pid"] == one["pid"]),
        "{:?}",
        b2.pushes
    );
    let refused = stranger.frame().await.expect("a reply");
    assert_eq!(refused["errno"], 3, "{refused}");
    assert!(stranger.frame().await.is_none(), "the socket stays open");
}
