//! Faults: the XMPP server down or killed at the worst moment, jidgate
//! "crashing" between the XMPP call and the commit. Afterwards the
//! database and the XMPP server always agree.

use std::sync::atomic::Ordering;

use futures::FutureExt;

use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

async fn wait_unready(app: &TestApp) {
    eventually("readyz reports the XMPP server down", || async {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        r.status() == 503
    })
    .await;
}

async fn registration_while_the_xmpp_server_is_down_answers_101_and_leaves_no_row(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    xmpp.kill();
    wait_unready(&app).await;

    let body = app
        .try_register_device("SN-DOWN-1", "device-pass-1", "")
        .await;
    assert_eq!(body["result"], 101, "{body}");
    assert_eq!(app.count("select count(*) from account").await, 0);

    // Back up: the same registration works.
    xmpp.resume().await;
    app.wait_ready().await;
    app.register_device("SN-DOWN-1", "device-pass-1", "").await;
    assert_eq!(
        app.count("select count(*) from account where state = 'active'")
            .await,
        1
    );
}

async fn the_xmpp_server_dying_mid_registration_answers_101_and_the_reconciler_cleans_up(
    kind: Kind,
) {
    let xmpp = XmppServer::start(kind).await;
    // Kill the XMPP server just before the add-user command is sent.
    let (faults, fired) = kill_server_once_at(&xmpp, "register.before_provision");
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    let body = app
        .try_register_device("SN-MID-1", "device-pass-1", "")
        .await;
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(body["result"], 101, "{body}");
    // No usable account; at most a `creating` row for the reconciler.
    assert_eq!(
        app.count("select count(*) from account where state <> 'creating'")
            .await,
        0
    );

    xmpp.resume().await;
    app.wait_ready().await;
    jidgate::reconcile::sweep_pending(&app.app).await.unwrap();
    assert_eq!(app.count("select count(*) from account").await, 0);
    assert_eq!(xmpp.accounts(), vec!["admin".to_owned()]);
}

async fn a_crash_between_the_xmpp_call_and_the_commit_is_repaired_after_restart(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let p = xmpp.clone();
    // After the JID exists on the server: kill the XMPP server and stop the
    // request as a crash would (no compensation).
    let faults = hook(move |point| {
        let p = p.clone();
        async move {
            if point == "register.after_provision" {
                p.kill();
                return Err("simulated crash".to_owned());
            }
            Ok(())
        }
        .boxed()
    });
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    let body = app
        .try_register_device("SN-CRASH-1", "device-pass-1", "")
        .await;
    assert_eq!(body["result"], 1, "{body}");
    let rows = app.account_rows().await;
    assert_eq!(rows.len(), 1);
    let (_, state, local) = rows[0].clone();
    assert_eq!(state, "creating");

    // "Restart": a new jidgate on the same database, the XMPP server back up.
    let db_file = app.db_file.clone();
    let keep = app.stop().await;
    xmpp.resume().await;
    assert!(
        xmpp.has_account(&local),
        "the JID was made before the crash"
    );
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            db_file: Some(db_file),
            reconciler: true,
            ..Default::default()
        },
    )
    .await;
    eventually("the reconciler removes the half-made account", || async {
        app.count("select count(*) from account").await == 0
    })
    .await;
    assert!(!xmpp.has_account(&local));
    assert_eq!(xmpp.accounts(), vec!["admin".to_owned()]);
    drop(keep);
}

async fn cancel_while_the_xmpp_server_is_down_changes_nothing(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let app = TestApp::spawn(&xmpp).await;
    app.register_device("SN-KEEP-1", "device-pass-1", "").await;
    let login = app.login_device("SN-KEEP-1", "device-pass-1").await;
    let jid = login["user_info"]["jid"].as_str().unwrap().to_owned();
    let jid_pwd = login["user_info"]["jid_pwd"].as_str().unwrap().to_owned();
    xmpp.kill();
    wait_unready(&app).await;

    let body = app.cancel_device("SN-KEEP-1", "device-pass-1").await;
    assert_eq!(body["result"], 112, "{body}");
    assert_eq!(
        app.count("select count(*) from account where state = 'active'")
            .await,
        1
    );

    xmpp.resume().await;
    app.wait_ready().await;
    let s = xmpp.login(&jid, &jid_pwd).await.expect("the JID is intact");
    s.close().await;
    let body = app.cancel_device("SN-KEEP-1", "device-pass-1").await;
    assert_eq!(body["result"], 0, "{body}");
    assert_eq!(app.count("select count(*) from account").await, 0);
}

async fn a_crash_after_the_jid_is_deleted_is_finished_by_the_reconciler(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let faults = hook(|point| {
        async move {
            if point == "cancel.after_delete" {
                return Err("simulated crash".to_owned());
            }
            Ok(())
        }
        .boxed()
    });
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    app.register_device("SN-HALF-1", "device-pass-1", "").await;
    let body = app.cancel_device("SN-HALF-1", "device-pass-1").await;
    assert_eq!(body["result"], 1, "{body}");
    let rows = app.account_rows().await;
    assert_eq!(rows[0].1, "deleting");
    assert_eq!(xmpp.accounts(), vec!["admin".to_owned()]);
    // Nobody can log in to an account being deleted.
    let body = app.login_device("SN-HALF-1", "device-pass-1").await;
    assert_eq!(body["result"], 104, "{body}");

    let report = jidgate::reconcile::sweep_pending(&app.app).await.unwrap();
    assert_eq!(report.done, 1);
    assert_eq!(app.count("select count(*) from account").await, 0);
}

on_each_server!(
    registration_while_the_xmpp_server_is_down_answers_101_and_leaves_no_row,
    the_xmpp_server_dying_mid_registration_answers_101_and_the_reconciler_cleans_up,
    a_crash_between_the_xmpp_call_and_the_commit_is_repaired_after_restart,
    cancel_while_the_xmpp_server_is_down_changes_nothing,
    a_crash_after_the_jid_is_deleted_is_finished_by_the_reconciler,
);
