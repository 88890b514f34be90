//! Jobs: exec, names, services, health checks, timeouts, restarts and `main`.

use super::*;

// jobs

#[test]
fn job_defaults() {
    let job = one_job("name: 'a', exec: 'run'");
    assert_eq!(
        job,
        Job {
            name: "a".into(),
            key: "a".into(),
            kind: JobKind::User,
            exec: exec(&["run"]),
            raw_output: false,
            when: When::Startup,
            timeout: None,
            stop_timeout: None,
            restarts: Restarts::Never,
            health: None,
            service: None,
            main: false,
            stop_signal: libc::SIGTERM,
            user: None,
        }
    );
    // A job may have no exec at all.
    assert_eq!(one_job("name: 'a'").exec, None);
    // Keys below the top level match ignoring case.
    assert_eq!(one_job("NAME: 'a', Exec: 'x y'").exec, exec(&["x", "y"]));
    // Non-service jobs take any name.
    assert_eq!(
        one_job("name: 'my_job.invalid NAME'").name,
        "my_job.invalid NAME"
    );
}

#[test]
fn job_exec_forms() {
    assert_eq!(
        one_job("name: 'a', exec: \"sh -c 'echo a b'\"").exec,
        exec(&["sh", "-c", "echo a b"])
    );
    assert_eq!(
        one_job("name: 'a', exec: ['/bin/x', '-p', 8000]").exec,
        exec(&["/bin/x", "-p", "8000"])
    );
    assert_eq!(
        error(&job("name: 'a', exec: ''")),
        "jobs[0] \"a\": exec is empty: give the program to run (line 1)"
    );
    assert_eq!(
        error(&job("name: 'a', exec: []")),
        "jobs[0] \"a\": exec is empty: give the program to run (line 1)"
    );
    // ContainerPilot split on spaces and kept quotes: pilot does so where shell-style quoting
    // cannot apply, with a warning.
    let unterminated = job("name: 'a', exec: \"echo 'x  y\"");
    assert_eq!(
        warnings(&unterminated),
        [
            "warning: jobs[0] \"a\": exec has an unterminated single quote: it is split on spaces with the quotes kept, as ContainerPilot splits it (line 1)"
        ]
    );
    assert_eq!(
        ok(&unterminated).jobs[0].exec,
        exec(&["echo", "'x", "", "y"])
    );
    assert_eq!(
        error(&job("name: 'a', exec: {}")),
        "jobs[0] \"a\": exec must be a string or an array of strings, got an object (line 1)"
    );
}

#[test]
fn job_name_errors() {
    assert_eq!(
        error(&job("exec: 'x'")),
        "jobs[0]: name must be set: every job needs a name (line 1)"
    );
    assert_eq!(
        error(&job("name: '', exec: 'x'")),
        "jobs[0]: name must be set: every job needs a name (line 1)"
    );
    assert_eq!(
        error(&job("name: [], exec: 'x'")),
        "jobs[0]: name must be a string, got an array (line 1)"
    );
    assert_eq!(
        error("{consul: 'c', jobs: [{name: 'a'}, 7]}"),
        "jobs[1] must be an object, got 7 (line 1)"
    );
    // A null job is skipped, as ContainerPilot does.
    assert_eq!(ok("{consul: 'c', jobs: [null, {name: 'a'}]}").jobs.len(), 1);
}

/// ContainerPilot runs two jobs of one name: pilot too, with a warning; each has its own key.
#[test]
fn duplicate_job_names() {
    let text = "{consul: 'c', jobs: [\n{name: 'a'},\n{name: 'b'},\n{name: 'a', exec: 'x'}]}";
    assert_eq!(
        warnings(text),
        [
            "warning: jobs[2] \"a\": name \"a\" is already the name of jobs[0] (line 2): both jobs run, and their events and Consul service are one (line 4)"
        ]
    );
    let config = ok(text);
    let keys: Vec<(&str, &str)> = (config.jobs.iter())
        .map(|j| (j.name.as_str(), j.key.as_str()))
        .collect();
    assert_eq!(keys, [("a", "a"), ("b", "b"), ("a", "a#2")]);
    assert_eq!(config.job("a#2").unwrap().exec, exec(&["x"]));
    let text = "{consul: 'c', telemetry: {},\n jobs: [{name: 'containerpilot'}]}";
    assert_eq!(
        warnings(text),
        [
            "warning: jobs[0] \"containerpilot\": name \"containerpilot\" is the name of the job telemetry adds (line 1): both jobs run, and their events and Consul service are one (line 2)"
        ]
    );
    let keys: Vec<String> = ok(text).jobs.into_iter().map(|j| j.key).collect();
    assert_eq!(keys, ["containerpilot", "containerpilot#2"]);
    // What either of two jobs of one name publishes, a trigger on the name gets.
    let text = "{consul: 'c', jobs: [{name: 'a'}, {name: 'a', exec: 'x'},
        {name: 'b', exec: 'y', when: {source: 'a', once: 'exitSuccess'}}]}";
    assert_eq!(
        warnings(text).len(),
        1,
        "only the repeated name: {:?}",
        warnings(text)
    );
}

