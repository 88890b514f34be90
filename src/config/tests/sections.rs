//! The top level, `stopTimeout`, `logging` and `control`.

use std::path::PathBuf;

use super::*;

// top level

#[test]
fn minimal_config_has_every_default() {
    let config = ok("{consul: 'localhost:8500'}");
    assert_eq!(
        config,
        Config {
            consul: Consul {
                scheme: Scheme::Http,
                address: "localhost:8500".into(),
                token: None,
                tls: Tls::default(),
            },
            logging: Logging {
                level: LogLevel::Info,
                format: LogFormat::Default,
                output: LogOutput::Stdout,
            },
            stop_timeout: secs(5),
            jobs: vec![],
            watches: vec![],
            control: Control {
                socket: "/var/run/containerpilot.socket".into(),
                mode: 0o600,
            },
            telemetry: None,
        }
    );
}

#[test]
fn top_level_errors() {
    assert_eq!(
        error("{}"),
        "consul is required: the address of the Consul agent, such as consul: \"localhost:8500\" (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', Jobs: []}"),
        "unknown key \"Jobs\" (top-level keys are case-sensitive: did you mean \"jobs\"?) (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', wathces: []}"),
        "unknown key \"wathces\" (did you mean \"watches\"?) (line 1)"
    );
    assert_eq!(
        error("[1]"),
        "the config must be an object of keys, got an array (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', jobs: {name: 'x'}}"),
        "jobs must be an array, got an object (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', watches: 'w'}"),
        "watches must be an array, got \"w\" (line 1)"
    );
    // null means absent, everywhere.
    let config = ok(
        "{consul: 'c', jobs: null, watches: null, telemetry: null, logging: null, control: null, stopTimeout: null}",
    );
    assert!(config.jobs.is_empty() && config.telemetry.is_none());
}

#[test]
fn problems_are_all_reported_in_file_order() {
    let problems = errors(
        "{\n consul: 'c',\n jobs: [\n  {name: 'a', exec: ''},\n  {exec: 'x'},\n ],\n bogus: 1,\n stopTimeout: 'x',\n}",
    );
    assert_eq!(
        problems,
        [
            "jobs[0] \"a\": exec is empty: give the program to run (line 4)",
            "jobs[1]: name must be set: every job needs a name (line 5)",
            "unknown key \"bogus\" (line 7)",
            "stopTimeout \"x\" is not a duration (Go syntax such as \"300ms\", \"1m30s\"; a bare number is seconds) (line 8)",
        ]
    );
}

#[test]
fn problem_lists_are_bounded() {
    let jobs: Vec<String> = (0..150)
        .map(|i| format!("{{name: 'j{i}', exec: ''}}"))
        .collect();
    let problems = errors(&format!("{{consul: 'c', jobs: [{}]}}", jobs.join(",\n")));
    assert_eq!(problems.len(), 101);
    assert_eq!(problems[100], "and 50 more problems");
    let keys: Vec<String> = (0..25).map(|i| format!("k{i}: 1")).collect();
    let problems = errors(&format!(
        "{{consul: 'c', jobs: [{{name: 'a', {}}}]}}",
        keys.join(", ")
    ));
    assert_eq!(problems.len(), 21);
    assert_eq!(problems[20], "jobs[0] \"a\": 5 more unknown keys (line 1)");
    // Long values and keys are shortened in messages.
    let long = "x".repeat(1000);
    let problem = error(&format!(
        "{{consul: 'c', jobs: [{{name: 'a', {long}: 1}}]}}"
    ));
    assert_eq!(
        problem,
        format!(
            "jobs[0] \"a\": unknown key \"{}...\" (line 1)",
            "x".repeat(57)
        )
    );
}

// stopTimeout

#[test]
fn stop_timeout_values() {
    let cases: &[(&str, u64)] = &[
        ("10", 10),
        ("'10'", 10),
        ("0", 5),
        ("-1", 5),
        ("'7s'", 7),
        ("10.9", 10),
        ("'0x3'", 3),
    ];
    for (value, want) in cases {
        let config = ok(&format!("{{consul: 'c', stopTimeout: {value}}}"));
        assert_eq!(config.stop_timeout, secs(*want), "{value}");
    }
    assert_eq!(
        error("{consul: 'c', stopTimeout: [] }"),
        "stopTimeout must be a number of seconds or a duration such as \"10s\", got an array (line 1)"
    );
}

// logging

#[test]
fn logging_values() {
    let logging = |text: &str| ok(&format!("{{consul: 'c', logging: {text}}}")).logging;
    assert_eq!(logging("{}").level, LogLevel::Info);
    let cases: &[(&str, LogLevel)] = &[
        ("DEBUG", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("Warn", LogLevel::Warn),
        ("warning", LogLevel::Warn),
        ("error", LogLevel::Error),
        ("fatal", LogLevel::Error),
        ("panic", LogLevel::Error),
    ];
    for (text, level) in cases {
        assert_eq!(
            logging(&format!("{{level: '{text}'}}")).level,
            *level,
            "{text}"
        );
    }
    assert_eq!(logging("{format: 'TEXT'}").format, LogFormat::Text);
    assert_eq!(logging("{format: 'json'}").format, LogFormat::Json);
    assert_eq!(logging("{format: 'default'}").format, LogFormat::Default);
    assert_eq!(logging("{output: 'STDERR'}").output, LogOutput::Stderr);
    assert_eq!(logging("{Output: 'stdout'}").output, LogOutput::Stdout);
    assert_eq!(
        logging("{output: '/var/log/pilot.log'}").output,
        LogOutput::File("/var/log/pilot.log".into())
    );
    assert_eq!(
        error("{consul: 'c', logging: {level: 'loud'}}"),
        "logging.level must be one of debug, info, warn, error, got \"loud\" (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', logging: {format: 'xml'}}"),
        "logging.format must be one of default, text, json, got \"xml\" (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', logging: {x: 1}}"),
        "unknown key \"logging.x\" (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', logging: 'debug'}"),
        "logging must be an object, got \"debug\" (line 1)"
    );
}

// control

#[test]
fn control_values() {
    let control = |text: &str| ok(&format!("{{consul: 'c', control: {text}}}")).control;
    assert_eq!(
        control("{}").socket,
        PathBuf::from("/var/run/containerpilot.socket")
    );
    assert_eq!(
        control("{socket: '/tmp/p.sock'}").socket,
        PathBuf::from("/tmp/p.sock")
    );
    for (text, mode) in [
        ("'0660'", 0o660),
        ("'660'", 0o660),
        ("'0o640'", 0o640),
        ("660", 0o660),
        ("600", 0o600),
        ("0", 0),
        ("'0777'", 0o777),
    ] {
        assert_eq!(control(&format!("{{mode: {text}}}")).mode, mode, "{text}");
    }
    for text in ["'0800'", "'1777'", "384", "'rw'", "6.5", "-1", "true", "''"] {
        let problem = error(&format!("{{consul: 'c', control: {{mode: {text}}}}}"));
        assert!(
            problem.starts_with("control.mode must be permission bits in octal"),
            "{problem}"
        );
    }
    assert_eq!(
        error("{consul: 'c', control: {socket: ''}}"),
        "control.socket must not be empty (leave it out for /var/run/containerpilot.socket) (line 1)"
    );
}
