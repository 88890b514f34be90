//! The rules of a watch.

use super::names::service_name;
use crate::config::problems::Reporter;
use crate::config::raw::RawWatch;

/// A watch follows a Consul service, so its name is a service name, and it polls at a positive
/// interval while Consul is unreachable.
pub fn check_watch(watch: &RawWatch, report: &mut Reporter<'_>) {
    if !watch.name.is_empty()
        && let Err(why) = service_name(&watch.name)
    {
        report.key("name", why, watch.line);
    }
    if let Some(interval) = watch.interval.as_ref().filter(|i| !i.value.is_positive()) {
        report.key(
            "interval",
            format!("must be greater than zero, got {}", interval.value),
            interval.line,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::GoDuration;
    use crate::config::problems::Problems;
    use crate::config::raw::Spanned;

    fn watch(name: &str, seconds: i64) -> RawWatch {
        RawWatch {
            index: 0,
            line: 3,
            name: name.into(),
            interval: GoDuration::from_secs(seconds).map(|value| Spanned { value, line: 4 }),
            tag: None,
            dc: None,
        }
    }

    fn problems_of(watch: &RawWatch) -> Vec<String> {
        let mut problems = Problems::default();
        check_watch(watch, &mut problems.at(watch.path()));
        problems.messages()
    }

    #[test]
    fn a_sound_watch_passes() {
        assert!(problems_of(&watch("db", 5)).is_empty());
    }

    #[test]
    fn name_and_interval_are_checked_on_their_lines() {
        assert_eq!(
            problems_of(&watch("DB", 0)),
            [
                "watches[0] \"DB\": name \"DB\" is not a valid service name: it must start with a lowercase letter and have only letters, digits and dashes, at least 2 characters (line 3)",
                "watches[0] \"DB\": interval must be greater than zero, got 0s (line 4)",
            ]
        );
    }
}
