//! The config modes of the real binary: `-template` (with `-out`), `-validate`, and which file
//! is used (`-config` over `PILOT_CONFIG` over `CONTAINERPILOT`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{Scratch, pilot_bin};

/// Runs pilot with `args` and exactly the environment `env` (plus PATH).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(pilot_bin());
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run pilot")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const VALID: &str = r#"{
  // a comment, rendered too: {{ .WHO }}
  consul: "{{ .CONSUL_HOST | default "localhost" }}:8500",
  jobs: [
    {name: "app", exec: "echo {{ .WHO }}", restarts: "never"},
  ],
}"#;

#[test]
fn template_prints_the_rendered_config_exactly() {
    let dir = Scratch::new("template");
    let config = dir.write("c.json5", VALID);
    let out = run(&["-template", "-config", p(&config)], &[("WHO", "a=b c")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = VALID
        .replace("{{ .WHO }}", "a=b c")
        .replace("{{ .CONSUL_HOST | default \"localhost\" }}", "localhost");
    assert_eq!(
        text(&out.stdout),
        expected,
        "byte for byte, no newline added"
    );
    // `-out -` is stdout too.
    let out = run(
        &["--template", "--config", p(&config), "-out", "-"],
        &[("WHO", "x")],
    );
    assert!(text(&out.stdout).contains("echo x"));
}

#[test]
fn template_writes_to_out_with_mode_0644() {
    let dir = Scratch::new("out");
    let config = dir.write("c.json5", VALID);
    let target = dir.write("rendered.json5", "previous content that is much longer than the new one ........................................................................................................................................................................................................................................................................................................................................");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fresh = dir.path("fresh.json5");
    for out_path in [&target, &fresh] {
        let out = run(
            &[
                "-template",
                "-config",
                p(&config),
                &format!("-out={}", p(out_path)),
            ],
            &[("WHO", "w"), ("CONSUL_HOST", "consul")],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
        let written = std::fs::read_to_string(out_path).unwrap();
        assert!(
            written.starts_with("{\n  // a comment, rendered too: w\n  consul: \"consul:8500\"")
        );
        assert!(written.ends_with("}"), "truncated, not appended");
    }
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o644, 0, "created 0644 (less the umask): {mode:o}");
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
}

#[test]
fn template_errors() {
    let dir = Scratch::new("template-errors");
    let out = run(&["-template", "-config", "/nonexistent/c.json5"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "pilot: could not read config file /nonexistent/c.json5: no such file or directory\n"
    );

    let bad = dir.write("bad.json5", "{consul: \"{{ .X \"}");
    let out = run(&["-template", "-config", p(&bad)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "pilot: could not apply template to config {}: parse error at line:col [1:",
            p(&bad)
        )),
        "{}",
        text(&out.stderr)
    );

    let config = dir.write("c.json5", VALID);
    let out = run(
        &[
            "-template",
            "-config",
            p(&config),
            "-out",
            "/nonexistent/dir/out.json5",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "pilot: could not write config file /nonexistent/dir/out.json5: no such file or directory\n"
    );

    let out = run(&["-template"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("pilot: -template needs a config"));
}

#[test]
fn validate_accepts_a_valid_config() {
    let dir = Scratch::new("validate-ok");
    let config = dir.write("c.json5", VALID);
    let out = run(&["-validate", "-config", p(&config)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("config {} is valid: 1 job(s), 0 watch(es)\n", p(&config))
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn validate_prints_every_problem_and_exits_2() {
    let dir = Scratch::new("validate-bad");
    let config = dir.write(
        "c.json5",
        "{\n  consul: 'c:8500',\n  jobs: [\n    {name: 'app', exec: 'x', when: {}},\n    {name: 'app', exec: 'y', restarts: -1},\n  ],\n  bogus: 1,\n}\n",
    );
    let out = run(&["--validate", "--config", p(&config)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "pilot: invalid config {} (2 problems and 2 warnings):\n\
             warning: jobs[0] \"app\": when names no event, so the job never starts: give source and once or each, or leave when out to start at startup (line 4)\n\
             jobs[1] \"app\": restarts must not be negative, got -1 (line 5)\n\
             warning: jobs[1] \"app\": name \"app\" is already the name of jobs[0] (line 4): both jobs run, and their events and Consul service are one (line 5)\n\
             unknown key \"bogus\" (line 7)\n",
            p(&config)
        )
    );
}

/// What ContainerPilot 3.8 runs, pilot runs: each doubt is a warning with its key path and
/// line, and the config is valid (exit 0). The summary counts the jobs written, not the one
/// telemetry adds.
#[test]
fn validate_prints_warnings_and_exits_0() {
    let dir = Scratch::new("validate-warn");
    let config = dir.write(
        "c.json5",
        "{\n  consul: 'c:8500',\n  telemetry: {port: 9090},\n  jobs: [\n    {name: 'web', exec: 'x'},\n    {name: 'hook', exec: 'y', when: {source: 'consul-agent', once: 'healthy'}},\n    {name: 'web', exec: 'z'},\n  ],\n}\n",
    );
    let out = run(&["-validate", "-config", p(&config)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "warning: jobs[1] \"hook\": when.once \"healthy\" from \"consul-agent\" never fires: no job is named \"consul-agent\" (a source is global, a job, check.<job>, watch.<watch>, SIGHUP or SIGUSR2) (line 6)\n\
             warning: jobs[2] \"web\": name \"web\" is already the name of jobs[0] (line 5): both jobs run, and their events and Consul service are one (line 7)\n\
             config {} is valid: 3 job(s), 0 watch(es), 2 warnings\n",
            p(&config)
        )
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn validate_reports_parse_errors_with_the_right_line() {
    let dir = Scratch::new("validate-parse");
    let config = dir.write("c.json5", "{\n  consul: 'c'\n  jobs: []\n}\n");
    let out = run(&["-validate", "-config", p(&config)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "pilot: could not parse config {}: parse error at line:col [3:3]: invalid character 'j' after object key:value pair\n\
             \x20   2:   consul: 'c'\n\
             \x20   3:   jobs: []\n\
             ---------^\n",
            p(&config)
        )
    );
}

#[test]
fn validate_checks_the_reference_examples() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/configs");
    for name in [
        "consul-agent",
        "database-config",
        "nginx-upstreams",
        "periodic-tasks",
        "service-reg-only",
        "stopping",
    ] {
        let original = dir.join(format!("containerpilot/{name}.json5"));
        let out = run(
            &["-validate", "-config", p(&original)],
            &[("CONSUL", "consul")],
        );
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stdout));
        // The corrected versions have services whose address must resolve on this machine:
        // a static address keeps the test independent of its interfaces.
        let corrected = std::fs::read_to_string(dir.join(format!("corrected/{name}.json5")))
            .unwrap()
            .replace("port: ", "interfaces: \"static:192.0.2.1\", port: ");
        let scratch = Scratch::new(&format!("example-{name}"));
        let path = scratch.write("c.json5", &corrected);
        let out = run(&["-validate", "-config", p(&path)], &[("CONSUL", "consul")]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
    }
}

#[test]
fn config_path_precedence() {
    let dir = Scratch::new("precedence");
    let flag = dir.write("flag.json5", "from the flag");
    let pilot_config = dir.write("pilot.json5", "from PILOT_CONFIG");
    let containerpilot = dir.write("cp.json5", "from CONTAINERPILOT");
    let both = [
        ("PILOT_CONFIG", p(&pilot_config)),
        ("CONTAINERPILOT", p(&containerpilot)),
    ];
    let out = run(&["-template", "-config", p(&flag)], &both);
    assert_eq!(text(&out.stdout), "from the flag");
    let out = run(&["-template"], &both);
    assert_eq!(text(&out.stdout), "from PILOT_CONFIG");
    let out = run(
        &["-template"],
        &[("PILOT_CONFIG", ""), ("CONTAINERPILOT", p(&containerpilot))],
    );
    assert_eq!(text(&out.stdout), "from CONTAINERPILOT");
    let valid = dir.write("valid.json5", VALID);
    let out = run(&["-validate"], &[("CONTAINERPILOT", p(&valid))]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_config_runs_from_the_flag_or_the_environment() {
    let dir = Scratch::new("run");
    let config = dir.write("c.json5", VALID);
    for (args, env) in [
        (vec!["-config", p(&config)], vec![("WHO", "from-flag")]),
        (
            vec![],
            vec![("CONTAINERPILOT", p(&config)), ("WHO", "from-env")],
        ),
        (
            vec![],
            vec![("PILOT_CONFIG", p(&config)), ("WHO", "from-env")],
        ),
    ] {
        let out = run(&args, &env);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let who = env.iter().find(|(k, _)| *k == "WHO").unwrap().1;
        assert!(
            text(&out.stdout)
                .lines()
                .any(|l| l.contains(" app ") && l.ends_with(who)),
            "{args:?} {env:?}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn running_an_invalid_config_exits_2_with_every_problem() {
    let dir = Scratch::new("run-invalid");
    let config = dir.write(
        "c.json5",
        "{ consul: \"localhost:8500\", jobs: [{ name: \"a\", exec: \"true\", restarts: -1 }, { name: \"a\", exec: \"true\" }] }",
    );
    let out = run(&["-config", p(&config)], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("pilot: invalid config"), "{stderr}");
    assert!(
        stderr.contains("restarts") && stderr.contains("\"a\""),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        3,
        "one line per problem after the heading: {stderr}"
    );
}

#[test]
fn help_lists_the_config_flags() {
    let out = run(&["-help"], &[]);
    let help = text(&out.stdout);
    for flag in ["-config FILE", "-out FILE", "-template", "-validate"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}
