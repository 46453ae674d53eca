//! Failed attempts per row and operation (table `repair_attempt`): counted
//! so that no row is retried forever in silence.

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
