//! JSON shapes of services, checks and nodes, per emulated version, with Consul's key order and
//! null/empty conventions (`Tags` always a list, health's `Service.Meta` null when unset but
//! `/v1/catalog/service`'s `ServiceMeta` `{}`, agent `Meta` `{}` on 1.8 but null on 1.0.8, empty
//! `TaggedAddresses` omitted).

use serde_json::{Map, Value, json};

use crate::config::{Config, ConsulVersion};
use crate::state::catalog::NodeRow;
use crate::state::types::{CheckRecord, Indexed, ServiceAddress, ServiceRecord};

fn tagged(t: &std::collections::BTreeMap<String, ServiceAddress>) -> Value {
    let mut m = Map::new();
    for (k, v) in t {
        m.insert(k.clone(), json!({"Address": v.address, "Port": v.port}));
    }
    Value::Object(m)
}

fn meta_or_null(meta: &Option<std::collections::BTreeMap<String, String>>) -> Value {
    match meta {
        Some(m) => json!(m),
        None => Value::Null,
    }
}

/// An entry of `/v1/agent/services` (and `/v1/agent/service/:id` without the hash).
pub(crate) fn agent_service(cfg: &Config, s: &ServiceRecord) -> Value {
    let mut m = Map::new();
    m.insert("ID".into(), json!(s.id));
    m.insert("Service".into(), json!(s.name));
    m.insert("Tags".into(), json!(s.tags));
    match cfg.version {
        ConsulVersion::V1_8_4 | ConsulVersion::V1_8_5 => {
            m.insert("Meta".into(), json!(s.meta.clone().unwrap_or_default()));
            m.insert("Port".into(), json!(s.port));
            m.insert("Address".into(), json!(s.address));
            if !s.tagged_addresses.is_empty() {
                m.insert("TaggedAddresses".into(), tagged(&s.tagged_addresses));
            }
            m.insert(
                "Weights".into(),
                json!({"Passing": s.weights.passing, "Warning": s.weights.warning}),
            );
            m.insert("EnableTagOverride".into(), json!(s.enable_tag_override));
        }
        ConsulVersion::V1_0_8 => {
            m.insert("Address".into(), json!(s.address));
            m.insert("Meta".into(), meta_or_null(&s.meta));
            m.insert("Port".into(), json!(s.port));
            m.insert("EnableTagOverride".into(), json!(s.enable_tag_override));
            m.insert("CreateIndex".into(), json!(0));
            m.insert("ModifyIndex".into(), json!(0));
        }
    }
    Value::Object(m)
}

/// A check of `node`; agent-local checks pass zero indexes.
pub(crate) fn check(
    cfg: &Config,
    node: &str,
    c: &CheckRecord,
    create_index: u64,
    modify_index: u64,
) -> Value {
    let mut m = Map::new();
    m.insert("Node".into(), json!(node));
    m.insert("CheckID".into(), json!(c.id));
    m.insert("Name".into(), json!(c.name));
    m.insert("Status".into(), json!(c.status.as_str()));
    m.insert("Notes".into(), json!(c.notes));
    m.insert("Output".into(), json!(c.output));
    m.insert("ServiceID".into(), json!(c.service_id));
    m.insert("ServiceName".into(), json!(c.service_name));
    m.insert("ServiceTags".into(), json!(c.service_tags));
    if cfg.version.modern_shapes() {
        m.insert("Type".into(), json!(c.kind));
    }
    m.insert("Definition".into(), json!({}));
    m.insert("CreateIndex".into(), json!(create_index));
    m.insert("ModifyIndex".into(), json!(modify_index));
    Value::Object(m)
}

pub(crate) fn indexed_check(cfg: &Config, node: &str, c: &Indexed<CheckRecord>) -> Value {
    check(cfg, node, &c.value, c.create_index, c.modify_index)
}

fn node_tagged_addresses(cfg: &Config, a: &str) -> Value {
    match cfg.version {
        ConsulVersion::V1_8_4 | ConsulVersion::V1_8_5 => {
            json!({"lan": a, "lan_ipv4": a, "wan": a, "wan_ipv4": a})
        }
        ConsulVersion::V1_0_8 => json!({"lan": a, "wan": a}),
    }
}

