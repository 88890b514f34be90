//! Patterns of real ContainerPilot configs that ContainerPilot 3.8 runs, run by the real binary:
//! what pilot only warns about (a repeated job name, a trigger that never comes) runs as
//! ContainerPilot runs it. Each test runs pilot as PID 1 of a PID namespace when root, and as a
//! plain process.

mod common;

use common::*;

/// A config with the given top-level entries, logging at DEBUG so that every event is visible.
/// Consul is not reachable; jobs without a `port` never need it.
fn config(entries: &str) -> String {
    format!("{{\n  consul: \"127.0.0.1:1\",\n  logging: {{ level: \"DEBUG\" }},\n  {entries}\n}}\n")
}

fn config_args(path: &std::path::Path) -> Vec<String> {
    vec!["-config".to_string(), path.display().to_string()]
}

fn outputs(lines: &[String], job: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| job_output(l, job))
        .map(str::to_string)
        .collect()
}

/// Two jobs of one name both run (the autopilotpattern/nginx config defines `nginx-public-ssl`
/// twice); their events share the name, so a job that follows the name runs on each. The
/// warning is logged once, at start-up.
#[test]
fn two_jobs_of_one_name_both_run_and_both_trigger_their_followers() {
    for mode in modes() {
        let dir = Scratch::new("dup-names");
        let cfg = dir.write(
            "pilot.json5",
            &config(
                r#"jobs: [
    { name: "dup", exec: "echo first" },
    { name: "dup", exec: "echo second" },
    { name: "after", exec: "echo after", when: { source: "dup", each: "exitSuccess" } },
  ]"#,
            ),
        );
        let (status, stdout, stderr) = run(pilot(mode, config_args(&cfg)));
        assert_eq!(code(status), 0, "{mode:?}: {stderr}");
        let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        let mut dup = outputs(&lines, "dup");
        dup.sort();
        assert_eq!(dup, ["first", "second"], "{mode:?}: {stdout}");
        // Had the first `dup` to stop counted as the name's end, `after` could have halted
        // before the second one's exit.
        assert_eq!(outputs(&lines, "after"), ["after", "after"], "{mode:?}");
        let events = events(&lines);
        let count = |e: &str| events.iter().filter(|x| *x == e).count();
        assert_eq!(count("ExitSuccess dup"), 2, "{mode:?}");
        assert_eq!(count("Stopped dup"), 2, "{mode:?}");
        let warnings: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("warning: jobs[1] \"dup\": name \"dup\" is already"))
            .collect();
        assert_eq!(warnings.len(), 1, "{mode:?}: {stdout}");
    }
}

/// A job whose trigger never comes (its source exists only under an environment variable that
/// is not set) simply waits, as in ContainerPilot: pilot keeps running, and the job stops on
/// shutdown without having run.
#[test]
fn a_job_whose_trigger_never_comes_waits_until_shutdown() {
    for mode in modes() {
        let dir = Scratch::new("never-fires");
        let cfg = dir.write(
            "pilot.json5",
            &config(
                r#"jobs: [
    { name: "app", exec: "echo ready" },
    { name: "waiter", exec: "echo ran", when: { source: "consul-agent", once: "healthy" } },
    {{ if .CONSUL_AGENT }}{ name: "consul-agent", exec: "true" },{{ end }}
  ]"#,
            ),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("the warning", |l| {
            l.contains("warning: jobs[1] \"waiter\": when.once \"healthy\" from \"consul-agent\" never fires")
        });
        running.expect_line("app's end", |l| l.ends_with("event: {Stopped app}"));
        // pilot is still there: only the signal ends it (Shutdown comes from it alone).
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        let events = events(&finished.stdout);
        for want in ["Shutdown global", "Stopping waiter", "Stopped waiter"] {
            assert!(
                events.iter().any(|e| e == want),
                "{mode:?}: {want} in {events:#?}"
            );
        }
        assert!(outputs(&finished.stdout, "waiter").is_empty(), "{mode:?}");
    }
}

/// `pilot -validate` on `fixture` (in `tests/fixtures/real-configs/`) in an environment of
/// `env` alone: its exit status and every stdout and stderr line.
fn validate(fixture: &str, env: &[(&str, &str)]) -> (i32, Vec<String>) {
    let mut cmd = std::process::Command::new(pilot_bin());
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .arg("-validate")
        .arg("-config")
        .arg(fixture_path(fixture));
    let (status, stdout, stderr) = run(cmd);
    let lines = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::to_string)
        .collect();
    (code(status), lines)
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real-configs")
        .join(name)
}

