//! The `session` and `token` tables: a login (session) remembers the app
//! that opened it, and its access and refresh tokens are stored only as
//! SHA-256 digests. Deleting a session deletes its tokens.

use sqlx::FromRow;

use super::Db;
use super::account::{AccountState, UserType};
use crate::config::AppKind;
use crate::error::Error;

/// Which of a session's two tokens a digest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The digests and expiries of a new token pair.
pub struct NewPair<'a> {
    pub access_hash: &'a [u8],
    pub access_expires_at: i64,
    pub refresh_hash: &'a [u8],
    pub refresh_expires_at: i64,
}

/// Inserts both tokens of a pair: $1 session, $2–$4 access, $5–$7 refresh.
const INSERT_PAIR: &str = "insert into token (session_id, hash, kind, expires_at) \
     values ($1, $2, $3, $4), ($1, $5, $6, $7)";

/// How a session stores its app's kind.
fn kind_text(kind: AppKind) -> &'static str {
    match kind {
        AppKind::App => "app",
        AppKind::Device => "device",
        AppKind::Service => "service",
    }
}

fn kind_of(text: &str) -> Result<AppKind, Error> {
    match text {
        "app" => Ok(AppKind::App),
        "device" => Ok(AppKind::Device),
        "service" => Ok(AppKind::Service),
        other => Err(Error::internal(anyhow::anyhow!(
            "session with app kind {other:?}"
        ))),
    }
}

/// Opens a session for `account_id`, issued to (`app_id`, `kind`), with a
/// token pair; then ends the account's sessions beyond the `max` most
/// recently opened or refreshed. Returns the new session's id and the ids
/// of the sessions ended.
#[allow(clippy::too_many_arguments)]
pub async fn open(
    db: &Db,
    account_id: i64,
    app_id: &str,
    kind: AppKind,
    now: i64,
    expires_at: i64,
    pair: &NewPair<'_>,
    max: i64,
) -> Result<(i64, Vec<i64>), Error> {
    on_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        let session_id: i64 = sqlx::query_scalar(
            "insert into session (account_id, app_id, app_kind, created_at, expires_at) \
             values ($1, $2, $3, $4, $5) returning id",
        )
        .bind(account_id)
        .bind(app_id)
        .bind(kind_text(kind))
        .bind(now)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(INSERT_PAIR)
            .bind(session_id)
            .bind(pair.access_hash)
            .bind(TokenKind::Access)
            .bind(pair.access_expires_at)
            .bind(pair.refresh_hash)
            .bind(TokenKind::Refresh)
            .bind(pair.refresh_expires_at)
            .execute(&mut *tx)
            .await?;
        let evicted: Vec<i64> = sqlx::query_scalar(
            "delete from session where account_id = $1 and id not in \
             (select id from session where account_id = $1 \
              order by expires_at desc, id desc limit $2) \
             returning id",
        )
        .bind(account_id)
        .bind(max)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, Error>((session_id, evicted))
    }
    .await)
}

/// An access token's session and account, as verification needs them.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub expires_at: i64,
    pub session_id: i64,
    pub app_id: String,
    pub app_kind: AppKind,
    pub account_id: i64,
    pub user_name: String,
    pub type_: UserType,
}

#[derive(FromRow)]
struct AccessRow {
    expires_at: i64,
    session_id: i64,
    app_id: String,
    app_kind: String,
    account_id: i64,
    user_name: String,
    #[sqlx(rename = "type")]
    type_: UserType,
}

/// The access token with this digest, if it exists and its account is
/// active (expired or not).
pub async fn access_token(db: &Db, hash: &[u8]) -> Result<Option<AccessToken>, Error> {
    let row: Option<AccessRow> = on_pool!(db, pool => sqlx::query_as(
        "select t.expires_at, s.id as session_id, s.app_id, s.app_kind, \
         a.id as account_id, a.user_name, a.type \
         from token t join session s on s.id = t.session_id \
         join account a on a.id = s.account_id \
         where t.hash = $1 and t.kind = $2 and a.state = $3",
    )
    .bind(hash)
    .bind(TokenKind::Access)
    .bind(AccountState::Active)
    .fetch_optional(pool)
    .await)?;
    row.map(|r| {
        Ok(AccessToken {
            app_kind: kind_of(&r.app_kind)?,
            expires_at: r.expires_at,
            session_id: r.session_id,
            app_id: r.app_id,
            account_id: r.account_id,
            user_name: r.user_name,
            type_: r.type_,
        })
    })
    .transpose()
}

