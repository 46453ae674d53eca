//! Login security (issue 6, points 1, 6, 7, 9 and part of 15): failed-login
//! budgets that hold under concurrency, a bounded Argon2 pool, captchas
//! instead of lock-outs, no free enumeration, one winner among concurrent
//! password changes, the captcha's hardness and the roster-read limit.

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

const WECHAT: &str = "oUpF8uMuAJO_victim_0001";
const WECHAT_PASS: &str = "wechat-pass-1";

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_overspend_the_address_budget() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[rate_limits]\nfailed_login_per_ip_per_minute = 10\n"),
    )
    .await;
    register_wechat(&app, WECHAT, WECHAT_PASS).await;
    let mut captchas = Vec::new();
    for _ in 0..64 {
        let (id, answer, _) = app.captcha().await;
        captchas.push((id, answer));
    }

    // 64 wrong passwords at once, each with its own solved captcha.
    let answers = join_all(captchas.iter().map(|(id, answer)| async {
        app.call(
            APP_ID,
            "/login",
            &[
                ("user_name", WECHAT),
                ("password", "wrong-password"),
                ("type", "3"),
                ("verify_code", answer),
                ("captcha_id", id),
            ],
        )
        .await
    }))
    .await;
    let codes = codes_of(&answers);
    let wrong = codes.iter().filter(|c| **c == 102).count();
    let limited = codes.iter().filter(|c| **c == 9).count();
    assert!(
        wrong <= 10,
        "more password checks than the budget: {codes:?}"
    );
    assert_eq!(wrong + limited, 64, "{codes:?}");

    // The budget is spent: even the right password waits.
    let body = login_wechat(&app, WECHAT, WECHAT_PASS, true).await;
    assert_eq!(body["result"], 9, "{body}");
    assert!(body["retry_after"].as_u64().unwrap() >= 1, "{body}");
}

#[tokio::test]
async fn a_flood_beyond_the_argon2_queue_is_answered_busy_with_bounded_memory() {
    let prosody = Prosody::start().await;
    // Slow, memory-hard hashes (32 MiB each), one worker, two waiting.
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml(
            "[passwords]\nargon2_memory_kib = 32768\nargon2_iterations = 2\n\
                   workers = 1\nqueue = 2\n",
        ),
    )
    .await;
    app.register_device("SN-FLOOD-1", "device-pass-1", "").await;
    let hwm_before = vm_hwm_kib();

    let answers = join_all((0..64).map(|_| app.login_device("SN-FLOOD-1", "wrong-password"))).await;
    let codes = codes_of(&answers);
    let busy: Vec<&Value> = answers.iter().filter(|a| a["result"] == 13).collect();
    assert!(!busy.is_empty(), "nothing was refused: {codes:?}");
    assert!(
        codes.iter().all(|c| *c == 102 || *c == 13),
        "only wrong password or busy: {codes:?}"
    );
    for b in &busy {
        assert!(b["retry_after"].as_u64().unwrap() >= 1, "{b}");
    }
    let stats = app.app.hasher.stats();
    assert!(
        stats.peak_running <= 1,
        "more Argon2 computations at once than workers: {stats:?}"
    );
    // 64 hashes at once would need 2 GiB; one worker needs 32 MiB.
    let grown = vm_hwm_kib().saturating_sub(hwm_before);
    assert!(grown < 512 * 1024, "peak memory grew by {grown} KiB");

    // The pool recovers: the owner logs in.
    let body = app.login_device("SN-FLOOD-1", "device-pass-1").await;
    assert_eq!(body["result"], 0, "{body}");
}

