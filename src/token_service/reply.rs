//! Reply lines: `{"seq":...,"result":...,...}` and a newline. Errors are
//! the [`crate::error::Outcome`] every transport writes; a verification answered from
//! memory is its head and the members encoded once per cached token.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::metrics::{self, Verification};
use crate::tokens::TokenInfo;

/// Starts a reply: `{"seq":<seq>,"result":<code>`.
pub fn head(out: &mut Vec<u8>, seq: &str, result: i64) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(itoa::Buffer::new().format(result).as_bytes());
}

/// Writes one reply line: `{"seq":<seq>,` then `members` (a value that
/// serializes as an object), then `}` and a newline.
pub fn write_line(out: &mut Vec<u8>, seq: &str, members: &impl Serialize) {
    #[derive(Serialize)]
    struct Line<'a, T> {
        seq: &'a RawValue,
        #[serde(flatten)]
        members: &'a T,
    }
    let seq = RawValue::from_string(seq.to_owned()).expect("seq is JSON");
    serde_json::to_writer(&mut *out, &Line { seq: &seq, members }).expect("replies serialize");
    out.push(b'\n');
}

/// An error reply: the [`crate::error::Outcome`] every transport writes.
pub fn error_reply(out: &mut Vec<u8>, seq: &str, e: &Error) {
    write_line(out, seq, &e.outcome());
}

pub fn verify_reply(out: &mut Vec<u8>, seq: &str, r: Result<(&TokenInfo, &[u8]), Error>) {
    match r {
        Ok((_, tail)) => {
            metrics::token_verification(Verification::Valid);
            head(out, seq, 0);
            out.extend_from_slice(tail);
        }
        Err(e @ (Error::AccessToken | Error::AccessTokenExpired)) => {
            metrics::token_verification(Verification::Refused);
            head(out, seq, e.code());
            out.extend_from_slice(b",\"validate\":false}\n");
        }
        Err(e) => {
            metrics::token_verification(Verification::Error);
            error_reply(out, seq, &e)
        }
    }
}

/// `{"seq":null,"result":13,...}`: the line a connection over the cap gets.
pub fn busy_line() -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    error_reply(&mut out, "null", &Error::Busy);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn replies_are_json_lines() {
        let mut out = Vec::new();
        let info = TokenInfo {
            account_id: 1,
            session_id: 1,
            user_name: Arc::from("SN\"1"),
            type_: crate::db::UserType::Device,
            expires_at: 99,
            app_id: Arc::from("lamp"),
            app_kind: crate::config::AppKind::Device,
        };
        let tail = crate::tokens::reply_tail(&info);
        verify_reply(&mut out, "7", Ok((&info, &tail)));
        verify_reply(&mut out, "\"a\"", Err(Error::AccessTokenExpired));
        error_reply(&mut out, "null", &Error::Params("x".into()));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["seq"], 7);
        assert_eq!(lines[0]["user_name"], "SN\"1");
        assert_eq!(lines[0]["validate"], true);
        assert_eq!(lines[1]["seq"], "a");
        assert_eq!(lines[1]["result"], 106);
        assert_eq!(lines[1]["validate"], false);
        assert_eq!(lines[2]["result"], 2);
    }
}
