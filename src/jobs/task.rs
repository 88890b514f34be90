//! The job actor: one task per job, which owns the job's state and reacts, one input at a time,
//! to bus events, its child's exit and its timers. `Policy` decides; this file carries it out.

use std::collections::{HashMap, HashSet};
use std::future::pending;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, Interval, MissedTickBehavior};

use super::backoff::{self, CrashBackoff};
use super::policy::{Decision, Policy};
use super::presence::Presence;
use super::{Context, JobHealth, JobRequest, JobStatus, Outcome, Phase};
use crate::config::{Job, JobKind, When, go_duration};
use crate::consul::RegistrationStatus;
use crate::events::{Event, EventCode, GLOBAL, Subscription};
use crate::exec::{self, Launch, Run, pid_var};
use crate::health::HealthResult;
use crate::supervisor::{ExitStatus, SpawnError};

/// One thing that happened to the job.
enum Input {
    Event(Event),
    Exited(ExitStatus),
    /// The exec could not be started.
    StartFailed(SpawnError),
    /// The job has no exec, so its "run" ended as soon as it began.
    NothingToRun,
    RunTimedOut,
    Tick,
    Health(HealthResult),
    WaitTimedOut,
    RestartDue,
    Request(JobRequest),
    BusClosed,
}

/// Where the job's run stands. There is one run at a time, and the states say so: a restart can
/// only be due while no run is going, and a run's timeout only exists with the run.
enum RunState {
    /// No run. `gives_up_at` is the `when.timeout` of a job that has never started: then it stops
    /// waiting for its trigger.
    Idle { gives_up_at: Option<Instant> },
    /// The exec is running; at `deadline` (its `timeout`) it is killed.
    Running { run: Run, deadline: Option<Instant> },
    /// A job without an exec that registers a service or runs checks: up until it stops.
    Up,
    /// A run ended and the next one starts at `at`, after the crash-loop backoff.
    RestartDue { at: Instant },
    /// The job is going through its stop sequence (`finish`), which took its run, if any.
    Halting,
}

/// The longest a stopping job waits for Consul to deregister its service: the one wait on the
/// network on a job's path (ARCHITECTURE.md, invariant 4, says why).
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the task does after an input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// The job is done for good (the policy's `Halt`, a `JobRequest::StopNow`, the bus closing):
    /// the task leaves its loop and goes through its stop sequence (`finish`).
    Finish,
}

pub(super) struct Task {
    cfg: Arc<Job>,
    name: Arc<str>,
    ctx: Arc<Context>,
    events: Subscription,
    requests: mpsc::UnboundedReceiver<JobRequest>,
    status: watch::Sender<JobStatus>,
    policy: Policy,
    /// Events to handle before anything from the bus (see `jobs::spawn`).
    replay: std::collections::VecDeque<Event>,
    state: RunState,
    /// An input produced while handling another one (a failed start), handled next.
    queued: Option<Input>,
    ticker: Option<Interval>,
    backoff: CrashBackoff,
    /// Jobs whose `Stopped` event has been seen.
    stopped_jobs: HashSet<Arc<str>>,
    /// How many `Stopped` events each source published: a name two jobs share stops for good
    /// when both have stopped.
    stops_seen: HashMap<Arc<str>, usize>,
    last_exit: Option<ExitStatus>,
    /// Its health checker and Consul registration.
    presence: Presence,
}

