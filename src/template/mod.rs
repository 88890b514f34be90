//! The Go `text/template` engine of the config file (rendered over the environment, as
//! ContainerPilot does before it parses the JSON5) and of `pilot -render` (which adds its
//! `service` function through `render_with`).
//!
//! This module knows nothing of configs or watches: it renders text over string data with
//! ContainerPilot's functions and whatever functions its caller adds.
//!
//! ContainerPilot executes the template with `missingkey=zero` over a Go `map[string]string`, so
//! `{{ .MISSING }}` is an empty string, and it adds the functions `default`, `split`, `join`,
//! `replaceAll`, `regexReplaceAll`, `loop` and `env`. `gotmpl` is a port of `text/template` whose
//! maps are untyped: a missing key there prints `<no value>`. To get the typed-map behaviour,
//! every field name the template can look up on the data is found by walking the parsed tree,
//! and those absent from the environment are seeded with `""`; `index` is replaced by one that
//! answers `""` for a missing key of the data map.
//!
//! Unlike ContainerPilot, a value containing `=` is kept whole (`FOO=a=b` renders `a=b`).
//!
//! The template is parsed whole before anything runs, and every error Go's parser reports is
//! one here (an unclosed `{{ if }}`, a stray `{{ end }}`, an unknown function...), with its line
//! and column in the file: `gotmpl` is patched for that (`crates/gotmpl`).
//!
//! The renderer runs on user input that may be written carelessly (or fuzzed), so nothing it
//! does is unbounded: functions refuse to build strings and lists past fixed sizes, the work of
//! all of them together is budgeted, and the output is capped. A render that hits a limit is a
//! template error, never an abort.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gotmpl::parse::{Expr, ListNode, Node, PipeNode};
use gotmpl::{Template, Value};

/// The largest string or list a template function may produce.
const MAX_VALUE_BYTES: usize = 1 << 20;
/// The largest rendered config.
const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// The most bytes all function calls of one render may produce together.
const WORK_BUDGET_BYTES: usize = 256 << 20;
/// The most `{{ range }}` iterations of one render, and the longest list `loop` makes.
const MAX_RANGE_ITERATIONS: u64 = 1_000_000;
const MAX_LOOP_LEN: i64 = 1_000_000;

/// A template that does not parse or fails while executing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// Renders `text` with `env` as the data (`{{ .NAME }}`) and as what `env` looks up.
pub fn render(text: &str, env: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    render_with(text, env, gotmpl::FuncMap::new())
}

/// Like `render`, with `extra` functions besides ContainerPilot's (`pilot -render` adds
/// `service`). An extra function with the name of a built-in one replaces it.
pub fn render_with(
    text: &str,
    env: &BTreeMap<String, String>,
    extra: gotmpl::FuncMap,
) -> Result<String, TemplateError> {
    parse_with(text, env, extra)?.execute()
}

/// A template parsed with its functions and data, ready to execute: so that a caller with
/// several templates (`pilot -render`) reports every parse error before it renders any.
pub struct Parsed {
    template: Template,
    env: Arc<BTreeMap<String, String>>,
}

/// Parses `text` as `render_with` does, without executing it.
pub fn parse_with(
    text: &str,
    env: &BTreeMap<String, String>,
    extra: gotmpl::FuncMap,
) -> Result<Parsed, TemplateError> {
    let budget = Arc::new(AtomicUsize::new(WORK_BUDGET_BYTES));
    let env = Arc::new(env.clone());
    let template = Template::new(NAME)
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .funcs(functions(&env, &budget))
        .funcs(extra)
        .parse(text)
        .map_err(parse_error)?;
    Ok(Parsed { template, env })
}

impl Parsed {
    /// Executes the template over its data.
    pub fn execute(&self) -> Result<String, TemplateError> {
        execute(&self.template, &self.env)
    }
}

fn execute(template: &Template, env: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut fields = BTreeSet::new();
    for name in template.templates() {
        if let Some(tree) = template.lookup(name) {
            collect_list(tree, &mut fields);
        }
    }
    let mut data: BTreeMap<Arc<str>, Value> = env
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), Value::String(Arc::from(v.as_str()))))
        .collect();
    for field in fields {
        data.entry(Arc::from(field.as_str()))
            .or_insert_with(|| Value::String(Arc::from("")));
    }

    let mut out = LimitedWriter {
        text: String::new(),
        exceeded: false,
    };
    match template.execute_fmt(&mut out, &Value::Map(Arc::new(data))) {
        Ok(()) => Ok(out.text),
        Err(_) if out.exceeded => Err(TemplateError(format!(
            "the rendered config is larger than {} MiB",
            MAX_OUTPUT_BYTES >> 20
        ))),
        Err(e) => Err(TemplateError(e.to_string())),
    }
}

/// The template's name: only a named template's own tree is among `templates()`, which
/// `render_with` walks for field names. The crate puts it in one message (`unclosed action started
/// at config:2`), which `parse_error` words as a line.
const NAME: &str = "config";

