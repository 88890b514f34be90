//! The supervisor core: signals, the reaper and the spawner.
//!
//! This module owns everything that is process-wide: the signal mask and the signalfd, the reaping
//! of every child (pilot's own and the orphans that re-parent to it), and the creation of
//! processes. It is the only code in pilot that forks or waits (ARCHITECTURE.md, invariants 1 to
//! 3, enforced by `tests/invariants.rs`).
//!
//! It must not know about jobs, configs or Consul: callers describe a process with `Spec`, get a
//! `Child` whose exit they await, and receive the signals pilot gets through `Signals`. Jobs and
//! health checks reach it through the `Processes` trait (the process seam), the daemon through
//! `AllProcesses`; unit tests replace both with `fake::FakeProcesses`.

#[cfg(test)]
pub mod fake;
mod processes;
mod reaper;
mod signals;
mod spawner;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use libc::c_int;
use tokio::sync::{mpsc, watch};

use crate::errors::describe_io_error;
pub use processes::{AllProcesses, Processes};
pub use reaper::ExitStatus;
use reaper::Registry;
use signals::SignalFd;
pub use signals::{
    Inherited, Ownership, Received, give_terminal_to, is_forwardable, name as signal_name,
    parse as parse_signal, take_over, terminal_foreground,
};
pub use spawner::{Child, Identity, SpawnError, Spec, Stdio, mark_inherited_fds_cloexec};

/// A cheap handle to the supervisor. All clones share one reaper.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Mutex<Registry>,
    inherited: Inherited,
    own_pid: i32,
    /// Bumped after every reap pass; see `until_no_children`.
    reaped: watch::Sender<u64>,
}

/// The signals pilot received, other than SIGCHLD, in the order they arrived.
pub struct Signals {
    rx: mpsc::UnboundedReceiver<Received>,
}

impl Signals {
    /// Signals a test sends itself, through the returned sender.
    #[cfg(test)]
    pub fn fake() -> (mpsc::UnboundedSender<Received>, Signals) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Signals { rx })
    }

    /// The next signal. `None` only if the supervisor task has stopped.
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }
}

