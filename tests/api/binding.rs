//! Binding phones to devices as real XMPP rosters.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jidgate::xmpp::Session;
use jidgate::xmpp::roster;
use serde_json::{Value, json};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Lang, Message};
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;

use crate::helpers::*;
use crate::servers::{AnyServer, Kind, XmppServer, on_each_server};

/// A registered, logged-in account.
pub struct User {
    pub name: String,
    pub password: String,
    pub token: String,
    pub jid: String,
    pub jid_pwd: String,
    pub is_device: bool,
}

impl User {
    pub fn bare(&self) -> BareJid {
        BareJid::new(&self.jid).unwrap()
    }
}

fn user_from_login(name: &str, password: &str, login: &Value, is_device: bool) -> User {
    assert_eq!(login["result"], 0, "{login}");
    User {
        name: name.to_owned(),
        password: password.to_owned(),
        token: login["access_token"].as_str().unwrap().to_owned(),
        jid: login["user_info"]["jid"].as_str().unwrap().to_owned(),
        jid_pwd: login["user_info"]["jid_pwd"].as_str().unwrap().to_owned(),
        is_device,
    }
}

pub async fn phone(app: &TestApp, number: &str, des: &str) -> User {
    app.register_phone(number, "phone-pass-1", des).await;
    let login = app.login_phone(number, "phone-pass-1").await;
    user_from_login(number, "phone-pass-1", &login, false)
}

pub async fn device(app: &TestApp, serial: &str, des: &str) -> User {
    app.register_device(serial, "device-pass-1", des).await;
    let login = app.login_device(serial, "device-pass-1").await;
    user_from_login(serial, "device-pass-1", &login, true)
}

fn app_of(u: &User) -> &'static str {
    if u.is_device { DEVICE_APP_ID } else { APP_ID }
}

