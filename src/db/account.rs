//! The `account` table: one row per user, phone (type 1), device (2) or
//! WeChat user (3), with its JID and the state of its XMPP side.

use serde::Serialize;
use sqlx::FromRow;
use xmpp_parsers::jid::BareJid;

use super::Db;
use crate::error::Error;

/// Where an account is in its life. The row is written `creating` before
/// its JID is created and made `active` after; cancelling marks it
/// `deleting` before the JID is deleted and removes it after. A crash in
/// between leaves a row the reconciler finishes or undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum AccountState {
    Creating,
    Active,
    Deleting,
}

/// The seed's `type`: 1 phone, 2 device, 3 WeChat (stored as that integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(into = "i64")]
#[repr(i32)]
pub enum UserType {
    Phone = 1,
    Device = 2,
    Wechat = 3,
}

impl From<UserType> for i64 {
    fn from(t: UserType) -> i64 {
        t.code()
    }
}

impl UserType {
    /// The `type` parameter: `1`, `2` or `3` (code 2 otherwise).
    pub fn parse(s: &str) -> Result<UserType, Error> {
        match s {
            "1" => Ok(UserType::Phone),
            "2" => Ok(UserType::Device),
            "3" => Ok(UserType::Wechat),
            _ => Err(Error::Params(
                "type must be 1 (phone), 2 (device) or 3 (WeChat)".into(),
            )),
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }

    /// First letter of this type's JID localparts.
    pub fn jid_prefix(self) -> char {
        match self {
            UserType::Phone => 'p',
            UserType::Device => 'd',
            UserType::Wechat => 'w',
        }
    }

    /// Phones and WeChat users own devices; devices are owned.
    pub fn is_owner(self) -> bool {
        self != UserType::Device
    }
}

/// An account row.
#[derive(Debug, Clone, FromRow)]
pub struct Account {
    pub id: i64,
    pub user_name: String,
    #[sqlx(rename = "type")]
    pub type_: UserType,
    pub device_type: Option<String>,
    pub des: String,
    pub password_hash: String,
    pub jid_local: String,
    pub jid_pwd_enc: Vec<u8>,
    /// A new JID password being pushed to the XMPP server (password
    /// change); the reconciler pushes it again if jidgate stopped half-way.
    pub jid_pwd_next: Option<Vec<u8>>,
    pub state: AccountState,
    pub updated_at: i64,
}

impl Account {
    /// Devices are owned; phones and WeChat users own them.
    pub fn is_device(&self) -> bool {
        self.type_ == UserType::Device
    }

    pub fn is_active(&self) -> bool {
        self.state == AccountState::Active
    }

    /// The account's bare JID on the XMPP domain `domain`.
    pub fn jid(&self, domain: &str) -> Result<BareJid, Error> {
        jid(&self.jid_local, domain)
    }
}

/// The bare JID `local@domain`.
pub fn jid(local: &str, domain: &str) -> Result<BareJid, Error> {
    BareJid::new(&format!("{local}@{domain}")).map_err(Error::internal)
}

/// What a new account is made of.
pub struct NewAccount<'a> {
    pub user_name: &'a str,
    pub type_: UserType,
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
    let id: Option<i64> = on_pool!(db, pool => sqlx::query_scalar(
        "insert into account (user_name, type, device_type, des, password_hash, jid_local, \
         jid_pwd_enc, state, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         on conflict (user_name) do nothing returning id",
    )
    .bind(a.user_name)
    .bind(a.type_)
    .bind(a.device_type)
    .bind(a.des)
    .bind(a.password_hash)
    .bind(a.jid_local)
    .bind(a.jid_pwd_enc)
    .bind(AccountState::Creating)
    .bind(now)
    .fetch_optional(pool)
    .await)?;
    id.ok_or(Error::UserExists)
}

