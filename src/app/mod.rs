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
mod roster;
mod servers;
mod wiring;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use tokio::task::JoinError;
use tokio::time::Instant;

use crate::config::{self, Config, Exec, Job, JobKind, LoadContext, Restarts, When};
use crate::consul;
use crate::control;
use crate::events::{Bus, Event, EventCode, GLOBAL};
use crate::exec::{Environment, ip_var_name};
use crate::jobs::{Outcome, RunningConfig};
use crate::logging::{self, Logger};
use crate::metrics::Metrics;
use crate::serve::{self, DaemonRequest, StatusReport};
use crate::supervisor::{self, AllProcesses, Ownership, Received, Signals, Supervisor};
use crate::watches::{self, Snapshots, WatchHandle};
use roster::Roster;
use servers::Servers;
use wiring::Wiring;

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

/// The daemon's state, in parts: `wiring` (what every job is given), `roster` (the jobs and
/// what the daemon remembers of them), `servers` (the control socket, the telemetry server and
/// the channel they ask through), `watches`; around them the config, the metrics, the logger,
/// the signals, maintenance and the `Mode`.
struct Daemon {
    config_path: PathBuf,
    /// The running config, the main command's job included.
    cfg: Config,
    mode: Mode,
    maintenance: bool,
    wiring: Wiring,
    roster: Roster,
    servers: Servers,
    watches: Watches,
    metrics: Metrics,
    signals: Signals,
    logger: Logger,
}

/// The running watches, and their snapshots (shared with the control socket).
#[derive(Default)]
struct Watches {
    running: Vec<WatchHandle>,
    snapshots: Snapshots,
}

impl Watches {
    /// Starts a watch for every one of `wanted` that is not running yet, and stops the watches
    /// no longer wanted. An unchanged watch keeps its state (so a reload does not fire
    /// `changed` again for it).
    fn update(
        &mut self,
        wanted: &[config::Watch],
        consul: &consul::Client,
        bus: &Bus,
        metrics: &Metrics,
    ) {
        self.running.retain(|w| wanted.contains(&w.config));
        for watch in wanted {
            if !self.running.iter().any(|w| &w.config == watch) {
                let handle =
                    watches::spawn(watch.clone(), consul.clone(), bus.clone(), metrics.clone());
                self.running.push(handle);
            }
        }
        self.snapshots.replace(&self.running);
    }

