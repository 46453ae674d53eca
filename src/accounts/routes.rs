//! The account endpoints: `/register`, `/login`, `/cancel`, `/get_users`,
//! `/change_password`; and those of the sessions a login opens:
//! `/refresh_token`, `/logout`, and `/verify_access_token` for services.

use axum::extract::State;
use axum::routing::get;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{cancel, credentials, lookup, password, register};
use crate::api::doc::{Answer, Signing};
use crate::api::{Authed, ClientIp, FromParams, Reply, Routes, Signed};
use crate::app::App;
use crate::captcha::{self, CaptchaCookie};
use crate::clock;
use crate::config::AppKind;
use crate::db::UserType;
use crate::error::Error;
use crate::fields::{Des, DeviceType, Password, UserName, parse_name_list};
use crate::params::Params;
use crate::ratelimit::address_key;

pub fn router() -> Routes {
    Routes::new()
        .route("/register", get(register).post(register))
        .route("/login", get(login).post(login))
        .route("/cancel", get(cancel).post(cancel))
        .route("/get_users", get(get_users).post(get_users))
        .route(
            "/change_password",
            get(change_password).post(change_password),
        )
        .route("/refresh_token", get(refresh_token).post(refresh_token))
        .route("/logout", get(logout).post(logout))
        .route(
            "/verify_access_token",
            get(verify_access_token).post(verify_access_token),
        )
}

/// The account and session endpoints' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    cancel,
    change_password,
    get_users,
    refresh_token,
    logout,
    verify_access_token
))]
pub struct ApiDoc;

/// Creates an account and its JID.
///
/// Devices sign with their own derived key and need no captcha; phones and
/// WeChat users sign with an app key and solve a captcha.
#[utoipa::path(
    method(get, post),
    path = "/register",
    tag = "accounts",
    params(
        Signing,
        ("user_name" = String, Query, description = "Phone number (type 1), device serial (2) or WeChat id (3)"),
        ("password" = String, Query, description = "6 to 128 characters"),
        ("type" = i32, Query, description = "1 phone, 2 device, 3 WeChat"),
        ("des" = Option<String>, Query, description = "Description, 0 to 128 characters"),
        ("device_type" = Option<String>, Query, description = "Required for devices"),
        ("verify_code" = Option<String>, Query, description = "The captcha's answer (phones; WeChat users after code 114)"),
        ("captcha_id" = Option<String>, Query, description = "The captcha's id, unless the cookie `captcha_id` carries it"),
    ),
    responses((status = 200, description = "Codes 0, 2, 5, 6, 9, 10, 11, 12, 13, 101, 103", body = Answer))
)]
async fn register(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    app.limits.register.check(&ip).await?;
    let p = &signed.params;
    let ty = UserType::parse(p.required("type")?)?;
    let name = UserName::parse(ty, p.required("user_name")?)?;
    let password = Password::parse(p.required("password")?)?;
    let des = Des::parse(p.get("des").unwrap_or(""))?;
    let device_type = match ty {
        UserType::Device => Some(DeviceType::parse(p.required("device_type")?)?),
        _ => None,
    };
    credentials::require_kind(ty, signed.kind)?;
    if ty != UserType::Device {
        captcha::check(&app.db, p, &cookie, clock::now()).await?;
    }
    register::create(
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

/// The account's own information and a fresh token pair.
#[utoipa::path(
    method(get, post),
    path = "/login",
    tag = "accounts",
    params(
        Signing,
        ("user_name" = String, Query, description = "Phone number (type 1), device serial (2) or WeChat id (3)"),
        ("password" = String, Query, description = "6 to 128 characters"),
        ("type" = i32, Query, description = "1 phone, 2 device, 3 WeChat"),
        ("verify_code" = Option<String>, Query, description = "The captcha's answer (phones; WeChat users after code 114)"),
        ("captcha_id" = Option<String>, Query, description = "The captcha's id, unless the cookie `captcha_id` carries it"),
    ),
    responses((status = 200, description = "`user_info` (with `jid`, `jid_pwd`) and tokens; codes 0, 2, 5, 9, 13, 102, 104, 114", body = Answer))
)]
async fn login(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    let (account, _) = credentials::check(&app, &signed, ip, &cookie).await?;
    let jid = account.jid(app.domain())?;
    let jid_pwd = app
        .jid_cipher
        .decrypt(jid.as_str(), &account.jid_pwd_enc)
        .map_err(Error::Internal)?;
    let issued = app
        .tokens
        .issue(account.id, signed.caller(), clock::now())
        .await?;
    let info = OwnUserInfo {
        jid: jid.to_string(),
        jid_pwd: jid_pwd.expose_secret().to_owned(),
        type_: account.type_,
        user_name: account.user_name,
        des: account.des,
        device_type: account.device_type,
    };
    Ok(Reply::ok().field("user_info", info).merge(&issued))
}

