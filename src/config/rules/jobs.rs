//! The rules of one job, in the order they are reported: its port, its health check, its
//! service, its `when`, its timeout, its restarts and `main`.

use super::health::check_health;
use super::service::check_service;
use super::triggers::{Facts, check_when};
use crate::config::duration::MILLISECOND;
use crate::config::problems::Reporter;
use crate::config::raw::{RawJob, RawRestarts, Spanned};

pub fn check_job(job: &RawJob, facts: &Facts<'_>, report: &mut Reporter<'_>) {
    check_port(job, report);
    if let Some(health) = &job.health {
        check_health(health, report);
    }
    if job.is_service() {
        check_service_has_health(job, report);
        check_service(job, report);
    } else {
        check_meta_needs_port(job, report);
    }
    if let Some(when) = &job.when {
        check_when(&job.name, when, facts, report);
    }
    check_timeout(job, report);
    check_restarts(job, report);
    check_main_has_exec(job, report);
}

fn check_port(job: &RawJob, report: &mut Reporter<'_>) {
    if let Some(port) = job
        .port
        .as_ref()
        .filter(|p| u16::try_from(p.value).is_err())
    {
        report.key(
            "port",
            format!("must be between 0 and 65535, got {}", port.value),
            port.line,
        );
    }
}

/// A service's TTL check in Consul is heartbeated by its health checker.
fn check_service_has_health(job: &RawJob, report: &mut Reporter<'_>) {
    if job.health.is_none() {
        report.key(
            "health",
            "must be set when port is set: it heartbeats the service's TTL check in Consul",
            job.line_of(&job.port),
        );
    }
}

fn check_meta_needs_port(job: &RawJob, report: &mut Reporter<'_>) {
    if let Some(meta) = &job.meta {
        report.key(
            "meta",
            "needs port: only a job registered in Consul has service metadata",
            meta.line,
        );
    }
}

/// A run is killed after `timeout`: less than a millisecond would kill every run at once.
fn check_timeout(job: &RawJob, report: &mut Reporter<'_>) {
    if let Some(timeout) = job.timeout.as_ref().filter(|t| t.value.0 < MILLISECOND) {
        report.key(
            "timeout",
            format!("must be at least 1ms, got {}", timeout.value),
            timeout.line,
        );
    }
}

fn check_restarts(job: &RawJob, report: &mut Reporter<'_>) {
    match &job.restarts {
        Some(Spanned {
            value: RawRestarts::Unlimited,
            line,
        }) if job.when.as_ref().is_some_and(|w| w.each.is_some()) => report.key(
            "restarts",
            "cannot be \"unlimited\" with when.each: every event would start another run that \
             never stops",
            *line,
        ),
        Some(Spanned {
            value: RawRestarts::Count(n),
            line,
        }) if u32::try_from(*n).is_err() => report.key(
            "restarts",
            format!("must be at most {}, got {n} (or \"unlimited\")", u32::MAX),
            *line,
        ),
        _ => {}
    }
}

/// The application is a process that pilot runs (unless the job is already broken).
fn check_main_has_exec(job: &RawJob, report: &mut Reporter<'_>) {
    if job.is_main() && job.exec.is_none() && !job.broken {
        report.key(
            "main",
            "needs exec: the application is a process that pilot runs",
            job.line_of(&job.main),
        );
    }
}
