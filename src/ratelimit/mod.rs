//! Rate limits, answered with code 9 and a `Retry-After`:
//! - [`Limiter`] (governor, GCRA) counts every request: captchas and
//!   registrations per client address, bind codes per device, roster reads
//!   per account; with several instances on PostgreSQL, these are counted
//!   in the database (`db::rate_limit`), so the configured rate holds
//!   across every instance together;
//! - [`Budget`] (our own GCRA) is taken *before* the work it pays for and
//!   can be given back after: failed logins per address and per device, the
//!   captcha-free logins of an account, `/get_users` names per account and
//!   per address, wrong bind codes per address. Concurrent requests cannot
//!   overspend it, and it keeps at most a fixed number of keys.

pub mod budget;

use std::fmt::Display;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

pub use budget::{BUDGET_MAX_KEYS, Budget, Reservation};

use crate::config::RateLimitConfig;
use crate::db::{Backend, Db};
use crate::error::Error;

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).expect("at least 1"))
}

/// Counts every request: in memory, or in the database shared by every
/// instance.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    shared: Option<Shared>,
}

/// A limiter's budget in the database: `capacity` requests per minute,
/// under keys `<name>:<key>`.
struct Shared {
    db: Db,
    name: &'static str,
    capacity: i64,
    unit_ms: i64,
}

impl<K: Hash + Eq + Clone + Display> Limiter<K> {
    pub fn per_minute(n: u32) -> Limiter<K> {
        Limiter {
            inner: DefaultKeyedRateLimiter::keyed(quota(n)),
            shared: None,
        }
    }

    /// `n` per minute counted in `db` under `name`, for every instance.
    pub fn shared_per_minute(n: u32, db: Db, name: &'static str) -> Limiter<K> {
        let capacity = i64::from(n.max(1));
        Limiter {
            shared: Some(Shared {
                db,
                name,
                capacity,
                unit_ms: (60_000 / capacity).max(1),
            }),
            ..Self::per_minute(n)
        }
    }

    /// Takes one request's worth, or answers 9.
    pub async fn check(&self, key: &K) -> Result<(), Error> {
        let Some(s) = &self.shared else {
            return self.check_here(key);
        };
        let now_ms = crate::clock::now_ms();
        let key = format!("{}:{key}", s.name);
        match crate::db::rate_limit::take(&s.db, &key, s.capacity, s.unit_ms, now_ms).await? {
            None => Ok(()),
            Some(wait_ms) => Err(Error::RateLimited {
                retry_after: (wait_ms as u64).div_ceil(1000).max(1),
            }),
        }
    }

    fn check_here(&self, key: &K) -> Result<(), Error> {
        self.inner.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited {
                retry_after: wait.as_secs().max(1),
            }
        })
    }

    pub(super) fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// The key of a client address in per-address budgets: an IPv4 address
/// (also when IPv4-mapped), or the /64 network of an IPv6 address, since one
/// client usually holds a whole /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Every limiter of the service.
pub struct Limits {
    pub verify_code: Limiter<IpAddr>,
    pub register: Limiter<IpAddr>,
    /// Failed logins (and cancels, password changes) per client address.
    pub login_ip: Budget<IpAddr>,
    /// Wrong passwords per device (devices cannot solve captchas).
    pub login_device: Budget<String>,
    /// Captcha-free logins per account name (WeChat): one failure, then a
    /// captcha for `captcha_after_failed_login` seconds.
    pub login_captcha_free: Budget<String>,
    pub get_users_ip: Budget<IpAddr>,
    pub get_users_account: Budget<i64>,
    pub roster_read: Limiter<i64>,
    pub bind_code: Limiter<i64>,
    /// Wrong bind codes per client address.
    pub bind_code_fail_ip: Budget<IpAddr>,
}

impl Limits {
    /// In memory only (one instance).
    pub fn new(cfg: &RateLimitConfig) -> Limits {
        Self::for_instances(cfg, None, 1)
    }

    /// The limits of one of `instances` instances on `db`: on PostgreSQL
    /// the per-request limiters are counted in the database; the budgets
    /// keep `1/instances` of their capacity each (never less than one unit,
    /// nor less than one `/get_users` of the most names).
    pub fn for_instances(cfg: &RateLimitConfig, db: Option<&Db>, instances: u32) -> Limits {
        let db = db.filter(|db| db.backend() == Backend::Postgres);
        fn limiter<K: Hash + Eq + Clone + Display>(
            db: Option<&Db>,
            n: u32,
            name: &'static str,
        ) -> Limiter<K> {
            match db {
                Some(db) => Limiter::shared_per_minute(n, db.clone(), name),
                None => Limiter::per_minute(n),
            }
        }
        let n = instances.max(1);
        let share = |capacity: u32| (capacity / n).max(1);
        let names = cfg.get_users_max_names as u32;
        Limits {
            verify_code: limiter(db, cfg.verify_code_per_minute, "verify_code"),
            register: limiter(db, cfg.register_per_minute, "register"),
            login_ip: Budget::per_minute(share(cfg.failed_login_per_ip_per_minute)),
            login_device: Budget::per_minute(share(cfg.failed_login_per_account_per_minute)),
            login_captcha_free: Budget::new(1, Duration::from_secs(cfg.captcha_after_failed_login)),
            get_users_ip: Budget::per_minute(
                share(cfg.get_users_names_per_ip_per_minute).max(names),
            ),
            get_users_account: Budget::per_minute(
                share(cfg.get_users_names_per_account_per_minute).max(names),
            ),
            roster_read: limiter(
                db,
                cfg.get_user_banding_per_account_per_minute,
                "roster_read",
            ),
            bind_code: limiter(db, cfg.bind_code_per_minute, "bind_code"),
            bind_code_fail_ip: Budget::per_minute(share(cfg.failed_bind_code_per_ip_per_minute)),
        }
    }

    /// Drops state of keys that are back to full capacity.
    pub fn prune(&self) {
        self.verify_code.prune();
        self.register.prune();
        self.login_ip.prune();
        self.login_device.prune();
        self.login_captcha_free.prune();
        self.get_users_ip.prune();
        self.get_users_account.prune();
        self.roster_read.prune();
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
            l.check_here(&1).unwrap();
        }
        assert!(matches!(l.check_here(&1), Err(Error::RateLimited { .. })));
        l.check_here(&2).unwrap();
    }

    #[test]
    fn addresses_are_keyed_per_ipv4_address_and_per_ipv6_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
        assert_eq!(address_key(v4), v4);
    }
}
