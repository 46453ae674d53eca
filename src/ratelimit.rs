//! Rate limits, answered with code 9 and a `Retry-After`:
//! - [`Limiter`] (governor, GCRA) counts every request: captchas and
//!   registrations per client address, bind codes per device, roster reads
//!   per account;
//! - [`Budget`] (our own GCRA) is taken *before* the work it pays for and
//!   can be given back after: failed logins per address and per device, the
//!   captcha-free logins of an account, `/get_users` names per account and
//!   per address, wrong bind codes per address. Concurrent requests cannot
//!   overspend it, and it keeps at most a fixed number of keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Most keys one [`Budget`] remembers (about 100 bytes each).
pub const BUDGET_MAX_KEYS: usize = 100_000;

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

/// A keyed budget of `capacity` units that come back evenly over `period`
/// (GCRA: per key, the time at which the budget is full again).
///
/// Units are taken before the work they pay for ([`Budget::reserve`]), so
/// however many requests run at once, no more than the budget get through;
/// work that turns out not to count gives its units back
/// ([`Reservation::refund`]). At most `max_keys` keys are kept: when full,
/// keys whose budget is whole again are dropped first, and if none is, one
/// other key (forgiving its use) rather than growing.
pub struct Budget<K: Hash + Eq + Clone> {
    capacity: u32,
    /// How long one unit takes to come back.
    unit: Duration,
    max_keys: usize,
    state: Mutex<BudgetState<K>>,
}

struct BudgetState<K> {
    /// Per key, when its budget is whole again (always in the future).
    full_at: HashMap<K, Instant>,
    last_sweep: Option<Instant>,
}

/// Units taken from a [`Budget`]. Dropping it keeps them spent; `refund`
/// gives them back.
#[must_use = "a reservation is spent when dropped; refund it if the work did not count"]
pub struct Reservation<'a, K: Hash + Eq + Clone> {
    budget: &'a Budget<K>,
    key: K,
    units: u32,
}

impl<K: Hash + Eq + Clone> Reservation<'_, K> {
    /// Gives the units back: the work did not count.
    pub fn refund(self) {
        self.budget.give_back(&self.key, self.units, Instant::now());
    }

    /// Keeps the units spent (the same as dropping it, said out loud).
    pub fn keep(self) {}
}

impl<K: Hash + Eq + Clone> Budget<K> {
    /// `capacity` units, coming back over `period`.
    pub fn new(capacity: u32, period: Duration) -> Budget<K> {
        Self::with_max_keys(capacity, period, BUDGET_MAX_KEYS)
    }

    pub fn per_minute(capacity: u32) -> Budget<K> {
        Self::new(capacity, Duration::from_secs(60))
    }

