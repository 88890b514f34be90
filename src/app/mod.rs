//! The daemon: `pilot -config FILE [-- COMMAND]`.
//!
//! It loads the config, starts every job on one event bus, turns signals into a shutdown or into
//! events, and decides when pilot is done and with which status:
//!
//! - With a main process (the command after `--`, or the job with `main: true`), pilot shuts down
//!   when it has exited for good, and exits with its status (`128+N` for a signal).
//! - Without one: 0, after a shutdown or when every job has finished, whatever the jobs' last
//!   runs did, as ContainerPilot; 1 only if a job task itself failed (a panic in a debug build).
//!
//! A shutdown is a deadline, not a sleep: pilot exits as soon as every job has stopped and no
//! process is left, and SIGKILLs whatever is left at `stopTimeout` after it began.

mod reload;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::config::{self, Config, Exec, Job, JobKind, LoadContext, Restarts, When};
use crate::consul;
use crate::control;
use crate::events::{Bus, Event, EventCode, GLOBAL};
use crate::exec::{Environment, ip_var_name};
use crate::jobs::{self, Context, JobHandle, Outcome, RunningConfig};
use crate::logging::{self, Logger};
use crate::metrics::Metrics;
use crate::serve::{self, DaemonRequest, SignalAnswer, StatusReport};
use crate::supervisor::{self, AllProcesses, Ownership, Received, Signals, Supervisor};
use crate::telemetry;
use crate::watches::{self, Snapshots, WatchHandle};

/// The name of the job pilot makes of the command given after `--`.
pub const MAIN_JOB: &str = "main";

/// What the command line asked the daemon to run.
pub struct Options {
    pub config_path: PathBuf,
    /// The command after `--`, if any: the application.
    pub main_command: Vec<OsString>,
}

/// Runs the daemon to completion and returns the status pilot exits with.
pub fn run(ownership: Ownership, options: Options) -> i32 {
    let env = Environment::from_process();
    let (mut cfg, warnings) = match load(&options.config_path, &env) {
        Ok(loaded) => (loaded.config, loaded.warnings),
        Err(err) => {
            eprintln!("pilot: {err}");
            return 2;
        }
    };
    if !options.main_command.is_empty()
        && let Err(message) = add_main_command(&mut cfg, options.main_command)
    {
        eprintln!("pilot: {message}");
        return 2;
    }
    let logger = match logging::init(&cfg.logging) {
        Ok(logger) => logger,
        Err(err) => {
            eprintln!("pilot: {err}");
            return 2;
        }
    };
    // ContainerPilot logged the whole config here; pilot names the file, since the config may
    // hold the Consul token.
    tracing::debug!("loaded config: {}", options.config_path.display());
    log_warnings(&options.config_path, &warnings);
    let Some(runtime) = crate::runtime_or_report() else {
        return 1;
    };
    runtime.block_on(async move {
        let (sup, signals) = match Supervisor::start(ownership) {
            Ok(started) => started,
            Err(err) => {
                eprintln!(
                    "pilot: cannot start the supervisor: {}",
                    crate::errors::describe_io_error(&err)
                );
                return 1;
            }
        };
        let consul = match consul::Client::new(&cfg.consul) {
            Ok(client) => client,
            Err(err) => {
                eprintln!("pilot: {err}");
                return 2;
            }
        };
        let metrics = match Metrics::new(telemetry_metrics(&cfg)) {
            Ok(metrics) => metrics,
            Err(err) => {
                eprintln!("pilot: {err}");
                return 2;
            }
        };
        Daemon::new(
            options.config_path,
            cfg,
            consul,
            metrics,
            Arc::new(sup),
            signals,
            env,
            logger,
        )
        .run()
        .await
    })
}

/// Loads the config, rendering its template over the children's environment (which includes
/// `CONTAINERPILOT_PID`).
fn load(path: &std::path::Path, env: &Environment) -> Result<config::Loaded, config::LoadError> {
    config::load_with_warnings(path, &LoadContext::for_env(env.to_strings()))
}

/// Logs each warning of the config at `path`, one line each.
fn log_warnings(path: &std::path::Path, warnings: &[config::Problem]) {
    for warning in warnings {
        tracing::warn!("config {}: {warning}", path.display());
    }
}

