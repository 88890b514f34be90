//! An object of the config being decoded: keys looked up as ContainerPilot's mapstructure looks
//! them up, every value decoded through one generic `field`, and the keys nobody asked for
//! reported as unknown.

use super::Spanned;
use super::weak::{describe, exec, exec_quoting_problem};
use crate::config::json5::{Kind, Member, Value};
use crate::config::model::Exec;
use crate::config::problems::{Reporter, closest, quote_short};

/// Unknown keys reported one by one in an object; the rest are counted.
const MAX_UNKNOWN_KEYS: usize = 20;

/// An object being decoded. It remembers which keys were looked up, so that the others can be
/// reported as unknown.
pub struct Obj<'a> {
    members: &'a [Member],
    used: Vec<bool>,
    /// The line of the object (where a missing key is reported).
    pub line: u32,
    /// Top-level keys match exactly; the others ignoring case.
    exact: bool,
    /// The dotted path of this object within its reporter's path (`health`, `consul.tls`),
    /// written before each key in messages.
    prefix: String,
}

impl<'a> Obj<'a> {
    /// An object whose keys match ignoring case (every object below the top level); `prefix`
    /// names it in messages (`health`; empty for a job, a watch or a metric).
    pub fn new(value: &'a Value, prefix: &str) -> Option<Obj<'a>> {
        Self::with_matching(value, prefix, false)
    }

    /// The top-level object, whose keys must match exactly.
    pub fn top_level(value: &'a Value) -> Option<Obj<'a>> {
        Self::with_matching(value, "", true)
    }

    /// The object `value` must be, named `prefix`; anything else is reported.
    pub fn section(value: &'a Value, prefix: &str, report: &mut Reporter<'_>) -> Option<Obj<'a>> {
        let obj = Self::new(value, prefix);
        if obj.is_none() {
            wrong_type(report, prefix, "an object", value);
        }
        obj
    }

    fn with_matching(value: &'a Value, prefix: &str, exact: bool) -> Option<Obj<'a>> {
        match &value.kind {
            Kind::Object(members) => Some(Obj {
                members,
                used: vec![false; members.len()],
                line: value.pos.line,
                exact,
                prefix: prefix.to_string(),
            }),
            _ => None,
        }
    }

    /// `key` with this object's prefix: `health.ttl`.
    pub fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The value of `name`: the key spelt exactly, else (below the top level) the first key
    /// equal to it ignoring case. `null` counts as absent.
    pub fn get(&mut self, name: &str) -> Option<&'a Value> {
        let index = self.position(name)?;
        self.used[index] = true;
        let value = &self.members[index].value;
        (!is_null(value)).then_some(value)
    }

    /// Whether `name` is given (and not `null`), without looking it up for good.
    pub fn has(&self, name: &str) -> bool {
        self.position(name)
            .is_some_and(|index| !is_null(&self.members[index].value))
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.key == name).or_else(|| {
            if self.exact {
                return None;
            }
            self.members
                .iter()
                .enumerate()
                .position(|(i, m)| !self.used[i] && m.key.eq_ignore_ascii_case(name))
        })
    }

    /// The value of `key` decoded by `decode`, with its line. A value that does not decode is
    /// reported (`health.ttl must be ...`) and counts as absent. This is the one place where
    /// ContainerPilot's weak typing meets the reporter. (Decoders are plain functions, so that
    /// there is one copy of this code per decoded type.)
    pub fn field<T>(
        &mut self,
        key: &str,
        decode: fn(&Value) -> Result<T, String>,
        report: &mut Reporter<'_>,
    ) -> Option<Spanned<T>> {
        let value = self.get(key)?;
        self.spanned(key, value.pos.line, decode(value).map(Some), report)
    }

