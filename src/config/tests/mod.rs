//! Tests of the whole pipeline below the file, one file per part of the config: every key, its
//! default, and every problem, through `load_text` as a user's config goes.

mod consul;
mod jobs;
mod pipeline;
mod sections;
mod telemetry_and_watches;
mod when;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;

pub fn interfaces() -> StaticInterfaces {
    StaticInterfaces::from_pairs(&[
        ("eth0", "10.0.0.2"),
        ("eth1", "192.168.5.9"),
        ("lo", "127.0.0.1"),
        ("lo", "::1"),
    ])
}

pub fn ctx_with(env: &[(&str, &str)]) -> LoadContext {
    LoadContext {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        hostname: "host1".into(),
        interfaces: Arc::new(interfaces()),
        version_tags: vec!["3.8.0".into(), "pilot-9.9.9".into()],
        accounts: Accounts::Text {
            passwd: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into(),
            group: "root:x:0:\napp:x:1000:\nwww:x:33:app\n".into(),
        },
    }
}

pub fn ctx() -> LoadContext {
    ctx_with(&[])
}

pub fn load_with(text: &str, ctx: &LoadContext) -> Result<Config, Vec<String>> {
    load_text(text, Path::new("test.json5"), ctx).map_err(|e| match e {
        LoadError::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

pub fn ok(text: &str) -> Config {
    match load_with(text, &ctx()) {
        Ok(config) => config,
        Err(problems) => panic!("{text}\n{problems:#?}"),
    }
}

pub fn errors(text: &str) -> Vec<String> {
    match load_with(text, &ctx()) {
        Ok(config) => panic!("{text} loaded: {config:#?}"),
        Err(problems) => problems,
    }
}

/// The single problem of `text`.
pub fn error(text: &str) -> String {
    let problems = errors(text);
    assert_eq!(problems.len(), 1, "{text}: {problems:#?}");
    problems.into_iter().next().unwrap_or_default()
}

/// A config with one job.
pub fn job(body: &str) -> String {
    format!("{{consul: 'c:8500', jobs: [{{ {body} }}]}}")
}

pub fn one_job(body: &str) -> Job {
    let config = ok(&job(body));
    assert_eq!(config.jobs.len(), 1);
    config.jobs.into_iter().next().unwrap()
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn exec(words: &[&str]) -> Option<Exec> {
    Some(Exec {
        program: words[0].into(),
        args: words[1..].iter().map(|s| s.to_string()).collect(),
    })
}

pub const SERVICE: &str =
    "name: 'app', exec: 'app', port: 8000, health: {exec: 'check', interval: 5, ttl: 10}";
