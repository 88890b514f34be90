//! The process seam: what jobs and health checks need of the supervisor, as a trait.
//!
//! A job or a check starts a process (`spawn`, which gives a `Child` with its pid and its exit),
//! signals its process group, and waits until that group is gone. `Supervisor` implements it for
//! real; the test fake (`supervisor::fake`, unit tests only) records the calls and delivers exits
//! when the test says, so that the job task runs under tokio's paused time without a process.
//!
//! The daemon needs one thing more, which jobs and checks must not do: ending every process that
//! is left (`AllProcesses`). Reading signals stays on `Supervisor` (`Signals`).

use std::future::Future;
use std::pin::Pin;

use libc::c_int;
use tokio::time::Instant;

use super::{Child, SpawnError, Spec, Supervisor};

/// Starting and stopping process groups.
pub trait Processes: Send + Sync {
    /// Starts a process in a new process group (its pid is the group's id).
    fn spawn(&self, spec: &Spec) -> Result<Child, SpawnError>;

    /// Sends `signal` to the process group `pgid`. Returns false if the group no longer exists.
    fn signal_group(&self, pgid: i32, signal: c_int) -> bool;

    /// Whether any process is left in the group `pgid`. Zombies count until they are reaped.
    fn group_exists(&self, pgid: i32) -> bool;

    /// Resolves once no process is left in the group `pgid`.
    fn until_group_gone(&self, pgid: i32) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// What the daemon needs beyond `Processes`: ending every process that is left at the end.
pub trait AllProcesses: Processes {
    /// The stop signal to every descendant, SIGKILL for whatever is left at `deadline`; resolves
    /// once none is left (`Supervisor::terminate_all`).
    fn terminate_all(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// SIGKILL to every descendant until none is left (`Supervisor::kill_all`).
    fn kill_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl AllProcesses for Supervisor {
    fn terminate_all(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Supervisor::terminate_all(self, None, deadline))
    }

    fn kill_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Supervisor::kill_all(self))
    }
}

impl Processes for Supervisor {
    fn spawn(&self, spec: &Spec) -> Result<Child, SpawnError> {
        Supervisor::spawn(self, spec)
    }

    fn signal_group(&self, pgid: i32, signal: c_int) -> bool {
        Supervisor::signal_group(self, pgid, signal)
    }

    fn group_exists(&self, pgid: i32) -> bool {
        Supervisor::group_exists(self, pgid)
    }

    fn until_group_gone(&self, pgid: i32) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Supervisor::until_group_gone(self, pgid))
    }
}
