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
//!
//! - [`action`]: the repairs; [`mod@pending`] and [`mod@drift`]: the sweeps
//!   that find them; [`mod@apply`]: carrying them out; [`attempts`]:
//!   failures.

pub mod action;
pub mod apply;
pub mod attempts;
pub mod drift;
pub mod pending;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::instrument;

pub use action::Action;
pub use apply::{Report, apply, apply_all, apply_each};
pub use drift::{drift, drift_each};
pub use pending::pending;

use crate::app::App;
use crate::db::shared::Leadership;
use crate::error::Error;
use action::{DRIFT_OPERATIONS, PENDING_OPERATIONS};

/// How the last sweeps of this process went (for the console): when, and
/// what they did, or the error that stopped them.
#[derive(Debug, Clone, Default)]
pub struct LastSweeps {
    pub pending: Option<(i64, Result<Report, String>)>,
    pub drift: Option<(i64, Result<Report, String>)>,
}

static LAST: std::sync::Mutex<LastSweeps> = std::sync::Mutex::new(LastSweeps {
    pending: None,
    drift: None,
});

/// The last pending and drift sweeps run in this process.
pub fn last_sweeps() -> LastSweeps {
    LAST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn remember(drift: bool, r: &Result<Report, Error>) {
    let entry = Some((
        crate::clock::now(),
        match r {
            Ok(report) => Ok(report.clone()),
            Err(e) => Err(e.to_string()),
        },
    ));
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if drift {
        last.drift = entry;
    } else {
        last.pending = entry;
    }
}

/// One pending sweep with the configured grace. Counts of rows no longer
/// pending (finished by someone else) are dropped first.
#[instrument(name = "sweep_pending", skip_all, err(level = "debug"))]
pub async fn sweep_pending(app: &App) -> Result<Report, Error> {
    let r = async {
        let all_pending = pending(app, 0).await?;
        attempts::keep_only(&app.db, PENDING_OPERATIONS, &all_pending).await?;
        let actions = pending(app, app.config.reconcile.grace).await?;
        Ok(apply_all(app, &actions).await)
    }
    .await;
    remember(false, &r);
    r
}

/// One drift sweep. Counts of drift that is gone are dropped first.
#[instrument(name = "sweep_drift", skip_all, err(level = "debug"))]
pub async fn sweep_drift(app: &App) -> Result<Report, Error> {
    let r = async {
        let actions = drift(app).await?;
        attempts::keep_only(&app.db, DRIFT_OPERATIONS, &actions).await?;
        Ok(apply_all(app, &actions).await)
    }
    .await;
    remember(true, &r);
    r
}

/// The background loop: a pending sweep as soon as the XMPP server is
/// reachable and every interval after; a drift sweep every drift interval;
/// housekeeping (expired nonces, captchas, codes, tokens, limiter state).
///
/// With several instances on PostgreSQL the sweeps run on one instance at a
/// time: the one holding the reconciler's advisory lock (`db::shared`),
/// taken on a connection of its own, so that it is released when that
/// instance dies and taken by another within an interval. Housekeeping
/// runs on every instance (its deletes are idempotent).
pub async fn run(app: App, stop: CancellationToken) {
    let interval = Duration::from_secs(app.config.reconcile.interval.max(1));
    let drift_every = app.config.reconcile.drift_interval;
    let mut last_drift = crate::clock::now();
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = app.provisioner.wait_ready(interval) => {}
    }
    let mut leader: Option<Leadership> = None;
    loop {
        housekeeping(&app).await;
        lead(&app, &mut leader).await;
        if leader.is_some() && app.provisioner.is_ready() {
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

/// Keeps or takes the reconciler's lock; `leader` says whether this
/// instance holds it.
async fn lead(app: &App, leader: &mut Option<Leadership>) {
    if let Some(l) = leader {
        if l.held().await {
            return;
        }
        tracing::warn!(instance = app.instance_id(), "reconciler lock lost");
        *leader = None;
    }
    match Leadership::try_take(&app.db).await {
        Ok(Some(l)) => {
            tracing::info!(
                instance = app.instance_id(),
                "reconciler lock taken: this instance reconciles"
            );
            *leader = Some(l);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot take the reconciler lock"),
    }
}

async fn housekeeping(app: &App) {
    let now = crate::clock::now();
    let db = &app.db;
    let results = [
        crate::db::nonce::prune(db, now).await.err(),
        crate::db::captcha::prune(db, now).await.err(),
        crate::db::bind_code::prune(db, now).await.err(),
        crate::db::rate_limit::prune(db, crate::clock::now_ms())
            .await
            .err(),
    ];
    for e in results.into_iter().flatten() {
        tracing::warn!(error = %e, "housekeeping failed");
    }
    if let Err(e) = app.tokens.prune(now).await {
        tracing::warn!(error = %e, "token housekeeping failed");
    }
    app.limits.prune();
}
