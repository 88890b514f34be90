//! ContainerPilot's weak typing: how a JSON5 value is read as a string, a boolean, an integer,
//! a duration or a list.
//!
//! ContainerPilot decodes with mapstructure's `WeaklyTypedInput`: a number is accepted where a
//! string is expected, a numeric string where an integer is, and so on. These conversions
//! reproduce it, each answering the value or why not (a predicate such as `must be a string,
//! got 5`), which `Obj::field` reports under the key's full name. They know nothing of keys,
//! lines or sections.

use super::super::duration::{self, GoDuration};
use crate::config::json5::{Kind, Value};
use crate::config::model::Exec;
use crate::config::problems::quote_short;

/// How a value is shown after `got`: strings quoted (and shortened), the rest by type.
pub fn describe(value: &Value) -> String {
    match &value.kind {
        Kind::String(s) => quote_short(s),
        Kind::Number(n) => format_number(*n),
        Kind::Bool(b) => b.to_string(),
        Kind::Null => "null".into(),
        Kind::Array(_) => "an array".into(),
        Kind::Object(_) => "an object".into(),
    }
}

/// mapstructure's number-to-string conversion: the shortest decimal, never an exponent.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{n}")
    }
}

/// A string field: strings as they are, numbers in decimal, booleans as `1` or `0`.
pub fn weak_string(value: &Value) -> Result<String, String> {
    match &value.kind {
        Kind::String(s) => Ok(s.clone()),
        Kind::Number(n) => Ok(format_number(*n)),
        Kind::Bool(b) => Ok(if *b { "1" } else { "0" }.into()),
        _ => Err(format!("must be a string, got {}", describe(value))),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A boolean field: booleans, Go's boolean strings (`""` is false), numbers (non-zero is true).
pub fn weak_bool(value: &Value) -> Result<bool, String> {
    match &value.kind {
        Kind::Bool(b) => Ok(*b),
        Kind::Number(n) => Ok(*n != 0.0),
        Kind::String(s) if s.is_empty() => Ok(false),
        Kind::String(s) => parse_go_bool(s)
            .ok_or_else(|| format!("must be true or false, got {}", describe(value))),
        _ => Err(format!("must be true or false, got {}", describe(value))),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then `0x`/`0o`/`0b` or a leading `0`
/// for octal, else decimal.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// An integer from a float, as Go converts: truncated; `None` when out of range or not finite.
fn truncate(n: f64) -> Option<i64> {
    let t = n.trunc();
    (t.is_finite() && t >= i64::MIN as f64 && t < i64::MAX as f64).then_some(t as i64)
}

/// An integer field: numbers truncated, strings in Go's integer syntax (`""` is 0), booleans
/// as 1 or 0.
pub fn weak_int(value: &Value) -> Result<i64, String> {
    let fail = || format!("must be a whole number, got {}", describe(value));
    match &value.kind {
        Kind::Number(n) => truncate(*n).ok_or_else(fail),
        Kind::String(s) if s.is_empty() => Ok(0),
        Kind::String(s) => parse_go_int(s).ok_or_else(fail),
        Kind::Bool(b) => Ok(i64::from(*b)),
        _ => Err(fail()),
    }
}

/// A field ContainerPilot reads as whole seconds (`health.interval`, `health.ttl`, watch
/// `interval`, top-level `stopTimeout`): a number (truncated, as ContainerPilot truncates) or an
/// integer string is seconds; pilot also takes a Go duration string (`"500ms"`).
pub fn weak_seconds(value: &Value) -> Result<GoDuration, String> {
    let fail = || {
        format!(
            "must be a number of seconds or a duration such as \"10s\", got {}",
            describe(value)
        )
    };
    let secs = |n: i64| GoDuration::from_secs(n).ok_or_else(fail);
    match &value.kind {
        Kind::Number(n) => secs(truncate(*n).ok_or_else(fail)?),
        Kind::Bool(b) => secs(i64::from(*b)),
        Kind::String(s) if s.is_empty() => Ok(GoDuration(0)),
        Kind::String(s) => match parse_go_int(s) {
            Some(n) => secs(n),
            None => duration::parse(s).map_err(|e| duration_message(s, &e)),
        },
        _ => Err(fail()),
    }
}

/// A duration field (`timeout`, `when.interval`...): a Go duration string, or a number of
/// seconds (a number or a numeric string). pilot also accepts fractional seconds (`1.5`), which
/// ContainerPilot rejected. `""` means not set.
pub fn weak_duration(value: &Value) -> Result<Option<GoDuration>, String> {
    let fail = || {
        format!(
            "must be a duration such as \"30s\" or a number of seconds, got {}",
            describe(value)
        )
    };
    match &value.kind {
        Kind::Number(n) => GoDuration::from_secs_f64(*n).map(Some).ok_or_else(fail),
        Kind::Bool(b) => Ok(GoDuration::from_secs(i64::from(*b))),
        Kind::String(s) if s.is_empty() => Ok(None),
        Kind::String(s) => {
            if let Ok(n) = s.parse::<i64>() {
                return GoDuration::from_secs(n).map(Some).ok_or_else(fail);
            }
            if is_decimal(s) {
                return s
                    .parse::<f64>()
                    .ok()
                    .and_then(GoDuration::from_secs_f64)
                    .map(Some)
                    .ok_or_else(fail);
            }
            duration::parse(s)
                .map(Some)
                .map_err(|e| duration_message(s, &e))
        }
        _ => Err(fail()),
    }
}

/// `1.5`, `-2.`, `.5`: a plain decimal number, nothing Rust's float parser adds (`inf`, `1e3`).
fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn duration_message(text: &str, error: &duration::DurationError) -> String {
    match error {
        duration::DurationError::Invalid => format!(
            "{} is not a duration (Go syntax such as \"300ms\", \"1m30s\"; a bare number is seconds)",
            quote_short(text)
        ),
        duration::DurationError::MissingUnit => format!(
            "{} is not a duration: a number needs a unit (ns, us, ms, s, m, h)",
            quote_short(text)
        ),
        duration::DurationError::UnknownUnit(unit) => format!(
            "{} is not a duration: unknown unit {} (ns, us, ms, s, m, h)",
            quote_short(text),
            quote_short(unit)
        ),
    }
}

/// A list of strings (elements converted as `weak_string` does).
pub fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match &value.kind {
        Kind::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                weak_string(item).map_err(|_| {
                    format!(
                        "must be an array of strings, but element {i} is {}",
                        describe(item)
                    )
                })
            })
            .collect(),
        _ => Err(format!(
            "must be an array of strings, got {}",
            describe(value)
        )),
    }
}

/// A string or a list of strings.
pub fn string_or_list(value: &Value) -> Result<Vec<String>, String> {
    match &value.kind {
        Kind::String(s) => Ok(vec![s.clone()]),
        Kind::Array(_) => string_list(value),
        _ => Err(format!(
            "must be a string or an array of strings, got {}",
            describe(value)
        )),
    }
}

/// Why an `exec` string cannot be split with shell-style quoting (an unterminated quote...):
/// `exec` then splits it as ContainerPilot did, and the caller warns.
pub fn exec_quoting_problem(value: &Value) -> Option<String> {
    match &value.kind {
        Kind::String(s) => crate::config::words::split(s).err(),
        _ => None,
    }
}

/// `exec`: a string split with shell-style quoting (or, when its quotes do not close, on single
/// spaces as ContainerPilot did), or an array taken as it is (numbers and booleans in it
/// written as Go's `%v` writes them).
pub fn exec(value: &Value) -> Result<Exec, String> {
    let words = match &value.kind {
        Kind::String(s) => crate::config::words::split(s)
            .unwrap_or_else(|_| crate::config::words::split_on_spaces(s)),
        Kind::Array(items) => array_words(items)?,
        _ => {
            return Err(format!(
                "must be a string or an array of strings, got {}",
                describe(value)
            ));
        }
    };
    let mut words = words.into_iter();
    let Some(program) = words.next() else {
        return Err("is empty: give the program to run".into());
    };
    if program.is_empty() {
        return Err("has an empty program name".into());
    }
    Ok(Exec {
        program,
        args: words.collect(),
    })
}

fn array_words(items: &[Value]) -> Result<Vec<String>, String> {
    let mut words = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        words.push(match &item.kind {
            Kind::String(s) => s.clone(),
            Kind::Number(n) => crate::template::go_float_v(*n),
            Kind::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "must be a string or an array of strings, but element {i} is {}",
                    describe(item)
                ));
            }
        });
    }
    Ok(words)
}

