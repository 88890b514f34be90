//! `when`: every form, and every trigger that can never fire.

use crate::events::EventCode;

use super::*;

// when

/// A config with jobs `app` (service with a check), `plain` (exec, no health), `idle` (no
/// exec), `waiter` (with when.timeout), the watch `db`, and the job under test.
fn when_config(when: &str) -> String {
    format!(
        "{{consul: 'c', watches: [{{name: 'db', interval: 5}}], jobs: [
            {{ {SERVICE} }},
            {{name: 'plain', exec: 'p'}},
            {{name: 'idle'}},
            {{name: 'waiter', exec: 'w', when: {{source: 'plain', once: 'exitSuccess', timeout: '10s'}}}},
            {{name: 'test', exec: 't', when: {when}}},
        ]}}"
    )
}

fn when_of(when: &str) -> When {
    let config = ok(&when_config(when));
    config.job("test").unwrap().when.clone()
}

#[test]
fn when_forms() {
    let event = |code, source: &str, repeat, timeout| When::Event {
        code,
        source: source.into(),
        repeat,
        timeout,
    };
    let cases: &[(&str, When)] = &[
        ("{interval: '1m30s'}", When::Interval(secs(90))),
        ("{interval: 5}", When::Interval(secs(5))),
        // source and timeout mean nothing next to interval, as in ContainerPilot.
        (
            "{interval: '2s', source: 'app', timeout: 1}",
            When::Interval(secs(2)),
        ),
        (
            "{source: 'global', once: 'startup'}",
            event(EventCode::Startup, "global", Repeat::Once, None),
        ),
        (
            "{source: 'global', each: 'enterMaintenance'}",
            event(EventCode::EnterMaintenance, "global", Repeat::Each, None),
        ),
        (
            "{source: 'global', once: 'exitMaintenance'}",
            event(EventCode::ExitMaintenance, "global", Repeat::Once, None),
        ),
        (
            "{source: 'app', once: 'healthy', timeout: '120s'}",
            event(
                EventCode::StatusHealthy,
                "app",
                Repeat::Once,
                Some(secs(120)),
            ),
        ),
        (
            "{source: 'app', each: 'unhealthy'}",
            event(EventCode::StatusUnhealthy, "app", Repeat::Each, None),
        ),
        (
            "{source: 'plain', once: 'exitSuccess'}",
            event(EventCode::ExitSuccess, "plain", Repeat::Once, None),
        ),
        (
            "{source: 'plain', each: 'exitFailed'}",
            event(EventCode::ExitFailed, "plain", Repeat::Each, None),
        ),
        (
            "{source: 'idle', once: 'stopping'}",
            event(EventCode::Stopping, "idle", Repeat::Once, None),
        ),
        (
            "{source: 'app', once: 'stopped'}",
            event(EventCode::Stopped, "app", Repeat::Once, None),
        ),
        (
            "{source: 'waiter', once: 'timerExpired'}",
            event(EventCode::TimerExpired, "waiter", Repeat::Once, None),
        ),
        (
            "{source: 'check.app', each: 'exitFailed'}",
            event(EventCode::ExitFailed, "check.app", Repeat::Each, None),
        ),
        (
            "{source: 'watch.db', each: 'changed'}",
            event(EventCode::StatusChanged, "watch.db", Repeat::Each, None),
        ),
        (
            "{source: 'watch.db', once: 'healthy'}",
            event(EventCode::StatusHealthy, "watch.db", Repeat::Once, None),
        ),
        // A signal source fires on each signal, whatever once or each say (or without them).
        (
            "{source: 'SIGHUP'}",
            event(EventCode::Signal, "SIGHUP", Repeat::Each, None),
        ),
        (
            "{source: 'SIGUSR2', once: 'startup'}",
            event(EventCode::Signal, "SIGUSR2", Repeat::Each, None),
        ),
        (
            "{source: 'SIGHUP', each: 'SIGHUP', timeout: 3}",
            event(EventCode::Signal, "SIGHUP", Repeat::Each, Some(secs(3))),
        ),
        // A zero or negative when.timeout is no timeout.
        (
            "{source: 'plain', once: 'exitSuccess', timeout: 0}",
            event(EventCode::ExitSuccess, "plain", Repeat::Once, None),
        ),
        (
            "{Source: 'plain', ONCE: 'exitSuccess'}",
            event(EventCode::ExitSuccess, "plain", Repeat::Once, None),
        ),
        // What ContainerPilot waits for forever (warnings): an event that nothing publishes is
        // waited for as written; no event or no source is no trigger at all.
        (
            "{source: 'consul-agent', once: 'healthy'}",
            event(EventCode::StatusHealthy, "consul-agent", Repeat::Once, None),
        ),
        (
            "{source: 'watch.nats', each: 'changed'}",
            event(EventCode::StatusChanged, "watch.nats", Repeat::Each, None),
        ),
        ("{}", When::Never { timeout: None }),
        (
            "{source: 'app', timeout: '5s'}",
            When::Never {
                timeout: Some(secs(5)),
            },
        ),
        ("{once: 'shutdown'}", When::Never { timeout: None }),
    ];
    for (text, want) in cases {
        assert_eq!(&when_of(text), want, "{text}");
    }
    assert_eq!(one_job("name: 'a'").when, When::Startup);
}

