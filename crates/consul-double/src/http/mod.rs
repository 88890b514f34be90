//! The HTTP front: request pipeline (faults, logging), Go `ServeMux`-style routing (path cleaning
//! and trailing-slash redirects with 301, 404 with an empty body for unknown paths, 405 with
//! `Allow` and 200 for `OPTIONS`), and dispatch to the endpoint modules.

pub(crate) mod agent;
pub(crate) mod catalog;
pub(crate) mod control;
pub(crate) mod kv;
pub(crate) mod render;
pub(crate) mod sniff;
pub(crate) mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;

use crate::config::ConsulVersion;
use crate::log::LoggedRequest;
use crate::shared::Shared;
use crate::state::types::CheckStatus;
use util::{Query, Resp, empty, percent_decode, text, with_error_meta};

/// Returned instead of a response to make hyper drop the connection unanswered.
#[derive(Debug)]
pub(crate) struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ConnectionReset {}

/// A request as handlers see it.
#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Query,
    pub(crate) body: Bytes,
    pub(crate) token: Option<String>,
}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// A Consul API listener (faults apply, requests are logged).
    Api,
    /// The dedicated control listener (only `/_double/`).
    Control,
}

/// Entry point for every request.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    request: Request<hyper::body::Incoming>,
    reset: Arc<AtomicBool>,
    surface: Surface,
) -> Result<Resp, ConnectionReset> {
    let started = tokio::time::Instant::now();
    let received_at = std::time::SystemTime::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| raw_path.clone(), |p| p.as_str().to_string());
    let query = Query::parse(raw_query.as_deref());
    let (token_source, token) = crate::acl::extract_token(query.get("token"), &parts.headers);
    let Some(path) = percent_decode(&raw_path, false) else {
        return Ok(text(400, "400 Bad Request"));
    };
    let req = Req {
        method: parts.method.clone(),
        path,
        query,
        body,
        token: token.clone(),
    };

    let control_enabled = surface == Surface::Control || shared.cfg.control_api;
    if req.path.starts_with("/_double/") || req.path == "/_double" {
        if control_enabled {
            return Ok(control::handle(&shared, &req).await);
        }
    } else if surface == Surface::Control {
        return Ok(empty(404));
    }

    let mut entry = LoggedRequest {
        seq: 0,
        received_at,
        since_start: started.duration_since(shared.started),
        duration: std::time::Duration::ZERO,
        method: parts.method.to_string(),
        path: path_and_query,
        token_source,
        token,
        body: req.body.to_vec(),
        status: None,
    };
    if shared.faults_mut().take_reset() {
        reset.store(true, Ordering::SeqCst);
        entry.duration = started.elapsed();
        shared.log().push(entry);
        return Err(ConnectionReset);
    }
    let injected = shared.faults_mut().take_error(&req.path);
    let response = match injected {
        Some((code, body)) => {
            let r = text(code, body);
            // Health and catalog reads carry the headers of a failed RPC; KV and agent
            // endpoints none (transcript 14).
            if sets_meta_on_error(&req.path) {
                with_error_meta(r)
            } else {
                r
            }
        }
        None => route(&shared, &req, raw_query.as_deref()).await,
    };
    let response = if shared.cfg.compact_json && !req.query.has("pretty") {
        util::compact(response).await
    } else {
        response
    };
    if let Some(delay) = shared.faults().slow {
        tokio::time::sleep(delay).await;
    }
    entry.status = Some(response.status().as_u16());
    entry.duration = started.elapsed();
    shared.log().push(entry);
    Ok(response)
}

fn sets_meta_on_error(path: &str) -> bool {
    ["/v1/health/", "/v1/catalog/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Go's `path.Clean` as `ServeMux` applies it, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if p.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn redirect(method: &Method, location: &str) -> Resp {
    let mut r = if *method == Method::GET || *method == Method::HEAD {
        let mut r = empty(301);
        *r.body_mut() = http_body_util::Full::new(Bytes::from(format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(location)
        )));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    } else {
        empty(301)
    };
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// A registered mux pattern.
struct Pattern {
    path: &'static str,
    methods: &'static str,
    since_1_3: bool,
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        path: "/v1/agent/self",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/services",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/checks",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/maintenance",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/service/register",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/service/deregister/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/service/maintenance/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/service/",
        methods: "GET",
        since_1_3: true,
    },
    Pattern {
        path: "/v1/agent/check/register",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/check/deregister/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/check/pass/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/check/warn/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/check/fail/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/agent/check/update/",
        methods: "PUT",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/health/service/",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/health/checks/",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/health/node/",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/catalog/service/",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/catalog/services",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/kv/",
        methods: "GET,PUT,DELETE",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/status/leader",
        methods: "GET",
        since_1_3: false,
    },
    Pattern {
        path: "/v1/status/peers",
        methods: "GET",
        since_1_3: false,
    },
];

