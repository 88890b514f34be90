//! Logging: pilot's own messages, through `tracing`, and the output of its children.
//!
//! This module owns everything pilot writes as log lines: the global `tracing` subscriber
//! ([`init`]), the three line formats of ContainerPilot's `logging.format`, the output (stdout,
//! stderr or a file reopened on SIGUSR1) and the wrapping of child output ([`log_lines`]). It
//! must not decide when to reload or reopen (the daemon calls [`Logger::reconfigure`] and
//! [`Logger::reopen`]), and it never logs about its own failures: a line that cannot be written
//! is dropped, so that logging can neither crash pilot nor recurse into itself.
//!
//! # Formats
//!
//! With `2018-05-02T10:11:12.5Z` as the time, `info!(job = "app", pid = 1234, "hello")` is:
//!
//! - `default`: `2018-05-02T10:11:12.5Z app 1234 hello`. The time is UTC RFC 3339 with
//!   nanoseconds, trailing zeros trimmed. No level. `job` (or, for health-check output, `check`:
//!   `check.app`) and `pid` come before the message when present; any other field follows it as
//!   ` key=value`, quoted as in the text format (ContainerPilot dropped them, `check` included).
//!   A line break inside a message is written as `\n`, so that an entry is always one line.
//! - `text`: `time="2018-05-02T10:11:12Z" level=info msg=hello job=app pid=1234 ` (logrus 1.0's
//!   text form, with its trailing space): time in whole seconds, levels `debug`, `info`,
//!   `warning`, `error`, `msg` left out when empty, fields sorted by name. A value is quoted
//!   when it holds anything outside `[A-Za-z0-9.-]`; inside the quotes pilot escapes `"`, `\`
//!   and control characters as Go's `%q` does, where ContainerPilot wrote them raw
//!   (`msg="killing processes for job "app""`), which made such lines unparseable.
//! - `json`: `{"job":"app","level":"info","msg":"hello","pid":1234,"time":"2018-05-02T10:11:12.5Z"}`,
//!   keys sorted, numbers and booleans unquoted, standard JSON escaping (non-ASCII as UTF-8).
//!
//! pilot's own messages carry no field, as ContainerPilot's had none: `job`, `check` and `pid`
//! mark child output (`docs/configuration.md`, "Log lines").
//!
//! In `text` and `json` a field named `time`, `level` or `msg` is renamed `fields.<name>`, as
//! logrus does. Fields of the spans an event happens in are included; the event's own field wins
//! over a span's of the same name.
//!
//! # Levels
//!
//! An event below `logging.level` is dropped, except child output, which is always logged
//! (ContainerPilot dropped it above INFO). Other crates' `debug` and `trace` events are never
//! shown, even at `debug`: that level is for pilot's own events, as it was for ContainerPilot's.
//!
//! # Writing
//!
//! Each entry is one `write` call of one whole line. A failed write (EPIPE on a closed stdout, a
//! full disk) loses that line and nothing else. A reader that stops reading stdout does hold
//! pilot up, as it would any program: dropping lines instead would lose them silently.
//!
//! Init mode only has something to say when things go wrong, so it logs warnings and errors to
//! stderr as one line each, prefixed `pilot: ` ([`init_for_init_mode`]).

mod format;
mod layer;
mod lines;
mod output;

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel, Logging};
use crate::errors::describe_io_error;
use format::{Entry, Value};
use layer::PilotLayer;
use output::Output;

/// Why the logger could not be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {:?}: {}", path, describe_io_error(source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot install the logger: a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs pilot's logger as the global tracing subscriber, configured by `cfg`.
///
/// Called once by the daemon at start-up; a second call fails with
/// [`LogError::AlreadyInstalled`] (use [`Logger::reconfigure`] instead).
pub fn init(cfg: &Logging) -> Result<Logger, LogError> {
    let logger = Logger::new(cfg, Arc::new(SystemTime::now))?;
    let subscriber = tracing_subscriber::registry().with(logger.layer());
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadyInstalled)?;
    Ok(logger)
}

/// Where timestamps come from; tests use a fixed time.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A handle on the installed logger, to change it while pilot runs.
#[derive(Clone)]
pub struct Logger {
    shared: Arc<Shared>,
}

/// The logger's state, shared by the subscriber and every [`Logger`] handle.
struct Shared {
    /// The configured level as a [`layer::rank`], read without the lock on every event.
    max_rank: AtomicU8,
    /// Locked for each entry: formatting and writing under one lock keeps lines whole and in
    /// order when tokio's blocking-pool threads log too.
    state: Mutex<State>,
}

struct State {
    format: LogFormat,
    output: Output,
    clock: Clock,
    /// Reused for every line, so that logging does not allocate once it is warm.
    line: String,
}

