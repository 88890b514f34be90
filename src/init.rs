//! Init mode: `pilot -- COMMAND [ARG...]`, a tini-grade init for one command.
//!
//! COMMAND runs in its own process group and, when pilot is in the foreground of the terminal on
//! stdin, in the foreground (until it exits: then the terminal goes back to pilot's group). Every
//! signal pilot receives (except SIGCHLD and the synchronous ones, which it never takes over) goes
//! to that group. pilot reaps every zombie that reaches it, and exits with COMMAND's status once
//! nothing COMMAND started is left: leftovers get SIGTERM, then SIGKILL after `GRACE`.

use std::ffi::OsString;
use std::time::Duration;

use crate::supervisor::{self, Ownership, Spec, Supervisor};

/// How long what COMMAND leaves behind gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// Runs `command` (non-empty) to completion and returns the status pilot should exit with.
pub fn run(ownership: Ownership, command: Vec<OsString>) -> i32 {
    crate::logging::init_for_init_mode();
    let Some(runtime) = crate::runtime_or_report() else {
        return 1;
    };
    runtime.block_on(supervise(ownership, command))
}

async fn supervise(ownership: Ownership, mut command: Vec<OsString>) -> i32 {
    let (sup, mut signals) = match Supervisor::start(ownership) {
        Ok(started) => started,
        Err(err) => {
            eprintln!(
                "pilot: cannot start the supervisor: {}",
                crate::errors::describe_io_error(&err)
            );
            return 1;
        }
    };
    let program = command.remove(0);
    let spec = Spec::new(program, command).foreground(true);
    // Whose the terminal is before COMMAND takes it, so that it can be given back: a script
    // that runs `pilot -- CMD` and then reads from the terminal must still be able to.
    let terminal = supervisor::terminal_foreground();
    let mut child = match sup.spawn(&spec) {
        Ok(child) => child,
        Err(err) => {
            // The child may have taken the terminal before its exec failed.
            give_back(terminal);
            eprintln!("pilot: {err}");
            return err.exit_code();
        }
    };
    let pgid = child.pid();
    let status = loop {
        tokio::select! {
            status = child.exited() => break status,
            Some(received) = signals.recv() => {
                sup.signal_group(pgid, received.signal);
            }
        }
    };
    give_back(terminal);
    clean_up(&sup, pgid).await;
    status.code()
}

/// Makes the group that had the terminal before COMMAND the foreground group again.
fn give_back(terminal: Option<libc::pid_t>) {
    if let Some(pgid) = terminal {
        supervisor::give_terminal_to(pgid);
    }
}

/// Stops whatever COMMAND left behind: its process group, and anything that escaped the group
/// (a daemon that called `setsid`), since no process may outlive pilot.
async fn clean_up(sup: &Supervisor, pgid: i32) {
    sup.terminate_all(Some(pgid), tokio::time::Instant::now() + GRACE)
        .await;
}