/// A parse error with its place in the file, worded as the config's JSON parse errors are
/// (`parse error at line:col [3:1]: ...`); the template is one with the file, so its lines are
/// the file's.
fn parse_error(error: gotmpl::TemplateError) -> TemplateError {
    match error {
        gotmpl::TemplateError::Parse {
            line, col, message, ..
        }
        | gotmpl::TemplateError::Lex {
            line, col, message, ..
        } => {
            let message = message.replace(&format!("started at {NAME}:"), "started at line ");
            TemplateError(format!("parse error at line:col [{line}:{col}]: {message}"))
        }
        other => TemplateError(other.to_string()),
    }
}

/// A `fmt::Write` that refuses to grow past `MAX_OUTPUT_BYTES`.
struct LimitedWriter {
    text: String,
    exceeded: bool,
}

impl fmt::Write for LimitedWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.text.len() + s.len() > MAX_OUTPUT_BYTES {
            self.exceeded = true;
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

// Finding the field names the template looks up.

fn collect_list(list: &ListNode, fields: &mut BTreeSet<String>) {
    for node in &list.nodes {
        collect_node(node, fields);
    }
}

fn collect_node(node: &Node, fields: &mut BTreeSet<String>) {
    match node {
        Node::List(list) => collect_list(list, fields),
        Node::Action(action) => collect_pipe(&action.pipe, fields),
        Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
            collect_pipe(&branch.pipe, fields);
            collect_list(&branch.body, fields);
            if let Some(else_body) = &branch.else_body {
                collect_list(else_body, fields);
            }
        }
        Node::Template(call) => {
            if let Some(pipe) = &call.pipe {
                collect_pipe(pipe, fields);
            }
        }
        Node::Define(define) => collect_list(&define.body, fields),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
    }
}

fn collect_pipe(pipe: &PipeNode, fields: &mut BTreeSet<String>) {
    for command in &pipe.commands {
        for arg in &command.args {
            collect_expr(arg, fields);
        }
    }
}

/// The first name of every field chain: the key looked up on whatever the chain starts from,
/// which is the data map whenever the lookup can succeed (no function returns a map). Seeding a
/// name that is in fact looked up on something else changes nothing: that lookup fails or
/// succeeds on its own value.
fn collect_expr(expr: &Expr, fields: &mut BTreeSet<String>) {
    match expr {
        Expr::Field(_, names) | Expr::Variable(_, _, names) => {
            if let Some(first) = names.first() {
                fields.insert(first.to_string());
            }
        }
        Expr::Chain(_, inner, names) => {
            collect_expr(inner, fields);
            if let Some(first) = names.first() {
                fields.insert(first.to_string());
            }
        }
        Expr::Pipe(_, pipe) => collect_pipe(pipe, fields),
        Expr::Dot(_)
        | Expr::Identifier(_, _)
        | Expr::String(_, _)
        | Expr::Number(_, _)
        | Expr::Bool(_, _)
        | Expr::Nil(_) => {}
    }
}

// The functions.

type Func = Arc<dyn Fn(&[Value]) -> gotmpl::Result<Value> + Send + Sync>;

/// A template function's error, as the functions a caller adds report one.
pub fn err(message: impl Into<String>) -> gotmpl::TemplateError {
    gotmpl::TemplateError::Exec(message.into())
}

/// Takes `bytes` from the render's work budget, or fails the call.
fn charge(budget: &AtomicUsize, name: &str, bytes: usize) -> gotmpl::Result<()> {
    if bytes > MAX_VALUE_BYTES {
        return Err(err(format!(
            "error calling {name}: the result would be larger than {} KiB",
            MAX_VALUE_BYTES >> 10
        )));
    }
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(bytes)
        })
        .map(|_| ())
        .map_err(|_| {
            err(format!(
                "error calling {name}: the template does too much work (over {} MiB of strings)",
                WORK_BUDGET_BYTES >> 20
            ))
        })
}

fn functions(env: &Arc<BTreeMap<String, String>>, budget: &Arc<AtomicUsize>) -> gotmpl::FuncMap {
    let mut map: BTreeMap<String, Func> = BTreeMap::new();

    map.insert("default".into(), Arc::new(default_fn));

    let b = budget.clone();
    map.insert("split".into(), Arc::new(move |args| split_fn(&b, args)));
    let b = budget.clone();
    map.insert("join".into(), Arc::new(move |args| join_fn(&b, args)));
    let b = budget.clone();
    map.insert(
        "replaceAll".into(),
        Arc::new(move |args| replace_all_fn(&b, args)),
    );
    let b = budget.clone();
    map.insert(
        "regexReplaceAll".into(),
        Arc::new(move |args| regex_replace_all_fn(&b, args)),
    );
    map.insert("loop".into(), Arc::new(loop_fn));
    let env = env.clone();
    map.insert(
        "env".into(),
        Arc::new(move |args| {
            let [name] = args else {
                return Err(arg_count("env", 1, args.len()));
            };
            let name = string_arg(name)?;
            Ok(Value::String(Arc::from(
                env.get(name).map(String::as_str).unwrap_or(""),
            )))
        }),
    );
    map.insert("index".into(), Arc::new(index_fn));

    // The standard functions that build strings are bounded too: they are run by a helper
    // template after the size of their result has been checked.
    for name in ["print", "printf", "println", "html", "js", "urlquery"] {
        let b = budget.clone();
        map.insert(
            name.into(),
            Arc::new(move |args| bounded_builtin(&b, name, args)),
        );
    }
    map
}

