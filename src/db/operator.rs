//! The `operator` and `operator_session` tables: console operators (not API
//! users), their failed logins, and their console sessions (the cookie's
//! token stored only as its SHA-256).

use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// An operator.
#[derive(Debug, Clone, FromRow)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
    pub failed_logins: i64,
}

/// A console session, found by its token.
#[derive(Debug, Clone, FromRow)]
pub struct OperatorSession {
    pub operator_id: i64,
    pub name: String,
    pub csrf: String,
    pub last_seen: i64,
}

/// Adds an operator; a taken name is [`Error::UserExists`].
pub async fn insert(db: &Db, name: &str, password_hash: &str, now: i64) -> Result<i64, Error> {
    let r = on_pool!(db, pool => sqlx::query_scalar(
        "insert into operator (name, password_hash, created_at) values ($1, $2, $3) \
         on conflict (name) do nothing returning id",
    )
    .bind(name)
    .bind(password_hash)
    .bind(now)
    .fetch_optional(pool)
    .await)?;
    r.ok_or(Error::UserExists)
}

/// Replaces an operator's password hash; false if there is no such operator.
pub async fn set_password(db: &Db, name: &str, password_hash: &str) -> Result<bool, Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "update operator set password_hash = $1, failed_logins = 0 where name = $2",
    )
    .bind(password_hash)
    .bind(name)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

pub async fn by_name(db: &Db, name: &str) -> Result<Option<Operator>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, Operator>(
        "select id, name, password_hash, failed_logins from operator where name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await)?)
}

/// Counts a failed login of `name` (if it exists).
pub async fn record_failure(db: &Db, name: &str) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "update operator set failed_logins = failed_logins + 1 where name = $1",
    )
    .bind(name)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Opens a session for operator `id` after a successful login (which
/// clears the failed logins).
pub async fn open_session(
    db: &Db,
    id: i64,
    token_hash: &[u8],
    csrf: &str,
    now: i64,
) -> Result<(), Error> {
    on_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        sqlx::query("update operator set failed_logins = 0 where id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into operator_session (token_hash, operator_id, csrf, created_at, last_seen) \
             values ($1, $2, $3, $4, $4)",
        )
        .bind(token_hash)
        .bind(id)
        .bind(csrf)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, Error>(())
    }
    .await)
}

/// The session of a token that was seen after `idle_since`, marked seen at
/// `now`; an idle session is deleted and not returned.
pub async fn touch_session(
    db: &Db,
    token_hash: &[u8],
    idle_since: i64,
    now: i64,
) -> Result<Option<OperatorSession>, Error> {
    on_pool!(db, pool => sqlx::query(
        "delete from operator_session where last_seen < $1",
    )
    .bind(idle_since)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(on_pool!(db, pool => sqlx::query_as::<_, OperatorSession>(
        "update operator_session set last_seen = $1 where token_hash = $2 \
         returning operator_id, (select name from operator where operator.id = operator_id) \
         as name, csrf, last_seen",
    )
    .bind(now)
    .bind(token_hash)
    .fetch_optional(pool)
    .await)?)
}

/// Ends a session.
pub async fn end_session(db: &Db, token_hash: &[u8]) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("delete from operator_session where token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
