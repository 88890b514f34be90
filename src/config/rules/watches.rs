//! The rules of a watch.

use super::names::service_name;
use crate::config::problems::Reporter;
use crate::config::raw::{RawWait, RawWatch};

/// A watch follows a Consul service, one key (`key`) or a key prefix (`prefix`), never two of
/// them; its name is a service name (it names the service of a service watch, and the event
/// source `watch.<name>` of every watch), and it polls at a positive interval while Consul is
/// unreachable.
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
    if let (Some(_), Some(prefix)) = (&watch.key, &watch.prefix) {
        report.key(
            "prefix",
            "cannot be set with key: a watch follows one key, one prefix, or (with neither) the service named by name",
            prefix.line,
        );
    }
    if let Some(key) = &watch.key {
        if key.value.is_empty() {
            report.key(
                "key",
                "must not be empty: it is the Consul key to watch",
                key.line,
            );
        } else if key.value.starts_with('/') {
            report.key(
                "key",
                format!(
                    "must not start with \"/\": Consul keys have none (write {:?})",
                    key.value.trim_start_matches('/')
                ),
                key.line,
            );
        }
    }
    if let Some(prefix) = watch.prefix.as_ref().filter(|p| p.value.starts_with('/')) {
        report.key(
            "prefix",
            format!(
                "must not start with \"/\": Consul keys have none (write {:?})",
                prefix.value.trim_start_matches('/')
            ),
            prefix.line,
        );
    }
    if let Some(wait) = &watch.wait {
        check_wait(wait, report);
    }
    if let Some(max_stale) = watch.max_stale.as_ref().filter(|m| m.value.0 < 0) {
        report.key(
            "maxStale",
            format!(
                "must not be negative, got {} (0 sends every read to the leader)",
                max_stale.value
            ),
            max_stale.line,
        );
    }
    if let Some(tag) = &watch.tag
        && (watch.key.is_some() || watch.prefix.is_some())
    {
        report.key(
            "tag",
            "applies only to a service watch (one without key or prefix)",
            tag.line,
        );
    }
}

/// A quiet period's `min` is positive and its `max`, when given, is at least `min`.
fn check_wait(wait: &RawWait, report: &mut Reporter<'_>) {
    if let Some(min) = wait.min.as_ref().filter(|m| !m.value.is_positive()) {
        report.key(
            "wait.min",
            format!("must be greater than zero, got {}", min.value),
            min.line,
        );
    }
    if let (Some(min), Some(max)) = (&wait.min, &wait.max)
        && max.value < min.value
    {
        report.key(
            "wait.max",
            format!(
                "must be at least wait.min ({}), got {}",
                min.value, max.value
            ),
            max.line,
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
            key: None,
            prefix: None,
            wait: None,
            max_stale: None,
        }
    }

    fn at(value: &str, line: u32) -> Option<Spanned<String>> {
        Some(Spanned {
            value: value.into(),
            line,
        })
    }

    fn problems_of(watch: &RawWatch) -> Vec<String> {
        let mut problems = Problems::default();
        check_watch(watch, &mut problems.at(watch.path()));
        problems.messages()
    }

    #[test]
    fn a_sound_watch_passes() {
        assert!(problems_of(&watch("db", 5)).is_empty());
        let mut kv = watch("appcfg", 5);
        kv.key = at("app/config.json", 5);
        assert!(problems_of(&kv).is_empty());
        let mut kv = watch("flags", 5);
        kv.prefix = at("app/flags/", 5);
        kv.dc = Some("east".into());
        assert!(problems_of(&kv).is_empty());
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

    #[test]
    fn key_and_prefix_exclude_each_other_and_the_tag() {
        let mut both = watch("appcfg", 5);
        both.key = at("app/a", 5);
        both.prefix = at("app/", 6);
        both.tag = at("blue", 7);
        assert_eq!(
            problems_of(&both),
            [
                "watches[0] \"appcfg\": prefix cannot be set with key: a watch follows one key, one prefix, or (with neither) the service named by name (line 6)",
                "watches[0] \"appcfg\": tag applies only to a service watch (one without key or prefix) (line 7)",
            ]
        );
    }

    #[test]
    fn keys_are_not_empty_and_have_no_leading_slash() {
        let mut empty = watch("appcfg", 5);
        empty.key = at("", 5);
        assert_eq!(
            problems_of(&empty),
            [
                "watches[0] \"appcfg\": key must not be empty: it is the Consul key to watch (line 5)"
            ]
        );
        let mut slash = watch("appcfg", 5);
        slash.prefix = at("/app/", 6);
        assert_eq!(
            problems_of(&slash),
            [
                "watches[0] \"appcfg\": prefix must not start with \"/\": Consul keys have none (write \"app/\") (line 6)"
            ]
        );
    }
}
