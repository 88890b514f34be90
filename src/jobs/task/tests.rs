//! The job task under tokio's paused time, through the process seam's fake: what it spawns and
//! signals, and what it publishes, for each input.
//!
//! The clock only moves when every task is idle, so a time read here is exact, and `settle`
//! returns once every job task has handled everything it was given.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use crate::config::{self, Exec, Job, Repeat, Restarts, When};
use crate::consul::Client;
use crate::events::{Bus, Event, EventCode, GLOBAL, Subscription};
use crate::exec::Environment;
use crate::jobs::{self, Context, JobHandle, Outcome, RunningConfig};
use crate::supervisor::ExitStatus;
use crate::supervisor::fake::{FakeProcesses, Spawned};

/// How long, in paused time, a wait for something that must happen lasts before the test fails.
/// The paused clock jumps to it at once when nothing else is due, so a test whose job hangs fails
/// at once instead of hanging.
const PATIENCE: Duration = Duration::from_secs(3600);

/// `future`, or a failure naming `what` once `PATIENCE` has passed.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"))
}

const OK: ExitStatus = ExitStatus::Exited(0);
const FAILED: ExitStatus = ExitStatus::Exited(1);

fn job(name: &str, exec: Option<&str>, when: When, restarts: Restarts) -> Job {
    Job {
        exec: exec.map(|program| Exec {
            program: program.into(),
            args: vec![program.into()],
        }),
        restarts,
        ..Job::for_test(name, when)
    }
}

/// Jobs running on the fake, and everything they publish.
struct Harness {
    fake: Arc<FakeProcesses>,
    bus: Bus,
    /// Subscribed before any job: every event, in the bus's order.
    events: Subscription,
    /// What `next_event` read so far.
    seen: Vec<Event>,
    deadline: watch::Sender<Option<Instant>>,
    _config: watch::Sender<RunningConfig>,
    ctx: Arc<Context>,
    tasks: JoinSet<Outcome>,
}

/// `stop_timeout` is the global one (a job's stop outside shutdown); `jobs` are the running
/// config's, of which `start` are started (a job named in a config but not started can still be a
/// source that stops).
fn harness(jobs: &[Job], stop_timeout: Duration) -> Harness {
    let fake = FakeProcesses::new();
    let bus = Bus::new();
    let events = bus.subscribe();
    let consul = Client::new(&config::Consul {
        scheme: config::Scheme::Http,
        address: "127.0.0.1:8500".into(),
        token: None,
        tls: config::Tls::default(),
    })
    .expect("a client for an address");
    let deadline = watch::Sender::new(None);
    let running = watch::Sender::new(RunningConfig {
        jobs: Arc::new(jobs.iter().cloned().map(Arc::new).collect()),
        stop_timeout,
        consul,
    });
    let ctx = Arc::new(Context {
        processes: fake.clone(),
        bus: bus.clone(),
        env: Environment::default(),
        deadline: deadline.subscribe(),
        config: running.subscribe(),
    });
    Harness {
        fake,
        bus,
        events,
        seen: Vec::new(),
        deadline,
        _config: running,
        ctx,
        tasks: JoinSet::new(),
    }
}

impl Harness {
    fn start(&mut self, job: &Job) -> JobHandle {
        jobs::spawn(
            Arc::new(job.clone()),
            self.ctx.clone(),
            Vec::new(),
            &mut self.tasks,
        )
    }

    fn publish(&self, code: EventCode, source: &str) {
        self.bus.publish(Event::new(code, source));
    }

    /// Returns once every task is idle: the paused clock only advances then.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// Reads events until `code` from `source`, and returns when it came.
    async fn next_event(&mut self, code: EventCode, source: &str) -> Instant {
        loop {
            let what = format!("{code:?} from {source}");
            let event = within(&what, self.events.recv())
                .await
                .expect("the bus is open");
            let found = event.code == code && &*event.source == source;
            self.seen.push(event);
            if found {
                return Instant::now();
            }
        }
    }