/// Logs why a reload was refused: the first line, then each problem on a line of its own (a log
/// line holds no newline).
/// Adds the command given after `--` as the main job.
fn add_main_command(cfg: &mut Config, mut command: Vec<OsString>) -> Result<(), String> {
    if let Some(job) = cfg.jobs.iter().find(|j| j.main) {
        return Err(format!(
            "both a command after -- and job {:?} (main: true) are the main process: keep one",
            job.name
        ));
    }
    if cfg.jobs.iter().any(|j| j.name == MAIN_JOB) {
        return Err(format!(
            "a job is named {MAIN_JOB:?}, which is the name of the command given after --: rename the job"
        ));
    }
    let program = command.remove(0).to_string_lossy().into_owned();
    let args = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cfg.jobs.push(Job {
        name: MAIN_JOB.to_string(),
        key: MAIN_JOB.to_string(),
        kind: JobKind::MainCommand,
        exec: Some(Exec { program, args }),
        // The application's output passes straight through, as in init mode.
        raw_output: true,
        when: When::Startup,
        timeout: None,
        stop_timeout: None,
        restarts: Restarts::Never,
        health: None,
        service: None,
        main: true,
        stop_signal: libc::SIGTERM,
        user: None,
    });
    Ok(())
}

struct Daemon {
    config_path: PathBuf,
    /// The running config, the main command's job included.
    cfg: Config,
    /// Starts and ends processes: the supervisor, or a test's fake.
    processes: Arc<dyn AllProcesses>,
    signals: Signals,
    bus: Bus,
    env: Environment,
    logger: Logger,
    deadline: watch::Sender<Option<Instant>>,
    current: watch::Sender<RunningConfig>,
    ctx: Arc<Context>,
    /// Every job of the running config; a completed job's handle keeps its last status.
    jobs: BTreeMap<Arc<str>, JobHandle>,
    watches: Vec<WatchHandle>,
    /// The watches' snapshots, shared with the control socket.
    snapshots: Snapshots,
    metrics: Metrics,
    control: Option<control::Server>,
    telemetry: Option<telemetry::Server>,
    /// What the control socket and the telemetry server ask of the daemon.
    requests: mpsc::Receiver<DaemonRequest>,
    requests_tx: mpsc::Sender<DaemonRequest>,
    maintenance: bool,
    /// The mode the control socket was created with.
    control_mode: u32,
    tasks: JoinSet<Outcome>,
    /// Jobs that stopped for good (and were not started again by a reload).
    completed: BTreeSet<Arc<str>>,
    /// Every (code, source) published so far that a job started by a reload may need to know.
    happened: Arc<Mutex<reload::History>>,
    mode: Mode,
    /// The main process's last status, once it has exited for good.
    main_exit: Option<i32>,
    /// A job task failed (panicked, in a debug build).
    task_failed: bool,
}

/// What the daemon is doing.
enum Mode {
    /// Running its config.
    Running,
    /// A reload is stopping the jobs it replaces; the new config starts once they have stopped.
    Reloading(Box<reload::Pending>),
    /// Shutting down: at `deadline` whatever is left is killed. The jobs see the deadline in
    /// `Context::deadline`.
    ShuttingDown { deadline: Instant },
}

impl Mode {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Mode::ShuttingDown { deadline } => Some(*deadline),
            _ => None,
        }
    }
}

impl Daemon {
    #[allow(clippy::too_many_arguments)] // each is one of the daemon's parts, built by `run`
    fn new(
        config_path: PathBuf,
        cfg: Config,
        consul: consul::Client,
        metrics: Metrics,
        processes: Arc<dyn AllProcesses>,
        signals: Signals,
        env: Environment,
        logger: Logger,
    ) -> Daemon {
        let bus = Bus::new();
        let happened = Arc::new(Mutex::new(HashSet::new()));
        let seen = happened.clone();
        bus.observe(Arc::new(move |event: &Event| {
            if reload::remembered(event) {
                lock(&seen).insert((event.code, event.source.clone()));
            }
        }));
        let deadline = watch::Sender::new(None);
        let current = watch::Sender::new(running_config_of(&cfg, consul));
        let (requests_tx, requests) = serve::daemon_channel();
        let ctx = Arc::new(Context {
            processes: processes.clone(),
            bus: bus.clone(),
            env: env.clone(),
            deadline: deadline.subscribe(),
            config: current.subscribe(),
        });
        Daemon {
            config_path,
            cfg,
            processes,
            signals,
            bus,
            env,
            logger,
            deadline,
            current,
            ctx,
            jobs: BTreeMap::new(),
            watches: Vec::new(),
            snapshots: Snapshots::default(),
            metrics,
            control: None,
            telemetry: None,
            requests,
            requests_tx,
            maintenance: false,
            control_mode: 0,
            tasks: JoinSet::new(),
            completed: BTreeSet::new(),
            happened,
            mode: Mode::Running,
            main_exit: None,
            task_failed: false,
        }
    }