/// consul-template's data helpers, for `pilot -render`: `parseJSON`, `toJSON` and
/// `base64Decode`, bounded as the other functions are, with a work budget of their own.
pub fn data_functions() -> gotmpl::FuncMap {
    let budget = Arc::new(AtomicUsize::new(WORK_BUDGET_BYTES));
    let mut map: BTreeMap<String, Func> = BTreeMap::new();
    let b = budget.clone();
    map.insert(
        "parseJSON".into(),
        Arc::new(move |args| {
            let [text] = args else {
                return Err(arg_count("parseJSON", 1, args.len()));
            };
            let text = string_arg(text)?;
            // Each value costs more than its text: charged twice.
            charge(&b, "parseJSON", text.len().saturating_mul(2))?;
            // As consul-template: nothing parses as an empty map.
            if text.trim().is_empty() {
                return Ok(Value::Map(Arc::new(BTreeMap::new())));
            }
            let json: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| err(format!("error calling parseJSON: {e}")))?;
            Ok(from_json(json))
        }),
    );
    let b = budget.clone();
    map.insert(
        "toJSON".into(),
        Arc::new(move |args| {
            let [value] = args else {
                return Err(arg_count("toJSON", 1, args.len()));
            };
            // A string's JSON is at most six bytes for each of its bytes (`\u001f`).
            charge(&b, "toJSON", display_size(value).saturating_mul(2))?;
            let json = to_json(value).map_err(|e| err(format!("error calling toJSON: {e}")))?;
            Ok(Value::String(Arc::from(json.to_string())))
        }),
    );
    let b = budget;
    map.insert(
        "base64Decode".into(),
        Arc::new(move |args| {
            let [text] = args else {
                return Err(arg_count("base64Decode", 1, args.len()));
            };
            let text = string_arg(text)?;
            charge(&b, "base64Decode", text.len())?;
            let bytes = crate::base64::decode(text)
                .map_err(|e| err(format!("error calling base64Decode: {e}")))?;
            Ok(Value::String(Arc::from(text_of(&bytes))))
        }),
    );
    map
}

/// Bytes as template text: UTF-8 as it is; anything else with each invalid sequence replaced by
/// U+FFFD, since a template's strings are UTF-8 (a binary value never fails a render).
pub fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A JSON value as a template value. Integers stay integers (Go's decoder makes every number a
/// float64, which prints the same for integers).
fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Uint(u),
            _ => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::String(Arc::from(s)),
        serde_json::Value::Array(items) => {
            Value::List(items.into_iter().map(from_json).collect::<Vec<_>>().into())
        }
        serde_json::Value::Object(map) => Value::Map(Arc::new(
            map.into_iter()
                .map(|(k, v)| (Arc::from(k), from_json(v)))
                .collect(),
        )),
    }
}

/// A template value as JSON (maps with sorted keys, as Go's encoder writes them).
fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("json: unsupported value: {}", go_float_v(*f)))?,
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(items) => {
            serde_json::Value::Array(items.iter().map(to_json).collect::<Result<Vec<_>, _>>()?)
        }
        Value::Map(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.to_string(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Function(_) => return Err("json: unsupported type: func".into()),
    })
}

fn arg_count(name: &str, want: usize, got: usize) -> gotmpl::TemplateError {
    err(format!(
        "wrong number of args for {name}: want {want} got {got}"
    ))
}

/// A template function's string argument, or Go's wording of the wrong type.
pub fn string_arg(value: &Value) -> gotmpl::Result<&str> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(err(format!(
            "wrong type for value; expected string; got {}",
            go_type_name(other)
        ))),
    }
}

fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]string",
        Value::Function(_) => "func",
    }
}

/// `default DEFAULT VALUE`: VALUE when it is a non-empty string, else DEFAULT (formatted with
/// `%v` when it is not a string).
fn default_fn(args: &[Value]) -> gotmpl::Result<Value> {
    let [fallback, value] = args else {
        return Err(arg_count("default", 2, args.len()));
    };
    if let Value::String(s) = value
        && !s.is_empty()
    {
        return Ok(value.clone());
    }
    Ok(match fallback {
        Value::String(_) => fallback.clone(),
        Value::Float(f) => Value::String(Arc::from(go_float_v(*f))),
        other => Value::String(Arc::from(other.to_string())),
    })
}

