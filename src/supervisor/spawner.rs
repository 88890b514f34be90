//! The spawner: the only way pilot starts a process.
//!
//! Every child (the init-mode command, job execs, health checks, hooks) gets its own process group,
//! the signal state pilot inherited, and no descriptor of pilot's besides the three it is given
//! (everything pilot opens is close-on-exec, and `mark_inherited_fds_cloexec` covers what it
//! inherited). The child's pid is registered with the reaper under the reaper's lock.
//!
//! `std::process::Command` does the fork and exec, but its `Child` is dropped at once: its `wait`
//! family is never called (see ARCHITECTURE.md, "Only the reaper waits"). The one wait inside
//! `Command::spawn` itself collects a child whose `exec` failed; it runs while pilot holds the
//! reaper's lock, so the reaper can never race it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio as StdStdio};

use tokio::sync::oneshot;

use super::reaper::ExitStatus;
use super::signals::{self, Inherited};

/// Where one of the child's standard streams goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// The same file as pilot's.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe whose reading end the caller receives in `Child`.
    Pipe,
}

impl Stdio {
    fn to_std(self) -> StdStdio {
        match self {
            Stdio::Inherit => StdStdio::inherit(),
            Stdio::Null => StdStdio::null(),
            Stdio::Pipe => StdStdio::piped(),
        }
    }
}

/// What to run and how.
#[derive(Clone, Debug)]
pub struct Spec {
    program: OsString,
    args: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    foreground: bool,
    identity: Option<Identity>,
}

/// The user a child runs as: set in the child between fork and exec (supplementary groups,
/// then the group, then the user), never in pilot itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Spec {
    /// A program and its arguments, with pilot's environment and streams.
    pub fn new(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Spec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: None,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            foreground: false,
            identity: None,
        }
    }

    /// Runs the child as another user (the default is pilot's own).
    pub fn identity(mut self, identity: Option<Identity>) -> Self {
        self.identity = identity;
        self
    }

    /// Replaces the whole environment (the default is pilot's own).
    pub fn env(mut self, env: Vec<(OsString, OsString)>) -> Self {
        self.env = Some(env);
        self
    }

    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.stdin = stdio;
        self
    }

    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = stdio;
        self
    }

    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// Hands the terminal to the child's process group when stdin is a terminal whose foreground
    /// group is pilot's, so that Ctrl-C reaches the child rather than pilot. Giving it back is the
    /// caller's business (`give_terminal_to`).
    pub fn foreground(mut self, foreground: bool) -> Self {
        self.foreground = foreground;
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn args(&self) -> &[OsString] {
        &self.args
    }
}

/// A running child. Its pid is also its process group id.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    /// The reading ends of the pipes requested with `Stdio::Pipe`.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    exit: Exit,
}

#[derive(Debug)]
enum Exit {
    Pending(oneshot::Receiver<ExitStatus>),
    Done(ExitStatus),
}

impl Child {
    /// A child that no process stands behind: the test fake's, whose exit the test delivers
    /// through the other end of `exit`.
    #[cfg(test)]
    pub(super) fn fake(pid: i32, exit: oneshot::Receiver<ExitStatus>) -> Child {
        Child {
            pid,
            stdout: None,
            stderr: None,
            exit: Exit::Pending(exit),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits until the reaper has collected the child, and returns how it ended. Calling it again
    /// after it returned gives the same status.
    pub async fn exited(&mut self) -> ExitStatus {
        let status = match &mut self.exit {
            Exit::Done(status) => return *status,
            // The reaper's registry outlives every child it watches, so the sender is only
            // dropped when the whole runtime is shutting down; nobody observes the fallback then.
            Exit::Pending(rx) => rx.await.unwrap_or(ExitStatus::Signaled(libc::SIGKILL)),
        };
        self.exit = Exit::Done(status);
        status
    }
}

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
pub struct SpawnError {
    program: String,
    #[source]
    source: io::Error,
}

impl SpawnError {
    /// The test fake's failure to start `program`.
    #[cfg(test)]
    pub(super) fn fake(program: &OsStr, source: io::Error) -> SpawnError {
        SpawnError {
            program: program.to_string_lossy().into_owned(),
            source,
        }
    }

    /// The status a shell would report: 127 when the program does not exist, 126 when it exists
    /// but cannot be executed.
    pub fn exit_code(&self) -> i32 {
        if self.source.kind() == io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.exit_code() == 127 {
            "cannot find"
        } else {
            "cannot execute"
        };
        write!(
            f,
            "{verb} {:?}: {}",
            self.program,
            crate::errors::describe_io_error(&self.source)
        )
    }
}

/// In the child: drops to `identity`, supplementary groups first (only root may set them), then
/// the group, then the user. A failure is the spawn's error, reported to pilot by std. Raw
/// system calls: the C library's wrappers synchronise every thread of the process, and the
/// child has only this one.
fn become_user(identity: &Identity) -> io::Result<()> {
    let check = |rc: libc::c_long| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls; the group list outlives the call.
    unsafe {
        check(libc::syscall(
            libc::SYS_setgroups,
            identity.groups.len(),
            identity.groups.as_ptr(),
        ))?;
        check(libc::syscall(libc::SYS_setgid, identity.gid))?;
        check(libc::syscall(libc::SYS_setuid, identity.uid))
    }
}

/// Starts `spec` and returns the child with its stdio pipes. `register` records the pid with the
/// reaper; the caller must hold the reaper's lock across this call.
pub(super) fn spawn(
    spec: &Spec,
    inherited: Inherited,
    register: impl FnOnce(i32) -> oneshot::Receiver<ExitStatus>,
) -> Result<Child, SpawnError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(spec.stdin.to_std())
        .stdout(spec.stdout.to_std())
        .stderr(spec.stderr.to_std())
        .process_group(0);
    if let Some(env) = &spec.env {
        command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
    let foreground = spec.foreground && signals::terminal_foreground().is_some();
    let identity = spec.identity.clone();
    // SAFETY: `child_setup` and `become_user` only make async-signal-safe calls and do not
    // allocate (the groups were allocated before the fork).
    unsafe {
        command.pre_exec(move || {
            signals::child_setup(&inherited, foreground);
            match &identity {
                Some(identity) => become_user(identity),
                None => Ok(()),
            }
        });
    }
    let mut std_child = command.spawn().map_err(|source| SpawnError {
        program: spec.program.to_string_lossy().into_owned(),
        source,
    })?;
    // Child ids fit in a pid_t; the std API just widens them to u32.
    let pid = std_child.id() as i32;
    let exit = register(pid);
    Ok(Child {
        pid,
        stdout: std_child.stdout.take().map(OwnedFd::from),
        stderr: std_child.stderr.take().map(OwnedFd::from),
        exit: Exit::Pending(exit),
    })
    // `std_child` is dropped here without waiting: the reaper owns the exit status.
}

/// Marks every descriptor pilot inherited above stderr close-on-exec, so that no child sees it.
/// Descriptors pilot opens itself are close-on-exec already (Rust and tokio open them that way).
pub fn mark_inherited_fds_cloexec() {
    // close_range (Linux 5.11) needs no /proc, which a container may not have mounted.
    // SAFETY: with CLOSE_RANGE_CLOEXEC, close_range only sets a flag on open descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // An older kernel: list the open descriptors instead.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on a descriptor (possibly already closed, e.g. the one
        // read_dir used) has no memory-safety requirements.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}
