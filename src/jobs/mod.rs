//! Jobs: one actor (task) per job, owning its state machine.
//!
//! A job starts on its `when` trigger, runs its exec in its own process group, restarts as
//! `restarts` allows (backing off when it crash-loops), and stops on shutdown with ContainerPilot's
//! sequence: `stopping`, its pre-stop hooks, SIGTERM to the group (SIGKILL at the deadline),
//! `stopped`. Every job sees every bus event; what a job does with one is decided by its `Policy`.
//!
//! This module must not wait on the network: anything slow runs in its own task and reports back.

mod backoff;
mod policy;
mod presence;
mod task;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

pub use backoff::{CRASH_RUN, CrashBackoff, MAX_BACKOFF};

use crate::config::{Job, JobKind, When};
use crate::consul::{Client, RegistrationStatus};
use crate::events::{Bus, Event, EventCode};
use crate::exec::Environment;
use crate::supervisor::{ExitStatus, Processes};

/// What every job shares.
pub struct Context {
    /// Starts and stops the job's processes: the supervisor, or a test's fake.
    pub processes: Arc<dyn Processes>,
    pub bus: Bus,
    pub env: Environment,
    /// Once shutdown has begun: the moment pilot SIGKILLs whatever is left.
    pub deadline: watch::Receiver<Option<Instant>>,
    /// The running config's jobs and stop timeout; a reload replaces them.
    pub config: watch::Receiver<RunningConfig>,
}

/// What of the running config jobs need to know, which a reload can change.
#[derive(Clone)]
pub struct RunningConfig {
    pub jobs: Arc<Vec<Arc<Job>>>,
    /// How long a job's stop may take outside shutdown (the global `stopTimeout`).
    pub stop_timeout: Duration,
    /// The client jobs started from now on register their services with.
    pub consul: Client,
}

/// Requests to a job from outside (reload, `pilot -signal`). The two ways to end a job differ
/// in who decides: `StopNow` ends it whatever its policy says, `Shutdown` asks its policy.
#[derive(Debug)]
pub enum JobRequest {
    /// Send a signal to the running process's group; answer whether there was one.
    Signal(i32, oneshot::Sender<bool>),
    /// Stop for good now: the stop sequence (`stopping`, the pre-stop hooks, the stop signal,
    /// `stopped`) runs at once. A reload sends it to a job it removes or replaces.
    StopNow,
    /// What pilot's shutdown does to the job: a stop hook still runs once on its trigger, then
    /// stops; any other job stops at once. A reload sends it to the stop hooks of a job it stops.
    Shutdown,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its trigger, its next tick or a restart.
    Waiting,
    Running,
    Stopping,
    Stopped,
}

/// What a job's health checks last said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobHealth {
    /// No check has run yet (or the job has no `health`).
    Unknown,
    Healthy,
    Unhealthy,
    /// Maintenance mode: checks are paused and the service is out of Consul.
    Maintenance,
}

/// A job's state as `/v3/status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    pub phase: Phase,
    pub pid: Option<i32>,
    /// How many times the exec was restarted.
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    pub health: JobHealth,
}

/// How a job ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: Arc<str>,
    /// The job's key (`Job::key`), which tells apart two jobs of one name.
    pub key: Arc<str>,
    pub last_exit: Option<ExitStatus>,
    /// The job is the application (`main: true` or the command after `--`).
    pub main: bool,
}

/// A handle to a running job.
pub struct JobHandle {
    pub name: Arc<str>,
    requests: mpsc::UnboundedSender<JobRequest>,
    status: watch::Receiver<JobStatus>,
    /// The Consul registration of the job's service, if it has one.
    registration: Option<watch::Receiver<RegistrationStatus>>,
}

impl JobHandle {
    /// Asks the job to stop for good now (`JobRequest::StopNow`).
    pub fn stop_now(&self) {
        // The job may have stopped already; then there is nothing to do.
        let _ = self.requests.send(JobRequest::StopNow);
    }

    /// Sends `signal` to the job's process group if it has a process now. Resolves to whether
    /// it had one (a job that has stopped for good has none).
    pub fn signal(&self, signal: i32) -> impl std::future::Future<Output = bool> + use<> {
        let (reply, answer) = oneshot::channel();
        let _ = self.requests.send(JobRequest::Signal(signal, reply));
        async move { answer.await.unwrap_or(false) }
    }

    /// Asks the job to stop as on shutdown (`JobRequest::Shutdown`).
    pub fn shut_down(&self) {
        let _ = self.requests.send(JobRequest::Shutdown);
    }

    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
    }

    /// Where the job's service stands in Consul, if it has one.
    pub fn registration(&self) -> Option<RegistrationStatus> {
        self.registration.as_ref().map(|r| r.borrow().clone())
    }

    /// A receiver of the registration's status, for waiting on a change.
    pub fn watch_registration(&self) -> Option<watch::Receiver<RegistrationStatus>> {
        self.registration.clone()
    }
}

/// Starts `job` as a task in `tasks`. It is subscribed to the bus before this returns, so it
/// misses nothing published afterwards; it starts acting once the caller yields. `replay` are
/// events it handles first, before anything from the bus: after a reload, a new job learns
/// what already happened (ContainerPilot restarted every job instead).
pub fn spawn(
    job: Arc<Job>,
    ctx: Arc<Context>,
    replay: Vec<Event>,
    tasks: &mut JoinSet<Outcome>,
) -> JobHandle {
    let events = ctx.bus.subscribe();
    let (requests_tx, requests_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(JobStatus {
        phase: Phase::Waiting,
        pid: None,
        restarts: 0,
        last_exit: None,
        health: initial_health(&job),
    });
    let name: Arc<str> = job.name.as_str().into();
    let task = task::Task::new(job, ctx, events, replay, requests_rx, status_tx);
    let registration = task.registration_status();
    tasks.spawn(task.run());
    JobHandle {
        name,
        requests: requests_tx,
        status: status_rx,
        registration,
    }
}

/// The telemetry job has no check, only heartbeats, so nothing would ever make it healthy:
/// ContainerPilot made its `containerpilot` job healthy from the start and kept it so, even in
/// maintenance, and `/status` reports it that way.
fn initial_health(job: &Job) -> JobHealth {
    if job.kind == JobKind::Telemetry {
        JobHealth::Healthy
    } else {
        JobHealth::Unknown
    }
}

/// The jobs that run on `job`'s `stopping` event (its pre-stop hooks). ContainerPilot honoured
/// only the last one; pilot waits for all of them.
pub(crate) fn stop_dependents(job: &Job, all: &[Arc<Job>]) -> Vec<String> {
    all.iter()
        .filter(|other| {
            matches!(&other.when, When::Event { code: EventCode::Stopping, source, .. } if *source == job.name)
        })
        .map(|other| other.name.clone())
        .collect()
}
