//! Reloads: the plan (which jobs a new config stops, which it starts, and what a started job is
//! told about the past) and its execution by the daemon (`Daemon::reload`, which checks
//! everything that can refuse the new config before changing anything, then stops what the plan
//! stops; `Daemon::finish_reload`, once those have stopped, which puts the new config in place
//! and starts what the plan starts).
//!
//! ContainerPilot stopped every job on reload and started the whole config again. pilot keeps
//! every job whose definition is unchanged running: it stops the jobs that changed or were
//! removed (with their stop hooks and Consul deregistration) and starts the changed and added
//! ones. A new `consul` block changes every job with a service: its registration holds the
//! client it was started with. A job whose trigger comes from a (re)started job is restarted
//! with it: it is that job's hook or follower, and must serve its new instance. Stop hooks of a
//! stopped job still run for it first, as on shutdown.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::{
    Daemon, Mode, SHUTTING_DOWN, load, lock, log_warnings, running_config_of, telemetry_metrics,
};
use crate::config::{Config, Job, JobKind, Repeat, When};
use crate::consul;
use crate::events::{Event, EventCode, GLOBAL};
use crate::telemetry;

/// Every (code, source) pair published so far that a job started by a reload may need.
pub type History = HashSet<(EventCode, Arc<str>)>;

/// What a reload does, naming jobs by their keys.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Running jobs to stop first: changed, removed, or running on one of those.
    pub stop: Vec<String>,
    /// Running stop hooks (`stopping`/`stopped` of a job in `stop`): told to quit as on shutdown,
    /// so that they still run for the instance that stops, then halt.
    pub hooks: Vec<String>,
    /// Jobs to start once those have stopped, in config order.
    pub start: Vec<String>,
}

/// Plans going from `old` to `new`. `running` are the jobs with a live task.
///
/// A job whose trigger comes from a (re)started job is restarted with it, transitively: it is
/// that job's hook or follower, and its policy is bound to the old run (a `once` hook spent on
/// the reload's own stop, an `each` follower halted by the old run's `stopped`).
///
/// Jobs are known by their keys (`Job::key`); a trigger names a job by its name, which two jobs
/// may share: it follows both.
pub fn plan(old: &Config, new: &Config, running: &BTreeSet<Arc<str>>) -> Plan {
    let changed = |key: &str| old.job(key) != new.job(key) || moves_agent(old, new, key);
    let mut start: HashSet<&str> = new
        .jobs
        .iter()
        .filter(|j| changed(&j.key))
        .map(|j| j.key.as_str())
        .collect();
    loop {
        let before = start.len();
        let started_names: HashSet<&str> = new
            .jobs
            .iter()
            .filter(|j| start.contains(j.key.as_str()))
            .map(|j| j.name.as_str())
            .collect();
        for job in &new.jobs {
            if trigger_job(job).is_some_and(|s| started_names.contains(s)) {
                start.insert(&job.key);
            }
        }
        if start.len() == before {
            break;
        }
    }
    let stopping: Vec<&Job> = old
        .jobs
        .iter()
        .filter(|j| running.contains(j.key.as_str()))
        .filter(|j| start.contains(j.key.as_str()) || new.job(&j.key).is_none())
        .collect();
    let stopping_names: HashSet<&str> = stopping.iter().map(|j| j.name.as_str()).collect();
    let is_hook = |job: &Job| {
        matches!(&job.when, When::Event { code: EventCode::Stopping | EventCode::Stopped, source, .. }
            if stopping_names.contains(source.as_str()))
    };
    let (hooks, stop): (Vec<&Job>, Vec<&Job>) = stopping.into_iter().partition(|j| is_hook(j));
    let keys = |jobs: Vec<&Job>| jobs.into_iter().map(|j| j.key.clone()).collect();
    Plan {
        stop: keys(stop),
        hooks: keys(hooks),
        start: keys(
            new.jobs
                .iter()
                .filter(|j| start.contains(j.key.as_str()))
                .collect(),
        ),
    }
}

