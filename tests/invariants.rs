//! Architecture invariants that a grep can check (ARCHITECTURE.md, "Invariants").
//!
//! Invariant 1, "only the reaper waits": pilot reaps every child with `waitpid(-1)`, so any other
//! wait would race it and lose an exit status. Code outside `src/supervisor/` must therefore
//! neither wait on a process nor create one (a `std::process::Command` invites `.status()` or
//! `.output()`, which wait).
//!
//! The layers: each module of `src/` imports only from lower layers (`LAYERS`), so that the
//! dependencies form no cycle.

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

/// The layers of `src/`, bottom up (ARCHITECTURE.md, "Layers"). A module may use what is in a
/// lower layer, never what is in its own or a higher one: so dependencies point down and no
/// two modules import each other. `lib` is the crate root (`src/lib.rs`), `main` the binary.
const LAYERS: &[&[&str]] = &[
    &["errors", "base64", "cli", "events"],
    &["supervisor", "template"],
    &["config"],
    &["logging", "metrics", "consul"],
    &["exec"],
    &["health"],
    &["jobs", "watches"],
    &["serve"],
    &["telemetry"],
    &["control"],
    &["render", "app", "init"],
    &["lib"],
    &["main"],
];

/// Items of the crate root that any module may use: the version constants and the helpers the
/// subcommands share, which use nothing of the crate but `errors`.
const ROOT_ITEMS: &[&str] = &[
    "VERSION",
    "COMPAT_VERSION",
    "GIT_HASH",
    "runtime",
    "runtime_or_report",
    "usage_error",
    "print_or_fail",
];

/// The first component of each `crate::` path in `source`'s code (comments skipped), with its
/// line: `use crate::{a, b::c}` gives `a` and `b`.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code.split(" // ").next().unwrap_or(code);
        while let Some(at) = rest.find("crate::") {
            let macro_crate = rest[..at].ends_with('$');
            rest = &rest[at + "crate::".len()..];
            if macro_crate {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            start = false;
                            let name = ident(&group[j..]);
                            if !name.is_empty() {
                                found.push((i + 1, name));
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    found.push((i + 1, name));
                }
            }
        }
    }
    found
}

/// The module a file of `src/` belongs to: `src/jobs/task.rs` is `jobs`, `src/cli.rs` is `cli`.
fn module_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap();
    name.strip_suffix(".rs").unwrap_or(name).to_string()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every import of `files` that does not point to a lower layer, as `file:line: a -> b`.
fn back_edges(src: &Path, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut report = Vec::new();
    for (file, text) in files {
        let from = module_of(src, file);
        let Some(from_layer) = layer_of(&from) else {
            report.push(format!(
                "{}: module `{from}` is in no layer",
                file.display()
            ));
            continue;
        };
        for (line, to) in crate_paths(text) {
            if to == from || ROOT_ITEMS.contains(&to.as_str()) {
                continue;
            }
            match layer_of(&to) {
                Some(to_layer) if to_layer < from_layer => {}
                Some(_) => report.push(format!(
                    "{}:{line}: {from} -> {to}: `{to}` is not in a lower layer than `{from}`",
                    file.display()
                )),
                None => report.push(format!(
                    "{}:{line}: {from} -> crate::{to}: neither a module in a layer nor a root item",
                    file.display()
                )),
            }
        }
    }
    report
}

fn sources() -> (PathBuf, Vec<(PathBuf, String)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    (src, files)
}

#[test]
fn modules_import_only_from_lower_layers() {
    let (src, files) = sources();
    let modules: std::collections::BTreeSet<String> =
        files.iter().map(|(f, _)| module_of(&src, f)).collect();
    for module in &modules {
        assert!(
            layer_of(module).is_some(),
            "module `{module}` is in no layer: add it to LAYERS (and ARCHITECTURE.md, \"Layers\")"
        );
    }
    let report = back_edges(&src, &files);
    assert!(
        report.is_empty(),
        "imports that point up or sideways (ARCHITECTURE.md, \"Layers\"):\n{}",
        report.join("\n")
    );
}

#[test]
fn the_layer_check_finds_a_back_edge() {
    assert_eq!(
        crate_paths(
            "use crate::{config, events::{Bus, Event}};\nlet x = crate::jobs::Phase::Running; // crate::app\n// use crate::control;\nmacro_rules! m { () => { $crate::x } }\n"
        ),
        vec![
            (1, "config".to_string()),
            (1, "events".to_string()),
            (2, "jobs".to_string()),
        ]
    );
    let src = Path::new("/src");
    let files =
        vec![
        (
            src.join("health/exec.rs"),
            "use crate::exec::Launch;\nuse crate::jobs::Environment;\nlet v = crate::VERSION;\n"
                .to_string(),
        ),
        (
            src.join("telemetry/mod.rs"),
            "use crate::control::http;\nuse crate::metrics::Metrics;\n".to_string(),
        ),
        (src.join("jobs/mod.rs"), "use crate::watches::Snapshots;\n".to_string()),
    ];
    assert_eq!(
        back_edges(src, &files),
        vec![
            "/src/health/exec.rs:2: health -> jobs: `jobs` is not in a lower layer than `health`",
            "/src/telemetry/mod.rs:1: telemetry -> control: `control` is not in a lower layer than `telemetry`",
            "/src/jobs/mod.rs:1: jobs -> watches: `watches` is not in a lower layer than `jobs`",
        ]
    );
}
