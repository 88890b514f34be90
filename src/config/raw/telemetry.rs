//! `telemetry`: the listener for `/metrics` and `/status`, and the user's metrics, as written.

use super::Spanned;
use super::object::{Obj, list_items, wrong_type};
use super::weak::{string_list, string_or_list, weak_int, weak_string};
use crate::config::json5::Value;
use crate::config::problems::Problems;

const KEYS: &[&str] = &["port", "interfaces", "tags", "metrics"];
const METRIC_KEYS: &[&str] = &["namespace", "subsystem", "name", "help", "type"];

/// `telemetry`, as written; present (if only as a wrong type) when the key is.
#[derive(Debug)]
pub struct RawTelemetry {
    pub line: u32,
    /// Something in it did not decode (or it is not an object).
    pub broken: bool,
    pub port: Option<Spanned<i64>>,
    /// Given and not empty.
    pub interfaces: Option<Vec<String>>,
    /// Where `interfaces` is (or would be) written, for its problems.
    pub interfaces_line: u32,
    pub tags: Vec<String>,
    pub metrics: Vec<RawMetric>,
}

/// One entry of `telemetry.metrics`; a field not given (or not a string) is empty, on the
/// metric's line.
#[derive(Debug)]
pub struct RawMetric {
    pub index: usize,
    pub namespace: Spanned<String>,
    pub subsystem: Spanned<String>,
    pub name: Spanned<String>,
    pub help: Spanned<String>,
    pub kind: Spanned<String>,
}

impl RawMetric {
    /// The Prometheus name: the non-empty parts of namespace, subsystem and name joined by `_`.
    pub fn full_name(&self) -> String {
        [&self.namespace, &self.subsystem, &self.name]
            .into_iter()
            .map(|part| part.value.as_str())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("_")
    }

    /// What its problems belong to: `telemetry.metrics[1] "requests"`.
    pub fn path(&self) -> String {
        path(self.index, &self.full_name())
    }
}

fn path(index: usize, full_name: &str) -> String {
    if full_name.is_empty() {
        format!("telemetry.metrics[{index}]")
    } else {
        format!("telemetry.metrics[{index}] {full_name:?}")
    }
}

pub fn decode(value: Option<&Value>, problems: &mut Problems) -> Option<RawTelemetry> {
    let value = value?;
    let before = problems.error_count();
    let mut telemetry = RawTelemetry {
        line: value.pos.line,
        broken: true,
        port: None,
        interfaces: None,
        interfaces_line: value.pos.line,
        tags: Vec::new(),
        metrics: Vec::new(),
    };
    let mut report = problems.at("");
    let Some(mut obj) = Obj::section(value, "telemetry", &mut report) else {
        return Some(telemetry);
    };
    telemetry.port = obj.field("port", weak_int, &mut report);
    if let Some(v) = obj.get("interfaces") {
        telemetry.interfaces_line = v.pos.line;
        // A string is accepted too (ContainerPilot wanted a list although its docs show one).
        let decoded = obj.decode(
            "interfaces",
            v,
            |v| string_or_list(v).map(Some),
            &mut report,
        );
        telemetry.interfaces = decoded.map(|list| list.value).filter(|l| !l.is_empty());
    }
    let tags = obj.field("tags", string_list, &mut report);
    telemetry.tags = tags.map(|t| t.value).unwrap_or_default();
    if let Some(v) = obj.get("metrics") {
        telemetry.metrics = metrics(v, problems);
    }
    obj.finish(&mut problems.at(""), KEYS);
    telemetry.broken = problems.error_count() != before;
    Some(telemetry)
}

fn metrics(value: &Value, problems: &mut Problems) -> Vec<RawMetric> {
    let items = list_items(value, "telemetry.metrics", &mut problems.at(""));
    let mut metrics = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match Obj::new(item, "") {
            Some(obj) => metrics.push(metric(index, obj, problems)),
            None => wrong_type(
                &mut problems.at(""),
                &format!("telemetry.metrics[{index}]"),
                "an object",
                item,
            ),
        }
    }
    metrics
}

fn metric(index: usize, mut obj: Obj<'_>, problems: &mut Problems) -> RawMetric {
    let mut report = problems.at(path(index, ""));
    let line = obj.line;
    let mut field = |key: &str| {
        obj.field(key, weak_string, &mut report).unwrap_or(Spanned {
            value: String::new(),
            line,
        })
    };
    let metric = RawMetric {
        index,
        namespace: field("namespace"),
        subsystem: field("subsystem"),
        name: field("name"),
        help: field("help"),
        kind: field("type"),
    };
    obj.finish(&mut problems.at(metric.path()), METRIC_KEYS);
    metric
}
