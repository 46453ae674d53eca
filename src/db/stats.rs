//! Counts for the metrics listener (the rows left mid-way, by kind) and
//! for progress displays (the rows a drift sweep reads).

use super::Db;
use crate::error::Error;

/// The kinds of pending rows, in the order [`pending_rows`] lists them.
pub const PENDING_KINDS: [&str; 5] = [
    "creating",
    "deleting",
    "jid_password",
    "binding",
    "unbinding",
];

/// How many rows of each kind of [`PENDING_KINDS`] are left mid-way now
/// (whatever their age): accounts `creating`/`deleting`, accounts with a
/// JID password not yet pushed, bindings `binding`/`unbinding`.
pub async fn pending_rows(db: &Db) -> Result<Vec<(&'static str, i64)>, Error> {
    type Counts = Vec<(String, i64)>;
    let (accounts, jid_passwords, bindings): (Counts, i64, Counts) = on_pool!(db, pool => {
        let accounts = sqlx::query_as(
            "select state, count(*) from account where state <> 'active' group by state",
        )
        .fetch_all(pool)
        .await?;
        let jid_passwords =
            sqlx::query_scalar("select count(*) from account where jid_pwd_next is not null")
                .fetch_one(pool)
                .await?;
        let bindings = sqlx::query_as(
            "select state, count(*) from binding where state <> 'bound' group by state",
        )
        .fetch_all(pool)
        .await?;
        (accounts, jid_passwords, bindings)
    });
    let count = |rows: &[(String, i64)], state: &str| {
        rows.iter().find(|(s, _)| s == state).map_or(0, |&(_, n)| n)
    };
    Ok(vec![
        ("creating", count(&accounts, "creating")),
        ("deleting", count(&accounts, "deleting")),
        ("jid_password", jid_passwords),
        ("binding", count(&bindings, "binding")),
        ("unbinding", count(&bindings, "unbinding")),
    ])
}

/// The rows a drift sweep reads: bound pairs and active accounts.
pub async fn drift_rows(db: &Db) -> Result<i64, Error> {
    Ok(on_pool!(db, pool => sqlx::query_scalar(
        "select (select count(*) from binding where state = 'bound') + \
         (select count(*) from account where state = 'active')",
    )
    .fetch_one(pool)
    .await)?)
}
