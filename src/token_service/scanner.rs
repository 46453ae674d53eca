//! The fast path of the token service: the members of a flat request line
//! (`{"seq":..,"cmd":"verify_access_token","access_token":".."}`, the shape
//! of every verification a client sends) found without a full JSON parse.
//! Anything unusual is left to serde_json.

/// The members of a flat request line, found without a full JSON parse.
#[derive(Debug, Default, PartialEq)]
pub struct Flat<'a> {
    pub seq: Option<&'a str>,
    pub cmd: Option<&'a str>,
    pub access_token: Option<&'a str>,
}

/// Reads a flat JSON object whose members are plain strings (printable
/// ASCII, no escapes) or numbers: the shape of every verification a client
/// sends. `None` for anything else, which the general JSON parser handles.
pub fn scan_flat(line: &[u8]) -> Option<Flat<'_>> {
    let b = line;
    let n = b.len();
    let mut i = 0;
    macro_rules! skip_ws {
        () => {
            while i < n && matches!(b[i], b' ' | b'\t' | b'\r') {
                i += 1;
            }
        };
    }
    // A plain string at `i`: its content's range, `i` after the quote.
    macro_rules! plain_string {
        () => {{
            if b.get(i) != Some(&b'"') {
                return None;
            }
            // One pass: find the closing quote, refuse escapes, control
            // characters and anything not ASCII.
            let start = i + 1;
            let mut end = start;
            loop {
                match *b.get(end)? {
                    b'"' => break,
                    b'\\' | 0..=0x1f | 0x7f..=0xff => return None,
                    _ => end += 1,
                }
            }
            i = end + 1;
            (start, end)
        }};
    }
    let mut flat = Flat::default();
    // Other members' names, to see one given twice (the general parser
    // refuses that line); more of them than this also go to that parser.
    let mut others = [(0usize, 0usize); 8];
    let mut n_others = 0;
    skip_ws!();
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    skip_ws!();
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            skip_ws!();
            let (ks, ke) = plain_string!();
            skip_ws!();
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            skip_ws!();
            let (vs, ve, quoted) = match *b.get(i)? {
                b'"' => {
                    let (s, e) = plain_string!();
                    (s - 1, e + 1, true)
                }
                c if c.is_ascii_digit() || c == b'-' => {
                    let s = i;
                    i = json_number_end(b, i)?;
                    (s, i, false)
                }
                _ => return None,
            };
            let key = &b[ks..ke];
            if !matches!(key, b"seq" | b"cmd" | b"access_token") {
                if n_others == others.len()
                    || others[..n_others].iter().any(|&(s, e)| &b[s..e] == key)
                {
                    return None;
                }
                others[n_others] = (ks, ke);
                n_others += 1;
            }
            let (slot, wants_string) = match key {
                b"seq" => (&mut flat.seq, None),
                b"cmd" => (&mut flat.cmd, Some(true)),
                b"access_token" => (&mut flat.access_token, Some(true)),
                _ => (&mut None, None),
            };
            if slot.is_some() {
                return None;
            }
            // Only ASCII was accepted, so these conversions cannot fail.
            *slot = Some(match wants_string {
                // seq: echoed as written, quotes included.
                None => std::str::from_utf8(&b[vs..ve]).ok()?,
                Some(_) if quoted => std::str::from_utf8(&b[vs + 1..ve - 1]).ok()?,
                Some(_) => return None,
            });
            skip_ws!();
            match *b.get(i)? {
                b',' => i += 1,
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    skip_ws!();
    if i != n || flat.seq.is_some_and(|s| s.len() > 64) {
        return None;
    }
    Some(flat)
}

/// The end of the JSON number starting at `i` (RFC 8259 grammar), or
/// `None` for a number left to the general path: one with an exponent or
/// longer than [`MAX_NUMBER_BYTES`], which serde_json may refuse as out of
/// range (`-0.5e2222…`, found by the `token_line` fuzz target: the scanner
/// accepted a line the general path refuses).
fn json_number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            digits(&mut i);
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) || i - start > MAX_NUMBER_BYTES {
        return None;
    }
    Some(i)
}

/// Longest number the scanner reads itself: any plain decimal this long is
/// a finite `f64`, as serde_json requires.
const MAX_NUMBER_BYTES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_lines_are_scanned_like_json() {
        let f = scan_flat(
            br#" {"seq": 12, "cmd":"verify_access_token","access_token":"jgt_x","x":-1.5} "#,
        )
        .unwrap();
        assert_eq!(f.seq, Some("12"));
        assert_eq!(f.cmd, Some("verify_access_token"));
        assert_eq!(f.access_token, Some("jgt_x"));
        let f = scan_flat(br#"{"seq":"a-1","cmd":"ping"}"#).unwrap();
        assert_eq!(f.seq, Some("\"a-1\""));
        assert_eq!(scan_flat(b"{}").unwrap(), Flat::default());
        // Anything unusual goes to the full parser.
        for other in [
            &br#"{"seq":1,"cmd":"v\u0065rify"}"#[..],
            br#"{"seq":{"a":1}}"#,
            br#"{"seq":1,"seq":2}"#,
            br#"{"cmd":1}"#,
            br#"{"seq":true}"#,
            br#"{"a":"b"} x"#,
            br#"{"a":"b",}"#,
            br#"{"a":"b""#,
            br#"{"seq":1-2}"#,
            br#"{"seq":01}"#,
            br#"{"seq":1.}"#,
            // Left to serde_json, which refuses numbers out of range.
            br#"{"cmd":"verify_access_token","access_token":"t","x":1e5}"#,
            br#"{"cmd":"verify_access_token","access_token":"t","x":-0.5e2222222}"#,
            br#"{"x":-}"#,
            b"[1]",
            "{\"cmd\":\"é\"}".as_bytes(),
        ] {
            assert_eq!(scan_flat(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn repeated_members_leave_the_fast_path() {
        for line in [
            &br#"{"seq":1,"cmd":"verify_access_token","access_token":"t","x":1,"x":2}"#[..],
            br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#,
        ] {
            assert_eq!(scan_flat(line), None, "{}", String::from_utf8_lossy(line));
        }
        let f = scan_flat(br#"{"seq":1,"x":1,"y":2,"cmd":"ping"}"#).unwrap();
        assert_eq!(f.cmd, Some("ping"));
    }
}
