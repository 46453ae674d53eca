//! The `binding` table: a phone or WeChat user (the owner) bound to a
//! device, as a mutual presence subscription on the XMPP server.

use sqlx::FromRow;

use super::Db;
use crate::error::Error;

/// Where a binding is in its life: `binding` while the roster handshake
/// runs (or after it failed: the reconciler undoes it), `bound`, and
/// `unbinding` while both roster items are removed (the reconciler finishes
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum BindingState {
    Binding,
    Bound,
    Unbinding,
}

impl BindingState {
    /// The state as stored and as `/get_user_banding` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Binding => "binding",
            BindingState::Bound => "bound",
            BindingState::Unbinding => "unbinding",
        }
    }
}

/// A binding row: `owner` (phone or WeChat user) bound to `device`.
#[derive(Debug, Clone, FromRow)]
pub struct Binding {
    pub id: i64,
    pub owner_id: i64,
    pub device_id: i64,
    pub state: BindingState,
    pub updated_at: i64,
}

/// `select <every column> from binding <tail>`, as a static string.
macro_rules! select_binding {
    ($tail:literal) => {
        concat!(
            "select id, owner_id, device_id, state, updated_at from binding ",
            $tail
        )
    };
}

/// The binding of a pair, in any state.
pub async fn of_pair(db: &Db, owner_id: i64, device_id: i64) -> Result<Option<Binding>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Binding>(select_binding!(
        "where owner_id = $1 and device_id = $2"
    ))
    .bind(owner_id)
    .bind(device_id)
    .fetch_optional(pool)
    .await)?,
    )
}

/// Starts binding a pair: a new row in state `binding`, or a stale pending
/// row taken over. An already bound pair is 109.
pub async fn begin(db: &Db, owner_id: i64, device_id: i64, now: i64) -> Result<i64, Error> {
    let id: Option<i64> = on_pool!(db, pool => sqlx::query_scalar(
        "insert into binding (owner_id, device_id, state, created_at, updated_at) \
         values ($1, $2, $3, $4, $4) \
         on conflict (owner_id, device_id) do update \
         set state = excluded.state, updated_at = excluded.updated_at \
         where binding.state <> $5 returning id",
    )
    .bind(owner_id)
    .bind(device_id)
    .bind(BindingState::Binding)
    .bind(now)
    .bind(BindingState::Bound)
    .fetch_optional(pool)
    .await)?;
    id.ok_or(Error::AlreadyBound)
}

/// Moves a binding from one state to another; false if it was not in `from`.
pub async fn transition(
    db: &Db,
    id: i64,
    from: BindingState,
    to: BindingState,
    now: i64,
) -> Result<bool, Error> {
    let r = on_pool!(db, pool => sqlx::query(
        "update binding set state = $1, updated_at = $2 where id = $3 and state = $4",
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

/// Marks a binding `unbinding`, whatever its state.
pub async fn mark_unbinding(db: &Db, id: i64, now: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("update binding set state = $1, updated_at = $2 where id = $3")
        .bind(BindingState::Unbinding)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete(db: &Db, id: i64) -> Result<(), Error> {
    on_pool!(db, pool => sqlx::query("delete from binding where id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every binding an account takes part in, either side, any state.
pub async fn of_account(db: &Db, account_id: i64) -> Result<Vec<Binding>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Binding>(select_binding!(
        "where owner_id = $1 or device_id = $1 order by id"
    ))
    .bind(account_id)
    .fetch_all(pool)
    .await)?,
    )
}

/// Bindings in `state` last changed at or before `before`.
pub async fn in_state_before(
    db: &Db,
    state: BindingState,
    before: i64,
) -> Result<Vec<Binding>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Binding>(select_binding!(
        "where state = $1 and updated_at <= $2 order by id"
    ))
    .bind(state)
    .bind(before)
    .fetch_all(pool)
    .await)?,
    )
}

/// Bound pairs with an id above `after`, at most `limit`, by id.
pub async fn bound_page(db: &Db, after: i64, limit: i64) -> Result<Vec<Binding>, Error> {
    Ok(
        on_pool!(db, pool => sqlx::query_as::<_, Binding>(select_binding!(
        "where state = $1 and id > $2 order by id limit $3"
    ))
    .bind(BindingState::Bound)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await)?,
    )
}
