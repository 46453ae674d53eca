//! jidgate's XEP-0133 provisioner against each real server: what add-user
//! of an existing account does, how a success for an existing account is
//! caught, what missing accounts and a non-admin get.

use std::sync::Arc;
use std::time::Duration;

use jidgate::provisioner::{Provisioner, XmppProvisioner};
use jidgate::xmpp::admin::{self, AdminOutcome};
use jidgate::xmpp::{Session, roster};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;

use crate::helpers::*;
use crate::servers::{Kind, XmppServer, on_each_server};

/// jidgate's provisioner logged in as `admin` (stopped when the token is).
async fn provisioner(
    xmpp: &XmppServer,
    admin: &str,
    password: &str,
) -> (Arc<XmppProvisioner>, CancellationToken) {
    let stop = CancellationToken::new();
    let p = XmppProvisioner::start(
        xmpp.connector(),
        BareJid::new(admin).unwrap(),
        SecretString::from(password.to_owned()),
        "jidgate-admin".to_owned(),
        {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        },
    );
    (p, stop)
}

fn jid(local: &str) -> BareJid {
    BareJid::new(&format!("{local}@{DOMAIN}")).unwrap()
}

/// The test's own admin session (not jidgate's).
async fn admin(xmpp: &XmppServer) -> Session {
    xmpp.login(&format!("admin@{DOMAIN}"), ADMIN_PASSWORD)
        .await
        .expect("admin login")
}

async fn logs_in(xmpp: &XmppServer, jid: &BareJid, password: &str) -> bool {
    match xmpp.login(&jid.to_string(), password).await {
        Ok(s) => {
            s.close().await;
            true
        }
        Err(e) => {
            assert!(e.is_refused_password(), "{e}");
            false
        }
    }
}

async fn add_user_of_an_existing_account_is_refused_and_leaves_it_alone(kind: Kind) {
    // Arrange: an account made behind jidgate's back, with a contact.
    let xmpp = XmppServer::start(kind).await;
    let admin = admin(&xmpp).await;
    let (owner, other) = (jid("d.existing"), jid("p.contact"));
    for j in [&owner, &other] {
        let made = admin::add_user(&admin.handle(), j, "old-password").await;
        assert_eq!(made.unwrap(), AdminOutcome::Done);
    }
    let (p, stop) = provisioner(&xmpp, &format!("admin@{DOMAIN}"), ADMIN_PASSWORD).await;
    assert!(p.wait_ready(Duration::from_secs(10)).await);

    // Act: jidgate's add-user of the same JID with another password.
    let outcome = p
        .add_user(&owner, &SecretString::from("new-password".to_owned()))
        .await;

    // Assert: refused, and the account keeps its password.
    assert_eq!(outcome.unwrap(), AdminOutcome::AlreadyExists);
    assert!(logs_in(&xmpp, &owner, "old-password").await);
    assert!(!logs_in(&xmpp, &owner, "new-password").await);
    assert_eq!(xmpp.accounts(), vec!["admin", "d.existing", "p.contact"]);
    stop.cancel();
    admin.close().await;
}

async fn a_success_for_an_existing_account_is_caught_by_the_new_account_check(kind: Kind) {
    // What jidgate checks after add-user answered success, on accounts a
    // server that answers success for existing accounts would leave.
    let xmpp = XmppServer::start(kind).await;
    let admin = admin(&xmpp).await;
    let (p, stop) = provisioner(&xmpp, &format!("admin@{DOMAIN}"), ADMIN_PASSWORD).await;
    assert!(p.wait_ready(Duration::from_secs(10)).await);
    let ours = |s: &str| SecretString::from(s.to_owned());

    // A server that kept the existing password: ours does not log in.
    let kept = jid("d.kept");
    admin::add_user(&admin.handle(), &kept, "their-password")
        .await
        .unwrap();
    let verdict = p.check_new_account(&kept, &ours("our-password")).await;
    assert_eq!(verdict.unwrap(), AdminOutcome::AlreadyExists);

    // A server that overwrote it: ours logs in, and finds someone's contacts.
    let taken = jid("d.taken");
    let friend = jid("p.friend");
    for j in [&taken, &friend] {
        admin::add_user(&admin.handle(), j, "our-password")
            .await
            .unwrap();
    }
    let (a, b) = (
        xmpp.login(&taken.to_string(), "our-password")
            .await
            .unwrap(),
        xmpp.login(&friend.to_string(), "our-password")
            .await
            .unwrap(),
    );
    roster::subscribe_one_way(&a, &taken, &b, &friend)
        .await
        .unwrap();
    a.close().await;
    b.close().await;
    let verdict = p.check_new_account(&taken, &ours("our-password")).await;
    assert_eq!(verdict.unwrap(), AdminOutcome::AlreadyExists);

    // A new account: done.
    let fresh = jid("d.fresh");
    admin::add_user(&admin.handle(), &fresh, "our-password")
        .await
        .unwrap();
    let verdict = p.check_new_account(&fresh, &ours("our-password")).await;
    assert_eq!(verdict.unwrap(), AdminOutcome::Done);
    stop.cancel();
    admin.close().await;
}

async fn deleting_or_rekeying_a_missing_account_is_no_such_user(kind: Kind) {
    let xmpp = XmppServer::start(kind).await;
    let (p, stop) = provisioner(&xmpp, &format!("admin@{DOMAIN}"), ADMIN_PASSWORD).await;
    assert!(p.wait_ready(Duration::from_secs(10)).await);
    let missing = jid("d.missing");

    let deleted = p.delete_user(&missing).await;
    let changed = p
        .change_password(&missing, &SecretString::from("pw".to_owned()))
        .await;

    assert_eq!(deleted.unwrap(), AdminOutcome::NoSuchUser);
    assert_eq!(changed.unwrap(), AdminOutcome::NoSuchUser);
    assert_eq!(xmpp.accounts(), vec!["admin"]);
    stop.cancel();
}

async fn an_admin_session_without_the_admin_commands_is_never_used(kind: Kind) {
    // An ordinary account configured as jidgate's admin: it logs in, but
    // the server offers it none of the XEP-0133 commands, so item-not-found
    // could not be told from "no such command".
    let xmpp = XmppServer::start(kind).await;
    let admin = admin(&xmpp).await;
    let user = jid("not-an-admin");
    admin::add_user(&admin.handle(), &user, "pw").await.unwrap();
    admin.close().await;

    let (p, stop) = provisioner(&xmpp, &user.to_string(), "pw").await;

    assert!(!p.wait_ready(Duration::from_millis(1500)).await);
    let deleted = p.delete_user(&jid("d.someone")).await;
    assert!(deleted.unwrap_err().not_sent());
    stop.cancel();
}

on_each_server!(
    add_user_of_an_existing_account_is_refused_and_leaves_it_alone,
    a_success_for_an_existing_account_is_caught_by_the_new_account_check,
    deleting_or_rekeying_a_missing_account_is_no_such_user,
    an_admin_session_without_the_admin_commands_is_never_used,
);
