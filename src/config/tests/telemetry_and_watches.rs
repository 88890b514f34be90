//! `watches` and `telemetry` (with the job it adds).

use super::*;

// watches

#[test]
fn watches() {
    let config = ok(
        "{consul: 'c', watches: [{name: 'upstreamA', interval: 11, tag: 'dev'}, {Name: 'upstream-b', interval: '79', dc: 'us-east-1'}, null]}",
    );
    assert_eq!(
        config.watches,
        [
            Watch {
                name: "upstreamA".into(),
                interval: secs(11),
                tag: Some("dev".into()),
                dc: None,
                target: WatchTarget::Service,
                wait: None,
                max_stale: Duration::from_secs(2),
            },
            Watch {
                name: "upstream-b".into(),
                interval: secs(79),
                tag: None,
                dc: Some("us-east-1".into()),
                target: WatchTarget::Service,
                wait: None,
                max_stale: Duration::from_secs(2),
            },
        ]
    );
    assert_eq!(config.watches[0].source(), "watch.upstreamA");
    let problem = |w: &str| error(&format!("{{consul: 'c', watches: [{w}]}}"));
    assert_eq!(
        problem("{interval: 5}"),
        "watches[0]: name must be set: it is the Consul service to watch (line 1)"
    );
    assert_eq!(
        problem("{name: 'w', interval: 5}"),
        "watches[0] \"w\": name \"w\" is not a valid service name: it must start with a lowercase letter and have only letters, digits and dashes, at least 2 characters (line 1)"
    );
    assert_eq!(
        problem("{name: 'db'}"),
        "watches[0] \"db\": interval must be set: how often to poll when Consul is unreachable (line 1)"
    );
    assert_eq!(
        problem("{name: 'db', interval: 0}"),
        "watches[0] \"db\": interval must be greater than zero, got 0s (line 1)"
    );
    assert_eq!(
        problem("{name: 'db', interval: 5, service: 'x'}"),
        "watches[0] \"db\": unknown key \"service\" (line 1)"
    );
    assert_eq!(
        problem("'db'"),
        "watches[0] must be an object, got \"db\" (line 1)"
    );
}

#[test]
fn quiet_periods() {
    let config = ok("{consul: 'c', watches: [
        {name: 'aa', interval: 5, wait: {min: '300ms', max: '2s'}},
        {name: 'bb', interval: 5, wait: {min: 1}},
        {name: 'cc', interval: 5, wait: null},
    ]}");
    let ms = Duration::from_millis;
    assert_eq!(
        config.watches[0].wait,
        Some(QuietPeriod {
            min: ms(300),
            max: ms(2000)
        })
    );
    assert_eq!(
        config.watches[1].wait,
        Some(QuietPeriod {
            min: ms(1000),
            max: ms(4000)
        }),
        "max defaults to four times min, as in consul-template"
    );
    assert_eq!(config.watches[2].wait, None);
    let config = ok(
        "{consul: 'c', watches: [{name: 'aa', interval: 5, maxStale: '500ms'}, {name: 'bb', interval: 5, maxStale: 0}]}",
    );
    assert_eq!(config.watches[0].max_stale, ms(500));
    assert_eq!(config.watches[1].max_stale, Duration::ZERO);
    let problem = |w: &str| error(&format!("{{consul: 'c', watches: [{w}]}}"));
    assert_eq!(
        problem("{name: 'db', interval: 5,\n wait: {max: '1s'}}"),
        "watches[0] \"db\": wait.min must be set: how long no change must last before events go out (line 2)"
    );
    assert_eq!(
        problem("{name: 'db', interval: 5, wait: {min: '2s',\n max: '1s'}}"),
        "watches[0] \"db\": wait.max must be at least wait.min (2s), got 1s (line 2)"
    );
    assert_eq!(
        problem("{name: 'db', interval: 5, wait: {min: '0s'}}"),
        "watches[0] \"db\": wait.min must be greater than zero, got 0s (line 1)"
    );
    assert_eq!(
        problem("{name: 'db', interval: 5, maxStale: '-1s'}"),
        "watches[0] \"db\": maxStale must not be negative, got -1s (0 sends every read to the leader) (line 1)"
    );
    assert_eq!(
        problem("{name: 'db', interval: 5, wait: '1s'}"),
        "watches[0] \"db\": wait must be an object, got \"1s\" (line 1)"
    );
}

#[test]
fn kv_watches() {
    let config = ok("{consul: 'c', watches: [
        {name: 'appcfg', key: 'app/config.json', interval: 5},
        {name: 'flags', prefix: 'app/flags/', interval: 5, dc: 'east'},
    ]}");
    assert_eq!(
        config.watches[0].target,
        WatchTarget::Key("app/config.json".into())
    );
    assert_eq!(
        config.watches[1].target,
        WatchTarget::Prefix("app/flags/".into())
    );
    assert_eq!(config.watches[1].dc.as_deref(), Some("east"));
    assert_eq!(config.watches[1].source(), "watch.flags");
    assert_eq!(
        error("{consul: 'c', watches: [{name: 'appcfg', interval: 5,\n key: 'a',\n prefix: 'b'}]}"),
        "watches[0] \"appcfg\": prefix cannot be set with key: a watch follows one key, one prefix, or (with neither) the service named by name (line 3)"
    );
    assert_eq!(
        error("{consul: 'c', watches: [{key: 'a', interval: 5}]}"),
        "watches[0]: name must be set: it names the watch's events (watch.<name>) (line 1)"
    );
}

// telemetry