/// Deletes an account, its JID and its bindings.
#[utoipa::path(
    method(get, post),
    path = "/cancel",
    tag = "accounts",
    params(
        Signing,
        ("user_name" = String, Query, description = "Phone number (type 1), device serial (2) or WeChat id (3)"),
        ("password" = String, Query, description = "6 to 128 characters"),
        ("type" = i32, Query, description = "1 phone, 2 device, 3 WeChat"),
        ("verify_code" = Option<String>, Query, description = "The captcha's answer (phones; WeChat users after code 114)"),
        ("captcha_id" = Option<String>, Query, description = "The captcha's id, unless the cookie `captcha_id` carries it"),
    ),
    responses((status = 200, description = "Codes as /login, and 112", body = Answer))
)]
async fn cancel(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    let (account, _) = credentials::check(&app, &signed, ip, &cookie).await?;
    cancel::delete_account(&app, &account).await?;
    tracing::info!(user_type = account.type_.code(), "account cancelled");
    Ok(Reply::ok())
}

/// Changes an account's password and its JID password; revokes its tokens.
#[utoipa::path(
    method(get, post),
    path = "/change_password",
    tag = "accounts",
    params(
        Signing,
        ("user_name" = String, Query, description = "Phone number (type 1), device serial (2) or WeChat id (3)"),
        ("password" = String, Query, description = "6 to 128 characters"),
        ("type" = i32, Query, description = "1 phone, 2 device, 3 WeChat"),
        ("new_password" = String, Query, description = "6 to 128 characters"),
        ("verify_code" = Option<String>, Query, description = "The captcha's answer (phones; WeChat users after code 114)"),
        ("captcha_id" = Option<String>, Query, description = "The captcha's id, unless the cookie `captcha_id` carries it"),
    ),
    responses((status = 200, description = "Codes as /login, 112, 115", body = Answer))
)]
async fn change_password(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    cookie: CaptchaCookie,
    signed: Signed,
) -> Result<Reply, Error> {
    let new_password = Password::parse(signed.params.required("new_password")?)?;
    let (account, _) = credentials::check(&app, &signed, ip, &cookie).await?;
    let hash = app.hasher.hash(new_password.secret().clone()).await?;
    password::rotate_jid_password(&app, &account, Some(&hash)).await?;
    app.tokens.revoke_account(account.id).await?;
    tracing::info!(user_type = account.type_.code(), "password changed");
    Ok(Reply::ok())
}

/// The names of a `/get_users`: at most `rate_limits.get_users_max_names`.
struct NameList(Vec<String>);

impl FromParams for NameList {
    fn from_params(p: &Params, app: &App) -> Result<NameList, Error> {
        let max = app.config.rate_limits.get_users_max_names;
        Ok(NameList(parse_name_list(p.required("user_name_ls")?, max)?))
    }
}