#[test]
fn services() {
    let job = one_job(&format!(
        "{SERVICE}, tags: ['web', 1], initial_status: 'warning'"
    ));
    assert_eq!(
        job.service,
        Some(Service {
            id: "app-host1".into(),
            name: "app".into(),
            port: 8000,
            address: ip("10.0.0.2"),
            tags: vec!["web".into(), "1".into()],
            meta: BTreeMap::new(),
            initial_status: Some(CheckStatus::Warning),
            enable_tag_override: false,
            deregister_critical_service_after: None,
        })
    );
    assert_eq!(
        job.health,
        Some(HealthCheck {
            check: Check::Exec(Exec {
                program: "check".into(),
                args: vec![]
            }),
            interval: secs(5),
            ttl: secs(10),
            timeout: secs(5),
            raw_output: false,
            user: None,
        })
    );
    // Weak typing: a port string in Go syntax, a TTL string.
    let job = one_job(
        "name: 'app', port: '0x50', health: {interval: '5', ttl: '103'}, interfaces: 'eth1'",
    );
    let service = job.service.unwrap();
    assert_eq!((service.port, service.address), (80, ip("192.168.5.9")));
    assert_eq!(job.health.unwrap().ttl, secs(103));
    // A health block with no check: the TTL is refreshed while the job runs.
    let job = one_job("name: 'app', port: 80, health: {interval: 1, ttl: 3}");
    assert_eq!(job.health.unwrap().check, Check::None);
}

#[test]
fn service_errors() {
    assert_eq!(
        error(&job("name: 'app', port: 80")),
        "jobs[0] \"app\": health must be set when port is set: it heartbeats the service's TTL check in Consul (line 1)"
    );
    assert_eq!(
        error(&job(
            "name: 'my_app', port: 80, health: {interval: 1, ttl: 1}"
        )),
        "jobs[0] \"my_app\": name \"my_app\" is not a valid service name: it must start with a lowercase letter and have only letters, digits and dashes, at least 2 characters (line 1)"
    );
    for name in ["a", "App", "-app", "my%app", "my.app"] {
        assert!(
            errors(&job(&format!(
                "name: '{name}', port: 80, health: {{interval: 1, ttl: 1}}"
            )))[0]
                .contains("is not a valid service name"),
            "{name}"
        );
    }
    for name in ["myService", "my-service", "my-service-123", "ab"] {
        ok(&job(&format!(
            "name: '{name}', port: 80, health: {{interval: 1, ttl: 1}}"
        )));
    }
    assert_eq!(
        error(&job("name: 'app', port: -1, health: {interval: 1, ttl: 1}")),
        "jobs[0] \"app\": port must be between 0 and 65535, got -1 (line 1)"
    );
    assert_eq!(
        error(&job(
            "name: 'app', port: 'http', health: {interval: 1, ttl: 1}"
        )),
        "jobs[0] \"app\": port must be a whole number, got \"http\" (line 1)"
    );
    assert_eq!(
        error(&format!(
            "{{consul: 'c', jobs: [{{ {SERVICE}, initial_status: 'ok' }}]}}"
        )),
        "jobs[0] \"app\": initial_status must be one of passing, warning, critical, got \"ok\" (line 1)"
    );
    assert_eq!(
        error(&format!(
            "{{consul: 'c', jobs: [{{ {SERVICE}, initialStatus: 'passing' }}]}}"
        )),
        "jobs[0] \"app\": unknown key \"initialStatus\" (did you mean \"initial_status\"?) (line 1)"
    );
    // initial_status, interfaces and the consul block of a job that is not a service are not
    // checked, as in ContainerPilot.
    assert_eq!(one_job("name: 'a', initial_status: 'bogus'").service, None);
    assert_eq!(one_job("name: 'a', interfaces: 5").service, None);
    assert_eq!(
        one_job("name: 'a', interfaces: ['eth0:inet5']").service,
        None
    );
    assert_eq!(
        one_job("name: 'a', consul: {deregisterCriticalServiceAfter: 'nope'}").service,
        None
    );
    assert_eq!(
        error(&format!(
            "{{consul: 'c', jobs: [{{ {SERVICE}, interfaces: ['eth7'] }}]}}"
        )),
        "jobs[0] \"app\": interfaces [\"eth7\"] match no address of this host (it has: eth0 10.0.0.2, eth1 192.168.5.9, lo ::1, lo 127.0.0.1) (line 1)"
    );
    assert_eq!(
        error(&format!(
            "{{consul: 'c', jobs: [{{ {SERVICE}, interfaces: ['eth0:inet5', '1.2.3.4'] }}]}}"
        )),
        "jobs[0] \"app\": interfaces \"eth0:inet5\" is not an interface specification (after ':' comes inet or inet6); \"1.2.3.4\" is an address, not an interface; write \"static:1.2.3.4\" to advertise it (line 1)"
    );
    assert_eq!(
        error(&format!(
            "{{consul: 'c', jobs: [{{ {SERVICE}, tags: 'web' }}]}}"
        )),
        "jobs[0] \"app\": tags must be an array of strings, got \"web\" (line 1)"
    );
}

