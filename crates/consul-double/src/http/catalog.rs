//! `/v1/health/*` and `/v1/catalog/*`: RPC-backed reads of the catalog with index headers,
//! blocking, `?passing`, `?tag`, `?dc`, `?node-meta`, `?filter`, consistency flags and silent
//! ACL filtering. Filters apply after the index is computed, as in Consul.

use serde_json::{Map, Value, json};

use crate::acl::{ACL_NOT_FOUND, Access};
use crate::blocking::{Answer, NoLeader, QueryOptions, Run, index_query, parse_query_options};
use crate::config::ConsulVersion;
use crate::filter::{Filter, Shape, catalog_entry_shape, check_shape, health_entry_shape};
use crate::http::Req;
use crate::http::render;
use crate::http::util::{Resp, json_value, parse_go_bool, text, with_error_meta, with_index};
use crate::shared::Shared;
use crate::state::State;
use crate::state::types::{CheckStatus, ServiceRecord};
use crate::state::watch::WatchSpec;

/// What every catalog read parses before running.
struct Prepared {
    opts: QueryOptions,
    access: Access,
    filter: Option<Filter>,
}

fn prepare(shared: &Shared, req: &Req, shape: fn() -> Shape) -> Result<Prepared, Resp> {
    let opts = parse_query_options(&req.query)?;
    let access = crate::acl::resolve(shared.cfg.acl.as_ref(), req.token.as_deref())
        .map_err(|_| with_error_meta(text(403, ACL_NOT_FOUND)))?;
    if let Some(dc) = req.query.get("dc").filter(|d| !d.is_empty())
        && dc != shared.cfg.datacenter
    {
        return Err(with_error_meta(text(500, "No path to datacenter")));
    }
    let mut filter = None;
    if !shared.cfg.version.is_1_0()
        && let Some(expr) = req.query.get("filter").filter(|f| !f.is_empty())
    {
        filter = Some(Filter::compile(expr, &shape()).map_err(|e| {
            with_error_meta(text(
                500,
                format!("Failed to create boolean expression evaluator: {e}"),
            ))
        })?);
    }
    Ok(Prepared {
        opts,
        access,
        filter,
    })
}

fn requested_tags(shared: &Shared, req: &Req) -> Vec<String> {
    let tags = req.query.all("tag");
    match shared.cfg.version {
        // Before 1.3 only one tag was honoured.
        ConsulVersion::V1_0_8 => tags.into_iter().take(1).map(str::to_lowercase).collect(),
        ConsulVersion::V1_8_4 | ConsulVersion::V1_8_5 => {
            tags.into_iter().map(str::to_lowercase).collect()
        }
    }
}

fn has_tags(s: &ServiceRecord, tags: &[String]) -> bool {
    tags.iter()
        .all(|t| s.tags.iter().any(|have| have.to_lowercase() == *t))
}

fn node_meta_matches(req: &Req) -> bool {
    req.query.all("node-meta").iter().all(|pair| {
        let (k, v) = pair.split_once(':').unwrap_or((pair, ""));
        k == "consul-network-segment" && v.is_empty()
    })
}

/// A read that needs the leader found none within the hold: 500, with the headers of a failed
/// RPC (health and catalog set them even then, transcript 14).
fn no_leader() -> Resp {
    with_error_meta(text(500, "No cluster leader"))
}

fn service_watch(st: &State, name: &str) -> Vec<WatchSpec> {
    let (_, instances) = st.catalog.service_instances(name, true);
    if instances.is_empty() {
        // Consul's fallback for a service that does not exist: watch the services table.
        vec![WatchSpec::ServicesTable]
    } else if st.cfg.version.is_1_0() {
        // 1.0.8 also watched the node's checks, so a node-check change re-ran the query (and
        // updated the body it answers with at timeout) even when the index stayed put.
        let mut specs = vec![WatchSpec::ServiceIndex(name.to_lowercase())];
        for (node, _) in instances {
            specs.push(WatchSpec::NodeChecks(node.name.clone()));
        }
        specs
    } else {
        vec![WatchSpec::ServiceIndex(name.to_lowercase())]
    }
}

pub(crate) async fn health_service(shared: &Shared, req: &Req, name: &str) -> Resp {
    if name.is_empty() {
        return text(400, "Missing service name");
    }
    let prepared = match prepare(shared, req, health_entry_shape) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let passing = match req.query.get("passing") {
        None => false,
        Some("") => true,
        Some(v) => match parse_go_bool(v) {
            Some(b) => b,
            None => return text(400, "Invalid value for ?passing"),
        },
    };
    let tags = requested_tags(shared, req);
    let node_ok = node_meta_matches(req);
    let cfg = shared.cfg.clone();
    let answer = index_query(shared, &prepared.opts, |st| {
        let (index, instances) = st.catalog.service_instances(name, true);
        let entries: Vec<(Value, bool)> = instances
            .into_iter()
            .filter(|(_, s)| node_ok && has_tags(&s.value, &tags))
            .map(|(node, s)| {
                let checks = st.catalog.checks_for_instance(&node.name, &s.value.id);
                let all_passing = checks
                    .iter()
                    .all(|c| c.value.status == CheckStatus::Passing);
                let checks: Vec<Value> = checks
                    .iter()
                    .map(|c| render::indexed_check(&cfg, &node.name, c))
                    .collect();
                let entry = json!({
                    "Node": render::node(&cfg, node),
                    "Service": render::node_service(&cfg, s),
                    "Checks": checks,
                });
                (entry, all_passing)
            })
            .collect();
        Run {
            index,
            data: entries,
            watch: service_watch(st, name),
        }
    })
    .await;
    let Answer { index, data, meta } = match answer {
        Ok(a) => a,
        Err(NoLeader) => return no_leader(),
    };
    let out: Vec<Value> = data
        .into_iter()
        .filter(|(_, all_passing)| !passing || *all_passing)
        .map(|(e, _)| e)
        .filter(|e| {
            prepared.access.can_read() && prepared.filter.as_ref().is_none_or(|f| f.matches(e))
        })
        .collect();
    with_index(
        json_value(Value::Array(out)),
        index,
        meta,
        Some(prepared.opts.consistency),
    )
}

