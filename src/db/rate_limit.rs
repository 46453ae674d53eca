//! The `rate_limit` table: GCRA state per limited key, shared by every
//! instance on the database. One statement takes a unit (or refuses), so
//! concurrent requests on any number of instances never get more than the
//! configured rate through.

use super::Db;
use crate::error::Error;

/// Takes one unit from `key`'s budget of `capacity` units, each coming
/// back after `unit_ms`, at `now_ms`: `None` if taken, or the milliseconds
/// until one would be.
pub async fn take(
    db: &Db,
    key: &str,
    capacity: i64,
    unit_ms: i64,
    now_ms: i64,
) -> Result<Option<i64>, Error> {
    // full_at' = max(full_at, now) + unit, allowed while full_at' - now
    // stays within the whole budget.
    let taken: Option<i64> = on_pool!(db, pool => sqlx::query_scalar(
        "insert into rate_limit (key, full_at) values ($1, $2 + $3) \
         on conflict (key) do update set full_at = \
         (case when rate_limit.full_at > $2 then rate_limit.full_at else $2 end) + $3 \
         where (case when rate_limit.full_at > $2 then rate_limit.full_at else $2 end) + $3 - $2 <= $4 \
         returning full_at",
    )
    .bind(key)
    .bind(now_ms)
    .bind(unit_ms)
    .bind(capacity * unit_ms)
    .fetch_optional(pool)
    .await)?;
    if taken.is_some() {
        return Ok(None);
    }
    let full_at: Option<i64> = on_pool!(db, pool => sqlx::query_scalar(
        "select full_at from rate_limit where key = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await)?;
    let full_at = full_at.unwrap_or(now_ms);
    Ok(Some(
        (full_at + unit_ms - capacity * unit_ms - now_ms).max(1),
    ))
}

/// Forgets keys whose budget is whole again.
pub async fn prune(db: &Db, now_ms: i64) -> Result<u64, Error> {
    let r = on_pool!(db, pool => sqlx::query("delete from rate_limit where full_at <= $1")
        .bind(now_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(r)
}
