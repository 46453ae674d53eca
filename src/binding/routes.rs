//! The binding endpoints (the seed's spellings and the correct ones):
//! `/get_bind_code`, `/set_user_banding` (`/set_user_binding`),
//! `/set_user_unbanding` (`/set_user_unbinding`), `/get_user_banding`
//! (`/get_user_binding`). Each is made with the caller's own token
//! ([`Authed`]) and names the caller in `user_name`.

use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::{codes, pair, view};
use crate::api::doc::{Answer, Signing};
use crate::api::{Authed, ClientIp, FromParams, Reply, Routes};
use crate::app::App;
use crate::config::BindProof;
use crate::error::{Error, Outcome};
use crate::fields::{UserName, parse_name_list, parse_string_list};
use crate::params::Params;

pub fn router() -> Routes {
    Routes::new()
        .route("/get_bind_code", get(get_bind_code).post(get_bind_code))
        .route("/set_user_banding", get(set_binding).post(set_binding))
        .route("/set_user_binding", get(set_binding).post(set_binding))
        .route(
            "/set_user_unbanding",
            get(set_unbinding).post(set_unbinding),
        )
        .route(
            "/set_user_unbinding",
            get(set_unbinding).post(set_unbinding),
        )
        .route("/get_user_banding", get(get_binding).post(get_binding))
        .route("/get_user_binding", get(get_binding).post(get_binding))
}

/// The correct spellings of the seed's paths: each answers exactly as the
/// path it is an alias of, and is described as such in the OpenAPI document.
pub const ALIASES: [(&str, &str); 3] = [
    ("/set_user_binding", "/set_user_banding"),
    ("/set_user_unbinding", "/set_user_unbanding"),
    ("/get_user_binding", "/get_user_banding"),
];

/// The binding endpoints' part of the OpenAPI document (without
/// [`ALIASES`], which `server::openapi` adds).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_bind_code, set_binding, set_unbinding, get_binding))]
pub struct ApiDoc;

/// Every binding call names its caller: `user_name`, well-formed.
fn named(p: &Params) -> Result<(), Error> {
    UserName::parse_any(p.required("user_name")?)?;
    Ok(())
}

/// The caller, named in `user_name`.
struct Caller;

impl FromParams for Caller {
    fn from_params(p: &Params, _: &App) -> Result<Caller, Error> {
        named(p)?;
        Ok(Caller)
    }
}

/// The devices of a `/set_user_banding`, each with its bind code (when
/// `binding.proof` asks for them).
struct BindList(Vec<(String, Option<String>)>);

impl FromParams for BindList {
    fn from_params(p: &Params, app: &App) -> Result<BindList, Error> {
        let max = app.config.binding.max_names;
        let names = parse_name_list(p.required("user_name_ls")?, max)?;
        let codes: Vec<Option<String>> = match app.config.binding.proof {
            BindProof::BindCode => {
                let codes = parse_string_list(p.required("bind_code_ls")?, "bind_code_ls", max)?;
                if codes.len() != names.len() {
                    return Err(Error::Params(
                        "bind_code_ls must have one code per name in user_name_ls".into(),
                    ));
                }
                codes.into_iter().map(Some).collect()
            }
            BindProof::None => vec![None; names.len()],
        };
        named(p)?;
        Ok(BindList(names.into_iter().zip(codes).collect()))
    }
}

/// The accounts of a `/set_user_unbanding`.
struct NameList(Vec<String>);

impl FromParams for NameList {
    fn from_params(p: &Params, app: &App) -> Result<NameList, Error> {
        let names = parse_name_list(p.required("user_name_ls")?, app.config.binding.max_names)?;
        named(p)?;
        Ok(NameList(names))
    }
}

/// A fresh bind code for a device, to show its owner (e.g. as a QR code).
///
/// Signed with the device's own key, with the device's token.
#[utoipa::path(
    method(get, post),
    path = "/get_bind_code",
    tag = "binding",
    params(
        Signing,
        ("user_name" = String, Query, description = "The device"),
        ("access_token" = String, Query, description = "The caller's own access token"),
    ),
    responses((status = 200, description = "`bind_code`, `expires_in`, `expires_at`, `bind_uri`; codes 0, 4, 9, 100, 106", body = Answer))
)]
async fn get_bind_code(State(app): State<App>, authed: Authed<Caller>) -> Result<Reply, Error> {
    let device = authed.account(&app).await?;
    let code = codes::issue(&app, &device).await?;
    Ok(Reply::ok().merge(&code))
}

