//! The subcommands that talk to a running pilot: `-putenv K=V` (repeatable; `K=` unsets),
//! `-putmetric K=V` (repeatable), `-reload`, `-maintenance enable|disable`, `-ping`,
//! `-signal JOB=SIGNAL` (repeatable) and `-events` (which streams until pilot stops).
//!
//! They find the socket from the config (`-config`, else `PILOT_CONFIG`, else `CONTAINERPILOT`),
//! reading only `control.socket` (ContainerPilot validated the whole config, IP discovery
//! included, just to find it), or use the default. Exit status: 0 on success, 1 with the
//! server's message when it refuses or cannot be reached, 2 for a usage or config error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper::Method;

use super::client::Client;
use crate::cli::Args;
use crate::config;

/// How long a reload may take: the server gives the daemon two minutes.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(150);
/// How long any other request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One subcommand, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Subcommand {
    Reload,
    Maintenance(bool),
    PutEnv(BTreeMap<String, String>),
    PutMetric(BTreeMap<String, String>),
    Ping,
    /// `(job, signal)` pairs, in the order given.
    Signal(Vec<(String, String)>),
    Events,
}

/// Whether the command line asks for one of these subcommands. (`-version`, `-template` and
/// `-validate` come first, as in ContainerPilot: the caller checks them before.)
pub fn requested(args: &Args) -> bool {
    let c = &args.control;
    c.reload
        || c.ping
        || c.events
        || c.maintenance.is_some()
        || !c.putenv.is_empty()
        || !c.putmetric.is_empty()
        || !c.signal.is_empty()
}

/// Runs the subcommand of `args` and returns the exit status.
pub fn run(args: &Args) -> i32 {
    let subcommand = match parse(args) {
        Ok(subcommand) => subcommand,
        Err(message) => return crate::usage_error(&message),
    };
    let Some(socket) = socket_path(args.config.as_deref()) else {
        return 2;
    };
    let Some(runtime) = crate::runtime_or_report() else {
        return 1;
    };
    runtime.block_on(send(&Client::new(socket), subcommand))
}

fn parse(args: &Args) -> Result<Subcommand, String> {
    let c = &args.control;
    let mut chosen = Vec::new();
    if c.reload {
        chosen.push(Subcommand::Reload);
    }
    if let Some(value) = &c.maintenance {
        chosen.push(match value.as_str() {
            "enable" => Subcommand::Maintenance(true),
            "disable" => Subcommand::Maintenance(false),
            // ContainerPilot took any other value for "disable".
            other => {
                return Err(format!(
                    "invalid value {other:?} for flag -maintenance: use enable or disable"
                ));
            }
        });
    }
    if !c.putenv.is_empty() {
        chosen.push(Subcommand::PutEnv(pairs("putenv", &c.putenv)?));
    }
    if !c.putmetric.is_empty() {
        chosen.push(Subcommand::PutMetric(pairs("putmetric", &c.putmetric)?));
    }
    if c.ping {
        chosen.push(Subcommand::Ping);
    }
    if !c.signal.is_empty() {
        let pairs = c
            .signal
            .iter()
            .map(|value| match value.split_once('=') {
                Some((job, signal)) if !job.is_empty() && !signal.is_empty() => {
                    Ok((job.to_string(), signal.to_string()))
                }
                _ => Err(format!(
                    "invalid value {value:?} for flag -signal: use JOB=SIGNAL, such as app=HUP"
                )),
            })
            .collect::<Result<_, _>>()?;
        chosen.push(Subcommand::Signal(pairs));
    }
    if c.events {
        chosen.push(Subcommand::Events);
    }
    if chosen.len() > 1 {
        // ContainerPilot silently ran only the first; doing one of two asked things is a trap.
        return Err(
            "give only one of -reload, -maintenance, -putenv, -putmetric, -ping, -signal and -events"
                .to_string(),
        );
    }
    if let Some(first) = args.command.first() {
        return Err(format!(
            "a control subcommand takes no command to run, got {:?}",
            first.to_string_lossy()
        ));
    }
    chosen
        .pop()
        .ok_or_else(|| "no control subcommand given".to_string())
}

