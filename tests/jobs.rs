//! Jobs and events with the real binary: ContainerPilot's golden traces (reference section 13,
//! adjusted by PRODUCT.md section 2), shutdown, exit statuses, signals and child output. Each
//! test runs pilot as PID 1 of a PID namespace when root, and as a plain process.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A config with the given top-level entries, logging at DEBUG so that every event is visible.
/// Consul is not reachable; jobs without a `port` never need it.
fn config(entries: &str) -> String {
    format!("{{\n  consul: \"127.0.0.1:1\",\n  logging: {{ level: \"DEBUG\" }},\n  {entries}\n}}\n")
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Asserts that `want` appears in `events` in this order (other events may come between).
fn assert_in_order(events: &[String], want: &[&str]) {
    let mut at = 0;
    for w in want {
        match events[at..].iter().position(|e| e == w) {
            Some(i) => at += i + 1,
            None => panic!("event {w:?} missing or out of order in {events:#?}"),
        }
    }
}

/// The output lines of `job`, in order.
fn outputs(lines: &[String], job: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| job_output(l, job))
        .map(str::to_string)
        .collect()
}

fn config_args(path: &std::path::Path) -> Vec<String> {
    vec!["-config".to_string(), path.display().to_string()]
}

fn with_command(path: &std::path::Path, command: &[&str]) -> Vec<String> {
    let mut args = config_args(path);
    args.push("--".into());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

/// Runs pilot with `entries` as its config and returns how it ended.
fn run_config(mode: Mode, name: &str, entries: &str) -> (i32, Vec<String>, String) {
    let dir = Scratch::new(name);
    let cfg = dir.write("pilot.json5", &config(entries));
    let (status, stdout, stderr) = run(pilot(mode, config_args(&cfg)));
    (code(status), lines(&stdout), stderr)
}

#[test]
fn trace_a_a_one_shot_job_runs_once_and_pilot_exits_at_once() {
    for mode in modes() {
        let started = Instant::now();
        let (status, stdout, stderr) =
            run_config(mode, "trace-a", r#"jobs: [{ name: "a", exec: "true" }]"#);
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        assert_eq!(
            events(&stdout),
            ["Startup global", "ExitSuccess a", "Stopping a", "Stopped a"],
            "{mode:?}"
        );
        // At DEBUG, as ContainerPilot's `loaded config: ...` (its test_logging looks for it).
        assert!(
            stdout
                .iter()
                .any(|l| l.contains(" loaded config: ") && l.ends_with("pilot.json5")),
            "{mode:?}: {stdout:#?}"
        );
        // ContainerPilot slept stopTimeout (5 s) here; pilot has nothing left to wait for.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{mode:?}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn trace_b_pre_stop_runs_before_the_app_is_signalled_and_post_stop_after_it_stopped() {
    for mode in modes() {
        let dir = Scratch::new("trace-b");
        let cfg = dir.write(
            "pilot.json5",
            &config(
                r#"jobs: [
    { name: "app", exec: ["sh", "-c", "trap 'echo app got TERM; exit 0' TERM; echo app ready; while :; do sleep 0.05; done"] },
    { name: "preStop", exec: ["echo", "preStop fired"], when: { source: "app", once: "stopping" } },
    { name: "postStop", exec: ["echo", "postStop fired"], when: { source: "app", once: "stopped" } },
  ]"#,
            ),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("app ready", |l| job_output(l, "app") == Some("app ready"));
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        assert_in_order(
            &events(&finished.stdout),
            &[
                "Shutdown global",
                "Stopping app",
                "ExitSuccess preStop",
                "Stopping preStop",
                "Stopped preStop",
                "Stopped app",
                "ExitSuccess postStop",
                "Stopping postStop",
                "Stopped postStop",
            ],
        );
        let order: Vec<&str> = finished
            .stdout
            .iter()
            .filter_map(|l| {
                ["preStop fired", "app got TERM", "postStop fired"]
                    .into_iter()
                    .find(|m| l.ends_with(m))
            })
            .collect();
        assert_eq!(
            order,
            ["preStop fired", "app got TERM", "postStop fired"],
            "{mode:?}"
        );
    }
}

#[test]
fn trace_c_an_interval_job_with_two_restarts_runs_exactly_three_times() {
    for mode in modes() {
        let (status, stdout, stderr) = run_config(
            mode,
            "trace-c",
            r#"jobs: [{ name: "t", exec: ["echo", "tick"], when: { interval: "300ms" }, restarts: 2 }]"#,
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        assert_eq!(outputs(&stdout, "t"), ["tick", "tick", "tick"], "{mode:?}");
        let events = events(&stdout);
        assert_eq!(
            events.iter().filter(|e| *e == "ExitSuccess t").count(),
            3,
            "{mode:?}"
        );
        assert_eq!(
            &events[events.len() - 2..],
            ["Stopping t", "Stopped t"],
            "{mode:?}"
        );
    }
}

#[test]
fn trace_d_a_when_timeout_stops_a_job_that_never_started() {
    for mode in modes() {
        let (status, stdout, stderr) = run_config(
            mode,
            "trace-d",
            r#"jobs: [
    { name: "other", exec: ["sleep", "0.5"] },
    { name: "j", exec: ["echo", "j ran"], when: { source: "other", once: "exitFailed", timeout: "100ms" } },
  ]"#,
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let events = events(&stdout);
        assert_in_order(
            &events,
            &[
                "Startup global",
                "TimerExpired j",
                "Stopping j",
                "Stopped j",
                "ExitSuccess other",
            ],
        );
        assert!(outputs(&stdout, "j").is_empty(), "{mode:?}: j ran");
    }
}

#[test]
fn a_three_job_chain_runs_in_event_order() {
    for mode in modes() {
        let (status, stdout, stderr) = run_config(
            mode,
            "chain",
            r#"jobs: [
    { name: "c", exec: ["echo", "third"], when: { source: "b", once: "exitSuccess" } },
    { name: "b", exec: ["echo", "second"], when: { source: "a", once: "exitSuccess" } },
    { name: "a", exec: ["echo", "first"] },
  ]"#,
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let said: Vec<String> = stdout
            .iter()
            .filter_map(|l| ["a", "b", "c"].iter().find_map(|j| job_output(l, j)))
            .map(str::to_string)
            .collect();
        assert_eq!(said, ["first", "second", "third"], "{mode:?}");
        assert_in_order(
            &events(&stdout),
            &["ExitSuccess a", "ExitSuccess b", "ExitSuccess c"],
        );
    }
}

#[test]
fn triggers_during_a_run_coalesce_into_one_more_run() {
    for mode in modes() {
        let dir = Scratch::new("coalesce");
        let release = dir.path("release");
        // Each run waits until the test creates `release`, so every trigger below arrives while
        // the first run is going, however slow the machine.
        let cfg = dir.write(
            "pilot.json5",
            &config(&format!(
                r#"jobs: [
    {{ name: "keeper", exec: ["sleep", "1000"] }},
    {{ name: "hook", exec: ["sh", "-c", "echo run; until [ -e {} ]; do sleep 0.02; done"], when: {{ source: "SIGHUP" }} }},
  ]"#,
                release.display()
            )),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("startup", |l| l.ends_with("event: {Startup global}"));
        running.signal(libc::SIGHUP);
        running.expect_line("first run", |l| job_output(l, "hook") == Some("run"));
        for _ in 0..4 {
            running.signal(libc::SIGHUP);
            running.expect_line("the SIGHUP event", |l| {
                l.ends_with("event: {Signal SIGHUP}")
            });
        }
        std::fs::write(&release, "").unwrap();
        running.expect_line("the coalesced run", |l| {
            job_output(l, "hook") == Some("run")
        });
        running.expect_line("its exit", |l| l.ends_with("event: {ExitSuccess hook}"));
        running.expect_line("its exit", |l| l.ends_with("event: {ExitSuccess hook}"));
        // Had the triggers queued, a third run would start right after the second.
        std::thread::sleep(Duration::from_millis(1000));
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}");
        assert_eq!(
            outputs(&finished.stdout, "hook"),
            ["run", "run"],
            "{mode:?}"
        );
    }
}

#[test]
fn a_trigger_queued_when_its_source_stops_still_runs() {
    // ContainerPilot: a job fails twice in a row (`restarts: 1`) while its `each: exitFailed`
    // hook is still running for the first failure; the second failure's run is queued, and the
    // hook runs twice even though its source has stopped meanwhile.
    for (variant, src) in [
        ("exits", r#"exec: "false""#),
        ("missing", r#"exec: "/nonexistent/program""#),
    ] {
        for mode in modes() {
            let dir = Scratch::new("queued-after-stop");
            let release = dir.path("release");
            // The hook's runs wait until the test creates `release`, which it does once the
            // source has stopped: both failures arrive during the first run, however slow the
            // machine.
            let cfg = dir.write(
                "pilot.json5",
                &config(&format!(
                    r#"jobs: [
    {{ name: "src", {src}, restarts: 1 }},
    {{ name: "hook", exec: ["sh", "-c", "echo run; until [ -e {} ]; do sleep 0.02; done"],
       when: {{ source: "src", each: "exitFailed" }} }},
  ]"#,
                    release.display()
                )),
            );
            let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
            running.expect_line("the source's end", |l| l.ends_with("event: {Stopped src}"));
            std::fs::write(&release, "").unwrap();
            // Nothing else runs: pilot exits once the hook has halted.
            let finished = running.wait();
            assert_eq!(
                outputs(&finished.stdout, "hook"),
                ["run", "run"],
                "{variant} {mode:?}"
            );
            let failures = events(&finished.stdout)
                .iter()
                .filter(|e| *e == "ExitFailed src")
                .count();
            assert_eq!(failures, 2, "{variant} {mode:?}");
            assert_in_order(
                &events(&finished.stdout),
                &[
                    "Stopped src",
                    "ExitSuccess hook",
                    "ExitSuccess hook",
                    "Stopped hook",
                ],
            );
        }
    }
}

/// User and system CPU time of a process, from /proc.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the name: state is field 3, utime 14, stime 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn a_crash_loop_backs_off_instead_of_spinning() {
    for mode in modes() {
        for exec in [r#""false""#, r#""/nonexistent/program""#] {
            let dir = Scratch::new("crash");
            let cfg = dir.write(
                "pilot.json5",
                &config(&format!(
                    r#"jobs: [{{ name: "crash", exec: {exec}, restarts: "unlimited" }}]"#
                )),
            );
            let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
            running.expect_line("the backoff in the log", |l| l.contains("restarting in"));
            std::thread::sleep(Duration::from_secs(3));
            let cpu = cpu_seconds(running.pilot_pid());
            running.signal(libc::SIGTERM);
            let finished = running.wait();
            let failures = events(&finished.stdout)
                .iter()
                .filter(|e| *e == "ExitFailed crash")
                .count();
            // Without backoff this would be thousands of runs and seconds of CPU.
            assert!(
                (3..=15).contains(&failures),
                "{mode:?} {exec}: {failures} runs"
            );
            assert!(cpu < 1.0, "{mode:?} {exec}: pilot used {cpu} s of CPU");
        }
    }
}

#[test]
fn a_trigger_during_a_restart_backoff_waits_for_the_restart() {
    for mode in modes() {
        let dir = Scratch::new("backoff-trigger");
        let lock = dir.path("lock");
        // Every run is a quick exit, so the restarts back off; a run that finds the lock held
        // says so, which only happens if two runs overlap.
        let cfg = dir.write(
            "pilot.json5",
            &config(&format!(
                r#"jobs: [
    {{ name: "keeper", exec: ["sleep", "1000"] }},
    {{ name: "hook", restarts: 3, when: {{ source: "SIGHUP" }},
       exec: ["sh", "-c", "mkdir {lock} || echo overlap; echo run; sleep 0.3; rmdir {lock}"] }},
  ]"#,
                lock = lock.display()
            )),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("startup", |l| l.ends_with("event: {Startup global}"));
        running.signal(libc::SIGHUP);
        // The third quick exit waits 200 ms, less than a run: a trigger arrives during the backoff.
        running.expect_line("a long backoff", |l| l.contains("restarting in 200ms"));
        running.signal(libc::SIGHUP);
        running.expect_line("the SIGHUP event", |l| {
            l.ends_with("event: {Signal SIGHUP}")
        });
        // The first run, three restarts, then one run for the trigger; then nothing.
        for _ in 0..5 {
            running.expect_line("a run's exit", |l| l.ends_with("event: {ExitSuccess hook}"));
        }
        std::thread::sleep(Duration::from_millis(500));
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        let runs = outputs(&finished.stdout, "hook");
        assert!(!runs.iter().any(|l| l == "overlap"), "{mode:?}: {runs:?}");
        let count = runs.iter().filter(|l| *l == "run").count();
        assert_eq!(count, 5, "{mode:?}: four runs and the trigger's: {runs:?}");
        let exits = events(&finished.stdout)
            .iter()
            .filter(|e| *e == "ExitSuccess hook")
            .count();
        assert_eq!(exits, 5, "{mode:?}: every run's exit is seen");
    }
}

#[test]
fn shutting_down_jobs_that_exit_at_once_takes_no_stop_timeout() {
    for mode in modes() {
        let dir = Scratch::new("fast-stop");
        let cfg = dir.write(
            "pilot.json5",
            &config(
                r#"jobs: [
    { name: "one", exec: ["sleep", "1000"] },
    { name: "two", exec: ["sleep", "1000"] },
    { name: "three", exec: ["sleep", "1000"] },
  ]"#,
            ),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("startup", |l| l.ends_with("event: {Startup global}"));
        std::thread::sleep(Duration::from_millis(200));
        let signalled = Instant::now();
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        // The default stopTimeout is 5 s; pilot only waits for processes that are still there.
        assert!(
            signalled.elapsed() < Duration::from_secs(3),
            "{mode:?}: took {:?}",
            signalled.elapsed()
        );
    }
}

#[test]
fn a_job_that_ignores_sigterm_is_killed_at_the_deadline() {
    for mode in modes() {
        let marker = format!("sleep 1003.{}{}", std::process::id(), mode as u8);
        let dir = Scratch::new("stubborn");
        let cfg = dir.write(
            "pilot.json5",
            &config(&format!(
                r#"stopTimeout: 1,
  jobs: [{{ name: "stubborn", exec: ["sh", "-c", "trap '' TERM; echo ready; {marker}"] }}]"#
            )),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("ready", |l| job_output(l, "stubborn") == Some("ready"));
        let signalled = Instant::now();
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        assert!(
            signalled.elapsed() >= Duration::from_secs(1),
            "{mode:?}: killed before the deadline"
        );
        assert!(
            !process_running(&marker),
            "{mode:?}: `{marker}` outlived pilot"
        );
    }
}

#[test]
fn the_main_process_status_is_pilots_status() {
    for mode in modes() {
        let dir = Scratch::new("main-status");
        let cfg = dir.write(
            "pilot.json5",
            &config(r#"jobs: [{ name: "side", exec: ["sleep", "1000"] }]"#),
        );
        for (command, want) in [
            (vec!["sh", "-c", "exit 3"], 3),
            (vec!["sh", "-c", "kill -USR2 $$"], 140),
            (vec!["/nonexistent/program"], 127),
            (vec!["true"], 0),
        ] {
            let started = Instant::now();
            let (status, _, stderr) = run(pilot(mode, with_command(&cfg, &command)));
            assert_eq!(code(status), want, "{mode:?} {command:?}: {stderr}");
            // The side job was stopped at once, not at the stop deadline.
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{mode:?} {command:?}"
            );
        }

        let marked = dir.write(
            "marked.json5",
            &config(
                r#"jobs: [
    { name: "side", exec: ["sleep", "1000"] },
    { name: "app", exec: ["sh", "-c", "exit 4"], main: true },
  ]"#,
            ),
        );
        let (status, _, stderr) = run(pilot(mode, config_args(&marked)));
        assert_eq!(code(status), 4, "{mode:?}: {stderr}");
    }
}

#[test]
fn sigterm_reaches_the_main_process_and_its_status_is_kept() {
    for mode in modes() {
        let dir = Scratch::new("main-term");
        let cfg = dir.write("pilot.json5", &config("jobs: []"));
        let mut running = Running::start(
            pilot(
                mode,
                with_command(&cfg, &["sh", "-c", "echo ready; exec sleep 1000"]),
            ),
            mode,
        );
        running.expect_line("ready", |l| l == "ready");
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 128 + libc::SIGTERM, "{mode:?}");
    }
}

#[test]
fn other_signals_go_to_the_main_process() {
    for mode in modes() {
        let dir = Scratch::new("main-signals");
        let cfg = dir.write("pilot.json5", &config("jobs: []"));
        let script = fixture("signals.py").display().to_string();
        let mut running = Running::start(pilot(mode, with_command(&cfg, &[&script, "all"])), mode);
        running.expect_line("ready", |l| l == "ready");
        for (signal, name) in [
            (libc::SIGWINCH, "SIGWINCH"),
            (libc::SIGQUIT, "SIGQUIT"),
            (libc::SIGALRM, "SIGALRM"),
        ] {
            running.signal(signal);
            let want = format!("got {name}");
            running.expect_line(&want, |l| l == want);
        }
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert!(
            finished.stdout.iter().any(|l| l == "got SIGTERM"),
            "{mode:?}"
        );
        assert_eq!(
            code(finished.status),
            0,
            "{mode:?}: the app handled SIGTERM and exited 0"
        );
    }
}

#[test]
fn sighup_and_sigusr2_become_events_and_stop_nothing() {
    for mode in modes() {
        let dir = Scratch::new("signal-events");
        let cfg = dir.write(
            "pilot.json5",
            &config(
                r#"jobs: [
    { name: "keeper", exec: ["sleep", "1000"] },
    { name: "onhup", exec: ["echo", "on-sighup fired"], when: { source: "SIGHUP" } },
    { name: "onusr2", exec: ["echo", "on-sigusr2 fired"], when: { source: "SIGUSR2" } },
  ]"#,
            ),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("startup", |l| l.ends_with("event: {Startup global}"));
        running.signal(libc::SIGHUP);
        running.expect_line("the SIGHUP job", |l| {
            job_output(l, "onhup") == Some("on-sighup fired")
        });
        running.signal(libc::SIGUSR2);
        running.expect_line("the SIGUSR2 job", |l| {
            job_output(l, "onusr2") == Some("on-sigusr2 fired")
        });
        running.signal(libc::SIGHUP);
        running.expect_line("the SIGHUP job again", |l| {
            job_output(l, "onhup") == Some("on-sighup fired")
        });
        assert!(
            running.child.try_wait().unwrap().is_none(),
            "{mode:?}: pilot stopped on a signal event"
        );
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}");
        let events = events(&finished.stdout);
        assert_in_order(
            &events,
            &[
                "Signal SIGHUP",
                "Signal SIGUSR2",
                "Signal SIGHUP",
                "Shutdown global",
            ],
        );
    }
}

#[test]
fn without_a_main_process_pilot_exits_0_even_if_a_job_failed() {
    // ContainerPilot exited 0 when every job had finished, whatever their last runs did.
    for mode in modes() {
        let (status, stdout, stderr) = run_config(
            mode,
            "failed",
            r#"jobs: [{ name: "ok", exec: "true" }, { name: "bad", exec: "false" }]"#,
        );
        assert_in_order(&events(&stdout), &["ExitFailed bad", "Stopped bad"]);
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let (status, stdout, stderr) = run_config(
            mode,
            "missing",
            r#"jobs: [{ name: "gone", exec: "/nonexistent/program" }]"#,
        );
        assert_in_order(&events(&stdout), &["ExitFailed gone", "Stopped gone"]);
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let (status, _, stderr) = run_config(
            mode,
            "all-ok",
            r#"jobs: [{ name: "ok", exec: "true" }, { name: "fine", exec: ["sh", "-c", "exit 0"] }]"#,
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
    }
}

#[test]
fn pilot_exits_when_nothing_can_trigger_again() {
    for mode in modes() {
        let (status, stdout, stderr) = run_config(
            mode,
            "never",
            r#"jobs: [
    { name: "a", exec: "true" },
    { name: "b", exec: ["echo", "b ran"], when: { source: "a", once: "exitFailed" } },
  ]"#,
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        assert!(outputs(&stdout, "b").is_empty(), "{mode:?}");
        assert!(
            stdout
                .iter()
                .any(|l| l.contains("b will never start: a has stopped")),
            "{stdout:#?}"
        );
        assert_in_order(&events(&stdout), &["Stopped a", "Stopping b", "Stopped b"]);
    }
}

#[test]
fn no_process_outlives_pilot() {
    for mode in modes() {
        let marker = format!("sleep 1004.{}{}", std::process::id(), mode as u8);
        let daemon = format!("sleep 1005.{}{}", std::process::id(), mode as u8);
        let dir = Scratch::new("leftovers");
        let cfg = dir.write(
            "pilot.json5",
            &config(&format!(
                r#"jobs: [
    {{ name: "bg", exec: ["sh", "-c", "{marker} & echo started"] }},
    {{ name: "daemon", exec: ["sh", "-c", "setsid {daemon} & echo started"] }},
    {{ name: "keeper", exec: ["sleep", "1000"] }},
  ]"#
            )),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("bg", |l| job_output(l, "bg") == Some("started"));
        running.expect_line("daemon", |l| job_output(l, "daemon") == Some("started"));
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}");
        assert!(
            !process_running(&marker),
            "{mode:?}: `{marker}` outlived pilot"
        );
        assert!(
            !process_running(&daemon),
            "{mode:?}: `{daemon}` outlived pilot"
        );
    }
}

#[test]
fn child_output_arrives_complete_and_in_order() {
    for mode in modes() {
        let dir = Scratch::new("output-script");
        let script = dir.write(
            "talk.py",
            "import sys\nfor i in range(1000):\n    print(f'line {i}')\nprint('x' * 50000)\nsys.stdout.write('last without newline')\n",
        );
        let (status, stdout, stderr) = run_config(
            mode,
            "output",
            &format!(
                r#"jobs: [{{ name: "talk", exec: ["python3", "{}"] }}]"#,
                script.display()
            ),
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let said = outputs(&stdout, "talk");
        let mut want: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        want.push("x".repeat(50000));
        want.push("last without newline".into());
        assert_eq!(said.len(), want.len(), "{mode:?}");
        assert!(said == want, "{mode:?}: output lines differ");
    }
}

#[test]
fn children_get_the_pilot_pid_and_the_pids_of_running_jobs() {
    for mode in modes() {
        let (status, stdout, stderr) = run_config(
            mode,
            "environment",
            r#"jobs: [
    { name: "keeper", exec: ["sleep", "1000"] },
    { name: "starter", exec: ["sleep", "0.2"] },
    { name: "printer", exec: "env", when: { source: "starter", once: "exitSuccess" } },
    { name: "ender", exec: ["sh", "-c", "kill -TERM $CONTAINERPILOT_PID"], when: { source: "printer", once: "exitSuccess" } },
  ]"#,
        );
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let env = outputs(&stdout, "printer");
        let get = |key: &str| {
            env.iter()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        let pilot_pid = get("CONTAINERPILOT_PID").expect("CONTAINERPILOT_PID");
        assert_eq!(get("PILOT_PID"), Some(pilot_pid.clone()));
        if mode == Mode::Pid1 {
            assert_eq!(pilot_pid, "1", "CONTAINERPILOT_PID really is 1");
        }
        assert!(get("CONTAINERPILOT_KEEPER_PID").is_some(), "{env:#?}");
        assert!(get("PILOT_KEEPER_PID").is_some(), "{env:#?}");
    }
}

#[test]
fn a_jobs_stop_timeout_bounds_the_wait_for_its_pre_stop_hook() {
    for mode in modes() {
        let dir = Scratch::new("stop-timeout");
        let cfg = dir.write(
            "pilot.json5",
            &config(
                r#"stopTimeout: 60,
  jobs: [
    { name: "app", stopTimeout: "500ms", exec: ["sh", "-c", "trap 'echo app got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"] },
    { name: "hang", exec: ["sh", "-c", "echo hanging; exec sleep 1000"], when: { source: "app", once: "stopping" } },
  ]"#,
            ),
        );
        let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
        running.expect_line("ready", |l| job_output(l, "app") == Some("ready"));
        running.signal(libc::SIGTERM);
        running.expect_line("the pre-stop hook", |l| {
            job_output(l, "hang") == Some("hanging")
        });
        // Without a working job stopTimeout the app would only be signalled at the 60 s deadline.
        running.expect_line("the app's SIGTERM", |l| {
            job_output(l, "app") == Some("app got TERM")
        });
        running.signal(libc::SIGTERM); // a second SIGTERM ends the rest at once
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}");
    }
}

#[test]
fn job_output_is_wrapped_in_each_log_format_unless_raw() {
    let mode = Mode::Plain;
    let jobs = r#"jobs: [
    { name: "wrapped", exec: ["echo", "hello"] },
    { name: "bare", exec: ["echo", "raw hello"], logging: { raw: true } },
  ]"#;
    for format in ["default", "text", "json"] {
        let dir = Scratch::new(&format!("format-{format}"));
        let cfg = dir.write(
            "pilot.json5",
            &format!("{{ consul: \"127.0.0.1:1\", logging: {{ format: \"{format}\" }}, {jobs} }}"),
        );
        let (status, stdout, stderr) = run(pilot(mode, config_args(&cfg)));
        assert_eq!(code(status), 0, "{format}: {stderr}");
        let stdout = lines(&stdout);
        assert!(
            stdout.iter().any(|l| l == "raw hello"),
            "{format}: raw output is not wrapped: {stdout:#?}"
        );
        let wrapped = stdout
            .iter()
            .find(|l| l.contains("hello") && *l != "raw hello")
            .unwrap();
        match format {
            "default" => assert!(job_output(wrapped, "wrapped") == Some("hello"), "{wrapped}"),
            "text" => {
                assert!(wrapped.starts_with("time=\""), "{wrapped}");
                assert!(
                    wrapped.contains(" level=info msg=hello job=wrapped pid="),
                    "{wrapped}"
                );
            }
            _ => {
                let entry: serde_json::Value =
                    serde_json::from_str(wrapped).expect("one JSON object per line");
                assert_eq!(entry["msg"], "hello");
                assert_eq!(entry["job"], "wrapped");
                assert_eq!(entry["level"], "info");
                assert!(
                    entry["pid"].is_i64() && entry["time"].is_string(),
                    "{wrapped}"
                );
            }
        }
    }
}