    /// `exec` (of a job or a health check), decoded by `weak::exec`. A string whose quotes do
    /// not close is split on spaces, quotes kept, as ContainerPilot split every exec string;
    /// that is a warning.
    pub fn exec(&mut self, report: &mut Reporter<'_>) -> Option<Exec> {
        let value = self.get("exec")?;
        if let Some(why) = exec_quoting_problem(value) {
            report.warn_key(
                &self.full_key("exec"),
                format!(
                    "{why}: it is split on spaces with the quotes kept, as ContainerPilot \
                     splits it"
                ),
                value.pos.line,
            );
        }
        self.spanned("exec", value.pos.line, exec(value).map(Some), report)
            .map(|e| e.value)
    }

    /// Like `field`, for a key that must be given: its absence is reported as `<key> must be
    /// set: <why>` on the object's line.
    pub fn required<T>(
        &mut self,
        key: &str,
        decode: fn(&Value) -> Result<T, String>,
        why: &str,
        report: &mut Reporter<'_>,
    ) -> Option<Spanned<T>> {
        let Some(value) = self.get(key) else {
            report.key(
                &self.full_key(key),
                format!("must be set: {why}"),
                self.line,
            );
            return None;
        };
        self.spanned(key, value.pos.line, decode(value).map(Some), report)
    }

    /// Like `field`, for decoders that read some values (`""`) as "not set".
    pub fn field_if_set<T>(
        &mut self,
        key: &str,
        decode: fn(&Value) -> Result<Option<T>, String>,
        report: &mut Reporter<'_>,
    ) -> Option<Spanned<T>> {
        let value = self.get(key)?;
        self.decode(key, value, decode, report)
    }

    /// `value`, the value of `key` already looked up, decoded as `field_if_set` decodes it.
    pub fn decode<T>(
        &self,
        key: &str,
        value: &Value,
        decode: fn(&Value) -> Result<Option<T>, String>,
        report: &mut Reporter<'_>,
    ) -> Option<Spanned<T>> {
        self.spanned(key, value.pos.line, decode(value), report)
    }

    fn spanned<T>(
        &self,
        key: &str,
        line: u32,
        decoded: Result<Option<T>, String>,
        report: &mut Reporter<'_>,
    ) -> Option<Spanned<T>> {
        match decoded {
            Ok(decoded) => decoded.map(|value| Spanned { value, line }),
            Err(why) => {
                report.key(&self.full_key(key), why, line);
                None
            }
        }
    }

    /// Reports every key that was not looked up; `known` are this object's keys, for
    /// suggestions.
    pub fn finish(self, report: &mut Reporter<'_>, known: &[&str]) {
        let quoted = |key: &str| quote_short(&self.full_key(key));
        let unused: Vec<&Member> = self
            .members
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(member, _)| member)
            .collect();
        for member in unused.iter().take(MAX_UNKNOWN_KEYS) {
            let key = &member.key;
            let message = if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
                if self.exact {
                    format!(
                        "unknown key {} (top-level keys are case-sensitive: did you mean {}?)",
                        quoted(key),
                        quoted(same)
                    )
                } else {
                    format!(
                        "key {} repeats {} (keys are matched ignoring case)",
                        quoted(key),
                        quoted(same)
                    )
                }
            } else if let Some(close) = closest(key, known) {
                format!(
                    "unknown key {} (did you mean {}?)",
                    quoted(key),
                    quoted(close)
                )
            } else {
                format!("unknown key {}", quoted(key))
            };
            report.error(message, member.key_pos.line);
        }
        if let Some(first) = unused.get(MAX_UNKNOWN_KEYS) {
            let within = if self.prefix.is_empty() {
                String::new()
            } else {
                format!(" in {}", self.prefix)
            };
            report.error(
                format!(
                    "{} more unknown keys{within}",
                    unused.len() - MAX_UNKNOWN_KEYS
                ),
                first.key_pos.line,
            );
        }
    }
}

/// Reports that `key` holds the wrong type: `<key> must be <what>, got <value>`.
pub fn wrong_type(report: &mut Reporter<'_>, key: &str, what: &str, value: &Value) {
    report.key(
        key,
        format!("must be {what}, got {}", describe(value)),
        value.pos.line,
    );
}

