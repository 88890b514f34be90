//! A signal storm and a zombie flood while jobs run, with the real binary as PID 1 of a PID
//! namespace (when root) and as a plain process, a child subreaper.
//!
//! Thousands of SIGHUP and SIGUSR2 reach pilot while a job on each signal runs, a job restarts
//! itself, an interval job ticks, a main application runs, and a job floods pilot with
//! hundreds of orphans that exit together with it. Standard signals coalesce in the kernel, so
//! pilot may receive fewer than were sent; what must hold is that every signal it received
//! became an event that reached its job (the last one of the storm is followed by a run), that
//! the SIGHUP job never ran twice at once, that every run's exit status reached its job (the
//! events and log lines match the statuses the runs recorded), that no zombie is left, and that
//! afterwards every job still works and SIGTERM ends pilot with the application's status.

mod common;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Signals of each kind sent in the storm, in this many waves.
const STORM: usize = 6000;
const WAVES: usize = 3;
/// Runs of the zombie flood job (it restarts `FLOODS - 1` times), and orphans per run.
const FLOODS: usize = 4;
const ORPHANS: usize = 500;

/// The position of the last line that satisfies `want`.
fn last(lines: &[String], want: impl Fn(&str) -> bool) -> Option<usize> {
    lines.iter().rposition(|l| want(l))
}

fn count(lines: &[String], want: impl Fn(&str) -> bool) -> usize {
    lines.iter().filter(|l| want(l)).count()
}

/// The `ExitSuccess`/`ExitFailed` events of `job`, in order, as `0` for success and `1` for
/// failure.
fn exits(events: &[String], job: &str) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| {
            if *e == format!("ExitSuccess {job}") {
                Some(0)
            } else if *e == format!("ExitFailed {job}") {
                Some(1)
            } else {
                None
            }
        })
        .collect()
}

/// The runs the SIGHUP job recorded: `start N` then `end N CODE` for each, never interleaved.
/// Returns each run's exit code; panics if two runs overlapped or a run did not end.
fn hup_runs(path: &Path) -> Vec<i32> {
    let lines = file_lines(path);
    assert!(
        lines.len().is_multiple_of(2),
        "a run has not ended: {:?}",
        lines.last()
    );
    lines
        .chunks(2)
        .enumerate()
        .map(|(n, pair)| {
            assert_eq!(pair[0], format!("start {n}"), "runs overlapped: {lines:?}");
            let code = pair[1]
                .strip_prefix(&format!("end {n} "))
                .unwrap_or_else(|| panic!("runs overlapped: {lines:?}"));
            code.parse().unwrap()
        })
        .collect()
}

#[test]
fn a_signal_storm_and_a_zombie_flood_lose_nothing_as_pid_1() {
    if skip_unless_root("PID 1 of a namespace") {
        return;
    }
    storm(Mode::Pid1);
}

#[test]
fn a_signal_storm_and_a_zombie_flood_lose_nothing_as_a_subreaper() {
    storm(Mode::Plain);
}

