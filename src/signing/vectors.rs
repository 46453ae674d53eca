//! The test vectors published in docs/signing.md, checked against this
//! implementation (so the page cannot drift from the code).

use serde_json::Value;

use super::*;

const DOC: &str = include_str!("../../docs/signing.md");

#[derive(Default, Debug)]
struct Vector {
    name: String,
    secret: String,
    device: Option<String>,
    device_key: Option<String>,
    path: Option<String>,
    params: Vec<(String, String)>,
    canonical: String,
    param_sign: String,
    response: String,
    response_canonical: String,
    sign: String,
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut current: Option<Vector> = None;
    for line in DOC.lines() {
        if line == "```vector" {
            current = Some(Vector::default());
            continue;
        }
        let Some(v) = current.as_mut() else { continue };
        if line == "```" {
            out.push(current.take().unwrap());
            continue;
        }
        let (k, val) = line.split_once(": ").expect("key: value");
        let val = val.to_owned();
        match k {
            "name" => v.name = val,
            "secret" => v.secret = val,
            "device" => v.device = Some(val),
            "device_key" => v.device_key = Some(val),
            "path" => v.path = Some(val),
            "param" => {
                let (n, x) = val.split_once('=').unwrap();
                v.params.push((n.to_owned(), x.to_owned()));
            }
            // One line of the text each; joined by line feeds.
            "canonical" if v.canonical.is_empty() => v.canonical = val,
            "canonical" => {
                v.canonical.push('\n');
                v.canonical.push_str(&val);
            }
            "param_sign" => v.param_sign = val,
            "response" => v.response = val,
            "response_canonical" => v.response_canonical = val,
            "sign" => v.sign = val,
            other => panic!("unknown vector field {other}"),
        }
    }
    out
}

#[test]
fn the_published_vectors_hold() {
    let all = vectors();
    assert!(
        all.len() >= 5,
        "docs/signing.md publishes at least five vectors"
    );
    assert!(
        all.iter()
            .any(|v| v.path.as_deref() == Some("/get_bind_code") && v.device.is_some()),
        "a vector for a call acting as a device"
    );
    assert!(
        all.iter().any(|v| v.path.is_none()),
        "a vector for the token service hello"
    );
    for v in all {
        let key = match &v.device {
            Some(user) => SigningKey::derive_device(v.secret.as_bytes(), user),
            None => SigningKey::from_bytes(v.secret.as_bytes()),
        };
        if let Some(hex_key) = &v.device_key {
            assert_eq!(&hex::encode(key.bytes()), hex_key, "{}", v.name);
        }
        let params = v.params.iter().map(|(k, x)| (k.as_str(), x.as_str()));
        let canonical = match &v.path {
            Some(path) => canonical_text(path, params),
            None => canonical_request(params),
        };
        assert_eq!(canonical, v.canonical, "{}", v.name);
        assert_eq!(key.sign(canonical.as_bytes()), v.param_sign, "{}", v.name);
        assert!(key.verify(canonical.as_bytes(), &v.param_sign));
        if v.response.is_empty() {
            continue;
        }
        let response: Value = serde_json::from_str(&v.response).unwrap();
        let nonce = v.params.iter().find(|(k, _)| k == "nonce").map(|(_, x)| x);
        assert_eq!(
            response["nonce"].as_str(),
            nonce.map(String::as_str),
            "{}: a signed answer echoes the nonce",
            v.name
        );
        assert_eq!(
            canonical_json(&response),
            v.response_canonical,
            "{}",
            v.name
        );
        assert_eq!(
            key.sign_response(response.as_object().unwrap()),
            v.sign,
            "{}",
            v.name
        );
    }
}
