//! Operating one job at a time, with the real binary: its stop signal, the user it runs as, a
//! signal sent to it from outside (`pilot -signal`), and the stream of events
//! (`GET /v3/events`, `pilot -events`).

mod common;

use common::*;

/// A config with the given top-level entries, logging at DEBUG so that every event is visible.
/// Consul is not reachable; jobs without a `port` never need it.
fn config(entries: &str) -> String {
    format!("{{\n  consul: \"127.0.0.1:1\",\n  logging: {{ level: \"DEBUG\" }},\n  {entries}\n}}\n")
}

/// A job that says which of TERM, QUIT and INT reached it, and exits.
const TELLS_SIGNAL: &str = "for s in TERM QUIT INT; do trap \"echo got $s; exit 0\" $s; done; echo ready; while :; do sleep 0.05; done";

#[test]
fn a_job_is_stopped_with_its_stop_signal_and_the_others_with_sigterm() {
    for mode in modes() {
        let dir = Scratch::new("stop-signal");
        let cfg = dir.write(
            "pilot.json5",
            &config(&format!(
                r#"jobs: [
    {{ name: "quits", exec: ["sh", "-c", {script:?}], stopSignal: "SIGQUIT" }},
    {{ name: "interrupts", exec: ["sh", "-c", {script:?}], stopSignal: "int" }},
    {{ name: "terms", exec: ["sh", "-c", {script:?}] }},
  ]"#,
                script = TELLS_SIGNAL
            )),
        );
        let mut running = Running::start(
            pilot(mode, ["-config".to_string(), cfg.display().to_string()]),
            mode,
        );
        for job in ["quits", "interrupts", "terms"] {
            running.expect_line("ready", |l| job_output(l, job) == Some("ready"));
        }
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        for (job, got) in [
            ("quits", "got QUIT"),
            ("interrupts", "got INT"),
            ("terms", "got TERM"),
        ] {
            let said: Vec<&str> = finished
                .stdout
                .iter()
                .filter_map(|l| job_output(l, job))
                .filter(|l| l.starts_with("got "))
                .collect();
            assert_eq!(said, [got], "{mode:?} {job}: {:#?}", finished.stdout);
        }
    }
}
