//! The operator console at `/console`: server-rendered HTML from
//! `templates/console/` (askama, checked at compile time), no JavaScript.
//! A top-layer adapter over the same domains, `db` and `reconcile` as the
//! register API. Operators log in ([`auth`]); the pages ([`pages`]) search
//! accounts, show one with its sessions and bindings (the live roster read
//! from the XMPP server beside the database), the pending rows, the
//! reconciler (dry run and real run) and the audit of every operator action;
//! operators disable and enable accounts ([`actions`]).

pub mod actions;
pub mod auth;
pub mod pages;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::App;
use crate::db;
use crate::error::Error;

pub use auth::{Operator, add_operator};

/// The console's routes (merged only when `console.enabled`).
pub fn router() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/accounts") }),
        )
        .route("/console/login", get(auth::login_form).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/accounts", get(pages::search))
        .route("/console/accounts/{id}", get(pages::account))
        .route(
            "/console/accounts/{id}/sessions/{session}/revoke",
            post(pages::revoke_session),
        )
        .route("/console/accounts/{id}/disable", post(actions::disable))
        .route("/console/accounts/{id}/enable", post(actions::enable))
        .route("/console/pending", get(pages::pending))
        .route(
            "/console/reconcile",
            get(pages::reconcile).post(pages::run_reconcile),
        )
        .route("/console/audit", get(pages::audit_page))
        .layer(axum::middleware::map_response(guard_headers))
}

/// Headers of every console answer: never cached, never framed by another
/// site (a framed page's buttons could be clicked for the operator), no
/// script at all, forms posted only to the console itself.
pub async fn guard_headers(mut r: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// A console page that could not be shown: an HTML error page.
#[derive(Debug)]
pub enum Page {
    Forbidden(&'static str),
    NotFound,
    Failed(Error),
}

impl From<Error> for Page {
    fn from(e: Error) -> Page {
        Page::Failed(e)
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            Page::Forbidden(why) => (StatusCode::FORBIDDEN, (*why).to_owned()),
            Page::NotFound => (StatusCode::NOT_FOUND, "no such page".to_owned()),
            Page::Failed(e) => {
                if e.is_server_side() {
                    tracing::error!(error = %format!("{e:#}: {e:?}"), "console page failed");
                }
                (e.status(), e.public_message())
            }
        };
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>jidgate console</title>\
             </head><body><h1>{}</h1><p>{}</p><p><a href=\"/console/accounts\">back</a></p>\
             </body></html>",
            status.as_u16(),
            html_escape(&text)
        );
        (status, Html(body)).into_response()
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders a template into a page.
pub fn render(t: &impl askama::Template) -> Result<Html<String>, Page> {
    t.render()
        .map(Html)
        .map_err(|e| Page::Failed(Error::internal(e)))
}

/// Writes an operator action to the audit table.
pub async fn audit(
    app: &App,
    operator: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), Error> {
    tracing::info!(operator, action, target, "console action");
    db::audit::record(
        &app.db,
        operator,
        action,
        target,
        detail,
        crate::clock::now(),
    )
    .await
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(ts: i64) -> String {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A duration in seconds, as `1h 2m` / `5m 3s` / `7s`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages_read_as_people_write_them() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(time(951_825_661), "2000-02-29 12:01:01");
        assert_eq!(age(7), "7s");
        assert_eq!(age(3_725), "1h 2m");
        assert_eq!(age(90_000), "1d 1h");
    }
}
