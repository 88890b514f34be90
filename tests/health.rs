//! Health checkers: command checks through the real supervisor (pass, fail, timeout killing the
//! whole process group), HTTP and TCP checks, scheduling (paused checkers, no overlap, a hung
//! check delaying no other checker) and the events a check publishes.
//!
//! This file has its own harness (`harness = false`): the supervisor must take over the process's
//! signals before any thread exists, so `main` does that first and runs every test on the main
//! thread (libtest-mimic with one thread; nextest runs each test in its own process anyway).
//! Timeouts only stop a broken test; nothing asserts on speed.

use std::ffi::OsString;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use pilot::config::{Check, Exec, HealthCheck};
use pilot::events::{Bus, Event, Subscription};
use pilot::exec::Environment;
use pilot::health::{CheckSpec, Checker, HealthResult, http_check, tcp_check};
use pilot::supervisor::{self, Supervisor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// How long any one expectation may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

type TestFn = fn(Supervisor) -> Pin<Box<dyn Future<Output = ()>>>;

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|sup| Box::pin($name(sup))) as TestFn)),*]
    };
}

const TESTS: &[(&str, TestFn)] = tests![
    exec_check_passes_on_exit_0_and_publishes_exit_success,
    exec_check_fails_on_nonzero_exit_and_publishes_exit_failed_and_error,
    exec_check_that_cannot_start_fails,
    exec_check_timeout_kills_the_whole_group,
    exec_check_output_is_logged_as_the_check,
    exec_check_gets_the_job_environment,
    stopping_a_checker_kills_its_running_check,
    a_hung_check_does_not_delay_another_checker,
    a_check_never_overlaps_itself,
    checkers_start_paused_and_pause_for_maintenance,
    no_check_means_a_heartbeat_every_interval,
    http_check_passes_on_2xx_and_3xx_and_fails_otherwise,
    http_check_times_out,
    http_checker_publishes_events,
    tcp_check_open_and_closed,
];

/// Everything logged, for the output tests.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOG: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();

fn logged() -> String {
    String::from_utf8_lossy(&LOG.get().unwrap().0.lock().unwrap()).into_owned()
}