    /// Stops every watch (each follows a new Consul agent once `update` starts it again).
    fn clear(&mut self) {
        self.running.clear();
    }
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
        let wiring = Wiring::new(processes, env, running_config_of(&cfg, consul));
        let roster = Roster::new(&wiring.bus);
        Daemon {
            config_path,
            cfg,
            mode: Mode::Running,
            maintenance: false,
            wiring,
            roster,
            servers: Servers::new(),
            watches: Watches::default(),
            metrics,
            signals,
            logger,
        }
    }

    async fn run(mut self) -> i32 {
        self.metrics.observe(&self.wiring.bus);
        let telemetry = self
            .start_control()
            .and_then(|()| self.servers.bind_telemetry(&self.cfg, &self.metrics));
        match telemetry {
            Ok(bound) => self.servers.replace_telemetry(&self.cfg, bound),
            Err(message) => {
                tracing::error!("{message}");
                return 1;
            }
        }
        self.set_service_ips();
        for job in self.cfg.jobs.clone() {
            (self.roster).spawn(Arc::new(job), &self.wiring.ctx, Vec::new());
        }
        self.start_watches();
        // Every job is subscribed: none can miss what another publishes from here on.
        (self.wiring.bus).publish(Event::new(EventCode::Startup, GLOBAL));

        while !self.roster.tasks.is_empty() {
            let deadline = self.mode.deadline();
            tokio::select! {
                Some(received) = self.signals.recv() => self.on_signal(received).await,
                Some(joined) = self.roster.tasks.join_next() => self.on_job_done(joined),
                Some(request) = self.servers.requests.recv() => self.on_request(request),
                () = sleep_until(deadline) => {
                    tracing::warn!("stop deadline reached: killing every process that is left");
                    self.wiring.processes.kill_all().await;
                    self.roster.tasks.abort_all();
                    break;
                }
            }
        }
        // No process may outlive pilot, including what the jobs left behind.
        let deadline = self
            .mode
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.cfg.stop_timeout);
        self.wiring.processes.terminate_all(deadline).await;
        // Last: stop hooks may still have used the control socket. Event streams get every
        // event up to here, then their end.
        self.wiring.bus.close_taps();
        self.servers.stop_control().await;
        self.roster.exit_code()
    }

    /// Starts the control socket, replacing a running one whose settings changed (a reload).
    fn start_control(&mut self) -> Result<(), String> {
        self.servers
            .start_control(&self.cfg, |daemon| control::Handles {
                env: self.wiring.env.clone(),
                bus: self.wiring.bus.clone(),
                metrics: self.metrics.clone(),
                daemon,
                watches: self.watches.snapshots.clone(),
            })
    }

    fn on_request(&mut self, request: DaemonRequest) {
        match request {
            DaemonRequest::Reload(reply) => self.reload(reply),
            DaemonRequest::Maintenance { enable, reply } => self.maintenance(enable, reply),
            DaemonRequest::Status(reply) => self.report_status(reply),
            DaemonRequest::Signal { job, signal, reply } => self.roster.signal(&job, signal, reply),
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
        self.wiring.bus.publish(Event::new(code, GLOBAL));
        if !enable {
            let _ = reply.send(true);
            return;
        }
        let registrations = self.roster.registrations();
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
    fn report_status(&self, reply: oneshot::Sender<StatusReport>) {
        let jobs = self
            .cfg
            .jobs
            .iter()
            .filter_map(|job| {
                let handle = self.roster.handles.get(job.key.as_str())?;
                Some(serve::JobReport::new(job, &handle.status()))
            })
            .collect();
        let mut report = StatusReport {
            jobs,
            watches: (self.watches.snapshots.all().iter())
                .map(serve::WatchReport::from)
                .collect(),
            maintenance: self.maintenance,
            consul: serve::ConsulReport::default(),
        };
        let client = self.wiring.consul();
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

    /// Starts the configured watches that are not running and stops the others.
    fn start_watches(&mut self) {
        let consul = self.wiring.consul();
        (self.watches).update(&self.cfg.watches, &consul, &self.wiring.bus, &self.metrics);
    }

    /// `CONTAINERPILOT_<JOB>_IP` (and `PILOT_<JOB>_IP`) for every service, as ContainerPilot
    /// sets them. Like ContainerPilot, pilot never removes one a reload made stale.
    fn set_service_ips(&self) {
        for job in &self.cfg.jobs {
            if let Some(service) = &job.service {
                self.wiring.env.set_both(
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
                    self.wiring.processes.kill_all().await;
                    self.set_deadline(Instant::now());
                    return;
                }
                self.begin_shutdown(&supervisor::signal_name(received.signal));
            }
            libc::SIGHUP | libc::SIGUSR2 => {
                let name = supervisor::signal_name(received.signal);
                self.wiring.bus.publish(Event::new(EventCode::Signal, name));
            }
            libc::SIGUSR1 => {
                if let Err(err) = self.logger.reopen() {
                    tracing::error!("{err}");
                }
            }
            other => {
                if let Some(pid) = self.roster.main_pid(&self.cfg) {
                    self.wiring.processes.signal_group(pid, other);
                }
            }
        }
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
        (self.wiring.bus).publish(Event::new(EventCode::Shutdown, GLOBAL));
    }

    /// Shuts down (or hurries a shutdown up): whatever is left at `deadline` is killed.
    fn set_deadline(&mut self, deadline: Instant) {
        self.mode = Mode::ShuttingDown { deadline };
        self.wiring.set_deadline(deadline);
    }

    fn on_job_done(&mut self, result: Result<Outcome, JoinError>) {
        let Some(outcome) = self.roster.joined(result) else {
            return;
        };
        if let Mode::Reloading(pending) = &mut self.mode
            && pending.stopping.remove(&outcome.key)
        {
            if pending.stopping.is_empty() {
                self.finish_reload();
            }
            return;
        }
        if self.roster.stopped(&outcome) {
            self.begin_shutdown(&format!("{} exited", outcome.name));
        }
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