/// Whether the job `key` has a service that a new `consul` block moves to another agent (or another
/// token or TLS setup). Its registration holds the client it was spawned with, so only a new
/// instance of the job registers with the new agent; stopping the old one deregisters it from
/// the old agent.
fn moves_agent(old: &Config, new: &Config, key: &str) -> bool {
    old.consul != new.consul && new.job(key).is_some_and(|j| j.service.is_some())
}

/// The job a job's trigger comes from: its `source`, or the job of a `check.<job>` source.
fn trigger_job(job: &Job) -> Option<&str> {
    match &job.when {
        When::Event { source, .. } => Some(source.strip_prefix("check.").unwrap_or(source)),
        _ => None,
    }
}

/// The events a job started by a reload handles first:
/// - `Startup` for a job that starts at startup (or on an interval): pilot's startup is past;
/// - its `once` trigger, if that event already happened (the `exitSuccess` of a pre-start job
///   that ran long ago), except `stopping`/`stopped` triggers, which belong to the next stop;
///   `forget` has already dropped what jobs restarted by the reload published before;
/// - `Stopped` for every job that has stopped for good and is not started again, so that a job
///   waiting on one of them knows it never will.
pub fn replay(
    job: &Job,
    happened: &HashSet<(EventCode, Arc<str>)>,
    gone: &[Arc<str>],
) -> Vec<Event> {
    let mut events = Vec::new();
    match &job.when {
        When::Startup | When::Interval(_) => events.push(Event::new(EventCode::Startup, GLOBAL)),
        When::Event {
            code,
            source,
            repeat: Repeat::Once,
            ..
        } if !matches!(code, EventCode::Stopping | EventCode::Stopped)
            && happened.contains(&(*code, Arc::from(source.as_str()))) =>
        {
            events.push(Event::new(*code, source.as_str()));
        }
        _ => {}
    }
    events.extend(
        gone.iter()
            .map(|name| Event::new(EventCode::Stopped, name.clone())),
    );
    events
}

/// Forgets what the previous instances of the jobs named `restarted` (and their health checks) published:
/// a job started by the reload must wait for the new instance of its source, not fire on the
/// old one's `exitSuccess`.
pub fn forget(history: &mut History, restarted: &[String]) {
    history.retain(|(_, source)| {
        let job = source.strip_prefix("check.").unwrap_or(source);
        !restarted.iter().any(|name| name == job)
    });
}

/// Whether an event is worth remembering for `replay`. Error and metric events carry arbitrary
/// text in their source, and nothing can wait for them; everything else has a bounded set of
/// sources (job, check, watch and signal names, `global`).
pub fn remembered(event: &Event) -> bool {
    !matches!(event.code, EventCode::Error | EventCode::Metric)
}

/// The answer to one reload request: `Err` with the reason the config was refused.
pub(super) type Reply = oneshot::Sender<Result<(), String>>;

/// A reload waiting for the jobs it stops.
pub(super) struct Pending {
    cfg: Config,
    plan: Plan,
    /// The jobs still to stop, by key.
    pub(super) stopping: BTreeSet<Arc<str>>,
    replies: Vec<Reply>,
    /// The new telemetry server, already listening, when its address changed.
    telemetry: Option<telemetry::Server>,
    /// Reload requests that arrived meanwhile: they get a reload of their own afterwards, so each
    /// is answered by a reload that read the file after the request.
    queued: Vec<Reply>,
}

impl Pending {
    /// Answers every request waiting on this reload with `why` (pilot is shutting down).
    pub(super) fn refuse_all(&mut self, why: &str) {
        for reply in self.replies.drain(..).chain(self.queued.drain(..)) {
            let _ = reply.send(Err(why.to_string()));
        }
    }
}

/// Logs why a reload was refused: the first line of `err` says the running config stays, the
/// others follow it.
fn log_refused(err: &str) {
    let mut lines = err.lines();
    tracing::error!(
        "reload failed, the running config stays: {}",
        lines.next().unwrap_or_default()
    );
    for line in lines {
        tracing::error!("reload failed: {line}");
    }
}

