//! The server side: catalog tables, KV and the Raft-like index they share.
//!
//! Index bookkeeping copies Consul 1.8's state store: every write consumes one index; table
//! indexes (`nodes`, `services`, `checks`, `kvs`, `tombstones`) and per-service index entries
//! (`service.<name>`, 1.0.7+) only move when a row really changes; removing the last instance of a
//! name deletes its entry and sets the "service last extinction" index, which is what a query for
//! a missing service reports once it exists. The catalog holds one node, the agent's own.

use std::collections::{BTreeMap, HashMap};

use crate::config::{Config, ConsulVersion};
use crate::state::types::{CheckRecord, CheckStatus, Indexed, KvEntry, ServiceRecord};
use crate::state::watch::Change;

/// The node row.
#[derive(Debug, Clone)]
pub(crate) struct NodeRow {
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

#[derive(Debug)]
pub(crate) struct Catalog {
    version: ConsulVersion,
    raft_index: u64,
    pub(crate) node: NodeRow,
    pub(crate) services: BTreeMap<String, Indexed<ServiceRecord>>,
    pub(crate) checks: BTreeMap<String, Indexed<CheckRecord>>,
    idx_nodes: u64,
    idx_services: u64,
    idx_checks: u64,
    idx_kvs: u64,
    idx_tombstones: u64,
    service_index: HashMap<String, u64>,
    extinction: Option<u64>,
    pub(crate) kv: BTreeMap<String, KvEntry>,
    tombstones: BTreeMap<String, u64>,
    pub(crate) changes: Vec<Change>,
}

/// Outcome of a KV write that may be conditional.
pub(crate) type KvWritten = bool;

impl Catalog {
    /// A freshly booted dev agent: the node and its `serfHealth` check are registered and some
    /// internal writes have used up the first indexes, as in the recordings (1.8.4: node 10/12,
    /// first service 13; 1.0.8: node 5/6, first service 7).
    pub(crate) fn boot(cfg: &Config) -> Catalog {
        let (node_create, node_modify) = match cfg.version {
            ConsulVersion::V1_8_4 => (10, 12),
            ConsulVersion::V1_0_8 => (5, 6),
        };
        let serf = CheckRecord {
            id: "serfHealth".into(),
            name: "Serf Health Status".into(),
            status: CheckStatus::Passing,
            notes: String::new(),
            output: "Agent alive and reachable".into(),
            service_id: String::new(),
            service_name: String::new(),
            service_tags: Vec::new(),
            kind: String::new(),
        };
        let mut checks = BTreeMap::new();
        checks.insert(
            serf.id.clone(),
            Indexed {
                value: serf,
                create_index: node_create,
                modify_index: node_create,
            },
        );
        Catalog {
            version: cfg.version,
            raft_index: node_modify,
            node: NodeRow {
                create_index: node_create,
                modify_index: node_modify,
            },
            services: BTreeMap::new(),
            checks,
            idx_nodes: node_modify,
            idx_services: 0,
            idx_checks: node_create,
            idx_kvs: 0,
            idx_tombstones: 0,
            service_index: HashMap::new(),
            extinction: None,
            kv: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// The last index handed out.
    pub(crate) fn raft_index(&self) -> u64 {
        self.raft_index
    }

    fn next_index(&mut self) -> u64 {
        self.raft_index += 1;
        self.raft_index
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

    fn bump_all_service_indexes(&mut self, idx: u64) {
        let names: Vec<String> = self
            .services
            .values()
            .map(|s| s.value.name.to_lowercase())
            .collect();
        for name in names {
            self.bump_service_index(&name, idx);
        }
    }

    /// One `Catalog.Register` RPC: a service and/or checks in one transaction.
    pub(crate) fn register(&mut self, service: Option<&ServiceRecord>, checks: &[CheckRecord]) {
        let idx = self.next_index();
        if let Some(svc) = service {
            self.ensure_service(idx, svc);
        }
        for check in checks {
            self.ensure_check(idx, check.clone());
        }
    }

    fn ensure_service(&mut self, idx: u64, svc: &ServiceRecord) {
        let old = self.services.get(&svc.id).cloned();
        if let Some(existing) = &old
            && existing.value == *svc
        {
            return;
        }
        let create_index = old.as_ref().map_or(idx, |o| o.create_index);
        self.services.insert(
            svc.id.clone(),
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

    fn ensure_check(&mut self, idx: u64, mut check: CheckRecord) {
        let lower_service = if check.service_id.is_empty() {
            None
        } else {
            match self.services.get(&check.service_id) {
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
        let existing = self.checks.get(&check.id);
        if let Some(existing) = existing
            && existing.value.is_same(&check)
        {
            return;
        }
        let create_index = existing.map_or(idx, |e| e.create_index);
        match &lower_service {
            Some(name) => self.bump_service_index(name, idx),
            None => self.bump_all_service_indexes(idx),
        }
        self.checks.insert(
            check.id.clone(),
            Indexed {
                value: check,
                create_index,
                modify_index: idx,
            },
        );
        self.idx_checks = self.idx_checks.max(idx);
        self.changes.push(Change::Checks(lower_service));
    }

    /// One `Catalog.Deregister` RPC for a service (and all its checks).
    pub(crate) fn deregister_service(&mut self, service_id: &str) {
        let idx = self.next_index();
        let Some(svc) = self.services.get(service_id).cloned() else {
            return;
        };
        let check_ids: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.value.service_id == service_id)
            .map(|c| c.value.id.clone())
            .collect();
        for id in check_ids {
            self.delete_check_txn(idx, &id);
        }
        self.services.remove(service_id);
        self.idx_services = self.idx_services.max(idx);
        self.changes.push(Change::ServicesTable);
        self.service_name_left(&svc.value.name.to_lowercase(), idx);
    }

    /// One `Catalog.Deregister` RPC for a single check.
    pub(crate) fn deregister_check(&mut self, check_id: &str) {
        let idx = self.next_index();
        self.delete_check_txn(idx, check_id);
    }

    fn delete_check_txn(&mut self, idx: u64, check_id: &str) {
        let Some(existing) = self.checks.get(check_id).cloned() else {
            return;
        };
        let lower_service = if existing.value.service_id.is_empty() {
            // 1.0.8 forgot to move the service indexes here, so blocking health queries are not
            // woken when node maintenance ends (transcript 08, 1.0.8).
            if self.version != ConsulVersion::V1_0_8 {
                self.bump_all_service_indexes(idx);
            }
            None
        } else {
            let lower = existing.value.service_name.to_lowercase();
            self.bump_service_index(&lower, idx);
            Some(lower)
        };
        self.checks.remove(check_id);
        self.idx_checks = self.idx_checks.max(idx);
        self.changes.push(Change::Checks(lower_service));
    }

    /// Instances of a service name (case-insensitive, ordered like Consul's index) and the index a
    /// query for it reports. `with_checks` is true for health queries, whose fallback index
    /// includes the checks table.
    pub(crate) fn service_instances(
        &self,
        name: &str,
        with_checks: bool,
    ) -> (u64, Vec<&Indexed<ServiceRecord>>) {
        let lower = name.to_lowercase();
        let mut instances: Vec<&Indexed<ServiceRecord>> = self
            .services
            .values()
            .filter(|s| s.value.name.to_lowercase() == lower)
            .collect();
        instances.sort_by_key(|s| s.value.id.to_lowercase());
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

    /// Node-level checks then the service's checks, each ordered by lower-cased check ID.
    pub(crate) fn checks_for_instance(&self, service_id: &str) -> Vec<&Indexed<CheckRecord>> {
        let mut node_checks: Vec<_> = self
            .checks
            .values()
            .filter(|c| c.value.service_id.is_empty())
            .collect();
        node_checks.sort_by_key(|c| c.value.id.to_lowercase());
        let mut service_checks: Vec<_> = self
            .checks
            .values()
            .filter(|c| c.value.service_id == service_id)
            .collect();
        service_checks.sort_by_key(|c| c.value.id.to_lowercase());
        node_checks.extend(service_checks);
        node_checks
    }

    /// Checks of every instance of a service name.
    pub(crate) fn checks_of_service_name(&self, name: &str) -> Vec<&Indexed<CheckRecord>> {
        let lower = name.to_lowercase();
        let mut checks: Vec<_> = self
            .checks
            .values()
            .filter(|c| {
                !c.value.service_id.is_empty() && c.value.service_name.to_lowercase() == lower
            })
            .collect();
        checks.sort_by_key(|c| c.value.id.to_lowercase());
        checks
    }

    /// Every check of the node.
    pub(crate) fn all_checks(&self) -> Vec<&Indexed<CheckRecord>> {
        let mut checks: Vec<_> = self.checks.values().collect();
        checks.sort_by_key(|c| c.value.id.to_lowercase());
        checks
    }

    /// Index for catalog-wide listings (`/v1/catalog/services`).
    pub(crate) fn services_index(&self) -> u64 {
        self.idx_services.max(self.idx_nodes)
    }

    // ---- KV ----

    fn kv_max_index(&self) -> u64 {
        self.idx_kvs.max(self.idx_tombstones)
    }

    /// A single key: the KV-wide index and the entry.
    pub(crate) fn kv_get(&self, key: &str) -> (u64, Option<&KvEntry>) {
        (self.kv_max_index(), self.kv.get(key))
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
        self.changes.push(Change::Kv(key.to_string()));
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
        self.changes.push(Change::Kv(key.to_string()));
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
        self.changes.push(Change::Kv(prefix.to_string()));
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
        assert_eq!((idx, rows[0].modify_index), (13, 13));
        c.register(Some(&svc("a", "a")), &[]);
        assert_eq!(c.raft_index(), 14);
        assert_eq!(c.service_instances("a", true).0, 13);
    }

    #[test]
    fn kv_index_counts_tombstones() {
        let mut c = Catalog::boot(&Config::default());
        assert_eq!(c.kv_get("k").0, 0);
        assert!(c.kv_set("k", b"v".to_vec(), 0, None));
        assert_eq!(c.kv_get("k").0, 13);
        assert!(
            !c.kv_set("k", b"x".to_vec(), 0, Some(0)),
            "cas=0 on an existing key"
        );
        assert!(c.kv_delete("k", None));
        assert_eq!(c.kv_get("k"), (15, None));
        assert_eq!(c.kv_list("").0, 15);
        assert_eq!(c.kv_list("k").0, 15, "graveyard index for the prefix");
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
