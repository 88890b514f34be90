//! Embeds the commit hash that `pilot -version` prints, and passes the linker the options that
//! keep the static (musl) binary within its 3 MB budget.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    git_hash();
    musl_link_args();
}

fn git_hash() {
    let hash = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PILOT_GIT_HASH={hash}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
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
    link_arg("-z,pack-relative-relocs");
    // Without unwinding (panic = "abort"), nothing reads the unwind tables: drop them (see the
    // script). Cargo does not tell a build script the panic strategy, so this goes by profile,
    // and src/main.rs refuses to compile where a release profile unwinds.
    if var("PROFILE") == "release" {
        let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/discard-unwind-tables.ld");
        println!("cargo:rerun-if-changed={}", script.display());
        link_arg("--no-eh-frame-hdr");
        link_arg(&format!("-T,{}", script.display()));
        println!("cargo:rustc-cfg=pilot_no_unwind_tables");
    }
}

/// Passes a linker option (comma-separated words, as after `-Wl,`) to pilot's executables,
/// through the C compiler driver (rustc's default linker for the musl targets, or a cross
/// `*-gcc`) or straight to a linker set as the target's linker, which rustc recognises by the
/// same names (`ld`, `*-ld`, `ld.lld`, `rust-lld`).
fn link_arg(option: &str) {
    let linker = env::var("RUSTC_LINKER").unwrap_or_default();
    let stem = Path::new(&linker)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    if stem == "ld" || stem.ends_with("-ld") || stem == "rust-lld" {
        for word in option.split(',') {
            println!("cargo:rustc-link-arg-bins={word}");
        }
    } else {
        println!("cargo:rustc-link-arg-bins=-Wl,{option}");
    }
}
