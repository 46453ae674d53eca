//! Verified access tokens kept in memory: the token service's hot path.
//!
//! An entry answers for at most `tokens.cache_revalidate` seconds before
//! the database is asked again. A revocation drops the entries it ends, and
//! a database read that raced a revocation is never cached: the generation
//! is read before the database, and the entry is inserted only if it is
//! unchanged, checked under the lock of the entry's shard; a revocation
//! bumps the generation before its sweep takes that lock, so either the
//! check sees the bump, or the sweep sees the entry.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use super::{TokenInfo, reply_tail};
use crate::error::Error;

/// Upper bound on cached verifications; past it the cache starts over.
const CACHE_MAX: usize = 1_000_000;

#[derive(Debug, Clone)]
struct Cached {
    info: TokenInfo,
    checked_at: i64,
    /// The token service's reply members, encoded once.
    reply_tail: Box<[u8]>,
}

/// Cache keys are SHA-256 digests: their first eight bytes are already a
/// uniform hash, no need for SipHash on top.
#[derive(Clone, Default)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    // The length prefix of the key array carries nothing.
    fn write_usize(&mut self, _: usize) {}
}

type DigestState = std::hash::BuildHasherDefault<DigestHasher>;

/// Verified access tokens by digest.
pub struct TokenCache {
    map: DashMap<[u8; 32], Cached, DigestState>,
    /// Bumped by every revocation before it sweeps the cache; a database
    /// read is cached only if no revocation started since it began.
    generation: AtomicU64,
    revalidate: i64,
}

impl TokenCache {
    pub fn new(revalidate: i64) -> TokenCache {
        TokenCache {
            map: DashMap::default(),
            generation: AtomicU64::new(0),
            revalidate,
        }
    }

    /// Hands the cached answer for `hash` (and its encoded [`reply_tail`])
    /// to `f` without copying: 106 if it has expired since; `None` if there
    /// is none, or it is due for a database check.
    pub fn with<R>(
        &self,
        hash: &[u8; 32],
        now: i64,
        f: impl FnOnce(Result<(&TokenInfo, &[u8]), Error>) -> R,
    ) -> Option<R> {
        let entry = self.map.get(hash)?;
        if now >= entry.info.expires_at {
            drop(entry);
            self.map.remove(hash);
            return Some(f(Err(Error::AccessTokenExpired)));
        }
        if now - entry.checked_at > self.revalidate {
            return None;
        }
        Some(f(Ok((&entry.info, &entry.reply_tail))))
    }

    /// The generation to read before asking the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches what the database said at `generation`, unless a revocation
    /// has started since.
    pub fn insert(&self, hash: [u8; 32], info: &TokenInfo, now: i64, generation: u64) {
        if self.map.len() >= CACHE_MAX {
            self.map.clear();
        }
        let cached = Cached {
            reply_tail: reply_tail(info).into_boxed_slice(),
            info: info.clone(),
            checked_at: now,
        };
        // Holds the shard's lock until the end of the statement.
        let entry = self.map.entry(hash);
        if self.generation.load(Ordering::SeqCst) == generation {
            entry.insert(cached);
        }
    }

    /// Forgets one token (the database no longer knows it).
    pub fn remove(&self, hash: &[u8; 32]) {
        self.map.remove(hash);
    }

    /// Drops the verifications of revoked tokens (already deleted from the
    /// database). The generation goes up first, so a look-up that read the
    /// database before the deletion does not cache what it read.
    pub fn forget(&self, revoked: impl Fn(&TokenInfo) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.retain(|_, c| !revoked(&c.info));
    }

    /// Drops expired entries.
    pub fn prune(&self, now: i64) {
        self.map.retain(|_, c| c.info.expires_at > now);
    }
}
