//! `watches`: the Consul services, keys and key prefixes to follow.

use super::Spanned;
use super::object::{Obj, is_null, list_items, wrong_type};
use super::weak::{non_empty_string, weak_duration, weak_seconds, weak_string};
use crate::config::duration::GoDuration;
use crate::config::json5::Value;
use crate::config::problems::{Problems, quote_short};

const KEYS: &[&str] = &[
    "name", "interval", "tag", "dc", "key", "prefix", "wait", "maxStale",
];

/// One entry of `watches`, as written.
#[derive(Debug)]
pub struct RawWatch {
    pub index: usize,
    /// The line of the watch's object.
    pub line: u32,
    /// Empty when not given (reported).
    pub name: String,
    /// `None` when not given (reported) or not a duration.
    pub interval: Option<Spanned<GoDuration>>,
    pub tag: Option<Spanned<String>>,
    pub dc: Option<String>,
    /// The Consul key to follow (`key`), as written.
    pub key: Option<Spanned<String>>,
    /// The Consul key prefix to follow (`prefix`), as written.
    pub prefix: Option<Spanned<String>>,
    /// The quiet period (`wait`).
    pub wait: Option<RawWait>,
    /// `maxStale`.
    pub max_stale: Option<Spanned<GoDuration>>,
}

/// `wait: { min, max }`, as written.
#[derive(Debug)]
pub struct RawWait {
    pub min: Option<Spanned<GoDuration>>,
    pub max: Option<Spanned<GoDuration>>,
}

impl RawWatch {
    /// What its problems belong to: `watches[0] "db"`, or `watches[0]` without a name.
    pub fn path(&self) -> String {
        path(self.index, &self.name)
    }
}

fn path(index: usize, name: &str) -> String {
    if name.is_empty() {
        format!("watches[{index}]")
    } else {
        format!("watches[{index}] {}", quote_short(name))
    }
}

pub fn decode(value: Option<&Value>, problems: &mut Problems) -> Vec<RawWatch> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items = list_items(value, "watches", &mut problems.at(""));
    let mut watches = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if is_null(item) {
            continue;
        }
        match Obj::new(item, "") {
            Some(obj) => watches.push(watch(index, obj, problems)),
            None => wrong_type(
                &mut problems.at(""),
                &format!("watches[{index}]"),
                "an object",
                item,
            ),
        }
    }
    watches
}

fn watch(index: usize, mut obj: Obj<'_>, problems: &mut Problems) -> RawWatch {
    let name = obj
        .field("name", weak_string, &mut problems.at(path(index, "")))
        .map(|n| n.value)
        .unwrap_or_default();
    let mut report = problems.at(path(index, &name));
    let key = obj.field("key", weak_string, &mut report);
    let prefix = obj.field("prefix", weak_string, &mut report);
    if name.is_empty() {
        let why = if key.is_some() || prefix.is_some() {
            "must be set: it names the watch's events (watch.<name>)"
        } else {
            "must be set: it is the Consul service to watch"
        };
        report.key("name", why, obj.line);
    }
    let interval = obj.required(
        "interval",
        weak_seconds,
        "how often to poll when Consul is unreachable",
        &mut report,
    );
    let tag = obj.field_if_set("tag", non_empty_string, &mut report);
    let dc = obj.field_if_set("dc", non_empty_string, &mut report);
    let wait = obj
        .get("wait")
        .filter(|v| !is_null(v))
        .and_then(|v| wait(v, &mut report));
    let max_stale = obj.field_if_set("maxStale", weak_duration, &mut report);
    let line = obj.line;
    obj.finish(&mut report, KEYS);
    RawWatch {
        index,
        line,
        name,
        interval,
        tag,
        dc: dc.map(|d| d.value),
        key,
        prefix,
        wait,
        max_stale,
    }
}

fn wait(value: &Value, report: &mut crate::config::problems::Reporter<'_>) -> Option<RawWait> {
    let mut obj = Obj::section(value, "wait", report)?;
    let min = obj.required(
        "min",
        weak_duration,
        "how long no change must last before events go out",
        report,
    );
    let max = obj.field_if_set("max", weak_duration, report);
    obj.finish(report, &["min", "max"]);
    Some(RawWait {
        // `""` reads as zero, which the rules refuse.
        min: min.map(|m| Spanned {
            value: m.value.unwrap_or(GoDuration(0)),
            line: m.line,
        }),
        max,
    })
}
