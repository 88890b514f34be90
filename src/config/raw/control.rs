//! `control`: the control socket's path and permission bits.

use super::Spanned;
use super::object::Obj;
use super::weak::{describe, mode, weak_string};
use crate::config::json5::Value;
use crate::config::problems::{Problems, Reporter};

const KEYS: &[&str] = &["socket", "mode"];

/// `control`; each field `None` when not given.
#[derive(Debug, Default)]
pub struct RawControl {
    pub socket: Option<Spanned<String>>,
    pub mode: Option<u32>,
}

pub fn decode(value: Option<&Value>, report: &mut Reporter<'_>) -> RawControl {
    let Some(mut obj) = value.and_then(|v| Obj::section(v, "control", report)) else {
        return RawControl::default();
    };
    let control = RawControl {
        socket: obj.field("socket", weak_string, report),
        mode: obj.field("mode", mode, report).map(|m| m.value),
    };
    obj.finish(report, KEYS);
    control
}

/// `control.socket` alone, for the subcommands that talk to a running pilot: nothing else of
/// the file is looked at. `None` when not set; a problem is reported for anything that cannot
/// be a path.
pub fn control_socket(root: &Value, problems: &mut Problems) -> Option<String> {
    let mut report = problems.at("");
    let Some(mut top) = Obj::top_level(root) else {
        report.error(
            format!(
                "the config must be an object of keys, got {}",
                describe(root)
            ),
            root.pos.line,
        );
        return None;
    };
    let value = top.get("control")?;
    let mut control = Obj::section(value, "control", &mut report)?;
    let socket = control.field("socket", weak_string, &mut report)?;
    if socket.value.is_empty() {
        report.error("control.socket must not be empty", socket.line);
        return None;
    }
    Some(socket.value)
}
