//! The double's state: the agent-local view, the catalog it syncs to, and the waiters of blocking
//! queries, all behind one mutex.
//!
//! Nothing here awaits while holding the lock. Timers (TTL expiry, deferred output sync, check
//! runners, the reaper) are tokio tasks that take the lock when they fire, so in-process tests can
//! drive them with paused time.

pub(crate) mod agent;
pub(crate) mod catalog;
pub(crate) mod definition;
pub mod types;
pub(crate) mod watch;

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::config::Config;
use crate::state::agent::Agent;
use crate::state::catalog::Catalog;
use crate::state::watch::{Change, Watchers};

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) cfg: Arc<Config>,
    pub(crate) catalog: Catalog,
    pub(crate) agent: Agent,
    pub(crate) watchers: Watchers,
    pub(crate) agent_changes: Vec<Change>,
    /// Lets timer tasks find their way back to the state without keeping it alive.
    pub(crate) weak: Weak<StateCell>,
    /// Where timer tasks run.
    pub(crate) runtime: tokio::runtime::Handle,
    rng: u64,
}

/// The mutex around [`State`] plus what tasks need to reach it.
#[derive(Debug)]
pub(crate) struct StateCell {
    inner: Mutex<State>,
}

impl StateCell {
    pub(crate) fn new(cfg: Arc<Config>, runtime: tokio::runtime::Handle) -> Arc<StateCell> {
        Arc::new_cyclic(|weak| StateCell {
            inner: Mutex::new(State {
                catalog: Catalog::boot(&cfg),
                agent: Agent::default(),
                watchers: Watchers::default(),
                agent_changes: Vec::new(),
                weak: weak.clone(),
                runtime,
                rng: seed(),
                cfg,
            }),
        })
    }

    /// Runs `f` under the lock, then wakes the blocking queries whose topics it changed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.lock();
        let r = f(&mut st);
        st.flush();
        r
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock (a bug) must not wedge every later request of a test.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Delivers the changes collected since the last flush.
    pub(crate) fn flush(&mut self) {
        let mut changes = std::mem::take(&mut self.catalog.changes);
        changes.append(&mut self.agent_changes);
        self.watchers.dispatch(&changes);
    }

    /// An agent restart without a data dir: services, checks and KV are gone, the index starts
    /// low again, every timer stops and every blocking query re-evaluates.
    pub(crate) fn lose_everything(&mut self) {
        self.agent.stop_all_timers();
        self.agent = Agent::default();
        self.catalog = Catalog::boot(&self.cfg);
        self.watchers.wake_all();
    }

    /// A uniform random value in `[0, max)`, or 0 when jitter is off (Consul's `RandomStagger`).
    pub(crate) fn stagger(&mut self, max: std::time::Duration) -> std::time::Duration {
        if !self.cfg.timing.jitter || max.is_zero() {
            return std::time::Duration::ZERO;
        }
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        std::time::Duration::from_nanos(self.next_random() % nanos)
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: jitter needs spread, not cryptographic strength.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}
