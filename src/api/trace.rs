//! One span per request, so that every log line says which request it
//! belongs to: its method, its route, its request id (also returned in
//! `X-Request-Id`) and, once a signed request names one, its user name; and
//! the request's metrics (endpoint, status, result code, latency). No
//! password, token, `jid_pwd` or address is ever a field.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::answer::AnswerResult;
use crate::app::App;
use crate::config::Cidr;
use crate::error::Error;
use crate::{crypto, metrics};

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a proxy.
pub const MAX_REQUEST_ID: usize = 128;

/// Where the route layer leaves the matched route for the outermost layer
/// (the response of a timed-out request carries no extensions).
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<MatchedPath>>);

/// The request's id: the one a trusted proxy (`http.trusted_proxies`) sent
/// in `X-Request-Id`, if it is 1 to [`MAX_REQUEST_ID`] characters of
/// letters, digits and `-_.:`; else a fresh random one. A client that is
/// not a trusted proxy cannot choose the id its request is logged under.
pub fn request_id(
    peer: Option<SocketAddr>,
    sent: Option<&HeaderValue>,
    trusted: &[Cidr],
) -> String {
    let from_proxy = peer.is_some_and(|p| {
        let ip = p.ip().to_canonical();
        trusted.iter().any(|net| net.contains(ip))
    });
    if from_proxy
        && let Some(text) = sent.and_then(|v| v.to_str().ok())
        && (1..=MAX_REQUEST_ID).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return text.to_owned();
    }
    crypto::random_token::<12>()
}

/// Outermost layer: runs the request in a span `request` with its method
/// and request id; the route is filled in by [`record_route`] once the
/// router has matched it (a path that matches no route is never recorded),
/// the user by [`record_user`]. Answers with `X-Request-Id`, and counts the
/// request in [`metrics`].
pub async fn request_span(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let id = request_id(
        peer,
        req.headers().get(&REQUEST_ID),
        &app.config.http.trusted_proxies,
    );
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = tracing::field::Empty,
        request_id = %id,
        user = tracing::field::Empty,
    );
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
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

/// Names the user a request is about in the request's span, once its
/// signature has been checked (a forged request names no one in the log).
pub fn record_user(user_name: &str) {
    tracing::Span::current().record("user", user_name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn only_a_trusted_proxy_chooses_the_request_id() {
        let trusted = [Cidr::try_from("10.0.0.0/8".to_owned()).unwrap()];
        let sent = HeaderValue::from_static("req-7f3a.9:1");
        assert_eq!(
            request_id(peer("10.1.2.3"), Some(&sent), &trusted),
            "req-7f3a.9:1"
        );
        assert_eq!(
            request_id(peer("::ffff:10.1.2.3"), Some(&sent), &trusted),
            "req-7f3a.9:1"
        );
        let fresh = request_id(peer("192.0.2.1"), Some(&sent), &trusted);
        assert_ne!(fresh, "req-7f3a.9:1");
        assert_eq!(fresh.len(), 16);
        assert_ne!(request_id(None, Some(&sent), &trusted), "req-7f3a.9:1");
    }

    #[test]
    fn a_malformed_request_id_is_replaced() {
        let trusted = [Cidr::try_from("127.0.0.1".to_owned()).unwrap()];
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for bad in ["", "two words", "new\u{7f}line", "a\"b", long.as_str()] {
            let Ok(sent) = HeaderValue::from_str(bad) else {
                continue;
            };
            let id = request_id(peer("127.0.0.1"), Some(&sent), &trusted);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 16);
        }
        let fine = "a".repeat(MAX_REQUEST_ID);
        let sent = HeaderValue::from_str(&fine).unwrap();
        assert_eq!(request_id(peer("127.0.0.1"), Some(&sent), &trusted), fine);
    }
}
