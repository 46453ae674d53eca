//! Requests made with the caller's own access token.

use axum::extract::{FromRequest, Request};

use super::{FromParams, Signed};
use crate::app::App;
use crate::clock;
use crate::config::AppKind;
use crate::db::{Account, account};
use crate::error::Error;
use crate::tokens::TokenInfo;

/// A signed request that uses an access token: `access_token` was issued to
/// the very app that signed the request (same `app_id`, same kind) and, when
/// the request names a `user_name`, to that user (4 otherwise; 106 when it
/// has expired). A device's requests are signed with the key derived from
/// their `user_name`, so whatever acts as a device is signed with that
/// device's own key. Services have no token of their own (12): they verify
/// other people's.
///
/// The endpoint's own parameters `T` are read first, so a malformed request
/// is code 2 whatever its token.
#[derive(Debug)]
pub struct Authed<T = ()> {
    pub signed: Signed,
    /// Whose token it is.
    pub token: TokenInfo,
    /// The endpoint's own parameters.
    pub request: T,
}

impl<T: FromParams + Send> FromRequest<App> for Authed<T> {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Authed<T>, Error> {
        let signed = Signed::from_request(req, app).await?;
        if signed.kind == AppKind::Service {
            return Err(Error::UnknownApp);
        }
        let p = &signed.params;
        let request = T::from_params(p, app)?;
        let token = app
            .tokens
            .authorize(
                p.required("access_token")?,
                signed.caller(),
                p.optional("user_name"),
                clock::now(),
            )
            .await?;
        Ok(Authed {
            signed,
            token,
            request,
        })
    }
}

impl<T> Authed<T> {
    /// The caller's account, which must still be active (4 otherwise).
    pub async fn account(&self, app: &App) -> Result<Account, Error> {
        account::active_by_id(&app.db, self.token.account_id)
            .await?
            .ok_or(Error::AccessToken)
    }
}