#[test]
fn service_interfaces() {
    let address = |spec: &str| {
        one_job(&format!("{SERVICE}, interfaces: {spec}"))
            .service
            .unwrap()
            .address
    };
    assert_eq!(address("'static:192.0.2.7'"), ip("192.0.2.7"));
    assert_eq!(address("['eth9', 'eth1']"), ip("192.168.5.9"));
    assert_eq!(address("'lo:inet6'"), ip("::1"));
    assert_eq!(address("'192.168.0.0/16'"), ip("192.168.5.9"));
    assert_eq!(
        address("[]"),
        ip("10.0.0.2"),
        "an empty list is the default"
    );
    // The default is eth0 then any IPv4 address.
    let ctx = LoadContext {
        interfaces: Arc::new(StaticInterfaces::from_pairs(&[
            ("ens3", "172.16.0.4"),
            ("lo", "127.0.0.1"),
        ])),
        ..ctx()
    };
    let config = load_with(&job(SERVICE), &ctx).unwrap();
    assert_eq!(
        config.jobs[0].service.as_ref().unwrap().address,
        ip("172.16.0.4")
    );
}

#[test]
fn service_consul_extras_and_meta() {
    let service = |extra: &str| one_job(&format!("{SERVICE}, {extra}")).service.unwrap();
    let s = service("consul: {enableTagOverride: true, deregisterCriticalServiceAfter: '10m'}");
    assert!(s.enable_tag_override);
    assert_eq!(s.deregister_critical_service_after, Some(secs(600)));
    // ContainerPilot required deregisterCriticalServiceAfter whenever the block was there.
    let s = service("consul: {enableTagOverride: true}");
    assert!(s.enable_tag_override);
    assert_eq!(s.deregister_critical_service_after, None);
    let s = service("consul: {deregisterCriticalServiceAfter: 90}");
    assert_eq!(s.deregister_critical_service_after, Some(secs(90)));
    let s = service("meta: {version: '1.2', build: 7, 'a-b_c': ''}");
    assert_eq!(
        s.meta,
        BTreeMap::from([
            ("version".to_string(), "1.2".to_string()),
            ("build".to_string(), "7".to_string()),
            ("a-b_c".to_string(), String::new()),
        ])
    );

    let problem = |extra: &str| {
        error(&format!(
            "{{consul: 'c', jobs: [{{ {SERVICE}, {extra} }}]}}"
        ))
    };
    assert_eq!(
        problem("consul: {enableTagOverride: 'nope'}"),
        "jobs[0] \"app\": consul.enableTagOverride must be true or false, got \"nope\" (line 1)"
    );
    assert_eq!(
        problem("consul: {deregisterCriticalServiceAfter: 'nope'}"),
        "jobs[0] \"app\": consul.deregisterCriticalServiceAfter \"nope\" is not a duration (Go syntax such as \"300ms\", \"1m30s\"; a bare number is seconds) (line 1)"
    );
    assert_eq!(
        problem("meta: {'consul-x': 'y'}"),
        "jobs[0] \"app\": meta key \"consul-x\" uses the prefix consul-, which Consul reserves (line 1)"
    );
    assert_eq!(
        problem("meta: {'a.b': 'y'}"),
        "jobs[0] \"app\": meta key \"a.b\" is not valid for Consul: 1 to 128 letters, digits, _ and - (line 1)"
    );
    assert_eq!(
        problem(&format!("meta: {{k: '{}'}}", "v".repeat(513))),
        "jobs[0] \"app\": meta.k is longer than the 512 characters Consul allows (line 1)"
    );
    let many: Vec<String> = (0..65).map(|i| format!("k{i}: 'v'")).collect();
    assert_eq!(
        problem(&format!("meta: {{{}}}", many.join(", "))),
        "jobs[0] \"app\": meta has 65 keys; Consul allows at most 64 (line 1)"
    );
    assert_eq!(
        problem("meta: {k: []}"),
        "jobs[0] \"app\": meta.k must be a string, got an array (line 1)"
    );
    assert_eq!(
        error(&job("name: 'a', meta: {k: 'v'}")),
        "jobs[0] \"a\": meta needs port: only a job registered in Consul has service metadata (line 1)"
    );
}

