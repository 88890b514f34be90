//! Health checks: one task per job with `health`, which runs the job's check every `interval`
//! and reports each result to the job over a channel.
//!
//! A check is a command (`health.exec`, run through the supervisor in its own process group and
//! SIGKILLed with its group at `health.timeout`), an HTTP GET (`health.http`: 2xx and 3xx pass,
//! redirects are not followed), or a TCP connect (`health.tcp`). A job with `health` but no check
//! gets a [`HealthResult::Heartbeat`] every interval instead, for its TTL.
//!
//! This module must not decide what a result means for the job or for Consul: it runs checks
//! and reports. It publishes what ContainerPilot's check commands published: `ExitSuccess` or
//! `ExitFailed` (then `Error`) with source `check.<job>`, for every kind of check, so that
//! configs that react to `check.<job>` keep working when a `curl` check becomes `health.http`.
//!
//! Scheduling:
//! - The first check runs one interval after the checker is spawned (ContainerPilot's first
//!   heartbeat tick), then every interval, as long as the checker is not paused.
//! - Checkers start paused: the job resumes its checker when its exec first starts, pauses it
//!   for maintenance and resumes it after.
//! - A check never overlaps itself: ticks that fall while a check runs are coalesced into one
//!   check right after it, then the schedule resumes on the interval's grid.
//! - A result that arrives while the checker is paused is dropped (the job is in maintenance).
//! - Each job has its own task, so a hung check delays no other job's checks; it is killed at
//!   its timeout anyway.

mod exec;
mod probe;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant, MissedTickBehavior};

use crate::config::{Check, HealthCheck};
use crate::events::{Bus, Event, EventCode};
use crate::exec::Environment;
use crate::supervisor::Processes;

pub use probe::{http_check, tcp_check};

/// The output sent to Consul with a heartbeat and with a passing command check: ContainerPilot's
/// `ok`. It never changes, so steady heartbeats cause no catalog writes.
pub const HEARTBEAT_OUTPUT: &str = "ok";

/// What one tick produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthResult {
    /// The job has no check: its service's TTL is due for a refresh.
    Heartbeat,
    /// A check ran. `output` is a short, stable description for the Consul check.
    Checked { passed: bool, output: String },
}

impl HealthResult {
    /// The output for Consul: [`HEARTBEAT_OUTPUT`] for a heartbeat.
    pub fn detail(&self) -> &str {
        match self {
            HealthResult::Heartbeat => HEARTBEAT_OUTPUT,
            HealthResult::Checked { output, .. } => output,
        }
    }

    /// Whether the service counts as passing after this.
    pub fn passed(&self) -> bool {
        match self {
            HealthResult::Heartbeat => true,
            HealthResult::Checked { passed, .. } => *passed,
        }
    }
}

/// Everything a checker needs.
#[derive(Clone)]
pub struct CheckSpec {
    /// The job's name; the check is `check.<job>` in events and logs.
    pub job: Arc<str>,
    pub health: HealthCheck,
    /// Starts command checks (the supervisor, or a test's fake).
    pub processes: Arc<dyn Processes>,
    /// The environment command checks get (read at each run, as the job's own exec does).
    pub env: Environment,
    /// Where the check's exit events go; `None` publishes nothing.
    pub bus: Option<Bus>,
}

impl CheckSpec {
    /// `check.<job>`.
    pub fn name(&self) -> String {
        format!("check.{}", self.job)
    }

    /// The time a check may take: `health.timeout`, or the interval when that is zero.
    pub fn timeout(&self) -> Duration {
        if self.health.timeout.is_zero() {
            self.health.interval
        } else {
            self.health.timeout
        }
    }
}

/// A running checker. Dropping it stops it and kills a check that is running.
pub struct Checker {
    paused: watch::Sender<bool>,
    /// `None` once stopped.
    task: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts the checker of `spec`, paused. Results go to `results`; the checker ends when the
    /// receiver is dropped. Must be called inside a tokio runtime.
    pub fn spawn(spec: CheckSpec, results: mpsc::UnboundedSender<HealthResult>) -> Checker {
        let (paused_tx, paused_rx) = watch::channel(true);
        let task = tokio::spawn(run(spec, paused_rx, results));
        Checker {
            paused: paused_tx,
            task: Some(task),
        }
    }

    /// Stops running checks (a check already running finishes, its result is dropped).
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Runs checks again, from the next tick on.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Stops the checker; a running command check is SIGKILLed with its process group, and this
    /// returns once the checker's task has ended. Calling it again does nothing.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn run(
    spec: CheckSpec,
    mut paused: watch::Receiver<bool>,
    results: mpsc::UnboundedSender<HealthResult>,
) {
    let every = spec.health.interval.max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    // Ticks missed during a long check collapse into one: a check never overlaps itself, and
    // never runs back to back more than once.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let probe = probe::Prober::new(&spec.health.check);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = results.closed() => return,
        }
        if *paused.borrow_and_update() {
            continue;
        }
        let result = match &spec.health.check {
            Check::None => HealthResult::Heartbeat,
            Check::Exec(cmd) => exec::run(&spec, cmd).await,
            Check::Http { url } => probe.http(&spec, url).await,
            Check::Tcp { address } => probe::tcp(&spec, address).await,
        };
        if *paused.borrow() {
            continue;
        }
        if results.send(result).is_err() {
            return;
        }
    }
}

/// Publishes the end of a check run as ContainerPilot's commands did: `ExitSuccess`, or
/// `ExitFailed` followed by `Error` with `reason`.
fn publish_exit(spec: &CheckSpec, passed: bool, reason: &str) {
    let Some(bus) = &spec.bus else {
        return;
    };
    let name = spec.name();
    if passed {
        bus.publish(Event::new(EventCode::ExitSuccess, name));
    } else {
        bus.publish(Event::new(EventCode::ExitFailed, name.as_str()));
        bus.publish(Event::new(EventCode::Error, reason));
    }
}
