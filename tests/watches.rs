//! Watches with the real binary against the Consul double: KV key and prefix watches, a quiet
//! period, the events of trace E (reference section 13, as pilot adjusts it: README,
//! "Compatibility"), every visible field counting as a change, tag and
//! datacenter filters, two watches on one service staying independent, the index rules of
//! Consul's blocking queries (reset when the index goes backwards, no spinning on spurious
//! wake-ups), and backing off while Consul fails or is unreachable, then recovering.
//!
//! To tie events to the steps that caused them, a test sends pilot SIGHUP after each step: pilot
//! publishes `Signal SIGHUP` on its event bus, so the debug log's events come out with markers
//! between the steps, in the bus's order. No test asserts on timing: request counts over a quiet
//! window are upper bounds (a loaded machine only lowers them).

mod common;
mod watch_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use consul_double::{CheckStatus, Config as DoubleConfig, ErrorFault};
use watch_support::*;

const MARK: &str = "mark";

/// A running pilot with a config of `watches`, and the scratch directory it lives in.
struct Pilot {
    running: Running,
    socket: std::path::PathBuf,
    marks: usize,
    /// Where in the output the last marker is.
    last_mark: usize,
    _dir: Scratch,
}

impl Pilot {
    fn start(name: &str, consul: &str, watches: &str) -> Pilot {
        Pilot::start_with_jobs(name, consul, "", watches)
    }

    fn start_with_jobs(name: &str, consul: &str, jobs: &str, watches: &str) -> Pilot {
        let dir = Scratch::new(name);
        let socket = dir.path("pilot.sock");
        let cfg = dir.write("pilot.json5", &pilot_config(consul, &socket, jobs, watches));
        let mode = Mode::Plain;
        let running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
        Pilot {
            running,
            socket,
            marks: 0,
            last_mark: 0,
            _dir: dir,
        }
    }

    /// Puts a marker in the event stream and waits until pilot has published it.
    fn mark(&mut self) {
        self.running.signal(libc::SIGHUP);
        self.marks += 1;
        let line = self
            .running
            .expect_line(&format!("marker {}", self.marks), |l| {
                l.ends_with("event: {Signal SIGHUP}")
            });
        self.last_mark = self
            .running
            .seen
            .iter()
            .rposition(|l| *l == line)
            .expect("the marker line");
    }

    /// Waits for the event `code` of `source` after the last marker.
    fn expect_event(&mut self, code: &str, source: &str) {
        let want = format!("event: {{{code} {source}}}");
        while !self.running.seen[self.last_mark..]
            .iter()
            .any(|l| l.ends_with(&want))
        {
            // Every call takes one more line, so this ends (or panics after PATIENCE).
            self.running
                .expect_line(&format!("(looking for {code} {source})"), |_| true);
        }
    }

    /// Stops pilot and returns the events of `source`, with `mark` for each marker.
    fn stop(self, source: &str) -> Vec<String> {
        self.running.signal(libc::SIGTERM);
        let finished = self.running.wait();
        assert_eq!(code(finished.status), 0, "{}", finished.stderr);
        events(&finished.stdout)
            .into_iter()
            .filter_map(|e| {
                let (code, from) = e.split_once(' ')?;
                if from == "SIGHUP" {
                    Some(MARK.to_string())
                } else {
                    (from == source).then(|| code.to_string())
                }
            })
            .collect()
    }

    fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Trace E: 0, 1, the same 1 (at a higher index), 2, then 0 instances.
#[test]
fn trace_e_gives_exactly_the_expected_events() {
    let double = double();
    let mut pilot = Pilot::start(
        "trace-e",
        &address(&double),
        r#"{ name: "app", interval: 5 }"#,
    );

    // 0 instances: the first answer is `unhealthy` (ContainerPilot said nothing).
    pilot.expect_event("StatusUnhealthy", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &[]);
    pilot.mark();

    register(&double, &Inst::new("app-1", "app", "10.0.0.1", 8080));
    pilot.expect_event("StatusHealthy", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &["app-1"]);
    pilot.mark();

    // The same instance at a higher index: a new check output reaches the catalog (at the
    // double's next output sync) and wakes the query with the same visible data.
    let before = double.service_index("app");
    double.clear_requests();
    set_check(&double, "app-1", CheckStatus::Passing, "a new output");
    wait_for(
        || (double.service_index("app") > before).then_some(()),
        "the new output to reach the catalog",
    );
    // pilot got that answer (its query at the old index returned) and blocks again.
    wait_for(
        || {
            let answered = health_queries(&double, "app")
                .iter()
                .any(|q| index_param(q) == before);
            (answered && double.blocked_queries() > 0).then_some(())
        },
        "pilot to take the answer at the higher index",
    );
    pilot.mark();

    register(&double, &Inst::new("app-2", "app", "10.0.0.2", 8080));
    wait_for_instances(pilot.socket(), "app", None, &["app-1", "app-2"]);
    pilot.expect_event("StatusChanged", "watch.app");
    pilot.mark();

    // Both go at once: node maintenance makes both critical in one change. (Two
    // deregistrations are two changes, and a watch that answers between them sees one
    // instance: a `changed` more, as ContainerPilot would have emitted too.)
    double.node_maintenance(true, "trace E");
    pilot.expect_event("StatusUnhealthy", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &[]);
    pilot.mark();

    assert_eq!(
        pilot.stop("watch.app"),
        [
            "StatusUnhealthy",
            MARK,
            "StatusChanged",
            "StatusHealthy",
            MARK,
            // the same instance: nothing
            MARK,
            // 1 to 2: a change, still healthy
            "StatusChanged",
            MARK,
            "StatusChanged",
            "StatusUnhealthy",
            MARK,
        ]
    );
}

/// Everything a template can see is part of the change: address, port, tags, meta; an
/// instance that stops passing its check leaves the set.
#[test]
fn any_field_a_template_sees_is_a_change() {
    let double = double();
    let mut pilot = Pilot::start(
        "fields",
        &address(&double),
        r#"{ name: "app", interval: 5 }"#,
    );
    register(&double, &Inst::new("app-1", "app", "10.0.0.1", 8080));
    pilot.expect_event("StatusHealthy", "watch.app");
    pilot.mark();

    let steps: Vec<Inst<'_>> = vec![
        Inst::new("app-1", "app", "10.0.0.9", 8080),
        Inst::new("app-1", "app", "10.0.0.9", 9090),
        Inst::new("app-1", "app", "10.0.0.9", 9090).tags(&["blue"]),
        Inst::new("app-1", "app", "10.0.0.9", 9090)
            .tags(&["blue"])
            .meta(&[("version", "2")]),
    ];
    for inst in &steps {
        register(&double, inst);
        pilot.expect_event("StatusChanged", "watch.app");
        pilot.mark();
    }
    let all = watches(pilot.socket());
    let instance = &all[0]["Instances"][0];
    assert_eq!(instance["Address"], "10.0.0.9");
    assert_eq!(instance["Port"], 9090);
    assert_eq!(instance["Tags"], serde_json::json!(["blue"]));
    assert_eq!(instance["Meta"], serde_json::json!({"version": "2"}));

    // A warning check is not passing: the instance leaves, and comes back.
    set_check(&double, "app-1", CheckStatus::Warning, "slow");
    pilot.expect_event("StatusUnhealthy", "watch.app");
    pilot.mark();
    set_check(&double, "app-1", CheckStatus::Passing, "ok");
    pilot.expect_event("StatusHealthy", "watch.app");
    pilot.mark();

    let mut want = vec!["StatusChanged", "StatusHealthy", MARK];
    for _ in &steps {
        want.extend(["StatusChanged", MARK]);
    }
    want.extend(["StatusChanged", "StatusUnhealthy", MARK]);
    want.extend(["StatusChanged", "StatusHealthy", MARK]);
    assert_eq!(pilot.stop("watch.app"), want);
}

