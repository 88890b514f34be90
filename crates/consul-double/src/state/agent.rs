//! The agent-local view (what `/v1/agent/*` shows) and its anti-entropy sync to the catalog.
//!
//! Rules copied from Consul's `agent.go` and `local/state.go`: default check IDs and names,
//! initial status, re-registration keeping status and output, `replace-existing-checks`, TTL
//! timers, output truncation, idempotent updates, deferred output-only updates, maintenance
//! checks, and the reaper for `DeregisterCriticalServiceAfter`. Every change is synced to the
//! catalog before the request returns, as one Consul RPC per service or check; while the cluster
//! has no leader, changes stay agent-local until one is elected.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::state::State;
use crate::state::definition::{CheckDefinition, Rejection, ServiceDefinition};
use crate::state::types::{CheckRecord, CheckStatus, ServiceAddress, ServiceRecord, Weights};
use crate::state::watch::Change;

/// Check ID prefix of service maintenance checks.
pub const SERVICE_MAINTENANCE_PREFIX: &str = "_service_maintenance:";
/// Check ID of the node maintenance check.
pub const NODE_MAINTENANCE_ID: &str = "_node_maintenance";
const SERVICE_MAINTENANCE_DEFAULT: &str = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
const NODE_MAINTENANCE_DEFAULT: &str = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";

#[derive(Debug)]
pub(crate) struct LocalService {
    pub(crate) record: ServiceRecord,
    in_sync: bool,
}

#[derive(Debug)]
pub(crate) struct LocalCheck {
    pub(crate) record: CheckRecord,
    pub(crate) def: CheckDefinition,
    in_sync: bool,
    /// When the agent saw the check turn critical (Consul's `CriticalTime`); drives the reaper.
    pub(crate) critical_since: Option<Instant>,
    /// Pending write-back of an output-only change.
    deferred: Option<AbortHandle>,
    /// TTL timer or check runner.
    timer: Option<AbortHandle>,
    /// Identifies the current timer so a stale one that fires late does nothing.
    generation: u64,
    /// The output a TTL expiry quotes.
    last_ttl_output: String,
    /// `DeregisterCriticalServiceAfter`, raised to the floor.
    pub(crate) reap_after: Option<Duration>,
}

/// Agent-local services and checks.
#[derive(Debug, Default)]
pub(crate) struct Agent {
    pub(crate) services: BTreeMap<String, LocalService>,
    pub(crate) checks: BTreeMap<String, LocalCheck>,
    deleted_services: Vec<String>,
    deleted_checks: Vec<String>,
    next_generation: u64,
}

impl Agent {
    pub(crate) fn stop_all_timers(&mut self) {
        for c in self.checks.values_mut() {
            c.stop_timers();
        }
    }
}

impl LocalCheck {
    fn stop_timers(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
        if let Some(d) = self.deferred.take() {
            d.abort();
        }
    }
}

/// Why a TTL update failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TtlError {
    #[error("CheckID \"{0}\" does not have associated TTL")]
    NoTtl(String),
}

/// Consul's check output limit: the first `max` bytes and a note on what was cut.
pub(crate) fn truncate_output(output: &str, max: usize) -> String {
    let total = output.len();
    if total <= max {
        return output.to_string();
    }
    // Go slices bytes; an invalid UTF-8 tail becomes U+FFFD when Consul encodes JSON.
    let head = String::from_utf8_lossy(&output.as_bytes()[..max]);
    format!("{head} ... (captured {max} of {total} bytes)")
}

impl State {
    fn agent_changed(&mut self) {
        self.agent_changes.push(Change::Agent);
    }

    /// `PUT /v1/agent/service/register` after decoding and validation.
    pub(crate) fn register_service(
        &mut self,
        def: &ServiceDefinition,
        replace_existing_checks: bool,
    ) -> Result<(), Rejection> {
        for check in def.all_checks() {
            if check.runs_scripts() {
                return Err(Rejection {
                    status: 500,
                    message: "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true".into(),
                });
            }
        }
        let (record, rows) = service_rows(&self.cfg, def);
        let id = record.id.clone();
        // Status and output of checks that already exist survive the re-registration.
        let snapshot: HashMap<String, (CheckStatus, String)> = self
            .agent
            .checks
            .iter()
            .map(|(k, c)| (k.clone(), (c.record.status, c.record.output.clone())))
            .collect();
        let mut keep: HashMap<String, bool> = self
            .agent
            .checks
            .values()
            .filter(|c| c.record.service_id == id)
            .map(|c| (c.record.id.clone(), false))
            .collect();
        self.agent.services.insert(
            id.clone(),
            LocalService {
                record,
                in_sync: false,
            },
        );
        for (mut rec, check) in rows {
            if let Some((prev_status, prev_output)) = snapshot.get(&rec.id) {
                rec.status = *prev_status;
                rec.output = prev_output.clone();
            }
            keep.insert(rec.id.clone(), true);
            self.add_local_check(rec, check);
        }
        if replace_existing_checks {
            let mut stale: Vec<String> = keep
                .into_iter()
                .filter(|(_, k)| !k)
                .map(|(id, _)| id)
                .collect();
            stale.sort();
            for check_id in stale {
                self.remove_local_check(&check_id);
            }
        }
        self.agent_changed();
        self.sync();
        Ok(())
    }

