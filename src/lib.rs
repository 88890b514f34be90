//! pilot: a small static init and autopilot for containers.
//!
//! See ARCHITECTURE.md for the code map and the invariants. `run` is the whole program; the
//! binary's `main` only converts `argv` and exits with what `run` returns.

pub mod app;
pub mod base64;
pub mod cli;
pub mod config;
pub mod consul;
pub mod control;
pub mod errors;
pub mod events;
pub mod exec;
pub mod health;
pub mod init;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod render;
pub mod serve;
pub mod supervisor;
pub mod telemetry;
pub mod template;
pub mod watches;

use std::ffi::OsString;
use std::io::Write;

/// The version printed by `-version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The ContainerPilot version pilot stands in for. ContainerPilot tagged its telemetry service
/// with its own version and reported it as `Version` in `/status`; pilot reports this there, so
/// that what filters on it keeps working, and its own version beside it.
pub const COMPAT_VERSION: &str = "3.8.0";
/// The commit the binary was built from, or `unknown`.
pub const GIT_HASH: &str = env!("PILOT_GIT_HASH");

/// Runs pilot with `args` (including the program name) and returns its exit status.
pub fn run(args: Vec<OsString>) -> i32 {
    ensure_std_fds();
    let code = dispatch(args.get(1..).unwrap_or_default());
    // The C entry point skips Rust's runtime clean-up, which would otherwise flush stdout.
    let _ = std::io::stdout().flush();
    code
}

fn dispatch(args: &[OsString]) -> i32 {
    let args = match cli::parse(args) {
        Ok(args) => args,
        Err(err) => return usage_error(&err.0),
    };
    if args.help {
        return print_or_fail(&cli::usage());
    }
    if args.version {
        return print_or_fail(&format!("Version: {VERSION}\nGitHash: {GIT_HASH}\n"));
    }
    if args.template {
        return config::subcommand::template(&args);
    }
    if args.validate {
        return config::subcommand::validate(&args);
    }
    if !args.control.render.is_empty() {
        return render::subcommand::run(&args);
    }
    if control::subcommand::requested(&args) {
        return control::subcommand::run(&args);
    }
    let config_path = config::resolve_path(args.config.as_deref(), &config::process_env());
    if config_path.is_none() && args.command.is_empty() {
        eprintln!(
            "pilot: nothing to run: give -config FILE (or set PILOT_CONFIG or CONTAINERPILOT), \
             or a COMMAND"
        );
        eprint!("{}", cli::usage());
        return 2;
    }
    // Signals are taken over before anything else, in particular before any thread exists.
    let ownership = match supervisor::take_over() {
        Ok(ownership) => ownership,
        Err(err) => {
            eprintln!(
                "pilot: cannot take over signals: {}",
                crate::errors::describe_io_error(&err)
            );
            return 1;
        }
    };
    supervisor::mark_inherited_fds_cloexec();
    match config_path {
        Some(config_path) => app::run(
            ownership,
            app::Options {
                config_path,
                main_command: args.command,
            },
        ),
        None => init::run(ownership, args.command),
    }
}

/// A usage error: the one thing that is wrong and where the help is (exit status 2).
pub(crate) fn usage_error(message: &str) -> i32 {
    eprintln!("pilot: {message}\nsee pilot -help");
    2
}

/// Writes `text` to stdout: 0, or 1 with the reason on stderr when stdout cannot take it
/// (`pilot -version > /dev/full`), where `print!` would panic.
pub(crate) fn print_or_fail(text: &str) -> i32 {
    let mut stdout = std::io::stdout();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => 0,
        Err(err) => {
            eprintln!(
                "pilot: cannot write to stdout: {}",
                errors::describe_io_error(&err)
            );
            1
        }
    }
}

/// The single-threaded tokio runtime pilot runs on (ARCHITECTURE.md, "One process, one thread").
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// `runtime()`, or `None` after saying on stderr why it could not start (the caller exits 1).
pub(crate) fn runtime_or_report() -> Option<tokio::runtime::Runtime> {
    runtime()
        .map_err(|err| eprintln!("pilot: cannot start: {}", errors::describe_io_error(&err)))
        .ok()
}

/// Opens `/dev/null` on any of fds 0, 1 and 2 that is closed, so that a descriptor pilot opens
/// later can never land there and be handed to a child as its stdin, stdout or stderr.
fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on any integer is harmless; open returns the lowest free descriptor,
        // which is `fd` when `fd` is closed and the lower ones are open.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}
