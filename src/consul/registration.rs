//! One task per service: it registers the service, keeps its TTL check current, takes it out for
//! maintenance and deregisters it at the end, while the job only sends it messages.
//!
//! The job says what it wants (passing, failing, maintenance, gone); the task makes the agent
//! agree, as soon as it can. Only the latest wish matters: while a request is slow or the agent
//! is down, wishes pile up into one, and the next request carries the newest status. A job never
//! waits for any of this, except for the bounded [`Registration::deregister`] at its very end.
//!
//! Differences from ContainerPilot 3.8 (README, "Compatibility with ContainerPilot 3.8"):
//! - a failing check sets the TTL check `critical` at once (ContainerPilot sent nothing and let
//!   the TTL lapse);
//! - a TTL update the agent answers with "unknown check" (the agent restarted and lost its
//!   state) registers the service again, then repeats the update;
//! - leaving maintenance registers the service again with its last status (ContainerPilot 3.8
//!   never did);
//! - failed calls are retried with backoff, on the task's own schedule, instead of once per
//!   heartbeat inside the job's loop.
//!
//! The telemetry service (`containerpilot`: no check, TTL 15 s, heartbeat every 5 s) is a service
//! like any other here: its job heartbeats it, and maintenance deregisters it too, as it does
//! every service, and registers it again afterwards. ContainerPilot kept heartbeating it
//! during maintenance after deregistering it, which only produced a warning every 5 s; here the
//! reports received during maintenance are held back.
//!
//! The check output is what the job reports: pilot's checks report stable texts (`ok`, or
//! `HTTP GET <url>: 200 OK`), because Consul writes a changed output to its catalog.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::RetryBackoff;
use super::client::{Client, ConsulError, ServiceRegistration};
use crate::config::{CheckStatus, Service};

/// The first retry after a failed call comes after about this long...
const RETRY_BASE: Duration = Duration::from_millis(500);
/// ...and retries back off up to this: the longest a recovered agent waits to hear from pilot.
const RETRY_CAP: Duration = Duration::from_secs(10);
/// Retries of the final deregistration are quicker: the job's shutdown is waiting.
const FINAL_RETRY_BASE: Duration = Duration::from_millis(100);
const FINAL_RETRY_CAP: Duration = Duration::from_secs(1);

/// The ID Consul gives the check embedded in a registration: `service:<ID>`.
pub fn check_id(service_id: &str) -> String {
    format!("service:{service_id}")
}

/// The notes of the TTL check, as ContainerPilot writes them.
pub fn check_notes(service_name: &str) -> String {
    format!("TTL for {service_name} set by containerpilot")
}

/// What the job wants the agent to show.
#[derive(Clone, Debug)]
struct Wanted {
    /// The check's status and output; `None` until the first passing check (unless the service
    /// has an `initial_status`): until then the service is not registered.
    status: Option<(CheckStatus, String)>,
    /// Bumped by every report: each one refreshes the TTL, even when nothing else changed.
    reports: u64,
    maintenance: bool,
    /// Deregister for good, giving up at this instant.
    stop: Option<Instant>,
}

/// What the registration task knows, for `/v3/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationStatus {
    /// The agent has the service, as far as pilot knows (it said so last time it was asked).
    pub registered: bool,
    /// Taken out of Consul for maintenance.
    pub maintenance: bool,
    /// The check status the agent last accepted.
    pub check_status: Option<CheckStatus>,
    /// The last failed call, until a call succeeds again.
    pub last_error: Option<String>,
    /// When the agent last answered anything (an error status included).
    pub last_contact: Option<SystemTime>,
    /// The task ended: `Some(true)` once the service was deregistered at the end, `Some(false)`
    /// when that failed or timed out.
    pub deregistered: Option<bool>,
}

/// A handle to the registration task of one service. Dropping it ends the task without
/// deregistering (use [`Registration::deregister`] for that).
#[derive(Debug)]
pub struct Registration {
    wanted: watch::Sender<Wanted>,
    status: watch::Receiver<RegistrationStatus>,
    service_id: Arc<str>,
}

impl Registration {
    /// Starts the task for `service`, whose TTL check lapses after `ttl`. With an
    /// `initial_status` the service is registered at once with that status; otherwise at the
    /// first [`passing`](Self::passing). Must be called inside a tokio runtime.
    pub fn spawn(client: Client, service: Arc<Service>, ttl: Duration) -> Registration {
        let initial = service.initial_status.map(|status| (status, String::new()));
        let (wanted_tx, wanted_rx) = watch::channel(Wanted {
            reports: u64::from(initial.is_some()),
            status: initial,
            maintenance: false,
            stop: None,
        });
        let (status_tx, status_rx) = watch::channel(RegistrationStatus::default());
        let service_id: Arc<str> = service.id.as_str().into();
        let task = Task {
            client,
            check_id: check_id(&service.id),
            service,
            ttl,
            wanted: wanted_rx,
            status: status_tx,
            presence: Presence::Unknown,
            synced_reports: 0,
            backoff: RetryBackoff::new(RETRY_BASE, RETRY_CAP),
            last_logged: None,
        };
        tokio::spawn(task.run());
        Registration {
            wanted: wanted_tx,
            status: status_rx,
            service_id,
        }
    }

