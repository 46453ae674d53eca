//! `/openapi.json`: the OpenAPI 3.1 document of the register API, made
//! from the descriptions beside the handlers (utoipa) and checked against
//! the router's routes, so that it cannot drift from them.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::{InfoBuilder, OpenApi as Document};

use crate::{accounts, binding, captcha};

/// The document: every domain's part, and the binding aliases.
pub fn document() -> Document {
    let mut doc = captcha::ApiDoc::openapi();
    doc.merge(accounts::ApiDoc::openapi());
    doc.merge(binding::ApiDoc::openapi());
    for (alias, of) in binding::ALIASES {
        let mut item = doc.paths.paths[of].clone();
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            op.operation_id = op.operation_id.as_ref().map(|id| format!("{id}_alias"));
            op.summary = Some(format!("Alias of {of}"));
        }
        doc.paths.paths.insert(alias.to_owned(), item);
    }
    // GET and POST of a path share a handler, and so its operation id: the
    // GET's gets a suffix, as operation ids must be unique.
    for item in doc.paths.paths.values_mut() {
        if let Some(op) = &mut item.get {
            op.operation_id = op.operation_id.as_ref().map(|id| format!("{id}_get"));
        }
    }
    doc.info = InfoBuilder::new()
        .title("jidgate register API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Accounts with matching XMPP identities, bindings, tokens. Every endpoint \
             takes its parameters from a GET query, a POST form or a POST JSON object, \
             signs them (docs/signing.md) and answers a JSON object with `result` and \
             `sign` (docs/api.md).",
        ))
        .build();
    doc
}

static JSON: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
});

/// `GET /openapi.json`.
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let routes: BTreeSet<&str> = super::super::router::api_routes()
            .paths()
            .iter()
            .copied()
            .collect();
        let doc = document();
        let described: BTreeSet<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        let undescribed: Vec<_> = routes.difference(&described).collect();
        let unrouted: Vec<_> = described.difference(&routes).collect();
        assert!(
            undescribed.is_empty(),
            "routes without a description: {undescribed:?}"
        );
        assert!(
            unrouted.is_empty(),
            "described but not routed: {unrouted:?}"
        );
        let mut ids = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post] {
                let op = op
                    .as_ref()
                    .unwrap_or_else(|| panic!("{path}: GET and POST"));
                assert!(
                    op.summary.as_deref().is_some_and(|s| !s.is_empty()),
                    "{path} has no summary"
                );
                assert!(!op.responses.responses.is_empty(), "{path}: no answers");
                let id = op.operation_id.clone().expect("an operation id");
                assert!(ids.insert(id.clone()), "operation id {id} twice");
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let v: serde_json::Value = serde_json::from_str(&JSON).unwrap();
        assert_eq!(v["openapi"], "3.1.0");
        let register = &v["paths"]["/register"]["post"];
        let names: Vec<&str> = register["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "app_id",
            "ts",
            "nonce",
            "param_sign",
            "user_name",
            "password",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }
}
