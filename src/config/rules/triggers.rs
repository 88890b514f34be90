//! The rules of a job's `when`. ContainerPilot refuses only two of interval, once and each, an
//! interval under 1ms and an event name it does not know; pilot refuses the same. A trigger that
//! can never fire ContainerPilot runs, and the job simply waits: pilot runs it too, with a
//! warning that says why it never fires.

use std::collections::{HashMap, HashSet};

use crate::config::TELEMETRY_JOB;
use crate::config::duration::MILLISECOND;
use crate::config::problems::{Reporter, closest, quote_short};
use crate::config::raw::{RawConfig, RawWhen, Spanned, WhenShape};
use crate::events::{EventCode, GLOBAL};

/// The events a job can start on, for messages.
const EVENT_NAMES: &[&str] = &[
    "startup",
    "exitSuccess",
    "exitFailed",
    "healthy",
    "unhealthy",
    "changed",
    "stopping",
    "stopped",
    "timerExpired",
    "enterMaintenance",
    "exitMaintenance",
];

/// What a trigger may name: the jobs (by name; what two jobs of one name publish together) and
/// what each can publish, and the watches.
pub struct Facts<'a> {
    jobs: HashMap<&'a str, JobFacts>,
    watches: HashSet<&'a str>,
}

/// What a job publishes. A job that did not decode is taken to publish everything, so that
/// the jobs waiting on it get no second, misleading problem.
struct JobFacts {
    has_exec: bool,
    has_check: bool,
    has_when_timeout: bool,
}

