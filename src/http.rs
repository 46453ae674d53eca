//! The register API's HTTP plumbing: parameters from GET query, POST form
//! or POST JSON (strict: a member given twice anywhere is refused); signed
//! requests (the signature covers the path); signed JSON answers that echo
//! the request's nonce; client addresses.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::config::{AppKind, Cidr};
use crate::error::{Error, FailureDetail};
use crate::signing::{SigningKey, Verified, canonical_json, record_nonce};

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 40;
/// Longest parameter value, in bytes (fields have tighter limits of their own).
pub const MAX_VALUE_BYTES: usize = 8192;

/// A request's parameters, by name. A name given twice is refused.
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// The members of a JSON object, as a JSON body gives them.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Params, Error> {
        let mut p = Params::default();
        p.parse_json(bytes)?;
        Ok(p)
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), Error> {
        if name.is_empty()
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::Params("bad parameter name".into()));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::Params(format!("{name} is too long")));
        }
        // No parameter may carry what XML cannot, noncharacters or bidi
        // controls (issue 6, point 10); the field types check again.
        crate::fields::check_text(&name, &value)?;
        if self.map.len() >= MAX_PARAMS {
            return Err(Error::Params("too many parameters".into()));
        }
        if self.map.contains_key(&name) {
            return Err(Error::Params(format!("{name} is given twice")));
        }
        self.map.insert(name, value);
        Ok(())
    }

    /// The value of `name`, if present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// The value of `name`, which must be present and not empty.
    pub fn required(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Params(format!("{name} is required")))
    }

    /// The value of `name` if present and not empty.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn parse_form(&mut self, bytes: &[u8]) -> Result<(), Error> {
        for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            self.insert(form_decode(k)?, form_decode(v)?)?;
        }
        Ok(())
    }

    fn parse_json(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let value = strict_json(bytes)?;
        let Value::Object(object) = value else {
            return Err(Error::Params("JSON body must be an object".into()));
        };
        for (k, v) in object {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                // Lists (user_name_ls, bind_code_ls) may come as real arrays;
                // they are signed as their canonical JSON text.
                Value::Array(_) => canonical_json(&v),
                Value::Object(_) => {
                    return Err(Error::Params(format!("{k} must not be an object")));
                }
            };
            self.insert(k, text)?;
        }
        Ok(())
    }
}

/// Parses JSON text, refusing (code 2) an object that names a member twice,
/// at any depth. serde_json alone keeps the last of repeated members, so a
/// signature checker and a handler could read different values.
pub fn strict_json(bytes: &[u8]) -> Result<Value, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde::Deserialize::deserialize(&mut de)
        .and_then(|StrictValue(v)| de.end().map(|()| v))
        .map_err(|e| {
            if e.to_string().starts_with(DUPLICATE) {
                Error::Params("a JSON member is given twice".into())
            } else {
                Error::Params("body is not valid JSON".into())
            }
        })?;
    Ok(value)
}

/// Start of the error a repeated member raises in [`strict_json`].
const DUPLICATE: &str = "duplicate member";

/// A JSON value read by a visitor that refuses repeated object members.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StrictValue, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value:
/// `+` is a space, `%XX` a byte; the result must be UTF-8.
fn form_decode(raw: &[u8]) -> Result<String, Error> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::Params("parameters must be UTF-8".into()))
}

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
        let (verified, ts) =
            app.keyring
                .verify(Some(&path), |n| params.get(n), params.iter(), now)?;
        let Verified {
            app_id,
            kind,
            key,
            nonce_scope,
        } = verified;
        let nonce = params.required("nonce")?;
        // From here on the answer is signed and echoes the nonce, errors
        // included.
        if let Some(slot) = slot {
            let _ = slot.0.set((key, nonce.to_owned()));
        }
        let expires = ts + app.keyring.window() as i64;
        if !record_nonce(&app.db, &nonce_scope, nonce, expires).await? {
            return Err(Error::NonceReused);
        }
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
    fn form_decoding_handles_plus_and_percent() {
        let mut p = Params::default();
        p.parse_form(b"a=b+c&d=%E4%BD%A0%2B&e&f=").unwrap();
        assert_eq!(p.get("a"), Some("b c"));
        assert_eq!(p.get("d"), Some("你+"));
        assert_eq!(p.get("e"), Some(""));
        assert_eq!(p.optional("f"), None);
        assert!(p.required("f").is_err());
    }

    #[test]
    fn duplicates_bad_names_and_bad_utf8_are_refused() {
        assert!(Params::default().parse_form(b"a=1&a=2").is_err());
        assert!(Params::default().parse_form(b"a%20b=1").is_err());
        assert!(Params::default().parse_form(b"a=%FF").is_err());
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(
            Params::default()
                .parse_form(many.join("&").as_bytes())
                .is_err()
        );
    }

    #[test]
    fn json_values_become_their_text() {
        let mut p = Params::default();
        p.parse_json(br#"{"type":2,"ok":true,"ls":["b", "a"],"n":null,"s":"x"}"#)
            .unwrap();
        assert_eq!(p.get("type"), Some("2"));
        assert_eq!(p.get("ok"), Some("true"));
        assert_eq!(p.get("ls"), Some(r#"["b","a"]"#));
        assert_eq!(p.get("n"), None);
        assert!(Params::default().parse_json(br#"{"o":{}}"#).is_err());
        assert!(Params::default().parse_json(b"[1]").is_err());
        assert!(Params::default().parse_json(b"{").is_err());
    }

    #[test]
    fn repeated_json_members_are_refused_at_any_depth() {
        for bad in [
            &br#"{"a":"1","a":"2"}"#[..],
            br#"{"a":"1","ls":[{"x":1,"x":2}]}"#,
            br#"{"a":{"b":{"c":1,"c":1}}}"#,
            br#"{"a":"1"} {"a":"2"}"#,
        ] {
            let e = strict_json(bad).unwrap_err();
            assert_eq!(e.code(), 2, "{}", String::from_utf8_lossy(bad));
        }
        assert!(strict_json(br#"{"a":"1","b":"1"}"#).is_ok());
        let v = strict_json(br#" {"a":[1,-2,3.5,true,null,{"b":"\u00e9"}],"c":{}} "#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a":[1,-2,3.5,true,null,{"b":"é"}],"c":{}})
        );
        assert!(
            Params::default()
                .parse_json(br#"{"a":"1","a":"1"}"#)
                .is_err()
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
