//! `consul` with the environment applied, as Consul's Go client applies it: `CONSUL_HTTP_ADDR`
//! when the config names no address, `CONSUL_HTTP_SSL`, the token variables and the TLS ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::model::{Consul, Scheme, Secret, Tls};
use crate::config::problems::{Problems, Reporter, quote_short};
use crate::config::raw::weak::parse_go_bool;
use crate::config::raw::{RawConsul, RawTls};

/// The Consul agent when neither the config nor `CONSUL_HTTP_ADDR` names one.
pub const DEFAULT_CONSUL_ADDRESS: &str = "127.0.0.1:8500";

/// A variable of the environment; an empty one counts as unset.
struct Env<'a>(&'a BTreeMap<String, String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

pub fn build(raw: &RawConsul, env: &BTreeMap<String, String>, problems: &mut Problems) -> Consul {
    let env = Env(env);
    let (scheme, address) = address(raw, &env, &mut problems.at(""));
    Consul {
        scheme,
        address,
        token: token(raw, &env, problems).map(Secret::new),
        tls: tls(&raw.tls, &env),
    }
}

/// The scheme and the address (`host:port`, or a socket path), checked.
fn address(raw: &RawConsul, env: &Env<'_>, report: &mut Reporter<'_>) -> (Scheme, String) {
    let line = raw.address_line;
    // An empty address is the Consul client's default, as with ContainerPilot.
    let mut address = raw.address.clone();
    if address.is_empty() {
        address = env
            .get("CONSUL_HTTP_ADDR")
            .unwrap_or(DEFAULT_CONSUL_ADDRESS)
            .to_string();
    }
    let mut address_scheme = None;
    match split_scheme(&address) {
        Ok((scheme, rest)) => {
            address_scheme = scheme;
            address = rest.to_string();
        }
        Err(e) => report.key("consul", e, line),
    }
    let ssl_from_env =
        raw.object_form && env.get("CONSUL_HTTP_SSL").and_then(parse_go_bool) == Some(true);
    let scheme = address_scheme.or(raw.scheme).unwrap_or(if ssl_from_env {
        Scheme::Https
    } else {
        Scheme::Http
    });
    if address.is_empty() {
        report.key("consul", "has an empty address", line);
    } else if address.chars().any(char::is_whitespace) {
        report.key(
            "consul",
            format!("address {} contains blanks", quote_short(&address)),
            line,
        );
    }
    (scheme, address)
}

/// `http://`, `https://` or `unix://` in front of an address sets the scheme; it is removed once.
fn split_scheme(address: &str) -> Result<(Option<Scheme>, &str), String> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return Ok((None, address));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        "unix" => Scheme::Unix,
        _ => {
            return Err(format!(
                "address {} has an unknown scheme {} (http, https or unix)",
                quote_short(address),
                quote_short(scheme)
            ));
        }
    };
    Ok((Some(scheme), rest))
}

/// `CONSUL_HTTP_TOKEN` replaces the config's token (as in ContainerPilot), and
/// `CONSUL_HTTP_TOKEN_FILE` replaces both: Consul's Go client reads the file last.
fn token(raw: &RawConsul, env: &Env<'_>, problems: &mut Problems) -> Option<String> {
    let mut token = raw.token.clone();
    if let Some(t) = env.get("CONSUL_HTTP_TOKEN") {
        token = Some(t.to_string());
    }
    if let Some(path) = env.get("CONSUL_HTTP_TOKEN_FILE") {
        match std::fs::read_to_string(path) {
            Ok(text) => token = Some(text.trim().to_string()).filter(|t| !t.is_empty()),
            Err(e) => problems.environment(format!(
                "CONSUL_HTTP_TOKEN_FILE {}: cannot read it: {}",
                quote_short(path),
                crate::errors::describe_io_error(&e)
            )),
        }
    }
    token
}

/// The config's TLS settings, each replaced by its `CONSUL_*` variable when that is set.
fn tls(raw: &RawTls, env: &Env<'_>) -> Tls {
    let path = |var: &str, written: &Option<String>| {
        env.get(var).or(written.as_deref()).map(PathBuf::from)
    };
    let verify = match env
        .get("CONSUL_HTTP_SSL_VERIFY")
        .map(str::to_ascii_lowercase)
    {
        Some(v) if v == "1" || v == "true" => true,
        Some(v) if v == "0" || v == "false" => false,
        _ => raw.verify.unwrap_or(true),
    };
    Tls {
        ca_file: path("CONSUL_CACERT", &raw.ca_file),
        ca_path: path("CONSUL_CAPATH", &raw.ca_path),
        client_cert: path("CONSUL_CLIENT_CERT", &raw.client_cert),
        client_key: path("CONSUL_CLIENT_KEY", &raw.client_key),
        server_name: env
            .get("CONSUL_TLS_SERVER_NAME")
            .or(raw.server_name.as_deref())
            .map(without_port),
        verify,
    }
}

/// A TLS server name without its port, as Consul's Go client takes it: `consul.local:8501` and
/// `consul.local` name the same certificate, and a port would make every handshake fail.
/// `[::1]:8501` and `[::1]` give `::1`; an IPv6 literal without brackets is left as it is.
fn without_port(name: &str) -> String {
    if let Some(rest) = name.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
        && (after.is_empty() || after.starts_with(':'))
    {
        return host.to_string();
    }
    match name.split_once(':') {
        Some((host, port)) if !port.contains(':') => host.to_string(),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheme_in_front_of_the_address() {
        assert_eq!(split_scheme("c:8500"), Ok((None, "c:8500")));
        assert_eq!(
            split_scheme("HTTPS://c:8501/x"),
            Ok((Some(Scheme::Https), "c:8501/x"))
        );
        assert_eq!(
            split_scheme("unix:///run/c.sock"),
            Ok((Some(Scheme::Unix), "/run/c.sock"))
        );
        assert_eq!(
            split_scheme("ftp://c"),
            Err("address \"ftp://c\" has an unknown scheme \"ftp\" (http, https or unix)".into())
        );
    }

    #[test]
    fn server_names_lose_their_port() {
        assert_eq!(without_port("consul.local:8501"), "consul.local");
        assert_eq!(without_port("[::1]:8501"), "::1");
        assert_eq!(without_port("fe80::1"), "fe80::1");
    }

    #[test]
    fn the_environment_fills_in_what_the_config_leaves_out() {
        let env: BTreeMap<String, String> = [
            ("CONSUL_HTTP_ADDR", "https://agent:8501"),
            ("CONSUL_HTTP_TOKEN", "t"),
            ("CONSUL_CACERT", "/ca"),
            ("CONSUL_HTTP_SSL_VERIFY", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let raw = RawConsul {
            object_form: true,
            address: String::new(),
            address_line: 1,
            scheme: None,
            token: Some("config".into()),
            tls: RawTls {
                ca_file: Some("/config-ca".into()),
                verify: Some(true),
                ..RawTls::default()
            },
        };
        let mut problems = Problems::default();
        let consul = build(&raw, &env, &mut problems);
        assert!(problems.messages().is_empty());
        assert_eq!(
            (consul.scheme, consul.address.as_str()),
            (Scheme::Https, "agent:8501")
        );
        assert_eq!(
            consul.token.map(|t| t.expose().to_string()),
            Some("t".into())
        );
        assert_eq!(consul.tls.ca_file, Some(PathBuf::from("/ca")));
        assert!(!consul.tls.verify);
    }
}