#[tokio::test]
async fn captcha_free_wechat_guesses_make_the_account_need_a_captcha_instead_of_refusing_it() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    register_wechat(&app, WECHAT, WECHAT_PASS).await;
    let verifies_before = app.app.hasher.stats().verified;

    // 64 captcha-free guesses at once: one password check at most, and no
    // answer says whether the password was wrong.
    let answers =
        join_all((0..64).map(|_| login_wechat(&app, WECHAT, "wrong-password", false))).await;
    let codes = codes_of(&answers);
    assert!(codes.iter().all(|c| *c == 114), "{codes:?}");
    let checked = app.app.hasher.stats().verified - verifies_before;
    assert!(
        checked <= 1,
        "{checked} passwords checked without a captcha"
    );

    // The owner is not refused: without a captcha 114, with one logged in.
    let body = login_wechat(&app, WECHAT, WECHAT_PASS, false).await;
    assert_eq!(body["result"], 114, "{body}");
    let body = login_wechat(&app, WECHAT, WECHAT_PASS, true).await;
    assert_eq!(body["result"], 0, "{body}");
    // Once the owner is in, captcha-free logins work again.
    let body = login_wechat(&app, WECHAT, WECHAT_PASS, false).await;
    assert_eq!(body["result"], 0, "{body}");
    // With a captcha a wrong password is named as such, and it too makes
    // the next captcha-free login need a captcha.
    let body = login_wechat(&app, WECHAT, "wrong-password", true).await;
    assert_eq!(body["result"], 102, "{body}");
    let body = login_wechat(&app, WECHAT, WECHAT_PASS, false).await;
    assert_eq!(body["result"], 114, "{body}");
}

#[tokio::test]
async fn bogus_captchas_and_wrong_passwords_from_strangers_never_lock_the_owner_out() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[rate_limits]\nfailed_login_per_account_per_minute = 2\n"),
    )
    .await;
    app.register_phone("13800138000", "phone-pass-1", "Victim")
        .await;

    // Seven app-signed logins naming the victim with a bogus captcha id.
    for _ in 0..7 {
        let body = app
            .call(
                APP_ID,
                "/login",
                &[
                    ("user_name", "13800138000"),
                    ("password", "phone-pass-1"),
                    ("type", "1"),
                    ("verify_code", "abcde"),
                    ("captcha_id", "bogus-captcha-id"),
                ],
            )
            .await;
        assert_eq!(body["result"], 5, "{body}");
    }
    let body = app.login_phone("13800138000", "phone-pass-1").await;
    assert_eq!(body["result"], 0, "locked out by bogus captchas: {body}");

    // Seven wrong passwords, each with a solved captcha: each is answered,
    // and the owner (who solves a captcha too) still gets in.
    for _ in 0..7 {
        let body = app.login_phone("13800138000", "wrong-password").await;
        assert_eq!(body["result"], 102, "{body}");
    }
    let body = app.login_phone("13800138000", "phone-pass-1").await;
    assert_eq!(body["result"], 0, "locked out by wrong passwords: {body}");
}

#[tokio::test]
async fn devices_are_refused_after_their_own_failure_budget_and_unknown_names_cost_nothing() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[rate_limits]\nfailed_login_per_account_per_minute = 2\n"),
    )
    .await;
    app.register_device("SN-BUDGET-1", "device-pass-1", "")
        .await;
    // Failed logins naming a device that does not exist charge no account:
    // once it exists, it logs in.
    for _ in 0..5 {
        let body = app.login_device("SN-BUDGET-9", "device-pass-1").await;
        assert_eq!(body["result"], 104, "{body}");
    }
    app.register_device("SN-BUDGET-9", "device-pass-1", "")
        .await;
    let body = app.login_device("SN-BUDGET-9", "device-pass-1").await;
    assert_eq!(body["result"], 0, "{body}");

    // Wrong passwords at once: exactly the budget is checked.
    let answers =
        join_all((0..16).map(|_| app.login_device("SN-BUDGET-1", "wrong-password"))).await;
    let codes = codes_of(&answers);
    assert_eq!(codes.iter().filter(|c| **c == 102).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 9).count(), 14, "{codes:?}");
    let body = app.login_device("SN-BUDGET-1", "device-pass-1").await;
    assert_eq!(body["result"], 9, "{body}");
}

