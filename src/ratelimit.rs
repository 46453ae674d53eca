//! Rate limits (governor, GCRA): per client address on captcha and
//! registration, and on *failed* logins and bind codes per address and per
//! account. Answered with code 9 and a `Retry-After`.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitConfig;
use crate::error::Error;

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("at least 1"))
}

/// Counts every request.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn per_minute(n: u32) -> Limiter<K> {
        Limiter {
            inner: DefaultKeyedRateLimiter::keyed(quota(n)),
        }
    }

    /// Takes one request's worth, or answers 9.
    pub fn check(&self, key: &K) -> Result<(), Error> {
        self.inner.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited {
                retry_after: wait.as_secs().max(1),
            }
        })
    }

    fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// Counts failures only: `check` before an attempt, `fail` after one failed.
/// Once failures exceed the quota, attempts are refused until it recovers.
pub struct FailureLimiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    blocked: DashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    pub fn per_minute(n: u32) -> FailureLimiter<K> {
        FailureLimiter {
            inner: DefaultKeyedRateLimiter::keyed(quota(n)),
            blocked: DashMap::new(),
        }
    }

    pub fn check(&self, key: &K) -> Result<(), Error> {
        if let Some(until) = self.blocked.get(key).map(|e| *e.value()) {
            let now = Instant::now();
            if until > now {
                return Err(Error::RateLimited {
                    retry_after: (until - now).as_secs().max(1),
                });
            }
            self.blocked.remove(key);
        }
        Ok(())
    }

    pub fn fail(&self, key: &K) {
        if let Err(not_until) = self.inner.check_key(key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.blocked.insert(
                key.clone(),
                Instant::now() + wait.max(Duration::from_secs(1)),
            );
        }
    }

    fn prune(&self) {
        let now = Instant::now();
        self.blocked.retain(|_, until| *until > now);
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// Every limiter of the service.
pub struct Limits {
    pub verify_code: Limiter<IpAddr>,
    pub register: Limiter<IpAddr>,
    pub login_ip: FailureLimiter<IpAddr>,
    pub login_account: FailureLimiter<String>,
    pub bind_code: Limiter<i64>,
    pub bind_code_fail_ip: FailureLimiter<IpAddr>,
}

impl Limits {
    pub fn new(cfg: &RateLimitConfig) -> Limits {
        Limits {
            verify_code: Limiter::per_minute(cfg.verify_code_per_minute),
            register: Limiter::per_minute(cfg.register_per_minute),
            login_ip: FailureLimiter::per_minute(cfg.failed_login_per_ip_per_minute),
            login_account: FailureLimiter::per_minute(cfg.failed_login_per_account_per_minute),
            bind_code: Limiter::per_minute(cfg.bind_code_per_minute),
            bind_code_fail_ip: FailureLimiter::per_minute(cfg.failed_bind_code_per_ip_per_minute),
        }
    }

    /// Drops state of keys that are back to full capacity.
    pub fn prune(&self) {
        self.verify_code.prune();
        self.register.prune();
        self.login_ip.prune();
        self.login_account.prune();
        self.bind_code.prune();
        self.bind_code_fail_ip.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_after_quota() {
        let l = Limiter::<u8>::per_minute(3);
        for _ in 0..3 {
            l.check(&1).unwrap();
        }
        assert!(matches!(l.check(&1), Err(Error::RateLimited { .. })));
        l.check(&2).unwrap();
    }

    #[test]
    fn failure_limiter_counts_only_failures() {
        let l = FailureLimiter::<u8>::per_minute(2);
        for _ in 0..10 {
            l.check(&1).unwrap();
        }
        l.fail(&1);
        l.fail(&1);
        l.check(&1).unwrap();
        l.fail(&1);
        match l.check(&1) {
            Err(Error::RateLimited { retry_after }) => assert!(retry_after >= 1),
            other => panic!("{other:?}"),
        }
        l.check(&2).unwrap();
    }
}