#[test]
fn telemetry_and_its_job() {
    let config = ok(
        "{consul: 'c', telemetry: {port: 9000, tags: ['dev'], interfaces: ['eth1'], metrics: [
        {namespace: 'org', subsystem: 'app', name: 'zed', help: 'a gauge', type: 'gauge'},
        {name: 'hits', help: 'a counter', type: 'counter'},
    ]}, jobs: [{name: 'a', exec: 'x'}]}",
    );
    let telemetry = config.telemetry.clone().unwrap();
    assert_eq!(
        telemetry,
        Telemetry {
            port: 9000,
            address: ip("192.168.5.9"),
            tags: vec!["dev".into()],
            metrics: vec![
                Metric {
                    namespace: "org".into(),
                    subsystem: "app".into(),
                    name: "zed".into(),
                    help: "a gauge".into(),
                    kind: MetricKind::Gauge,
                },
                Metric {
                    namespace: String::new(),
                    subsystem: String::new(),
                    name: "hits".into(),
                    help: "a counter".into(),
                    kind: MetricKind::Counter,
                },
            ],
        }
    );
    assert_eq!(telemetry.metrics[0].full_name(), "org_app_zed");
    assert_eq!(telemetry.metrics[1].legacy_key(), "__hits");
    // The telemetry job comes last.
    assert_eq!(config.jobs.len(), 2);
    assert_eq!(
        config.jobs[1],
        Job {
            name: "containerpilot".into(),
            key: "containerpilot".into(),
            kind: JobKind::Telemetry,
            exec: None,
            raw_output: false,
            when: When::Startup,
            timeout: None,
            stop_timeout: None,
            restarts: Restarts::Never,
            health: Some(HealthCheck {
                check: Check::None,
                interval: secs(5),
                ttl: secs(15),
                timeout: secs(5),
                raw_output: false,
                user: None,
            }),
            service: Some(Service {
                id: "containerpilot-host1".into(),
                name: "containerpilot".into(),
                port: 9000,
                address: ip("192.168.5.9"),
                tags: vec!["dev".into(), "3.8.0".into(), "pilot-9.9.9".into()],
                meta: BTreeMap::new(),
                initial_status: None,
                enable_tag_override: false,
                deregister_critical_service_after: None,
            }),
            main: false,
            stop_signal: libc::SIGTERM,
            user: None,
        }
    );
    // `{}` turns telemetry on with its defaults; interfaces may be a string.
    let config = ok("{consul: 'c', telemetry: {}}");
    let telemetry = config.telemetry.unwrap();
    assert_eq!((telemetry.port, telemetry.address), (9090, ip("10.0.0.2")));
    let config = ok("{consul: 'c', telemetry: {interfaces: 'lo'}}");
    assert_eq!(config.telemetry.unwrap().address, ip("127.0.0.1"));
    // Jobs may wait for the telemetry job.
    ok(
        "{consul: 'c', telemetry: {}, jobs: [{name: 'a', exec: 'x', when: {source: 'containerpilot', once: 'stopping'}}]}",
    );
}

#[test]
fn telemetry_errors() {
    let problem = |t: &str| error(&format!("{{consul: 'c', telemetry: {t}}}"));
    assert_eq!(
        problem("{port: 0}"),
        "telemetry.port must be between 1 and 65535, got 0 (line 1)"
    );
    assert_eq!(
        problem("{tags: 'dev'}"),
        "telemetry.tags must be an array of strings, got \"dev\" (line 1)"
    );
    assert_eq!(
        problem("{interfaces: ['eth5']}"),
        "telemetry.interfaces [\"eth5\"] match no address of this host (it has: eth0 10.0.0.2, eth1 192.168.5.9, lo ::1, lo 127.0.0.1) (line 1)"
    );
    assert_eq!(
        problem("{metrics: [{name: 'x', help: 'h', type: 'meter'}]}"),
        "telemetry.metrics[0] \"x\": type must be one of counter, gauge, histogram, summary, got \"meter\" (line 1)"
    );
    assert_eq!(
        problem("{metrics: [{name: 'x', type: 'gauge'}]}"),
        "telemetry.metrics[0] \"x\": help must be set: Prometheus requires a help text (line 1)"
    );
    assert_eq!(
        problem("{metrics: [{namespace: 'Test.Metric', name: 'Bad', help: 'h', type: 'gauge'}]}"),
        "telemetry.metrics[0] \"Test.Metric_Bad\": name \"Test.Metric_Bad\" (namespace, subsystem and name joined by _) is not a valid Prometheus metric name: letters, digits, _ and :, not starting with a digit (line 1)"
    );
    assert_eq!(
        problem(
            "{metrics: [{name: 'x', help: 'h', type: 'gauge'}, {name: 'x', help: 'h', type: 'counter'}]}"
        ),
        "telemetry.metrics[1] \"x\": name \"x\" is already defined by telemetry.metrics[0] (line 1)"
    );
    assert_eq!(
        problem(
            "{metrics: [{namespace: 'containerpilot', name: 'events', help: 'h', type: 'counter'}]}"
        ),
        "telemetry.metrics[0] \"containerpilot_events\": name \"containerpilot_events\" is one of pilot's own metrics (line 1)"
    );
    assert_eq!(
        problem("{metrics: [{name: 'x', help: 'h', type: 'gauge', buckets: []}]}"),
        "telemetry.metrics[0] \"x\": unknown key \"buckets\" (line 1)"
    );
    assert_eq!(
        problem("{metrics: {}}"),
        "telemetry.metrics must be an array, got an object (line 1)"
    );
    assert_eq!(
        problem("9090"),
        "telemetry must be an object, got 9090 (line 1)"
    );
}
