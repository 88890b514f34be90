//! `/v1/agent/*` and `/v1/status/*`: agent-local reads (no index headers, no blocking except the
//! hash-based single-service read) and the agent write endpoints (200 with an empty body).

use serde_json::{Map, Value, json};

use crate::acl::{ACL_NOT_FOUND, Access, PERMISSION_DENIED};
use crate::blocking::{await_leader, hash_query};
use crate::decode::{Decoder, parse_json_body};
use crate::filter::{Filter, check_shape, service_shape};
use crate::http::Req;
use crate::http::render;
use crate::http::util::{Resp, empty, json_value, parse_go_bool, text, with_header};
use crate::shared::Shared;
use crate::state::types::CheckStatus;

/// After a successful agent write Consul runs the anti-entropy sync inline. With changes to send
/// and no leader, its RPC is held for the hold timeout and fails (only logged): the request still
/// answers 200, just late (transcript 14).
async fn sync_inline(shared: &Shared) {
    if shared
        .state
        .with(|st| !st.leader.has_leader() && st.agent_pending())
    {
        await_leader(shared).await;
    }
}

fn decode_failed(e: impl std::fmt::Display) -> Resp {
    text(400, format!("Request decode failed: {e}"))
}

/// Resolves the token for an agent endpoint; an unknown one is a 403.
pub(crate) fn access(shared: &Shared, req: &Req) -> Result<Access, Resp> {
    crate::acl::resolve(shared.cfg.acl.as_ref(), req.token.as_deref())
        .map_err(|_| text(403, ACL_NOT_FOUND))
}

fn require_write(shared: &Shared, req: &Req) -> Result<(), Resp> {
    if access(shared, req)?.can_write() {
        Ok(())
    } else {
        Err(text(403, PERMISSION_DENIED))
    }
}

fn compile_filter(
    shared: &Shared,
    req: &Req,
    shape: fn() -> crate::filter::Shape,
) -> Result<Option<Filter>, Resp> {
    if shared.cfg.version.is_1_0() {
        return Ok(None);
    }
    match req.query.get("filter").filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(expr) => Filter::compile(expr, &shape()).map(Some).map_err(|e| {
            text(
                500,
                format!("Failed to create boolean expression evaluator: {e}"),
            )
        }),
    }
}

pub(crate) async fn register_service(shared: &Shared, req: &Req) -> Resp {
    let decoder = Decoder::new(shared.cfg.version);
    let body = match parse_json_body(&req.body) {
        Ok(v) => v,
        Err(e) => return decode_failed(e),
    };
    let def = match decoder.service_definition(&body) {
        Ok(d) => d,
        Err(e) => return decode_failed(e),
    };
    if let Err(r) = def.validate(shared.cfg.version.modern_shapes()) {
        return text(r.status, r.message);
    }
    if let Err(r) = require_write(shared, req) {
        return r;
    }
    let replace = !shared.cfg.version.is_1_0()
        && matches!(req.query.get("replace-existing-checks"), Some("" | "true"));
    match shared.state.with(|st| st.register_service(&def, replace)) {
        Ok(()) => {
            sync_inline(shared).await;
            empty(200)
        }
        Err(r) => text(r.status, r.message),
    }
}

pub(crate) async fn deregister_service(shared: &Shared, req: &Req, id: &str) -> Resp {
    if id.is_empty() {
        return text(500, "ServiceID missing");
    }
    let acl_on = shared.cfg.acl.is_some();
    let exists = shared.state.with(|st| st.agent.services.contains_key(id));
    if acl_on {
        if let Err(r) = access(shared, req) {
            return r;
        }
        if !exists {
            return text(500, format!("Unknown service {id:?}"));
        }
    }
    if let Err(r) = require_write(shared, req) {
        return r;
    }
    let removed = shared.state.with(|st| st.deregister_service(id));
    if removed || !shared.cfg.unknown_id_404 {
        sync_inline(shared).await;
    }
    if !removed && shared.cfg.unknown_id_404 {
        return text(
            404,
            format!(
                "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
            ),
        );
    }
    empty(200)
}

fn unknown_check_404(id: &str) -> Resp {
    text(
        404,
        format!("Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."),
    )
}

