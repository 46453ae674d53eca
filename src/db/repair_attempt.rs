//! The `repair_attempt` table: failed reconciler attempts per row and
//! operation, so that no row is retried forever in silence.

use serde::Serialize;
use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 500;

/// Counts a failure of `operation` on `target`; returns the number of
/// failures so far.
pub async fn record_failure(
    db: &Db,
    target: &str,
    operation: &str,
    error: &Error,
    now: i64,
) -> Result<i64, Error> {
    let text: String = error.to_string().chars().take(MAX_ERROR_CHARS).collect();
    Ok(on_pool!(db, pool => sqlx::query_scalar(
        "insert into repair_attempt (target, operation, attempts, first_failed_at, \
         last_failed_at, last_code, last_error) values ($1, $2, 1, $3, $3, $4, $5) \
         on conflict (target, operation) do update set \
         attempts = repair_attempt.attempts + 1, \
         last_failed_at = excluded.last_failed_at, last_code = excluded.last_code, \
         last_error = excluded.last_error returning attempts",
    )
    .bind(target)
    .bind(operation)
    .bind(now)
    .bind(error.code())
    .bind(text)
    .fetch_one(pool)
    .await)?)
}

/// Forgets the failures of a row's operation.
pub async fn clear(db: &Db, target: &str, operation: &str) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "delete from repair_attempt where target = $1 and operation = $2",
    )
    .bind(target)
    .bind(operation)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every (target, operation) with failures on record.
pub async fn all(db: &Db) -> Result<Vec<(String, String)>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as("select target, operation from repair_attempt")
        .fetch_all(pool)
        .await)?,
    )
}

/// A row that has failed at least `reconcile.alert_after` times, as
/// `/readyz` shows it: no user names, JIDs or error texts.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Stuck {
    pub row: String,
    pub operation: String,
    pub attempts: i64,
    pub first_failed_at: i64,
    pub last_failed_at: i64,
    pub last_code: i64,
}

/// How many rows have failed at least `threshold` times, and the first
/// `limit` of them (most attempts first).
pub async fn stuck(db: &Db, threshold: i64, limit: i64) -> Result<(i64, Vec<Stuck>), Error> {
    let count: i64 = on_pool!(db, pool => sqlx::query_scalar(
        "select count(*) from repair_attempt where attempts >= $1",
    )
    .bind(threshold)
    .fetch_one(pool)
    .await)?;
    let rows = on_pool!(db, pool => sqlx::query_as::<_, Stuck>(
        "select target as row, operation, attempts, first_failed_at, last_failed_at, \
         last_code from repair_attempt where attempts >= $1 \
         order by attempts desc, target, operation limit $2",
    )
    .bind(threshold)
    .bind(limit)
    .fetch_all(pool)
    .await)?;
    Ok((count, rows))
}
