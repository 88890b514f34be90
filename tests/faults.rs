//! Consul faults with the real binary, against the Consul double: down at start, down for a
//! while, restarted with its state lost, slow, answering 500s, moving its blocking index
//! backwards, resetting connections, waking blocking queries for nothing.
//!
//! Every scenario runs the same config: a service job `app` registered in Consul with a TTL
//! check, an interval job `ticker` that appends a line per run, a watch on the service `db`
//! (whose instances the test changes through the double), and a hook `onchange` on
//! `watch.db` `changed` that appends the instances it sees to a file (`fixtures/watch_hook.py`).
//! Around each fault the test checks that nothing on a job's path waited on Consul (the ticker
//! ticked, the app's checks kept publishing, the app was never restarted), that pilot's retries
//! stayed bounded, and, once the fault is cleared, that the registration and the watch converge
//! and that the hook ran exactly once per change, never twice for the same data.
//!
//! Changes are made one at a time: the test waits for the watch (and the hook) to show one
//! before making the next, unless the fault hides it, so the sequence of instance sets the
//! watch must go through is exact.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use consul_double::{BackgroundDouble, CheckStatus, Config as DoubleConfig, ErrorFault};

/// How long each fault lasts.
const FAULT: Duration = Duration::from_secs(3);

/// The most Consul requests (or failed attempts) pilot may make during one `FAULT`: its watch
/// and its registration each retry a few times a second at most; a retry loop without backoff
/// or a spinning watch makes hundreds.
const MAX_REQUESTS_PER_FAULT: usize = 60;

/// A running pilot with its Consul double and what the test expects of it.
struct Pilot {
    double: BackgroundDouble,
    dir: Scratch,
    socket: PathBuf,
    ticks: PathBuf,
    hook_log: PathBuf,
    running: Running,
    /// `app-<hostname>`.
    service_id: String,
    /// The `db` instances the double has (their numbers: `db-N`).
    instances: BTreeSet<u32>,
    /// The instance sets the watch must go through, in order; one hook line each.
    expected: Vec<String>,
}

/// What was true when a fault began.
struct Mark {
    at: Instant,
    app_pid: i64,
    ticks: usize,
    health_events: usize,
    lines: usize,
    last_seq: u64,
}