/// The items of the list `value` must be (named `key`); anything but a list is reported.
pub fn list_items<'a>(value: &'a Value, key: &str, report: &mut Reporter<'_>) -> &'a [Value] {
    match &value.kind {
        Kind::Array(items) => items,
        _ => {
            wrong_type(report, key, "an array", value);
            &[]
        }
    }
}

/// Whether `value` is `null`: a `null` job or watch is left out, as ContainerPilot leaves it.
pub fn is_null(value: &Value) -> bool {
    matches!(value.kind, Kind::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json5::parse;
    use crate::config::problems::Problems;
    use crate::config::raw::weak::weak_int;

    fn v(text: &str) -> Value {
        parse(text).unwrap()
    }

    fn texts(problems: Problems) -> Vec<String> {
        problems.messages()
    }

    #[test]
    fn keys_match_ignoring_case_below_the_top_level_only() {
        let value = v("{NAME: 'a', Port: 1}");
        let mut obj = Obj::new(&value, "").unwrap();
        assert_eq!(obj.get("name").unwrap().kind, Kind::String("a".into()));
        assert_eq!(obj.get("port").unwrap().kind, Kind::Number(1.0));
        let mut top = Obj::top_level(&value).unwrap();
        assert!(top.get("name").is_none());
    }

    #[test]
    fn exact_spelling_wins_and_the_other_is_reported() {
        let value = v("{Name: 'b', name: 'a'}");
        let mut obj = Obj::new(&value, "").unwrap();
        assert_eq!(obj.get("name").unwrap().kind, Kind::String("a".into()));
        let mut problems = Problems::default();
        obj.finish(&mut problems.at("jobs[0]"), &["name"]);
        assert_eq!(
            texts(problems),
            ["jobs[0]: key \"Name\" repeats \"name\" (keys are matched ignoring case) (line 1)"]
        );
    }

    #[test]
    fn unknown_keys_with_suggestions() {
        let value = v("{\n interval: 5,\n tll: 10,\n zzz: 1\n}");
        let mut obj = Obj::new(&value, "health").unwrap();
        obj.get("interval");
        let mut problems = Problems::default();
        obj.finish(
            &mut problems.at("jobs[0] \"app\""),
            &["exec", "interval", "ttl", "timeout"],
        );
        assert_eq!(
            texts(problems),
            [
                "jobs[0] \"app\": unknown key \"health.tll\" (did you mean \"health.ttl\"?) (line 3)",
                "jobs[0] \"app\": unknown key \"health.zzz\" (line 4)",
            ]
        );
        let value = v("{Consul: 'x'}");
        let top = Obj::top_level(&value).unwrap();
        let mut problems = Problems::default();
        top.finish(&mut problems.at(""), &["consul"]);
        assert_eq!(
            texts(problems),
            [
                "unknown key \"Consul\" (top-level keys are case-sensitive: did you mean \"consul\"?) (line 1)"
            ]
        );
    }

    #[test]
    fn null_is_absent() {
        let value = v("{a: null}");
        let mut obj = Obj::new(&value, "").unwrap();
        assert!(obj.get("a").is_none());
        let mut problems = Problems::default();
        obj.finish(&mut problems.at(""), &["a"]);
        assert!(texts(problems).is_empty());
    }

    #[test]
    fn a_field_is_decoded_with_its_line_or_reported_under_its_full_key() {
        let value = v("{\n port: '0x50',\n size: 'big'\n}");
        let mut obj = Obj::new(&value, "telemetry").unwrap();
        let mut problems = Problems::default();
        let port = obj.field("port", weak_int, &mut problems.at(""));
        assert_eq!(port, Some(Spanned { value: 80, line: 2 }));
        let size = obj.field("size", weak_int, &mut problems.at(""));
        assert_eq!(size, None);
        assert_eq!(obj.field("absent", weak_int, &mut problems.at("")), None);
        assert_eq!(
            texts(problems),
            ["telemetry.size must be a whole number, got \"big\" (line 3)"]
        );
    }
}
