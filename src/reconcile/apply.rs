//! Carrying out repairs, and counting the ones that fail.

use tracing::instrument;

use super::{Action, attempts};
use crate::app::App;
use crate::binding::{self, Sessions};
use crate::db::account as accounts;
use crate::error::Error;

/// Carries out one action.
#[instrument(name = "repair", skip_all, fields(operation = action.operation()), err(level = "debug"))]
pub async fn apply(app: &App, action: &Action) -> Result<(), Error> {
    match action {
        Action::UndoCreate(a) => {
            let jid = a.jid(app.domain())?;
            app.provisioner.delete_user(&jid).await?;
            accounts::delete(&app.db, a.id).await
        }
        Action::FinishDelete(a) => {
            let jid = a.jid(app.domain())?;
            app.provisioner.delete_user(&jid).await?;
            app.tokens.revoke_account(a.id).await?;
            if binding::forget_account(app, a).await? {
                accounts::delete(&app.db, a.id).await?;
                Ok(())
            } else {
                Err(Error::Xmpp("some rosters could not be cleaned yet".into()))
            }
        }
        Action::PushJidPassword(a) => {
            let Some(next) = &a.jid_pwd_next else {
                return Ok(());
            };
            let jid = a.jid(app.domain())?;
            let password = app
                .jid_cipher
                .decrypt(jid.as_str(), next)
                .map_err(Error::Internal)?;
            app.provisioner.change_password(&jid, &password).await?;
            accounts::commit_jid_pwd(&app.db, a.id, crate::clock::now()).await
        }
        Action::UndoBinding(b) | Action::FinishUnbinding(b) => {
            let sessions = Sessions::new(app);
            let r = binding::unbind_row(app, &sessions, b).await;
            sessions.close().await;
            r
        }
        Action::Rebind { binding: b, .. } => {
            let (owner, device) = binding::accounts_of(app, b).await?;
            let sessions = Sessions::new(app);
            let r = binding::establish(app, &sessions, &owner, &device).await;
            sessions.close().await;
            r
        }
        Action::RemoveStray { owner, device, .. } => {
            let sessions = Sessions::new(app);
            let r = binding::dissolve(app, &sessions, owner, device).await;
            sessions.close().await;
            r
        }
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub done: usize,
    pub failed: usize,
}

/// Applies actions one by one; failures are counted, logged and left for
/// next time (at error level once a row has failed `reconcile.alert_after`
/// times).
pub async fn apply_all(app: &App, actions: &[Action]) -> Report {
    apply_each(app, actions, |_| {}).await
}

/// [`apply_all`], telling `done` after each action whether it succeeded
/// (for a progress display).
pub async fn apply_each(app: &App, actions: &[Action], mut done: impl FnMut(bool)) -> Report {
    let mut report = Report::default();
    let alert_after = i64::from(app.config.reconcile.alert_after);
    for action in actions {
        let (target, operation) = (action.target(), action.operation());
        // Boxed: a repair's future (XMPP logins, roster handshakes) is
        // large, and callers such as `sweep_pending` are often awaited
        // inline on a small stack.
        match Box::pin(apply(app, action)).await {
            Ok(()) => {
                done(true);
                crate::metrics::reconcile_action(operation, true);
                tracing::info!(action = %action, "reconciled");
                report.done += 1;
                if let Err(e) = attempts::clear(&app.db, &target, operation).await {
                    tracing::warn!(error = %e, "clearing a repair attempt count failed");
                }
            }
            Err(e) => {
                done(false);
                crate::metrics::reconcile_action(operation, false);
                report.failed += 1;
                let counted =
                    attempts::record_failure(&app.db, &target, operation, &e, crate::clock::now())
                        .await;
                match counted {
                    Ok(n) if n >= alert_after => tracing::error!(
                        action = %action,
                        row = %target,
                        attempts = n,
                        error = %e,
                        "reconciliation keeps failing; needs an operator (listed in /readyz)"
                    ),
                    Ok(n) => tracing::warn!(
                        action = %action,
                        attempts = n,
                        error = %e,
                        "reconciliation failed; will retry"
                    ),
                    Err(count_error) => tracing::error!(
                        action = %action,
                        error = %e,
                        %count_error,
                        "reconciliation failed and its attempt could not be counted"
                    ),
                }
            }
        }
    }
    report
}
