//! `health.exec`: one run of the check command, started and logged through `crate::exec`, and
//! SIGKILLed with its group at the timeout.

use std::sync::Arc;

use tokio::time::{Duration, Instant};

use super::{CheckSpec, HEARTBEAT_OUTPUT, HealthResult, publish_exit};
use crate::config::{Exec, go_duration};
use crate::exec::{self, Launch, pid_var};
use crate::supervisor::Processes;

/// How long to wait, after SIGKILLing a timed-out check's group, for its last member to be
/// reaped. SIGKILL cannot be ignored; this only bounds a process stuck in the kernel.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// SIGKILLs a check's process group when dropped while armed: when the checker is stopped (its
/// task aborted) in the middle of a run, the check dies with it.
struct GroupGuard {
    processes: Arc<dyn Processes>,
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.processes.signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Runs the check command once: passed when it exits 0 within the timeout.
pub(super) async fn run(spec: &CheckSpec, cmd: &Exec) -> HealthResult {
    let name = spec.name();
    let launch = Launch {
        job: &spec.job,
        exec: cmd,
        raw_output: spec.health.raw_output,
        check: true,
        foreground: false,
        env: spec.env.snapshot(),
        // As ContainerPilot does after every run: background leftovers get SIGTERM.
        stop_signal: libc::SIGTERM,
        user: spec.health.user.as_ref(),
    };
    let mut run = match exec::start(&*spec.processes, launch) {
        Ok(run) => run,
        Err(err) => {
            tracing::error!("unable to start {name}: {err}");
            let reason = err.to_string();
            publish_exit(spec, false, &reason);
            return HealthResult::Checked {
                passed: false,
                output: format!("{name}: {reason}"),
            };
        }
    };
    let pid = run.pid();
    let mut guard = GroupGuard {
        processes: spec.processes.clone(),
        pgid: pid,
        armed: true,
    };
    // ContainerPilot's `CONTAINERPILOT_CHECK_PID`, shared by every job's check; visible to the
    // processes started while the check runs.
    let pid_var = pid_var(&name);
    spec.env.set_both(&pid_var, &pid.to_string());
    let timeout = spec.timeout();
    let mut timed_out = false;
    let status = tokio::select! {
        status = run.child.exited() => status,
        () = tokio::time::sleep(timeout) => {
            timed_out = true;
            tracing::warn!(
                "{name} timeout after {}: '[{}]'",
                go_duration(timeout),
                cmd.args.join(" ")
            );
            spec.processes.signal_group(pid, libc::SIGKILL);
            run.child.exited().await
        }
    };
    if timed_out {
        // Whatever the check started in its group dies with it, before the next check can run.
        let _ = tokio::time::timeout_at(
            Instant::now() + KILL_GRACE,
            spec.processes.until_group_gone(pid),
        )
        .await;
    } else {
        exec::terminate_leftovers(&*spec.processes, &run);
    }
    guard.armed = false;
    spec.env.remove_both(&pid_var);
    if status.success() {
        tracing::debug!("{name} exited without error");
        publish_exit(spec, true, "");
        return HealthResult::Checked {
            passed: true,
            output: HEARTBEAT_OUTPUT.to_string(),
        };
    }
    tracing::error!("{name} exited with error: {status}");
    let reason = format!("{name}: {status}");
    publish_exit(spec, false, &reason);
    HealthResult::Checked {
        passed: false,
        output: if timed_out {
            format!("{name} timeout after {}", go_duration(timeout))
        } else {
            reason
        },
    }
}
