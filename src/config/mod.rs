//! Configuration: ContainerPilot 3.x config files, loaded unchanged.
//!
//! The pipeline is: read the file, render it as a Go template over the environment
//! (`template`), parse JSON5 keeping every value's line (`json5`), decode with ContainerPilot's
//! weak typing (`decode`), and validate into the typed model of `model` (`validate`), reporting
//! every problem at once. Only `model` and this module's functions are meant for the rest of
//! pilot; everything here is pure apart from reading the file, `CONSUL_HTTP_TOKEN_FILE` and the
//! host's interfaces, which come through `LoadContext`.
//!
//! This module must not start anything: loading a config has no side effect on the process.

pub mod decode;
pub mod duration;
pub mod interfaces;
pub mod json5;
pub mod model;
pub mod subcommand;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use decode::Problem;
pub use interfaces::{IfaceAddr, InterfaceSource, StaticInterfaces, SystemInterfaces};
pub use model::*;
pub use crate::template::TemplateError;
pub use validate::{DEFAULT_CONTROL_SOCKET, TELEMETRY_JOB};

/// The largest config file pilot reads.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Everything a load depends on besides the file, so that loads are reproducible in tests and
/// the daemon decides what the environment is (it adds `CONTAINERPILOT_PID`, and on reload the
/// variables set through the control socket).
#[derive(Clone)]
pub struct LoadContext {
    /// The template data (`{{ .NAME }}`), what `env` returns, and where the `CONSUL_*`
    /// variables are read.
    pub env: BTreeMap<String, String>,
    /// For service IDs (`<name>-<hostname>`).
    pub hostname: String,
    /// The host's addresses, for `interfaces`.
    pub interfaces: Arc<dyn InterfaceSource>,
    /// Appended to the telemetry service's tags, as ContainerPilot appends its version.
    pub version: String,
}

impl LoadContext {
    pub fn new(
        env: BTreeMap<String, String>,
        hostname: impl Into<String>,
        interfaces: impl InterfaceSource + 'static,
    ) -> Self {
        LoadContext {
            env,
            hostname: hostname.into(),
            interfaces: Arc::new(interfaces),
            version: crate::VERSION.to_string(),
        }
    }

    /// This process's environment, the host's name and its interfaces.
    pub fn from_process() -> Self {
        LoadContext::for_env(process_env())
    }

    /// `env`, with the host's name and its interfaces (the daemon's environment differs from
    /// the process's: it adds `CONTAINERPILOT_PID` and what `-putenv` set).
    pub fn for_env(env: BTreeMap<String, String>) -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        LoadContext::new(env, hostname, SystemInterfaces)
    }
}

impl fmt::Debug for LoadContext {
    /// Variable names only: values may be secrets (`CONSUL_HTTP_TOKEN`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadContext")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("hostname", &self.hostname)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// This process's environment as template data. Variables that are not UTF-8 are left out;
/// values are kept whole, `=` included (ContainerPilot cut them at the first `=`).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Why a config could not be loaded. Every variant is a config error (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: String },
    #[error("could not apply template to config {}: {error}", path.display())]
    Template { path: PathBuf, error: TemplateError },
    #[error("could not parse config {}: {error}", path.display())]
    Parse {
        path: PathBuf,
        error: json5::ParseError,
    },
    #[error("{}", invalid_text(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn invalid_text(path: &Path, problems: &[Problem]) -> String {
    let count = match problems.len() {
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    };
    let mut text = format!("invalid config {} ({count}):", path.display());
    for problem in problems {
        text.push('\n');
        text.push_str(&problem.to_string());
    }
    text
}