#[tokio::test]
async fn a_type3_login_does_not_tell_registered_names_from_unknown_ones() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    app.register_phone("13800138000", "phone-pass-1", "").await;
    let registered = "13800138000";
    let unknown = "13900139000";

    // Without a captcha: the same answer, and both ran a password check.
    for name in [registered, unknown] {
        let before = app.app.hasher.stats().verified;
        let body = login_wechat(&app, name, "phone-pass-1", false).await;
        assert_eq!(body["result"], 114, "{name}: {body}");
        assert_eq!(
            app.app.hasher.stats().verified,
            before + 1,
            "{name}: no Argon2 verification"
        );
        let body = login_wechat(&app, name, "phone-pass-1", false).await;
        assert_eq!(body["result"], 114, "{name}: {body}");
    }
    // With a captcha: still the same answer (another type's name is unknown
    // to this type), still after a password check.
    for name in [registered, unknown] {
        let before = app.app.hasher.stats().verified;
        let body = login_wechat(&app, name, "phone-pass-1", true).await;
        assert_eq!(body["result"], 104, "{name}: {body}");
        assert_eq!(app.app.hasher.stats().verified, before + 1, "{name}");
    }
    // A phone login with an unknown number also checks a (dummy) hash.
    let before = app.app.hasher.stats().verified;
    let body = app.login_phone(unknown, "phone-pass-1").await;
    assert_eq!(body["result"], 104, "{body}");
    assert_eq!(app.app.hasher.stats().verified, before + 1);
}

#[tokio::test]
async fn get_users_is_bounded_and_rate_limited_per_account_and_per_address() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml(
            "[rate_limits]\nget_users_max_names = 10\n\
                   get_users_names_per_account_per_minute = 20\n\
                   get_users_names_per_ip_per_minute = 30\n",
        ),
    )
    .await;
    app.register_device("SN-LOOK-1", "device-pass-1", "").await;
    app.register_device("SN-LOOK-2", "device-pass-1", "").await;
    let token_1 = token_of(&app.login_device("SN-LOOK-1", "device-pass-1").await);
    let token_2 = token_of(&app.login_device("SN-LOOK-2", "device-pass-1").await);

    let body = get_users(&app, "SN-LOOK-1", &token_1, 11).await;
    assert_eq!(body["result"], 2, "more names than allowed: {body}");
    for _ in 0..2 {
        let body = get_users(&app, "SN-LOOK-1", &token_1, 10).await;
        assert_eq!(body["result"], 0, "{body}");
        assert_eq!(body["unknown_ls"].as_array().unwrap().len(), 10);
    }
    // The account's budget is spent.
    let body = get_users(&app, "SN-LOOK-1", &token_1, 1).await;
    assert_eq!(body["result"], 9, "{body}");
    assert!(body["retry_after"].as_u64().unwrap() >= 1, "{body}");
    // Another account from the same address: the address's budget is left
    // with 10 names.
    let body = get_users(&app, "SN-LOOK-2", &token_2, 10).await;
    assert_eq!(body["result"], 0, "{body}");
    let body = get_users(&app, "SN-LOOK-2", &token_2, 1).await;
    assert_eq!(body["result"], 9, "{body}");
}

async fn concurrent_password_changes_have_one_winner_and_keep_jidgate_and_the_xmpp_server_in_step(
    kind: Kind,
) {
    let xmpp = XmppServer::start(kind).await;
    // Hold the winner between recording and pushing its new JID password, so
    // that the others overlap with it.
    let faults = hook(|point| {
        Box::pin(async move {
            if point == "password.before_push" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(())
        })
    });
    let app = TestApp::spawn_with(
        &xmpp,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    app.register_device("SN-CHG-1", "device-pass-0", "").await;

    let new_passwords: Vec<String> = (1..=4).map(|i| format!("device-pass-{i}")).collect();
    let answers = join_all(new_passwords.iter().map(|new| async {
        app.call(
            DEVICE_APP_ID,
            "/change_password",
            &[
                ("user_name", "SN-CHG-1"),
                ("password", "device-pass-0"),
                ("type", "2"),
                ("new_password", new),
            ],
        )
        .await
    }))
    .await;
    let codes = codes_of(&answers);
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 115).count(), 3, "{codes:?}");
    let winner = &new_passwords[codes.iter().position(|c| *c == 0).unwrap()];

    // Only the winner's password works, and the JID password jidgate holds
    // is the one the XMPP server has.
    for candidate in new_passwords
        .iter()
        .chain(["device-pass-0".to_owned()].iter())
    {
        let body = app.login_device("SN-CHG-1", candidate).await;
        let expected = if candidate == winner { 0 } else { 102 };
        assert_eq!(body["result"], expected, "{candidate}: {body}");
    }
    let login = app.login_device("SN-CHG-1", winner).await;
    let jid = login["user_info"]["jid"].as_str().unwrap();
    let jid_pwd = login["user_info"]["jid_pwd"].as_str().unwrap();
    xmpp.login(jid, jid_pwd)
        .await
        .expect("the JID password jidgate holds logs in to the XMPP server")
        .close()
        .await;
    assert_eq!(
        app.count("select count(*) from account where jid_pwd_next is not null")
            .await,
        0
    );
}

