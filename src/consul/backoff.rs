//! Exponential backoff with jitter, for retrying Consul calls.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays between retries: doubling from `base` up to `cap`, each delay drawn at random from its
/// upper half ("equal jitter"), so that many pilots that lost the same agent do not retry in
/// lock step, and no delay is ever shorter than half the nominal one.
#[derive(Clone, Debug)]
pub struct RetryBackoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: u64,
}

impl RetryBackoff {
    /// A backoff whose first delay is about `base` and whose delays never exceed `cap`.
    pub fn new(base: Duration, cap: Duration) -> RetryBackoff {
        // std's RandomState is seeded from the OS once per process and varied per instance: all
        // the randomness a retry schedule needs, without a dependency.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        RetryBackoff {
            base,
            cap: cap.max(base),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let half = nominal / 2;
        // A fraction of the upper half, in 1/1024ths.
        let part = (self.next_random() % 1025) as u32;
        half + (nominal - half) * part / 1024
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// How many failures in a row led here.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// xorshift64*: plenty for spreading retries.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_jitter_and_stop_at_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for _ in 0..50 {
            let mut backoff = RetryBackoff::new(base, cap);
            let mut nominal = base;
            for _ in 0..12 {
                let d = backoff.next_delay();
                assert!(d >= nominal / 2 && d <= nominal, "{d:?} for {nominal:?}");
                nominal = (nominal * 2).min(cap);
            }
            assert!(backoff.next_delay() <= cap);
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = RetryBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert_eq!(backoff.failures(), 10);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_varies() {
        let mut backoff = RetryBackoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let delays: std::collections::BTreeSet<_> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = RetryBackoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..10_000 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
    }
}
