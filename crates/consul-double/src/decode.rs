//! Request bodies decoded the way Consul's Go code decodes them, because clients see the
//! differences: keys match case-insensitively, snake_case aliases are accepted, unknown fields
//! are rejected from 1.7 on and ignored before, durations may be strings or nanosecond numbers,
//! and every failure has Go's exact wording after `Request decode failed: `.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::config::ConsulVersion;
use crate::duration::parse_go_duration;
use crate::state::definition::{CheckDefinition, ServiceDefinition};
use crate::state::types::{ServiceAddress, Weights};

/// A decode failure; `Display` is the text Consul puts after `Request decode failed: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

const SERVICE_DEF_GO_TYPE: &str = "struct { EnableTagOverrideSnake bool \"json:\\\"enable_tag_override\\\"\"; TaggedAddressesSnake map[string]structs.ServiceAddress \"json:\\\"tagged_addresses\\\"\"; *structs.Alias }";

/// Parses the first JSON value of a body like Go's `json.Decoder.Decode` (trailing bytes are
/// ignored), with Go's syntax error texts.
pub fn parse_json_body(body: &[u8]) -> Result<Value, DecodeError> {
    let end = GoScanner { s: body, i: 0 }
        .scan_top()
        .map_err(DecodeError)?;
    serde_json::from_slice(&body[..end]).map_err(|e| DecodeError(e.to_string()))
}

struct GoScanner<'a> {
    s: &'a [u8],
    i: usize,
}

fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\t' => "'\\t'".to_string(),
        b'\r' => "'\\r'".to_string(),
        c if !(0x20..0x7f).contains(&c) => format!("'\\x{c:02x}'"),
        c => format!("'{}'", c as char),
    }
}

impl GoScanner<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, String> {
        self.s
            .get(self.i)
            .copied()
            .ok_or_else(|| "unexpected EOF".to_string())
    }

    fn scan_top(mut self) -> Result<usize, String> {
        self.ws();
        if self.i >= self.s.len() {
            return Err("EOF".into());
        }
        self.value()?;
        Ok(self.i)
    }

    fn value(&mut self) -> Result<(), String> {
        self.ws();
        let c = self.peek()?;
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            c => Err(format!(
                "invalid character {} looking for beginning of value",
                quote_char(c)
            )),
        }
    }

    fn object(&mut self) -> Result<(), String> {
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let c = self.peek()?;
            if c != b'"' {
                return Err(format!(
                    "invalid character {} looking for beginning of object key string",
                    quote_char(c)
                ));
            }
            self.string()?;
            self.ws();
            let c = self.peek()?;
            if c != b':' {
                return Err(format!(
                    "invalid character {} after object key",
                    quote_char(c)
                ));
            }
            self.i += 1;
            self.value()?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                c => {
                    return Err(format!(
                        "invalid character {} after object key:value pair",
                        quote_char(c)
                    ));
                }
            }
        }
    }

    fn array(&mut self) -> Result<(), String> {
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                c => {
                    return Err(format!(
                        "invalid character {} after array element",
                        quote_char(c)
                    ));
                }
            }
        }
    }

    fn string(&mut self) -> Result<(), String> {
        self.i += 1;
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                let h = self.peek()?;
                                if !h.is_ascii_hexdigit() {
                                    return Err(format!(
                                        "invalid character {} in \\u hexadecimal character escape",
                                        quote_char(h)
                                    ));
                                }
                                self.i += 1;
                            }
                        }
                        e => {
                            return Err(format!(
                                "invalid character {} in string escape code",
                                quote_char(e)
                            ));
                        }
                    }
                }
                c if c < 0x20 => {
                    return Err(format!(
                        "invalid character {} in string literal",
                        quote_char(c)
                    ));
                }
                _ => {}
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        for (n, expected) in word.iter().enumerate() {
            let c = self.peek()?;
            if c != *expected {
                let name = std::str::from_utf8(word).unwrap_or("");
                return Err(format!(
                    "invalid character {} in literal {name} (expecting {})",
                    quote_char(c),
                    quote_char(word[n])
                ));
            }
            self.i += 1;
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), String> {
        let digit = |s: &Self| s.s.get(s.i).is_some_and(|c| c.is_ascii_digit());
        if self.s[self.i] == b'-' {
            self.i += 1;
            let c = self.peek()?;
            if !c.is_ascii_digit() {
                return Err(format!(
                    "invalid character {} in numeric literal",
                    quote_char(c)
                ));
            }
        }
        if self.peek()? == b'0' {
            self.i += 1;
        } else {
            while digit(self) {
                self.i += 1;
            }
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            let c = self.peek()?;
            if !c.is_ascii_digit() {
                return Err(format!(
                    "invalid character {} after decimal point in numeric literal",
                    quote_char(c)
                ));
            }
            while digit(self) {
                self.i += 1;
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let c = self.peek()?;
            if !c.is_ascii_digit() {
                return Err(format!(
                    "invalid character {} in exponent of numeric literal",
                    quote_char(c)
                ));
            }
            while digit(self) {
                self.i += 1;
            }
        }
        Ok(())
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// mapstructure's name for a decoded JSON value (1.0.8 errors).
fn go_dynamic_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Decodes into Go structs with one emulated Consul version's rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoder {
    version: ConsulVersion,
}

/// Fields of one object, matched to their Go field names.
struct Fields<'v> {
    ctx: &'static str,
    map: HashMap<&'static str, &'v Value>,
    legacy: bool,
}