    /// The codes of the events read so far from `source`, in order.
    fn seen_from(&self, source: &str) -> Vec<EventCode> {
        self.seen
            .iter()
            .filter(|e| &*e.source == source)
            .map(|e| e.code)
            .collect()
    }

    /// Waits for the `n`th spawn and checks that it runs `program`.
    async fn spawned(&self, n: usize, program: &str) -> Spawned {
        let spawned = within(&format!("spawn {n} ({program})"), self.fake.spawned(n)).await;
        assert_eq!(spawned.program, program, "spawn {n}");
        spawned
    }

    async fn signalled(&self, pgid: i32, signal: i32) {
        let what = format!("signal {signal} to group {pgid}");
        within(&what, self.fake.signalled(pgid, signal)).await;
    }

    fn programs(&self) -> Vec<String> {
        self.fake.spawns().into_iter().map(|s| s.program).collect()
    }

    /// Shutdown as the daemon begins it: the deadline, then `shutdown` on the bus.
    fn shut_down(&self, grace: Duration) {
        self.deadline.send_replace(Some(Instant::now() + grace));
        self.publish(EventCode::Shutdown, GLOBAL);
    }
}

#[tokio::test(start_paused = true)]
async fn triggers_during_a_run_coalesce_into_one_more_run() {
    let hook = job(
        "hook",
        Some("hook"),
        When::on(EventCode::StatusChanged, "watch.db", Repeat::Each),
        Restarts::Never,
    );
    let mut h = harness(std::slice::from_ref(&hook), Duration::from_secs(5));
    let _handle = h.start(&hook);
    h.publish(EventCode::StatusChanged, "watch.db");
    let first = h.spawned(1, "hook").await;
    for _ in 0..3 {
        h.publish(EventCode::StatusChanged, "watch.db");
    }
    h.settle().await;
    assert_eq!(h.programs().len(), 1, "no run beside the first");
    h.fake.exit(first.pid, OK);
    let second = h.spawned(2, "hook").await;
    h.fake.exit(second.pid, OK);
    h.settle().await;
    assert_eq!(h.programs().len(), 2, "three triggers made one more run");
    // The job still runs on its next trigger.
    h.publish(EventCode::StatusChanged, "watch.db");
    h.spawned(3, "hook").await;
    h.next_event(EventCode::ExitSuccess, "hook").await;
    h.next_event(EventCode::ExitSuccess, "hook").await;
}

