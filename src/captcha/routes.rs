//! `/verify_code`: a fresh captcha as a PNG, its id in a header and a
//! cookie.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::draw;
use crate::api::ClientIp;
use crate::app::App;
use crate::crypto::random_token;
use crate::db;
use crate::error::Error;
use crate::params::Params;

pub fn router() -> Router<App> {
    Router::new().route("/verify_code", get(verify_code).post(verify_code))
}

async fn verify_code(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    _params: Params,
) -> Result<Response, Error> {
    app.limits.verify_code.check(&ip).await?;
    let length = app.config.captcha.length;
    let (answer, png) = tokio::task::spawn_blocking(move || draw(length))
        .await
        .map_err(Error::internal)??;
    let id = random_token::<16>();
    let ttl = app.config.captcha.ttl as i64;
    db::captcha::insert(&app.db, &id, &answer, crate::clock::now() + ttl).await?;
    let secure = if app.config.tls.enabled() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("captcha_id={id}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}");
    let mut response = png.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-captcha-id",
        HeaderValue::from_str(&id).map_err(Error::internal)?,
    );
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(Error::internal)?,
    );
    Ok(response)
}