fn find_pattern(version: ConsulVersion, path: &str) -> Option<&'static Pattern> {
    PATTERNS
        .iter()
        .filter(|p| !p.since_1_3 || !version.is_1_0())
        .filter(|p| {
            if p.path.ends_with('/') {
                path.starts_with(p.path)
            } else {
                path == p.path
            }
        })
        .max_by_key(|p| p.path.len())
}

async fn route(shared: &Arc<Shared>, req: &Req, raw_query: Option<&str>) -> Resp {
    let version = shared.cfg.version;
    let with_query = |p: &str| match raw_query {
        Some(q) if !q.is_empty() => format!("{p}?{q}"),
        _ => p.to_string(),
    };
    let cleaned = clean_path(&req.path);
    if cleaned != req.path {
        return redirect(&req.method, &with_query(&cleaned));
    }
    let Some(pattern) = find_pattern(version, &req.path) else {
        let slash = format!("{}/", req.path);
        if find_pattern(version, &slash).is_some_and(|p| p.path == slash) {
            return redirect(&req.method, &with_query(&slash));
        }
        return empty(404);
    };
    let allow = format!("OPTIONS,{}", pattern.methods);
    if req.method == Method::OPTIONS {
        return util::with_header(empty(200), "allow", &allow);
    }
    if !pattern.methods.split(',').any(|m| m == req.method.as_str()) {
        let r = text(405, format!("method {} not allowed", req.method));
        return util::with_header(r, "allow", &allow);
    }
    let rest = &req.path[pattern.path.len()..];
    let s = shared.as_ref();
    match pattern.path {
        "/v1/agent/self" => agent::agent_self(s, req).await,
        "/v1/agent/services" => agent::services(s, req).await,
        "/v1/agent/checks" => agent::checks(s, req).await,
        "/v1/agent/maintenance" => agent::node_maintenance(s, req).await,
        "/v1/agent/service/register" => agent::register_service(s, req).await,
        "/v1/agent/service/deregister/" => agent::deregister_service(s, req, rest).await,
        "/v1/agent/service/maintenance/" => agent::service_maintenance(s, req, rest).await,
        "/v1/agent/service/" => agent::service(s, req, rest).await,
        "/v1/agent/check/register" => agent::register_check(s, req).await,
        "/v1/agent/check/deregister/" => agent::deregister_check(s, req, rest).await,
        "/v1/agent/check/pass/" => {
            agent::ttl_update(s, req, rest, Some(CheckStatus::Passing)).await
        }
        "/v1/agent/check/warn/" => {
            agent::ttl_update(s, req, rest, Some(CheckStatus::Warning)).await
        }
        "/v1/agent/check/fail/" => {
            agent::ttl_update(s, req, rest, Some(CheckStatus::Critical)).await
        }
        "/v1/agent/check/update/" => agent::ttl_update(s, req, rest, None).await,
        "/v1/health/service/" => catalog::health_service(s, req, rest).await,
        "/v1/health/checks/" => catalog::health_checks(s, req, rest).await,
        "/v1/health/node/" => catalog::health_node(s, req, rest).await,
        "/v1/catalog/service/" => catalog::catalog_service(s, req, rest).await,
        "/v1/catalog/services" => catalog::catalog_services(s, req).await,
        "/v1/kv/" => match req.method {
            Method::PUT => kv::put(s, req, rest).await,
            Method::DELETE => kv::delete(s, req, rest).await,
            _ => kv::get(s, req, rest).await,
        },
        "/v1/status/leader" => agent::status_leader(s).await,
        "/v1/status/peers" => agent::status_peers(s).await,
        _ => empty(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_cleaning_matches_go() {
        assert_eq!(
            clean_path("/v1/health/service//app"),
            "/v1/health/service/app"
        );
        assert_eq!(clean_path("/v1/./kv/../kv/x/"), "/v1/kv/x/");
        assert_eq!(clean_path("/v1/health/service/"), "/v1/health/service/");
    }

    #[test]
    fn longest_prefix_wins() {
        let p = find_pattern(ConsulVersion::V1_8_4, "/v1/agent/service/deregister/x").unwrap();
        assert_eq!(p.path, "/v1/agent/service/deregister/");
        assert_eq!(
            find_pattern(ConsulVersion::V1_8_4, "/v1/agent/service/x")
                .unwrap()
                .path,
            "/v1/agent/service/"
        );
        assert!(find_pattern(ConsulVersion::V1_0_8, "/v1/agent/service/x").is_none());
    }
}
