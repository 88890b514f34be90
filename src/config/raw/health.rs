//! A job's `health`: its check (`exec`, `http` or `tcp`) and timings, as written.

use super::Spanned;
use super::jobs::logging_raw;
use super::object::Obj;
use super::weak::{exec, weak_duration, weak_seconds, weak_string};
use crate::config::duration::GoDuration;
use crate::config::json5::Value;
use crate::config::model::Exec;
use crate::config::problems::Reporter;

const KEYS: &[&str] = &[
    "exec", "http", "tcp", "interval", "ttl", "timeout", "logging", "user", "group",
];

/// `health`, as written.
#[derive(Debug)]
pub struct RawHealth {
    pub line: u32,
    /// Some key failed to decode: missing keys are then not reported on top.
    pub broken: bool,
    pub exec: Option<Exec>,
    pub http: Option<Spanned<String>>,
    pub tcp: Option<Spanned<String>>,
    /// Which of `exec`, `http` and `tcp` were given, decoded or not.
    pub checks: Vec<&'static str>,
    pub interval: Option<Spanned<GoDuration>>,
    pub ttl: Option<Spanned<GoDuration>>,
    pub timeout: Option<Spanned<GoDuration>>,
    pub raw_output: bool,
    pub run_as: Option<super::jobs::RawRunAs>,
}

impl RawHealth {
    /// Whether a check is given: a job with one publishes its results (`check.<job>`).
    pub fn has_check(&self) -> bool {
        !self.checks.is_empty()
    }
}

pub fn decode(value: &Value, report: &mut Reporter<'_>) -> Option<RawHealth> {
    let mut obj = Obj::section(value, "health", report)?;
    let before = report.error_count();
    let checks: Vec<&'static str> = ["exec", "http", "tcp"]
        .into_iter()
        .filter(|key| obj.has(key))
        .collect();
    let exec = obj.field("exec", exec, report).map(|e| e.value);
    let http = obj.field("http", weak_string, report);
    let tcp = obj.field("tcp", weak_string, report);
    let interval = obj.field("interval", weak_seconds, report);
    let ttl = obj.field("ttl", weak_seconds, report);
    let timeout = obj.field_if_set("timeout", weak_duration, report);
    let raw_output = obj
        .get("logging")
        .is_some_and(|v| logging_raw(v, "health.logging", report));
    let run_as = super::jobs::run_as(&mut obj, report);
    let line = obj.line;
    obj.finish(report, KEYS);
    Some(RawHealth {
        line,
        broken: report.error_count() != before,
        exec,
        http,
        tcp,
        checks,
        interval,
        ttl,
        timeout,
        raw_output,
        run_as,
    })
}
