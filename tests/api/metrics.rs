//! `/metrics` on its own listener: a scripted workload against the real
//! binary (a process of its own, so no other test's requests are counted),
//! then a scrape that must show exactly the counts the workload produced.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings};
use crate::token_service::Conn;

/// The value of the sample `series` (name and labels exactly as written),
/// or 0 when the series is absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

async fn scrape(p: &JidgateProcess) -> String {
    let r = p
        .client
        .get(format!("http://{}/metrics", p.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    r.text().await.unwrap()
}

/// Sends one token service request line and reads its reply.
async fn ask(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    request: Value,
) -> Value {
    wr.write_all(format!("{request}\n").as_bytes())
        .await
        .unwrap();
    let line = lines.next_line().await.unwrap().expect("a reply");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn metrics_count_what_a_scripted_workload_did() {
    let prosody = Prosody::start().await;
    let p = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings::toml("[rate_limits]\nverify_code_per_minute = 2\n"),
    )
    .await;
    // The register API is not the metrics listener.
    let r = p.client.get(p.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let serial = format!("metrics-{}", jidgate::crypto::random_token::<6>());
    let register = p
        .call(
            DEVICE_APP_ID,
            "/register",
            &[
                ("user_name", &serial),
                ("password", "device-pass-1"),
                ("type", "2"),
                ("device_type", "lamp"),
                ("des", ""),
            ],
        )
        .await;
    assert_eq!(register["result"], 0, "{register}");
    let login = p
        .call(
            DEVICE_APP_ID,
            "/login",
            &[
                ("user_name", &serial),
                ("password", "device-pass-1"),
                ("type", "2"),
            ],
        )
        .await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let wrong = p
        .call(
            DEVICE_APP_ID,
            "/login",
            &[
                ("user_name", &serial),
                ("password", "wrong-pass-1"),
                ("type", "2"),
            ],
        )
        .await;
    assert_eq!(wrong["result"], 102, "{wrong}");
    // Two captchas, then the third is refused (2 a minute).
    for expected in [200, 200, 429] {
        let r = p.client.get(p.url("/verify_code")).send().await.unwrap();
        assert_eq!(r.status(), expected);
    }
    let r = p.client.get(p.url("/no_such_page")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // The token service: one connection, a valid and a refused token.
    let (rd, mut wr) = TcpStream::connect(p.token_addr).await.unwrap().into_split();
    let mut lines = BufReader::new(rd).lines();
    let hello = ask(&mut lines, &mut wr, Conn::hello(SERVICE_APP_ID, 0)).await;
    assert_eq!(hello["result"], 0, "{hello}");
    let good = json!({"seq": 1, "cmd": "verify_access_token", "access_token": token});
    assert_eq!(ask(&mut lines, &mut wr, good).await["result"], 0);
    let bad = json!({"seq": 2, "cmd": "verify_access_token", "access_token": "jgt_nonsense"});
    assert_ne!(ask(&mut lines, &mut wr, bad).await["result"], 0);

    // A row left mid-way shows as pending while it is within the grace.
    let db = crate::helpers::connect_db(&p.db_file).await;
    sqlx::query("update account set state = 'deleting', updated_at = $1 where user_name = $2")
        .bind(jidgate::now())
        .bind(&serial)
        .execute(&db)
        .await
        .unwrap();

    let text = scrape(&p).await;
    for (series, value) in [
        (
            r#"jidgate_http_requests_total{endpoint="/register",status="200",result="0"}"#,
            1.0,
        ),
        (
            r#"jidgate_http_requests_total{endpoint="/login",status="200",result="0"}"#,
            1.0,
        ),
        (
            r#"jidgate_http_requests_total{endpoint="/login",status="200",result="102"}"#,
            1.0,
        ),
        (
            r#"jidgate_http_requests_total{endpoint="/verify_code",status="200",result="none"}"#,
            2.0,
        ),
        (
            r#"jidgate_http_requests_total{endpoint="/verify_code",status="429",result="9"}"#,
            1.0,
        ),
        (
            // `/metrics` on the register API and `/no_such_page`.
            r#"jidgate_http_requests_total{endpoint="unmatched",status="404",result="none"}"#,
            2.0,
        ),
        (
            r#"jidgate_http_request_duration_seconds_count{endpoint="/login"}"#,
            2.0,
        ),
        (
            r#"jidgate_rate_limit_refusals_total{endpoint="/verify_code"}"#,
            1.0,
        ),
        (
            r#"jidgate_xmpp_commands_total{command="add-user",outcome="ok"}"#,
            1.0,
        ),
        (
            r#"jidgate_xmpp_command_duration_seconds_count{command="add-user"}"#,
            1.0,
        ),
        ("jidgate_xmpp_admin_session_up", 1.0),
        ("jidgate_token_service_connections_total", 1.0),
        ("jidgate_token_service_connections_open", 1.0),
        (r#"jidgate_token_verifications_total{result="valid"}"#, 1.0),
        (
            r#"jidgate_token_verifications_total{result="refused"}"#,
            1.0,
        ),
        (r#"jidgate_pending_rows{kind="deleting"}"#, 1.0),
        (r#"jidgate_pending_rows{kind="creating"}"#, 0.0),
    ] {
        assert_eq!(sample(&text, series), value, "{series} in\n{text}");
    }

    // Past its grace, the reconciler finishes the deletion.
    sqlx::query("update account set updated_at = 0 where user_name = $1")
        .bind(&serial)
        .execute(&db)
        .await
        .unwrap();
    drop((lines, wr));
    eventually("the reconciler finishes the deletion", || async {
        let text = scrape(&p).await;
        sample(
            &text,
            r#"jidgate_reconcile_actions_total{operation="finish_delete",outcome="ok"}"#,
        ) == 1.0
            && sample(&text, r#"jidgate_pending_rows{kind="deleting"}"#) == 0.0
    })
    .await;
    let text = scrape(&p).await;
    assert_eq!(
        sample(
            &text,
            r#"jidgate_xmpp_commands_total{command="delete-user",outcome="ok"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "jidgate_token_service_connections_open"), 0.0);
}
