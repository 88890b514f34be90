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
