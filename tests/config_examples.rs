//! ContainerPilot's documented example configs (`tests/fixtures/configs/containerpilot/`, copied
//! from the reference). ContainerPilot 3.8 rejects all six, each for its own reason; pilot must
//! reject each for the same reason, and load the corrected versions (`corrected/`).
//!
//! The exact text of every error is snapshotted (`tests/snapshots/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pilot::config::{
    Check, Config, LoadContext, LoadError, Repeat, Restarts, StaticInterfaces, When, load_text,
};
use pilot::events::EventCode;

fn fixture(dir: &str, name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
        .join(dir)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The environment and host the examples were written for: `{{ .CONSUL }}` set, an eth0.
fn ctx() -> LoadContext {
    LoadContext {
        version_tags: vec!["3.8.0".into(), "pilot-test".into()],
        ..LoadContext::new(
            BTreeMap::from([("CONSUL".to_string(), "consul.example".to_string())]),
            "c0ffee",
            StaticInterfaces::from_pairs(&[("eth0", "172.17.0.5"), ("lo", "127.0.0.1")]),
        )
    }
}

fn original(name: &str) -> LoadError {
    match load_text(&fixture("containerpilot", name), Path::new(name), &ctx()) {
        Ok(config) => panic!("{name} loaded, but ContainerPilot rejects it: {config:#?}"),
        Err(e) => e,
    }
}

fn corrected(name: &str) -> Config {
    load_text(&fixture("corrected", name), Path::new(name), &ctx())
        .unwrap_or_else(|e| panic!("corrected {name}: {e}"))
}

fn parse_position(err: &LoadError) -> (u32, u32, &str) {
    match err {
        LoadError::Parse { error, .. } => (error.line, error.col, error.message.as_str()),
        other => panic!("not a parse error: {other}"),
    }
}

fn problems(err: &LoadError) -> Vec<String> {
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
    err.problems().iter().map(ToString::to_string).collect()
}

// ContainerPilot: a missing comma between two jobs, `invalid character '{' after array
// element` (its line number is wrong; pilot's is right).
#[test]
fn consul_agent_is_rejected_for_a_missing_comma() {
    let err = original("consul-agent.json5");
    assert_eq!(
        parse_position(&err),
        (50, 5, "invalid character '{' after array element")
    );
    insta::assert_snapshot!(err.to_string());
}

// ContainerPilot: `job[consul-agent].health.interval must be > 0`: a health block with an exec
// but no interval or ttl.
#[test]
fn database_config_is_rejected_for_a_health_block_without_interval_and_ttl() {
    let err = original("database-config.json5");
    assert_eq!(
        problems(&err),
        [
            "jobs[0] \"consul-agent\": health.interval must be set: how often the check runs (line 22)",
            "jobs[0] \"consul-agent\": health.ttl must be set: how long Consul keeps the service healthy without a heartbeat (line 22)",
        ]
    );
    insta::assert_snapshot!(err.to_string());
}

// ContainerPilot: `invalid character 't' after object key:value pair` (a missing comma in
// nginx's `when`).
#[test]
fn nginx_upstreams_is_rejected_for_a_missing_comma() {
    let err = original("nginx-upstreams.json5");
    assert_eq!(
        parse_position(&err),
        (58, 9, "invalid character 't' after object key:value pair")
    );
    insta::assert_snapshot!(err.to_string());
}

// ContainerPilot: `invalid character 'r' after object key:value pair` (no comma after exec).
#[test]
fn periodic_tasks_is_rejected_for_a_missing_comma() {
    let err = original("periodic-tasks.json5");
    assert_eq!(
        parse_position(&err),
        (11, 7, "invalid character 'r' after object key:value pair")
    );
    insta::assert_snapshot!(err.to_string());
}

// ContainerPilot: the same health block without interval and ttl as database-config.
#[test]
fn service_reg_only_is_rejected_for_a_health_block_without_interval_and_ttl() {
    let err = original("service-reg-only.json5");
    assert_eq!(
        problems(&err),
        [
            "jobs[0] \"consul-agent\": health.interval must be set: how often the check runs (line 19)",
            "jobs[0] \"consul-agent\": health.ttl must be set: how long Consul keeps the service healthy without a heartbeat (line 19)",
        ]
    );
    insta::assert_snapshot!(err.to_string());
}

// ContainerPilot: `'[0].health' has invalid keys: tll` and `'[1]' has invalid keys: restart`
// (mapstructure's unknown keys).
#[test]
fn stopping_is_rejected_for_misspelt_keys() {
    let err = original("stopping.json5");
    assert_eq!(
        problems(&err),
        [
            "jobs[0] \"app\": unknown key \"health.tll\" (did you mean \"health.ttl\"?) (line 16)",
            "jobs[1] \"preStop\": unknown key \"restart\" (did you mean \"restarts\"?) (line 30)",
        ]
    );
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn corrected_consul_agent() {
    let config = corrected("consul-agent.json5");
    assert_eq!(config.consul.address, "localhost:8500");
    let agent = config.job("consul-agent").unwrap();
    assert_eq!(
        agent.exec.as_ref().unwrap().args[3],
        "consul.example",
        "the template filled in the exec array"
    );
    assert_eq!(agent.restarts, Restarts::Unlimited);
    assert!(
        matches!(&agent.health.as_ref().unwrap().check, Check::Exec(e) if e.program == "consul" && e.args == ["info", "|", "grep", "leader"])
    );
    assert_eq!(agent.service, None);
    let pre_start = config.job("preStart").unwrap();
    assert_eq!(
        pre_start.when,
        When::Event {
            code: EventCode::StatusHealthy,
            source: "consul-agent".into(),
            repeat: Repeat::Once,
            timeout: Some(Duration::from_secs(120)),
        }
    );
    assert_eq!(pre_start.restarts, Restarts::Never);
    let app = config.job("app").unwrap();
    let service = app.service.as_ref().unwrap();
    assert_eq!(service.id, "app-c0ffee");
    assert_eq!(service.address.to_string(), "172.17.0.5");
    assert_eq!(service.port, 8000);
    let health = app.health.as_ref().unwrap();
    assert_eq!(
        (health.interval, health.ttl, health.timeout),
        (
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(10)
        )
    );
}

#[test]
fn corrected_database_config() {
    let config = corrected("database-config.json5");
    let names: Vec<&str> = config.watches.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["mysql", "redis"]);
    let redis = config.job("configure-redis").unwrap();
    assert_eq!(
        redis.when,
        When::Event {
            code: EventCode::StatusChanged,
            source: "watch.redis".into(),
            repeat: Repeat::Each,
            timeout: None,
        }
    );
    // An array exec is taken as it is, quotes included.
    assert_eq!(
        redis.exec.as_ref().unwrap().args.last().unwrap(),
        "'/etc/template.ctmpl:/etc/app.conf:pkill -SIGHUP node'"
    );
    let app = config.job("app").unwrap();
    assert_eq!(app.exec.as_ref().unwrap().args, ["server.js", "-p", "8000"]);
}

#[test]
fn corrected_nginx_upstreams() {
    let config = corrected("nginx-upstreams.json5");
    let nginx = config.job("nginx").unwrap();
    assert_eq!(nginx.service.as_ref().unwrap().port, 80);
    assert_eq!(
        nginx.health.as_ref().unwrap().timeout,
        Duration::from_secs(10)
    );
    assert_eq!(config.watches[0].source(), "watch.app");
}

#[test]
fn corrected_periodic_tasks() {
    let config = corrected("periodic-tasks.json5");
    let task = config.job("task1").unwrap();
    assert_eq!(task.when, When::Interval(Duration::from_secs(60)));
    assert_eq!(task.timeout, Some(Duration::from_secs(60)));
    assert_eq!(task.restarts, Restarts::Unlimited);
    let alarm = config.job("alarm-task1").unwrap();
    assert_eq!(
        alarm.exec.as_ref().unwrap().args,
        [
            "--fail",
            "-sL",
            "-XPOST",
            "-H",
            "'Content-Type': application/json",
            "--data",
            "'{\"text\": \"oh no!\"}'",
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXX",
        ]
    );
}

#[test]
fn corrected_service_reg_only() {
    let config = corrected("service-reg-only.json5");
    assert_eq!(config.jobs.len(), 3);
    assert_eq!(
        config.job("consul-template").unwrap().restarts,
        Restarts::Unlimited
    );
}

#[test]
fn corrected_stopping() {
    let config = corrected("stopping.json5");
    let pre_stop = config.job("preStop").unwrap();
    assert_eq!(
        pre_stop.when,
        When::Event {
            code: EventCode::Stopping,
            source: "app".into(),
            repeat: Repeat::Once,
            timeout: None,
        }
    );
    let post_stop = config.job("postStop").unwrap();
    assert!(matches!(
        post_stop.when,
        When::Event {
            code: EventCode::Stopped,
            ..
        }
    ));
    assert_eq!(config.stop_timeout, Duration::from_secs(5));
}

/// Many problems at once, one of each kind, in file order.
#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"{
  consul: {address: "ftp://consul:8500", tls: {verify: "maybe"}},
  logging: {level: "loud"},
  stopTimeout: "soon",
  control: {mode: 888},
  jobs: [
    {
      name: "app",
      exec: "node 'server.js",
      port: 8000,
      health: {exec: "check", interval: 0, ttl: 10},
      when: {source: "prestart", once: "exitSucess"},
    },
    {name: "app", exec: "echo", when: {}},
    {name: "worker", exec: "work", restarts: "always", when: {source: "watch.queue", each: "changed"}},
    {name: "hook", exec: "hook", when: {source: "global", once: "shutdown"}},
    {name: "my_service", port: 80, health: {interval: 1, ttl: 1}, interfaces: ["eth9"]},
  ],
  watches: [{name: "x", interval: 5}],
  telemetry: {port: 70000, metrics: [{name: "bad name", type: "meter"}]},
  extra: true,
}
"#;
    let err = load_text(text, Path::new("pilot.json5"), &ctx()).unwrap_err();
    insta::assert_snapshot!(err.to_string());
}
