//! The server side: catalog tables, KV and the Raft-like index they share.
//!
//! Index bookkeeping copies Consul 1.8's state store: every write consumes one index; table
//! indexes (`nodes`, `services`, `checks`, `kvs`, `tombstones`) and per-service index entries
//! (`service.<name>`, 1.0.7+) only move when a row really changes; removing the last instance of a
//! name deletes its entry and sets the "service last extinction" index, which is what a query for
//! a missing service reports once it exists. The catalog holds the agent's own node and, for a
//! cluster, the other servers' nodes (`Config::peers`), each with its services and checks.

use std::collections::{BTreeMap, HashMap};

use crate::config::{Config, ConsulVersion};
use crate::state::kvtree::{Channel, KvTree};
use crate::state::types::{CheckRecord, CheckStatus, Indexed, KvEntry, ServiceRecord};
use crate::state::watch::Change;

/// A node row.
#[derive(Debug, Clone)]
pub(crate) struct NodeRow {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

/// Services and checks are keyed by node name and ID, as Consul's tables are.
pub(crate) type RowKey = (String, String);

fn key(node: &str, id: &str) -> RowKey {
    (node.to_string(), id.to_string())
}

/// `serfHealth` outputs, as the leader writes them.
pub(crate) const SERF_ALIVE: &str = "Agent alive and reachable";
pub(crate) const SERF_FAILED: &str = "Agent not live or unreachable";

fn serf_health(status: CheckStatus) -> CheckRecord {
    CheckRecord {
        id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status,
        notes: String::new(),
        output: if status == CheckStatus::Passing {
            SERF_ALIVE
        } else {
            SERF_FAILED
        }
        .into(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        kind: String::new(),
    }
}

#[derive(Debug)]
pub(crate) struct Catalog {
    version: ConsulVersion,
    raft_index: u64,
    own: String,
    pub(crate) nodes: BTreeMap<String, NodeRow>,
    pub(crate) services: BTreeMap<RowKey, Indexed<ServiceRecord>>,
    pub(crate) checks: BTreeMap<RowKey, Indexed<CheckRecord>>,
    idx_nodes: u64,
    idx_services: u64,
    idx_checks: u64,
    idx_kvs: u64,
    idx_tombstones: u64,
    service_index: HashMap<String, u64>,
    extinction: Option<u64>,
    pub(crate) kv: BTreeMap<String, KvEntry>,
    kv_tree: KvTree,
    tombstones: BTreeMap<String, u64>,
    pub(crate) changes: Vec<Change>,
}

/// Outcome of a KV write that may be conditional.
pub(crate) type KvWritten = bool;

impl Catalog {
    /// A freshly booted agent. A dev agent (no peers): its node and `serfHealth` check are
    /// registered and some internal writes have used up the first indexes, as in the recordings
    /// (1.8: node 10/12, first service 13; 1.0.8: node 5/6, first service 7). A cluster of
    /// servers (transcript 14): Raft's configuration and the first leader's setup use indexes
    /// 1-6; the leader then registers the servers in node-name order, each node with its
    /// `serfHealth` in one write, except the double's own node, which its own agent registered
    /// just before (so its check comes one index later); finally each agent updates its node row,
    /// in the same order.
    pub(crate) fn boot(cfg: &Config) -> Catalog {
        let mut c = Catalog {
            version: cfg.version,
            raft_index: 0,
            own: cfg.node_name.clone(),
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            idx_nodes: 0,
            idx_services: 0,
            idx_checks: 0,
            idx_kvs: 0,
            idx_tombstones: 0,
            service_index: HashMap::new(),
            extinction: None,
            kv: BTreeMap::new(),
            kv_tree: KvTree::default(),
            tombstones: BTreeMap::new(),
            changes: Vec::new(),
        };
        let own = NodeRow {
            name: cfg.node_name.clone(),
            id: cfg.node_id.clone(),
            address: cfg.node_address.clone(),
            create_index: 0,
            modify_index: 0,
        };
        if cfg.peers.is_empty() {
            let (node_create, node_modify) = match cfg.version {
                ConsulVersion::V1_8_4 | ConsulVersion::V1_8_5 => (10, 12),
                ConsulVersion::V1_0_8 => (5, 6),
            };
            c.raft_index = node_modify;
            c.insert_node(own, node_create);
            c.insert_check(
                &cfg.node_name.clone(),
                serf_health(CheckStatus::Passing),
                node_create,
            );
            c.modify_node(&cfg.node_name.clone(), node_modify);
        } else {
            c.raft_index = 6;
            let mut servers: Vec<NodeRow> = cfg
                .peers
                .iter()
                .map(|p| NodeRow {
                    name: p.node_name.clone(),
                    id: p.node_id.clone(),
                    address: p.address.clone(),
                    create_index: 0,
                    modify_index: 0,
                })
                .collect();
            servers.push(own);
            servers.sort_by_key(|n| n.name.to_lowercase());
            let names: Vec<String> = servers.iter().map(|n| n.name.clone()).collect();
            for node in servers {
                let name = node.name.clone();
                let idx = c.next_index();
                c.insert_node(node, idx);
                let idx = if name == c.own { c.next_index() } else { idx };
                c.insert_check(&name, serf_health(CheckStatus::Passing), idx);
            }
            for name in names {
                let idx = c.next_index();
                c.modify_node(&name, idx);
            }
        }
        c.changes.clear();
        c
    }

    fn insert_node(&mut self, mut node: NodeRow, idx: u64) {
        node.create_index = idx;
        node.modify_index = idx;
        self.idx_nodes = self.idx_nodes.max(idx);
        self.nodes.insert(node.name.clone(), node);
    }

    fn modify_node(&mut self, name: &str, idx: u64) {
        if let Some(n) = self.nodes.get_mut(name) {
            n.modify_index = idx;
            self.idx_nodes = self.idx_nodes.max(idx);
        }
    }

    fn insert_check(&mut self, node: &str, check: CheckRecord, idx: u64) {
        self.checks.insert(
            key(node, &check.id),
            Indexed {
                value: check,
                create_index: idx,
                modify_index: idx,
            },
        );
        self.idx_checks = self.idx_checks.max(idx);
    }

    /// The last index handed out.
    pub(crate) fn raft_index(&self) -> u64 {
        self.raft_index
    }

    /// Consumes an index without changing any table, as a Raft entry that is not a state-store
    /// write does (a new leader's barrier).
    pub(crate) fn skip_index(&mut self) {
        self.next_index();
    }

    fn next_index(&mut self) -> u64 {
        self.raft_index += 1;
        self.raft_index
    }

    /// The double's own node.
    pub(crate) fn own_node(&self) -> &str {
        &self.own
    }

    /// A node row by name (case-insensitive, as Consul's node table).
    pub(crate) fn node(&self, name: &str) -> Option<&NodeRow> {
        self.nodes
            .values()
            .find(|n| n.name.eq_ignore_ascii_case(name))
    }

    fn bump_service_index(&mut self, lower_name: &str, idx: u64) {
        let entry = self
            .service_index
            .entry(lower_name.to_string())
            .or_insert(0);
        if idx > *entry {
            *entry = idx;
        }
        self.changes
            .push(Change::ServiceIndex(lower_name.to_string()));
    }

    fn has_instances(&self, lower_name: &str) -> bool {
        self.services
            .values()
            .any(|s| s.value.name.to_lowercase() == lower_name)
    }

    /// After an instance of `lower_name` went away (deleted or renamed).
    fn service_name_left(&mut self, lower_name: &str, idx: u64) {
        if self.has_instances(lower_name) {
            self.bump_service_index(lower_name, idx);
        } else {
            self.service_index.remove(lower_name);
            self.extinction = Some(idx);
            self.changes
                .push(Change::ServiceIndex(lower_name.to_string()));
        }
    }

    /// A node-level check changed: every service of that node moves (Consul's
    /// `updateAllServiceIndexesOfNode`).
    fn bump_service_indexes_of_node(&mut self, node: &str, idx: u64) {
        let names: Vec<String> = self
            .services
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|(_, s)| s.value.name.to_lowercase())
            .collect();
        for name in names {
            self.bump_service_index(&name, idx);
        }
    }

    /// One `Catalog.Register` RPC of the double's own agent: a service and/or checks in one
    /// transaction.
    pub(crate) fn register(&mut self, service: Option<&ServiceRecord>, checks: &[CheckRecord]) {
        let own = self.own.clone();
        self.register_on(&own, service, checks);
    }

    /// One `Catalog.Register` RPC for `node` (which must exist).
    pub(crate) fn register_on(
        &mut self,
        node: &str,
        service: Option<&ServiceRecord>,
        checks: &[CheckRecord],
    ) {
        let idx = self.next_index();
        if let Some(svc) = service {
            self.ensure_service(node, idx, svc);
        }
        for check in checks {
            self.ensure_check(node, idx, check.clone());
        }
    }

    fn ensure_service(&mut self, node: &str, idx: u64, svc: &ServiceRecord) {
        let k = key(node, &svc.id);
        let old = self.services.get(&k).cloned();
        if let Some(existing) = &old
            && existing.value == *svc
        {
            return;
        }
        let create_index = old.as_ref().map_or(idx, |o| o.create_index);
        self.services.insert(
            k,
            Indexed {
                value: svc.clone(),
                create_index,
                modify_index: idx,
            },
        );
        self.idx_services = self.idx_services.max(idx);
        self.changes.push(Change::ServicesTable);
        let lower = svc.name.to_lowercase();
        self.bump_service_index(&lower, idx);
        if let Some(old) = old {
            let old_lower = old.value.name.to_lowercase();
            if old_lower != lower {
                self.service_name_left(&old_lower, idx);
            }
        }
    }

    fn ensure_check(&mut self, node: &str, idx: u64, mut check: CheckRecord) {
        let lower_service = if check.service_id.is_empty() {
            None
        } else {
            match self.services.get(&key(node, &check.service_id)) {
                Some(svc) => {
                    // The catalog copies name and tags from its own service row, so a check
                    // that is not re-sent keeps the tags of its last sync.
                    check.service_name = svc.value.name.clone();
                    check.service_tags = svc.value.tags.clone();
                    Some(svc.value.name.to_lowercase())
                }
                // The agent never syncs a check before its service; nothing sensible to store.
                None => return,
            }
        };
        let k = key(node, &check.id);
        let existing = self.checks.get(&k);
        if let Some(existing) = existing
            && existing.value.is_same(&check)
        {
            return;
        }
        let create_index = existing.map_or(idx, |e| e.create_index);
        match &lower_service {
            Some(name) => self.bump_service_index(name, idx),
            None => self.bump_service_indexes_of_node(node, idx),
        }
        self.checks.insert(
            k,
            Indexed {
                value: check,
                create_index,
                modify_index: idx,
            },
        );
        self.idx_checks = self.idx_checks.max(idx);
        self.changes.push(Change::Checks {
            node: node.to_string(),
            service: lower_service,
        });
    }

    /// The leader's verdict on a node's gossip health: its `serfHealth` check passing ("Agent
    /// alive and reachable") or critical ("Agent not live or unreachable"); one write if it
    /// changes.
    pub(crate) fn set_node_health(&mut self, node: &str, status: CheckStatus) {
        let unchanged = self
            .checks
            .get(&key(node, "serfHealth"))
            .is_some_and(|c| c.value.status == status);
        if !unchanged {
            self.register_on(node, None, &[serf_health(status)]);
        }
    }

    /// One `Catalog.Deregister` RPC of the double's own agent for a service and its checks.
    pub(crate) fn deregister_service(&mut self, service_id: &str) {
        let own = self.own.clone();
        self.deregister_service_on(&own, service_id);
    }

    /// One `Catalog.Deregister` RPC for a service (and all its checks) of `node`.
    pub(crate) fn deregister_service_on(&mut self, node: &str, service_id: &str) {
        let idx = self.next_index();
        let Some(svc) = self.services.get(&key(node, service_id)).cloned() else {
            return;
        };
        let check_ids: Vec<String> = self
            .checks
            .iter()
            .filter(|((n, _), c)| n == node && c.value.service_id == service_id)
            .map(|(_, c)| c.value.id.clone())
            .collect();
        for id in check_ids {
            self.delete_check_txn(node, idx, &id);
        }
        self.services.remove(&key(node, service_id));
        self.idx_services = self.idx_services.max(idx);
        self.changes.push(Change::ServicesTable);
        self.service_name_left(&svc.value.name.to_lowercase(), idx);
    }

    /// One `Catalog.Deregister` RPC of the double's own agent for a single check.
    pub(crate) fn deregister_check(&mut self, check_id: &str) {
        let idx = self.next_index();
        let own = self.own.clone();
        self.delete_check_txn(&own, idx, check_id);
    }

    fn delete_check_txn(&mut self, node: &str, idx: u64, check_id: &str) {
        let k = key(node, check_id);
        let Some(existing) = self.checks.get(&k).cloned() else {
            return;
        };
        let lower_service = if existing.value.service_id.is_empty() {
            // 1.0.8 forgot to move the service indexes here, so blocking health queries are not
            // woken when node maintenance ends (transcript 08, 1.0.8).
            if !self.version.is_1_0() {
                self.bump_service_indexes_of_node(node, idx);
            }
            None
        } else {
            let lower = existing.value.service_name.to_lowercase();
            self.bump_service_index(&lower, idx);
            Some(lower)
        };
        self.checks.remove(&k);
        self.idx_checks = self.idx_checks.max(idx);
        self.changes.push(Change::Checks {
            node: node.to_string(),
            service: lower_service,
        });
    }

    /// Instances of a service name (case-insensitive) with their nodes, ordered like Consul's
    /// index (node, then service ID, both lower-cased), and the index a query for it reports.
    /// `with_checks` is true for health queries, whose fallback index includes the checks table.
    pub(crate) fn service_instances(
        &self,
        name: &str,
        with_checks: bool,
    ) -> (u64, Vec<(&NodeRow, &Indexed<ServiceRecord>)>) {
        let lower = name.to_lowercase();
        let mut instances: Vec<(&NodeRow, &Indexed<ServiceRecord>)> = self
            .services
            .iter()
            .filter(|(_, s)| s.value.name.to_lowercase() == lower)
            .filter_map(|((node, _), s)| self.nodes.get(node).map(|n| (n, s)))
            .collect();
        instances.sort_by_key(|(n, s)| (n.name.to_lowercase(), s.value.id.to_lowercase()));
        let index = if instances.is_empty() {
            self.missing_service_index(with_checks)
        } else {
            self.service_index
                .get(&lower)
                .copied()
                .unwrap_or_else(|| self.missing_service_index(with_checks))
        };
        (index, instances)
    }

    fn missing_service_index(&self, with_checks: bool) -> u64 {
        if let Some(ext) = self.extinction {
            return ext;
        }
        let mut idx = self.idx_nodes.max(self.idx_services);
        if with_checks {
            idx = idx.max(self.idx_checks);
        }
        idx
    }

    /// The checks table index (health/checks and health/node report it).
    pub(crate) fn checks_index(&self) -> u64 {
        self.idx_checks
    }

    /// Node-level checks of `node` then the service's checks, each ordered by lower-cased ID.
    pub(crate) fn checks_for_instance(
        &self,
        node: &str,
        service_id: &str,
    ) -> Vec<&Indexed<CheckRecord>> {
        let of_node = |(n, _): &&RowKey| n == node;
        let mut node_checks: Vec<_> = self
            .checks
            .iter()
            .filter(|(k, c)| of_node(k) && c.value.service_id.is_empty())
            .map(|(_, c)| c)
            .collect();
        node_checks.sort_by_key(|c| c.value.id.to_lowercase());
        let mut service_checks: Vec<_> = self
            .checks
            .iter()
            .filter(|(k, c)| of_node(k) && c.value.service_id == service_id)
            .map(|(_, c)| c)
            .collect();
        service_checks.sort_by_key(|c| c.value.id.to_lowercase());
        node_checks.extend(service_checks);
        node_checks
    }

    /// Checks of every instance of a service name, with their node names.
    pub(crate) fn checks_of_service_name(&self, name: &str) -> Vec<(&str, &Indexed<CheckRecord>)> {
        let lower = name.to_lowercase();
        let mut checks: Vec<_> = self
            .checks
            .iter()
            .filter(|(_, c)| {
                !c.value.service_id.is_empty() && c.value.service_name.to_lowercase() == lower
            })
            .map(|((n, _), c)| (n.as_str(), c))
            .collect();
        checks.sort_by_key(|(n, c)| (n.to_lowercase(), c.value.id.to_lowercase()));
        checks
    }

    /// Every check of one node, ordered by lower-cased ID.
    pub(crate) fn node_checks(&self, node: &str) -> Vec<&Indexed<CheckRecord>> {
        let mut checks: Vec<_> = self
            .checks
            .iter()
            .filter(|((n, _), _)| n.eq_ignore_ascii_case(node))
            .map(|(_, c)| c)
            .collect();
        checks.sort_by_key(|c| c.value.id.to_lowercase());
        checks
    }

    /// Every check of every node, with its node name.
    pub(crate) fn all_checks(&self) -> Vec<(&str, &Indexed<CheckRecord>)> {
        let mut checks: Vec<_> = self
            .checks
            .iter()
            .map(|((n, _), c)| (n.as_str(), c))
            .collect();
        checks.sort_by_key(|(n, c)| (n.to_lowercase(), c.value.id.to_lowercase()));
        checks
    }

    /// A check of the double's own node.
    #[cfg(test)]
    pub(crate) fn own_check(&self, check_id: &str) -> Option<&Indexed<CheckRecord>> {
        self.checks.get(&key(&self.own, check_id))
    }

    /// Index for catalog-wide listings (`/v1/catalog/services`).
    pub(crate) fn services_index(&self) -> u64 {
        self.idx_services.max(self.idx_nodes)
    }

    // ---- KV ----

    fn kv_max_index(&self) -> u64 {
        self.idx_kvs.max(self.idx_tombstones)
    }

    /// A single key: the index Consul reports for it (the key's own ModifyIndex, or the KV-wide
    /// index when it does not exist), the entry, and the watch channel a blocking read of it
    /// waits on.
    pub(crate) fn kv_get(&self, key: &str) -> (u64, Option<&KvEntry>, Channel) {
        let entry = self.kv.get(key);
        let index = entry.map_or_else(|| self.kv_max_index(), |e| e.modify_index);
        (index, entry, self.kv_tree.key_watch(key))
    }

    /// The watch channel of a prefix read.
    pub(crate) fn kv_prefix_watch(&self, prefix: &str) -> Channel {
        self.kv_tree.prefix_watch(prefix)
    }

    fn prefix_index(&self, prefix: &str, highest_entry: u64) -> u64 {
        let mut lindex = highest_entry;
        if prefix.is_empty() {
            lindex = self.kv_max_index();
        } else {
            let grave = self
                .tombstones
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, i)| *i)
                .max()
                .unwrap_or(0);
            lindex = lindex.max(grave);
        }
        if lindex != 0 {
            lindex
        } else {
            self.kv_max_index()
        }
    }

    /// Every entry under a prefix and the index Consul reports for that listing.
    pub(crate) fn kv_list(&self, prefix: &str) -> (u64, Vec<&KvEntry>) {
        let entries: Vec<&KvEntry> = self
            .kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
            .collect();
        let highest = entries.iter().map(|e| e.modify_index).max().unwrap_or(0);
        (self.prefix_index(prefix, highest), entries)
    }

    /// Keys under a prefix, rolled up at the first `separator` after the prefix.
    pub(crate) fn kv_keys(&self, prefix: &str, separator: &str) -> (u64, Vec<String>) {
        let (index, entries) = self.kv_list(prefix);
        let mut keys: Vec<String> = Vec::new();
        for e in entries {
            if separator.is_empty() {
                keys.push(e.key.clone());
                continue;
            }
            let after = &e.key[prefix.len()..];
            match after.find(separator) {
                Some(pos) => {
                    let key = e.key[..prefix.len() + pos + separator.len()].to_string();
                    if keys.last() != Some(&key) {
                        keys.push(key);
                    }
                }
                None => keys.push(e.key.clone()),
            }
        }
        (index, keys)
    }

    /// PUT: plain, or check-and-set against a ModifyIndex (0 = only if absent).
    pub(crate) fn kv_set(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        cas: Option<u64>,
    ) -> KvWritten {
        let idx = self.next_index();
        let existing = self.kv.get(key);
        if let Some(cas) = cas {
            let ok = match existing {
                None => cas == 0,
                Some(e) => cas != 0 && e.modify_index == cas,
            };
            if !ok {
                return false;
            }
        }
        let (create_index, lock_index) =
            existing.map_or((idx, 0), |e| (e.create_index, e.lock_index));
        self.kv.insert(
            key.to_string(),
            KvEntry {
                key: key.to_string(),
                value,
                flags,
                lock_index,
                create_index,
                modify_index: idx,
            },
        );
        self.idx_kvs = self.idx_kvs.max(idx);
        let closed = self.kv_tree.insert(key);
        self.changes.push(Change::KvTree(closed));
        true
    }

    /// DELETE of one key, optionally check-and-set.
    pub(crate) fn kv_delete(&mut self, key: &str, cas: Option<u64>) -> KvWritten {
        let idx = self.next_index();
        let Some(existing) = self.kv.get(key) else {
            return true;
        };
        if let Some(cas) = cas
            && existing.modify_index != cas
        {
            return false;
        }
        self.kv.remove(key);
        self.idx_kvs = self.idx_kvs.max(idx);
        self.tombstones.insert(key.to_string(), idx);
        self.idx_tombstones = self.idx_tombstones.max(idx);
        let closed = self.kv_tree.delete(key);
        self.changes.push(Change::KvTree(closed));
        true
    }

    /// DELETE `?recurse`: the whole subtree, with one tombstone for the prefix.
    pub(crate) fn kv_delete_tree(&mut self, prefix: &str) {
        let idx = self.next_index();
        let keys: Vec<String> = self
            .kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        for k in &keys {
            self.kv.remove(k);
        }
        if !prefix.is_empty() {
            self.tombstones.insert(prefix.to_string(), idx);
            self.idx_tombstones = self.idx_tombstones.max(idx);
        }
        self.idx_kvs = self.idx_kvs.max(idx);
        let closed = self.kv_tree.delete_prefix(prefix);
        self.changes.push(Change::KvTree(closed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::types::Weights;

    fn svc(id: &str, name: &str) -> ServiceRecord {
        ServiceRecord {
            id: id.into(),
            name: name.into(),
            tags: vec![],
            address: String::new(),
            tagged_addresses: BTreeMap::new(),
            meta: None,
            port: 1,
            weights: Weights::default(),
            enable_tag_override: false,
        }
    }

    #[test]
    fn missing_service_index_is_catalog_max_until_the_first_extinction() {
        let mut c = Catalog::boot(&Config::default());
        assert_eq!(c.service_instances("nosuch", true).0, 12);
        c.register(Some(&svc("other", "other")), &[]);
        assert_eq!(
            c.service_instances("nosuch", true).0,
            13,
            "any registration moves it"
        );
        c.deregister_service("other");
        assert_eq!(
            c.service_instances("nosuch", true).0,
            14,
            "extinction index"
        );
        c.register(Some(&svc("other2", "other2")), &[]);
        assert_eq!(
            c.service_instances("nosuch", true).0,
            14,
            "registrations no longer move it"
        );
    }

    #[test]
    fn identical_reregistration_consumes_an_index_but_changes_nothing() {
        let mut c = Catalog::boot(&Config::default());
        c.register(Some(&svc("a", "a")), &[]);
        let (idx, rows) = c.service_instances("a", true);
        assert_eq!((idx, rows[0].1.modify_index), (13, 13));
        c.register(Some(&svc("a", "a")), &[]);
        assert_eq!(c.raft_index(), 14);
        assert_eq!(c.service_instances("a", true).0, 13);
    }

    #[test]
    fn a_cluster_boots_its_servers_in_name_order() {
        let peer = |name: &str, n: u8| crate::config::PeerServer {
            node_name: name.into(),
            node_id: format!("00000000-0000-0000-0000-00000000000{n}"),
            address: format!("127.0.0.1{n}"),
        };
        let cfg = Config {
            node_name: "consul-b".into(),
            peers: vec![peer("consul-c", 3), peer("consul-a", 1)],
            ..Config::default()
        };
        let c = Catalog::boot(&cfg);
        let node = |n: &str| {
            let row = c.node(n).unwrap();
            (row.create_index, row.modify_index)
        };
        let serf = |n: &str| c.checks[&key(n, "serfHealth")].create_index;
        // As transcript 14 recorded it: a 7 (with its check), b 8 and its check 9, then the node
        // updates in the same order.
        assert_eq!((node("consul-a"), serf("consul-a")), ((7, 11), 7));
        assert_eq!((node("consul-b"), serf("consul-b")), ((8, 12), 9));
        assert_eq!((node("consul-c"), serf("consul-c")), ((10, 13), 10));
        assert_eq!(c.raft_index(), 13);
        assert_eq!(c.own_node(), "consul-b");
    }

    #[test]
    fn a_node_check_moves_only_the_services_of_its_node() {
        let cfg = Config {
            peers: vec![crate::config::PeerServer {
                node_name: "peer".into(),
                node_id: "id".into(),
                address: "10.0.0.9".into(),
            }],
            ..Config::default()
        };
        let mut c = Catalog::boot(&cfg);
        c.register(Some(&svc("a", "a")), &[]);
        c.register_on("peer", Some(&svc("b", "b")), &[]);
        let (a, b) = (
            c.service_instances("a", true).0,
            c.service_instances("b", true).0,
        );
        c.set_node_health("peer", CheckStatus::Critical);
        assert_eq!(c.service_instances("a", true).0, a);
        assert!(c.service_instances("b", true).0 > b);
        let idx = c.raft_index();
        c.set_node_health("peer", CheckStatus::Critical);
        assert_eq!(c.raft_index(), idx, "no write when nothing changes");
        assert_eq!(
            c.checks[&key("peer", "serfHealth")].value.output,
            SERF_FAILED
        );
        let (_, rows) = c.service_instances("b", true);
        assert_eq!(rows[0].0.address, "10.0.0.9");
    }

    #[test]
    fn kv_index_counts_tombstones() {
        let mut c = Catalog::boot(&Config::default());
        assert_eq!(c.kv_get("k").0, 0);
        assert!(c.kv_set("k", b"v".to_vec(), 0, None));
        assert_eq!(c.kv_get("k").0, 13);
        assert!(c.kv_set("other", b"v".to_vec(), 0, None));
        assert_eq!(
            c.kv_get("k").0,
            13,
            "an existing key reports its own ModifyIndex"
        );
        assert!(
            !c.kv_set("k", b"x".to_vec(), 0, Some(0)),
            "cas=0 on an existing key"
        );
        assert!(c.kv_delete("k", None));
        let (idx, entry, _) = c.kv_get("k");
        assert_eq!((idx, entry), (16, None));
        assert_eq!(c.kv_list("").0, 16);
        assert_eq!(c.kv_list("k").0, 16, "graveyard index for the prefix");
    }

    #[test]
    fn kv_keys_roll_up_at_the_separator() {
        let mut c = Catalog::boot(&Config::default());
        for k in ["a/b/c", "a/b/d", "a/e", "f"] {
            c.kv_set(k, vec![], 0, None);
        }
        assert_eq!(
            c.kv_keys("a/", "/").1,
            vec!["a/b/".to_string(), "a/e".to_string()]
        );
        assert_eq!(c.kv_keys("", "").1.len(), 4);
    }
}