    /// Adds or replaces an agent-local check and starts its timer.
    fn add_local_check(&mut self, record: CheckRecord, def: CheckDefinition) {
        let floor = self.cfg.timing.dcsa_floor;
        let reap_after = (def.deregister_critical_service_after > 0)
            .then(|| Duration::from_nanos(def.deregister_critical_service_after as u64).max(floor));
        let (in_sync, deferred) = match self.agent.checks.get_mut(&record.id) {
            Some(existing) => {
                if let Some(t) = existing.timer.take() {
                    t.abort();
                }
                // A pending output write-back still belongs to this check ID.
                (existing.record.is_same(&record), existing.deferred.take())
            }
            None => (false, None),
        };
        let id = record.id.clone();
        self.agent.checks.insert(
            id.clone(),
            LocalCheck {
                record,
                def,
                in_sync,
                critical_since: None,
                deferred,
                timer: None,
                generation: 0,
                last_ttl_output: String::new(),
                reap_after,
            },
        );
        self.start_check_timer(&id);
    }

    fn start_check_timer(&mut self, check_id: &str) {
        self.agent.next_generation += 1;
        let generation = self.agent.next_generation;
        let Some(check) = self.agent.checks.get_mut(check_id) else {
            return;
        };
        if let Some(t) = check.timer.take() {
            t.abort();
        }
        check.generation = generation;
        let weak = self.weak.clone();
        let id = check_id.to_string();
        if check.def.ttl > 0 {
            let ttl = Duration::from_nanos(check.def.ttl as u64);
            let task = self.runtime.spawn(async move {
                tokio::time::sleep(ttl).await;
                if let Some(cell) = weak.upgrade() {
                    cell.with(|st| st.ttl_expired(&id, generation));
                }
            });
            check.timer = Some(task.abort_handle());
        } else if !check.def.tcp.is_empty() && check.def.interval > 0 {
            let interval = Duration::from_nanos(check.def.interval as u64);
            let timeout = if check.def.timeout > 0 {
                Duration::from_nanos(check.def.timeout as u64)
            } else {
                Duration::from_secs(10)
            };
            let addr = check.def.tcp.clone();
            let initial = self.stagger(interval);
            let task = self.runtime.spawn(crate::checks::run_tcp(
                weak, id, generation, addr, interval, timeout, initial,
            ));
            if let Some(check) = self.agent.checks.get_mut(check_id) {
                check.timer = Some(task.abort_handle());
            }
        } else if !check.def.http.is_empty() && check.def.interval > 0 {
            let interval = Duration::from_nanos(check.def.interval as u64);
            let probe = crate::checks::HttpProbe {
                url: check.def.http.clone(),
                method: check.def.method.clone(),
                headers: check.def.header.clone(),
                body: check.def.body.clone(),
                timeout: if check.def.timeout > 0 {
                    Duration::from_nanos(check.def.timeout as u64)
                } else {
                    Duration::from_secs(10)
                },
                skip_verify: check.def.tls_skip_verify,
                output_max: if check.def.output_max_size > 0 {
                    check.def.output_max_size as usize
                } else {
                    self.cfg.output_max_size
                },
            };
            let initial = self.stagger(interval);
            let task = self.runtime.spawn(crate::checks::run_http(
                weak, id, generation, probe, interval, initial,
            ));
            if let Some(check) = self.agent.checks.get_mut(check_id) {
                check.timer = Some(task.abort_handle());
            }
        }
    }

    fn ttl_expired(&mut self, check_id: &str, generation: u64) {
        let Some(check) = self.agent.checks.get_mut(check_id) else {
            return;
        };
        if check.generation != generation {
            return;
        }
        check.timer = None;
        let output = if check.last_ttl_output.is_empty() {
            "TTL expired".to_string()
        } else {
            format!(
                "TTL expired (last output before timeout follows): {}",
                check.last_ttl_output
            )
        };
        self.update_check(check_id, CheckStatus::Critical, output);
    }

