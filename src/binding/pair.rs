//! The pair engine: makes an owner's and a device's rosters agree with the
//! database, by logging in as each side (RFC 6121) and checking with roster
//! gets rather than trusting pushes.
//!
//! Rows are `binding` before the XMPP work and `bound` after; unbinding
//! marks them `unbinding` and deletes them after. A failure half-way leaves
//! a row the reconciler undoes (`binding`) or finishes (`unbinding`).
//!
//! The items of one list call run concurrently, at most
//! `binding.concurrency` at a time, sharing one session per account
//! ([`Sessions`]): the owner logs in once and its stream carries every
//! handshake. Results come back in the order of the list.

use std::net::IpAddr;

use futures::{StreamExt, try_join};
use tracing::instrument;
use xmpp_parsers::jid::BareJid;

use super::codes;
use super::sessions::Sessions;
use crate::app::App;
use crate::clock;
use crate::config::BindProof;
use crate::db::binding as store;
use crate::db::{Account, AccountState, Binding, BindingState, account};
use crate::error::Error;
use crate::fields::check_text;
use crate::xmpp::roster::{self, ItemState};

/// The owner's group for its devices.
pub const GROUP_DEVICES: &str = "devices";
/// The device's group for its owners.
pub const GROUP_OWNERS: &str = "owners";

/// How one side names the other in its roster: its `des`, or its user name
/// when `des` is empty or holds characters the text rules refuse (a row
/// stored before they existed: such a nickname would break the XML stream or
/// show reversed).
fn nickname(a: &Account) -> &str {
    if a.des.is_empty() || check_text("des", &a.des).is_err() {
        &a.user_name
    } else {
        &a.des
    }
}

/// What a pair's rosters say, from both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairState {
    /// The owner's item for the device.
    pub owner_side: Option<ItemState>,
    /// The device's item for the owner.
    pub device_side: Option<ItemState>,
}

impl PairState {
    pub fn is_bound(&self) -> bool {
        self.owner_side
            .as_ref()
            .is_some_and(|s| s.is_bound_in(GROUP_DEVICES))
            && self
                .device_side
                .as_ref()
                .is_some_and(|s| s.is_bound_in(GROUP_OWNERS))
    }

    pub fn is_absent(&self) -> bool {
        self.owner_side.is_none() && self.device_side.is_none()
    }
}

/// Reads both rosters of a pair.
pub async fn pair_state(
    app: &App,
    sessions: &Sessions<'_>,
    owner: &Account,
    device: &Account,
) -> Result<PairState, Error> {
    let (oj, dj) = (owner.jid(app.domain())?, device.jid(app.domain())?);
    let (owner_items, device_items) = try_join!(sessions.roster(owner), sessions.roster(device))?;
    Ok(PairState {
        owner_side: roster::find(&owner_items, &dj).map(ItemState::of),
        device_side: roster::find(&device_items, &oj).map(ItemState::of),
    })
}

/// Makes both rosters of a pair bound: items with names and groups, then
/// the two one-way subscriptions; checked with roster gets on both sides.
/// Idempotent.
#[instrument(name = "establish", skip_all, err(level = "debug"))]
pub async fn establish(
    app: &App,
    sessions: &Sessions<'_>,
    owner: &Account,
    device: &Account,
) -> Result<(), Error> {
    let (oj, dj) = (owner.jid(app.domain())?, device.jid(app.domain())?);
    let (os, ds) = try_join!(sessions.open(owner), sessions.open(device))?;
    try_join!(
        roster::set_item(&os, &dj, nickname(device), GROUP_DEVICES),
        roster::set_item(&ds, &oj, nickname(owner), GROUP_OWNERS),
    )?;
    roster::subscribe_one_way(&os, &oj, &ds, &dj).await?;
    app.faults.point("bind.half_way").await?;
    roster::subscribe_one_way(&ds, &dj, &os, &oj).await?;
    let state = pair_state(app, sessions, owner, device).await?;
    if !state.is_bound() {
        tracing::warn!(
            ?state,
            "roster handshake did not end in a mutual subscription"
        );
        return Err(Error::RosterRefused);
    }
    Ok(())
}

/// Removes both roster items of a pair (each removal cancels both
/// subscriptions). A side whose account is being deleted and whose JID no
/// longer logs in is already clean. Checked with roster gets.
#[instrument(name = "dissolve", skip_all, err(level = "debug"))]
pub async fn dissolve(
    app: &App,
    sessions: &Sessions<'_>,
    owner: &Account,
    device: &Account,
) -> Result<(), Error> {
    try_join!(
        remove_side(app, sessions, owner, device),
        remove_side(app, sessions, device, owner),
    )?;
    Ok(())
}

/// Removes `other` from `me`'s roster, and checks.
async fn remove_side(
    app: &App,
    sessions: &Sessions<'_>,
    me: &Account,
    other: &Account,
) -> Result<(), Error> {
    let other_jid = other.jid(app.domain())?;
    let session = match sessions.open(me).await {
        Ok(session) => session,
        Err(Error::JidPassword) if me.state == AccountState::Deleting => return Ok(()),
        Err(e) => return Err(e),
    };
    roster::remove_item(&session, &other_jid).await?;
    let items = roster::get(&session).await?;
    if roster::find(&items, &other_jid).is_some() {
        return Err(Error::Xmpp("roster item not removed".into()));
    }
    Ok(())
}

/// The two accounts of a binding row (in any state).
pub async fn accounts_of(app: &App, b: &Binding) -> Result<(Account, Account), Error> {
    let owner = account::by_id(&app.db, b.owner_id).await?;
    let device = account::by_id(&app.db, b.device_id).await?;
    match (owner, device) {
        (Some(o), Some(d)) => Ok((o, d)),
        _ => Err(Error::internal(anyhow::anyhow!(
            "binding {} without its accounts",
            b.id
        ))),
    }
}

