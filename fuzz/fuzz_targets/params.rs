//! The request parameter extractor: a query string, a form body or a JSON
//! body (first byte chooses) into the canonical signing text. Never panics;
//! whatever it accepts has a canonical text that, read back as a form,
//! gives the same parameters and the same text.

#![no_main]

use jidgate::params::Params;
use jidgate::signing::{canonical_request, canonical_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut params = Params::default();
    let parsed = match how % 3 {
        0 => params.parse_form(rest),
        1 => params.parse_json(rest),
        _ => {
            // A query, then a form body after the first NUL.
            let at = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            params
                .parse_form(&rest[..at])
                .and_then(|()| params.parse_form(rest.get(at + 1..).unwrap_or(&[])))
        }
    };
    if parsed.is_err() {
        return;
    }
    let text = canonical_request(params.iter());
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)),
        "{text}"
    );
    let mut again = Params::default();
    again
        .parse_form(text.as_bytes())
        .expect("a canonical text parses back");
    let back: Vec<(&str, &str)> = again.iter().collect();
    let before: Vec<(&str, &str)> = params.iter().filter(|(k, _)| *k != "param_sign").collect();
    assert_eq!(back, before);
    assert_eq!(canonical_request(again.iter()), text);
    let full = canonical_text("/login", params.iter());
    assert_eq!(full, format!("/login\n{text}"));
});
