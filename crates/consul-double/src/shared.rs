//! What every request handler and the handle share: config, state, faults, the request log and
//! the server's listeners.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Config;
use crate::faults::Faults;
use crate::log::RequestLog;
use crate::server::Server;
use crate::state::leader::LeaderState;
use crate::state::{State, StateCell};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: Arc<Config>,
    pub(crate) state: Arc<StateCell>,
    faults: Mutex<Faults>,
    log: Mutex<RequestLog>,
    /// Bumped to wake every blocking query with unchanged data.
    pub(crate) spurious: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever leadership changes, for requests held while there is no leader.
    pub(crate) leader_epoch: tokio::sync::watch::Sender<u64>,
    pub(crate) started: tokio::time::Instant,
    pub(crate) server: Server,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(cfg: Arc<Config>, runtime: tokio::runtime::Handle) -> Shared {
        Shared {
            state: crate::state::StateCell::new(cfg.clone(), runtime),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(RequestLog::new(cfg.request_log_capacity)),
            spurious: tokio::sync::watch::Sender::new(0),
            leader_epoch: tokio::sync::watch::Sender::new(0),
            started: tokio::time::Instant::now(),
            server: Server::default(),
            cfg,
        }
    }

    /// A copy of the active faults.
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub(crate) fn faults_mut(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.log)
    }

    /// The index to show for `real`, after any injected rewind.
    pub(crate) fn reported_index(&self, real: u64, consume: bool) -> u64 {
        lock(&self.faults).rewind(real, consume).max(1)
    }

    /// Changes who leads (under the state lock) and tells held requests.
    pub(crate) fn change_leader(&self, new: impl FnOnce(&State) -> LeaderState) {
        self.state.with(|st| {
            let next = new(st);
            st.set_leader(next);
        });
        self.leader_epoch.send_modify(|n| *n += 1);
    }

    /// Wakes every blocking query so it answers with unchanged data.
    pub(crate) fn wake_blocked(&self) {
        self.spurious.send_modify(|n| *n += 1);
    }
}
