//! The control socket: HTTP/1.1 over a unix socket, and the client the subcommands use
//! (`-putenv`, `-putmetric`, `-reload`, `-maintenance`, `-ping`).
//!
//! The server acts directly on what it shares with the rest of pilot (`Handles`): the children's
//! `Environment` for `/v3/environ`, the `Metrics` and the event `Bus` for `/v3/metric`. What only
//! the daemon can do (reload, maintenance, its status) it asks for with a `DaemonRequest` and
//! waits, with a timeout, for the one-shot reply. It never blocks the daemon: requests are queued
//! on a bounded channel the daemon reads when it likes.
//!
//! This module owns the socket file (created with its mode, replacing a stale one, removed on
//! stop if it is still its own), the endpoints (`api`), and the wire format (`docs/control.md`).
//! The HTTP limits, the `DaemonRequest`s and the `StatusReport` are `crate::serve`'s, shared with
//! the telemetry port. It must not reload, stop or start anything itself.
//!
//! `GET /v3/watches` (watch instances, for `-render`) reads the watches' shared `Snapshots`
//! directly rather than asking the daemon: it is read often, and must not queue behind the
//! daemon's loop.

pub mod api;
pub mod client;
mod events;
pub mod socket;
pub mod status;
pub mod subcommand;

use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use socket::SocketError;

use crate::config;
use crate::events::Bus;
use crate::exec::Environment;
use crate::metrics::Metrics;
use crate::serve::DaemonRequest;
use crate::serve::http::{self, Limits};

/// What the control server works with.
#[derive(Clone)]
pub struct Handles {
    /// The environment children get; `/v3/environ` changes it.
    pub env: Environment,
    /// `/v3/metric` publishes a `Metric` event (`<key>|<value>`) for each value it applies.
    pub bus: Bus,
    /// `/v3/metric` applies values here; every request is counted here.
    pub metrics: Metrics,
    pub daemon: mpsc::Sender<DaemonRequest>,
    /// `GET /v3/watches` answers these.
    pub watches: crate::watches::Snapshots,
}

/// Why the control server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("control socket {}: cannot listen: {}", path.display(), crate::errors::describe_io_error(error))]
    Listen {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The running control server. Dropping it stops accepting and removes the socket file.
pub struct Server {
    path: PathBuf,
    id: socket::FileId,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Creates the socket at `control.socket` with mode `control.mode` and serves it, with the
    /// default limits. Must be called inside the tokio runtime.
    pub fn start(control: &config::Control, handles: Handles) -> Result<Server, ControlError> {
        Server::start_with(control, handles, Limits::default())
    }

    /// `start` with other limits (tests).
    pub fn start_with(
        control: &config::Control,
        handles: Handles,
        limits: Limits,
    ) -> Result<Server, ControlError> {
        let path = control.socket.clone();
        let (std_listener, id) = socket::bind(&path, control.mode)?;
        let listen_error = |error| ControlError::Listen {
            path: path.clone(),
            error,
        };
        std_listener.set_nonblocking(true).map_err(listen_error)?;
        let listener = tokio::net::UnixListener::from_std(std_listener).map_err(|error| {
            socket::remove(&path, id);
            listen_error(error)
        })?;
        let (stop, stopped) = watch::channel(false);
        let handler = api::handler(handles, limits.clone());
        let task = tokio::spawn(http::serve(listener, limits, handler, stopped, "control"));
        Ok(Server {
            path,
            id,
            stop,
            task: Some(task),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting connections and removes the socket file. Requests in progress finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        socket::remove(&self.path, self.id);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        socket::remove(&self.path, self.id);
    }
}
