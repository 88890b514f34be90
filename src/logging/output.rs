//! Where log lines go: stdout, stderr or a file that can be reopened.
//!
//! Writing never fails as far as the caller is concerned: a closed stdout (EPIPE) or a full disk
//! must not stop or crash pilot, and there is nowhere to report the failure anyway.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::LogError;
use crate::config::LogOutput;

pub(super) enum Output {
    Stdout,
    Stderr,
    File {
        path: PathBuf,
        file: File,
    },
    /// Collects the lines, for tests.
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>),
    /// Any open descriptor (a pipe, in tests).
    #[cfg(test)]
    Fd(File),
}

impl Output {
    pub(super) fn open(cfg: &LogOutput) -> Result<Self, LogError> {
        Ok(match cfg {
            LogOutput::Stdout => Output::Stdout,
            LogOutput::Stderr => Output::Stderr,
            LogOutput::File(path) => Output::File {
                file: open_file(path)?,
                path: path.clone(),
            },
        })
    }

    /// Whether this output already is what `cfg` asks for, so that a reload keeps the open file
    /// instead of opening another handle on it.
    pub(super) fn is(&self, cfg: &LogOutput) -> bool {
        match (self, cfg) {
            (Output::Stdout, LogOutput::Stdout) | (Output::Stderr, LogOutput::Stderr) => true,
            (Output::File { path, .. }, LogOutput::File(wanted)) => path == wanted,
            _ => false,
        }
    }

    /// Opens the file's path again and switches to the new handle; on failure the old one stays.
    pub(super) fn reopen(&mut self) -> Result<(), LogError> {
        if let Output::File { path, file } = self {
            // The old handle is closed by the assignment, only once the new one exists.
            *file = open_file(path)?;
        }
        Ok(())
    }

    /// Writes one whole line.
    pub(super) fn write_line(&self, line: &[u8]) {
        match self {
            Output::Stdout => write_fd(std::io::stdout().as_fd(), line),
            Output::Stderr => write_fd(std::io::stderr().as_fd(), line),
            Output::File { file, .. } => write_fd(file.as_fd(), line),
            #[cfg(test)]
            Output::Memory(buf) => buf.lock().unwrap().extend_from_slice(line),
            #[cfg(test)]
            Output::Fd(file) => write_fd(file.as_fd(), line),
        }
    }
}

/// Append, create with mode 0666 less the umask, as ContainerPilot does. The descriptor is
/// close-on-exec (the standard library's default), so children never inherit it.
fn open_file(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o666)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// One `write` call for the whole line, bypassing the standard library's stdout buffer so that
/// a line is never split between calls (and so never interleaved with another writer's output,
/// for a pipe up to PIPE_BUF bytes and for an O_APPEND file). Only a short write, which a signal
/// can cause, takes a second call for the rest.
fn write_fd(fd: BorrowedFd<'_>, mut line: &[u8]) {
    while !line.is_empty() {
        match nix::unistd::write(fd, line) {
            Ok(0) => return,
            Ok(n) => line = &line[n..],
            Err(Errno::EINTR) => {}
            // EPIPE, ENOSPC, EAGAIN on a descriptor someone made non-blocking, ...: the line is
            // lost, pilot goes on.
            Err(_) => return,
        }
    }
}