    pub fn with_max_keys(capacity: u32, period: Duration, max_keys: usize) -> Budget<K> {
        let capacity = capacity.max(1);
        Budget {
            capacity,
            unit: (period / capacity).max(Duration::from_nanos(1)),
            max_keys: max_keys.max(1),
            state: Mutex::new(BudgetState {
                full_at: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `units`, or answers 9 with the time until they are there.
    pub fn reserve(&self, key: &K, units: u32) -> Result<Reservation<'_, K>, Error> {
        self.reserve_at(key, units, Instant::now())
    }

    fn reserve_at(&self, key: &K, units: u32, now: Instant) -> Result<Reservation<'_, K>, Error> {
        let mut state = self.lock();
        let start = state.full_at.get(key).copied().unwrap_or(now).max(now);
        let full_at = start + self.unit * units;
        let limit = now + self.unit * self.capacity;
        if full_at > limit {
            let wait = full_at - limit;
            return Err(Error::RateLimited {
                retry_after: ceil_secs(wait).max(1),
            });
        }
        if !state.full_at.contains_key(key) {
            self.make_room(&mut state, now);
        }
        state.full_at.insert(key.clone(), full_at);
        Ok(Reservation {
            budget: self,
            key: key.clone(),
            units,
        })
    }

    /// Spends `units` whether or not they are there (the budget is then
    /// empty at most): for failures found without a reservation.
    pub fn charge(&self, key: &K, units: u32) {
        let now = Instant::now();
        let mut state = self.lock();
        let start = state.full_at.get(key).copied().unwrap_or(now).max(now);
        let full_at = (start + self.unit * units).min(now + self.unit * self.capacity);
        if !state.full_at.contains_key(key) {
            self.make_room(&mut state, now);
        }
        state.full_at.insert(key.clone(), full_at);
    }

    /// Makes `key`'s budget whole again.
    pub fn forget(&self, key: &K) {
        self.lock().full_at.remove(key);
    }

    fn give_back(&self, key: &K, units: u32, now: Instant) {
        let mut state = self.lock();
        if let Some(full_at) = state.full_at.get_mut(key) {
            match full_at.checked_sub(self.unit * units) {
                Some(t) if t > now => *full_at = t,
                _ => {
                    state.full_at.remove(key);
                }
            }
        }
    }

    /// Units left for `key` now.
    pub fn available(&self, key: &K) -> u32 {
        let now = Instant::now();
        let state = self.lock();
        match state.full_at.get(key) {
            Some(full_at) if *full_at > now => {
                let used = (*full_at - now).as_nanos().div_ceil(self.unit.as_nanos());
                self.capacity.saturating_sub(used as u32)
            }
            _ => self.capacity,
        }
    }

    /// Keeps the number of keys under `max_keys` before one is added.
    fn make_room(&self, state: &mut BudgetState<K>, now: Instant) {
        if state.full_at.len() < self.max_keys {
            return;
        }
        // Sweeping is linear: at most once a second; in between, evict.
        if state
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            state.full_at.retain(|_, full_at| *full_at > now);
            state.last_sweep = Some(now);
        }
        if state.full_at.len() >= self.max_keys
            && let Some(victim) = state.full_at.keys().next().cloned()
        {
            state.full_at.remove(&victim);
        }
    }

    /// Drops keys whose budget is whole again.
    fn prune(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.full_at.retain(|_, full_at| *full_at > now);
        state.full_at.shrink_to_fit();
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.lock().full_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
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

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_budget_refuses_beyond_its_capacity_and_refills_evenly() {
        let b = Budget::<u8>::new(3, secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            b.reserve_at(&1, 1, t0).unwrap().keep();
        }
        match b.reserve_at(&1, 1, t0) {
            Err(Error::RateLimited { retry_after }) => assert_eq!(retry_after, 20),
            other => panic!("{:?}", other.map(|_| ())),
        }
        // Another key has its own budget.
        b.reserve_at(&2, 3, t0).unwrap().keep();
        // One unit back every 20 s.
        b.reserve_at(&1, 1, t0 + secs(20)).unwrap().keep();
        assert!(b.reserve_at(&1, 1, t0 + secs(21)).is_err());
        b.reserve_at(&1, 2, t0 + secs(60)).unwrap().keep();
    }

    #[test]
    fn refunds_give_units_back_and_whole_budgets_are_forgotten() {
        let b = Budget::<u8>::per_minute(2);
        let r1 = b.reserve(&1, 1).unwrap();
        let r2 = b.reserve(&1, 1).unwrap();
        assert!(b.reserve(&1, 1).is_err());
        assert_eq!(b.available(&1), 0);
        r1.refund();
        assert_eq!(b.available(&1), 1);
        r2.refund();
        assert_eq!(b.available(&1), 2);
        assert!(b.is_empty(), "a whole budget keeps no state");
        b.charge(&1, 2);
        assert_eq!(b.available(&1), 0);
        b.forget(&1);
        assert_eq!(b.available(&1), 2);
        // Dropping a reservation keeps it spent.
        drop(b.reserve(&1, 2).unwrap());
        assert_eq!(b.available(&1), 0);
    }

    #[test]
    fn more_units_than_the_capacity_never_fit() {
        let b = Budget::<u8>::per_minute(5);
        assert!(b.reserve(&1, 6).is_err());
        b.reserve(&1, 5).unwrap().keep();
    }

    #[test]
    fn charges_saturate_at_an_empty_budget() {
        let b = Budget::<u8>::new(1, secs(900));
        b.charge(&1, 1);
        b.charge(&1, 1);
        assert_eq!(b.available(&1), 0);
        match b.reserve(&1, 1) {
            Err(Error::RateLimited { retry_after }) => {
                assert!((899..=900).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn concurrent_reservations_never_overspend() {
        let b = std::sync::Arc::new(Budget::<u8>::per_minute(10));
        let granted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..64)
            .map(|_| {
                let (b, granted) = (b.clone(), granted.clone());
                std::thread::spawn(move || {
                    if let Ok(r) = b.reserve(&1, 1) {
                        granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        r.keep();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(granted.load(std::sync::atomic::Ordering::SeqCst), 10);
    }

    #[test]
    fn a_budget_keeps_at_most_max_keys() {
        let b = Budget::<u32>::with_max_keys(1, secs(60), 100);
        for key in 0..10_000 {
            b.reserve(&key, 1).unwrap().keep();
            assert!(b.len() <= 100);
        }
        // Whole budgets are dropped first; only then is one key forgiven.
        let b = Budget::<u32>::with_max_keys(1, secs(1), 3);
        let t0 = Instant::now();
        for key in 0..3 {
            b.reserve_at(&key, 1, t0).unwrap().keep();
        }
        let t1 = t0 + secs(2);
        b.reserve_at(&7, 1, t1).unwrap().keep();
        assert_eq!(b.len(), 1, "the three whole budgets were swept");
        b.reserve_at(&8, 1, t1).unwrap().keep();
        b.reserve_at(&9, 1, t1).unwrap().keep();
        b.reserve_at(&10, 1, t1).unwrap().keep();
        assert_eq!(b.len(), 3);
        assert!(b.reserve_at(&10, 1, t1).is_err(), "the newest key is kept");
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