/// ContainerPilot runs a job whose trigger never comes (it waits): pilot too, with a warning.
#[test]
fn when_that_can_never_fire() {
    let cases: &[(&str, &str)] = &[
        (
            "{}",
            "when names no event, so the job never starts: give source and once or each, or leave when out to start at startup",
        ),
        (
            "{timeout: '5s'}",
            "when names no event, so the job never starts: give source and once or each, or leave when out to start at startup",
        ),
        (
            "{source: 'app'}",
            "when.source \"app\" needs once or each: without an event the job never starts",
        ),
        (
            "{once: 'startup'}",
            "when.once \"startup\" needs a source (source: \"global\"): without one the job never starts",
        ),
        (
            "{each: 'healthy'}",
            "when.each \"healthy\" needs a source: without one the job never starts",
        ),
        (
            "{source: 'app', once: 'startup'}",
            "when.once \"startup\" from \"app\" never fires: startup comes only from source \"global\"",
        ),
        (
            "{source: 'app', each: 'enterMaintenance'}",
            "when.each \"enterMaintenance\" from \"app\" never fires: enterMaintenance comes only from source \"global\"",
        ),
        (
            "{source: 'global', once: 'shutdown'}",
            "when.once \"shutdown\" from \"global\" never fires: jobs stop on shutdown before any could start; to run something as a job stops, use once: \"stopping\" with that job as source",
        ),
        (
            "{source: 'global', once: 'healthy'}",
            "when.once \"healthy\" from \"global\" never fires: global publishes only startup, enterMaintenance and exitMaintenance",
        ),
        (
            "{source: 'test', once: 'exitSuccess'}",
            "when.once \"exitSuccess\" from \"test\" never fires: a job's own exit, health and stop events are handled before its when",
        ),
        (
            "{source: 'test', each: 'healthy'}",
            "when.each \"healthy\" from \"test\" never fires: a job's own exit, health and stop events are handled before its when",
        ),
        (
            "{source: 'check.test', once: 'exitFailed'}",
            "when.once \"exitFailed\" from \"check.test\" never fires: a job's own health check results are handled before its when",
        ),
        (
            "{source: 'check.plain', once: 'exitFailed'}",
            "when.once \"exitFailed\" from \"check.plain\" never fires: job \"plain\" has no health check",
        ),
        (
            "{source: 'check.nope', once: 'exitFailed'}",
            "when.once \"exitFailed\" from \"check.nope\" never fires: there is no job named \"nope\"",
        ),
        (
            "{source: 'check.app', once: 'healthy'}",
            "when.once \"healthy\" from \"check.app\" never fires: a health check publishes only exitSuccess and exitFailed",
        ),
        (
            "{source: 'watch.redis', each: 'changed'}",
            "when.each \"changed\" from \"watch.redis\" never fires: there is no watch named \"redis\" in watches",
        ),
        (
            "{source: 'watch.db', once: 'exitSuccess'}",
            "when.once \"exitSuccess\" from \"watch.db\" never fires: a watch publishes only changed, healthy and unhealthy",
        ),
        (
            "{source: 'db', each: 'changed'}",
            "when.each \"changed\" from \"db\" never fires: no job is named \"db\" (did you mean \"watch.db\"?) (a source is global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2)",
        ),
        (
            "{source: 'nobody', once: 'exitSuccess'}",
            "when.once \"exitSuccess\" from \"nobody\" never fires: no job is named \"nobody\" (a source is global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2)",
        ),
        (
            "{source: 'idle', once: 'exitSuccess'}",
            "when.once \"exitSuccess\" from \"idle\" never fires: job \"idle\" has no exec, so it never exits",
        ),
        (
            "{source: 'plain', once: 'healthy'}",
            "when.once \"healthy\" from \"plain\" never fires: job \"plain\" has no health check",
        ),
        (
            "{source: 'plain', once: 'timerExpired'}",
            "when.once \"timerExpired\" from \"plain\" never fires: job \"plain\" has no when.timeout",
        ),
        (
            "{source: 'app', each: 'changed'}",
            "when.each \"changed\" from \"app\" never fires: only watches publish changed",
        ),
        (
            "{source: 'app', each: 'error'}",
            "when.each \"error\" from \"app\" never fires: the source of an error event is the error message, not the job; use exitFailed",
        ),
        (
            "{source: 'app', once: 'quit'}",
            "when.once \"quit\" from \"app\" never fires: quit events are never published",
        ),
        (
            "{source: 'app', once: 'SIGHUP'}",
            "when.once \"SIGHUP\" from \"app\" never fires: SIGHUP fires only with source: \"SIGHUP\"",
        ),
    ];
    for (text, message) in cases {
        let found =
            match load_text_with_warnings(&when_config(text), Path::new("test.json5"), &ctx()) {
                Ok(loaded) if loaded.warnings.len() == 1 => loaded.warnings[0].to_string(),
                Ok(loaded) => panic!("{text}: {:?}", loaded.warnings),
                Err(err) => panic!("{text}: refused: {err}"),
            };
        let expected = format!("warning: jobs[4] \"test\": {message} (line 6)");
        assert_eq!(found, expected, "{text}");
    }
}

