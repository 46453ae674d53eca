//! The process's open-files limit (RLIMIT_NOFILE), raised at start-up so
//! that the connection caps fit.

use crate::config::Config;

/// Descriptors kept for what is not a client connection: database files,
/// XMPP sessions, listeners, logs, the runtime.
fn reserved_files(config: &Config) -> u64 {
    128 + 3 * u64::from(config.database.max_connections) + config.reconcile.concurrency as u64
}

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit,
/// and says in the log what it is and whether the connection caps fit.
pub fn raise_open_files_limit(config: &Config) {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit");
            return;
        }
    };
    let now = if soft < hard {
        match rlimit::increase_nofile_limit(hard) {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit");
                soft
            }
        }
    } else {
        soft
    };
    tracing::info!(before = soft, soft = now, hard, "open files limit");
    let needed = config.http.max_connections as u64
        + config.token_service.max_connections as u64
        + reserved_files(config);
    if now < needed {
        tracing::warn!(
            limit = now,
            needed,
            "the open files limit is below what http.max_connections and \
             token_service.max_connections need: raise LimitNOFILE (systemd) or \
             lower the caps"
        );
    }
}
