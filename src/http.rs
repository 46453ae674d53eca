//! The register API's HTTP plumbing: parameters from GET query, POST form
//! or POST JSON (strict: a member given twice anywhere is refused); signed
//! requests (the signature covers the path); signed JSON answers that echo
//! the request's nonce; client addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::config::{AppKind, Cidr};
use crate::db::nonce;
use crate::error::{Error, Outcome};
use crate::params::Params;
use crate::signing::{SigningKey, Verified, canonical_json};

impl FromRequest<App> for Params {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Params, Error> {
        let (parts, body) = req.into_parts();
        let mut params = Params::default();
        if let Some(query) = parts.uri.query() {
            params.parse_form(query.as_bytes())?;
        }
        if parts.method == Method::POST {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let bytes = axum::body::to_bytes(body, app.config.http.max_body_bytes)
                .await
                .map_err(|_| Error::Params("request body too large".into()))?;
            if !bytes.is_empty() {
                match content_type.as_str() {
                    "application/json" => params.parse_json(&bytes)?,
                    "application/x-www-form-urlencoded" | "" => params.parse_form(&bytes)?,
                    other => {
                        return Err(Error::Params(format!("unsupported content type {other:?}")));
                    }
                }
            }
        }
        Ok(params)
    }
}

/// Where a verified request leaves its signing key and nonce for the answer.
#[derive(Clone, Default)]
pub struct KeySlot(Arc<OnceLock<(SigningKey, String)>>);

/// A request whose signature, `ts` and `nonce` were checked.
#[derive(Debug)]
pub struct Signed {
    pub app_id: String,
    pub kind: AppKind,
    pub params: Params,
}

impl FromRequest<App> for Signed {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Signed, Error> {
        let slot = req.extensions().get::<KeySlot>().cloned();
        // The path exactly as the request names it: a signature made for one
        // endpoint (or spelling) is worthless at another.
        let path = req.uri().path().to_owned();
        let params = Params::from_request(req, app).await?;
        let now = crate::clock::now();
        let verified = app
            .keyring
            .verify(Some(&path), |n| params.get(n), params.iter(), now)?;
        // From here on the answer is signed and echoes the nonce, errors
        // included.
        if let Some(slot) = slot {
            let _ = slot.0.set((verified.key.clone(), verified.nonce.clone()));
        }
        nonce::spend(&app.db, &verified).await?;
        let Verified { app_id, kind, .. } = verified;
        Ok(Signed {
            app_id,
            kind,
            params,
        })
    }
}

impl Signed {
    /// Who signed the request, as tokens are checked against it.
    pub fn caller(&self) -> crate::tokens::Caller<'_> {
        crate::tokens::Caller {
            app_id: &self.app_id,
            kind: self.kind,
        }
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

    /// An answer that says how it went (`result`, and `error`,
    /// `retry_after` for a failure).
    pub fn outcome(outcome: &Outcome) -> Reply {
        Reply(members(outcome))
    }

    /// Adds a field.
    pub fn field(mut self, name: &str, value: impl Serialize) -> Reply {
        self.0.insert(
            name.to_owned(),
            serde_json::to_value(value).expect("answer fields serialize"),
        );
        self
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// The detail of a server-side failure, attached to the response for the
/// logging middleware (so `into_response` itself has no side effects).
#[derive(Debug, Clone)]
pub struct FailureDetail(pub String);

/// An error answer: its [`Outcome`] as the body, its status, `Retry-After`
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
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    if let Some(FailureDetail(detail)) = response.extensions_mut().remove::<FailureDetail>() {
        tracing::error!(path = %path, error = %detail, "request failed");
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
        let text = canonical_json(&Value::Object(body));
        let status = response.status();
        let mut headers = std::mem::take(response.headers_mut());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let mut fresh = (status, text).into_response();
        for (name, value) in headers.iter() {
            if name != header::CONTENT_LENGTH {
                fresh.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return fresh;
    }
    response
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy
/// (`http.trusted_proxies`), what the proxies recorded in
/// `http.client_ip_header` (see [`client_addr`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<App> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<ClientIp, Error> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let http = &app.config.http;
        if http.client_ip_header.is_empty() {
            return Ok(ClientIp(peer));
        }
        let lines = parts
            .headers
            .get_all(http.client_ip_header.as_str())
            .iter()
            .map(|v| v.as_bytes());
        Ok(ClientIp(client_addr(peer, lines, &http.trusted_proxies)))
    }
}

/// The client's address from the TCP `peer` and the lines of an
/// X-Forwarded-For style header (comma-separated addresses, each proxy
/// appending the address it received the request from).
///
/// The header is believed only if `peer` is a trusted proxy. It is then read
/// from the right: each address that is a trusted proxy is a hop to look
/// past, the first that is not is the client. What lies to its left was
/// written by the client and is ignored. If every address is a trusted
/// proxy the left-most is the client; an entry that is not an address stops
/// the walk at the last address before it.
pub fn client_addr<'a>(
    peer: IpAddr,
    header_lines: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for line in header_lines.rev() {
        let Ok(line) = std::str::from_utf8(line) else {
            return client;
        };
        for entry in line.rsplit(',') {
            match forwarded_addr(entry) {
                Some(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        return ip;
                    }
                }
                None => return client,
            }
        }
    }
    client
}

