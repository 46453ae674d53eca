//! A request line, parsed once into a [`Request`] (as mini-redis's
//! `Command::from_frame`), which the connection then carries out.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::scanner::scan_flat;
use crate::config::MAX_LOOKUP_NAMES;
use crate::error::Error;
use crate::fields::parse_name_list;
use crate::params::{Params, strict_json};

/// One request: the `seq` its reply echoes (JSON text, `null` if none) and
/// what it asks.
#[derive(Debug)]
pub struct Request<'a> {
    pub seq: &'a str,
    pub command: Command<'a>,
}

/// What a request asks.
#[derive(Debug)]
pub enum Command<'a> {
    /// The signed hello: every member of the line.
    Hello(Params),
    VerifyAccessToken(Cow<'a, str>),
    GetUsers(Vec<String>),
    Ping,
    /// Nothing to carry out: the reply is this error (a line that is not a
    /// request, a command out of turn, missing or malformed members).
    Refused(Error),
}

/// The members of a request line that commands read.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cmd: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    access_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_name_ls: Option<&'a RawValue>,
}

impl<'a> Request<'a> {
    fn refused(seq: &'a str, e: Error) -> Request<'a> {
        Request {
            seq,
            command: Command::Refused(e),
        }
    }

    /// Parses one line (without its newline) of a connection that has said
    /// hello already (`greeted`) or not; `None` for a blank line.
    pub fn parse(line: &'a [u8], greeted: bool) -> Option<Request<'a>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        // The hot path: a verification, read without a full JSON parse.
        if greeted
            && let Some(flat) = scan_flat(line)
            && flat.cmd == Some("verify_access_token")
            && let Some(token) = flat.access_token
        {
            return Some(Request {
                seq: flat.seq.unwrap_or("null"),
                command: Command::VerifyAccessToken(Cow::Borrowed(token)),
            });
        }
        Self::parse_general(line, greeted)
    }

    /// The general path alone (serde), without the fast scanner: what
    /// [`Request::parse`] answers for every line the scanner leaves to it.
    /// Public for the differential fuzz target (`fuzz/`), which checks that
    /// both paths agree on every line.
    #[doc(hidden)]
    pub fn parse_general(line: &'a [u8], greeted: bool) -> Option<Request<'a>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let parsed: Line<'a> = match serde_json::from_slice(line) {
            Ok(p) => p,
            Err(_) => {
                return Some(Request::refused(
                    "null",
                    Error::Params("not a JSON object".into()),
                ));
            }
        };
        let seq = match parsed.seq {
            None => "null",
            Some(raw) if valid_seq(raw) => raw.get(),
            Some(_) => {
                return Some(Request::refused(
                    "null",
                    Error::Params("seq must be a number or a short string".into()),
                ));
            }
        };
        // A member given twice anywhere in the line is refused, as in HTTP
        // bodies (the typed parse above only sees the members it reads).
        if let Err(e) = strict_json(line) {
            return Some(Request::refused(seq, e));
        }
        let cmd = parsed.cmd.as_deref().unwrap_or("");
        let command = match (greeted, cmd) {
            (false, "hello") => match Params::from_json_bytes(line) {
                Ok(params) => Command::Hello(params),
                Err(e) => Command::Refused(e),
            },
            (false, _) => Command::Refused(Error::NotPermitted("send a signed hello first")),
            (true, "hello") => Command::Refused(Error::NotPermitted("already said hello")),
            (true, "verify_access_token") => match parsed.access_token {
                Some(token) => Command::VerifyAccessToken(token),
                None => Command::Refused(Error::Params("access_token is required".into())),
            },
            (true, "get_users") => match parsed.user_name_ls.map(user_list) {
                Some(Ok(names)) => Command::GetUsers(names),
                Some(Err(e)) => Command::Refused(e),
                None => Command::Refused(Error::Params("user_name_ls is required".into())),
            },
            (true, "ping") => Command::Ping,
            (true, other) => Command::Refused(Error::Params(format!(
                "unknown cmd {:?}: hello, verify_access_token, get_users, ping",
                other.chars().take(40).collect::<String>()
            ))),
        };
        Some(Request { seq, command })
    }
}

