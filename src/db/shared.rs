//! What several instances on one PostgreSQL database share beyond the
//! tables: token revocation notices (`LISTEN`/`NOTIFY` on
//! [`REVOKED_CHANNEL`]) and the reconciler's lock (an advisory lock held by
//! a connection of its own, so it goes when its instance dies). On SQLite,
//! which serves one instance, there is nobody to tell and nobody to
//! exclude: notices are not sent, no listener starts, and the lock is
//! always granted.

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};

use super::{Db, Pool};
use crate::error::Error;

/// The channel revocation notices go on.
pub const REVOKED_CHANNEL: &str = "jidgate_revoked";

/// The advisory lock key of the reconciler ("jidgate reconcile" in ASCII,
/// folded to 64 bits).
pub const RECONCILER_LOCK: i64 = 0x6a69_6467_6174_6501;

/// What a revocation ended: some sessions, or every session of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Sessions(Vec<i64>),
    Account(i64),
}

/// Most session ids in one notice (a payload is at most 8000 bytes).
const MAX_IDS: usize = 400;

impl Revoked {
    /// `s:1,2,3` or `a:7`.
    fn payloads(&self) -> Vec<String> {
        match self {
            Revoked::Account(id) => vec![format!("a:{id}")],
            Revoked::Sessions(ids) => ids
                .chunks(MAX_IDS)
                .map(|c| {
                    let ids: Vec<String> = c.iter().map(i64::to_string).collect();
                    format!("s:{}", ids.join(","))
                })
                .collect(),
        }
    }

    /// Reads a payload; `None` if it is not one of ours.
    pub fn parse(payload: &str) -> Option<Revoked> {
        let (kind, rest) = payload.split_once(':')?;
        match kind {
            "a" => rest.parse().ok().map(Revoked::Account),
            "s" => rest
                .split(',')
                .map(|id| id.parse().ok())
                .collect::<Option<Vec<i64>>>()
                .map(Revoked::Sessions),
            _ => None,
        }
    }
}

/// Tells every instance listening (this one too) that `revoked` ended;
/// nothing on SQLite. Sent after the deletion committed, so a listener
/// that drops its cache and asks the database finds the rows gone.
pub async fn notify_revoked(db: &Db, revoked: &Revoked) -> Result<(), Error> {
    if let Pool::Postgres(pool) = db.pool() {
        for payload in revoked.payloads() {
            sqlx::query("select pg_notify($1, $2)")
                .bind(REVOKED_CHANNEL)
                .bind(payload)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// A connection listening for revocation notices.
pub struct RevocationListener(PgListener);

/// What a listener heard.
#[derive(Debug)]
pub enum Heard {
    Revoked(Revoked),
    /// The connection dropped: notices may have been missed. The next
    /// [`RevocationListener::next`] reconnects.
    Lost,
}

impl RevocationListener {
    /// Starts listening; `None` on SQLite.
    pub async fn connect(db: &Db) -> Result<Option<RevocationListener>, Error> {
        let Pool::Postgres(pool) = db.pool() else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(REVOKED_CHANNEL).await?;
        Ok(Some(RevocationListener(listener)))
    }

    /// The next notice (payloads that are not ours are skipped).
    pub async fn next(&mut self) -> Result<Heard, Error> {
        loop {
            match self.0.try_recv().await? {
                None => return Ok(Heard::Lost),
                Some(n) => {
                    if let Some(r) = Revoked::parse(n.payload()) {
                        return Ok(Heard::Revoked(r));
                    }
                }
            }
        }
    }
}

/// The reconciler's lock, while this instance holds it.
pub struct Leadership(Option<PgConnection>);

impl Leadership {
    /// Takes the lock if no other instance holds it (SQLite: always).
    pub async fn try_take(db: &Db) -> Result<Option<Leadership>, Error> {
        let Pool::Postgres(pool) = db.pool() else {
            return Ok(Some(Leadership(None)));
        };
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        let got: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(RECONCILER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Leadership(Some(conn))))
        } else {
            conn.close().await?;
            Ok(None)
        }
    }

    /// True while the lock's connection is alive (the lock with it).
    pub async fn held(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(conn) => conn.ping().await.is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back() {
        for r in [Revoked::Account(7), Revoked::Sessions(vec![1, 22, 333])] {
            let p = r.payloads();
            assert_eq!(p.len(), 1);
            assert_eq!(Revoked::parse(&p[0]), Some(r));
        }
        let many = Revoked::Sessions((0..1000).collect());
        let parts = many.payloads();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() < 8000));
        assert_eq!(Revoked::parse("x:1"), None);
        assert_eq!(Revoked::parse("s:1,x"), None);
    }
}
