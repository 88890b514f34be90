//! The daemon: `pilot -config FILE [-- COMMAND]`.
//!
//! It loads the config, starts every job on one event bus, turns signals into a shutdown or into
//! events, and decides when pilot is done and with which status:
//!
//! - With a main process (the command after `--`, or the job with `main: true`), pilot shuts down
//!   when it has exited for good, and exits with its status (`128+N` for a signal).
//! - Without one: 0 after a shutdown by SIGTERM or SIGINT, or when every job finished and the
//!   last run of each succeeded; 1 when a job's last run failed.
//!
//! A shutdown is a deadline, not a sleep: pilot exits as soon as every job has stopped and no
//! process is left, and SIGKILLs whatever is left at `stopTimeout` after it began.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::config::{
    self, Config, Exec, Job, JobKind, LoadContext, Restarts, SystemInterfaces, When,
};
use crate::events::{Bus, Event, EventCode, GLOBAL};
use crate::jobs::{self, Context, Environment, JobHandle, Outcome, ip_var_name};
use crate::logging::{self, Logger};
use crate::supervisor::{self, Ownership, Received, Signals, Supervisor};

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
    let mut cfg = match load(&options.config_path, &env) {
        Ok(cfg) => cfg,
        Err(err) => {
            eprintln!("pilot: {err}");
            return 2;
        }
    };
    if !options.main_command.is_empty() {
        if let Err(message) = add_main_command(&mut cfg, options.main_command) {
            eprintln!("pilot: {message}");
            return 2;
        }
    }
    let logger = match logging::init(&cfg.logging) {
        Ok(logger) => logger,
        Err(err) => {
            eprintln!("pilot: {err}");
            return 2;
        }
    };
    let runtime = match crate::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!(
                "pilot: cannot start: {}",
                supervisor::describe_io_error(&err)
            );
            return 1;
        }
    };
    runtime.block_on(async move {
        let (sup, signals) = match Supervisor::start(ownership) {
            Ok(started) => started,
            Err(err) => {
                eprintln!(
                    "pilot: cannot start the supervisor: {}",
                    supervisor::describe_io_error(&err)
                );
                return 1;
            }
        };
        Daemon::new(cfg, sup, signals, env, logger).run().await
    })
}

/// Loads the config, rendering its template over the children's environment (which includes
/// `CONTAINERPILOT_PID`).
fn load(path: &std::path::Path, env: &Environment) -> Result<Config, config::LoadError> {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let ctx = LoadContext::new(env.to_strings(), hostname, SystemInterfaces);
    config::load(path, &ctx)
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
    });
    Ok(())
}

struct Daemon {
    cfg: Config,
    sup: Supervisor,
    signals: Signals,
    bus: Bus,
    env: Environment,
    logger: Logger,
    deadline: watch::Sender<Option<Instant>>,
    handles: Vec<JobHandle>,
    /// Shutdown was asked for by SIGTERM or SIGINT.
    signalled: bool,
    /// The main process's last status, once it has exited for good.
    main_exit: Option<i32>,
    /// Some job's last run failed.
    failed: bool,
}

impl Daemon {
    fn new(
        cfg: Config,
        sup: Supervisor,
        signals: Signals,
        env: Environment,
        logger: Logger,
    ) -> Daemon {
        Daemon {
            cfg,
            sup,
            signals,
            bus: Bus::new(),
            env,
            logger,
            deadline: watch::Sender::new(None),
            handles: Vec::new(),
            signalled: false,
            main_exit: None,
            failed: false,
        }
    }

    async fn run(mut self) -> i32 {
        for job in &self.cfg.jobs {
            if let Some(service) = &job.service {
                self.env.set_both(
                    &format!("{}_IP", ip_var_name(&job.name)),
                    &service.address.to_string(),
                );
            }
        }
        let ctx = Arc::new(Context {
            sup: self.sup.clone(),
            bus: self.bus.clone(),
            env: self.env.clone(),
            deadline: self.deadline.subscribe(),
            stop_timeout: self.cfg.stop_timeout,
        });
        let jobs: Vec<Arc<Job>> = self.cfg.jobs.iter().cloned().map(Arc::new).collect();
        let mut tasks = JoinSet::new();
        self.handles = jobs::spawn_all(&jobs, &ctx, &mut tasks);
        // Every job is subscribed: none can miss what another publishes from here on.
        self.bus.publish(Event::new(EventCode::Startup, GLOBAL));

        loop {
            let deadline = *self.deadline.borrow();
            tokio::select! {
                Some(received) = self.signals.recv() => self.on_signal(received).await,
                joined = tasks.join_next() => match joined {
                    Some(result) => self.on_job_done(result),
                    None => break,
                },
                () = sleep_until(deadline) => {
                    tracing::warn!("stop deadline reached: killing every process that is left");
                    self.sup.kill_all().await;
                    tasks.abort_all();
                    break;
                }
            }
        }
        // No process may outlive pilot, including what the jobs left behind.
        let deadline = self
            .deadline
            .borrow()
            .unwrap_or_else(|| Instant::now() + self.cfg.stop_timeout);
        self.sup.terminate_all(deadline).await;
        self.exit_code()
    }

    async fn on_signal(&mut self, received: Received) {
        match received.signal {
            libc::SIGTERM | libc::SIGINT => {
                if self.deadline.borrow().is_some() {
                    tracing::warn!(
                        "{} during shutdown: killing every process now",
                        supervisor::signal_name(received.signal)
                    );
                    self.sup.kill_all().await;
                    self.deadline.send_replace(Some(Instant::now()));
                    return;
                }
                self.signalled = true;
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
                    self.sup.signal_group(pid, other);
                }
            }
        }
    }

    fn main_pid(&self) -> Option<i32> {
        let main = self.cfg.jobs.iter().find(|j| j.main)?;
        self.handles
            .iter()
            .find(|h| *h.name == main.name)
            .and_then(|h| h.status().pid)
    }

    fn begin_shutdown(&mut self, why: &str) {
        if self.deadline.borrow().is_some() {
            return;
        }
        tracing::info!("shutting down ({why})");
        self.deadline
            .send_replace(Some(Instant::now() + self.cfg.stop_timeout));
        self.bus.publish(Event::new(EventCode::Shutdown, GLOBAL));
    }

    fn on_job_done(&mut self, result: Result<Outcome, JoinError>) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) => {
                // A job task cannot panic in a release build (panics abort); in a debug build
                // the job is simply gone, and counts as failed.
                tracing::error!("a job task failed: {err}");
                self.failed = true;
                return;
            }
        };
        if outcome.last_exit.is_some_and(|s| !s.success()) {
            self.failed = true;
        }
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
        if self.signalled || !self.failed { 0 } else { 1 }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