#[tokio::test]
async fn captchas_are_drawn_with_the_hardened_recipe() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    for _ in 0..10 {
        let (_, answer, png) = app.captcha().await;
        // 220×120 like the crate's presets (IHDR width and height,
        // big-endian, at bytes 16..24), not the old 200×70.
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (220, 120));
        // Five characters, none of the look-alikes people misread.
        assert_eq!(answer.chars().count(), 5, "{answer}");
        assert!(
            answer.chars().all(|c| "abdehkmpstuvwx2468".contains(c)),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn get_user_banding_is_rate_limited_per_account() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn_with(
        &prosody,
        Settings::toml("[rate_limits]\nget_user_banding_per_account_per_minute = 2\n"),
    )
    .await;
    app.register_device("SN-ROST-1", "device-pass-1", "").await;
    app.register_device("SN-ROST-2", "device-pass-1", "").await;
    let token_1 = token_of(&app.login_device("SN-ROST-1", "device-pass-1").await);
    let token_2 = token_of(&app.login_device("SN-ROST-2", "device-pass-1").await);
    let roster = |name: &'static str, token: String| {
        let app = &app;
        async move {
            app.call(
                DEVICE_APP_ID,
                "/get_user_banding",
                &[("user_name", name), ("access_token", &token)],
            )
            .await
        }
    };
    for _ in 0..2 {
        let body = roster("SN-ROST-1", token_1.clone()).await;
        assert_eq!(body["result"], 0, "{body}");
    }
    let body = roster("SN-ROST-1", token_1.clone()).await;
    assert_eq!(body["result"], 9, "{body}");
    // Each account has its own budget.
    let body = roster("SN-ROST-2", token_2.clone()).await;
    assert_eq!(body["result"], 0, "{body}");
}

// ------------------------------------------------------------------ helpers

/// Registers a WeChat user (solving a captcha); asserts success.
async fn register_wechat(app: &TestApp, name: &str, password: &str) {
    let (id, answer, _) = app.captcha().await;
    let body = app
        .call(
            APP_ID,
            "/register",
            &[
                ("user_name", name),
                ("password", password),
                ("type", "3"),
                ("verify_code", &answer),
                ("captcha_id", &id),
            ],
        )
        .await;
    assert_eq!(body["result"], 0, "{body}");
}

/// A WeChat login, with a solved captcha or without one.
async fn login_wechat(app: &TestApp, name: &str, password: &str, captcha: bool) -> Value {
    let mut params = vec![
        ("user_name", name.to_owned()),
        ("password", password.to_owned()),
        ("type", "3".to_owned()),
    ];
    if captcha {
        let (id, answer, _) = app.captcha().await;
        params.push(("verify_code", answer));
        params.push(("captcha_id", id));
    }
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.call(APP_ID, "/login", &borrowed).await
}

/// `/get_users` for `n` made-up names.
/// `/get_users` as a device, with its own key and token.
async fn get_users(app: &TestApp, device: &str, token: &str, n: usize) -> Value {
    let names: Vec<String> = (0..n).map(|i| format!("nobody-{i}")).collect();
    let list = serde_json::to_string(&names).unwrap();
    app.call(
        DEVICE_APP_ID,
        "/get_users",
        &[
            ("user_name", device),
            ("access_token", token),
            ("user_name_ls", &list),
        ],
    )
    .await
}

fn token_of(login: &Value) -> String {
    assert_eq!(login["result"], 0, "{login}");
    login["access_token"].as_str().unwrap().to_owned()
}

fn codes_of(answers: &[Value]) -> Vec<i64> {
    answers
        .iter()
        .map(|a| a["result"].as_i64().unwrap())
        .collect()
}

/// The peak resident memory of this (test) process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

on_each_server!(
    concurrent_password_changes_have_one_winner_and_keep_jidgate_and_the_xmpp_server_in_step,
);