impl<'v> Fields<'v> {
    fn type_error(&self, v: &Value, field: &str, go_type: &str) -> DecodeError {
        if self.legacy {
            DecodeError(format!(
                "1 error(s) decoding:\n\n* '{field}' expected type '{go_type}', got unconvertible type '{}'",
                go_dynamic_kind(v)
            ))
        } else {
            DecodeError(format!(
                "json: cannot unmarshal {} into Go struct field {}.{field} of type {go_type}",
                json_kind(v),
                self.ctx
            ))
        }
    }

    fn get(&self, field: &str) -> Option<&'v Value> {
        self.map.get(field).copied().filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<String, DecodeError> {
        match self.get(field) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.type_error(v, field, "string")),
        }
    }

    fn boolean(&self, field: &str) -> Result<bool, DecodeError> {
        match self.get(field) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.type_error(v, field, "bool")),
        }
    }

    fn int(&self, field: &str) -> Result<i64, DecodeError> {
        match self.get(field) {
            None => Ok(0),
            Some(v @ Value::Number(n)) => n.as_i64().ok_or_else(|| {
                if self.legacy {
                    self.type_error(v, field, "int")
                } else {
                    DecodeError(format!("json: cannot unmarshal number {n} into Go struct field {}.{field} of type int", self.ctx))
                }
            }),
            Some(v) => Err(self.type_error(v, field, "int")),
        }
    }

    fn strings(&self, field: &str) -> Result<Vec<String>, DecodeError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    v => Err(self.type_error(v, field, "string")),
                })
                .collect(),
            Some(v) => Err(self.type_error(v, field, "[]string")),
        }
    }

    fn string_map(&self, field: &str) -> Result<Option<BTreeMap<String, String>>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Null => Ok((k.clone(), String::new())),
                    v => Err(self.type_error(v, field, "string")),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map(Some),
            Some(v) => Err(self.type_error(v, field, "map[string]string")),
        }
    }

    /// A duration field: a Go duration string, or a number of nanoseconds.
    fn duration(&self, field: &str) -> Result<i64, DecodeError> {
        match self.get(field) {
            None => Ok(0),
            Some(Value::Number(n)) => Ok(n.as_f64().map_or(0, |f| f as i64)),
            Some(Value::String(s)) => parse_go_duration(s).map_err(|e| {
                if self.legacy {
                    DecodeError(format!("invalid \"{field}\": {e}"))
                } else {
                    DecodeError(e.to_string())
                }
            }),
            Some(v) => Err(self.type_error(v, field, "time.Duration")),
        }
    }
}

