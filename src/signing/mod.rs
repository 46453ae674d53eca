//! Request and response signatures (`docs/signing.md`): the canonical
//! texts ([`canonical`]) and the keys that sign them ([`keys`]).
//!
//!
//! - Canonical request text: the request path exactly as the request names
//!   it (`/get_bind_code`), a line feed, then every parameter but
//!   `param_sign`, sorted by name (bytewise), each `name=value` with RFC 3986
//!   percent-encoding of both, joined by `&`. The token service's hello has
//!   no path: its text is the parameter line alone (it covers `cmd=hello`);
//!   it can never equal a request's text, which always has a line feed.
//! - `param_sign` = lowercase hex HMAC-SHA256(key, canonical text).
//! - Key: an app's secret (its UTF-8 bytes); for a device product, the
//!   device's own key HMAC-SHA256(product secret, user_name) (32 raw bytes).
//! - Requests carry `app_id`, `ts` (unix seconds, ±window) and `nonce`
//!   (8–64 of `A-Z a-z 0-9 _ -`, never reused within the window).
//! - Response `sign` = HMAC-SHA256(same key, canonical JSON of the response
//!   without `sign`: keys sorted, no whitespace). Every signed answer
//!   carries the request's `nonce`, so an answer is bound to its request.

pub mod canonical;
pub mod keys;
#[cfg(test)]
mod vectors;

pub use canonical::{canonical_json, canonical_request, canonical_text, encode};
pub use keys::{AppEntry, Keyring, SigningKey, Verified, valid_nonce};
