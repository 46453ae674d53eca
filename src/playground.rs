//! The API playground at `/playground` for app developers: one page that
//! reads the endpoints from `/openapi.json`, signs a request in the browser
//! (WebCrypto HMAC-SHA256, docs/signing.md), sends it and checks the
//! answer's `sign`. The app key stays in the page. Served when
//! `playground.enabled` says so (`auto`: on a loopback listener only).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::config::{Config, PlaygroundMode};
use crate::console::{Page, render};

#[derive(askama::Template)]
#[template(path = "playground.html")]
struct Playground;

/// Whether `/playground` is served.
pub fn enabled(config: &Config) -> bool {
    match config.playground.enabled {
        PlaygroundMode::On => true,
        PlaygroundMode::Off => false,
        PlaygroundMode::Auto => config.http.listen.ip().is_loopback(),
    }
}

/// `GET /playground`: not framed by another site; its script and the
/// answers it fetches stay on this origin.
pub async fn page() -> Result<Response, Page> {
    let mut r = render(&Playground)?.into_response();
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_serves_the_playground_on_loopback_listeners_only() {
        let with = |listen: &str, mode: &str| {
            let config = Config::from_toml(&format!(
                "[secrets]\njid_key = \"{}\"\n[http]\nlisten = \"{listen}\"\n\
                 [playground]\nenabled = \"{mode}\"\n",
                "00".repeat(32)
            ));
            enabled(&config.expect("a valid configuration"))
        };
        assert!(with("127.0.0.1:8080", "auto"));
        assert!(with("[::1]:8080", "auto"));
        assert!(!with("127.0.0.1:8080", "off"));
    }
}
