//! `/verify_access_token` (for services, over HTTP), `/refresh_token` and
//! `/logout`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::api::{Reply, Signed};
use crate::app::App;
use crate::config::AppKind;
use crate::error::Error;

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/verify_access_token",
            get(verify_access_token).post(verify_access_token),
        )
        .route("/refresh_token", get(refresh_token).post(refresh_token))
        .route("/logout", get(logout).post(logout))
}

/// Only apps of kind `service` may verify other people's tokens. Verifying
/// is not using: any token of any app is answered, with the app it was
/// issued to.
async fn verify_access_token(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind != AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let token = signed.params.required("access_token")?;
    Ok(match app.tokens.verify(token, crate::clock::now()).await {
        Ok(info) => Reply::ok()
            .field("validate", true)
            .field("user_name", &*info.user_name)
            .field("type", info.type_)
            .field("expires_at", info.expires_at)
            .field("app_id", &*info.app_id),
        Err(e @ (Error::AccessToken | Error::AccessTokenExpired)) => {
            Reply::with_result(e.code()).field("validate", false)
        }
        Err(e) => return Err(e),
    })
}

/// Only the app the session was issued to renews it; a device's session
/// only under the device's own key (its `user_name` derives the key).
async fn refresh_token(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind == AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let token = signed.params.required("refresh_token")?;
    let (issued, _) = app
        .tokens
        .refresh(
            token,
            signed.caller(),
            signed.params.optional("user_name"),
            crate::clock::now(),
        )
        .await?;
    Ok(Reply::ok()
        .field("access_token", &issued.access_token)
        .field("expires_in", issued.expires_in)
        .field("expires_at", issued.expires_at)
        .field("refresh_token", &issued.refresh_token)
        .field("refresh_expires_at", issued.refresh_expires_at))
}

/// Ends the session of the access token presented, signed as every other
/// call that uses the token (its own app; a device with its own key).
async fn logout(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind == AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let p = &signed.params;
    let user_name = p.required("user_name")?;
    let token = p.required("access_token")?;
    app.tokens
        .logout(token, signed.caller(), Some(user_name), crate::clock::now())
        .await?;
    tracing::info!("session ended by logout");
    Ok(Reply::ok())
}