/// One name's outcome in a list call.
#[derive(Debug, Serialize)]
pub struct ItemResult {
    pub user_name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ItemResult {
    fn of(name: &str, r: &Result<(), Error>) -> ItemResult {
        if let Err(e @ (Error::Db(_) | Error::Internal(_))) = r {
            tracing::error!(error = ?e, "binding item failed");
        }
        ItemResult {
            user_name: name.to_owned(),
            outcome: Outcome::of(r),
        }
    }
}

/// `result` of a list call: 0 if every item succeeded, else the first
/// failing item's code; `result_ls` has every item, in the order asked.
fn list_reply<'a>(results: impl IntoIterator<Item = (&'a str, Result<(), Error>)>) -> Reply {
    let items: Vec<ItemResult> = results
        .into_iter()
        .map(|(name, r)| ItemResult::of(name, &r))
        .collect();
    let overall = items
        .iter()
        .map(|i| i.outcome.result)
        .find(|c| *c != 0)
        .unwrap_or(0);
    Reply::with_result(overall).field("result_ls", items)
}

/// Binds devices to the caller (a phone or WeChat user): a two-sided
/// roster subscription per device. Alias: `/set_user_binding`.
#[utoipa::path(
    method(get, post),
    path = "/set_user_banding",
    tag = "binding",
    params(
        Signing,
        ("user_name" = String, Query, description = "The phone or WeChat user"),
        ("access_token" = String, Query, description = "The caller's own access token"),
        ("user_name_ls" = String, Query, description = "JSON array of device names, no repeats"),
        ("bind_code_ls" = Option<String>, Query, description = "JSON array of the devices' bind codes, aligned with `user_name_ls` (unless `binding.proof = \"none\"`)"),
    ),
    responses((status = 200, description = "`result_ls` per device; codes 0, 2, 4, 100, 106; items 9, 100, 104, 105, 108, 109, 111, 112", body = Answer))
)]
async fn set_binding(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    authed: Authed<BindList>,
) -> Result<Reply, Error> {
    let owner = authed.account(&app).await?;
    if owner.is_device() {
        return Err(Error::NotPermitted("devices do not bind; their owners do"));
    }
    let BindList(items) = &authed.request;
    let results = pair::bind_all(&app, ip, &owner, items).await;
    Ok(list_reply(
        items.iter().map(|(name, _)| name.as_str()).zip(results),
    ))
}

/// Dissolves bindings of the caller (owner or device), both sides.
/// Alias: `/set_user_unbinding`.
#[utoipa::path(
    method(get, post),
    path = "/set_user_unbanding",
    tag = "binding",
    params(
        Signing,
        ("user_name" = String, Query, description = "The caller"),
        ("access_token" = String, Query, description = "The caller's own access token"),
        ("user_name_ls" = String, Query, description = "JSON array of the other sides' names, no repeats"),
    ),
    responses((status = 200, description = "`result_ls` per name; codes 0, 2, 4, 106; items 104, 110, 112", body = Answer))
)]
async fn set_unbinding(State(app): State<App>, authed: Authed<NameList>) -> Result<Reply, Error> {
    let me = authed.account(&app).await?;
    let NameList(names) = &authed.request;
    let results = pair::unbind_all(&app, &me, names).await;
    Ok(list_reply(names.iter().map(String::as_str).zip(results)))
}

/// The caller's roster beside the database. Each call logs in to the XMPP
/// server as the caller: `rate_limits.get_user_banding_per_account_per_minute`.
#[utoipa::path(
    method(get, post),
    path = "/get_user_banding",
    tag = "binding",
    params(
        Signing,
        ("user_name" = String, Query, description = "The caller"),
        ("access_token" = String, Query, description = "The caller's own access token"),
    ),
    responses((status = 200, description = "`roster_item`, `consistent`, `drift_ls`; codes 0, 4, 9, 106, 112. Alias: `/get_user_binding`", body = Answer))
)]
async fn get_binding(State(app): State<App>, authed: Authed<Caller>) -> Result<Reply, Error> {
    let me = authed.account(&app).await?;
    app.limits.roster_read.check(&me.id).await?;
    Ok(Reply::ok().merge(&view::of(&app, &me).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_result_is_the_first_failure() {
        let r = list_reply([
            ("a", Ok(())),
            ("b", Err(Error::AlreadyBound)),
            ("c", Err(Error::UnknownUser)),
        ])
        .into_map();
        assert_eq!(r["result"], 109);
        assert_eq!(r["result_ls"][2]["result"], 104);
        assert_eq!(r["result_ls"][0]["result"], 0);
        assert_eq!(r["result_ls"][1]["user_name"], "b");
    }
}
