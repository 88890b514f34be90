//! A fake of the process seam (`Processes`) for unit tests: no process is started. It records
//! every spawn and every signal, and a child exits only when the test says (`exit`), so a test
//! of the job task under tokio's paused time decides when each run ends, and proves what was
//! spawned and signalled.
//!
//! A spawned child's group lives until the test ends it: `exit` ends the leader and its group,
//! `exit_leaving_group` the leader alone (a background process it left behind), `group_gone` the
//! rest. Signals only reach a group that exists, as with `kill`; the fake never exits a child by
//! itself, whatever signal it gets.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libc::c_int;
use tokio::sync::{oneshot, watch};

use super::{AllProcesses, Child, ExitStatus, Processes, SpawnError, Spec};

/// One recorded spawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spawned {
    pub pid: i32,
    pub program: String,
    pub args: Vec<String>,
}

#[derive(Default)]
struct State {
    next_pid: i32,
    spawns: Vec<Spawned>,
    /// Signals delivered, as (process group, signal), in order.
    signals: Vec<(i32, c_int)>,
    exits: HashMap<i32, oneshot::Sender<ExitStatus>>,
    groups: HashSet<i32>,
    /// Programs whose spawn fails (as a program that does not exist).
    missing: HashSet<String>,
}

/// The fake. Share it as `Arc<FakeProcesses>`; it coerces to `Arc<dyn Processes>`.
pub struct FakeProcesses {
    state: Mutex<State>,
    /// Bumped on every change, for the `until_*` waits.
    changed: watch::Sender<u64>,
}

impl FakeProcesses {
    pub fn new() -> Arc<FakeProcesses> {
        Arc::new(FakeProcesses {
            state: Mutex::new(State {
                next_pid: 100,
                ..State::default()
            }),
            changed: watch::Sender::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Makes every later spawn of `program` fail as if it did not exist.
    pub fn make_missing(&self, program: &str) {
        self.state().missing.insert(program.to_string());
    }

    /// Every spawn so far, in order.
    pub fn spawns(&self) -> Vec<Spawned> {
        self.state().spawns.clone()
    }

    /// Every signal delivered so far, as (process group, signal), in order.
    pub fn signals(&self) -> Vec<(i32, c_int)> {
        self.state().signals.clone()
    }

    /// Ends the child `pid` with `status`, and its whole group with it.
    pub fn exit(&self, pid: i32, status: ExitStatus) {
        self.end(pid, status, true);
    }

    /// Ends the child `pid` with `status`, leaving a process behind in its group.
    pub fn exit_leaving_group(&self, pid: i32, status: ExitStatus) {
        self.end(pid, status, false);
    }

    /// Ends what was left of the group `pgid`.
    pub fn group_gone(&self, pgid: i32) {
        self.state().groups.remove(&pgid);
        self.bump();
    }

    fn end(&self, pid: i32, status: ExitStatus, group_too: bool) {
        let mut state = self.state();
        let exit = state
            .exits
            .remove(&pid)
            .unwrap_or_else(|| panic!("no running child has pid {pid}"));
        if group_too {
            state.groups.remove(&pid);
        }
        drop(state);
        // The child's holder may have dropped it (a stopped checker): nobody to tell then.
        let _ = exit.send(status);
        self.bump();
    }

    /// Waits until `until` holds for the recorded calls; paused time runs on meanwhile.
    async fn until<T>(&self, mut until: impl FnMut(&State) -> Option<T>) -> T {
        let mut changed = self.changed.subscribe();
        loop {
            let found = until(&self.state());
            if let Some(found) = found {
                return found;
            }
            changed
                .changed()
                .await
                .expect("the fake lives as long as its waiters");
        }
    }

    /// Waits for the `n`th spawn (counting from 1) and returns it.
    pub async fn spawned(&self, n: usize) -> Spawned {
        self.until(|s| s.spawns.get(n - 1).cloned()).await
    }

    /// Waits until the group `pgid` has been sent `signal`.
    pub async fn signalled(&self, pgid: i32, signal: c_int) {
        self.until(|s| s.signals.contains(&(pgid, signal)).then_some(()))
            .await;
    }
}

impl Processes for FakeProcesses {
    fn spawn(&self, spec: &Spec) -> Result<Child, SpawnError> {
        let mut state = self.state();
        let program = spec.program().to_string_lossy().into_owned();
        if state.missing.contains(&program) {
            return Err(SpawnError::fake(
                spec.program(),
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        state.next_pid += 1;
        let pid = state.next_pid;
        let (tx, rx) = oneshot::channel();
        state.exits.insert(pid, tx);
        state.groups.insert(pid);
        state.spawns.push(Spawned {
            pid,
            program,
            args: spec
                .args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        });
        drop(state);
        self.bump();
        Ok(Child::fake(pid, rx))
    }

    fn signal_group(&self, pgid: i32, signal: c_int) -> bool {
        let mut state = self.state();
        if !state.groups.contains(&pgid) {
            return false;
        }
        if signal != 0 {
            state.signals.push((pgid, signal));
            drop(state);
            self.bump();
        }
        true
    }

    fn group_exists(&self, pgid: i32) -> bool {
        self.state().groups.contains(&pgid)
    }

    fn until_group_gone(&self, pgid: i32) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.until(move |s| (!s.groups.contains(&pgid)).then_some(())))
    }
}

/// Ending everything: the stop signal (SIGTERM) to every group left, then, at `deadline`,
/// SIGKILL to every group still there, which ends it (as the kernel would).
impl AllProcesses for FakeProcesses {
    fn terminate_all(
        &self,
        deadline: tokio::time::Instant,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for pgid in self.live_groups() {
                self.signal_group(pgid, libc::SIGTERM);
            }
            let none_left = self.until(|s| s.groups.is_empty().then_some(()));
            if tokio::time::timeout_at(deadline, none_left).await.is_err() {
                self.kill_all().await;
            }
        })
    }

    fn kill_all(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for pgid in self.live_groups() {
                self.signal_group(pgid, libc::SIGKILL);
                if self.state().exits.contains_key(&pgid) {
                    self.exit(pgid, ExitStatus::Signaled(libc::SIGKILL));
                } else {
                    self.group_gone(pgid);
                }
            }
        })
    }
}

impl FakeProcesses {
    fn live_groups(&self) -> Vec<i32> {
        let mut groups: Vec<i32> = self.state().groups.iter().copied().collect();
        groups.sort_unstable();
        groups
    }
}
