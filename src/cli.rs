//! Command-line flags, parsed with the semantics of Go's `flag` package so that ContainerPilot
//! command lines keep working: one or two dashes, `-flag=value` or `-flag value`, boolean flags
//! as `-flag` or `-flag=true|false`, and parsing stops at the first argument that is not a flag
//! or at `--`. What follows is the command to run.

use std::ffi::OsString;

/// The parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// The control-socket subcommands (`-putenv`, `-reload`...).
    pub control: ControlFlags,
    pub help: bool,
    pub version: bool,
    /// `-config FILE`: the config file (else `PILOT_CONFIG`, else `CONTAINERPILOT`).
    pub config: Option<String>,
    /// `-template`: print the rendered config and quit.
    pub template: bool,
    /// `-out FILE`: where `-template` writes (`-` or empty for stdout).
    pub out: Option<String>,
    /// `-validate`: load and validate the config, print its problems, and quit.
    pub validate: bool,
    /// Everything after the flags: the command to supervise.
    pub command: Vec<OsString>,
}

/// A command line that cannot be parsed; the caller prints it with the usage and exits 2.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The flags of the subcommands that talk to a running pilot through its control socket
/// (`control::subcommand` acts on them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ControlFlags {
    /// `-putenv K=V`, repeatable, unparsed (the subcommand reports a malformed one).
    pub putenv: Vec<String>,
    /// `-putmetric K=V`, repeatable, unparsed.
    pub putmetric: Vec<String>,
    pub reload: bool,
    /// `-maintenance enable|disable`, unchecked.
    pub maintenance: Option<String>,
    pub ping: bool,
    /// `-signal JOB=SIGNAL`, repeatable, unparsed.
    pub signal: Vec<String>,
    /// `-events`.
    pub events: bool,
    /// `-render TEMPLATE:DEST[:COMMAND]`, repeatable, unparsed (`render::subcommand` acts on it).
    pub render: Vec<String>,
}

