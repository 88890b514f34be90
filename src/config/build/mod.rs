//! Step 3, build: the model the rest of pilot receives, from the decoded config, its defaults,
//! the environment (`CONSUL_*`) and the host (its name and its interfaces).
//!
//! What the environment or the host make wrong is reported here: an address `CONSUL_HTTP_ADDR`
//! gives that cannot be used, a token file that cannot be read, `interfaces` that match no
//! address of the host. Everything is built even when earlier steps found problems, so that
//! these are reported too; the model is only used when there is no error at all.
//!
//! This step must not judge the config itself: a value it cannot use was reported by `rules`
//! (or did not decode), and the part is simply not built.

mod consul;
mod hosts;
mod jobs;

use std::time::Duration;

use super::LoadContext;
use super::model::*;
use super::problems::Problems;
use super::raw::{RawConfig, RawControl, RawLogging, RawMetric, RawTelemetry, RawWatch, Spanned};
use super::rules::{metric_kind, telemetry_is_valid};
use crate::config::duration::GoDuration;
use hosts::HostAddresses;

/// Where the control socket is when `control.socket` is not set.
pub const DEFAULT_CONTROL_SOCKET: &str = "/var/run/containerpilot.socket";
/// The control socket's permission bits when `control.mode` is not set.
const DEFAULT_CONTROL_MODE: u32 = 0o600;
/// The shutdown deadline when `stopTimeout` is not set, zero or negative.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The telemetry port when not set.
const DEFAULT_TELEMETRY_PORT: u16 = 9090;
/// The name of the job (and Consul service) pilot adds for `telemetry`.
pub const TELEMETRY_JOB: &str = "containerpilot";

/// The model of `raw`; `None` when a part cannot be built (its problem is reported).
pub fn build(raw: &RawConfig, ctx: &LoadContext, problems: &mut Problems) -> Option<Config> {
    let mut hosts = HostAddresses::new(ctx);
    let consul = raw
        .consul
        .as_ref()
        .map(|c| consul::build(c, &ctx.env, problems));
    let telemetry = match &raw.telemetry {
        None => Some(None),
        Some(t) => telemetry(t, &mut hosts, problems).map(Some),
    };
    let jobs: Vec<Option<Job>> = raw
        .jobs
        .iter()
        .map(|job| jobs::build(job, ctx, &mut hosts, problems))
        .collect();
    let mut jobs: Vec<Job> = jobs.into_iter().collect::<Option<_>>()?;
    let telemetry = telemetry?;
    if let Some(telemetry) = &telemetry {
        jobs.push(telemetry_job(telemetry, ctx));
    }
    set_keys(&mut jobs);
    Some(Config {
        consul: consul?,
        logging: logging(&raw.logging),
        stop_timeout: stop_timeout(raw.stop_timeout.as_ref()),
        jobs,
        watches: raw.watches.iter().map(watch).collect::<Option<_>>()?,
        control: control(&raw.control),
        telemetry,
    })
}

/// Each job's key: the later jobs of a repeated name get `name#2`, `name#3`...
fn set_keys(jobs: &mut [Job]) {
    for i in 0..jobs.len() {
        let nth = 1 + jobs[..i].iter().filter(|j| j.name == jobs[i].name).count();
        jobs[i].key = job_key(&jobs[i].name, nth);
    }
}

fn logging(raw: &RawLogging) -> Logging {
    Logging {
        level: raw.level.unwrap_or(LogLevel::Info),
        format: raw.format.unwrap_or(LogFormat::Default),
        output: raw.output.clone().unwrap_or(LogOutput::Stdout),
    }
}

/// Whole seconds as in ContainerPilot (or a duration); 0 means the default, and so does a
/// negative value, which ContainerPilot used to skip its final sleep: pilot never sleeps, so
/// the deadline stays the default.
fn stop_timeout(raw: Option<&Spanned<GoDuration>>) -> Duration {
    raw.filter(|d| d.value.is_positive())
        .map_or(DEFAULT_STOP_TIMEOUT, |d| d.value.to_std())
}

