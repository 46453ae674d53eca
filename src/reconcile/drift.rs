//! The drift sweep: rosters read from the XMPP server, against the
//! database.

use std::collections::HashSet;

use futures::StreamExt;

use super::action::{Action, Stray};
use crate::app::App;
use crate::binding::{self, Sessions};
use crate::db::account as accounts;
use crate::db::binding as bindings;
use crate::error::Error;
use crate::xmpp::roster::{self, ItemState};

fn describe(state: &binding::PairState) -> String {
    let side = |s: &Option<ItemState>| match s {
        None => "missing".to_owned(),
        Some(s) => format!("{} in {:?}", s.subscription, s.groups),
    };
    format!(
        "owner side {}, device side {}",
        side(&state.owner_side),
        side(&state.device_side)
    )
}

const PAGE: i64 = 200;

/// Reads rosters and lists what disagrees with the database.
pub async fn drift(app: &App) -> Result<Vec<Action>, Error> {
    drift_each(app, |_| {}).await
}

/// [`drift`], telling `read` how many rows (bound pairs, then active
/// accounts) each page covered, for a progress display; the total is
/// [`crate::db::stats::drift_rows`].
pub async fn drift_each(app: &App, mut read: impl FnMut(u64)) -> Result<Vec<Action>, Error> {
    let concurrency = app.config.reconcile.concurrency;
    let mut actions = Vec::new();

    // Bound pairs must be bound on both sides.
    let mut after = 0;
    loop {
        let page = bindings::bound_page(&app.db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let rows = page.len() as u64;
        let found: Vec<Result<Option<Action>, Error>> = futures::stream::iter(page)
            .map(|b| async move {
                let (owner, device) = binding::accounts_of(app, &b).await?;
                let sessions = Sessions::new(app);
                let state = binding::pair_state(app, &sessions, &owner, &device).await;
                sessions.close().await;
                let state = state?;
                Ok((!state.is_bound()).then(|| Action::Rebind {
                    found: describe(&state),
                    binding: b,
                }))
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for f in found {
            actions.extend(f?);
        }
        read(rows);
    }

    // Roster entries between owners and devices must have a row.
    let mut seen: HashSet<(i64, i64)> = HashSet::new();
    let mut after = 0;
    loop {
        let page = accounts::active_page(&app.db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let rows = page.len() as u64;
        let found: Vec<Result<Vec<Stray>, Error>> = futures::stream::iter(page)
            .map(|me| async move {
                let sessions = Sessions::new(app);
                let items = sessions.roster(&me).await;
                sessions.close().await;
                let mut strays = Vec::new();
                for item in items? {
                    let Some(other) = binding::counterpart_of(app, &me, &item.jid).await? else {
                        continue;
                    };
                    let (owner, device) = if me.is_device() {
                        (other, me.clone())
                    } else {
                        (me.clone(), other)
                    };
                    if bindings::of_pair(&app.db, owner.id, device.id)
                        .await?
                        .is_none()
                    {
                        let found = format!(
                            "{} has {} as {}",
                            me.user_name,
                            item.jid,
                            roster::subscription_name(&item.subscription)
                        );
                        strays.push((owner, device, found));
                    }
                }
                Ok(strays)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for f in found {
            for (owner, device, found) in f? {
                if seen.insert((owner.id, device.id)) {
                    actions.push(Action::RemoveStray {
                        owner: Box::new(owner),
                        device: Box::new(device),
                        found,
                    });
                }
            }
        }
        read(rows);
    }
    Ok(actions)
}
