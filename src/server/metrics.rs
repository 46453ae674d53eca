//! The metrics listener: `GET /metrics` in the OpenMetrics text format, on
//! a listener of its own (`metrics.listen`), never the register API's. The
//! counters are [`crate::metrics`]'; the gauges read at scrape time (the
//! admin session, the pending rows) are read here.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::{db, metrics};

/// The metrics router.
pub fn router(app: App) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(app)
}

async fn scrape(State(app): State<App>) -> impl IntoResponse {
    let pending = match db::stats::pending_rows(&app.db).await {
        Ok(rows) => Some(rows),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: counting pending rows failed");
            None
        }
    };
    let text = metrics::render(&metrics::Snapshot {
        admin_session_up: app.provisioner.is_ready(),
        pending_rows: pending.as_deref(),
    });
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}

/// Serves the metrics until `stop`.
pub async fn serve(app: App, listener: TcpListener, stop: CancellationToken) {
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "metrics listener failed");
    }
}
