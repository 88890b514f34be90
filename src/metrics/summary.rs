//! A Prometheus summary: quantiles over a sliding window, plus a cumulative sum and count.
//!
//! prometheus-client has no summary type, and its `MetricType` cannot even name one, so pilot
//! keeps the observations here and writes the family's text itself (`encode`).
//!
//! ContainerPilot used client_golang's summary with objectives `{0.5: 0.05, 0.9: 0.01,
//! 0.99: 0.001}` and a 10-minute window rotated in 5 age buckets. The same window is kept here:
//! observations go into the youngest of 5 buckets of 2 minutes each, a bucket is dropped once it
//! is older than 10 minutes, and a quantile is computed at scrape time from the samples of the
//! live buckets, exactly (nearest rank) while a bucket holds at most `BUCKET_CAPACITY` samples.
//! Past that, a bucket keeps a uniform random sample of its observations (reservoir sampling),
//! so memory stays bounded (5 x 1024 values per summary) whatever the rate of `-putmetric`; the
//! quantiles are then estimates, which is what a summary's quantiles always were. Sum and count
//! cover every observation since the metric was created, as in Go.

use std::fmt::Write;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The quantiles ContainerPilot's summaries report (its objectives' keys).
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// How long an observation counts towards the quantiles (client_golang's `DefMaxAge`).
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// How many buckets the window is split into (client_golang's `DefAgeBuckets`).
pub const AGE_BUCKETS: u32 = 5;
/// The most samples one age bucket keeps.
pub const BUCKET_CAPACITY: usize = 1024;

/// A summary's state. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Summary {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    sum: f64,
    count: u64,
    /// Oldest first; each covers `MAX_AGE / AGE_BUCKETS` from its start.
    buckets: Vec<Bucket>,
    /// State of the xorshift generator used for reservoir sampling; never 0.
    rng: u64,
}

#[derive(Debug)]
struct Bucket {
    start: Instant,
    /// How many observations fell into this bucket (more than `samples.len()` once full).
    seen: u64,
    samples: Vec<f64>,
}

/// What a scrape reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// `(quantile, value)` for each of `QUANTILES`; the value is NaN when the window is empty,
    /// as client_golang reports it.
    pub quantiles: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new()
    }
}

impl Summary {
    pub fn new() -> Summary {
        // Any non-zero seed will do: sampling only has to be unbiased, not unpredictable.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            | 1;
        Summary {
            inner: Mutex::new(Inner {
                sum: 0.0,
                count: 0,
                buckets: Vec::new(),
                rng: seed,
            }),
        }
    }

    pub fn observe(&self, value: f64) {
        self.observe_at(value, Instant::now());
    }

