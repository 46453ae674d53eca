//! The frames of seed 003: requests `{"func","parm","cdata"}`, replies
//! `{"push":false,"errno","error","cdata","result"}` (with `cdata` copied
//! unchanged) and pushes `{"push":true,"type","data","pid"}`; and the
//! facade's errnos, each documented in `docs/facade.md`.

use serde_json::{Map, Value, json};

use crate::params::{Repeated, read_json};

/// The facade's errnos: seed 003's where it has one (0–4), jidgate's
/// register-API code where one fits (105, 112, 113), seed 000's 10002, and
/// the facade's own from 5000.
pub mod errno {
    pub const OK: i64 = 0;
    /// Seed 003: no valid session (token missing, invalid, expired or
    /// revoked; a first frame other than `session.start`).
    pub const SESSION: i64 = 1;
    /// Seed 003: not allowed (e.g. resuming someone else's session).
    pub const NOT_PERMITTED: i64 = 2;
    /// Seed 003: the target does not exist.
    pub const NO_TARGET: i64 = 3;
    /// Seed 003: too fast.
    pub const TOO_FAST: i64 = 4;
    /// Register API: the XMPP server refused the stored JID password.
    pub const JID_PASSWORD: i64 = 105;
    /// Register API: the XMPP server is unavailable or refused.
    pub const XMPP: i64 = 112;
    /// Register API: refresh token missing, wrong, used or expired.
    pub const REFRESH_TOKEN: i64 = 113;
    /// Internal error (logged on the server, no detail sent).
    pub const INTERNAL: i64 = 5000;
    /// The frame is not a JSON object with a string `func`.
    pub const BAD_FRAME: i64 = 5001;
    /// No such `func`.
    pub const UNKNOWN_FUNC: i64 = 5002;
    /// A `parm` is missing, of the wrong type, too long or malformed.
    pub const BAD_PARM: i64 = 5003;
    /// The frame is larger than `facade.max_frame_bytes`.
    pub const TOO_LARGE: i64 = 5004;
    /// `?usezlib=1`: the frame is not valid raw deflate data, or is a text
    /// frame; without it, a binary frame.
    pub const BAD_COMPRESSION: i64 = 5005;
    /// Too many facade sessions on this instance.
    pub const BUSY: i64 = 5006;
    /// The XMPP stream dropped and is being logged in again (push
    /// `xmpp_state`); retry after `xmpp_state` `connected`.
    pub const RECONNECTING: i64 = 5007;
    /// Seed 000: the target is not a friend (`facade.friends_only`).
    pub const NOT_FRIEND: i64 = 10002;
}

/// A failed request: its errno and a human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub errno: i64,
    pub error: String,
}

impl Failure {
    pub fn new(errno: i64, error: impl Into<String>) -> Failure {
        Failure {
            errno,
            error: error.into(),
        }
    }

    pub fn parm(error: impl Into<String>) -> Failure {
        Failure::new(errno::BAD_PARM, error)
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Failure {
        use crate::error::Error as E;
        match &e {
            E::AccessToken | E::AccessTokenExpired => Failure::new(errno::SESSION, e.to_string()),
            E::RefreshToken => Failure::new(errno::REFRESH_TOKEN, e.to_string()),
            E::JidPassword => Failure::new(errno::JID_PASSWORD, e.public_message()),
            E::Xmpp(_) => Failure::new(errno::XMPP, e.public_message()),
            E::UnknownUser => Failure::new(errno::NO_TARGET, e.to_string()),
            E::RateLimited { .. } | E::Busy => Failure::new(errno::TOO_FAST, e.to_string()),
            E::Params(p) => Failure::parm(p.clone()),
            E::NotPermitted(_) => Failure::new(errno::NOT_PERMITTED, e.to_string()),
            _ => {
                tracing::error!(error = %e, "facade request failed");
                Failure::new(errno::INTERNAL, "internal error")
            }
        }
    }
}

impl From<crate::xmpp::XmppError> for Failure {
    fn from(e: crate::xmpp::XmppError) -> Failure {
        Failure::from(crate::error::Error::from(e))
    }
}

/// A request, read once from a frame.
#[derive(Debug)]
pub struct Request {
    pub func: String,
    pub parm: Map<String, Value>,
    pub cdata: Value,
}

/// Reads a request. A frame that is not JSON has no readable `cdata`; one
/// that is gives its `cdata` back with the failure.
pub fn parse(frame: &[u8]) -> Result<Request, (Failure, Value)> {
    let value = literal_json(frame)
        .map_err(|_| (Failure::new(errno::BAD_FRAME, "invalid JSON"), Value::Null))?;
    let Value::Object(mut obj) = value else {
        return Err((
            Failure::new(errno::BAD_FRAME, "a request is a JSON object"),
            Value::Null,
        ));
    };
    let cdata = obj.remove("cdata").unwrap_or(Value::Null);
    let func = match obj.remove("func") {
        Some(Value::String(f)) => f,
        _ => {
            return Err((
                Failure::new(errno::BAD_FRAME, "func must be a string"),
                cdata,
            ));
        }
    };
    let parm = match obj.remove("parm") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Err((Failure::parm("parm must be an object"), cdata)),
    };
    Ok(Request { func, parm, cdata })
}

