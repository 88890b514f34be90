//! Logging: pilot's own messages, through `tracing`.
//!
//! Init mode only has something to say when things go wrong, so it logs warnings and errors to
//! stderr as one line each, prefixed `pilot: `.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

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

/// Where a line of child output came from.
pub struct Origin {
    pub job: std::sync::Arc<str>,
    pub pid: i32,
    /// Output of a health check rather than of the job's exec.
    pub check: bool,
}

/// Reads a child's stdout or stderr pipe until EOF and logs every line at INFO with the job name
/// and pid. Returns when the pipe is closed, after the last line has been logged.
pub async fn log_lines(pipe: std::os::fd::OwnedFd, origin: Origin) {
    use tokio::io::AsyncBufReadExt;
    let Ok(receiver) = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) else {
        return;
    };
    let mut reader = tokio::io::BufReader::new(receiver);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\n').trim_end_matches('\r');
                if origin.check {
                    tracing::info!(job = %origin.job, pid = origin.pid, check = %format!("check.{}", origin.job), "{text}");
                } else {
                    tracing::info!(job = %origin.job, pid = origin.pid, "{text}");
                }
            }
        }
    }
}
