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
    let lines = stdout.lines().chain(stderr.lines()).map(str::to_string).collect();
    (code(status), lines)
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real-configs")
        .join(name)
}

/// The patterns of real users' configs, each in a config of our own: what ContainerPilot 3.8
/// runs is valid (exit 0), with a warning (its key path and line) for what never fires or
/// repeats. `scripts/corpus-check.py` runs the same check over the configs themselves.
#[test]
fn real_config_patterns_are_valid_with_their_warnings() {
    let agent = [("CONSUL_AGENT", "1")];
    let acme = [("ACME_DOMAIN", "example.com")];
    let cases: &[(&str, &[(&str, &str)], &[&str])] = &[
        (
            "source-under-unset-variable.json5",
            &[],
            &["warning: jobs[0] \"setup\": when.once \"healthy\" from \"consul-agent\" never fires: no job is named \"consul-agent\""],
        ),
        ("source-under-unset-variable.json5", &agent, &[]),
        (
            "undeclared-watch.json5",
            &[],
            &["warning: jobs[1] \"queue-onchange\": when.once \"changed\" from \"watch.queue\" never fires: there is no watch named \"queue\" in watches (line 9)"],
        ),
        (
            "duplicate-names.json5",
            &[],
            &["warning: jobs[1] \"dns\": when.each \"changed\" from \"web\" never fires: only watches publish changed (line 15)"],
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
        let warnings: Vec<&String> = lines.iter().filter(|l| l.starts_with("warning: ")).collect();
        assert_eq!(warnings.len(), want.len(), "{fixture} {env:?}: {lines:#?}");
        for (line, want) in warnings.iter().zip(want.iter()) {
            assert!(line.starts_with(want), "{fixture} {env:?}: {line:?} is not {want:?}");
        }
        assert!(
            lines.last().is_some_and(|l| l.contains(" is valid: ")),
            "{fixture} {env:?}: {lines:#?}"
        );
    }
    let (_, lines) = validate("loop-jobs.json5", &[]);
    assert!(lines.iter().any(|l| l.ends_with("is valid: 30 job(s), 0 watch(es)")), "{lines:#?}");
}

/// A ContainerPilot 2.x config is refused with one error that names the format and the docs'
/// section on moving to 3.x, not with an unknown-key error per 2.x key.
#[test]
fn a_containerpilot_2_config_is_recognised() {
    let (status, lines) = validate("containerpilot-2.json", &[]);
    assert_eq!(status, 2, "{lines:#?}");
    assert_eq!(
        lines[1..],
        ["this is a ContainerPilot 2.x config (\"services\", \"backends\", \"preStart\" at the top level), which pilot does not read: ContainerPilot 3 replaced them with jobs and watches; see docs/configuration.md, \"Moving from ContainerPilot 2.x\" (line 1)"]
    );
}
