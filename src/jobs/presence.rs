//! A job's presence: its health checker and its Consul registration, and what decides whether
//! checks run (the job has started once, and maintenance is off).
//!
//! The job task owns one and tells it what happened (the first start, maintenance, a result,
//! the stop). It must not decide what a result means for the job: the task publishes
//! `healthy`/`unhealthy` and records the job's health.

use std::future::pending;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Duration;

use super::Context;
use crate::config::Job;
use crate::consul::{Registration, RegistrationStatus};
use crate::health::{CheckSpec, Checker, HealthResult};

pub(super) struct Presence {
    /// The Consul registration of the job's service, if it has one.
    registration: Option<Registration>,
    /// The job's health checker and where its results arrive, if it has `health`.
    checker: Option<(Checker, mpsc::UnboundedReceiver<HealthResult>)>,
    /// Maintenance mode is on: checks are paused and the service is out of Consul.
    maintenance: bool,
    /// The job has started at least once (checks run from then on).
    started: bool,
}

impl Presence {
    /// Starts the registration (a job with a service and `health`) and the checker (paused).
    pub(super) fn new(cfg: &Job, name: &Arc<str>, ctx: &Context) -> Presence {
        let registration =
            cfg.service
                .as_ref()
                .zip(cfg.health.as_ref())
                .map(|(service, health)| {
                    let client = ctx.config.borrow().consul.clone();
                    Registration::spawn(client, Arc::new(service.clone()), health.ttl)
                });
        let checker = cfg.health.as_ref().map(|health| {
            let (tx, rx) = mpsc::unbounded_channel();
            let spec = CheckSpec {
                job: name.clone(),
                health: health.clone(),
                processes: ctx.processes.clone(),
                env: ctx.env.clone(),
                bus: Some(ctx.bus.clone()),
            };
            (Checker::spawn(spec, tx), rx)
        });
        Presence {
            registration,
            checker,
            maintenance: false,
            started: false,
        }
    }

    /// The registration's status, for the job's handle.
    pub(super) fn registration_status(&self) -> Option<watch::Receiver<RegistrationStatus>> {
        self.registration.as_ref().map(Registration::subscribe)
    }

    /// The next check result; never, for a job without a checker.
    pub(super) async fn next_result(&mut self) -> Option<HealthResult> {
        match &mut self.checker {
            Some((_, results)) => results.recv().await,
            None => pending().await,
        }
    }

    /// The job started a run: checks (and heartbeats) run from its first start on.
    pub(super) fn started(&mut self) {
        if !self.started {
            self.started = true;
            self.resume_checks();
        }
    }

    fn resume_checks(&self) {
        if let Some((checker, _)) = &self.checker
            && !self.maintenance
        {
            checker.resume();
        }
    }

    /// Passes a result on to the registration. False when it is to be dropped (maintenance).
    pub(super) fn report(&self, result: &HealthResult) -> bool {
        if self.maintenance {
            return false;
        }
        if let Some(registration) = &self.registration {
            if result.passed() {
                registration.passing(result.detail());
            } else {
                registration.failing(result.detail());
            }
        }
        true
    }

    /// Maintenance: checks pause and the service leaves Consul.
    pub(super) fn enter_maintenance(&mut self) {
        self.maintenance = true;
        if let Some((checker, _)) = &self.checker {
            checker.pause();
        }
        if let Some(registration) = &self.registration {
            registration.enter_maintenance();
        }
    }

    /// The end of maintenance: checks resume (if the job has started) and the service is
    /// registered again (ContainerPilot 3.8 left it out of Consul until a restart).
    pub(super) fn exit_maintenance(&mut self) {
        self.maintenance = false;
        if self.started {
            self.resume_checks();
        }
        if let Some(registration) = &self.registration {
            registration.exit_maintenance();
        }
    }

    /// Stops the checker (a running check is killed with its group).
    pub(super) async fn stop_checks(&mut self) {
        if let Some((checker, _)) = &mut self.checker {
            checker.stop().await;
        }
    }

    /// Takes the service out of Consul, waiting at most `timeout` for the agent to confirm
    /// (ARCHITECTURE.md, invariant 4, says why the stop sequence waits).
    pub(super) async fn deregister(&self, timeout: Duration) {
        if let Some(registration) = &self.registration {
            registration.deregister(timeout).await;
        }
    }
}