/// Environment variables, as (name, value).
type Env<'a> = &'a [(&'a str, &'a str)];

/// The patterns of real users' configs, each in a config of our own: what ContainerPilot 3.8
/// runs is valid (exit 0), with a warning (its key path and line) for what never fires or
/// repeats. `scripts/corpus-check.py` runs the same check over the configs themselves.
#[test]
fn real_config_patterns_are_valid_with_their_warnings() {
    let agent = [("CONSUL_AGENT", "1")];
    let acme = [("ACME_DOMAIN", "example.com")];
    let cases: &[(&str, Env, &[&str])] = &[
        (
            "source-under-unset-variable.json5",
            &[],
            &[
                "warning: jobs[0] \"setup\": when.once \"healthy\" from \"consul-agent\" never fires: no job is named \"consul-agent\"",
            ],
        ),
        ("source-under-unset-variable.json5", &agent, &[]),
        (
            "undeclared-watch.json5",
            &[],
            &[
                "warning: jobs[1] \"queue-onchange\": when.once \"changed\" from \"watch.queue\" never fires: there is no watch named \"queue\" in watches (line 9)",
            ],
        ),
        (
            "duplicate-names.json5",
            &[],
            &[
                "warning: jobs[1] \"dns\": when.each \"changed\" from \"web\" never fires: only watches publish changed (line 15)",
            ],
        ),
        (
            "duplicate-names.json5",
            &acme,
            &[
                "warning: jobs[2] \"web-tls\": name \"web-tls\" is already the name of jobs[1] (line 12)",
                "warning: jobs[2] \"web-tls\": health.exec has an unterminated double quote",
                "warning: jobs[3] \"dns\": when.each \"changed\" from \"web\" never fires",
            ],
        ),
        ("nested-quotes.json5", &[], &[]),
        ("nested-quotes.json5", &agent, &[]),
        ("loop-jobs.json5", &[], &[]),
        ("quoted-port.json5", &[], &[]),
        ("exec-array-numbers.json5", &[], &[]),
        ("consul-empty.json5", &[], &[]),
        ("consul-url.json5", &[], &[]),
        ("control-socket-subdirectory.json5", &[], &[]),
        (
            "shutdown-without-source.json5",
            &[],
            &[
                "warning: jobs[1] \"cleanup\": when.once \"shutdown\" needs a source: without one the job never starts (line 6)",
                "warning: jobs[2] \"announce\": when.each \"changed\" from \"app\" never fires: only watches publish changed (line 7)",
            ],
        ),
    ];
    for (fixture, env, want) in cases {
        let (status, lines) = validate(fixture, env);
        assert_eq!(status, 0, "{fixture} {env:?}: {lines:#?}");
        let warnings: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("warning: "))
            .collect();
        assert_eq!(warnings.len(), want.len(), "{fixture} {env:?}: {lines:#?}");
        for (line, want) in warnings.iter().zip(want.iter()) {
            assert!(
                line.starts_with(want),
                "{fixture} {env:?}: {line:?} is not {want:?}"
            );
        }
        assert!(
            lines.last().is_some_and(|l| l.contains(" is valid: ")),
            "{fixture} {env:?}: {lines:#?}"
        );
    }
    let (_, lines) = validate("loop-jobs.json5", &[]);
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("is valid: 30 job(s), 0 watch(es)")),
        "{lines:#?}"
    );
}

/// A ContainerPilot 2.x config is refused with one error that names the format and the docs'
/// section on moving to 3.x, not with an unknown-key error per 2.x key.
#[test]
fn a_containerpilot_2_config_is_recognised() {
    let (status, lines) = validate("containerpilot-2.json", &[]);
    assert_eq!(status, 2, "{lines:#?}");
    assert_eq!(
        lines[1..],
        [
            "this is a ContainerPilot 2.x config (\"services\", \"backends\", \"preStart\" at the top level), which pilot does not read: ContainerPilot 3 replaced them with jobs and watches; see docs/configuration.md, \"Moving from ContainerPilot 2.x\" (line 1)"
        ]
    );
}