    /// Result of a check runner (TCP).
    pub(crate) fn runner_result(
        &mut self,
        check_id: &str,
        generation: u64,
        status: CheckStatus,
        output: String,
    ) {
        let max = self.cfg.output_max_size;
        match self.agent.checks.get(check_id) {
            Some(c) if c.generation == generation => {}
            _ => return,
        }
        self.update_check(check_id, status, truncate_output(&output, max));
    }

    /// Consul's `local.State.UpdateCheck`.
    pub(crate) fn update_check(&mut self, check_id: &str, status: CheckStatus, output: String) {
        let interval = self.cfg.timing.check_update_interval;
        let stagger = self.stagger(interval);
        let weak = self.weak.clone();
        let runtime = self.runtime.clone();
        let Some(check) = self.agent.checks.get_mut(check_id) else {
            return;
        };
        if status == CheckStatus::Critical {
            if check.critical_since.is_none() {
                check.critical_since = Some(Instant::now());
            }
        } else {
            check.critical_since = None;
        }
        if check.record.status == status && check.record.output == output {
            return;
        }
        if !interval.is_zero() && check.record.status == status {
            // Output-only change: keep it locally and write it back later, as Consul does to
            // spare the servers from chatty check output.
            check.record.output = output;
            if check.deferred.is_none() {
                let delay = interval / 2 + stagger;
                let id = check_id.to_string();
                let task = runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(cell) = weak.upgrade() {
                        cell.with(|st| st.deferred_sync_due(&id));
                    }
                });
                check.deferred = Some(task.abort_handle());
            }
            self.agent_changed();
            return;
        }
        check.record.status = status;
        check.record.output = output;
        check.in_sync = false;
        self.agent_changed();
        self.sync();
    }

    fn deferred_sync_due(&mut self, check_id: &str) {
        if let Some(check) = self.agent.checks.get_mut(check_id) {
            check.deferred = None;
            check.in_sync = false;
            self.sync();
        }
    }

    /// `PUT /v1/agent/check/{pass,warn,fail,update}/:id`.
    pub(crate) fn update_ttl(
        &mut self,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), TtlError> {
        let max_default = self.cfg.output_max_size;
        let check = match self.agent.checks.get_mut(check_id) {
            Some(c) if c.def.ttl > 0 => c,
            _ => return Err(TtlError::NoTtl(check_id.to_string())),
        };
        let max = if check.def.output_max_size > 0 {
            check.def.output_max_size as usize
        } else {
            max_default
        };
        let output = truncate_output(output, max);
        check.last_ttl_output = output.clone();
        self.update_check(check_id, status, output);
        // Every update re-arms the timer to a full TTL, whatever the status.
        self.start_check_timer(check_id);
        Ok(())
    }

    fn remove_local_check(&mut self, check_id: &str) -> bool {
        match self.agent.checks.remove(check_id) {
            Some(mut c) => {
                c.stop_timers();
                self.agent.deleted_checks.push(check_id.to_string());
                self.agent_changed();
                true
            }
            None => false,
        }
    }

    /// `PUT /v1/agent/service/deregister/:id`; false when the ID is unknown.
    pub(crate) fn deregister_service(&mut self, service_id: &str) -> bool {
        if self.agent.services.remove(service_id).is_none() {
            return false;
        }
        let ids: Vec<String> = self
            .agent
            .checks
            .values()
            .filter(|c| c.record.service_id == service_id)
            .map(|c| c.record.id.clone())
            .collect();
        for id in ids {
            if let Some(mut c) = self.agent.checks.remove(&id) {
                c.stop_timers();
            }
        }
        // One catalog RPC removes the service with its checks.
        self.agent.deleted_services.push(service_id.to_string());
        self.agent_changed();
        self.sync();
        true
    }

    /// `PUT /v1/agent/check/deregister/:id`; false when the ID is unknown.
    pub(crate) fn deregister_check(&mut self, check_id: &str) -> bool {
        let removed = self.remove_local_check(check_id);
        self.sync();
        removed
    }

    /// `PUT /v1/agent/check/register` after decoding and validation.
    pub(crate) fn register_check(&mut self, def: CheckDefinition) -> Result<(), Rejection> {
        if def.runs_scripts() {
            return Err(Rejection {
                status: 500,
                message: "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true".into(),
            });
        }
        let (service_name, service_tags) = if def.service_id.is_empty() {
            (String::new(), Vec::new())
        } else {
            match self.agent.services.get(&def.service_id) {
                Some(s) => (s.record.name.clone(), s.record.tags.clone()),
                None => {
                    return Err(Rejection {
                        status: 500,
                        message: format!("ServiceID \"{}\" does not exist", def.service_id),
                    });
                }
            }
        };
        let id = if def.check_id.is_empty() {
            def.name.clone()
        } else {
            def.check_id.clone()
        };
        let record = CheckRecord {
            id,
            name: def.name.clone(),
            status: CheckStatus::parse(&def.status).unwrap_or(CheckStatus::Critical),
            notes: def.notes.clone(),
            output: String::new(),
            service_id: def.service_id.clone(),
            service_name,
            service_tags,
            kind: def.kind().to_string(),
        };
        self.add_local_check(record, def);
        self.agent_changed();
        self.sync();
        Ok(())
    }

    /// `PUT /v1/agent/service/maintenance/:id`; false when the service is unknown.
    pub(crate) fn service_maintenance(
        &mut self,
        service_id: &str,
        enable: bool,
        reason: &str,
    ) -> bool {
        let Some(service) = self.agent.services.get(service_id) else {
            return false;
        };
        let check_id = format!("{SERVICE_MAINTENANCE_PREFIX}{service_id}");
        if enable {
            if self.agent.checks.contains_key(&check_id) {
                return true;
            }
            let record = CheckRecord {
                id: check_id,
                name: "Service Maintenance Mode".into(),
                status: CheckStatus::Critical,
                notes: if reason.is_empty() {
                    SERVICE_MAINTENANCE_DEFAULT.into()
                } else {
                    reason.into()
                },
                output: String::new(),
                service_id: service_id.to_string(),
                service_name: service.record.name.clone(),
                service_tags: service.record.tags.clone(),
                kind: "maintenance".into(),
            };
            self.add_local_check(record, CheckDefinition::default());
            self.agent_changed();
        } else {
            self.remove_local_check(&check_id);
        }
        self.sync();
        true
    }

    /// `PUT /v1/agent/maintenance`.
    pub(crate) fn node_maintenance(&mut self, enable: bool, reason: &str) {
        if enable {
            if self.agent.checks.contains_key(NODE_MAINTENANCE_ID) {
                return;
            }
            let record = CheckRecord {
                id: NODE_MAINTENANCE_ID.into(),
                name: "Node Maintenance Mode".into(),
                status: CheckStatus::Critical,
                notes: if reason.is_empty() {
                    NODE_MAINTENANCE_DEFAULT.into()
                } else {
                    reason.into()
                },
                output: String::new(),
                service_id: String::new(),
                service_name: String::new(),
                service_tags: Vec::new(),
                kind: "maintenance".into(),
            };
            self.add_local_check(record, CheckDefinition::default());
            self.agent_changed();
        } else {
            self.remove_local_check(NODE_MAINTENANCE_ID);
        }
        self.sync();
    }

    /// The reaper: deregisters every service with a check that has been critical for longer than
    /// its `DeregisterCriticalServiceAfter`.
    pub(crate) fn reap(&mut self) -> Vec<String> {
        let now = Instant::now();
        let mut doomed: Vec<String> = Vec::new();
        for c in self.agent.checks.values() {
            if c.record.service_id.is_empty() || doomed.contains(&c.record.service_id) {
                continue;
            }
            if let (Some(since), Some(after)) = (c.critical_since, c.reap_after)
                && now.duration_since(since) > after
            {
                doomed.push(c.record.service_id.clone());
            }
        }
        for id in &doomed {
            self.deregister_service(id);
        }
        doomed
    }

    /// Whether anti-entropy has something to send: a request that changed the agent then makes
    /// an RPC, which waits for a leader when there is none.
    pub(crate) fn agent_pending(&self) -> bool {
        !self.agent.deleted_services.is_empty()
            || !self.agent.deleted_checks.is_empty()
            || self.agent.services.values().any(|s| !s.in_sync)
            || self.agent.checks.values().any(|c| !c.in_sync)
    }

    /// Anti-entropy: pushes every out-of-sync service and check to the catalog, one RPC each,
    /// services first (a service carries its out-of-sync checks along). Without a leader nothing
    /// can be written; the changes stay pending until one is elected.
    pub(crate) fn sync(&mut self) {
        if !self.leader.has_leader() {
            return;
        }
        for id in std::mem::take(&mut self.agent.deleted_services) {
            self.catalog.deregister_service(&id);
        }
        let service_ids: Vec<String> = self
            .agent
            .services
            .iter()
            .filter(|(_, s)| !s.in_sync)
            .map(|(k, _)| k.clone())
            .collect();
        for sid in service_ids {
            let mut checks = Vec::new();
            for c in self.agent.checks.values_mut() {
                if c.record.service_id == sid && !c.in_sync {
                    c.in_sync = true;
                    checks.push(c.record.clone());
                }
            }
            let Some(svc) = self.agent.services.get_mut(&sid) else {
                continue;
            };
            svc.in_sync = true;
            let record = svc.record.clone();
            self.catalog.register(Some(&record), &checks);
        }
        for id in std::mem::take(&mut self.agent.deleted_checks) {
            self.catalog.deregister_check(&id);
        }
        let check_ids: Vec<String> = self
            .agent
            .checks
            .iter()
            .filter(|(_, c)| !c.in_sync)
            .map(|(k, _)| k.clone())
            .collect();
        for cid in check_ids {
            let Some(check) = self.agent.checks.get_mut(&cid) else {
                continue;
            };
            check.in_sync = true;
            if let Some(d) = check.deferred.take() {
                d.abort();
            }
            let record = check.record.clone();
            let service = self
                .agent
                .services
                .get(&record.service_id)
                .map(|s| s.record.clone());
            self.catalog.register(service.as_ref(), &[record]);
        }
    }
}

