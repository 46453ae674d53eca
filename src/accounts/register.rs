//! Creating an account and its JID: the row is written `creating` before
//! the JID is created (XEP-0133 add-user) and made `active` after; a failure
//! in between leaves nothing behind, or a row the reconciler undoes.

use secrecy::SecretString;
use tracing::instrument;
use xmpp_parsers::jid::BareJid;

use crate::app::App;
use crate::crypto::{random_bytes, random_token};
use crate::db::account::{self, AccountState, NewAccount, UserType};
use crate::error::Error;
use crate::fields::{Des, DeviceType, UserName};
use crate::xmpp::admin::AdminOutcome;

/// Creates an account and its JID. On any XMPP failure nothing is left
/// behind (or, if the server's state is unknown, the `creating` row tells
/// the reconciler to remove whatever was made).
#[instrument(name = "register", skip_all, fields(user_type = ty.code()), err(level = "debug"))]
pub async fn create(
    app: &App,
    ty: UserType,
    name: &UserName,
    password: SecretString,
    des: &Des,
    device_type: Option<&DeviceType>,
) -> Result<(), Error> {
    let hash = app.hasher.hash(password).await?;
    let local = new_localpart(ty);
    let jid = account::jid(&local, app.domain())?;
    let jid_pwd = SecretString::from(random_token::<24>());
    let enc = app.jid_cipher.encrypt(jid.as_str(), &jid_pwd);
    let id = account::insert_creating(
        &app.db,
        &NewAccount {
            user_name: name.as_str(),
            type_: ty,
            device_type: device_type.map(DeviceType::as_str),
            des: des.as_str(),
            password_hash: &hash,
            jid_local: &local,
            jid_pwd_enc: &enc,
        },
        crate::clock::now(),
    )
    .await?;
    app.faults.point("register.before_provision").await?;
    match app.provisioner.add_user(&jid, &jid_pwd).await {
        Ok(AdminOutcome::Done) => {}
        Ok(outcome) => {
            // A random localpart that exists is not ours: leave it alone.
            tracing::error!(jid = %jid, ?outcome, "XMPP server already had a new JID");
            account::delete(&app.db, id).await?;
            return Err(Error::NewJidFailed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "creating a JID failed");
            if e.not_sent() {
                account::delete(&app.db, id).await?;
            } else {
                // The server may have created it: delete it now, or let the
                // reconciler do it (the row stays `creating`).
                undo_creation(app, id, &jid).await;
            }
            return Err(Error::NewJidFailed);
        }
    }
    app.faults.point("register.after_provision").await?;
    account::transition(
        &app.db,
        id,
        AccountState::Creating,
        AccountState::Active,
        crate::clock::now(),
    )
    .await?;
    Ok(())
}

/// Removes a half-created account: its JID, then its row. Failures are left
/// to the reconciler.
pub async fn undo_creation(app: &App, id: i64, jid: &BareJid) {
    match app.provisioner.delete_user(jid).await {
        Ok(_) => {
            if let Err(e) = account::delete(&app.db, id).await {
                tracing::warn!(error = %e, "removing a half-created account failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, jid = %jid, "undoing a JID left for the reconciler"),
    }
}

/// Lowercase RFC 4648 base32 alphabet: valid in every XMPP localpart and
/// unchanged by case folding.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh JID localpart: the type's letter, a dot, and 16 random base32
/// characters (80 bits), e.g. `d.q3k9x2m4r7t5v6w8`. Random rather than
/// derived from the user name, so that a JID reveals no phone number, and
/// names that differ only in case never collide after XMPP case folding.
pub fn new_localpart(ty: UserType) -> String {
    let bytes = random_bytes::<16>();
    let mut s = String::with_capacity(18);
    s.push(ty.jid_prefix());
    s.push('.');
    for b in bytes {
        s.push(BASE32[(b & 31) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts_are_valid_distinct_and_typed() {
        let a = new_localpart(UserType::Device);
        let b = new_localpart(UserType::Device);
        assert_ne!(a, b);
        assert!(a.starts_with("d.") && a.len() == 18, "{a}");
        assert!(new_localpart(UserType::Phone).starts_with("p."));
        assert!(new_localpart(UserType::Wechat).starts_with("w."));
        let jid = xmpp_parsers::jid::BareJid::new(&format!("{a}@localhost")).unwrap();
        assert_eq!(jid.node().unwrap().as_str(), a);
    }
}