fn main() {
    // Before any thread exists: the supervisor owns every signal, SIGCHLD included.
    let ownership = supervisor::take_over().expect("take over signals");
    let capture = Capture::default();
    LOG.set(capture.clone()).ok();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || capture.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = Arc::new(pilot::runtime().unwrap());
    let sup = {
        let _enter = runtime.enter();
        let (sup, signals) = Supervisor::start(ownership).expect("start the supervisor");
        std::mem::forget(signals);
        sup
    };
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = TESTS
        .iter()
        .map(|&(name, test)| {
            let runtime = runtime.clone();
            let sup = sup.clone();
            Trial::test(name, move || {
                runtime.block_on(test(sup));
                Ok::<(), Failed>(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn exec(program: &str, args: &[&str]) -> Check {
    Check::Exec(Exec {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
    })
}

fn sh(script: &str) -> Check {
    exec("sh", &["-c", script])
}

fn health(check: Check, interval: Duration, timeout: Duration) -> HealthCheck {
    HealthCheck {
        check,
        interval,
        ttl: interval * 2,
        timeout,
        raw_output: false,
        user: None,
    }
}

struct Running {
    checker: Checker,
    results: mpsc::UnboundedReceiver<HealthResult>,
    events: Subscription,
    env: Environment,
}

fn start(sup: &Supervisor, job: &str, health: HealthCheck) -> Running {
    let env = Environment::default();
    env.set("PATH", std::env::var_os("PATH").unwrap_or_default());
    start_with(sup, job, health, env)
}

fn start_with(sup: &Supervisor, job: &str, health: HealthCheck, env: Environment) -> Running {
    let bus = Bus::new();
    let events = bus.subscribe();
    let (tx, results) = mpsc::unbounded_channel();
    let checker = Checker::spawn(
        CheckSpec {
            job: job.into(),
            health,
            processes: std::sync::Arc::new(sup.clone()),
            env: env.clone(),
            bus: Some(bus),
        },
        tx,
    );
    checker.resume();
    Running {
        checker,
        results,
        events,
        env,
    }
}

impl Running {
    async fn next(&mut self) -> HealthResult {
        timeout(PATIENCE, self.results.recv())
            .await
            .expect("a result in time")
            .expect("the checker is running")
    }

    fn events(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Event { code, source }) = self.events.try_recv() {
            out.push(format!("{code} {source}"));
        }
        out
    }
}

fn checked(passed: bool, output: &str) -> HealthResult {
    HealthResult::Checked {
        passed,
        output: output.to_string(),
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn read_pid(path: &Path) -> i32 {
    let limit = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < limit, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const FAST: Duration = Duration::from_millis(100);

async fn exec_check_passes_on_exit_0_and_publishes_exit_success(sup: Supervisor) {
    let mut r = start(&sup, "app", health(exec("true", &[]), FAST, PATIENCE));
    assert_eq!(r.next().await, checked(true, "ok"));
    assert_eq!(r.next().await, checked(true, "ok"));
    r.checker.stop().await;
    assert_eq!(
        r.events(),
        ["ExitSuccess check.app", "ExitSuccess check.app"]
    );
}

async fn exec_check_fails_on_nonzero_exit_and_publishes_exit_failed_and_error(sup: Supervisor) {
    let mut r = start(&sup, "app", health(sh("exit 3"), FAST, PATIENCE));
    assert_eq!(r.next().await, checked(false, "check.app: exit status 3"));
    r.checker.stop().await;
    assert_eq!(
        r.events(),
        ["ExitFailed check.app", "Error check.app: exit status 3"]
    );
    assert!(
        logged().contains("check.app exited with error: exit status 3"),
        "{}",
        logged()
    );
}

async fn exec_check_that_cannot_start_fails(sup: Supervisor) {
    let mut r = start(
        &sup,
        "nocmd",
        health(exec("/nonexistent/check", &[]), FAST, PATIENCE),
    );
    let HealthResult::Checked { passed, output } = r.next().await else {
        panic!("not a check result");
    };
    assert!(!passed);
    assert!(
        output.starts_with("check.nocmd: cannot find \"/nonexistent/check\""),
        "{output}"
    );
    r.checker.stop().await;
    let events = r.events();
    assert_eq!(events[0], "ExitFailed check.nocmd");
    assert!(events[1].starts_with("Error cannot find"), "{events:?}");
}

async fn exec_check_timeout_kills_the_whole_group(sup: Supervisor) {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The check leaves a grandchild in its group, then hangs.
    let script = format!(
        "sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; sleep 300",
        pids.display()
    );
    let mut r = start(
        &sup,
        "slow",
        health(sh(&script), FAST, Duration::from_millis(500)),
    );
    let grandchild = read_pid(&pids).await;
    let started = Instant::now();
    assert!(alive(grandchild));
    let result = r.next().await;
    assert_eq!(result, checked(false, "check.slow timeout after 500ms"));
    assert!(started.elapsed() < PATIENCE);
    // Killed and reaped before the result was reported.
    assert!(!alive(grandchild), "the grandchild survived the timeout");
    r.checker.pause();
    r.checker.stop().await;
    let events = r.events();
    assert_eq!(
        events[..2],
        ["ExitFailed check.slow", "Error check.slow: signal: killed"]
    );
    assert!(
        logged().contains("check.slow timeout after 500ms: '[-c sleep 300 &"),
        "{}",
        logged()
    );
}

async fn exec_check_output_is_logged_as_the_check(sup: Supervisor) {
    let mut r = start(
        &sup,
        "talker",
        health(
            sh("echo hello from the check; echo to stderr >&2"),
            FAST,
            PATIENCE,
        ),
    );
    assert_eq!(r.next().await, checked(true, "ok"));
    r.checker.stop().await;
    let limit = Instant::now() + PATIENCE;
    loop {
        let log = logged();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("check=check.talker"))
            .collect();
        if lines.iter().any(|l| l.contains("hello from the check"))
            && lines.iter().any(|l| l.contains("to stderr"))
        {
            break;
        }
        assert!(Instant::now() < limit, "{log}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn exec_check_gets_the_job_environment(sup: Supervisor) {
    let env = Environment::default();
    env.set("PATH", std::env::var_os("PATH").unwrap_or_default());
    env.set(OsString::from("MARKER"), OsString::from("from the job"));
    let mut r = start_with(
        &sup,
        "envy",
        health(sh("test \"$MARKER\" = 'from the job'"), FAST, PATIENCE),
        env,
    );
    assert_eq!(r.next().await, checked(true, "ok"));
    r.env.set("MARKER", "changed");
    // Read at each run.
    let limit = Instant::now() + PATIENCE;
    while r.next().await.passed() {
        assert!(Instant::now() < limit);
    }
    r.checker.stop().await;
}

async fn stopping_a_checker_kills_its_running_check(sup: Supervisor) {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 300 & echo $$ $! > {0}.tmp; mv {0}.tmp {0}; sleep 300",
        pids.display()
    );
    let mut r = start(&sup, "hung", health(sh(&script), FAST, PATIENCE * 10));
    let text = loop {
        if let Ok(text) = std::fs::read_to_string(&pids) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    r.checker.stop().await;
    let limit = Instant::now() + PATIENCE;
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < limit, "the check survived its checker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_hung_check_does_not_delay_another_checker(sup: Supervisor) {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let mut hung = start(
        &sup,
        "hung",
        health(
            sh(&format!("echo $$ > {}; exec sleep 300", pid.display())),
            FAST,
            PATIENCE * 10,
        ),
    );
    let mut quick = start(&sup, "quick", health(exec("true", &[]), FAST, PATIENCE));
    // Let the hung check start, then see the other checker go on, check after check.
    read_pid(&pid).await;
    for _ in 0..5 {
        assert_eq!(quick.next().await, checked(true, "ok"));
    }
    assert!(hung.results.try_recv().is_err(), "the hung check reported");
    hung.checker.stop().await;
    quick.checker.stop().await;
}

async fn a_check_never_overlaps_itself(sup: Supervisor) {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let runs = dir.path().join("runs");
    // Takes three intervals; a second instance running at the same time would fail to mkdir.
    let script = format!(
        "mkdir {0} || exit 9; echo run >> {1}; sleep 0.3; rmdir {0}",
        lock.display(),
        runs.display()
    );
    let mut r = start(&sup, "long", health(sh(&script), FAST, PATIENCE));
    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(r.next().await);
    }
    r.checker.stop().await;
    assert!(results.iter().all(HealthResult::passed), "{results:?}");
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!((4..=5).contains(&count), "{count} runs");
}

async fn checkers_start_paused_and_pause_for_maintenance(sup: Supervisor) {
    let bus = Bus::new();
    let mut events = bus.subscribe();
    let (tx, mut results) = mpsc::unbounded_channel();
    let env = Environment::default();
    env.set("PATH", std::env::var_os("PATH").unwrap_or_default());
    let mut checker = Checker::spawn(
        CheckSpec {
            job: "app".into(),
            health: health(exec("true", &[]), FAST, PATIENCE),
            processes: std::sync::Arc::new(sup.clone()),
            env,
            bus: Some(bus),
        },
        tx,
    );
    assert!(checker.is_paused());
    // A checker on the same interval is the clock: while it checks five times, however slowly,
    // the paused one would have checked too.
    let mut clock = start(&sup, "clock", health(exec("true", &[]), FAST, PATIENCE));
    for _ in 0..5 {
        clock.next().await;
    }
    assert!(results.try_recv().is_err(), "a paused checker checked");
    assert!(events.try_recv().is_err());
    checker.resume();
    timeout(PATIENCE, results.recv()).await.unwrap().unwrap();
    checker.pause();
    // A check already running may still finish and report; nothing after it.
    for _ in 0..5 {
        clock.next().await;
    }
    let mut reported = 0;
    while results.try_recv().is_ok() {
        reported += 1;
    }
    assert!(reported <= 1, "a paused checker reported {reported} times");
    clock.checker.stop().await;
    checker.resume();
    assert!(
        timeout(PATIENCE, results.recv())
            .await
            .unwrap()
            .unwrap()
            .passed()
    );
    checker.stop().await;
}

async fn no_check_means_a_heartbeat_every_interval(sup: Supervisor) {
    let mut r = start(&sup, "beat", health(Check::None, FAST, PATIENCE));
    let started = Instant::now();
    for _ in 0..3 {
        let result = r.next().await;
        assert_eq!(result, HealthResult::Heartbeat);
        assert_eq!(result.detail(), "ok");
        assert!(result.passed());
    }
    // Three ticks of the interval, not earlier.
    assert!(started.elapsed() >= FAST * 2);
    r.checker.stop().await;
    assert!(r.events().is_empty(), "a heartbeat is not a check run");
}

/// A one-shot HTTP server answering each connection with `status`, or never answering.
async fn http_server(status: Option<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            match status {
                Some(status) => {
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
                None => held.push(conn),
            }
        }
    });
    (url, task)
}

async fn http_check_passes_on_2xx_and_3xx_and_fails_otherwise(_: Supervisor) {
    for (status, passed) in [
        ("200 OK", true),
        ("204 No Content", true),
        ("301 Moved Permanently", true),
        ("404 Not Found", false),
        ("500 Internal Server Error", false),
        ("503 Service Unavailable", false),
    ] {
        let (url, server) = http_server(Some(status)).await;
        let got = http_check(&url, PATIENCE).await;
        assert_eq!(got, (passed, format!("HTTP GET {url}: {status}")));
        server.abort();
    }
    // Nobody listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        http_check(&url, PATIENCE).await,
        (false, format!("HTTP GET {url}: connection refused"))
    );
    assert_eq!(
        http_check("ftp://x/", PATIENCE).await,
        (false, "HTTP GET ftp://x/: invalid url".to_string())
    );
}

async fn http_check_times_out(_: Supervisor) {
    let (url, server) = http_server(None).await;
    let got = http_check(&url, Duration::from_millis(300)).await;
    assert_eq!(
        got,
        (false, format!("HTTP GET {url}: timed out after 300ms"))
    );
    server.abort();
}

async fn http_checker_publishes_events(sup: Supervisor) {
    let (url, server) = http_server(Some("503 Service Unavailable")).await;
    let mut r = start(
        &sup,
        "web",
        health(Check::Http { url: url.clone() }, FAST, PATIENCE),
    );
    let want = format!("HTTP GET {url}: 503 Service Unavailable");
    assert_eq!(r.next().await, checked(false, &want));
    r.checker.stop().await;
    assert_eq!(
        r.events()[..2],
        [
            "ExitFailed check.web".to_string(),
            format!("Error check.web: {want}")
        ]
    );
    server.abort();
}

async fn tcp_check_open_and_closed(sup: Supervisor) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    assert_eq!(
        tcp_check(&address, PATIENCE).await,
        (true, format!("TCP connect {address}: success"))
    );
    let mut r = start(
        &sup,
        "db",
        health(
            Check::Tcp {
                address: address.clone(),
            },
            FAST,
            PATIENCE,
        ),
    );
    assert_eq!(
        r.next().await,
        checked(true, &format!("TCP connect {address}: success"))
    );
    drop(listener);
    // A check that ran before the listener closed may still be queued.
    let failed = loop {
        let result = r.next().await;
        if !result.passed() {
            break result;
        }
    };
    assert_eq!(
        failed,
        checked(false, &format!("TCP connect {address}: connection refused"))
    );
    r.checker.stop().await;
    assert_eq!(r.events()[0], "ExitSuccess check.db");
    let _ = std::io::stdout().flush();
}