fn control(raw: &RawControl) -> Control {
    Control {
        socket: raw
            .socket
            .as_ref()
            .map_or(DEFAULT_CONTROL_SOCKET, |s| &s.value)
            .into(),
        mode: raw.mode.unwrap_or(DEFAULT_CONTROL_MODE),
    }
}

/// A watch's `maxStale` by default: consul-template's `max_stale`. Any server may answer (reads
/// scale with the servers, and go on while the cluster elects a leader), within 2 s of the
/// leader (Consul's documentation puts a follower typically within 50 ms of it).
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(2);

fn watch(raw: &RawWatch) -> Option<Watch> {
    let target = match (&raw.key, &raw.prefix) {
        (None, None) => WatchTarget::Service,
        (Some(key), None) => WatchTarget::Key(key.value.clone()),
        (None, Some(prefix)) => WatchTarget::Prefix(prefix.value.clone()),
        // Reported by the rules.
        (Some(_), Some(_)) => return None,
    };
    Some(Watch {
        name: raw.name.clone(),
        interval: raw.interval.as_ref()?.value.to_std(),
        tag: raw.tag.as_ref().map(|t| t.value.clone()),
        dc: raw.dc.clone(),
        target,
        wait: match &raw.wait {
            None => None,
            Some(wait) => {
                let min = wait.min.as_ref()?.value.to_std();
                // consul-template's default: four times `min`.
                let max = wait.max.as_ref().map_or(min * 4, |m| m.value.to_std());
                Some(QuietPeriod { min, max })
            }
        },
        max_stale: raw
            .max_stale
            .as_ref()
            .map_or(DEFAULT_MAX_STALE, |m| m.value.to_std()),
    })
}

/// `telemetry`, with the address of its `interfaces`; they are looked up only for a section
/// that is otherwise valid.
fn telemetry(
    raw: &RawTelemetry,
    hosts: &mut HostAddresses<'_>,
    problems: &mut Problems,
) -> Option<Telemetry> {
    if !telemetry_is_valid(raw) {
        return None;
    }
    let address = match hosts.resolve(raw.interfaces.as_deref()) {
        Ok(address) => address,
        Err(why) => {
            problems
                .at("")
                .key("telemetry.interfaces", why, raw.interfaces_line);
            return None;
        }
    };
    Some(Telemetry {
        port: raw
            .port
            .as_ref()
            .and_then(|p| u16::try_from(p.value).ok())
            .unwrap_or(DEFAULT_TELEMETRY_PORT),
        address,
        tags: raw.tags.clone(),
        metrics: raw.metrics.iter().map(metric).collect::<Option<_>>()?,
    })
}

fn metric(raw: &RawMetric) -> Option<Metric> {
    Some(Metric {
        namespace: raw.namespace.value.clone(),
        subsystem: raw.subsystem.value.clone(),
        name: raw.name.value.clone(),
        help: raw.help.value.clone(),
        kind: metric_kind(&raw.kind.value)?,
    })
}

/// The job pilot adds for `telemetry`: no exec, always healthy, registered as service
/// `containerpilot` with a 15 s TTL heartbeated every 5 s, tagged with the version tags as
/// ContainerPilot tagged it with its version.
fn telemetry_job(telemetry: &Telemetry, ctx: &LoadContext) -> Job {
    let mut tags = telemetry.tags.clone();
    tags.extend(ctx.version_tags.iter().cloned());
    Job {
        name: TELEMETRY_JOB.to_string(),
        key: TELEMETRY_JOB.to_string(),
        kind: JobKind::Telemetry,
        exec: None,
        raw_output: false,
        when: When::Startup,
        timeout: None,
        stop_timeout: None,
        restarts: Restarts::Never,
        health: Some(HealthCheck {
            check: Check::None,
            interval: Duration::from_secs(5),
            ttl: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            raw_output: false,
            user: None,
        }),
        service: Some(Service {
            id: format!("{TELEMETRY_JOB}-{}", ctx.hostname),
            name: TELEMETRY_JOB.to_string(),
            port: telemetry.port,
            address: telemetry.address,
            tags,
            meta: Default::default(),
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        }),
        main: false,
        stop_signal: libc::SIGTERM,
        user: None,
    }
}
