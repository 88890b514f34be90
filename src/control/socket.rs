//! Creating the control socket file with its mode from the first instant, and removing it.
//!
//! `bind` creates the file with the umask's mode; a `chmod` after it would leave a window in
//! which anyone the umask lets in can connect. Changing the umask is process-wide and would race
//! with anything else creating files. So the socket is bound in a fresh private directory
//! (mode 0700, next to the final path so that both are on one filesystem), given its mode there,
//! and renamed onto the final path. The rename also replaces a stale socket file atomically:
//! there is no instant without a socket at the path once pilot has started.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::errors::describe_io_error;

/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// Why the control socket cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control socket {}: {what} exists and is not a socket: pilot replaces only a stale socket", path.display())]
    NotASocket { path: PathBuf, what: &'static str },
    #[error("control socket {}: mode {mode:o} is not a permission mode (0 to 777)", path.display())]
    BadMode { path: PathBuf, mode: u32 },
    #[error("control socket {}: path too long ({len} bytes, and pilot needs {need} bytes to create it)", path.display())]
    TooLong {
        path: PathBuf,
        len: usize,
        need: usize,
    },
    #[error("control socket {}: cannot {action}: {}", path.display(), describe_io_error(error))]
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
}

/// The identity of the file pilot created, so that it removes only its own socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

/// Binds a listening socket at `path` with permission bits `mode`, replacing a stale socket.
pub fn bind(path: &Path, mode: u32) -> Result<(UnixListener, FileId), SocketError> {
    let io_error = |action: &'static str| {
        move |error: io::Error| SocketError::Io {
            path: path.to_path_buf(),
            action,
            error,
        }
    };
    if mode > 0o777 {
        return Err(SocketError::BadMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    refuse_non_socket(path)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A socket in a directory of its own (`/var/run/app/containerpilot.socket`) is common in
    // real configs, and the image may not have made the directory: make it, as `mkdir -p` would.
    if !parent.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(io_error("create its directory"))?;
    }
    let template = parent.join(".pilot-control-XXXXXX");
    // The temporary socket is `<dir>/s`: the final path's directory plus 22 bytes.
    let need = template.as_os_str().len() + 2;
    if need > MAX_SOCKET_PATH || path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(SocketError::TooLong {
            path: path.to_path_buf(),
            len: path.as_os_str().len(),
            need,
        });
    }
    let dir = nix::unistd::mkdtemp(&template)
        .map_err(|e| io_error("create a private directory beside it")(io::Error::from(e)))?;
    let staged = dir.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&staged).map_err(io_error("bind"))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(io_error("set its mode"))?;
        // The last check and the rename are not atomic together; the window only matters if
        // something creates a non-socket at the path in between, and then it is replaced by a
        // socket, as ContainerPilot would have unlinked it.
        refuse_non_socket(path)?;
        std::fs::rename(&staged, path).map_err(io_error("move it into place"))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_error("inspect it"))?;
        Ok((
            listener,
            FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
        ))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    let _ = std::fs::remove_dir(&dir);
    result
}

fn refuse_non_socket(path: &Path) -> Result<(), SocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(()),
        Ok(meta) => Err(SocketError::NotASocket {
            path: path.to_path_buf(),
            what: describe(&meta.file_type()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SocketError::Io {
            path: path.to_path_buf(),
            action: "inspect the existing file",
            error,
        }),
    }
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Removes the socket file at `path` if it is still the one pilot created (a newer pilot may
/// have replaced it since: ContainerPilot's deferred unlink could delete its successor's socket).
pub fn remove(path: &Path, id: FileId) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.dev() == id.dev
        && meta.ino() == id.ino
    {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn creates_the_socket_with_the_mode_and_leaves_no_temporary_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        for mode in [0o600, 0o660, 0o666] {
            let (_listener, id) = bind(&path, mode).unwrap();
            assert_eq!(mode_of(&path), mode, "{mode:o}");
            remove(&path, id);
            assert!(!path.exists());
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn replaces_a_stale_socket_but_not_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        let (listener, _) = bind(&path, 0o600).unwrap();
        // The new socket answers at the path.
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let _ = listener.accept().unwrap();

        let file = dir.path().join("file");
        std::fs::write(&file, "keep me").unwrap();
        let err = bind(&file, 0o600).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "control socket {}: a regular file exists and is not a socket: pilot replaces only a stale socket",
                file.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        assert!(matches!(
            bind(dir.path(), 0o600),
            Err(SocketError::NotASocket { .. })
        ));
    }

    #[test]
    fn removes_only_its_own_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let (_old, old_id) = bind(&path, 0o600).unwrap();
        let (_new, new_id) = bind(&path, 0o600).unwrap();
        assert_ne!(old_id, new_id);
        remove(&path, old_id);
        assert!(path.exists(), "the newer socket must survive");
        remove(&path, new_id);
        assert!(!path.exists());
    }

    #[test]
    fn makes_the_directory_it_lives_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/cp.socket");
        let (_listener, _) = bind(&path, 0o600).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(&dir.path().join("sub/dir")), 0o755);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let missing = dir.path().join("file/dir/c.sock");
        let err = bind(&missing, 0o600).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("control socket {}: cannot", missing.display())),
            "{err}"
        );
        let long = dir.path().join("x".repeat(120));
        assert!(matches!(
            bind(&long, 0o600),
            Err(SocketError::TooLong { .. })
        ));
        assert!(matches!(
            bind(&dir.path().join("s"), 0o1777),
            Err(SocketError::BadMode { .. })
        ));
    }
}
