//! The API playground at `/playground` for app developers: one page that
//! reads the endpoints from `/openapi.json`, signs a request in the browser
//! (WebCrypto HMAC-SHA256, docs/signing.md), sends it and checks the
//! answer's `sign`. The app key stays in the page. Served when
//! `playground.enabled` says so (`auto`: on a loopback listener only).

use axum::response::Html;

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

/// `GET /playground`.
pub async fn page() -> Result<Html<String>, Page> {
    render(&Playground)
}
