//! Attacks on the XMPP side (issue 6, points 8, 10 and 14): a device
//! changing its own JID password, text that breaks XML or misleads, and
//! forged IQ replies to jidgate's sessions. (Point 12, secrets in the log,
//! is in `secrets.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use jidgate::xmpp::adhoc::NS_COMMANDS;
use jidgate::xmpp::admin;
use jidgate::xmpp::{IqRequest, Session, XmppError};
use secrecy::SecretString;
use serde_json::Value;
use xmpp_parsers::ibr::{LegacyQuery, RemoveQuery};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::minidom::rxml::NcName;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use crate::binding::{User, bind, bind_code, bindings_of, device, phone, unbind};
use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings};
use crate::scripted::ScriptedProcess;
use crate::servers::{AnyServer, Kind, XmppServer, on_each_server};

// ------------------------------------------------------------- point 8

async fn a_device_cannot_change_or_delete_its_own_jid_over_in_band_registration(kind: Kind) {
    // Arrange: a registered device, logged in to the XMPP server with the
    // JID password /login gave it, as any XMPP client would.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let d = device(&app, "SN-IBR-1", "").await;
    let session = xmpp.login(&d.jid, &d.jid_pwd).await.expect("login");

    // Act: XEP-0077 §3.3 password change, then §3.2 cancellation.
    let change = LegacyQuery {
        username: Some(d.bare().node().unwrap().to_string()),
        password: Some("chosen-by-the-device".into()),
        ..Default::default()
    };
    let changed = session
        .iq(Some(domain_jid()), IqRequest::Set(change.into()))
        .await;
    let remove = RemoveQuery { remove: true };
    let removed = session
        .iq(Some(domain_jid()), IqRequest::Set(remove.into()))
        .await;
    session.close().await;

    // Assert: both refused; the stored JID password still works and the
    // JID still exists.
    assert!(
        matches!(changed, Err(XmppError::Stanza(_))),
        "password change accepted: {changed:?}"
    );
    assert!(
        matches!(removed, Err(XmppError::Stanza(_))),
        "account removal accepted: {removed:?}"
    );
    xmpp.login(&d.jid, &d.jid_pwd)
        .await
        .expect("the stored JID password still works")
        .close()
        .await;
    assert!(xmpp.login(&d.jid, "chosen-by-the-device").await.is_err());
}

