//! The reconciler: makes the XMPP server match the database.
//!
//! Two sweeps:
//! - **pending** (at start-up and every `reconcile.interval`): rows left
//!   mid-way by a crash or an outage, older than `reconcile.grace`:
//!   `creating` accounts are undone (JID deleted, row removed), `deleting`
//!   accounts finished, interrupted JID password changes pushed again,
//!   `binding` rows undone (both roster items removed), `unbinding` rows
//!   finished.
//! - **drift** (every `reconcile.drift_interval`, and `jidgate reconcile`):
//!   reads rosters: a bound pair whose rosters are not both `both` in the
//!   right groups is bound again; a roster entry between an owner and a
//!   device that the database does not know is removed from both sides.
//!
//! Every action is idempotent, so two instances reconciling at once, or a
//! sweep that stops half-way, do no harm.
//!
//! No row is retried forever in silence: every failure is counted per row
//! and operation ([`attempts`], table `repair_attempt`); from
//! `reconcile.alert_after` failures on, each further failure is logged at
//! error level and the row is listed as stuck in `/readyz`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::binding::{self, Sessions};
use crate::db::account as accounts;
use crate::db::binding as bindings;
use crate::db::{Account, AccountState, Binding, BindingState};
use crate::error::Error;
use crate::xmpp::roster::{self, ItemState};

/// One repair.
#[derive(Debug, Clone)]
pub enum Action {
    UndoCreate(Box<Account>),
    FinishDelete(Box<Account>),
    PushJidPassword(Box<Account>),
    UndoBinding(Binding),
    FinishUnbinding(Binding),
    /// Bound in the database, not (fully) on the server.
    Rebind {
        binding: Binding,
        found: String,
    },
    /// On the server, not in the database.
    RemoveStray {
        owner: Box<Account>,
        device: Box<Account>,
        found: String,
    },
}

/// A roster entry the database does not know: owner, device, what was seen.
type Stray = (Account, Account, String);

impl Action {
    /// The row an action is about, as `/readyz` and the attempt count name
    /// it: `account #12`, `binding #5`, `pair #3/#7` (never a user name or
    /// JID).
    pub fn target(&self) -> String {
        match self {
            Action::UndoCreate(a) | Action::FinishDelete(a) | Action::PushJidPassword(a) => {
                format!("account #{}", a.id)
            }
            Action::UndoBinding(b) | Action::FinishUnbinding(b) => format!("binding #{}", b.id),
            Action::Rebind { binding, .. } => format!("binding #{}", binding.id),
            Action::RemoveStray { owner, device, .. } => {
                format!("pair #{}/#{}", owner.id, device.id)
            }
        }
    }

    /// The operation's name.
    pub fn operation(&self) -> &'static str {
        match self {
            Action::UndoCreate(_) => "undo_create",
            Action::FinishDelete(_) => "finish_delete",
            Action::PushJidPassword(_) => "push_jid_password",
            Action::UndoBinding(_) => "undo_binding",
            Action::FinishUnbinding(_) => "finish_unbinding",
            Action::Rebind { .. } => "rebind",
            Action::RemoveStray { .. } => "remove_stray",
        }
    }
}

/// Operations found by the pending sweep, and by the drift sweep.
const PENDING_OPERATIONS: &[&str] = &[
    "undo_create",
    "finish_delete",
    "push_jid_password",
    "undo_binding",
    "finish_unbinding",
];
const DRIFT_OPERATIONS: &[&str] = &["rebind", "remove_stray"];

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::UndoCreate(a) => write!(
                f,
                "undo registration of {} (JID {}): delete JID and row",
                a.user_name, a.jid_local
            ),
            Action::FinishDelete(a) => write!(
                f,
                "finish cancellation of {} (JID {}): delete JID, clean rosters, delete row",
                a.user_name, a.jid_local
            ),
            Action::PushJidPassword(a) => {
                write!(f, "push the new JID password of {}", a.user_name)
            }
            Action::UndoBinding(b) => write!(
                f,
                "undo binding #{} (owner #{} device #{}): remove both roster items",
                b.id, b.owner_id, b.device_id
            ),
            Action::FinishUnbinding(b) => write!(
                f,
                "finish unbinding #{} (owner #{} device #{}): remove both roster items",
                b.id, b.owner_id, b.device_id
            ),
            Action::Rebind { binding, found } => write!(
                f,
                "bind again #{} (owner #{} device #{}): rosters show {found}",
                binding.id, binding.owner_id, binding.device_id
            ),
            Action::RemoveStray {
                owner,
                device,
                found,
            } => write!(
                f,
                "remove roster entries between {} and {} not in the database ({found})",
                owner.user_name, device.user_name
            ),
        }
    }
}

