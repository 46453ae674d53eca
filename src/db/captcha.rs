//! The `captcha` table: the answer of each captcha handed out (lowercase),
//! until it is used or expires.

use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// A captcha's expected answer and expiry.
#[derive(Debug, Clone, FromRow)]
pub struct Captcha {
    pub answer: String,
    pub expires_at: i64,
}

pub async fn insert(db: &Db, id: &str, answer: &str, expires_at: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "insert into captcha (id, answer, expires_at) values ($1, $2, $3)",
    )
    .bind(id)
    .bind(answer)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes a captcha and returns it: each is checked once, right or wrong.
pub async fn take(db: &Db, id: &str) -> Result<Option<Captcha>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, Captcha>(
        "delete from captcha where id = $1 returning answer, expires_at",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?)
}

/// Deletes captchas that can no longer be answered (their last second,
/// `expires_at`, is over).
pub async fn prune(db: &Db, now: i64) -> Result<u64, Error> {
    let r = on_pool!(db, pool => sqlx::query("delete from captcha where expires_at < $1")
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(r)
}
