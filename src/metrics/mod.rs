//! The metrics registry: the user metrics of `telemetry.metrics`, pilot's own
//! `containerpilot_*` metrics and the `process_*` metrics, encoded for `/metrics`.
//!
//! The exposition is the Prometheus text format, version 0.0.4, which ContainerPilot served: a
//! counter's sample has the family's own name (`containerpilot_events{...} 3`), so existing
//! dashboards and ContainerPilot's own test (`containerpilot_app_some_counter 42`) keep working.
//! prometheus-client encodes OpenMetrics, whose counters get a `_total` suffix; pilot therefore
//! keeps prometheus-client's registry, value types and encoder, but writes counter samples
//! through its gauge encoder (same line, no suffix) and types them `counter` in the descriptor,
//! and writes summaries itself (`summary.rs`). The output never contains `# EOF` or
//! OpenMetrics-only types, so it is served as `text/plain; version=0.0.4`.

mod process;
pub mod summary;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeMetric, GaugeValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::config::{Metric, MetricKind};
use crate::events::{Bus, Event, EventCode};
use process::ProcessCollector;
use summary::Summary;

/// client_golang's `DefBuckets`, which ContainerPilot's histograms used.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How many distinct `(code, source)` pairs `containerpilot_events` keeps. `Error` events carry
/// the error text as their source, so the set is open-ended (ContainerPilot's rough edge 27);
/// past this, new pairs are counted under the source `other`.
pub const MAX_EVENT_SERIES: usize = 1000;

pub const EVENTS: &str = "containerpilot_events";
pub const CONTROL_REQUESTS: &str = "containerpilot_control_http_requests";
pub const WATCH_INSTANCES: &str = "containerpilot_watch_instances";

/// The names pilot registers itself; a user metric may not take one.
const RESERVED: [&str; 9] = [
    EVENTS,
    CONTROL_REQUESTS,
    WATCH_INSTANCES,
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

/// Why a set of user metrics cannot be installed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("metric name {0:?} is not a valid Prometheus name")]
    InvalidName(String),
    #[error("metric {0:?} is defined twice")]
    Duplicate(String),
    #[error("metric {0:?} has the name of one of pilot's own metrics")]
    Reserved(String),
}

/// Why a put (`-putmetric`, `POST /v3/metric`) is refused. Nothing of a refused put is applied.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PutError {
    #[error("unknown metric {0:?}")]
    Unknown(String),
    #[error("metric {key:?}: value must be a finite number, got {value}")]
    NotFinite { key: String, value: f64 },
    #[error("metric {key:?} is a counter, which cannot decrease: got {value}")]
    NegativeCounter { key: String, value: f64 },
}

/// A cheap, cloneable handle to all of pilot's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    builtins: Arc<Builtins>,
    user: Arc<RwLock<UserMetrics>>,
}

