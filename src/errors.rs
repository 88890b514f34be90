//! How pilot words errors in its messages: OS errors as a lowercase phrase without the
//! `(os error N)` suffix, and the innermost cause of a chain, which is the precise one
//! (`connection refused` rather than `error trying to connect`).

use std::error::Error;
use std::io;

/// An OS error as a lowercase phrase without the `(os error N)` suffix.
pub fn describe_io_error(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => desc.to_string(),
            }
        }
        None => err.to_string(),
    }
}

/// The innermost cause of an error chain, OS errors in words.
pub fn innermost_cause(err: &(dyn Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    match last.downcast_ref::<io::Error>() {
        Some(io) => describe_io_error(io),
        None => last.to_string(),
    }
}
