//! Small HTTP helpers: Go-style query parsing and the response shapes Consul uses (plain-text
//! errors, JSON with index headers, empty 200s).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::Value;

use crate::state::leader::ReadMeta;

pub(crate) type Resp = Response<Full<Bytes>>;

/// Decodes `%XX` escapes (and `+` as space when `plus` is set), like Go's `url` package.
pub(crate) fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A parsed query string: ordered pairs, keys may repeat, `?flag` has an empty value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&') {
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let (Some(k), Some(v)) = (percent_decode(k, true), percent_decode(v, true)) {
                pairs.push((k, v));
            }
        }
        Query { pairs }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// The first value (Go's `Values.Get`).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Go's `Values.Encode`: sorted by key, escaped.
    pub(crate) fn encode(&self) -> String {
        let mut pairs = self.pairs.clone();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A plain-text answer (Consul's error bodies; Go sniffs them as text/plain).
pub(crate) fn text(code: u16, body: impl Into<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status(code);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A bodiless answer without Content-Type (successful agent writes, KV 404s, unknown paths).
pub(crate) fn empty(code: u16) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status(code);
    r
}

/// A JSON answer, indented as a dev agent does.
pub(crate) fn json<T: Serialize>(value: &T) -> Resp {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if value.serialize(&mut ser).is_err() {
        return text(500, "failed to encode response");
    }
    buf.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(buf)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `r` with its JSON body compacted, as a server agent (`json.Marshal`, no trailing newline)
/// answers what a dev agent indents. Other bodies are left as they are.
pub(crate) async fn compact(r: Resp) -> Resp {
    let is_json = r
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if !is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let Ok(indented) = http_body_util::BodyExt::collect(body)
        .await
        .map(|b| b.to_bytes());
    // The body is the double's own valid JSON: whitespace outside strings is layout.
    let mut out = Vec::with_capacity(indented.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in indented.iter() {
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
        } else if b.is_ascii_whitespace() {
            continue;
        } else {
            in_string = b == b'"';
        }
        out.push(b);
    }
    Response::from_parts(parts, Full::new(Bytes::from(out)))
}

pub(crate) fn json_value(value: Value) -> Resp {
    json(&value)
}

fn set(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// The headers of an RPC-backed read: index (never 0), leader, last contact (whole
/// milliseconds) and, for health and catalog reads, the effective consistency.
pub(crate) fn with_index(
    mut r: Resp,
    index: u64,
    meta: ReadMeta,
    consistency: Option<&str>,
) -> Resp {
    set(&mut r, "x-consul-index", &index.max(1).to_string());
    set(
        &mut r,
        "x-consul-knownleader",
        if meta.known_leader { "true" } else { "false" },
    );
    set(
        &mut r,
        "x-consul-lastcontact",
        &meta.last_contact.as_millis().to_string(),
    );
    if let Some(c) = consistency {
        set(&mut r, "x-consul-effective-consistency", c);
    }
    r
}

/// The headers an RPC-backed read carries when its RPC failed: a zero (so 1) index and no
/// known leader.
pub(crate) fn with_error_meta(mut r: Resp) -> Resp {
    set(&mut r, "x-consul-index", "1");
    set(&mut r, "x-consul-knownleader", "false");
    set(&mut r, "x-consul-lastcontact", "0");
    r
}

pub(crate) fn with_header(mut r: Resp, name: &'static str, value: &str) -> Resp {
    set(&mut r, name, value);
    r
}
