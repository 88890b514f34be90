//! `logging`: level, format and output, as written.

use super::object::Obj;
use super::weak::weak_string;
use crate::config::json5::Value;
use crate::config::model::{LogFormat, LogLevel, LogOutput};
use crate::config::problems::{Reporter, quote_short};

const KEYS: &[&str] = &["level", "format", "output"];

/// `logging`; each field `None` when not given.
#[derive(Debug, Default)]
pub struct RawLogging {
    pub level: Option<LogLevel>,
    pub format: Option<LogFormat>,
    pub output: Option<LogOutput>,
}

pub fn decode(value: Option<&Value>, report: &mut Reporter<'_>) -> RawLogging {
    let Some(mut obj) = value.and_then(|v| Obj::section(v, "logging", report)) else {
        return RawLogging::default();
    };
    let logging = RawLogging {
        level: obj.field("level", level, report).map(|s| s.value),
        format: obj.field("format", format, report).map(|s| s.value),
        output: obj.field("output", output, report).map(|s| s.value),
    };
    obj.finish(report, KEYS);
    logging
}

/// `fatal` and `panic` are accepted as ContainerPilot accepts them, and mean "errors only".
fn level(value: &Value) -> Result<LogLevel, String> {
    let level = weak_string(value)?;
    match level.to_ascii_lowercase().as_str() {
        "" | "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" | "fatal" | "panic" => Ok(LogLevel::Error),
        _ => Err(format!(
            "must be one of debug, info, warn, error, got {}",
            quote_short(&level)
        )),
    }
}

fn format(value: &Value) -> Result<LogFormat, String> {
    let format = weak_string(value)?;
    match format.to_ascii_lowercase().as_str() {
        "" | "default" => Ok(LogFormat::Default),
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "must be one of default, text, json, got {}",
            quote_short(&format)
        )),
    }
}

/// `stdout`, `stderr` (in any case), or a file.
fn output(value: &Value) -> Result<LogOutput, String> {
    let output = weak_string(value)?;
    Ok(match output.to_ascii_lowercase().as_str() {
        "" | "stdout" => LogOutput::Stdout,
        "stderr" => LogOutput::Stderr,
        _ => LogOutput::File(output.into()),
    })
}