/// `split SEP S`: S with surrounding whitespace trimmed, split on SEP; nothing gives `[]`.
fn split_fn(budget: &AtomicUsize, args: &[Value]) -> gotmpl::Result<Value> {
    let [sep, s] = args else {
        return Err(arg_count("split", 2, args.len()));
    };
    let (sep, s) = (string_arg(sep)?, string_arg(s)?.trim());
    if s.is_empty() {
        return Ok(Value::List(Arc::from(Vec::new())));
    }
    // Each element costs a value besides its text.
    let pieces = if sep.is_empty() {
        s.chars().count()
    } else {
        s.matches(sep).count() + 1
    };
    charge(budget, "split", s.len() + pieces * 32)?;
    let parts: Vec<Value> = if sep.is_empty() {
        // Go's strings.Split with an empty separator splits into characters.
        s.chars()
            .map(|c| Value::String(Arc::from(c.to_string())))
            .collect()
    } else {
        s.split(sep).map(|p| Value::String(Arc::from(p))).collect()
    };
    Ok(Value::List(Arc::from(parts)))
}

/// `join SEP LIST`: LIST must hold strings only (Go's `[]string`).
fn join_fn(budget: &AtomicUsize, args: &[Value]) -> gotmpl::Result<Value> {
    let [sep, list] = args else {
        return Err(arg_count("join", 2, args.len()));
    };
    let sep = string_arg(sep)?;
    let items: &[Value] = match list {
        Value::Nil => &[],
        Value::List(items) => items,
        other => {
            return Err(err(format!(
                "wrong type for value; expected []string; got {}",
                go_type_name(other)
            )));
        }
    };
    let mut strings = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => strings.push(s.as_ref()),
            other => {
                return Err(err(format!(
                    "wrong type for value; expected []string; got []{}",
                    go_type_name(other)
                )));
            }
        }
    }
    let size = strings.iter().map(|s| s.len()).sum::<usize>()
        + sep.len().saturating_mul(strings.len().saturating_sub(1));
    charge(budget, "join", size)?;
    Ok(Value::String(Arc::from(strings.join(sep))))
}

/// `replaceAll FROM TO S`: every FROM in S replaced by TO, literally.
fn replace_all_fn(budget: &AtomicUsize, args: &[Value]) -> gotmpl::Result<Value> {
    let [from, to, s] = args else {
        return Err(arg_count("replaceAll", 3, args.len()));
    };
    let (from, to, s) = (string_arg(from)?, string_arg(to)?, string_arg(s)?);
    // An empty FROM matches before every character and at the end, as in Go.
    let count = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let size = (s.len() - count.saturating_mul(from.len()).min(s.len()))
        .saturating_add(count.saturating_mul(to.len()));
    charge(budget, "replaceAll", size)?;
    Ok(Value::String(Arc::from(s.replace(from, to))))
}

/// `regexReplaceAll RE TO S`: Go's `Regexp.ReplaceAllString`, with `$1`, `${1}`, `$name` and
/// `${name}` in TO expanded as Go expands them.
fn regex_replace_all_fn(budget: &AtomicUsize, args: &[Value]) -> gotmpl::Result<Value> {
    let [re, to, s] = args else {
        return Err(arg_count("regexReplaceAll", 3, args.len()));
    };
    let (re, to, s) = (string_arg(re)?, string_arg(to)?, string_arg(s)?);
    let regex = regex_lite::RegexBuilder::new(re)
        .size_limit(256 << 10)
        .nest_limit(100)
        .build()
        .map_err(|e| err(format!("error calling regexReplaceAll: {e}")))?;
    let names: Vec<Option<&str>> = regex.capture_names().collect();
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= s.len() {
        let Some(caps) = regex.captures_at(s, search) else {
            break;
        };
        let Some(whole) = caps.get(0) else {
            break;
        };
        out.push_str(&s[last_end..whole.start()]);
        // No replacement for an empty match right after the previous match, as in Go.
        if whole.end() > last_end || whole.start() == 0 {
            expand(&mut out, to, &caps, &names);
        }
        if out.len() > MAX_VALUE_BYTES {
            return Err(err(format!(
                "error calling regexReplaceAll: the result would be larger than {} KiB",
                MAX_VALUE_BYTES >> 10
            )));
        }
        last_end = whole.end();
        // Advance past the match, and at least one character.
        let width = s[search..].chars().next().map_or(1, char::len_utf8);
        search = if search + width > whole.end() {
            search + width
        } else {
            whole.end()
        };
    }
    out.push_str(&s[last_end.min(s.len())..]);
    charge(budget, "regexReplaceAll", out.len())?;
    Ok(Value::String(Arc::from(out)))
}

