//! The facade's frame parser and its deflate path (`src/facade/codec.rs`,
//! `src/facade/envelope.rs`): a WebSocket frame, text or (`?usezlib=1`)
//! binary raw deflate, becomes a request or an error reply, as the session
//! reads it (`Codec::decode`, then `envelope::parse`). The first byte
//! chooses what the rest is:
//!
//! - `z`: a binary frame of any bytes (`usezlib=1`): inflated at most to
//!   the limit, or refused with 5004 / 5005; what inflates is read again
//!   as a text frame and deflated again: the same outcome each time.
//! - `l`: the second byte sets a small `max_frame_bytes` (1–511), the rest
//!   is a request as in the default case (the limit's edge).
//! - `b`: a bomb: the rest (a pattern) repeated past the limit and
//!   deflated, and a frame about 1,000 times smaller than the 3 GiB it
//!   inflates to: both refused with 5004 without inflating more than the
//!   limit (an unbounded inflate would pass libFuzzer's 2 GiB malloc/RSS
//!   limit and count as a crash).
//! - `w`: a frame of the wrong kind (text with `usezlib=1`, binary
//!   without): 5005.
//! - anything else: the rest is a request sent as a text frame and as a
//!   deflated binary frame: both paths give the same outcome.
//!
//! Every outcome is checked against a model of `docs/facade.md`'s rules
//! (5004 over the limit; 5001 not JSON / not an object / `func` not a
//! string; 5003 `parm` not an object; otherwise the request), with `cdata`
//! as written in the frame (`null` when unreadable); and every reply is
//! valid JSON carrying that `cdata` unchanged.

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::ws::Message;
use flate2::{Compress, Compression, FlushCompress, Status};
use jidgate::facade::codec::{Codec, Incoming, deflate};
use jidgate::facade::envelope::{self, Failure, errno};
use libfuzzer_sys::fuzz_target;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// `facade.max_frame_bytes`' default.
const DEFAULT_MAX: usize = 65_536;

/// What a frame came to: a request (func, parm, cdata) or a failure and
/// the `cdata` of its reply.
#[derive(Debug, PartialEq)]
enum Outcome {
    Request(String, Map<String, Value>, Value),
    Refused(Failure, Value),
}

/// The session's path: decode, then parse.
fn read(codec: Codec, frame: Message) -> Outcome {
    match codec.decode(frame) {
        Ok(Incoming::Data(bytes)) => {
            assert!(
                bytes.len() <= codec.max_frame,
                "{} bytes let through with a limit of {}",
                bytes.len(),
                codec.max_frame
            );
            match envelope::parse(&bytes) {
                Ok(r) => Outcome::Request(r.func, r.parm, r.cdata),
                Err((f, cdata)) => Outcome::Refused(f, cdata),
            }
        }
        Ok(_) => panic!("a data frame read as a control frame"),
        Err(f) => Outcome::Refused(f, Value::Null),
    }
}

fn text(json: &str, max_frame: usize) -> Outcome {
    let codec = Codec {
        zlib: false,
        max_frame,
    };
    read(codec, Message::Text(json.into()))
}

fn binary(bytes: impl Into<Bytes>, max_frame: usize) -> Outcome {
    let codec = Codec {
        zlib: true,
        max_frame,
    };
    read(codec, Message::Binary(bytes.into()))
}

/// JSON as written: serde_json's `Value` reader, with the `raw_value`
/// feature jidgate enables, reads `{"$serde_json::private::RawValue":
/// "<json>"}` as `<json>`; a client's `cdata` must come back as sent.
fn literal(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Plain.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Plain;

impl<'de> DeserializeSeed<'de> for Plain {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(Plain)
    }
}

impl<'de> Visitor<'de> for Plain {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Plain)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            members.insert(key, map.next_value_seed(Plain)?);
        }
        Ok(Value::Object(members))
    }
}