impl Supervisor {
    /// Starts the supervisor task, which reads the signalfd, reaps on SIGCHLD and passes every
    /// other signal on through `Signals`. Unless pilot is PID 1 it also becomes a child subreaper,
    /// so that orphans of its descendants re-parent to it and are reaped here.
    ///
    /// Must be called inside a tokio runtime, with the `Ownership` taken in `main`.
    pub fn start(ownership: Ownership) -> io::Result<(Supervisor, Signals)> {
        let own_pid = std::process::id() as i32;
        if own_pid != 1 {
            // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
            let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            if rc != 0 {
                tracing::warn!(
                    "cannot become a child subreaper ({}): orphaned processes will not be reaped by pilot",
                    describe_io_error(&io::Error::last_os_error())
                );
            }
        }
        let fd = SignalFd::new(ownership.fd)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::default()),
            inherited: ownership.inherited,
            own_pid,
            reaped: watch::Sender::new(0),
        });
        let supervisor = Supervisor { shared };
        let task = supervisor.clone();
        tokio::spawn(async move { task.run(fd, tx).await });
        // Children that exited before the signalfd existed left a pending SIGCHLD, but reaping
        // once now costs nothing and makes that independent of the kernel's queueing.
        supervisor.reap();
        Ok((supervisor, Signals { rx }))
    }

    async fn run(self, fd: SignalFd, tx: mpsc::UnboundedSender<Received>) {
        loop {
            let received = match fd.recv().await {
                Ok(received) => received,
                Err(err) => {
                    // Never seen in practice; retrying keeps the reaper alive rather than leaving
                    // zombies and lost exit statuses behind.
                    tracing::error!("reading signals failed: {}", describe_io_error(&err));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut child_exited = false;
            for signal in received {
                if signal.signal == libc::SIGCHLD {
                    child_exited = true;
                } else if signal.sender as i32 == self.shared.own_pid {
                    // Self-inflicted, such as SIGPIPE from a write to a closed pipe: not for the
                    // children.
                } else if tx.send(signal).is_err() {
                    // Nobody listens any more; keep reaping regardless.
                }
            }
            if child_exited {
                self.reap();
            }
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // pilot never panics while holding the lock; if a test did, the registry is still valid.
        self.shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reap(&self) {
        let reaped = self.registry().reap();
        if reaped > 0 {
            self.shared
                .reaped
                .send_modify(|generation| *generation += 1);
        }
    }

    /// Starts a process in a new process group. The pid is registered with the reaper before the
    /// reaper can see the child exit.
    pub fn spawn(&self, spec: &Spec) -> Result<Child, SpawnError> {
        let mut registry = self.registry();
        spawner::spawn(spec, self.shared.inherited, |pid| registry.watch(pid))
    }

    /// Sends `signal` to the process group `pgid`. Returns false if the group no longer exists.
    pub fn signal_group(&self, pgid: i32, signal: c_int) -> bool {
        if pgid <= 1 {
            return false; // never let a bad pgid turn into kill(-1) or kill(0)
        }
        // SAFETY: kill takes plain integers.
        let rc = unsafe { libc::kill(-pgid, signal) };
        rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    /// Whether any process is left in the group `pgid`. Zombies count until they are reaped.
    pub fn group_exists(&self, pgid: i32) -> bool {
        self.signal_group(pgid, 0)
    }

    /// Sends `signal` to every descendant of pilot. As PID 1 that is every other process in the
    /// PID namespace; otherwise the descendants are found in `/proc`, and the members of `group`
    /// are skipped: the caller signals that group as a whole.
    fn signal_descendants(&self, signal: c_int, group: Option<i32>) {
        if self.shared.own_pid == 1 {
            // SAFETY: kill takes plain integers; -1 from PID 1 means "everyone but me".
            unsafe { libc::kill(-1, signal) };
            return;
        }
        for (pid, pgid) in descendants(self.shared.own_pid) {
            if Some(pgid) != group {
                // SAFETY: kill takes plain integers.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }

    /// Whether pilot has any child left. As a subreaper (or PID 1), "no children" means "no
    /// descendants": an orphan re-parents to pilot.
    pub fn has_children(&self) -> bool {
        reaper::has_children()
    }

    /// Resolves once pilot has no child left at all.
    pub async fn until_no_children(&self) {
        let mut reaped = self.shared.reaped.subscribe();
        while self.has_children() {
            if reaped.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once no process is left in the group `pgid`. The check runs after each reap
    /// pass: the last member of a group is pilot's child when it dies, directly or as an orphan.
    pub async fn until_group_gone(&self, pgid: i32) {
        let mut reaped = self.shared.reaped.subscribe();
        while self.group_exists(pgid) {
            if reaped.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops every descendant: SIGTERM (and SIGCONT, since a stopped process only acts on
    /// SIGTERM once continued), then SIGKILL for whatever is left at `deadline`. Returns once
    /// pilot has no child left.
    ///
    /// `group`, a process group of pilot's children, is signalled as a whole, which also reaches
    /// a member forked while `/proc` is read. Each process gets one SIGTERM: many programs take a
    /// second one as "exit now, skip the clean-up".
    pub async fn terminate_all(&self, group: Option<i32>, deadline: tokio::time::Instant) {
        if !self.has_children() {
            return;
        }
        for signal in [libc::SIGTERM, libc::SIGCONT] {
            // As PID 1, kill(-1) reaches the group too; signalling it again would repeat SIGTERM.
            if let Some(pgid) = group.filter(|_| !self.is_pid1()) {
                self.signal_group(pgid, signal);
            }
            self.signal_descendants(signal, group);
        }
        tokio::select! {
            () = self.until_no_children() => return,
            () = tokio::time::sleep_until(deadline) => {}
        }
        self.kill_all().await;
    }

    /// SIGKILLs every descendant until none is left. The kill is repeated because, outside a PID
    /// namespace, a process forked after `/proc` was read would escape a single pass.
    pub async fn kill_all(&self) {
        loop {
            self.signal_descendants(libc::SIGKILL, None);
            tokio::select! {
                () = self.until_no_children() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// How many orphans (processes pilot did not spawn) the reaper has collected.
    pub fn orphans_reaped(&self) -> u64 {
        self.registry().orphans_reaped()
    }

    pub fn is_pid1(&self) -> bool {
        self.shared.own_pid == 1
    }
}

/// The pid and process group of every descendant of `root`, read from `/proc`.
fn descendants(root: i32) -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, ppid, pgid) of every process.
    let mut processes: Vec<(i32, i32, i32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // it exited meanwhile
        };
        if let Some((ppid, pgid)) = parent_and_group(&stat) {
            processes.push((pid, ppid, pgid));
        }
    }
    let mut found = vec![(root, 0)];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].0;
        found.extend(
            processes
                .iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|&(pid, _, pgid)| (pid, pgid)),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid and process group from the text of `/proc/PID/stat`. The command name is in
/// parentheses and may itself contain them: the fields after the last ')' are "state ppid pgrp".
fn parent_and_group(stat: &str) -> Option<(i32, i32)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(1);
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((ppid, pgid))
}
