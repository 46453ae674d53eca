//! The one error type of jidgate, its one mapping to the seed's error codes
//! and HTTP statuses (`docs/api.md` lists them all), and the one writer of
//! what an answer says about how it went ([`Outcome`]), which HTTP answers,
//! token service lines and the per-item results of list calls all use.

use axum::http::StatusCode;
use serde::Serialize;

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
    /// jidgate: a bounded pool or queue is full (e.g. password hashing);
    /// retry after `retry_after` seconds.
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
    /// jidgate: this call needs a captcha now (e.g. after failed logins
    /// naming the account).
    pub const CAPTCHA_REQUIRED: i64 = 114;
    /// jidgate: another change of the same account is in progress.
    pub const CONCURRENT_CHANGE: i64 = 115;
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parameter format error: {0}")]
    Params(String),
    #[error("database error")]
    Db(#[source] Box<dyn std::error::Error + Send + Sync>),
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
    #[error("a captcha is required: send verify_code and captcha_id")]
    CaptchaRequired,
    #[error("another change of this account is in progress")]
    ConcurrentChange,
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
            Error::CaptchaRequired => CAPTCHA_REQUIRED,
            Error::ConcurrentChange => CONCURRENT_CHANGE,
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

    /// Seconds a client should wait before retrying, for the answers that
    /// say so (`retry_after` in the body, `Retry-After` in the header).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after } => Some(*retry_after),
            Error::Busy => Some(1),
            _ => None,
        }
    }

    /// Wraps any error as an opaque internal one.
    pub fn internal(e: impl Into<anyhow::Error>) -> Error {
        Error::Internal(e.into())
    }
}

/// How a request (or one item of a list call) went, as every answer says
/// it: `result` (0 for success, else the error's code), and for a failure
/// the public `error` text and, when the client should wait, `retry_after`
/// (seconds). Serialized as those members, in that order; the transports
/// put them around their own members (`seq`, `user_name`, `sign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub result: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Outcome {
    /// `result: 0`.
    pub fn ok() -> Outcome {
        Outcome {
            result: code::SUCCESS,
            error: None,
            retry_after: None,
        }
    }

    /// The outcome of `r`.
    pub fn of<T>(r: &Result<T, Error>) -> Outcome {
        match r {
            Ok(_) => Outcome::ok(),
            Err(e) => e.outcome(),
        }
    }
}

impl Error {
    /// What an answer says about this error; never internal detail.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            result: self.code(),
            error: Some(self.public_message()),
            retry_after: self.retry_after(),
        }
    }

    /// A failure of the server or of what it depends on (database, XMPP
    /// server), as opposed to a refusal of the client's request: logged
    /// with its detail, once.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            Error::Db(_) | Error::Internal(_) | Error::Xmpp(_) | Error::NewJidFailed
        )
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
    fn jidgate_codes_keep_their_numbers_and_statuses() {
        assert_eq!(Error::Busy.code(), 13);
        assert_eq!(Error::Busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Error::CaptchaRequired.code(), 114);
        assert_eq!(Error::CaptchaRequired.status(), StatusCode::OK);
        assert_eq!(Error::ConcurrentChange.code(), 115);
        assert_eq!(Error::ConcurrentChange.status(), StatusCode::OK);
    }

    #[test]
    fn outcomes_say_when_to_retry_and_never_leak_detail() {
        assert_eq!(
            serde_json::to_value(Outcome::ok()).unwrap(),
            serde_json::json!({"result": 0})
        );
        let busy = Error::Busy.outcome();
        assert_eq!((busy.result, busy.retry_after), (13, Some(1)));
        let limited =
            serde_json::to_value(Error::RateLimited { retry_after: 7 }.outcome()).unwrap();
        assert_eq!(limited["retry_after"], 7);
        assert_eq!(limited["result"], 9);
        assert!(Error::CaptchaRequired.outcome().retry_after.is_none());
        let e = Error::internal(anyhow::anyhow!("secret path /etc/shadow"));
        assert!(!e.outcome().error.unwrap().contains("shadow"));
        assert_eq!(Outcome::of(&Ok::<(), Error>(())), Outcome::ok());
        assert_eq!(Outcome::of::<()>(&Err(Error::NotBound)).result, 110);
    }
}
