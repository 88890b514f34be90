//! Fault injection: what a test can make the double do wrong, on purpose.
//!
//! Faults are checked per request before routing (connection resets, error answers), after it
//! (slow answers) and inside blocking queries (index rewinds, spurious wake-ups). Being down is
//! handled by the server, which drops its listeners and connections.

use std::time::Duration;

/// An injected error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFault {
    /// HTTP status, normally 500.
    pub status: u16,
    /// Plain-text body, normally `No cluster leader`.
    pub body: String,
    /// Only requests whose path starts with this (e.g. `/v1/health/`); `None` for all.
    pub path_prefix: Option<String>,
    /// How many more requests to fail; `None` until cleared.
    pub remaining: Option<u32>,
}

impl ErrorFault {
    /// Consul's answer while it has no leader, at once and for every request (agent endpoints
    /// and `/v1/status/leader` included) until cleared. A canned error answer; for a faithful
    /// leaderless cluster (requests held for the RPC hold, `?stale` reads still answered, agent
    /// writes accepted late) use [`ConsulDouble::lose_leader`](crate::ConsulDouble::lose_leader).
    pub fn no_leader() -> Self {
        ErrorFault {
            status: 500,
            body: "No cluster leader".into(),
            path_prefix: None,
            remaining: None,
        }
    }

    /// Limits the fault to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Limits the fault to paths starting with `prefix`.
    pub fn on_paths(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }
}

/// Index answers lowered by `by` (never below 1), for the next `remaining` index-carrying
/// answers or until cleared. Blocking queries compare the lowered index too, as a server that
/// really had gone back would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRewind {
    /// How far back.
    pub by: u64,
    /// How many more answers; `None` until cleared.
    pub remaining: Option<u32>,
}

/// The active faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Refusing connections.
    pub down: bool,
    /// Delay before every answer.
    pub slow: Option<Duration>,
    /// Error answers.
    pub error: Option<ErrorFault>,
    /// Close the connection without an answer for this many more requests.
    pub resets: u32,
    /// Lowered indexes.
    pub index_rewind: Option<IndexRewind>,
    /// Blocking queries return unchanged data after at most this long.
    pub spurious_wakeups_every: Option<Duration>,
}

impl Faults {
    /// Takes one reset if any is pending.
    pub(crate) fn take_reset(&mut self) -> bool {
        if self.resets > 0 {
            self.resets -= 1;
            true
        } else {
            false
        }
    }

    /// The error answer for this path, consuming one use.
    pub(crate) fn take_error(&mut self, path: &str) -> Option<(u16, String)> {
        let fault = self.error.as_mut()?;
        if let Some(prefix) = &fault.path_prefix
            && !path.starts_with(prefix.as_str())
        {
            return None;
        }
        let answer = (fault.status, fault.body.clone());
        if let Some(n) = fault.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.error = None;
            }
        }
        Some(answer)
    }

    /// The index to report for `real`, consuming one use of a rewind.
    pub(crate) fn rewind(&mut self, real: u64, consume: bool) -> u64 {
        let Some(rw) = self.index_rewind.as_mut() else {
            return real;
        };
        let lowered = real.saturating_sub(rw.by).max(1);
        if consume && let Some(n) = rw.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.index_rewind = None;
            }
        }
        lowered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out() {
        let mut f = Faults {
            error: Some(ErrorFault::no_leader().times(2).on_paths("/v1/health/")),
            ..Default::default()
        };
        assert_eq!(f.take_error("/v1/kv/x"), None);
        assert_eq!(
            f.take_error("/v1/health/service/a"),
            Some((500, "No cluster leader".into()))
        );
        assert!(f.take_error("/v1/health/service/a").is_some());
        assert_eq!(f.take_error("/v1/health/service/a"), None);
        f.index_rewind = Some(IndexRewind {
            by: 10,
            remaining: Some(1),
        });
        assert_eq!(f.rewind(15, false), 5);
        assert_eq!(f.rewind(5, true), 1, "never below 1");
        assert_eq!(f.rewind(15, true), 15, "used up");
    }
}
