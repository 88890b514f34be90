//! The daemon's servers, the control socket and the telemetry server, and the channel they ask
//! the daemon through (`DaemonRequest`).
//!
//! It starts, replaces (on a reload whose settings changed) and stops them. It must not answer
//! a request: the daemon does, in its loop.

use tokio::sync::mpsc;

use crate::config::Config;
use crate::control;
use crate::metrics::Metrics;
use crate::serve::{self, DaemonRequest};
use crate::telemetry;

pub(super) struct Servers {
    control: Option<control::Server>,
    /// The mode the control socket was created with.
    control_mode: u32,
    telemetry: Option<telemetry::Server>,
    /// What the control socket and the telemetry server ask of the daemon.
    pub(super) requests: mpsc::Receiver<DaemonRequest>,
    pub(super) requests_tx: mpsc::Sender<DaemonRequest>,
}

impl Servers {
    /// No server yet; the channel is open.
    pub(super) fn new() -> Servers {
        let (requests_tx, requests) = serve::daemon_channel();
        Servers {
            control: None,
            control_mode: 0,
            telemetry: None,
            requests,
            requests_tx,
        }
    }

    /// Starts the control socket `cfg` asks for, replacing a running one whose settings changed
    /// (a reload). `handles` makes what the new server is given, with `requests_tx`.
    pub(super) fn start_control(
        &mut self,
        cfg: &Config,
        handles: impl FnOnce(mpsc::Sender<DaemonRequest>) -> control::Handles,
    ) -> Result<(), String> {
        if self
            .control
            .as_ref()
            .is_none_or(|c| c.path() != cfg.control.socket || self.control_mode != cfg.control.mode)
        {
            let handles = handles(self.requests_tx.clone());
            let server =
                control::Server::start(&cfg.control, handles).map_err(|e| e.to_string())?;
            tracing::info!("control: serving at {}", cfg.control.socket.display());
            // The old server (if any) is dropped here, after the new one listens.
            self.control = Some(server);
            self.control_mode = cfg.control.mode;
        }
        Ok(())
    }

    /// Binds the telemetry server `cfg` needs when it is not the one running, without touching
    /// the running one: a reload whose new address cannot be bound is refused while the old
    /// config and server still run. `None` when nothing is to change.
    pub(super) fn bind_telemetry(
        &self,
        cfg: &Config,
        metrics: &Metrics,
    ) -> Result<Option<telemetry::Server>, String> {
        let Some(telemetry) = &cfg.telemetry else {
            return Ok(None);
        };
        let wanted = std::net::SocketAddr::new(telemetry.address, telemetry.port);
        if self
            .telemetry
            .as_ref()
            .is_some_and(|t| t.address() == wanted)
        {
            return Ok(None);
        }
        let server = telemetry::Server::start(telemetry, metrics.clone(), self.requests_tx.clone())
            .map_err(|e| e.to_string())?;
        Ok(Some(server))
    }

    /// Puts `bound` (from `bind_telemetry`) in place of the running telemetry server, or stops
    /// the running one when `cfg` has no `telemetry`.
    pub(super) fn replace_telemetry(&mut self, cfg: &Config, bound: Option<telemetry::Server>) {
        if cfg.telemetry.is_none() {
            self.telemetry = None;
        } else if let Some(server) = bound {
            tracing::info!("telemetry: serving at {}", server.address());
            // The old server (if any) is dropped here, after the new one listens.
            self.telemetry = Some(server);
        }
    }

    /// Stops the control socket (last: stop hooks may still have used it).
    pub(super) async fn stop_control(&mut self) {
        if let Some(server) = self.control.take() {
            server.stop().await;
        }
    }
}
