//! What the daemon reports about itself (`DaemonRequest::Status`). The JSON shapes made of it
//! belong to the servers: pilot's rich `GET /v3/status` to the control socket
//! (`control/status.rs`), ContainerPilot's `/status` to the telemetry port (`telemetry/status.rs`).
//!
//! No type here can hold the Consul token: there is no field for it, and `config::Secret` is not
//! serialisable, so a report cannot leak it by construction.

use serde::Serialize;

use crate::config;
use crate::jobs::{self, JobStatus, Phase};
use crate::supervisor::ExitStatus;
use crate::watches;

/// The daemon's answer to `DaemonRequest::Status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatusReport {
    /// Every job in config order, the telemetry job (`containerpilot`) last, as ContainerPilot
    /// lists its services.
    pub jobs: Vec<JobReport>,
    /// Every watch in config order.
    pub watches: Vec<WatchReport>,
    /// Whether maintenance mode is on.
    pub maintenance: bool,
    pub consul: ConsulReport,
}

/// One job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobReport {
    pub name: String,
    pub state: JobState,
    /// The pid of its running exec, if one runs.
    pub pid: Option<i32>,
    /// How many times its exec was restarted.
    pub restarts: u32,
    pub last_exit: Option<ExitReport>,
    /// ContainerPilot's job status, as `/status` shows it.
    pub health: HealthReport,
    /// The Consul service, for a job with a `port`.
    pub service: Option<ServiceReport>,
}

impl JobReport {
    /// A report from what the job actor publishes (`JobHandle::status`) and its config (for the
    /// service).
    pub fn new(job: &config::Job, status: &JobStatus) -> JobReport {
        JobReport {
            name: job.name.clone(),
            state: status.phase.into(),
            pid: status.pid,
            restarts: status.restarts,
            last_exit: status.last_exit.as_ref().map(ExitReport::from),
            health: status.health.into(),
            service: job.service.as_ref().map(ServiceReport::from),
        }
    }
}

/// Where a job is in its life (`jobs::Phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its trigger, its next tick or a restart.
    Waiting,
    Running,
    Stopping,
    Stopped,
}

impl From<Phase> for JobState {
    fn from(phase: Phase) -> JobState {
        match phase {
            Phase::Waiting => JobState::Waiting,
            Phase::Running => JobState::Running,
            Phase::Stopping => JobState::Stopping,
            Phase::Stopped => JobState::Stopped,
        }
    }
}

/// How the last run of a job's exec ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExitReport {
    /// The shell's convention: the exit code, or 128 + N for signal N.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl From<&ExitStatus> for ExitReport {
    fn from(status: &ExitStatus) -> ExitReport {
        ExitReport {
            code: status.code(),
            signal: match *status {
                ExitStatus::Signaled(signal) => Some(signal),
                ExitStatus::Exited(_) => None,
            },
        }
    }
}

/// A job's status in ContainerPilot's words (its section 3.5): `jobs::JobHealth`, serialisable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthReport {
    /// No check result yet, or the exec (re)started.
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
    /// Maintenance mode is on.
    Maintenance,
}

impl From<jobs::JobHealth> for HealthReport {
    fn from(health: jobs::JobHealth) -> HealthReport {
        match health {
            jobs::JobHealth::Unknown => HealthReport::Unknown,
            jobs::JobHealth::Healthy => HealthReport::Healthy,
            jobs::JobHealth::Unhealthy => HealthReport::Unhealthy,
            jobs::JobHealth::Maintenance => HealthReport::Maintenance,
        }
    }
}

impl HealthReport {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthReport::Unknown => "unknown",
            HealthReport::Healthy => "healthy",
            HealthReport::Unhealthy => "unhealthy",
            HealthReport::Maintenance => "maintenance",
        }
    }
}

/// A job's Consul service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceReport {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
}

