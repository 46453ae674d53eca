//! The Python example client of docs/examples/client.py, run for real: an
//! independent implementation of the signing algorithm.

use crate::helpers::*;

async fn python(app: &TestApp, args: &[&str]) -> serde_json::Value {
    require_tool("python3", "apt-get install -y python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/client.py");
    let base = format!("http://{}", app.addr);
    // Async: the service runs on this test's runtime and must keep serving.
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&base)
        .args(args)
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test]
async fn the_python_example_client_registers_and_logs_in_a_device() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let device = [DEVICE_APP_ID, DEVICE_SECRET, "device"];
    let mut args = device.to_vec();
    args.extend([
        "/register",
        "user_name=SN-PY-1",
        "password=py pass/+1",
        "type=2",
        "device_type=lamp",
        "des=客厅灯",
    ]);
    let answer = python(&app, &args).await;
    assert_eq!(answer["result"], 0, "{answer}");

    let mut args = device.to_vec();
    args.extend([
        "/login",
        "user_name=SN-PY-1",
        "password=py pass/+1",
        "type=2",
    ]);
    let answer = python(&app, &args).await;
    assert_eq!(answer["result"], 0, "{answer}");
    assert_eq!(answer["user_info"]["des"], "客厅灯");
    let session = prosody
        .login(
            answer["user_info"]["jid"].as_str().unwrap(),
            answer["user_info"]["jid_pwd"].as_str().unwrap(),
        )
        .await
        .expect("XMPP login with what the Python client got");
    session.close().await;

    // A call acting as the device: its own key, its own token.
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let mut args = device.to_vec();
    let token_arg = format!("access_token={token}");
    args.extend(["/get_bind_code", "user_name=SN-PY-1", &token_arg]);
    let answer = python(&app, &args).await;
    assert_eq!(answer["result"], 0, "{answer}");
    assert_eq!(answer["bind_code"].as_str().unwrap().len(), 8, "{answer}");

    // With the app secret instead of the device key, the signature fails:
    // the script sees code 6 in an unsigned answer and its check trips.
    let mut args = vec![DEVICE_APP_ID, DEVICE_SECRET, "app"];
    args.extend([
        "/login",
        "user_name=SN-PY-1",
        "password=py pass/+1",
        "type=2",
    ]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", app.addr))
        .args(&args)
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "a wrong key must not pass the sign check"
    );
}
