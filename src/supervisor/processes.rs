//! The process seam: what jobs and health checks need of the supervisor, as a trait.
//!
//! A job or a check starts a process (`spawn`, which gives a `Child` with its pid and its exit),
//! signals its process group, and waits until that group is gone. `Supervisor` implements it for
//! real; the test fake (`supervisor::fake`, unit tests only) records the calls and delivers exits
//! when the test says, so that the job task runs under tokio's paused time without a process.
//!
//! The seam must stay this narrow: what only the daemon does (killing everything at the end,
//! reading signals) stays on `Supervisor`.

use std::future::Future;
use std::pin::Pin;

use libc::c_int;

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