/// Whether a flag takes a value.
enum Takes {
    /// `-flag` or `-flag=true|false`.
    Bool(fn(&mut Args, bool)),
    /// `-flag value` or `-flag=value`; the string names the value in the usage text.
    Value(&'static str, fn(&mut Args, String)),
}

struct Flag {
    name: &'static str,
    takes: Takes,
    help: &'static str,
}

/// Every flag, in the alphabetical order the usage text shows them in.
const FLAGS: &[Flag] = &[
    Flag {
        name: "config",
        takes: Takes::Value("FILE", |a, v| a.config = Some(v)),
        help: "The JSON5 config file. Defaults to the PILOT_CONFIG, then the CONTAINERPILOT\n    \tenvironment variable.",
    },
    Flag {
        name: "h",
        takes: Takes::Bool(|a, v| a.help = v),
        help: "Same as -help.",
    },
    Flag {
        name: "help",
        takes: Takes::Bool(|a, v| a.help = v),
        help: "Show this help and quit.",
    },
    Flag {
        name: "out",
        takes: Takes::Value("FILE", |a, v| a.out = Some(v)),
        help: "Where -template writes the rendered config. Defaults to stdout ('-').",
    },
    Flag {
        name: "template",
        takes: Takes::Bool(|a, v| a.template = v),
        help: "Render the config template, print it and quit.",
    },
    Flag {
        name: "validate",
        takes: Takes::Bool(|a, v| a.validate = v),
        help: "Load and validate the config, print every problem, and quit: exit 0 when it\n    \tis valid, 2 when it is not.",
    },
    Flag {
        name: "version",
        takes: Takes::Bool(|a, v| a.version = v),
        help: "Show the version and quit.",
    },
];

/// The flags of the control-socket subcommands, in alphabetical order. They are kept apart
/// from `FLAGS` so that each table can change without the other; `usage` merges both.
const CONTROL_FLAGS: &[Flag] = &[
    Flag {
        name: "events",
        takes: Takes::Bool(|a, v| a.control.events = v),
        help: "Print every event of the running pilot as it happens, one JSON object a line,\n    \tuntil it stops (or this is interrupted), through its control socket.",
    },
    Flag {
        name: "maintenance",
        takes: Takes::Value("enable|disable", |a, v| a.control.maintenance = Some(v)),
        help: "Turn maintenance mode of the running pilot on or off, through its control socket.",
    },
    Flag {
        name: "ping",
        takes: Takes::Bool(|a, v| a.control.ping = v),
        help: "Check that the running pilot answers on its control socket; prints ok.",
    },
    Flag {
        name: "putenv",
        takes: Takes::Value("KEY=VALUE", |a, v| a.control.putenv.push(v)),
        help: "Set an environment variable of the running pilot's future children (repeatable;\n    \tKEY= unsets it), through its control socket.",
    },
    Flag {
        name: "putmetric",
        takes: Takes::Value("KEY=VALUE", |a, v| a.control.putmetric.push(v)),
        help: "Add to a counter, set a gauge, or observe a value in a histogram or summary of\n    \tthe running pilot (repeatable), through its control socket.",
    },
    Flag {
        name: "reload",
        takes: Takes::Bool(|a, v| a.control.reload = v),
        help: "Make the running pilot reload its config, through its control socket.",
    },
    Flag {
        name: "render",
        takes: Takes::Value("TEMPLATE:DEST[:COMMAND]", |a, v| a.control.render.push(v)),
        help: "Render TEMPLATE (a Go template; `service \"name\"` gives the instances of a watch\n    \tof the running pilot) into DEST, replacing it atomically, and run COMMAND when\n    \tDEST changed (repeatable).",
    },
    Flag {
        name: "signal",
        takes: Takes::Value("JOB=SIGNAL", |a, v| a.control.signal.push(v)),
        help: "Send SIGNAL (HUP, SIGUSR1, 10...) to the process group of the running pilot's job\n    \tJOB (repeatable), through its control socket.",
    },
];

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Args, UsageError> {
    let mut parsed = Args::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(text) = arg.to_str() else {
            break; // not UTF-8, so not a flag: the command starts here
        };
        if text == "--" {
            i += 1;
            break;
        }
        if !text.starts_with('-') || text == "-" {
            break;
        }
        let body = text.strip_prefix("--").unwrap_or(&text[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(UsageError(format!("bad flag syntax: {text}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(flag) = FLAGS.iter().chain(CONTROL_FLAGS).find(|f| f.name == name) else {
            return Err(UsageError(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        match flag.takes {
            Takes::Bool(set) => {
                let value = match inline {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| {
                        UsageError(format!(
                            "invalid boolean value {v:?} for -{name}: parse error"
                        ))
                    })?,
                };
                set(&mut parsed, value);
            }
            Takes::Value(_, set) => {
                let value = match inline {
                    Some(v) => v.to_string(),
                    None => {
                        i += 1;
                        let next = args.get(i).ok_or_else(|| {
                            UsageError(format!("flag needs an argument: -{name}"))
                        })?;
                        next.to_str()
                            .ok_or_else(|| {
                                UsageError(format!("value of -{name} is not valid UTF-8"))
                            })?
                            .to_string()
                    }
                };
                set(&mut parsed, value);
            }
        }
        i += 1;
    }
    parsed.command = args[i..].to_vec();
    Ok(parsed)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The usage text, flags in alphabetical order.
pub fn usage() -> String {
    let mut text = String::from(
        "Usage: pilot [FLAGS] [--] [COMMAND [ARG...]]\n\
         \n\
         pilot runs as a container's PID 1.\n\
         \n\
         \x20 pilot -- COMMAND [ARG...]    run COMMAND as an init: reap zombies, forward signals,\n\
         \x20                              and exit with COMMAND's status\n\
         \x20 pilot -validate -config FILE check a config file and print its problems\n\
         \x20 pilot -template -config FILE print a config file rendered as a template\n\
         \n\
         Flags (one or two dashes; -flag=value or -flag value):\n",
    );
    let mut flags: Vec<&Flag> = FLAGS.iter().chain(CONTROL_FLAGS).collect();
    flags.sort_by_key(|f| f.name);
    for flag in flags {
        match flag.takes {
            Takes::Bool(_) => text.push_str(&format!("  -{}\n", flag.name)),
            Takes::Value(value, _) => text.push_str(&format!("  -{} {}\n", flag.name, value)),
        }
        text.push_str(&format!("    \t{}\n", flag.help));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn one_or_two_dashes() {
        for form in ["-version", "--version", "-version=true", "--version=1"] {
            let parsed = parse(&args(&[form])).unwrap();
            assert!(parsed.version, "{form}");
        }
        assert!(!parse(&args(&["-version=false"])).unwrap().version);
    }

    #[test]
    fn command_after_double_dash_or_first_non_flag() {
        let parsed = parse(&args(&["--", "-x", "y"])).unwrap();
        assert_eq!(parsed.command, args(&["-x", "y"]));
        let parsed = parse(&args(&["sleep", "-x"])).unwrap();
        assert_eq!(parsed.command, args(&["sleep", "-x"]));
        let parsed = parse(&args(&["-version", "sleep", "--", "1"])).unwrap();
        assert!(parsed.version);
        assert_eq!(parsed.command, args(&["sleep", "--", "1"]));
        assert_eq!(parse(&args(&["-"])).unwrap().command, args(&["-"]));
    }

    #[test]
    fn unknown_flag_and_bad_syntax() {
        assert_eq!(
            parse(&args(&["-nope"])).unwrap_err(),
            UsageError("flag provided but not defined: -nope".into())
        );
        assert_eq!(
            parse(&args(&["--nope=1"])).unwrap_err(),
            UsageError("flag provided but not defined: -nope".into())
        );
        assert_eq!(
            parse(&args(&["---version"])).unwrap_err(),
            UsageError("bad flag syntax: ---version".into())
        );
        assert_eq!(
            parse(&args(&["-=x"])).unwrap_err(),
            UsageError("bad flag syntax: -=x".into())
        );
        assert_eq!(
            parse(&args(&["-version=maybe"])).unwrap_err(),
            UsageError("invalid boolean value \"maybe\" for -version: parse error".into())
        );
    }

    #[test]
    fn config_flags() {
        let parsed = parse(&args(&[
            "-config",
            "a.json5",
            "--template",
            "-out=x",
            "-validate",
        ]))
        .unwrap();
        assert_eq!(parsed.config.as_deref(), Some("a.json5"));
        assert!(parsed.template);
        assert_eq!(parsed.out.as_deref(), Some("x"));
        assert!(parsed.validate);
        let parsed = parse(&args(&["--config=b.json5", "-config", "c.json5"])).unwrap();
        assert_eq!(
            parsed.config.as_deref(),
            Some("c.json5"),
            "the last one wins"
        );
        assert_eq!(
            parse(&args(&["-config"])).unwrap_err(),
            UsageError("flag needs an argument: -config".into())
        );
        let parsed = parse(&args(&["-config", "f", "--", "node", "app.js"])).unwrap();
        assert_eq!(parsed.command, args(&["node", "app.js"]));
        assert!(!parse(&args(&["-template=false"])).unwrap().template);
    }

    #[test]
    fn usage_lists_every_flag() {
        let text = usage();
        for flag in FLAGS {
            assert!(text.contains(&format!("  -{}", flag.name)), "{}", flag.name);
        }
    }

    #[test]
    fn control_flags() {
        let parsed = parse(&args(&[
            "-putenv",
            "A=1",
            "--putenv=B=2=3",
            "-putmetric",
            "m=4",
            "-maintenance=enable",
            "-reload",
            "--ping",
            "-render",
            "a:b",
            "--render=c:d:e f",
            "-signal",
            "app=HUP",
            "-events",
        ]))
        .unwrap();
        assert_eq!(
            parsed.control,
            ControlFlags {
                putenv: vec!["A=1".into(), "B=2=3".into()],
                putmetric: vec!["m=4".into()],
                reload: true,
                maintenance: Some("enable".into()),
                ping: true,
                render: vec!["a:b".into(), "c:d:e f".into()],
                signal: vec!["app=HUP".into()],
                events: true,
            }
        );
        assert_eq!(
            parse(&args(&["-putenv"])).unwrap_err(),
            UsageError("flag needs an argument: -putenv".into())
        );
    }

    #[test]
    fn usage_lists_every_flag_once_in_alphabetical_order() {
        let text = usage();
        let listed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  -"))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(listed, sorted, "sorted, no duplicates");
        for flag in FLAGS.iter().chain(CONTROL_FLAGS) {
            assert!(listed.contains(&flag.name), "{}", flag.name);
        }
    }
}
