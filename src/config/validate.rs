//! From the parsed JSON5 tree to the typed model: every key, its default, and every check.
//!
//! Sections are decoded with ContainerPilot's weak typing (`decode`), then checked with
//! ContainerPilot's rules plus pilot's own (`when` combinations that can never fire, unique job
//! names, references to jobs and watches that exist). Every problem is collected; the model is
//! only built when there are none.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::LoadContext;
use super::decode::{
    self, Obj, Problem, Reporter, Sp, describe, quote_short, weak_bool, weak_duration, weak_int,
    weak_seconds, weak_string,
};
use super::duration::{GoDuration, MILLISECOND};
use super::interfaces::{self, IfaceAddr, Spec};
use super::json5::{Kind, Value};
use super::model::*;
use crate::events::{EventCode, GLOBAL};

/// Where the control socket is when `control.socket` is not set.
pub const DEFAULT_CONTROL_SOCKET: &str = "/var/run/containerpilot.socket";
/// The control socket's permission bits when `control.mode` is not set.
pub const DEFAULT_CONTROL_MODE: u32 = 0o600;
/// The shutdown deadline when `stopTimeout` is not set, zero or negative.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// `interfaces` when not set: ContainerPilot's (its docs say `["eth0:inet"]`, its code does this).
pub const DEFAULT_INTERFACES: [&str; 2] = ["eth0:inet", "inet"];
/// The telemetry port when not set.
pub const DEFAULT_TELEMETRY_PORT: u16 = 9090;
/// The Consul agent when neither the config nor `CONSUL_HTTP_ADDR` names one.
pub const DEFAULT_CONSUL_ADDRESS: &str = "127.0.0.1:8500";
/// The name of the job (and Consul service) pilot adds for `telemetry`.
pub const TELEMETRY_JOB: &str = "containerpilot";

const TOP_LEVEL_KEYS: &[&str] = &[
    "consul",
    "logging",
    "stopTimeout",
    "jobs",
    "watches",
    "control",
    "telemetry",
];
const JOB_KEYS: &[&str] = &[
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
];
const HEALTH_KEYS: &[&str] = &[
    "exec", "http", "tcp", "interval", "ttl", "timeout", "logging",
];
const WHEN_KEYS: &[&str] = &["interval", "source", "once", "each", "timeout"];
const JOB_CONSUL_KEYS: &[&str] = &["enableTagOverride", "deregisterCriticalServiceAfter"];
const WATCH_KEYS: &[&str] = &["name", "interval", "tag", "dc"];
const CONSUL_KEYS: &[&str] = &["address", "scheme", "token", "tls"];
const TLS_KEYS: &[&str] = &[
    "cafile",
    "capath",
    "clientcert",
    "clientkey",
    "servername",
    "verify",
];
const LOGGING_KEYS: &[&str] = &["level", "format", "output"];
const CONTROL_KEYS: &[&str] = &["socket", "mode"];
const TELEMETRY_KEYS: &[&str] = &["port", "interfaces", "tags", "metrics"];
const METRIC_KEYS: &[&str] = &["namespace", "subsystem", "name", "help", "type"];
/// The most problems reported; a config with more is not worth listing further.
const MAX_PROBLEMS: usize = 100;
/// The events a job can start on, for messages.
const EVENT_NAMES: &[&str] = &[
    "startup",
    "exitSuccess",
    "exitFailed",
    "healthy",
    "unhealthy",
    "changed",
    "stopping",
    "stopped",
    "timerExpired",
    "enterMaintenance",
    "exitMaintenance",
];
/// pilot's own metrics, which a user metric must not replace.
const RESERVED_METRICS: &[&str] = &[
    "containerpilot_events",
    "containerpilot_control_http_requests",
    "containerpilot_watch_instances",
];

/// Decodes and validates the whole config.
pub fn build(root: &Value, ctx: &LoadContext) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let config = build_inner(root, ctx, &mut problems);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            if problems.is_empty() {
                // Every path that gives up reports why; this only guards that promise.
                problems.push(Problem {
                    path: String::new(),
                    message: "the config is invalid".into(),
                    line: None,
                });
            }
            // In file order; problems without a line (environment) first.
            problems.sort_by_key(|p| p.line);
            if problems.len() > MAX_PROBLEMS {
                let more = problems.len() - MAX_PROBLEMS;
                problems.truncate(MAX_PROBLEMS);
                problems.push(Problem {
                    path: String::new(),
                    message: format!("and {more} more problems"),
                    line: None,
                });
            }
            Err(problems)
        }
    }
}

fn build_inner(root: &Value, ctx: &LoadContext, problems: &mut Vec<Problem>) -> Option<Config> {
    let Some(mut top) = Obj::top_level(root) else {
        Reporter::new(problems, "").report(
            format!(
                "the config must be an object of keys, got {}",
                describe(root)
            ),
            root.pos.line,
        );
        return None;
    };
    let mut hosts = HostAddresses::new(ctx);

    let logging = logging(top.get("logging"), problems);
    let stop_timeout = stop_timeout(top.get("stopTimeout"), problems);
    let consul = consul(top.get("consul"), top.line, ctx, problems);
    let control = control(top.get("control"), problems);
    let watches = watches(top.get("watches"), problems);
    let raw_jobs = decode_jobs(top.get("jobs"), problems);
    let telemetry = telemetry(top.get("telemetry"), &mut hosts, problems);
    top.finish(&mut Reporter::new(problems, ""), "", TOP_LEVEL_KEYS);

    let jobs = validate_jobs(
        &raw_jobs,
        telemetry.as_ref(),
        &watches,
        ctx,
        &mut hosts,
        problems,
    );
    let telemetry = match telemetry {
        None => Some(None),
        Some((Some(t), _)) => Some(Some(t)),
        Some((None, _)) => None,
    };

    Some(Config {
        consul: consul?,
        logging: logging?,
        stop_timeout: stop_timeout?,
        jobs: jobs?,
        watches: watches.into_iter().map(|(w, _)| w).collect(),
        control: control?,
        telemetry: telemetry?,
    })
}

/// The host's addresses, read once per load and only when a service needs them.
struct HostAddresses<'a> {
    ctx: &'a LoadContext,
    cached: Option<Result<Vec<IfaceAddr>, String>>,
}

impl<'a> HostAddresses<'a> {
    fn new(ctx: &'a LoadContext) -> Self {
        HostAddresses { ctx, cached: None }
    }

