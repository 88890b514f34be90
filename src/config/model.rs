//! The validated configuration: what the rest of pilot receives from `config::load`.
//!
//! Every value here has passed validation: durations are positive where they must be, names are
//! unique, `when` can fire, interfaces are resolved to an address. Code outside `config` never
//! sees raw JSON5, templates or weak typing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::accounts::RunAs;

use crate::events::EventCode;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub consul: Consul,
    pub logging: Logging,
    /// The shutdown deadline (top-level `stopTimeout`, default 5 s): from SIGTERM, pilot has this
    /// long before it SIGKILLs whatever is left and exits.
    pub stop_timeout: Duration,
    /// User jobs in config order, then the telemetry job when telemetry is configured.
    pub jobs: Vec<Job>,
    pub watches: Vec<Watch>,
    pub control: Control,
    pub telemetry: Option<Telemetry>,
}

impl Config {
    /// The job whose `key` is `key`.
    pub fn job(&self, key: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.key == key)
    }
}

/// The key of the job that is the `nth` (from 1) of the jobs named `name`: the name itself for
/// the first, `name#2`, `name#3`... for the repeats.
pub fn job_key(name: &str, nth: usize) -> String {
    if nth <= 1 {
        name.to_string()
    } else {
        format!("{name}#{nth}")
    }
}

/// How to reach the Consul agent, after the `CONSUL_*` environment variables were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consul {
    pub scheme: Scheme,
    /// `host:port` for HTTP and HTTPS, the socket path for `Unix`.
    pub address: String,
    pub token: Option<Secret>,
    pub tls: Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Unix,
}

/// TLS settings for `https` (and for `http` addresses when certificates are configured they are
/// simply unused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub server_name: Option<String>,
    /// Verify the agent's certificate (default true; ContainerPilot defaulted to false).
    pub verify: bool,
}

impl Default for Tls {
    /// No files, no server name, and verification on.
    fn default() -> Tls {
        Tls {
            ca_file: None,
            ca_path: None,
            client_cert: None,
            client_key: None,
            server_name: None,
            verify: true,
        }
    }
}

/// A value that must never appear in output: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it (the `X-Consul-Token` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `logging`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    pub level: LogLevel,
    pub format: LogFormat,
    pub output: LogOutput,
}

/// Log levels, lowest first. `fatal` and `panic` are accepted as ContainerPilot does and mean
/// "errors only".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `<RFC3339Nano time>[ <job>][ <pid>] <message>`.
    Default,
    /// logrus' text form: `time="..." level=info msg="..." job=app pid=12`.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    Stderr,
    /// Appended to; reopened on SIGUSR1.
    File(PathBuf),
}

/// One job of `jobs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The name written: the source of the job's events, its Consul service's name, what logs
    /// and `/status` show. Two jobs may have the same name, as in ContainerPilot (a warning).
    pub name: String,
    /// What tells this job apart from every other: its name, or `name#2`, `name#3`... for the
    /// later jobs of a repeated name (`job_key`). The daemon and reloads know jobs by it.
    pub key: String,
    pub kind: JobKind,
    /// What to run. `None` for a job that only exists to trigger or to register a service.
    pub exec: Option<Exec>,
    /// `logging.raw`: hand the child pilot's own stdout and stderr instead of logging each line.
    pub raw_output: bool,
    pub when: When,
    /// Kill (SIGKILL to the group) a run that takes longer than this. Interval jobs default to
    /// their interval.
    pub timeout: Option<Duration>,
    /// How long this job waits, when it stops, for the jobs that run on its `stopping` event.
    /// `None` means until the global deadline.
    pub stop_timeout: Option<Duration>,
    pub restarts: Restarts,
    pub health: Option<HealthCheck>,
    /// Present when the job has a `port`: it is registered in Consul.
    pub service: Option<Service>,
    /// Whether this job is the application: when it exits for good pilot shuts down and exits
    /// with its status (`main: true`, or the command after `--`).
    pub main: bool,
    /// `stopSignal`: what stopping a run sends to its process group first (SIGKILL follows at
    /// the deadline). SIGTERM unless told otherwise.
    pub stop_signal: i32,
    /// `user` (and `group`): who its processes run as; pilot's own user when `None`.
    pub user: Option<RunAs>,
}

#[cfg(test)]
impl Job {
    /// A user job named `name`, started at `when`, with no exec and nothing else set: unit tests
    /// change the fields they are about (`Job { restarts, ..Job::for_test("j", when) }`).
    pub(crate) fn for_test(name: &str, when: When) -> Job {
        Job {
            name: name.into(),
            key: name.into(),
            kind: JobKind::User,
            exec: None,
            raw_output: false,
            when,
            timeout: None,
            stop_timeout: None,
            restarts: Restarts::Never,
            health: None,
            service: None,
            main: false,
            stop_signal: libc::SIGTERM,
            user: None,
        }
    }
}

