//! Decoding the JSON5 tree with ContainerPilot's weak typing, collecting every problem.
//!
//! ContainerPilot decodes with mapstructure (`WeaklyTypedInput`, `ErrorUnused`): nested keys
//! match case-insensitively (top-level keys exactly), unknown keys are errors, `null` is the
//! same as absent, a number is accepted where a string is expected, a numeric string where an
//! integer is, and so on. These helpers reproduce those conversions over `json5::Value`, keeping
//! the line of every value for the messages, and report problems instead of stopping at the
//! first.

use std::fmt;

use super::duration::{self, GoDuration};
use super::json5::{Kind, Member, Value};
use super::model::Exec;

/// One thing wrong with a config: where, what, and on which line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What the problem belongs to when that is not a top-level key: `jobs[2] "app"`,
    /// `watches[0] "db"`, `telemetry.metrics[1] "requests"`. Empty otherwise.
    pub path: String,
    /// The problem, starting with the key it is about: `health.ttl must be greater than zero`.
    pub message: String,
    /// The line of the offending value or key (of the enclosing object for a missing key).
    pub line: Option<u32>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Collects problems for one path (a job, a watch, or the top level).
pub struct Reporter<'a> {
    pub problems: &'a mut Vec<Problem>,
    pub path: String,
}

impl<'a> Reporter<'a> {
    pub fn new(problems: &'a mut Vec<Problem>, path: impl Into<String>) -> Self {
        Reporter {
            problems,
            path: path.into(),
        }
    }

    /// Reports `message` as it is.
    pub fn report(&mut self, message: impl Into<String>, line: u32) {
        self.problems.push(Problem {
            path: self.path.clone(),
            message: message.into(),
            line: Some(line),
        });
    }

    /// Reports `<key> <message>` (the message is a predicate such as `must be positive`).
    pub fn key(&mut self, key: &str, message: impl fmt::Display, line: u32) {
        self.report(format!("{key} {message}"), line);
    }

    pub fn count(&self) -> usize {
        self.problems.len()
    }
}

/// A decoded value and the line it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sp<T> {
    pub v: T,
    pub line: u32,
}

/// An object being decoded: looks keys up as mapstructure does and remembers which were used,
/// so that the others can be reported as unknown.
pub struct Obj<'a> {
    members: &'a [Member],
    used: Vec<bool>,
    pub line: u32,
    exact: bool,
}

impl<'a> Obj<'a> {
    /// An object whose keys match case-insensitively (every object below the top level).
    pub fn new(value: &'a Value) -> Option<Obj<'a>> {
        Self::with_matching(value, false)
    }

    /// The top-level object, whose keys must match exactly.
    pub fn top_level(value: &'a Value) -> Option<Obj<'a>> {
        Self::with_matching(value, true)
    }

    fn with_matching(value: &'a Value, exact: bool) -> Option<Obj<'a>> {
        match &value.kind {
            Kind::Object(members) => Some(Obj {
                members,
                used: vec![false; members.len()],
                line: value.pos.line,
                exact,
            }),
            _ => None,
        }
    }

    /// The value of `name`: the key spelt exactly, else (below the top level) the first key
    /// equal to it ignoring case. `null` counts as absent.
    pub fn get(&mut self, name: &str) -> Option<&'a Value> {
        let index = self
            .members
            .iter()
            .position(|m| m.key == name)
            .or_else(|| {
                if self.exact {
                    return None;
                }
                self.members
                    .iter()
                    .enumerate()
                    .position(|(i, m)| !self.used[i] && m.key.eq_ignore_ascii_case(name))
            })?;
        self.used[index] = true;
        let value = &self.members[index].value;
        (!matches!(value.kind, Kind::Null)).then_some(value)
    }

    /// Reports every key that was not looked up. `prefix` is the dotted path of this object
    /// within the reporter's path (`health`), `known` its keys, for suggestions.
    pub fn finish(self, r: &mut Reporter<'_>, prefix: &str, known: &[&str]) {
        let full = |key: &str| {
            quote_short(&if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            })
        };
        let unused: Vec<&Member> = self
            .members
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(member, _)| member)
            .collect();
        for member in unused.iter().take(MAX_UNKNOWN_KEYS) {
            let key = &member.key;
            let line = member.key_pos.line;
            if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
                let message = if self.exact {
                    format!(
                        "unknown key {} (top-level keys are case-sensitive: did you mean {}?)",
                        full(key),
                        full(same)
                    )
                } else {
                    format!(
                        "key {} repeats {} (keys are matched ignoring case)",
                        full(key),
                        full(same)
                    )
                };
                r.report(message, line);
            } else if let Some(close) = closest(key, known) {
                r.report(
                    format!("unknown key {} (did you mean {}?)", full(key), full(close)),
                    line,
                );
            } else {
                r.report(format!("unknown key {}", full(key)), line);
            }
        }
        if let Some(first) = unused.get(MAX_UNKNOWN_KEYS) {
            r.report(
                format!(
                    "{} more unknown keys{}",
                    unused.len() - MAX_UNKNOWN_KEYS,
                    if prefix.is_empty() {
                        String::new()
                    } else {
                        format!(" in {prefix}")
                    }
                ),
                first.key_pos.line,
            );
        }
    }
}

/// Unknown keys reported one by one in an object; the rest are counted.
const MAX_UNKNOWN_KEYS: usize = 20;