impl Decoder {
    pub(crate) fn new(version: ConsulVersion) -> Self {
        Decoder { version }
    }

    fn legacy(&self) -> bool {
        !self.version.strict_json()
    }

    /// The body must be an object (or null, which decodes to nothing).
    fn top_object<'v>(
        &self,
        v: &'v Value,
        go_type: &str,
    ) -> Result<Option<&'v Map<String, Value>>, DecodeError> {
        match v {
            Value::Object(m) => Ok(Some(m)),
            Value::Null => Ok(None),
            other if self.legacy() => Err(DecodeError(format!(
                "'' expected a map, got '{}'",
                go_dynamic_kind(other)
            ))),
            other => Err(DecodeError(format!(
                "json: cannot unmarshal {} into Go value of type {go_type}",
                json_kind(other)
            ))),
        }
    }

    /// Matches keys to fields: exact name first, then case-insensitively; unknown keys are an
    /// error on strict versions and ignored on old ones.
    fn fields<'v>(
        &self,
        obj: &'v Map<String, Value>,
        ctx: &'static str,
        names: &[&'static str],
    ) -> Result<Fields<'v>, DecodeError> {
        let mut map = HashMap::new();
        for (key, value) in obj {
            let field = names
                .iter()
                .find(|n| **n == key.as_str())
                .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(key)));
            match field {
                Some(f) => {
                    map.insert(*f, value);
                }
                None if self.version.strict_json() => {
                    return Err(DecodeError(format!("json: unknown field \"{key}\"")));
                }
                None => {}
            }
        }
        Ok(Fields {
            ctx,
            map,
            legacy: self.legacy(),
        })
    }

    fn nested_object<'v>(
        &self,
        f: &Fields<'v>,
        field: &str,
        go_type: &str,
    ) -> Result<Option<&'v Map<String, Value>>, DecodeError> {
        match f.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(f.type_error(v, field, go_type)),
        }
    }

    /// `PUT /v1/agent/service/register`.
    pub(crate) fn service_definition(
        &self,
        body: &Value,
    ) -> Result<ServiceDefinition, DecodeError> {
        let Some(obj) = self.top_object(body, SERVICE_DEF_GO_TYPE)? else {
            return Ok(ServiceDefinition::default());
        };
        let mut names = vec![
            "Kind",
            "ID",
            "Name",
            "Tags",
            "Address",
            "Meta",
            "Port",
            "Check",
            "Checks",
            "Token",
            "EnableTagOverride",
            "enable_tag_override",
        ];
        if self.version.modern_shapes() {
            names.extend([
                "TaggedAddresses",
                "tagged_addresses",
                "Weights",
                "Proxy",
                "Connect",
            ]);
        } else {
            names.extend(["ProxyDestination"]);
        }
        let f = self.fields(obj, "ServiceDefinition", &names)?;
        let mut def = ServiceDefinition {
            id: f.string("ID")?,
            name: f.string("Name")?,
            tags: f.strings("Tags")?,
            address: f.string("Address")?,
            meta: f.string_map("Meta")?,
            port: f.int("Port")?,
            enable_tag_override: f.boolean("EnableTagOverride")?
                || f.boolean("enable_tag_override")?,
            ..Default::default()
        };
        f.string("Kind")?;
        f.string("Token")?;
        for field in ["TaggedAddresses", "tagged_addresses"] {
            if let Some(m) = self.nested_object(&f, field, "map[string]structs.ServiceAddress")? {
                for (k, v) in m {
                    let Value::Object(inner) = v else { continue };
                    let af = self.fields(inner, "ServiceAddress", &["Address", "Port"])?;
                    def.tagged_addresses.insert(
                        k.clone(),
                        ServiceAddress {
                            address: af.string("Address")?,
                            port: af.int("Port")?,
                        },
                    );
                }
            }
        }
        if let Some(w) = self.nested_object(&f, "Weights", "structs.Weights")? {
            let wf = self.fields(w, "Weights", &["Passing", "Warning"])?;
            def.weights = Some(Weights {
                passing: wf.int("Passing")?,
                warning: wf.int("Warning")?,
            });
        }
        if let Some(c) = self.nested_object(&f, "Check", "structs.CheckType")? {
            let check = self.check_type(c)?;
            if !check.is_empty() {
                def.check = Some(check);
            }
        }
        match f.get("Checks") {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::Object(c) => def.checks.push(self.check_type(c)?),
                        Value::Null => def.checks.push(CheckDefinition::default()),
                        v => return Err(f.type_error(v, "Checks", "structs.CheckType")),
                    }
                }
            }
            Some(v) => return Err(f.type_error(v, "Checks", "structs.CheckTypes")),
        }
        Ok(def)
    }

    const CHECK_FIELDS: &'static [&'static str] = &[
        "Name",
        "Status",
        "Notes",
        "ScriptArgs",
        "HTTP",
        "Header",
        "Method",
        "Body",
        "TCP",
        "Interval",
        "AliasNode",
        "AliasService",
        "DockerContainerID",
        "Shell",
        "GRPC",
        "GRPCUseTLS",
        "TLSSkipVerify",
        "Timeout",
        "TTL",
        "SuccessBeforePassing",
        "FailuresBeforeCritical",
        "DeregisterCriticalServiceAfter",
        "OutputMaxSize",
        "args",
        "script_args",
        "deregister_critical_service_after",
        "docker_container_id",
        "tls_skip_verify",
        "grpc_use_tls",
    ];

    fn check_fields(&self, f: &Fields<'_>, def: &mut CheckDefinition) -> Result<(), DecodeError> {
        def.name = f.string("Name")?;
        def.status = f.string("Status")?;
        def.notes = f.string("Notes")?;
        def.script_args = f.strings("ScriptArgs")?;
        for alias in ["args", "script_args"] {
            let v = f.strings(alias)?;
            if !v.is_empty() {
                def.script_args = v;
            }
        }
        def.http = f.string("HTTP")?;
        if let Some(h) = f.get("Header") {
            let Value::Object(m) = h else {
                return Err(f.type_error(h, "Header", "map[string][]string"));
            };
            for (k, v) in m {
                let values = match v {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                def.header.insert(k.clone(), values);
            }
        }
        def.method = f.string("Method")?;
        def.body = f.string("Body")?;
        def.tcp = f.string("TCP")?;
        def.interval = f.duration("Interval")?;
        def.alias_node = f.string("AliasNode")?;
        def.alias_service = f.string("AliasService")?;
        def.docker_container_id = f.string("DockerContainerID")?;
        let snake = f.string("docker_container_id")?;
        if !snake.is_empty() {
            def.docker_container_id = snake;
        }
        def.shell = f.string("Shell")?;
        def.grpc = f.string("GRPC")?;
        def.grpc_use_tls = f.boolean("GRPCUseTLS")? || f.boolean("grpc_use_tls")?;
        def.tls_skip_verify = f.boolean("TLSSkipVerify")? || f.boolean("tls_skip_verify")?;
        def.timeout = f.duration("Timeout")?;
        def.ttl = f.duration("TTL")?;
        def.success_before_passing = f.int("SuccessBeforePassing")?;
        def.failures_before_critical = f.int("FailuresBeforeCritical")?;
        def.deregister_critical_service_after = f.duration("DeregisterCriticalServiceAfter")?;
        let snake = f.duration("deregister_critical_service_after")?;
        if snake != 0 {
            def.deregister_critical_service_after = snake;
        }
        def.output_max_size = f.int("OutputMaxSize")?;
        Ok(())
    }

    fn check_type(&self, obj: &Map<String, Value>) -> Result<CheckDefinition, DecodeError> {
        let mut names = vec!["CheckID"];
        names.extend_from_slice(Self::CHECK_FIELDS);
        let f = self.fields(obj, "CheckType", &names)?;
        let mut def = CheckDefinition {
            check_id: f.string("CheckID")?,
            ..Default::default()
        };
        self.check_fields(&f, &mut def)?;
        Ok(def)
    }

    /// `PUT /v1/agent/check/register`.
    pub(crate) fn check_definition(&self, body: &Value) -> Result<CheckDefinition, DecodeError> {
        let Some(obj) = self.top_object(body, "structs.CheckDefinition")? else {
            return Ok(CheckDefinition::default());
        };
        let mut names = vec!["ID", "ServiceID", "service_id", "Token"];
        names.extend_from_slice(Self::CHECK_FIELDS);
        let f = self.fields(obj, "CheckDefinition", &names)?;
        let mut def = CheckDefinition {
            check_id: f.string("ID")?,
            service_id: f.string("ServiceID")?,
            ..Default::default()
        };
        let snake = f.string("service_id")?;
        if !snake.is_empty() {
            def.service_id = snake;
        }
        f.string("Token")?;
        self.check_fields(&f, &mut def)?;
        Ok(def)
    }

    /// `PUT /v1/agent/check/update/:id`: `(Status, Output)`.
    pub(crate) fn check_update(&self, body: &Value) -> Result<(String, String), DecodeError> {
        let Some(obj) = self.top_object(body, "agent.checkUpdate")? else {
            return Ok((String::new(), String::new()));
        };
        let f = self.fields(obj, "checkUpdate", &["Status", "Output"])?;
        Ok((f.string("Status")?, f.string("Output")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_syntax_errors() {
        assert_eq!(parse_json_body(b"").unwrap_err().0, "EOF");
        assert_eq!(parse_json_body(b"  \n").unwrap_err().0, "EOF");
        assert_eq!(
            parse_json_body(b"{\"Status\": \"passing\",").unwrap_err().0,
            "unexpected EOF"
        );
        assert_eq!(
            parse_json_body(b"{\"a\": x}").unwrap_err().0,
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            parse_json_body(b"{\"a\" 1}").unwrap_err().0,
            "invalid character '1' after object key"
        );
        assert_eq!(
            parse_json_body(b"{\"a\":1 \"b\"").unwrap_err().0,
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            parse_json_body(b"{\"a\":tru}").unwrap_err().0,
            "invalid character '}' in literal true (expecting 'e')"
        );
        assert_eq!(
            parse_json_body(b"{\"a\":1} trailing").unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn keys_match_case_insensitively_and_unknown_fields_depend_on_version() {
        let strict = Decoder::new(ConsulVersion::V1_8_4);
        let def = strict
            .service_definition(&json!({"name": "x", "ID": "y", "check": {"ttl": "10s"}}))
            .unwrap();
        assert_eq!((def.name.as_str(), def.id.as_str()), ("x", "y"));
        assert_eq!(def.check.unwrap().ttl, 10_000_000_000);
        let err = strict
            .service_definition(&json!({"Name": "x", "Service": "x"}))
            .unwrap_err();
        assert_eq!(err.0, "json: unknown field \"Service\"");
        let old = Decoder::new(ConsulVersion::V1_0_8);
        assert!(
            old.service_definition(&json!({"Name": "x", "Service": "x"}))
                .is_ok()
        );
    }

    #[test]
    fn duration_errors_per_version() {
        let body = json!({"Name": "x", "Check": {"TTL": "abc"}});
        assert_eq!(
            Decoder::new(ConsulVersion::V1_8_4)
                .service_definition(&body)
                .unwrap_err()
                .0,
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            Decoder::new(ConsulVersion::V1_0_8)
                .service_definition(&body)
                .unwrap_err()
                .0,
            "invalid \"TTL\": time: invalid duration \"abc\""
        );
    }

    #[test]
    fn zero_check_is_ignored() {
        let def = Decoder::new(ConsulVersion::V1_8_4)
            .service_definition(&json!({"Name": "z", "Check": {"TTL": "0s"}}))
            .unwrap();
        assert!(def.check.is_none());
    }
}