/// Rows left mid-way that are older than the grace period.
pub async fn pending(app: &App, grace: u64) -> Result<Vec<Action>, Error> {
    let before = crate::clock::now() - grace as i64;
    let db = &app.db;
    let mut actions = Vec::new();
    for a in accounts::in_state_before(db, AccountState::Creating, before).await? {
        actions.push(Action::UndoCreate(Box::new(a)));
    }
    for a in accounts::in_state_before(db, AccountState::Deleting, before).await? {
        actions.push(Action::FinishDelete(Box::new(a)));
    }
    for a in accounts::with_pending_jid_pwd(db, before).await? {
        actions.push(Action::PushJidPassword(Box::new(a)));
    }
    for b in bindings::in_state_before(db, BindingState::Binding, before).await? {
        actions.push(Action::UndoBinding(b));
    }
    for b in bindings::in_state_before(db, BindingState::Unbinding, before).await? {
        actions.push(Action::FinishUnbinding(b));
    }
    Ok(actions)
}

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
    let concurrency = app.config.reconcile.concurrency;
    let mut actions = Vec::new();

    // Bound pairs must be bound on both sides.
    let mut after = 0;
    loop {
        let page = bindings::bound_page(&app.db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
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
    }

    // Roster entries between owners and devices must have a row.
    let mut seen: HashSet<(i64, i64)> = HashSet::new();
    let mut after = 0;
    loop {
        let page = accounts::active_page(&app.db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
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
    }
    Ok(actions)
}

/// Carries out one action.
pub async fn apply(app: &App, action: &Action) -> Result<(), Error> {
    match action {
        Action::UndoCreate(a) => {
            let jid = a.jid(app.domain())?;
            app.provisioner.delete_user(&jid).await?;
            accounts::delete(&app.db, a.id).await
        }
        Action::FinishDelete(a) => {
            let jid = a.jid(app.domain())?;
            app.provisioner.delete_user(&jid).await?;
            app.tokens.revoke_account(a.id).await?;
            if binding::forget_account(app, a).await? {
                accounts::delete(&app.db, a.id).await?;
                Ok(())
            } else {
                Err(Error::Xmpp("some rosters could not be cleaned yet".into()))
            }
        }
        Action::PushJidPassword(a) => {
            let Some(next) = &a.jid_pwd_next else {
                return Ok(());
            };
            let jid = a.jid(app.domain())?;
            let password = app
                .jid_cipher
                .decrypt(jid.as_str(), next)
                .map_err(Error::Internal)?;
            app.provisioner.change_password(&jid, &password).await?;
            accounts::commit_jid_pwd(&app.db, a.id, crate::clock::now()).await
        }
        Action::UndoBinding(b) | Action::FinishUnbinding(b) => {
            let sessions = Sessions::new(app);
            let r = binding::unbind_row(app, &sessions, b).await;
            sessions.close().await;
            r
        }
        Action::Rebind { binding: b, .. } => {
            let (owner, device) = binding::accounts_of(app, b).await?;
            let sessions = Sessions::new(app);
            let r = binding::establish(app, &sessions, &owner, &device).await;
            sessions.close().await;
            r
        }
        Action::RemoveStray { owner, device, .. } => {
            let sessions = Sessions::new(app);
            let r = binding::dissolve(app, &sessions, owner, device).await;
            sessions.close().await;
            r
        }
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub done: usize,
    pub failed: usize,
}

/// Applies actions one by one; failures are counted, logged and left for
/// next time (at error level once a row has failed `reconcile.alert_after`
/// times).
pub async fn apply_all(app: &App, actions: &[Action]) -> Report {
    let mut report = Report::default();
    let alert_after = i64::from(app.config.reconcile.alert_after);
    for action in actions {
        let (target, operation) = (action.target(), action.operation());
        match apply(app, action).await {
            Ok(()) => {
                tracing::info!(action = %action, "reconciled");
                report.done += 1;
                if let Err(e) = attempts::clear(&app.db, &target, operation).await {
                    tracing::warn!(error = %e, "clearing a repair attempt count failed");
                }
            }
            Err(e) => {
                report.failed += 1;
                let counted =
                    attempts::record_failure(&app.db, &target, operation, &e, crate::clock::now())
                        .await;
                match counted {
                    Ok(n) if n >= alert_after => tracing::error!(
                        action = %action,
                        row = %target,
                        attempts = n,
                        error = %e,
                        "reconciliation keeps failing; needs an operator (listed in /readyz)"
                    ),
                    Ok(n) => tracing::warn!(
                        action = %action,
                        attempts = n,
                        error = %e,
                        "reconciliation failed; will retry"
                    ),
                    Err(count_error) => tracing::error!(
                        action = %action,
                        error = %e,
                        %count_error,
                        "reconciliation failed and its attempt could not be counted"
                    ),
                }
            }
        }
    }
    report
}

/// One pending sweep with the configured grace. Counts of rows no longer
/// pending (finished by someone else) are dropped first.
pub async fn sweep_pending(app: &App) -> Result<Report, Error> {
    let all_pending = pending(app, 0).await?;
    attempts::keep_only(&app.db, PENDING_OPERATIONS, &all_pending).await?;
    let actions = pending(app, app.config.reconcile.grace).await?;
    Ok(apply_all(app, &actions).await)
}

/// One drift sweep. Counts of drift that is gone are dropped first.
pub async fn sweep_drift(app: &App) -> Result<Report, Error> {
    let actions = drift(app).await?;
    attempts::keep_only(&app.db, DRIFT_OPERATIONS, &actions).await?;
    Ok(apply_all(app, &actions).await)
}

/// The background loop: a pending sweep as soon as the XMPP server is
/// reachable and every interval after; a drift sweep every drift interval;
/// housekeeping (expired nonces, captchas, codes, tokens, limiter state).
pub async fn run(app: App, stop: CancellationToken) {
    let interval = Duration::from_secs(app.config.reconcile.interval.max(1));
    let drift_every = app.config.reconcile.drift_interval;
    let mut last_drift = crate::clock::now();
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = app.provisioner.wait_ready(interval) => {}
    }
    loop {
        housekeeping(&app).await;
        if app.provisioner.is_ready() {
            match sweep_pending(&app).await {
                Ok(r) if r != Report::default() => tracing::info!(?r, "pending sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pending sweep failed"),
            }
            if drift_every > 0 && crate::clock::now() - last_drift >= drift_every as i64 {
                last_drift = crate::clock::now();
                match sweep_drift(&app).await {
                    Ok(r) => tracing::info!(?r, "drift sweep"),
                    Err(e) => tracing::warn!(error = %e, "drift sweep failed"),
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn housekeeping(app: &App) {
    let now = crate::clock::now();
    let db = &app.db;
    let results = [
        crate::db::nonce::prune(db, now).await.err(),
        crate::db::captcha::prune(db, now).await.err(),
        crate::db::bind_code::prune(db, now).await.err(),
    ];
    for e in results.into_iter().flatten() {
        tracing::warn!(error = %e, "housekeeping failed");
    }
    if let Err(e) = app.tokens.prune(now).await {
        tracing::warn!(error = %e, "token housekeeping failed");
    }
    app.limits.prune();
}

/// Failed attempts per row and operation (table `repair_attempt`).
pub mod attempts {
    use std::collections::HashSet;

    use super::Action;
    use crate::db::{Db, repair_attempt};
    use crate::error::Error;

    pub use repair_attempt::{Stuck, clear, record_failure, stuck};

    /// Forgets the failures of `operations` whose row is not among
    /// `current` (the row left its pending state, or the drift is gone).
    pub async fn keep_only(db: &Db, operations: &[&str], current: &[Action]) -> Result<(), Error> {
        let keep: HashSet<(String, &str)> = current
            .iter()
            .map(|a| (a.target(), a.operation()))
            .collect();
        for (target, operation) in repair_attempt::all(db).await? {
            if operations.contains(&operation.as_str())
                && !keep.contains(&(target.clone(), operation.as_str()))
            {
                clear(db, &target, &operation).await?;
            }
        }
        Ok(())
    }
}
