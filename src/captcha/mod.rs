//! Image captchas: `/verify_code` answers a PNG and a captcha id (header
//! `X-Captcha-Id` and cookie `captcha_id`). An answer is checked once (right
//! or wrong, the captcha is used up), expires, and is case-insensitive.
//!
//! How hard: the `captcha` crate's presets (`captcha::by_name` with
//! `Difficulty::Hard`, and even `Medium`) were measured unreadable to a
//! person (docs/api.md, "How hard the captcha is"); the recipe below is the
//! hardest one tried that a person still read 18 times out of 20.
//!
//! The endpoint is in [`routes`]; this module draws captchas, reads the
//! `captcha_id` cookie and checks answers.

pub mod routes;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::crypto::ct_eq;
use crate::db::{self, Db};
use crate::error::Error;
use crate::params::Params;

pub use routes::{ApiDoc, router};

/// Characters drawn: none of the pairs a person confused in this font under
/// noise (0/o, 1/l/i, c/e, f/r/t, n/m, y/v, 3/8, 5/s, 7/2).
const CHARS: &[char] = &[
    'a', 'b', 'd', 'e', 'h', 'k', 'm', 'p', 's', 't', 'u', 'v', 'w', 'x', '2', '4', '6', '8',
];

/// Size of the image, as the crate's own presets draw it.
pub const WIDTH: u32 = 220;
pub const HEIGHT: u32 = 120;

/// Draws a captcha: (answer, PNG). Noise on a quarter of the pixels, a
/// horizontal wave, and small blots placed inside the picture (not, as
/// before, mostly outside the crop).
pub(crate) fn draw(length: u32) -> anyhow::Result<(String, Vec<u8>)> {
    use captcha::filters::{Dots, Noise, Wave};
    let mut c = captcha::Captcha::new();
    c.set_chars(CHARS)
        .add_chars(length)
        .apply_filter(Noise::new(0.25))
        .apply_filter(Wave::new(2.0, 16.0).horizontal())
        .view(WIDTH, HEIGHT)
        .apply_filter(Dots::new(4).min_radius(3).max_radius(5));
    let png = c
        .as_png()
        .ok_or_else(|| anyhow::anyhow!("captcha PNG encoding failed"))?;
    Ok((c.chars_as_string().to_lowercase(), png))
}

/// The `captcha_id` cookie, if the request carries one.
#[derive(Debug, Clone, Default)]
pub struct CaptchaCookie(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for CaptchaCookie {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<CaptchaCookie, Error> {
        let found = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == "captcha_id")
            .map(|(_, v)| v.to_owned());
        Ok(CaptchaCookie(found))
    }
}

/// Checks and uses up a captcha: the id from `captcha_id` (parameter, else
/// cookie), the answer from `verify_code`. Any failure is code 5.
pub async fn check(
    db: &Db,
    params: &Params,
    cookie: &CaptchaCookie,
    now: i64,
) -> Result<(), Error> {
    let answer = params.optional("verify_code").ok_or(Error::VerifyCode)?;
    let id = params
        .optional("captcha_id")
        .or(cookie.0.as_deref())
        .ok_or(Error::VerifyCode)?;
    if id.len() > 64 || answer.len() > 16 {
        return Err(Error::VerifyCode);
    }
    let Some(db::captcha::Captcha {
        answer: expected,
        expires_at,
    }) = db::captcha::take(db, id).await?
    else {
        return Err(Error::VerifyCode);
    };
    let given = answer.trim().to_lowercase();
    // Times are whole seconds: a captcha drawn during second t is good
    // through second t + ttl, so it lives at least `ttl` seconds (and less
    // than ttl + 1), never less, however close to the end of its second it
    // was drawn.
    if now > expires_at || !ct_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Error::VerifyCode);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_of_the_requested_length_and_size() {
        for length in [4, 5, 8] {
            let (answer, png) = draw(length).unwrap();
            assert_eq!(answer.chars().count(), length as usize);
            assert!(answer.chars().all(|c| CHARS.contains(&c)), "{answer}");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
            assert_eq!((width, height), (WIDTH, HEIGHT));
        }
    }
}
