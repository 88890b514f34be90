//! The `tracing` side: which events are wanted, and turning an event (with the fields of the
//! spans it happened in) into an [`Entry`](super::format::Entry).

use std::fmt::{self, Write};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::Shared;
use super::format::Value;

/// The target of child output events (see `log_lines`); they pass whatever the level.
pub(super) const CHILD_OUTPUT: &str = "pilot::child_output";

/// Verbosity as a number: an event passes when its rank is at most the configured one.
pub(super) fn rank(level: Level) -> u8 {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

fn is_pilots(target: &str) -> bool {
    target == "pilot" || target.starts_with("pilot::")
}

/// Whether `meta` can ever pass, whatever the configured level (which is at most `debug`).
///
/// Other crates' `debug` and `trace` output (hyper, reqwest, ...) is never shown: pilot's debug
/// level is for pilot's own events, as ContainerPilot's was. pilot's spans always exist, so that
/// their fields (`job`, say) reach the events inside them at any level.
fn static_interest(meta: &Metadata<'_>) -> Interest {
    let target = meta.target();
    if target == CHILD_OUTPUT || (meta.is_span() && is_pilots(target)) {
        Interest::always()
    } else if rank(*meta.level()) > rank(Level::DEBUG)
        || (!is_pilots(target) && rank(*meta.level()) > rank(Level::INFO))
    {
        Interest::never()
    } else {
        // Depends on the level, which a reload can change.
        Interest::sometimes()
    }
}

pub(super) struct PilotLayer {
    pub(super) shared: Arc<Shared>,
}

/// The fields a span was created with, kept in the registry's span extensions.
struct SpanFields(Vec<(&'static str, Value)>);

impl<S> Layer<S> for PilotLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        static_interest(meta)
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        let interest = static_interest(meta);
        interest.is_always()
            || (interest.is_sometimes() && rank(*meta.level()) <= self.shared.max_rank())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Collector::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            let mut collector = Collector {
                message: String::new(),
                fields: std::mem::take(fields),
            };
            values.record(&mut collector);
            *fields = collector.fields;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut collector = Collector::default();
        // Child output carries exactly its origin; a job's span around the reading task must not
        // add `job` to a health check's lines.
        if event.metadata().target() != CHILD_OUTPUT
            && let Some(scope) = ctx.event_scope(event)
        {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (name, value) in fields {
                        collector.set(name, value.clone());
                    }
                }
            }
        }
        event.record(&mut collector);
        collector.fields.sort_by(|a, b| a.0.cmp(b.0));
        self.shared.log(
            *event.metadata().level(),
            &collector.message,
            &collector.fields,
        );
    }
}

/// Gathers the message and the other fields of an event or span; a later field replaces an
/// earlier one of the same name (an event's field wins over its span's).
#[derive(Default)]
struct Collector {
    message: String,
    fields: Vec<(&'static str, Value)>,
}

impl Collector {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.fields.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }
}

impl Visit for Collector {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message.clear();
            let _ = write!(self.message, "{value:?}");
        } else {
            self.set(field.name(), Value::Str(format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.clear();
            self.message.push_str(value);
        } else {
            self.set(field.name(), Value::Str(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.set(field.name(), Value::I128(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.set(field.name(), Value::U128(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }
}
