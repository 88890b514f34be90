//! A job of the model: its defaults (restarts, timeouts), its health check, its `when`, and for
//! a service its Consul registration with the address of its `interfaces`.

use std::time::Duration;

use super::hosts::HostAddresses;
use crate::config::LoadContext;
use crate::config::duration::{GoDuration, MILLISECOND};
use crate::config::model::*;
use crate::config::problems::{Problems, Reporter};
use crate::config::raw::{RawHealth, RawJob, RawRestarts, RawRunAs, RawWhen, Spanned, WhenShape};
use crate::config::rules::{is_signal, status_named};
use crate::events::EventCode;

/// The job; `None` when it is broken (its problems are reported). A service's address is
/// looked up whatever else is wrong with the job, so that every problem is reported at once.
pub fn build(
    job: &RawJob,
    ctx: &LoadContext,
    hosts: &mut HostAddresses<'_>,
    problems: &mut Problems,
) -> Option<Job> {
    let service = job
        .is_service()
        .then(|| service(job, ctx, hosts, &mut problems.at(job.path.clone())));
    let when = job.when.as_ref().map_or(Some(When::Startup), when);
    let mut report = problems.at(job.path.clone());
    let user = run_as(job.run_as.as_ref(), ctx, &mut report);
    let health = match &job.health {
        Some(health) => {
            let check_user = match &health.run_as {
                Some(raw) => run_as(Some(raw), ctx, &mut report),
                None => user.clone(),
            };
            Some(self::health(health, check_user?)?)
        }
        None => None,
    };
    if job.broken {
        return None;
    }
    Some(Job {
        name: job.name.clone(),
        key: job.name.clone(),
        kind: JobKind::User,
        exec: job.exec.clone(),
        raw_output: job.raw_output,
        timeout: timeout(job, when.as_ref()),
        // 0 (ContainerPilot's default) and negative values mean "until the global deadline".
        stop_timeout: positive(job.stop_timeout.as_ref()),
        restarts: restarts(job, when.as_ref())?,
        when: when?,
        health,
        service: match service {
            Some(service) => Some(service?),
            None => None,
        },
        main: job.is_main(),
        stop_signal: job.stop_signal.as_ref().map_or(libc::SIGTERM, |s| s.value),
        user: user?,
    })
}

/// A positive duration, or `None`.
fn positive(value: Option<&Spanned<GoDuration>>) -> Option<Duration> {
    value
        .filter(|d| d.value.is_positive())
        .map(|d| d.value.to_std())
}

/// `timeout`; an interval job's runs time out at its interval unless told otherwise.
fn timeout(job: &RawJob, when: Option<&When>) -> Option<Duration> {
    let written = job
        .timeout
        .as_ref()
        .filter(|t| t.value.0 >= MILLISECOND)
        .map(|t| t.value.to_std());
    match when {
        Some(When::Interval(interval)) => written.or(Some(*interval)),
        _ => written,
    }
}

/// `restarts`; an interval job restarts forever by default, any other never.
fn restarts(job: &RawJob, when: Option<&When>) -> Option<Restarts> {
    match job.restarts.as_ref().map(|r| &r.value) {
        None if matches!(when, Some(When::Interval(_))) => Some(Restarts::Unlimited),
        None | Some(RawRestarts::Never | RawRestarts::Count(0)) => Some(Restarts::Never),
        Some(RawRestarts::Unlimited) => Some(Restarts::Unlimited),
        Some(RawRestarts::Count(n)) => u32::try_from(*n).ok().map(Restarts::Times),
    }
}

/// The check that runs is the first given of exec, http and tcp; the timeout defaults to the
/// interval.
/// `user` and `group` looked up in the container's accounts; `None` when they are not there
/// (reported on the line of the name that is missing).
fn run_as(
    raw: Option<&RawRunAs>,
    ctx: &LoadContext,
    report: &mut Reporter<'_>,
) -> Option<Option<RunAs>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let group = raw.group.as_ref().map(|g| g.value.as_str());
    match ctx.accounts.resolve(&raw.user.value, group) {
        Ok(run_as) => Some(Some(run_as)),
        Err(message) => {
            let line = match &raw.group {
                Some(group) if message.starts_with("group") => group.line,
                _ => raw.user.line,
            };
            report.error(message, line);
            None
        }
    }
}