/// `K=V` values of a repeatable flag; the last value of a key wins, and keys are sorted, as in
/// ContainerPilot. `V` may hold `=`.
fn pairs(flag: &str, values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for value in values {
        let Some((key, val)) = value.split_once('=') else {
            return Err(format!(
                "invalid value {value:?} for flag -{flag}: flag value '{value}' was not in the format 'key=val'"
            ));
        };
        if key.is_empty() {
            return Err(format!(
                "invalid value {value:?} for flag -{flag}: the key is empty"
            ));
        }
        map.insert(key.to_string(), val.to_string());
    }
    Ok(map)
}

/// The control socket: `control.socket` of the config (`-config`, else `PILOT_CONFIG`, else
/// `CONTAINERPILOT`), rendered but not validated, or the default without a config. `None` once
/// the reason it cannot be read is printed.
pub(crate) fn socket_path(flag: Option<&str>) -> Option<PathBuf> {
    let ctx = config::LoadContext::from_process();
    let found = match config::resolve_path(flag, &ctx.env) {
        None => Ok(PathBuf::from(config::DEFAULT_CONTROL_SOCKET)),
        Some(path) => config::control_socket(&path, &ctx),
    };
    found.map_err(|e| eprintln!("pilot: {e}")).ok()
}

async fn send(client: &Client, subcommand: Subcommand) -> i32 {
    let (method, path, body, timeout) = match &subcommand {
        Subcommand::Signal(pairs) => return signal(client, pairs).await,
        Subcommand::Events => return events(client).await,
        Subcommand::Reload => (Method::POST, "/v3/reload", None, RELOAD_TIMEOUT),
        Subcommand::Maintenance(true) => (Method::POST, "/v3/maintenance/enable", None, TIMEOUT),
        Subcommand::Maintenance(false) => (Method::POST, "/v3/maintenance/disable", None, TIMEOUT),
        Subcommand::PutEnv(map) => (Method::POST, "/v3/environ", Some(to_json(map)), TIMEOUT),
        Subcommand::PutMetric(map) => (Method::POST, "/v3/metric", Some(to_json(map)), TIMEOUT),
        Subcommand::Ping => (Method::GET, "/v3/ping", None, TIMEOUT),
    };
    match client.send(method, path, body, timeout).await {
        Ok(answer) if answer.status.is_success() => {
            if subcommand == Subcommand::Ping {
                return crate::print_or_fail("ok\n");
            }
            0
        }
        Ok(answer) => {
            eprintln!("pilot: {}", answer.message());
            1
        }
        Err(err) => {
            eprintln!("pilot: {err}");
            1
        }
    }
}

/// Sends each signal in turn; all are tried, and any refusal makes the exit status 1.
async fn signal(client: &Client, pairs: &[(String, String)]) -> i32 {
    let mut status = 0;
    for (job, signal) in pairs {
        let body = serde_json::json!({ "job": job, "signal": signal }).to_string();
        match client
            .send(Method::POST, "/v3/signal", Some(body), TIMEOUT)
            .await
        {
            Ok(answer) if answer.status.is_success() => {}
            Ok(answer) => {
                eprintln!("pilot: {}", answer.message());
                status = 1;
            }
            Err(err) => {
                eprintln!("pilot: {err}");
                status = 1;
            }
        }
    }
    status
}

/// Prints the event stream until pilot ends it, without its keep-alive empty lines.
async fn events(client: &Client) -> i32 {
    let mut out = SkipBlankLines {
        out: std::io::stdout(),
        line: Vec::new(),
    };
    match client.stream("/v3/events", &mut out).await {
        Ok(answer) if answer.status.is_success() => 0,
        Ok(answer) => {
            eprintln!("pilot: {}", answer.message());
            1
        }
        Err(err) => {
            eprintln!("pilot: {err}");
            1
        }
    }
}

