//! One repair the reconciler can make, named for `/readyz` and the log.

use std::fmt;

use crate::db::{Account, Binding};

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
pub type Stray = (Account, Account, String);

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
pub const PENDING_OPERATIONS: &[&str] = &[
    "undo_create",
    "finish_delete",
    "push_jid_password",
    "undo_binding",
    "finish_unbinding",
];
pub const DRIFT_OPERATIONS: &[&str] = &["rebind", "remove_stray"];

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
