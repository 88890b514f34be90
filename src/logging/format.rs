//! Rendering one log entry as one line, in each of the three `logging.format`s.
//!
//! Pure functions over an [`Entry`] and a timestamp, so that every format can be tested byte for
//! byte without a subscriber, a clock or an output.

use std::borrow::Cow;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;

use crate::config::LogFormat;

/// One log entry, whatever its source (pilot's own event or a line of child output).
pub(super) struct Entry<'a> {
    pub level: Level,
    pub message: &'a str,
    /// Sorted by name, each name at most once.
    pub fields: &'a [(&'static str, Value)],
}

impl Entry<'_> {
    fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// A field value, keeping its type so that JSON can write numbers and booleans unquoted.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::I64(n) => write!(f, "{n}"),
            Value::U64(n) => write!(f, "{n}"),
            Value::I128(n) => write!(f, "{n}"),
            Value::U128(n) => write!(f, "{n}"),
            Value::F64(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Appends `entry` to `out` as one line, newline included.
pub(super) fn render(format: LogFormat, now: SystemTime, entry: &Entry<'_>, out: &mut String) {
    match format {
        LogFormat::Default => render_default(now, entry, out),
        LogFormat::Text => render_text(now, entry, out),
        LogFormat::Json => render_json(now, entry, out),
    }
}

/// `<time>[ <job>][ <pid>][ <message>][ <key>=<value>...]`.
///
/// ContainerPilot's layout, with two additions: health-check output (which has `check` instead
/// of `job`) shows `check.<job>` where the job name goes, and the remaining fields, which
/// ContainerPilot dropped, follow the message as in the text format. A line break inside the
/// message is written as `\n` (or `\r`), so that an entry stays one line for line-oriented log
/// collectors.
fn render_default(now: SystemTime, entry: &Entry<'_>, out: &mut String) {
    write_time(out, now, true);
    let slot = if entry.field("job").is_some() {
        Some("job")
    } else if entry.field("check").is_some() {
        Some("check")
    } else {
        None
    };
    for name in slot.into_iter().chain(Some("pid")) {
        if let Some(value) = entry.field(name) {
            out.push(' ');
            match value {
                Value::Str(s) => push_one_line(out, s),
                other => {
                    let _ = write!(out, "{other}");
                }
            }
        }
    }
    if !entry.message.is_empty() {
        out.push(' ');
        push_one_line(out, entry.message);
    }
    for (key, value) in entry.fields {
        if *key != "pid" && Some(*key) != slot {
            out.push(' ');
            out.push_str(key);
            out.push('=');
            text_value(out, value);
        }
    }
    out.push('\n');
}

fn push_one_line(out: &mut String, s: &str) {
    if !s.contains(['\n', '\r']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// logrus 1.0's `TextFormatter` without a terminal: `time`, `level`, `msg` (left out when
/// empty, as logrus does), then the fields sorted by name, each pair followed by a space.
fn render_text(now: SystemTime, entry: &Entry<'_>, out: &mut String) {
    let mut time = String::with_capacity(20);
    write_time(&mut time, now, false);
    text_pair(out, "time", &time);
    text_pair(out, "level", level_name(entry.level));
    if !entry.message.is_empty() {
        text_pair(out, "msg", entry.message);
    }
    let mut fields: Vec<_> = entry.fields.iter().map(|(k, v)| (key(k), v)).collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in fields {
        out.push_str(&key);
        out.push('=');
        text_value(out, value);
        out.push(' ');
    }
    out.push('\n');
}

/// One object per line, keys sorted (Go's encoding/json sorts map keys).
fn render_json(now: SystemTime, entry: &Entry<'_>, out: &mut String) {
    enum Json<'a> {
        Str(&'a str),
        Value(&'a Value),
    }
    let mut time = String::with_capacity(30);
    write_time(&mut time, now, true);
    let mut pairs: Vec<(Cow<'_, str>, Json<'_>)> = Vec::with_capacity(entry.fields.len() + 3);
    pairs.push(("time".into(), Json::Str(&time)));
    pairs.push(("level".into(), Json::Str(level_name(entry.level))));
    pairs.push(("msg".into(), Json::Str(entry.message)));
    pairs.extend(entry.fields.iter().map(|(k, v)| (key(k), Json::Value(v))));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    out.push('{');
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, key);
        out.push(':');
        match value {
            Json::Str(s) => json_string(out, s),
            Json::Value(Value::Str(s)) => json_string(out, s),
            Json::Value(Value::F64(n)) if !n.is_finite() => json_string(out, &n.to_string()),
            Json::Value(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }
    out.push_str("}\n");
}

/// A field's key in the text and JSON formats: a field named like one of the keys every entry
/// has is renamed `fields.<name>`, as logrus does, instead of replacing it.
fn key(name: &str) -> Cow<'_, str> {
    match name {
        "time" | "level" | "msg" => Cow::Owned(format!("fields.{name}")),
        _ => Cow::Borrowed(name),
    }
}

/// logrus' level names.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn text_pair(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    text_string(out, value);
    out.push(' ');
}

fn text_value(out: &mut String, value: &Value) {
    match value {
        Value::Str(s) => text_string(out, s),
        other => text_string(out, &other.to_string()),
    }
}

/// logrus quotes a value holding anything outside `[A-Za-z0-9.-]`. Inside the quotes pilot
/// escapes like Go's `%q` (which later logrus versions use); logrus 1.0 did not escape at all, so
/// a message with a quote in it could not be parsed back.
fn text_string(out: &mut String, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if plain {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON string literal. Non-ASCII text is written as it is (the output is UTF-8).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `t` in UTC as RFC 3339: with `nanos`, Go's `RFC3339Nano` (the fraction with its
/// trailing zeros removed, and no fraction at all on a whole second), otherwise whole seconds.
pub(super) fn write_time(out: &mut String, t: SystemTime, nanos: bool) {
    let (secs, nano) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        // Before 1970: count whole seconds down and the fraction up, as for any negative time.
        Err(e) => {
            let d = e.duration();
            let secs = -(d.as_secs() as i64);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    };
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if nanos && nano != 0 {
        let _ = write!(out, ".{nano:09}");
        // The fraction has a non-zero digit, so this stops inside it.
        while out.ends_with('0') {
            out.pop();
        }
    }
    out.push('Z');
}

/// The proleptic Gregorian date of the day `days` after 1970-01-01.
///
/// Counts in 400-year eras starting on 1 March, so that the leap day is the last day of a
/// year and each era has the same 146097 days (the civil-from-days algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // 1970-01-01 is day 719468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March; 153 days per 5 months.
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 2018-05-02T10:11:12Z plus `nanos`.
    fn at(nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(1_525_255_872, nanos)
    }

    fn field(k: &'static str, v: &str) -> (&'static str, Value) {
        (k, Value::Str(v.to_string()))
    }

    fn line(format: LogFormat, now: SystemTime, entry: &Entry<'_>) -> String {
        let mut out = String::new();
        render(format, now, entry, &mut out);
        out
    }

    fn info<'a>(message: &'a str, fields: &'a [(&'static str, Value)]) -> Entry<'a> {
        Entry {
            level: Level::INFO,
            message,
            fields,
        }
    }

    fn time(t: SystemTime, nanos: bool) -> String {
        let mut out = String::new();
        write_time(&mut out, t, nanos);
        out
    }

    #[test]
    fn times_are_rfc3339_utc_with_trailing_zeros_trimmed() {
        assert_eq!(time(UNIX_EPOCH, true), "1970-01-01T00:00:00Z");
        assert_eq!(time(at(0), true), "2018-05-02T10:11:12Z");
        assert_eq!(time(at(500_000_000), true), "2018-05-02T10:11:12.5Z");
        assert_eq!(
            time(at(123_456_789), true),
            "2018-05-02T10:11:12.123456789Z"
        );
        assert_eq!(time(at(1), true), "2018-05-02T10:11:12.000000001Z");
        assert_eq!(time(at(120_000_000), true), "2018-05-02T10:11:12.12Z");
        assert_eq!(time(at(999_999_999), false), "2018-05-02T10:11:12Z");
        assert_eq!(
            time(UNIX_EPOCH - Duration::from_nanos(1), true),
            "1969-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            time(UNIX_EPOCH - Duration::from_secs(86_400), true),
            "1969-12-31T00:00:00Z"
        );
        // 2000 is a leap year (divisible by 400), 2100 is not (divisible by 100).
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_secs(951_782_400), true),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_secs(4_107_542_399), true),
            "2100-02-28T23:59:59Z"
        );
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_secs(4_107_542_400), true),
            "2100-03-01T00:00:00Z"
        );
    }

    #[test]
    fn every_day_follows_the_previous_one_in_the_gregorian_calendar() {
        let is_leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_len = |y: i64, m: u32| match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        // From 1600-01-01 to beyond 2400: every rule of the calendar at least twice.
        let start = -135_140;
        assert_eq!(civil_from_days(start), (1600, 1, 1));
        let mut prev = civil_from_days(start);
        for days in start + 1..start + 300_000 {
            let (y, m, d) = prev;
            let expected = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            let got = civil_from_days(days);
            assert_eq!(got, expected, "day {days}");
            prev = got;
        }
    }

    #[test]
    fn default_format_is_time_job_pid_message() {
        let fields = [field("job", "app"), ("pid", Value::I64(1234))];
        assert_eq!(
            line(LogFormat::Default, at(500_000_000), &info("hello", &fields)),
            "2018-05-02T10:11:12.5Z app 1234 hello\n"
        );
    }

    #[test]
    fn default_format_of_a_message_without_fields_has_no_level() {
        let entry = Entry {
            level: Level::ERROR,
            message: "control: serving at /var/run/containerpilot.socket",
            fields: &[],
        };
        assert_eq!(
            line(LogFormat::Default, at(123_456_789), &entry),
            "2018-05-02T10:11:12.123456789Z control: serving at /var/run/containerpilot.socket\n"
        );
    }

    #[test]
    fn default_format_shows_health_check_output_under_the_check_name() {
        let fields = [field("check", "check.app"), ("pid", Value::I64(7))];
        assert_eq!(
            line(LogFormat::Default, at(0), &info("ok", &fields)),
            "2018-05-02T10:11:12Z check.app 7 ok\n"
        );
    }

    #[test]
    fn default_format_appends_other_fields_as_key_value() {
        let fields = [
            ("attempt", Value::U64(2)),
            field("job", "app"),
            field("reason", "exit status 1"),
        ];
        assert_eq!(
            line(LogFormat::Default, at(0), &info("restarting", &fields)),
            "2018-05-02T10:11:12Z app restarting attempt=2 reason=\"exit status 1\"\n"
        );
        // With both, `job` takes the slot and `check` is an ordinary field.
        let fields = [field("check", "check.db"), field("job", "app")];
        assert_eq!(
            line(LogFormat::Default, at(0), &info("x", &fields)),
            "2018-05-02T10:11:12Z app x check=check.db\n"
        );
    }

    #[test]
    fn default_format_of_an_empty_message_has_no_trailing_space() {
        let fields = [field("job", "app"), ("pid", Value::I64(3))];
        assert_eq!(
            line(LogFormat::Default, at(0), &info("", &fields)),
            "2018-05-02T10:11:12Z app 3\n"
        );
    }

    #[test]
    fn default_format_keeps_an_entry_on_one_line() {
        let fields = [field("job", "app")];
        let got = line(
            LogFormat::Default,
            at(0),
            &info("hook failed:\r\n  exit 1\ttab \"q\" \u{e9}", &fields),
        );
        assert_eq!(
            got,
            "2018-05-02T10:11:12Z app hook failed:\\r\\n  exit 1\ttab \"q\" \u{e9}\n"
        );
    }

    #[test]
    fn text_format_is_logrus_with_sorted_fields_and_a_trailing_space() {
        let fields = [field("job", "onhup"), ("pid", Value::I64(25))];
        assert_eq!(
            line(LogFormat::Text, at(500_000_000), &info("got hup", &fields)),
            "time=\"2018-05-02T10:11:12Z\" level=info msg=\"got hup\" job=onhup pid=25 \n"
        );
        let entry = Entry {
            level: Level::WARN,
            message: "plain",
            fields: &[],
        };
        assert_eq!(
            line(LogFormat::Text, at(0), &entry),
            "time=\"2018-05-02T10:11:12Z\" level=warning msg=plain \n"
        );
    }

    #[test]
    fn text_format_names_every_level_as_logrus_does() {
        for (level, name) in [
            (Level::DEBUG, "debug"),
            (Level::INFO, "info"),
            (Level::WARN, "warning"),
            (Level::ERROR, "error"),
        ] {
            let entry = Entry {
                level,
                message: "m",
                fields: &[],
            };
            let got = line(LogFormat::Text, at(0), &entry);
            assert!(got.contains(&format!(" level={name} ")), "{got}");
        }
    }

    #[test]
    fn text_format_quotes_values_outside_alphanumerics_dots_and_dashes() {
        let fields = [
            field("a", "Plain-1.0"),
            field("b", "two words"),
            field("c", "k=v"),
            field("d", "caf\u{e9}"),
            field("e", ""),
            field("f", "under_score"),
            ("g", Value::I64(-5)),
            ("h", Value::Bool(true)),
            ("i", Value::F64(1.5)),
        ];
        assert_eq!(
            line(LogFormat::Text, at(0), &info("m", &fields)),
            "time=\"2018-05-02T10:11:12Z\" level=info msg=m a=Plain-1.0 b=\"two words\" \
             c=\"k=v\" d=\"caf\u{e9}\" e= f=\"under_score\" g=-5 h=true i=1.5 \n"
        );
    }

    #[test]
    fn text_format_escapes_quotes_backslashes_and_control_characters() {
        let entry = info("killing processes for job \"app\"", &[]);
        assert_eq!(
            line(LogFormat::Text, at(0), &entry),
            "time=\"2018-05-02T10:11:12Z\" level=info msg=\"killing processes for job \\\"app\\\"\" \n"
        );
        let fields = [
            field("path", "C:\\dir"),
            field("raw", "a\nb\tc\r\u{1b}[0m\u{7f}\u{85}"),
        ];
        let got = line(LogFormat::Text, at(0), &info("", &fields));
        assert_eq!(
            got,
            "time=\"2018-05-02T10:11:12Z\" level=info path=\"C:\\\\dir\" \
             raw=\"a\\nb\\tc\\r\\x1b[0m\\x7f\\u0085\" \n"
        );
    }

    #[test]
    fn text_format_leaves_out_an_empty_message() {
        let fields = [field("job", "app")];
        assert_eq!(
            line(LogFormat::Text, at(0), &info("", &fields)),
            "time=\"2018-05-02T10:11:12Z\" level=info job=app \n"
        );
    }

    #[test]
    fn text_and_json_rename_fields_that_clash_with_time_level_and_msg() {
        let fields = [
            field("level", "high"),
            field("msg", "shadow"),
            field("time", "now"),
            field("zone", "z"),
        ];
        let entry = info("m", &fields);
        assert_eq!(
            line(LogFormat::Text, at(0), &entry),
            "time=\"2018-05-02T10:11:12Z\" level=info msg=m fields.level=high \
             fields.msg=shadow fields.time=now zone=z \n"
        );
        assert_eq!(
            line(LogFormat::Json, at(0), &entry),
            "{\"fields.level\":\"high\",\"fields.msg\":\"shadow\",\"fields.time\":\"now\",\
             \"level\":\"info\",\"msg\":\"m\",\"time\":\"2018-05-02T10:11:12Z\",\"zone\":\"z\"}\n"
        );
    }

    #[test]
    fn json_format_sorts_keys_and_keeps_numbers_numeric() {
        let fields = [field("job", "app"), ("pid", Value::I64(1234))];
        assert_eq!(
            line(LogFormat::Json, at(500_000_000), &info("hello", &fields)),
            "{\"job\":\"app\",\"level\":\"info\",\"msg\":\"hello\",\"pid\":1234,\
             \"time\":\"2018-05-02T10:11:12.5Z\"}\n"
        );
        let fields = [
            ("big", Value::U128(u128::MAX)),
            ("f", Value::F64(0.25)),
            ("nan", Value::F64(f64::NAN)),
            ("neg", Value::I128(-1)),
            ("ok", Value::Bool(false)),
        ];
        let entry = Entry {
            level: Level::DEBUG,
            message: "",
            fields: &fields,
        };
        assert_eq!(
            line(LogFormat::Json, at(0), &entry),
            "{\"big\":340282366920938463463374607431768211455,\"f\":0.25,\"level\":\"debug\",\
             \"msg\":\"\",\"nan\":\"NaN\",\"neg\":-1,\"ok\":false,\"time\":\"2018-05-02T10:11:12Z\"}\n"
        );
    }

    #[test]
    fn json_format_escapes_quotes_backslashes_and_control_characters() {
        let fields = [field("k", "tab\there")];
        assert_eq!(
            line(
                LogFormat::Json,
                at(0),
                &info(
                    "say \"hi\" \\ caf\u{e9} \u{2603}\n\r\u{1}\u{8}\u{c}\u{1f}",
                    &fields
                )
            ),
            "{\"k\":\"tab\\there\",\"level\":\"info\",\
             \"msg\":\"say \\\"hi\\\" \\\\ caf\u{e9} \u{2603}\\n\\r\\u0001\\b\\f\\u001f\",\
             \"time\":\"2018-05-02T10:11:12Z\"}\n"
        );
    }

    #[test]
    fn json_lines_parse_back_to_what_was_logged() {
        let nasty: String = (0u32..0x250)
            .filter_map(char::from_u32)
            .chain("\u{2028}\u{fffd}\u{1f600}\"\\".chars())
            .collect();
        let fields = [("pid", Value::I64(-3)), field("weird key", &nasty)];
        let out = line(LogFormat::Json, at(42), &info(&nasty, &fields));
        assert!(out.ends_with("}\n") && !out[..out.len() - 1].contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["msg"], nasty.as_str());
        assert_eq!(parsed["weird key"], nasty.as_str());
        assert_eq!(parsed["pid"], -3);
        assert_eq!(parsed["time"], "2018-05-02T10:11:12.000000042Z");
    }
}
