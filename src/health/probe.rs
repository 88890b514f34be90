//! `health.http` and `health.tcp`: checks that need no program in the image.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;

use super::{CheckSpec, HealthResult, publish_exit};
use crate::config::Check;
use crate::consul::transport::{self, Connector};
use crate::errors::describe_io_error;

/// The HTTP client of one checker (with the Consul client's body type, so that the binary holds
/// one copy of hyper's client code, not two). Connections are not kept between checks: each check proves
/// that a new connection can be made, as Consul's HTTP checks do.
pub(super) struct Prober {
    http: Option<Client<Connector, Full<Bytes>>>,
}

impl Prober {
    pub(super) fn new(check: &Check) -> Prober {
        let Check::Http { url } = check else {
            return Prober { http: None };
        };
        // Certificates of `https` URLs are verified against the system's authorities; without
        // them an `https` check fails to connect and says why.
        let tls = if url.starts_with("https:") {
            match transport::system_config() {
                Ok(tls) => Some(Arc::new(tls)),
                Err(err) => {
                    tracing::warn!("health check {url}: {err}");
                    None
                }
            }
        } else {
            None
        };
        Prober {
            http: Some(build(Connector::tcp(tls, None))),
        }
    }

    pub(super) async fn http(&self, spec: &CheckSpec, url: &str) -> HealthResult {
        let Some(client) = &self.http else {
            return HealthResult::Checked {
                passed: false,
                output: format!("HTTP GET {url}: not an http check"),
            };
        };
        let (passed, output) = get(client, url, spec.timeout()).await;
        report(spec, passed, output)
    }
}

fn build(connector: Connector) -> Client<Connector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// GETs `url` once, within `timeout`: passed on 2xx and 3xx. Returns whether it passed and a
/// stable one-line output (`HTTP GET <url>: 200 OK`).
pub async fn http_check(url: &str, timeout: Duration) -> (bool, String) {
    let tls = if url.starts_with("https:") {
        transport::system_config().ok().map(Arc::new)
    } else {
        None
    };
    get(&build(Connector::tcp(tls, None)), url, timeout).await
}

async fn get(
    client: &Client<Connector, Full<Bytes>>,
    url: &str,
    timeout: Duration,
) -> (bool, String) {
    let uri = match url.parse::<Uri>() {
        Ok(uri) if uri.host().is_some() && matches!(uri.scheme_str(), Some("http" | "https")) => {
            uri
        }
        _ => return (false, format!("HTTP GET {url}: invalid url")),
    };
    let request = match Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("User-Agent", "pilot health check")
        .body(Full::new(Bytes::new()))
    {
        Ok(request) => request,
        Err(err) => return (false, format!("HTTP GET {url}: {err}")),
    };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => (
            false,
            format!("HTTP GET {url}: timed out after {timeout:?}"),
        ),
        Ok(Err(err)) => (
            false,
            format!("HTTP GET {url}: {}", crate::errors::innermost_cause(&err)),
        ),
        Ok(Ok(response)) => {
            let status = response.status();
            // The body is not read: the status is the verdict, and the connection is not reused.
            let passed = status.is_success() || status.is_redirection();
            let reason = status.canonical_reason().unwrap_or("");
            let output = format!("HTTP GET {url}: {} {reason}", status.as_u16());
            (passed, output.trim_end().to_string())
        }
    }
}

pub(super) async fn tcp(spec: &CheckSpec, address: &str) -> HealthResult {
    let (passed, output) = tcp_check(address, spec.timeout()).await;
    report(spec, passed, output)
}

/// Connects to `address` (`host:port`) once, within `timeout`. Returns whether it connected
/// and a stable one-line output (`TCP connect <address>: success`).
pub async fn tcp_check(address: &str, timeout: Duration) -> (bool, String) {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => (true, format!("TCP connect {address}: success")),
        Ok(Err(err)) => (
            false,
            format!("TCP connect {address}: {}", describe_io_error(&err)),
        ),
        Err(_) => (
            false,
            format!("TCP connect {address}: timed out after {timeout:?}"),
        ),
    }
}

fn report(spec: &CheckSpec, passed: bool, output: String) -> HealthResult {
    let name = spec.name();
    if passed {
        tracing::debug!("{name} passed: {output}");
    } else {
        tracing::warn!("{name} failed: {output}");
    }
    publish_exit(spec, passed, &format!("{name}: {output}"));
    HealthResult::Checked { passed, output }
}