    async fn run(mut self) -> i32 {
        self.metrics.observe(&self.bus);
        let telemetry = self
            .start_control()
            .and_then(|()| self.bind_telemetry(&self.cfg));
        match telemetry {
            Ok(bound) => self.replace_telemetry(bound),
            Err(message) => {
                tracing::error!("{message}");
                return 1;
            }
        }
        self.set_service_ips();
        for job in self.cfg.jobs.clone() {
            self.spawn(Arc::new(job), Vec::new());
        }
        self.start_watches();
        // Every job is subscribed: none can miss what another publishes from here on.
        self.bus.publish(Event::new(EventCode::Startup, GLOBAL));

        while !self.tasks.is_empty() {
            let deadline = self.mode.deadline();
            tokio::select! {
                Some(received) = self.signals.recv() => self.on_signal(received).await,
                Some(joined) = self.tasks.join_next() => self.on_job_done(joined),
                Some(request) = self.requests.recv() => self.on_request(request),
                () = sleep_until(deadline) => {
                    tracing::warn!("stop deadline reached: killing every process that is left");
                    self.processes.kill_all().await;
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        // No process may outlive pilot, including what the jobs left behind.
        let deadline = self
            .mode
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.cfg.stop_timeout);
        self.processes.terminate_all(deadline).await;
        // Last: stop hooks may still have used the control socket. Event streams get every
        // event up to here, then their end.
        self.bus.close_taps();
        if let Some(server) = self.control.take() {
            server.stop().await;
        }
        self.exit_code()
    }

    /// Starts the control socket, replacing a running one whose settings changed (a reload).
    fn start_control(&mut self) -> Result<(), String> {
        if self.control.as_ref().is_none_or(|c| {
            c.path() != self.cfg.control.socket || self.control_mode != self.cfg.control.mode
        }) {
            let handles = control::Handles {
                env: self.env.clone(),
                bus: self.bus.clone(),
                metrics: self.metrics.clone(),
                daemon: self.requests_tx.clone(),
                watches: self.snapshots.clone(),
            };
            let server =
                control::Server::start(&self.cfg.control, handles).map_err(|e| e.to_string())?;
            tracing::info!("control: serving at {}", self.cfg.control.socket.display());
            // The old server (if any) is dropped here, after the new one listens.
            self.control = Some(server);
            self.control_mode = self.cfg.control.mode;
        }
        Ok(())
    }

    /// Binds the telemetry server `cfg` needs when it is not the one running, without touching
    /// the running one: a reload whose new address cannot be bound is refused while the old
    /// config and server still run. `None` when nothing is to change.
    fn bind_telemetry(&self, cfg: &Config) -> Result<Option<telemetry::Server>, String> {
        let Some(telemetry) = &cfg.telemetry else {
            return Ok(None);
        };
        let wanted = std::net::SocketAddr::new(telemetry.address, telemetry.port);
        if self
            .telemetry
            .as_ref()
            .is_some_and(|t| t.address() == wanted)
        {
            return Ok(None);
        }
        let server =
            telemetry::Server::start(telemetry, self.metrics.clone(), self.requests_tx.clone())
                .map_err(|e| e.to_string())?;
        Ok(Some(server))
    }

    /// Puts `bound` (from `bind_telemetry`) in place of the running telemetry server, or stops
    /// the running one when the config has no `telemetry`.
    fn replace_telemetry(&mut self, bound: Option<telemetry::Server>) {
        if self.cfg.telemetry.is_none() {
            self.telemetry = None;
        } else if let Some(server) = bound {
            tracing::info!("telemetry: serving at {}", server.address());
            // The old server (if any) is dropped here, after the new one listens.
            self.telemetry = Some(server);
        }
    }

    fn on_request(&mut self, request: DaemonRequest) {
        match request {
            DaemonRequest::Reload(reply) => self.reload(reply),
            DaemonRequest::Maintenance { enable, reply } => self.maintenance(enable, reply),
            DaemonRequest::Status(reply) => self.report_status(reply),
            DaemonRequest::Signal { job, signal, reply } => self.signal_job(&job, signal, reply),
        }
    }

    /// Switches maintenance mode. Entering it is answered once every service has left Consul
    /// (or could not, within `MAINTENANCE_TIMEOUT`), so that a script that runs
    /// `pilot -maintenance enable` can rely on it; leaving it is answered at once (each service
    /// is registered again by its next check).
    fn maintenance(&mut self, enable: bool, reply: oneshot::Sender<bool>) {
        if self.maintenance == enable {
            let _ = reply.send(false);
            return;
        }
        self.maintenance = enable;
        tracing::info!("maintenance mode {}", if enable { "on" } else { "off" });
        let code = if enable {
            EventCode::EnterMaintenance
        } else {
            EventCode::ExitMaintenance
        };
        self.bus.publish(Event::new(code, GLOBAL));
        if !enable {
            let _ = reply.send(true);
            return;
        }
        let registrations: Vec<_> = self
            .jobs
            .values()
            .filter_map(JobHandle::watch_registration)
            .collect();
        tokio::spawn(async move {
            let all_out = async {
                for mut registration in registrations {
                    let _ = registration
                        .wait_for(|s| s.maintenance && !s.registered)
                        .await;
                }
            };
            if tokio::time::timeout(MAINTENANCE_TIMEOUT, all_out)
                .await
                .is_err()
            {
                tracing::warn!(
                    "maintenance: not every service left Consul within {MAINTENANCE_TIMEOUT:?}"
                );
            }
            let _ = reply.send(true);
        });
    }

    /// Answers a status request. Whether Consul answers is probed in a task of its own (the
    /// daemon's loop never waits on the network).
    /// `pilot -signal JOB=SIGNAL`: the job's task sends it (it alone knows whether its process
    /// is still there); the answer comes back without holding up the daemon's loop.
    /// Every job of that name gets it (two jobs may share a name).
    fn signal_job(&self, job: &str, signal: i32, reply: oneshot::Sender<SignalAnswer>) {
        let sent: Vec<_> = self
            .jobs
            .values()
            .filter(|handle| &*handle.name == job)
            .map(|handle| handle.signal(signal))
            .collect();
        if sent.is_empty() {
            let _ = reply.send(SignalAnswer::UnknownJob);
            return;
        }
        tokio::spawn(async move {
            let mut answer = SignalAnswer::NotRunning;
            for sent in sent {
                if sent.await {
                    answer = SignalAnswer::Sent;
                }
            }
            let _ = reply.send(answer);
        });
    }

    fn report_status(&self, reply: oneshot::Sender<StatusReport>) {
        let jobs = self
            .cfg
            .jobs
            .iter()
            .filter_map(|job| {
                let handle = self.jobs.get(job.key.as_str())?;
                Some(serve::JobReport::new(job, &handle.status()))
            })
            .collect();
        let mut report = StatusReport {
            jobs,
            watches: self
                .snapshots
                .all()
                .iter()
                .map(serve::WatchReport::from)
                .collect(),
            maintenance: self.maintenance,
            consul: serve::ConsulReport::default(),
        };
        let client = self.current.borrow().consul.clone();
        tokio::spawn(async move {
            report.consul.address = client.target().to_string();
            match tokio::time::timeout(STATUS_PROBE_TIMEOUT, client.leader()).await {
                Ok(Ok(_)) => report.consul.reachable = true,
                Ok(Err(err)) => report.consul.error = Some(err.to_string()),
                Err(_) => {
                    report.consul.error = Some(format!("no answer within {STATUS_PROBE_TIMEOUT:?}"))
                }
            }
            let _ = reply.send(report);
        });
    }

    /// Starts a watch for every configured watch that is not running yet, and stops the watches
    /// no longer configured. An unchanged watch keeps its state (so a reload does not fire
    /// `changed` again for it).
    fn start_watches(&mut self) {
        let wanted = &self.cfg.watches;
        self.watches.retain(|w| wanted.contains(&w.config));
        let consul = self.current.borrow().consul.clone();
        for watch in wanted {
            if !self.watches.iter().any(|w| &w.config == watch) {
                let handle = watches::spawn(
                    watch.clone(),
                    consul.clone(),
                    self.bus.clone(),
                    self.metrics.clone(),
                );
                self.watches.push(handle);
            }
        }
        self.snapshots.replace(&self.watches);
    }

    fn spawn(&mut self, job: Arc<Job>, replay: Vec<Event>) {
        let key: Arc<str> = job.key.as_str().into();
        self.completed.remove(&key);
        let handle = jobs::spawn(job, self.ctx.clone(), replay, &mut self.tasks);
        self.jobs.insert(key, handle);
    }

    /// `CONTAINERPILOT_<JOB>_IP` (and `PILOT_<JOB>_IP`) for every service, as ContainerPilot
    /// sets them. Like ContainerPilot, pilot never removes one a reload made stale.
    fn set_service_ips(&self) {
        for job in &self.cfg.jobs {
            if let Some(service) = &job.service {
                self.env.set_both(
                    &format!("{}_IP", ip_var_name(&job.name)),
                    &service.address.to_string(),
                );
            }
        }
    }

    async fn on_signal(&mut self, received: Received) {
        match received.signal {
            libc::SIGTERM | libc::SIGINT => {
                if let Mode::ShuttingDown { .. } = self.mode {
                    tracing::warn!(
                        "{} during shutdown: killing every process now",
                        supervisor::signal_name(received.signal)
                    );
                    self.processes.kill_all().await;
                    self.set_deadline(Instant::now());
                    return;
                }
                self.begin_shutdown(&supervisor::signal_name(received.signal));
            }
            libc::SIGHUP | libc::SIGUSR2 => {
                let name = supervisor::signal_name(received.signal);
                self.bus.publish(Event::new(EventCode::Signal, name));
            }
            libc::SIGUSR1 => {
                if let Err(err) = self.logger.reopen() {
                    tracing::error!("{err}");
                }
            }
            other => {
                if let Some(pid) = self.main_pid() {
                    self.processes.signal_group(pid, other);
                }
            }
        }
    }

    fn main_pid(&self) -> Option<i32> {
        let main = self.cfg.jobs.iter().find(|j| j.main)?;
        self.jobs
            .get(main.key.as_str())
            .and_then(|h| h.status().pid)
    }

    fn begin_shutdown(&mut self, why: &str) {
        if let Mode::ShuttingDown { .. } = self.mode {
            return;
        }
        tracing::info!("shutting down ({why})");
        if let Mode::Reloading(pending) = &mut self.mode {
            pending.refuse_all(SHUTTING_DOWN);
        }
        self.set_deadline(Instant::now() + self.cfg.stop_timeout);
        self.bus.publish(Event::new(EventCode::Shutdown, GLOBAL));
    }

    /// Shuts down (or hurries a shutdown up): whatever is left at `deadline` is killed.
    fn set_deadline(&mut self, deadline: Instant) {
        self.mode = Mode::ShuttingDown { deadline };
        self.deadline.send_replace(Some(deadline));
    }

    fn on_job_done(&mut self, result: Result<Outcome, JoinError>) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) => {
                // A job task cannot panic in a release build (panics abort); in a debug build
                // the job is simply gone, and counts as failed.
                tracing::error!("a job task failed: {err}");
                self.task_failed = true;
                return;
            }
        };
        if let Mode::Reloading(pending) = &mut self.mode
            && pending.stopping.remove(&outcome.key)
        {
            if pending.stopping.is_empty() {
                self.finish_reload();
            }
            return;
        }
        self.completed.insert(outcome.key.clone());
        if outcome.main {
            // The main process's status is the status of its last run.
            self.main_exit = Some(outcome.last_exit.map_or(0, |s| s.code()));
            self.begin_shutdown(&format!("{} exited", outcome.name));
        }
    }

    fn exit_code(&self) -> i32 {
        if let Some(code) = self.main_exit {
            return code;
        }
        // ContainerPilot exited 0 whatever its jobs did; so does pilot without a main process.
        i32::from(self.task_failed)
    }
}

fn running_config_of(cfg: &Config, consul: consul::Client) -> RunningConfig {
    RunningConfig {
        jobs: Arc::new(cfg.jobs.iter().cloned().map(Arc::new).collect()),
        stop_timeout: cfg.stop_timeout,
        consul,
    }
}

/// The user metrics of `telemetry`, if any.
fn telemetry_metrics(cfg: &Config) -> &[config::Metric] {
    cfg.telemetry.as_ref().map_or(&[], |t| &t.metrics)
}

/// The answer to a reload asked for during shutdown.
const SHUTTING_DOWN: &str = "pilot is shutting down";

/// How long entering maintenance waits for the services to leave Consul.
const MAINTENANCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a status report waits for Consul to say it is there.
const STATUS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
