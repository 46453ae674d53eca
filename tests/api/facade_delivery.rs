//! The facade's delivery guarantees: another login replaces the first;
//! pushes the phone did not acknowledge are replayed on resume, and past
//! the resume timeout the XMPP server keeps them for the next login.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binding::phone;
use crate::facade_client::Ws;
use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

on_each_server!(
    another_login_of_the_same_user_kicks_the_first,
    a_dropped_socket_resumes_and_gets_every_unacknowledged_push_again,
    past_the_resume_timeout_unacknowledged_messages_arrive_at_the_next_login,
    a_message_the_server_delivers_again_counts_once_as_unread,
);

/// Prosody only: on ejabberd a backlog this large is not yet delivered
/// whole (812 and 815 of 1,200 in two runs; not diagnosed), see
/// docs/facade.md's known limits.
#[tokio::test]
async fn on_prosody_a_backlog_larger_than_the_smacks_queue_survives_a_session_that_never_acknowledged()
 {
    a_backlog_larger_than_the_servers_queue_survives_a_session_that_never_acknowledged(
        Kind::Prosody,
    )
    .await;
}

/// `from` sends `n` texts to `to_uid`; returns their msgids.
async fn send_n(from: &mut Ws, to_uid: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = from
            .ok(
                "message.send",
                json!({"to": to_uid, "content": format!("m{i}")}),
            )
            .await;
        ids.push(r["msgid"].as_str().unwrap().to_owned());
    }
    ids
}

/// The next `n` newmsg pushes: (pid, msgid).
async fn newmsgs(ws: &mut Ws, n: usize) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let p = ws.push("newmsg").await;
        let id = p["data"]["message"]["msgid"].as_str().unwrap().to_owned();
        out.push((p["pid"].clone(), id));
    }
    out
}

async fn another_login_of_the_same_user_kicks_the_first(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let u = phone(&app, "13800000051", "").await;
    let other = phone(&app, "13800000052", "").await;
    let mut first = Ws::started(&app, &u.token).await;

    // Act
    let mut second = Ws::started(&app, &u.token).await;

    // Assert: the first hears why and is closed; the second works.
    let kicked = first.push("anotherlogin").await;
    assert!(kicked["pid"].as_u64().unwrap() > 0, "{kicked}");
    first.closed().await;
    let mut o = Ws::login(&app, &other.token).await;
    o.ok(
        "message.send",
        json!({"to": u.name, "content": "still there?"}),
    )
    .await;
    let m = second.push("newmsg").await;
    assert_eq!(m["data"]["message"]["content"], "still there?");
}

async fn a_dropped_socket_resumes_and_gets_every_unacknowledged_push_again(kind: Kind) {
    // Arrange: b gets three messages and acknowledges only the first.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000061", "").await;
    let ub = phone(&app, "13800000062", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::login(&app, &ub.token).await;
    let resume_token = b.ok("session.start", json!({})).await["resume_token"].clone();
    let ids = send_n(&mut a, &ub.name, 3).await;
    let got = newmsgs(&mut b, 3).await;
    assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), ids);
    b.ack(&got[0].0).await;

    // Act: the socket drops; a new one resumes.
    b.drop_abruptly();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b2 = Ws::connect(&app, "").await;
    let r = b2
        .call(
            "session.resume",
            json!({"access_token": ub.token, "resume_token": resume_token, "last_pid": 0}),
        )
        .await;
    assert_eq!(r["errno"], 0, "{r}");

    // Assert: the two unacknowledged pushes again, same pids and msgids,
    // in order; nothing lost, and receipts once acknowledged.
    let again = newmsgs(&mut b2, 2).await;
    assert_eq!(again, got[1..].to_vec());
    b2.ack(&again[1].0).await;
    for id in &ids[1..] {
        a.push_where("msgack", |d| d["msgid"] == id.as_str()).await;
    }
    // Someone else's token cannot take the session.
    let mut intruder = Ws::connect(&app, "").await;
    let r = intruder
        .call(
            "session.resume",
            json!({"access_token": ua.token, "resume_token": resume_token, "last_pid": 0}),
        )
        .await;
    assert_eq!(r["errno"], 2, "{r}");
}

async fn past_the_resume_timeout_unacknowledged_messages_arrive_at_the_next_login(kind: Kind) {
    // Arrange: a one-second resume window; b acknowledges only the first
    // of three messages, then its socket drops.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            toml: "[facade]\nresume_timeout = 1\n".into(),
            ..Default::default()
        },
    )
    .await;
    let ua = phone(&app, "13800000071", "").await;
    let ub = phone(&app, "13800000072", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::started(&app, &ub.token).await;
    let ids = send_n(&mut a, &ub.name, 3).await;
    let got = newmsgs(&mut b, 3).await;
    b.ack(&got[0].0).await;
    b.drop_abruptly();

    // Act: past the window, b logs in again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut b2 = Ws::login(&app, &ub.token).await;
    let again = newmsgs(&mut b2, 2).await;

    // Assert: exactly the unacknowledged ones, with their msgids.
    let again_ids: Vec<String> = again.iter().map(|g| g.1.clone()).collect();
    assert_eq!(again_ids, ids[1..].to_vec());
    b2.ok("session.ping", json!({})).await;
    assert!(
        !b2.pushes
            .iter()
            .any(|p| p["data"]["message"]["msgid"] == ids[0].as_str()),
        "an acknowledged message came again: {:?}",
        b2.pushes
    );
}