/// Moves an account from `from` to `to`; false if it was not in `from`.
pub async fn transition(
    db: &Db,
    id: i64,
    from: AccountState,
    to: AccountState,
    now: i64,
) -> Result<bool, Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "update account set state = $1, updated_at = $2 where id = $3 and state = $4",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Deletes an account row (and, by cascade, its sessions and tokens).
pub async fn delete(db: &Db, id: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("delete from account where id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The active account called `name`.
pub async fn active_by_name(db: &Db, name: &str) -> Result<Option<Account>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Account>(select_account!(
        "where user_name = $1 and state = $2"
    ))
    .bind(name)
    .bind(AccountState::Active)
    .fetch_optional(pool)
    .await)?,
    )
}

/// The account with this id, in any state.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Account>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Account>(select_account!("where id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await)?,
    )
}

/// The account with this id, if it is active.
pub async fn active_by_id(db: &Db, id: i64) -> Result<Option<Account>, Error> {
    Ok(by_id(db, id).await?.filter(Account::is_active))
}

/// The account whose JID localpart is `local`, in any state.
pub async fn by_jid_local(db: &Db, local: &str) -> Result<Option<Account>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Account>(select_account!(
        "where jid_local = $1"
    ))
    .bind(local)
    .fetch_optional(pool)
    .await)?,
    )
}

/// Accounts in `state` last changed at or before `before`.
pub async fn in_state_before(
    db: &Db,
    state: AccountState,
    before: i64,
) -> Result<Vec<Account>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Account>(select_account!(
        "where state = $1 and updated_at <= $2 order by id"
    ))
    .bind(state)
    .bind(before)
    .fetch_all(pool)
    .await)?,
    )
}

/// Active accounts with an id above `after`, at most `limit`, by id.
pub async fn active_page(db: &Db, after: i64, limit: i64) -> Result<Vec<Account>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Account>(select_account!(
        "where state = $1 and id > $2 order by id limit $3"
    ))
    .bind(AccountState::Active)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await)?,
    )
}

/// The pushed JID password becomes the current one (the reconciler, after
/// pushing `jid_pwd_next` again).
pub async fn commit_jid_pwd(db: &Db, id: i64, now: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "update account set jid_pwd_enc = jid_pwd_next, jid_pwd_next = null, updated_at = $1 \
         where id = $2 and jid_pwd_next is not null",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
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
    let r = on_pool!(db, pool => sqlx::query(
        "update account set jid_pwd_next = $1, updated_at = $2 \
         where id = $3 and state = $4 and jid_pwd_next is null and password_hash = $5",
    )
    .bind(next)
    .bind(now)
    .bind(account.id)
    .bind(AccountState::Active)
    .bind(&account.password_hash)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Forgets `next` (the XMPP server did not take it), if it is still the
/// pending JID password.
pub async fn abandon_jid_pwd_change(db: &Db, id: i64, next: &[u8], now: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "update account set jid_pwd_next = null, updated_at = $1 \
         where id = $2 and jid_pwd_next = $3",
    )
    .bind(now)
    .bind(id)
    .bind(next)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
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
    let r = on_pool!(db, pool => sqlx::query(
        "update account set jid_pwd_enc = jid_pwd_next, jid_pwd_next = null, \
         password_hash = coalesce($1, password_hash), updated_at = $2 \
         where id = $3 and jid_pwd_next = $4",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .bind(next)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if r == 0 {
        on_pool!(db, pool => sqlx::query(
            "update account set password_hash = coalesce($1, password_hash), updated_at = $2 \
             where id = $3 and jid_pwd_enc = $4",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .bind(next)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Active accounts with a JID password push left half-way at or before
/// `before`.
pub async fn with_pending_jid_pwd(db: &Db, before: i64) -> Result<Vec<Account>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Account>(select_account!(
        "where jid_pwd_next is not null and state = $1 and updated_at <= $2 order by id"
    ))
    .bind(AccountState::Active)
    .bind(before)
    .fetch_all(pool)
    .await)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(UserType::parse("2").unwrap(), UserType::Device);
        assert_eq!(UserType::Wechat.code(), 3);
        assert!(UserType::parse("4").is_err());
        assert!(UserType::parse("02").is_err());
        assert!(UserType::parse("").is_err());
    }
}
