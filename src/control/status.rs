//! pilot's `GET /v3/status` on the control socket: the daemon's `StatusReport` with pilot's
//! version first.

use serde::Serialize;

use crate::serve::StatusReport;

/// pilot's `GET /v3/status`: the report with the version first.
#[derive(Serialize)]
pub(crate) struct V3Status<'a> {
    pub version: &'a str,
    #[serde(flatten)]
    pub report: &'a StatusReport,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::report::tests::job;
    use crate::serve::{ConsulReport, HealthReport, InstanceReport, WatchReport};

    #[test]
    fn v3_status_shape() {
        let report = StatusReport {
            jobs: vec![job("app", Some(("app", 8000)), HealthReport::Healthy)],
            watches: vec![WatchReport {
                name: "db".into(),
                tag: None,
                dc: None,
                key: None,
                prefix: None,
                instances: Some(vec![InstanceReport {
                    id: "db-1".into(),
                    address: "10.0.0.3".into(),
                    port: 5432,
                }]),
                error: None,
            }],
            maintenance: false,
            consul: ConsulReport {
                address: "localhost:8500".into(),
                reachable: true,
                error: None,
            },
        };
        let json = serde_json::to_value(V3Status {
            version: "1.2.3",
            report: &report,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "1.2.3",
                "jobs": [{
                    "name": "app", "state": "running", "pid": 7, "restarts": 1,
                    "last_exit": {"code": 143, "signal": 15},
                    "health": "healthy",
                    "service": {"id": "app-host", "name": "app", "address": "10.0.0.2", "port": 8000}
                }],
                "watches": [{"name": "db", "tag": null, "dc": null,
                             "instances": [{"id": "db-1", "address": "10.0.0.3", "port": 5432}],
                             "error": null}],
                "maintenance": false,
                "consul": {"address": "localhost:8500", "reachable": true, "error": null}
            })
        );
    }
}