/// The documented errno (and `cdata`) for these inflated bytes, or the
/// request; independent of `envelope::parse`.
fn model(data: &[u8], max_frame: usize) -> (Option<i64>, Value) {
    if data.len() > max_frame {
        return (Some(errno::TOO_LARGE), Value::Null);
    }
    let Ok(Value::Object(obj)) = literal(data) else {
        return (Some(errno::BAD_FRAME), Value::Null);
    };
    let cdata = obj.get("cdata").cloned().unwrap_or(Value::Null);
    if !matches!(obj.get("func"), Some(Value::String(_))) {
        return (Some(errno::BAD_FRAME), cdata);
    }
    match obj.get("parm") {
        None | Some(Value::Null) | Some(Value::Object(_)) => (None, cdata),
        Some(_) => (Some(errno::BAD_PARM), cdata),
    }
}

/// The outcome agrees with the model, and its reply is valid JSON that
/// carries `cdata` unchanged.
fn check(outcome: &Outcome, data: &[u8], max_frame: usize) {
    let (want_errno, want_cdata) = model(data, max_frame);
    let (cdata, result) = match outcome {
        Outcome::Request(func, parm, cdata) => {
            assert_eq!(want_errno, None, "accepted a frame the model refuses");
            let Ok(Value::Object(obj)) = literal(data) else {
                panic!("accepted a frame that is not a JSON object");
            };
            assert_eq!(obj.get("func").and_then(Value::as_str), Some(func.as_str()));
            match obj.get("parm") {
                Some(Value::Object(p)) => assert_eq!(p, parm),
                _ => assert!(parm.is_empty()),
            }
            (cdata, Ok(Value::Object(parm.clone())))
        }
        Outcome::Refused(f, cdata) => {
            assert_eq!(want_errno, Some(f.errno), "errno {} ({})", f.errno, f.error);
            (cdata, Err(f.clone()))
        }
    };
    assert_eq!(cdata, &want_cdata, "cdata not the frame's");
    let (errno_sent, error_sent) = match &result {
        Ok(_) => (errno::OK, "ok".to_owned()),
        Err(f) => (f.errno, f.error.clone()),
    };
    let ok = result.is_ok();
    let reply = envelope::reply(cdata.clone(), result);
    let Ok(Value::Object(r)) = literal(reply.as_bytes()) else {
        panic!("the reply is not a JSON object: {reply}");
    };
    assert_eq!(r.len(), 5, "{reply}");
    assert_eq!(r["push"], Value::Bool(false));
    assert_eq!(r["errno"], Value::from(errno_sent));
    assert_eq!(r["error"], Value::String(error_sent));
    assert_eq!(&r["cdata"], cdata, "cdata changed on its way back: {reply}");
    if !ok {
        assert_eq!(r["result"], Value::Null);
    }
}

/// Both paths on the same JSON: the text frame and its deflated binary
/// frame give the same outcome, the one the model gives.
fn both_paths(data: &[u8], max_frame: usize) {
    let by_deflate = binary(compress(data), max_frame);
    check(&by_deflate, data, max_frame);
    // A text frame is UTF-8 (the WebSocket layer refuses any other); the
    // same bytes deflated must then be refused as not JSON.
    match std::str::from_utf8(data) {
        Ok(json) => {
            let by_text = text(json, max_frame);
            check(&by_text, data, max_frame);
            assert_eq!(by_text, by_deflate, "text and deflate paths disagree");
        }
        Err(_) => {
            if data.len() <= max_frame {
                assert!(
                    matches!(&by_deflate, Outcome::Refused(f, Value::Null) if f.errno == errno::BAD_FRAME),
                    "non-UTF-8 bytes read as {by_deflate:?}"
                );
            }
        }
    }
}