impl Task {
    pub(super) fn new(
        cfg: Arc<Job>,
        ctx: Arc<Context>,
        events: Subscription,
        replay: Vec<Event>,
        requests: mpsc::UnboundedReceiver<JobRequest>,
        status: watch::Sender<JobStatus>,
    ) -> Task {
        let now = Instant::now();
        let ticker = match cfg.when {
            When::Interval(every) => {
                let mut ticker = tokio::time::interval_at(now + every, every);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
                Some(ticker)
            }
            _ => None,
        };
        let gives_up_at = match cfg.when {
            When::Event {
                timeout: Some(timeout),
                ..
            }
            | When::Never {
                timeout: Some(timeout),
            } => Some(now + timeout),
            _ => None,
        };
        let name: Arc<str> = cfg.name.as_str().into();
        let presence = Presence::new(&cfg, &name, &ctx);
        Task {
            name,
            policy: Policy::new(&cfg),
            cfg,
            ctx,
            events,
            requests,
            status,
            replay: replay.into(),
            state: RunState::Idle { gives_up_at },
            queued: None,
            ticker,
            backoff: CrashBackoff::default(),
            stopped_jobs: HashSet::new(),
            stops_seen: HashMap::new(),
            last_exit: None,
            presence,
        }
    }

    /// The registration's status, for the job's handle.
    pub(super) fn registration_status(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<RegistrationStatus>> {
        self.presence.registration_status()
    }

    pub(super) async fn run(mut self) -> Outcome {
        loop {
            let input = self.next_input().await;
            if self.handle(input) == Flow::Finish {
                break;
            }
        }
        self.finish().await;
        Outcome {
            name: self.name.clone(),
            key: self.cfg.key.as_str().into(),
            last_exit: self.last_exit,
            main: self.cfg.main,
        }
    }

    async fn next_input(&mut self) -> Input {
        if let Some(input) = self.queued.take() {
            return input;
        }
        if let Some(event) = self.replay.pop_front() {
            return Input::Event(event);
        }
        let ticker = self.ticker.as_mut();
        let (run, run_deadline, gives_up_at, restart_at) = match &mut self.state {
            RunState::Running { run, deadline } => (Some(run), *deadline, None, None),
            RunState::Idle { gives_up_at } => (None, None, *gives_up_at, None),
            RunState::RestartDue { at } => (None, None, None, Some(*at)),
            RunState::Up | RunState::Halting => (None, None, None, None),
        };
        tokio::select! {
            Some(result) = self.presence.next_result() => Input::Health(result),
            event = self.events.recv() => event.map_or(Input::BusClosed, Input::Event),
            Some(request) = self.requests.recv() => Input::Request(request),
            status = exited(run) => Input::Exited(status),
            () = sleep_until(run_deadline) => Input::RunTimedOut,
            () = sleep_until(gives_up_at) => Input::WaitTimedOut,
            () = sleep_until(restart_at) => Input::RestartDue,
            () = tick(ticker) => Input::Tick,
        }
    }

    fn handle(&mut self, input: Input) -> Flow {
        match input {
            Input::Event(event) => self.on_event(event),
            Input::Exited(status) => self.on_exit(status),
            Input::StartFailed(err) => self.on_start_failed(err),
            Input::NothingToRun => {
                let decision = self.policy.on_exit();
                self.apply(decision, Duration::ZERO)
            }
            Input::RunTimedOut => {
                self.on_run_timeout();
                Flow::Continue
            }
            Input::Tick => {
                let decision = self.policy.on_tick();
                self.apply(decision, Duration::ZERO)
            }
            Input::Health(result) => {
                self.on_health(result);
                Flow::Continue
            }
            Input::WaitTimedOut => {
                self.state = RunState::Idle { gives_up_at: None };
                tracing::info!("{} gave up waiting for its trigger", self.name);
                self.ctx
                    .bus
                    .publish(Event::new(EventCode::TimerExpired, self.name.clone()));
                let decision = self.policy.on_quit(self.cfg.exec.is_some());
                self.apply(decision, Duration::ZERO)
            }
            // Only a `RestartDue` state has a restart timer, and it has no run: nothing to orphan.
            Input::RestartDue => {
                self.start();
                Flow::Continue
            }
            Input::Request(JobRequest::Signal(signal, reply)) => {
                let sent = match &self.state {
                    RunState::Running { run, .. } => {
                        self.ctx.processes.signal_group(run.pid(), signal)
                    }
                    _ => false,
                };
                let _ = reply.send(sent);
                Flow::Continue
            }
            Input::Request(JobRequest::Shutdown) => self.shutdown(),
            Input::Request(JobRequest::StopNow) | Input::BusClosed => Flow::Finish,
        }
    }

    fn on_event(&mut self, event: Event) -> Flow {
        if &*event.source == GLOBAL {
            match event.code {
                EventCode::Shutdown => return self.shutdown(),
                EventCode::EnterMaintenance => self.enter_maintenance(),
                EventCode::ExitMaintenance => self.exit_maintenance(),
                _ => {}
            }
        }
        if self.policy.matches(&event) {
            let decision = self.policy.on_trigger();
            return self.apply(decision, Duration::ZERO);
        }
        if event.code == EventCode::Stopped {
            self.stopped_jobs.insert(event.source.clone());
            if !self.all_stopped(&event.source) {
                // Another job of that name may still publish (two jobs can share a name).
                return Flow::Continue;
            }
            // Neither the stopped job nor its health check will publish anything again.
            let mut decision = self.policy.on_source_stopped(&event.source);
            if decision == Decision::Wait {
                decision = self
                    .policy
                    .on_source_stopped(&format!("check.{}", event.source));
            }
            if decision == Decision::Halt {
                tracing::info!(
                    "{} will never start: {} has stopped",
                    self.name,
                    event.source
                );
            }
            return self.apply(decision, Duration::ZERO);
        }
        Flow::Continue
    }

    /// Whether every job named `name` has now published `Stopped`: counts the stops seen.
    fn all_stopped(&mut self, name: &Arc<str>) -> bool {
        let seen = self.stops_seen.entry(name.clone()).or_insert(0);
        *seen += 1;
        let sharing = self
            .ctx
            .config
            .borrow()
            .jobs
            .iter()
            .filter(|j| *j.name == **name)
            .count();
        *seen >= sharing
    }

    /// Shutdown, or a reload that stops the job this one is a stop hook of: the policy decides
    /// (`Policy::on_quit`).
    fn shutdown(&mut self) -> Flow {
        let decision = self.policy.on_quit(self.cfg.exec.is_some());
        self.apply(decision, Duration::ZERO)
    }

    fn apply(&mut self, decision: Decision, ran_for: Duration) -> Flow {
        match decision {
            Decision::Start => self.start(),
            Decision::Restart => {
                let delay = self.backoff.after_run(ran_for);
                self.status.send_modify(|s| s.restarts += 1);
                if delay.is_zero() {
                    self.start();
                } else {
                    tracing::warn!(
                        "{} exited {} times in a row within {:?} of starting: restarting in {:?}",
                        self.name,
                        self.backoff.quick_exits(),
                        backoff::CRASH_RUN,
                        delay
                    );
                    self.state = RunState::RestartDue {
                        at: Instant::now() + delay,
                    };
                }
            }
            Decision::Wait => {}
            Decision::Halt => return Flow::Finish,
        }
        Flow::Continue
    }

    /// Starts a run of the exec. Whatever the state was (idle, or a restart due), it is replaced:
    /// no run is going (the policy holds triggers back during one), and a restart still due
    /// would start a second run beside this one.
    fn start(&mut self) {
        debug_assert!(!matches!(self.state, RunState::Running { .. }));
        self.state = RunState::Idle { gives_up_at: None };
        self.policy.started();
        self.presence.started();
        let Some(exec) = &self.cfg.exec else {
            // A job without exec that registers a service or runs health checks stays up until
            // it is stopped; any other has nothing to do.
            if self.cfg.service.is_none() && self.cfg.health.is_none() {
                self.queued = Some(Input::NothingToRun);
            } else {
                self.state = RunState::Up;
                self.set_phase(Phase::Running, None);
            }
            return;
        };
        let launch = Launch {
            job: &self.name,
            exec,
            raw_output: self.cfg.raw_output,
            check: false,
            foreground: self.cfg.kind == JobKind::MainCommand,
            env: self.ctx.env.snapshot(),
            stop_signal: self.cfg.stop_signal,
            user: self.cfg.user.as_ref(),
        };
        match exec::start(&*self.ctx.processes, launch) {
            Ok(run) => {
                let pid = run.pid();
                tracing::debug!("{} started with pid {pid}", self.name);
                // Visible to the processes started after this one, as in ContainerPilot.
                self.ctx
                    .env
                    .set_both(&pid_var(&self.name), &pid.to_string());
                let deadline = self.timeout().map(|t| run.started + t);
                self.state = RunState::Running { run, deadline };
                self.set_phase(Phase::Running, Some(pid));
            }
            Err(err) => self.queued = Some(Input::StartFailed(err)),
        }
    }

    /// The run timeout: `timeout`, or the interval for interval jobs.
    fn timeout(&self) -> Option<Duration> {
        match self.cfg.when {
            When::Interval(every) => Some(self.cfg.timeout.unwrap_or(every)),
            _ => self.cfg.timeout,
        }
    }

    fn on_exit(&mut self, status: ExitStatus) -> Flow {
        let ended = std::mem::replace(&mut self.state, RunState::Idle { gives_up_at: None });
        let ran_for = match ended {
            RunState::Running { run, .. } => {
                exec::terminate_leftovers(&*self.ctx.processes, &run);
                run.started.elapsed()
            }
            _ => Duration::ZERO,
        };
        self.ctx.env.remove_both(&pid_var(&self.name));
        if status.success() {
            tracing::debug!("{} exited without error", self.name);
            self.ctx
                .bus
                .publish(Event::new(EventCode::ExitSuccess, self.name.clone()));
        } else {
            tracing::error!("{} exited with error: {status}", self.name);
            self.publish_failure(&status.to_string());
        }
        self.record_exit(status);
        let decision = self.policy.on_exit();
        self.apply(decision, ran_for)
    }

    fn on_start_failed(&mut self, err: SpawnError) -> Flow {
        tracing::error!("unable to start {}: {err}", self.name);
        self.publish_failure(&err.to_string());
        self.record_exit(ExitStatus::Exited(err.exit_code()));
        let decision = self.policy.on_exit();
        self.apply(decision, Duration::ZERO)
    }

    fn publish_failure(&self, reason: &str) {
        self.ctx
            .bus
            .publish(Event::new(EventCode::ExitFailed, self.name.clone()));
        self.ctx.bus.publish(Event::new(
            EventCode::Error,
            format!("{}: {reason}", self.name),
        ));
    }

    fn record_exit(&mut self, status: ExitStatus) {
        self.last_exit = Some(status);
        self.status.send_modify(|s| {
            s.phase = Phase::Waiting;
            s.pid = None;
            s.last_exit = Some(status);
        });
    }

    fn on_run_timeout(&mut self) {
        let timeout = self.timeout();
        let RunState::Running { run, deadline } = &mut self.state else {
            return;
        };
        *deadline = None;
        let (Some(timeout), Some(exec)) = (timeout, &self.cfg.exec) else {
            return;
        };
        tracing::warn!(
            "{} timeout after {}: '[{}]'",
            self.name,
            go_duration(timeout),
            exec.args.join(" ")
        );
        self.ctx.processes.signal_group(run.pid(), libc::SIGKILL);
    }

    fn on_health(&mut self, result: HealthResult) {
        if self.presence.report(&result) {
            self.publish_health(&result);
        }
    }

    /// A check's result becomes `healthy` or `unhealthy` on the bus, every time, as in
    /// ContainerPilot (a heartbeat without a check publishes nothing).
    fn publish_health(&self, result: &HealthResult) {
        let HealthResult::Checked { passed, .. } = result else {
            return;
        };
        let (code, health) = if *passed {
            (EventCode::StatusHealthy, JobHealth::Healthy)
        } else {
            (EventCode::StatusUnhealthy, JobHealth::Unhealthy)
        };
        self.set_health(health);
        self.ctx.bus.publish(Event::new(code, self.name.clone()));
    }

    /// Records what the checks say. The telemetry job's health never changes (see
    /// `jobs::initial_health`).
    fn set_health(&self, health: JobHealth) {
        if self.cfg.kind != JobKind::Telemetry {
            self.status.send_modify(|s| s.health = health);
        }
    }

    /// Maintenance: checks pause and the service leaves Consul.
    fn enter_maintenance(&mut self) {
        self.presence.enter_maintenance();
        self.set_health(JobHealth::Maintenance);
    }

    /// The end of maintenance: checks resume and the service is registered again.
    fn exit_maintenance(&mut self) {
        self.presence.exit_maintenance();
        self.set_health(JobHealth::Unknown);
    }

    fn set_phase(&self, phase: Phase, pid: Option<i32>) {
        self.status.send_modify(|s| {
            s.phase = phase;
            s.pid = pid;
        });
    }

    /// The stop sequence, once the job is done for good: `stopping`, the pre-stop hooks, its stop
    /// signal to the run's group (then SIGKILL at the deadline), `stopped`.
    async fn finish(&mut self) {
        let run = match std::mem::replace(&mut self.state, RunState::Halting) {
            RunState::Running { run, .. } => Some(run),
            _ => None,
        };
        self.set_phase(Phase::Stopping, run.as_ref().map(Run::pid));
        self.ctx
            .bus
            .publish(Event::new(EventCode::Stopping, self.name.clone()));
        self.wait_for_stop_dependents().await;
        self.presence.stop_checks().await;
        // Out of Consul before the process is signalled, so that no client is sent to an
        // instance that is going away.
        let left = self
            .stop_deadline()
            .saturating_duration_since(Instant::now());
        self.presence.deregister(left.min(DEREGISTER_TIMEOUT)).await;
        if let Some(mut run) = run {
            let deadline = self.stop_deadline();
            let status = exec::stop(&*self.ctx.processes, &mut run, deadline).await;
            tracing::debug!("{} stopped: {status}", self.name);
            self.ctx.env.remove_both(&pid_var(&self.name));
            self.last_exit = Some(status);
        }
        self.status.send_modify(|s| {
            s.phase = Phase::Stopped;
            s.pid = None;
            s.last_exit = self.last_exit;
        });
        self.ctx
            .bus
            .publish(Event::new(EventCode::Stopped, self.name.clone()));
    }

    /// When the run must be gone: the shutdown deadline during shutdown, otherwise the global
    /// `stopTimeout` from now (a reload, or a job that stops while pilot runs on).
    fn stop_deadline(&self) -> Instant {
        self.ctx
            .deadline
            .borrow()
            .unwrap_or_else(|| Instant::now() + self.ctx.config.borrow().stop_timeout)
    }

    /// Waits until every job that runs on this job's `stopping` has stopped, at most the job's
    /// `stopTimeout` (and never past the stop deadline).
    async fn wait_for_stop_dependents(&mut self) {
        let dependents = super::stop_dependents(&self.cfg, &self.ctx.config.borrow().jobs);
        let mut waiting: Vec<String> = dependents
            .iter()
            .filter(|d| !self.stopped_jobs.contains(d.as_str()))
            .cloned()
            .collect();
        if waiting.is_empty() {
            return;
        }
        let mut limit = self.stop_deadline();
        if let Some(timeout) = self.cfg.stop_timeout {
            limit = limit.min(Instant::now() + timeout);
        }
        while !waiting.is_empty() {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) if event.code == EventCode::Stopped => {
                        self.stopped_jobs.insert(event.source.clone());
                        waiting.retain(|d| **d != *event.source);
                    }
                    Some(_) => {}
                    None => return,
                },
                () = tokio::time::sleep_until(limit) => {
                    tracing::warn!(
                        "{} stopped waiting for {} to finish",
                        self.name,
                        waiting.join(", ")
                    );
                    return;
                }
            }
        }
    }
}

async fn exited(run: Option<&mut Run>) -> ExitStatus {
    match run {
        Some(run) => run.child.exited().await,
        None => pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}

async fn tick(ticker: Option<&mut Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => pending().await,
    }
}

#[cfg(test)]
mod tests;
