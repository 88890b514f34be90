//! The config's own subcommands: `-template` (print the config rendered) and `-validate` (load
//! it as the daemon would and print every problem).

use std::io::Write;

use crate::cli::Args;

/// `-template`: prints the rendered config, or writes it to `-out` (mode 0644). Exit status 2
/// for a config that cannot be read or rendered, 1 when the output cannot be written.
pub fn template(args: &Args) -> i32 {
    let env = super::process_env();
    let Some(path) = super::resolve_path(args.config.as_deref(), &env) else {
        return crate::usage_error(
            "-template needs a config: give -config FILE, or set PILOT_CONFIG or CONTAINERPILOT",
        );
    };
    let text = match super::render_file(&path, &env) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("pilot: {err}");
            return 2;
        }
    };
    let written = match args.out.as_deref() {
        None | Some("") | Some("-") => {
            let mut stdout = std::io::stdout();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        }
        Some(out) => {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(out)
                .and_then(|mut file| file.write_all(text.as_bytes()))
        }
    };
    match written {
        Ok(()) => 0,
        Err(err) => {
            eprintln!(
                "pilot: could not write config file {}: {}",
                args.out.as_deref().unwrap_or("-"),
                crate::errors::describe_io_error(&err)
            );
            1
        }
    }
}

/// `-validate`: loads the config as the daemon would and prints every problem. Exit status 0
/// when it is valid, 2 when it is not (or cannot be read).
pub fn validate(args: &Args) -> i32 {
    let ctx = super::LoadContext::from_process();
    let Some(path) = super::resolve_path(args.config.as_deref(), &ctx.env) else {
        return crate::usage_error(
            "-validate needs a config: give -config FILE, or set PILOT_CONFIG or CONTAINERPILOT",
        );
    };
    match super::load_with_warnings(&path, &ctx) {
        Ok(super::Loaded { config, warnings }) => {
            let mut text = String::new();
            for warning in &warnings {
                text.push_str(&format!("{warning}\n"));
            }
            // The jobs written: not the one telemetry adds.
            let jobs = config
                .jobs
                .iter()
                .filter(|j| j.kind == super::JobKind::User)
                .count();
            let with_warnings = match warnings.len() {
                0 => String::new(),
                1 => ", 1 warning".to_string(),
                n => format!(", {n} warnings"),
            };
            text.push_str(&format!(
                "config {} is valid: {jobs} job(s), {} watch(es){with_warnings}\n",
                path.display(),
                config.watches.len()
            ));
            crate::print_or_fail(&text)
        }
        Err(err) => {
            eprintln!("pilot: {err}");
            2
        }
    }
}