/// Go's `Regexp.expand` for a string template.
fn expand(
    out: &mut String,
    template: &str,
    caps: &regex_lite::Captures<'_>,
    names: &[Option<&str>],
) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = extract_name(rest) else {
            // Malformed: the `$` is kept as text.
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => names
                .iter()
                .position(|n| *n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
}

/// The name after a `$`: `{name}` or the longest run of letters, digits and `_`.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|&c| c.is_alphabetic() || c.is_numeric() || c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let rest = &body[len..];
    if braced {
        let rest = rest.strip_prefix('}')?;
        return Some((name, rest));
    }
    Some((name, rest))
}

/// A group number: ASCII digits without a leading zero, below 10^8 (Go's limits).
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse::<usize>().ok().filter(|&n| n < 100_000_000)
}

/// `loop N` is `0..N`; `loop A B` is `A..B`, counting down when B < A. Arguments are integers
/// or strings holding one.
fn loop_fn(args: &[Value]) -> gotmpl::Result<Value> {
    let (start, stop) = match args {
        [stop] => (0, loop_int(stop)?),
        [start, stop] => (loop_int(start)?, loop_int(stop)?),
        _ => {
            return Err(err(format!(
                "loop: wrong number of arguments, expected 1 or 2, but got {}",
                args.len()
            )));
        }
    };
    let len = stop.abs_diff(start);
    if len > MAX_LOOP_LEN as u64 {
        return Err(err(format!(
            "loop: {len} values are more than the {MAX_LOOP_LEN} a loop may make"
        )));
    }
    let values: Vec<Value> = if start <= stop {
        (start..stop).map(Value::Int).collect()
    } else {
        (stop + 1..=start).rev().map(Value::Int).collect()
    };
    Ok(Value::List(Arc::from(values)))
}

fn loop_int(value: &Value) -> gotmpl::Result<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::Uint(n) => i64::try_from(*n).map_err(|_| err(format!("loop: {n} is out of range"))),
        Value::String(s) => s
            .parse::<i64>()
            .map_err(|_| err(format!("loop: strconv.Atoi: parsing {s:?}: invalid syntax"))),
        other => Err(err(format!(
            "loop: {other} is a {}, not an integer",
            go_type_name(other)
        ))),
    }
}

/// `index`: Go's builtin, where a missing key of the data map (a `map[string]string`) is `""`.
fn index_fn(args: &[Value]) -> gotmpl::Result<Value> {
    let Some((first, indices)) = args.split_first() else {
        return Err(arg_count("index", 1, 0));
    };
    let mut value = first.clone();
    for index in indices {
        value = match (&value, index) {
            (Value::Map(map), Value::String(key)) => map
                .get(key.as_ref())
                .cloned()
                .unwrap_or_else(|| Value::String(Arc::from(""))),
            (Value::Nil, _) => return Err(err("index of untyped nil")),
            _ => value.index(index)?,
        };
    }
    Ok(value)
}

/// Runs one of the standard string-building functions after checking how big its result can
/// get: each function grows its input by a bounded factor, and printf by the widths and
/// precisions its verbs ask for.
fn bounded_builtin(budget: &AtomicUsize, name: &str, args: &[Value]) -> gotmpl::Result<Value> {
    let sizes: Vec<usize> = args.iter().map(display_size).collect();
    let total: usize = sizes.iter().fold(0, |a, &b| a.saturating_add(b));
    let estimate = match name {
        "printf" => {
            let format = args.first().and_then(|f| f.as_str()).unwrap_or("");
            let largest = sizes.iter().copied().max().unwrap_or(0);
            printf_estimate(format, largest).saturating_add(total)
        }
        // Escaping turns one byte into at most six (`\u003C`, `&#34;`, `%XX`).
        "html" | "js" | "urlquery" => total.saturating_mul(6).saturating_add(args.len()),
        _ => total.saturating_add(args.len()),
    };
    charge(budget, name, estimate)?;
    let mut source = format!("{{{{{name}");
    let mut data = BTreeMap::new();
    for (i, arg) in args.iter().enumerate() {
        source.push_str(&format!(" .A{i}"));
        data.insert(Arc::from(format!("A{i}")), arg.clone());
    }
    source.push_str("}}");
    let helper = Template::new("").parse(&source)?;
    let text = helper.execute_to_string(&Value::Map(Arc::new(data)))?;
    Ok(Value::String(Arc::from(text)))
}

/// How long a value printed with `%v` can be, counting four bytes for each byte of a string
/// (`%q` and `% x` are the widest verbs).
fn display_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len().saturating_mul(4),
        Value::List(items) => items
            .iter()
            .map(|v| display_size(v).saturating_add(1))
            .fold(2, usize::saturating_add),
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| display_size(v).saturating_add(k.len() * 4 + 2))
            .fold(5, usize::saturating_add),
        _ => 64,
    }
}

