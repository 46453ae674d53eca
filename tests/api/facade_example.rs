//! The Python example client of docs/examples/facade_client.py, run for
//! real against a facade user (an independent implementation of the
//! envelope, with and without compression).

use serde_json::json;

use crate::binding::phone;
use crate::facade_client::Ws;
use crate::helpers::*;

/// Fails (never skips) when Python or its websockets package is missing.
fn require_websockets() {
    require_tool("python3", "apt-get install -y python3");
    let ok = std::process::Command::new("python3")
        .args(["-c", "import websockets.asyncio.client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Python package websockets (>= 13) is missing: pip install websockets==17.4 \
         (scripts/test.sh installs it)"
    );
}

async fn run_example(zlib: bool) {
    // Arrange
    require_websockets();
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let py = phone(&app, "13800000111", "").await;
    let rust = phone(&app, "13800000112", "").await;
    let mut peer = Ws::started(&app, &rust.token).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/facade_client.py"
    );
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .arg(format!("ws://{}/ws", app.addr))
        .arg(&py.token)
        .arg(&rust.name);
    if zlib {
        cmd.arg("--zlib");
    }

    // Act: the Python client writes; we answer it.
    let child = cmd.output();
    let answer = async {
        let m = peer.push("newmsg").await;
        assert_eq!(m["data"]["message"]["content"], "hello from python");
        peer.ack(&m["pid"]).await;
        peer.ok(
            "message.send",
            json!({"to": py.name, "content": "hi, python 你好"}),
        )
        .await;
    };
    let (out, ()) = tokio::join!(child, answer);
    let out = out.expect("run python3");

    // Assert
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "facade_client.py failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["uid"], py.name.as_str());
    assert_eq!(summary["got"]["content"], "hi, python 你好");
    assert_eq!(summary["got"]["uid"], rust.name.as_str());
    assert_eq!(summary["unknown_func_errno"], 5002);
}

#[tokio::test]
async fn the_python_example_client_chats_with_a_facade_user() {
    run_example(false).await;
}

#[tokio::test]
async fn the_python_example_client_chats_in_compressed_mode() {
    run_example(true).await;
}