/// Public information of up to `rate_limits.get_users_max_names` accounts,
/// for the holder of a token of its own. Names looked up are counted per
/// account (of the token) and per client address, so no token holder can
/// walk the name space. (Services look users up over the token service.)
#[utoipa::path(
    method(get, post),
    path = "/get_users",
    tag = "accounts",
    params(
        Signing,
        ("access_token" = String, Query, description = "The caller's own access token"),
        ("user_name" = Option<String>, Query, description = "The token's user: required for devices"),
        ("user_name_ls" = String, Query, description = "JSON array of user names, no repeats"),
    ),
    responses((status = 200, description = "`user_info_ls`, `unknown_ls`; codes 0, 2, 4, 9, 12, 106", body = Answer))
)]
async fn get_users(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    authed: Authed<NameList>,
) -> Result<Reply, Error> {
    let NameList(names) = &authed.request;
    let n = u32::try_from(names.len()).map_err(Error::internal)?;
    let account_share = app
        .limits
        .get_users_account
        .reserve(&authed.token.account_id, n)?;
    match app.limits.get_users_ip.reserve(&address_key(ip), n) {
        Ok(share) => share.keep(),
        Err(e) => {
            account_share.refund();
            return Err(e);
        }
    }
    account_share.keep();
    let (found, unknown) = lookup::lookup_users(&app, names).await?;
    Ok(Reply::ok()
        .field("user_info_ls", found)
        .field("unknown_ls", unknown))
}

/// A new token pair for the session of a refresh token. Only the app the
/// session was issued to renews it; a device's session only under the
/// device's own key (its `user_name` derives the key).
#[utoipa::path(
    method(get, post),
    path = "/refresh_token",
    tag = "sessions",
    params(
        Signing,
        ("refresh_token" = String, Query, description = "The session's refresh token"),
        ("user_name" = Option<String>, Query, description = "The device, for devices"),
    ),
    responses((status = 200, description = "A new token pair; codes 0, 2, 12, 113", body = Answer))
)]
async fn refresh_token(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind == AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let token = signed.params.required("refresh_token")?;
    let (issued, _) = app
        .tokens
        .refresh(
            token,
            signed.caller(),
            signed.params.optional("user_name"),
            clock::now(),
        )
        .await?;
    Ok(Reply::ok().merge(&issued))
}

/// `/logout` names the user whose session it ends.
struct UserNameGiven;

impl FromParams for UserNameGiven {
    fn from_params(p: &Params, _: &App) -> Result<UserNameGiven, Error> {
        p.required("user_name")?;
        Ok(UserNameGiven)
    }
}

/// Ends the session of the access token presented.
#[utoipa::path(
    method(get, post),
    path = "/logout",
    tag = "sessions",
    params(
        Signing,
        ("access_token" = String, Query, description = "The caller's own access token"),
        ("user_name" = String, Query, description = "The token's user"),
    ),
    responses((status = 200, description = "Codes 0, 2, 4, 106", body = Answer))
)]
async fn logout(State(app): State<App>, authed: Authed<UserNameGiven>) -> Result<Reply, Error> {
    app.tokens.end_session(authed.token.session_id).await?;
    tracing::info!("session ended by logout");
    Ok(Reply::ok())
}

/// Only apps of kind `service` may verify other people's tokens. Verifying
/// is not using: any token of any app is answered, with the app it was
/// issued to.
#[utoipa::path(
    method(get, post),
    path = "/verify_access_token",
    tag = "sessions",
    params(
        Signing,
        ("access_token" = String, Query, description = "Any access token"),
    ),
    responses((status = 200, description = "`validate` and the token's user and app; codes 0, 4, 12, 106", body = Answer))
)]
async fn verify_access_token(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    if signed.kind != AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let token = signed.params.required("access_token")?;
    Ok(match app.tokens.verify(token, clock::now()).await {
        Ok(info) => Reply::ok().merge(&info.verification()),
        Err(e @ (Error::AccessToken | Error::AccessTokenExpired)) => {
            Reply::with_result(e.code()).field("validate", false)
        }
        Err(e) => return Err(e),
    })
}
