//! One run of an exec (a job's, or a health check's): spawning it with the job's environment
//! and output handling, timing it out, and stopping it.

use std::sync::Arc;

use tokio::time::{Duration, Instant};

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
    /// This is a health check (its log lines say so).
    pub check: bool,
    /// The main command: it also gets pilot's stdin and the terminal.
    pub foreground: bool,
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// What stopping the run sends to its group first.
    pub stop_signal: i32,
    /// Who it runs as (pilot's own user when `None`).
    pub user: Option<&'a RunAs>,
}

/// Starts a run. Unless the output is raw, each line the child writes becomes a log entry.
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

/// The delay before restarting a job that keeps exiting quickly: none for a run that lasted at
/// least `CRASH_RUN`, none for the first quick exit, then 100 ms doubling up to `MAX_BACKOFF`.
#[derive(Debug, Default)]
pub struct Backoff {
    quick_exits: u32,
}

/// A run shorter than this counts as a crash for the backoff.
pub const CRASH_RUN: Duration = Duration::from_secs(1);
/// The longest delay between two restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Backoff {
    /// The delay before the next restart, given how long the last run lasted.
    pub fn after_run(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= CRASH_RUN {
            self.quick_exits = 0;
            return Duration::ZERO;
        }
        self.quick_exits = self.quick_exits.saturating_add(1);
        match self.quick_exits {
            0 | 1 => Duration::ZERO,
            n => Duration::from_millis(100)
                .saturating_mul(1u32 << (n - 2).min(16))
                .min(MAX_BACKOFF),
        }
    }

    /// How many runs in a row ended quickly.
    pub fn quick_exits(&self) -> u32 {
        self.quick_exits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_for_quick_exits_and_resets_after_a_long_run() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..10)
            .map(|_| backoff.after_run(quick).as_millis())
            .collect();
        assert_eq!(
            delays,
            [0, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]
        );
        assert_eq!(backoff.after_run(CRASH_RUN), Duration::ZERO);
        assert_eq!(backoff.after_run(quick), Duration::ZERO);
        assert_eq!(backoff.after_run(quick), Duration::from_millis(100));
    }

    #[test]
    fn backoff_does_not_overflow() {
        let mut backoff = Backoff::default();
        for _ in 0..100 {
            assert!(backoff.after_run(Duration::ZERO) <= MAX_BACKOFF);
        }
    }
}
