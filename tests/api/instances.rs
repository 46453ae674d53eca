//! Several jidgate processes (the real binary) on one PostgreSQL database
//! and one Prosody, each correct with the others running: their own XMPP
//! sessions do not replace each other's, a nonce spent on one is refused by
//! the other, a revocation on one is refused by the other (at once with
//! `NOTIFY`, within `tokens.cache_revalidate` without), the reconciler runs
//! on one at a time and moves when its holder is killed, racing
//! registrations of one name leave one account and one JID, rate limits
//! hold across them, and facade users on two instances chat and replace
//! each other's sessions.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::facade_client::Ws;
use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings, merge_toml};
use crate::token_service::Conn;

/// `n` instances of jidgate on one new PostgreSQL database, each with
/// `toml` over the test defaults.
async fn instances(prosody: &Prosody, n: usize, toml: &str) -> Vec<JidgateProcess> {
    instances_on(&new_database().await, prosody, n, toml).await
}

async fn new_database() -> String {
    tokio::task::spawn_blocking(crate::postgres::new_database)
        .await
        .unwrap()
}

async fn instances_on(url: &str, prosody: &Prosody, n: usize, toml: &str) -> Vec<JidgateProcess> {
    let mut out = vec![];
    for _ in 0..n {
        out.push(spawn_on(prosody, url, toml).await);
    }
    out
}

async fn spawn_on(prosody: &Prosody, url: &str, toml: &str) -> JidgateProcess {
    let settings = ProcessSettings {
        toml: merge_toml(&[&format!("[database]\nurl = \"{url}\"\n"), toml]),
        ..ProcessSettings::default()
    };
    JidgateProcess::spawn_with(prosody, settings).await
}

async fn register_device(p: &JidgateProcess, serial: &str) -> Value {
    p.call(
        DEVICE_APP_ID,
        "/register",
        &[
            ("user_name", serial),
            ("password", "device-pass-1"),
            ("type", "2"),
            ("device_type", "lamp"),
            ("des", ""),
        ],
    )
    .await
}

