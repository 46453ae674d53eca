//! The `nonce` table: the nonces of signed requests, per scope (an app, or
//! an app and device), kept until their `ts` leaves the window.

use super::Db;
use crate::error::Error;

/// Spends a request's nonce: code 11 if it was already used in its scope.
/// The one check both the register API and the token service hello make,
/// after the signature (so a forged request cannot use up a nonce).
pub async fn spend(db: &Db, scope: &str, nonce: &str, expires_at: i64) -> Result<(), Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "insert into nonce (scope, nonce, expires_at) values ($1, $2, $3) \
         on conflict do nothing",
    )
    .bind(scope)
    .bind(nonce)
    .bind(expires_at)
    .execute(pool)
    .await)?;
    if r.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::NonceReused)
    }
}

/// Forgets nonces whose `ts` has left the window.
pub async fn prune(db: &Db, now: i64) -> Result<u64, Error> {
    let r = on_pool!(db, pool => sqlx::query("delete from nonce where expires_at < $1")
        .bind(now)
        .execute(pool)
        .await)?;
    Ok(r.rows_affected())
}