/// The format's own length, plus for each verb its width and precision (which gotmpl clamps to
/// 65535) and room for the largest argument, since `%[1]s` may print one argument many times.
fn printf_estimate(format: &str, largest_arg: usize) -> usize {
    let mut estimate = format.len();
    let bytes = format.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        let mut pad = 0usize;
        let mut number = 0usize;
        while i < bytes.len() && !bytes[i].is_ascii_alphabetic() && bytes[i] != b'%' {
            match bytes[i] {
                d @ b'0'..=b'9' => number = (number * 10 + usize::from(d - b'0')).min(65_535),
                b'*' => number = 65_535,
                _ => {
                    pad = pad.saturating_add(number);
                    number = 0;
                }
            }
            i += 1;
        }
        pad = pad.saturating_add(number);
        i += 1;
        estimate = estimate
            .saturating_add(pad)
            .saturating_add(largest_arg)
            .saturating_add(32);
    }
    estimate
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest representation,
/// in exponent form below 1e-4 and from 1e6 up (`1e+06`).
pub fn go_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // `{:e}` gives the shortest digits that round-trip, as `d.ddde<exp>`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn r(text: &str) -> String {
        render_with(text, &[])
    }

    fn render_with(text: &str, pairs: &[(&str, &str)]) -> String {
        match render(text, &env(pairs)) {
            Ok(s) => s,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn fails(text: &str) -> String {
        match render(text, &env(&[("N", "3"), ("X", "x")])) {
            Ok(s) => panic!("{text:?} rendered {s:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn substitutes_environment() {
        assert_eq!(
            render_with("Hello, {{.NAME}}!", &[("NAME", "pilot")]),
            "Hello, pilot!"
        );
        assert_eq!(
            render_with("{{ .A }}-{{ .B }}", &[("A", "1"), ("B", "2")]),
            "1-2"
        );
    }

    #[test]
    fn values_with_equals_signs_are_kept_whole() {
        assert_eq!(render_with("{{ .FOO }}", &[("FOO", "a=b=c")]), "a=b=c");
        assert_eq!(render_with("{{ env \"FOO\" }}", &[("FOO", "a=b")]), "a=b");
    }

    #[test]
    fn missing_keys_are_empty_strings_like_a_go_string_map() {
        assert_eq!(r("[{{ .MISSING }}]"), "[]");
        assert_eq!(r("{{ if .MISSING }}yes{{ else }}no{{ end }}"), "no");
        assert_eq!(r("{{ .MISSING | default \"x\" }}"), "x");
        assert_eq!(r("{{ default \"x\" .MISSING }}"), "x");
        assert_eq!(r("{{ $.MISSING }}|{{ $m := . }}{{ $m.ALSO }}"), "|");
        assert_eq!(r("{{ with .MISSING }}set{{ else }}unset{{ end }}"), "unset");
        assert_eq!(r("{{ index . \"MISSING\" }}|{{ len .MISSING }}"), "|0");
        assert_eq!(r("{{ printf \"%q\" .MISSING }}"), "\"\"");
        assert_eq!(r("{{ eq .MISSING \"\" }}"), "true");
        assert_eq!(
            render_with("{{ range $i := loop 2 }}{{ $.V }}{{ end }}", &[]),
            ""
        );
        // A field of a string is an error, present or not, as in Go.
        assert!(fails("{{ .X.Y }}").contains("can't evaluate field Y"));
        assert!(fails("{{ .MISSING.Y }}").contains("can't evaluate field Y"));
    }

    #[test]
    fn default_function() {
        assert_eq!(render_with("{{ .X | default \"d\" }}", &[("X", "v")]), "v");
        assert_eq!(render_with("{{ .X | default \"d\" }}", &[("X", "")]), "d");
        assert_eq!(r("{{ .X | default 10 }}"), "10");
        assert_eq!(r("{{ .X | default 10.1 }}"), "10.1");
        assert_eq!(r("{{ .X | default 1e21 }}"), "1e+21");
        assert_eq!(r("{{ .X | default true }}"), "true");
        // Only a non-empty string counts as set.
        assert_eq!(r("{{ 5 | default \"d\" }}"), "d");
        assert!(
            fails("{{ default \"d\" }}").contains("wrong number of args for default: want 2 got 1")
        );
    }

    #[test]
    fn split_and_join() {
        let text = "{{ .LIST | split \",\" | join \"|\" }}";
        assert_eq!(render_with(text, &[("LIST", "a,b, c")]), "a|b| c");
        assert_eq!(render_with(text, &[("LIST", "  a,b  ")]), "a|b");
        assert_eq!(render_with(text, &[("LIST", "   ")]), "");
        assert_eq!(r(text), "");
        assert_eq!(r("{{ len (split \",\" \"\") }}"), "0");
        assert_eq!(r("{{ \"abc\" | split \"\" | join \"-\" }}"), "a-b-c");
        assert_eq!(
            r("{{ range split \":\" \"x:y\" }}[{{ . }}]{{ end }}"),
            "[x][y]"
        );
        assert_eq!(r("{{ join \",\" nil }}"), "");
        assert!(fails("{{ join \",\" (loop 3) }}").contains("expected []string"));
        assert!(fails("{{ split \",\" 5 }}").contains("expected string; got int"));
    }

    #[test]
    fn replace_all_and_regex_replace_all() {
        assert_eq!(r("{{ replaceAll \"a\" \"b\" \"banana\" }}"), "bbnbnb");
        assert_eq!(r("{{ \"banana\" | replaceAll \"an\" \"AN\" }}"), "bANANa");
        assert_eq!(r("{{ replaceAll \"\" \"-\" \"abc\" }}"), "-a-b-c-");
        assert_eq!(
            r("{{ regexReplaceAll \"(a)(n)\" \"$2$1\" \"banana\" }}"),
            "bnanaa"
        );
        assert_eq!(
            r("{{ \"host-01.example\" | regexReplaceAll \"-(?P<n>[0-9]+)\" \"_${n}_\" }}"),
            "host_01_.example"
        );
        // `$1x` names group "1x", which does not exist: it expands to nothing, as in Go.
        assert_eq!(r("{{ regexReplaceAll \"(a)\" \"$1x\" \"a\" }}"), "");
        assert_eq!(r("{{ regexReplaceAll \"(a)\" \"${1}x\" \"a\" }}"), "ax");
        assert_eq!(r("{{ regexReplaceAll \"a\" \"$$\" \"a\" }}"), "$");
        assert_eq!(r("{{ regexReplaceAll \"a\" \"$\" \"a\" }}"), "$");
        assert_eq!(r("{{ regexReplaceAll \"a*\" \"X\" \"baaac\" }}"), "XbXcX");
        assert_eq!(r("{{ regexReplaceAll \"\" \"-\" \"ab\" }}"), "-a-b-");
        assert!(fails("{{ regexReplaceAll \"(\" \"x\" \"y\" }}").contains("regexReplaceAll"));
    }

    #[test]
    fn loop_function() {
        assert_eq!(r("{{ range loop 3 }}{{ . }}{{ end }}"), "012");
        assert_eq!(r("{{ range loop 2 5 }}{{ . }}{{ end }}"), "234");
        assert_eq!(r("{{ range loop 5 1 }}{{ . }}{{ end }}"), "5432");
        assert_eq!(r("{{ range loop 0 }}x{{ end }}"), "");
        assert_eq!(
            render_with("{{ range loop .N }}{{ . }}{{ end }}", &[("N", "4")]),
            "0123"
        );
        assert_eq!(
            render_with("{{ range loop \"1\" .N }}{{ . }}{{ end }}", &[("N", "3")]),
            "12"
        );
        assert!(
            fails("{{ loop 1 2 3 }}")
                .contains("loop: wrong number of arguments, expected 1 or 2, but got 3")
        );
        assert!(fails("{{ loop }}").contains("but got 0"));
        assert!(fails("{{ loop 1.5 }}").contains("not an integer"));
        assert!(fails("{{ loop \"x\" }}").contains("invalid syntax"));
        assert!(fails("{{ loop 100000000 }}").contains("more than"));
    }

    #[test]
    fn loop_with_env_generates_jobs() {
        let text = r#"{ jobs: [ {{ range $i := loop (env "COUNT") }}{{ if $i }}, {{ end }}{ name: "worker-{{ $i }}", exec: "work {{ $i }}" }{{ end }} ] }"#;
        assert_eq!(
            render_with(text, &[("COUNT", "3")]),
            r#"{ jobs: [ { name: "worker-0", exec: "work 0" }, { name: "worker-1", exec: "work 1" }, { name: "worker-2", exec: "work 2" } ] }"#
        );
    }

    #[test]
    fn standard_actions_and_functions() {
        assert_eq!(
            render_with(
                "{{ if eq .A \"x\" }}yes{{ else }}no{{ end }}",
                &[("A", "x")]
            ),
            "yes"
        );
        assert_eq!(r("{{ printf \"%s-%d\" \"a\" 3 }}"), "a-3");
        assert_eq!(r("{{ \"a\" | printf \"%s!\" }}"), "a!");
        assert_eq!(r("{{ print 1 2 }}|{{ println \"x\" }}"), "1 2|x\n");
        assert_eq!(
            r("{{ html \"<a>\" }} {{ urlquery \"a b\" }} {{ js \"'\" }}"),
            "&lt;a&gt; a+b \\'"
        );
        assert_eq!(r("{{ $x := \"v\" }}{{ $x }}"), "v");
        assert_eq!(r("{{- \"a\" -}}  \n {{ \"b\" }}"), "ab");
        assert_eq!(
            r("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" \"x\" }}"),
            "[x]"
        );
        assert_eq!(
            r("{{ len \"abc\" }} {{ index (split \",\" \"a,b\") 1 }}"),
            "3 b"
        );
        assert_eq!(r("{{ and 1 0 }} {{ or 0 2 }} {{ not true }}"), "0 2 false");
        assert_eq!(r("{{/* comment */}}x"), "x");
    }

    #[test]
    fn templates_that_fail() {
        assert!(fails("{{ .X").contains("unclosed action"));
        assert_eq!(
            fails("{{ if }}{{ end }}"),
            "parse error at line:col [1:9]: missing value for if"
        );
        assert!(
            fails("{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}")
                .contains("recursion")
        );
    }

    #[test]
    fn growth_is_bounded() {
        let doubling = "{{ $a := \"xxxxxxxx\" }}{{ range loop 64 }}{{ $a = printf \"%s%s\" $a $a }}{{ end }}{{ len $a }}";
        assert!(
            fails(doubling).contains("larger than"),
            "{}",
            fails(doubling)
        );
        let doubling =
            "{{ $a := \"x\" }}{{ range loop 64 }}{{ $a = replaceAll \"\" $a $a }}{{ end }}";
        assert!(fails(doubling).contains("larger than"));
        assert!(fails("{{ printf \"%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s%65535s\" }}")
            .contains("larger than"));
        let wide = "{{ range loop 1000000 }}{{ range loop 1000000 }}{{ end }}{{ end }}";
        assert!(fails(wide).contains("budget"));
        let big = "{{ range loop 1000000 }}{{ printf \"%1000s\" \"\" }}{{ end }}";
        let e = fails(big);
        assert!(
            e.contains("larger than 16 MiB") || e.contains("too much work"),
            "{e}"
        );
    }

    /// Parse errors come before anything runs, with the line and column of the file, where an
    /// unclosed block or a stray `{{ end }}` used to cut the rest of the file off silently.
    #[test]
    fn parse_errors_have_their_line() {
        assert_eq!(
            fails("a {{ if .HOME }} b\n"),
            "parse error at line:col [2:1]: unexpected EOF: {{if}} at line 1 has no {{end}}"
        );
        assert_eq!(
            fails("a\n{{ end }}\nb"),
            "parse error at line:col [2:4]: unexpected {{end}}"
        );
        assert_eq!(
            fails("a\n\n{{ .X | defalt \"x\" }}"),
            "parse error at line:col [3:9]: function \"defalt\" not defined"
        );
        assert_eq!(
            fails("{{ .X\n\n"),
            "parse error at line:col [3:1]: unclosed action started at line 1"
        );
        // A failing function call is no parse error: it needs the values.
        assert!(!fails("{{ loop \"x\" }}").starts_with("parse error"));
    }

    fn with_data(text: &str) -> Result<String, TemplateError> {
        super::render_with(text, &BTreeMap::new(), data_functions())
    }

    #[test]
    fn parse_json_to_json_and_base64_decode() {
        let ok = |text: &str| with_data(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            ok(
                r#"{{ with parseJSON "{\"port\": 80, \"hosts\": [\"a\", \"b\"], \"ratio\": 0.5}" }}{{ .port }} {{ index .hosts 1 }} {{ .ratio }}{{ end }}"#
            ),
            "80 b 0.5"
        );
        assert_eq!(ok(r#"{{ len (parseJSON "") }}"#), "0");
        assert_eq!(
            ok(r#"{{ parseJSON "{\"b\": [1, null, true], \"a\": \"x\"}" | toJSON }}"#),
            r#"{"a":"x","b":[1,null,true]}"#
        );
        assert_eq!(ok(r#"{{ toJSON "<\n>" }}"#), r#""<\n>""#);
        assert_eq!(ok(r#"{{ base64Decode "aGVsbG8=" }}"#), "hello");
        // Bytes that are not UTF-8 come out replaced, never as a failure.
        assert_eq!(ok(r#"{{ base64Decode "/w==" }}"#), "\u{fffd}");
        for (text, why) in [
            (
                r#"{{ parseJSON "{" }}"#,
                "error calling parseJSON: EOF while parsing",
            ),
            (
                r#"{{ base64Decode "!" }}"#,
                "illegal base64 data at input byte 0",
            ),
            (
                r#"{{ toJSON 1 2 }}"#,
                "wrong number of args for toJSON: want 1 got 2",
            ),
        ] {
            let e = with_data(text).unwrap_err().0;
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float_v(10.0), "10");
        assert_eq!(go_float_v(10.1), "10.1");
        assert_eq!(go_float_v(1e21), "1e+21");
        assert_eq!(go_float_v(123456789.0), "1.23456789e+08");
        assert_eq!(go_float_v(100000.0), "100000");
        assert_eq!(go_float_v(1000000.0), "1e+06");
        assert_eq!(go_float_v(0.0001), "0.0001");
        assert_eq!(go_float_v(0.00001), "1e-05");
        assert_eq!(go_float_v(-2.5), "-2.5");
        assert_eq!(go_float_v(f64::INFINITY), "+Inf");
    }
}
