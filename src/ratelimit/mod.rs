//! Rate limits, answered with code 9 and a `Retry-After`:
//! - [`Limiter`] (governor, GCRA) counts every request: captchas and
//!   registrations per client address, bind codes per device, roster reads
//!   per account;
//! - [`Budget`] (our own GCRA) is taken *before* the work it pays for and
//!   can be given back after: failed logins per address and per device, the
//!   captcha-free logins of an account, `/get_users` names per account and
//!   per address, wrong bind codes per address. Concurrent requests cannot
//!   overspend it, and it keeps at most a fixed number of keys.

pub mod budget;

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

pub use budget::{BUDGET_MAX_KEYS, Budget, Reservation};

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
    pub fn new(cfg: &RateLimitConfig) -> Limits {
        Limits {
            verify_code: Limiter::per_minute(cfg.verify_code_per_minute),
            register: Limiter::per_minute(cfg.register_per_minute),
            login_ip: Budget::per_minute(cfg.failed_login_per_ip_per_minute),
            login_device: Budget::per_minute(cfg.failed_login_per_account_per_minute),
            login_captcha_free: Budget::new(1, Duration::from_secs(cfg.captcha_after_failed_login)),
            get_users_ip: Budget::per_minute(cfg.get_users_names_per_ip_per_minute),
            get_users_account: Budget::per_minute(cfg.get_users_names_per_account_per_minute),
            roster_read: Limiter::per_minute(cfg.get_user_banding_per_account_per_minute),
            bind_code: Limiter::per_minute(cfg.bind_code_per_minute),
            bind_code_fail_ip: Budget::per_minute(cfg.failed_bind_code_per_ip_per_minute),
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
            l.check(&1).unwrap();
        }
        assert!(matches!(l.check(&1), Err(Error::RateLimited { .. })));
        l.check(&2).unwrap();
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
