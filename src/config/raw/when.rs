//! A job's `when`: what starts it, as written, and the shape of what it asks for.

use super::Spanned;
use super::object::Obj;
use super::weak::{non_empty_string, weak_duration};
use crate::config::duration::GoDuration;
use crate::config::json5::Value;
use crate::config::model::Repeat;
use crate::config::problems::Reporter;

const KEYS: &[&str] = &["interval", "source", "once", "each", "timeout"];

/// `when`, as written; an empty string is not set.
#[derive(Debug)]
pub struct RawWhen {
    pub line: u32,
    /// Some key failed to decode: the combination is then not checked on top.
    pub broken: bool,
    pub interval: Option<Spanned<GoDuration>>,
    pub source: Option<Spanned<String>>,
    pub once: Option<Spanned<String>>,
    pub each: Option<Spanned<String>>,
    pub timeout: Option<Spanned<GoDuration>>,
}

/// What a `when` asks for, from which of its keys are given (what they name is not looked at).
pub enum WhenShape<'a> {
    /// More than one of `interval`, `once` and `each`: their names.
    Conflict(Vec<&'static str>),
    /// `interval` (`source` and `timeout` mean nothing next to it, as in ContainerPilot).
    Interval(&'a Spanned<GoDuration>),
    /// An event: `once` or `each` (`keyword`, `once` when neither is given) and `source`, either
    /// of which may be missing.
    Event {
        keyword: &'static str,
        event: Option<(&'a Spanned<String>, Repeat)>,
        source: Option<&'a Spanned<String>>,
    },
}

impl RawWhen {
    pub fn shape(&self) -> WhenShape<'_> {
        let given: Vec<&'static str> = [
            self.interval.as_ref().map(|_| "interval"),
            self.once.as_ref().map(|_| "once"),
            self.each.as_ref().map(|_| "each"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            return WhenShape::Conflict(given);
        }
        if let Some(interval) = &self.interval {
            return WhenShape::Interval(interval);
        }
        let (keyword, event) = match (&self.once, &self.each) {
            (Some(e), _) => ("once", Some((e, Repeat::Once))),
            (None, Some(e)) => ("each", Some((e, Repeat::Each))),
            (None, None) => ("once", None),
        };
        WhenShape::Event {
            keyword,
            event,
            source: self.source.as_ref(),
        }
    }

    /// A positive `when.timeout`: zero or negative is no timeout.
    pub fn positive_timeout(&self) -> Option<std::time::Duration> {
        self.timeout
            .as_ref()
            .filter(|t| t.value.is_positive())
            .map(|t| t.value.to_std())
    }
}

pub fn decode(value: &Value, report: &mut Reporter<'_>) -> Option<RawWhen> {
    let mut obj = Obj::section(value, "when", report)?;
    let before = report.error_count();
    let interval = obj.field_if_set("interval", weak_duration, report);
    let source = obj.field_if_set("source", non_empty_string, report);
    let once = obj.field_if_set("once", non_empty_string, report);
    let each = obj.field_if_set("each", non_empty_string, report);
    let timeout = obj.field_if_set("timeout", weak_duration, report);
    let line = obj.line;
    obj.finish(report, KEYS);
    Some(RawWhen {
        line,
        broken: report.error_count() != before,
        interval,
        source,
        once,
        each,
        timeout,
    })
}
