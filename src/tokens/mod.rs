//! Access and refresh tokens.
//!
//! A login opens a session with an access token (short-lived) and a refresh
//! token (long-lived, single use: `/refresh_token` swaps it for a new pair,
//! and presenting a used one revokes the whole session). Tokens are 256-bit
//! random strings stored only as SHA-256 digests.
//!
//! A session remembers the app (`app_id` and its kind) that opened it. A
//! token is *used* (`/get_bind_code`, binding calls, `/get_users`,
//! `/refresh_token`, `/logout`) only by a request signed by that same app
//! and naming the token's own user; since a device's requests are signed
//! with the key derived from their `user_name`, a device's token acts only
//! under that device's own key. Services that verify other people's tokens
//! (`/verify_access_token`, the token service) are not using them.
//!
//! An account has at most `tokens.max_sessions_per_account` sessions: a
//! login past the cap ends the session least recently opened or refreshed.
//!
//! Verification is the hot path of the token service: a verified access
//! token is kept in memory and answered from there for at most
//! `tokens.cache_revalidate` seconds before the database is asked again.
//! Revocations on this instance drop cached entries at once, and a database
//! read that raced a revocation is never cached (see [`Tokens::lookup`] and
//! `cache.rs`). With several instances on PostgreSQL, each revocation is
//! also announced (`NOTIFY`) and every instance drops its entries when it
//! hears it (`notices.rs`); without the notice (SQLite, `database.notify`
//! off, or the listener down) another instance's cached answer lasts at
//! most `tokens.cache_revalidate` seconds.

mod cache;
pub mod info;
pub mod notices;

use std::sync::Arc;

use serde::Serialize;
use tracing::instrument;

use crate::config::TokenConfig;
use crate::crypto::{random_token, sha256};
use crate::db::Db;
use crate::db::session::{self, NewPair, Refreshed};
use crate::db::shared::{self, Revoked};
use crate::error::Error;
use crate::faults::Faults;
use cache::TokenCache;
use info::owned_by;
pub use info::{Caller, TokenInfo, Verification, reply_tail};

const ACCESS_PREFIX: &str = "jgt_";
const REFRESH_PREFIX: &str = "jgr_";
/// Prefix + base64url of 32 bytes.
const TOKEN_LEN: usize = 4 + 43;

/// A fresh token pair.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub refresh_token: String,
    pub refresh_expires_at: i64,
}

/// The stored digests of a fresh pair.
struct PairHashes {
    access: [u8; 32],
    refresh: [u8; 32],
}

impl PairHashes {
    fn pair<'a>(&'a self, issued: &Issued) -> NewPair<'a> {
        NewPair {
            access_hash: &self.access,
            access_expires_at: issued.expires_at,
            refresh_hash: &self.refresh,
            refresh_expires_at: issued.refresh_expires_at,
        }
    }
}

/// Token issue, verification, refresh and revocation.
pub struct Tokens {
    db: Db,
    cache: TokenCache,
    access_ttl: i64,
    refresh_ttl: i64,
    max_sessions: i64,
    faults: Faults,
    /// Announce revocations to the other instances (`database.notify`).
    notify: bool,
}

