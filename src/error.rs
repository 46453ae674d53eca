//! The one error type of the register API and its one mapping to the seed's
//! error codes (`docs/api.md` lists them all).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::http::ApiBody;

/// Error codes. The seed's table (0–8, 100–110) is the contract; codes from
/// 9 and from 111 on are jidgate's additions. A number never changes meaning.
pub mod code {
    pub const SUCCESS: i64 = 0;
    pub const UNKNOWN_ERROR: i64 = 1;
    pub const PARAMS_ERROR: i64 = 2;
    pub const DB_ERROR: i64 = 3;
    pub const ACCESS_TOKEN_ERROR: i64 = 4;
    pub const VERIFY_CODE_ERROR: i64 = 5;
    pub const SIGN_ERROR: i64 = 6;
    pub const SERVICE_START_ERROR: i64 = 7;
    pub const SERVICE_STOP_ERROR: i64 = 8;
    /// jidgate: too many requests; retry after `retry_after` seconds.
    pub const RATE_LIMITED: i64 = 9;
    /// jidgate: `ts` is outside the allowed window.
    pub const TS_EXPIRED: i64 = 10;
    /// jidgate: `nonce` was already used within the window.
    pub const NONCE_REUSED: i64 = 11;
    /// jidgate: unknown `app_id`, or an app not allowed this call.
    pub const UNKNOWN_APP: i64 = 12;
    /// jidgate: a bounded pool or queue is full (connection caps); retry
    /// later.
    pub const SERVER_BUSY: i64 = 13;

    pub const OPER_NOT_PERMIT: i64 = 100;
    pub const OPENFIRE_NEW_JID_FAIL: i64 = 101;
    pub const USER_NAME_OR_PASSWORD_ERROR: i64 = 102;
    pub const USER_NAME_EXIST: i64 = 103;
    pub const USER_NAME_NO_EXIST: i64 = 104;
    pub const JID_OR_JID_PASS_ERROR: i64 = 105;
    pub const MXID: i64 = 106;
    pub const JID_HAS_NOT_LOGIN: i64 = 107;
    pub const JID_ROSTER_UNSUBSCRIBE: i64 = 108;
    pub const JID_ALREADY_IN_ROSTER: i64 = 109;
    pub const JID_NOT_IN_ROSTER: i64 = 110;
    /// jidgate: bind code missing, wrong, used or expired.
    pub const BIND_CODE_ERROR: i64 = 111;
    /// jidgate: the XMPP server is unreachable or refused an operation
    /// other than creating a JID (that one is 101).
    pub const XMPP_ERROR: i64 = 112;
    /// jidgate: refresh token missing, wrong, used or expired.
    pub const REFRESH_TOKEN_ERROR: i64 = 113;
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parameter format error: {0}")]
    Params(String),
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("access token invalid")]
    AccessToken,
    #[error("access token expired")]
    AccessTokenExpired,
    #[error("verify code wrong, expired or already used")]
    VerifyCode,
    #[error("param_sign does not match")]
    Sign,
    #[error("too many requests")]
    RateLimited { retry_after: u64 },
    #[error("ts is outside the allowed window")]
    TsExpired,
    #[error("nonce already used")]
    NonceReused,
    #[error("unknown app_id, or this app may not make this call")]
    UnknownApp,
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("the XMPP server did not create the JID")]
    NewJidFailed,
    #[error("user name or password wrong")]
    BadCredentials,
    #[error("user name exists")]
    UserExists,
    #[error("user name does not exist")]
    UnknownUser,
    #[error("the XMPP server refused the stored JID password")]
    JidPassword,
    #[error("the roster subscription was not completed")]
    RosterRefused,
    #[error("already bound")]
    AlreadyBound,
    #[error("not bound")]
    NotBound,
    #[error("bind code missing, wrong, used or expired")]
    BindCode,
    #[error("XMPP server unavailable: {0}")]
    Xmpp(String),
    #[error("refresh token invalid, used or expired")]
    RefreshToken,
    #[error("server busy, retry later")]
    Busy,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// The wire code.
    pub fn code(&self) -> i64 {
        use code::*;
        match self {
            Error::Params(_) => PARAMS_ERROR,
            Error::Db(_) => DB_ERROR,
            Error::AccessToken => ACCESS_TOKEN_ERROR,
            Error::AccessTokenExpired => MXID,
            Error::VerifyCode => VERIFY_CODE_ERROR,
            Error::Sign => SIGN_ERROR,
            Error::RateLimited { .. } => RATE_LIMITED,
            Error::TsExpired => TS_EXPIRED,
            Error::NonceReused => NONCE_REUSED,
            Error::UnknownApp => UNKNOWN_APP,
            Error::NotPermitted(_) => OPER_NOT_PERMIT,
            Error::NewJidFailed => OPENFIRE_NEW_JID_FAIL,
            Error::BadCredentials => USER_NAME_OR_PASSWORD_ERROR,
            Error::UserExists => USER_NAME_EXIST,
            Error::UnknownUser => USER_NAME_NO_EXIST,
            Error::JidPassword => JID_OR_JID_PASS_ERROR,
            Error::RosterRefused => JID_ROSTER_UNSUBSCRIBE,
            Error::AlreadyBound => JID_ALREADY_IN_ROSTER,
            Error::NotBound => JID_NOT_IN_ROSTER,
            Error::BindCode => BIND_CODE_ERROR,
            Error::Xmpp(_) => XMPP_ERROR,
            Error::RefreshToken => REFRESH_TOKEN_ERROR,
            Error::Busy => SERVER_BUSY,
            Error::Internal(_) => UNKNOWN_ERROR,
        }
    }

    /// The HTTP status. Answers the client caused are 200 with the code in
    /// `result`, as the seed's clients expect; server-side failures use 5xx
    /// and rate limits 429 so proxies and monitoring see them.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Db(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::NewJidFailed | Error::Xmpp(_) | Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::OK,
        }
    }

    /// The human-readable text sent in `error`; never internal detail.
    pub fn public_message(&self) -> String {
        match self {
            Error::Db(_) | Error::Internal(_) => self.to_string(),
            Error::Xmpp(_) => "XMPP server unavailable or refused the operation".into(),
            other => other.to_string(),
        }
    }

    /// Wraps any error as an opaque internal one.
    pub fn internal(e: impl Into<anyhow::Error>) -> Error {
        Error::Internal(e.into())
    }
}