/// Unbinds a row fully: rosters, then the row.
pub async fn unbind_row(app: &App, sessions: &Sessions<'_>, b: &Binding) -> Result<(), Error> {
    let (owner, device) = accounts_of(app, b).await?;
    store::mark_unbinding(&app.db, b.id, clock::now()).await?;
    dissolve(app, sessions, &owner, &device).await?;
    store::delete(&app.db, b.id).await
}

/// Removes a deleted account from every roster it was bound into. True when
/// no binding is left.
#[instrument(name = "forget_account", skip_all, err(level = "debug"))]
pub async fn forget_account(app: &App, account: &Account) -> Result<bool, Error> {
    let rows = store::of_account(&app.db, account.id).await?;
    let sessions = Sessions::new(app);
    let work: Vec<_> = rows.iter().map(|b| unbind_row(app, &sessions, b)).collect();
    let results = concurrently(app, work).await;
    sessions.close().await;
    let mut all = true;
    for (b, r) in rows.iter().zip(results) {
        if let Err(e) = r {
            tracing::warn!(error = %e, binding = b.id, "unbinding a deleted account left for the reconciler");
            all = false;
        }
    }
    Ok(all)
}

/// Runs `work`, at most `binding.concurrency` at a time; the results in
/// the order of `work`.
async fn concurrently<F: Future<Output = Result<(), Error>>>(
    app: &App,
    work: Vec<F>,
) -> Vec<Result<(), Error>> {
    futures::stream::iter(work)
        .buffered(app.config.binding.concurrency)
        .collect()
        .await
}

/// Binds `owner` to each named device (with its bind code, if
/// `binding.proof` asks for one), concurrently; one result per name, in
/// order.
#[instrument(name = "bind", skip_all, fields(items = items.len()))]
pub async fn bind_all(
    app: &App,
    ip: IpAddr,
    owner: &Account,
    items: &[(String, Option<String>)],
) -> Vec<Result<(), Error>> {
    let sessions = Sessions::new(app);
    let work: Vec<_> = items
        .iter()
        .map(|(name, code)| bind_one(app, &sessions, ip, owner, name, code.as_deref()))
        .collect();
    let results = concurrently(app, work).await;
    sessions.close().await;
    results
}

async fn bind_one(
    app: &App,
    sessions: &Sessions<'_>,
    ip: IpAddr,
    owner: &Account,
    name: &str,
    code: Option<&str>,
) -> Result<(), Error> {
    let device = account::active_by_name(&app.db, name)
        .await?
        .ok_or(Error::UnknownUser)?;
    if device.id == owner.id {
        return Err(Error::NotPermitted("cannot bind oneself"));
    }
    if !device.is_device() {
        return Err(Error::NotPermitted("only devices can be bound"));
    }
    if store::of_pair(&app.db, owner.id, device.id)
        .await?
        .is_some_and(|b| b.state == BindingState::Bound)
    {
        return Err(Error::AlreadyBound);
    }
    if app.config.binding.proof == BindProof::BindCode {
        codes::redeem(app, ip, device.id, code).await?;
    }
    let id = store::begin(&app.db, owner.id, device.id, clock::now()).await?;
    if let Err(e) = establish(app, sessions, owner, &device).await {
        // Leave nothing half-done if the server lets us; else the row stays
        // `binding` and the reconciler removes what was made.
        if !matches!(e, Error::Internal(_)) && dissolve(app, sessions, owner, &device).await.is_ok()
        {
            store::delete(&app.db, id).await?;
        }
        return Err(e);
    }
    store::transition(
        &app.db,
        id,
        BindingState::Binding,
        BindingState::Bound,
        clock::now(),
    )
    .await?;
    tracing::info!(binding = id, "bound");
    Ok(())
}

/// Unbinds `me` from each named account (its devices, or, for a device,
/// its owners), concurrently; one result per name, in order.
#[instrument(name = "unbind", skip_all, fields(items = names.len()))]
pub async fn unbind_all(app: &App, me: &Account, names: &[String]) -> Vec<Result<(), Error>> {
    let sessions = Sessions::new(app);
    let work: Vec<_> = names
        .iter()
        .map(|name| unbind_one(app, &sessions, me, name))
        .collect();
    let results = concurrently(app, work).await;
    sessions.close().await;
    results
}

async fn unbind_one(
    app: &App,
    sessions: &Sessions<'_>,
    me: &Account,
    name: &str,
) -> Result<(), Error> {
    let other = account::active_by_name(&app.db, name)
        .await?
        .ok_or(Error::UnknownUser)?;
    if other.id == me.id {
        return Err(Error::NotPermitted("cannot unbind oneself"));
    }
    let (owner_id, device_id) = if me.is_device() {
        (other.id, me.id)
    } else {
        (me.id, other.id)
    };
    let b = store::of_pair(&app.db, owner_id, device_id)
        .await?
        .ok_or(Error::NotBound)?;
    unbind_row(app, sessions, &b).await?;
    tracing::info!(binding = b.id, "unbound");
    Ok(())
}

/// The account behind a roster JID, if it is one jidgate manages as the
/// other side of a binding with `me` (a device for owners, an owner for
/// devices).
pub async fn counterpart_of(
    app: &App,
    me: &Account,
    jid: &BareJid,
) -> Result<Option<Account>, Error> {
    if jid.domain().as_str() != app.config.xmpp.domain {
        return Ok(None);
    }
    let Some(node) = jid.node() else {
        return Ok(None);
    };
    let Some(other) = account::by_jid_local(&app.db, node.as_str()).await? else {
        return Ok(None);
    };
    Ok((other.is_device() != me.is_device()).then_some(other))
}