impl<'a> Facts<'a> {
    pub fn new(raw: &'a RawConfig) -> Facts<'a> {
        let mut jobs = HashMap::new();
        for job in raw.jobs.iter().filter(|j| !j.name.is_empty()) {
            let has_when_timeout = job.when.as_ref().is_some_and(|w| {
                w.interval.is_none() && w.timeout.as_ref().is_some_and(|t| t.value.is_positive())
            });
            let facts = JobFacts {
                has_exec: job.exec.is_some() || job.broken,
                has_check: job.health.as_ref().is_some_and(|h| h.has_check()) || job.broken,
                has_when_timeout: has_when_timeout || job.broken,
            };
            // Two jobs of one name publish under it together.
            jobs.entry(job.name.as_str())
                .and_modify(|f: &mut JobFacts| {
                    f.has_exec |= facts.has_exec;
                    f.has_check |= facts.has_check;
                    f.has_when_timeout |= facts.has_when_timeout;
                })
                .or_insert(facts);
        }
        if raw.telemetry.is_some() {
            let telemetry = JobFacts {
                has_exec: false,
                has_check: false,
                has_when_timeout: false,
            };
            jobs.insert(TELEMETRY_JOB, telemetry);
        }
        let watches = raw.watches.iter().map(|w| w.name.as_str()).collect();
        Facts { jobs, watches }
    }
}

/// `when` names a combination that can fire: one of interval, once and each; an event that
/// exists; a source that publishes it.
pub fn check_when(own_name: &str, when: &RawWhen, facts: &Facts<'_>, report: &mut Reporter<'_>) {
    if when.broken {
        return;
    }
    match when.shape() {
        WhenShape::Conflict(given) => report.key(
            "when",
            format!(
                "can have only one of interval, once and each, got {}",
                given.join(" and ")
            ),
            when.line,
        ),
        WhenShape::Interval(interval) if interval.value.0 < MILLISECOND => report.key(
            "when.interval",
            format!("must be at least 1ms, got {}", interval.value),
            interval.line,
        ),
        WhenShape::Interval(_) => {}
        WhenShape::Event {
            keyword,
            event,
            source,
        } => check_event(
            own_name,
            when,
            keyword,
            event.map(|(e, _)| e),
            source,
            facts,
            report,
        ),
    }
}

fn check_event(
    own_name: &str,
    when: &RawWhen,
    keyword: &str,
    event: Option<&Spanned<String>>,
    source: Option<&Spanned<String>>,
    facts: &Facts<'_>,
    report: &mut Reporter<'_>,
) {
    let key = format!("when.{keyword}");
    let code = match event {
        Some(name) => match EventCode::from_config_name(&name.value) {
            Some(code) => Some(code),
            None => {
                report.key(&key, not_an_event(&name.value), name.line);
                return;
            }
        },
        None => None,
    };
    // ContainerPilot starts a job with source SIGHUP or SIGUSR2 on each such signal, whatever
    // once or each say.
    if source.is_some_and(|s| is_signal(&s.value)) {
        return;
    }
    match (source, event.zip(code)) {
        (None, None) => report.warn_key(
            "when",
            "names no event, so the job never starts: give source and once or each, or \
             leave when out to start at startup",
            when.line,
        ),
        (Some(source), None) => report.warn_key(
            "when.source",
            format!(
                "{} needs once or each: without an event the job never starts",
                quote_short(&source.value)
            ),
            source.line,
        ),
        (None, Some((name, code))) => {
            let hint = if is_global_only(code) {
                " (source: \"global\")"
            } else {
                ""
            };
            report.warn_key(
                &key,
                format!(
                    "{} needs a source{hint}: without one the job never starts",
                    quote_short(&name.value)
                ),
                name.line,
            );
        }
        (Some(source), Some((name, code))) => {
            if let Some(why) = trigger_problem(own_name, code, &name.value, &source.value, facts) {
                report.warn_key(&key, why, name.line);
            }
        }
    }
}

/// The sources that start a job on each such signal.
pub fn is_signal(source: &str) -> bool {
    matches!(source, "SIGHUP" | "SIGUSR2")
}

fn is_global_only(code: EventCode) -> bool {
    matches!(
        code,
        EventCode::Startup | EventCode::EnterMaintenance | EventCode::ExitMaintenance
    )
}

fn not_an_event(name: &str) -> String {
    match closest(name, EVENT_NAMES) {
        Some(close) => format!(
            "{} is not an event (did you mean {close:?}?)",
            quote_short(name)
        ),
        None => format!(
            "{} is not an event: one of {} (names are case-sensitive)",
            quote_short(name),
            EVENT_NAMES.join(", ")
        ),
    }
}

/// Why `{source, once|each: event}` can never start the job, if it cannot.
fn trigger_problem(
    own_name: &str,
    code: EventCode,
    event: &str,
    source: &str,
    facts: &Facts<'_>,
) -> Option<String> {
    let never = |why: String| Some(format!("{event:?} from {source:?} never fires: {why}"));
    if let Some(why) = never_published(code, event) {
        return never(why);
    }
    if source == GLOBAL {
        return (!is_global_only(code)).then(|| {
            format!(
                "{event:?} from {source:?} never fires: global publishes only startup, \
                 enterMaintenance and exitMaintenance"
            )
        });
    }
    if is_global_only(code) {
        return never(format!("{event} comes only from source \"global\""));
    }
    if let Some(job) = source.strip_prefix("check.") {
        return check_source_problem(own_name, code, job, facts).and_then(never);
    }
    if let Some(watch) = source.strip_prefix("watch.") {
        return watch_source_problem(code, watch, facts).and_then(never);
    }
    if source == own_name && code != EventCode::TimerExpired {
        return never(
            "a job's own exit, health and stop events are handled before its when".into(),
        );
    }
    job_source_problem(code, event, source, facts)
}

/// Why no source at all publishes `code` to a job.
fn never_published(code: EventCode, event: &str) -> Option<String> {
    match code {
        EventCode::Shutdown => Some(
            "jobs stop on shutdown before any could start; to run something as a job stops, \
             use once: \"stopping\" with that job as source"
                .into(),
        ),
        EventCode::Quit => Some("quit events are never published".into()),
        EventCode::Signal => Some(format!("{event} fires only with source: {event:?}")),
        EventCode::Metric => Some("metric events cannot start jobs".into()),
        _ => None,
    }
}

/// `check.<job>`: the results of another job's health check.
fn check_source_problem(
    own_name: &str,
    code: EventCode,
    job: &str,
    facts: &Facts<'_>,
) -> Option<String> {
    if job == own_name {
        return Some("a job's own health check results are handled before its when".into());
    }
    let Some(facts) = facts.jobs.get(job) else {
        return Some(format!(
            "there is no job named {job:?}{}",
            did_you_mean(job, facts.jobs.keys().copied())
        ));
    };
    if !facts.has_check {
        return Some(format!("job {job:?} has no health check"));
    }
    if !matches!(code, EventCode::ExitSuccess | EventCode::ExitFailed) {
        return Some("a health check publishes only exitSuccess and exitFailed".into());
    }
    None
}

/// `watch.<name>`: a watch's changes.
fn watch_source_problem(code: EventCode, watch: &str, facts: &Facts<'_>) -> Option<String> {
    if !facts.watches.contains(watch) {
        return Some(format!(
            "there is no watch named {watch:?} in watches{}",
            did_you_mean(watch, facts.watches.iter().copied())
        ));
    }
    if !matches!(
        code,
        EventCode::StatusChanged | EventCode::StatusHealthy | EventCode::StatusUnhealthy
    ) {
        return Some("a watch publishes only changed, healthy and unhealthy".into());
    }
    None
}

/// A job's name: its exits, health, stops and timer.
fn job_source_problem(
    code: EventCode,
    event: &str,
    source: &str,
    facts: &Facts<'_>,
) -> Option<String> {
    let never = |why: String| Some(format!("{event:?} from {source:?} never fires: {why}"));
    let Some(job) = facts.jobs.get(source) else {
        return Some(format!(
            "{event:?} from {source:?} never fires: no job is named {source:?}{} (a source is \
             global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2)",
            source_hint(source, facts)
        ));
    };
    match code {
        EventCode::ExitSuccess | EventCode::ExitFailed if !job.has_exec => {
            never(format!("job {source:?} has no exec, so it never exits"))
        }
        EventCode::StatusHealthy | EventCode::StatusUnhealthy if !job.has_check => {
            never(format!("job {source:?} has no health check"))
        }
        EventCode::TimerExpired if !job.has_when_timeout => {
            never(format!("job {source:?} has no when.timeout"))
        }
        EventCode::StatusChanged => never("only watches publish changed".into()),
        EventCode::Error => never(
            "the source of an error event is the error message, not the job; use exitFailed".into(),
        ),
        _ => None,
    }
}

/// " (did you mean ...?)" for a source that names nothing: the watch of that name, else the
/// closest job name, else nothing. A job that exists only under an environment variable the
/// template did not see is not in the config at all, so it cannot be suggested.
fn source_hint(source: &str, facts: &Facts<'_>) -> String {
    if facts.watches.contains(source) {
        return format!(" (did you mean \"watch.{source}\"?)");
    }
    did_you_mean(source, facts.jobs.keys().copied())
}

/// " (did you mean ...?)" with the closest of `names` to `word`, if one is close.
fn did_you_mean<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    match closest(word, &names) {
        Some(close) => format!(" (did you mean {close:?}?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json5::parse;
    use crate::config::problems::Problems;
    use crate::config::raw::{self, RawConfig};

    /// Jobs `app` (exec and a health check), `idle` (nothing), a watch `db`, telemetry.
    fn config() -> RawConfig {
        let text = "{consul: 'c', telemetry: {}, watches: [{name: 'db', interval: 5}], jobs: [
            {name: 'app', exec: 'a', health: {exec: 'x', interval: 1, ttl: 2}},
            {name: 'idle'},
        ]}";
        let mut problems = Problems::default();
        let raw = raw::decode(&parse(text).unwrap(), &mut problems).unwrap();
        assert!(problems.messages().is_empty(), "{:?}", problems.messages());
        raw
    }