fn well_formed(token: &str, prefix: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(prefix)
        && token[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Tokens {
    pub fn new(db: Db, cfg: &TokenConfig, faults: Faults) -> Tokens {
        Tokens {
            db,
            cache: TokenCache::new(cfg.cache_revalidate as i64),
            access_ttl: cfg.access_ttl.max(1) as i64,
            refresh_ttl: cfg.refresh_ttl.max(1) as i64,
            max_sessions: cfg.max_sessions_per_account.max(1) as i64,
            faults,
            notify: true,
        }
    }

    /// Whether revocations are announced to other instances (PostgreSQL
    /// `NOTIFY`; on by default, a no-op on SQLite).
    pub fn with_notices(mut self, notify: bool) -> Tokens {
        self.notify = notify;
        self
    }

    /// Drops what a revocation (here or on another instance) ended.
    pub fn forget(&self, revoked: &Revoked) {
        match revoked {
            Revoked::Account(id) => self.cache.forget(|t| t.account_id == *id),
            Revoked::Sessions(ids) => self.cache.forget(|t| ids.contains(&t.session_id)),
        }
    }

    /// Drops every cached verification (notices may have been missed).
    pub fn forget_all(&self) {
        self.cache.forget(|_| true);
    }

    /// Drops what `revoked` ended here, then tells the other instances. A
    /// failed notice is logged: the revocation stands, and the others see
    /// it within `tokens.cache_revalidate`.
    async fn revoked(&self, revoked: Revoked) {
        self.forget(&revoked);
        if self.notify
            && let Err(e) = shared::notify_revoked(&self.db, &revoked).await
        {
            tracing::warn!(error = %e, ?revoked, "revocation notice not sent");
        }
    }

    /// Opens a session for `account_id`, issued to the app that logged in,
    /// with a new token pair. Past the account's session cap, the sessions
    /// least recently opened or refreshed end.
    #[instrument(name = "issue_tokens", skip_all, err(level = "debug"))]
    pub async fn issue(&self, account_id: i64, app: Caller<'_>, now: i64) -> Result<Issued, Error> {
        let (issued, hashes) = self.new_pair(now);
        let (_, evicted) = session::open(
            &self.db,
            account_id,
            app.app_id,
            app.kind,
            now,
            now + self.refresh_ttl,
            &hashes.pair(&issued),
            self.max_sessions,
        )
        .await?;
        if !evicted.is_empty() {
            self.revoked(Revoked::Sessions(evicted)).await;
        }
        Ok(issued)
    }

    /// A fresh token pair and the digests that are stored.
    fn new_pair(&self, now: i64) -> (Issued, PairHashes) {
        let issued = Issued {
            expires_in: self.access_ttl,
            expires_at: now + self.access_ttl,
            refresh_expires_at: now + self.refresh_ttl,
            access_token: format!("{ACCESS_PREFIX}{}", random_token::<32>()),
            refresh_token: format!("{REFRESH_PREFIX}{}", random_token::<32>()),
        };
        let hashes = PairHashes {
            access: sha256(issued.access_token.as_bytes()),
            refresh: sha256(issued.refresh_token.as_bytes()),
        };
        (issued, hashes)
    }

    /// Answers from memory when it can, handing the answer (and its encoded
    /// [`reply_tail`]) to `f` without copying: `None` means "ask
    /// [`Tokens::verify`]". The token service's hot path.
    pub fn with_cached<R>(
        &self,
        token: &str,
        now: i64,
        f: impl FnOnce(Result<(&TokenInfo, &[u8]), Error>) -> R,
    ) -> Option<R> {
        if !well_formed(token, ACCESS_PREFIX) {
            return Some(f(Err(Error::AccessToken)));
        }
        self.cache.with(&sha256(token.as_bytes()), now, f)
    }

    /// Verifies an access token: 4 if unknown or revoked, 106 if expired.
    pub async fn verify(&self, token: &str, now: i64) -> Result<TokenInfo, Error> {
        if let Some(answer) = self.with_cached(token, now, |r| r.map(|(info, _)| info.clone())) {
            return answer;
        }
        self.lookup(token, now).await
    }

    /// Verifies an access token against the database (not the cache) and
    /// caches the result; for callers that already missed the cache.
    ///
    /// A revocation may commit between this read and the cache insert; the
    /// revocation's cache sweep may then run before the insert. So the
    /// generation is read before the database, and the entry is inserted
    /// only if it is unchanged, checked under the lock of the entry's cache
    /// shard: a revocation bumps the generation before its sweep takes that
    /// lock, so either the check sees the bump, or the sweep sees the entry.
    pub async fn lookup(&self, token: &str, now: i64) -> Result<TokenInfo, Error> {
        let hash = sha256(token.as_bytes());
        let generation = self.cache.generation();
        let row = session::access_token(&self.db, &hash).await?;
        self.faults.point("tokens.lookup.after_read").await?;
        let Some(row) = row else {
            self.cache.remove(&hash);
            return Err(Error::AccessToken);
        };
        let info = TokenInfo {
            account_id: row.account_id,
            session_id: row.session_id,
            user_name: Arc::from(row.user_name),
            type_: row.type_,
            expires_at: row.expires_at,
            app_id: Arc::from(row.app_id),
            app_kind: row.app_kind,
        };
        if now >= info.expires_at {
            return Err(Error::AccessTokenExpired);
        }
        self.cache.insert(hash, &info, now, generation);
        Ok(info)
    }

    /// Verifies an access token for use by `caller` acting as `user_name`
    /// (if given): 4 unless the token was issued to that very app (same
    /// `app_id`, same kind) and belongs to that user; 106 if expired.
    pub async fn authorize(
        &self,
        token: &str,
        caller: Caller<'_>,
        user_name: Option<&str>,
        now: i64,
    ) -> Result<TokenInfo, Error> {
        let info = self.verify(token, now).await?;
        if !owned_by(
            &info.app_id,
            info.app_kind,
            &info.user_name,
            caller,
            user_name,
        ) {
            return Err(Error::AccessToken);
        }
        Ok(info)
    }

    /// Ends a session (`/logout`): its access and refresh tokens stop
    /// working at once.
    #[instrument(name = "end_session", skip_all, err(level = "debug"))]
    pub async fn end_session(&self, session_id: i64) -> Result<(), Error> {
        session::end(&self.db, session_id).await?;
        self.revoked(Revoked::Sessions(vec![session_id])).await;
        Ok(())
    }

    /// Swaps a refresh token for a new pair in the same session, for the app
    /// the session was issued to (`caller`, acting as `user_name` if given;
    /// 4 otherwise, and nothing changes). A used refresh token revokes the
    /// session (someone else has a copy).
    #[instrument(name = "refresh_tokens", skip_all, err(level = "debug"))]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        caller: Caller<'_>,
        user_name: Option<&str>,
        now: i64,
    ) -> Result<(Issued, i64), Error> {
        if !well_formed(refresh_token, REFRESH_PREFIX) {
            return Err(Error::RefreshToken);
        }
        let hash = sha256(refresh_token.as_bytes());
        let (issued, hashes) = self.new_pair(now);
        let refreshed = session::refresh(
            &self.db,
            &hash,
            now,
            &hashes.pair(&issued),
            now + self.refresh_ttl,
            |t| owned_by(&t.app_id, t.app_kind, &t.user_name, caller, user_name),
        )
        .await?;
        match refreshed {
            Refreshed::Renewed {
                session_id,
                account_id,
            } => {
                // The session's old access token is gone.
                self.revoked(Revoked::Sessions(vec![session_id])).await;
                Ok((issued, account_id))
            }
            Refreshed::Unknown => Err(Error::RefreshToken),
            // Someone else's: nothing changed.
            Refreshed::NotOwned => Err(Error::AccessToken),
            // Used (or expired): the session is ended.
            Refreshed::Ended { session_id } => {
                self.revoked(Revoked::Sessions(vec![session_id])).await;
                Err(Error::RefreshToken)
            }
        }
    }

    /// Revokes every session of an account (cancel, password change).
    #[instrument(name = "revoke_tokens", skip_all, err(level = "debug"))]
    pub async fn revoke_account(&self, account_id: i64) -> Result<(), Error> {
        session::end_all(&self.db, account_id).await?;
        self.revoked(Revoked::Account(account_id)).await;
        Ok(())
    }

    /// Deletes expired tokens and sessions; drops expired cache entries.
    pub async fn prune(&self, now: i64) -> Result<(), Error> {
        session::prune(&self.db, now).await?;
        self.cache.prune(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let t = format!("{ACCESS_PREFIX}{}", random_token::<32>());
        assert!(well_formed(&t, ACCESS_PREFIX));
        assert!(!well_formed(&t, REFRESH_PREFIX));
        assert!(!well_formed(&t[..t.len() - 1], ACCESS_PREFIX));
        let mut bad = t.clone();
        bad.replace_range(10..11, "!");
        assert!(!well_formed(&bad, ACCESS_PREFIX));
    }
}
