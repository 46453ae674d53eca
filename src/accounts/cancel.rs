//! Cancelling an account: the row is marked `deleting`, the JID deleted
//! (XEP-0133 delete-user), the tokens revoked, the account taken out of
//! every roster it was bound into, then the row removed. Once the JID may be
//! gone there is no way back: what fails is finished by the reconciler.

use tracing::instrument;

use crate::app::App;
use crate::binding;
use crate::db::{Account, AccountState, account};
use crate::error::Error;

/// Cancels an account: its JID, its bindings on both sides, its tokens and
/// its row. If the XMPP server is unreachable before anything happened,
/// nothing changes (112). Once the JID may be gone, the deletion is carried
/// through, by the reconciler if need be.
#[instrument(name = "cancel", skip_all, err(level = "debug"))]
pub async fn delete_account(app: &App, account: &Account) -> Result<(), Error> {
    let now = crate::clock::now();
    if !account::transition(
        &app.db,
        account.id,
        AccountState::Active,
        AccountState::Deleting,
        now,
    )
    .await?
    {
        return Err(Error::UnknownUser);
    }
    let jid = account.jid(app.domain())?;
    if let Err(e) = app.provisioner.delete_user(&jid).await {
        if e.not_sent() {
            account::transition(
                &app.db,
                account.id,
                AccountState::Deleting,
                AccountState::Active,
                crate::clock::now(),
            )
            .await?;
            return Err(e.into());
        }
        // Unknown whether the JID is gone: the account cannot come back.
        app.tokens.revoke_account(account.id).await?;
        tracing::warn!(error = %e, "cancel left for the reconciler");
        return Err(Error::Xmpp(
            "the XMPP server did not confirm; the cancellation will complete when it is back"
                .into(),
        ));
    }
    app.tokens.revoke_account(account.id).await?;
    app.faults.point("cancel.after_delete").await?;
    finish_deletion(app, account).await;
    Ok(())
}

/// After the JID is gone: remove the account from every roster it was bound
/// into, then its row. What fails is left (`deleting`, `unbinding`) for the
/// reconciler.
pub async fn finish_deletion(app: &App, account: &Account) {
    match binding::forget_account(app, account).await {
        Ok(true) => {
            if let Err(e) = account::delete(&app.db, account.id).await {
                tracing::warn!(error = %e, "deleting an account row left for the reconciler");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "roster clean-up left for the reconciler"),
    }
}
