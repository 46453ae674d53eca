//! What the operator console reads about accounts: a search by user name,
//! JID or type, one account with its created time, and its sessions; and
//! the accounts an operator disabled (`account_disabled`).

use sqlx::FromRow;

use super::Db;
use super::account::{AccountState, UserType};
use crate::error::Error;

/// An account as the console lists it (no password hash, no JID password).
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub user_name: String,
    #[sqlx(rename = "type")]
    pub type_: UserType,
    pub device_type: Option<String>,
    pub des: String,
    pub jid_local: String,
    pub state: AccountState,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A session as the console lists it.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub app_id: String,
    pub app_kind: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// `select <the console's columns> from account <tail>`, as a static string.
macro_rules! select_row {
    ($tail:literal) => {
        concat!(
            "select id, user_name, type, device_type, des, jid_local, state, created_at, \
             updated_at from account ",
            $tail
        )
    };
}

/// `text` with the `like` wildcards escaped (the escape character is `\`).
fn like_prefix(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Accounts whose user name or JID localpart starts with `text` (a whole
/// JID is cut at its `@`), of type `type_` if given; at most `limit`, by id.
pub async fn search(
    db: &Db,
    text: &str,
    type_: Option<UserType>,
    limit: i64,
) -> Result<Vec<AccountRow>, Error> {
    let local = text.split('@').next().unwrap_or(text);
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, AccountRow>(select_row!(
        "where (user_name like $1 escape '\\' or jid_local like $2 escape '\\') \
         and (cast($3 as bigint) = 0 or type = cast($3 as bigint)) order by id limit $4"
    ))
        .bind(like_prefix(text))
        .bind(like_prefix(local))
        .bind(type_.map_or(0, UserType::code))
        .bind(limit)
        .fetch_all(pool)
        .await)?,
    )
}

pub async fn account(db: &Db, id: i64) -> Result<Option<AccountRow>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, AccountRow>(select_row!("where id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await)?,
    )
}

/// The account's sessions that have not expired at `now`.
pub async fn sessions(db: &Db, account_id: i64, now: i64) -> Result<Vec<SessionRow>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, SessionRow>(
        "select id, app_id, app_kind, created_at, expires_at from session \
         where account_id = $1 and expires_at > $2 order by id",
    )
    .bind(account_id)
    .bind(now)
    .fetch_all(pool)
    .await)?)
}

/// When (and by whom) an account was disabled, if it is.
pub async fn disabled(db: &Db, account_id: i64) -> Result<Option<(i64, String)>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as(
        "select disabled_at, operator from account_disabled where account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(pool)
    .await)?)
}

/// Marks an account disabled; false if it already was.
pub async fn disable(db: &Db, account_id: i64, operator: &str, now: i64) -> Result<bool, Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "insert into account_disabled (account_id, disabled_at, operator) values ($1, $2, $3) \
         on conflict (account_id) do nothing",
    )
    .bind(account_id)
    .bind(now)
    .bind(operator)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Enables an account again; false if it was not disabled.
pub async fn enable(db: &Db, account_id: i64) -> Result<bool, Error> {
    let r = on_pool!(db, pool => sqlx::query("delete from account_disabled where account_id = $1")
        .bind(account_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