/// Two watches on one service with different tags: each asks for its tag, keeps its own
/// instances, and fires only for its own changes. ContainerPilot kept one state per service
/// name, so such watches saw each other's answers as changes on every poll.
#[test]
fn two_watches_on_one_service_with_different_tags_stay_independent() {
    let double = double();
    let mut pilot = Pilot::start(
        "tags",
        &address(&double),
        r#"{ name: "app", tag: "blue", interval: 5 }, { name: "app", tag: "green", interval: 5 }"#,
    );
    register(
        &double,
        &Inst::new("app-blue", "app", "10.0.0.1", 80).tags(&["blue"]),
    );
    wait_for_instances(pilot.socket(), "app", Some("blue"), &["app-blue"]);
    wait_for_instances(pilot.socket(), "app", Some("green"), &[]);
    pilot.mark();

    register(
        &double,
        &Inst::new("app-green", "app", "10.0.0.2", 80).tags(&["green"]),
    );
    wait_for_instances(pilot.socket(), "app", Some("green"), &["app-green"]);
    pilot.mark();
    assert_eq!(
        instance_ids(pilot.socket(), "app", Some("blue")).unwrap(),
        ["app-blue"],
        "the blue watch does not see the green instance"
    );

    // Wake-ups with the same data, many times over: a shared state would flip between the two
    // answers and fire `changed` each time.
    double.clear_requests();
    double.spurious_wakeups(Some(Duration::from_millis(50)));
    double.wake_blocked_queries();
    quiet_for(Duration::from_secs(2));
    double.spurious_wakeups(None);
    pilot.mark();

    let queries = health_queries(&double, "app");
    assert!(
        queries.len() >= 10,
        "the wake-ups happened: {} queries",
        queries.len()
    );
    assert!(
        queries.iter().any(|q| q.contains("tag=blue"))
            && queries.iter().any(|q| q.contains("tag=green")),
        "each watch asks for its tag: {queries:#?}"
    );
    assert!(
        queries.iter().all(|q| q.contains("passing")),
        "only passing instances: {queries:#?}"
    );
    // The events have one source, `watch.app`: blue's first answer is `healthy`, green's is
    // `unhealthy` (in either order), then green's instance is green's change alone.
    let events = pilot.stop("watch.app");
    let first_mark = events.iter().position(|e| e == MARK).unwrap();
    let mut first: Vec<&str> = events[..first_mark].iter().map(String::as_str).collect();
    first.sort_unstable();
    assert_eq!(
        first,
        ["StatusChanged", "StatusHealthy", "StatusUnhealthy"],
        "{events:?}"
    );
    assert_eq!(
        &events[first_mark..],
        [MARK, "StatusChanged", "StatusHealthy", MARK, MARK],
        "{events:?}"
    );
}

/// `dc` is passed to Consul: the double serves datacenter `east`, and answers 500 `No path to
/// datacenter` for any other; the watch on `west` reports that error and keeps backing off.
#[test]
fn the_datacenter_filter_goes_to_consul() {
    let double = double_with(DoubleConfig {
        datacenter: "east".into(),
        ..DoubleConfig::default()
    });
    register(&double, &Inst::new("app-1", "app", "10.0.0.1", 80));
    let pilot = Pilot::start(
        "dc",
        &address(&double),
        r#"{ name: "app", dc: "east", interval: 2 }, { name: "db", dc: "west", interval: 2 }"#,
    );
    wait_for_instances(pilot.socket(), "app", None, &["app-1"]);
    let error = wait_for(
        || {
            let all = watches(pilot.socket());
            let db = all.iter().find(|w| w["Service"] == "db")?;
            db["Error"].as_str().map(str::to_string)
        },
        "the db watch's error",
    );
    assert!(error.contains("No path to datacenter"), "{error}");
    assert!(
        health_queries(&double, "app")
            .iter()
            .all(|q| q.contains("dc=east")),
        "{:#?}",
        health_queries(&double, "app")
    );
    assert!(
        health_queries(&double, "db")
            .iter()
            .all(|q| q.contains("dc=west"))
    );
    let mut watches = watches(pilot.socket());
    watches.sort_by_key(|w| w["Service"].as_str().unwrap_or_default().to_string());
    assert_eq!(watches[0]["Dc"], "east");
    assert_eq!(watches[1]["Dc"], "west");
    assert_eq!(
        watches[1]["Instances"],
        serde_json::Value::Null,
        "no answer yet"
    );
    let events = pilot.stop("watch.db");
    assert!(events.is_empty(), "errors are not events: {events:?}");
}

