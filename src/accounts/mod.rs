//! Accounts: `/register`, `/login`, `/cancel`, `/get_users`,
//! `/change_password`.
//!
//! Every account has a JID on the XMPP server. The database row is written
//! as `creating` before the JID is created and `active` after; cancel marks
//! it `deleting` before the JID is deleted and removes it after. A crash at
//! any point leaves a row the reconciler finishes or undoes.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use secrecy::SecretString;
use serde::Serialize;

use crate::api::{ClientIp, Reply, Signed};
use crate::app::App;
use crate::captcha::{self, CaptchaCookie};
use crate::config::AppKind;
use crate::crypto::random_token;
use crate::db::account::{self as store, self as account};
use crate::db::{Account, AccountState, NewAccount, UserType};
use crate::error::Error;
use crate::fields::{Des, DeviceType, Password, UserName, parse_name_list};
use crate::ratelimit::address_key;
use crate::xmpp::adhoc::AdminOutcome;

pub fn router() -> Router<App> {
    Router::new()
        .route("/register", get(register).post(register))
        .route("/login", get(login).post(login))
        .route("/cancel", get(cancel).post(cancel))
        .route("/get_users", get(get_users).post(get_users))
        .route(
            "/change_password",
            get(change_password).post(change_password),
        )
}

/// Devices sign with their own derived key; phone and WeChat users with an
/// app key. Anything else is code 12.
fn require_kind(ty: UserType, kind: AppKind) -> Result<(), Error> {
    let ok = match ty {
        UserType::Device => kind == AppKind::Device,
        UserType::Phone | UserType::Wechat => kind == AppKind::App,
    };
    if ok { Ok(()) } else { Err(Error::UnknownApp) }
}