impl LoadError {
    /// The problems of an invalid config; empty for the other errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Which config file to use: `-config` (the flag's value), else `PILOT_CONFIG`, else
/// `CONTAINERPILOT`. Empty values count as unset. `None` when there is none.
pub fn resolve_path(flag: Option<&str>, env: &BTreeMap<String, String>) -> Option<PathBuf> {
    flag.filter(|f| !f.is_empty())
        .or_else(|| {
            env.get("PILOT_CONFIG")
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        })
        .or_else(|| {
            env.get("CONTAINERPILOT")
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        })
        .map(PathBuf::from)
}

/// Reads the config file (as text).
pub fn read(path: &Path) -> Result<String, LoadError> {
    use std::io::Read;
    let read_error = |error: String| LoadError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file =
        std::fs::File::open(path).map_err(|e| read_error(crate::errors::describe_io_error(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(crate::errors::describe_io_error(&e)))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read_error(format!(
            "it is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        read_error(format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Renders config text as ContainerPilot's template over `env` (`-template`).
pub fn render(text: &str, env: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    crate::template::render(text, env)
}

/// Reads and renders the config file at `path` (`-template`).
pub fn render_file(path: &Path, env: &BTreeMap<String, String>) -> Result<String, LoadError> {
    let text = read(path)?;
    render(&text, env).map_err(|error| LoadError::Template {
        path: path.to_path_buf(),
        error,
    })
}

/// Loads and validates the config file at `path`.
pub fn load(path: &Path, ctx: &LoadContext) -> Result<Config, LoadError> {
    let text = read(path)?;
    load_text(&text, path, ctx)
}

/// Loads and validates config text; `path` only names it in errors.
pub fn load_text(text: &str, path: &Path, ctx: &LoadContext) -> Result<Config, LoadError> {
    let root = parse_rendered(text, path, &ctx.env)?;
    validate::build(&root, ctx).map_err(|problems| LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

fn parse_rendered(
    text: &str,
    path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<json5::Value, LoadError> {
    let rendered = render(text, env).map_err(|error| LoadError::Template {
        path: path.to_path_buf(),
        error,
    })?;
    json5::parse(&rendered).map_err(|mut error| {
        redact_secrets(&mut error, env);
        LoadError::Parse {
            path: path.to_path_buf(),
            error,
        }
    })
}

/// The quoted lines of a parse error must not show a Consul token: the value of a line that
/// names a token is hidden, and so is `CONSUL_HTTP_TOKEN` wherever the template put it.
fn redact_secrets(error: &mut json5::ParseError, env: &BTreeMap<String, String>) {
    let token = env.get("CONSUL_HTTP_TOKEN").filter(|t| !t.is_empty());
    let lines: Vec<String> = error
        .context
        .split('\n')
        .map(|line| {
            let mut line = line.to_string();
            if let Some(token) = token {
                line = line.replace(token.as_str(), "<redacted>");
            }
            // `%5d: ` prefixes each quoted line; the marker line is only dashes.
            if let Some((prefix, body)) = line.split_at_checked(7)
                && body.to_ascii_lowercase().contains("token")
                && let Some(colon) = body.find(':')
            {
                line = format!("{prefix}{} <redacted>", &body[..=colon]);
            }
            line
        })
        .collect();
    error.context = lines.join("\n");
}

/// The control socket path of the config at `path`, for the subcommands that talk to a running
/// pilot (`-reload`, `-putenv`...): the file is rendered and parsed, and only `control.socket` is
/// read; the rest is not validated.
pub fn control_socket(path: &Path, ctx: &LoadContext) -> Result<PathBuf, LoadError> {
    let text = read(path)?;
    let root = parse_rendered(&text, path, &ctx.env)?;
    let invalid = |message: String, line: u32| LoadError::Invalid {
        path: path.to_path_buf(),
        problems: vec![Problem {
            path: String::new(),
            message,
            line: Some(line),
        }],
    };
    let Some(mut top) = decode::Obj::top_level(&root) else {
        return Err(invalid(
            format!(
                "the config must be an object of keys, got {}",
                decode::describe(&root)
            ),
            root.pos.line,
        ));
    };
    let Some(control) = top.get("control") else {
        return Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET));
    };
    let Some(mut control_obj) = decode::Obj::new(control) else {
        return Err(invalid(
            format!(
                "control must be an object, got {}",
                decode::describe(control)
            ),
            control.pos.line,
        ));
    };
    match control_obj.get("socket") {
        None => Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        Some(value) => match decode::weak_string(value) {
            Ok(s) if s.is_empty() => Err(invalid(
                "control.socket must not be empty".into(),
                value.pos.line,
            )),
            Ok(s) => Ok(PathBuf::from(s)),
            Err(e) => Err(invalid(format!("control.socket {e}"), value.pos.line)),
        },
    }
}

#[cfg(test)]
mod tests;
