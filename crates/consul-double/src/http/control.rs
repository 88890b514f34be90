//! The `/_double/` control API of the standalone binary: the same state accessors, faults and
//! request log as the Rust handle, over HTTP. Durations are Go duration strings (`1s`, `250ms`).
//! Control requests are never logged and never subject to faults.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::Method;
use serde_json::{Value, json};

use crate::decode::{Decoder, parse_json_body};
use crate::duration::{format_go_duration, parse_positive};
use crate::faults::{ErrorFault, Faults, IndexRewind};
use crate::http::Req;
use crate::http::render;
use crate::http::util::{Resp, json_value, text};
use crate::server::Server;
use crate::shared::Shared;
use crate::state::leader::{LeaderState, Leadership};
use crate::state::peers::PeerError;
use crate::state::types::CheckStatus;

fn duration_param(req: &Req, name: &str) -> Result<Option<Duration>, Resp> {
    match req.query.get(name) {
        None | Some("") => Ok(None),
        Some(raw) => parse_positive(raw)
            .map(Some)
            .map_err(|e| text(400, format!("invalid {name}: {e}"))),
    }
}

fn u64_param(req: &Req, name: &str) -> Result<Option<u64>, Resp> {
    match req.query.get(name) {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| text(400, format!("invalid {name}: {raw:?} is not a number"))),
    }
}

fn leadership_json(l: &Leadership) -> Value {
    match l {
        Leadership::Leader => {
            json!({"state": "leader", "known_leader": true, "last_contact_ms": 0})
        }
        Leadership::Follower {
            leader,
            last_contact,
        } => json!({"state": "follower", "leader": leader, "known_leader": true,
                    "last_contact_ms": last_contact.as_millis() as u64}),
        Leadership::NoLeader { last_contact } => {
            json!({"state": "none", "leader": "", "known_leader": false,
                    "last_contact_ms": last_contact.as_millis() as u64})
        }
    }
}

fn required<'a>(req: &'a Req, name: &str) -> Result<&'a str, Resp> {
    req.query
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| text(400, format!("missing {name}")))
}

fn status_param(req: &Req) -> Result<CheckStatus, Resp> {
    let raw = required(req, "status")?;
    CheckStatus::parse(raw).ok_or_else(|| text(400, format!("invalid status: {raw:?}")))
}

fn peer_result<T>(r: Result<T, PeerError>) -> Result<T, Resp> {
    r.map_err(|e| match e {
        PeerError::NoLeader(_) => text(503, e.to_string()),
        PeerError::Rejected(_) => text(400, e.to_string()),
        _ => text(404, e.to_string()),
    })
}

fn faults_json(f: &Faults) -> Value {
    json!({
        "down": f.down,
        "slow": f.slow.map(format_go_duration),
        "error": f.error.as_ref().map(|e| json!({"status": e.status, "body": e.body, "path_prefix": e.path_prefix, "remaining": e.remaining})),
        "resets": f.resets,
        "index_rewind": f.index_rewind.map(|r| json!({"by": r.by, "remaining": r.remaining})),
        "spurious_wakeups_every": f.spurious_wakeups_every.map(format_go_duration),
    })
}

fn state_json(shared: &Shared) -> Value {
    let cfg = &shared.cfg;
    shared.state.with(|st| {
        let services: serde_json::Map<String, Value> =
            st.agent.services.iter().map(|(k, s)| (k.clone(), render::agent_service(cfg, &s.record))).collect();
        let checks: serde_json::Map<String, Value> = st
            .agent
            .checks
            .iter()
            .map(|(k, c)| (k.clone(), render::check(cfg, &cfg.node_name, &c.record, 0, 0)))
            .collect();
        let catalog_services: Vec<Value> = st
            .catalog
            .services
            .iter()
            .map(|((node, _), s)| {
                let mut v = render::node_service(cfg, s);
                v["Node"] = json!(node);
                v
            })
            .collect();
        let catalog_checks: Vec<Value> = st
            .catalog
            .all_checks()
            .into_iter()
            .map(|(node, c)| render::indexed_check(cfg, node, c))
            .collect();
        let kv: Vec<Value> = st
            .catalog
            .kv
            .values()
            .map(|e| {
                json!({"Key": e.key, "Value": base64::engine::general_purpose::STANDARD.encode(&e.value), "Flags": e.flags,
                       "CreateIndex": e.create_index, "ModifyIndex": e.modify_index})
            })
            .collect();
        json!({
            "index": st.catalog.raft_index(),
            "leadership": leadership_json(&st.leader.public()),
            "blocked_queries": st.watchers.len(),
            "services": services,
            "checks": checks,
            "catalog": {"services": catalog_services, "checks": catalog_checks},
            "kv": kv,
        })
    })
}

