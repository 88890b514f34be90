//! The control socket's endpoints (`docs/control.md` is the reference).
//!
//! Every answer is a one-line plain-text message, except the JSON of maintenance and status.
//! Every request is counted into `containerpilot_control_http_requests{code,path}`; unknown
//! paths under `path="unknown"`, so that a client cannot grow the label set.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

use super::status::V3Status;
use super::{Handles, events};
use crate::events::{Event, EventCode};
use crate::serve::http::{self, Body, Handler, Limits};
use crate::serve::{DaemonRequest, SignalAnswer, ask, ask_status};

struct State {
    handles: Handles,
    limits: Limits,
    streams: events::Streams,
}

/// The handler the control server runs for each request.
pub fn handler(handles: Handles, limits: Limits) -> Handler {
    let state = Arc::new(State {
        handles,
        limits,
        streams: events::Streams::default(),
    });
    Arc::new(move |req| {
        let state = state.clone();
        Box::pin(async move { handle(&state, req).await })
            as Pin<Box<dyn Future<Output = Response<Body>> + Send>>
    })
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (label, response) = route(state, req, &path).await;
    state
        .handles
        .metrics
        .count_control_request(label, response.status().as_u16());
    if response.status().is_client_error() || response.status().is_server_error() {
        tracing::debug!("control: {path}: {}", response.status());
    }
    response
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Environ,
    Events,
    Metric,
    Reload,
    Maintenance(bool),
    Ping,
    Signal,
    Status,
    Watches,
}

/// The endpoint at `path`, with the `path` label it is counted under.
fn endpoint(path: &str) -> Option<(&'static str, Endpoint)> {
    Some(match path {
        "/v3/environ" => ("/v3/environ", Endpoint::Environ),
        // The name ContainerPilot's documentation used (its code only knew /v3/environ).
        "/v3/env" => ("/v3/env", Endpoint::Environ),
        "/v3/events" => ("/v3/events", Endpoint::Events),
        "/v3/metric" => ("/v3/metric", Endpoint::Metric),
        "/v3/reload" => ("/v3/reload", Endpoint::Reload),
        "/v3/maintenance/enable" => ("/v3/maintenance/enable", Endpoint::Maintenance(true)),
        "/v3/maintenance/disable" => ("/v3/maintenance/disable", Endpoint::Maintenance(false)),
        "/v3/ping" => ("/v3/ping", Endpoint::Ping),
        "/v3/signal" => ("/v3/signal", Endpoint::Signal),
        "/v3/status" => ("/v3/status", Endpoint::Status),
        "/v3/watches" => ("/v3/watches", Endpoint::Watches),
        _ => return None,
    })
}

impl Endpoint {
    /// The method it needs, or `None` when any will do.
    fn method(self) -> Option<&'static str> {
        match self {
            // Any method, as in ContainerPilot: its client used GET, some scripts POST.
            Endpoint::Ping => None,
            Endpoint::Events | Endpoint::Status | Endpoint::Watches => Some("GET"),
            _ => Some("POST"),
        }
    }
}

/// The answer, and the `path` label it is counted under.
async fn route(
    state: &State,
    req: Request<Incoming>,
    path: &str,
) -> (&'static str, Response<Body>) {
    let Some((label, endpoint)) = endpoint(path) else {
        return (
            "unknown",
            http::text(StatusCode::NOT_FOUND, format!("unknown path {path}")),
        );
    };
    let method = req.method();
    let allowed = match endpoint.method() {
        None => true,
        Some("GET") => method == Method::GET || method == Method::HEAD,
        Some(_) => method == Method::POST,
    };
    if !allowed {
        let wanted = endpoint.method().unwrap_or("GET");
        return (label, http::method_not_allowed(method, path, wanted));
    }
    let response = match endpoint {
        Endpoint::Environ => environ(state, req).await,
        Endpoint::Events => events::stream(
            &state.handles.bus,
            &state.streams,
            state.limits.stream_keep_alive,
        ),
        Endpoint::Metric => metric(state, req).await,
        Endpoint::Reload => reload(state).await,
        Endpoint::Maintenance(enable) => maintenance(state, enable).await,
        Endpoint::Ping => http::text(StatusCode::OK, "ok"),
        Endpoint::Signal => signal(state, req).await,
        Endpoint::Status => status(state).await,
        // Every watch with its healthy instances, as `-render` reads them.
        Endpoint::Watches => http::json(StatusCode::OK, &state.handles.watches.all()),
    };
    (label, response)
}