/// The registration of the instance `db-<n>`.
fn instance_json(n: u32) -> String {
    format!(r#"{{"ID":"db-{n}","Name":"db","Address":"10.0.0.{n}","Port":5432}}"#)
}

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

impl Pilot {
    /// Starts the double with `db-1`, lets `before` do something to it (take it down), then
    /// starts pilot.
    fn start(name: &str, before: impl FnOnce(&BackgroundDouble)) -> Pilot {
        let double = BackgroundDouble::start(DoubleConfig {
            timing: DoubleConfig::fast_timing(),
            ..DoubleConfig::default()
        })
        .expect("start the Consul double");
        let dir = Scratch::new(&format!("fault-{name}"));
        let socket = dir.path("pilot.sock");
        let ticks = dir.path("ticks");
        let hook_log = dir.path("hook.log");
        let cfg = dir.write(
            "pilot.json5",
            &format!(
                r#"{{
  consul: "{consul}",
  logging: {{ level: "DEBUG" }},
  control: {{ socket: "{socket}" }},
  jobs: [
    {{ name: "app", exec: ["sleep", "1000"], port: 8080, interfaces: "static:10.1.2.3",
       health: {{ exec: "true", interval: 1, ttl: 5 }} }},
    {{ name: "ticker", exec: ["sh", "-c", "echo tick >> {ticks}"], when: {{ interval: "250ms" }} }},
    {{ name: "onchange", exec: ["python3", "{hook}", "{socket}", "db", "{hook_log}"],
       when: {{ source: "watch.db", each: "changed" }} }},
  ],
  watches: [{{ name: "db", interval: 2 }}],
}}"#,
                consul = double.http_addr().expect("a TCP listener"),
                socket = socket.display(),
                ticks = ticks.display(),
                hook = fixture("watch_hook.py").display(),
                hook_log = hook_log.display(),
            ),
        );
        double
            .register_service_json(&instance_json(1), false)
            .expect("register db-1");
        before(&double);
        let running = Running::start(
            common::pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
            Mode::Plain,
        );
        Pilot {
            double,
            dir,
            socket,
            ticks,
            hook_log,
            running,
            service_id: format!("app-{}", hostname()),
            instances: BTreeSet::from([1]),
            expected: Vec::new(),
        }
    }

    /// Registers the instance `db-<n>` in the double.
    fn add(&mut self, n: u32) {
        self.double
            .register_service_json(&instance_json(n), false)
            .expect("register a db instance");
        self.instances.insert(n);
    }

    /// Removes the instance `db-<n>` from the double.
    fn remove(&mut self, n: u32) {
        assert!(self.double.deregister_service(&format!("db-{n}")));
        self.instances.remove(&n);
    }

    /// The double's instances as the hook writes them.
    fn state(&self) -> String {
        let ids: Vec<String> = self.instances.iter().map(|n| format!("db-{n}")).collect();
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.join(",")
        }
    }

    /// The `db` instances `GET /v3/watches` shows, as the hook writes them; `None` before the
    /// watch's first answer.
    fn watched(&self) -> Option<String> {
        let (code, body) = try_control(&self.socket, "GET", "/v3/watches", None).ok()?;
        if code != 200 {
            return None;
        }
        let watches: serde_json::Value = serde_json::from_str(&body).ok()?;
        let db = watches.as_array()?.iter().find(|w| w["Service"] == "db")?;
        let mut ids: Vec<&str> = db["Instances"]
            .as_array()?
            .iter()
            .filter_map(|i| i["ID"].as_str())
            .collect();
        ids.sort_unstable();
        Some(if ids.is_empty() {
            "-".to_string()
        } else {
            ids.join(",")
        })
    }

    /// Waits until the watch shows the double's instances, the hook has run for every expected
    /// change (and no more), and the app's check passes in the double.
    fn settle(&mut self) {
        let want = self.state();
        if self.expected.last() != Some(&want) {
            self.expected.push(want.clone());
        }
        wait_for(
            || (self.watched().as_deref() == Some(want.as_str())).then_some(()),
            &format!("GET /v3/watches to show {want}"),
        );
        let expected = self.expected.len();
        let hooks = wait_for(
            || {
                let lines = file_lines(&self.hook_log);
                (lines.len() >= expected).then_some(lines)
            },
            &format!("{expected} hook runs"),
        );
        assert_eq!(hooks, self.expected, "the hook's runs, one per change");
        let check = format!("service:{}", self.service_id);
        wait_for(
            || {
                self.double
                    .check(&check)
                    .filter(|c| c.status == CheckStatus::Passing)
                    .map(|_| ())
            },
            "the app's check to pass in Consul",
        );
    }

    fn app_pid(&self) -> i64 {
        wait_for(
            || job_pid(&try_status(&self.socket)?, "app"),
            "the app's pid in /v3/status",
        )
    }

    /// How many `StatusHealthy app` events pilot has published so far: the app's job publishes
    /// one per passing check, so they keep coming only while its task is not held up.
    fn health_events(&mut self) -> usize {
        events(self.running.drain())
            .iter()
            .filter(|e| *e == "StatusHealthy app")
            .count()
    }

    fn last_seq(&self) -> u64 {
        self.double.requests().last().map_or(0, |r| r.seq)
    }

    fn begin_fault(&mut self) -> Mark {
        Mark {
            at: Instant::now(),
            app_pid: self.app_pid(),
            ticks: file_lines(&self.ticks).len(),
            health_events: self.health_events(),
            lines: self.running.drain().len(),
            last_seq: self.last_seq(),
        }
    }

    /// The requests the double logged since `mark`.
    fn requests_since(&self, mark: &Mark) -> Vec<consul_double::LoggedRequest> {
        self.double
            .requests()
            .into_iter()
            .filter(|r| r.seq > mark.last_seq)
            .collect()
    }

    /// pilot's log lines since `mark` that contain `text`.
    fn log_since(&mut self, mark: &Mark, text: &str) -> usize {
        self.running.drain()[mark.lines..]
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Checks what must hold at the end of a fault, before it is cleared: pilot runs, the app
    /// was not restarted, and the jobs went on (the ticker ticked, the app's checks published).
    fn end_fault(&mut self, mark: &Mark, what: &str) {
        assert!(self.running.is_running(), "{what}: pilot exited");
        assert_eq!(
            self.app_pid(),
            mark.app_pid,
            "{what}: the app was restarted"
        );
        let ticks = file_lines(&self.ticks).len() - mark.ticks;
        let health = self.health_events() - mark.health_events;
        eprintln!(
            "{what}: {ticks} ticks and {health} app checks in {:?}",
            mark.at.elapsed()
        );
        assert!(
            ticks >= 3,
            "{what}: the interval job ran {ticks} times in {:?}",
            mark.at.elapsed()
        );
        assert!(
            health >= 1,
            "{what}: the app's job published no check result in {:?}",
            mark.at.elapsed()
        );
    }

    /// Sleeps until `FAULT` has passed since `mark`.
    fn rest_of_fault(&self, mark: &Mark) {
        sleep(FAULT.saturating_sub(mark.at.elapsed()));
    }

    /// Shuts pilot down and checks the whole run: exit 0, no panic, the app started once, the
    /// hook ran once per `changed` event, for the expected sequence of instance sets, never
    /// twice in a row for the same data, and never failed.
    fn finish(self) {
        let Pilot {
            double,
            dir,
            hook_log,
            mut running,
            service_id,
            expected,
            ..
        } = self;
        assert!(running.is_running(), "pilot exited");
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        let all = finished.stdout.join("\n") + "\n" + &finished.stderr;
        assert!(!all.contains("panicked"), "pilot panicked:\n{all}");
        assert_eq!(code(finished.status), 0, "{}", finished.stderr);
        let events = events(&finished.stdout);
        let starts = finished
            .stdout
            .iter()
            .filter(|l| l.contains("app started with pid"))
            .count();
        assert_eq!(starts, 1, "the app ran more than once");
        let hooks = file_lines(&hook_log);
        assert_eq!(hooks, expected, "the hook's runs");
        let changed = events
            .iter()
            .filter(|e| *e == "StatusChanged watch.db")
            .count();
        assert_eq!(
            changed,
            hooks.len(),
            "one hook run per changed event: {events:#?}"
        );
        for pair in hooks.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "two changes with the same data: {hooks:?}"
            );
        }
        assert!(
            !events.contains(&"ExitFailed onchange".to_string()),
            "the hook failed: {all}"
        );
        assert!(
            double.service(&service_id).is_none(),
            "deregistered at shutdown"
        );
        drop(dir);
    }
}

