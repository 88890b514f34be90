//! The reaper: the only code in pilot that collects exit statuses.
//!
//! On every SIGCHLD it calls `waitpid(-1, WNOHANG)` until nothing is left to collect (signals
//! coalesce, so one SIGCHLD may stand for many exits). A pid the spawner registered gets its
//! status delivered to whoever holds its `Child`; any other pid is an orphan that re-parented to
//! pilot and is simply counted. The spawner registers each pid while holding the same lock the
//! reaper takes, so a child that exits at once can never be collected before it is registered.

use std::collections::HashMap;
use std::fmt;
use std::io;

use libc::c_int;
use tokio::sync::oneshot;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(c_int),
}

impl ExitStatus {
    fn from_wait_status(status: c_int) -> Self {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// The shell's convention for a status: the exit code, or 128 + N when killed by signal N.
    pub fn code(&self) -> i32 {
        match *self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }

    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    /// Go's wording (`exit status 2`, `signal: killed`), which ContainerPilot puts in its error
    /// events and log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exit status {code}"),
            ExitStatus::Signaled(signal) => write!(f, "signal: {}", describe_signal(signal)),
        }
    }
}

/// Go's `signal.String()` texts for the common signals.
fn describe_signal(signal: c_int) -> String {
    let text = match signal {
        libc::SIGHUP => "hangup",
        libc::SIGINT => "interrupt",
        libc::SIGQUIT => "quit",
        libc::SIGILL => "illegal instruction",
        libc::SIGTRAP => "trace/breakpoint trap",
        libc::SIGABRT => "aborted",
        libc::SIGBUS => "bus error",
        libc::SIGFPE => "floating point exception",
        libc::SIGKILL => "killed",
        libc::SIGUSR1 => "user defined signal 1",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGUSR2 => "user defined signal 2",
        libc::SIGPIPE => "broken pipe",
        libc::SIGALRM => "alarm clock",
        libc::SIGTERM => "terminated",
        _ => return super::signals::name(signal),
    };
    text.to_string()
}

/// The pids pilot spawned and has not reaped yet, and what the reaper has seen.
#[derive(Default)]
pub(super) struct Registry {
    watched: HashMap<i32, oneshot::Sender<ExitStatus>>,
    orphans_reaped: u64,
}

impl Registry {
    pub(super) fn watch(&mut self, pid: i32) -> oneshot::Receiver<ExitStatus> {
        let (tx, rx) = oneshot::channel();
        self.watched.insert(pid, tx);
        rx
    }

    pub(super) fn orphans_reaped(&self) -> u64 {
        self.orphans_reaped
    }

    /// Collects every exited child. Returns how many were reaped.
    pub(super) fn reap(&mut self) -> usize {
        let mut reaped = 0;
        loop {
            let mut status: c_int = 0;
            // SAFETY: waitpid only writes to `status`.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid > 0 {
                reaped += 1;
                let exit = ExitStatus::from_wait_status(status);
                match self.watched.remove(&pid) {
                    // The receiver may be gone (its owner no longer cares); that is fine.
                    Some(tx) => drop(tx.send(exit)),
                    None => self.orphans_reaped += 1,
                }
                continue;
            }
            if pid == 0 {
                break; // children remain, none has exited
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break, // ECHILD: no children at all
            }
        }
        reaped
    }
}

/// Whether pilot has any child left, running or exited but not yet reaped. `WNOWAIT` leaves an
/// exited child for the reaper to collect.
pub(super) fn has_children() -> bool {
    loop {
        let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: waitid only writes to `info`; WNOWAIT means nothing is reaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return true;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            _ => return false,
        }
    }
}