    /// Resolves `specs` (strings from the config) to the address to advertise.
    fn resolve(&mut self, specs: &[String]) -> Result<IpAddr, String> {
        let mut parsed = Vec::with_capacity(specs.len());
        let mut errors = Vec::new();
        for spec in specs {
            match Spec::parse(spec) {
                Ok(spec) => parsed.push(spec),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        if let [Spec::Static(ip), ..] = parsed.as_slice() {
            return Ok(*ip);
        }
        let addrs = self
            .cached
            .get_or_insert_with(|| self.ctx.interfaces.addresses())
            .as_ref()
            .map_err(|e| format!("cannot be resolved: {e}"))?;
        interfaces::select(&parsed, addrs).ok_or_else(|| {
            format!(
                "{:?} match no address of this host (it has: {})",
                specs,
                interfaces::describe(addrs)
            )
        })
    }
}

fn type_problem(r: &mut Reporter<'_>, key: &str, what: &str, value: &Value) {
    r.key(
        key,
        format!("must be {what}, got {}", describe(value)),
        value.pos.line,
    );
}

// logging

fn logging(value: Option<&Value>, problems: &mut Vec<Problem>) -> Option<Logging> {
    let mut logging = Logging {
        level: LogLevel::Info,
        format: LogFormat::Default,
        output: LogOutput::Stdout,
    };
    let Some(value) = value else {
        return Some(logging);
    };
    let mut r = Reporter::new(problems, "");
    let before = r.count();
    let Some(mut obj) = Obj::new(value) else {
        type_problem(&mut r, "logging", "an object", value);
        return None;
    };
    if let Some(v) = obj.get("level") {
        match weak_string(v) {
            Ok(level) => match level.to_ascii_lowercase().as_str() {
                "" | "info" => logging.level = LogLevel::Info,
                "debug" => logging.level = LogLevel::Debug,
                "warn" | "warning" => logging.level = LogLevel::Warn,
                "error" | "fatal" | "panic" => logging.level = LogLevel::Error,
                _ => r.key(
                    "logging.level",
                    format!(
                        "must be one of debug, info, warn, error, got {}",
                        quote_short(&level)
                    ),
                    v.pos.line,
                ),
            },
            Err(e) => r.key("logging.level", e, v.pos.line),
        }
    }
    if let Some(v) = obj.get("format") {
        match weak_string(v) {
            Ok(format) => match format.to_ascii_lowercase().as_str() {
                "" | "default" => logging.format = LogFormat::Default,
                "text" => logging.format = LogFormat::Text,
                "json" => logging.format = LogFormat::Json,
                _ => r.key(
                    "logging.format",
                    format!(
                        "must be one of default, text, json, got {}",
                        quote_short(&format)
                    ),
                    v.pos.line,
                ),
            },
            Err(e) => r.key("logging.format", e, v.pos.line),
        }
    }
    if let Some(v) = obj.get("output") {
        match weak_string(v) {
            Ok(output) => {
                logging.output = match output.to_ascii_lowercase().as_str() {
                    "" | "stdout" => LogOutput::Stdout,
                    "stderr" => LogOutput::Stderr,
                    _ => LogOutput::File(PathBuf::from(output)),
                }
            }
            Err(e) => r.key("logging.output", e, v.pos.line),
        }
    }
    obj.finish(&mut r, "logging", LOGGING_KEYS);
    (r.count() == before).then_some(logging)
}

// stopTimeout

/// Whole seconds as in ContainerPilot (or a duration); 0 means the default, and so does a
/// negative value, which ContainerPilot used to skip its final sleep: pilot never sleeps, so
/// the deadline stays the default.
fn stop_timeout(value: Option<&Value>, problems: &mut Vec<Problem>) -> Option<Duration> {
    let Some(value) = value else {
        return Some(DEFAULT_STOP_TIMEOUT);
    };
    match weak_seconds(value) {
        Ok(d) if d.is_positive() => Some(d.to_std()),
        Ok(_) => Some(DEFAULT_STOP_TIMEOUT),
        Err(e) => {
            Reporter::new(problems, "").key("stopTimeout", e, value.pos.line);
            None
        }
    }
}

// consul

fn consul(
    value: Option<&Value>,
    top_line: u32,
    ctx: &LoadContext,
    problems: &mut Vec<Problem>,
) -> Option<Consul> {
    let mut r = Reporter::new(problems, "");
    let before = r.count();
    let Some(value) = value else {
        r.report(
            "consul is required: the address of the Consul agent, such as consul: \"localhost:8500\"",
            top_line,
        );
        return None;
    };
    let env = |name: &str| ctx.env.get(name).filter(|v| !v.is_empty());

    let mut address = String::new();
    let mut scheme_field: Option<Scheme> = None;
    let mut token: Option<String> = None;
    let mut tls = Tls::default();
    let object_form;
    let mut address_line = value.pos.line;
    match &value.kind {
        Kind::String(s) => {
            object_form = false;
            address = s.clone();
        }
        Kind::Object(_) => {
            object_form = true;
            let mut obj = Obj::new(value)?;
            if let Some(v) = obj.get("address") {
                address_line = v.pos.line;
                match weak_string(v) {
                    Ok(a) => address = a,
                    Err(e) => r.key("consul.address", e, v.pos.line),
                }
            }
            if let Some(v) = obj.get("scheme") {
                match weak_string(v) {
                    Ok(s) => match s.to_ascii_lowercase().as_str() {
                        "" => {}
                        "http" => scheme_field = Some(Scheme::Http),
                        "https" => scheme_field = Some(Scheme::Https),
                        _ => r.key(
                            "consul.scheme",
                            format!("must be http or https, got {}", quote_short(&s)),
                            v.pos.line,
                        ),
                    },
                    Err(e) => r.key("consul.scheme", e, v.pos.line),
                }
            }
            if let Some(v) = obj.get("token") {
                // The token's value is never shown, even when it is of the wrong type.
                match &v.kind {
                    Kind::String(s) => token = Some(s.clone()).filter(|t| !t.is_empty()),
                    other => r.key(
                        "consul.token",
                        format!("must be a string, got a {}", other.type_name()),
                        v.pos.line,
                    ),
                }
            }
            if let Some(v) = obj.get("tls") {
                tls_section(v, &mut tls, &mut r);
            }
            obj.finish(&mut r, "consul", CONSUL_KEYS);
        }
        _ => {
            type_problem(&mut r, "consul", "a string or an object", value);
            return None;
        }
    }

    // An empty address is the Consul client's default, as with ContainerPilot.
    let mut address_scheme = None;
    if address.is_empty() {
        address = match env("CONSUL_HTTP_ADDR") {
            Some(a) => a.clone(),
            None => DEFAULT_CONSUL_ADDRESS.to_string(),
        };
    }
    match split_scheme(&address) {
        Ok((scheme, rest)) => {
            address_scheme = scheme;
            address = rest.to_string();
        }
        Err(e) => r.key("consul", e, address_line),
    }
    let ssl_from_env =
        object_form && env("CONSUL_HTTP_SSL").and_then(|v| decode::parse_go_bool(v)) == Some(true);
    let scheme = address_scheme.or(scheme_field).unwrap_or(if ssl_from_env {
        Scheme::Https
    } else {
        Scheme::Http
    });
    if address.is_empty() {
        r.key("consul", "has an empty address", address_line);
    } else if address.chars().any(char::is_whitespace) {
        r.key(
            "consul",
            format!("address {} contains blanks", quote_short(&address)),
            address_line,
        );
    }

    // CONSUL_HTTP_TOKEN replaces the config's token (as in ContainerPilot), and
    // CONSUL_HTTP_TOKEN_FILE replaces both: Consul's Go client reads the file last.
    if let Some(t) = env("CONSUL_HTTP_TOKEN") {
        token = Some(t.clone());
    }
    if let Some(path) = env("CONSUL_HTTP_TOKEN_FILE") {
        match std::fs::read_to_string(path) {
            Ok(text) => token = Some(text.trim().to_string()).filter(|t| !t.is_empty()),
            Err(e) => r.problems.push(Problem {
                path: String::new(),
                message: format!(
                    "CONSUL_HTTP_TOKEN_FILE {}: cannot read it: {}",
                    quote_short(path),
                    crate::errors::describe_io_error(&e)
                ),
                line: None,
            }),
        }
    }
    for (var, field) in [
        ("CONSUL_CACERT", &mut tls.ca_file),
        ("CONSUL_CAPATH", &mut tls.ca_path),
        ("CONSUL_CLIENT_CERT", &mut tls.client_cert),
        ("CONSUL_CLIENT_KEY", &mut tls.client_key),
    ] {
        if let Some(v) = env(var) {
            *field = Some(PathBuf::from(v));
        }
    }
    if let Some(v) = env("CONSUL_TLS_SERVER_NAME") {
        tls.server_name = Some(v.clone());
    }
    tls.server_name = tls.server_name.as_deref().map(without_port);
    if let Some(v) = env("CONSUL_HTTP_SSL_VERIFY") {
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" => tls.verify = true,
            "0" | "false" => tls.verify = false,
            _ => {}
        }
    }
    (r.count() == before).then_some(Consul {
        scheme,
        address,
        token: token.map(Secret::new),
        tls,
    })
}

/// A TLS server name without its port, as Consul's Go client takes it: `consul.local:8501` and
/// `consul.local` name the same certificate, and a port would make every handshake fail.
/// `[::1]:8501` and `[::1]` give `::1`; an IPv6 literal without brackets is left as it is.
fn without_port(name: &str) -> String {
    if let Some(rest) = name.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
        && (after.is_empty() || after.starts_with(':'))
    {
        return host.to_string();
    }
    match name.split_once(':') {
        Some((host, port)) if !port.contains(':') => host.to_string(),
        _ => name.to_string(),
    }
}

/// `http://`, `https://` or `unix://` in front of an address sets the scheme; it is removed once.
fn split_scheme(address: &str) -> Result<(Option<Scheme>, &str), String> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return Ok((None, address));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        "unix" => Scheme::Unix,
        _ => {
            return Err(format!(
                "address {} has an unknown scheme {} (http, https or unix)",
                quote_short(address),
                quote_short(scheme)
            ));
        }
    };
    Ok((Some(scheme), rest))
}