impl Logger {
    /// A logger that is not installed: what the daemon's unit tests give it to reconfigure.
    #[cfg(test)]
    pub fn uninstalled(cfg: &Logging) -> Result<Logger, LogError> {
        Logger::new(cfg, Arc::new(SystemTime::now))
    }

    fn new(cfg: &Logging, clock: Clock) -> Result<Logger, LogError> {
        Ok(Logger::with_output(
            cfg.level,
            cfg.format,
            Output::open(&cfg.output)?,
            clock,
        ))
    }

    fn with_output(level: LogLevel, format: LogFormat, output: Output, clock: Clock) -> Logger {
        Logger {
            shared: Arc::new(Shared {
                max_rank: AtomicU8::new(level_rank(level)),
                state: Mutex::new(State {
                    format,
                    output,
                    clock,
                    line: String::new(),
                }),
            }),
        }
    }

    /// The `tracing` layer that writes through this logger.
    fn layer(&self) -> PilotLayer {
        PilotLayer {
            shared: self.shared.clone(),
        }
    }

    /// Applies a new `logging` section in place (config reload): level, format and output.
    ///
    /// A new output is opened before anything changes, so on error the logger goes on as it
    /// was. The same file path as before keeps its open file (a reload is not a reopen).
    pub fn reconfigure(&self, cfg: &Logging) -> Result<(), LogError> {
        let mut state = self.shared.lock();
        if !state.output.is(&cfg.output) {
            state.output = Output::open(&cfg.output)?;
        }
        state.format = cfg.format;
        self.shared
            .max_rank
            .store(level_rank(cfg.level), Ordering::Relaxed);
        Ok(())
    }

    /// Closes and reopens the output file (SIGUSR1, for logrotate). A no-op for stdout/stderr.
    ///
    /// A failed reopen keeps logging to the old file and returns the error.
    pub fn reopen(&self) -> Result<(), LogError> {
        self.shared.lock().output.reopen()
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn max_rank(&self) -> u8 {
        self.max_rank.load(Ordering::Relaxed)
    }

    /// Formats and writes one entry; `fields` are sorted by name.
    fn log(&self, level: Level, message: &str, fields: &[(&'static str, Value)]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = (state.clock)();
        state.line.clear();
        let entry = Entry {
            level,
            message,
            fields,
        };
        format::render(state.format, now, &entry, &mut state.line);
        state.output.write_line(state.line.as_bytes());
        // One huge entry must not keep its buffer forever.
        if state.line.capacity() > 4 * lines::MAX_ENTRY {
            state.line = String::new();
        }
    }
}

fn level_rank(level: LogLevel) -> u8 {
    layer::rank(match level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    })
}

/// Where a line of child output came from.
#[derive(Clone, Debug)]
pub struct Origin {
    pub job: Arc<str>,
    pub pid: i32,
    /// Health-check output rather than the job's own.
    pub check: bool,
}

impl Origin {
    /// For messages: `job "app"` or `the health check of job "app"`.
    fn describe(&self) -> String {
        if self.check {
            format!("the health check of job {:?}", &*self.job)
        } else {
            format!("job {:?}", &*self.job)
        }
    }
}

/// Reads a child's stdout or stderr pipe until EOF and logs every line at INFO with the job name
/// and pid (and `check=check.<job>` instead of the job name for health-check output). Returns
/// when the pipe is closed, after the last line, including a final line without newline, has
/// been logged.
///
/// Lines are split on `\n` with a trailing `\r` removed; a line longer than 64 KiB is logged as
/// several entries; invalid UTF-8 is replaced with U+FFFD. The lines are `tracing` events with
/// target `pilot::child_output`, which pilot's logger lets through at any level, and which any
/// other subscriber (a test's, say) receives as ordinary INFO events.
///
/// Must run on a tokio runtime with I/O enabled.
pub async fn log_lines(pipe: OwnedFd, origin: Origin) {
    lines::read(pipe, &origin).await;
}

/// Sends warnings and errors to stderr as `pilot: <message>`.
pub fn init_for_init_mode() {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::WARN)
        .with_writer(std::io::stderr)
        .event_format(Prefixed)
        .finish();
    // A second call (in tests) keeps the first subscriber, which is fine.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct Prefixed;

impl<S, N> FormatEvent<S, N> for Prefixed
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("pilot: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `t` in UTC as Go's `RFC3339Nano`, as pilot's JSON log lines and `/v3/events` write times.
pub fn rfc3339_nano(t: std::time::SystemTime) -> String {
    let mut out = String::with_capacity(30);
    format::write_time(&mut out, t, true);
    out
}

#[cfg(test)]
mod tests;