/// The index goes backwards (a snapshot restore, another server): pilot drops the answer, asks
/// again without blocking, and follows the lower index from then on. With a 120 s wait, a watch
/// that kept blocking on the old, higher index would not see the next change within the test's
/// patience. Then an agent restart that lost its state: the connection drops, and pilot starts
/// over from an unblocked query at the agent's new, low index.
#[test]
fn an_index_that_goes_backwards_resets_the_watch() {
    let double = double();
    register(&double, &Inst::new("app-1", "app", "10.0.0.1", 80));
    let mut pilot = Pilot::start(
        "reset",
        &address(&double),
        r#"{ name: "app", interval: 120 }"#,
    );
    pilot.expect_event("StatusHealthy", "watch.app");
    wait_for(
        || (double.blocked_queries() > 0).then_some(()),
        "pilot to block",
    );
    pilot.mark();

    // From now on every index the double reports is 5 lower than its own.
    double.clear_requests();
    double.rewind_index(5, None);
    double.wake_blocked_queries();
    wait_for(
        || {
            let queries = health_queries(&double, "app");
            let reset = queries.iter().skip(1).any(|q| !q.contains("index="));
            (reset && double.blocked_queries() > 0).then_some(())
        },
        "a query without an index after the index went back",
    );
    pilot.mark();
    // One write: the double's index goes one past the one pilot saw before the rewind, still
    // below it as reported.
    register(&double, &Inst::new("app-2", "app", "10.0.0.2", 80));
    pilot.expect_event("StatusChanged", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &["app-1", "app-2"]);
    pilot.mark();
    double.clear_index_rewind();

    // An agent restart without its data: connections drop, everything is gone, and the index
    // starts low again.
    wait_for(
        || (double.blocked_queries() > 0).then_some(()),
        "pilot to block again",
    );
    let high = double.service_index("app");
    double.go_down();
    double.lose_state();
    double.clear_requests();
    double.come_up().unwrap();
    assert!(
        double.raft_index() < high,
        "the double's index restarts low"
    );
    // hyper re-sends a request whose reused connection closed before any answer, so the blocked
    // query may reach the restarted agent with its old, higher index, and wait there until its
    // wait ends, as it would with Consul; waking it (once it has arrived) stands for that end.
    wait_for(
        || {
            double.wake_blocked_queries();
            let now = instance_ids(pilot.socket(), "app", None)?;
            now.is_empty().then_some(())
        },
        "the watch to see the service gone",
    );
    pilot.expect_event("StatusUnhealthy", "watch.app");
    pilot.mark();
    let queries = health_queries(&double, "app");
    assert!(
        queries.iter().any(|q| !q.contains("index=")),
        "the watch asked again without blocking: {queries:#?}"
    );
    register(&double, &Inst::new("app-3", "app", "10.0.0.3", 80));
    pilot.expect_event("StatusHealthy", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &["app-3"]);
    pilot.mark();

    assert_eq!(
        pilot.stop("watch.app"),
        [
            "StatusChanged",
            "StatusHealthy",
            MARK,
            // the rewind itself changes nothing
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            "StatusUnhealthy",
            MARK,
            "StatusChanged",
            "StatusHealthy",
            MARK,
        ]
    );
}

/// Wake-ups without a change, as fast as the agent can answer: pilot emits nothing and
/// rate-limits itself instead of spinning.
#[test]
fn spurious_wake_ups_emit_nothing_and_do_not_spin() {
    let double = double();
    register(&double, &Inst::new("app-1", "app", "10.0.0.1", 80));
    let mut pilot = Pilot::start(
        "spurious",
        &address(&double),
        r#"{ name: "app", interval: 5 }"#,
    );
    pilot.expect_event("StatusHealthy", "watch.app");
    pilot.mark();

    double.clear_requests();
    let opened = Instant::now();
    // Every blocking query answers at once with the same data and index.
    double.spurious_wakeups(Some(Duration::ZERO));
    double.wake_blocked_queries();
    quiet_for(Duration::from_secs(3));
    let count = health_queries(&double, "app").len();
    // The window as long as it really was: a busy machine may sleep longer than asked.
    let window = opened.elapsed();
    double.spurious_wakeups(None);
    pilot.mark();
    // The limiter allows a burst of 5, then 5 a second; an unlimited loop makes thousands.
    assert!(
        (5..=5 + 5 * window.as_secs_f64().ceil() as usize + 3).contains(&count),
        "{count} queries in {window:?} of instant answers"
    );
    // Still following: the next real change arrives.
    register(&double, &Inst::new("app-2", "app", "10.0.0.2", 80));
    pilot.expect_event("StatusChanged", "watch.app");
    pilot.mark();
    assert_eq!(
        pilot.stop("watch.app"),
        [
            "StatusChanged",
            "StatusHealthy",
            MARK,
            MARK,
            "StatusChanged",
            MARK
        ]
    );
}

