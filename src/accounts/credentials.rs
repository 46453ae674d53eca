//! Who may act as an account: the credential check that `/login`,
//! `/cancel` and `/change_password` share, with its budgets and captchas,
//! and which kind of app may act for which type of account.

use std::net::IpAddr;

use tracing::instrument;

use crate::api::Signed;
use crate::app::App;
use crate::captcha::{self, CaptchaCookie};
use crate::config::AppKind;
use crate::db::{Account, UserType, account};
use crate::error::Error;
use crate::fields::{Password, UserName};
use crate::ratelimit::address_key;

/// Devices sign with their own derived key; phone and WeChat users with an
/// app key. Anything else is code 12.
pub fn require_kind(ty: UserType, kind: AppKind) -> Result<(), Error> {
    let ok = match ty {
        UserType::Device => kind == AppKind::Device,
        UserType::Phone | UserType::Wechat => kind == AppKind::App,
    };
    if ok { Ok(()) } else { Err(Error::UnknownApp) }
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
#[instrument(name = "check_credentials", skip_all, err(level = "debug"))]
pub async fn check(
    app: &App,
    signed: &Signed,
    ip: IpAddr,
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
    let account = account::active_by_name(&app.db, name.as_str())
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
            // Said only to whoever knows the password.
            if crate::db::console::disabled(&app.db, account.id)
                .await?
                .is_some()
            {
                return Err(Error::NotPermitted("the account is disabled"));
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
}
