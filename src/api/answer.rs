//! How an answer is written: handlers and errors leave its JSON object
//! ([`ApiBody`]) on the response, and [`finish_answers`] signs it with the
//! key the request was verified with (left in the request's [`KeySlot`] by
//! [`super::Signed`]), echoes the request's nonce and writes canonical JSON.

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::signing::{SigningKey, canonical_json};

/// Where a verified request leaves its signing key and nonce for the answer.
#[derive(Clone, Default)]
pub struct KeySlot(Arc<OnceLock<(SigningKey, String)>>);

impl KeySlot {
    /// From here on the answer is signed with `key` and echoes `nonce`,
    /// errors included.
    pub(super) fn fill(&self, key: SigningKey, nonce: String) {
        let _ = self.0.set((key, nonce));
    }
}

/// The JSON object of an answer, before it is signed and written.
#[derive(Debug, Clone)]
pub struct ApiBody(pub Map<String, Value>);

/// A successful (or partly successful) answer.
#[derive(Debug, Clone)]
pub struct Reply(Map<String, Value>);

impl Reply {
    /// `result: 0`.
    pub fn ok() -> Reply {
        Reply::with_result(0)
    }

    /// An answer with the given `result` code and data.
    pub fn with_result(code: i64) -> Reply {
        let mut m = Map::new();
        m.insert("result".into(), json!(code));
        Reply(m)
    }

    /// Adds a field.
    pub fn field(mut self, name: &str, value: impl Serialize) -> Reply {
        self.0.insert(
            name.to_owned(),
            serde_json::to_value(value).expect("answer fields serialize"),
        );
        self
    }

    /// Adds every member of `value`, a value that serializes as a JSON
    /// object (e.g. a fresh token pair), instead of copying them one by one.
    pub fn merge(mut self, value: &impl Serialize) -> Reply {
        self.0.extend(members(value));
        self
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// The `result` code of a written answer, left on the response for the
/// request's metrics (`super::trace`).
#[derive(Debug, Clone, Copy)]
pub struct AnswerResult(pub i64);

/// The detail of a server-side failure, attached to the response for the
/// logging middleware (so `into_response` itself has no side effects).
#[derive(Debug, Clone)]
pub struct FailureDetail(pub String);

/// An error answer: its [`crate::error::Outcome`] as the body, its status, `Retry-After`
/// when the client should wait.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let outcome = self.outcome();
        let mut response = self.status().into_response();
        if let Some(seconds) = outcome.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.is_server_side() {
            response
                .extensions_mut()
                .insert(FailureDetail(format!("{self:#}: {self:?}")));
        }
        response.extensions_mut().insert(ApiBody(members(&outcome)));
        response
    }
}

/// The members of a value that serializes as a JSON object.
fn members(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value).expect("answers serialize") {
        Value::Object(map) => map,
        other => panic!("an answer is a JSON object, not {other}"),
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = axum::http::StatusCode::OK.into_response();
        r.extensions_mut().insert(ApiBody(self.0));
        r
    }
}

/// Middleware: gives each request a [`KeySlot`], logs server-side failures
/// once, and writes answers as canonical JSON with their `sign`; a signed
/// answer carries the request's `nonce` (covered by the `sign`).
pub async fn finish_answers(mut req: Request, next: Next) -> Response {
    let slot = KeySlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    if let Some(FailureDetail(detail)) = response.extensions_mut().remove::<FailureDetail>() {
        // In the request's span: its method and route say which.
        tracing::error!(error = %detail, "request failed");
    }
    if let Some(ApiBody(mut body)) = response.extensions_mut().remove::<ApiBody>() {
        let sign = match slot.0.get() {
            Some((key, nonce)) => {
                body.insert("nonce".into(), Value::String(nonce.clone()));
                key.sign_response(&body)
            }
            None => String::new(),
        };
        body.insert("sign".into(), Value::String(sign));
        let result = body.get("result").and_then(Value::as_i64);
        let text = canonical_json(&Value::Object(body));
        let status = response.status();
        let mut headers = std::mem::take(response.headers_mut());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let mut fresh = (status, text).into_response();
        if let Some(code) = result {
            fresh.extensions_mut().insert(AnswerResult(code));
        }
        for (name, value) in headers.iter() {
            if name != header::CONTENT_LENGTH {
                fresh.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return fresh;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_rate_limited_answers_say_when_to_retry() {
        for (e, status, wait) in [
            (Error::Busy, 503, 1),
            (Error::RateLimited { retry_after: 7 }, 429, 7),
        ] {
            let r = e.into_response();
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.headers()["retry-after"], wait.to_string().as_str());
            let body = r.extensions().get::<ApiBody>().unwrap();
            assert_eq!(body.0["retry_after"], json!(wait));
        }
        let r = Error::CaptchaRequired.into_response();
        assert!(r.headers().get("retry-after").is_none());
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

    #[test]
    fn merged_members_join_the_answer() {
        #[derive(Serialize)]
        struct Pair {
            access_token: &'static str,
            expires_in: i64,
        }
        let r = Reply::ok()
            .field("user_info", json!({"jid": "x"}))
            .merge(&Pair {
                access_token: "jgt_x",
                expires_in: 60,
            })
            .into_map();
        assert_eq!(
            Value::Object(r),
            json!({"result": 0, "user_info": {"jid": "x"}, "access_token": "jgt_x", "expires_in": 60})
        );
    }
}