/// A directory holding the binary under test installed as `containerpilot` (a symbolic link,
/// as `ln -s pilot containerpilot` would make), to put first in PATH.
fn installed_as_containerpilot(dir: &Scratch) -> std::path::PathBuf {
    let bin = dir.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(pilot_bin(), bin.join("containerpilot")).unwrap();
    bin
}

fn path_with(bin: &std::path::Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A free TCP port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How hook scripts of real images talk back to the running ContainerPilot, with pilot
/// installed as `containerpilot`: `-putmetric` with `-config` before or after it, the service's
/// `CONTAINERPILOT_<JOB>_IP` (dashes in the job's name), `CONTAINERPILOT_PID`, `-putenv` then a
/// reload whose config is rendered with the new value (a job that exists only when it is set),
/// and the MySQL image's manager: render the config with `-template`, rewrite the file,
/// `-reload`.
#[test]
fn hook_scripts_talk_back_through_containerpilot() {
    for mode in modes() {
        let dir = Scratch::new("talk-back");
        let bin = installed_as_containerpilot(&dir);
        let cfg = dir.path("containerpilot.json5");
        let socket = dir.path("run/cp.socket");
        let script = [
            "until containerpilot -config \"$CFG\" -ping >/dev/null; do sleep 0.05; done",
            "containerpilot -config \"$CFG\" -putmetric app_hits=2",
            "containerpilot -putmetric app_hits=3 -config \"$CFG\"",
            "echo ip=$CONTAINERPILOT_MY_DB_IP pid=$CONTAINERPILOT_PID",
            "containerpilot -putenv VERSION=2 -config \"$CFG\"",
            "containerpilot -reload -config \"$CFG\" && echo reloaded",
            "until [ -e \"$CFG.ran\" ]; do sleep 0.05; done",
            "containerpilot -config \"$CFG\" -template > \"$CFG.rendered\"",
            // (`[ ]`: the script itself, in the file, must not match)
            "sed 's|// more[ ]jobs|{ name: \"rewritten\", exec: \"echo rewritten\" },|' \"$CFG.rendered\" > \"$CFG\"",
            "containerpilot -reload -config \"$CFG\" && echo reloaded again",
        ]
        .join("\n");
        let text = format!(
            r#"{{
  consul: "127.0.0.1:1",
  logging: {{ level: "DEBUG" }},
  control: {{ socket: "{socket}" }},
  telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"],
    metrics: [{{ namespace: "app", name: "hits", help: "hits", type: "counter" }}] }},
  jobs: [
    {{ name: "my-db", exec: ["sleep", "1000"], port: 5432, interfaces: ["static:10.1.2.3"],
      health: {{ exec: "true", interval: 1, ttl: 5 }} }},
    {{ name: "talk", exec: ["sh", "-c", {script:?}] }},{{{{ if .VERSION }}}}
    {{ name: "reloaded", exec: ["sh", "-c", "echo version {{{{ .VERSION }}}}; touch $CFG.ran"] }},{{{{ end }}}}
    // more jobs
  ],
}}
"#,
            socket = socket.display(),
            port = free_port(),
        );
        std::fs::write(&cfg, text).unwrap();
        let mut cmd = pilot(mode, config_args(&cfg));
        cmd.env("PATH", path_with(&bin)).env("CFG", &cfg);
        let mut running = Running::start(cmd, mode);
        let said = running.expect_line("talk's environment", |l| {
            job_output(l, "talk").is_some_and(|o| o.starts_with("ip="))
        });
        let said = job_output(&said, "talk").unwrap().to_string();
        let pid = if mode == Mode::Pid1 {
            "1".to_string()
        } else {
            running.pilot_pid().to_string()
        };
        assert_eq!(said, format!("ip=10.1.2.3 pid={pid}"), "{mode:?}");
        running.expect_line("the metric set with -config first", |l| {
            l.ends_with("event: {Metric app_hits|2}")
        });
        running.expect_line("the metric set with -config last", |l| {
            l.ends_with("event: {Metric app_hits|3}")
        });
        running.expect_line("the reload answered", |l| {
            job_output(l, "talk") == Some("reloaded")
        });
        running.expect_line(
            "the job the reload added, rendered with -putenv's value",
            |l| job_output(l, "reloaded") == Some("version 2"),
        );
        running.expect_line("the second reload answered", |l| {
            job_output(l, "talk") == Some("reloaded again")
        });
        running.expect_line("the job added to the file -template rendered", |l| {
            job_output(l, "rewritten") == Some("rewritten")
        });
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
    }
}

