//! `health.exec`: one run of the check command.

use std::sync::Arc;

use tokio::time::{Duration, Instant};

use super::{CheckSpec, HEARTBEAT_OUTPUT, HealthResult, publish_exit};
use crate::config::{Exec, go_duration};
use crate::jobs::pid_var_name;
use crate::logging::{self, Origin};
use crate::supervisor::{Processes, Spec, Stdio};

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
    let output = if spec.health.raw_output {
        Stdio::Inherit
    } else {
        Stdio::Pipe
    };
    let env = match &spec.health.user {
        Some(user) => user.environment(spec.env.snapshot()),
        None => spec.env.snapshot(),
    };
    let process = Spec::new(&cmd.program, &cmd.args)
        .env(env)
        .identity(spec.health.user.as_ref().map(|u| u.identity.clone()))
        .stdin(Stdio::Null)
        .stdout(output)
        .stderr(output);
    let mut child = match spec.processes.spawn(&process) {
        Ok(child) => child,
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
    let pid = child.pid();
    let mut guard = GroupGuard {
        processes: spec.processes.clone(),
        pgid: pid,
        armed: true,
    };
    for pipe in [child.stdout.take(), child.stderr.take()]
        .into_iter()
        .flatten()
    {
        let origin = Origin {
            job: spec.job.clone(),
            pid,
            check: true,
        };
        tokio::spawn(logging::log_lines(pipe, origin));
    }
    // ContainerPilot's `CONTAINERPILOT_CHECK_PID`, shared by every job's check; visible to the
    // processes started while the check runs.
    let pid_var = format!("{}_PID", pid_var_name(&name));
    spec.env.set_both(&pid_var, &pid.to_string());
    let timeout = spec.timeout();
    let mut timed_out = false;
    let status = tokio::select! {
        status = child.exited() => status,
        () = tokio::time::sleep(timeout) => {
            timed_out = true;
            tracing::warn!(
                "{name} timeout after {}: '[{}]'",
                go_duration(timeout),
                cmd.args.join(" ")
            );
            spec.processes.signal_group(pid, libc::SIGKILL);
            child.exited().await
        }
    };
    if timed_out {
        // Whatever the check started in its group dies with it, before the next check can run.
        let _ = tokio::time::timeout_at(
            Instant::now() + KILL_GRACE,
            spec.processes.until_group_gone(pid),
        )
        .await;
    } else if spec.processes.group_exists(pid) {
        // As ContainerPilot does after every run: background leftovers get SIGTERM.
        spec.processes.signal_group(pid, libc::SIGTERM);
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
