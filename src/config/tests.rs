//! Tests of the whole pipeline below the file: every key, its default, and every error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::events::EventCode;

fn interfaces() -> StaticInterfaces {
    StaticInterfaces::from_pairs(&[
        ("eth0", "10.0.0.2"),
        ("eth1", "192.168.5.9"),
        ("lo", "127.0.0.1"),
        ("lo", "::1"),
    ])
}

fn ctx_with(env: &[(&str, &str)]) -> LoadContext {
    LoadContext {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        hostname: "host1".into(),
        interfaces: Arc::new(interfaces()),
        version: "9.9.9".into(),
    }
}

fn ctx() -> LoadContext {
    ctx_with(&[])
}

fn load_with(text: &str, ctx: &LoadContext) -> Result<Config, Vec<String>> {
    load_text(text, Path::new("test.json5"), ctx).map_err(|e| match e {
        LoadError::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

fn ok(text: &str) -> Config {
    match load_with(text, &ctx()) {
        Ok(config) => config,
        Err(problems) => panic!("{text}\n{problems:#?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match load_with(text, &ctx()) {
        Ok(config) => panic!("{text} loaded: {config:#?}"),
        Err(problems) => problems,
    }
}

/// The single problem of `text`.
fn error(text: &str) -> String {
    let problems = errors(text);
    assert_eq!(problems.len(), 1, "{text}: {problems:#?}");
    problems.into_iter().next().unwrap_or_default()
}

/// A config with one job.
fn job(body: &str) -> String {
    format!("{{consul: 'c:8500', jobs: [{{ {body} }}]}}")
}

fn one_job(body: &str) -> Job {
    let config = ok(&job(body));
    assert_eq!(config.jobs.len(), 1);
    config.jobs.into_iter().next().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn exec(words: &[&str]) -> Option<Exec> {
    Some(Exec {
        program: words[0].into(),
        args: words[1..].iter().map(|s| s.to_string()).collect(),
    })
}

const SERVICE: &str =
    "name: 'app', exec: 'app', port: 8000, health: {exec: 'check', interval: 5, ttl: 10}";

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

// consul

fn consul(text: &str, env: &[(&str, &str)]) -> Consul {
    match load_with(&format!("{{consul: {text}}}"), &ctx_with(env)) {
        Ok(config) => config.consul,
        Err(e) => panic!("{text}: {e:?}"),
    }
}

#[test]
fn consul_string_forms() {
    let cases: &[(&str, Scheme, &str)] = &[
        ("'localhost:8500'", Scheme::Http, "localhost:8500"),
        ("'http://consul:8500'", Scheme::Http, "consul:8500"),
        ("'https://consul:8501'", Scheme::Https, "consul:8501"),
        (
            "'unix:///var/run/consul.sock'",
            Scheme::Unix,
            "/var/run/consul.sock",
        ),
        ("'HTTPS://consul:8501'", Scheme::Https, "consul:8501"),
        ("''", Scheme::Http, "127.0.0.1:8500"),
        ("{}", Scheme::Http, "127.0.0.1:8500"),
        ("{address: 'a:1'}", Scheme::Http, "a:1"),
        ("{address: 'a:1', scheme: 'https'}", Scheme::Https, "a:1"),
        (
            "{address: 'https://a:1', scheme: 'http'}",
            Scheme::Https,
            "a:1",
        ),
        ("{Address: 'a:1', SCHEME: 'HTTPS'}", Scheme::Https, "a:1"),
    ];
    for (text, scheme, address) in cases {
        let c = consul(text, &[]);
        assert_eq!(
            (c.scheme, c.address.as_str()),
            (*scheme, *address),
            "{text}"
        );
    }
}

#[test]
fn consul_environment() {
    let c = consul("''", &[("CONSUL_HTTP_ADDR", "https://agent:8501")]);
    assert_eq!(
        (c.scheme, c.address.as_str()),
        (Scheme::Https, "agent:8501")
    );
    let c = consul("'x:1'", &[("CONSUL_HTTP_ADDR", "agent:8500")]);
    assert_eq!(c.address, "x:1", "the config's address wins");
    // CONSUL_HTTP_SSL picks https for the object form without a scheme only.
    let c = consul("{address: 'a:1'}", &[("CONSUL_HTTP_SSL", "true")]);
    assert_eq!(c.scheme, Scheme::Https);
    let c = consul("'a:1'", &[("CONSUL_HTTP_SSL", "true")]);
    assert_eq!(c.scheme, Scheme::Http);
    let c = consul(
        "{address: 'a:1', scheme: 'http'}",
        &[("CONSUL_HTTP_SSL", "1")],
    );
    assert_eq!(c.scheme, Scheme::Http);

    let c = consul(
        "{tls: {cafile: 'ca', capath: 'cp', clientcert: 'cc', clientkey: 'ck', servername: 'sn', verify: false}}",
        &[],
    );
    assert_eq!(
        c.tls,
        Tls {
            ca_file: Some("ca".into()),
            ca_path: Some("cp".into()),
            client_cert: Some("cc".into()),
            client_key: Some("ck".into()),
            server_name: Some("sn".into()),
            verify: false,
        }
    );
    let c = consul(
        "{tls: {cafile: 'ca', verify: false}}",
        &[
            ("CONSUL_CACERT", "/env/ca"),
            ("CONSUL_CAPATH", "/env/cp"),
            ("CONSUL_CLIENT_CERT", "/env/cc"),
            ("CONSUL_CLIENT_KEY", "/env/ck"),
            ("CONSUL_TLS_SERVER_NAME", "env-sn"),
            ("CONSUL_HTTP_SSL_VERIFY", "TRUE"),
        ],
    );
    assert_eq!(
        c.tls,
        Tls {
            ca_file: Some("/env/ca".into()),
            ca_path: Some("/env/cp".into()),
            client_cert: Some("/env/cc".into()),
            client_key: Some("/env/ck".into()),
            server_name: Some("env-sn".into()),
            verify: true,
        }
    );
    assert!(!consul("''", &[("CONSUL_HTTP_SSL_VERIFY", "0")]).tls.verify);
    assert!(
        consul("''", &[("CONSUL_HTTP_SSL_VERIFY", "maybe")])
            .tls
            .verify
    );
    assert!(
        consul("''", &[]).tls.verify,
        "verification is on by default"
    );
}

#[test]
fn consul_tls_server_name_drops_a_port() {
    let name = |text: &str, env: &[(&str, &str)]| consul(text, env).tls.server_name;
    let env_name = |v: &str| name("''", &[("CONSUL_TLS_SERVER_NAME", v)]);
    assert_eq!(env_name("consul.local:8501"), Some("consul.local".into()));
    assert_eq!(env_name("consul.local"), Some("consul.local".into()));
    assert_eq!(env_name("[::1]:8501"), Some("::1".into()));
    assert_eq!(env_name("[fe80::1]"), Some("fe80::1".into()));
    assert_eq!(env_name("fe80::1"), Some("fe80::1".into()));
    assert_eq!(
        name("{tls: {servername: 'consul.local:8501'}}", &[]),
        Some("consul.local".into())
    );
}

#[test]
fn consul_token_precedence() {
    let token =
        |text: &str, env: &[(&str, &str)]| consul(text, env).token.map(|t| t.expose().to_string());
    assert_eq!(token("{token: 'cfg'}", &[]), Some("cfg".into()));
    assert_eq!(token("{token: ''}", &[]), None);
    assert_eq!(
        token("{token: 'cfg'}", &[("CONSUL_HTTP_TOKEN", "env")]),
        Some("env".into())
    );
    assert_eq!(
        token("'c'", &[("CONSUL_HTTP_TOKEN", "env")]),
        Some("env".into())
    );
    let dir = std::env::temp_dir().join(format!("pilot-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    let file_env = [("CONSUL_HTTP_TOKEN_FILE", file.to_str().unwrap())];
    assert_eq!(token("{token: 'cfg'}", &file_env), Some("from-file".into()));
    assert_eq!(
        token(
            "{token: 'cfg'}",
            &[file_env[0], ("CONSUL_HTTP_TOKEN", "env")]
        ),
        Some("from-file".into()),
        "the file wins over CONSUL_HTTP_TOKEN, as in Consul's client"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let problems = load_with(
        "{consul: 'c'}",
        &ctx_with(&[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")]),
    )
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "CONSUL_HTTP_TOKEN_FILE \"/nonexistent/token\": cannot read it: no such file or directory"
        ]
    );
}

#[test]
fn the_token_never_appears_in_errors_or_debug_output() {
    let secret = "s3cr3t-t0k3n";
    let config = load_with(
        &format!("{{consul: {{token: '{secret}'}}}}"),
        &ctx_with(&[]),
    )
    .unwrap();
    let debug = format!("{config:?} {:?}", config.consul);
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("<redacted>"));

    // A token of the wrong type is reported without its value.
    let problems = errors("{consul: {token: 123456789}}");
    assert_eq!(
        problems,
        ["consul.token must be a string, got a number (line 1)"]
    );

    // A syntax error on or after the token's line does not quote it.
    let text = format!("{{\n  consul: {{\n    token: '{secret}'\n    address: 'x'\n  }}\n}}");
    let err = load_text(&text, Path::new("t.json5"), &ctx()).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("after object key:value pair"), "{shown}");
    assert!(!shown.contains(secret), "{shown}");
    // ... nor when the template put CONSUL_HTTP_TOKEN there.
    let text = "{\n consul: {address: '{{ .CONSUL_HTTP_TOKEN }}' x}\n}";
    let err = load_text(
        text,
        Path::new("t.json5"),
        &ctx_with(&[("CONSUL_HTTP_TOKEN", secret)]),
    )
    .unwrap_err();
    assert!(!err.to_string().contains(secret), "{err}");
    // The context never does either.
    assert!(!format!("{:?}", ctx_with(&[("CONSUL_HTTP_TOKEN", secret)])).contains(secret));
}

#[test]
fn consul_errors() {
    assert_eq!(
        error("{consul: 8500}"),
        "consul must be a string or an object, got 8500 (line 1)"
    );
    assert_eq!(
        error("{consul: 'ftp://x:1'}"),
        "consul address \"ftp://x:1\" has an unknown scheme \"ftp\" (http, https or unix) (line 1)"
    );
    assert_eq!(
        error("{consul: {scheme: 'gopher'}}"),
        "consul.scheme must be http or https, got \"gopher\" (line 1)"
    );
    assert_eq!(
        error("{consul: {adress: 'x'}}"),
        "unknown key \"consul.adress\" (did you mean \"consul.address\"?) (line 1)"
    );
    assert_eq!(
        error("{consul: {tls: {verify: 'maybe'}}}"),
        "consul.tls.verify must be true or false, got \"maybe\" (line 1)"
    );
    assert_eq!(
        error("{consul: {tls: {cert: 'x'}}}"),
        "unknown key \"consul.tls.cert\" (line 1)"
    );
    assert_eq!(
        error("{consul: 'a b'}"),
        "consul address \"a b\" contains blanks (line 1)"
    );
    assert_eq!(
        error("{consul: 'unix://'}"),
        "consul has an empty address (line 1)"
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

// jobs

#[test]
fn job_defaults() {
    let job = one_job("name: 'a', exec: 'run'");
    assert_eq!(
        job,
        Job {
            name: "a".into(),
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
    assert_eq!(
        error(&job("name: 'a', exec: \"echo 'x\"")),
        "jobs[0] \"a\": exec has an unterminated single quote (line 1)"
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

#[test]
fn duplicate_job_names() {
    assert_eq!(
        error("{consul: 'c', jobs: [\n{name: 'a'},\n{name: 'b'},\n{name: 'a'}]}"),
        "jobs[2] \"a\": name \"a\" is already the name of jobs[0] (line 2): job names must be unique (line 4)"
    );
    assert_eq!(
        error("{consul: 'c', telemetry: {},\n jobs: [{name: 'containerpilot'}]}"),
        "jobs[0] \"containerpilot\": name \"containerpilot\" is the name of the job telemetry adds (line 1): job names must be unique (line 2)"
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
        Some(Health {
            check: Check::Exec(Exec {
                program: "check".into(),
                args: vec![]
            }),
            interval: secs(5),
            ttl: secs(10),
            timeout: secs(5),
            raw_output: false,
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
    assert_eq!(
        problem("exec: 'x', interval: 1, ttl: 1, timeout: 0"),
        "jobs[0] \"a\": health.timeout must be greater than zero, got 0s (leave it out to use health.interval) (line 1)"
    );
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
    ];
    for (text, want) in cases {
        assert_eq!(&when_of(text), want, "{text}");
    }
    assert_eq!(one_job("name: 'a'").when, When::Startup);
}

#[test]
fn when_that_can_never_fire() {
    let cases: &[(&str, &str)] = &[
        (
            "{}",
            "when names no event, so the job would never start: give source and once or each, or leave when out to start at startup",
        ),
        (
            "{timeout: '5s'}",
            "when names no event, so the job would never start: give source and once or each, or leave when out to start at startup",
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
            "when.each source \"db\" is not global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2 (did you mean \"watch.db\"?)",
        ),
        (
            "{source: 'nobody', once: 'exitSuccess'}",
            "when.once source \"nobody\" is not global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2",
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
            },
            Watch {
                name: "upstream-b".into(),
                interval: secs(79),
                tag: None,
                dc: Some("us-east-1".into()),
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
            kind: JobKind::Telemetry,
            exec: None,
            raw_output: false,
            when: When::Startup,
            timeout: None,
            stop_timeout: None,
            restarts: Restarts::Never,
            health: Some(Health {
                check: Check::None,
                interval: secs(5),
                ttl: secs(15),
                timeout: secs(5),
                raw_output: false,
            }),
            service: Some(Service {
                id: "containerpilot-host1".into(),
                name: "containerpilot".into(),
                port: 9000,
                address: ip("192.168.5.9"),
                tags: vec!["dev".into(), "9.9.9".into()],
                meta: BTreeMap::new(),
                initial_status: None,
                enable_tag_override: false,
                deregister_critical_service_after: None,
            }),
            main: false,
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

// templates and parse errors through the pipeline

#[test]
fn templates_render_before_parsing() {
    let config = load_with(
        r#"{
            consul: "{{ .CONSUL | default "consul" }}:8500",
            jobs: [
                {{ range $i := loop (env "WORKERS") }}
                { name: "worker-{{ $i }}", exec: ["work", "{{ $i }}"] },
                {{ end }}
                { name: "app", exec: "{{ .APP_CMD }}", port: {{ .PORT }},
                  tags: [ {{ range $i, $t := .TAGS | split "," }}{{ if $i }}, {{ end }}"{{ $t }}"{{ end }} ],
                  health: { exec: "check", interval: 5, ttl: 10 } },
            ]
        }"#,
        &ctx_with(&[
            ("WORKERS", "2"),
            ("APP_CMD", "node server.js --opt=a=b"),
            ("PORT", "8080"),
            ("TAGS", "web, blue"),
        ]),
    )
    .unwrap();
    assert_eq!(config.consul.address, "consul:8500");
    let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["worker-0", "worker-1", "app"]);
    assert_eq!(config.jobs[1].exec, exec(&["work", "1"]));
    let app = &config.jobs[2];
    assert_eq!(app.exec, exec(&["node", "server.js", "--opt=a=b"]));
    let service = app.service.as_ref().unwrap();
    assert_eq!(service.port, 8080);
    assert_eq!(service.tags, ["web", " blue"]);
}

#[test]
fn an_unquoted_missing_variable_is_a_parse_error() {
    let err = load_text(
        "{\"test\": {{ .NO_SUCH_KEY }}, \"consul\": \"c\"}",
        Path::new("t.json5"),
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not parse config t.json5: parse error at line:col [1:10]: invalid character ',' looking for beginning of value\n    1: {\"test\": , \"consul\": \"c\"}\n----------------^"
    );
    let err = load_text("{{ .X", Path::new("t.json5"), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not apply template to config t.json5: parse error at line:col [1:6]: unclosed action"
    );
}

#[test]
fn control_socket_reads_only_the_socket() {
    let dir = std::env::temp_dir().join(format!("pilot-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // Invalid in every other way, but the socket is readable.
    let path = write(
        "a.json5",
        "{control: {socket: '/run/{{ .NAME }}.sock'}, jobs: 'nonsense', bogus: 1}",
    );
    assert_eq!(
        control_socket(&path, &ctx_with(&[("NAME", "p")])).unwrap(),
        PathBuf::from("/run/p.sock")
    );
    let path = write("b.json5", "{}");
    assert_eq!(
        control_socket(&path, &ctx()).unwrap(),
        PathBuf::from("/var/run/containerpilot.socket")
    );
    let path = write("c.json5", "{control: {socket: []}}");
    assert_eq!(
        control_socket(&path, &ctx()).unwrap_err().to_string(),
        format!(
            "invalid config {} (1 problem):\ncontrol.socket must be a string, got an array (line 1)",
            path.display()
        )
    );
    let path = write("d.json5", "{control: ");
    assert!(matches!(
        control_socket(&path, &ctx()),
        Err(LoadError::Parse { .. })
    ));
    assert!(matches!(
        control_socket(&dir.join("missing.json5"), &ctx()),
        Err(LoadError::Read { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_path_precedence() {
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let all = env(&[("PILOT_CONFIG", "/p.json5"), ("CONTAINERPILOT", "/c.json5")]);
    assert_eq!(
        resolve_path(Some("/f.json5"), &all),
        Some("/f.json5".into())
    );
    assert_eq!(resolve_path(None, &all), Some("/p.json5".into()));
    assert_eq!(resolve_path(Some(""), &all), Some("/p.json5".into()));
    let only_cp = env(&[("PILOT_CONFIG", ""), ("CONTAINERPILOT", "/c.json5")]);
    assert_eq!(resolve_path(None, &only_cp), Some("/c.json5".into()));
    assert_eq!(resolve_path(None, &env(&[])), None);
}

#[test]
fn read_errors() {
    let err = load(Path::new("/xxxx"), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not read config file /xxxx: no such file or directory"
    );
    let dir = std::env::temp_dir().join(format!("pilot-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("binary.json5");
    std::fs::write(&path, b"{consul: '\xff'}").unwrap();
    assert_eq!(
        load(&path, &ctx()).unwrap_err().to_string(),
        format!(
            "could not read config file {}: it is not UTF-8 text (invalid byte at offset 10)",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