fn requests_json(shared: &Shared, since: u64) -> Value {
    let entries: Vec<Value> = shared
        .log()
        .snapshot()
        .into_iter()
        .filter(|r| r.seq > since)
        .map(|r| {
            let received_ms = r
                .received_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            json!({
                "seq": r.seq,
                "received_at_unix_ms": received_ms,
                "since_start_ms": r.since_start.as_millis() as u64,
                "duration_ms": r.duration.as_millis() as u64,
                "method": r.method,
                "path": r.path,
                "token_source": r.token_source.as_str(),
                "token": r.token,
                "body": String::from_utf8_lossy(&r.body),
                "status": r.status,
            })
        })
        .collect();
    Value::Array(entries)
}

/// Dispatches a `/_double/...` request. Boxed because bringing listeners back up spawns the
/// accept loop that leads back here, a cycle the compiler cannot see through otherwise.
pub(crate) fn handle<'a>(
    shared: &'a Arc<Shared>,
    req: &'a Req,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + Send + 'a>> {
    Box::pin(async move {
        match control(shared, req).await {
            Ok(r) | Err(r) => r,
        }
    })
}

async fn control(shared: &Arc<Shared>, req: &Req) -> Result<Resp, Resp> {
    let what = req
        .path
        .trim_start_matches("/_double")
        .trim_start_matches('/');
    let ok = || json_value(json!({"ok": true}));
    Ok(match (req.method.clone(), what) {
        (Method::GET, "health") => text(200, "ok"),
        (Method::GET, "state") => json_value(state_json(shared)),
        (Method::GET, "requests") => {
            json_value(requests_json(shared, u64_param(req, "since")?.unwrap_or(0)))
        }
        (Method::DELETE, "requests") => {
            shared.log().clear();
            ok()
        }
        (Method::GET, "faults") => json_value(faults_json(&shared.faults())),
        (Method::DELETE, "faults") => {
            let was_down = shared.faults().down;
            *shared.faults_mut() = Faults::default();
            if was_down {
                Server::come_up(shared)
                    .await
                    .map_err(|e| text(500, e.to_string()))?;
            }
            ok()
        }
        (Method::PUT, "down") => {
            let back_after = duration_param(req, "for")?;
            shared.faults_mut().down = true;
            shared.server.go_down().await;
            if let Some(after) = back_after {
                let shared = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    if Server::come_up(&shared).await.is_ok() {
                        shared.faults_mut().down = false;
                    }
                });
            }
            ok()
        }
        (Method::PUT, "up") => {
            Server::come_up(shared)
                .await
                .map_err(|e| text(500, e.to_string()))?;
            shared.faults_mut().down = false;
            ok()
        }
        (Method::PUT, "slow") => {
            let delay = duration_param(req, "delay")?.ok_or_else(|| text(400, "missing delay"))?;
            shared.faults_mut().slow = Some(delay);
            ok()
        }
        (Method::DELETE, "slow") => {
            shared.faults_mut().slow = None;
            ok()
        }
        (Method::PUT, "errors") => {
            let status = u64_param(req, "status")?.unwrap_or(500);
            if !(100..=599).contains(&status) {
                return Err(text(400, format!("invalid status: {status}")));
            }
            let fault = ErrorFault {
                status: status as u16,
                body: req
                    .query
                    .get("body")
                    .unwrap_or("No cluster leader")
                    .to_string(),
                path_prefix: req
                    .query
                    .get("path")
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                remaining: u64_param(req, "count")?.map(|n| n.min(u64::from(u32::MAX)) as u32),
            };
            shared.faults_mut().error = Some(fault);
            ok()
        }
        (Method::DELETE, "errors") => {
            shared.faults_mut().error = None;
            ok()
        }
        (Method::PUT, "reset") => {
            shared.faults_mut().resets = u64_param(req, "count")?
                .unwrap_or(1)
                .min(u64::from(u32::MAX)) as u32;
            ok()
        }
        (Method::PUT, "rewind") => {
            let by = u64_param(req, "by")?.ok_or_else(|| text(400, "missing by"))?;
            let remaining = u64_param(req, "count")?.map(|n| n.min(u64::from(u32::MAX)) as u32);
            shared.faults_mut().index_rewind = Some(IndexRewind { by, remaining });
            ok()
        }
        (Method::DELETE, "rewind") => {
            shared.faults_mut().index_rewind = None;
            ok()
        }
        (Method::PUT, "spurious") => {
            let every = duration_param(req, "every")?.ok_or_else(|| text(400, "missing every"))?;
            shared.faults_mut().spurious_wakeups_every = Some(every);
            ok()
        }
        (Method::DELETE, "spurious") => {
            shared.faults_mut().spurious_wakeups_every = None;
            ok()
        }
        (Method::PUT, "wake") => {
            shared.wake_blocked();
            ok()
        }
        (Method::PUT, "lose-state") => {
            shared.state.with(|st| st.lose_everything());
            ok()
        }
        (Method::GET, "leader") => {
            json_value(leadership_json(&shared.state.with(|st| st.leader.public())))
        }
        (Method::PUT, "leader/lose") => {
            shared.change_leader(|st| st.leader.lost());
            ok()
        }
        (Method::PUT, "leader/elect") => {
            shared.change_leader(|_| LeaderState::Us);
            ok()
        }
        (Method::PUT, "leader/follow") => {
            let leader = required(req, "leader")?.to_string();
            let last_contact = duration_param(req, "last_contact")?.unwrap_or_default();
            shared.change_leader(|_| LeaderState::Peer {
                leader,
                last_contact,
            });
            ok()
        }
        (Method::PUT, "peer-service") => {
            let node = required(req, "node")?;
            let body = parse_json_body(&req.body)
                .map_err(|e| text(400, format!("Request decode failed: {e}")))?;
            let def = Decoder::new(shared.cfg.version)
                .service_definition(&body)
                .map_err(|e| text(400, format!("Request decode failed: {e}")))?;
            peer_result(shared.state.with(|st| st.peer_register_service(node, &def)))?;
            ok()
        }
        (Method::DELETE, "peer-service") => {
            let (node, id) = (required(req, "node")?, required(req, "id")?);
            let removed =
                peer_result(shared.state.with(|st| st.peer_deregister_service(node, id)))?;
            json_value(json!({"removed": removed}))
        }
        (Method::PUT, "peer-check") => {
            let (node, id) = (required(req, "node")?, required(req, "id")?);
            let status = status_param(req)?;
            let output = req.query.get("output").unwrap_or("");
            peer_result(
                shared
                    .state
                    .with(|st| st.peer_update_check(node, id, status, output)),
            )?;
            ok()
        }
        (Method::PUT, "node-health") => {
            let node = required(req, "node")?;
            let status = status_param(req)?;
            peer_result(shared.state.with(|st| st.set_node_health(node, status)))?;
            ok()
        }
        (Method::PUT, "reap") => {
            let reaped = shared.state.with(|st| st.reap());
            json_value(json!({"reaped": reaped}))
        }
        _ => text(
            404,
            format!("unknown control endpoint: {} /_double/{what}", req.method),
        ),
    })
}