fn tls_section(value: &Value, tls: &mut Tls, r: &mut Reporter<'_>) {
    let Some(mut obj) = Obj::new(value) else {
        type_problem(r, "consul.tls", "an object", value);
        return;
    };
    let path = |obj: &mut Obj<'_>, key: &str, r: &mut Reporter<'_>| -> Option<String> {
        let v = obj.get(key)?;
        match weak_string(v) {
            Ok(s) if s.is_empty() => None,
            Ok(s) => Some(s),
            Err(e) => {
                r.key(&format!("consul.tls.{key}"), e, v.pos.line);
                None
            }
        }
    };
    tls.ca_file = path(&mut obj, "cafile", r).map(PathBuf::from);
    tls.ca_path = path(&mut obj, "capath", r).map(PathBuf::from);
    tls.client_cert = path(&mut obj, "clientcert", r).map(PathBuf::from);
    tls.client_key = path(&mut obj, "clientkey", r).map(PathBuf::from);
    tls.server_name = path(&mut obj, "servername", r);
    if let Some(v) = obj.get("verify") {
        match weak_bool(v) {
            Ok(b) => tls.verify = b,
            Err(e) => r.key("consul.tls.verify", e, v.pos.line),
        }
    }
    obj.finish(r, "consul.tls", TLS_KEYS);
}

// control

fn control(value: Option<&Value>, problems: &mut Vec<Problem>) -> Option<Control> {
    let mut control = Control {
        socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
        mode: DEFAULT_CONTROL_MODE,
    };
    let Some(value) = value else {
        return Some(control);
    };
    let mut r = Reporter::new(problems, "");
    let before = r.count();
    let Some(mut obj) = Obj::new(value) else {
        type_problem(&mut r, "control", "an object", value);
        return None;
    };
    if let Some(v) = obj.get("socket") {
        match weak_string(v) {
            Ok(s) if s.is_empty() => r.key(
                "control.socket",
                "must not be empty (leave it out for /var/run/containerpilot.socket)",
                v.pos.line,
            ),
            Ok(s) => control.socket = PathBuf::from(s),
            Err(e) => r.key("control.socket", e, v.pos.line),
        }
    }
    if let Some(v) = obj.get("mode") {
        match mode(v) {
            Ok(m) => control.mode = m,
            Err(e) => r.key("control.mode", e, v.pos.line),
        }
    }
    obj.finish(&mut r, "control", CONTROL_KEYS);
    (r.count() == before).then_some(control)
}

/// Permission bits written in octal: a string (`"0660"`, `"660"`, `"0o660"`) or a number whose
/// digits are read as octal, as chmod reads them (`660`; JSON5 has no octal numbers).
pub fn mode(value: &Value) -> Result<u32, String> {
    let digits = match &value.kind {
        Kind::String(s) => {
            let s = s.strip_prefix("0o").unwrap_or(s);
            s.to_string()
        }
        Kind::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e12 => format!("{n}"),
        _ => {
            return Err(format!(
                "must be permission bits in octal such as \"0660\", got {}",
                describe(value)
            ));
        }
    };
    let parsed = u32::from_str_radix(&digits, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !digits.is_empty());
    parsed.ok_or_else(|| {
        format!(
            "must be permission bits in octal such as \"0660\" (at most 0777), got {}",
            describe(value)
        )
    })
}

// watches

fn watches(value: Option<&Value>, problems: &mut Vec<Problem>) -> Vec<(Watch, u32)> {
    let mut out = Vec::new();
    let Some(value) = value else {
        return out;
    };
    let Kind::Array(items) = &value.kind else {
        type_problem(
            &mut Reporter::new(problems, ""),
            "watches",
            "an array",
            value,
        );
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        if matches!(item.kind, Kind::Null) {
            continue; // as ContainerPilot does
        }
        let Some(mut obj) = Obj::new(item) else {
            type_problem(
                &mut Reporter::new(problems, ""),
                &format!("watches[{i}]"),
                "an object",
                item,
            );
            continue;
        };
        let name = match obj.get("name").map(|v| (weak_string(v), v)) {
            Some((Ok(name), _)) => name,
            Some((Err(e), v)) => {
                Reporter::new(problems, format!("watches[{i}]")).key("name", e, v.pos.line);
                String::new()
            }
            None => String::new(),
        };
        let mut r = Reporter::new(problems, format!("watches[{i}] {}", quote_short(&name)));
        let before = r.count();
        if name.is_empty() {
            r.path = format!("watches[{i}]");
            r.key(
                "name",
                "must be set: it is the Consul service to watch",
                obj.line,
            );
        } else if let Err(e) = service_name(&name) {
            r.key("name", e, obj.line);
        }
        let mut interval = GoDuration(0);
        match obj.get("interval") {
            Some(v) => match weak_seconds(v) {
                Ok(d) if d.is_positive() => interval = d,
                Ok(d) => r.key(
                    "interval",
                    format!("must be greater than zero, got {d}"),
                    v.pos.line,
                ),
                Err(e) => r.key("interval", e, v.pos.line),
            },
            None => r.key(
                "interval",
                "must be set: how often to poll when Consul is unreachable",
                obj.line,
            ),
        }
        let mut optional = |key: &str, r: &mut Reporter<'_>| -> Option<String> {
            let v = obj.get(key)?;
            match weak_string(v) {
                Ok(s) => Some(s).filter(|s| !s.is_empty()),
                Err(e) => {
                    r.key(key, e, v.pos.line);
                    None
                }
            }
        };
        let tag = optional("tag", &mut r);
        let dc = optional("dc", &mut r);
        let line = obj.line;
        obj.finish(&mut r, "", WATCH_KEYS);
        if r.count() == before {
            out.push((
                Watch {
                    name,
                    interval: interval.to_std(),
                    tag,
                    dc,
                },
                line,
            ));
        } else if !name.is_empty() {
            // Still known as a source, so that jobs using it get no second, misleading error.
            out.push((
                Watch {
                    name,
                    interval: Duration::ZERO,
                    tag: None,
                    dc: None,
                },
                line,
            ));
        }
    }
    out
}

/// ContainerPilot's rule for names registered in Consul: `^[a-z][a-zA-Z0-9\-]+$`.
fn service_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid service name: it must start with a lowercase letter and have only \
             letters, digits and dashes, at least 2 characters",
            quote_short(name)
        ))
    }
}

