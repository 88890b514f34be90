//! Reload planning: which jobs a new config stops, which it starts, and what a started job is
//! told about the past.
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

use crate::config::{Config, Job, Repeat, When};
use crate::events::{Event, EventCode, GLOBAL};

/// Every (code, source) pair published so far that a job started by a reload may need.
pub type History = HashSet<(EventCode, Arc<str>)>;

/// What a reload does.
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
pub fn plan(old: &Config, new: &Config, running: &BTreeSet<Arc<str>>) -> Plan {
    let changed = |name: &str| old.job(name) != new.job(name) || moves_agent(old, new, name);
    let mut start: HashSet<&str> = new
        .jobs
        .iter()
        .filter(|j| changed(&j.name))
        .map(|j| j.name.as_str())
        .collect();
    loop {
        let before = start.len();
        for job in &new.jobs {
            if trigger_job(job).is_some_and(|s| start.contains(s)) {
                start.insert(&job.name);
            }
        }
        if start.len() == before {
            break;
        }
    }
    let stopping: HashSet<&str> = old
        .jobs
        .iter()
        .map(|j| j.name.as_str())
        .filter(|name| running.contains(*name))
        .filter(|name| start.contains(name) || new.job(name).is_none())
        .collect();
    let is_hook = |job: &Job| {
        matches!(&job.when, When::Event { code: EventCode::Stopping | EventCode::Stopped, source, .. }
            if stopping.contains(source.as_str()))
    };
    let (hooks, stop): (Vec<&Job>, Vec<&Job>) = old
        .jobs
        .iter()
        .filter(|j| stopping.contains(j.name.as_str()))
        .partition(|j| is_hook(j));
    let names = |jobs: Vec<&Job>| jobs.into_iter().map(|j| j.name.clone()).collect();
    Plan {
        stop: names(stop),
        hooks: names(hooks),
        start: names(
            new.jobs
                .iter()
                .filter(|j| start.contains(j.name.as_str()))
                .collect(),
        ),
    }
}

/// Whether `name` has a service that a new `consul` block moves to another agent (or another
/// token or TLS setup). Its registration holds the client it was spawned with, so only a new
/// instance of the job registers with the new agent; stopping the old one deregisters it from
/// the old agent.
fn moves_agent(old: &Config, new: &Config, name: &str) -> bool {
    old.consul != new.consul && new.job(name).is_some_and(|j| j.service.is_some())
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

/// Forgets what the previous instances of `restarted` jobs (and their health checks) published:
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        Consul, Control, Exec, JobKind, LogFormat, LogLevel, LogOutput, Logging, Restarts, Scheme,
        Tls,
    };
    use std::time::Duration;

    fn job(name: &str, program: &str, when: When) -> Job {
        Job {
            name: name.into(),
            kind: JobKind::User,
            exec: Some(Exec {
                program: program.into(),
                args: vec![],
            }),
            raw_output: false,
            when,
            timeout: None,
            stop_timeout: None,
            restarts: Restarts::Never,
            health: None,
            service: None,
            main: false,
            stop_signal: libc::SIGTERM,
            user: None,
        }
    }

    fn after(source: &str, code: EventCode) -> When {
        When::Event {
            code,
            source: source.into(),
            repeat: Repeat::Once,
            timeout: None,
        }
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
