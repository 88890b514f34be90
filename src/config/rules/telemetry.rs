//! The rules of `telemetry` and of the user's metrics.

use std::collections::HashMap;

use crate::config::problems::{Problems, quote_short};
use crate::config::raw::{RawMetric, RawTelemetry};

/// pilot's own metrics, which a user metric must not replace.
const RESERVED_METRICS: &[&str] = &[
    "containerpilot_events",
    "containerpilot_control_http_requests",
    "containerpilot_watch_instances",
];

/// A port to listen on, and metrics Prometheus takes.
pub fn check_telemetry(telemetry: &RawTelemetry, problems: &mut Problems) {
    if let Some(port) = telemetry
        .port
        .as_ref()
        .filter(|p| !(1..=65535).contains(&p.value))
    {
        problems.at("").key(
            "telemetry.port",
            format!("must be between 1 and 65535, got {}", port.value),
            port.line,
        );
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for metric in &telemetry.metrics {
        check_metric(metric, &mut seen, problems);
    }
}

/// Whether `telemetry` decoded and passes its rules: only then is its address looked up.
pub fn telemetry_is_valid(telemetry: &RawTelemetry) -> bool {
    let mut problems = Problems::default();
    check_telemetry(telemetry, &mut problems);
    !telemetry.broken && problems.error_count() == 0
}

/// A known type, a valid name that is neither pilot's nor taken by an earlier metric (`seen`:
/// the index of each name), and a help text.
fn check_metric(metric: &RawMetric, seen: &mut HashMap<String, usize>, problems: &mut Problems) {
    let mut report = problems.at(metric.path());
    let full = metric.full_name();
    let kind = &metric.kind;
    if metric_kind(&kind.value).is_none() {
        report.key(
            "type",
            format!(
                "must be one of counter, gauge, histogram, summary, got {}",
                quote_short(&kind.value)
            ),
            kind.line,
        );
    }
    let name_line = metric.name.line;
    if !is_metric_name(&full) {
        report.key(
            "name",
            format!(
                "{} (namespace, subsystem and name joined by _) is not a valid Prometheus \
                 metric name: letters, digits, _ and :, not starting with a digit",
                quote_short(&full)
            ),
            name_line,
        );
    } else if RESERVED_METRICS.contains(&full.as_str()) {
        report.key(
            "name",
            format!("{full:?} is one of pilot's own metrics"),
            name_line,
        );
    } else if let Some(first) = seen.get(&full) {
        report.key(
            "name",
            format!("{full:?} is already defined by telemetry.metrics[{first}]"),
            name_line,
        );
    } else {
        seen.insert(full, metric.index);
    }
    if metric.help.value.is_empty() {
        report.key(
            "help",
            "must be set: Prometheus requires a help text",
            metric.help.line,
        );
    }
}

/// The metric type named `text`.
pub fn metric_kind(text: &str) -> Option<crate::config::model::MetricKind> {
    use crate::config::model::MetricKind;
    match text {
        "counter" => Some(MetricKind::Counter),
        "gauge" => Some(MetricKind::Gauge),
        "histogram" => Some(MetricKind::Histogram),
        "summary" => Some(MetricKind::Summary),
        _ => None,
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json5::parse;
    use crate::config::raw;

    fn telemetry(text: &str) -> RawTelemetry {
        let mut problems = Problems::default();
        let text = format!("{{consul: 'c', telemetry: {text}}}");
        let config = raw::decode(&parse(&text).unwrap(), &mut problems).unwrap();
        assert!(problems.messages().is_empty(), "{:?}", problems.messages());
        config.telemetry.unwrap()
    }

    fn problems_of(text: &str) -> Vec<String> {
        let mut problems = Problems::default();
        check_telemetry(&telemetry(text), &mut problems);
        problems.messages()
    }

    #[test]
    fn sound_metrics_pass() {
        let text = "{port: 9000, metrics: [{namespace: 'app', name: 'hits', help: 'h', type: 'counter'}, {name: 'up', help: 'h', type: 'gauge'}]}";
        assert!(problems_of(text).is_empty());
        assert!(telemetry_is_valid(&telemetry(text)));
    }

    #[test]
    fn each_metric_is_checked_under_its_name() {
        assert_eq!(
            problems_of(
                "{port: 0, metrics: [{name: 'x', help: 'h', type: 'gauge'}, {name: 'x', type: 'meter'}, {namespace: 'containerpilot', name: 'events', help: 'h', type: 'counter'}]}"
            ),
            [
                "telemetry.port must be between 1 and 65535, got 0 (line 1)",
                "telemetry.metrics[1] \"x\": type must be one of counter, gauge, histogram, summary, got \"meter\" (line 1)",
                "telemetry.metrics[1] \"x\": name \"x\" is already defined by telemetry.metrics[0] (line 1)",
                "telemetry.metrics[1] \"x\": help must be set: Prometheus requires a help text (line 1)",
                "telemetry.metrics[2] \"containerpilot_events\": name \"containerpilot_events\" is one of pilot's own metrics (line 1)",
            ]
        );
        assert!(!telemetry_is_valid(&telemetry("{port: 0}")));
    }

    #[test]
    fn metric_names() {
        assert!(is_metric_name("a:b_c9"));
        assert!(is_metric_name("_x"));
        assert!(!is_metric_name("9a"));
        assert!(!is_metric_name("a.b"));
        assert!(!is_metric_name(""));
    }
}
