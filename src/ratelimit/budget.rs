//! A budget taken before the work it pays for, and given back if the work
//! did not count: concurrent requests cannot overspend it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

/// Most keys one [`Budget`] remembers (about 100 bytes each).
pub const BUDGET_MAX_KEYS: usize = 100_000;

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
    pub(super) fn prune(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
