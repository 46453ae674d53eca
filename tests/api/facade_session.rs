//! The facade session's token: renewal on the socket, the end of the
//! session when the token is revoked; and several logins at once with
//! `facade.multi_login`.

use serde_json::json;

use crate::binding::phone;
use crate::facade_client::Ws;
use crate::helpers::*;

#[tokio::test]
async fn session_renew_swaps_the_token_without_dropping_the_socket() {
    // Arrange
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
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

#[tokio::test]
async fn a_revoked_token_ends_the_session_with_session_end() {
    // Arrange: the token is checked every second.
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings {
            toml: "[facade]\nidle_timeout = 3\n".into(),
            ..Default::default()
        },
    )
    .await;
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
    let app = TestApp::spawn_with(
        &prosody,
        Settings {
            toml: "[facade]\nmulti_login = true\n".into(),
            ..Default::default()
        },
    )
    .await;
    let u = phone(&app, "13800000141", "").await;
    let other = phone(&app, "13800000142", "").await;
    let mut one = Ws::login(&app, &u.token).await;
    one.ok("session.start", json!({})).await;
    let mut two = Ws::login(&app, &u.token).await;
    two.ok("session.start", json!({})).await;

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