/// What ContainerPilot refuses in `when`, pilot refuses too.
#[test]
fn when_that_containerpilot_refuses() {
    let cases: &[(&str, &str)] = &[
        (
            "{source: 'app', once: 'Healthy'}",
            "when.once \"Healthy\" is not an event (did you mean \"healthy\"?)",
        ),
        (
            "{source: 'app', once: 'statusHealthy'}",
            "when.once \"statusHealthy\" is not an event: one of startup, exitSuccess, exitFailed, healthy, unhealthy, changed, stopping, stopped, timerExpired, enterMaintenance, exitMaintenance (names are case-sensitive)",
        ),
        (
            "{source: 'app', once: 'healthy', each: 'healthy'}",
            "when can have only one of interval, once and each, got once and each",
        ),
        (
            "{interval: '1s', each: 'healthy'}",
            "when can have only one of interval, once and each, got interval and each",
        ),
        (
            "{interval: 0}",
            "when.interval must be at least 1ms, got 0s",
        ),
        (
            "{interval: '-1s'}",
            "when.interval must be at least 1ms, got -1s",
        ),
        (
            "{interval: '1ns'}",
            "when.interval must be at least 1ms, got 1ns",
        ),
        (
            "{interval: 'xx'}",
            "when.interval \"xx\" is not a duration (Go syntax such as \"300ms\", \"1m30s\"; a bare number is seconds)",
        ),
        (
            "{source: 'app', once: 'healthy', at: 1}",
            "unknown key \"when.at\"",
        ),
        ("'startup'", "when must be an object, got \"startup\""),
    ];
    for (text, message) in cases {
        let problem = match load_with(&when_config(text), &ctx()) {
            Err(problems) if problems.len() == 1 => problems[0].clone(),
            other => panic!("{text}: {other:?}"),
        };
        let expected = format!("jobs[4] \"test\": {message} (line 6)");
        assert_eq!(problem, expected, "{text}");
    }
}
