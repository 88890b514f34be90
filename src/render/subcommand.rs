//! The `-render` subcommand: fetch the running pilot's watches over its control socket, render
//! each `TEMPLATE:DEST[:COMMAND]`, and run COMMAND where DEST changed.
//!
//! Every template is parsed before any is rendered, so a parse error in one writes no DEST. Every
//! DEST is written from one snapshot, fetched while the DEST directories are locked, so
//! that concurrent `-render` runs for one file (a preStart and an onChange hook) leave the newest
//! text in place. The commands run after the writes, outside the lock.
//!
//! COMMAND is split with shell-style quoting (no shell) and started through the supervisor like
//! any process pilot starts. Exit status: 0 when every target was rendered (and its command, if
//! it ran, succeeded), 1 when one failed (unknown watch, template error, write error, failed
//! command, no pilot on the socket), 2 for a usage error.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use nix::fcntl::{Flock, FlockArg};

use super::{Target, parse, write_if_changed};
use crate::cli::Args;
use crate::config;
use crate::control::client::Client;
use crate::control::subcommand::socket_path;
use crate::errors::describe_io_error;
use crate::supervisor::{self, Spec, Supervisor};
use crate::template::Parsed;
use crate::watches::Snapshot;

/// How long the control socket may take to answer.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `-render` for `args` and returns the exit status.
pub fn run(args: &Args) -> i32 {
    if crate::control::subcommand::requested(args) {
        return crate::usage_error("-render cannot be combined with another control subcommand");
    }
    let targets: Result<Vec<Target>, String> = args
        .control
        .render
        .iter()
        .map(|s| Target::parse(s))
        .collect();
    let targets = match targets {
        Ok(targets) => targets,
        Err(message) => return crate::usage_error(&message),
    };
    let Some(socket) = socket_path(args.config.as_deref()) else {
        return 2;
    };
    // Commands are started by the supervisor, which owns the signals from before any thread.
    let ownership = match supervisor::take_over() {
        Ok(ownership) => ownership,
        Err(err) => {
            eprintln!(
                "pilot: cannot take over signals: {}",
                describe_io_error(&err)
            );
            return 1;
        }
    };
    let Some(runtime) = crate::runtime_or_report() else {
        return 1;
    };
    // Held until every DEST is written: see `lock_directories`.
    let locks = lock_directories(&targets);
    runtime.block_on(async move {
        let watches = match fetch(&Client::new(&socket)).await {
            Ok(watches) => watches,
            Err(message) => {
                eprintln!("pilot: -render: {message}");
                return 1;
            }
        };
        let env = config::process_env();
        // Every template is read and parsed before any is rendered: a broken one stops them all,
        // so no DEST is written from half of the set.
        let mut parsed = Vec::new();
        for target in &targets {
            match parse_target(target, &watches, &env) {
                Ok(template) => parsed.push((target, template)),
                Err(message) => {
                    eprintln!("pilot: -render {}: {message}", target.template.display());
                }
            }
        }
        if parsed.len() != targets.len() {
            return 1;
        }
        let mut status = 0;
        let mut written = Vec::new();
        for (target, template) in &parsed {
            match write_target(target, template) {
                Ok(true) => written.push(*target),
                Ok(false) => {
                    let said = format!("pilot: {} is unchanged\n", target.dest.display());
                    status = status.max(crate::print_or_fail(&said));
                }
                Err(message) => {
                    eprintln!("pilot: -render {}: {message}", target.template.display());
                    status = 1;
                }
            }
        }
        drop(locks);
        let (sup, _signals) = match Supervisor::start(ownership) {
            Ok(started) => started,
            Err(err) => {
                eprintln!(
                    "pilot: cannot start the supervisor: {}",
                    describe_io_error(&err)
                );
                return 1;
            }
        };
        for target in written {
            match run_command(target, &sup).await {
                Ok(done) => status = status.max(crate::print_or_fail(&format!("pilot: {done}\n"))),
                Err(message) => {
                    eprintln!("pilot: -render {}: {message}", target.template.display());
                    status = 1;
                }
            }
        }
        status
    })
}

/// Locks the directory of every DEST (each once, in a fixed order, so that two renders never
/// wait on each other), for as long as the renders take. Two `-render` runs for one DEST (a
/// preStart and an onChange hook started together, say) then fetch, render and write one after
/// the other, and the last file written comes from the last snapshot fetched; without the lock
/// the run that fetched first could rename its older text over the newer one. Best effort: a
/// directory that cannot be opened or locked is not locked (writing there will say why).
fn lock_directories(targets: &[Target]) -> Vec<Flock<std::fs::File>> {
    let dirs: std::collections::BTreeSet<std::path::PathBuf> = targets
        .iter()
        .map(|t| super::directory_of(&t.dest).to_path_buf())
        .collect();
    dirs.iter()
        .filter_map(|dir| std::fs::File::open(dir).ok())
        .filter_map(|file| Flock::lock(file, FlockArg::LockExclusive).ok())
        .collect()
}

/// `GET /v3/watches`.
async fn fetch(client: &Client) -> Result<Vec<Snapshot>, String> {
    let answer = client
        .send(Method::GET, "/v3/watches", None, SOCKET_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(answer.message());
    }
    serde_json::from_str(&answer.body)
        .map_err(|e| format!("unexpected answer from {}: {e}", client.socket().display()))
}

/// Reads and parses the template of one target.
fn parse_target(
    target: &Target,
    watches: &[Snapshot],
    env: &BTreeMap<String, String>,
) -> Result<Parsed, String> {
    let text = std::fs::read_to_string(&target.template)
        .map_err(|e| format!("cannot read the template: {}", describe_io_error(&e)))?;
    parse(&text, watches, env).map_err(|e| format!("template: {e}"))
}

/// Renders one parsed target and writes DEST; returns whether DEST changed.
fn write_target(target: &Target, template: &Parsed) -> Result<bool, String> {
    let rendered = template.execute().map_err(|e| format!("template: {e}"))?;
    write_if_changed(&target.dest, &rendered).map_err(|e| {
        format!(
            "cannot write {}: {}",
            target.dest.display(),
            describe_io_error(&e)
        )
    })
}

/// Runs the COMMAND of a target whose DEST changed; says what it did.
async fn run_command(target: &Target, sup: &Supervisor) -> Result<String, String> {
    let dest = target.dest.display();
    let Some(command) = &target.command else {
        return Ok(format!("wrote {dest}"));
    };
    let exec = config::Exec::from_command_line(command)
        .map_err(|e| format!("command {command:?}: {e}"))?;
    let Some(exec) = exec else {
        return Ok(format!("wrote {dest}"));
    };
    let mut child = sup
        .spawn(&Spec::new(&exec.program, &exec.args))
        .map_err(|e| format!("wrote {dest}, but {command:?} did not start: {e}"))?;
    let status = child.exited().await;
    if status.success() {
        Ok(format!("wrote {dest} and ran {command:?}"))
    } else {
        Err(format!("wrote {dest}, but {command:?} failed: {status}"))
    }
}
