//! The register API's router: every domain's routes, `/openapi.json`, the
//! health checks,
//! and the layers every request passes: its span (outermost), the request
//! timeout, and the writer that signs answers and logs failures once.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;

use crate::app::App;
use crate::{accounts, api, binding, captcha, console, db, facade, playground};

/// The register API's routes, each described in `/openapi.json`.
pub fn api_routes() -> api::Routes {
    api::Routes::new()
        .merge(captcha::router())
        .merge(accounts::router())
        .merge(binding::router())
}

/// The HTTP routes of every module.
pub fn router(app: App) -> Router {
    let timeout = Duration::from_secs(app.config.http.request_timeout.max(1));
    let mut routes = api_routes().into_router();
    if app.config.console.enabled {
        routes = routes.merge(console::router());
    }
    if playground::enabled(&app.config) {
        routes = routes.route("/playground", get(playground::page));
    }
    routes
        .merge(facade::router(&app))
        .route("/openapi.json", get(super::openapi::openapi_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route_layer(from_fn(api::trace::record_route))
        .fallback(not_found)
        .layer(from_fn(api::finish_answers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(from_fn_with_state(app.clone(), api::trace::request_span))
        .with_state(app)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "no such endpoint\n")
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Stuck rows listed by `/readyz` at most.
const READYZ_STUCK_ROWS: i64 = 20;

/// The database answers and the XMPP admin session is up (200, else 503).
/// Rows the reconciler keeps failing on are listed under `stuck` but do not
/// make the instance unready: a load balancer must not take away an
/// instance that serves everyone else because one row needs an operator.
async fn readyz(State(app): State<App>) -> impl IntoResponse {
    let db = app.db.ping().await;
    let xmpp = app.provisioner.is_ready();
    let status = if db && xmpp {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({ "database": db, "xmpp": xmpp });
    let threshold = i64::from(app.config.reconcile.alert_after);
    if db
        && let Ok((count, rows)) =
            db::repair_attempt::stuck(&app.db, threshold, READYZ_STUCK_ROWS).await
    {
        body["stuck"] = serde_json::json!({ "count": count, "rows": rows });
    }
    (status, axum::Json(body))
}
