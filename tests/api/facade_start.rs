//! Messages racing a facade session's start: sent to the user's bare JID
//! and to its `facade` full JID while its XMPP session binds, enables
//! stream management and announces itself; each must arrive as `newmsg`
//! (live, or delayed from offline storage), none lost.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use xmpp_parsers::jid::{FullJid, Jid};
use xmpp_parsers::message::{Id, Lang, Message};

use crate::binding::phone;
use crate::facade_client::Ws;
use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

on_each_server!(messages_sent_while_a_session_starts_all_arrive);

/// Session starts the sender races.
const ROUNDS: usize = 6;

async fn messages_sent_while_a_session_starts_all_arrive(kind: Kind) {
    // Arrange: a plain XMPP client that sends to a's bare and full JID,
    // one message every few milliseconds, until told to stop.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(&xmpp, Settings::toml("[facade]\nresume_timeout = 0\n")).await;
    let ua = phone(&app, "13800000091", "").await;
    // The admin account: ejabberd's c2s shaper would hold an ordinary
    // sender back (config/ejabberd.yml); and a pace that keeps under
    // ejabberd's 100 offline messages per user while a is away.
    let sender = xmpp
        .login(&format!("admin@{DOMAIN}"), ADMIN_PASSWORD)
        .await
        .unwrap();
    let pace = match kind {
        Kind::Prosody => Duration::from_millis(1),
        Kind::Ejabberd => Duration::from_millis(20),
    };
    let bare = Jid::from(ua.bare());
    let full = Jid::from(FullJid::new(&format!("{}/facade", ua.jid)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(false));
    let (flag, on) = (stop.clone(), active.clone());
    let sending = tokio::spawn(async move {
        let mut n = 0usize;
        while !flag.load(Ordering::Relaxed) {
            if !on.load(Ordering::Relaxed) {
                tokio::time::sleep(pace).await;
                continue;
            }
            let to = if n % 2 == 0 { &bare } else { &full };
            let mut m = Message::chat(Some(to.clone()));
            m.id = Some(Id(format!("race-{n}")));
            m.bodies.insert(Lang::default(), format!("m{n}"));
            sender.send(m).await.unwrap();
            n += 1;
            tokio::time::sleep(pace).await;
        }
        n
    });

    // Act: a's session starts and ends several times, messages streaming
    // from just before each login until 300 ms after it (not while a is
    // away: a flood of offline messages is not what this test is about);
    // then a last session collects the rest.
    let mut seen = BTreeSet::new();
    for _ in 0..ROUNDS {
        // The token in the query starts the session; the test acknowledges
        // pushes as they come, as an app does (it does not wait for a
        // first screen meanwhile: docs/facade.md, backpressure).
        active.store(true, Ordering::Relaxed);
        let mut a = Ws::login(&app, &ua.token).await;
        collect(&mut a, &mut seen, Duration::from_millis(300)).await;
        active.store(false, Ordering::Relaxed);
        // Gone for good before the next login (else the next one would
        // replace it, a case of its own: docs/facade.md).
        a.drop_abruptly();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sending.await.unwrap();
    let mut a = Ws::login(&app, &ua.token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < sent && tokio::time::Instant::now() < deadline {
        collect(&mut a, &mut seen, Duration::from_millis(500)).await;
    }

    // Assert: every message arrived at least once.
    let missing: Vec<usize> = (0..sent).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{} of {sent} messages lost: {missing:?}",
        missing.len()
    );
}

/// ejabberd 23.01's offline storage (mnesia) can lose a message stored in
/// the instant a login's offline delivery empties the spool (a dirty write
/// deleted by the delivery's transaction; `facade::catchup::sweep_begin`).
/// The message is in the archive: a sweep after each login on ejabberd
/// pushes it. The race is provoked by hand here: the spool is emptied
/// between the message and the login.
#[tokio::test]
async fn ejabberd_a_message_archived_but_gone_from_offline_storage_at_login_still_arrives() {
    // Arrange: a message to an offline facade user, archived and stored
    // offline; then ejabberd forgets its offline copy.
    let xmpp = XmppServer::start(Kind::Ejabberd).await;
    let XmppServer::Ejabberd(e) = &xmpp else {
        unreachable!()
    };
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000095", "").await;
    let sender = xmpp
        .login(&format!("admin@{DOMAIN}"), ADMIN_PASSWORD)
        .await
        .unwrap();
    let mut m = Message::chat(Some(Jid::from(ua.bare())));
    m.id = Some(Id("gone-1".into()));
    m.bodies.insert(Lang::default(), "lost in the spool".into());
    sender.send(m).await.unwrap();
    jidgate::xmpp::roster::get(&sender).await.unwrap();
    e.ctl(&["delete_old_messages", "0"]).unwrap();

    // Act: the user's first facade login.
    let mut a = Ws::started(&app, &ua.token).await;

    // Assert: pushed, delayed, once.
    let p = a.push("newmsg").await;
    let msg = &p["data"]["message"];
    assert_eq!(msg["msgid"], "gone-1", "{p}");
    assert_eq!(msg["content"], "lost in the spool");
    assert_eq!(msg["delayed"], true);
    a.ack(&p["pid"]).await;
    a.ok("session.ping", json!({})).await;
    let again = tokio::time::timeout(Duration::from_secs(2), a.push("newmsg")).await;
    assert!(again.is_err(), "pushed twice: {again:?}");
}

/// Reads `newmsg` pushes for `time`, noting their numbers and
/// acknowledging (cumulatively, ten times a second: under the session's
/// request rate).
async fn collect(a: &mut Ws, seen: &mut BTreeSet<usize>, time: Duration) {
    let until = tokio::time::Instant::now() + time;
    let mut last_pid = None;
    let mut acked_at = tokio::time::Instant::now();
    loop {
        // Pushes that came with a reply first.
        let f = match a.pushes.pop_front() {
            Some(f) => Some(f),
            None => tokio::time::timeout_at(until, a.frame())
                .await
                .ok()
                .flatten(),
        };
        let Some(f) = f else { break };
        if f["push"] != true {
            continue;
        }
        if f["type"] == "newmsg"
            && let Some(n) = f["data"]["message"]["msgid"]
                .as_str()
                .and_then(|id| id.strip_prefix("race-"))
                .and_then(|n| n.parse().ok())
        {
            seen.insert(n);
        }
        last_pid = Some(f["pid"].clone());
        if acked_at.elapsed() > Duration::from_millis(100) {
            ack(a, last_pid.take()).await;
            acked_at = tokio::time::Instant::now();
        }
    }
    ack(a, last_pid).await;
}

/// Acknowledges up to `pid` without awaiting the reply (read as a frame).
async fn ack(a: &mut Ws, pid: Option<serde_json::Value>) {
    if let Some(pid) = pid {
        let ack = json!({"func": "session.ack", "parm": {"pid": pid}, "cdata": "ack"});
        a.send_json(&ack.to_string()).await;
    }
}