/// What `/login` tells an account about itself (never the account password,
/// which the seed's template listed).
#[derive(Debug, Serialize)]
pub struct OwnUserInfo {
    pub user_name: String,
    pub des: String,
    pub jid: String,
    pub jid_pwd: String,
    #[serde(rename = "type")]
    pub type_: UserType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

/// What anyone with a token may know of an account.
#[derive(Debug, Serialize)]
pub struct PublicUserInfo {
    pub user_name: String,
    pub des: String,
    pub jid: String,
    #[serde(rename = "type")]
    pub type_: UserType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

impl PublicUserInfo {
    pub fn of(app: &App, a: &Account) -> Result<PublicUserInfo, Error> {
        Ok(PublicUserInfo {
            user_name: a.user_name.clone(),
            des: a.des.clone(),
            jid: a.jid(app.domain())?.to_string(),
            type_: a.type_,
            device_type: a.device_type.clone(),
        })
    }
}

async fn register(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    app.limits.register.check(&ip)?;
    let p = &signed.params;
    let ty = UserType::parse(p.required("type")?)?;
    let name = UserName::parse(ty, p.required("user_name")?)?;
    let password = Password::parse(p.required("password")?)?;
    let des = Des::parse(p.get("des").unwrap_or(""))?;
    let device_type = match ty {
        UserType::Device => Some(DeviceType::parse(p.required("device_type")?)?),
        _ => None,
    };
    require_kind(ty, signed.kind)?;
    if ty != UserType::Device {
        captcha::check(&app.db, p, &cookie, crate::clock::now()).await?;
    }
    create(
        &app,
        ty,
        &name,
        password.secret().clone(),
        &des,
        device_type.as_ref(),
    )
    .await?;
    tracing::info!(user_type = ty.code(), "account registered");
    Ok(Reply::ok())
}

/// Creates an account and its JID. On any XMPP failure nothing is left
/// behind (or, if the server's state is unknown, the `creating` row tells
/// the reconciler to remove whatever was made).
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
    let id = store::insert_creating(
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
            store::delete(&app.db, id).await?;
            return Err(Error::NewJidFailed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "creating a JID failed");
            if e.not_sent() {
                store::delete(&app.db, id).await?;
            } else {
                // The server may have created it: delete it now, or let the
                // reconciler do it (the row stays `creating`).
                undo_creation(app, id, &jid).await;
            }
            return Err(Error::NewJidFailed);
        }
    }
    app.faults.point("register.after_provision").await?;
    store::transition(
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
pub async fn undo_creation(app: &App, id: i64, jid: &xmpp_parsers::jid::BareJid) {
    match app.provisioner.delete_user(jid).await {
        Ok(_) => {
            if let Err(e) = store::delete(&app.db, id).await {
                tracing::warn!(error = %e, "removing a half-created account failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, jid = %jid, "undoing a JID left for the reconciler"),
    }
}

/// The credential check shared by login, cancel and password change.
///
/// What a failure costs, so that no concurrency overspends a budget and no
/// stranger can lock an owner out:
/// - every attempt takes a share of its client address's budget
///   (`failed_login_per_ip_per_minute`) before it runs, and gets it back if
///   it succeeds (or if nothing was checked); when it is spent: 9;
/// - phones always solve a captcha; a wrong or missing one (5) costs the
///   account nothing;
/// - WeChat users may log in without a captcha while their name's
///   captcha-free budget lasts (one failure per
///   `captcha_after_failed_login`, or until the owner logs in); when it is
///   spent: 114, solve a captcha.
///   A captcha-free failure answers 114 whatever went wrong (unknown name,
///   another type's name, wrong password), so it tells nobody which names
///   exist; with a captcha the answer is precise (102, 104);
/// - devices (which cannot solve captchas, and whose requests only the
///   holder of the device's own key can sign) have a per-device budget of
///   wrong passwords (`failed_login_per_account_per_minute`): 9 beyond it;
/// - a name with no account of this type is answered 104 like an unknown
///   one, after the same Argon2 work (against a dummy hash).
async fn check_credentials(
    app: &App,
    signed: &Signed,
    ip: std::net::IpAddr,
    cookie: &CaptchaCookie,
) -> Result<(Account, UserType), Error> {
    let p = &signed.params;
    let ty = UserType::parse(p.required("type")?)?;
    let name = UserName::parse(ty, p.required("user_name")?)?;
    let password = Password::parse(p.required("password")?)?;
    require_kind(ty, signed.kind)?;
    let limits = &app.limits;
    let ip_share = limits.login_ip.reserve(&address_key(ip), 1)?;
    let key = name.as_str().to_owned();
    let captcha_given = p.optional("verify_code").is_some() || p.optional("captcha_id").is_some();
    // The per-account share this attempt risks, if any.
    let account_share = match ty {
        UserType::Phone => None,
        UserType::Wechat if captcha_given => None,
        UserType::Wechat => match limits.login_captcha_free.reserve(&key, 1) {
            Ok(share) => Some(share),
            Err(_) => {
                ip_share.refund();
                return Err(Error::CaptchaRequired);
            }
        },
        UserType::Device => match limits.login_device.reserve(&key, 1) {
            Ok(share) => Some(share),
            Err(e) => {
                ip_share.refund();
                return Err(e);
            }
        },
    };
    let captcha_free = ty == UserType::Wechat && !captcha_given;
    if ty == UserType::Phone || (ty == UserType::Wechat && captcha_given) {
        // A wrong captcha proves nothing about the account: only the
        // address pays.
        captcha::check(&app.db, p, cookie, crate::clock::now()).await?;
    }
    let account = store::active_by_name(&app.db, name.as_str())
        .await?
        .filter(|a| a.type_ == ty);
    // Known and unknown names run the same Argon2 verification.
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let password_ok = match app.hasher.verify(password.secret().clone(), stored).await {
        Ok(ok) => ok,
        Err(e) => {
            // Busy (or a pool failure): nothing was checked.
            ip_share.refund();
            if let Some(share) = account_share {
                share.refund();
            }
            return Err(e);
        }
    };
    match account {
        Some(account) if password_ok => {
            ip_share.refund();
            if let Some(share) = account_share {
                share.refund();
            }
            if ty == UserType::Wechat {
                // The owner is in: earlier failures no longer call for a
                // captcha.
                limits.login_captcha_free.forget(&key);
            }
            Ok((account, ty))
        }
        // Without a captcha, every failure looks the same and is charged to
        // the name, whether an account has it or not.
        _ if captcha_free => Err(Error::CaptchaRequired),
        None => {
            // No device has this name: no device's budget pays.
            if let Some(share) = account_share {
                share.refund();
            }
            Err(Error::UnknownUser)
        }
        Some(_) => {
            if ty == UserType::Wechat {
                // A wrong password, even with a captcha, is a guess at this
                // account: its next captcha-free login needs a captcha.
                limits.login_captcha_free.charge(&key, 1);
            }
            Err(Error::BadCredentials)
        }
    }
}

async fn login(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    let (account, _) = check_credentials(&app, &signed, ip, &cookie).await?;
    let jid = account.jid(app.domain())?;
    let jid_pwd = app
        .jid_cipher
        .decrypt(jid.as_str(), &account.jid_pwd_enc)
        .map_err(Error::Internal)?;
    let issued = app
        .tokens
        .issue(account.id, signed.caller(), crate::clock::now())
        .await?;
    use secrecy::ExposeSecret;
    let info = OwnUserInfo {
        user_name: account.user_name.clone(),
        des: account.des.clone(),
        jid: jid.to_string(),
        jid_pwd: jid_pwd.expose_secret().to_owned(),
        type_: account.type_,
        device_type: account.device_type.clone(),
    };
    Ok(Reply::ok()
        .field("user_info", info)
        .field("access_token", &issued.access_token)
        .field("expires_in", issued.expires_in)
        .field("expires_at", issued.expires_at)
        .field("refresh_token", &issued.refresh_token)
        .field("refresh_expires_at", issued.refresh_expires_at))
}

async fn cancel(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    let (account, _) = check_credentials(&app, &signed, ip, &cookie).await?;
    delete_account(&app, &account).await?;
    tracing::info!(user_type = account.type_.code(), "account cancelled");
    Ok(Reply::ok())
}

/// Cancels an account: its JID, its bindings on both sides, its tokens and
/// its row. If the XMPP server is unreachable before anything happened,
/// nothing changes (112). Once the JID may be gone, the deletion is carried
/// through, by the reconciler if need be.
pub async fn delete_account(app: &App, account: &Account) -> Result<(), Error> {
    let now = crate::clock::now();
    if !store::transition(
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
            store::transition(
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
    match crate::binding::forget_account(app, account).await {
        Ok(true) => {
            if let Err(e) = store::delete(&app.db, account.id).await {
                tracing::warn!(error = %e, "deleting an account row left for the reconciler");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "roster clean-up left for the reconciler"),
    }
}

/// Public information of up to `rate_limits.get_users_max_names` accounts.
/// Names looked up are counted per account (of the token) and per client
/// address, so no token holder can walk the name space.
async fn get_users(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    signed: Signed,
) -> Result<Reply, Error> {
    // Services have no token of their own: they look users up over the
    // token service.
    if signed.kind == AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let p = &signed.params;
    let token = p.required("access_token")?;
    let max = app.config.rate_limits.get_users_max_names;
    let names = parse_name_list(p.required("user_name_ls")?, max)?;
    // The caller uses the token: it must be its own (same app; a device
    // signs with its own key and names itself in user_name).
    let info = app
        .tokens
        .authorize(
            token,
            signed.caller(),
            p.optional("user_name"),
            crate::clock::now(),
        )
        .await?;
    let n = u32::try_from(names.len()).map_err(Error::internal)?;
    let account_share = app.limits.get_users_account.reserve(&info.account_id, n)?;
    match app.limits.get_users_ip.reserve(&address_key(ip), n) {
        Ok(share) => share.keep(),
        Err(e) => {
            account_share.refund();
            return Err(e);
        }
    }
    account_share.keep();
    let (found, unknown) = lookup_users(&app, &names).await?;
    Ok(Reply::ok()
        .field("user_info_ls", found)
        .field("unknown_ls", unknown))
}

/// Public information of the named active accounts, and the names not found.
pub async fn lookup_users(
    app: &App,
    names: &[String],
) -> Result<(Vec<PublicUserInfo>, Vec<String>), Error> {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match store::active_by_name(&app.db, name).await? {
            Some(a) => found.push(PublicUserInfo::of(app, &a)?),
            _ => unknown.push(name.clone()),
        }
    }
    Ok((found, unknown))
}

async fn change_password(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    let new_password = Password::parse(signed.params.required("new_password")?)?;
    let (account, _) = check_credentials(&app, &signed, ip, &cookie).await?;
    let hash = app.hasher.hash(new_password.secret().clone()).await?;
    rotate_jid_password(&app, &account, Some(&hash)).await?;
    app.tokens.revoke_account(account.id).await?;
    tracing::info!(user_type = account.type_.code(), "password changed");
    Ok(Reply::ok())
}

/// Gives an account a new JID password (and optionally a new account
/// password hash, applied only if the XMPP server took the new JID password).
/// The new JID password is recorded before it is pushed, so an interrupted
/// push is repeated by the reconciler.
///
/// One change per account at a time: the new JID password is recorded only
/// if none is pending and the account is still as `account` was read (same
/// password hash, active). Otherwise another change is running or has just
/// happened, and this one answers 115 without changing anything.
pub async fn rotate_jid_password(
    app: &App,
    account: &Account,
    password_hash: Option<&str>,
) -> Result<(), Error> {
    let jid = account.jid(app.domain())?;
    let next = SecretString::from(random_token::<24>());
    let enc = app.jid_cipher.encrypt(jid.as_str(), &next);
    if !store::begin_jid_pwd_change(&app.db, account, &enc, crate::clock::now()).await? {
        return Err(Error::ConcurrentChange);
    }
    app.faults.point("password.before_push").await?;
    match app.provisioner.change_password(&jid, &next).await {
        Ok(AdminOutcome::Done) => {}
        Ok(outcome) => {
            store::abandon_jid_pwd_change(&app.db, account.id, &enc, crate::clock::now()).await?;
            return Err(Error::Xmpp(format!("change-user-password: {outcome:?}")));
        }
        Err(e) => {
            if e.not_sent() {
                store::abandon_jid_pwd_change(&app.db, account.id, &enc, crate::clock::now())
                    .await?;
            }
            return Err(e.into());
        }
    }
    store::finish_jid_pwd_change(
        &app.db,
        account.id,
        &enc,
        password_hash,
        crate::clock::now(),
    )
    .await?;
    Ok(())
}

/// Lowercase RFC 4648 base32 alphabet: valid in every XMPP localpart and
/// unchanged by case folding.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh JID localpart: the type's letter, a dot, and 16 random base32
/// characters (80 bits), e.g. `d.q3k9x2m4r7t5v6w8`. Random rather than
/// derived from the user name, so that a JID reveals no phone number, and
/// names that differ only in case never collide after XMPP case folding.
pub fn new_localpart(ty: UserType) -> String {
    let bytes = crate::crypto::random_bytes::<16>();
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
    fn kinds_match_types() {
        assert!(require_kind(UserType::Device, AppKind::Device).is_ok());
        assert!(require_kind(UserType::Device, AppKind::App).is_err());
        assert!(require_kind(UserType::Phone, AppKind::Device).is_err());
        assert!(require_kind(UserType::Wechat, AppKind::App).is_ok());
        assert!(require_kind(UserType::Phone, AppKind::Service).is_err());
    }

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