#[cfg(test)]
impl When {
    /// `when: { source, <repeat>: code }` without a timeout, for unit tests.
    pub(crate) fn on(code: EventCode, source: &str, repeat: Repeat) -> When {
        When::Event {
            code,
            source: source.into(),
            repeat,
            timeout: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// A job from the config file.
    User,
    /// The job pilot adds for `telemetry`: no exec, always healthy, registered as service
    /// `containerpilot` with a 15 s TTL heartbeat every 5 s.
    Telemetry,
    /// The command given after `--` on the command line.
    MainCommand,
}

/// A program and its arguments (`exec`, `health.exec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub program: String,
    pub args: Vec<String>,
}

impl Exec {
    /// A command line split into words as a POSIX shell splits them, without expanding anything:
    /// how `exec: "..."` is read, and `-render`'s COMMAND. `None` when it has no word.
    pub fn from_command_line(line: &str) -> Result<Option<Exec>, String> {
        let mut words = super::words::split(line)?.into_iter();
        Ok(words.next().map(|program| Exec {
            program,
            args: words.collect(),
        }))
    }
}

/// When a job starts.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// No `when`: at startup.
    Startup,
    /// `when.interval`: at startup, then every interval.
    Interval(Duration),
    /// A `when` that names no event ContainerPilot could match (`{}`, a source without once or
    /// each, once or each without a source): the job waits until shutdown, as in ContainerPilot
    /// (a warning). Its `when.timeout` still expires.
    Never { timeout: Option<Duration> },
    /// `when.source` with `once` or `each` (including `source: "SIGHUP"`/`"SIGUSR2"`, which
    /// ContainerPilot treats as `each` on the signal).
    Event {
        code: EventCode,
        source: String,
        repeat: Repeat,
        /// `when.timeout`: give up waiting after this long (the job stops, `timerExpired`).
        timeout: Option<Duration>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    Once,
    Each,
}

/// How many times a job's exec is run again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restarts {
    Never,
    Unlimited,
    Times(u32),
}

/// A job's `health` section: the check, how often it runs and how long it may take.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    pub check: Check,
    /// How often the check runs (and, without a check, how often the TTL is refreshed).
    pub interval: Duration,
    /// The TTL of the Consul check.
    pub ttl: Duration,
    /// A check running longer than this is killed and counts as failed. Defaults to `interval`.
    pub timeout: Duration,
    /// `health.logging.raw`.
    pub raw_output: bool,
    /// `health.user` (and `group`), else the job's `user`.
    pub user: Option<RunAs>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// No check: the service is heartbeated as long as its job runs.
    None,
    /// `health.exec`: healthy when it exits 0.
    Exec(Exec),
    /// `health.http`: healthy when a GET answers 2xx or 3xx.
    Http { url: String },
    /// `health.tcp`: healthy when a connection to `host:port` succeeds.
    Tcp { address: String },
}

/// The Consul service of a job with a `port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `<name>-<hostname>`.
    pub id: String,
    pub name: String,
    pub port: u16,
    /// Resolved from `interfaces` at load time.
    pub address: IpAddr,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    /// `initial_status`: register at once with this status instead of at the first passing check.
    pub initial_status: Option<CheckStatus>,
    pub enable_tag_override: bool,
    pub deregister_critical_service_after: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }
}

/// One entry of `watches`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The watch's name: the Consul service of a service watch, and `watch.<name>` as the
    /// source of its events.
    pub name: String,
    /// How stale the watch may get while Consul is unreachable (blocking queries make it react
    /// at once otherwise).
    pub interval: Duration,
    /// Only for a service watch.
    pub tag: Option<String>,
    pub dc: Option<String>,
    /// What the watch follows.
    pub target: WatchTarget,
    /// The quiet period (`wait`): `None` publishes every change at once.
    pub wait: Option<QuietPeriod>,
    /// How far behind the leader an answer from any server may be (`maxStale`); zero sends
    /// every read to the leader.
    pub max_stale: Duration,
}

/// A watch's `wait`, as consul-template means it: after a change, events wait until `min`
/// passes without another change, and never longer than `max` after the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietPeriod {
    pub min: Duration,
    pub max: Duration,
}

/// What a watch follows in Consul.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchTarget {
    /// The passing instances of the service named by the watch's name.
    Service,
    /// One key of the KV store.
    Key(String),
    /// Every key under a prefix of the KV store.
    Prefix(String),
}

impl Watch {
    /// The event source of this watch: `watch.<name>`.
    pub fn source(&self) -> String {
        format!("watch.{}", self.name)
    }
}

/// `control`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub socket: PathBuf,
    /// The socket file's permission bits (default 0o600).
    pub mode: u32,
}

/// `telemetry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Telemetry {
    pub port: u16,
    /// Resolved from `interfaces` at load time.
    pub address: IpAddr,
    pub tags: Vec<String>,
    pub metrics: Vec<Metric>,
}

/// A user metric of `telemetry.metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    pub namespace: String,
    pub subsystem: String,
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
}

impl Metric {
    /// The Prometheus name: the non-empty parts of namespace, subsystem and name joined by `_`.
    pub fn full_name(&self) -> String {
        [&self.namespace, &self.subsystem, &self.name]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("_")
    }

    /// ContainerPilot's control-socket key: all three parts joined by `_`, empty ones included
    /// (`__name`). Accepted besides `full_name`.
    pub fn legacy_key(&self) -> String {
        format!("{}_{}_{}", self.namespace, self.subsystem, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}
