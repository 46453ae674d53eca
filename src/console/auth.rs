//! Console logins: operators (not API users) log in with name and password,
//! with an image captcha once their failed logins reach
//! `console.captcha_after`; a session is a random token in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` under TLS), stored only as its
//! SHA-256, over after `console.idle_timeout` idle seconds; every form
//! carries the session's CSRF token ([`Operator::check_csrf`]). The login
//! form itself carries a token matched by a cookie of its own.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;

use super::{Page, audit, render};
use crate::app::App;
use crate::captcha::{self, CaptchaCookie};
use crate::crypto::PasswordPool;
use crate::crypto::{ct_eq, random_token, sha256};
use crate::db::{Db, operator};
use crate::error::Error;
use crate::params::Params;

/// The session cookie.
pub const SESSION_COOKIE: &str = "jidgate_console";
/// The login form's own CSRF cookie.
pub const LOGIN_COOKIE: &str = "jidgate_console_login";

/// A cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A console cookie; `max_age` `None`: until the browser closes.
fn set_cookie(app: &App, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if app.config.tls.enabled() {
        "; Secure"
    } else {
        ""
    };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console{age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// A logged-in operator, from the session cookie; without one (or with an
/// idle one) the request is sent to the login page.
pub struct Operator {
    pub name: String,
    pub csrf: String,
    token_hash: [u8; 32],
}

impl FromRequestParts<App> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Operator, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let token_hash = sha256(token.as_bytes());
        let now = crate::clock::now();
        let idle_since = now - app.config.console.idle_timeout as i64;
        match operator::touch_session(&app.db, &token_hash, idle_since, now).await {
            Ok(Some(s)) => {
                crate::api::trace::record_user(&s.name);
                Ok(Operator {
                    name: s.name,
                    csrf: s.csrf,
                    token_hash,
                })
            }
            Ok(None) => Err(to_login()),
            Err(e) => Err(Page::from(e).into_response()),
        }
    }
}

impl Operator {
    /// A form's `csrf` must be this session's token (403 otherwise).
    pub fn check_csrf(&self, params: &Params) -> Result<(), Page> {
        match params.get("csrf") {
            Some(given) if ct_eq(given.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(Page::Forbidden("the form's CSRF token is missing or wrong")),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    form_token: &'a str,
    name: &'a str,
    message: &'a str,
    captcha: bool,
}

fn login_page(app: &App, name: &str, message: &str, captcha: bool) -> Result<Response, Page> {
    let form_token = random_token::<16>();
    let html = render(&LoginPage {
        form_token: &form_token,
        name,
        message,
        captcha,
    })?;
    let mut r = html.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(app, LOGIN_COOKIE, &form_token, Some(3600)),
    );
    Ok(r)
}

/// `GET /console/login`.
pub async fn login_form(State(app): State<App>) -> Result<Response, Page> {
    login_page(&app, "", "", false)
}

/// `POST /console/login`.
pub async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    captcha_cookie: CaptchaCookie,
    params: Params,
) -> Result<Response, Page> {
    let form_ok = matches!(
        (cookie(&headers, LOGIN_COOKIE), params.get("form_token")),
        (Some(a), Some(b)) if ct_eq(a.as_bytes(), b.as_bytes())
    );
    if !form_ok {
        return Err(Page::Forbidden(
            "the login form's token is missing or wrong",
        ));
    }
    let name = params.get("name").unwrap_or("").trim();
    let password = SecretString::from(params.get("password").unwrap_or("").to_owned());
    let found = if name.is_empty() || name.len() > 64 {
        None
    } else {
        operator::by_name(&app.db, name).await?
    };
    let now = crate::clock::now();
    let needs_captcha = found
        .as_ref()
        .is_some_and(|o| o.failed_logins >= i64::from(app.config.console.captcha_after));
    if needs_captcha
        && captcha::check(&app.db, &params, &captcha_cookie, now)
            .await
            .is_err()
    {
        let page = login_page(&app, name, "Solve the captcha to log in.", true)?;
        return Ok((axum::http::StatusCode::UNAUTHORIZED, page).into_response());
    }
    let hash = found.as_ref().map(|o| o.password_hash.clone());
    let good = app.hasher.verify(password, hash).await?;
    let Some(op) = found.filter(|_| good) else {
        if !name.is_empty() && name.len() <= 64 {
            operator::record_failure(&app.db, name).await?;
            audit(&app, name, "login_failed", "console", "").await?;
        }
        let page = login_page(&app, name, "Wrong name or password.", needs_captcha)?;
        return Ok((axum::http::StatusCode::UNAUTHORIZED, page).into_response());
    };
    let token = random_token::<32>();
    let csrf = random_token::<16>();
    operator::open_session(&app.db, op.id, &sha256(token.as_bytes()), &csrf, now).await?;
    audit(&app, &op.name, "login", "console", "").await?;
    let mut r = Redirect::to("/console/accounts").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, &token, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, LOGIN_COOKIE, "", Some(0)),
    );
    Ok(r)
}

/// `POST /console/logout`.
pub async fn logout(
    State(app): State<App>,
    op: Operator,
    params: Params,
) -> Result<Response, Page> {
    op.check_csrf(&params)?;
    operator::end_session(&app.db, &op.token_hash).await?;
    audit(&app, &op.name, "logout", "console", "").await?;
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, "", Some(0)),
    );
    Ok(r)
}

/// Adds an operator (the `jidgate operator add` command), or with
/// `replace` sets an existing operator's password.
pub async fn add_operator(
    db: &Db,
    hasher: &PasswordPool,
    name: &str,
    password: SecretString,
    replace: bool,
) -> Result<(), Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(Error::Params(
            "an operator name is 1 to 64 characters".into(),
        ));
    }
    crate::fields::Password::parse(secrecy::ExposeSecret::expose_secret(&password))?;
    let hash = hasher.hash(password).await?;
    let now = crate::clock::now();
    let action = if replace {
        if !operator::set_password(db, name, &hash).await? {
            return Err(Error::UnknownUser);
        }
        "operator_password"
    } else {
        operator::insert(db, name, &hash, now).await?;
        "operator_add"
    };
    crate::db::audit::record(db, "(command line)", action, name, "", now).await
}
