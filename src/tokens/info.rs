//! Whose a token is, who may use it (the ownership rule), and what a
//! verification answers.

use std::sync::Arc;

use serde::Serialize;

use crate::config::AppKind;
use crate::db::UserType;

/// Whose token it is, and which app it was issued to.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub account_id: i64,
    pub session_id: i64,
    pub user_name: Arc<str>,
    pub type_: UserType,
    pub expires_at: i64,
    /// The app that logged in (and the only one that may use the token).
    pub app_id: Arc<str>,
    pub app_kind: AppKind,
}

/// Who presents a token: the app that signed the request, and its kind.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub app_id: &'a str,
    pub kind: AppKind,
}

/// What a successful verification answers, after `result` (over HTTP
/// and over the token service alike).
#[derive(Debug, Serialize)]
pub struct Verification<'a> {
    pub validate: bool,
    pub user_name: &'a str,
    #[serde(rename = "type")]
    pub type_: UserType,
    pub expires_at: i64,
    /// The app the token was issued to.
    pub app_id: &'a str,
}

impl TokenInfo {
    pub fn verification(&self) -> Verification<'_> {
        Verification {
            validate: true,
            user_name: &self.user_name,
            type_: self.type_,
            expires_at: self.expires_at,
            app_id: &self.app_id,
        }
    }
}

/// The members of a successful `verify_access_token` line of the token
/// service after `result`, closing the object and the line:
/// `,"validate":true,"user_name":...,"type":N,"expires_at":N,"app_id":...}\n`.
/// Encoded once per cached token.
pub fn reply_tail(info: &TokenInfo) -> Vec<u8> {
    let mut out = serde_json::to_vec(&info.verification()).expect("verifications serialize");
    out[0] = b',';
    out.push(b'\n');
    out
}

/// Whether a token issued to (`app_id`, `kind`) for `owner` may be used by
/// `caller` acting as `user_name`.
pub(super) fn owned_by(
    app_id: &str,
    kind: AppKind,
    owner: &str,
    caller: Caller<'_>,
    user_name: Option<&str>,
) -> bool {
    kind == caller.kind && app_id == caller.app_id && user_name.is_none_or(|u| u == owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_for_their_own_app_kind_and_user() {
        let phone = Caller {
            app_id: "phone-app",
            kind: AppKind::App,
        };
        let other_app = Caller {
            app_id: "phone-app-2",
            kind: AppKind::App,
        };
        let lamp = Caller {
            app_id: "phone-app",
            kind: AppKind::Device,
        };
        assert!(owned_by(
            "phone-app",
            AppKind::App,
            "alice",
            phone,
            Some("alice")
        ));
        assert!(owned_by("phone-app", AppKind::App, "alice", phone, None));
        assert!(!owned_by(
            "phone-app",
            AppKind::App,
            "alice",
            phone,
            Some("bob")
        ));
        assert!(!owned_by(
            "phone-app",
            AppKind::App,
            "alice",
            other_app,
            None
        ));
        assert!(!owned_by(
            "phone-app",
            AppKind::App,
            "alice",
            lamp,
            Some("alice")
        ));
    }
}