/// One entry of a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`.
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })?;
    Some(ip.to_canonical())
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

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|n| Cidr::try_from(n.to_string()).unwrap())
            .collect()
    }

    fn addr(peer: &str, lines: &[&str], trusted: &[&str]) -> String {
        client_addr(
            peer.parse().unwrap(),
            lines.iter().map(|l| l.as_bytes()),
            &nets(trusted),
        )
        .to_string()
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        // One proxy: it appended the address it saw; the rest is forged.
        assert_eq!(
            addr("127.0.0.1", &["1.1.1.1, 2.2.2.2, 203.0.113.9"], &proxies),
            "203.0.113.9"
        );
        // Two proxies, and the header split over two lines.
        assert_eq!(
            addr("10.0.0.2", &["6.6.6.6, 203.0.113.9", "10.1.1.1"], &proxies),
            "203.0.113.9"
        );
        // Ports and brackets as some proxies write them; mapped IPv4.
        assert_eq!(
            addr("::ffff:127.0.0.1", &["203.0.113.9:5555"], &proxies),
            "203.0.113.9"
        );
        assert_eq!(
            addr("127.0.0.1", &["[2001:db8::7]:443"], &proxies),
            "2001:db8::7"
        );
        assert_eq!(
            addr("127.0.0.1", &["[2001:db8::7]"], &proxies),
            "2001:db8::7"
        );
        // Only proxies: the left-most.
        assert_eq!(
            addr("127.0.0.1", &["10.9.9.9, 10.0.0.1"], &proxies),
            "10.9.9.9"
        );
        // No header: the peer.
        assert_eq!(addr("127.0.0.1", &[], &proxies), "127.0.0.1");
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        assert_eq!(
            addr("198.51.100.1", &["203.0.113.9"], &["127.0.0.1"]),
            "198.51.100.1"
        );
        assert_eq!(addr("127.0.0.1", &["203.0.113.9"], &[]), "127.0.0.1");
        assert_eq!(
            addr("::ffff:198.51.100.1", &["203.0.113.9"], &["127.0.0.1"]),
            "198.51.100.1"
        );
    }

    #[test]
    fn garbage_stops_at_the_last_address_before_it() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(
            addr("127.0.0.1", &["1.1.1.1, unknown, 10.0.0.5"], &proxies),
            "10.0.0.5"
        );
        assert_eq!(addr("127.0.0.1", &["nonsense"], &proxies), "127.0.0.1");
        assert_eq!(addr("127.0.0.1", &["1.1.1.1,"], &proxies), "127.0.0.1");
        assert_eq!(
            client_addr(
                "127.0.0.1".parse().unwrap(),
                [&b"\xff, 203.0.113.9"[..]].into_iter(),
                &nets(&proxies)
            )
            .to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        assert!(Cidr::try_from("10.0.0.0/8".to_string()).is_ok());
        assert!(Cidr::try_from("10.1.2.3".to_string()).is_ok());
        assert!(Cidr::try_from("fd00::/8".to_string()).is_ok());
        assert!(Cidr::try_from("10.0.0.0/33".to_string()).is_err());
        assert!(Cidr::try_from("proxy.example".to_string()).is_err());
        let net = Cidr::try_from("10.1.2.3/8".to_string()).unwrap();
        assert!(net.contains("10.200.0.1".parse().unwrap()));
    }
}