#[derive(Debug, Default)]
struct Builtins {
    events: Family<[(&'static str, String); 2], PlainCounter>,
    event_series: AtomicUsize,
    control_requests: Family<[(&'static str, String); 2], PlainCounter>,
    /// Whether `control_requests` has a sample (a family's `len` is only in prometheus-client's
    /// test builds).
    control_used: AtomicBool,
    watch_instances: Family<[(&'static str, String); 1], PlainGauge>,
    watch_used: AtomicBool,
}

/// The user metrics of the current config.
#[derive(Debug, Default)]
struct UserMetrics {
    /// Config order, which is the order of `/metrics`.
    list: Vec<Arc<UserMetric>>,
    /// By Prometheus name and by ContainerPilot's legacy key (`__name`).
    by_key: HashMap<String, Arc<UserMetric>>,
}

#[derive(Debug)]
struct UserMetric {
    def: Metric,
    name: String,
    help: String,
    value: UserValue,
}

#[derive(Debug)]
enum UserValue {
    Counter(PlainCounter),
    Gauge(PlainGauge),
    Histogram(Histogram),
    Summary(Summary),
}

/// A counter written as in the Prometheus text format: the sample has the family's name.
#[derive(Clone, Debug, Default)]
struct PlainCounter(Counter<f64, AtomicU64>);

impl TypedMetric for PlainCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for PlainCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&Num(self.0.get()))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A gauge whose whole values are written without a fraction.
#[derive(Clone, Debug, Default)]
struct PlainGauge(Gauge<f64, AtomicU64>);

impl TypedMetric for PlainGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for PlainGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&Num(self.0.get()))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// A sample value: whole numbers as integers (`42`, as Go writes them, where prometheus-client
/// would write `42.0`), others as floats.
pub(crate) struct Num(pub f64);

impl EncodeGaugeValue for Num {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> Result<(), std::fmt::Error> {
        // Below 2^53 every whole f64 is exactly an i64.
        if self.0.fract() == 0.0 && self.0.abs() < 9_007_199_254_740_992.0 {
            (self.0 as i64).encode(encoder)
        } else {
            self.0.encode(encoder)
        }
    }
}

impl Metrics {
    /// A registry with pilot's own metrics and the user metrics `defs`.
    pub fn new(defs: &[Metric]) -> Result<Metrics, MetricsError> {
        let user = Arc::new(RwLock::new(UserMetrics::build(defs, None)?));
        let builtins = Arc::new(Builtins::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(BuiltinCollector(builtins.clone())));
        registry.register_collector(Box::new(ProcessCollector));
        registry.register_collector(Box::new(UserCollector(user.clone())));
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                builtins,
                user,
            }),
        })
    }

    /// Replaces the user metrics (on reload). A metric whose definition did not change keeps its
    /// value (ContainerPilot reset every one); on error nothing changes.
    pub fn configure(&self, defs: &[Metric]) -> Result<(), MetricsError> {
        let mut user = self.write_user();
        let next = UserMetrics::build(defs, Some(&user))?;
        *user = next;
        Ok(())
    }

    /// Applies `puts` (key and value) to the user metrics: a counter is increased by the value,
    /// a gauge set to it, a histogram and a summary observe it. A key is the metric's Prometheus
    /// name or ContainerPilot's legacy key. Either every put applies or none does.
    pub fn put(&self, puts: &[(String, f64)]) -> Result<(), PutError> {
        let user = self.read_user();
        let mut resolved = Vec::with_capacity(puts.len());
        for (key, value) in puts {
            let metric = user
                .lookup(key)
                .ok_or_else(|| PutError::Unknown(key.clone()))?;
            if !value.is_finite() {
                return Err(PutError::NotFinite {
                    key: key.clone(),
                    value: *value,
                });
            }
            if matches!(metric.value, UserValue::Counter(_)) && *value < 0.0 {
                return Err(PutError::NegativeCounter {
                    key: key.clone(),
                    value: *value,
                });
            }
            resolved.push((metric, *value));
        }
        for (metric, value) in resolved {
            match &metric.value {
                UserValue::Counter(c) => {
                    c.0.inc_by(value);
                }
                UserValue::Gauge(g) => {
                    g.0.set(value);
                }
                UserValue::Histogram(h) => h.observe(value),
                UserValue::Summary(s) => s.observe(value),
            }
        }
        Ok(())
    }

    /// Whether `key` names a user metric.
    pub fn knows(&self, key: &str) -> bool {
        self.read_user().lookup(key).is_some()
    }

    /// Counts `event` into `containerpilot_events{code,source}`; `Metric` events are not
    /// counted, as in ContainerPilot.
    pub fn count_event(&self, event: &Event) {
        if event.code == EventCode::Metric {
            return;
        }
        let b = &self.inner.builtins;
        let labels = [
            ("code", event.code.as_str().to_string()),
            ("source", event.source.to_string()),
        ];
        if let Some(counter) = b.events.get(&labels) {
            counter.0.inc();
            return;
        }
        let labels = if b.event_series.fetch_add(1, Ordering::Relaxed) < MAX_EVENT_SERIES {
            labels
        } else {
            [labels[0].clone(), ("source", "other".to_string())]
        };
        b.events.get_or_create(&labels).0.inc();
    }

