//! The register API's HTTP envelope, shared by every endpoint: parameters
//! from a GET query, a POST form or a POST JSON body ([`params`]); signed
//! requests ([`signed`]) and requests made with the caller's own token
//! ([`authed`]); answers, their signature and the failures logged once
//! ([`answer`]); the client's address ([`client_ip`]); a span per request
//! ([`trace`]); routes with their paths listed ([`routes`]) and the shared
//! parts of the OpenAPI document ([`doc`]). It knows no
//! endpoint: the domains' routes use it.

pub mod answer;
pub mod authed;
pub mod client_ip;
pub mod doc;
pub mod params;
pub mod routes;
pub mod signed;
pub mod trace;

pub use answer::{ApiBody, FailureDetail, KeySlot, Reply, finish_answers};
pub use authed::Authed;
pub use client_ip::{ClientIp, client_addr};
pub use params::FromParams;
pub use routes::Routes;
pub use signed::Signed;
