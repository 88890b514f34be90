//! ContainerPilot's `/status` on the telemetry port, made of the daemon's `StatusReport`.

use serde::Serialize;

use crate::serve::StatusReport;

/// ContainerPilot's `/status` (telemetry port), keys in its order, then pilot's own version.
/// Empty lists are `[]` (ContainerPilot wrote `null`).
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompatStatus {
    /// The ContainerPilot version pilot stands in for.
    pub version: String,
    pub jobs: Vec<CompatJob>,
    pub services: Vec<CompatService>,
    pub watches: Vec<String>,
    pub pilot_version: String,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompatJob {
    pub name: String,
    pub status: &'static str,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompatService {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub status: &'static str,
}

impl CompatStatus {
    /// ContainerPilot's split: jobs with a service under `Services` (in report order, so the
    /// telemetry service last), the others under `Jobs`; watch names without `watch.`.
    pub fn new(version: &str, pilot_version: &str, report: &StatusReport) -> CompatStatus {
        let mut jobs = Vec::new();
        let mut services = Vec::new();
        for job in &report.jobs {
            match &job.service {
                Some(service) => services.push(CompatService {
                    name: service.name.clone(),
                    address: service.address.clone(),
                    port: service.port,
                    status: job.health.as_str(),
                }),
                None => jobs.push(CompatJob {
                    name: job.name.clone(),
                    status: job.health.as_str(),
                }),
            }
        }
        CompatStatus {
            version: version.to_string(),
            jobs,
            services,
            watches: report.watches.iter().map(|w| w.name.clone()).collect(),
            pilot_version: pilot_version.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::report::tests::job;
    use crate::serve::{HealthReport, WatchReport};

    #[test]
    fn compat_status_splits_jobs_and_services_in_containerpilot_order() {
        let report = StatusReport {
            jobs: vec![
                job("app", Some(("app", 8000)), HealthReport::Healthy),
                job("myjob1", None, HealthReport::Unknown),
                job(
                    "containerpilot",
                    Some(("containerpilot", 9090)),
                    HealthReport::Healthy,
                ),
            ],
            watches: vec![WatchReport {
                name: "otherapp".into(),
                tag: None,
                dc: None,
                key: None,
                prefix: None,
                instances: None,
                error: None,
            }],
            ..StatusReport::default()
        };
        let text = serde_json::to_string(&CompatStatus::new("3.8.0", "1.2.3", &report)).unwrap();
        assert_eq!(
            text,
            r#"{"Version":"3.8.0","Jobs":[{"Name":"myjob1","Status":"unknown"}],"Services":[{"Name":"app","Address":"10.0.0.2","Port":8000,"Status":"healthy"},{"Name":"containerpilot","Address":"10.0.0.2","Port":9090,"Status":"healthy"}],"Watches":["otherapp"],"PilotVersion":"1.2.3"}"#
        );
    }

    #[test]
    fn compat_status_writes_empty_lists_as_arrays() {
        let text =
            serde_json::to_string(&CompatStatus::new("", "", &StatusReport::default())).unwrap();
        assert_eq!(
            text,
            r#"{"Version":"","Jobs":[],"Services":[],"Watches":[],"PilotVersion":""}"#
        );
    }
}