#[test]
fn health_checks() {
    let health = |h: &str| {
        one_job(&format!(
            "name: 'a', health: {{{h}, interval: 10, ttl: 30}}"
        ))
        .health
        .unwrap()
    };
    assert_eq!(
        health("http: 'http://localhost:8000/health'").check,
        Check::Http {
            url: "http://localhost:8000/health".into()
        }
    );
    assert_eq!(
        health("tcp: 'localhost:6379'").check,
        Check::Tcp {
            address: "localhost:6379".into()
        }
    );
    assert_eq!(
        health("tcp: '[::1]:6379'").check,
        Check::Tcp {
            address: "[::1]:6379".into()
        }
    );
    assert_eq!(
        health("exec: ['curl', '-f', 'x']").check,
        Check::Exec(Exec {
            program: "curl".into(),
            args: vec!["-f".into(), "x".into()]
        })
    );
    let h = health("exec: 'x', timeout: '5s', logging: {raw: true}");
    assert_eq!((h.timeout, h.raw_output), (secs(5), true));
    assert_eq!(
        health("exec: 'x'").timeout,
        secs(10),
        "timeout defaults to interval"
    );
    assert_eq!(
        one_job("name: 'a', health: {interval: '500ms', ttl: '2s'}")
            .health
            .unwrap()
            .interval,
        Duration::from_millis(500)
    );

    let problem = |h: &str| error(&job(&format!("name: 'a', health: {{{h}}}")));
    assert_eq!(
        problem("exec: 'x', interval: 0, ttl: 1"),
        "jobs[0] \"a\": health.interval must be greater than zero, got 0s (line 1)"
    );
    assert_eq!(
        problem("exec: 'x', interval: 1, ttl: -5"),
        "jobs[0] \"a\": health.ttl must be greater than zero, got -5s (line 1)"
    );
    assert_eq!(
        problem("interval: 1, ttl: '10x'"),
        "jobs[0] \"a\": health.ttl \"10x\" is not a duration: unknown unit \"x\" (ns, us, ms, s, m, h) (line 1)"
    );
    assert_eq!(
        problem("exec: 'x', ttl: 1"),
        "jobs[0] \"a\": health.interval must be set: how often the check runs (line 1)"
    );
    // ContainerPilot ran it without a timeout: pilot runs it, bounded by the interval.
    let zero = job("name: 'a', health: {exec: 'x', interval: 3, ttl: 5, timeout: 0}");
    assert_eq!(
        warnings(&zero),
        [
            "warning: jobs[0] \"a\": health.timeout should be greater than zero, got 0s: the check times out at health.interval (ContainerPilot ran it without a timeout) (line 1)"
        ]
    );
    assert_eq!(ok(&zero).jobs[0].health.as_ref().unwrap().timeout, secs(3));
    assert_eq!(
        problem("exec: 'x', http: 'http://a', interval: 1, ttl: 1"),
        "jobs[0] \"a\": health can have only one of exec, http and tcp, got exec and http (line 1)"
    );
    assert_eq!(
        problem("http: 'localhost:80', interval: 1, ttl: 1"),
        "jobs[0] \"a\": health.http must be an http:// or https:// URL, got \"localhost:80\" (line 1)"
    );
    assert_eq!(
        problem("tcp: 'localhost', interval: 1, ttl: 1"),
        "jobs[0] \"a\": health.tcp must be host:port (such as \"localhost:6379\"), got \"localhost\" (line 1)"
    );
    assert_eq!(
        problem("exec: '', interval: 1, ttl: 1"),
        "jobs[0] \"a\": health.exec is empty: give the program to run (line 1)"
    );
    assert_eq!(
        problem("exec: 'x', interval: 1, ttl: 1, logging: {raw: 'y'}"),
        "jobs[0] \"a\": health.logging.raw must be true or false, got \"y\" (line 1)"
    );
}