/// Consul answers 500, then is unreachable: pilot backs off (a handful of queries over the
/// outage, not one per rate-limiter tick), keeps its last instances without emitting anything,
/// reports the error, and follows changes again once Consul is back.
#[test]
fn errors_and_an_unreachable_consul_back_off_and_recover() {
    let double = double();
    register(&double, &Inst::new("app-1", "app", "10.0.0.1", 80));
    let mut pilot = Pilot::start(
        "outage",
        &address(&double),
        r#"{ name: "app", interval: 2 }"#,
    );
    pilot.expect_event("StatusHealthy", "watch.app");
    pilot.mark();

    // 500 No cluster leader, for every query, for 5 s.
    double.clear_requests();
    double.fail_requests(ErrorFault::no_leader());
    double.wake_blocked_queries();
    let error = wait_for(
        || {
            let all = watches(pilot.socket());
            all[0]["Error"].as_str().map(str::to_string)
        },
        "the error in /v3/watches",
    );
    assert!(error.contains("No cluster leader"), "{error}");
    quiet_for(Duration::from_secs(5));
    let failing = health_queries(&double, "app").len();
    assert_eq!(
        instance_ids(pilot.socket(), "app", None).unwrap(),
        ["app-1"],
        "the last answer stays"
    );
    // Backoff from 250 ms doubling up to the interval (2 s), each delay at least half its
    // nominal value: at most 8 queries in 5 s; the rate limiter alone would allow 30.
    assert!(
        (2..=9).contains(&failing),
        "{failing} queries in 5 s of 500s"
    );
    double.clear_errors();
    register(&double, &Inst::new("app-2", "app", "10.0.0.2", 80));
    pilot.expect_event("StatusChanged", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &["app-1", "app-2"]);
    let all = watches(pilot.socket());
    assert!(all[0]["Error"].is_null(), "the error is cleared: {all:?}");
    pilot.mark();

    // Unreachable: connections refused for 5 s.
    double.go_down();
    double.clear_requests();
    quiet_for(Duration::from_secs(5));
    assert!(
        double.requests().is_empty(),
        "the double logs nothing while down"
    );
    let error = watches(pilot.socket())[0]["Error"]
        .as_str()
        .map(str::to_string)
        .expect("an error while Consul is down");
    assert!(
        error.contains(&address(&double)),
        "the error names the agent: {error}"
    );
    deregister(&double, "app-1");
    double.come_up().unwrap();
    pilot.expect_event("StatusChanged", "watch.app");
    wait_for_instances(pilot.socket(), "app", None, &["app-2"]);
    pilot.mark();

    assert_eq!(
        pilot.stop("watch.app"),
        [
            "StatusChanged",
            "StatusHealthy",
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            MARK
        ]
    );
}

/// While Consul refuses connections, count the attempts through the kernel rather than the
/// double: pilot's connections to a listening-then-closed port. The double cannot log requests
/// it never received, so this counts `connect` attempts with a plain TCP listener that accepts
/// and closes at once (every attempt fails as a truncated answer).
#[test]
fn an_agent_that_drops_every_connection_is_retried_with_backoff() {
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let pilot = Pilot::start("drops", &addr, r#"{ name: "app", interval: 2 }"#);
    wait_for(
        || {
            let all = watches(pilot.socket());
            all[0]["Error"].as_str().map(str::to_string)
        },
        "the error in /v3/watches",
    );
    let before = accepted.load(Ordering::SeqCst);
    quiet_for(Duration::from_secs(5));
    let during = accepted.load(Ordering::SeqCst) - before;
    assert!(
        (1..=8).contains(&during),
        "{during} connections in 5 s to an agent that drops them"
    );
    let events = pilot.stop("watch.app");
    assert!(events.is_empty(), "errors are not events: {events:?}");
}

/// The buffer a watch reads Consul's answers into is left out of child processes (so that
/// starting a hook does not make pilot's next write to megabytes of it fault page by page): a
/// forked child that reads it dies of SIGSEGV, while the parent still reads its bytes.
#[test]
fn the_answer_buffer_is_not_inherited_by_children() {
    let mut buffer = pilot::consul::AnswerBuffer::new();
    buffer.extend_from_slice(&[1; 100]).unwrap();
    let address = buffer.as_slice().as_ptr() as usize;
    // SAFETY: the child only reads memory and calls _exit, both async-signal-safe.
    let status = unsafe {
        match libc::fork() {
            0 => {
                let value = std::ptr::read_volatile(address as *const u8);
                libc::_exit(i32::from(value));
            }
            pid => {
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
                status
            }
        }
    };
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "the child could read the buffer: status {status:#x}"
    );
    assert_eq!(buffer.as_slice(), &[1; 100][..]);
}