/// Reads the body as a JSON object.
async fn json_object(
    req: Request<Incoming>,
    limits: &Limits,
    what: &str,
) -> Result<serde_json::Map<String, Value>, Response<Body>> {
    let body = http::read_body(req, limits).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|err| {
        http::text(
            StatusCode::BAD_REQUEST,
            format!("request body is not valid JSON: {err}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(http::text(
            StatusCode::BAD_REQUEST,
            format!(
                "request body must be a JSON object of {what}, got {}",
                describe(&other)
            ),
        )),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `POST /v3/environ`: `{"K": "V"}` sets, `{"K": ""}` and `{"K": null}` unset. All or nothing.
async fn environ(state: &State, req: Request<Incoming>) -> Response<Body> {
    let map = match json_object(req, &state.limits, "strings").await {
        Ok(map) => map,
        Err(response) => return response,
    };
    let mut changes: Vec<(String, Option<String>)> = Vec::with_capacity(map.len());
    for (key, value) in map {
        if let Err(message) = check_env_key(&key) {
            return http::text(StatusCode::BAD_REQUEST, message);
        }
        let value = match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if s.contains('\0') => {
                return http::text(
                    StatusCode::BAD_REQUEST,
                    format!("value of environment variable {key:?} must not contain a NUL byte"),
                );
            }
            Value::String(s) => Some(s),
            other => {
                return http::text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "value of environment variable {key:?} must be a string or null, got {}",
                        describe(&other)
                    ),
                );
            }
        };
        changes.push((key, value));
    }
    let env = &state.handles.env;
    // Names only: values may be secrets.
    let mut set = Vec::new();
    let mut unset = Vec::new();
    for (key, value) in changes {
        match value {
            Some(value) => {
                env.set(&key, value);
                set.push(key);
            }
            None => {
                env.remove(&key);
                unset.push(key);
            }
        }
    }
    tracing::info!(
        "control: environment updated: set [{}], unset [{}]",
        set.join(", "),
        unset.join(", ")
    );
    http::text(StatusCode::OK, "ok")
}

/// An environment variable name a child can receive: not empty, no `=`, no NUL.
pub fn check_env_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err("environment variable name must not be empty".into())
    } else if key.contains('=') {
        Err(format!(
            "environment variable name {key:?} must not contain '='"
        ))
    } else if key.contains('\0') {
        Err(format!(
            "environment variable name {key:?} must not contain a NUL byte"
        ))
    } else {
        Ok(())
    }
}

