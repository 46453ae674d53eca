//! The pieces of the OpenAPI document every endpoint shares: the signing
//! parameters and the answer's envelope (docs/api.md, docs/signing.md).
//! The endpoints' own descriptions are beside their handlers.

use utoipa::{IntoParams, ToSchema};

/// The parameters of every signed request (docs/signing.md). They may
/// also be sent as a POST form or a JSON object, like every parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Signing {
    /// The app (or device product) that signs the request.
    pub app_id: String,
    /// Unix seconds; within `signing.window` of the server's clock.
    pub ts: i64,
    /// 16–64 characters, never used twice.
    pub nonce: String,
    /// Lower-case hex HMAC-SHA256 of the canonical text of the request
    /// (path and every other parameter), with the app's key or, for a
    /// device, the key derived from its `user_name`.
    pub param_sign: String,
}

/// An answer: always a JSON object with `result`; its other members are
/// the endpoint's (docs/api.md).
#[derive(ToSchema)]
pub struct Answer {
    /// 0 on success, else an error code (docs/api.md, Error codes).
    pub result: i64,
    /// A short English text when `result` is not 0.
    pub error: Option<String>,
    /// HMAC-SHA256 of the answer's canonical JSON with the request's key;
    /// empty when no key could be established.
    pub sign: String,
    /// The request's nonce, echoed in every signed answer.
    pub nonce: Option<String>,
    /// Seconds to wait, with codes 9 and 13.
    pub retry_after: Option<u64>,
}
