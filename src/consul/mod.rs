//! Consul: the HTTP client, and the task that registers a job's service and keeps its TTL check
//! current.
//!
//! This module owns every conversation with the Consul agent. It must never make a job wait on
//! the network (ARCHITECTURE.md, invariant 4): a job talks to its [`Registration`] by messages,
//! and every request has a timeout. Nothing here knows about the event bus or job states; the
//! job decides what to report and when.
//!
//! The token travels only in the `X-Consul-Token` header: it is never logged, never part of an
//! error message, and `Debug` of every type here leaves it out.

mod backoff;
mod buffer;
mod client;
mod decode;
mod registration;
pub(crate) mod transport;

pub use backoff::Backoff;
pub use buffer::AnswerBuffer;
pub use client::{
    Client, ConsulError, HealthAnswer, HealthQuery, READ_MARGIN, ServiceRegistration, TtlCheck,
    WRITE_TIMEOUT,
};
pub use decode::{DecodeError, Instance, decode_health_service};
pub use registration::{Registration, RegistrationStatus, check_id, check_notes};
pub use transport::TlsError;

use std::time::Duration;

/// A duration as Go's `time.Duration.String()` writes it (`1h30m0s`, `1.5s`, `300ms`), which is
/// what Consul parses in `DeregisterCriticalServiceAfter` and `wait`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        // Below a second Go picks the largest unit that keeps a non-zero integer part.
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// `value / scale` in decimal, without trailing zeros in the fraction.
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_like_go() {
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_micros(15), "15µs"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(600), "10m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3 * 3600 + 5), "3h0m5s"),
            (
                Duration::from_secs(72 * 3600 + 3 * 60) + Duration::from_millis(500),
                "72h3m0.5s",
            ),
        ] {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }
}
