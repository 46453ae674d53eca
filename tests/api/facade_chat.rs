//! The facade's friends, chat, presence and offline delivery, between
//! facade users, plain XMPP clients and bound devices.

use std::time::Duration;

use jidgate::xmpp::Session;
use jidgate::xmpp::{mam, roster};
use serde_json::{Value, json};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Lang, Message};
use xmpp_parsers::ns;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;

use crate::binding::{User, bind, bind_code, device, phone};
use crate::facade_client::Ws;
use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

on_each_server!(
    two_facade_users_become_friends_and_chat_both_ways_with_receipts,
    a_facade_user_and_a_plain_xmpp_client_chat_and_see_each_others_presence,
    a_bound_device_and_its_owner_on_the_facade_see_each_other_and_chat,
    a_message_to_an_offline_facade_user_arrives_delayed_at_the_next_login,
);

/// Logs in over plain XMPP as a jidgate user (its JID password), fetches
/// the roster and sends initial presence.
pub async fn plain(xmpp: &XmppServer, u: &User) -> Session {
    let s = xmpp.login(&u.jid, &u.jid_pwd).await.expect("plain login");
    roster::get(&s).await.unwrap();
    s.send(Presence::available()).await.unwrap();
    s
}

/// The next stanza a plain client gets that `pred` accepts.
pub async fn plain_next<T>(s: &mut Session, mut pred: impl FnMut(Stanza) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let st = s.next_event().await.expect("plain session open");
            if let Some(t) = pred(st) {
                return t;
            }
        }
    })
    .await
    .expect("stanza in time")
}

/// Makes `a` (facade) and `b` (facade) friends: request with note, push,
/// accept, and the requester hears of it.
async fn befriend(a: &mut Ws, a_uid: &str, b: &mut Ws, b_uid: &str) {
    a.ok(
        "user.add_friend",
        json!({"uid": b_uid, "note": "hi, it's <me> & co"}),
    )
    .await;
    let ev = b.push("event").await;
    let e = &ev["data"]["event"];
    assert_eq!(e["type"], "add_friend", "{ev}");
    assert_eq!(e["uid"], a_uid);
    assert_eq!(e["note"], "hi, it's <me> & co");
    assert!(e["eid"].as_i64().unwrap() > 0 && e["create_time"].as_i64().unwrap() > 0);
    b.ack(&ev["pid"]).await;
    b.ok("user.accept_friend", json!({"uid": a_uid, "alias": "A"}))
        .await;
    let ev = a
        .push_where("event", |d| d["event"]["type"] == "accept_friend")
        .await;
    assert_eq!(ev["data"]["event"]["uid"], b_uid);
}

async fn friends_of(ws: &mut Ws) -> Vec<Value> {
    let r = ws.ok("user.friend_list", json!({})).await;
    r["friends"].as_array().unwrap().clone()
}