    /// `observe` at a given time, so that tests need not wait ten minutes.
    pub fn observe_at(&self, value: f64, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.sum += value;
        inner.count += 1;
        inner.expire(now);
        let width = bucket_width();
        let needs_new = inner
            .buckets
            .last()
            .is_none_or(|b| now.saturating_duration_since(b.start) >= width);
        if needs_new {
            inner.buckets.push(Bucket {
                start: now,
                seen: 0,
                samples: Vec::new(),
            });
        }
        let random = inner.next_random();
        let bucket = inner.buckets.last_mut().expect("a bucket was just ensured");
        bucket.seen += 1;
        if bucket.samples.len() < BUCKET_CAPACITY {
            bucket.samples.push(value);
        } else {
            // Algorithm R: the n-th observation replaces a kept one with probability k/n.
            let slot = random % bucket.seen;
            if let Some(kept) = bucket.samples.get_mut(slot as usize) {
                *kept = value;
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(Instant::now())
    }

    /// `snapshot` at a given time.
    pub fn snapshot_at(&self, now: Instant) -> Snapshot {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.expire(now);
        let mut values: Vec<f64> = inner
            .buckets
            .iter()
            .flat_map(|b| b.samples.iter().copied())
            .collect();
        values.sort_by(f64::total_cmp);
        let quantiles = QUANTILES
            .iter()
            .map(|&q| (q, nearest_rank(&values, q)))
            .collect();
        Snapshot {
            quantiles,
            sum: inner.sum,
            count: inner.count,
        }
    }
}

impl Inner {
    /// Drops the buckets that started `MAX_AGE` ago or more. Buckets start at least one width
    /// apart, so at most `AGE_BUCKETS` are left, and an observation counts towards the quantiles
    /// for between `MAX_AGE - width` and `MAX_AGE`, as in client_golang.
    fn expire(&mut self, now: Instant) {
        self.buckets
            .retain(|b| now.saturating_duration_since(b.start) < MAX_AGE);
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough for reservoir sampling, and no dependency.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

fn bucket_width() -> Duration {
    MAX_AGE / AGE_BUCKETS
}

/// The value of rank `ceil(q * n)` among the sorted `values` (NaN when there is none).
fn nearest_rank(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Writes a summary family in the Prometheus text format (version 0.0.4): the `quantile`
/// samples, `_sum` and `_count`. `help` must already be escaped.
pub fn encode(out: &mut String, name: &str, help: &str, snapshot: &Snapshot) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
    for (q, v) in &snapshot.quantiles {
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", format_value(*v));
    }
    let _ = writeln!(out, "{name}_sum {}", format_value(snapshot.sum));
    let _ = writeln!(out, "{name}_count {}", snapshot.count);
}

/// A sample value as Prometheus' text format spells it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_for_a_small_window() {
        let s = Summary::new();
        let t = Instant::now();
        for v in 1..=100 {
            s.observe_at(v as f64, t);
        }
        let snap = s.snapshot_at(t);
        assert_eq!(snap.quantiles, vec![(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)]);
        assert_eq!(snap.sum, 5050.0);
        assert_eq!(snap.count, 100);
    }

    #[test]
    fn an_empty_window_reports_nan_quantiles() {
        let s = Summary::new();
        let snap = s.snapshot();
        assert!(snap.quantiles.iter().all(|(_, v)| v.is_nan()));
        assert_eq!((snap.sum, snap.count), (0.0, 0));
    }

    #[test]
    fn old_observations_leave_the_quantiles_but_not_sum_and_count() {
        let s = Summary::new();
        let t0 = Instant::now();
        s.observe_at(1000.0, t0);
        // Still inside the window just before MAX_AGE.
        let early = t0 + MAX_AGE - Duration::from_secs(1);
        s.observe_at(1.0, early);
        assert_eq!(s.snapshot_at(early).quantiles[2], (0.99, 1000.0));
        // Ten minutes after the first observation, its bucket is gone.
        let late = t0 + MAX_AGE;
        let snap = s.snapshot_at(late);
        assert_eq!(snap.quantiles, vec![(0.5, 1.0), (0.9, 1.0), (0.99, 1.0)]);
        assert_eq!((snap.sum, snap.count), (1001.0, 2));
        // And eventually nothing is left in the window.
        let snap = s.snapshot_at(late + MAX_AGE);
        assert!(snap.quantiles[0].1.is_nan());
        assert_eq!(snap.count, 2);
    }

    #[test]
    fn memory_is_bounded_and_sampling_stays_representative() {
        let s = Summary::new();
        let t = Instant::now();
        // 100,000 observations of 0..1000 in one bucket: far past its capacity.
        for i in 0..100_000u32 {
            s.observe_at((i % 1000) as f64, t);
        }
        let inner = s.inner.lock().unwrap();
        assert_eq!(inner.buckets.len(), 1);
        assert_eq!(inner.buckets[0].samples.len(), BUCKET_CAPACITY);
        assert_eq!(inner.buckets[0].seen, 100_000);
        drop(inner);
        let snap = s.snapshot_at(t);
        assert_eq!(snap.count, 100_000);
        // A uniform sample of 1024 values: the median of 0..1000 within a generous margin.
        let median = snap.quantiles[0].1;
        assert!((400.0..=600.0).contains(&median), "median {median}");
        let p99 = snap.quantiles[2].1;
        assert!(p99 >= 950.0, "p99 {p99}");
    }

    #[test]
    fn encodes_the_text_format() {
        let s = Summary::new();
        let t = Instant::now();
        s.observe_at(2.0, t);
        s.observe_at(4.0, t);
        let mut out = String::new();
        encode(&mut out, "app_latency", "how long", &s.snapshot_at(t));
        assert_eq!(
            out,
            "# HELP app_latency how long\n\
             # TYPE app_latency summary\n\
             app_latency{quantile=\"0.5\"} 2\n\
             app_latency{quantile=\"0.9\"} 4\n\
             app_latency{quantile=\"0.99\"} 4\n\
             app_latency_sum 6\n\
             app_latency_count 2\n"
        );
    }

    #[test]
    fn values_use_prometheus_spelling() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(1e21), "1000000000000000000000");
    }
}