/// A frame's JSON: every member key as written, a repeated member's last
/// value (see [`read_json`]).
fn literal_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    read_json(bytes, Repeated::KeepLast)
}

/// A reply frame.
pub fn reply(cdata: Value, outcome: Result<Value, Failure>) -> String {
    let (errno, error, result) = match outcome {
        Ok(result) => (errno::OK, "ok".to_owned(), result),
        Err(f) => (f.errno, f.error, Value::Null),
    };
    json!({"push": false, "errno": errno, "error": error, "cdata": cdata, "result": result})
        .to_string()
}

/// A push frame.
pub fn push(type_: &str, data: &Value, pid: u64) -> String {
    json!({"push": true, "type": type_, "data": data, "pid": pid}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_comes_back_unchanged_even_when_the_request_is_bad() {
        let (f, cdata) = parse(br#"{"func":7,"cdata":{"k":[1,"x"]}}"#).unwrap_err();
        assert_eq!(f.errno, errno::BAD_FRAME);
        assert_eq!(cdata, json!({"k":[1,"x"]}));
        let (f, cdata) = parse(b"{nope").unwrap_err();
        assert_eq!((f.errno, cdata), (errno::BAD_FRAME, Value::Null));
        let r = parse(br#"{"func":"session.ping","cdata":"c1"}"#).unwrap();
        assert_eq!((r.func.as_str(), r.cdata), ("session.ping", json!("c1")));
        let text = reply(json!("c1"), Err(Failure::parm("to")));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["errno"], errno::BAD_PARM);
        assert_eq!(v["cdata"], "c1");
        assert_eq!(v["push"], false);
    }

    #[test]
    fn serde_json_s_raw_value_key_is_an_ordinary_member() {
        // serde_json's Value reader would give `[1]` for this cdata and
        // accept the second frame as {"func":"session.ping"}.
        let frame = br#"{"func":"session.ping","cdata":{"$serde_json::private::RawValue":"[1]"}}"#;
        let r = parse(frame).unwrap();
        assert_eq!(r.cdata, json!({"$serde_json::private::RawValue": "[1]"}));
        let text = reply(r.cdata, Ok(json!({})));
        assert!(text.contains(r#""cdata":{"$serde_json::private::RawValue":"[1]"}"#));
        let frame = br#"{"\u0024serde_json::private::RawValue":"{\"func\":\"session.ping\"}"}"#;
        let (f, cdata) = parse(frame).unwrap_err();
        assert_eq!((f.errno, cdata), (errno::BAD_FRAME, Value::Null));
        // Everything else reads as serde_json reads it.
        let frame = br#"{"func":"x","parm":{"a":[1,-2,3.5,1e300,true,null,"\u00e9"]},"cdata":18446744073709551615}"#;
        let r = parse(frame).unwrap();
        let v: Value = serde_json::from_slice(frame).unwrap();
        assert_eq!(Value::Object(r.parm), v["parm"]);
        assert_eq!(r.cdata, v["cdata"]);
        assert!(parse(b"{\"func\":\"x\"} x").is_err());
    }

    #[test]
    fn a_number_in_cdata_comes_back_as_the_same_number() {
        // Found by fuzz target facade_frame: without serde_json's
        // `float_roundtrip`, this long literal read as a double one unit
        // away from the nearest, so the reply carried another number.
        let long = format!("22222{}22.5e10", "0".repeat(122));
        for n in [
            long.as_str(),
            "2.2222e138",
            "1e-300",
            "0.1",
            "-0.0",
            "1.7976931348623157e308",
        ] {
            let frame = format!(r#"{{"func":"x","cdata":[{n}]}}"#);
            let r = parse(frame.as_bytes()).unwrap();
            let text = reply(r.cdata.clone(), Ok(json!({})));
            let back = literal_json(text.as_bytes()).unwrap()["cdata"].clone();
            assert_eq!(back, r.cdata, "{n}");
            let exact: f64 = n.parse().unwrap();
            assert_eq!(
                r.cdata[0].as_f64().unwrap().to_bits(),
                exact.to_bits(),
                "{n}"
            );
        }
    }
}
