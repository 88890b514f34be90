//! The link between the daemon and its servers: the requests they send it, and asking it with a
//! timeout.

use std::time::Duration;

use hyper::{Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::StatusReport;
use super::http::{self, Body};

/// What the control socket and the telemetry server ask the daemon. Each carries the sender of
/// its reply; the daemon answers every request it receives (dropping the sender is read as
/// "pilot is going away").
#[derive(Debug)]
pub enum DaemonRequest {
    /// `POST /v3/reload`: load the config again and apply it. Answer `Ok` once the new config is
    /// running, or the load error (the old config keeps running).
    Reload(oneshot::Sender<Result<(), String>>),
    /// `POST /v3/maintenance/enable|disable`: publish `EnterMaintenance`/`ExitMaintenance` from
    /// `global` when the mode changes. Answer whether it changed (`{"updated":true}`).
    Maintenance {
        enable: bool,
        reply: oneshot::Sender<bool>,
    },
    /// `GET /v3/status` and telemetry `/status`: answer a `StatusReport`.
    Status(oneshot::Sender<StatusReport>),
    /// `POST /v3/signal`: send `signal` to the process group of each running job named `job`.
    Signal {
        job: String,
        signal: i32,
        reply: oneshot::Sender<SignalAnswer>,
    },
}

/// What became of a `DaemonRequest::Signal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAnswer {
    Sent,
    /// The config has no job of that name.
    UnknownJob,
    /// The job has no process now.
    NotRunning,
}

/// The capacity of the daemon's request queue: enough for every connection the control socket
/// and the telemetry port serve at once to wait in it.
pub const DAEMON_QUEUE: usize = 64;

/// A channel for `DaemonRequest`s with the capacity the servers expect.
pub fn daemon_channel() -> (mpsc::Sender<DaemonRequest>, mpsc::Receiver<DaemonRequest>) {
    mpsc::channel(DAEMON_QUEUE)
}

/// Sends `request` to the daemon and waits for `reply` within `timeout`. The error is the answer
/// for the client: the daemon is gone (it dropped the channel or the reply), or it did not `what`
/// in time.
pub async fn ask<T>(
    daemon: &mpsc::Sender<DaemonRequest>,
    request: DaemonRequest,
    reply: oneshot::Receiver<T>,
    timeout: Duration,
    what: &str,
) -> Result<T, Response<Body>> {
    let gone = || {
        http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "pilot is shutting down and cannot answer",
        )
    };
    let asked = async {
        daemon.send(request).await.map_err(|_| gone())?;
        reply.await.map_err(|_| gone())
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(answer) => answer,
        Err(_) => Err(http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("pilot did not {what} within {}s", timeout.as_secs_f64()),
        )),
    }
}

/// Asks the daemon for its `StatusReport`, as `ask` does: the two servers' status pages differ
/// only in the shape they give it.
pub async fn ask_status(
    daemon: &mpsc::Sender<DaemonRequest>,
    timeout: Duration,
) -> Result<StatusReport, Response<Body>> {
    let (tx, rx) = oneshot::channel();
    ask(daemon, DaemonRequest::Status(tx), rx, timeout, "answer").await
}