fn storm(mode: Mode) {
    let dir = Scratch::new(&format!("storm-{mode:?}"));
    let socket = dir.path("pilot.sock");
    let hup_log = dir.write("hup.log", "");
    let usr2_log = dir.path("usr2.log");
    let restarts_log = dir.path("restarts.log");
    let ticks = dir.path("ticks");
    let floods_log = dir.path("floods.log");
    // Each SIGHUP run numbers itself, takes a moment (so that signals arrive during runs) and
    // exits with its number modulo 3: success, then two different failures.
    let hup_script = format!(
        "n=$(grep -c start {log}); echo \"start $n\" >> {log}; sleep 0.05; c=$((n % 3)); echo \"end $n $c\" >> {log}; exit $c",
        log = hup_log.display()
    );
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{
  consul: "127.0.0.1:1",
  logging: {{ level: "DEBUG" }},
  control: {{ socket: "{socket}" }},
  jobs: [
    {{ name: "app", exec: ["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done"], main: true }},
    {{ name: "onhup", exec: ["sh", "-c", {hup_script:?}], when: {{ source: "SIGHUP" }} }},
    {{ name: "onusr2", exec: ["sh", "-c", "echo run >> {usr2}"], when: {{ source: "SIGUSR2" }} }},
    {{ name: "restarter", exec: ["sh", "-c", "echo run >> {restarts}; sleep 1.1; exit 3"], restarts: "unlimited" }},
    {{ name: "ticker", exec: ["sh", "-c", "echo tick >> {ticks}"], when: {{ interval: "200ms" }} }},
    {{ name: "zombies", exec: ["sh", "-c", "echo run >> {floods}; sleep 0.5; exec python3 {orphans} flood {ORPHANS} 7"],
       restarts: {restarts_left} }},
  ],
}}"#,
            socket = socket.display(),
            usr2 = usr2_log.display(),
            restarts = restarts_log.display(),
            ticks = ticks.display(),
            floods = floods_log.display(),
            orphans = fixture("orphans.py").display(),
            restarts_left = FLOODS - 1,
        ),
    );
    let mut running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    let pid = running.pilot_pid();
    let app = wait_for(|| job_pid(&try_status(&socket)?, "app"), "the app running");
    wait_for(
        || (!file_lines(&floods_log).is_empty()).then_some(()),
        "the first zombie flood",
    );

    // The storm, in waves, while the orphans flood in: after each wave, once the signal jobs
    // have settled, the last signal of each kind must have been followed by a run of its job
    // (a lost event would have left the job idle).
    let mut storm = Duration::ZERO;
    for wave in 1..=WAVES {
        let started = Instant::now();
        for i in 0..STORM / WAVES {
            // SAFETY: kill takes plain integers.
            unsafe {
                assert_eq!(libc::kill(pid, libc::SIGHUP), 0);
                assert_eq!(libc::kill(pid, libc::SIGUSR2), 0);
            }
            if i % 5 == 4 {
                sleep(Duration::from_millis(3));
            }
        }
        storm += started.elapsed();
        assert!(
            running.is_running(),
            "pilot died in wave {wave} of the storm"
        );
        let (_, lines) = settle(&mut running, &hup_log);
        for (signal, job) in [("SIGHUP", "onhup"), ("SIGUSR2", "onusr2")] {
            let signalled = last(&lines, |l| {
                l.ends_with(&format!("event: {{Signal {signal}}}"))
            });
            let started = last(&lines, |l| l.contains(&format!("{job} started with pid")));
            assert!(
                started > signalled,
                "the last {signal} of wave {wave} (line {signalled:?}) started no run of {job} \
                 (last start at line {started:?})"
            );
        }
    }

    // Let the flood job finish its runs, however long a flood takes on this machine: each
    // run's exit is progress, and only a flood that makes none for `PATIENCE` is hung.
    wait_progressing(
        || {
            let lines = running.drain();
            if lines
                .iter()
                .any(|l| l.ends_with("event: {Stopped zombies}"))
            {
                return Ok(());
            }
            Err(count(lines, |l| l.ends_with("event: {ExitFailed zombies}")))
        },
        "the flood job's last run",
    );
    let (runs, lines) = settle(&mut running, &hup_log);
    let events = events(&lines);

    let hups = count(&events, |e| e == "Signal SIGHUP");
    let usr2s = count(&events, |e| e == "Signal SIGUSR2");
    eprintln!(
        "{STORM} SIGHUP and {STORM} SIGUSR2 sent in {storm:?}: {hups} and {usr2s} received; \
         the SIGHUP job ran {} times, the SIGUSR2 job {} times",
        runs.len(),
        file_lines(&usr2_log).len()
    );
    assert!((1..=STORM).contains(&hups), "{hups} SIGHUP events");
    assert!((1..=STORM).contains(&usr2s), "{usr2s} SIGUSR2 events");
    assert!(
        (1..=hups).contains(&runs.len()),
        "{} runs for {hups} SIGHUP events",
        runs.len()
    );

    // Every exit status reached its job: the SIGHUP job's events and log lines follow the codes
    // its runs recorded.
    let recorded: Vec<u8> = runs.iter().map(|&c| u8::from(c != 0)).collect();
    assert_eq!(
        exits(&events, "onhup"),
        recorded,
        "the SIGHUP job's exit events"
    );
    let logged_failures: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split_once("onhup exited with error: "))
        .map(|(_, status)| status.to_string())
        .collect();
    let recorded_failures: Vec<String> = runs
        .iter()
        .filter(|&&c| c != 0)
        .map(|c| format!("exit status {c}"))
        .collect();
    assert_eq!(logged_failures, recorded_failures);
    // The flood job: one exit status 7 per run, however many orphans exited with it.
    assert_eq!(
        file_lines(&floods_log).len(),
        FLOODS,
        "the flood job's runs"
    );
    assert_eq!(exits(&events, "zombies"), vec![1; FLOODS]);
    assert_eq!(
        count(&lines, |l| l
            .ends_with("zombies exited with error: exit status 7")),
        FLOODS
    );
    // The restarting job: every exit it made is an event with its status.
    let restarter_exits = exits(&events, "restarter");
    assert!(restarter_exits.iter().all(|&e| e == 1));
    let restarter_runs = file_lines(&restarts_log).len();
    assert!(
        restarter_exits.len() + 2 >= restarter_runs && restarter_exits.len() <= restarter_runs,
        "{} exits for {restarter_runs} runs",
        restarter_exits.len()
    );
    assert_eq!(
        count(&lines, |l| l.contains("restarter exited with error: ")),
        count(&lines, |l| l
            .ends_with("restarter exited with error: exit status 3")),
    );
    // Every orphan was reaped.
    wait_for(
        || (zombies_of(pid) == 0).then_some(()),
        "no zombie left under pilot",
    );
    eprintln!("{} orphans reaped", FLOODS * ORPHANS);

    // Nothing is stuck: the app runs on, untouched, and each job still works.
    assert!(running.is_running(), "pilot exited");
    let report = status(&socket);
    assert_eq!(job_pid(&report, "app"), Some(app), "the app was restarted");
    let ticked = file_lines(&ticks).len();
    let restarted = file_lines(&restarts_log).len();
    for n in 1..=3 {
        let before = file_lines(&hup_log).len();
        running.signal(libc::SIGHUP);
        wait_for(
            || (hup_runs_if_settled(&hup_log)?.len() * 2 > before).then_some(()),
            &format!("SIGHUP number {n} after the storm to run the job"),
        );
        let before = file_lines(&usr2_log).len();
        running.signal(libc::SIGUSR2);
        wait_for(
            || (file_lines(&usr2_log).len() > before).then_some(()),
            &format!("SIGUSR2 number {n} after the storm to run the job"),
        );
    }
    wait_for(
        || (file_lines(&ticks).len() >= ticked + 2).then_some(()),
        "the interval job to tick after the storm",
    );
    wait_for(
        || (file_lines(&restarts_log).len() >= restarted + 2).then_some(()),
        "the restarting job to restart after the storm",
    );
    hup_runs(&hup_log);

    running.signal(libc::SIGTERM);
    let finished = running.wait();
    let all = finished.stdout.join("\n") + "\n" + &finished.stderr;
    assert!(!all.contains("panicked"), "pilot panicked:\n{all}");
    assert_eq!(
        code(finished.status),
        42,
        "pilot exits with the app's status: {}",
        finished.stderr
    );
    assert_eq!(
        count(&finished.stdout, |l| l.contains("app started with pid")),
        1,
        "the app ran once"
    );
}

