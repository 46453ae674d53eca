//! The limits every connection of the token service shares, over all its
//! threads: the connection cap, the database-task cap, the deadlines.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The limits every connection of the token service shares, over all its
/// threads.
pub struct Limits {
    /// One permit per open connection (`token_service.max_connections`).
    pub connections: Arc<Semaphore>,
    /// One permit per database look-up in progress
    /// (`token_service.max_db_tasks`).
    pub db_tasks: Semaphore,
    /// Connections over the cap being told "busy".
    pub refusals: Arc<Semaphore>,
    pub hello_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_in_flight: usize,
    pub max_line: usize,
}