/// A refresh token's session, for the ownership check of a refresh.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub session_id: i64,
    pub account_id: i64,
    pub app_id: String,
    pub app_kind: AppKind,
    pub user_name: String,
}

#[derive(FromRow)]
struct RefreshRow {
    session_id: i64,
    account_id: i64,
    app_id: String,
    app_kind: String,
    user_name: String,
}

/// What became of a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The session has the new pair (and a new expiry); its old access
    /// token is gone.
    Renewed { session_id: i64, account_id: i64 },
    /// No such refresh token (or its account is not active).
    Unknown,
    /// The token is someone else's: nothing changed.
    NotOwned,
    /// The token was used already or has expired: the session is ended.
    Ended { session_id: i64 },
}

/// Swaps the refresh token with digest `hash` for `pair`, in one
/// transaction: the token is claimed first (a write, so that two
/// concurrent refreshes cannot both succeed), then `owned` decides whether
/// the caller may renew this session (if not, the claim is rolled back).
pub async fn refresh(
    db: &Db,
    hash: &[u8],
    now: i64,
    pair: &NewPair<'_>,
    expires_at: i64,
    owned: impl FnOnce(&RefreshToken) -> bool,
) -> Result<Refreshed, Error> {
    on_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "update token set used = 1 \
             where hash = $1 and kind = $2 and used = 0 and expires_at > $3",
        )
        .bind(hash)
        .bind(TokenKind::Refresh)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row: Option<RefreshRow> = sqlx::query_as(
            "select t.session_id, s.account_id, s.app_id, s.app_kind, a.user_name \
             from token t join session s on s.id = t.session_id \
             join account a on a.id = s.account_id \
             where t.hash = $1 and t.kind = $2 and a.state = $3",
        )
        .bind(hash)
        .bind(TokenKind::Refresh)
        .bind(AccountState::Active)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Refreshed::Unknown);
        };
        let token = RefreshToken {
            app_kind: kind_of(&row.app_kind)?,
            session_id: row.session_id,
            account_id: row.account_id,
            app_id: row.app_id,
            user_name: row.user_name,
        };
        if !owned(&token) {
            // The transaction rolls back, the claim with it.
            return Ok(Refreshed::NotOwned);
        }
        let session_id = token.session_id;
        if !claimed {
            sqlx::query("delete from session where id = $1")
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Refreshed::Ended { session_id });
        }
        sqlx::query("delete from token where session_id = $1 and kind = $2")
            .bind(session_id)
            .bind(TokenKind::Access)
            .execute(&mut *tx)
            .await?;
        sqlx::query("update session set expires_at = $1 where id = $2")
            .bind(expires_at)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_PAIR)
            .bind(session_id)
            .bind(pair.access_hash)
            .bind(TokenKind::Access)
            .bind(pair.access_expires_at)
            .bind(pair.refresh_hash)
            .bind(TokenKind::Refresh)
            .bind(pair.refresh_expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, Error>(Refreshed::Renewed {
            session_id,
            account_id: token.account_id,
        })
    }
    .await)
}

/// Ends one session (its tokens go with it).
pub async fn end(db: &Db, session_id: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("delete from session where id = $1")
        .bind(session_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends every session of an account.
pub async fn end_all(db: &Db, account_id: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("delete from session where account_id = $1")
        .bind(account_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes expired tokens and sessions.
pub async fn prune(db: &Db, now: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("delete from token where expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    on_pool!(db, pool => sqlx::query("delete from session where expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