/// A string that means "not set" when empty (`initial_status`, `tag`, the TLS paths).
pub fn non_empty_string(value: &Value) -> Result<Option<String>, String> {
    weak_string(value).map(|s| Some(s).filter(|s| !s.is_empty()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json5::parse;

    fn v(text: &str) -> Value {
        parse(text).unwrap()
    }

    #[test]
    fn weak_strings() {
        assert_eq!(weak_string(&v("'x'")), Ok("x".into()));
        assert_eq!(weak_string(&v("10")), Ok("10".into()));
        assert_eq!(weak_string(&v("1.5")), Ok("1.5".into()));
        assert_eq!(weak_string(&v("1e21")), Ok("1000000000000000000000".into()));
        assert_eq!(weak_string(&v("true")), Ok("1".into()));
        assert_eq!(weak_string(&v("false")), Ok("0".into()));
        assert_eq!(
            weak_string(&v("[1]")),
            Err("must be a string, got an array".into())
        );
    }

    #[test]
    fn weak_bools() {
        for (text, want) in [
            ("true", true),
            ("false", false),
            ("'true'", true),
            ("'T'", true),
            ("'0'", false),
            ("''", false),
            ("1", true),
            ("0", false),
        ] {
            assert_eq!(weak_bool(&v(text)), Ok(want), "{text}");
        }
        assert_eq!(
            weak_bool(&v("'nope'")),
            Err("must be true or false, got \"nope\"".into())
        );
        assert!(weak_bool(&v("'yes'")).is_err());
    }

    #[test]
    fn weak_ints() {
        for (text, want) in [
            ("80", 80),
            ("80.9", 80),
            ("-1", -1),
            ("'0x50'", 80),
            ("'010'", 8),
            ("'0o17'", 15),
            ("'0b101'", 5),
            ("'-12'", -12),
            ("'+7'", 7),
            ("''", 0),
            ("true", 1),
            ("0x10", 16),
        ] {
            assert_eq!(weak_int(&v(text)), Ok(want), "{text}");
        }
        for text in ["'abc'", "'8080x'", "'09'", "[]", "1e300", "NaN", "'0x'"] {
            assert!(weak_int(&v(text)).is_err(), "{text}");
        }
    }

    #[test]
    fn seconds_fields() {
        let s = |n: i64| Ok(GoDuration(n * duration::SECOND));
        assert_eq!(weak_seconds(&v("10")), s(10));
        assert_eq!(weak_seconds(&v("10.9")), s(10));
        assert_eq!(weak_seconds(&v("'103'")), s(103));
        assert_eq!(weak_seconds(&v("'0x10'")), s(16));
        assert_eq!(weak_seconds(&v("true")), s(1));
        assert_eq!(weak_seconds(&v("-1")), s(-1));
        assert_eq!(
            weak_seconds(&v("'500ms'")),
            Ok(GoDuration(500 * duration::MILLISECOND))
        );
        assert_eq!(weak_seconds(&v("'10s'")), s(10));
        assert_eq!(
            weak_seconds(&v("'ten'")),
            Err("\"ten\" is not a duration (Go syntax such as \"300ms\", \"1m30s\"; a bare number is seconds)".into())
        );
        assert!(weak_seconds(&v("{}")).is_err());
    }

    #[test]
    fn duration_fields() {
        let d = |n: i64| Ok(Some(GoDuration(n)));
        assert_eq!(weak_duration(&v("10")), d(10 * duration::SECOND));
        assert_eq!(weak_duration(&v("'10'")), d(10 * duration::SECOND));
        assert_eq!(weak_duration(&v("'-5'")), d(-5 * duration::SECOND));
        assert_eq!(weak_duration(&v("1.5")), d(1_500 * duration::MILLISECOND));
        assert_eq!(weak_duration(&v("'1.5'")), d(1_500 * duration::MILLISECOND));
        assert_eq!(weak_duration(&v("'300ms'")), d(300 * duration::MILLISECOND));
        assert_eq!(weak_duration(&v("'1m30s'")), d(90 * duration::SECOND));
        assert_eq!(weak_duration(&v("true")), d(duration::SECOND));
        assert_eq!(weak_duration(&v("''")), Ok(None));
        assert_eq!(
            weak_duration(&v("'1d'")),
            Err("\"1d\" is not a duration: unknown unit \"d\" (ns, us, ms, s, m, h)".into())
        );
        assert_eq!(
            weak_duration(&v("'1h5'")),
            Err("\"1h5\" is not a duration: a number needs a unit (ns, us, ms, s, m, h)".into())
        );
        assert!(weak_duration(&v("'inf'")).is_err());
        assert!(weak_duration(&v("'1e3'")).is_err());
        assert!(weak_duration(&v("Infinity")).is_err());
        assert!(weak_duration(&v("[]")).is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(
            string_list(&v("['a', 1]")),
            Ok(vec!["a".into(), "1".into()])
        );
        assert_eq!(
            string_list(&v("'a'")),
            Err("must be an array of strings, got \"a\"".into())
        );
        assert_eq!(
            string_list(&v("['a', {}]")),
            Err("must be an array of strings, but element 1 is an object".into())
        );
        assert_eq!(string_or_list(&v("'eth0'")), Ok(vec!["eth0".into()]));
        assert_eq!(
            string_or_list(&v("['a','b']")),
            Ok(vec!["a".into(), "b".into()])
        );
        assert!(string_or_list(&v("5")).is_err());
    }

    #[test]
    fn exec_values() {
        assert_eq!(
            exec(&v("'sleep 1'")),
            Ok(Exec {
                program: "sleep".into(),
                args: vec!["1".into()]
            })
        );
        assert_eq!(
            exec(&v("['sleep', 1000000, true, 1.5]")),
            Ok(Exec {
                program: "sleep".into(),
                args: vec!["1e+06".into(), "true".into(), "1.5".into()]
            })
        );
        assert_eq!(
            exec(&v("['a b', 'c']")),
            Ok(Exec {
                program: "a b".into(),
                args: vec!["c".into()]
            })
        );
        assert_eq!(
            exec(&v("''")),
            Err("is empty: give the program to run".into())
        );
        assert_eq!(
            exec(&v("'   '")),
            Err("is empty: give the program to run".into())
        );
        assert_eq!(
            exec(&v("[]")),
            Err("is empty: give the program to run".into())
        );
        assert_eq!(exec(&v("['']")), Err("has an empty program name".into()));
        assert!(
            exec(&v("['a', null]"))
                .unwrap_err()
                .contains("element 1 is null")
        );
        assert!(exec(&v("5")).unwrap_err().contains("got 5"));
    }
}
