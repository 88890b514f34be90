//! The `pilot` binary.
//!
//! This is a C entry point (`#![no_main]`): Rust's own start-up code sets SIGPIPE to "ignored"
//! before `main`, after which pilot could no longer tell which disposition it inherited, and the
//! child must get exactly that (ARCHITECTURE.md, invariant 3). Everything else is in the library.
#![no_main]

// build.rs links the static release binary without unwind tables, which only a binary that aborts
// on panic can do without: a panic that unwinds would find no tables and abort anyway.
#[cfg(all(pilot_no_unwind_tables, not(panic = "abort")))]
compile_error!(
    "build.rs drops the unwind tables from this musl release build, but its profile unwinds on \
     panic: set panic = \"abort\""
);

use std::ffi::{CStr, OsString, c_char, c_int};
use std::os::unix::ffi::OsStrExt;

/// Called by the C runtime with the process's arguments.
///
/// # Safety
///
/// `argv` must point to `argc` valid, NUL-terminated strings, as the C runtime guarantees.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args = (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid, NUL-terminated strings in `argv`.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from(std::ffi::OsStr::from_bytes(arg.to_bytes()))
        })
        .collect();
    pilot::run(args)
}