/// `POST /v3/metric`: `{"key": 42}` or `{"key": "42"}` for each metric. All or nothing.
async fn metric(state: &State, req: Request<Incoming>) -> Response<Body> {
    let map = match json_object(req, &state.limits, "metric values").await {
        Ok(map) => map,
        Err(response) => return response,
    };
    let mut puts = Vec::with_capacity(map.len());
    for (key, value) in map {
        let number = match &value {
            Value::Number(n) => n.as_f64(),
            // ContainerPilot trimmed the text before parsing it.
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let Some(number) = number else {
            let shown = match &value {
                Value::String(s) => format!("{s:?}"),
                other => describe(other).to_string(),
            };
            return http::text(
                StatusCode::BAD_REQUEST,
                format!(
                    "value of metric {key:?} must be a number or a numeric string, got {shown}"
                ),
            );
        };
        puts.push((key, number));
    }
    if let Err(err) = state.handles.metrics.put(&puts) {
        return http::text(StatusCode::BAD_REQUEST, err.to_string());
    }
    for (key, value) in &puts {
        state
            .handles
            .bus
            .publish(Event::new(EventCode::Metric, format!("{key}|{value}")));
    }
    http::text(StatusCode::OK, "ok")
}

async fn reload(state: &State) -> Response<Body> {
    let (tx, rx) = oneshot::channel();
    let timeout = state.limits.reload_timeout;
    match ask(
        &state.handles.daemon,
        DaemonRequest::Reload(tx),
        rx,
        timeout,
        "finish reloading",
    )
    .await
    {
        Ok(Ok(())) => http::text(StatusCode::OK, "ok"),
        Ok(Err(message)) => http::lines(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload failed, the running config is kept: {message}"),
        ),
        Err(response) => response,
    }
}

async fn maintenance(state: &State, enable: bool) -> Response<Body> {
    let (reply, rx) = oneshot::channel();
    let timeout = state.limits.daemon_timeout;
    let request = DaemonRequest::Maintenance { enable, reply };
    match ask(&state.handles.daemon, request, rx, timeout, "answer").await {
        Ok(updated) => http::json(StatusCode::OK, &serde_json::json!({ "updated": updated })),
        Err(response) => response,
    }
}

/// `POST /v3/signal`: `{"job": "app", "signal": "HUP"}` sends the signal to the job's process
/// group: 404 for a job the config does not have, 409 for one that is not running.
async fn signal(state: &State, req: Request<Incoming>) -> Response<Body> {
    let map = match json_object(req, &state.limits, "a job and a signal").await {
        Ok(map) => map,
        Err(response) => return response,
    };
    let text = |key: &str| match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) if key == "signal" => Some(n.to_string()),
        _ => None,
    };
    let (job, name) = match (text("job"), text("signal")) {
        (Some(job), Some(name)) => (job, name),
        _ => {
            return http::text(
                StatusCode::BAD_REQUEST,
                r#"request body needs "job" and "signal": {"job": "app", "signal": "HUP"}"#,
            );
        }
    };
    let Some(signal) = crate::supervisor::parse_signal(&name) else {
        return http::text(
            StatusCode::BAD_REQUEST,
            format!("{name:?} is not a signal: use a name such as HUP or SIGTERM, or a number"),
        );
    };
    let (reply, rx) = oneshot::channel();
    let request = DaemonRequest::Signal {
        job: job.clone(),
        signal,
        reply,
    };
    let signal = crate::supervisor::signal_name(signal);
    match ask(
        &state.handles.daemon,
        request,
        rx,
        state.limits.daemon_timeout,
        "answer",
    )
    .await
    {
        Ok(SignalAnswer::Sent) => {
            tracing::info!("control: sent {signal} to job {job:?}");
            http::text(StatusCode::OK, "ok")
        }
        Ok(SignalAnswer::UnknownJob) => {
            http::text(StatusCode::NOT_FOUND, format!("no job named {job:?}"))
        }
        Ok(SignalAnswer::NotRunning) => http::text(
            StatusCode::CONFLICT,
            format!("job {job:?} is not running: no process to send {signal} to"),
        ),
        Err(response) => response,
    }
}

async fn status(state: &State) -> Response<Body> {
    match ask_status(&state.handles.daemon, state.limits.daemon_timeout).await {
        Ok(report) => http::json(
            StatusCode::OK,
            &V3Status {
                version: crate::VERSION,
                report: &report,
            },
        ),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys() {
        assert!(check_env_key("A_1").is_ok());
        assert_eq!(
            check_env_key("").unwrap_err(),
            "environment variable name must not be empty"
        );
        assert_eq!(
            check_env_key("A=B").unwrap_err(),
            "environment variable name \"A=B\" must not contain '='"
        );
        assert!(check_env_key("A\0").is_err());
    }
}