    /// The service's check passed (or, for a service without a check, its heartbeat is due):
    /// register it if needed, and set its TTL check `passing` with `output`.
    pub fn passing(&self, output: &str) {
        self.wanted.send_modify(|w| {
            w.status = Some((CheckStatus::Passing, output.to_string()));
            w.reports += 1;
        });
    }

    /// The service's check failed: set its TTL check `critical` with `output` at once. A service
    /// that never passed (and has no `initial_status`) stays unregistered.
    pub fn failing(&self, output: &str) {
        self.wanted.send_modify(|w| {
            if w.status.is_some() {
                w.status = Some((CheckStatus::Critical, output.to_string()));
                w.reports += 1;
            }
        });
    }

    /// Takes the service out of Consul (deregisters it) until [`exit_maintenance`]. Reports
    /// received meanwhile are remembered, not sent.
    ///
    /// [`exit_maintenance`]: Self::exit_maintenance
    pub fn enter_maintenance(&self) {
        self.wanted
            .send_if_modified(|w| !std::mem::replace(&mut w.maintenance, true));
    }

    /// Registers the service again, with its last status (if it ever had one).
    pub fn exit_maintenance(&self) {
        self.wanted.send_if_modified(|w| {
            let was = std::mem::replace(&mut w.maintenance, false);
            if was {
                // The service comes back with its last status and a fresh TTL.
                w.reports += 1;
            }
            was
        });
    }

    /// Deregisters the service for good, giving up after `timeout`. Called before the job's
    /// process is signalled at shutdown. Returns whether the agent confirmed. Idempotent: a
    /// second call waits for (or returns) the outcome of the first. After it, the task
    /// registers nothing any more.
    pub async fn deregister(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.wanted.send_if_modified(|w| match w.stop {
            Some(_) => false,
            None => {
                w.stop = Some(deadline);
                true
            }
        });
        let mut status = self.status.clone();
        let outcome =
            tokio::time::timeout_at(deadline, status.wait_for(|s| s.deregistered.is_some())).await;
        match outcome {
            Ok(Ok(s)) => s.deregistered == Some(true),
            // Timed out, or the task is gone.
            _ => self.status.borrow().deregistered == Some(true),
        }
    }

    /// What the task knows now.
    pub fn status(&self) -> RegistrationStatus {
        self.status.borrow().clone()
    }

    /// A receiver of the status, for whoever reports it (`/v3/status`).
    pub fn subscribe(&self) -> watch::Receiver<RegistrationStatus> {
        self.status.clone()
    }

    /// The service ID, `<name>-<hostname>`.
    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    /// Resolves when the status changes (for `/v3/status` and tests).
    pub async fn status_changed(&mut self) -> RegistrationStatus {
        let _ = self.status.changed().await;
        self.status.borrow_and_update().clone()
    }
}

/// Whether the agent has the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    /// Not known: at start (a previous pilot may have left it), or after a call whose outcome
    /// is unknown.
    Unknown,
    Registered,
    Absent,
}

struct Task {
    client: Client,
    service: Arc<Service>,
    check_id: String,
    ttl: Duration,
    wanted: watch::Receiver<Wanted>,
    status: watch::Sender<RegistrationStatus>,
    presence: Presence,
    /// `Wanted::reports` as of the last update the agent accepted.
    synced_reports: u64,
    backoff: RetryBackoff,
    /// The last error logged, so that a persisting failure is logged once, not per retry.
    last_logged: Option<String>,
}

/// What the agent must be told next.
enum Step {
    Nothing,
    /// Remove the service (maintenance).
    Remove,
    /// Register (if not registered) and set the check.
    Set(CheckStatus, String),
}

