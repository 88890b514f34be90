//! Step 2, rules: what the decoded config means, checked one rule at a time.
//!
//! Each rule is a plain function over the decoded structs of `raw` that adds what it finds to
//! the reporter: an error for what pilot refuses, a warning for what it runs but doubts. Rules
//! are run in the order of `check`, so that problems of one line are listed in a fixed order.
//!
//! This step must not decode (a value that did not decode is simply absent here), apply
//! defaults, or look at the environment or the host: that is `build`.

mod health;
mod jobs;
mod names;
mod service;
mod telemetry;
mod triggers;
mod watches;

pub use service::status_named;
pub use telemetry::{metric_kind, telemetry_is_valid};
pub use triggers::is_signal;

use super::problems::{Problems, Reporter};
use super::raw::{RawConfig, RawControl};
use triggers::Facts;

/// Runs every rule over `raw`.
pub fn check(raw: &RawConfig, problems: &mut Problems) {
    check_control(&raw.control, &mut problems.at(""));
    for watch in &raw.watches {
        watches::check_watch(watch, &mut problems.at(watch.path()));
    }
    if let Some(telemetry) = &raw.telemetry {
        telemetry::check_telemetry(telemetry, problems);
    }
    names::check_job_names(&raw.jobs, raw.telemetry.as_ref(), problems);
    let facts = Facts::new(raw);
    for job in &raw.jobs {
        jobs::check_job(job, &facts, &mut problems.at(job.path.clone()));
    }
    names::check_main(&raw.jobs, problems);
}

/// `control.socket` names a file: an empty one is a mistake (leaving it out gives the default).
fn check_control(control: &RawControl, report: &mut Reporter<'_>) {
    if let Some(socket) = control.socket.as_ref().filter(|s| s.value.is_empty()) {
        report.key(
            "control.socket",
            "must not be empty (leave it out for /var/run/containerpilot.socket)",
            socket.line,
        );
    }
}