async fn a_jid_password_changed_behind_jidgates_back_is_reset_and_binding_works(kind: Kind) {
    // Arrange: a phone and a device; the device's JID password is changed
    // with the admin command, behind jidgate's back.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let p = phone(&app, "13800138001", "").await;
    let d = device(&app, "SN-REPAIR-1", "").await;
    set_jid_password_behind_jidgates_back(&xmpp, &d.bare(), "changed-behind-our-back").await;
    assert!(xmpp.login(&d.jid, &d.jid_pwd).await.is_err());

    // Act: bind.
    let code = bind_code(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;

    // Assert: bound, and the stored password works again.
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(bindings_of(&app, &p).await["consistent"], true);
    xmpp.login(&d.jid, &d.jid_pwd)
        .await
        .expect("the stored JID password was put back")
        .close()
        .await;

    // Again on both sides, then unbind: the unbinding completes.
    set_jid_password_behind_jidgates_back(&xmpp, &d.bare(), "again-1").await;
    set_jid_password_behind_jidgates_back(&xmpp, &p.bare(), "again-2").await;
    let body = unbind(&app, &p, &[&d.name]).await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(app.count("select count(*) from binding").await, 0);
    xmpp.login(&p.jid, &p.jid_pwd).await.unwrap().close().await;
}

async fn a_repair_during_a_pending_jid_password_push_sets_the_pending_password(kind: Kind) {
    // Arrange: a device whose JID password change was interrupted (the new
    // one recorded in `jid_pwd_next`, not yet pushed), and whose password
    // on the server was then changed by someone else.
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let p = phone(&app, "13800138002", "").await;
    let d = device(&app, "SN-REPAIR-2", "").await;
    let next = "the-pending-jid-password-0123456789";
    let enc = app
        .app
        .jid_cipher
        .encrypt(&d.jid, &SecretString::from(next.to_owned()));
    sqlx::query("update account set jid_pwd_next = $1 where user_name = $2")
        .bind(&enc)
        .bind(&d.name)
        .execute(&app.db)
        .await
        .unwrap();
    set_jid_password_behind_jidgates_back(&xmpp, &d.bare(), "someone-else").await;

    // Act: bind (repairs), then the reconciler finishes the push.
    let code = bind_code(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;
    assert_eq!(body["result"], 0, "{body}");
    let report = jidgate::reconcile::sweep_pending(&app.app).await.unwrap();

    // Assert: the server has the pending password, which is now the stored
    // one; nothing is pending or stuck.
    assert_eq!(report.failed, 0, "{report:?}");
    xmpp.login(&d.jid, next).await.unwrap().close().await;
    let login = app.login_device(&d.name, "device-pass-1").await;
    assert_eq!(login["user_info"]["jid_pwd"], next, "{login}");
    assert_eq!(
        app.count("select count(*) from account where jid_pwd_next is not null")
            .await,
        0
    );
    assert_eq!(bindings_of(&app, &p).await["consistent"], true);
}

async fn a_row_that_keeps_failing_is_alerted_in_the_log_and_listed_in_readyz(kind: Kind) {
    // Arrange: the real binary, its reconciler every second (on rows older
    // than 2 s), alerting after three failed attempts; a phone bound to a
    // device.
    let xmpp = XmppServer::start(kind).await;
    let proc = JidgateProcess::spawn_with(
        &xmpp,
        ProcessSettings {
            // A grace period, so the reconciler never races the requests
            // in flight (the test default is 0).
            toml: "[reconcile]\nalert_after = 3\ngrace = 2\n".into(),
            ..Default::default()
        },
    )
    .await;
    let s = ScriptedProcess::new(&proc);
    s.register_device("SN-STUCK-1", "device-pass-1").await;
    s.register_phone("13800138003", "phone-pass-1").await;
    let d = s.login_device("SN-STUCK-1", "device-pass-1").await;
    let p = s.login_phone("13800138003", "phone-pass-1").await;
    let code = s.bind_code(&d).await;
    assert_eq!(s.bind(&p, &d.name, &code).await["result"], 0);

    // The device's JID disappears behind jidgate's back: no repair can log
    // in as it, so the unbinding cannot finish.
    let admin = admin_session(&xmpp).await;
    admin::delete_user(&admin.handle(), &d.bare())
        .await
        .unwrap();
    admin.close().await;
    let body = s.unbind(&p, &d.name).await;
    assert_ne!(body["result"], 0, "{body}");

    // Assert: after three failed sweeps the row is an error in the log and
    // listed in /readyz, which stays 200 (database and XMPP are fine).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let r = proc.client.get(proc.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ready: Value = r.json().await.unwrap();
        if ready["stuck"]["count"].as_i64().unwrap_or(0) >= 1 {
            break ready;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never listed the stuck unbinding: {ready}\n{}",
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let row = &ready["stuck"]["rows"][0];
    assert_eq!(row["row"], "binding #1", "{ready}");
    assert_eq!(row["operation"], "finish_unbinding", "{ready}");
    assert!(row["attempts"].as_i64().unwrap() >= 3, "{ready}");
    assert_eq!(row["last_code"], 105, "{ready}");
    let text = ready.to_string();
    assert!(!text.contains(&d.name) && !text.contains(&d.jid), "{text}");
    let log = proc.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("finish unbinding #1")),
        "no error in the log:\n{log}"
    );

    // Once the JID is back, the reconciler finishes the row and it is no
    // longer listed.
    let admin = admin_session(&xmpp).await;
    let outcome = admin::add_user(&admin.handle(), &d.bare(), &d.jid_pwd)
        .await
        .unwrap();
    assert_eq!(outcome, admin::AdminOutcome::Done);
    admin.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready: Value = proc
            .client
            .get(proc.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["stuck"]["count"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bindings = s.bindings(&p).await;
    assert_eq!(bindings["roster_item"], serde_json::json!([]), "{bindings}");
}

// ------------------------------------------------------------ point 10

/// Characters no text field may carry: not allowed in XML 1.0, Unicode
/// noncharacters, bidi controls.
const REFUSED: &[char] = &[
    '\u{0}',
    '\u{1b}',
    '\u{fffe}',
    '\u{ffff}',
    '\u{fdd0}',
    '\u{fdef}',
    '\u{1fffe}',
    '\u{10ffff}',
    '\u{61c}',
    '\u{200e}',
    '\u{200f}',
    '\u{202a}',
    '\u{202e}',
    '\u{2066}',
    '\u{2069}',
];

#[tokio::test]
async fn text_xml_cannot_carry_noncharacters_and_bidi_controls_are_refused_with_2() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let before = app.snapshot().await;

    for c in REFUSED {
        // des of a device; password of a device and of a phone.
        let des = format!("lamp{c}room");
        let body = app
            .try_register_device("SN-TEXT-1", "device-pass-1", &des)
            .await;
        assert_eq!(body["result"], 2, "des with U+{:04X}: {body}", *c as u32);
        let password = format!("pass{c}word");
        let body = app.try_register_device("SN-TEXT-1", &password, "").await;
        assert_eq!(
            body["result"], 2,
            "password with U+{:04X}: {body}",
            *c as u32
        );
        let (id, answer, _) = app.captcha().await;
        let body = app
            .call(
                APP_ID,
                "/register",
                &[
                    ("user_name", "13800138004"),
                    ("password", "phone-pass-1"),
                    ("type", "1"),
                    ("des", &des),
                    ("verify_code", &answer),
                    ("captcha_id", &id),
                ],
            )
            .await;
        assert_eq!(
            body["result"], 2,
            "phone des with U+{:04X}: {body}",
            *c as u32
        );
    }
    // Nothing was created, in the database or on the XMPP server.
    assert_eq!(app.snapshot().await, before);

    // A new password is held to the same rules; the old one keeps working.
    let d = device(&app, "SN-TEXT-2", "客厅的灯 ❤").await;
    let body = app
        .call(
            DEVICE_APP_ID,
            "/change_password",
            &[
                ("user_name", &d.name),
                ("password", "device-pass-1"),
                ("type", "2"),
                ("new_password", "new\u{202e}password"),
            ],
        )
        .await;
    assert_eq!(body["result"], 2, "{body}");
    assert_eq!(
        app.login_device(&d.name, "device-pass-1").await["result"],
        0
    );
}

#[tokio::test]
async fn a_description_stored_before_the_text_rules_does_not_break_binding() {
    // Arrange: a device whose stored des has a noncharacter and a bidi
    // override (as rows written before the rules may have).
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let p = phone(&app, "13800138005", "").await;
    let d = device(&app, "SN-OLD-DES", "").await;
    sqlx::query("update account set des = $1 where user_name = $2")
        .bind("lamp\u{ffff}\u{202e}moor")
        .bind(&d.name)
        .execute(&app.db)
        .await
        .unwrap();

    // Act
    let code = bind_code(&app, &d).await;
    let body = bind(&app, &p, &[&d.name], &[&code]).await;

    // Assert: bound; the roster names the device by its user name.
    assert_eq!(body["result"], 0, "{body}");
    let view = bindings_of(&app, &p).await;
    assert_eq!(view["roster_item"][0]["nickname"], d.name, "{view}");
}

// ------------------------------------------------------------ point 14

async fn forged_iq_replies_from_a_registered_user_are_not_believed(kind: Kind) {
    // Arrange: a registered device logged in as an XMPP client (the
    // attacker), flooding IQ results and errors at the admin session's full
    // JID with guessed ids: "the account exists" and "done".
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    let attacker = device(&app, "SN-ATTACKER", "").await;
    let admin_full = format!("admin@{DOMAIN}/{}-admin", app.app.config.xmpp.resource);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = tokio::spawn(flood_forged_replies(
        xmpp.clone(),
        attacker,
        Jid::new(&admin_full).unwrap(),
        stop.clone(),
        sent.clone(),
    ));

    // Act: registrations and cancellations while the flood runs.
    let names: Vec<String> = (0..25).map(|i| format!("SN-VICTIM-{i:02}")).collect();
    let mut answers = Vec::new();
    for n in &names {
        answers.push(app.try_register_device(n, "device-pass-1", "").await);
    }
    let registered_rows = app.account_rows().await;
    let registered_xmpp = xmpp.accounts();
    for n in &names {
        answers.push(app.cancel_device(n, "device-pass-1").await);
    }
    stop.store(true, Ordering::SeqCst);
    flood.await.unwrap();

    // Assert: the flood ran, and every operation had its real outcome: all
    // succeeded, every active row had its JID and no JID was orphaned.
    assert!(sent.load(Ordering::SeqCst) > 1000, "flood too small");
    for a in &answers {
        assert_eq!(a["result"], 0, "{a}");
    }
    let mut jids: Vec<String> = registered_rows
        .iter()
        .filter(|(_, state, _)| state == "active")
        .map(|(_, _, jid)| jid.clone())
        .collect();
    jids.push("admin".into());
    jids.sort();
    assert_eq!(jids.len(), names.len() + 2, "{registered_rows:?}");
    assert_eq!(registered_xmpp, jids);
    let left = app.account_rows().await;
    assert_eq!(left.len(), 1, "{left:?}");
    let mut xmpp_left = vec!["admin".to_owned(), left[0].2.clone()];
    xmpp_left.sort();
    assert_eq!(xmpp.accounts(), xmpp_left);
}

/// Sends forged replies with the ids `jg1`… (the old sequential ids), and
/// random ones, until `stop`.
async fn flood_forged_replies(
    xmpp: XmppServer,
    attacker: User,
    to: Jid,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) {
    let session = xmpp.login(&attacker.jid, &attacker.jid_pwd).await.unwrap();
    while !stop.load(Ordering::SeqCst) {
        for n in 1..=200 {
            let id = if n % 10 == 0 {
                jidgate::crypto::random_token::<8>()
            } else {
                format!("jg{n}")
            };
            let forged = match n % 3 {
                // Prosody's "failed" add-user: a completed command with an
                // error note.
                0 => Iq::Result {
                    from: None,
                    to: Some(to.clone()),
                    id,
                    payload: Some(command("completed", Some("Account already exists"))),
                },
                // A plain success.
                1 => Iq::Result {
                    from: None,
                    to: Some(to.clone()),
                    id,
                    payload: Some(command("completed", None)),
                },
                // ejabberd's "failed": an IQ error.
                _ => Iq::Error {
                    from: None,
                    to: Some(to.clone()),
                    id,
                    error: StanzaError::new(
                        ErrorType::Cancel,
                        DefinedCondition::Conflict,
                        "en",
                        "forged",
                    ),
                    payload: None,
                },
            };
            if session.send(Stanza::Iq(forged)).await.is_err() {
                return;
            }
            sent.fetch_add(1, Ordering::SeqCst);
        }
        tokio::task::yield_now().await;
    }
    session.close().await;
}

/// An XEP-0050 `<command/>` answer with an optional error note.
fn command(status: &str, error_note: Option<&str>) -> Element {
    let name = |s: &str| NcName::try_from(s).unwrap();
    let mut el = Element::builder("command", NS_COMMANDS)
        .attr(name("node"), "http://jabber.org/protocol/admin#add-user")
        .attr(name("status"), status)
        .attr(name("sessionid"), "1");
    if let Some(text) = error_note {
        el = el.append(
            Element::builder("note", NS_COMMANDS)
                .attr(name("type"), "error")
                .append(text)
                .build(),
        );
    }
    el.build()
}

// ------------------------------------------------------------- helpers

fn domain_jid() -> Jid {
    Jid::new(DOMAIN).unwrap()
}

/// A session as the XMPP server's admin (the test's own, not jidgate's).
async fn admin_session(server: &impl AnyServer) -> Session {
    server
        .server()
        .login(&format!("admin@{DOMAIN}"), ADMIN_PASSWORD)
        .await
        .expect("admin login")
}

/// Changes a JID's password with XEP-0133, as an XMPP admin could.
async fn set_jid_password_behind_jidgates_back(
    server: &impl AnyServer,
    jid: &BareJid,
    password: &str,
) {
    let admin = admin_session(server).await;
    let outcome = admin::change_user_password(&admin.handle(), jid, password)
        .await
        .unwrap();
    assert_eq!(outcome, admin::AdminOutcome::Done);
    admin.close().await;
}

on_each_server!(
    a_device_cannot_change_or_delete_its_own_jid_over_in_band_registration,
    a_jid_password_changed_behind_jidgates_back_is_reset_and_binding_works,
    a_repair_during_a_pending_jid_password_push_sets_the_pending_password,
    a_row_that_keeps_failing_is_alerted_in_the_log_and_listed_in_readyz,
    forged_iq_replies_from_a_registered_user_are_not_believed,
);
