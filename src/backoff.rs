//! Exponential backoff with jitter, for everything that retries a
//! connection: the provisioner's admin session, the revocation listener,
//! a facade session's XMPP stream.
//!
//! The n-th delay is drawn from [d/2, d] where d = `first` · 2ⁿ, capped at
//! `max`: the jitter spreads several jidgate instances (or facade
//! sessions) that lost one server at the same moment.

use std::time::Duration;

use crate::crypto::random_bytes;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `first` (at least 1 ms) doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        let max = max.max(Duration::from_millis(1));
        let first = first.clamp(Duration::from_millis(1), max);
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let r = u16::from_le_bytes(random_bytes::<2>());
        d - (d / 2).mul_f64(f64::from(r) / f64::from(u16::MAX))
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn doubles_with_jitter_in_the_upper_half_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for round in 0..2 {
            for d in [100u128, 200, 400, 800, 1000, 1000] {
                let got = ms(b.next_delay());
                assert!(
                    (d / 2..=d).contains(&got),
                    "round {round}: {got} not in [{}, {d}]",
                    d / 2
                );
            }
            b.reset();
        }
    }

    #[test]
    fn a_zero_or_inverted_configuration_still_waits_and_stays_under_the_cap() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay() <= Duration::from_millis(1));
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_millis(500));
        for _ in 0..4 {
            let got = ms(b.next_delay());
            assert!((250..=500).contains(&got), "{got}");
        }
    }
}