/// Writes whole lines to `out`, leaving out the empty ones.
struct SkipBlankLines<W> {
    out: W,
    /// What came of the line being written.
    line: Vec<u8>,
}

impl<W: std::io::Write> std::io::Write for SkipBlankLines<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                if self.line != b"\n" {
                    self.out.write_all(&self.line)?;
                }
                self.line.clear();
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn to_json(map: &BTreeMap<String, String>) -> String {
    // A map of strings always serialises.
    serde_json::to_string(map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn args(list: &[&str]) -> Args {
        let list: Vec<OsString> = list.iter().map(OsString::from).collect();
        crate::cli::parse(&list).unwrap()
    }

    #[test]
    fn parses_each_subcommand() {
        assert_eq!(parse(&args(&["-reload"])), Ok(Subcommand::Reload));
        assert_eq!(parse(&args(&["-ping"])), Ok(Subcommand::Ping));
        assert_eq!(
            parse(&args(&["-maintenance", "enable"])),
            Ok(Subcommand::Maintenance(true))
        );
        assert_eq!(
            parse(&args(&["-maintenance=disable"])),
            Ok(Subcommand::Maintenance(false))
        );
        let env = parse(&args(&[
            "-putenv", "B=x=y", "-putenv", "A=", "-putenv", "B=z",
        ]));
        assert_eq!(
            env,
            Ok(Subcommand::PutEnv(BTreeMap::from([
                ("A".into(), "".into()),
                ("B".into(), "z".into())
            ])))
        );
        assert_eq!(
            to_json(&BTreeMap::from([
                ("b".to_string(), "1".to_string()),
                ("a".to_string(), "x=y".to_string())
            ])),
            r#"{"a":"x=y","b":"1"}"#
        );
    }

    #[test]
    fn the_event_stream_is_printed_without_its_keep_alive_lines() {
        use std::io::Write;
        let mut out = SkipBlankLines {
            out: Vec::new(),
            line: Vec::new(),
        };
        for chunk in ["{\"a\":1}\n", "\n", "{\"b\"", ":2}\n\n{\"c\":3}\n", "\n"] {
            out.write_all(chunk.as_bytes()).unwrap();
        }
        assert_eq!(
            String::from_utf8(out.out).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );
    }

    #[test]
    fn usage_errors() {
        assert_eq!(
            parse(&args(&["-maintenance", "on"])).unwrap_err(),
            "invalid value \"on\" for flag -maintenance: use enable or disable"
        );
        assert_eq!(
            parse(&args(&["-putenv", "NOEQUALS"])).unwrap_err(),
            "invalid value \"NOEQUALS\" for flag -putenv: flag value 'NOEQUALS' was not in the format 'key=val'"
        );
        assert_eq!(
            parse(&args(&["-putmetric", "=1"])).unwrap_err(),
            "invalid value \"=1\" for flag -putmetric: the key is empty"
        );
        assert_eq!(
            parse(&args(&["-reload", "-ping"])).unwrap_err(),
            "give only one of -reload, -maintenance, -putenv, -putmetric, -ping, -signal and -events"
        );
        assert_eq!(
            parse(&args(&["-ping", "--", "sleep"])).unwrap_err(),
            "a control subcommand takes no command to run, got \"sleep\""
        );
    }

    #[test]
    fn requested_by_any_of_the_flags() {
        for list in [
            &["-ping"][..],
            &["-reload"],
            &["-maintenance", "x"],
            &["-putenv", "A=1"],
            &["-putmetric", "m=1"],
            &["-signal", "a=HUP"],
            &["-events"],
        ] {
            assert!(requested(&args(list)), "{list:?}");
        }
        assert!(!requested(&args(&["-version", "--", "x"])));
        assert!(!requested(&args(&[])));
    }
}
