//! Embeds the commit hash that `pilot -version` prints, and passes the linker the options that
//! keep the static (musl) binary within its 3 MB budget.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    git_hash();
    musl_link_args();
}

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn git_hash() {
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PILOT_GIT_HASH={hash}");
    // Rebuild when the commit changes: HEAD moves to another branch or commit, or the branch
    // moves. Git says where those files are: in a worktree (`git worktree add`) `.git` is a file
    // and they live elsewhere. Only files that exist are named (cargo counts a missing one as
    // changed on every build), and only this branch's (not every branch of a shared repository).
    let mut watched = vec![git(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-path",
        "HEAD",
    ])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            &branch,
        ]));
        watched.push(git(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "packed-refs",
        ]));
    }
    let watched: Vec<String> = watched
        .into_iter()
        .flatten()
        .filter(|p| Path::new(p).exists())
        .collect();
    if watched.is_empty() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    for path in watched {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// Linker options for pilot's executables on a Linux musl target (x86_64, aarch64), the static
/// build that ships. Here rather than in `.cargo/config.toml`: a build script's link arguments
/// reach only pilot's own executables, cannot be silently replaced by a `RUSTFLAGS` variable, and
/// can name the linker script by its absolute path. The figures are in README.md ("Building").
fn musl_link_args() {
    println!("cargo::rustc-check-cfg=cfg(pilot_no_unwind_tables)");
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "musl" {
        return;
    }
    // A static-PIE binary relocates itself at start-up: ~5,000 pointers (vtables, string tables)
    // take a 24-byte R_*_RELATIVE entry each, about 120 KB. DT_RELR (packed relative relocations)
    // encodes the same in a few KB; musl's start-up code (rcrt1.o) applies them since musl 1.2.4
    // (Rust's musl targets ship 1.2.5). The binary stays position-independent.
    link_args(&["-z", "pack-relative-relocs"]);
    // Without unwinding (panic = "abort"), nothing reads the unwind tables: drop them (see the
    // script). Cargo does not tell a build script the panic strategy, so this goes by profile,
    // and src/main.rs refuses to compile where a release profile unwinds.
    if var("PROFILE") == "release" {
        let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/discard-unwind-tables.ld");
        println!("cargo:rerun-if-changed={}", script.display());
        link_args(&["-T", &script.display().to_string()]);
        println!("cargo:rustc-cfg=pilot_no_unwind_tables");
    }
}

/// Passes linker options to pilot's executables, in the forms that the C compiler driver
/// (rustc's default linker for the musl targets, or a cross `*-gcc` or clang) and a linker set
/// as the target's linker (`ld`, `ld.lld`, `rust-lld`) both understand: `-z KEYWORD` and
/// `-T SCRIPT`, without `-Wl,`.
fn link_args(args: &[&str]) {
    for arg in args {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
