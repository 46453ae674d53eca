//! `/verify_access_token` (for services, over HTTP) and `/refresh_token`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::app::App;
use crate::config::AppKind;
use crate::error::Error;
use crate::http::{Reply, Signed};

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/verify_access_token",
            get(verify_access_token).post(verify_access_token),
        )
        .route("/refresh_token", get(refresh_token).post(refresh_token))
}

/// Only apps of kind `service` may verify other people's tokens.
async fn verify_access_token(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind != AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let token = signed.params.required("access_token")?;
    Ok(match app.tokens.verify(token, crate::now()).await {
        Ok(info) => Reply::ok()
            .field("validate", true)
            .field("user_name", &*info.user_name)
            .field("type", info.type_)
            .field("expires_at", info.expires_at),
        Err(e @ (Error::AccessToken | Error::AccessTokenExpired)) => {
            Reply::with_result(e.code()).field("validate", false)
        }
        Err(e) => return Err(e),
    })
}

async fn refresh_token(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind == AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let token = signed.params.required("refresh_token")?;
    let (issued, _) = app.tokens.refresh(token, crate::now()).await?;
    Ok(Reply::ok()
        .field("access_token", &issued.access_token)
        .field("expires_in", issued.expires_in)
        .field("expires_at", issued.expires_at)
        .field("refresh_token", &issued.refresh_token)
        .field("refresh_expires_at", issued.refresh_expires_at))
}