#[tokio::test(start_paused = true)]
async fn triggers_during_a_backoff_wait_for_the_restart_and_coalesce_into_one_more_run() {
    let app = job(
        "app",
        Some("app"),
        When::on(EventCode::Signal, "SIGHUP", Repeat::Each),
        Restarts::Times(2),
    );
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    let _handle = h.start(&app);
    h.publish(EventCode::Signal, "SIGHUP");
    let first = h.spawned(1, "app").await;
    h.fake.exit(first.pid, FAILED);
    // The first quick exit restarts at once, the second after 100 ms.
    let second = h.spawned(2, "app").await;
    h.fake.exit(second.pid, FAILED);
    h.next_event(EventCode::ExitFailed, "app").await;
    let exited = h.next_event(EventCode::ExitFailed, "app").await;
    for _ in 0..3 {
        h.publish(EventCode::Signal, "SIGHUP");
    }
    h.settle().await;
    assert_eq!(h.programs().len(), 2, "no run during the backoff");
    let third = h.spawned(3, "app").await;
    assert_eq!(Instant::now() - exited, Duration::from_millis(100));
    h.fake.exit(third.pid, FAILED);
    // The restarts are spent: the triggers of the backoff make one more run.
    let fourth = h.spawned(4, "app").await;
    h.fake.exit(fourth.pid, FAILED);
    h.settle().await;
    assert_eq!(h.programs().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backs_off_and_a_long_run_resets_the_backoff() {
    let app = job("app", Some("app"), When::Startup, Restarts::Unlimited);
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    let handle = h.start(&app);
    h.publish(EventCode::Startup, GLOBAL);
    let mut delays = Vec::new();
    let mut last = h.spawned(1, "app").await;
    for n in 2..=6 {
        h.fake.exit(last.pid, FAILED);
        let exited = h.next_event(EventCode::ExitFailed, "app").await;
        last = h.spawned(n, "app").await;
        delays.push((Instant::now() - exited).as_millis());
    }
    assert_eq!(delays, [0, 100, 200, 400, 800]);
    assert_eq!(handle.status().restarts, 5);
    // A run that lasts past `CRASH_RUN` is no crash: the next restart is immediate.
    tokio::time::sleep(jobs::CRASH_RUN).await;
    h.fake.exit(last.pid, FAILED);
    let exited = h.next_event(EventCode::ExitFailed, "app").await;
    h.spawned(7, "app").await;
    assert_eq!(Instant::now(), exited);
}

#[tokio::test(start_paused = true)]
async fn shutdown_runs_the_pre_stop_hook_before_signalling_and_the_post_stop_hook_after() {
    let app = job("app", Some("app"), When::Startup, Restarts::Never);
    let pre = job(
        "pre",
        Some("pre"),
        When::on(EventCode::Stopping, "app", Repeat::Once),
        Restarts::Never,
    );
    let post = job(
        "post",
        Some("post"),
        When::on(EventCode::Stopped, "app", Repeat::Once),
        Restarts::Never,
    );
    let all = [app.clone(), pre.clone(), post.clone()];
    let mut h = harness(&all, Duration::from_secs(5));
    for j in &all {
        h.start(j);
    }
    h.publish(EventCode::Startup, GLOBAL);
    let app_run = h.spawned(1, "app").await;
    h.shut_down(Duration::from_secs(30));
    let pre_run = h.spawned(2, "pre").await;
    h.settle().await;
    assert!(
        h.fake.signals().is_empty(),
        "the app is signalled only once its pre-stop hook is done"
    );
    h.fake.exit(pre_run.pid, OK);
    h.signalled(app_run.pid, libc::SIGTERM).await;
    assert_eq!(h.programs(), ["app", "pre"], "no post-stop hook yet");
    h.fake
        .exit(app_run.pid, ExitStatus::Signaled(libc::SIGTERM));
    let post_run = h.spawned(3, "post").await;
    h.fake.exit(post_run.pid, OK);
    let mut stopped = Vec::new();
    while let Some(outcome) = within("a job's end", h.tasks.join_next()).await {
        stopped.push(outcome.expect("the job task ends").name.to_string());
    }
    assert_eq!(stopped, ["pre", "app", "post"]);
    h.next_event(EventCode::Stopped, "post").await;
    assert_eq!(
        h.seen_from("app"),
        [EventCode::Stopping, EventCode::Stopped],
        "a run stopped by pilot is no failure"
    );
    assert_eq!(
        h.fake.signals(),
        [(app_run.pid, libc::SIGTERM), (app_run.pid, libc::SIGCONT)]
    );
}

#[tokio::test(start_paused = true)]
async fn stop_timeout_sigkills_the_group_that_outlives_its_stop_signal() {
    let app = job("app", Some("app"), When::Startup, Restarts::Never);
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    let handle = h.start(&app);
    h.publish(EventCode::Startup, GLOBAL);
    let run = h.spawned(1, "app").await;
    let asked = Instant::now();
    handle.stop_now();
    h.signalled(run.pid, libc::SIGTERM).await;
    h.signalled(run.pid, libc::SIGKILL).await;
    assert_eq!(
        Instant::now() - asked,
        Duration::from_secs(5),
        "SIGKILL at the global stopTimeout"
    );
    assert_eq!(
        h.fake.signals(),
        [
            (run.pid, libc::SIGTERM),
            (run.pid, libc::SIGCONT),
            (run.pid, libc::SIGKILL)
        ]
    );
    h.fake.exit(run.pid, ExitStatus::Signaled(libc::SIGKILL));
    let outcome = within("the job's end", h.tasks.join_next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.last_exit, Some(ExitStatus::Signaled(libc::SIGKILL)));
    h.next_event(EventCode::Stopped, "app").await;
    assert_eq!(
        h.seen_from("app"),
        [EventCode::Stopping, EventCode::Stopped]
    );
}

#[tokio::test(start_paused = true)]
async fn a_trigger_queued_before_its_source_stopped_still_runs() {
    // Issue 20: `src` fails twice while the hook's first run is going, then stops for good.
    let src = job("src", Some("src"), When::Startup, Restarts::Times(1));
    let hook = job(
        "hook",
        Some("hook"),
        When::on(EventCode::ExitFailed, "src", Repeat::Each),
        Restarts::Never,
    );
    let mut h = harness(&[src.clone(), hook.clone()], Duration::from_secs(5));
    h.start(&src);
    h.start(&hook);
    h.publish(EventCode::Startup, GLOBAL);
    let src_run = h.spawned(1, "src").await;
    h.fake.exit(src_run.pid, FAILED);
    // `src` restarts at once; the hook starts on its failure.
    let src_again = h.spawned(2, "src").await;
    let hook_run = h.spawned(3, "hook").await;
    h.fake.exit(src_again.pid, FAILED);
    h.next_event(EventCode::Stopped, "src").await;
    h.settle().await;
    assert_eq!(
        h.programs(),
        ["src", "src", "hook"],
        "the second failure is queued"
    );
    h.fake.exit(hook_run.pid, OK);
    let queued = h.spawned(4, "hook").await;
    h.fake.exit(queued.pid, OK);
    h.next_event(EventCode::Stopped, "hook").await;
    assert_eq!(h.programs(), ["src", "src", "hook", "hook"]);
}

#[tokio::test(start_paused = true)]
async fn restarts_n_runs_n_plus_one_times_then_the_job_stops() {
    let app = job("app", Some("app"), When::Startup, Restarts::Times(2));
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    let handle = h.start(&app);
    h.publish(EventCode::Startup, GLOBAL);
    for n in 1..=3 {
        let run = h.spawned(n, "app").await;
        // Long runs: no backoff in the way.
        tokio::time::sleep(jobs::CRASH_RUN).await;
        h.fake.exit(run.pid, FAILED);
    }
    h.next_event(EventCode::Stopped, "app").await;
    assert_eq!(h.programs(), ["app", "app", "app"]);
    assert_eq!(handle.status().restarts, 2);
    assert_eq!(handle.status().last_exit, Some(FAILED));
    let outcome = within("the job's end", h.tasks.join_next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.last_exit, Some(FAILED));
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_is_sigkilled_with_its_group() {
    let mut app = job(
        "app",
        Some("app"),
        When::on(EventCode::Signal, "SIGHUP", Repeat::Each),
        Restarts::Never,
    );
    app.timeout = Some(Duration::from_secs(3));
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    h.start(&app);
    h.publish(EventCode::Signal, "SIGHUP");
    let run = h.spawned(1, "app").await;
    let started = Instant::now();
    h.signalled(run.pid, libc::SIGKILL).await;
    assert_eq!(Instant::now() - started, Duration::from_secs(3));
    assert_eq!(h.fake.signals(), [(run.pid, libc::SIGKILL)]);
    h.fake.exit(run.pid, ExitStatus::Signaled(libc::SIGKILL));
    h.next_event(EventCode::ExitFailed, "app").await;
    // The job waits for its next trigger.
    h.publish(EventCode::Signal, "SIGHUP");
    h.spawned(2, "app").await;
}

#[tokio::test(start_paused = true)]
async fn what_a_run_leaves_in_its_group_gets_the_stop_signal() {
    let mut app = job("app", Some("app"), When::Startup, Restarts::Never);
    app.stop_signal = libc::SIGUSR1;
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    h.start(&app);
    h.publish(EventCode::Startup, GLOBAL);
    let run = h.spawned(1, "app").await;
    h.fake.exit_leaving_group(run.pid, OK);
    h.next_event(EventCode::ExitSuccess, "app").await;
    h.signalled(run.pid, libc::SIGUSR1).await;
    h.fake.group_gone(run.pid);
    h.next_event(EventCode::Stopped, "app").await;
    assert_eq!(h.fake.signals(), [(run.pid, libc::SIGUSR1)]);
}

#[tokio::test(start_paused = true)]
async fn a_program_that_cannot_start_fails_the_run_and_restarts() {
    let app = job("app", Some("missing"), When::Startup, Restarts::Times(1));
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    h.fake.make_missing("missing");
    let handle = h.start(&app);
    h.publish(EventCode::Startup, GLOBAL);
    h.next_event(EventCode::Stopped, "app").await;
    assert_eq!(
        h.seen_from("app"),
        [
            EventCode::ExitFailed,
            EventCode::ExitFailed,
            EventCode::Stopping,
            EventCode::Stopped
        ],
        "one run and its restart, both failed"
    );
    assert!(h.programs().is_empty());
    assert_eq!(handle.status().last_exit, Some(ExitStatus::Exited(127)));
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_trigger_never_comes_gives_up_at_its_when_timeout() {
    let app = job(
        "app",
        Some("app"),
        When::Event {
            code: EventCode::StatusHealthy,
            source: "db".into(),
            repeat: Repeat::Once,
            timeout: Some(Duration::from_secs(7)),
        },
        Restarts::Never,
    );
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    let started = Instant::now();
    h.start(&app);
    let expired = h.next_event(EventCode::TimerExpired, "app").await;
    assert_eq!(expired - started, Duration::from_secs(7));
    h.next_event(EventCode::Stopped, "app").await;
    assert!(h.programs().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_signal_request_reaches_the_group_of_the_running_exec_only() {
    let app = job(
        "app",
        Some("app"),
        When::on(EventCode::Signal, "SIGHUP", Repeat::Each),
        Restarts::Never,
    );
    let mut h = harness(std::slice::from_ref(&app), Duration::from_secs(5));
    let handle = h.start(&app);
    assert!(!within("an answer", handle.signal(libc::SIGUSR2)).await);
    h.publish(EventCode::Signal, "SIGHUP");
    let run = h.spawned(1, "app").await;
    assert!(within("an answer", handle.signal(libc::SIGUSR2)).await);
    assert_eq!(h.fake.signals(), [(run.pid, libc::SIGUSR2)]);
    h.fake.exit(run.pid, OK);
    h.next_event(EventCode::ExitSuccess, "app").await;
    assert!(!within("an answer", handle.signal(libc::SIGUSR2)).await);
    assert_eq!(h.fake.signals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_stop_hook_run_once_on_its_trigger_while_stop_now_ends_a_run_at_once() {
    let app = job("app", Some("app"), When::Startup, Restarts::Never);
    let hook = job(
        "hook",
        Some("hook"),
        When::on(EventCode::Stopping, "app", Repeat::Each),
        Restarts::Never,
    );
    let all = [app.clone(), hook.clone()];
    let mut h = harness(&all, Duration::from_secs(5));
    let app_handle = h.start(&app);
    let hook_handle = h.start(&hook);
    h.publish(EventCode::Startup, GLOBAL);
    let app_run = h.spawned(1, "app").await;
    // A reload that stops `app` tells its hook first: it still runs for this stop.
    hook_handle.shut_down();
    app_handle.stop_now();
    let hook_run = h.spawned(2, "hook").await;
    h.fake.exit(hook_run.pid, OK);
    h.next_event(EventCode::Stopped, "hook").await;
    h.signalled(app_run.pid, libc::SIGTERM).await;
    h.fake
        .exit(app_run.pid, ExitStatus::Signaled(libc::SIGTERM));
    h.next_event(EventCode::Stopped, "app").await;
    assert_eq!(
        h.programs(),
        ["app", "hook"],
        "the hook ran once, then stopped"
    );
    assert_eq!(
        h.fake.signals(),
        [(app_run.pid, libc::SIGTERM), (app_run.pid, libc::SIGCONT)],
        "the hook's run was not signalled"
    );
}