/// ACL and existence checks shared by check deregistration and TTL updates.
fn vet_check_update(shared: &Shared, req: &Req, id: &str) -> Result<(), Resp> {
    let exists = shared.state.with(|st| st.agent.checks.contains_key(id));
    if shared.cfg.unknown_id_404 && !exists {
        return Err(unknown_check_404(id));
    }
    if shared.cfg.acl.is_some() {
        access(shared, req)?;
        if !exists {
            return Err(text(500, format!("Unknown check {id:?}")));
        }
    }
    require_write(shared, req)
}

pub(crate) async fn ttl_update(
    shared: &Shared,
    req: &Req,
    id: &str,
    status: Option<CheckStatus>,
) -> Resp {
    let (status, output) = match status {
        Some(s) => (s, req.query.get("note").unwrap_or("").to_string()),
        None => {
            let body = match parse_json_body(&req.body) {
                Ok(v) => v,
                Err(e) => return decode_failed(e),
            };
            let (status, output) = match Decoder::new(shared.cfg.version).check_update(&body) {
                Ok(u) => u,
                Err(e) => return decode_failed(e),
            };
            match CheckStatus::parse(&status) {
                Some(s) => (s, output),
                None => return text(400, format!("Invalid check status: '{status}'")),
            }
        }
    };
    if let Err(r) = vet_check_update(shared, req, id) {
        return r;
    }
    match shared.state.with(|st| st.update_ttl(id, status, &output)) {
        Ok(()) => {
            sync_inline(shared).await;
            empty(200)
        }
        Err(e) => text(500, e.to_string()),
    }
}

pub(crate) async fn register_check(shared: &Shared, req: &Req) -> Resp {
    let body = match parse_json_body(&req.body) {
        Ok(v) => v,
        Err(e) => return decode_failed(e),
    };
    let def = match Decoder::new(shared.cfg.version).check_definition(&body) {
        Ok(d) => d,
        Err(e) => return decode_failed(e),
    };
    if def.name.is_empty() {
        return text(400, "Missing check name");
    }
    if !def.status.is_empty() && CheckStatus::parse(&def.status).is_none() {
        return text(400, "Bad check status");
    }
    if let Err(e) = def.validate() {
        return text(400, format!("Invalid check: {e}"));
    }
    if let Err(r) = require_write(shared, req) {
        return r;
    }
    match shared.state.with(|st| st.register_check(def)) {
        Ok(()) => {
            sync_inline(shared).await;
            empty(200)
        }
        Err(r) => text(r.status, r.message),
    }
}

pub(crate) async fn deregister_check(shared: &Shared, req: &Req, id: &str) -> Resp {
    if id.is_empty() {
        return text(500, "CheckID missing");
    }
    if let Err(r) = vet_check_update(shared, req, id) {
        return r;
    }
    shared.state.with(|st| st.deregister_check(id));
    sync_inline(shared).await;
    empty(200)
}

fn parse_enable(req: &Req) -> Result<bool, Resp> {
    if !req.query.has("enable") {
        return Err(text(400, "Missing value for enable"));
    }
    let raw = req.query.get("enable").unwrap_or("");
    parse_go_bool(raw).ok_or_else(|| text(400, format!("Invalid value for enable: {raw:?}")))
}

pub(crate) async fn service_maintenance(shared: &Shared, req: &Req, id: &str) -> Resp {
    if id.is_empty() {
        return text(400, "Missing service ID");
    }
    let enable = match parse_enable(req) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let exists = shared.state.with(|st| st.agent.services.contains_key(id));
    if shared.cfg.acl.is_some() {
        if let Err(r) = access(shared, req) {
            return r;
        }
        if !exists {
            return text(500, format!("Unknown service {id:?}"));
        }
    }
    if let Err(r) = require_write(shared, req) {
        return r;
    }
    let reason = req.query.get("reason").unwrap_or("");
    if shared
        .state
        .with(|st| st.service_maintenance(id, enable, reason))
    {
        sync_inline(shared).await;
        empty(200)
    } else {
        text(404, format!("No service registered with ID {id:?}"))
    }
}

