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
