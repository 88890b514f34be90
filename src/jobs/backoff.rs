//! The crash-loop backoff: how long a job that keeps exiting quickly waits before its restart.

use tokio::time::Duration;

/// The delay before restarting a job that keeps exiting quickly: none for a run that lasted at
/// least `CRASH_RUN`, none for the first quick exit, then 100 ms doubling up to `MAX_BACKOFF`.
#[derive(Debug, Default)]
pub struct CrashBackoff {
    quick_exits: u32,
}

/// A run shorter than this counts as a crash for the backoff.
pub const CRASH_RUN: Duration = Duration::from_secs(1);
/// The longest delay between two restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl CrashBackoff {
    /// The delay before the next restart, given how long the last run lasted.
    pub fn after_run(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= CRASH_RUN {
            self.quick_exits = 0;
            return Duration::ZERO;
        }
        self.quick_exits = self.quick_exits.saturating_add(1);
        match self.quick_exits {
            0 | 1 => Duration::ZERO,
            n => Duration::from_millis(100)
                .saturating_mul(1u32 << (n - 2).min(16))
                .min(MAX_BACKOFF),
        }
    }

    /// How many runs in a row ended quickly.
    pub fn quick_exits(&self) -> u32 {
        self.quick_exits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_for_quick_exits_and_resets_after_a_long_run() {
        let mut backoff = CrashBackoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..10)
            .map(|_| backoff.after_run(quick).as_millis())
            .collect();
        assert_eq!(
            delays,
            [0, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]
        );
        assert_eq!(backoff.after_run(CRASH_RUN), Duration::ZERO);
        assert_eq!(backoff.after_run(quick), Duration::ZERO);
        assert_eq!(backoff.after_run(quick), Duration::from_millis(100));
    }

    #[test]
    fn backoff_does_not_overflow() {
        let mut backoff = CrashBackoff::default();
        for _ in 0..100 {
            assert!(backoff.after_run(Duration::ZERO) <= MAX_BACKOFF);
        }
    }
}
