//! How frames travel: JSON text frames, or with `?usezlib=1` (seed 003)
//! binary frames of raw deflate (RFC 1951) compressed JSON, both ways.
//! Inflating stops at `facade.max_frame_bytes` (no decompression bombs).

use std::io::{Read, Write};

use axum::extract::ws::Message;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use super::envelope::{Failure, errno};

/// The frame format of one WebSocket.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    pub zlib: bool,
    pub max_frame: usize,
}

/// What a client frame is.
pub enum Incoming {
    /// A request's bytes (JSON, inflated).
    Data(Vec<u8>),
    /// Ping, pong: only proof of life.
    Control,
    Close,
}

impl Codec {
    /// The bytes of a client frame, or why it is refused.
    pub fn decode(&self, msg: Message) -> Result<Incoming, Failure> {
        let too_large = || {
            Failure::new(
                errno::TOO_LARGE,
                format!("frames are at most {} bytes", self.max_frame),
            )
        };
        let bad = |what: &str| Failure::new(errno::BAD_COMPRESSION, what.to_owned());
        match (msg, self.zlib) {
            (Message::Text(t), false) => {
                if t.len() > self.max_frame {
                    return Err(too_large());
                }
                Ok(Incoming::Data(t.as_bytes().to_vec()))
            }
            (Message::Binary(b), true) => {
                let mut out = Vec::new();
                let limit = self.max_frame as u64 + 1;
                DeflateDecoder::new(&b[..])
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(|_| bad("not raw deflate data"))?;
                if out.len() > self.max_frame {
                    return Err(too_large());
                }
                Ok(Incoming::Data(out))
            }
            (Message::Text(_), true) => Err(bad("usezlib=1: frames are binary deflate data")),
            (Message::Binary(_), false) => Err(bad("binary frames need usezlib=1")),
            (Message::Ping(_) | Message::Pong(_), _) => Ok(Incoming::Control),
            (Message::Close(_), _) => Ok(Incoming::Close),
        }
    }

    /// A frame for `json`.
    pub fn encode(&self, json: String) -> Message {
        if !self.zlib {
            return Message::Text(json.into());
        }
        Message::Binary(deflate(json.as_bytes()).into())
    }
}

/// Raw deflate.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::with_capacity(data.len() / 2 + 16), Compression::fast());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_frames_round_trip_and_bombs_stop_at_the_limit() {
        let codec = Codec {
            zlib: true,
            max_frame: 100,
        };
        let Message::Binary(b) = codec.encode("{\"func\":\"x\"}".into()) else {
            panic!("binary expected")
        };
        match codec.decode(Message::Binary(b)) {
            Ok(Incoming::Data(d)) => assert_eq!(d, b"{\"func\":\"x\"}"),
            _ => panic!("data expected"),
        }
        let bomb = deflate(&[b' '; 10_000]);
        let err = codec.decode(Message::Binary(bomb.into())).err().unwrap();
        assert_eq!(err.errno, errno::TOO_LARGE);
        let err = codec
            .decode(Message::Binary(vec![0xff, 0xff, 0x00].into()))
            .err()
            .unwrap();
        assert_eq!(err.errno, errno::BAD_COMPRESSION);
    }
}