pub(crate) async fn node_maintenance(shared: &Shared, req: &Req) -> Resp {
    let enable = match parse_enable(req) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if let Err(r) = require_write(shared, req) {
        return r;
    }
    let reason = req.query.get("reason").unwrap_or("").to_string();
    shared.state.with(|st| st.node_maintenance(enable, &reason));
    sync_inline(shared).await;
    empty(200)
}

pub(crate) async fn services(shared: &Shared, req: &Req) -> Resp {
    let access = match access(shared, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let filter = match compile_filter(shared, req, service_shape) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let cfg = &shared.cfg;
    let out: Map<String, Value> = shared.state.with(|st| {
        st.agent
            .services
            .iter()
            .filter(|_| access.can_read())
            .map(|(id, s)| (id.clone(), render::agent_service(cfg, &s.record)))
            .filter(|(_, v)| filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect()
    });
    json_value(Value::Object(out))
}

pub(crate) async fn service(shared: &Shared, req: &Req, id: &str) -> Resp {
    let access = match access(shared, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let wait = match crate::blocking::parse_query_options(&req.query) {
        Ok(o) => o.wait,
        Err(r) => return r,
    };
    let cfg = shared.cfg.clone();
    let hash = req
        .query
        .get("hash")
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    let (hash, found) = hash_query(shared, hash, wait, |st| match st.agent.services.get(id) {
        Some(s) => {
            let v = render::agent_service(&cfg, &s.record);
            (render::content_hash(&v), Some(v))
        }
        None => (String::new(), None),
    })
    .await;
    let Some(mut v) = found else {
        return text(404, format!("unknown service ID: {id}"));
    };
    if !access.can_read() {
        return text(403, PERMISSION_DENIED);
    }
    if let Value::Object(m) = &mut v {
        m.insert("ContentHash".into(), json!(hash));
    }
    with_header(json_value(v), "x-consul-contenthash", &hash)
}

pub(crate) async fn checks(shared: &Shared, req: &Req) -> Resp {
    let access = match access(shared, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let filter = match compile_filter(shared, req, check_shape) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let cfg = &shared.cfg;
    let out: Map<String, Value> = shared.state.with(|st| {
        st.agent
            .checks
            .iter()
            .filter(|_| access.can_read())
            .map(|(id, c)| {
                (
                    id.clone(),
                    render::check(cfg, &cfg.node_name, &c.record, 0, 0),
                )
            })
            .filter(|(_, v)| filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect()
    });
    json_value(Value::Object(out))
}

pub(crate) async fn agent_self(shared: &Shared, req: &Req) -> Resp {
    match access(shared, req) {
        Ok(a) if a.can_read() => {}
        Ok(_) => return text(403, PERMISSION_DENIED),
        Err(r) => return r,
    }
    let cfg = &shared.cfg;
    let mut body = json!({
        "Config": {
            "Datacenter": cfg.datacenter,
            "NodeName": cfg.node_name,
            "NodeID": cfg.node_id,
            "Revision": "consul-double",
            "Server": true,
            "Version": cfg.version.as_str(),
        },
        "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05},
        "Member": {
            "Name": cfg.node_name,
            "Addr": cfg.node_address,
            "Port": 8301,
            "Tags": {"dc": cfg.datacenter, "role": "consul", "build": cfg.version.as_str(), "id": cfg.node_id},
            "Status": 1,
        },
        "Stats": {},
        "Meta": {"consul-network-segment": ""},
        "DebugConfig": {"Datacenter": cfg.datacenter, "NodeName": cfg.node_name, "DevMode": true},
    });
    if !cfg.version.is_1_0() {
        body["xDS"] = json!({"SupportedProxies": {}});
    }
    json_value(body)
}

/// The leader's Raft address; `""` while there is none (still a 200).
pub(crate) async fn status_leader(shared: &Shared) -> Resp {
    let addr = shared
        .state
        .with(|st| st.leader.leader_addr(&shared.cfg.node_address));
    json_value(json!(addr))
}

/// The Raft peers: the double and the other servers of its cluster.
pub(crate) async fn status_peers(shared: &Shared) -> Resp {
    let cfg = &shared.cfg;
    let mut peers: Vec<String> = std::iter::once(&cfg.node_address)
        .chain(cfg.peers.iter().map(|p| &p.address))
        .map(|a| format!("{a}:8300"))
        .collect();
    peers.sort();
    json_value(json!(peers))
}
