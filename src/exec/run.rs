//! One run of an exec (a job's, or a health check's): spawning it in its own process group with
//! its environment and output handling, and stopping it.

use std::sync::Arc;

use tokio::time::Instant;

use crate::config::{Exec, RunAs};
use crate::logging::{self, Origin};
use crate::supervisor::{Child, ExitStatus, Processes, SpawnError, Spec, Stdio};

/// A process that is running.
pub struct Run {
    pub child: Child,
    pub started: Instant,
    /// What stopping it sends to its group first (the job's `stopSignal`).
    pub stop_signal: i32,
}

impl Run {
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }
}

/// How to start a run.
pub struct Launch<'a> {
    /// The job the run belongs to (log lines carry it).
    pub job: &'a Arc<str>,
    pub exec: &'a Exec,
    /// Hand the child pilot's own stdout and stderr instead of logging its lines.
    pub raw_output: bool,
    /// This is the job's health check (its log lines carry `check.<job>`).
    pub check: bool,
    /// The main command: it also gets pilot's stdin and the terminal.
    pub foreground: bool,
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// What stopping the run, or its leftovers, sends to its group first.
    pub stop_signal: i32,
    /// Who it runs as (pilot's own user when `None`).
    pub user: Option<&'a RunAs>,
}

/// Starts a run in its own process group. Unless the output is raw, each line the child writes
/// becomes a log entry.
pub fn start(sup: &dyn Processes, launch: Launch<'_>) -> Result<Run, SpawnError> {
    let output = if launch.raw_output {
        Stdio::Inherit
    } else {
        Stdio::Pipe
    };
    let env = match launch.user {
        Some(user) => user.environment(launch.env),
        None => launch.env,
    };
    let spec = Spec::new(&launch.exec.program, &launch.exec.args)
        .env(env)
        .identity(launch.user.map(|u| u.identity.clone()))
        .stdin(if launch.foreground {
            Stdio::Inherit
        } else {
            Stdio::Null
        })
        .stdout(output)
        .stderr(output)
        .foreground(launch.foreground);
    let mut child = sup.spawn(&spec)?;
    let pid = child.pid();
    for pipe in [child.stdout.take(), child.stderr.take()]
        .into_iter()
        .flatten()
    {
        let origin = Origin {
            job: launch.job.clone(),
            pid,
            check: launch.check,
        };
        tokio::spawn(logging::log_lines(pipe, origin));
    }
    Ok(Run {
        child,
        started: Instant::now(),
        stop_signal: launch.stop_signal,
    })
}

/// Stops a run: its stop signal (and SIGCONT, for a stopped process) to its process group, then
/// SIGKILL to the group if it is still there at `deadline`. Returns how the group leader ended.
pub async fn stop(sup: &dyn Processes, run: &mut Run, deadline: Instant) -> ExitStatus {
    let pgid = run.pid();
    sup.signal_group(pgid, run.stop_signal);
    sup.signal_group(pgid, libc::SIGCONT);
    let status = tokio::select! {
        status = run.child.exited() => status,
        () = tokio::time::sleep_until(deadline) => {
            sup.signal_group(pgid, libc::SIGKILL);
            run.child.exited().await
        }
    };
    tokio::select! {
        () = sup.until_group_gone(pgid) => {}
        () = tokio::time::sleep_until(deadline) => {
            sup.signal_group(pgid, libc::SIGKILL);
        }
    }
    status
}

/// After a run's leader exited, what is left of its group gets the stop signal (SIGTERM, as
/// ContainerPilot sends, unless the job says otherwise): a background process a script forgot
/// about.
pub fn terminate_leftovers(sup: &dyn Processes, run: &Run) {
    if sup.group_exists(run.pid()) {
        sup.signal_group(run.pid(), run.stop_signal);
    }
}