#[test]
fn consul_down_at_start() {
    let mut p = Pilot::start("down-at-start", |double| double.go_down());
    let mark = p.begin_fault();
    // A change the watch cannot see yet.
    p.add(2);
    p.rest_of_fault(&mark);
    let attempts = p.log_since(&mark, "cannot connect to consul");
    eprintln!("down at start: {attempts} failed attempts in {FAULT:?}");
    assert!(attempts >= 1, "pilot never tried to reach Consul");
    assert!(
        attempts <= MAX_REQUESTS_PER_FAULT,
        "{attempts} attempts in {FAULT:?}"
    );
    assert!(
        p.watched().is_none(),
        "the watch had an answer while Consul was down"
    );
    p.end_fault(&mark, "down at start");
    p.double.come_up().unwrap();
    p.settle();
    p.remove(1);
    p.settle();
    p.finish();
}

#[test]
fn consul_down_for_a_while() {
    let mut p = Pilot::start("down-mid-run", |_| {});
    p.settle();
    let mark = p.begin_fault();
    p.double.go_down();
    p.add(2);
    p.rest_of_fault(&mark);
    let attempts = p.log_since(&mark, "cannot connect to consul");
    eprintln!("down for a while: {attempts} failed attempts in {FAULT:?}");
    assert!(attempts >= 1, "pilot never noticed Consul was down");
    assert!(
        attempts <= MAX_REQUESTS_PER_FAULT,
        "{attempts} attempts in {FAULT:?}"
    );
    p.end_fault(&mark, "down for a while");
    p.double.come_up().unwrap();
    p.settle();
    p.remove(1);
    p.settle();
    p.finish();
}

#[test]
fn consul_restarted_with_its_state_lost() {
    let mut p = Pilot::start("lost-state", |_| {});
    p.settle();
    let mark = p.begin_fault();
    let registrations = p
        .double
        .requests_to("PUT", "/v1/agent/service/register")
        .len();
    // The agent restarts without its data: down for a second, back with nothing.
    p.double.go_down();
    p.double.lose_state();
    p.instances.clear();
    sleep(Duration::from_secs(1));
    p.double.come_up().unwrap();
    // The watch sees the service vanish; the app's next heartbeat finds its check unknown and
    // registers it again.
    p.settle();
    p.add(2);
    p.settle();
    p.rest_of_fault(&mark);
    p.end_fault(&mark, "lost state");
    assert!(
        p.double
            .requests_to("PUT", "/v1/agent/service/register")
            .len()
            > registrations,
        "the app was registered again"
    );
    let requests = p.requests_since(&mark).len();
    eprintln!("lost state: {requests} requests in {:?}", mark.at.elapsed());
    p.add(3);
    p.settle();
    p.finish();
}

