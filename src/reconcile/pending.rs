//! The pending sweep: rows left mid-way by a crash or an outage.

use super::Action;
use crate::app::App;
use crate::db::account as accounts;
use crate::db::binding as bindings;
use crate::db::{AccountState, BindingState};
use crate::error::Error;

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