/// Raw deflate, as `codec::deflate` but with one compressor reused (a new
/// one per input is most of the time of a run).
fn compress(data: &[u8]) -> Vec<u8> {
    thread_local! {
        static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    }
    DEFLATE.with_borrow_mut(|c| {
        c.reset();
        let mut out = Vec::with_capacity(data.len() + 64);
        loop {
            let read = c.total_in() as usize;
            let status = c
                .compress_vec(&data[read..], &mut out, FlushCompress::Finish)
                .expect("deflate");
            if status == Status::StreamEnd {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    })
}

/// A raw deflate stream that inflates to 3 GiB of spaces: one flushed
/// block of 1 MiB, repeated (each full flush resets the
/// window), then an empty final block.
fn big_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let input = vec![b' '; 1 << 20];
        let mut c = Compress::new(Compression::best(), false);
        let mut chunk = Vec::with_capacity(1 << 16);
        c.compress_vec(&input, &mut chunk, FlushCompress::Full)
            .expect("deflate");
        assert_eq!(c.total_in(), input.len() as u64, "chunk buffer too small");
        let mut bomb = Vec::with_capacity(chunk.len() * 3072 + 2);
        for _ in 0..3072 {
            bomb.extend_from_slice(&chunk);
        }
        // BFINAL=1, fixed Huffman, end of block.
        bomb.extend_from_slice(&[0x03, 0x00]);
        // One chunk is what it claims: 1 MiB of spaces.
        let mut one = chunk.clone();
        one.extend_from_slice(&[0x03, 0x00]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(&one[..]), &mut out)
            .expect("inflate one chunk");
        assert_eq!(out, input);
        bomb
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    match how {
        b'z' => {
            let codec = Codec {
                zlib: true,
                max_frame: DEFAULT_MAX,
            };
            match codec.decode(Message::Binary(Bytes::copy_from_slice(rest))) {
                Ok(Incoming::Data(inflated)) => {
                    assert!(inflated.len() <= DEFAULT_MAX, "inflated past the limit");
                    let outcome = match envelope::parse(&inflated) {
                        Ok(r) => Outcome::Request(r.func, r.parm, r.cdata),
                        Err((f, cdata)) => Outcome::Refused(f, cdata),
                    };
                    check(&outcome, &inflated, DEFAULT_MAX);
                    both_paths(&inflated, DEFAULT_MAX);
                }
                Ok(_) => panic!("a data frame read as a control frame"),
                Err(f) => assert!(
                    f.errno == errno::TOO_LARGE || f.errno == errno::BAD_COMPRESSION,
                    "errno {} for a binary frame",
                    f.errno
                ),
            }
        }
        b'l' => {
            let Some((&limit, json)) = rest.split_first() else {
                return;
            };
            both_paths(json, 1 + 2 * limit as usize);
        }
        b'b' => {
            let pattern = if rest.is_empty() {
                b" "
            } else {
                &rest[..rest.len().min(64)]
            };
            let max_frame = 1 + 4 * rest.len();
            let mut payload = Vec::with_capacity(max_frame + 4096 + pattern.len());
            while payload.len() <= max_frame + 4096 {
                payload.extend_from_slice(pattern);
            }
            let frame = deflate(&payload);
            let outcome = binary(frame, max_frame);
            assert!(
                matches!(&outcome, Outcome::Refused(f, Value::Null) if f.errno == errno::TOO_LARGE),
                "{} bytes inflated with a limit of {max_frame}: {outcome:?}",
                payload.len()
            );
            let outcome = binary(Bytes::from_static(big_bomb()), DEFAULT_MAX);
            assert!(
                matches!(&outcome, Outcome::Refused(f, Value::Null) if f.errno == errno::TOO_LARGE),
                "the 3 GiB bomb: {outcome:?}"
            );
        }
        b'w' => {
            let zlib = Codec {
                zlib: true,
                max_frame: DEFAULT_MAX,
            };
            let plain = Codec {
                zlib: false,
                max_frame: DEFAULT_MAX,
            };
            let wrong = [
                read(
                    zlib,
                    Message::Text(String::from_utf8_lossy(rest).into_owned().into()),
                ),
                read(plain, Message::Binary(rest.to_vec().into())),
                read(plain, Message::Binary(deflate(rest).into())),
            ];
            for outcome in wrong {
                assert!(
                    matches!(&outcome, Outcome::Refused(f, Value::Null) if f.errno == errno::BAD_COMPRESSION),
                    "a frame of the wrong kind: {outcome:?}"
                );
            }
        }
        _ => both_paths(rest, DEFAULT_MAX),
    }
});