    /// Makes every event published on `bus` from now on count into `containerpilot_events`.
    pub fn observe(&self, bus: &Bus) {
        let metrics = self.clone();
        bus.observe(Arc::new(move |event| metrics.count_event(event)));
    }

    /// Counts one control-socket request into `containerpilot_control_http_requests`.
    pub fn count_control_request(&self, path: &str, code: u16) {
        let b = &self.inner.builtins;
        b.control_used.store(true, Ordering::Relaxed);
        b.control_requests
            .get_or_create(&[("code", code.to_string()), ("path", path.to_string())])
            .0
            .inc();
    }

    /// Sets `containerpilot_watch_instances{service}` (for the watches).
    pub fn set_watch_instances(&self, service: &str, count: usize) {
        let b = &self.inner.builtins;
        b.watch_used.store(true, Ordering::Relaxed);
        b.watch_instances
            .get_or_create(&[("service", service.to_string())])
            .0
            .set(count as f64);
    }

    /// The whole exposition, in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and pilot's collectors do not fail otherwise.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.inner.registry);
        for metric in &self.read_user().list {
            if let UserValue::Summary(s) = &metric.value {
                summary::encode(&mut out, &metric.name, &metric.help, &s.snapshot());
            }
        }
        out
    }

    fn read_user(&self) -> std::sync::RwLockReadGuard<'_, UserMetrics> {
        self.inner
            .user
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_user(&self) -> std::sync::RwLockWriteGuard<'_, UserMetrics> {
        self.inner
            .user
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl UserMetrics {
    fn build(defs: &[Metric], previous: Option<&UserMetrics>) -> Result<UserMetrics, MetricsError> {
        let mut list: Vec<Arc<UserMetric>> = Vec::with_capacity(defs.len());
        let mut by_name: HashMap<String, Arc<UserMetric>> = HashMap::new();
        for def in defs {
            let name = def.full_name();
            if !valid_name(&name) {
                return Err(MetricsError::InvalidName(name));
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(MetricsError::Reserved(name));
            }
            if by_name.contains_key(&name) {
                return Err(MetricsError::Duplicate(name));
            }
            let kept = previous
                .and_then(|p| p.by_key.get(&name))
                .filter(|m| m.def == *def)
                .cloned();
            let metric =
                kept.unwrap_or_else(|| Arc::new(UserMetric::new(def.clone(), name.clone())));
            by_name.insert(name, metric.clone());
            list.push(metric);
        }
        // A legacy key never hides a Prometheus name: `a__b` is first the metric named `a__b`.
        let mut by_key = by_name.clone();
        for metric in &list {
            by_key
                .entry(metric.def.legacy_key())
                .or_insert_with(|| metric.clone());
        }
        Ok(UserMetrics { list, by_key })
    }

    fn lookup(&self, key: &str) -> Option<Arc<UserMetric>> {
        self.by_key.get(key).cloned()
    }
}