pub(crate) async fn catalog_service(shared: &Shared, req: &Req, name: &str) -> Resp {
    if name.is_empty() {
        return text(400, "Missing service name");
    }
    let prepared = match prepare(shared, req, catalog_entry_shape) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let tags = requested_tags(shared, req);
    let node_ok = node_meta_matches(req);
    let cfg = shared.cfg.clone();
    let answer = index_query(shared, &prepared.opts, |st| {
        let (index, instances) = st.catalog.service_instances(name, false);
        let entries: Vec<Value> = instances
            .into_iter()
            .filter(|(_, s)| node_ok && has_tags(&s.value, &tags))
            .map(|(node, s)| render::catalog_service(&cfg, node, s))
            .collect();
        Run {
            index,
            data: entries,
            watch: service_watch(st, name),
        }
    })
    .await;
    let Answer { index, data, meta } = match answer {
        Ok(a) => a,
        Err(NoLeader) => return no_leader(),
    };
    let out: Vec<Value> = data
        .into_iter()
        .filter(|e| {
            prepared.access.can_read() && prepared.filter.as_ref().is_none_or(|f| f.matches(e))
        })
        .collect();
    with_index(
        json_value(Value::Array(out)),
        index,
        meta,
        Some(prepared.opts.consistency),
    )
}

pub(crate) async fn health_checks(shared: &Shared, req: &Req, name: &str) -> Resp {
    if name.is_empty() {
        return text(400, "Missing service name");
    }
    let prepared = match prepare(shared, req, check_shape) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cfg = shared.cfg.clone();
    let answer = index_query(shared, &prepared.opts, |st| {
        let checks: Vec<Value> = st
            .catalog
            .checks_of_service_name(name)
            .into_iter()
            .map(|(node, c)| render::indexed_check(&cfg, node, c))
            .collect();
        Run {
            index: st.catalog.checks_index(),
            data: checks,
            watch: vec![WatchSpec::ServiceChecks(name.to_lowercase())],
        }
    })
    .await;
    let Answer { index, data, meta } = match answer {
        Ok(a) => a,
        Err(NoLeader) => return no_leader(),
    };
    let out: Vec<Value> = data
        .into_iter()
        .filter(|c| {
            prepared.access.can_read() && prepared.filter.as_ref().is_none_or(|f| f.matches(c))
        })
        .collect();
    with_index(
        json_value(Value::Array(out)),
        index,
        meta,
        Some(prepared.opts.consistency),
    )
}

pub(crate) async fn health_node(shared: &Shared, req: &Req, node: &str) -> Resp {
    if node.is_empty() {
        return text(400, "Missing node name");
    }
    let prepared = match prepare(shared, req, check_shape) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cfg = shared.cfg.clone();
    let answer = index_query(shared, &prepared.opts, |st| {
        let checks: Vec<Value> = match st.catalog.node(node) {
            Some(row) => st
                .catalog
                .node_checks(&row.name)
                .into_iter()
                .map(|c| render::indexed_check(&cfg, &row.name, c))
                .collect(),
            None => Vec::new(),
        };
        Run {
            index: st.catalog.checks_index(),
            data: checks,
            watch: vec![WatchSpec::NodeChecks(node.to_string())],
        }
    })
    .await;
    let Answer { index, data, meta } = match answer {
        Ok(a) => a,
        Err(NoLeader) => return no_leader(),
    };
    let out: Vec<Value> = data
        .into_iter()
        .filter(|c| {
            prepared.access.can_read() && prepared.filter.as_ref().is_none_or(|f| f.matches(c))
        })
        .collect();
    with_index(
        json_value(Value::Array(out)),
        index,
        meta,
        Some(prepared.opts.consistency),
    )
}

pub(crate) async fn catalog_services(shared: &Shared, req: &Req) -> Resp {
    let prepared = match prepare(shared, req, || Shape::Map(Box::new(Shape::Leaf))) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let answer = index_query(shared, &prepared.opts, |st| {
        let mut names: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for s in st.catalog.services.values() {
            let tags = names.entry(s.value.name.clone()).or_default();
            for t in &s.value.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        Run {
            index: st.catalog.services_index(),
            data: names,
            watch: vec![WatchSpec::ServicesTable],
        }
    })
    .await;
    let Answer { index, data, meta } = match answer {
        Ok(a) => a,
        Err(NoLeader) => return no_leader(),
    };
    let mut out = Map::new();
    if prepared.access.can_read() {
        for (k, v) in data {
            out.insert(k, json!(v));
        }
    }
    with_index(
        json_value(Value::Object(out)),
        index,
        meta,
        Some(prepared.opts.consistency),
    )
}