/// Waits until the signal jobs have settled: no run in progress, the SIGHUP job's file and
/// pilot's log agree on its runs, and nothing changes for a moment. Returns the SIGHUP job's
/// runs and pilot's log so far.
fn settle(running: &mut Running, hup_log: &Path) -> (Vec<i32>, Vec<String>) {
    let mut seen: Option<usize> = None;
    // Progress is the signal jobs' runs going on, however slowly.
    let progress = |running: &mut Running| {
        let lines = running.drain();
        let started = |job: &str| {
            let needle = format!("{job} started with pid");
            count(lines, |l| l.contains(&needle))
        };
        (
            file_lines(hup_log).len(),
            started("onhup"),
            started("onusr2"),
        )
    };
    wait_progressing(
        || {
            let Some(runs) = hup_runs_if_settled(hup_log) else {
                return Err(progress(running));
            };
            let lines = running.drain();
            let logged = count(lines, |l| l.contains("onhup started with pid"));
            let exited = exits(&events(lines), "onhup").len();
            let usr2_idle = count(lines, |l| l.contains("onusr2 started with pid"))
                == exits(&events(lines), "onusr2").len();
            let consistent = logged == runs.len() && exited == runs.len() && usr2_idle;
            if consistent && seen == Some(runs.len()) {
                return Ok((runs, lines.to_vec()));
            }
            seen = consistent.then_some(runs.len());
            sleep(Duration::from_millis(300));
            Err(progress(running))
        },
        "the SIGHUP job to settle after the storm",
    )
}

/// The SIGHUP job's runs when none is in progress (`None` while one is).
fn hup_runs_if_settled(path: &Path) -> Option<Vec<i32>> {
    file_lines(path)
        .len()
        .is_multiple_of(2)
        .then(|| hup_runs(path))
}
