//! SQL for the `account` table.

use sqlx::FromRow;

use crate::db::Db;
use crate::error::Error;

/// An account row.
#[derive(Debug, Clone, FromRow)]
pub struct Account {
    pub id: i64,
    pub user_name: String,
    #[sqlx(rename = "type")]
    pub type_: i64,
    pub device_type: Option<String>,
    pub des: String,
    pub password_hash: String,
    pub jid_local: String,
    pub jid_pwd_enc: Vec<u8>,
    pub jid_pwd_next: Option<Vec<u8>>,
    pub state: String,
    pub updated_at: i64,
}

/// What a new account is made of.
pub struct NewAccount<'a> {
    pub user_name: &'a str,
    pub type_: i64,
    pub device_type: Option<&'a str>,
    pub des: &'a str,
    pub password_hash: &'a str,
    pub jid_local: &'a str,
    pub jid_pwd_enc: &'a [u8],
}

/// `select <every column> from account <tail>`, as a static string.
macro_rules! select_account {
    ($tail:literal) => {
        concat!(
            "select id, user_name, type, device_type, des, password_hash, jid_local, \
             jid_pwd_enc, jid_pwd_next, state, updated_at from account ",
            $tail
        )
    };
}

/// Inserts an account in state `creating`; a taken user name is 103.
pub async fn insert_creating(db: &Db, a: &NewAccount<'_>, now: i64) -> Result<i64, Error> {
    let r = sqlx::query(
        "insert into account (user_name, type, device_type, des, password_hash, jid_local, \
         jid_pwd_enc, state, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, 'creating', ?, ?)",
    )
    .bind(a.user_name)
    .bind(a.type_)
    .bind(a.device_type)
    .bind(a.des)
    .bind(a.password_hash)
    .bind(a.jid_local)
    .bind(a.jid_pwd_enc)
    .bind(now)
    .bind(now)
    .execute(db)
    .await;
    match r {
        Ok(r) => Ok(r.last_insert_rowid()),
        Err(sqlx::Error::Database(e))
            if e.is_unique_violation() && e.message().contains("user_name") =>
        {
            Err(Error::UserExists)
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves an account from `from` to `to`; false if it was not in `from`.
pub async fn transition(db: &Db, id: i64, from: &str, to: &str, now: i64) -> Result<bool, Error> {
    let r = sqlx::query("update account set state = ?, updated_at = ? where id = ? and state = ?")
        .bind(to)
        .bind(now)
        .bind(id)
        .bind(from)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes an account row (and, by cascade, its sessions and tokens).
pub async fn delete(db: &Db, id: i64) -> Result<(), Error> {
    sqlx::query("delete from account where id = ?")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// The account called `name`, in any state.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<Account>, Error> {
    Ok(
        sqlx::query_as::<_, Account>(select_account!("where user_name = ?"))
            .bind(name)
            .fetch_optional(db)
            .await?,
    )
}

/// The account with this id, in any state.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Account>, Error> {
    Ok(
        sqlx::query_as::<_, Account>(select_account!("where id = ?"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// The account whose JID localpart is `local`, in any state.
pub async fn by_jid_local(db: &Db, local: &str) -> Result<Option<Account>, Error> {
    Ok(
        sqlx::query_as::<_, Account>(select_account!("where jid_local = ?"))
            .bind(local)
            .fetch_optional(db)
            .await?,
    )
}

/// Accounts in `state` last changed before `before`.
pub async fn in_state_before(db: &Db, state: &str, before: i64) -> Result<Vec<Account>, Error> {
    Ok(sqlx::query_as::<_, Account>(select_account!(
        "where state = ? and updated_at <= ? order by id"
    ))
    .bind(state)
    .bind(before)
    .fetch_all(db)
    .await?)
}

/// Active accounts with an id above `after`, at most `limit`, by id.
pub async fn active_page(db: &Db, after: i64, limit: i64) -> Result<Vec<Account>, Error> {
    Ok(sqlx::query_as::<_, Account>(select_account!(
        "where state = 'active' and id > ? order by id limit ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Records the JID password about to be pushed to the XMPP server.
pub async fn set_jid_pwd_next(
    db: &Db,
    id: i64,
    next: Option<&[u8]>,
    now: i64,
) -> Result<(), Error> {
    sqlx::query("update account set jid_pwd_next = ?, updated_at = ? where id = ?")
        .bind(next)
        .bind(now)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// The pushed JID password becomes the current one; optionally with a new
/// account password hash.
pub async fn commit_jid_pwd(
    db: &Db,
    id: i64,
    password_hash: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    sqlx::query(
        "update account set jid_pwd_enc = jid_pwd_next, jid_pwd_next = null, \
         password_hash = coalesce(?, password_hash), updated_at = ? \
         where id = ? and jid_pwd_next is not null",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Records `next` as the JID password about to be pushed, only if no other
/// is pending and the account is still active with the password hash it had
/// when `account` was read. False: another change is running or has just
/// happened.
pub async fn begin_jid_pwd_change(
    db: &Db,
    account: &Account,
    next: &[u8],
    now: i64,
) -> Result<bool, Error> {
    let r = sqlx::query(
        "update account set jid_pwd_next = ?, updated_at = ? \
         where id = ? and state = 'active' and jid_pwd_next is null and password_hash = ?",
    )
    .bind(next)
    .bind(now)
    .bind(account.id)
    .bind(&account.password_hash)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Forgets `next` (the XMPP server did not take it), if it is still the
/// pending JID password.
pub async fn abandon_jid_pwd_change(db: &Db, id: i64, next: &[u8], now: i64) -> Result<(), Error> {
    sqlx::query(
        "update account set jid_pwd_next = null, updated_at = ? where id = ? and jid_pwd_next = ?",
    )
    .bind(now)
    .bind(id)
    .bind(next)
    .execute(db)
    .await?;
    Ok(())
}

/// `next`, pushed, becomes the current JID password (with the new account
/// password hash, if any). If the reconciler already made it current, only
/// the hash is set.
pub async fn finish_jid_pwd_change(
    db: &Db,
    id: i64,
    next: &[u8],
    password_hash: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    let r = sqlx::query(
        "update account set jid_pwd_enc = jid_pwd_next, jid_pwd_next = null, \
         password_hash = coalesce(?, password_hash), updated_at = ? \
         where id = ? and jid_pwd_next = ?",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .bind(next)
    .execute(db)
    .await?;
    if r.rows_affected() == 0 {
        sqlx::query(
            "update account set password_hash = coalesce(?, password_hash), updated_at = ? \
             where id = ? and jid_pwd_enc = ?",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .bind(next)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Active accounts with a JID password push left half-way before `before`.
pub async fn with_pending_jid_pwd(db: &Db, before: i64) -> Result<Vec<Account>, Error> {
    Ok(sqlx::query_as::<_, Account>(select_account!(
        "where jid_pwd_next is not null and state = 'active' \
         and updated_at <= ? order by id"
    ))
    .bind(before)
    .fetch_all(db)
    .await?)
}
