//! The canonical request text: independent of parameter order and of how
//! the parameters were sent (query, form, JSON), injective (it decodes back
//! to exactly the parameters), refusing any repeated name, and treating a
//! real JSON array like its canonical text.

use std::collections::BTreeMap;

use jidgate::params::Params;
use jidgate::signing::{canonical_json, canonical_request, canonical_text, encode};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A parameter name as the extractor accepts them.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_]{1,32}".prop_filter("param_sign is left out", |n| n != "param_sign")
}

/// A value: any text the extractor accepts (no controls, noncharacters or
/// bidi controls), including the characters encoding must escape.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            2 => prop::sample::select(vec!['&', '=', '+', '%', ' ', '/', '?', '#', '"', '[', ']', '~', '.', '-', '_', 'é', '你', '😀']),
        ],
        0..24,
    )
    .prop_map(|cs| {
        cs.into_iter()
            .filter(|c| jidgate::fields::refused_char(*c).is_none())
            .collect()
    })
}

/// A set of parameters with distinct names (at most the extractor's cap).
fn params() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(name(), value(), 0..12)
}

/// A form body of `pairs` in the given order, each byte encoded one of the
/// ways a client may choose (`%20` or `+` for a space, upper- or lowercase
/// hex, unreserved characters escaped or not).
fn form(pairs: &[(String, String)], style: u8) -> String {
    let enc = |s: &str| -> String {
        let mut out = String::new();
        for b in s.bytes() {
            let plain = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            match (b, style % 3) {
                (b' ', 0) => out.push('+'),
                _ if plain && style % 2 == 0 => out.push(b as char),
                _ if style % 3 == 2 => out.push_str(&format!("%{b:02x}")),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn text_of(p: &Params) -> String {
    canonical_request(p.iter())
}

/// Splits a canonical text back into its decoded pairs.
fn decode(text: &str) -> Vec<(String, String)> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("every pair has =");
            let d = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
            (d(k), d(v))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn order_does_not_matter(map in params(), seed in any::<u64>()) {
        let mut pairs: Vec<(String, String)> = map.clone().into_iter().collect();
        // A permutation chosen by the seed.
        let n = pairs.len();
        for i in (1..n).rev() {
            pairs.swap(i, (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize);
        }
        let sorted = canonical_request(map.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let shuffled = canonical_request(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert_eq!(sorted, shuffled);
    }

    #[test]
    fn the_text_is_unambiguous_and_decodes_back_to_the_parameters(map in params(), sign in value()) {
        let mut with_sign: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        with_sign.push(("param_sign", &sign));
        let text = canonical_request(with_sign);
        // Only unreserved characters, %XX (uppercase), = and &.
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)), "{}", text);
        let back: BTreeMap<String, String> = decode(&text).into_iter().collect();
        prop_assert_eq!(back, map.clone());
        // Names come out sorted bytewise.
        let names: Vec<String> = decode(&text).into_iter().map(|(k, _)| k).collect();
        let mut sorted = names.clone();
        sorted.sort();
        prop_assert_eq!(names, sorted);
        // With a path: the path, a line feed, the same text.
        let full = canonical_text("/login", map.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert_eq!(full, format!("/login\n{text}"));
    }

    #[test]
    fn encoding_round_trips_and_escapes_all_but_unreserved(s in value()) {
        let e = encode(&s);
        prop_assert_eq!(percent_decode_str(&e).decode_utf8().unwrap(), s.as_str());
        for (i, b) in e.bytes().enumerate() {
            if b == b'%' {
                let hex = &e[i + 1..i + 3];
                prop_assert!(hex.bytes().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h)), "{}", e);
            } else {
                prop_assert!(b.is_ascii_hexdigit() || b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            }
        }
    }

    #[test]
    fn query_form_and_json_give_the_same_text(map in params(), style in any::<u8>(), split in any::<usize>()) {
        let pairs: Vec<(String, String)> = map.clone().into_iter().collect();
        let expected = canonical_request(map.iter().map(|(k, v)| (k.as_str(), v.as_str())));

        let mut from_form = Params::default();
        from_form.parse_form(form(&pairs, style).as_bytes()).unwrap();
        prop_assert_eq!(text_of(&from_form), expected.clone());

        // Part in the query, the rest in the form body.
        let at = if pairs.is_empty() { 0 } else { split % (pairs.len() + 1) };
        let mut mixed = Params::default();
        mixed.parse_form(form(&pairs[..at], style).as_bytes()).unwrap();
        mixed.parse_form(form(&pairs[at..], style.wrapping_add(1)).as_bytes()).unwrap();
        prop_assert_eq!(text_of(&mixed), expected.clone());

        let object: serde_json::Map<String, Value> =
            map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let body = serde_json::to_vec(&Value::Object(object)).unwrap();
        let from_json = Params::from_json_bytes(&body).unwrap();
        prop_assert_eq!(text_of(&from_json), expected);
    }

    #[test]
    fn a_repeated_name_is_refused_wherever_it_appears(
        map in params().prop_filter("not empty", |m| !m.is_empty()),
        pick in any::<usize>(),
        at in any::<usize>(),
        other in value(),
        style in any::<u8>(),
    ) {
        let mut pairs: Vec<(String, String)> = map.into_iter().collect();
        let twice = pairs[pick % pairs.len()].0.clone();
        pairs.insert(at % (pairs.len() + 1), (twice.clone(), other));

        let mut p = Params::default();
        let e = p.parse_form(form(&pairs, style).as_bytes()).unwrap_err();
        prop_assert_eq!(e.code(), 2);

        // JSON: the same member twice (serde_json would keep the last one).
        let members: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), Value::String(v.clone())))
            .collect();
        let body = format!("{{{}}}", members.join(","));
        let e = Params::from_json_bytes(body.as_bytes()).unwrap_err();
        prop_assert_eq!(e.code(), 2);

        // Split between the query and the body.
        let mut p = Params::default();
        let (a, b) = pairs.split_at(pairs.iter().position(|(k, _)| *k == twice).unwrap() + 1);
        p.parse_form(form(a, style).as_bytes()).unwrap();
        prop_assert!(p.parse_form(form(b, style).as_bytes()).is_err());
    }

    #[test]
    fn a_real_json_array_is_signed_as_its_canonical_text(
        items in prop::collection::vec("[A-Za-z0-9+:._-]{1,20}", 1..8),
        extra in prop::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..3),
    ) {
        // Array of strings, or of objects with keys in any order.
        let objects: Vec<Value> = items
            .iter()
            .map(|s| {
                let mut o: serde_json::Map<String, Value> =
                    extra.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                o.insert("user_name".into(), json!(s));
                Value::Object(o)
            })
            .collect();
        for array in [json!(items), Value::Array(objects)] {
            let real = serde_json::to_vec(&json!({"app_id": "a", "user_name_ls": array})).unwrap();
            let as_text = serde_json::to_vec(&json!({"app_id": "a", "user_name_ls": canonical_json(&array)})).unwrap();
            let a = Params::from_json_bytes(&real).unwrap();
            let b = Params::from_json_bytes(&as_text).unwrap();
            prop_assert_eq!(text_of(&a), text_of(&b));
            // The canonical JSON is a fixed point and parses back to the array.
            let c = canonical_json(&array);
            let back: Value = serde_json::from_str(&c).unwrap();
            prop_assert_eq!(&back, &array);
            prop_assert_eq!(canonical_json(&back), c);
        }
        let list = jidgate::fields::parse_string_list(&canonical_json(&json!(items)), "ls", 8).unwrap();
        prop_assert_eq!(list, items);
    }
}
