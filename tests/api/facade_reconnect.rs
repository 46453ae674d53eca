//! The facade's XMPP side dropping under a live session: it logs in again
//! with backoff (push `xmpp_state`), or gives up with `session_end`.

use jidgate::facade::envelope::errno;
use serde_json::json;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::message::{Lang, Message};
use xmpp_parsers::stanza::Stanza;

use crate::binding::phone;
use crate::facade_chat::{plain, plain_next};
use crate::facade_client::Ws;
use crate::helpers::*;
use crate::servers::XmppServer;

/// Quick retries, so a test does not wait for the default backoff.
const FAST: &str = "[facade]\nreconnect_delay_ms = 100\nreconnect_max_delay_ms = 400\n";

#[tokio::test]
async fn after_the_xmpp_server_restarts_the_session_reconnects_and_gets_new_messages() {
    // Arrange: a facade session, and the XMPP server killed under it.
    let prosody = Prosody::start().await;
    let xmpp: XmppServer = prosody.clone().into();
    let settings = Settings::toml(FAST);
    let app = TestApp::spawn_with(&prosody, settings).await;
    let ua = phone(&app, "13800000081", "").await;
    let ub = phone(&app, "13800000082", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let resume_token = a.ok("session.start", json!({})).await["resume_token"].clone();
    // A push from the first stream that the phone does not acknowledge.
    let p0 = plain(&xmpp, &ub).await;
    p0.send(chat(&ua, "before-crash-1", "before the crash"))
        .await
        .unwrap();
    let before = a.push("newmsg").await;
    assert_eq!(before["data"]["message"]["msgid"], "before-crash-1");

    // Act: SIGKILL, then a request while the server is down.
    prosody.kill();
    let down = a.push("xmpp_state").await;
    let refused = a
        .call(
            "message.send",
            json!({"to": ub.name, "content": "too early"}),
        )
        .await;
    prosody.resume().await;
    let up = a.push("xmpp_state").await;

    // Assert: reconnecting, a documented errno meanwhile, connected again.
    assert_eq!(down["data"]["state"], "reconnecting", "{down}");
    assert_eq!(refused["errno"], errno::RECONNECTING, "{refused}");
    assert_eq!(up["data"]["state"], "connected", "{up}");

    // A message sent after the restart arrives as newmsg, and the
    // session sends again.
    let mut p = plain(&xmpp, &ub).await;
    p.send(chat(&ua, "after-restart-1", "after the restart"))
        .await
        .unwrap();
    let got = a.push("newmsg").await;
    assert_eq!(got["data"]["message"]["content"], "after the restart");
    assert_eq!(got["data"]["message"]["msgid"], "after-restart-1");
    a.ok("message.send", json!({"to": ub.name, "content": "back"}))
        .await;
    let body = plain_next(&mut p, |st| match st {
        Stanza::Message(m) => m.bodies.values().next().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(body, "back");

    // The push of the first stream stayed queued: a resumed socket gets
    // it again, before the newer one, with the same pids.
    a.drop_abruptly();
    let mut a2 = Ws::connect(&app, "").await;
    let r = a2
        .call(
            "session.resume",
            json!({"access_token": ua.token, "resume_token": resume_token, "last_pid": 0}),
        )
        .await;
    assert_eq!(r["errno"], 0, "{r}");
    let first = a2.push("newmsg").await;
    let second = a2.push("newmsg").await;
    assert_eq!(
        (&first["pid"], &second["pid"]),
        (&before["pid"], &got["pid"])
    );
    a2.ack(&second["pid"]).await;
}

#[tokio::test]
async fn receipts_for_pushes_acknowledged_while_the_xmpp_side_is_down_go_out_after_it_reconnects() {
    // Arrange: a's message reaches b's phone, unacknowledged; then the
    // XMPP server is killed under both sessions.
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(&prosody, Settings::toml(FAST)).await;
    let ua = phone(&app, "13800000091", "").await;
    let ub = phone(&app, "13800000092", "").await;
    let mut a = Ws::started(&app, &ua.token).await;
    let mut b = Ws::started(&app, &ub.token).await;
    let sent = a
        .ok("message.send", json!({"to": ub.name, "content": "tick?"}))
        .await;
    let msgid = sent["msgid"].as_str().unwrap().to_owned();
    let got = b.push("newmsg").await;
    assert_eq!(got["data"]["message"]["msgid"], msgid.as_str());
    prosody.kill();
    assert_eq!(b.push("xmpp_state").await["data"]["state"], "reconnecting");
    assert_eq!(a.push("xmpp_state").await["data"]["state"], "reconnecting");

    // Act: b's phone acknowledges while the XMPP side is down; the server
    // comes back.
    b.ack(&got["pid"]).await;
    prosody.resume().await;
    assert_eq!(b.push("xmpp_state").await["data"]["state"], "connected");

    // Assert: a hears that b's phone has the message.
    let ack = a
        .push_where("msgack", |d| d["msgid"] == msgid.as_str())
        .await;
    assert_eq!(ack["data"]["uid"], ub.name.as_str(), "{ack}");
}

/// A chat message to `to` with id `id`.
fn chat(to: &crate::binding::User, id: &str, body: &str) -> Message {
    let mut m = Message::chat(Some(Jid::from(to.bare())));
    m.id = Some(xmpp_parsers::message::Id(id.into()));
    m.bodies.insert(Lang::default(), body.into());
    m
}

#[tokio::test]
async fn an_xmpp_server_that_stays_down_ends_the_session_after_the_reconnect_timeout() {
    // Arrange
    let prosody = Prosody::start().await;
    let settings = Settings::toml(format!("{FAST}reconnect_timeout = 2\n"));
    let app = TestApp::spawn_with(&prosody, settings).await;
    let ua = phone(&app, "13800000083", "").await;
    let mut a = Ws::started(&app, &ua.token).await;

    // Act
    prosody.kill();

    // Assert: reconnecting, then session_end and the socket closes.
    let down = a.push("xmpp_state").await;
    assert_eq!(down["data"]["state"], "reconnecting", "{down}");
    let end = a.push("session_end").await;
    assert!(
        end["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{end}"
    );
    a.closed().await;
}