impl From<&config::Service> for ServiceReport {
    fn from(service: &config::Service) -> ServiceReport {
        ServiceReport {
            id: service.id.clone(),
            name: service.name.clone(),
            address: service.address.to_string(),
            port: service.port,
        }
    }
}

/// One watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    /// The watch's name (without ContainerPilot's `watch.` prefix): a service watch's service.
    pub name: String,
    pub tag: Option<String>,
    pub dc: Option<String>,
    /// A key watch's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A prefix watch's prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The healthy instances of the last answer; `None` until Consul has answered once.
    pub instances: Option<Vec<InstanceReport>>,
    /// Why the last query failed, while Consul does not answer.
    pub error: Option<String>,
}

impl From<&watches::Snapshot> for WatchReport {
    fn from(snapshot: &watches::Snapshot) -> WatchReport {
        WatchReport {
            name: if snapshot.name.is_empty() {
                snapshot.service.clone()
            } else {
                snapshot.name.clone()
            },
            tag: snapshot.tag.clone(),
            dc: snapshot.dc.clone(),
            key: snapshot.key.clone(),
            prefix: snapshot.prefix.clone(),
            instances: snapshot.instances.as_ref().map(|list| {
                list.iter()
                    .map(|i| InstanceReport {
                        id: i.id.clone(),
                        address: i.address.clone(),
                        port: i.port,
                    })
                    .collect()
            }),
            error: snapshot.error.clone(),
        }
    }
}

/// One instance of a watched service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceReport {
    pub id: String,
    pub address: String,
    pub port: u16,
}

/// The Consul agent as pilot sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsulReport {
    /// `host:port`, or the socket path for a unix socket. Never a token or credentials.
    pub address: String,
    /// Whether the last call to the agent got an answer.
    pub reachable: bool,
    /// The last error when it did not.
    pub error: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A running job with one restart, killed by SIGTERM last time, and `service` `(name, port)`
    /// at 10.0.0.2.
    pub(crate) fn job(name: &str, service: Option<(&str, u16)>, health: HealthReport) -> JobReport {
        JobReport {
            name: name.into(),
            state: JobState::Running,
            pid: Some(7),
            restarts: 1,
            last_exit: Some(ExitReport::from(&ExitStatus::Signaled(15))),
            health,
            service: service.map(|(n, port)| ServiceReport {
                id: format!("{n}-host"),
                name: n.into(),
                address: "10.0.0.2".into(),
                port,
            }),
        }
    }

    #[test]
    fn watch_report_from_a_watch_snapshot() {
        let snapshot: watches::Snapshot = serde_json::from_value(serde_json::json!({
            "Service": "db", "Tag": "primary", "Dc": null, "Error": null,
            "Instances": [{"Node": "n1", "ID": "db-1", "Name": "db", "Address": "10.0.0.3",
                           "Port": 5432, "Tags": [], "Meta": {}}]
        }))
        .unwrap();
        assert_eq!(
            WatchReport::from(&snapshot),
            WatchReport {
                name: "db".into(),
                tag: Some("primary".into()),
                dc: None,
                key: None,
                prefix: None,
                instances: Some(vec![InstanceReport {
                    id: "db-1".into(),
                    address: "10.0.0.3".into(),
                    port: 5432
                }]),
                error: None,
            }
        );
    }

    #[test]
    fn job_report_from_the_actor_status() {
        let cfg = config::Job::for_test("web", config::When::Startup);
        let status = JobStatus {
            phase: Phase::Stopped,
            pid: None,
            restarts: 3,
            last_exit: Some(ExitStatus::Exited(2)),
            health: jobs::JobHealth::Unhealthy,
        };
        let report = JobReport::new(&cfg, &status);
        assert_eq!(report.health, HealthReport::Unhealthy);
        assert_eq!(report.state, JobState::Stopped);
        assert_eq!(report.restarts, 3);
        assert_eq!(
            report.last_exit,
            Some(ExitReport {
                code: 2,
                signal: None
            })
        );
        assert_eq!(report.service, None);
    }
}