/// What a service registration describes: the service record, and each check with its default
/// ID (`service:<id>`, or `service:<id>:<n>` for several), default name and initial status
/// (critical unless given), before any state carried over from an earlier registration.
pub(crate) fn service_rows(
    cfg: &Config,
    def: &ServiceDefinition,
) -> (ServiceRecord, Vec<(CheckRecord, CheckDefinition)>) {
    let modern = cfg.version.modern_shapes();
    let id = if def.id.is_empty() {
        def.name.clone()
    } else {
        def.id.clone()
    };
    let mut tagged = if modern {
        def.tagged_addresses.clone()
    } else {
        BTreeMap::new()
    };
    if modern {
        add_default_tagged_addresses(&mut tagged, &def.address, def.port);
    }
    let record = ServiceRecord {
        id: id.clone(),
        name: def.name.clone(),
        tags: def.tags.clone(),
        address: def.address.clone(),
        tagged_addresses: tagged,
        meta: def.meta.clone(),
        port: def.port,
        weights: if modern {
            def.weights.unwrap_or_default()
        } else {
            Weights::default()
        },
        enable_tag_override: def.enable_tag_override,
    };
    let checks = def.all_checks();
    let count = checks.len();
    let rows = checks
        .into_iter()
        .enumerate()
        .map(|(i, check)| {
            let check_id = if !check.check_id.is_empty() {
                check.check_id.clone()
            } else if count > 1 {
                format!("service:{id}:{}", i + 1)
            } else {
                format!("service:{id}")
            };
            let name = if check.name.is_empty() {
                format!("Service '{}' check", record.name)
            } else {
                check.name.clone()
            };
            let rec = CheckRecord {
                id: check_id,
                name,
                status: CheckStatus::parse(&check.status).unwrap_or(CheckStatus::Critical),
                notes: check.notes.clone(),
                output: String::new(),
                service_id: id.clone(),
                service_name: record.name.clone(),
                service_tags: record.tags.clone(),
                kind: check.kind().to_string(),
            };
            (rec, check.clone())
        })
        .collect();
    (record, rows)
}

