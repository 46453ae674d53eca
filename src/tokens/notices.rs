//! Hearing other instances' revocations: a task listens on PostgreSQL's
//! revocation channel and drops the cached verifications each notice ends.
//! When the listener's connection drops, notices may have been missed, so
//! the whole cache is dropped, and the listener reconnects (with a growing
//! pause while the database is away); meanwhile the cache revalidates
//! within `tokens.cache_revalidate` as it always does. On SQLite (one
//! instance) and with `database.notify` off, no task runs.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Tokens;
use crate::backoff::Backoff;
use crate::db::Db;
use crate::db::shared::{Heard, RevocationListener};

/// Longest pause between reconnection attempts.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Listens until `stop`; returns at once where there is nothing to hear.
pub async fn follow(tokens: &Tokens, db: &Db, enabled: bool, stop: CancellationToken) {
    if !enabled {
        return;
    }
    let mut backoff = Backoff::new(Duration::from_millis(100), MAX_PAUSE);
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = RevocationListener::connect(db) => c,
        };
        let mut listener = match connected {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "revocation listener cannot connect; caches revalidate meanwhile");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        // Whatever was revoked while nobody listened.
        tokens.forget_all();
        backoff.reset();
        tracing::debug!("listening for revocations");
        loop {
            let heard = tokio::select! {
                _ = stop.cancelled() => return,
                h = listener.next() => h,
            };
            match heard {
                Ok(Heard::Revoked(r)) => tokens.forget(&r),
                Ok(Heard::Lost) => {
                    tracing::warn!("revocation listener lost its connection; reconnecting");
                    tokens.forget_all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation listener failed; reconnecting");
                    tokens.forget_all();
                    break;
                }
            }
        }
    }
}