#[test]
fn consul_slow() {
    let delay = Duration::from_secs(2);
    let mut p = Pilot::start("slow", |_| {});
    p.settle();
    let mark = p.begin_fault();
    p.double.set_slow(Some(delay));
    // The change reaches the hook while every answer takes seconds.
    p.add(2);
    p.settle();
    p.rest_of_fault(&mark);
    p.end_fault(&mark, "slow");
    let requests = p.requests_since(&mark);
    let slow = requests.iter().filter(|r| r.duration >= delay).count();
    eprintln!(
        "slow: {} requests in {:?}, {slow} of them slowed",
        requests.len(),
        mark.at.elapsed()
    );
    assert!(slow >= 1, "no request was slowed");
    p.double.set_slow(None);
    p.add(3);
    p.settle();
    p.finish();
}

#[test]
fn consul_answering_500s() {
    let mut p = Pilot::start("500s", |_| {});
    p.settle();
    let mark = p.begin_fault();
    p.double.fail_requests(ErrorFault::no_leader());
    p.add(2);
    p.rest_of_fault(&mark);
    let requests = p.requests_since(&mark);
    let failed = requests.iter().filter(|r| r.status == Some(500)).count();
    eprintln!(
        "500s: {} requests in {FAULT:?}, {failed} answered 500",
        requests.len()
    );
    assert!(failed >= 1, "no request was answered 500");
    assert!(
        requests.len() <= MAX_REQUESTS_PER_FAULT,
        "{} requests in {FAULT:?}",
        requests.len()
    );
    p.end_fault(&mark, "500s");
    p.double.clear_errors();
    p.settle();
    p.remove(1);
    p.settle();
    p.finish();
}

#[test]
fn consul_moving_its_index_backwards() {
    let mut p = Pilot::start("rewind", |_| {});
    p.settle();
    let mark = p.begin_fault();
    // Every index reads 1 from now on: far below the one the watch blocks on.
    p.double.rewind_index(1_000_000, None);
    p.add(2);
    p.settle();
    p.rest_of_fault(&mark);
    let queries = p
        .requests_since(&mark)
        .iter()
        .filter(|r| r.path_only() == "/v1/health/service/db")
        .count();
    eprintln!(
        "index backwards: {queries} watch queries in {:?}",
        mark.at.elapsed()
    );
    assert!(
        p.log_since(&mark, "the index went back") >= 1,
        "the watch never saw the index go back"
    );
    assert!(
        queries <= MAX_REQUESTS_PER_FAULT,
        "{queries} watch queries in {:?}",
        mark.at.elapsed()
    );
    p.end_fault(&mark, "index backwards");
    p.double.clear_index_rewind();
    p.add(3);
    p.settle();
    p.finish();
}

#[test]
fn consul_resetting_connections() {
    let mut p = Pilot::start("resets", |_| {});
    p.settle();
    let mark = p.begin_fault();
    p.double.reset_connections(u32::MAX);
    p.add(2);
    p.rest_of_fault(&mark);
    let requests = p.requests_since(&mark);
    let reset = requests.iter().filter(|r| r.status.is_none()).count();
    eprintln!(
        "resets: {} requests in {FAULT:?}, {reset} reset",
        requests.len()
    );
    assert!(reset >= 1, "no connection was reset");
    assert!(
        requests.len() <= MAX_REQUESTS_PER_FAULT,
        "{} requests in {FAULT:?}",
        requests.len()
    );
    p.end_fault(&mark, "resets");
    p.double.reset_connections(0);
    p.settle();
    p.remove(1);
    p.settle();
    p.finish();
}

#[test]
fn consul_waking_blocking_queries_for_nothing() {
    let mut p = Pilot::start("spurious", |_| {});
    p.settle();
    let mark = p.begin_fault();
    p.double.spurious_wakeups(Some(Duration::from_millis(100)));
    p.add(2);
    p.settle();
    while mark.at.elapsed() < FAULT {
        p.double.wake_blocked_queries();
        sleep(Duration::from_millis(50));
    }
    let elapsed = mark.at.elapsed();
    let queries = p
        .requests_since(&mark)
        .iter()
        .filter(|r| r.path_only() == "/v1/health/service/db")
        .count();
    eprintln!("spurious wake-ups: {queries} watch queries in {elapsed:?}");
    assert!(queries >= 5, "the wake-ups did not happen");
    // The watch's rate limit: a burst of 5, then 5 a second.
    let limit = 5 + (5.0 * elapsed.as_secs_f64()).ceil() as usize + 5;
    assert!(queries <= limit, "{queries} queries in {elapsed:?}");
    p.end_fault(&mark, "spurious wake-ups");
    p.double.spurious_wakeups(None);
    p.add(3);
    p.settle();
    p.finish();
}
