//! `consul`: the agent's address, as a string or as an object with a scheme, a token and TLS
//! files.

use super::object::{Obj, wrong_type};
use super::weak::{non_empty_string, weak_bool, weak_string};
use crate::config::json5::{Kind, Value};
use crate::config::model::Scheme;
use crate::config::problems::{Reporter, quote_short};

const KEYS: &[&str] = &["address", "scheme", "token", "tls"];
const TLS_KEYS: &[&str] = &[
    "cafile",
    "capath",
    "clientcert",
    "clientkey",
    "servername",
    "verify",
];

/// `consul`, as written.
#[derive(Debug)]
pub struct RawConsul {
    /// `consul: {...}` rather than `consul: "host:port"` (`CONSUL_HTTP_SSL` applies only then).
    pub object_form: bool,
    /// Empty when not given (or not a string).
    pub address: String,
    /// Where the address is (or would be) written, for its problems.
    pub address_line: u32,
    pub scheme: Option<Scheme>,
    /// Never shown, not even in a message about its type.
    pub token: Option<String>,
    pub tls: RawTls,
}

/// `consul.tls`; a path written as `""` is not set.
#[derive(Debug, Default)]
pub struct RawTls {
    pub ca_file: Option<String>,
    pub ca_path: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub server_name: Option<String>,
    pub verify: Option<bool>,
}

/// `consul` is required: `None` when it is absent (reported at the top object's `line`) or not
/// a string or an object.
pub fn decode(value: Option<&Value>, line: u32, report: &mut Reporter<'_>) -> Option<RawConsul> {
    let Some(value) = value else {
        report.error(
            "consul is required: the address of the Consul agent, such as consul: \"localhost:8500\"",
            line,
        );
        return None;
    };
    match &value.kind {
        Kind::String(address) => Some(RawConsul {
            object_form: false,
            address: address.clone(),
            address_line: value.pos.line,
            scheme: None,
            token: None,
            tls: RawTls::default(),
        }),
        Kind::Object(_) => Obj::new(value, "consul").map(|obj| object(obj, report)),
        _ => {
            wrong_type(report, "consul", "a string or an object", value);
            None
        }
    }
}

fn object(mut obj: Obj<'_>, report: &mut Reporter<'_>) -> RawConsul {
    let address = obj.get("address");
    let consul = RawConsul {
        object_form: true,
        address: address
            .and_then(|v| obj.decode("address", v, |v| weak_string(v).map(Some), report))
            .map(|a| a.value)
            .unwrap_or_default(),
        address_line: address.map_or(obj.line, |v| v.pos.line),
        scheme: obj.field_if_set("scheme", scheme, report).map(|s| s.value),
        token: obj.field_if_set("token", token, report).map(|t| t.value),
        tls: obj
            .get("tls")
            .and_then(|v| Obj::section(v, "consul.tls", report))
            .map(|tls| tls_section(tls, report))
            .unwrap_or_default(),
    };
    obj.finish(report, KEYS);
    consul
}

fn scheme(value: &Value) -> Result<Option<Scheme>, String> {
    let scheme = weak_string(value)?;
    match scheme.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "http" => Ok(Some(Scheme::Http)),
        "https" => Ok(Some(Scheme::Https)),
        _ => Err(format!(
            "must be http or https, got {}",
            quote_short(&scheme)
        )),
    }
}

/// A string only (no weak typing), and its value is never shown, even when of the wrong type.
fn token(value: &Value) -> Result<Option<String>, String> {
    match &value.kind {
        Kind::String(s) => Ok(Some(s.clone()).filter(|t| !t.is_empty())),
        other => Err(format!("must be a string, got a {}", other.type_name())),
    }
}

fn tls_section(mut obj: Obj<'_>, report: &mut Reporter<'_>) -> RawTls {
    let mut path = |key: &str| obj.field_if_set(key, non_empty_string, report);
    let tls = RawTls {
        ca_file: path("cafile").map(|s| s.value),
        ca_path: path("capath").map(|s| s.value),
        client_cert: path("clientcert").map(|s| s.value),
        client_key: path("clientkey").map(|s| s.value),
        server_name: path("servername").map(|s| s.value),
        verify: obj.field("verify", weak_bool, report).map(|s| s.value),
    };
    obj.finish(report, TLS_KEYS);
    tls
}
