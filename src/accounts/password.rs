//! Changing passwords: a new JID password for every change of the account
//! password, recorded before it is pushed (XEP-0133 change-user-password),
//! one change per account at a time.

use secrecy::SecretString;
use tracing::instrument;

use crate::app::App;
use crate::crypto::random_token;
use crate::db::{Account, account};
use crate::error::Error;
use crate::xmpp::admin::AdminOutcome;

/// Gives an account a new JID password (and optionally a new account
/// password hash, applied only if the XMPP server took the new JID password).
/// The new JID password is recorded before it is pushed, so an interrupted
/// push is repeated by the reconciler.
///
/// One change per account at a time: the new JID password is recorded only
/// if none is pending and the account is still as `account` was read (same
/// password hash, active). Otherwise another change is running or has just
/// happened, and this one answers 115 without changing anything.
#[instrument(name = "rotate_jid_password", skip_all, err(level = "debug"))]
pub async fn rotate_jid_password(
    app: &App,
    account: &Account,
    password_hash: Option<&str>,
) -> Result<(), Error> {
    let jid = account.jid(app.domain())?;
    let next = SecretString::from(random_token::<24>());
    let enc = app.jid_cipher.encrypt(jid.as_str(), &next);
    if !account::begin_jid_pwd_change(&app.db, account, &enc, crate::clock::now()).await? {
        return Err(Error::ConcurrentChange);
    }
    app.faults.point("password.before_push").await?;
    match app.provisioner.change_password(&jid, &next).await {
        Ok(AdminOutcome::Done) => {}
        Ok(outcome) => {
            account::abandon_jid_pwd_change(&app.db, account.id, &enc, crate::clock::now()).await?;
            return Err(Error::Xmpp(format!("change-user-password: {outcome:?}")));
        }
        Err(e) => {
            if e.not_sent() {
                account::abandon_jid_pwd_change(&app.db, account.id, &enc, crate::clock::now())
                    .await?;
            }
            return Err(e.into());
        }
    }
    account::finish_jid_pwd_change(
        &app.db,
        account.id,
        &enc,
        password_hash,
        crate::clock::now(),
    )
    .await?;
    Ok(())
}