/// Consul 1.7+ adds `lan_ipv4`/`wan_ipv4` (or `_ipv6`) for a service address that is an IP
/// literal, unless the registration set them.
fn add_default_tagged_addresses(
    tagged: &mut BTreeMap<String, ServiceAddress>,
    address: &str,
    port: i64,
) {
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return;
    };
    let (lan, wan) = if ip.is_ipv4() {
        ("lan_ipv4", "wan_ipv4")
    } else {
        ("lan_ipv6", "wan_ipv6")
    };
    for key in [lan, wan] {
        tagged
            .entry(key.to_string())
            .or_insert_with(|| ServiceAddress {
                address: address.to_string(),
                port,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_truncation_matches_consul() {
        let long = "x".repeat(5000);
        let out = truncate_output(&long, 4096);
        assert!(out.starts_with(&"x".repeat(4096)));
        assert!(out.ends_with(" ... (captured 4096 of 5000 bytes)"));
        assert_eq!(truncate_output("short", 4096), "short");
    }

    #[test]
    fn tagged_addresses_only_for_ip_literals() {
        let mut t = BTreeMap::new();
        add_default_tagged_addresses(&mut t, "db.example", 1);
        assert!(t.is_empty());
        add_default_tagged_addresses(&mut t, "::1", 8);
        assert_eq!(t.keys().collect::<Vec<_>>(), ["lan_ipv6", "wan_ipv6"]);
    }
}
