//! Step 1, raw: the config as written, decoded section by section with ContainerPilot's weak
//! typing, every value kept with its line.
//!
//! Decoding follows ContainerPilot's mapstructure (`WeaklyTypedInput`, `ErrorUnused`): keys
//! below the top level match ignoring case, unknown keys are errors, `null` is the same as
//! absent, and `weak` converts between strings, numbers and booleans as Go does. One module per
//! section decodes it into a `Raw*` struct of `Spanned` values; what does not decode is reported
//! (wrong types, unknown keys, names that are not one of a fixed set, missing required keys)
//! and left out.
//!
//! This step owns the shape of the file. It must not judge what values mean together (that is
//! `rules`), apply defaults or read the environment or the host (that is `build`).

mod consul;
mod control;
mod health;
mod jobs;
mod logging;
mod object;
mod telemetry;
mod watches;
pub mod weak;
mod when;

pub use consul::{RawConsul, RawTls};
pub use control::{RawControl, control_socket};
pub use health::RawHealth;
pub use jobs::{RawJob, RawRestarts, RawRunAs};
pub use logging::RawLogging;
pub use telemetry::{RawMetric, RawTelemetry};
pub use watches::{RawWait, RawWatch};
pub use when::{RawWhen, WhenShape};

use super::duration::GoDuration;
use super::json5::Value;
use super::problems::Problems;
use object::Obj;

const TOP_LEVEL_KEYS: &[&str] = &[
    "consul",
    "logging",
    "stopTimeout",
    "jobs",
    "watches",
    "control",
    "telemetry",
];

/// A decoded value and the line it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub line: u32,
}

/// A value decoded when it is read but judged only where it is used: ContainerPilot reads a
/// job's `interfaces` and `consul.deregisterCriticalServiceAfter` only for services, so their
/// problems are reported only for services.
pub type Deferred<T> = Spanned<Result<T, String>>;

/// The whole config as written.
#[derive(Debug)]
pub struct RawConfig {
    /// `None` when absent or of the wrong type (both reported).
    pub consul: Option<RawConsul>,
    pub logging: RawLogging,
    pub stop_timeout: Option<Spanned<GoDuration>>,
    pub control: RawControl,
    pub watches: Vec<RawWatch>,
    pub jobs: Vec<RawJob>,
    /// `None` when absent (telemetry off).
    pub telemetry: Option<RawTelemetry>,
}

/// The top-level keys of ContainerPilot 2.x that 3.x has not.
const CONTAINERPILOT_2_KEYS: &[&str] = &[
    "services",
    "backends",
    "preStart",
    "preStop",
    "postStop",
    "coprocesses",
    "tasks",
];

/// The 2.x keys of a config without `jobs`, quoted and joined (`"services", "preStart"`).
fn containerpilot_2(top: &Obj<'_>) -> Option<String> {
    if top.has("jobs") {
        return None;
    }
    let found: Vec<String> = CONTAINERPILOT_2_KEYS
        .iter()
        .filter(|k| top.has(k))
        .map(|k| format!("{k:?}"))
        .collect();
    (!found.is_empty()).then(|| found.join(", "))
}

/// Decodes the parsed file; `None` when it is not an object of keys (reported).
pub fn decode(root: &Value, problems: &mut Problems) -> Option<RawConfig> {
    let mut report = problems.at("");
    let Some(mut top) = Obj::top_level(root) else {
        report.error(
            format!(
                "the config must be an object of keys, got {}",
                weak::describe(root)
            ),
            root.pos.line,
        );
        return None;
    };
    if let Some(found) = containerpilot_2(&top) {
        report.error(
            format!(
                "this is a ContainerPilot 2.x config ({found} at the top level), which pilot does \
                 not read: ContainerPilot 3 replaced them with jobs and watches; see \
                 docs/configuration.md, \"Moving from ContainerPilot 2.x\""
            ),
            top.line,
        );
        return None;
    }
    let logging = logging::decode(top.get("logging"), &mut report);
    let stop_timeout = top.field("stopTimeout", weak::weak_seconds, &mut report);
    let consul = consul::decode(top.get("consul"), top.line, &mut report);
    let control = control::decode(top.get("control"), &mut report);
    let watches = watches::decode(top.get("watches"), problems);
    let jobs = jobs::decode(top.get("jobs"), problems);
    let telemetry = telemetry::decode(top.get("telemetry"), problems);
    top.finish(&mut problems.at(""), TOP_LEVEL_KEYS);
    Some(RawConfig {
        consul,
        logging,
        stop_timeout,
        control,
        watches,
        jobs,
        telemetry,
    })
}