// telemetry

/// `telemetry`: `None` when absent; otherwise its line and, when valid, the section.
fn telemetry(
    value: Option<&Value>,
    hosts: &mut HostAddresses<'_>,
    problems: &mut Vec<Problem>,
) -> Option<(Option<Telemetry>, u32)> {
    let value = value?;
    let mut r = Reporter::new(problems, "");
    let before = r.count();
    let Some(mut obj) = Obj::new(value) else {
        type_problem(&mut r, "telemetry", "an object", value);
        return Some((None, value.pos.line));
    };
    let mut port = DEFAULT_TELEMETRY_PORT;
    if let Some(v) = obj.get("port") {
        match weak_int(v) {
            Ok(p) if (1..=65535).contains(&p) => port = p as u16,
            Ok(p) => r.key(
                "telemetry.port",
                format!("must be between 1 and 65535, got {p}"),
                v.pos.line,
            ),
            Err(e) => r.key("telemetry.port", e, v.pos.line),
        }
    }
    let mut specs: Vec<String> = DEFAULT_INTERFACES.iter().map(|s| s.to_string()).collect();
    let mut interfaces_line = obj.line;
    if let Some(v) = obj.get("interfaces") {
        interfaces_line = v.pos.line;
        // A string is accepted too (ContainerPilot wanted a list although its docs show one).
        match decode::string_or_list(v) {
            Ok(list) if list.is_empty() => {}
            Ok(list) => specs = list,
            Err(e) => r.key("telemetry.interfaces", e, v.pos.line),
        }
    }
    let mut tags = Vec::new();
    if let Some(v) = obj.get("tags") {
        match decode::string_list(v) {
            Ok(t) => tags = t,
            Err(e) => r.key("telemetry.tags", e, v.pos.line),
        }
    }
    let metrics = match obj.get("metrics") {
        Some(v) => metrics(v, r.problems),
        None => Vec::new(),
    };
    let line = obj.line;
    obj.finish(&mut r, "telemetry", TELEMETRY_KEYS);
    if r.count() != before {
        return Some((None, line));
    }
    match hosts.resolve(&specs) {
        Ok(address) => Some((
            Some(Telemetry {
                port,
                address,
                tags,
                metrics,
            }),
            line,
        )),
        Err(e) => {
            r.key("telemetry.interfaces", e, interfaces_line);
            Some((None, line))
        }
    }
}

