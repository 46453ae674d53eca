//! The canonical texts that are signed: a request's path and parameters,
//! and an answer's JSON.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// RFC 3986 percent-encoding (uppercase hex).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// The canonical request string of `params` (any order; `param_sign` is
/// left out).
pub fn canonical_request<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, _)| *k != "param_sign")
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// The canonical text a register-API request is signed over: the request
/// path exactly as the request names it (e.g. `/get_bind_code`), a line
/// feed, then [`canonical_request`] of the parameters.
pub fn canonical_text<'a>(
    path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let params = canonical_request(params);
    let mut out = String::with_capacity(path.len() + 1 + params.len());
    out.push_str(path);
    out.push('\n');
    out.push_str(&params);
    out
}

/// The canonical JSON text of a value: object keys sorted bytewise at every
/// level, no whitespace, strings escaped as serde_json does (UTF-8 kept).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_request_sorts_and_encodes() {
        let s = canonical_request([
            ("user_name", "Ab c+/é"),
            ("app_id", "x"),
            ("param_sign", "ignored"),
            ("B", "1"),
        ]);
        assert_eq!(s, "B=1&app_id=x&user_name=Ab%20c%2B%2F%C3%A9");
    }

    #[test]
    fn the_canonical_text_starts_with_the_path() {
        let params = [("b", "2"), ("a", "1")];
        assert_eq!(
            canonical_text("/get_bind_code", params),
            "/get_bind_code\na=1&b=2"
        );
        assert_ne!(
            canonical_text("/get_user_banding", params),
            canonical_text("/get_user_binding", params)
        );
        // The hello's text (no path) never has a line feed.
        assert!(!canonical_request([("cmd", "hello\n")]).contains('\n'));
    }

    #[test]
    fn unreserved_characters_stay() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("[\"a\"]"), "%5B%22a%22%5D");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": "é", "x": null}], "c": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"z":[1,{"x":null,"y":"é"}]},"b":1}"#
        );
    }
}
