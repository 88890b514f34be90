//! Events: the closed set of things that happen in pilot, as ContainerPilot defines them.
//!
//! An event is a code and a source (`ExitSuccess` from `app`, `StatusChanged` from `watch.db`).
//! Jobs react to events whose code and source match their `when`; matching on the source is exact
//! and case-sensitive. This module owns the codes and their names; it must not know what any job
//! does with them.

mod bus;

use std::fmt;
use std::sync::Arc;

pub use bus::{Bus, Observer, Stamped, Subscription, Tap};

/// What happened. The variant names are ContainerPilot's, which are also the `code` label of the
/// `containerpilot_events` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventCode {
    /// A process exited with status 0 (source: the job, or `check.<job>` for a health check).
    ExitSuccess,
    /// A process exited non-zero, was killed, timed out or could not be started.
    ExitFailed,
    /// A job started to stop (source: the job).
    Stopping,
    /// A job finished stopping (source: the job).
    Stopped,
    /// A job's health check passed, or a watched service went from no instance to some.
    StatusHealthy,
    /// A job's health check failed, or a watched service went to no instance.
    StatusUnhealthy,
    /// The instances of a watched service changed (source: `watch.<name>`).
    StatusChanged,
    /// A job's `when.timeout` expired before it started (source: the job).
    TimerExpired,
    /// Maintenance mode was switched on (source: `global`).
    EnterMaintenance,
    /// Maintenance mode was switched off (source: `global`).
    ExitMaintenance,
    /// Published next to every `ExitFailed`; the source is the error text.
    Error,
    /// A job asks itself to stop (never published on the bus).
    Quit,
    /// A user metric was set through the control socket (source: `<key>|<value>`).
    Metric,
    /// pilot started, everything is subscribed (source: `global`).
    Startup,
    /// pilot is shutting down (source: `global`).
    Shutdown,
    /// pilot received SIGHUP or SIGUSR2 (source: `SIGHUP` or `SIGUSR2`).
    Signal,
}

impl EventCode {
    /// The code for a name usable in `when.once` / `when.each`. Names are case-sensitive.
    /// `SIGHUP` and `SIGUSR2` are accepted as names of the `Signal` code.
    pub fn from_config_name(name: &str) -> Option<EventCode> {
        Some(match name {
            "exitSuccess" => EventCode::ExitSuccess,
            "exitFailed" => EventCode::ExitFailed,
            "stopping" => EventCode::Stopping,
            "stopped" => EventCode::Stopped,
            "healthy" => EventCode::StatusHealthy,
            "unhealthy" => EventCode::StatusUnhealthy,
            "changed" => EventCode::StatusChanged,
            "timerExpired" => EventCode::TimerExpired,
            "enterMaintenance" => EventCode::EnterMaintenance,
            "exitMaintenance" => EventCode::ExitMaintenance,
            "error" => EventCode::Error,
            "quit" => EventCode::Quit,
            "startup" => EventCode::Startup,
            "shutdown" => EventCode::Shutdown,
            "SIGHUP" | "SIGUSR2" => EventCode::Signal,
            _ => return None,
        })
    }

    /// The name a config uses for this code (`healthy` for `StatusHealthy`), if it has one.
    pub fn config_name(self) -> Option<&'static str> {
        Some(match self {
            EventCode::ExitSuccess => "exitSuccess",
            EventCode::ExitFailed => "exitFailed",
            EventCode::Stopping => "stopping",
            EventCode::Stopped => "stopped",
            EventCode::StatusHealthy => "healthy",
            EventCode::StatusUnhealthy => "unhealthy",
            EventCode::StatusChanged => "changed",
            EventCode::TimerExpired => "timerExpired",
            EventCode::EnterMaintenance => "enterMaintenance",
            EventCode::ExitMaintenance => "exitMaintenance",
            EventCode::Error => "error",
            EventCode::Quit => "quit",
            EventCode::Startup => "startup",
            EventCode::Shutdown => "shutdown",
            EventCode::Metric | EventCode::Signal => return None,
        })
    }

    /// ContainerPilot's name for the code, as in its debug log (`event: {ExitSuccess app}`) and
    /// in the `code` label of `containerpilot_events`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventCode::ExitSuccess => "ExitSuccess",
            EventCode::ExitFailed => "ExitFailed",
            EventCode::Stopping => "Stopping",
            EventCode::Stopped => "Stopped",
            EventCode::StatusHealthy => "StatusHealthy",
            EventCode::StatusUnhealthy => "StatusUnhealthy",
            EventCode::StatusChanged => "StatusChanged",
            EventCode::TimerExpired => "TimerExpired",
            EventCode::EnterMaintenance => "EnterMaintenance",
            EventCode::ExitMaintenance => "ExitMaintenance",
            EventCode::Error => "Error",
            EventCode::Quit => "Quit",
            EventCode::Metric => "Metric",
            EventCode::Startup => "Startup",
            EventCode::Shutdown => "Shutdown",
            EventCode::Signal => "Signal",
        }
    }
}

impl fmt::Display for EventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The source of events pilot itself publishes (startup, shutdown, maintenance).
pub const GLOBAL: &str = "global";

/// One event: a code and the name of what it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub code: EventCode,
    pub source: Arc<str>,
}

impl Event {
    pub fn new(code: EventCode, source: impl Into<Arc<str>>) -> Self {
        Event {
            code,
            source: source.into(),
        }
    }
}

impl fmt::Display for Event {
    /// ContainerPilot's debug form: `{ExitSuccess app}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{} {}}}", self.code, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_round_trip() {
        for name in [
            "exitSuccess",
            "exitFailed",
            "stopping",
            "stopped",
            "healthy",
            "unhealthy",
            "changed",
            "timerExpired",
            "enterMaintenance",
            "exitMaintenance",
            "error",
            "quit",
            "startup",
            "shutdown",
        ] {
            let code = EventCode::from_config_name(name).unwrap();
            assert_eq!(code.config_name(), Some(name));
        }
        assert_eq!(
            EventCode::from_config_name("SIGHUP"),
            Some(EventCode::Signal)
        );
        assert_eq!(EventCode::from_config_name("Healthy"), None);
        assert_eq!(EventCode::from_config_name("statusHealthy"), None);
    }

    #[test]
    fn display_matches_containerpilot_debug_log() {
        assert_eq!(
            Event::new(EventCode::ExitSuccess, "app").to_string(),
            "{ExitSuccess app}"
        );
    }
}
