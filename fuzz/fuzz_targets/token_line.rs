//! The token service's line parser: the hand-written fast scanner against
//! its serde fallback. On every line both paths give the same request; and
//! whatever the scanner accepts is a JSON object whose members it read
//! exactly as serde_json does.

#![no_main]

use jidgate::token_service::request::Request;
use jidgate::token_service::scanner::scan_flat;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|line: &[u8]| {
    for greeted in [true, false] {
        let fast = Request::parse(line, greeted);
        let general = Request::parse_general(line, greeted);
        assert_eq!(
            format!("{fast:?}"),
            format!("{general:?}"),
            "the scanner and serde disagree (greeted: {greeted})"
        );
    }
    let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(flat) = scan_flat(trimmed) {
        let value: Value = serde_json::from_slice(trimmed).expect("the scanner accepted non-JSON");
        let Value::Object(object) = value else {
            panic!("the scanner accepted a non-object");
        };
        let text = |name: &str| object.get(name).and_then(Value::as_str);
        if flat.cmd.is_some() {
            assert_eq!(flat.cmd, text("cmd"));
        } else {
            assert!(!object.contains_key("cmd"));
        }
        if flat.access_token.is_some() {
            assert_eq!(flat.access_token, text("access_token"));
        } else {
            assert!(!object.contains_key("access_token"));
        }
        match flat.seq {
            Some(seq) => {
                let parsed: Value = serde_json::from_str(seq).expect("seq is JSON text");
                assert_eq!(Some(&parsed), object.get("seq"));
            }
            None => assert!(!object.contains_key("seq")),
        }
    }
});
