//! `/v1/kv/*`: single-key and prefix reads (JSON with base64 values, `?raw` with a sniffed
//! Content-Type, `?keys` with `?separator`), blocking reads woken as Consul's radix-tree watches
//! are, consistency modes (KV never sends `X-Consul-Effective-Consistency`), PUT with
//! `?cas`/`?flags`, DELETE with `?recurse`/`?cas`. Values are bytes, kept as sent. Sessions are
//! not emulated: `?acquire`/`?release` fail as for an unknown session.

use base64::Engine;
use serde_json::{Value, json};

use crate::acl::{ACL_NOT_FOUND, Access, PERMISSION_DENIED};
use crate::blocking::{Run, await_leader, index_query, parse_query_options};
use crate::http::Req;
use crate::http::sniff::detect_content_type;
use crate::http::util::{Resp, empty, json_value, text, with_header, with_index};
use crate::shared::Shared;
use crate::state::types::KvEntry;
use crate::state::watch::WatchSpec;

fn entry_json(e: &KvEntry) -> Value {
    let value = if e.value.is_empty() {
        Value::Null
    } else {
        json!(base64::engine::general_purpose::STANDARD.encode(&e.value))
    };
    json!({
        "LockIndex": e.lock_index,
        "Key": e.key,
        "Flags": e.flags,
        "Value": value,
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    })
}

// The KV handler sets the index, leader and contact headers only on success: errors (ACL,
// datacenter, no leader) come back without them (transcript 14).
fn resolve(shared: &Shared, req: &Req) -> Result<Access, Resp> {
    crate::acl::resolve(shared.cfg.acl.as_ref(), req.token.as_deref())
        .map_err(|_| text(403, ACL_NOT_FOUND))
}

fn check_dc(shared: &Shared, req: &Req) -> Result<(), Resp> {
    match req.query.get("dc").filter(|d| !d.is_empty()) {
        Some(dc) if dc != shared.cfg.datacenter => Err(text(500, "No path to datacenter")),
        _ => Ok(()),
    }
}

fn no_leader() -> Resp {
    text(500, "No cluster leader")
}

pub(crate) async fn get(shared: &Shared, req: &Req, key: &str) -> Resp {
    let recurse = req.query.has("recurse");
    let keys = req.query.has("keys");
    if key.is_empty() && !recurse && !keys {
        return text(400, "Missing key name");
    }
    let opts = match parse_query_options(&req.query) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let access = match resolve(shared, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = check_dc(shared, req) {
        return r;
    }
    if keys {
        let sep = req.query.get("separator").unwrap_or("").to_string();
        let Ok(a) = index_query(shared, &opts, |st| {
            let (index, list) = st.catalog.kv_keys(key, &sep);
            Run {
                index,
                data: list,
                watch: vec![WatchSpec::KvChannel(st.catalog.kv_prefix_watch(key))],
            }
        })
        .await
        else {
            return no_leader();
        };
        let list = if access.can_read() {
            a.data
        } else {
            Vec::new()
        };
        if list.is_empty() && !key.is_empty() {
            return with_index(empty(404), a.index, a.meta, None);
        }
        return with_index(json_value(json!(list)), a.index, a.meta, None);
    }
    if recurse {
        let Ok(a) = index_query(shared, &opts, |st| {
            let (index, entries) = st.catalog.kv_list(key);
            Run {
                index,
                data: entries.into_iter().cloned().collect::<Vec<_>>(),
                watch: vec![WatchSpec::KvChannel(st.catalog.kv_prefix_watch(key))],
            }
        })
        .await
        else {
            return no_leader();
        };
        let entries = if access.can_read() {
            a.data
        } else {
            Vec::new()
        };
        if entries.is_empty() {
            return with_index(empty(404), a.index, a.meta, None);
        }
        return with_index(
            json_value(Value::Array(entries.iter().map(entry_json).collect())),
            a.index,
            a.meta,
            None,
        );
    }
    if !access.can_read() {
        return text(403, PERMISSION_DENIED);
    }
    let Ok(a) = index_query(shared, &opts, |st| {
        let (index, entry, watch) = st.catalog.kv_get(key);
        Run {
            index,
            data: entry.cloned(),
            watch: vec![WatchSpec::KvChannel(watch)],
        }
    })
    .await
    else {
        return no_leader();
    };
    let Some(entry) = a.data else {
        return with_index(empty(404), a.index, a.meta, None);
    };
    if req.query.has("raw") {
        let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            entry.value.clone(),
        )));
        // Consul 1.8 sets no type here; Go sniffs one from a non-empty body.
        if !entry.value.is_empty() {
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(detect_content_type(&entry.value)),
            );
        }
        return with_index(r, a.index, a.meta, None);
    }
    with_index(
        json_value(json!([entry_json(&entry)])),
        a.index,
        a.meta,
        None,
    )
}

fn conflicting(req: &Req, flags: &[&str]) -> Option<Resp> {
    let present = flags.iter().filter(|f| req.query.has(f)).count();
    (present > 1).then(|| text(400, format!("Conflicting flags: {}", req.query.encode())))
}

fn parse_u64(req: &Req, name: &str) -> Result<Option<u64>, Resp> {
    match req.query.get(name) {
        None => Ok(None),
        Some(raw) => raw.parse::<u64>().map(Some).map_err(|_| {
            text(
                500,
                format!("strconv.ParseUint: parsing {raw:?}: invalid syntax"),
            )
        }),
    }
}

pub(crate) async fn put(shared: &Shared, req: &Req, key: &str) -> Resp {
    if let Some(r) = conflicting(req, &["cas", "acquire", "release"]) {
        return r;
    }
    if key.is_empty() {
        return text(400, "Missing key name");
    }
    let access = match resolve(shared, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = check_dc(shared, req) {
        return r;
    }
    let flags = match parse_u64(req, "flags") {
        Ok(f) => f.unwrap_or(0),
        Err(r) => return r,
    };
    let cas = match parse_u64(req, "cas") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let max = shared.cfg.kv_max_value_size;
    if req.body.len() > max {
        return text(
            413,
            format!(
                "Request body({} bytes) too large, max size: {max} bytes. See https://www.consul.io/docs/agent/options.html#kv_max_value_size.",
                req.body.len()
            ),
        );
    }
    if !access.can_write() {
        return text(403, PERMISSION_DENIED);
    }
    for op in ["acquire", "release"] {
        if let Some(session) = req.query.get(op) {
            return text(500, format!("invalid session {session:?}"));
        }
    }
    if !await_leader(shared).await {
        return no_leader();
    }
    let value = req.body.to_vec();
    let ok = shared
        .state
        .with(|st| st.catalog.kv_set(key, value, flags, cas));
    json_value(json!(ok))
}

pub(crate) async fn delete(shared: &Shared, req: &Req, key: &str) -> Resp {
    if let Some(r) = conflicting(req, &["recurse", "cas"]) {
        return r;
    }
    let recurse = req.query.has("recurse");
    if key.is_empty() && !recurse {
        return text(400, "Missing key name");
    }
    let access = match resolve(shared, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = check_dc(shared, req) {
        return r;
    }
    let cas = match parse_u64(req, "cas") {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !access.can_write() {
        return text(403, PERMISSION_DENIED);
    }
    if !await_leader(shared).await {
        return no_leader();
    }
    let ok = shared.state.with(|st| {
        if recurse {
            st.catalog.kv_delete_tree(key);
            true
        } else {
            st.catalog.kv_delete(key, cas)
        }
    });
    with_header(json_value(json!(ok)), "content-type", "application/json")
}
