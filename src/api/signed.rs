//! Signed requests: the signature covers the path and every parameter;
//! `ts` must be within the window and the nonce unused.

use axum::extract::{FromRequest, Request};

use super::answer::KeySlot;
use crate::app::App;
use crate::clock;
use crate::config::AppKind;
use crate::db::nonce;
use crate::error::Error;
use crate::params::Params;
use crate::signing::Verified;
use crate::tokens::Caller;

/// A request whose signature, `ts` and `nonce` were checked.
#[derive(Debug)]
pub struct Signed {
    pub app_id: String,
    pub kind: AppKind,
    pub params: Params,
}

impl FromRequest<App> for Signed {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Signed, Error> {
        let slot = req.extensions().get::<KeySlot>().cloned();
        // The path exactly as the request names it: a signature made for one
        // endpoint (or spelling) is worthless at another.
        let path = req.uri().path().to_owned();
        let params = Params::from_request(req, app).await?;
        let now = clock::now();
        let verified = app
            .keyring
            .verify(Some(&path), |n| params.get(n), params.iter(), now)?;
        // From here on the answer is signed and echoes the nonce, errors
        // included.
        if let Some(slot) = slot {
            slot.fill(verified.key.clone(), verified.nonce.clone());
        }
        nonce::spend(&app.db, &verified).await?;
        if let Some(user) = params.get("user_name") {
            let shown: String = user.chars().take(64).collect();
            super::trace::record_user(&shown);
        }
        let Verified { app_id, kind, .. } = verified;
        Ok(Signed {
            app_id,
            kind,
            params,
        })
    }
}

impl Signed {
    /// Who signed the request, as tokens are checked against it.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            app_id: &self.app_id,
            kind: self.kind,
        }
    }
}
