//! `/verify_code`: a fresh captcha as a PNG, its id in a header and a
//! cookie.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::draw;
use crate::api::{ClientIp, Routes};
use crate::app::App;
use crate::crypto::random_token;
use crate::db;
use crate::error::Error;
use crate::params::Params;

pub fn router() -> Routes {
    Routes::new().route("/verify_code", get(verify_code).post(verify_code))
}

/// The captcha endpoint's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(verify_code))]
pub struct ApiDoc;

/// A fresh image captcha.
///
/// Not signed. Answers a PNG with its id in the header `X-Captcha-Id` and
/// the cookie `captcha_id`; send the answer as `verify_code` (and the id as
/// `captcha_id`, or let the cookie carry it) where a captcha is needed.
/// Each captcha is used up by its first check. Rate limited per client
/// address: code 9 as JSON.
#[utoipa::path(
    method(get, post),
    path = "/verify_code",
    tag = "captcha",
    responses(
        (status = 200, description = "The captcha image", content_type = "image/png",
         headers(("x-captcha-id" = String, description = "The captcha's id"))),
        (status = 429, description = "Rate limited (code 9)", body = crate::api::doc::Answer),
    )
)]
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
