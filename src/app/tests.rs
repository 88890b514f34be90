//! The daemon under tokio's paused time, through the process seam's fake and fake signals: a
//! reload keeps the jobs it does not change and restarts the ones it does, and a shutdown stops
//! every job before it ends what is left.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::{Daemon, load, telemetry_metrics};
use crate::consul;
use crate::events::{EventCode, Subscription};
use crate::exec::Environment;
use crate::logging::Logger;
use crate::metrics::Metrics;
use crate::serve::DaemonRequest;
use crate::supervisor::fake::{FakeProcesses, Spawned};
use crate::supervisor::{ExitStatus, Received, Signals};

/// How long, in paused time, a wait for something that must happen lasts.
const PATIENCE: Duration = Duration::from_secs(3600);

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"))
}

/// A directory of its own for each test's config file and control socket.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("pilot-daemon-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Dir(dir)
    }

    fn config(&self) -> PathBuf {
        self.0.join("pilot.json5")
    }

    /// Writes a config with `jobs` (JSON5 text of the job objects).
    fn write(&self, jobs: &str) {
        let text = format!(
            "{{ consul: \"127.0.0.1:1\", stopTimeout: \"10s\", control: {{ socket: \"{}\" }}, jobs: [{jobs}] }}",
            self.0.join("pilot.socket").display()
        );
        std::fs::write(self.config(), text).expect("write the config");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon on the fake, not yet running, and the ends a test drives it by.
struct Harness {
    daemon: Daemon,
    fake: Arc<FakeProcesses>,
    signals: mpsc::UnboundedSender<Received>,
    requests: mpsc::Sender<DaemonRequest>,
    events: Subscription,
}

fn daemon(config: &Path) -> Harness {
    let env = Environment::default();
    let cfg = load(config, &env).expect("the config loads").config;
    let consul = consul::Client::new(&cfg.consul).expect("a Consul client");
    let metrics = Metrics::new(telemetry_metrics(&cfg)).expect("the metrics");
    let logger = Logger::uninstalled(&cfg.logging).expect("a logger");
    let fake = FakeProcesses::new();
    let (signals, received) = Signals::fake();
    let daemon = Daemon::new(
        config.to_path_buf(),
        cfg,
        consul,
        metrics,
        fake.clone(),
        received,
        env,
        logger,
    );
    let requests = daemon.servers.requests_tx.clone();
    let events = daemon.wiring.bus.subscribe();
    Harness {
        daemon,
        fake,
        signals,
        requests,
        events,
    }
}

fn sigterm() -> Received {
    Received {
        signal: libc::SIGTERM,
        sender: 0,
    }
}

/// Reads events until `code` from `source`.
async fn event(events: &mut Subscription, code: EventCode, source: &str) {
    loop {
        let event = within(&format!("{code:?} from {source}"), events.recv())
            .await
            .expect("the bus is open");
        if event.code == code && &*event.source == source {
            return;
        }
    }
}

/// The spawn of `program` among the first `n` spawns, once there are `n`.
async fn spawn_of(fake: &FakeProcesses, n: usize, program: &str) -> Spawned {
    within(&format!("spawn {n}"), fake.spawned(n)).await;
    fake.spawns()
        .into_iter()
        .find(|s| s.program == program)
        .unwrap_or_else(|| panic!("{program} was never spawned"))
}

#[tokio::test(start_paused = true)]
async fn a_reload_restarts_the_changed_job_and_keeps_the_unchanged_one() {
    let dir = Dir::new("reload");
    dir.write(r#"{ name: "keep", exec: "keep" }, { name: "change", exec: "old" }"#);
    let Harness {
        daemon,
        fake,
        signals,
        requests,
        mut events,
    } = daemon(&dir.config());
    let test = async {
        let keep = spawn_of(&fake, 2, "keep").await;
        let old = spawn_of(&fake, 2, "old").await;
        dir.write(r#"{ name: "keep", exec: "keep" }, { name: "change", exec: "new" }"#);
        let (reply, answer) = oneshot::channel();
        requests
            .send(DaemonRequest::Reload(reply))
            .await
            .expect("the daemon listens");
        within(
            "the old run's stop signal",
            fake.signalled(old.pid, libc::SIGTERM),
        )
        .await;
        fake.exit(old.pid, ExitStatus::Signaled(libc::SIGTERM));
        let new = spawn_of(&fake, 3, "new").await;
        assert_eq!(within("the reload's answer", answer).await, Ok(Ok(())));
        assert!(
            fake.signals().iter().all(|(pgid, _)| *pgid != keep.pid),
            "the unchanged job was left alone: {:?}",
            fake.signals()
        );
        // Shut down, so that the daemon's run ends.
        signals.send(sigterm()).unwrap();
        for run in [&keep, &new] {
            within("the stop signal", fake.signalled(run.pid, libc::SIGTERM)).await;
            fake.exit(run.pid, ExitStatus::Signaled(libc::SIGTERM));
        }
        event(&mut events, EventCode::Stopped, "keep").await;
    };
    let (code, ()) = tokio::join!(daemon.run(), test);
    assert_eq!(code, 0);
    assert_eq!(
        fake.spawns().len(),
        3,
        "keep once, old, new: {:?}",
        fake.spawns()
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_job_then_ends_what_is_left_at_the_deadline() {
    let dir = Dir::new("shutdown");
    dir.write(
        r#"{ name: "app", exec: "app" }, { name: "pre", exec: "pre", when: { source: "app", once: "stopping" } }"#,
    );
    let Harness {
        daemon,
        fake,
        signals,
        requests: _requests,
        mut events,
    } = daemon(&dir.config());
    let test = async {
        let app = spawn_of(&fake, 1, "app").await;
        let began = Instant::now();
        signals.send(sigterm()).unwrap();
        let pre = spawn_of(&fake, 2, "pre").await;
        // The pre-stop hook leaves a process behind in its group.
        fake.exit_leaving_group(pre.pid, ExitStatus::Exited(0));
        event(&mut events, EventCode::Stopped, "pre").await;
        within(
            "the app's stop signal",
            fake.signalled(app.pid, libc::SIGTERM),
        )
        .await;
        fake.exit(app.pid, ExitStatus::Signaled(libc::SIGTERM));
        event(&mut events, EventCode::Stopped, "app").await;
        within(
            "SIGKILL at the deadline",
            fake.signalled(pre.pid, libc::SIGKILL),
        )
        .await;
        assert_eq!(
            Instant::now() - began,
            Duration::from_secs(10),
            "stopTimeout"
        );
        (app.pid, pre.pid)
    };
    let (code, (app, pre)) = tokio::join!(daemon.run(), test);
    assert_eq!(code, 0);
    assert_eq!(
        fake.signals(),
        [
            (pre, libc::SIGTERM), // the hook's leftovers, when the hook exited
            (app, libc::SIGTERM), // the app's stop, after its pre-stop hook
            (app, libc::SIGCONT),
            (pre, libc::SIGTERM), // every job has stopped: what is left is ended
            (pre, libc::SIGKILL), // at the deadline
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_restarts_the_followers_of_a_changed_job_only() {
    let dir = Dir::new("followers");
    let followers = r#"{ name: "f-change", exec: "f-change", when: { source: "change", each: "exitFailed" } },
        { name: "f-keep", exec: "f-keep", when: { source: "keep", each: "exitFailed" } }"#;
    dir.write(&format!(
        r#"{{ name: "keep", exec: "keep" }}, {{ name: "change", exec: "old" }}, {followers}"#
    ));
    let Harness {
        daemon,
        fake,
        signals,
        requests,
        mut events,
    } = daemon(&dir.config());
    let test = async {
        let keep = spawn_of(&fake, 2, "keep").await;
        let old = spawn_of(&fake, 2, "old").await;
        dir.write(&format!(
            r#"{{ name: "keep", exec: "keep" }}, {{ name: "change", exec: "new" }}, {followers}"#
        ));
        let (reply, answer) = oneshot::channel();
        requests.send(DaemonRequest::Reload(reply)).await.unwrap();
        within(
            "the old run's stop signal",
            fake.signalled(old.pid, libc::SIGTERM),
        )
        .await;
        fake.exit(old.pid, ExitStatus::Signaled(libc::SIGTERM));
        assert_eq!(within("the reload's answer", answer).await, Ok(Ok(())));
        // Everything the reload published is on the bus by now.
        let mut stopped = Vec::new();
        while let Ok(event) = events.try_recv() {
            if event.code == EventCode::Stopped {
                stopped.push(event.source.to_string());
            }
        }
        stopped.sort();
        assert_eq!(
            stopped,
            ["change", "f-change"],
            "the follower of the changed job"
        );
        // The new follower serves the new run.
        let new = spawn_of(&fake, 3, "new").await;
        fake.exit(new.pid, ExitStatus::Exited(1));
        let follower = spawn_of(&fake, 4, "f-change").await;
        fake.exit(follower.pid, ExitStatus::Exited(0));
        signals.send(sigterm()).unwrap();
        within("the stop signal", fake.signalled(keep.pid, libc::SIGTERM)).await;
        fake.exit(keep.pid, ExitStatus::Signaled(libc::SIGTERM));
    };
    let (code, ()) = tokio::join!(daemon.run(), test);
    assert_eq!(code, 0);
    let programs: Vec<String> = fake.spawns().into_iter().map(|s| s.program).collect();
    assert_eq!(programs.len(), 4, "{programs:?}");
}
