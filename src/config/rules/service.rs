//! The rules of a job registered in Consul (a job with a `port`). ContainerPilot looked at
//! `initial_status`, `interfaces`, `meta` and the `consul` block only for services, and so does
//! pilot.

use super::names::service_name;
use crate::config::model::CheckStatus;
use crate::config::problems::{Reporter, quote_short};
use crate::config::raw::RawJob;

pub fn check_service(job: &RawJob, report: &mut Reporter<'_>) {
    if !job.name.is_empty()
        && let Err(why) = service_name(&job.name)
    {
        report.key("name", why, job.line);
    }
    if let Some(status) = &job.initial_status
        && status_named(&status.value).is_none()
    {
        report.key(
            "initial_status",
            format!(
                "must be one of passing, warning, critical, got {}",
                quote_short(&status.value)
            ),
            status.line,
        );
    }
    if let Some(interfaces) = &job.interfaces
        && let Err(why) = &interfaces.value
    {
        report.key("interfaces", why, interfaces.line);
    }
    if let Some(meta) = &job.meta {
        check_meta(&meta.value, meta.line, report);
    }
    check_deregister(job, report);
}

/// The status a service may be registered with before its first check.
pub fn status_named(text: &str) -> Option<CheckStatus> {
    match text {
        "passing" => Some(CheckStatus::Passing),
        "warning" => Some(CheckStatus::Warning),
        "critical" => Some(CheckStatus::Critical),
        _ => None,
    }
}

/// Consul's rules for service metadata.
fn check_meta(pairs: &[(String, String)], line: u32, report: &mut Reporter<'_>) {
    if pairs.len() > 64 {
        report.key(
            "meta",
            format!("has {} keys; Consul allows at most 64", pairs.len()),
            line,
        );
    }
    for (key, value) in pairs {
        if key.is_empty()
            || key.len() > 128
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            report.key(
                "meta",
                format!(
                    "key {} is not valid for Consul: 1 to 128 letters, digits, _ and -",
                    quote_short(key)
                ),
                line,
            );
        } else if key.starts_with("consul-") {
            report.key(
                "meta",
                format!("key {key:?} uses the prefix consul-, which Consul reserves"),
                line,
            );
        }
        if value.chars().count() > 512 {
            report.key(
                &format!("meta.{key}"),
                "is longer than the 512 characters Consul allows",
                line,
            );
        }
    }
}

/// `consul.deregisterCriticalServiceAfter` is a positive duration (or not set).
fn check_deregister(job: &RawJob, report: &mut Reporter<'_>) {
    let key = "consul.deregisterCriticalServiceAfter";
    let Some(deregister) = job.consul.as_ref().and_then(|c| c.deregister.as_ref()) else {
        return;
    };
    match &deregister.value {
        Err(why) => report.key(key, why, deregister.line),
        Ok(Some(d)) if !d.is_positive() => report.key(
            key,
            format!("must be greater than zero, got {d}"),
            deregister.line,
        ),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::problems::Problems;

    fn meta_problems(pairs: &[(&str, &str)]) -> Vec<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut problems = Problems::default();
        check_meta(&pairs, 7, &mut problems.at("jobs[0] \"app\""));
        problems.messages()
    }

    #[test]
    fn meta_keys_and_values_follow_consul() {
        assert!(meta_problems(&[("version", "1"), ("a-b_C9", "")]).is_empty());
        assert_eq!(
            meta_problems(&[("", "x"), ("consul-id", "x"), ("k", &"v".repeat(513))]),
            [
                "jobs[0] \"app\": meta key \"\" is not valid for Consul: 1 to 128 letters, digits, _ and - (line 7)",
                "jobs[0] \"app\": meta key \"consul-id\" uses the prefix consul-, which Consul reserves (line 7)",
                "jobs[0] \"app\": meta.k is longer than the 512 characters Consul allows (line 7)",
            ]
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(status_named("warning"), Some(CheckStatus::Warning));
        assert_eq!(status_named("Passing"), None);
    }
}
