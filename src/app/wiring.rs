//! The wiring every job is given (its `Context`: processes, bus, environment, the shutdown
//! deadline and the running config), with the daemon's ends of it: the senders of the deadline
//! and of the running config.
//!
//! It must not start or stop a job; the roster does, with the context it hands out.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::consul;
use crate::events::Bus;
use crate::exec::Environment;
use crate::jobs::{Context, RunningConfig};
use crate::supervisor::AllProcesses;

pub(super) struct Wiring {
    /// Starts and ends processes: the supervisor, or a test's fake.
    pub(super) processes: Arc<dyn AllProcesses>,
    pub(super) bus: Bus,
    /// The children's environment.
    pub(super) env: Environment,
    /// When a shutdown kills what is left (`None` until one begins).
    deadline: watch::Sender<Option<Instant>>,
    /// The running config as the jobs see it.
    current: watch::Sender<RunningConfig>,
    /// What every job is given: receivers of the two above, and clones of the rest.
    pub(super) ctx: Arc<Context>,
}

impl Wiring {
    pub(super) fn new(
        processes: Arc<dyn AllProcesses>,
        env: Environment,
        running: RunningConfig,
    ) -> Wiring {
        let bus = Bus::new();
        let deadline = watch::Sender::new(None);
        let current = watch::Sender::new(running);
        let ctx = Arc::new(Context {
            processes: processes.clone(),
            bus: bus.clone(),
            env: env.clone(),
            deadline: deadline.subscribe(),
            config: current.subscribe(),
        });
        Wiring {
            processes,
            bus,
            env,
            deadline,
            current,
            ctx,
        }
    }

    /// Tells every job when a shutdown kills what is left.
    pub(super) fn set_deadline(&self, deadline: Instant) {
        self.deadline.send_replace(Some(deadline));
    }

    /// The Consul client of the running config.
    pub(super) fn consul(&self) -> consul::Client {
        self.current.borrow().consul.clone()
    }

    /// Gives every job the new running config.
    pub(super) fn set_running(&self, running: RunningConfig) {
        self.current.send_replace(running);
    }
}
