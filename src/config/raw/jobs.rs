//! `jobs`: each job as written, with its `health` and `when` (their own modules).

use super::health::{self, RawHealth};
use super::object::{Obj, is_null, list_items, wrong_type};
use super::weak::{
    describe, exec, format_number, non_empty_string, string_list, string_or_list, weak_bool,
    weak_duration, weak_int, weak_string,
};
use super::when::{self, RawWhen};
use super::{Deferred, Spanned};
use crate::config::duration::GoDuration;
use crate::config::json5::{Kind, Value};
use crate::config::model::Exec;
use crate::config::problems::{Problems, Reporter, quote_short};

const KEYS: &[&str] = &[
    "name",
    "exec",
    "port",
    "initial_status",
    "interfaces",
    "tags",
    "meta",
    "consul",
    "health",
    "when",
    "timeout",
    "stopTimeout",
    "restarts",
    "logging",
    "main",
    "stopSignal",
    "user",
    "group",
];
const CONSUL_KEYS: &[&str] = &["enableTagOverride", "deregisterCriticalServiceAfter"];

/// A job as written, decoded with weak typing but not yet checked against the others.
#[derive(Debug)]
pub struct RawJob {
    pub index: usize,
    /// The line of the job's object.
    pub line: u32,
    /// Empty when not given (reported).
    pub name: String,
    /// What its problems belong to: `jobs[2] "app"`, or `jobs[2]` without a name.
    pub path: String,
    pub exec: Option<Exec>,
    /// Something in it did not decode: it still counts as a name for references, and
    /// problems that would follow from what is missing are not reported on top.
    pub broken: bool,
    pub port: Option<Spanned<i64>>,
    pub initial_status: Option<Spanned<String>>,
    pub interfaces: Option<Deferred<Vec<String>>>,
    pub tags: Vec<String>,
    pub meta: Option<Spanned<Vec<(String, String)>>>,
    pub consul: Option<RawJobConsul>,
    pub health: Option<RawHealth>,
    pub when: Option<RawWhen>,
    pub timeout: Option<Spanned<GoDuration>>,
    pub stop_timeout: Option<Spanned<GoDuration>>,
    pub restarts: Option<Spanned<RawRestarts>>,
    pub raw_output: bool,
    pub main: Option<Spanned<bool>>,
    /// `stopSignal`, already read as a signal number.
    pub stop_signal: Option<Spanned<i32>>,
    pub run_as: Option<RawRunAs>,
}

/// `user` and `group` of a job or a health check, as written.
#[derive(Debug)]
pub struct RawRunAs {
    pub user: Spanned<String>,
    pub group: Option<Spanned<String>>,
}

/// `user` and the optional `group`; `group` alone is reported (whose group would it be?).
pub(super) fn run_as(obj: &mut Obj<'_>, report: &mut Reporter<'_>) -> Option<RawRunAs> {
    let user = obj.field_if_set("user", non_empty_string, report);
    let group = obj.field_if_set("group", non_empty_string, report);
    match (user, group) {
        (Some(user), group) => Some(RawRunAs { user, group }),
        (None, Some(group)) => {
            report.key(
                &obj.full_key("group"),
                "needs user: give the user the processes run as, and group to change its group",
                group.line,
            );
            None
        }
        (None, None) => None,
    }
}

impl RawJob {
    /// A job with a non-zero `port` is a Consul service (a port out of range included, so that
    /// its problems are those of a service).
    pub fn is_service(&self) -> bool {
        self.port.as_ref().is_some_and(|p| p.value != 0)
    }

    /// `main: true`.
    pub fn is_main(&self) -> bool {
        self.main.as_ref().is_some_and(|m| m.value)
    }

    /// The line of one of its values (`port`, `main`) when given, else the job's.
    pub fn line_of<T>(&self, value: &Option<Spanned<T>>) -> u32 {
        value.as_ref().map_or(self.line, |v| v.line)
    }
}

/// A job's `consul` block.
#[derive(Debug)]
pub struct RawJobConsul {
    pub enable_tag_override: bool,
    pub deregister: Option<Deferred<Option<GoDuration>>>,
}

/// `restarts` as written.
#[derive(Debug)]
pub enum RawRestarts {
    Unlimited,
    Never,
    Count(i64),
}

pub fn decode(value: Option<&Value>, problems: &mut Problems) -> Vec<RawJob> {
    let Some(value) = value else {
        return Vec::new();
    };
    // ContainerPilot silently ran no job at all when `jobs` was not a list.
    let items = list_items(value, "jobs", &mut problems.at(""));
    let mut jobs = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if is_null(item) {
            continue;
        }
        match Obj::new(item, "") {
            Some(obj) => jobs.push(job(index, obj, problems)),
            None => wrong_type(
                &mut problems.at(""),
                &format!("jobs[{index}]"),
                "an object",
                item,
            ),
        }
    }
    jobs
}

fn path(index: usize, name: &str) -> String {
    if name.is_empty() {
        format!("jobs[{index}]")
    } else {
        format!("jobs[{index}] {}", quote_short(name))
    }
}