#[test]
fn job_timeouts_and_logging() {
    let j =
        one_job("name: 'a', exec: 'x', timeout: '300ms', stopTimeout: '3s', logging: {raw: true}");
    assert_eq!(j.timeout, Some(Duration::from_millis(300)));
    assert_eq!(j.stop_timeout, Some(secs(3)));
    assert!(j.raw_output);
    assert_eq!(one_job("name: 'a', timeout: 10").timeout, Some(secs(10)));
    assert_eq!(
        one_job("name: 'a', timeout: 1.5").timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(one_job("name: 'a', stopTimeout: 0").stop_timeout, None);
    assert_eq!(one_job("name: 'a', stopTimeout: '-1s'").stop_timeout, None);
    // Interval jobs time out at their interval unless told otherwise.
    assert_eq!(
        one_job("name: 'a', exec: 'x', when: {interval: '500ms'}").timeout,
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        one_job("name: 'a', exec: 'x', timeout: '2s', when: {interval: '500ms'}").timeout,
        Some(secs(2))
    );
    assert_eq!(
        error(&job("name: 'a', timeout: '0'")),
        "jobs[0] \"a\": timeout must be at least 1ms, got 0s (line 1)"
    );
    assert_eq!(
        error(&job("name: 'a', timeout: '1ns'")),
        "jobs[0] \"a\": timeout must be at least 1ms, got 1ns (line 1)"
    );
    assert_eq!(
        error(&job("name: 'a', stopTimeout: 'soon'")),
        "jobs[0] \"a\": stopTimeout \"soon\" is not a duration (Go syntax such as \"300ms\", \"1m30s\"; a bare number is seconds) (line 1)"
    );
    assert_eq!(
        error(&job("name: 'a', logging: {raw: true, color: 1}")),
        "jobs[0] \"a\": unknown key \"logging.color\" (line 1)"
    );
}

#[test]
fn restarts_values() {
    let restarts =
        |text: &str| one_job(&format!("name: 'a', exec: 'x', restarts: {text}")).restarts;
    assert_eq!(restarts("'unlimited'"), Restarts::Unlimited);
    assert_eq!(restarts("'never'"), Restarts::Never);
    assert_eq!(restarts("0"), Restarts::Never);
    assert_eq!(restarts("3"), Restarts::Times(3));
    assert_eq!(restarts("'1'"), Restarts::Times(1));
    assert_eq!(restarts("1.9"), Restarts::Times(1));
    // Interval jobs restart forever by default; others never.
    assert_eq!(
        one_job("name: 'a', exec: 'x', when: {interval: 1}").restarts,
        Restarts::Unlimited
    );
    assert_eq!(
        one_job("name: 'a', exec: 'x', when: {interval: 1}, restarts: 'never'").restarts,
        Restarts::Never
    );
    // A numeric budget with each is allowed, as in ContainerPilot.
    ok(
        "{consul: 'c', jobs: [{name: 'a', exec: 'x'}, {name: 'b', exec: 'y', restarts: 2, when: {source: 'a', each: 'exitFailed'}}]}",
    );

    let problem = |text: &str| error(&job(&format!("name: 'a', exec: 'x', restarts: {text}")));
    assert_eq!(
        problem("-1"),
        "jobs[0] \"a\": restarts must not be negative, got -1 (line 1)"
    );
    assert_eq!(
        problem("'always'"),
        "jobs[0] \"a\": restarts must be a number of restarts, \"unlimited\" or \"never\", got \"always\" (line 1)"
    );
    assert_eq!(
        problem("true"),
        "jobs[0] \"a\": restarts must be a number of restarts, \"unlimited\" or \"never\", got true (line 1)"
    );
    assert_eq!(
        problem("'-2'"),
        "jobs[0] \"a\": restarts must be a number of restarts, \"unlimited\" or \"never\", got \"-2\" (line 1)"
    );
    assert_eq!(
        problem("5000000000"),
        "jobs[0] \"a\": restarts must be at most 4294967295, got 5000000000 (or \"unlimited\") (line 1)"
    );
    assert_eq!(
        error(
            "{consul: 'c', jobs: [{name: 'a', exec: 'x'}, {name: 'b', exec: 'y', restarts: 'unlimited', when: {source: 'a', each: 'exitFailed'}}]}"
        ),
        "jobs[1] \"b\": restarts cannot be \"unlimited\" with when.each: every event would start another run that never stops (line 1)"
    );
}

#[test]
fn main_job() {
    assert!(one_job("name: 'a', exec: 'x', main: true").main);
    assert!(!one_job("name: 'a', exec: 'x', main: 'false'").main);
    assert_eq!(
        error(
            "{consul: 'c', jobs: [\n{name: 'a', exec: 'x', main: true},\n{name: 'b', exec: 'y', main: true}]}"
        ),
        "jobs[1] \"b\": main is already set on jobs[0] \"a\" (line 2): only one job is the application (line 3)"
    );
    assert_eq!(
        error(&job("name: 'a', main: true")),
        "jobs[0] \"a\": main needs exec: the application is a process that pilot runs (line 1)"
    );
}

#[test]
fn stop_signal() {
    assert_eq!(one_job("name: 'a', exec: 'x'").stop_signal, libc::SIGTERM);
    for (written, signal) in [
        ("'SIGQUIT'", libc::SIGQUIT),
        ("'int'", libc::SIGINT),
        ("10", libc::SIGUSR1),
        ("'RTMIN+2'", libc::SIGRTMIN() + 2),
    ] {
        let job = one_job(&format!("name: 'a', exec: 'x', stopSignal: {written}"));
        assert_eq!(job.stop_signal, signal, "{written}");
    }
    assert_eq!(
        error(&job("name: 'a', exec: 'x', stopSignal: 'SIGTERMINATE'")),
        "jobs[0] \"a\": stopSignal must be a signal such as \"SIGQUIT\", \"SIGINT\" or \"15\", got \"SIGTERMINATE\" (line 1)"
    );
}

#[test]
fn user_and_group() {
    assert_eq!(one_job("name: 'a', exec: 'x'").user, None);
    let written =
        one_job("name: 'a', exec: 'x', user: 'app', health: {exec: 'c', interval: 1, ttl: 5}");
    let user = written.user.expect("a user");
    assert_eq!(
        (
            user.identity.uid,
            user.identity.gid,
            &user.identity.groups[..]
        ),
        (1000, 1000, &[33, 1000][..])
    );
    assert_eq!(
        (user.name.as_deref(), user.home.as_str()),
        (Some("app"), "/home/app")
    );
    // The check runs as the job's user unless it names its own.
    assert_eq!(written.health.unwrap().user, Some(user));
    let written = one_job(
        "name: 'a', exec: 'x', user: 'app', group: 'www', health: {exec: 'c', interval: 1, ttl: 5, user: 0}",
    );
    assert_eq!(written.user.unwrap().identity.gid, 33);
    assert_eq!(written.health.unwrap().user.unwrap().identity.uid, 0);
    assert_eq!(
        error("{consul: 'c', jobs: [{ name: 'a', exec: 'x',\nuser: 'nobody' }]}"),
        "jobs[0] \"a\": user \"nobody\" is not in /etc/passwd (line 2)"
    );
    assert_eq!(
        error("{consul: 'c', jobs: [{ name: 'a', exec: 'x', user: 'app',\ngroup: 'staff' }]}"),
        "jobs[0] \"a\": group \"staff\" is not in /etc/group (line 2)"
    );
    assert_eq!(
        error(&job("name: 'a', exec: 'x', group: 'www'")),
        "jobs[0] \"a\": group needs user: give the user the processes run as, and group to change its group (line 1)"
    );
}