fn health(raw: &RawHealth, user: Option<RunAs>) -> Option<HealthCheck> {
    let check = if let Some(exec) = &raw.exec {
        Check::Exec(exec.clone())
    } else if let Some(url) = &raw.http {
        Check::Http {
            url: url.value.clone(),
        }
    } else if let Some(address) = &raw.tcp {
        Check::Tcp {
            address: address.value.clone(),
        }
    } else {
        Check::None
    };
    let interval = positive(raw.interval.as_ref())?;
    // Zero or negative (a warning) is the interval too.
    let timeout = positive(raw.timeout.as_ref()).unwrap_or(interval);
    Some(HealthCheck {
        check,
        interval,
        ttl: positive(raw.ttl.as_ref())?,
        timeout,
        raw_output: raw.raw_output,
        user,
    })
}

/// What starts the job. A signal source starts it on each such signal, whatever once or each
/// say, as in ContainerPilot; without a source or an event nothing starts it.
fn when(raw: &RawWhen) -> Option<When> {
    if raw.broken {
        return None;
    }
    match raw.shape() {
        WhenShape::Conflict(_) => None,
        WhenShape::Interval(interval) => {
            (interval.value.0 >= MILLISECOND).then(|| When::Interval(interval.value.to_std()))
        }
        WhenShape::Event { event, source, .. } => {
            let code = match event {
                Some((name, _)) => Some(EventCode::from_config_name(&name.value)?),
                None => None,
            };
            let timeout = raw.positive_timeout();
            let Some(source) = source else {
                return Some(When::Never { timeout });
            };
            if is_signal(&source.value) {
                return Some(When::Event {
                    code: EventCode::Signal,
                    source: source.value.clone(),
                    repeat: Repeat::Each,
                    timeout,
                });
            }
            Some(match code.zip(event) {
                Some((code, (_, repeat))) => When::Event {
                    code,
                    source: source.value.clone(),
                    repeat,
                    timeout,
                },
                None => When::Never { timeout },
            })
        }
    }
}

/// The Consul service of a job with a port; `None` when part of it is wrong (reported).
fn service(
    job: &RawJob,
    ctx: &LoadContext,
    hosts: &mut HostAddresses<'_>,
    report: &mut Reporter<'_>,
) -> Option<Service> {
    let address = match &job.interfaces {
        Some(Spanned { value: Err(_), .. }) => None,
        Some(Spanned {
            value: Ok(list),
            line,
        }) => resolve(hosts, Some(list).filter(|l| !l.is_empty()), *line, report),
        None => resolve(hosts, None, job.line, report),
    };
    let initial_status = match &job.initial_status {
        Some(status) => Some(status_named(&status.value)?),
        None => None,
    };
    let (enable_tag_override, deregister) = match &job.consul {
        None => (false, None),
        Some(consul) => (consul.enable_tag_override, consul.deregister.as_ref()),
    };
    let deregister = match deregister.map(|d| &d.value) {
        Some(Ok(Some(d))) if d.is_positive() => Some(d.to_std()),
        Some(Ok(Some(_)) | Err(_)) => return None,
        Some(Ok(None)) | None => None,
    };
    Some(Service {
        id: format!("{}-{}", job.name, ctx.hostname),
        name: job.name.clone(),
        port: u16::try_from(job.port.as_ref()?.value).ok()?,
        address: address?,
        tags: job.tags.clone(),
        meta: job.meta.iter().flat_map(|m| m.value.clone()).collect(),
        initial_status,
        enable_tag_override,
        deregister_critical_service_after: deregister,
    })
}

/// The address of `specs` (the default when `None`); a failure is reported on `line`.
fn resolve(
    hosts: &mut HostAddresses<'_>,
    specs: Option<&Vec<String>>,
    line: u32,
    report: &mut Reporter<'_>,
) -> Option<std::net::IpAddr> {
    hosts
        .resolve(specs.map(Vec::as_slice))
        .map_err(|why| report.key("interfaces", why, line))
        .ok()
}
