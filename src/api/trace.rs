//! One span per request (method and route), so that every log line says
//! which request it belongs to. No parameter, token or address is a field.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Outermost layer: runs the request in a span `request` with its method;
/// the route is filled in by [`record_route`] once the router has matched
/// it (a path that matches no route is never recorded).
pub async fn request_span(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = tracing::field::Empty
    );
    next.run(req).instrument(span).await
}

/// Route layer: names the matched route (the pattern, e.g.
/// `/set_user_banding`) in the request's span.
pub async fn record_route(req: Request, next: Next) -> Response {
    if let Some(route) = req.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", route.as_str());
    }
    next.run(req).await
}
