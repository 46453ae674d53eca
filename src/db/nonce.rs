//! The `nonce` table: the nonces of signed requests, per scope (an app, or
//! an app and device), kept until their `ts` leaves the window.

use super::Db;
use crate::error::Error;
use crate::signing::Verified;

/// Spends the nonce of a request whose signature checked out: code 11 if
/// it was already used in its scope. The one check the register API and the
/// token service hello both make, after the signature (so a forged request
/// cannot use up someone's nonce).
pub async fn spend(db: &Db, verified: &Verified) -> Result<(), Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "insert into nonce (scope, nonce, expires_at) values ($1, $2, $3) \
         on conflict do nothing",
    )
    .bind(&verified.nonce_scope)
    .bind(&verified.nonce)
    .bind(verified.nonce_expires_at)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if r == 1 {
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
        .await
        .map(|r| r.rows_affected()))?;
    Ok(r)
}
