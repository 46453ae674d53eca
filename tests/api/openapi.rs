//! `/openapi.json` is served, OpenAPI 3.1, and names every endpoint.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_openapi_document_is_served_with_every_endpoint() {
    let prosody = Prosody::start().await;
    let app = TestApp::spawn(&prosody).await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    // A copy to read: target/tmp/openapi.json.
    let _ = std::fs::write(
        format!("{}/openapi.json", env!("CARGO_TARGET_TMPDIR")),
        serde_json::to_string_pretty(&doc).unwrap(),
    );
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/verify_code",
        "/register",
        "/login",
        "/get_users",
        "/set_user_banding",
        "/set_user_binding",
        "/get_user_binding",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path}");
    }
}
