//! Account passwords: Argon2id hashes, computed on a bounded pool of
//! threads so that no flood of logins can take more memory or cores than
//! configured.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use super::random_token;
use crate::config::PasswordConfig;
use crate::error::Error;

/// Hashes and verifies account passwords with Argon2id.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does
    /// not exist so that unknown and known user names take the same time.
    dummy: String,
}

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> anyhow::Result<PasswordHasher> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))?;
        let mut hasher = PasswordHasher {
            params,
            dummy: String::new(),
        };
        hasher.dummy = hasher.hash(&random_token::<16>())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        let hash = self
            .argon2()
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        Ok(hash.to_string())
    }

    /// Checks `password` against a stored PHC string (whose own parameters
    /// are used). `None` checks against a dummy hash and returns false.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let (stored, real) = match stored {
            Some(s) => (s, true),
            None => (self.dummy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let ok = self
            .argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    }
}

/// A piece of Argon2 work, run on a pool thread.
type Job = Box<dyn FnOnce(&PasswordHasher) + Send>;

/// What the password pool has done and is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Argon2 computations running now.
    pub running: usize,
    /// The most that ever ran at once (never more than the workers).
    pub peak_running: usize,
    /// Computations waiting for a worker.
    pub waiting: usize,
    /// Hashes made.
    pub hashed: u64,
    /// Passwords verified (against a stored or the dummy hash).
    pub verified: u64,
    /// Requests refused because the queue was full.
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    peak_running: AtomicUsize,
    waiting: AtomicUsize,
    hashed: AtomicU64,
    verified: AtomicU64,
    refused: AtomicU64,
}

/// Hashes and verifies account passwords on `workers` threads of its own,
/// with at most `queue` computations waiting: Argon2's memory is bounded by
/// `workers × argon2_memory_kib` however many requests arrive, and a request
/// that finds the queue full is refused at once ([`Error::Busy`]).
pub struct PasswordPool {
    tx: SyncSender<Job>,
    counters: Arc<Counters>,
}

impl PasswordPool {
    pub fn new(cfg: &PasswordConfig) -> anyhow::Result<PasswordPool> {
        let hasher = PasswordHasher::new(cfg)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(cfg.queue().max(1));
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        for i in 0..cfg.workers().max(1) {
            let (rx, hasher) = (rx.clone(), hasher.clone());
            std::thread::Builder::new()
                .name(format!("jidgate-argon2-{i}"))
                .spawn(move || worker(&rx, &hasher))?;
        }
        Ok(PasswordPool { tx, counters })
    }

    /// Runs `f` on a worker, or answers [`Error::Busy`] if too many wait.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = tokio::sync::oneshot::channel();
        let counters = self.counters.clone();
        let job: Job = Box::new(move |hasher| {
            counters.waiting.fetch_sub(1, Ordering::SeqCst);
            // The request is gone (timed out, client left): skip the work.
            if done.is_closed() {
                return;
            }
            let now = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
            counters.peak_running.fetch_max(now, Ordering::SeqCst);
            // A panic inside Argon2 must not take the thread down; the
            // request sees its channel closed and answers 1.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(hasher)));
            counters.running.fetch_sub(1, Ordering::SeqCst);
            if let Ok(out) = out {
                let _ = done.send(out);
            }
        });
        self.counters.waiting.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.waiting.fetch_sub(1, Ordering::SeqCst);
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(Error::internal(anyhow::anyhow!(
                    "the password pool has stopped"
                )));
            }
        }
        result
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("a password pool thread failed")))
    }

    /// A PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        let counters = self.counters.clone();
        self.run(move |h| {
            let r = h.hash(password.expose_secret());
            counters.hashed.fetch_add(1, Ordering::Relaxed);
            r
        })
        .await?
        .map_err(Error::Internal)
    }

    /// Checks `password` against `stored`, or against the dummy hash when
    /// `None` (then always false, after the same work).
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, Error> {
        let counters = self.counters.clone();
        self.run(move |h| {
            let ok = h.verify(password.expose_secret(), stored.as_deref());
            counters.verified.fetch_add(1, Ordering::Relaxed);
            ok
        })
        .await
    }

    pub fn stats(&self) -> PoolStats {
        let c = &self.counters;
        PoolStats {
            running: c.running.load(Ordering::SeqCst),
            peak_running: c.peak_running.load(Ordering::SeqCst),
            waiting: c.waiting.load(Ordering::SeqCst),
            hashed: c.hashed.load(Ordering::Relaxed),
            verified: c.verified.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }
}

/// A pool thread: takes jobs until the pool is dropped.
fn worker(rx: &Mutex<Receiver<Job>>, hasher: &PasswordHasher) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job(hasher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            workers: 1,
            queue: 1,
        }
    }

    #[tokio::test]
    async fn the_pool_hashes_verifies_and_counts() {
        let pool = PasswordPool::new(&fast()).unwrap();
        let pw = || SecretString::from("correct horse".to_owned());
        let stored = pool.hash(pw()).await.unwrap();
        assert!(pool.verify(pw(), Some(stored.clone())).await.unwrap());
        assert!(!pool.verify(pw(), None).await.unwrap());
        let s = pool.stats();
        assert_eq!((s.hashed, s.verified, s.refused), (1, 2, 0));
        assert_eq!((s.running, s.waiting, s.peak_running), (0, 0, 1));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_never_runs_more_than_the_workers() {
        // Slow hashes, one worker, one waiting: of 20 at once, most are
        // refused without waiting.
        let pool = Arc::new(
            PasswordPool::new(&PasswordConfig {
                argon2_memory_kib: 8192,
                argon2_iterations: 2,
                ..fast()
            })
            .unwrap(),
        );
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(
                    async move { pool.verify(SecretString::from("x".to_owned()), None).await },
                )
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(Error::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        let s = pool.stats();
        assert!(busy >= 1, "{s:?}");
        assert_eq!(s.refused, busy);
        assert_eq!(s.verified + busy, 20);
        assert_eq!(s.peak_running, 1, "{s:?}");
        assert_eq!((s.running, s.waiting), (0, 0));
    }

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = PasswordHasher::new(&fast()).unwrap();
        let stored = h.hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(h.verify("correct horse", Some(&stored)));
        assert!(!h.verify("correct horsf", Some(&stored)));
        assert!(!h.verify("correct horse", Some("not a hash")));
        assert!(!h.verify("anything", None));
    }
}