/// The `Node` of a health entry.
pub(crate) fn node(cfg: &Config, n: &NodeRow) -> Value {
    json!({
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": cfg.datacenter,
        "TaggedAddresses": node_tagged_addresses(cfg, &n.address),
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    })
}

/// The `Service` of a health entry (`structs.NodeService`).
pub(crate) fn node_service(cfg: &Config, s: &Indexed<ServiceRecord>) -> Value {
    let v = &s.value;
    let mut m = Map::new();
    m.insert("ID".into(), json!(v.id));
    m.insert("Service".into(), json!(v.name));
    m.insert("Tags".into(), json!(v.tags));
    m.insert("Address".into(), json!(v.address));
    let modern = cfg.version.modern_shapes();
    if modern && !v.tagged_addresses.is_empty() {
        m.insert("TaggedAddresses".into(), tagged(&v.tagged_addresses));
    }
    m.insert("Meta".into(), meta_or_null(&v.meta));
    m.insert("Port".into(), json!(v.port));
    if modern {
        m.insert(
            "Weights".into(),
            json!({"Passing": v.weights.passing, "Warning": v.weights.warning}),
        );
    }
    m.insert("EnableTagOverride".into(), json!(v.enable_tag_override));
    if modern {
        m.insert("Proxy".into(), json!({"MeshGateway": {}, "Expose": {}}));
        m.insert("Connect".into(), json!({}));
    }
    m.insert("CreateIndex".into(), json!(s.create_index));
    m.insert("ModifyIndex".into(), json!(s.modify_index));
    Value::Object(m)
}

/// An entry of `/v1/catalog/service/:name` (`structs.ServiceNode`).
pub(crate) fn catalog_service(cfg: &Config, n: &NodeRow, s: &Indexed<ServiceRecord>) -> Value {
    let v = &s.value;
    let modern = cfg.version.modern_shapes();
    let mut m = Map::new();
    m.insert("ID".into(), json!(n.id));
    m.insert("Node".into(), json!(n.name));
    m.insert("Address".into(), json!(n.address));
    m.insert("Datacenter".into(), json!(cfg.datacenter));
    m.insert(
        "TaggedAddresses".into(),
        node_tagged_addresses(cfg, &n.address),
    );
    m.insert("NodeMeta".into(), json!({"consul-network-segment": ""}));
    if modern {
        m.insert("ServiceKind".into(), json!(""));
    }
    m.insert("ServiceID".into(), json!(v.id));
    m.insert("ServiceName".into(), json!(v.name));
    m.insert("ServiceTags".into(), json!(v.tags));
    m.insert("ServiceAddress".into(), json!(v.address));
    if modern {
        if !v.tagged_addresses.is_empty() {
            m.insert("ServiceTaggedAddresses".into(), tagged(&v.tagged_addresses));
        }
        m.insert(
            "ServiceWeights".into(),
            json!({"Passing": v.weights.passing, "Warning": v.weights.warning}),
        );
    }
    // The catalog clones each row with a fresh map (`ServiceNode.PartialClone`), so an unset
    // `ServiceMeta` is `{}` here while health's `Service.Meta` is null (transcript 13).
    m.insert(
        "ServiceMeta".into(),
        json!(v.meta.clone().unwrap_or_default()),
    );
    m.insert("ServicePort".into(), json!(v.port));
    m.insert(
        "ServiceEnableTagOverride".into(),
        json!(v.enable_tag_override),
    );
    if modern {
        m.insert(
            "ServiceProxy".into(),
            json!({"MeshGateway": {}, "Expose": {}}),
        );
        m.insert("ServiceConnect".into(), json!({}));
    }
    m.insert("CreateIndex".into(), json!(s.create_index));
    m.insert("ModifyIndex".into(), json!(s.modify_index));
    Value::Object(m)
}

/// FNV-1a over the rendered service: deterministic and opaque, like Consul's `ContentHash` (whose
/// exact hashstructure values are not reproduced).
pub(crate) fn content_hash(service: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:x}")
}
