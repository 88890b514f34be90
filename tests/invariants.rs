//! Architecture invariants that a grep can check (ARCHITECTURE.md, "Invariants").
//!
//! Invariant 1, "only the reaper waits": pilot reaps every child with `waitpid(-1)`, so any other
//! wait would race it and lose an exit status. Code outside `src/supervisor/` must therefore
//! neither wait on a process nor create one (a `std::process::Command` invites `.status()` or
//! `.output()`, which wait).

use std::path::{Path, PathBuf};

/// Text that must not appear in code outside `src/supervisor/`, with the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    ("waitpid", "only the reaper collects exit statuses"),
    ("waitid", "only the reaper collects exit statuses"),
    ("wait4", "only the reaper collects exit statuses"),
    ("tokio::process", "tokio's child handling waits on its own"),
    (
        "process::Command",
        "spawn through supervisor::Supervisor::spawn",
    ),
    (
        "Command::new",
        "spawn through supervisor::Supervisor::spawn",
    ),
    (".wait()", "only the reaper waits"),
    (".try_wait(", "only the reaper waits"),
    (".wait_with_output(", "only the reaper waits"),
    (".output()", "Command::output waits"),
    ("libc::fork", "spawn through supervisor::Supervisor::spawn"),
    (
        "unistd::fork",
        "spawn through supervisor::Supervisor::spawn",
    ),
];

/// The offending lines of `source`: `(line number, pattern, reason)`. Comment lines are skipped,
/// since documentation may name what it forbids.
fn violations(source: &str) -> Vec<(usize, &'static str, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (pattern, reason) in FORBIDDEN {
            if code.contains(pattern) {
                found.push((i + 1, *pattern, *reason));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_supervisor_waits_on_or_creates_processes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let supervisor = src.join("supervisor");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 3, "found no sources under {}", src.display());
    let mut report = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&supervisor)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, pattern, reason) in violations(&text) {
            report.push(format!("{}:{line}: `{pattern}`: {reason}", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "invariant \"only the reaper waits\" broken:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_scanner_finds_what_it_must() {
    let bad = "fn f() {\n    let out = std::process::Command::new(\"ls\").output();\n    child.wait();\n    // waitpid in a comment is fine\n    nix::sys::wait::waitpid(pid, None);\n}\n";
    let found: Vec<(usize, &str)> = violations(bad)
        .into_iter()
        .map(|(l, p, _)| (l, p))
        .collect();
    assert_eq!(
        found,
        vec![
            (2, "process::Command"),
            (2, "Command::new"),
            (2, ".output()"),
            (3, ".wait()"),
            (5, "waitpid"),
        ]
    );
    assert!(violations("let x = response.status();\n").is_empty());
}