async fn a_message_the_server_delivers_again_counts_once_as_unread(kind: Kind) {
    // Arrange: b gets two messages, acknowledges neither, and its socket
    // drops for longer than the resume window.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            toml: "[facade]\nresume_timeout = 1\n".into(),
            ..Default::default()
        },
    )
    .await;
    let ua = phone(&app, "13800000101", "").await;
    let ub = phone(&app, "13800000102", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::started(&app, &ub.token).await;
    let ids = send_n(&mut a, &ub.name, 2).await;
    newmsgs(&mut b, 2).await;
    b.drop_abruptly();

    // Act: the server delivers both again at the next login.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut b2 = Ws::login(&app, &ub.token).await;
    let again = newmsgs(&mut b2, 2).await;
    b2.ack(&again[1].0).await;
    // (Counted beside delivery: give it a moment.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = b2.ok("session.start", json!({})).await;

    // Assert: the same msgids, counted once each.
    assert_eq!(again.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(
        first["unread"],
        json!([{"uid": ua.name, "count": 2}]),
        "{first}"
    );
}

async fn a_backlog_larger_than_the_servers_queue_survives_a_session_that_never_acknowledged(
    kind: Kind,
) {
    // Arrange: 1,200 messages wait offline for b, more than Prosody's
    // mod_smacks keeps for resending by default (500: past it, its queue
    // forgets the oldest, and a session that ends unacknowledged hands
    // only the newest back to offline storage).
    const N: usize = 1200;
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            toml: "[facade]\nresume_timeout = 1\nrequests_per_second = 100000\n".into(),
            ..Default::default()
        },
    )
    .await;
    let ua = phone(&app, "13800000081", "").await;
    let ub = phone(&app, "13800000082", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let ids = send_n(&mut a, &ub.name, N).await;

    // Act: b logs in, takes a first batch without acknowledging any, and
    // its socket drops; past the resume window it logs in again and
    // acknowledges as it reads.
    let mut b = Ws::login(&app, &ub.token).await;
    for i in 0..100 {
        let got = tokio::time::timeout(Duration::from_secs(8), newmsgs(&mut b, 1)).await;
        assert!(
            got.is_ok(),
            "first login: {i} pushes, then none; others: {:?}",
            b.pushes
        );
    }
    b.drop_abruptly();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut b2 = Ws::login(&app, &ub.token).await;
    let mut seen = std::collections::HashSet::new();
    let mut pushes = 0;
    while seen.len() < N {
        // A lost message leaves this loop waiting.
        let Ok(mut got) = tokio::time::timeout(Duration::from_secs(8), newmsgs(&mut b2, 1)).await
        else {
            break;
        };
        let (pid, id) = got.remove(0);
        pushes += 1;
        seen.insert(id);
        if pid.as_u64().unwrap() % 100 == 0 {
            b2.ack(&pid).await;
        }
    }
    assert_eq!(seen.len(), N, "distinct messages after {pushes} pushes");

    // Assert: every message, by msgid.
    let all: std::collections::HashSet<String> = ids.into_iter().collect();
    assert_eq!(seen, all);
}

/// A phone that leaves its pushes unacknowledged stops its session's
/// reading (backpressure) but can still send: the XMPP session task keeps
/// serving sends while it holds a stanza its reader has no room for.
#[tokio::test]
async fn a_phone_that_does_not_acknowledge_can_still_send() {
    let xmpp = XmppServer::start(Kind::Prosody).await;
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            toml: "[facade]\nrequests_per_second = 100000\nmax_unacked = 50\n".into(),
            ..Default::default()
        },
    )
    .await;
    let ua = phone(&app, "13800000091", "").await;
    let ub = phone(&app, "13800000092", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::login(&app, &ub.token).await;
    a.ok("session.start", json!({})).await;

    // b floods a, which never acknowledges: past 50 pushes and the
    // session's inbound queue, a's stream is no longer read.
    send_n(&mut b, &ua.name, 400).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // a still sends, and b gets it.
    let r = a
        .ok(
            "message.send",
            json!({"to": ub.name, "content": "still here"}),
        )
        .await;
    let got = b
        .push_where("newmsg", |d| d["message"]["content"] == "still here")
        .await;
    assert_eq!(got["data"]["message"]["msgid"], r["msgid"]);
}
