//! What an operator changes from an account's page: disabling an account
//! (its logins are refused, its sessions revoked, its JID password rotated
//! so that the JID cannot log in with what its user has, and its live XMPP
//! sessions ended where the server offers XEP-0133 end-user-session) and enabling it
//! again (its next login hands out the JID password that is current).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Operator, Page, audit};
use crate::accounts;
use crate::app::App;
use crate::db::{self, console as rows};
use crate::error::Error;
use crate::params::Params;

/// `POST /console/accounts/{id}/disable`.
pub async fn disable(
    State(app): State<App>,
    op: Operator,
    Path(id): Path<i64>,
    params: Params,
) -> Result<Response, Page> {
    op.check_csrf(&params)?;
    let Some(account) = db::account::active_by_id(&app.db, id).await? else {
        return Err(Page::NotFound);
    };
    let target = format!("account #{id}");
    if rows::disable(&app.db, id, &op.name, crate::clock::now()).await? {
        app.tokens.revoke_account(id).await?;
        // The JID: XEP-0133 has disable-user, but Prosody and ejabberd do not
        // offer it; a new JID password that only jidgate knows does the same.
        let rotated = accounts::rotate_jid_password(&app, &account, None).await;
        let mut detail = match &rotated {
            Ok(()) => "sessions revoked, JID password rotated".to_owned(),
            Err(e) => format!("sessions revoked; JID password not rotated: {e}"),
        };
        // Its live XMPP sessions end too, where the server offers
        // end-user-session (Prosody does; ejabberd 23.01 does not).
        let ended = match account.jid(app.domain()) {
            Ok(jid) => app
                .provisioner
                .end_sessions(&jid)
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        match ended {
            Ok(()) => detail.push_str(", XMPP sessions ended"),
            Err(e) => detail.push_str(&format!("; XMPP sessions not ended: {e}")),
        }
        audit(&app, &op.name, "disable_account", &target, &detail).await?;
        rotated?;
    }
    Ok(Redirect::to(&format!("/console/accounts/{id}")).into_response())
}

/// `POST /console/accounts/{id}/enable`.
pub async fn enable(
    State(app): State<App>,
    op: Operator,
    Path(id): Path<i64>,
    params: Params,
) -> Result<Response, Page> {
    op.check_csrf(&params)?;
    if rows::enable(&app.db, id).await? {
        audit(
            &app,
            &op.name,
            "enable_account",
            &format!("account #{id}"),
            "",
        )
        .await?;
    }
    Ok(Redirect::to(&format!("/console/accounts/{id}")).into_response())
}