/// An agent that answers every query at once with `X-Consul-Index: 0` (a Consul bug that has
/// happened): pilot blocks on 1, never on 0 (which would not block), and its rate limit keeps the
/// instant answers from making it spin.
#[test]
fn an_index_of_zero_is_waited_on_as_one_and_never_spins() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            if let Some(path) = line.split_whitespace().nth(1) {
                seen.lock().unwrap().push(path.to_string());
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
            );
        }
    });
    let opened = Instant::now();
    let mut pilot = Pilot::start("index-zero", &addr, r#"{ name: "app", interval: 5 }"#);
    pilot.expect_event("StatusUnhealthy", "watch.app");
    quiet_for(Duration::from_secs(3));
    let paths = paths.lock().unwrap().clone();
    // The window as long as it really was: a busy machine may sleep longer than asked.
    let window = opened.elapsed();
    assert!(
        !paths[0].contains("index="),
        "the first query does not block"
    );
    assert!(
        paths[1..].iter().all(|p| p.contains("index=1&")),
        "every later query blocks on 1: {paths:#?}"
    );
    // A burst of 5, then 5 a second.
    assert!(
        (5..=5 + 5 * window.as_secs_f64().ceil() as usize + 5).contains(&paths.len()),
        "{} queries in {window:?} of instant answers",
        paths.len()
    );
    assert_eq!(pilot.stop("watch.app"), ["StatusUnhealthy"]);
}

/// The watch named `name` in `/v3/watches`.
fn watch_named(socket: &Path, name: &str) -> serde_json::Value {
    watches(socket)
        .into_iter()
        .find(|w| w["Name"] == name)
        .unwrap_or_else(|| panic!("no watch {name} in /v3/watches"))
}

/// Waits until pilot has taken the answer to the KV write at `modified` and blocks past it: a
/// query on `path` at an index at least `modified`.
fn wait_for_kv_query_past(double: &consul_double::BackgroundDouble, path: &str, modified: u64) {
    wait_for(
        || {
            let blocked = double
                .requests_to("GET", path)
                .iter()
                .any(|r| index_param(&r.path) >= modified);
            (blocked && double.blocked_queries() > 0).then_some(())
        },
        "pilot to block past the write",
    );
}

