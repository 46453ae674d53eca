//! The `bind_code` table: the current one-time bind code of each device
//! (SHA-256 of the code), and how many guesses it has taken.

use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// A device's bind code, as a guess sees it.
#[derive(Debug, Clone, FromRow)]
pub struct BindCode {
    pub code_hash: Vec<u8>,
    pub expires_at: i64,
    /// Guesses so far, this one included.
    pub attempts: i64,
}

/// Replaces a device's bind code (its guesses start again from zero).
pub async fn put(db: &Db, device_id: i64, hash: &[u8], expires_at: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "insert into bind_code (device_id, code_hash, expires_at, attempts) values ($1, $2, $3, 0) \
         on conflict (device_id) do update set code_hash = excluded.code_hash, \
         expires_at = excluded.expires_at, attempts = 0",
    )
    .bind(device_id)
    .bind(hash)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes one of the `max` guesses of a device's code, before the guess is
/// compared: `None` if the device has no code, it has expired, or its
/// guesses are spent. One statement, so concurrent guesses never compare
/// more than `max` times.
pub async fn attempt(
    db: &Db,
    device_id: i64,
    max: i64,
    now: i64,
) -> Result<Option<BindCode>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, BindCode>(
        "update bind_code set attempts = attempts + 1 \
         where device_id = $1 and attempts < $2 and expires_at > $3 \
         returning code_hash, expires_at, attempts",
    )
    .bind(device_id)
    .bind(max)
    .bind(now)
    .fetch_optional(pool)
    .await)?)
}

/// Uses up a device's code, if it is still the one guessed. False if a
/// concurrent request took it first (or replaced it).
pub async fn take(db: &Db, device_id: i64, hash: &[u8]) -> Result<bool, Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "delete from bind_code where device_id = $1 and code_hash = $2",
    )
    .bind(device_id)
    .bind(hash)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Deletes expired bind codes.
pub async fn prune(db: &Db, now: i64) -> Result<u64, Error> {
    let r = on_pool!(db, pool => sqlx::query("delete from bind_code where expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(r)
}