/// The known key within two edits of `key`, if any.
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, &k.to_ascii_lowercase()), *k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

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

/// A string for a message: quoted, and cut at 60 characters.
pub fn quote_short(s: &str) -> String {
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{:?}", format!("{cut}..."))
    } else {
        format!("{s:?}")
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

/// `exec`: a string split with shell-style quoting, or an array taken as it is (numbers and
/// booleans in it written as Go's `%v` writes them).
pub fn exec(value: &Value) -> Result<Exec, String> {
    let words = match &value.kind {
        Kind::String(s) => split_words(s)?,
        Kind::Array(items) => {
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
            words
        }
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

/// Splits a command line as a POSIX shell splits words, without expanding anything: blanks
/// separate words; `'...'` is literal; in `"..."` a backslash escapes `"`, `\`, `$`, `` ` `` and
/// a newline; outside quotes it escapes any character. `#` and the other shell operators are
/// ordinary characters, since no shell runs.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("has an unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("has an unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("has an unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("ends with a lone backslash".into()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json5::parse;

    fn v(text: &str) -> Value {
        parse(text).unwrap()
    }

    #[test]
    fn problem_display() {
        let p = Problem {
            path: "jobs[2] \"app\"".into(),
            message: "health.ttl must be greater than zero".into(),
            line: Some(14),
        };
        assert_eq!(
            p.to_string(),
            "jobs[2] \"app\": health.ttl must be greater than zero (line 14)"
        );
        let p = Problem {
            path: String::new(),
            message: "consul is required".into(),
            line: None,
        };
        assert_eq!(p.to_string(), "consul is required");
    }

    #[test]
    fn keys_match_ignoring_case_below_the_top_level_only() {
        let value = v("{NAME: 'a', Port: 1}");
        let mut obj = Obj::new(&value).unwrap();
        assert_eq!(obj.get("name").unwrap().kind, Kind::String("a".into()));
        assert_eq!(obj.get("port").unwrap().kind, Kind::Number(1.0));
        let mut top = Obj::top_level(&value).unwrap();
        assert!(top.get("name").is_none());
    }

    #[test]
    fn exact_spelling_wins_and_the_other_is_reported() {
        let value = v("{Name: 'b', name: 'a'}");
        let mut obj = Obj::new(&value).unwrap();
        assert_eq!(obj.get("name").unwrap().kind, Kind::String("a".into()));
        let mut problems = Vec::new();
        obj.finish(&mut Reporter::new(&mut problems, "jobs[0]"), "", &["name"]);
        assert_eq!(
            problems[0].to_string(),
            "jobs[0]: key \"Name\" repeats \"name\" (keys are matched ignoring case) (line 1)"
        );
    }

    #[test]
    fn unknown_keys_with_suggestions() {
        let value = v("{\n interval: 5,\n tll: 10,\n zzz: 1\n}");
        let mut obj = Obj::new(&value).unwrap();
        obj.get("interval");
        let mut problems = Vec::new();
        obj.finish(
            &mut Reporter::new(&mut problems, "jobs[0] \"app\""),
            "health",
            &["exec", "interval", "ttl", "timeout"],
        );
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "jobs[0] \"app\": unknown key \"health.tll\" (did you mean \"health.ttl\"?) (line 3)",
                "jobs[0] \"app\": unknown key \"health.zzz\" (line 4)",
            ]
        );
        let value = v("{Consul: 'x'}");
        let top = Obj::top_level(&value).unwrap();
        let mut problems = Vec::new();
        top.finish(&mut Reporter::new(&mut problems, ""), "", &["consul"]);
        assert_eq!(
            problems[0].message,
            "unknown key \"Consul\" (top-level keys are case-sensitive: did you mean \"consul\"?)"
        );
    }

    #[test]
    fn null_is_absent() {
        let value = v("{a: null}");
        let mut obj = Obj::new(&value).unwrap();
        assert!(obj.get("a").is_none());
        let mut problems = Vec::new();
        obj.finish(&mut Reporter::new(&mut problems, ""), "", &["a"]);
        assert!(problems.is_empty());
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
    fn exec_strings_split_with_shell_quoting() {
        let cases: &[(&str, &[&str])] = &[
            ("/bin/app", &["/bin/app"]),
            (
                "  node   server.js  -p 8000 ",
                &["node", "server.js", "-p", "8000"],
            ),
            ("sh -c 'echo a b'", &["sh", "-c", "echo a b"]),
            (r#"echo "a \"b\" \$c \x""#, &["echo", r#"a "b" $c \x"#]),
            (r"echo a\ b", &["echo", "a b"]),
            ("echo '' x", &["echo", "", "x"]),
            ("echo it''s", &["echo", "its"]),
            (
                "consul info | grep leader",
                &["consul", "info", "|", "grep", "leader"],
            ),
            (
                "echo # not a comment",
                &["echo", "#", "not", "a", "comment"],
            ),
            ("tab\tseparated\nlines", &["tab", "separated", "lines"]),
            ("a\\\nb", &["ab"]),
        ];
        for (line, want) in cases {
            assert_eq!(split_words(line).unwrap(), *want, "{line}");
        }
        assert_eq!(
            split_words("echo 'x"),
            Err("has an unterminated single quote".into())
        );
        assert_eq!(
            split_words("echo \"x"),
            Err("has an unterminated double quote".into())
        );
        assert_eq!(
            split_words("echo x\\"),
            Err("ends with a lone backslash".into())
        );
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
