//! The `audit` table: every operator action in the console, newest first.

use serde::Serialize;
use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// One operator action.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Entry {
    pub at: i64,
    pub operator: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Writes an action down.
pub async fn record(
    db: &Db,
    operator: &str,
    action: &str,
    target: &str,
    detail: &str,
    now: i64,
) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "insert into audit (at, operator, action, target, detail) values ($1, $2, $3, $4, $5)",
    )
    .bind(now)
    .bind(operator)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The `limit` most recent actions, newest first.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<Entry>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, Entry>(
        "select at, operator, action, target, detail from audit order by id desc limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}