fn metrics(value: &Value, problems: &mut Vec<Problem>) -> Vec<Metric> {
    let mut out = Vec::new();
    let Kind::Array(items) = &value.kind else {
        type_problem(
            &mut Reporter::new(problems, ""),
            "telemetry.metrics",
            "an array",
            value,
        );
        return out;
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let Some(mut obj) = Obj::new(item) else {
            type_problem(
                &mut Reporter::new(problems, ""),
                &format!("telemetry.metrics[{i}]"),
                "an object",
                item,
            );
            continue;
        };
        let mut fields: BTreeMap<&str, (String, u32)> = BTreeMap::new();
        let mut r = Reporter::new(problems, format!("telemetry.metrics[{i}]"));
        let before = r.count();
        for key in METRIC_KEYS {
            if let Some(v) = obj.get(key) {
                match weak_string(v) {
                    Ok(s) => {
                        fields.insert(key, (s, v.pos.line));
                    }
                    Err(e) => r.key(key, e, v.pos.line),
                }
            }
        }
        let get = |key: &str| {
            fields
                .get(key)
                .cloned()
                .unwrap_or((String::new(), obj.line))
        };
        let metric_shell = Metric {
            namespace: get("namespace").0,
            subsystem: get("subsystem").0,
            name: get("name").0,
            help: get("help").0,
            kind: MetricKind::Counter,
        };
        let full = metric_shell.full_name();
        if !full.is_empty() {
            r.path = format!("telemetry.metrics[{i}] {full:?}");
        }
        let (kind_text, kind_line) = get("type");
        let kind = match kind_text.as_str() {
            "counter" => Some(MetricKind::Counter),
            "gauge" => Some(MetricKind::Gauge),
            "histogram" => Some(MetricKind::Histogram),
            "summary" => Some(MetricKind::Summary),
            _ => {
                r.key(
                    "type",
                    format!(
                        "must be one of counter, gauge, histogram, summary, got {}",
                        quote_short(&kind_text)
                    ),
                    kind_line,
                );
                None
            }
        };
        let (_, name_line) = get("name");
        if !is_metric_name(&full) {
            r.key(
                "name",
                format!(
                    "{} (namespace, subsystem and name joined by _) is not a valid Prometheus \
                     metric name: letters, digits, _ and :, not starting with a digit",
                    quote_short(&full)
                ),
                name_line,
            );
        } else if RESERVED_METRICS.contains(&full.as_str()) {
            r.key(
                "name",
                format!("{full:?} is one of pilot's own metrics"),
                name_line,
            );
        } else if let Some(first) = seen.get(&full) {
            r.key(
                "name",
                format!("{full:?} is already defined by telemetry.metrics[{first}]"),
                name_line,
            );
        } else {
            seen.insert(full.clone(), i);
        }
        let (help, help_line) = get("help");
        if help.is_empty() {
            r.key(
                "help",
                "must be set: Prometheus requires a help text",
                help_line,
            );
        }
        obj.finish(&mut r, "", METRIC_KEYS);
        if let Some(kind) = kind
            && r.count() == before
        {
            out.push(Metric {
                kind,
                ..metric_shell
            });
        }
    }
    out
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

// jobs: decoding

/// A job as written, decoded with weak typing but not yet checked against the others.
struct RawJob {
    index: usize,
    line: u32,
    name: String,
    /// `jobs[2] "app"`.
    path: String,
    exec: Option<Exec>,
    /// The job failed to decode; it still counts as a name for references.
    broken: bool,
    port: Option<Sp<i64>>,
    initial_status: Option<Sp<String>>,
    interfaces: Option<Value>,
    tags: Vec<String>,
    meta: Option<Sp<Vec<(String, String)>>>,
    consul: Option<RawJobConsul>,
    health: Option<RawHealth>,
    when: Option<RawWhen>,
    timeout: Option<Sp<GoDuration>>,
    stop_timeout: Option<Sp<GoDuration>>,
    restarts: Option<Sp<RawRestarts>>,
    raw_output: bool,
    main: Option<Sp<bool>>,
}

struct RawJobConsul {
    enable_tag_override: bool,
    /// Read only for services, as ContainerPilot did.
    deregister: Option<Value>,
}

struct RawHealth {
    line: u32,
    /// Some key failed to decode: missing keys are then not reported on top.
    broken: bool,
    exec: Option<Exec>,
    http: Option<Sp<String>>,
    tcp: Option<Sp<String>>,
    /// Which of `exec`, `http` and `tcp` were given.
    checks: Vec<&'static str>,
    interval: Option<Sp<GoDuration>>,
    ttl: Option<Sp<GoDuration>>,
    timeout: Option<Sp<GoDuration>>,
    raw_output: bool,
}

struct RawWhen {
    line: u32,
    /// Some key failed to decode: the combination is then not checked on top.
    broken: bool,
    interval: Option<Sp<GoDuration>>,
    source: Option<Sp<String>>,
    once: Option<Sp<String>>,
    each: Option<Sp<String>>,
    timeout: Option<Sp<GoDuration>>,
}

enum RawRestarts {
    Unlimited,
    Never,
    Count(i64),
}

fn decode_jobs(value: Option<&Value>, problems: &mut Vec<Problem>) -> Vec<RawJob> {
    let mut out = Vec::new();
    let Some(value) = value else {
        return out;
    };
    let Kind::Array(items) = &value.kind else {
        // ContainerPilot silently ran no job at all here.
        type_problem(&mut Reporter::new(problems, ""), "jobs", "an array", value);
        return out;
    };
    for (index, item) in items.iter().enumerate() {
        if matches!(item.kind, Kind::Null) {
            continue; // as ContainerPilot does
        }
        match Obj::new(item) {
            Some(obj) => out.push(decode_job(index, obj, problems)),
            None => type_problem(
                &mut Reporter::new(problems, ""),
                &format!("jobs[{index}]"),
                "an object",
                item,
            ),
        }
    }
    out
}

fn decode_job(index: usize, mut obj: Obj<'_>, problems: &mut Vec<Problem>) -> RawJob {
    let mut name = String::new();
    let name_value = obj.get("name");
    let mut name_error = None;
    if let Some(v) = name_value {
        match weak_string(v) {
            Ok(n) => name = n,
            Err(e) => name_error = Some((e, v.pos.line)),
        }
    }
    let path = if name.is_empty() {
        format!("jobs[{index}]")
    } else {
        format!("jobs[{index}] {}", quote_short(&name))
    };
    let mut r = Reporter::new(problems, path.clone());
    let before = r.count();
    if let Some((e, line)) = name_error {
        r.key("name", e, line);
    } else if name.is_empty() {
        r.key(
            "name",
            "must be set: every job needs a name",
            name_value.map_or(obj.line, |v| v.pos.line),
        );
    }

    let exec = obj.get("exec").and_then(|v| match decode::exec(v) {
        Ok(exec) => Some(exec),
        Err(e) => {
            r.key("exec", e, v.pos.line);
            None
        }
    });
    let port = obj.get("port").and_then(|v| match weak_int(v) {
        Ok(p) => Some(Sp {
            v: p,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key("port", e, v.pos.line);
            None
        }
    });
    let initial_status = get_string(&mut obj, "initial_status", &mut r);
    // Read only for services, as ContainerPilot did: a job without a port may carry anything.
    let interfaces = obj.get("interfaces").cloned();
    let tags = obj
        .get("tags")
        .and_then(|v| match decode::string_list(v) {
            Ok(list) => Some(list),
            Err(e) => {
                r.key("tags", e, v.pos.line);
                None
            }
        })
        .unwrap_or_default();
    let meta = obj.get("meta").and_then(|v| meta(v, &mut r));
    let consul = obj.get("consul").and_then(|v| job_consul(v, &mut r));
    let health = obj.get("health").and_then(|v| health(v, &mut r));
    let when = obj.get("when").and_then(|v| when(v, &mut r));
    let timeout = get_duration(&mut obj, "timeout", "timeout", &mut r);
    let stop_timeout = get_duration(&mut obj, "stopTimeout", "stopTimeout", &mut r);
    let restarts = obj.get("restarts").and_then(|v| match restarts(v) {
        Ok(restarts) => Some(Sp {
            v: restarts,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key("restarts", e, v.pos.line);
            None
        }
    });
    let raw_output = obj
        .get("logging")
        .map(|v| logging_raw(v, "logging", &mut r))
        .unwrap_or(false);
    let main = obj.get("main").and_then(|v| match weak_bool(v) {
        Ok(b) => Some(Sp {
            v: b,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key("main", e, v.pos.line);
            None
        }
    });
    let line = obj.line;
    obj.finish(&mut r, "", JOB_KEYS);
    let broken = r.count() > before;
    RawJob {
        index,
        line,
        name,
        path,
        exec,
        broken,
        port,
        initial_status,
        interfaces,
        tags,
        meta,
        consul,
        health,
        when,
        timeout,
        stop_timeout,
        restarts,
        raw_output,
        main,
    }
}

fn get_string(obj: &mut Obj<'_>, key: &str, r: &mut Reporter<'_>) -> Option<Sp<String>> {
    let v = obj.get(key)?;
    match weak_string(v) {
        Ok(s) if s.is_empty() => None,
        Ok(s) => Some(Sp {
            v: s,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key(key, e, v.pos.line);
            None
        }
    }
}

fn get_duration(
    obj: &mut Obj<'_>,
    key: &str,
    full: &str,
    r: &mut Reporter<'_>,
) -> Option<Sp<GoDuration>> {
    let v = obj.get(key)?;
    match weak_duration(v) {
        Ok(d) => d.map(|d| Sp {
            v: d,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key(full, e, v.pos.line);
            None
        }
    }
}

fn get_seconds(
    obj: &mut Obj<'_>,
    key: &str,
    full: &str,
    r: &mut Reporter<'_>,
) -> Option<Sp<GoDuration>> {
    let v = obj.get(key)?;
    match weak_seconds(v) {
        Ok(d) => Some(Sp {
            v: d,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key(full, e, v.pos.line);
            None
        }
    }
}

/// `logging: {raw: bool}` of a job or of its health check.
fn logging_raw(value: &Value, prefix: &str, r: &mut Reporter<'_>) -> bool {
    let Some(mut obj) = Obj::new(value) else {
        type_problem(r, prefix, "an object", value);
        return false;
    };
    let raw = match obj.get("raw") {
        Some(v) => weak_bool(v).unwrap_or_else(|e| {
            r.key(&format!("{prefix}.raw"), e, v.pos.line);
            false
        }),
        None => false,
    };
    obj.finish(r, prefix, &["raw"]);
    raw
}

fn meta(value: &Value, r: &mut Reporter<'_>) -> Option<Sp<Vec<(String, String)>>> {
    let Kind::Object(members) = &value.kind else {
        type_problem(r, "meta", "an object of strings", value);
        return None;
    };
    let before = r.count();
    let mut pairs = Vec::new();
    for member in members {
        if matches!(member.value.kind, Kind::Null) {
            continue;
        }
        match weak_string(&member.value) {
            Ok(v) => pairs.push((member.key.clone(), v)),
            Err(e) => r.key(&format!("meta.{}", member.key), e, member.value.pos.line),
        }
    }
    (r.count() == before).then_some(Sp {
        v: pairs,
        line: value.pos.line,
    })
}

fn job_consul(value: &Value, r: &mut Reporter<'_>) -> Option<RawJobConsul> {
    let Some(mut obj) = Obj::new(value) else {
        type_problem(r, "consul", "an object", value);
        return None;
    };
    let enable_tag_override = match obj.get("enableTagOverride") {
        Some(v) => weak_bool(v).unwrap_or_else(|e| {
            r.key("consul.enableTagOverride", e, v.pos.line);
            false
        }),
        None => false,
    };
    let deregister = obj.get("deregisterCriticalServiceAfter").cloned();
    obj.finish(r, "consul", JOB_CONSUL_KEYS);
    Some(RawJobConsul {
        enable_tag_override,
        deregister,
    })
}

fn health(value: &Value, r: &mut Reporter<'_>) -> Option<RawHealth> {
    let Some(mut obj) = Obj::new(value) else {
        type_problem(r, "health", "an object", value);
        return None;
    };
    let before = r.count();
    let mut checks = Vec::new();
    let exec = obj.get("exec").and_then(|v| {
        checks.push("exec");
        match decode::exec(v) {
            Ok(exec) => Some(exec),
            Err(e) => {
                r.key("health.exec", e, v.pos.line);
                None
            }
        }
    });
    let http = obj.get("http").and_then(|v| {
        checks.push("http");
        match weak_string(v) {
            Ok(s) => Some(Sp {
                v: s,
                line: v.pos.line,
            }),
            Err(e) => {
                r.key("health.http", e, v.pos.line);
                None
            }
        }
    });
    let tcp = obj.get("tcp").and_then(|v| {
        checks.push("tcp");
        match weak_string(v) {
            Ok(s) => Some(Sp {
                v: s,
                line: v.pos.line,
            }),
            Err(e) => {
                r.key("health.tcp", e, v.pos.line);
                None
            }
        }
    });
    let interval = get_seconds(&mut obj, "interval", "health.interval", r);
    let ttl = get_seconds(&mut obj, "ttl", "health.ttl", r);
    let timeout = get_duration(&mut obj, "timeout", "health.timeout", r);
    let raw_output = obj
        .get("logging")
        .map(|v| logging_raw(v, "health.logging", r))
        .unwrap_or(false);
    let line = obj.line;
    obj.finish(r, "health", HEALTH_KEYS);
    Some(RawHealth {
        line,
        broken: r.count() != before,
        exec,
        http,
        tcp,
        checks,
        interval,
        ttl,
        timeout,
        raw_output,
    })
}

fn when(value: &Value, r: &mut Reporter<'_>) -> Option<RawWhen> {
    let Some(mut obj) = Obj::new(value) else {
        type_problem(r, "when", "an object", value);
        return None;
    };
    let before = r.count();
    let interval = get_duration(&mut obj, "interval", "when.interval", r);
    let source = get_string_prefixed(&mut obj, "source", "when.source", r);
    let once = get_string_prefixed(&mut obj, "once", "when.once", r);
    let each = get_string_prefixed(&mut obj, "each", "when.each", r);
    let timeout = get_duration(&mut obj, "timeout", "when.timeout", r);
    let line = obj.line;
    obj.finish(r, "when", WHEN_KEYS);
    Some(RawWhen {
        line,
        broken: r.count() != before,
        interval,
        source,
        once,
        each,
        timeout,
    })
}

fn get_string_prefixed(
    obj: &mut Obj<'_>,
    key: &str,
    full: &str,
    r: &mut Reporter<'_>,
) -> Option<Sp<String>> {
    let v = obj.get(key)?;
    match weak_string(v) {
        Ok(s) if s.is_empty() => None,
        Ok(s) => Some(Sp {
            v: s,
            line: v.pos.line,
        }),
        Err(e) => {
            r.key(full, e, v.pos.line);
            None
        }
    }
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
        Kind::Number(n) if *n < 0.0 => Err(format!(
            "must not be negative, got {}",
            decode::format_number(*n)
        )),
        Kind::Number(n) if n.is_finite() => Ok(RawRestarts::Count(n.trunc().min(1e18) as i64)),
        _ => Err(invalid()),
    }
}

// jobs: validation

/// What other jobs' `when` needs to know about a job.
struct JobFacts {
    index: usize,
    line: u32,
    has_exec: bool,
    has_check: bool,
    has_when_timeout: bool,
}

fn validate_jobs(
    raw: &[RawJob],
    telemetry: Option<&(Option<Telemetry>, u32)>,
    watches: &[(Watch, u32)],
    ctx: &LoadContext,
    hosts: &mut HostAddresses<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Job>> {
    let before = problems.len();
    let mut facts: HashMap<&str, JobFacts> = HashMap::new();
    for job in raw {
        if job.name.is_empty() {
            continue;
        }
        let has_check = job.health.as_ref().is_some_and(|h| !h.checks.is_empty());
        let has_when_timeout = job.when.as_ref().is_some_and(|w| {
            w.interval.is_none() && w.timeout.as_ref().is_some_and(|t| t.v.is_positive())
        });
        if let Some(first) = facts.get(job.name.as_str()) {
            Reporter::new(problems, job.path.clone()).key(
                "name",
                format!(
                    "{:?} is already the name of jobs[{}] (line {}): job names must be unique",
                    job.name, first.index, first.line
                ),
                job.line,
            );
            continue;
        }
        facts.insert(
            &job.name,
            JobFacts {
                index: job.index,
                line: job.line,
                has_exec: job.exec.is_some() || job.broken,
                has_check: has_check || job.broken,
                has_when_timeout: has_when_timeout || job.broken,
            },
        );
    }
    if let Some((_, line)) = telemetry {
        if let Some(first) = facts.get(TELEMETRY_JOB) {
            Reporter::new(problems, format!("jobs[{}] {TELEMETRY_JOB:?}", first.index)).key(
                "name",
                format!(
                    "{TELEMETRY_JOB:?} is the name of the job telemetry adds (line {line}): job names must be unique"
                ),
                first.line,
            );
        }
        facts.insert(
            TELEMETRY_JOB,
            JobFacts {
                index: raw.len(),
                line: *line,
                has_exec: false,
                has_check: false,
                has_when_timeout: false,
            },
        );
    }

    let watch_names: HashSet<&str> = watches.iter().map(|(w, _)| w.name.as_str()).collect();
    let mut jobs = Vec::new();
    for job in raw {
        if let Some(valid) = validate_job(job, &facts, &watch_names, ctx, hosts, problems) {
            jobs.push(valid);
        }
    }
    let mains: Vec<&RawJob> = raw
        .iter()
        .filter(|j| j.main.as_ref().is_some_and(|m| m.v))
        .collect();
    if let [first, rest @ ..] = mains.as_slice() {
        for job in rest {
            Reporter::new(problems, job.path.clone()).key(
                "main",
                format!(
                    "is already set on {} (line {}): only one job is the application",
                    first.path,
                    first.main.as_ref().map_or(first.line, |m| m.line)
                ),
                job.main.as_ref().map_or(job.line, |m| m.line),
            );
        }
    }
    if let Some((Some(telemetry), _)) = telemetry {
        jobs.push(telemetry_job(telemetry, ctx));
    }
    (problems.len() == before).then_some(jobs)
}

fn telemetry_job(telemetry: &Telemetry, ctx: &LoadContext) -> Job {
    let mut tags = telemetry.tags.clone();
    if !ctx.version.is_empty() {
        tags.push(ctx.version.clone());
    }
    Job {
        name: TELEMETRY_JOB.to_string(),
        kind: JobKind::Telemetry,
        exec: None,
        raw_output: false,
        when: When::Startup,
        timeout: None,
        stop_timeout: None,
        restarts: Restarts::Never,
        health: Some(Health {
            check: Check::None,
            interval: Duration::from_secs(5),
            ttl: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            raw_output: false,
        }),
        service: Some(Service {
            id: format!("{TELEMETRY_JOB}-{}", ctx.hostname),
            name: TELEMETRY_JOB.to_string(),
            port: telemetry.port,
            address: telemetry.address,
            tags,
            meta: BTreeMap::new(),
            initial_status: None,
            enable_tag_override: false,
            deregister_critical_service_after: None,
        }),
        main: false,
    }
}

fn validate_job(
    job: &RawJob,
    facts: &HashMap<&str, JobFacts>,
    watches: &HashSet<&str>,
    ctx: &LoadContext,
    hosts: &mut HostAddresses<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Job> {
    let mut r = Reporter::new(problems, job.path.clone());
    let before = r.count();

    // The port decides whether the job is a Consul service.
    let mut port: u16 = 0;
    if let Some(p) = &job.port {
        match u16::try_from(p.v) {
            Ok(p) => port = p,
            Err(_) => r.key(
                "port",
                format!("must be between 0 and 65535, got {}", p.v),
                p.line,
            ),
        }
    }
    let is_service = port != 0 || job.port.as_ref().is_some_and(|p| p.v != 0);

    let health = job.health.as_ref().and_then(|h| validate_health(h, &mut r));
    if is_service && job.health.is_none() {
        r.key(
            "health",
            "must be set when port is set: it heartbeats the service's TTL check in Consul",
            job.port.as_ref().map_or(job.line, |p| p.line),
        );
    }

    let service = if is_service {
        validate_service(job, port, ctx, hosts, &mut r)
    } else {
        if let Some(meta) = &job.meta {
            r.key(
                "meta",
                "needs port: only a job registered in Consul has service metadata",
                meta.line,
            );
        }
        None
    };

    let when = job.when.as_ref().map_or(Some(When::Startup), |w| {
        validate_when(&job.name, w, facts, watches, &mut r)
    });

    let mut timeout = None;
    if let Some(t) = &job.timeout {
        if t.v.0 < MILLISECOND {
            r.key(
                "timeout",
                format!("must be at least 1ms, got {}", t.v),
                t.line,
            );
        } else {
            timeout = Some(t.v.to_std());
        }
    }
    if timeout.is_none()
        && let Some(When::Interval(interval)) = &when
    {
        timeout = Some(*interval);
    }

    // 0 (ContainerPilot's default) and negative values mean "until the global deadline".
    let stop_timeout = job
        .stop_timeout
        .as_ref()
        .filter(|d| d.v.is_positive())
        .map(|d| d.v.to_std());

    let restarts = match &job.restarts {
        None => Some(if matches!(when, Some(When::Interval(_))) {
            Restarts::Unlimited
        } else {
            Restarts::Never
        }),
        Some(Sp {
            v: RawRestarts::Unlimited,
            line,
        }) => {
            if job.when.as_ref().is_some_and(|w| w.each.is_some()) {
                r.key(
                    "restarts",
                    "cannot be \"unlimited\" with when.each: every event would start another \
                     run that never stops",
                    *line,
                );
                None
            } else {
                Some(Restarts::Unlimited)
            }
        }
        Some(Sp {
            v: RawRestarts::Never | RawRestarts::Count(0),
            ..
        }) => Some(Restarts::Never),
        Some(Sp {
            v: RawRestarts::Count(n),
            line,
        }) => match u32::try_from(*n) {
            Ok(n) => Some(Restarts::Times(n)),
            Err(_) => {
                r.key(
                    "restarts",
                    format!("must be at most {}, got {n} (or \"unlimited\")", u32::MAX),
                    *line,
                );
                None
            }
        },
    };

    let main = job.main.as_ref().is_some_and(|m| m.v);
    if main && job.exec.is_none() && !job.broken {
        r.key(
            "main",
            "needs exec: the application is a process that pilot runs",
            job.main.as_ref().map_or(job.line, |m| m.line),
        );
    }

    if r.count() != before || job.broken {
        return None;
    }
    Some(Job {
        name: job.name.clone(),
        kind: JobKind::User,
        exec: job.exec.clone(),
        raw_output: job.raw_output,
        when: when?,
        timeout,
        stop_timeout,
        restarts: restarts?,
        health,
        service,
        main,
    })
}

fn validate_health(h: &RawHealth, r: &mut Reporter<'_>) -> Option<Health> {
    let before = r.count();
    if h.checks.len() > 1 {
        r.key(
            "health",
            format!(
                "can have only one of exec, http and tcp, got {}",
                h.checks.join(" and ")
            ),
            h.line,
        );
    }
    let check = if let Some(exec) = &h.exec {
        Check::Exec(exec.clone())
    } else if let Some(url) = &h.http {
        if let Err(e) = http_url(&url.v) {
            r.key("health.http", e, url.line);
        }
        Check::Http { url: url.v.clone() }
    } else if let Some(address) = &h.tcp {
        if let Err(e) = tcp_address(&address.v) {
            r.key("health.tcp", e, address.line);
        }
        Check::Tcp {
            address: address.v.clone(),
        }
    } else {
        Check::None
    };
    let mut positive = |d: &Option<Sp<GoDuration>>, key: &str, what: &str| -> Duration {
        match d {
            Some(d) if d.v.is_positive() => d.v.to_std(),
            Some(d) => {
                r.key(
                    key,
                    format!("must be greater than zero, got {}", d.v),
                    d.line,
                );
                Duration::ZERO
            }
            None => {
                if !h.broken {
                    r.key(key, format!("must be set: {what}"), h.line);
                }
                Duration::ZERO
            }
        }
    };
    let interval = positive(&h.interval, "health.interval", "how often the check runs");
    let ttl = positive(
        &h.ttl,
        "health.ttl",
        "how long Consul keeps the service healthy without a heartbeat",
    );
    let timeout = match &h.timeout {
        None => interval,
        Some(t) if t.v.is_positive() => t.v.to_std(),
        // ContainerPilot ran such a check without any timeout, so a hung check blocked every
        // later one.
        Some(t) => {
            r.key(
                "health.timeout",
                format!(
                    "must be greater than zero, got {} (leave it out to use health.interval)",
                    t.v
                ),
                t.line,
            );
            Duration::ZERO
        }
    };
    (r.count() == before).then_some(Health {
        check,
        interval,
        ttl,
        timeout,
        raw_output: h.raw_output,
    })
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

fn validate_service(
    job: &RawJob,
    port: u16,
    ctx: &LoadContext,
    hosts: &mut HostAddresses<'_>,
    r: &mut Reporter<'_>,
) -> Option<Service> {
    let before = r.count();
    if !job.name.is_empty()
        && let Err(e) = service_name(&job.name)
    {
        r.key("name", e, job.line);
    }
    let initial_status = job
        .initial_status
        .as_ref()
        .and_then(|s| match s.v.as_str() {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            other => {
                r.key(
                    "initial_status",
                    format!(
                        "must be one of passing, warning, critical, got {}",
                        quote_short(other)
                    ),
                    s.line,
                );
                None
            }
        });
    let mut specs: Vec<String> = DEFAULT_INTERFACES.iter().map(|s| s.to_string()).collect();
    let mut specs_line = job.line;
    let mut specs_ok = true;
    if let Some(v) = &job.interfaces {
        specs_line = v.pos.line;
        match decode::string_or_list(v) {
            Ok(list) if list.is_empty() => {}
            Ok(list) => specs = list,
            Err(e) => {
                r.key("interfaces", e, v.pos.line);
                specs_ok = false;
            }
        }
    }
    let address = if specs_ok {
        match hosts.resolve(&specs) {
            Ok(ip) => Some(ip),
            Err(e) => {
                r.key("interfaces", e, specs_line);
                None
            }
        }
    } else {
        None
    };
    let mut meta = BTreeMap::new();
    if let Some(pairs) = &job.meta {
        validate_meta(&pairs.v, pairs.line, r);
        meta = pairs.v.iter().cloned().collect();
    }
    let (enable_tag_override, deregister) = match &job.consul {
        None => (false, None),
        Some(c) => {
            let key = "consul.deregisterCriticalServiceAfter";
            let deregister = c.deregister.as_ref().and_then(|v| match weak_duration(v) {
                Ok(None) => None,
                Ok(Some(d)) if d.is_positive() => Some(d.to_std()),
                Ok(Some(d)) => {
                    r.key(
                        key,
                        format!("must be greater than zero, got {d}"),
                        v.pos.line,
                    );
                    None
                }
                Err(e) => {
                    r.key(key, e, v.pos.line);
                    None
                }
            });
            (c.enable_tag_override, deregister)
        }
    };
    if r.count() != before {
        return None;
    }
    Some(Service {
        id: format!("{}-{}", job.name, ctx.hostname),
        name: job.name.clone(),
        port,
        address: address?,
        tags: job.tags.clone(),
        meta,
        initial_status,
        enable_tag_override,
        deregister_critical_service_after: deregister,
    })
}

/// Consul's rules for service metadata.
fn validate_meta(pairs: &[(String, String)], line: u32, r: &mut Reporter<'_>) {
    if pairs.len() > 64 {
        r.key(
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
            r.key(
                "meta",
                format!(
                    "key {} is not valid for Consul: 1 to 128 letters, digits, _ and -",
                    quote_short(key)
                ),
                line,
            );
        } else if key.starts_with("consul-") {
            r.key(
                "meta",
                format!("key {key:?} uses the prefix consul-, which Consul reserves"),
                line,
            );
        }
        if value.chars().count() > 512 {
            r.key(
                &format!("meta.{key}"),
                "is longer than the 512 characters Consul allows",
                line,
            );
        }
    }
}

/// The `when` of a job, checked: pilot rejects every combination that can never fire.
fn validate_when(
    own_name: &str,
    w: &RawWhen,
    facts: &HashMap<&str, JobFacts>,
    watches: &HashSet<&str>,
    r: &mut Reporter<'_>,
) -> Option<When> {
    if w.broken {
        return None;
    }
    let given: Vec<&str> = [
        w.interval.as_ref().map(|_| "interval"),
        w.once.as_ref().map(|_| "once"),
        w.each.as_ref().map(|_| "each"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        r.key(
            "when",
            format!(
                "can have only one of interval, once and each, got {}",
                given.join(" and ")
            ),
            w.line,
        );
        return None;
    }
    if let Some(interval) = &w.interval {
        // As in ContainerPilot, source and timeout mean nothing next to interval.
        if interval.v.0 < MILLISECOND {
            r.key(
                "when.interval",
                format!("must be at least 1ms, got {}", interval.v),
                interval.line,
            );
            return None;
        }
        return Some(When::Interval(interval.v.to_std()));
    }

    let (keyword, event) = match (&w.once, &w.each) {
        (Some(e), _) => ("once", Some((e, Repeat::Once))),
        (None, Some(e)) => ("each", Some((e, Repeat::Each))),
        (None, None) => ("once", None),
    };
    let key = format!("when.{keyword}");
    let mut code = None;
    if let Some((name, _)) = event {
        match EventCode::from_config_name(&name.v) {
            Some(c) => code = Some(c),
            None => {
                let message = match decode::closest(&name.v, EVENT_NAMES) {
                    Some(close) => format!(
                        "{} is not an event (did you mean {close:?}?)",
                        quote_short(&name.v)
                    ),
                    None => format!(
                        "{} is not an event: one of {} (names are case-sensitive)",
                        quote_short(&name.v),
                        EVENT_NAMES.join(", ")
                    ),
                };
                r.key(&key, message, name.line);
                return None;
            }
        }
    }
    let timeout = w
        .timeout
        .as_ref()
        .filter(|t| t.v.is_positive())
        .map(|t| t.v.to_std());

    // ContainerPilot starts a job with source SIGHUP or SIGUSR2 on each such signal, whatever
    // once or each say.
    if let Some(source) = &w.source
        && matches!(source.v.as_str(), "SIGHUP" | "SIGUSR2")
    {
        return Some(When::Event {
            code: EventCode::Signal,
            source: source.v.clone(),
            repeat: Repeat::Each,
            timeout,
        });
    }

    match (&w.source, event) {
        (None, None) => {
            r.key(
                "when",
                "names no event, so the job would never start: give source and once or each, \
                 or leave when out to start at startup",
                w.line,
            );
            None
        }
        (Some(source), None) => {
            r.key(
                "when.source",
                format!(
                    "{} needs once or each: without an event the job never starts",
                    quote_short(&source.v)
                ),
                source.line,
            );
            None
        }
        (None, Some((name, _))) => {
            let hint = match code {
                Some(
                    EventCode::Startup | EventCode::EnterMaintenance | EventCode::ExitMaintenance,
                ) => " (source: \"global\")",
                _ => "",
            };
            r.key(
                &key,
                format!(
                    "{} needs a source{hint}: without one the job never starts",
                    quote_short(&name.v)
                ),
                name.line,
            );
            None
        }
        (Some(source), Some((name, repeat))) => {
            let code = code?;
            if let Some(problem) =
                trigger_problem(own_name, code, &name.v, &source.v, facts, watches)
            {
                r.key(&key, problem, name.line);
                return None;
            }
            Some(When::Event {
                code,
                source: source.v.clone(),
                repeat,
                timeout,
            })
        }
    }
}

/// Why `{source, once|each: event}` can never start the job, if it cannot.
fn trigger_problem(
    own_name: &str,
    code: EventCode,
    event: &str,
    source: &str,
    facts: &HashMap<&str, JobFacts>,
    watches: &HashSet<&str>,
) -> Option<String> {
    let never = |why: String| Some(format!("{event:?} from {source:?} never fires: {why}"));
    match code {
        EventCode::Shutdown => {
            return never(
                "jobs stop on shutdown before any could start; to run something as a job \
                 stops, use once: \"stopping\" with that job as source"
                    .into(),
            );
        }
        EventCode::Quit => return never("quit events are never published".into()),
        EventCode::Signal => {
            return never(format!("{event} fires only with source: {event:?}"));
        }
        EventCode::Metric => return never("metric events cannot start jobs".into()),
        _ => {}
    }
    let global_only = matches!(
        code,
        EventCode::Startup | EventCode::EnterMaintenance | EventCode::ExitMaintenance
    );
    if source == GLOBAL {
        return (!global_only).then(|| {
            format!(
                "{event:?} from {source:?} never fires: global publishes only startup, \
                 enterMaintenance and exitMaintenance"
            )
        });
    }
    if global_only {
        return never(format!("{event} comes only from source \"global\""));
    }
    if let Some(job) = source.strip_prefix("check.") {
        if job == own_name {
            return never("a job's own health check results are handled before its when".into());
        }
        let Some(facts) = facts.get(job) else {
            return never(format!("there is no job named {job:?}"));
        };
        if !facts.has_check {
            return never(format!("job {job:?} has no health check"));
        }
        if !matches!(code, EventCode::ExitSuccess | EventCode::ExitFailed) {
            return never("a health check publishes only exitSuccess and exitFailed".into());
        }
        return None;
    }
    if let Some(watch) = source.strip_prefix("watch.") {
        if !watches.contains(watch) {
            return never(format!("there is no watch named {watch:?} in watches"));
        }
        if !matches!(
            code,
            EventCode::StatusChanged | EventCode::StatusHealthy | EventCode::StatusUnhealthy
        ) {
            return never("a watch publishes only changed, healthy and unhealthy".into());
        }
        return None;
    }
    if source == own_name && code != EventCode::TimerExpired {
        return never(
            "a job's own exit, health and stop events are handled before its when".into(),
        );
    }
    let Some(job) = facts.get(source) else {
        let hint = if watches.contains(source) {
            format!(" (did you mean \"watch.{source}\"?)")
        } else {
            String::new()
        };
        return Some(format!(
            "source {source:?} is not global, a job, check.<job>, watch.<watch>, SIGHUP or \
             SIGUSR2{hint}"
        ));
    };
    match code {
        EventCode::ExitSuccess | EventCode::ExitFailed if !job.has_exec => {
            never(format!("job {source:?} has no exec, so it never exits"))
        }
        EventCode::StatusHealthy | EventCode::StatusUnhealthy if !job.has_check => {
            never(format!("job {source:?} has no health check"))
        }
        EventCode::TimerExpired if !job.has_when_timeout => {
            never(format!("job {source:?} has no when.timeout"))
        }
        EventCode::StatusChanged => never("only watches publish changed".into()),
        EventCode::Error => never(
            "the source of an error event is the error message, not the job; use exitFailed".into(),
        ),
        _ => None,
    }
}
