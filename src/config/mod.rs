//! Configuration: ContainerPilot 3.x config files, loaded unchanged.
//!
//! Loading reads the file, renders it as a Go template over the environment (`crate::template`)
//! and parses the JSON5 keeping every value's line (`json5`). Then three steps, each with its
//! own module and each reporting into one list of problems (`problems`), so that a user sees
//! every problem at once:
//!
//! 1. `raw`: the file as written, decoded section by section with ContainerPilot's weak typing.
//! 2. `rules`: what the decoded values mean, one rule per function.
//! 3. `build`: defaults, the environment and the host's interfaces, into `model`.
//!
//! Within one line, problems are listed in the order of the steps. Only `model`, the entry
//! points below and what they take and give are meant for the rest of pilot; everything here is
//! pure apart from reading the file, `CONSUL_HTTP_TOKEN_FILE` and the host's interfaces, which
//! come through `LoadContext`.
//!
//! This module must not start anything: loading a config has no side effect on the process.

mod accounts;
mod build;
mod duration;
mod interfaces;
pub mod json5;
mod model;
mod problems;
mod raw;
mod rules;
pub mod subcommand;
mod words;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::template::TemplateError;
pub use accounts::Accounts;
pub use build::{DEFAULT_CONTROL_SOCKET, TELEMETRY_JOB};
pub use duration::go_duration;
pub use interfaces::{IfaceAddr, InterfaceSource, StaticInterfaces, SystemInterfaces};
pub use model::*;
pub use problems::{Problem, Severity};

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
    /// Appended to the telemetry service's tags, as ContainerPilot appended its version.
    pub version_tags: Vec<String>,
    /// Where `user` and `group` are looked up.
    pub accounts: Accounts,
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
            version_tags: version_tags(),
            accounts: Accounts::System,
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

/// The telemetry service's version tags: the ContainerPilot version pilot stands in for (what
/// ContainerPilot tagged it with) and `pilot-<pilot's version>`.
fn version_tags() -> Vec<String> {
    vec![
        crate::COMPAT_VERSION.to_string(),
        format!("pilot-{}", crate::VERSION),
    ]
}

impl fmt::Debug for LoadContext {
    /// Variable names only: values may be secrets (`CONSUL_HTTP_TOKEN`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadContext")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("hostname", &self.hostname)
            .field("version_tags", &self.version_tags)
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

/// A config that loads, and what pilot warns about in it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Problems that do not refuse the config, in file order.
    pub warnings: Vec<Problem>,
}

/// Loads and validates the config file at `path`.
pub fn load(path: &Path, ctx: &LoadContext) -> Result<Config, LoadError> {
    load_with_warnings(path, ctx).map(|loaded| loaded.config)
}

/// Loads and validates config text; `path` only names it in errors.
pub fn load_text(text: &str, path: &Path, ctx: &LoadContext) -> Result<Config, LoadError> {
    load_text_with_warnings(text, path, ctx).map(|loaded| loaded.config)
}

/// Like `load`, with the warnings.
pub fn load_with_warnings(path: &Path, ctx: &LoadContext) -> Result<Loaded, LoadError> {
    let text = read(path)?;
    load_text_with_warnings(&text, path, ctx)
}

/// Like `load_text`, with the warnings.
pub fn load_text_with_warnings(
    text: &str,
    path: &Path,
    ctx: &LoadContext,
) -> Result<Loaded, LoadError> {
    let root = parse_rendered(text, path, &ctx.env)?;
    let mut problems = problems::Problems::default();
    let config = raw::decode(&root, &mut problems).and_then(|raw| {
        rules::check(&raw, &mut problems);
        build::build(&raw, ctx, &mut problems)
    });
    match problems.verdict(config) {
        Ok((config, warnings)) => Ok(Loaded { config, warnings }),
        Err(problems) => Err(LoadError::Invalid {
            path: path.to_path_buf(),
            problems,
        }),
    }
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
    let mut problems = problems::Problems::default();
    let socket = raw::control_socket(&root, &mut problems);
    match problems.verdict(Some(socket)) {
        Ok((socket, _)) => Ok(PathBuf::from(
            socket.as_deref().unwrap_or(DEFAULT_CONTROL_SOCKET),
        )),
        Err(problems) => Err(LoadError::Invalid {
            path: path.to_path_buf(),
            problems,
        }),
    }
}

#[cfg(test)]
mod tests;
