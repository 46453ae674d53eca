//! Parameters from a GET query, a POST form or a POST JSON body, as an
//! extractor; and what an endpoint reads from them before anything else.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};

use crate::app::App;
use crate::error::Error;
use crate::params::Params;

impl FromRequest<App> for Params {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Params, Error> {
        let (parts, body) = req.into_parts();
        let mut params = Params::default();
        if let Some(query) = parts.uri.query() {
            params.parse_form(query.as_bytes())?;
        }
        if parts.method == Method::POST {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let bytes = axum::body::to_bytes(body, app.config.http.max_body_bytes)
                .await
                .map_err(|_| Error::Params("request body too large".into()))?;
            if !bytes.is_empty() {
                match content_type.as_str() {
                    "application/json" => params.parse_json(&bytes)?,
                    "application/x-www-form-urlencoded" | "" => params.parse_form(&bytes)?,
                    other => {
                        return Err(Error::Params(format!("unsupported content type {other:?}")));
                    }
                }
            }
        }
        Ok(params)
    }
}

/// An endpoint's own parameters, read from the request's [`Params`] (code 2
/// when malformed) before the caller's access token is checked
/// ([`super::Authed`]): a request with a bad list is told so whatever its
/// token.
pub trait FromParams: Sized {
    fn from_params(params: &Params, app: &App) -> Result<Self, Error>;
}

/// No parameters of its own.
impl FromParams for () {
    fn from_params(_: &Params, _: &App) -> Result<(), Error> {
        Ok(())
    }
}