/// A `seq` is echoed verbatim: a JSON number or string, short.
fn valid_seq(raw: &RawValue) -> bool {
    let t = raw.get();
    t.len() <= 64 && (t.starts_with('"') || t.starts_with('-') || t.as_bytes()[0].is_ascii_digit())
}

/// `user_name_ls` as a JSON array, or as a string holding one.
fn user_list(raw: &RawValue) -> Result<Vec<String>, Error> {
    let text = raw.get();
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text)
            .map_err(|_| Error::Params("user_name_ls must be a JSON array of strings".into()))?;
        parse_name_list(&inner, MAX_LOOKUP_NAMES)
    } else {
        parse_name_list(text, MAX_LOOKUP_NAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_must_be_number_or_string() {
        let ok: Box<RawValue> = serde_json::from_str("12").unwrap();
        let s: Box<RawValue> = serde_json::from_str("\"x\"").unwrap();
        let obj: Box<RawValue> = serde_json::from_str("{}").unwrap();
        assert!(valid_seq(&ok) && valid_seq(&s) && !valid_seq(&obj));
    }

    fn command(line: &str, greeted: bool) -> Command<'_> {
        Request::parse(line.as_bytes(), greeted).unwrap().command
    }

    #[test]
    fn lines_become_commands_once() {
        assert!(Request::parse(b" \r", true).is_none());
        let r = Request::parse(
            br#"{"seq":"a","cmd":"verify_access_token","access_token":"jgt_x"}"#,
            true,
        )
        .unwrap();
        assert_eq!(r.seq, "\"a\"");
        assert!(matches!(r.command, Command::VerifyAccessToken(t) if t == "jgt_x"));
        assert!(matches!(
            command(r#"{"cmd":"get_users","user_name_ls":"[\"a1\"]"}"#, true),
            Command::GetUsers(n) if n == ["a1"]
        ));
        assert!(matches!(command(r#"{"cmd":"ping"}"#, true), Command::Ping));
        assert!(matches!(
            command(r#"{"cmd":"hello"}"#, false),
            Command::Hello(_)
        ));
    }

    /// Found by the `token_line` fuzz target: the fast scanner accepted a
    /// number serde_json refuses as out of range. Both paths now agree.
    #[test]
    fn the_scanner_and_the_general_path_agree_on_numbers_out_of_range() {
        let huge = format!("{{\"x\":1{}}}", "0".repeat(400));
        let lines = [
            format!(
                r#" {{"seq": "a-1", "cmd":"verify_access_token","access_token":"jgt_x","x":-0.5e{}}}"#,
                "2".repeat(300)
            ),
            huge.replace(
                "{\"x\"",
                "{\"cmd\":\"verify_access_token\",\"access_token\":\"t\",\"x\"",
            ),
            r#"{"cmd":"verify_access_token","access_token":"t","x":1e5}"#.to_owned(),
        ];
        for line in &lines {
            let fast = format!("{:?}", Request::parse(line.as_bytes(), true));
            let general = format!("{:?}", Request::parse_general(line.as_bytes(), true));
            assert_eq!(fast, general, "{line}");
        }
        assert!(matches!(
            Request::parse(lines[0].as_bytes(), true).unwrap().command,
            Command::Refused(_)
        ));
    }

    #[test]
    fn out_of_turn_and_malformed_lines_are_refused() {
        for (line, greeted, code) in [
            (r#"{"cmd":"ping"}"#, false, 100),
            (r#"{"cmd":"verify_access_token"}"#, false, 100),
            (r#"{"cmd":"hello"}"#, true, 100),
            (r#"{"cmd":"verify_access_token"}"#, true, 2),
            (r#"{"cmd":"get_users"}"#, true, 2),
            (r#"{"cmd":"nope"}"#, true, 2),
            (r#"{"seq":1,"seq":2,"cmd":"ping"}"#, true, 2),
            ("not json", true, 2),
        ] {
            match command(line, greeted) {
                Command::Refused(e) => assert_eq!(e.code(), code, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let r = Request::parse(br#"{"seq":{},"cmd":"ping"}"#, true).unwrap();
        assert_eq!(r.seq, "null");
    }
}
