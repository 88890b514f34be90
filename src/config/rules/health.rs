//! The rules of a job's `health`.

use crate::config::duration::GoDuration;
use crate::config::problems::{Reporter, quote_short};
use crate::config::raw::{RawHealth, Spanned};

/// One check at most, a URL or an address it can reach, and positive timings.
pub fn check_health(health: &RawHealth, report: &mut Reporter<'_>) {
    if health.checks.len() > 1 {
        report.key(
            "health",
            format!(
                "can have only one of exec, http and tcp, got {}",
                health.checks.join(" and ")
            ),
            health.line,
        );
    }
    // The check that runs is the first given of exec, http and tcp; only it is looked at.
    if health.exec.is_none() {
        if let Some(url) = &health.http {
            if let Err(why) = http_url(&url.value) {
                report.key("health.http", why, url.line);
            }
        } else if let Some(address) = &health.tcp
            && let Err(why) = tcp_address(&address.value)
        {
            report.key("health.tcp", why, address.line);
        }
    }
    check_timing(
        health,
        &health.interval,
        "health.interval",
        "how often the check runs",
        report,
    );
    check_timing(
        health,
        &health.ttl,
        "health.ttl",
        "how long Consul keeps the service healthy without a heartbeat",
        report,
    );
    // ContainerPilot ran a check with a zero timeout without any timeout, so a hung check
    // blocked every later one: pilot runs the config, and bounds the check by its interval.
    if let Some(timeout) = health.timeout.as_ref().filter(|t| !t.value.is_positive()) {
        report.warn_key(
            "health.timeout",
            format!(
                "should be greater than zero, got {}: the check times out at health.interval \
                 (ContainerPilot ran it without a timeout)",
                timeout.value
            ),
            timeout.line,
        );
    }
}

/// `interval` and `ttl` are required and positive (a missing one is not reported when
/// something in `health` did not decode).
fn check_timing(
    health: &RawHealth,
    value: &Option<Spanned<GoDuration>>,
    key: &str,
    what: &str,
    report: &mut Reporter<'_>,
) {
    match value {
        Some(d) if !d.value.is_positive() => report.key(
            key,
            format!("must be greater than zero, got {}", d.value),
            d.line,
        ),
        None if !health.broken => report.key(key, format!("must be set: {what}"), health.line),
        _ => {}
    }
}

fn http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            format!(
                "must be an http:// or https:// URL, got {}",
                quote_short(url)
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!("{} is not a valid URL", quote_short(url)));
    }
    Ok(())
}

fn tcp_address(address: &str) -> Result<(), String> {
    let invalid = || {
        format!(
            "must be host:port (such as \"localhost:6379\"), got {}",
            quote_short(address)
        )
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(':') && !host.chars().any(char::is_whitespace)
    };
    let port_ok = port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(http_url("http://localhost:8000/health"), Ok(()));
        assert_eq!(http_url("https://a?x=1"), Ok(()));
        assert!(
            http_url("localhost:80")
                .unwrap_err()
                .contains("must be an http://")
        );
        assert!(
            http_url("http:///x")
                .unwrap_err()
                .contains("is not a valid URL")
        );
        assert!(
            http_url("http://a b")
                .unwrap_err()
                .contains("is not a valid URL")
        );
    }

    #[test]
    fn tcp_addresses() {
        for good in ["localhost:6379", "10.0.0.1:1", "[::1]:65535"] {
            assert_eq!(tcp_address(good), Ok(()), "{good}");
        }
        for bad in [
            "localhost",
            ":80",
            "a:0",
            "a:65536",
            "::1:80",
            "[::1]",
            "a:+80",
            "a b:1",
        ] {
            assert!(tcp_address(bad).is_err(), "{bad}");
        }
    }
}
