//! The facade's own tables: friend events (`facade_event`, read by
//! `event.read`) and unread counts per contact (`facade_unread`, each
//! message counted once by its id: `facade_unread_msg`) and where the
//! catch-up from the archive starts (`facade_cursor`).

use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// A friend event of an account.
#[derive(Debug, Clone, FromRow)]
pub struct Event {
    pub id: i64,
    #[sqlx(rename = "type")]
    pub type_: String,
    pub peer: String,
    pub note: String,
    pub create_time: i64,
}

/// Records an event; returns its id (`eid`).
pub async fn add_event(
    db: &Db,
    account_id: i64,
    type_: &str,
    peer: &str,
    note: &str,
    now: i64,
) -> Result<i64, Error> {
    let (id,): (i64,) = on_pool!(db, pool => sqlx::query_as(
        "insert into facade_event (account_id, type, peer, note, create_time) \
         values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(account_id)
    .bind(type_)
    .bind(peer)
    .bind(note)
    .bind(now)
    .fetch_one(pool)
    .await)?;
    Ok(id)
}

/// Records an event unless the latest event about `peer` is the same
/// (a request the server delivers again at each login); returns its id.
pub async fn add_event_once(
    db: &Db,
    account_id: i64,
    type_: &str,
    peer: &str,
    note: &str,
    now: i64,
) -> Result<i64, Error> {
    let latest: Option<(i64, String)> = on_pool!(db, pool => sqlx::query_as(
        "select id, type from facade_event where account_id = $1 and peer = $2 \
         order by id desc limit 1",
    )
    .bind(account_id)
    .bind(peer)
    .fetch_optional(pool)
    .await)?;
    match latest {
        Some((id, t)) if t == type_ => Ok(id),
        _ => add_event(db, account_id, type_, peer, note, now).await,
    }
}

/// The newest `limit` events of an account with ids below `before`,
/// newest first.
pub async fn events(
    db: &Db,
    account_id: i64,
    before: i64,
    limit: i64,
) -> Result<Vec<Event>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, Event>(
        "select id, type, peer, note, create_time from facade_event \
         where account_id = $1 and id < $2 order by id desc limit $3",
    )
    .bind(account_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// Pending friend requests: `add_friend` events from peers with no later
/// event about them (accept, reject) of this account.
pub async fn pending_requests(db: &Db, account_id: i64, limit: i64) -> Result<Vec<Event>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, Event>(
        "select id, type, peer, note, create_time from facade_event e \
         where account_id = $1 and type = 'add_friend' and not exists ( \
           select 1 from facade_event l where l.account_id = e.account_id \
           and l.peer = e.peer and l.id > e.id) \
         order by id desc limit $2",
    )
    .bind(account_id)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// The user answered `peer`'s friend requests: they are no longer pending.
pub async fn resolve_requests(db: &Db, account_id: i64, peer: &str) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "delete from facade_event where account_id = $1 and peer = $2 and type = 'add_friend'",
    )
    .bind(account_id)
    .bind(peer)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// How long the id of a counted message is kept (seconds): a message the
/// XMPP server delivers again within it is not counted again, even after
/// `message.mark_read`.
pub const UNREAD_IDS_KEPT: i64 = 30 * 24 * 3600;

/// One more unread message from `peer`, unless message `msgid` was
/// counted already (the XMPP server may deliver a message again, with its
/// id, before or after the user read it): returns whether it counted.
pub async fn add_unread(
    db: &Db,
    account_id: i64,
    peer: &str,
    msgid: &str,
    now: i64,
) -> Result<bool, Error> {
    let first = on_pool!(db, pool => sqlx::query(
        "insert into facade_unread_msg (account_id, msgid, peer, counted_at) \
         values ($1, $2, $3, $4) on conflict (account_id, msgid) do nothing",
    )
    .bind(account_id)
    .bind(msgid)
    .bind(peer)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if first == 0 {
        return Ok(false);
    }
    on_pool!(db, pool => sqlx::query(
        "insert into facade_unread (account_id, peer, count) values ($1, $2, 1) \
         on conflict (account_id, peer) do update set count = facade_unread.count + 1",
    )
    .bind(account_id)
    .bind(peer)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(true)
}

/// Everything from `peer` is read: its count goes; the ids counted stay
/// for [`UNREAD_IDS_KEPT`] (older ones are pruned now).
pub async fn clear_unread(db: &Db, account_id: i64, peer: &str, now: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "delete from facade_unread where account_id = $1 and peer = $2",
    )
    .bind(account_id)
    .bind(peer)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    on_pool!(db, pool => sqlx::query(
        "delete from facade_unread_msg where account_id = $1 and peer = $2 and counted_at < $3",
    )
    .bind(account_id)
    .bind(peer)
    .bind(now - UNREAD_IDS_KEPT)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Unread counts per contact, largest first.
pub async fn unread(db: &Db, account_id: i64, limit: i64) -> Result<Vec<(String, i64)>, Error> {
    Ok(on_pool!(db, pool => sqlx::query_as::<_, (String, i64)>(
        "select peer, count from facade_unread where account_id = $1 \
         order by count desc, peer limit $2",
    )
    .bind(account_id)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// Active user names starting with `prefix` (`user.search` with
/// `facade.search_prefix`), in order.
pub async fn names_with_prefix(db: &Db, prefix: &str, limit: i64) -> Result<Vec<String>, Error> {
    // User names have no LIKE wildcards (fields::UserName), but escape
    // anyway.
    let pattern = format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    Ok(on_pool!(db, pool => sqlx::query_scalar::<_, String>(
        "select user_name from account where state = 'active' \
         and user_name like $1 escape '\\' order by user_name limit $2",
    )
    .bind(pattern)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// An account's catch-up state (docs/facade.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The archive id of the newest message its phone acknowledged.
    pub archive_id: Option<String>,
    /// Its last facade session ended with every archived push acknowledged.
    pub clean: bool,
}

/// An account's catch-up state, and marks it as used by the session
/// `owner` from now on (not clean until that session says so). `None`:
/// the account's first facade session.
pub async fn start_cursor(
    db: &Db,
    account_id: i64,
    owner: &str,
    now: i64,
) -> Result<Option<Cursor>, Error> {
    let before: Option<(Option<String>, i64)> = on_pool!(db, pool => sqlx::query_as(
        "select archive_id, clean from facade_cursor where account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(pool)
    .await)?;
    on_pool!(db, pool => sqlx::query(
        "insert into facade_cursor (account_id, archive_id, clean, owner, updated_at) \
         values ($1, null, $2, $3, $4) on conflict (account_id) do update set \
         clean = excluded.clean, owner = excluded.owner, updated_at = excluded.updated_at",
    )
    .bind(account_id)
    .bind(0_i64)
    .bind(owner)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(before.map(|(archive_id, clean)| Cursor {
        archive_id,
        clean: clean != 0,
    }))
}

/// Moves an account's catch-up cursor.
pub async fn set_cursor(db: &Db, account_id: i64, archive_id: &str, now: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "update facade_cursor set archive_id = $2, updated_at = $3 where account_id = $1",
    )
    .bind(account_id)
    .bind(archive_id)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Session `owner` ended with every archived push acknowledged: the
/// cursor is `archive_id` (if any) and the next login needs no catch-up,
/// unless another session started since.
pub async fn end_cursor_clean(
    db: &Db,
    account_id: i64,
    owner: &str,
    archive_id: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query(
        "update facade_cursor set clean = $3, archive_id = coalesce($4, archive_id), \
         updated_at = $5 where account_id = $1 and owner = $2",
    )
    .bind(account_id)
    .bind(owner)
    .bind(1_i64)
    .bind(archive_id)
    .bind(now)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
