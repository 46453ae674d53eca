//! What anyone with a token may know of an account, looked up by name
//! (`/get_users` and the token service's `get_users`).

use serde::Serialize;
use tracing::instrument;

use crate::app::App;
use crate::db::{Account, UserType, account};
use crate::error::Error;

/// What anyone with a token may know of an account.
#[derive(Debug, Serialize)]
pub struct PublicUserInfo {
    pub user_name: String,
    pub des: String,
    pub jid: String,
    #[serde(rename = "type")]
    pub type_: UserType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

impl PublicUserInfo {
    pub fn of(app: &App, a: &Account) -> Result<PublicUserInfo, Error> {
        Ok(PublicUserInfo {
            user_name: a.user_name.clone(),
            des: a.des.clone(),
            jid: a.jid(app.domain())?.to_string(),
            type_: a.type_,
            device_type: a.device_type.clone(),
        })
    }
}

/// Public information of the named active accounts, and the names not found.
#[instrument(name = "lookup_users", skip_all, fields(names = names.len()), err(level = "debug"))]
pub async fn lookup_users(
    app: &App,
    names: &[String],
) -> Result<(Vec<PublicUserInfo>, Vec<String>), Error> {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match account::active_by_name(&app.db, name).await? {
            Some(a) => found.push(PublicUserInfo::of(app, &a)?),
            _ => unknown.push(name.clone()),
        }
    }
    Ok((found, unknown))
}