async fn two_facade_users_become_friends_and_chat_both_ways_with_receipts(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000011", "").await;
    let ub = phone(&app, "13800000012", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::login(&app, &ub.token).await;
    a.ok("session.start", json!({})).await;
    b.ok("session.start", json!({})).await;

    // Act: friends.
    befriend(&mut a, &ua.name, &mut b, &ub.name).await;

    // Assert: both rosters say both, eventually.
    for (ws, other) in [(&mut a, &ub.name), (&mut b, &ua.name)] {
        let mut ok = false;
        for _ in 0..50 {
            let f = friends_of(ws).await;
            if f.iter()
                .any(|x| x["uid"] == **other && x["subscription"] == "both")
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "{other} never became a friend both ways");
    }

    // Act and assert: chat both ways.
    chat_with_receipt(&mut a, &ua.name, &mut b, &ub.name).await;
    chat_with_receipt(&mut b, &ub.name, &mut a, &ua.name).await;

    // Assert: the archive has the two messages, not the receipts (they
    // carry <no-permanent-store/>; Prosody archives receipts otherwise).
    let mut s = plain(&xmpp, &ua).await;
    let with = BareJid::new(&ub.jid).unwrap();
    let found = mam::query(&mut s, Some(&with), mam::Page::Before(None), 50)
        .await
        .unwrap();
    let receipts = found
        .items
        .iter()
        .filter(|i| {
            i.message
                .payloads
                .iter()
                .any(|p| p.is("received", ns::RECEIPTS))
        })
        .count();
    let bodies = found
        .items
        .iter()
        .filter(|i| !i.message.bodies.is_empty())
        .count();
    assert_eq!((bodies, receipts), (2, 0), "{:#?}", found.items);
}

/// `from` sends `to` a message; `to` gets it, acknowledges it, and `from`
/// gets the receipt.
async fn chat_with_receipt(from: &mut Ws, from_uid: &str, to: &mut Ws, to_uid: &str) {
    let text = format!("hello from {from_uid} <&>");
    let sent = from
        .ok("message.send", json!({"to": to_uid, "content": text}))
        .await;
    let msgid = sent["msgid"].as_str().unwrap().to_owned();
    let push = to.push("newmsg").await;
    let m = &push["data"]["message"];
    assert_eq!(m["msgid"], msgid.as_str(), "{push}");
    assert_eq!(m["uid"], from_uid);
    assert_eq!(m["type"], "text");
    assert_eq!(m["content"], text.as_str());
    assert!(m.get("delayed").is_none());
    // The receipt comes once the phone acknowledged the push.
    to.ack(&push["pid"]).await;
    let ack = from
        .push_where("msgack", |d| d["msgid"] == msgid.as_str())
        .await;
    assert_eq!(ack["data"]["uid"], to_uid);
}

async fn a_facade_user_and_a_plain_xmpp_client_chat_and_see_each_others_presence(kind: Kind) {
    // Arrange: a facade phone, and a device used as a plain XMPP client.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000021", "").await;
    let d = device(&app, "SN-PLAIN-1", "").await;
    let mut a = Ws::started(&app, &ua.token).await;
    let mut p = plain(&xmpp, &d).await;

    // Act: the facade user asks; the plain client sees an ordinary
    // subscription request with the note, approves and asks back.
    a.ok(
        "user.add_friend",
        json!({"uid": d.name, "note": "let's talk"}),
    )
    .await;
    let note = plain_next(&mut p, |st| match st {
        Stanza::Presence(pr) if pr.type_ == PresenceType::Subscribe => {
            Some(pr.statuses.values().next().cloned().unwrap_or_default())
        }
        _ => None,
    })
    .await;
    assert_eq!(note, "let's talk");
    let a_jid = Jid::from(ua.bare());
    p.send(Presence::subscribed().with_to(a_jid.clone()))
        .await
        .unwrap();
    p.send(Presence::subscribe().with_to(a_jid.clone()))
        .await
        .unwrap();
    let ev = a
        .push_where("event", |d| d["event"]["type"] == "accept_friend")
        .await;
    assert_eq!(ev["data"]["event"]["uid"], d.name.as_str());

    // Assert: each sees the other online (the facade approved the plain
    // client's request by itself, having asked first).
    let on = a
        .push_where("presence", |x| {
            x["uid"] == d.name.as_str() && x["online"] == true
        })
        .await;
    assert_eq!(on["data"]["online"], true, "{on}");
    plain_next(&mut p, |st| match st {
        Stanza::Presence(pr)
            if pr.type_ == PresenceType::None
                && pr.from.as_ref().map(|f| f.to_bare()) == Some(ua.bare()) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;

    // Chat: plain → facade.
    let mut m = Message::chat(Some(a_jid.clone()));
    m.id = Some(xmpp_parsers::message::Id("plain-1".into()));
    m.bodies
        .insert(Lang::default(), "from a plain client".into());
    p.send(m).await.unwrap();
    let push = a.push("newmsg").await;
    let msg = &push["data"]["message"];
    assert_eq!(
        (
            msg["uid"].clone(),
            msg["msgid"].clone(),
            msg["content"].clone()
        ),
        (
            json!(d.name),
            json!("plain-1"),
            json!("from a plain client")
        )
    );
    a.ack(&push["pid"]).await;

    // Chat: facade → plain, with a receipt asked for.
    let sent = a
        .ok(
            "message.send",
            json!({"to": d.name, "content": "to a plain client"}),
        )
        .await;
    let (body, id, wants) = plain_next(&mut p, |st| match st {
        Stanza::Message(m) if !m.bodies.is_empty() => Some((
            m.bodies.values().next().unwrap().clone(),
            m.id.clone().unwrap().0,
            m.payloads
                .iter()
                .any(|p| p.is("request", "urn:xmpp:receipts")),
        )),
        _ => None,
    })
    .await;
    assert_eq!(
        (body.as_str(), id.as_str(), wants),
        ("to a plain client", sent["msgid"].as_str().unwrap(), true)
    );

    // The plain client goes offline: the facade user sees it.
    p.send(Presence::unavailable()).await.unwrap();
    let off = a
        .push_where("presence", |x| {
            x["uid"] == d.name.as_str() && x["online"] == false
        })
        .await;
    assert_eq!(off["data"]["online"], false);
}

async fn a_bound_device_and_its_owner_on_the_facade_see_each_other_and_chat(kind: Kind) {
    // Arrange: a phone bound to a device through the register API.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let owner = phone(&app, "13800000031", "").await;
    let d = device(&app, "SN-BOUND-1", "lamp").await;
    let code = bind_code(&app, &d).await;
    let body = bind(&app, &owner, &[&d.name], &[&code]).await;
    assert_eq!(body["result"], 0, "{body}");

    // Act
    let mut o = Ws::login(&app, &owner.token).await;
    let first = o.ok("session.start", json!({})).await;
    let mut dev = plain(&xmpp, &d).await;

    // Assert: the device is a friend in group devices, and online.
    let f = first["friends"].as_array().unwrap();
    let entry = f
        .iter()
        .find(|x| x["uid"] == d.name.as_str())
        .expect("device listed");
    assert_eq!(entry["groups"], json!(["devices"]), "{entry}");
    assert_eq!(entry["subscription"], "both");
    let on = o
        .push_where("presence", |x| {
            x["uid"] == d.name.as_str() && x["online"] == true
        })
        .await;
    assert_eq!(on["data"]["online"], true);
    // The device sees its owner online.
    plain_next(&mut dev, |st| match st {
        Stanza::Presence(pr)
            if pr.type_ == PresenceType::None
                && pr.from.as_ref().map(|f| f.to_bare()) == Some(owner.bare()) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;

    // Chat both ways.
    o.ok("message.send", json!({"to": d.name, "content": "lamp on"}))
        .await;
    let got = plain_next(&mut dev, |st| match st {
        Stanza::Message(m) if !m.bodies.is_empty() => {
            Some(m.bodies.values().next().unwrap().clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(got, "lamp on");
    let mut m = Message::chat(Some(Jid::from(owner.bare())));
    m.bodies.insert(Lang::default(), "lamp is on".into());
    dev.send(m).await.unwrap();
    let push = o.push("newmsg").await;
    assert_eq!(push["data"]["message"]["content"], "lamp is on");
    assert_eq!(push["data"]["message"]["uid"], d.name.as_str());
}

async fn a_message_to_an_offline_facade_user_arrives_delayed_at_the_next_login(kind: Kind) {
    // Arrange: b has never been online.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000041", "").await;
    let ub = phone(&app, "13800000042", "").await;
    let mut a = Ws::started(&app, &ua.token).await;

    // Act
    let sent = a
        .ok(
            "message.send",
            json!({"to": ub.name, "type": "image", "content": "https://cdn.example/p.png",
                                   "size": 1234, "width": 10, "height": 20, "name": "p.png"}),
        )
        .await;
    // An IQ round trip on a's stream: the server has routed the message
    // (to offline storage) before b logs in.
    a.ok("user.block_list", json!({})).await;
    let mut b = Ws::login(&app, &ub.token).await;
    let push = b.push("newmsg").await;

    // Assert
    let m = &push["data"]["message"];
    assert_eq!(m["msgid"], sent["msgid"], "{push}");
    assert_eq!(m["delayed"], true);
    assert_eq!(m["type"], "image");
    assert_eq!(m["content"], "https://cdn.example/p.png");
    assert_eq!(
        (m["size"].clone(), m["width"].clone(), m["height"].clone()),
        (json!(1234), json!(10), json!(20))
    );
    assert_eq!(m["name"], "p.png");
    // The unread count is there for the first screen (counted beside
    // delivery: poll briefly).
    let mut first = Value::Null;
    for _ in 0..40 {
        first = b.ok("session.start", json!({})).await;
        if first["unread"] != json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        first["unread"],
        json!([{"uid": ua.name, "count": 1}]),
        "{first}"
    );
    b.ok(
        "message.mark_read",
        json!({"with": ua.name, "msgid": sent["msgid"]}),
    )
    .await;
    let read = a.push("read").await;
    assert_eq!(read["data"]["msgid"], sent["msgid"]);
    let first = b.ok("session.start", json!({})).await;
    assert_eq!(first["unread"], json!([]));
    let _ = BareJid::new("x@y").unwrap();
}