impl UserMetric {
    fn new(def: Metric, name: String) -> UserMetric {
        let value = match def.kind {
            MetricKind::Counter => UserValue::Counter(PlainCounter::default()),
            MetricKind::Gauge => UserValue::Gauge(PlainGauge::default()),
            MetricKind::Histogram => UserValue::Histogram(Histogram::new(DEFAULT_BUCKETS)),
            MetricKind::Summary => UserValue::Summary(Summary::new()),
        };
        let help = escape_help(&def.help);
        UserMetric {
            def,
            name,
            help,
            value,
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The text format's escaping of `# HELP`: a backslash and a line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[derive(Debug)]
struct BuiltinCollector(Arc<Builtins>);

impl Collector for BuiltinCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let b = &self.0;
        // ContainerPilot's help texts, verbatim. A family without samples is left out, as
        // client_golang leaves out a vector before its first sample.
        if b.event_series.load(Ordering::Relaxed) > 0 {
            b.events.encode(encoder.encode_descriptor(
                EVENTS,
                "count of ContainerPilot events, partitioned by type and source",
                None,
                MetricType::Counter,
            )?)?;
        }
        if b.control_used.load(Ordering::Relaxed) {
            b.control_requests.encode(encoder.encode_descriptor(
                CONTROL_REQUESTS,
                "count of requests to control socket, partitioned by path and HTTP code",
                None,
                MetricType::Counter,
            )?)?;
        }
        if b.watch_used.load(Ordering::Relaxed) {
            b.watch_instances.encode(encoder.encode_descriptor(
                WATCH_INSTANCES,
                "gauge of instances found for each ContainerPilot watch, partitioned by service",
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct UserCollector(Arc<RwLock<UserMetrics>>);

impl Collector for UserCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let user = self.0.read().unwrap_or_else(PoisonError::into_inner);
        for metric in &user.list {
            let (kind, value): (MetricType, &dyn EncodeMetric) = match &metric.value {
                UserValue::Counter(c) => (MetricType::Counter, c),
                UserValue::Gauge(g) => (MetricType::Gauge, g),
                UserValue::Histogram(h) => (MetricType::Histogram, h),
                // Written after the registry (see the module doc).
                UserValue::Summary(_) => continue,
            };
            value.encode(encoder.encode_descriptor(&metric.name, &metric.help, None, kind)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(namespace: &str, subsystem: &str, name: &str, kind: MetricKind) -> Metric {
        Metric {
            namespace: namespace.into(),
            subsystem: subsystem.into(),
            name: name.into(),
            help: format!("help of {name}"),
            kind,
        }
    }

    fn all_kinds() -> Vec<Metric> {
        vec![
            def("app", "", "hits", MetricKind::Counter),
            def("app", "", "temperature", MetricKind::Gauge),
            def("", "", "latency", MetricKind::Histogram),
            def("app", "db", "query", MetricKind::Summary),
        ]
    }

    fn put(metrics: &Metrics, key: &str, value: f64) -> Result<(), PutError> {
        metrics.put(&[(key.to_string(), value)])
    }

    /// The sample lines of `text` that start with `prefix` followed by a space or `{`.
    fn samples(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn each_kind_applies_its_put() {
        let metrics = Metrics::new(&all_kinds()).unwrap();
        put(&metrics, "app_hits", 40.0).unwrap();
        put(&metrics, "app_hits", 2.0).unwrap();
        put(&metrics, "app_temperature", 30.0).unwrap();
        put(&metrics, "app_temperature", -4.5).unwrap();
        put(&metrics, "latency", 0.3).unwrap();
        put(&metrics, "latency", 7.0).unwrap();
        put(&metrics, "app_db_query", 3.0).unwrap();
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE app_hits counter\napp_hits 42\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE app_temperature gauge\napp_temperature -4.5\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE latency histogram\n"), "{text}");
        assert_eq!(samples(&text, "latency_sum"), ["latency_sum 7.3"]);
        assert_eq!(samples(&text, "latency_count"), ["latency_count 2"]);
        assert!(text.contains("latency_bucket{le=\"0.25\"} 0\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"10.0\"} 2\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains("# TYPE app_db_query summary\napp_db_query{quantile=\"0.5\"} 3\n"),
            "{text}"
        );
        assert_eq!(
            samples(&text, "app_db_query_count"),
            ["app_db_query_count 1"]
        );
        // No OpenMetrics-only syntax: it is served as the 0.0.4 text format.
        assert!(!text.contains("app_hits_total"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains(" unknown\n"), "{text}");
    }

    #[test]
    fn keys_are_the_prometheus_name_or_the_legacy_key() {
        let metrics = Metrics::new(&[
            def("", "", "bare", MetricKind::Gauge),
            def("ns", "", "one", MetricKind::Gauge),
        ])
        .unwrap();
        put(&metrics, "bare", 1.0).unwrap();
        put(&metrics, "__bare", 2.0).unwrap();
        put(&metrics, "ns__one", 3.0).unwrap();
        assert!(metrics.knows("ns_one"));
        assert!(!metrics.knows("ns_one_"));
        let text = metrics.encode();
        assert_eq!(samples(&text, "bare"), ["bare 2"]);
        assert_eq!(samples(&text, "ns_one"), ["ns_one 3"]);
    }

    #[test]
    fn a_prometheus_name_wins_over_a_legacy_key() {
        // "a" + "b" has the legacy key "a__b", which is also the name of the second metric.
        let metrics = Metrics::new(&[
            def("a", "", "b", MetricKind::Gauge),
            def("", "", "a__b", MetricKind::Gauge),
        ])
        .unwrap();
        put(&metrics, "a__b", 5.0).unwrap();
        let text = metrics.encode();
        assert_eq!(samples(&text, "a__b"), ["a__b 5"]);
        assert_eq!(samples(&text, "a_b"), ["a_b 0"]);
    }

    #[test]
    fn refused_puts_change_nothing() {
        let metrics = Metrics::new(&all_kinds()).unwrap();
        let both = |k2: &str, v2: f64| {
            metrics.put(&[("app_temperature".to_string(), 9.0), (k2.to_string(), v2)])
        };
        assert_eq!(both("nope", 1.0), Err(PutError::Unknown("nope".into())));
        assert_eq!(
            both("app_hits", -1.0),
            Err(PutError::NegativeCounter {
                key: "app_hits".into(),
                value: -1.0
            })
        );
        assert_eq!(
            PutError::NegativeCounter {
                key: "app_hits".into(),
                value: -1.0
            }
            .to_string(),
            "metric \"app_hits\" is a counter, which cannot decrease: got -1"
        );
        assert!(matches!(
            both("latency", f64::NAN),
            Err(PutError::NotFinite { .. })
        ));
        assert!(matches!(
            both("app_temperature", f64::INFINITY),
            Err(PutError::NotFinite { .. })
        ));
        let text = metrics.encode();
        assert_eq!(samples(&text, "app_temperature"), ["app_temperature 0"]);
        assert_eq!(samples(&text, "app_hits"), ["app_hits 0"]);
        assert_eq!(samples(&text, "latency_count"), ["latency_count 0"]);
    }

    #[test]
    fn invalid_definitions_are_refused() {
        assert_eq!(
            Metrics::new(&[def("", "", "Test.Metric", MetricKind::Gauge)]).unwrap_err(),
            MetricsError::InvalidName("Test.Metric".into())
        );
        assert_eq!(
            Metrics::new(&[
                def("a", "", "b", MetricKind::Gauge),
                def("", "a", "b", MetricKind::Counter)
            ])
            .unwrap_err(),
            MetricsError::Duplicate("a_b".into())
        );
        assert_eq!(
            Metrics::new(&[def("containerpilot", "", "events", MetricKind::Counter)])
                .unwrap_err()
                .to_string(),
            "metric \"containerpilot_events\" has the name of one of pilot's own metrics"
        );
    }

    #[test]
    fn reload_keeps_unchanged_metrics_and_resets_changed_ones() {
        let metrics = Metrics::new(&all_kinds()).unwrap();
        put(&metrics, "app_hits", 3.0).unwrap();
        put(&metrics, "app_temperature", 7.0).unwrap();
        let mut next = all_kinds();
        next[1].help = "another help".into();
        next.push(def("", "", "fresh", MetricKind::Counter));
        next.remove(2); // latency goes away
        metrics.configure(&next).unwrap();
        let text = metrics.encode();
        assert_eq!(samples(&text, "app_hits"), ["app_hits 3"], "unchanged");
        assert_eq!(
            samples(&text, "app_temperature"),
            ["app_temperature 0"],
            "redefined"
        );
        assert!(text.contains("# HELP app_temperature another help\n"));
        assert_eq!(samples(&text, "fresh"), ["fresh 0"]);
        assert!(samples(&text, "latency_count").is_empty());
        assert!(!metrics.knows("latency"));
        // A bad config changes nothing.
        let bad = vec![def("", "", "x y", MetricKind::Gauge)];
        assert!(metrics.configure(&bad).is_err());
        assert!(metrics.knows("fresh"));
    }

    #[test]
    fn help_is_escaped() {
        let mut d = def("", "", "m", MetricKind::Gauge);
        d.help = "two\nlines \\ here".into();
        let text = Metrics::new(&[d]).unwrap().encode();
        assert!(text.contains("# HELP m two\\nlines \\\\ here\n"), "{text}");
    }

    #[test]
    fn events_are_counted_except_metric_events() {
        let metrics = Metrics::new(&[]).unwrap();
        let bus = Bus::new();
        metrics.observe(&bus);
        assert!(
            !metrics.encode().contains(EVENTS),
            "no family before its first sample"
        );
        bus.publish(Event::new(EventCode::Startup, "global"));
        bus.publish(Event::new(EventCode::ExitSuccess, "app"));
        bus.publish(Event::new(EventCode::ExitSuccess, "app"));
        bus.publish(Event::new(EventCode::Metric, "app_hits|1"));
        let text = metrics.encode();
        let mut lines = samples(&text, EVENTS);
        lines.sort();
        assert_eq!(
            lines,
            [
                "containerpilot_events{code=\"ExitSuccess\",source=\"app\"} 2",
                "containerpilot_events{code=\"Startup\",source=\"global\"} 1",
            ]
        );
    }

    #[test]
    fn event_sources_are_bounded() {
        let metrics = Metrics::new(&[]).unwrap();
        for i in 0..MAX_EVENT_SERIES + 50 {
            metrics.count_event(&Event::new(EventCode::Error, format!("app: error {i}")));
        }
        // Known series keep counting after the cap.
        metrics.count_event(&Event::new(EventCode::Error, "app: error 0"));
        let text = metrics.encode();
        let lines = samples(&text, EVENTS);
        assert_eq!(lines.len(), MAX_EVENT_SERIES + 1);
        assert!(
            lines
                .contains(&"containerpilot_events{code=\"Error\",source=\"other\"} 50".to_string())
        );
        assert!(lines.contains(
            &"containerpilot_events{code=\"Error\",source=\"app: error 0\"} 2".to_string()
        ));
    }

    #[test]
    fn control_requests_and_watch_instances() {
        let metrics = Metrics::new(&[]).unwrap();
        let text = metrics.encode();
        assert!(!text.contains(CONTROL_REQUESTS) && !text.contains(WATCH_INSTANCES));
        metrics.count_control_request("/v3/ping", 200);
        metrics.count_control_request("/v3/ping", 200);
        metrics.count_control_request("/v3/metric", 400);
        metrics.set_watch_instances("db", 3);
        metrics.set_watch_instances("db", 2);
        let text = metrics.encode();
        let mut lines = samples(&text, CONTROL_REQUESTS);
        lines.sort();
        assert_eq!(
            lines,
            [
                "containerpilot_control_http_requests{code=\"200\",path=\"/v3/ping\"} 2",
                "containerpilot_control_http_requests{code=\"400\",path=\"/v3/metric\"} 1",
            ]
        );
        assert_eq!(
            samples(&text, WATCH_INSTANCES),
            ["containerpilot_watch_instances{service=\"db\"} 2"]
        );
        assert!(text.contains("# TYPE containerpilot_watch_instances gauge\n"));
    }

    #[test]
    fn process_metrics_are_present() {
        let text = Metrics::new(&[]).unwrap().encode();
        for name in &RESERVED[3..] {
            assert_eq!(samples(&text, name).len(), 1, "{name}: {text}");
        }
    }
}