impl Daemon {
    /// Re-reads the config. An invalid one (or a telemetry address that cannot be bound) is
    /// answered with its problems and changes nothing; otherwise the jobs `plan` picks
    /// are stopped and started again, added jobs are started and removed ones stopped, and
    /// `reply` is answered once the new jobs are running.
    pub(super) fn reload(&mut self, reply: Reply) {
        match &mut self.mode {
            Mode::ShuttingDown { .. } => {
                let _ = reply.send(Err(SHUTTING_DOWN.to_string()));
                return;
            }
            Mode::Reloading(pending) => {
                pending.queued.push(reply);
                return;
            }
            Mode::Running => {}
        }
        let (cfg, telemetry) = match self.prepare_reload() {
            Ok(ready) => ready,
            Err(err) => {
                log_refused(&err);
                let _ = reply.send(Err(err));
                return;
            }
        };
        let plan = plan(&self.cfg, &cfg, &self.roster.running());
        tracing::info!(
            "reloading {}: stopping {:?} (and the hooks {:?}), then starting {:?}",
            self.config_path.display(),
            plan.stop,
            plan.hooks,
            plan.start
        );
        // Hooks first: each must know it is quitting before its trigger, the stop of a job
        // below, arrives.
        for name in &plan.hooks {
            if let Some(handle) = self.roster.handles.get(name.as_str()) {
                handle.shut_down();
            }
        }
        for name in &plan.stop {
            if let Some(handle) = self.roster.handles.get(name.as_str()) {
                handle.stop_now();
            }
        }
        let stopping: BTreeSet<Arc<str>> = plan
            .stop
            .iter()
            .chain(&plan.hooks)
            .map(|n| Arc::from(n.as_str()))
            .collect();
        if let Err(err) = self.metrics.configure(telemetry_metrics(&cfg)) {
            // Checked by the load already; a failure here keeps the old metrics.
            tracing::error!("reload: {err}");
        }
        let nothing_to_stop = stopping.is_empty();
        self.mode = Mode::Reloading(Box::new(Pending {
            cfg,
            plan,
            telemetry,
            stopping,
            replies: vec![reply],
            queued: Vec::new(),
        }));
        if nothing_to_stop {
            self.finish_reload();
        }
    }

    /// Everything that can refuse a reload, checked before anything changes: the new config
    /// loads, its Consul client can be made, its telemetry address is bound, its logging can be
    /// set up. Returns the config (with the command given after `--`) and the telemetry server
    /// `Servers::bind_telemetry` started, if the address changed.
    fn prepare_reload(&mut self) -> Result<(Config, Option<telemetry::Server>), String> {
        let mut cfg = match load(&self.config_path, &self.wiring.env) {
            Ok(loaded) => {
                log_warnings(&self.config_path, &loaded.warnings);
                loaded.config
            }
            Err(err) => return Err(err.to_string()),
        };
        if cfg.consul != self.cfg.consul {
            consul::Client::new(&cfg.consul).map_err(|err| err.to_string())?;
        }
        let telemetry = self.servers.bind_telemetry(&cfg, &self.metrics)?;
        // The command given after `--` is not in the file: it carries over.
        cfg.jobs.extend(
            self.cfg
                .jobs
                .iter()
                .filter(|j| j.kind == JobKind::MainCommand)
                .cloned(),
        );
        if cfg.logging != self.cfg.logging {
            self.logger
                .reconfigure(&cfg.logging)
                .map_err(|err| err.to_string())?;
        }
        Ok((cfg, telemetry))
    }