async fn login_device(p: &JidgateProcess, serial: &str) -> String {
    let body = p
        .call(
            DEVICE_APP_ID,
            "/login",
            &[
                ("user_name", serial),
                ("password", "device-pass-1"),
                ("type", "2"),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A token service connection to `p`, past its hello.
async fn token_service(p: &JidgateProcess) -> Conn {
    let mut c = Conn::open_at(p.token_addr).await;
    let r = c.ask(Conn::hello(SERVICE_APP_ID, 0)).await;
    assert_eq!(r["result"], 0, "{r}");
    c
}

async fn valid(c: &mut Conn, token: &str) -> bool {
    let r = c
        .ask(json!({"seq": 1, "cmd": "verify_access_token", "access_token": token}))
        .await;
    r["result"] == 0 && r["validate"] == true
}

#[tokio::test]
async fn two_instances_keep_their_own_admin_sessions_and_refuse_each_others_spent_nonces() {
    let prosody = Prosody::start().await;
    let [a, b]: [JidgateProcess; 2] = instances(&prosody, 2, "").await.try_into().ok().unwrap();

    // Each registration needs its instance's admin session; with one
    // resource for both, the second login would have replaced the first.
    for (i, p) in [&a, &b, &a, &b].into_iter().enumerate() {
        let body = register_device(p, &format!("SN-INST-{i}")).await;
        assert_eq!(body["result"], 0, "instance {i}: {body}");
    }
    assert_eq!(prosody.accounts().len(), 4 + 1, "{:?}", prosody.accounts());
    for p in [&a, &b] {
        let ready = p.client.get(p.url("/readyz")).send().await.unwrap();
        assert!(ready.status().is_success(), "{}", p.log());
    }

    // One signed request, sent to one instance and then replayed to the
    // other: the nonce table, not a cache, refuses it.
    let params = [
        ("user_name", "SN-INST-0"),
        ("password", "device-pass-1"),
        ("type", "2"),
    ];
    let (query, _) = TestApp::sign(DEVICE_APP_ID, "/login", &params);
    let send = |p: &JidgateProcess| {
        let r = p.client.get(p.url("/login")).query(&query).send();
        async move { r.await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(send(&a).await["result"], 0);
    assert_eq!(
        send(&b).await["result"],
        11,
        "a nonce spent on a, replayed to b"
    );
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_refused_by_the_other_at_once_with_notify() {
    let prosody = Prosody::start().await;
    // A long revalidation window: only the notice can make b forget.
    let toml = "[tokens]\ncache_revalidate = 300\n";
    let [a, b]: [JidgateProcess; 2] = instances(&prosody, 2, toml).await.try_into().ok().unwrap();
    let mut on_b = token_service(&b).await;
    for (serial, revoke) in [("SN-NOTE-1", "/logout"), ("SN-NOTE-2", "/cancel")] {
        assert_eq!(register_device(&a, serial).await["result"], 0);
        let token = login_device(&a, serial).await;
        assert!(
            valid(&mut on_b, &token).await,
            "b verifies (and caches) {serial}"
        );
        let params: Vec<(&str, &str)> = match revoke {
            "/logout" => vec![("user_name", serial), ("access_token", &token)],
            _ => vec![
                ("user_name", serial),
                ("password", "device-pass-1"),
                ("type", "2"),
            ],
        };
        assert_eq!(a.call(DEVICE_APP_ID, revoke, &params).await["result"], 0);
        let start = Instant::now();
        while valid(&mut on_b, &token).await {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "b still accepts a token revoked on a by {revoke}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn without_notify_a_revocation_is_refused_by_the_other_within_the_window() {
    let prosody = Prosody::start().await;
    let toml = "[database]\nnotify = false\n[tokens]\ncache_revalidate = 2\n";
    let [a, b]: [JidgateProcess; 2] = instances(&prosody, 2, toml).await.try_into().ok().unwrap();
    let mut on_b = token_service(&b).await;
    assert_eq!(register_device(&a, "SN-WIN-1").await["result"], 0);
    let token = login_device(&a, "SN-WIN-1").await;
    assert!(valid(&mut on_b, &token).await);
    let logout = [("user_name", "SN-WIN-1"), ("access_token", token.as_str())];
    let revoked_at = Instant::now();
    assert_eq!(a.call(DEVICE_APP_ID, "/logout", &logout).await["result"], 0);
    // Refused at once by a, and by b once its cached answer is due.
    let mut on_a = token_service(&a).await;
    assert!(!valid(&mut on_a, &token).await);
    while valid(&mut on_b, &token).await {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2 + 2),
            "b accepts a revoked token past cache_revalidate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_reconciler_runs_on_one_instance_and_moves_when_its_holder_is_killed() {
    let prosody = Prosody::start().await;
    let toml = "[reconcile]\ninterval = 1\n";
    let [a, b]: [JidgateProcess; 2] = instances(&prosody, 2, toml).await.try_into().ok().unwrap();
    const TAKEN: &str = "reconciler lock taken";
    eventually("one instance takes the reconciler lock", || async {
        a.log().contains(TAKEN) || b.log().contains(TAKEN)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut holder, other) = if a.log().contains(TAKEN) {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        !other.log().contains(TAKEN),
        "both reconcile:\n{}",
        other.log()
    );
    holder.kill().await;
    eventually("the other instance takes the lock over", || async {
        other.log().contains(TAKEN)
    })
    .await;
}

#[tokio::test]
async fn racing_registrations_of_one_name_on_two_instances_leave_one_account_and_one_jid() {
    let prosody = Prosody::start().await;
    let url = new_database().await;
    let [a, b]: [JidgateProcess; 2] = instances_on(&url, &prosody, 2, "")
        .await
        .try_into()
        .ok()
        .unwrap();
    const NAMES: usize = 6;
    for i in 0..NAMES {
        let serial = format!("SN-RACE-{i}");
        let (ra, rb) = tokio::join!(register_device(&a, &serial), register_device(&b, &serial));
        let mut codes = [ra["result"].as_i64(), rb["result"].as_i64()];
        codes.sort();
        assert_eq!(codes, [Some(0), Some(103)], "{serial}: {ra} {rb}");
    }
    // One JID per name (and the admin's), one row per name, all active.
    assert_eq!(
        prosody.accounts().len(),
        NAMES + 1,
        "{:?}",
        prosody.accounts()
    );
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("select user_name, state from account")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), NAMES, "{rows:?}");
    assert!(rows.iter().all(|(_, state)| state == "active"), "{rows:?}");
    db.close().await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_instances() {
    let prosody = Prosody::start().await;
    let toml = "[rate_limits]\nverify_code_per_minute = 4\n";
    let [a, b]: [JidgateProcess; 2] = instances(&prosody, 2, toml).await.try_into().ok().unwrap();
    let mut drawn = 0;
    for i in 0..12 {
        let p = if i % 2 == 0 { &a } else { &b };
        let r = p.client.get(p.url("/verify_code")).send().await.unwrap();
        if r.status() == 200 {
            drawn += 1;
        } else {
            assert_eq!(r.status(), 429, "{i}");
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    // Four a minute from this address, not four per instance.
    assert_eq!(drawn, 4);
}

#[tokio::test]
async fn a_revocation_listener_that_lost_its_connection_reconnects_and_hears_again() {
    let prosody = Prosody::start().await;
    let url = new_database().await;
    let toml = "[tokens]\ncache_revalidate = 300\n";
    let [a, b]: [JidgateProcess; 2] = instances_on(&url, &prosody, 2, toml)
        .await
        .try_into()
        .ok()
        .unwrap();
    let mut on_b = token_service(&b).await;
    assert_eq!(register_device(&a, "SN-LOST-1").await["result"], 0);
    let token = login_device(&a, "SN-LOST-1").await;
    assert!(valid(&mut on_b, &token).await);

    // The database drops every listener's connection.
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(killed.len(), 2, "one listener per instance");
    db.close().await;

    // b reconnects (and, having maybe missed notices, forgets its cache);
    // a revocation on a is then heard at once again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(valid(&mut on_b, &token).await);
    let logout = [("user_name", "SN-LOST-1"), ("access_token", token.as_str())];
    assert_eq!(a.call(DEVICE_APP_ID, "/logout", &logout).await["result"], 0);
    let start = Instant::now();
    while valid(&mut on_b, &token).await {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "b missed the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn facade_users_on_two_instances_chat_and_another_login_on_one_kicks_the_other() {
    // Arrange: d1's facade session on a, d2's on b.
    let prosody = Prosody::start().await;
    let [a, b]: [JidgateProcess; 2] = instances(&prosody, 2, "").await.try_into().ok().unwrap();
    for (p, serial) in [(&a, "SN-FAC-1"), (&b, "SN-FAC-2")] {
        let body = register_device(p, serial).await;
        assert_eq!(body["result"], 0, "{body}");
    }
    let t1 = login_device(&a, "SN-FAC-1").await;
    let t2 = login_device(&b, "SN-FAC-2").await;
    let mut on_a = Ws::connect_to(a.addr, &format!("access_token={t1}")).await;
    let mut on_b = Ws::connect_to(b.addr, &format!("access_token={t2}")).await;
    on_a.ok("session.ping", json!({})).await;
    on_b.ok("session.ping", json!({})).await;

    // Act: a message each way, across the instances.
    on_a.ok(
        "message.send",
        json!({"to": "SN-FAC-2", "content": "a to b"}),
    )
    .await;
    let got_b = on_b.push("newmsg").await;
    on_b.ok(
        "message.send",
        json!({"to": "SN-FAC-1", "content": "b to a"}),
    )
    .await;
    let got_a = on_a.push("newmsg").await;
    // d1 logs in again, on b.
    let mut again = Ws::connect_to(b.addr, &format!("access_token={t1}")).await;
    again.ok("session.ping", json!({})).await;

    // Assert: both messages arrived; the session on a hears of the other
    // login (the XMPP server's conflict) and closes; the new one works.
    assert_eq!(got_b["data"]["message"]["content"], "a to b");
    assert_eq!(got_b["data"]["message"]["uid"], "SN-FAC-1");
    assert_eq!(got_a["data"]["message"]["content"], "b to a");
    let kicked = on_a.push("anotherlogin").await;
    assert!(kicked["pid"].as_u64().is_some(), "{kicked}");
    on_a.closed().await;
    on_b.ok(
        "message.send",
        json!({"to": "SN-FAC-1", "content": "still?"}),
    )
    .await;
    // (What the kicked session had not acknowledged may come again to
    // the new one, with its msgid: at least once.)
    again
        .push_where("newmsg", |d| d["message"]["content"] == "still?")
        .await;
}