/// A device's bind code.
pub async fn bind_code(app: &TestApp, d: &User) -> String {
    let body = app
        .call(
            DEVICE_APP_ID,
            "/get_bind_code",
            &[("user_name", &d.name), ("access_token", &d.token)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    let code = body["bind_code"].as_str().unwrap().to_owned();
    let uri = body["bind_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("jidgate://bind?") && uri.contains(&format!("bind_code={code}")),
        "{uri}"
    );
    assert!(body["expires_at"].as_i64().unwrap() > jidgate::now());
    code
}

pub async fn bind(app: &TestApp, owner: &User, names: &[&str], codes: &[&str]) -> Value {
    app.call(
        app_of(owner),
        "/set_user_banding",
        &[
            ("user_name", &owner.name),
            ("access_token", &owner.token),
            ("user_name_ls", &serde_json::to_string(names).unwrap()),
            ("bind_code_ls", &serde_json::to_string(codes).unwrap()),
        ],
    )
    .await
}

pub async fn unbind(app: &TestApp, who: &User, names: &[&str]) -> Value {
    app.call(
        app_of(who),
        "/set_user_unbanding",
        &[
            ("user_name", &who.name),
            ("access_token", &who.token),
            ("user_name_ls", &serde_json::to_string(names).unwrap()),
        ],
    )
    .await
}

pub async fn bindings_of(app: &TestApp, who: &User) -> Value {
    let body = app
        .call(
            app_of(who),
            "/get_user_banding",
            &[("user_name", &who.name), ("access_token", &who.token)],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    body
}

/// Logs in as a user's own XMPP client: roster first, then presence.
async fn client(server: &impl AnyServer, u: &User) -> Session {
    let s = server
        .server()
        .login(&u.jid, &u.jid_pwd)
        .await
        .expect("XMPP login");
    roster::get(&s).await.unwrap();
    s
}

/// The roster item `of` has for `contact`: (subscription, name, groups).
async fn item(
    server: &impl AnyServer,
    of: &User,
    contact: &User,
) -> Option<(String, String, Vec<String>)> {
    let s = server
        .server()
        .login(&of.jid, &of.jid_pwd)
        .await
        .expect("XMPP login");
    let items = roster::get(&s).await.unwrap();
    s.close().await;
    roster::find(&items, &contact.bare()).map(|i| {
        (
            roster::subscription_name(&i.subscription).to_owned(),
            i.name.clone().unwrap_or_default(),
            i.groups.iter().map(|g| g.0.clone()).collect(),
        )
    })
}

async fn next_matching(s: &mut Session, what: &str, pred: impl Fn(&Stanza) -> bool) -> Stanza {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let st = s.next_event().await.expect("session open");
            if pred(&st) {
                return st;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn from_bare(st: &Stanza) -> Option<BareJid> {
    let from = match st {
        Stanza::Presence(p) => p.from.as_ref(),
        Stanza::Message(m) => m.from.as_ref(),
        Stanza::Iq(_) => None,
    }?;
    Some(from.to_bare())
}

async fn a_bound_phone_and_device_see_each_other_and_chat_until_unbound(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let p = phone(&app, "13800138000", "Alice").await;
    let d = device(&app, "SN-LAMP-1", "Kitchen lamp").await;

    // Bind with the device's one-time code.
    let code = bind_code(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(
        body["result_ls"],
        json!([{"user_name": "SN-LAMP-1", "result": 0}])
    );

    // Both rosters, as real clients see them.
    assert_eq!(
        item(&xmpp, &p, &d).await,
        Some(("both".into(), "Kitchen lamp".into(), vec!["devices".into()]))
    );
    assert_eq!(
        item(&xmpp, &d, &p).await,
        Some(("both".into(), "Alice".into(), vec!["owners".into()]))
    );

    // The phone receives the device's presence.
    let mut pc = client(&xmpp, &p).await;
    pc.send(Presence::available()).await.unwrap();
    let mut dc = client(&xmpp, &d).await;
    dc.send(Presence::available()).await.unwrap();
    let dj = d.bare();
    next_matching(&mut pc, "the device's presence", |st| {
        matches!(st, Stanza::Presence(pr) if pr.type_ == PresenceType::None)
            && from_bare(st) == Some(dj.clone())
    })
    .await;

    // A chat message passes each way.
    let chat = |to: BareJid, body: &str| {
        Message::chat(Some(Jid::from(to))).with_body(Lang::new(), body.to_owned())
    };
    let body_of = |st: Stanza| match st {
        Stanza::Message(m) => m.bodies.values().next().cloned(),
        _ => None,
    };
    let is_chat = |st: &Stanza| matches!(st, Stanza::Message(m) if !m.bodies.is_empty());
    pc.send(chat(d.bare(), "turn on")).await.unwrap();
    let got = next_matching(&mut dc, "the phone's message", is_chat).await;
    assert_eq!(body_of(got).as_deref(), Some("turn on"));
    dc.send(chat(p.bare(), "done")).await.unwrap();
    let got = next_matching(&mut pc, "the device's message", is_chat).await;
    assert_eq!(body_of(got).as_deref(), Some("done"));

    // jidgate reports the binding from the XMPP server, consistent.
    let view = bindings_of(&app, &p).await;
    assert_eq!(view["consistent"], true, "{view}");
    assert_eq!(
        view["roster_item"],
        json!([{
            "jid": d.jid, "subscriptionType": "both", "nickname": "Kitchen lamp",
            "groups": ["devices"], "user_name": "SN-LAMP-1"
        }])
    );
    let view = bindings_of(&app, &d).await;
    assert_eq!(view["roster_item"][0]["groups"], json!(["owners"]));

    // The device unbinds (either side may): neither roster keeps the other.
    let body = unbind(&app, &d, &[&p.name]).await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(item(&xmpp, &p, &d).await, None);
    assert_eq!(item(&xmpp, &d, &p).await, None);
    assert_eq!(app.count("select count(*) from binding").await, 0);
    let view = bindings_of(&app, &p).await;
    assert_eq!(view["roster_item"], json!([]));
    assert_eq!(view["consistent"], true);
    pc.close().await;
    dc.close().await;
}

async fn cancelling_a_bound_device_removes_it_from_every_owner(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let p1 = phone(&app, "13800138001", "").await;
    let p2 = phone(&app, "13800138002", "").await;
    let d = device(&app, "SN-GONE-1", "").await;
    for p in [&p1, &p2] {
        let code = bind_code(&app, &d).await;
        let body = bind(&app, p, &[&d.name], &[&code]).await;
        assert_eq!(body["result"], 0, "{body}");
        assert_eq!(item(&xmpp, p, &d).await.unwrap().0, "both");
    }
    // The nickname falls back to the user name when des is empty.
    assert_eq!(item(&xmpp, &p1, &d).await.unwrap().1, "SN-GONE-1");

    let body = app.cancel_device(&d.name, &d.password).await;
    assert_eq!(body["result"], 0, "{body}");
    for p in [&p1, &p2] {
        assert_eq!(item(&xmpp, p, &d).await, None);
        assert_eq!(bindings_of(&app, p).await["roster_item"], json!([]));
    }
    assert_eq!(app.count("select count(*) from binding").await, 0);
    assert_eq!(app.count("select count(*) from account").await, 2);
}

#[tokio::test]
async fn bad_binding_requests_are_refused_per_item_and_change_nothing() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let p = phone(&app, "13800138000", "").await;
    let other = phone(&app, "13800138009", "").await;
    let d1 = device(&app, "SN-B-1", "").await;
    let d2 = device(&app, "SN-B-2", "").await;
    let d3 = device(&app, "SN-B-3", "").await;

    // One good binding to start from.
    let c1 = bind_code(&app, &d1).await;
    assert_eq!(bind(&app, &p, &[&d1.name], &[&c1]).await["result"], 0);
    let before = app.snapshot().await;
    let rosters_before = bindings_of(&app, &p).await["roster_item"].clone();

    let names = serde_json::to_string(&[&d2.name]).unwrap();
    let code2 = bind_code(&app, &d2).await;
    let codes = serde_json::to_string(&[&code2]).unwrap();
    let call = |token: String, names: String, codes: Option<String>| {
        let app = &app;
        let p_name = p.name.clone();
        async move {
            let mut params = vec![
                ("user_name", p_name),
                ("access_token", token),
                ("user_name_ls", names),
            ];
            if let Some(c) = codes {
                params.push(("bind_code_ls", c));
            }
            let borrowed: Vec<(&str, &str)> =
                params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(APP_ID, "/set_user_banding", &borrowed).await
        }
    };

    // Tokens: none, malformed, someone else's.
    let body = app
        .call(
            APP_ID,
            "/set_user_banding",
            &[
                ("user_name", &p.name),
                ("user_name_ls", &names),
                ("bind_code_ls", &codes),
            ],
        )
        .await;
    assert_eq!(body["result"], 2, "{body}");
    assert_eq!(
        call("jgt_nope".into(), names.clone(), Some(codes.clone())).await["result"],
        4
    );
    assert_eq!(
        call(other.token.clone(), names.clone(), Some(codes.clone())).await["result"],
        4
    );

    // Bind codes: missing list, wrong count, wrong code, another device's code.
    assert_eq!(
        call(p.token.clone(), names.clone(), None).await["result"],
        2
    );
    let two = serde_json::to_string(&[&code2, &code2]).unwrap();
    assert_eq!(
        call(p.token.clone(), names.clone(), Some(two)).await["result"],
        2
    );
    let body = call(
        p.token.clone(),
        names.clone(),
        Some("[\"WRONG123\"]".into()),
    )
    .await;
    assert_eq!(body["result"], 111, "{body}");
    assert_eq!(body["result_ls"][0]["result"], 111);
    let code3 = bind_code(&app, &d3).await;
    let body = call(
        p.token.clone(),
        names.clone(),
        Some(serde_json::to_string(&[&code3]).unwrap()),
    )
    .await;
    assert_eq!(body["result"], 111, "{body}");

    // Self-binding, a non-device, too many names, repeated names.
    let self_names = serde_json::to_string(&[&p.name]).unwrap();
    let body = call(p.token.clone(), self_names, Some("[\"X\"]".into())).await;
    assert_eq!(body["result_ls"][0]["result"], 100, "{body}");
    let phone_names = serde_json::to_string(&[&other.name]).unwrap();
    let body = call(p.token.clone(), phone_names, Some("[\"X\"]".into())).await;
    assert_eq!(body["result_ls"][0]["result"], 100, "{body}");
    let many: Vec<String> = (0..51).map(|i| format!("SN-X-{i}")).collect();
    let many_codes: Vec<&str> = many.iter().map(|_| "X").collect();
    let body = call(
        p.token.clone(),
        serde_json::to_string(&many).unwrap(),
        Some(serde_json::to_string(&many_codes).unwrap()),
    )
    .await;
    assert_eq!(body["result"], 2, "{body}");
    let body = call(
        p.token.clone(),
        serde_json::to_string(&[&d2.name, &d2.name]).unwrap(),
        Some(serde_json::to_string(&[&code2, &code2]).unwrap()),
    )
    .await;
    assert_eq!(body["result"], 2, "{body}");
    // A device does not bind.
    let body = app
        .call(
            DEVICE_APP_ID,
            "/set_user_banding",
            &[
                ("user_name", &d2.name),
                ("access_token", &d2.token),
                ("user_name_ls", &serde_json::to_string(&[&d3.name]).unwrap()),
                ("bind_code_ls", &serde_json::to_string(&[&code3]).unwrap()),
            ],
        )
        .await;
    assert_eq!(body["result"], 100, "{body}");
    // Unbinding what is not bound; unknown names.
    let body = unbind(&app, &p, &[&d2.name, "SN-NOBODY"]).await;
    assert_eq!(body["result_ls"][0]["result"], 110, "{body}");
    assert_eq!(body["result_ls"][1]["result"], 104, "{body}");

    assert_eq!(app.snapshot().await, before);
    assert_eq!(bindings_of(&app, &p).await["roster_item"], rosters_before);

    // A mixed list: each item on its own. d2 binds (its code was not used
    // up by the failed attempts), the unknown name is 104, d1 is 109.
    let body = bind(
        &app,
        &p,
        &[&d2.name, "SN-NOBODY", &d1.name],
        &[&code2, "X", "Y"],
    )
    .await;
    assert_eq!(body["result"], 104, "{body}");
    let results: Vec<i64> = body["result_ls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result"].as_i64().unwrap())
        .collect();
    assert_eq!(results, vec![0, 104, 109]);
    assert_eq!(item(&prosody, &p, &d2).await.unwrap().0, "both");
    // The code is used up.
    let _ = unbind(&app, &p, &[&d2.name]).await;
    let body = bind(&app, &p, &[&d2.name], &[&code2]).await;
    assert_eq!(body["result"], 111, "a bind code is single use: {body}");
}

#[tokio::test]
async fn expired_tokens_and_codes_are_refused() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[binding]\nbind_code_ttl = 1\n[tokens]\naccess_ttl = 5\n"),
    )
    .await;
    let p = phone(&app, "13800138000", "").await;
    let d = device(&app, "SN-EXP-1", "").await;
    let code = bind_code(&app, &d).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert_eq!(body["result"], 111, "an expired code: {body}");

    // Once the phone's access token has expired (after 5 s).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let code = bind_code_direct(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert_eq!(body["result"], 106, "an expired token: {body}");
    assert_eq!(app.count("select count(*) from binding").await, 0);
}

/// A fresh bind code when the device's token has expired: log in again.
async fn bind_code_direct(app: &TestApp, d: &User) -> String {
    let login = app.login_device(&d.name, &d.password).await;
    let fresh = user_from_login(&d.name, &d.password, &login, true);
    bind_code(app, &fresh).await
}

async fn proof_none_binds_without_codes_like_the_seed(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn_with(&xmpp, Settings::toml("[binding]\nproof = \"none\"\n")).await;
    let p = phone(&app, "13800138000", "").await;
    let d = device(&app, "SN-LEGACY-1", "").await;
    let body = app
        .call(
            APP_ID,
            "/set_user_binding",
            &[
                ("user_name", &p.name),
                ("access_token", &p.token),
                ("user_name_ls", &serde_json::to_string(&[&d.name]).unwrap()),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(item(&xmpp, &d, &p).await.unwrap().0, "both");
    let body = app
        .call(
            APP_ID,
            "/get_user_binding",
            &[("user_name", &p.name), ("access_token", &p.token)],
        )
        .await;
    assert_eq!(body["roster_item"][0]["subscriptionType"], "both");
    let body = app
        .call(
            APP_ID,
            "/set_user_unbinding",
            &[
                ("user_name", &p.name),
                ("access_token", &p.token),
                ("user_name_ls", &serde_json::to_string(&[&d.name]).unwrap()),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
}

async fn the_xmpp_server_stopping_mid_binding_is_undone_by_the_reconciler(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let (faults, fired) = kill_server_once_at(&xmpp, "bind.half_way");
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    let p = phone(&app, "13800138000", "").await;
    let d = device(&app, "SN-HALF-1", "").await;
    let code = bind_code(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(body["result_ls"][0]["result"], 112, "{body}");
    assert_eq!(
        app.count("select count(*) from binding where state = 'binding'")
            .await,
        1
    );

    xmpp.resume().await;
    app.wait_ready().await;
    // Half made: the phone subscribed to the device.
    assert!(item(&xmpp, &p, &d).await.is_some());
    let report = jidgate::reconcile::sweep_pending(&app.app).await.unwrap();
    assert_eq!(report.done, 1, "{report:?}");
    assert_eq!(item(&xmpp, &p, &d).await, None);
    assert_eq!(item(&xmpp, &d, &p).await, None);
    assert_eq!(app.count("select count(*) from binding").await, 0);

    // And binding works again with a new code.
    let code = bind_code(&app, &d).await;
    assert_eq!(bind(&app, &p, &[&d.name], &[&code]).await["result"], 0);
}

async fn drift_is_reported_and_repaired_by_reconcile(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let p = phone(&app, "13800138000", "").await;
    let d1 = device(&app, "SN-DRIFT-1", "").await;
    let d2 = device(&app, "SN-DRIFT-2", "").await;
    let code = bind_code(&app, &d1).await;
    assert_eq!(bind(&app, &p, &[&d1.name], &[&code]).await["result"], 0);

    // Behind jidgate's back: the phone's client removes d1 and subscribes
    // to d2, which approves.
    let pc = client(&xmpp, &p).await;
    roster::remove_item(&pc, &d1.bare()).await.unwrap();
    let dc = client(&xmpp, &d2).await;
    roster::subscribe_one_way(&pc, &p.bare(), &dc, &d2.bare())
        .await
        .unwrap();
    pc.close().await;
    dc.close().await;

    let view = bindings_of(&app, &p).await;
    assert_eq!(view["consistent"], false, "{view}");
    let drift = view["drift_ls"].as_array().unwrap();
    assert!(
        drift.iter().any(|x| x["user_name"] == "SN-DRIFT-1"
            && x["database"] == "bound"
            && x["xmpp"] == "missing"),
        "{view}"
    );
    assert!(
        drift.iter().any(|x| x["user_name"] == "SN-DRIFT-2"
            && x["database"] == "none"
            && x["xmpp"] == "to"),
        "{view}"
    );

    // `jidgate reconcile --dry-run` lists the repairs and changes nothing.
    let config = app_config_file(&app);
    let out = run_cli(&config, &["reconcile", "--dry-run"]).await;
    assert!(out.contains("would bind again"), "{out}");
    assert!(
        out.contains("would remove roster entries between 13800138000 and SN-DRIFT-2"),
        "{out}"
    );
    assert_eq!(bindings_of(&app, &p).await["consistent"], false);

    // `jidgate reconcile` repairs both.
    let out = run_cli(&config, &["reconcile"]).await;
    assert!(out.contains("done: 2, failed: 0"), "{out}");
    // Not a terminal: progress as plain lines, the last one always.
    assert!(out.contains("reading rosters: "), "{out}");
    assert!(out.contains("reconcile: 2/2 (0 failed), "), "{out}");
    let view = bindings_of(&app, &p).await;
    assert_eq!(view["consistent"], true, "{view}");
    assert_eq!(item(&xmpp, &p, &d1).await.unwrap().0, "both");
    assert_eq!(item(&xmpp, &p, &d2).await, None);
    assert_eq!(item(&xmpp, &d2, &p).await, None);
    let out = run_cli(&config, &["reconcile", "--dry-run"]).await;
    assert!(out.contains("nothing to do"), "{out}");
}

/// Writes the running app's configuration to a file for the CLI.
fn app_config_file(app: &TestApp) -> std::path::PathBuf {
    let path = app.db_file.with_file_name("jidgate.toml");
    std::fs::write(&path, base_toml(&app.xmpp, &app.db_file)).unwrap();
    path
}

async fn run_cli(config: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_jidgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "jidgate {args:?} failed: {text}");
    text
}

on_each_server!(
    a_bound_phone_and_device_see_each_other_and_chat_until_unbound,
    cancelling_a_bound_device_removes_it_from_every_owner,
    proof_none_binds_without_codes_like_the_seed,
    the_xmpp_server_stopping_mid_binding_is_undone_by_the_reconciler,
    drift_is_reported_and_repaired_by_reconcile,
);
/// The per-item results of a binding answer.
fn item_results(body: &Value) -> Vec<i64> {
    body["result_ls"]
        .as_array()
        .unwrap_or_else(|| panic!("no result_ls: {body}"))
        .iter()
        .map(|i| i["result"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn concurrent_wrong_bind_codes_from_one_address_are_paid_for_before_they_are_compared() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[rate_limits]\nfailed_bind_code_per_ip_per_minute = 3\n"),
    )
    .await;
    let p = phone(&app, "13800138000", "").await;
    let d = device(&app, "SN-RACE-1", "").await;
    let code = bind_code(&app, &d).await;

    // Twelve wrong guesses at once from one address: three are compared
    // (111), the other nine find the address's budget spent (9).
    let wrong: Vec<String> = (0..12).map(|i| format!("WRONG{i:03}")).collect();
    let guesses = wrong.iter().map(|w| {
        let (app, p, d) = (&app, &p, &d);
        async move { bind(app, p, &[&d.name], &[w]).await }
    });
    let mut results: Vec<i64> = futures::future::join_all(guesses)
        .await
        .iter()
        .flat_map(item_results)
        .collect();
    results.sort_unstable();
    assert_eq!(results, [[9; 9].as_slice(), &[111; 3]].concat());

    // The right code is not compared either while the budget is spent.
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert_eq!(item_results(&body), [9], "{body}");
    assert_eq!(app.count("select count(*) from binding").await, 0);
}

#[tokio::test]
async fn a_bind_code_is_compared_five_times_however_many_guesses_arrive_at_once() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let p = phone(&app, "13800138000", "").await;
    let d = device(&app, "SN-RACE-2", "").await;
    let code = bind_code(&app, &d).await;

    let wrong: Vec<String> = (0..12).map(|i| format!("WRONG{i:03}")).collect();
    let guesses = wrong.iter().map(|w| {
        let (app, p, d) = (&app, &p, &d);
        async move { bind(app, p, &[&d.name], &[w]).await }
    });
    for body in futures::future::join_all(guesses).await {
        assert_eq!(item_results(&body), [111], "{body}");
    }
    // Five guesses took the code's five attempts; the rest were not compared.
    assert_eq!(
        app.count("select attempts from bind_code").await,
        5,
        "guesses compared"
    );
    // The code is void, even for the right guess; a new one works.
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert_eq!(item_results(&body), [111], "{body}");
    let fresh = bind_code(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&fresh]).await;
    assert_eq!(body["result"], 0, "{body}");
}
