//! The facade's history (XEP-0313), profiles (XEP-0054), blocking
//! (XEP-0191) and search.

use std::time::Duration;

use jidgate::xmpp::IqRequest;
use serde_json::{Value, json};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use crate::binding::{device, phone};
use crate::facade_chat::plain;
use crate::facade_client::Ws;
use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

on_each_server!(
    history_pages_backwards_and_forwards,
    a_profile_update_is_the_vcard_a_plain_client_reads,
    blocking_stops_messages_until_unblocked,
);

fn contents(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn history_pages_backwards_and_forwards(kind: Kind) {
    // Arrange: five messages between a and b, both ways.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000081", "").await;
    let ub = phone(&app, "13800000082", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::started(&app, &ub.token).await;
    for i in 0..5 {
        let (from, to) = if i == 2 {
            (&mut b, &ua.name)
        } else {
            (&mut a, &ub.name)
        };
        from.ok(
            "message.send",
            json!({"to": to, "content": format!("m{i}")}),
        )
        .await;
        // Let each arrive (and be archived) in order.
        let other = if i == 2 { &mut a } else { &mut b };
        let p = other.push("newmsg").await;
        other.ack(&p["pid"]).await;
    }

    // Act: the newest two, then the two before, then everything after
    // the first.
    let newest = b
        .ok("message.read", json!({"with": ua.name, "count": 2}))
        .await;
    let first = newest["first"].as_str().unwrap().to_owned();
    let older = b
        .ok(
            "message.read",
            json!({"with": ua.name, "before": first, "count": 2}),
        )
        .await;
    let oldest = b
        .ok(
            "message.read",
            json!({"with": ua.name, "before": older["first"], "count": 2}),
        )
        .await;
    let m0 = oldest["messages"][0]["mamid"].as_str().unwrap().to_owned();
    let forwards = b
        .ok(
            "message.read",
            json!({"with": ua.name, "after": m0, "count": 10}),
        )
        .await;

    // Assert
    assert_eq!(contents(&newest), ["m3", "m4"], "{newest}");
    assert_eq!(contents(&older), ["m1", "m2"], "{older}");
    assert_eq!(contents(&oldest), ["m0"], "{oldest}");
    assert_eq!(contents(&forwards), ["m1", "m2", "m3", "m4"], "{forwards}");
    assert_eq!(older["messages"][1]["uid"], ub.name.as_str());
    assert_eq!(older["messages"][0]["uid"], ua.name.as_str());
    assert!(older["messages"][0]["time"].as_i64().unwrap() > 0);
}

async fn a_profile_update_is_the_vcard_a_plain_client_reads(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000091", "").await;
    let ub = phone(&app, "13800000092", "").await;
    let d = device(&app, "SN-VCARD-1", "").await;
    let mut a = Ws::login(&app, &ua.token).await;

    // Act
    let r = a
        .ok(
            "user.update",
            json!({"nick": "Ann <A&B>", "avatar": "https://cdn.example/a.png",
                   "sex": 2, "birthday": "1990-02-03", "signature": "hello"}),
        )
        .await;
    assert_eq!(r["nick"], "Ann <A&B>");
    let r = a.ok("user.update", json!({"signature": "changed"})).await;

    // Assert: the other fields stayed; a plain client's vCard request and
    // another facade user see it.
    assert_eq!(
        (r["nick"].clone(), r["signature"].clone()),
        (json!("Ann <A&B>"), json!("changed"))
    );
    let p = plain(&xmpp, &d).await;
    let vcard = p
        .iq(
            Some(Jid::from(ua.bare())),
            IqRequest::Get(Element::builder("vCard", "vcard-temp").build()),
        )
        .await
        .unwrap()
        .unwrap();
    let text = |name: &str| vcard.get_child(name, "vcard-temp").map(|e| e.text());
    assert_eq!(text("NICKNAME").as_deref(), Some("Ann <A&B>"));
    assert_eq!(text("DESC").as_deref(), Some("changed"));
    assert_eq!(text("BDAY").as_deref(), Some("1990-02-03"));
    let mut b = Ws::login(&app, &ub.token).await;
    let info = b.ok("user.info", json!({"uid": ua.name})).await;
    assert_eq!(info["nick"], "Ann <A&B>");
    assert_eq!(info["avatar"], "https://cdn.example/a.png");
    assert!(info.get("online").is_none(), "not a friend: {info}");
    assert!(info.get("jid_pwd").is_none());
    // Exact search only (no prefixes by default).
    let found = b.ok("user.search", json!({"q": ua.name})).await;
    assert_eq!(found["users"], json!([{"uid": ua.name}]));
    let found = b.ok("user.search", json!({"q": "1380000009"})).await;
    assert_eq!(found["users"], json!([]));
    let bad = b.call("user.info", json!({"uid": "13899999999"})).await;
    assert_eq!(bad["errno"], 3);
}

async fn blocking_stops_messages_until_unblocked(kind: Kind) {
    // Arrange
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let ua = phone(&app, "13800000101", "").await;
    let ub = phone(&app, "13800000102", "").await;
    let mut a = Ws::login(&app, &ua.token).await;
    let mut b = Ws::started(&app, &ub.token).await;

    // Act: b blocks a; a writes.
    b.ok("user.block", json!({"uid": ua.name})).await;
    let list = b.ok("user.block_list", json!({})).await;
    a.call("message.send", json!({"to": ub.name, "content": "blocked"}))
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    b.ok("session.ping", json!({})).await;

    // Assert: nothing arrived; after unblocking, messages do.
    assert_eq!(list["uids"], json!([ua.name]));
    assert!(
        !b.pushes.iter().any(|p| p["type"] == "newmsg"),
        "{:?}",
        b.pushes
    );
    b.ok("user.unblock", json!({"uid": ua.name})).await;
    a.ok("message.send", json!({"to": ub.name, "content": "free"}))
        .await;
    let m = b.push("newmsg").await;
    assert_eq!(m["data"]["message"]["content"], "free");
}
