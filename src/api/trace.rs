//! One span per request (method and route), so that every log line says
//! which request it belongs to, and the request's metrics (endpoint, status,
//! result code, latency). No parameter, token or address is a field.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::answer::AnswerResult;
use crate::error::Error;
use crate::metrics;

/// Where the route layer leaves the matched route for the outermost layer
/// (the response of a timed-out request carries no extensions).
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<MatchedPath>>);

/// Outermost layer: runs the request in a span `request` with its method;
/// the route is filled in by [`record_route`] once the router has matched
/// it (a path that matches no route is never recorded). Counts the request
/// in [`metrics`] when it is answered.
pub async fn request_span(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = tracing::field::Empty
    );
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).instrument(span).await;
    let endpoint = slot.0.get().map_or(metrics::UNMATCHED, |r| r.as_str());
    let result = response.extensions().get::<AnswerResult>().map(|r| r.0);
    if result == Some(Error::RateLimited { retry_after: 0 }.code()) {
        metrics::rate_limited(endpoint);
    }
    metrics::http_request(
        endpoint,
        response.status().as_u16(),
        result,
        started.elapsed(),
    );
    response
}

/// Route layer: names the matched route (the pattern, e.g.
/// `/set_user_banding`) in the request's span.
pub async fn record_route(req: Request, next: Next) -> Response {
    if let Some(route) = req.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", route.as_str());
        if let Some(slot) = req.extensions().get::<RouteSlot>() {
            let _ = slot.0.set(route.clone());
        }
    }
    next.run(req).await
}