fn job(index: usize, mut obj: Obj<'_>, problems: &mut Problems) -> RawJob {
    let before = problems.error_count();
    let name = name(index, &mut obj, problems);
    let path = path(index, &name);
    let mut report = problems.at(path.clone());
    let exec = obj.field("exec", exec, &mut report).map(|e| e.value);
    let port = obj.field("port", weak_int, &mut report);
    let initial_status = obj.field_if_set("initial_status", non_empty_string, &mut report);
    // Read only for services, as ContainerPilot did: a job without a port may carry anything.
    let interfaces = obj.get("interfaces").map(|v| Spanned {
        value: string_or_list(v),
        line: v.pos.line,
    });
    let tags = obj.field("tags", string_list, &mut report);
    let meta = obj.get("meta").and_then(|v| meta(v, &mut report));
    let consul = obj.get("consul").and_then(|v| consul(v, &mut report));
    let health = obj
        .get("health")
        .and_then(|v| health::decode(v, &mut report));
    let when = obj.get("when").and_then(|v| when::decode(v, &mut report));
    let timeout = obj.field_if_set("timeout", weak_duration, &mut report);
    let stop_timeout = obj.field_if_set("stopTimeout", weak_duration, &mut report);
    let restarts = obj.field("restarts", restarts, &mut report);
    let raw_output = obj
        .get("logging")
        .is_some_and(|v| logging_raw(v, "logging", &mut report));
    let main = obj.field("main", weak_bool, &mut report);
    let stop_signal = obj.field("stopSignal", signal, &mut report);
    let run_as = run_as(&mut obj, &mut report);
    let line = obj.line;
    obj.finish(&mut report, KEYS);
    RawJob {
        index,
        line,
        name,
        path,
        exec,
        broken: problems.error_count() > before,
        port,
        initial_status,
        interfaces,
        tags: tags.map(|t| t.value).unwrap_or_default(),
        meta,
        consul,
        health,
        when,
        timeout,
        stop_timeout,
        restarts,
        raw_output,
        main,
        stop_signal,
        run_as,
    }
}

/// A signal as Docker's `STOPSIGNAL` reads it (`"SIGQUIT"`, `"quit"`, `"3"`).
fn signal(value: &Value) -> Result<i32, String> {
    let text = weak_string(value)?;
    crate::supervisor::parse_signal(&text).ok_or_else(|| {
        format!(
            "must be a signal such as \"SIGQUIT\", \"SIGINT\" or \"15\", got {}",
            quote_short(&text)
        )
    })
}

/// The job's name; every job needs one. Empty when it is missing or not a string (reported).
fn name(index: usize, obj: &mut Obj<'_>, problems: &mut Problems) -> String {
    let mut report = problems.at(path(index, ""));
    let Some(value) = obj.get("name") else {
        report.key("name", "must be set: every job needs a name", obj.line);
        return String::new();
    };
    let name = obj.decode("name", value, |v| weak_string(v).map(Some), &mut report);
    if let Some(name) = name.as_ref().filter(|n| n.value.is_empty()) {
        report.key("name", "must be set: every job needs a name", name.line);
    }
    name.map(|n| n.value).unwrap_or_default()
}

/// `logging: {raw: bool}` of a job or of its health check (`prefix`).
pub(super) fn logging_raw(value: &Value, prefix: &str, report: &mut Reporter<'_>) -> bool {
    let Some(mut obj) = Obj::section(value, prefix, report) else {
        return false;
    };
    let raw = obj.field("raw", weak_bool, report).is_some_and(|r| r.value);
    obj.finish(report, &["raw"]);
    raw
}

/// `meta`: an object of strings. `None` when any of it is wrong (reported).
fn meta(value: &Value, report: &mut Reporter<'_>) -> Option<Spanned<Vec<(String, String)>>> {
    let Kind::Object(members) = &value.kind else {
        wrong_type(report, "meta", "an object of strings", value);
        return None;
    };
    let mut pairs = Vec::new();
    let mut sound = true;
    for member in members.iter().filter(|m| !is_null(&m.value)) {
        match weak_string(&member.value) {
            Ok(v) => pairs.push((member.key.clone(), v)),
            Err(e) => {
                report.key(&format!("meta.{}", member.key), e, member.value.pos.line);
                sound = false;
            }
        }
    }
    sound.then_some(Spanned {
        value: pairs,
        line: value.pos.line,
    })
}

fn consul(value: &Value, report: &mut Reporter<'_>) -> Option<RawJobConsul> {
    let mut obj = Obj::section(value, "consul", report)?;
    let enable_tag_override = obj.field("enableTagOverride", weak_bool, report);
    // Read only for services, as ContainerPilot did.
    let deregister = obj.get("deregisterCriticalServiceAfter").map(|v| Spanned {
        value: weak_duration(v),
        line: v.pos.line,
    });
    obj.finish(report, CONSUL_KEYS);
    Some(RawJobConsul {
        enable_tag_override: enable_tag_override.is_some_and(|e| e.value),
        deregister,
    })
}

/// `restarts`: a count (number or numeric string), `"unlimited"` or `"never"`.
fn restarts(value: &Value) -> Result<RawRestarts, String> {
    let invalid = || {
        format!(
            "must be a number of restarts, \"unlimited\" or \"never\", got {}",
            describe(value)
        )
    };
    match &value.kind {
        Kind::String(s) => match s.as_str() {
            "unlimited" => Ok(RawRestarts::Unlimited),
            "never" => Ok(RawRestarts::Never),
            _ => match s.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(RawRestarts::Count(n)),
                _ => Err(invalid()),
            },
        },
        Kind::Number(n) if *n < 0.0 => {
            Err(format!("must not be negative, got {}", format_number(*n)))
        }
        Kind::Number(n) if n.is_finite() => Ok(RawRestarts::Count(n.trunc().min(1e18) as i64)),
        _ => Err(invalid()),
    }
}
