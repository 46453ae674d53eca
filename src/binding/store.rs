//! SQL for `binding` and `bind_code`.

use sqlx::FromRow;

use crate::db::Db;
use crate::error::Error;

/// A binding row: `owner` (phone or WeChat user) bound to `device`.
#[derive(Debug, Clone, FromRow)]
pub struct Binding {
    pub id: i64,
    pub owner_id: i64,
    pub device_id: i64,
    pub state: String,
    pub updated_at: i64,
}

/// `select <every column> from binding <tail>`, as a static string.
macro_rules! select_binding {
    ($tail:literal) => {
        concat!(
            "select id, owner_id, device_id, state, updated_at from binding ",
            $tail
        )
    };
}

/// The binding of a pair, in any state.
pub async fn of_pair(db: &Db, owner_id: i64, device_id: i64) -> Result<Option<Binding>, Error> {
    Ok(
        sqlx::query_as::<_, Binding>(select_binding!("where owner_id = ? and device_id = ?"))
            .bind(owner_id)
            .bind(device_id)
            .fetch_optional(db)
            .await?,
    )
}

/// Starts binding a pair: a new row in state `binding`, or a stale pending
/// row taken over. An already bound pair is 109.
pub async fn begin_binding(db: &Db, owner_id: i64, device_id: i64, now: i64) -> Result<i64, Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "insert into binding (owner_id, device_id, state, created_at, updated_at) \
         values (?, ?, 'binding', ?, ?) \
         on conflict (owner_id, device_id) do update set state = 'binding', updated_at = excluded.updated_at \
         where binding.state <> 'bound' returning id",
    )
    .bind(owner_id)
    .bind(device_id)
    .bind(now)
    .bind(now)
    .fetch_optional(db)
    .await?;
    row.map(|r| r.0).ok_or(Error::AlreadyBound)
}

/// Moves a binding from one state to another; false if it was not in `from`.
pub async fn transition(db: &Db, id: i64, from: &str, to: &str, now: i64) -> Result<bool, Error> {
    let r = sqlx::query("update binding set state = ?, updated_at = ? where id = ? and state = ?")
        .bind(to)
        .bind(now)
        .bind(id)
        .bind(from)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks a binding `unbinding`, whatever its state.
pub async fn mark_unbinding(db: &Db, id: i64, now: i64) -> Result<(), Error> {
    sqlx::query("update binding set state = 'unbinding', updated_at = ? where id = ?")
        .bind(now)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, id: i64) -> Result<(), Error> {
    sqlx::query("delete from binding where id = ?")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Every binding an account takes part in, either side, any state.
pub async fn of_account(db: &Db, account_id: i64) -> Result<Vec<Binding>, Error> {
    Ok(sqlx::query_as::<_, Binding>(select_binding!(
        "where owner_id = ? or device_id = ? order by id"
    ))
    .bind(account_id)
    .bind(account_id)
    .fetch_all(db)
    .await?)
}

/// Bindings in `state` last changed at or before `before`.
pub async fn in_state_before(db: &Db, state: &str, before: i64) -> Result<Vec<Binding>, Error> {
    Ok(sqlx::query_as::<_, Binding>(select_binding!(
        "where state = ? and updated_at <= ? order by id"
    ))
    .bind(state)
    .bind(before)
    .fetch_all(db)
    .await?)
}

/// Bound pairs with an id above `after`, at most `limit`, by id.
pub async fn bound_page(db: &Db, after: i64, limit: i64) -> Result<Vec<Binding>, Error> {
    Ok(sqlx::query_as::<_, Binding>(select_binding!(
        "where state = 'bound' and id > ? order by id limit ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Replaces a device's bind code.
pub async fn put_code(db: &Db, device_id: i64, hash: &[u8], expires_at: i64) -> Result<(), Error> {
    sqlx::query(
        "insert into bind_code (device_id, code_hash, expires_at, attempts) values (?, ?, ?, 0) \
         on conflict (device_id) do update set code_hash = excluded.code_hash, \
         expires_at = excluded.expires_at, attempts = 0",
    )
    .bind(device_id)
    .bind(hash)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// A device's current code: (hash, expiry, wrong attempts so far).
pub async fn get_code(db: &Db, device_id: i64) -> Result<Option<(Vec<u8>, i64, i64)>, Error> {
    Ok(
        sqlx::query_as("select code_hash, expires_at, attempts from bind_code where device_id = ?")
            .bind(device_id)
            .fetch_optional(db)
            .await?,
    )
}

/// Uses up a device's code, if it is still the one checked. False if a
/// concurrent request took it first.
pub async fn take_code(db: &Db, device_id: i64, hash: &[u8]) -> Result<bool, Error> {
    let r = sqlx::query("delete from bind_code where device_id = ? and code_hash = ?")
        .bind(device_id)
        .bind(hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Counts a wrong guess; the code is void after `max` of them.
pub async fn count_wrong_code(db: &Db, device_id: i64, max: i64) -> Result<(), Error> {
    sqlx::query("update bind_code set attempts = attempts + 1 where device_id = ?")
        .bind(device_id)
        .execute(db)
        .await?;
    sqlx::query("delete from bind_code where device_id = ? and attempts >= ?")
        .bind(device_id)
        .bind(max)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes expired bind codes.
pub async fn prune_codes(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from bind_code where expires_at <= ?")
        .bind(now)
        .execute(db)
        .await?
        .rows_affected())
}