impl From<crate::xmpp::XmppError> for Error {
    fn from(e: crate::xmpp::XmppError) -> Error {
        Error::Xmpp(e.to_string())
    }
}

/// The detail of a server-side failure, attached to the response for the
/// logging middleware (so `into_response` itself has no side effects).
#[derive(Debug, Clone)]
pub struct FailureDetail(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("result".into(), json!(self.code()));
        body.insert("error".into(), Value::String(self.public_message()));
        if let Error::RateLimited { retry_after } = &self {
            body.insert("retry_after".into(), json!(retry_after));
        }
        let mut response = self.status().into_response();
        if let Error::RateLimited { retry_after } = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
        if matches!(
            self,
            Error::Db(_) | Error::Internal(_) | Error::Xmpp(_) | Error::NewJidFailed
        ) {
            response
                .extensions_mut()
                .insert(FailureDetail(format!("{self:#}: {:?}", self)));
        }
        response.extensions_mut().insert(ApiBody(body));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_codes_keep_their_numbers() {
        assert_eq!(Error::Params("x".into()).code(), 2);
        assert_eq!(Error::VerifyCode.code(), 5);
        assert_eq!(Error::Sign.code(), 6);
        assert_eq!(Error::NewJidFailed.code(), 101);
        assert_eq!(Error::BadCredentials.code(), 102);
        assert_eq!(Error::UserExists.code(), 103);
        assert_eq!(Error::UnknownUser.code(), 104);
        assert_eq!(Error::AlreadyBound.code(), 109);
        assert_eq!(Error::NotBound.code(), 110);
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        let e = Error::internal(anyhow::anyhow!("secret path /etc/shadow"));
        assert!(!e.public_message().contains("shadow"));
        let r = e.into_response();
        let body = r.extensions().get::<ApiBody>().unwrap();
        assert_eq!(body.0["result"], json!(1));
        assert!(!body.0["error"].as_str().unwrap().contains("shadow"));
        assert!(
            r.extensions()
                .get::<FailureDetail>()
                .unwrap()
                .0
                .contains("shadow")
        );
    }
}