    /// Carries out a reload once the jobs it stops have stopped: the new config replaces the
    /// running one, and the planned jobs start.
    pub(super) fn finish_reload(&mut self) {
        let pending = match std::mem::replace(&mut self.mode, Mode::Running) {
            Mode::Reloading(pending) => *pending,
            other => {
                self.mode = other;
                return;
            }
        };
        let consul = if pending.cfg.consul == self.cfg.consul {
            self.wiring.consul()
        } else {
            match consul::Client::new(&pending.cfg.consul) {
                Ok(client) => client,
                Err(err) => {
                    // Checked when the reload began; keep the running client if it fails now.
                    tracing::error!("reload: {err}; keeping the previous Consul client");
                    self.wiring.consul()
                }
            }
        };
        let consul_changed = pending.cfg.consul != self.cfg.consul;
        self.cfg = pending.cfg;
        (self.wiring).set_running(running_config_of(&self.cfg, consul));
        if consul_changed {
            // Every watch follows the new agent.
            self.watches.clear();
        }
        self.start_watches();
        self.roster.keep_only(&self.cfg);
        if let Err(message) = self.start_control() {
            tracing::error!("reload: {message}; the previous control socket keeps running");
        }
        self.servers.replace_telemetry(&self.cfg, pending.telemetry);
        self.set_service_ips();
        let starting: BTreeSet<&str> = pending.plan.start.iter().map(String::as_str).collect();
        let gone: Vec<Arc<str>> = self
            .roster
            .completed
            .iter()
            .filter(|name| !starting.contains(&***name))
            .cloned()
            .collect();
        let happened = {
            let mut history = lock(&self.roster.happened);
            let restarted: Vec<String> = (pending.plan.start.iter())
                .filter_map(|key| self.cfg.job(key))
                .map(|job| job.name.clone())
                .collect();
            forget(&mut history, &restarted);
            history.clone()
        };
        for name in &pending.plan.start {
            if let Some(job) = self.cfg.job(name) {
                let past = replay(job, &happened, &gone);
                (self.roster).spawn(Arc::new(job.clone()), &self.wiring.ctx, past);
            }
        }
        tracing::info!("reloaded {}", self.config_path.display());
        for reply in pending.replies {
            let _ = reply.send(Ok(()));
        }
        let mut queued = pending.queued.into_iter();
        if let Some(first) = queued.next() {
            self.reload(first);
            if let Mode::Reloading(next) = &mut self.mode {
                next.replies.extend(queued);
            } else {
                // The queued reload finished at once or failed; answer the rest the same way by
                // running each (a failed load is answered immediately).
                for reply in queued {
                    self.reload(reply);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        Consul, Control, Exec, LogFormat, LogLevel, LogOutput, Logging, Scheme, Tls,
    };
    use std::time::Duration;

    fn job(name: &str, program: &str, when: When) -> Job {
        Job {
            exec: Some(Exec {
                program: program.into(),
                args: vec![],
            }),
            ..Job::for_test(name, when)
        }
    }

    fn after(source: &str, code: EventCode) -> When {
        When::on(code, source, Repeat::Once)
    }

    fn config(jobs: Vec<Job>) -> Config {
        Config {
            consul: Consul {
                scheme: Scheme::Http,
                address: "127.0.0.1:8500".into(),
                token: None,
                tls: Tls::default(),
            },
            logging: Logging {
                level: LogLevel::Info,
                format: LogFormat::Default,
                output: LogOutput::Stdout,
            },
            stop_timeout: Duration::from_secs(5),
            jobs,
            watches: vec![],
            control: Control {
                socket: "/tmp/x.sock".into(),
                mode: 0o600,
            },
            telemetry: None,
        }
    }

    fn names(list: &[&str]) -> BTreeSet<Arc<str>> {
        list.iter().map(|s| Arc::from(*s)).collect()
    }

    #[test]
    fn only_changed_removed_and_added_jobs_are_touched() {
        let old = config(vec![
            job("same", "a", When::Startup),
            job("changed", "b", When::Startup),
            job("removed", "c", When::Startup),
        ]);
        let new = config(vec![
            job("same", "a", When::Startup),
            job("changed", "b2", When::Startup),
            job("added", "d", When::Startup),
        ]);
        let plan = plan_for(&old, &new, &["same", "changed", "removed"]);
        assert_eq!(plan.stop, ["changed", "removed"]);
        assert_eq!(plan.start, ["changed", "added"]);
    }

    #[test]
    fn hooks_and_followers_of_a_restarted_job_restart_with_it() {
        let each = When::Event {
            code: EventCode::ExitFailed,
            source: "app".into(),
            repeat: Repeat::Each,
            timeout: None,
        };
        let old = config(vec![
            job("setup", "s", When::Startup),
            job("app", "a", after("setup", EventCode::ExitSuccess)),
            job("preStop", "p", after("app", EventCode::Stopping)),
            job("postStop", "q", after("app", EventCode::Stopped)),
            job("follower", "f", each),
            job("onCheck", "c", after("check.app", EventCode::ExitSuccess)),
            job("afterHook", "h", after("preStop", EventCode::ExitSuccess)),
            job("other", "o", When::Startup),
        ]);
        let mut new = config(old.jobs.clone());
        new.jobs[1] = job("app", "a2", after("setup", EventCode::ExitSuccess));
        let running = [
            "app",
            "preStop",
            "postStop",
            "follower",
            "onCheck",
            "afterHook",
        ];
        let plan = plan_for(&old, &new, &running);
        // The hooks are told to quit, so that they run for the old app's stop first.
        assert_eq!(plan.hooks, ["preStop", "postStop"]);
        assert_eq!(plan.stop, ["app", "follower", "onCheck", "afterHook"]);
        assert_eq!(
            plan.start,
            [
                "app",
                "preStop",
                "postStop",
                "follower",
                "onCheck",
                "afterHook"
            ]
        );
        // Completed ones come back too; setup and other are left alone.
        let plan = plan_for(&old, &new, &["app"]);
        assert_eq!(plan.stop, ["app"]);
        assert!(plan.hooks.is_empty());
        assert_eq!(plan.start.len(), 6);
    }

    fn plan_for(old: &Config, new: &Config, running: &[&str]) -> Plan {
        plan(old, new, &names(running))
    }

    #[test]
    fn a_new_consul_block_restarts_every_job_with_a_service() {
        let mut with_service = job("app", "a", When::Startup);
        with_service.service = Some(crate::config::Service {
            id: "app-1".into(),
            name: "app".into(),
            port: 80,
            address: std::net::Ipv4Addr::LOCALHOST.into(),
            tags: vec![],
            meta: Default::default(),
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        });
        let old = config(vec![with_service, job("plain", "p", When::Startup)]);
        let mut new = config(old.jobs.clone());
        new.consul.address = "127.0.0.1:8501".into();
        let plan = plan_for(&old, &new, &["app", "plain"]);
        assert_eq!(plan.stop, ["app"]);
        assert_eq!(plan.start, ["app"]);
    }

    #[test]
    fn the_history_of_restarted_jobs_is_forgotten() {
        let mut history: History = [
            (EventCode::ExitSuccess, Arc::from("setup")),
            (EventCode::ExitSuccess, Arc::from("check.setup")),
            (EventCode::ExitSuccess, Arc::from("other")),
        ]
        .into_iter()
        .collect();
        forget(&mut history, &["setup".to_string()]);
        assert_eq!(
            history,
            [(EventCode::ExitSuccess, Arc::from("other"))]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn nothing_changes_for_an_identical_config() {
        let old = config(vec![
            job("a", "x", When::Startup),
            job("b", "y", after("a", EventCode::ExitSuccess)),
        ]);
        let plan = plan_for(&old, &old, &["a"]);
        assert_eq!(
            plan,
            Plan {
                stop: vec![],
                hooks: vec![],
                start: vec![]
            }
        );
    }

    #[test]
    fn a_started_job_learns_what_already_happened() {
        let happened: History = [
            (EventCode::ExitSuccess, Arc::from("setup")),
            (EventCode::Stopping, Arc::from("app")),
            (EventCode::StatusHealthy, Arc::from("db")),
        ]
        .into_iter()
        .collect();
        let gone = [Arc::from("setup")];
        let replayed = |j: &Job| -> Vec<String> {
            replay(j, &happened, &gone)
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        assert_eq!(
            replayed(&job("a", "x", When::Startup)),
            ["{Startup global}", "{Stopped setup}"]
        );
        assert_eq!(
            replayed(&job("a", "x", after("setup", EventCode::ExitSuccess))),
            ["{ExitSuccess setup}", "{Stopped setup}"]
        );
        // Stop hooks wait for the next stop, not the last one.
        assert_eq!(
            replayed(&job("a", "x", after("app", EventCode::Stopping))),
            ["{Stopped setup}"]
        );
        // `each` triggers wait for the next occurrence.
        let each = When::Event {
            code: EventCode::StatusHealthy,
            source: "db".into(),
            repeat: Repeat::Each,
            timeout: None,
        };
        assert_eq!(replayed(&job("a", "x", each)), ["{Stopped setup}"]);
    }
}