/// A key watch: missing (unhealthy), created (changed, healthy), written again with the same
/// value and flags (nothing), new flags (changed), a value that is not UTF-8 (changed, and
/// passed on as base64), deleted (changed, unhealthy).
#[test]
fn a_key_watch_follows_value_flags_and_existence() {
    let double = double();
    let mut pilot = Pilot::start(
        "kv-key",
        &address(&double),
        r#"{ name: "appcfg", key: "app/config.json", interval: 5 }"#,
    );
    let key = "app/config.json";
    let path = "/v1/kv/app/config.json";
    pilot.expect_event("StatusUnhealthy", "watch.appcfg");
    pilot.mark();

    double.put_kv(key, br#"{"port": 80}"#);
    pilot.expect_event("StatusHealthy", "watch.appcfg");
    let watch = watch_named(pilot.socket(), "appcfg");
    assert_eq!(watch["Key"], key);
    assert_eq!(watch["Pairs"][0]["Key"], key);
    assert_eq!(watch["Pairs"][0]["Value"], "eyJwb3J0IjogODB9");
    pilot.mark();

    // The same value and flags at a higher index: nothing.
    double.put_kv(key, br#"{"port": 80}"#);
    wait_for_kv_query_past(&double, path, double.kv(key).unwrap().modify_index);
    pilot.mark();

    put_kv_flags(&double, key, br#"{"port": 80}"#, 7);
    pilot.expect_event("StatusChanged", "watch.appcfg");
    wait_for(
        || (watch_named(pilot.socket(), "appcfg")["Pairs"][0]["Flags"] == 7).then_some(()),
        "the flags in /v3/watches",
    );
    pilot.mark();

    double.put_kv(key, b"\xff\xfe not utf-8");
    pilot.expect_event("StatusChanged", "watch.appcfg");
    wait_for(
        || {
            (watch_named(pilot.socket(), "appcfg")["Pairs"][0]["Value"] == "//4gbm90IHV0Zi04")
                .then_some(())
        },
        "the bytes in /v3/watches",
    );
    pilot.mark();

    double.delete_kv(key);
    pilot.expect_event("StatusUnhealthy", "watch.appcfg");
    pilot.mark();
    assert!(
        double
            .requests_to("GET", path)
            .iter()
            .all(|r| !r.path.contains("recurse")),
        "a key watch reads one key"
    );
    assert_eq!(
        pilot.stop("watch.appcfg"),
        [
            "StatusUnhealthy",
            MARK,
            "StatusChanged",
            "StatusHealthy",
            MARK,
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            "StatusUnhealthy",
            MARK,
        ]
    );
}

/// A prefix watch: a key added, changed or removed under the prefix is a change, a key beside
/// it is nothing; a job runs on `{ source: "watch.flags", each: "changed" }`.
#[test]
fn a_prefix_watch_runs_a_job_on_each_change() {
    let double = double();
    double.put_kv("app/flags/a", b"on");
    let mut pilot = Pilot::start_with_jobs(
        "kv-prefix",
        &address(&double),
        r#"{ name: "on-flags", exec: ["true"], when: { source: "watch.flags", each: "changed" } }"#,
        r#"{ name: "flags", prefix: "app/flags/", interval: 5 }"#,
    );
    pilot.expect_event("ExitSuccess", "on-flags");
    pilot.mark();

    double.put_kv("app/flags/b", b"off");
    pilot.expect_event("ExitSuccess", "on-flags");
    pilot.mark();

    // Beside the prefix: Consul does not even wake the prefix's query (the double's radix-tree
    // wake-ups, as Consul's); any event would come before the next step's.
    double.put_kv("app/other", b"x");
    double.put_kv("app/flags", b"x");
    pilot.mark();

    double.put_kv("app/flags/a", b"off");
    pilot.expect_event("ExitSuccess", "on-flags");
    pilot.mark();

    double.delete_kv("app/flags/b");
    pilot.expect_event("ExitSuccess", "on-flags");
    pilot.mark();

    double.delete_kv("app/flags/a");
    pilot.expect_event("StatusUnhealthy", "watch.flags");
    pilot.mark();
    assert!(
        double
            .requests_to("GET", "/v1/kv/app/flags/")
            .iter()
            .all(|r| r.path.contains("recurse")),
        "a prefix watch reads the keys under it"
    );
    assert_eq!(
        pilot.stop("watch.flags"),
        [
            "StatusChanged",
            "StatusHealthy",
            MARK,
            "StatusChanged",
            MARK,
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            "StatusUnhealthy",
            MARK,
        ]
    );
}

/// A quiet period: ten writes in a row under a prefix give one `changed` (and one `healthy`)
/// once `min` has passed without another; the next write, one more. (`min` is far longer than
/// ten writes to the double take, so the test does not depend on the machine's speed; the
/// timing itself is tested with paused time in `src/watches/quiet.rs`.)
#[test]
fn a_quiet_period_turns_a_burst_of_changes_into_one_event() {
    let double = double();
    let mut pilot = Pilot::start(
        "kv-quiet",
        &address(&double),
        r#"{ name: "flags", prefix: "app/flags/", interval: 5, wait: { min: "2s", max: "1m" } }"#,
    );
    pilot.expect_event("StatusUnhealthy", "watch.flags");
    pilot.mark();

    for i in 0..10 {
        double.put_kv(&format!("app/flags/f{i}"), b"on");
    }
    pilot.expect_event("StatusHealthy", "watch.flags");
    let watch = watch_named(pilot.socket(), "flags");
    assert_eq!(
        watch["Pairs"].as_array().map(Vec::len),
        Some(10),
        "the snapshot follows at once"
    );
    pilot.mark();

    double.put_kv("app/flags/f0", b"off");
    pilot.expect_event("StatusChanged", "watch.flags");
    pilot.mark();
    assert_eq!(
        pilot.stop("watch.flags"),
        [
            "StatusUnhealthy",
            MARK,
            "StatusChanged",
            "StatusHealthy",
            MARK,
            "StatusChanged",
            MARK,
        ]
    );
}

/// Stale reads: with the default `maxStale` (2 s) any server answers, unless it last heard from
/// the leader longer ago, when the watch asks the leader; a larger `maxStale` takes the
/// follower's answer; `maxStale: 0` always asks the leader. While the cluster has no leader, the
/// stale watches keep answering (no error), and the leader-only one fails; after the election,
/// changes flow again.
#[test]
fn stale_reads_are_bounded_and_go_on_without_a_leader() {
    let double = double();
    for key in ["cfg/a", "cfg/b", "cfg/c"] {
        double.put_kv(key, b"1");
    }
    let mut pilot = Pilot::start(
        "kv-stale",
        &address(&double),
        r#"{ name: "fresh", key: "cfg/a", interval: 1 },
           { name: "lenient", key: "cfg/b", interval: 1, maxStale: "10s" },
           { name: "leader", key: "cfg/c", interval: 1, maxStale: 0 }"#,
    );
    for name in ["fresh", "lenient", "leader"] {
        pilot.expect_event("StatusHealthy", &format!("watch.{name}"));
    }
    pilot.mark();

    // A follower 5 s behind its leader.
    double.follow_leader("10.0.0.9:8300", Duration::from_secs(5));
    double.clear_requests();
    for key in ["cfg/a", "cfg/b", "cfg/c"] {
        double.put_kv(key, b"2");
    }
    for name in ["fresh", "lenient", "leader"] {
        pilot.expect_event("StatusChanged", &format!("watch.{name}"));
    }
    pilot.mark();
    let queries = |key: &str| -> Vec<String> {
        double
            .requests_to("GET", &format!("/v1/kv/{key}"))
            .into_iter()
            .map(|r| r.path)
            .collect()
    };
    let is_stale = |q: &String| q.split(['?', '&']).any(|p| p == "stale");
    let fresh = queries("cfg/a");
    assert!(
        fresh.iter().any(is_stale) && fresh.iter().any(|q| !is_stale(q) && index_param(q) == 0),
        "the answer 5 s behind is asked again of the leader: {fresh:#?}"
    );
    let lenient = queries("cfg/b");
    assert!(lenient.iter().all(is_stale), "{lenient:#?}");
    let leader = queries("cfg/c");
    assert!(!leader.iter().any(is_stale), "{leader:#?}");

    // No leader: the stale watches go on answering (each answer at the end of its 1 s wait).
    // An answer still 5 s behind a known leader is asked of the leader, which fails now: the
    // stale answer is taken.
    double.lose_leader();
    double.clear_requests();
    wait_for(
        || {
            let fresh_answered = queries("cfg/a").len() >= 3;
            let lenient_answered = queries("cfg/b").len() >= 3;
            let leader_failed = watch_named(pilot.socket(), "leader")["Error"].is_string();
            (fresh_answered && lenient_answered && leader_failed).then_some(())
        },
        "three queries of each stale watch, and the leader-only watch's error",
    );
    for name in ["fresh", "lenient"] {
        assert_eq!(
            watch_named(pilot.socket(), name)["Error"],
            serde_json::Value::Null,
            "{name}"
        );
    }
    let error = watch_named(pilot.socket(), "leader")["Error"].to_string();
    assert!(error.contains("No cluster leader"), "{error}");

    double.elect_leader();
    double.put_kv("cfg/b", b"3");
    pilot.expect_event("StatusChanged", "watch.lenient");
    pilot.mark();
    let events = pilot.stop("watch.lenient");
    assert_eq!(
        events,
        [
            "StatusChanged",
            "StatusHealthy",
            MARK,
            "StatusChanged",
            MARK,
            "StatusChanged",
            MARK
        ]
    );
}