    fn problem(event: &str, source: &str) -> Option<String> {
        let raw = config();
        let facts = Facts::new(&raw);
        let code = EventCode::from_config_name(event).unwrap();
        trigger_problem("me", code, event, source, &facts)
    }

    #[test]
    fn sources_that_publish_the_event_pass() {
        for (event, source) in [
            ("startup", "global"),
            ("exitFailed", "app"),
            ("healthy", "app"),
            ("exitSuccess", "check.app"),
            ("changed", "watch.db"),
            ("stopping", "idle"),
            ("stopped", "containerpilot"),
        ] {
            assert_eq!(problem(event, source), None, "{event} from {source}");
        }
    }

    #[test]
    fn each_reason_a_trigger_never_fires() {
        let cases = [
            (
                "exitSuccess",
                "idle",
                "job \"idle\" has no exec, so it never exits",
            ),
            ("healthy", "idle", "job \"idle\" has no health check"),
            (
                "exitFailed",
                "check.idle",
                "job \"idle\" has no health check",
            ),
            (
                "healthy",
                "check.app",
                "a health check publishes only exitSuccess and exitFailed",
            ),
            (
                "changed",
                "watch.cache",
                "there is no watch named \"cache\" in watches",
            ),
            (
                "exitSuccess",
                "watch.db",
                "a watch publishes only changed, healthy and unhealthy",
            ),
            (
                "startup",
                "app",
                "startup comes only from source \"global\"",
            ),
            (
                "exitSuccess",
                "me",
                "a job's own exit, health and stop events are handled before its when",
            ),
            ("changed", "app", "only watches publish changed"),
            (
                "healthy",
                "containerpilot",
                "job \"containerpilot\" has no health check",
            ),
        ];
        for (event, source, why) in cases {
            assert_eq!(
                problem(event, source),
                Some(format!("{event:?} from {source:?} never fires: {why}")),
                "{event} from {source}"
            );
        }
        assert_eq!(
            problem("exitSuccess", "db"),
            Some(
                "\"exitSuccess\" from \"db\" never fires: no job is named \"db\" (did you mean \"watch.db\"?) (a source is global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2)"
                    .into()
            )
        );
    }

    #[test]
    fn a_source_close_to_a_name_gets_a_suggestion() {
        assert_eq!(
            problem("exitSuccess", "ap"),
            Some("\"exitSuccess\" from \"ap\" never fires: no job is named \"ap\" (did you mean \"app\"?) (a source is global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2)".into())
        );
        assert_eq!(
            problem("exitFailed", "check.apq"),
            Some("\"exitFailed\" from \"check.apq\" never fires: there is no job named \"apq\" (did you mean \"app\"?)".into())
        );
        assert_eq!(
            problem("changed", "watch.dc"),
            Some("\"changed\" from \"watch.dc\" never fires: there is no watch named \"dc\" in watches (did you mean \"db\"?)".into())
        );
    }

    #[test]
    fn a_broken_when_is_not_judged() {
        let raw = config();
        let facts = Facts::new(&raw);
        let mut problems = Problems::default();
        let when = RawWhen {
            line: 1,
            broken: true,
            interval: None,
            source: None,
            once: None,
            each: None,
            timeout: None,
        };
        check_when("me", &when, &facts, &mut problems.at("jobs[0]"));
        assert!(problems.messages().is_empty());
        let when = RawWhen {
            broken: false,
            ..when
        };
        check_when("me", &when, &facts, &mut problems.at("jobs[0]"));
        assert_eq!(problems.messages().len(), 1, "an empty when never fires");
    }
}