/// A job that ends the container with `pkill containerpilot` (or `pkill --signal SIGTERM
/// containerpilot`) works when pilot is installed under that name. Only as PID 1 of a PID
/// namespace with its own /proc, where pkill sees nothing but the container's processes.
#[test]
fn pkill_containerpilot_ends_pilot_installed_as_containerpilot() {
    if !modes().contains(&Mode::Pid1) {
        skip("pkill is only safe inside a PID namespace, which needs root");
        return;
    }
    for pkill in [
        "pkill containerpilot",
        "pkill --signal SIGTERM containerpilot",
    ] {
        let dir = Scratch::new("pkill");
        let bin = installed_as_containerpilot(&dir);
        let cfg = dir.write(
            "containerpilot.json5",
            &config(&format!(
                r#"jobs: [
    {{ name: "app", exec: ["sh", "-c", "trap 'echo app got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"] }},
    {{ name: "ender", exec: "{pkill}", when: {{ source: "starter", once: "exitSuccess" }} }},
    {{ name: "starter", exec: "true" }},
  ]"#
            )),
        );
        let mut cmd = pilot(Mode::Pid1, config_args(&cfg));
        // unshare runs the binary by its path; make that path the `containerpilot` name.
        let mut args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
        for arg in &mut args {
            if arg.as_os_str() == std::ffi::OsStr::new(pilot_bin()) {
                *arg = bin.join("containerpilot").into_os_string();
            }
        }
        cmd = std::process::Command::new(cmd.get_program());
        cmd.args(&args).env("PATH", path_with(&bin));
        let finished = Running::start(cmd, Mode::Pid1).wait();
        assert_eq!(code(finished.status), 0, "{pkill}: {}", finished.stderr);
        let events = events(&finished.stdout);
        assert!(
            events.iter().any(|e| e == "Shutdown global"),
            "{pkill}: {events:#?}"
        );
        assert!(
            finished
                .stdout
                .iter()
                .any(|l| job_output(l, "app") == Some("app got TERM")),
            "{pkill}: {:#?}",
            finished.stdout
        );
    }
}

/// Two services of one name share the ID `<name>-<hostname>`: in Consul they are one service,
/// registered and heartbeated by both, and gone once both have stopped.
#[test]
fn two_services_of_one_name_are_one_service_in_consul() {
    use consul_double::{BackgroundDouble, CheckStatus, Config as DoubleConfig};
    let double = BackgroundDouble::start(DoubleConfig {
        timing: DoubleConfig::fast_timing(),
        ..DoubleConfig::default()
    })
    .unwrap();
    let dir = Scratch::new("dup-services");
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{ consul: "{}", control: {{ socket: "{}" }},
  jobs: [
    {{ name: "web", exec: ["sleep", "1000"], port: 8080, interfaces: "static:10.0.0.1",
      health: {{ exec: "true", interval: 1, ttl: 5 }} }},
    {{ name: "web", exec: ["sleep", "1001"], port: 8080, interfaces: "static:10.0.0.2",
      health: {{ exec: "true", interval: 1, ttl: 5 }} }},
  ] }}"#,
            double.http_addr().unwrap(),
            dir.path("pilot.sock").display()
        ),
    );
    let running = Running::start(pilot(Mode::Plain, config_args(&cfg)), Mode::Plain);
    let id = format!(
        "web-{}",
        nix::unistd::gethostname().unwrap().into_string().unwrap()
    );
    wait_for(
        || {
            double
                .check(&format!("service:{id}"))
                .filter(|c| c.status == CheckStatus::Passing)
                .map(|_| ())
        },
        "the service registered and passing",
    );
    let services = double.services();
    let webs: Vec<_> = services.values().filter(|s| s.name == "web").collect();
    assert_eq!(webs.len(), 1, "{services:#?}");
    assert!(
        ["10.0.0.1", "10.0.0.2"].contains(&webs[0].address.as_str()),
        "{webs:#?}"
    );
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
    assert!(
        double.service(&id).is_none(),
        "deregistered once both stopped"
    );
}