impl Task {
    async fn run(mut self) {
        loop {
            let wanted = self.wanted.borrow_and_update().clone();
            if let Some(deadline) = wanted.stop {
                self.finish(deadline).await;
                return;
            }
            let step = self.step(&wanted);
            if matches!(step, Step::Nothing) {
                if self.wanted.changed().await.is_err() {
                    return; // the job dropped its handle
                }
                continue;
            }
            // A stop request cuts short whatever is in flight: shutdown must not wait for a
            // heartbeat to a hung agent.
            let mut stop = self.wanted.clone();
            let outcome = tokio::select! {
                outcome = self.apply(step) => Some(outcome),
                () = stop_requested(&mut stop) => None,
            };
            match outcome {
                None => continue,
                Some(Ok(())) => {
                    self.synced_reports = wanted.reports;
                    self.backoff.reset();
                    self.succeeded();
                }
                Some(Err(err)) => {
                    self.failed(&err);
                    let delay = self.backoff.next_delay();
                    let mut stop = self.wanted.clone();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop_requested(&mut stop) => {}
                    }
                }
            }
        }
    }

    fn step(&self, wanted: &Wanted) -> Step {
        if wanted.maintenance {
            return match self.presence {
                Presence::Absent => Step::Nothing,
                _ => Step::Remove,
            };
        }
        match &wanted.status {
            None => Step::Nothing,
            Some((status, output)) => {
                if self.presence == Presence::Registered && wanted.reports == self.synced_reports {
                    Step::Nothing
                } else {
                    Step::Set(*status, output.clone())
                }
            }
        }
    }

    async fn apply(&mut self, step: Step) -> Result<(), ConsulError> {
        match step {
            Step::Nothing => Ok(()),
            Step::Remove => {
                tracing::debug!("deregistering: {}", self.service.id);
                self.presence = Presence::Unknown;
                let result = self.client.deregister_service(&self.service.id).await;
                self.contact(&result);
                result?;
                self.presence = Presence::Absent;
                tracing::info!(
                    "service {} deregistered from consul for maintenance",
                    self.service.name
                );
                self.status.send_modify(|s| {
                    s.registered = false;
                    s.maintenance = true;
                    s.check_status = None;
                });
                Ok(())
            }
            Step::Set(status, output) => {
                if self.presence != Presence::Registered {
                    self.register(status).await?;
                }
                let result = self
                    .client
                    .update_ttl(&self.check_id, status, &output)
                    .await;
                self.contact(&result);
                match result {
                    Err(err) if err.is_unknown_check() => {
                        // The agent lost the registration (it restarted without its state).
                        tracing::info!(
                            "consul does not know the check of service {} any more: registering it again",
                            self.service.name
                        );
                        self.presence = Presence::Absent;
                        self.register(status).await?;
                        let result = self
                            .client
                            .update_ttl(&self.check_id, status, &output)
                            .await;
                        self.contact(&result);
                        result?;
                    }
                    other => other?,
                }
                self.status.send_modify(|s| s.check_status = Some(status));
                Ok(())
            }
        }
    }

    async fn register(&mut self, status: CheckStatus) -> Result<(), ConsulError> {
        let reg = ServiceRegistration::new(&self.service, self.ttl, status);
        let result = self.client.register_service(&reg).await;
        self.contact(&result);
        result?;
        self.presence = Presence::Registered;
        tracing::info!("Service registered: {}", self.service.name);
        self.status.send_modify(|s| {
            s.registered = true;
            s.maintenance = false;
        });
        Ok(())
    }

    /// Records that the agent answered, if it did.
    fn contact<T>(&self, result: &Result<T, ConsulError>) {
        let answered = match result {
            Ok(_) => true,
            Err(err) => err.is_answer(),
        };
        if answered {
            self.status
                .send_modify(|s| s.last_contact = Some(SystemTime::now()));
        }
    }

    fn succeeded(&mut self) {
        if self.last_logged.take().is_some() {
            tracing::info!(
                "consul calls for service {} succeed again",
                self.service.name
            );
        }
        self.status
            .send_if_modified(|s| s.last_error.take().is_some());
    }

    fn failed(&mut self, err: &ConsulError) {
        let text = err.to_string();
        if self.last_logged.as_deref() != Some(&text) {
            tracing::warn!(
                "service {}: {text} (retrying in the background)",
                self.service.name
            );
            self.last_logged = Some(text.clone());
        } else {
            tracing::debug!("service {}: {text}", self.service.name);
        }
        self.status.send_modify(|s| s.last_error = Some(text));
    }

    /// Deregisters for good, retrying until `deadline`.
    async fn finish(&mut self, deadline: Instant) {
        tracing::debug!("deregistering: {}", self.service.id);
        let mut backoff = RetryBackoff::new(FINAL_RETRY_BASE, FINAL_RETRY_CAP);
        let done = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break false;
            }
            let client = self.client.with_write_timeout(remaining);
            let result = client.deregister_service(&self.service.id).await;
            self.contact(&result);
            match result {
                Ok(()) => break true,
                Err(err) => {
                    tracing::debug!("deregistering failed: {err}");
                    self.status
                        .send_modify(|s| s.last_error = Some(err.to_string()));
                    // An agent that cannot be reached and never got this service registered has
                    // nothing to remove that pilot knows of: do not hold up the shutdown.
                    let unreachable = matches!(err, ConsulError::Connect { .. });
                    let pause = backoff.next_delay();
                    if (unreachable && self.presence != Presence::Registered)
                        || Instant::now() + pause >= deadline
                    {
                        tracing::info!("deregistering failed: {err}");
                        break false;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        };
        self.status.send_modify(|s| {
            if done {
                s.registered = false;
                s.check_status = None;
                s.last_error = None;
            }
            s.deregistered = Some(done);
        });
    }
}

/// Resolves once the job asked for the final deregistration (never, if its handle is gone).
async fn stop_requested(wanted: &mut watch::Receiver<Wanted>) {
    if wanted.wait_for(|w| w.stop.is_some()).await.is_err() {
        std::future::pending::<()>().await;
    }
}
