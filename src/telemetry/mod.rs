//! Telemetry: the HTTP server of `telemetry.port` with `/metrics` (the Prometheus text format of
//! `crate::metrics`) and `/status` (ContainerPilot's JSON, `status.rs`).
//!
//! This module owns the metrics' exposition; the values are `crate::metrics`'. It must not register anything in
//! Consul (the telemetry job does that) nor decide what a job's status is: `/status` asks the
//! daemon with a `DaemonRequest::Status`, as the control socket does. See `docs/telemetry.md`.

pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use status::CompatStatus;

use crate::config;
use crate::metrics::Metrics;
use crate::serve::http::{self, Body, Handler, Limits};
use crate::serve::{DaemonRequest, ask_status};

/// The content type of the Prometheus text format that `/metrics` serves.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the telemetry server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "telemetry: cannot listen on {address}: {}",
        crate::errors::describe_io_error(error)
    )]
    Listen {
        address: SocketAddr,
        error: std::io::Error,
    },
}

/// The running telemetry server. Dropping it stops accepting connections.
pub struct Server {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `/metrics` and `/status` at `telemetry.address:telemetry.port`, with the default
    /// limits. Must be called inside the tokio runtime.
    pub fn start(
        telemetry: &config::Telemetry,
        metrics: Metrics,
        daemon: mpsc::Sender<DaemonRequest>,
    ) -> Result<Server, TelemetryError> {
        let address = SocketAddr::new(telemetry.address, telemetry.port);
        Server::start_at(address, metrics, daemon, Limits::default())
    }

    /// Serves at `address` (port 0 picks a free port: see `address`).
    pub fn start_at(
        address: SocketAddr,
        metrics: Metrics,
        daemon: mpsc::Sender<DaemonRequest>,
        limits: Limits,
    ) -> Result<Server, TelemetryError> {
        let listen_error = |error| TelemetryError::Listen { address, error };
        // std's bind sets SO_REUSEADDR, so a restarted pilot can listen at once.
        let std_listener = std::net::TcpListener::bind(address).map_err(listen_error)?;
        std_listener.set_nonblocking(true).map_err(listen_error)?;
        let bound = std_listener.local_addr().map_err(listen_error)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(listen_error)?;
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(State {
            metrics,
            daemon,
            limits: limits.clone(),
        });
        let handler: Handler = Arc::new(move |req| {
            let state = state.clone();
            Box::pin(async move { handle(&state, req).await })
                as Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        });
        let task = tokio::spawn(http::serve(listener, limits, handler, stopped, "telemetry"));
        Ok(Server {
            address: bound,
            stop,
            task: Some(task),
        })
    }

    /// The address it listens at.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections; requests in progress finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct State {
    metrics: Metrics,
    daemon: mpsc::Sender<DaemonRequest>,
    limits: Limits,
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/status");
    if !known {
        return http::text(StatusCode::NOT_FOUND, format!("unknown path {path}"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return http::method_not_allowed(req.method(), path, "GET");
    }
    if path == "/metrics" {
        let mut response = Response::new(Body::from(state.metrics.encode()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
        return response;
    }
    match ask_status(&state.daemon, state.limits.daemon_timeout).await {
        Ok(report) => http::json(
            StatusCode::OK,
            &CompatStatus::new(crate::COMPAT_VERSION, crate::VERSION, &report),
        ),
        Err(response) => response,
    }
}