#[test]
fn pilots_own_lines_have_containerpilots_shape() {
    // ContainerPilot's own messages had no fields: in the default format
    // `<time> talker exited with error: exit status 1`, with the job's name once, in the message;
    // only child output carries `job` (and `pid`), which log pipelines use to pick it out.
    let mode = Mode::Plain;
    let message = "talker exited with error: exit status 1";
    for format in ["default", "text", "json"] {
        let dir = Scratch::new(&format!("own-{format}"));
        let cfg = dir.write(
            "pilot.json5",
            &format!(
                "{{ consul: \"127.0.0.1:1\", logging: {{ format: \"{format}\" }},
  jobs: [{{ name: \"talker\", exec: \"false\" }}] }}"
            ),
        );
        let (status, stdout, stderr) = run(pilot(mode, config_args(&cfg)));
        assert_eq!(code(status), 0, "{format}: {stderr}");
        let stdout = lines(&stdout);
        let line = stdout
            .iter()
            .find(|l| l.contains("exited with error"))
            .unwrap_or_else(|| panic!("{format}: no exit line in {stdout:#?}"));
        match format {
            "default" => {
                let (time, rest) = line.split_once(' ').unwrap();
                assert!(time.ends_with('Z'), "{line}");
                assert_eq!(rest, message, "{line}");
            }
            "text" => {
                assert!(line.starts_with("time=\""), "{line}");
                assert!(
                    line.ends_with(&format!(" level=error msg=\"{message}\" ")),
                    "no field after the message: {line}"
                );
            }
            _ => {
                let entry: serde_json::Value =
                    serde_json::from_str(line).expect("one JSON object per line");
                let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
                assert_eq!(keys, ["level", "msg", "time"], "{line}");
                assert_eq!(entry["msg"], message);
                assert_eq!(entry["level"], "error");
            }
        }
    }
}

#[test]
fn a_log_file_is_reopened_on_sigusr1() {
    for mode in modes() {
        let dir = Scratch::new("reopen");
        let log = dir.path("pilot.log");
        let cfg = dir.write(
            "pilot.json5",
            &format!(
                r#"{{ consul: "127.0.0.1:1", logging: {{ output: "{}" }},
  jobs: [{{ name: "hello", exec: ["echo", "hello world!"], when: {{ interval: "100ms" }} }}] }}"#,
                log.display()
            ),
        );
        let running = Running::start(pilot(mode, config_args(&cfg)), mode);
        let contains_hello = |path: &std::path::Path| {
            std::fs::read_to_string(path).is_ok_and(|t| t.contains("hello world!"))
        };
        wait_for(
            || contains_hello(&log).then_some(()),
            "output in the log file",
        );
        let moved = dir.path("pilot.log.1");
        std::fs::rename(&log, &moved).unwrap();
        // Until SIGUSR1, pilot keeps writing to the file it has open, now under the new name.
        let before = std::fs::read_to_string(&moved).unwrap().len();
        wait_for(
            || (std::fs::read_to_string(&moved).unwrap().len() > before).then_some(()),
            "the moved file growing",
        );
        running.signal(libc::SIGUSR1);
        wait_for(
            || contains_hello(&log).then_some(()),
            "output in a new file after SIGUSR1",
        );
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
    }
}

#[test]
fn the_log_says_once_where_pilot_serves() {
    let mode = Mode::Plain;
    let dir = Scratch::new("serving-once");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{
  consul: "127.0.0.1:1",
  control: {{ socket: "{}" }},
  telemetry: {{ port: {port}, interfaces: "static:127.0.0.1" }},
  jobs: [{{ name: "app", exec: ["sleep", "30"] }}]
}}"#,
            dir.path("control.sock").display()
        ),
    );
    let mut running = Running::start(pilot(mode, config_args(&cfg)), mode);
    running.expect_line("saying where telemetry is served", |l| {
        l.contains("telemetry: serving at")
    });
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    for what in ["control: serving at", "telemetry: serving at"] {
        let said = finished.stdout.iter().filter(|l| l.contains(what)).count();
        assert_eq!(
            said, 1,
            "{what:?} said {said} times: {:#?}",
            finished.stdout
        );
    }
}
