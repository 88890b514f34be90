//! The double's state: the agent-local view, the catalog it syncs to, and the waiters of blocking
//! queries, all behind one mutex.
//!
//! Nothing here awaits while holding the lock. Timers (TTL expiry, deferred output sync, check
//! runners, the reaper) are tokio tasks that take the lock when they fire, so in-process tests can
//! drive them with paused time.

pub(crate) mod agent;
pub(crate) mod catalog;
pub(crate) mod definition;
pub(crate) mod kvtree;
pub mod leader;
pub mod peers;
pub mod types;
pub(crate) mod watch;

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::config::Config;
use crate::state::agent::Agent;
use crate::state::catalog::Catalog;
use crate::state::leader::LeaderState;
use crate::state::watch::{Change, Watchers};

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) cfg: Arc<Config>,
    pub(crate) catalog: Catalog,
    pub(crate) agent: Agent,
    pub(crate) watchers: Watchers,
    pub(crate) agent_changes: Vec<Change>,
    /// Who leads the cluster; without a leader the agent's changes wait for one.
    pub(crate) leader: LeaderState,
    /// Lets timer tasks find their way back to the state without keeping it alive.
    pub(crate) weak: Weak<StateCell>,
    /// Where timer tasks run.
    pub(crate) runtime: tokio::runtime::Handle,
    rng: u64,
}

/// The mutex around [`State`] plus what tasks need to reach it.
#[derive(Debug)]
pub(crate) struct StateCell {
    inner: Mutex<State>,
}

impl StateCell {
    pub(crate) fn new(cfg: Arc<Config>, runtime: tokio::runtime::Handle) -> Arc<StateCell> {
        Arc::new_cyclic(|weak| StateCell {
            inner: Mutex::new(State {
                catalog: Catalog::boot(&cfg),
                agent: Agent::default(),
                watchers: Watchers::default(),
                agent_changes: Vec::new(),
                leader: LeaderState::Us,
                weak: weak.clone(),
                runtime,
                rng: seed(),
                cfg,
            }),
        })
    }

    /// Runs `f` under the lock, then wakes the blocking queries whose topics it changed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.lock();
        let r = f(&mut st);
        st.flush();
        r
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock (a bug) must not wedge every later request of a test.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Delivers the changes collected since the last flush.
    pub(crate) fn flush(&mut self) {
        let mut changes = std::mem::take(&mut self.catalog.changes);
        changes.append(&mut self.agent_changes);
        self.watchers.dispatch(&changes);
    }

    /// An agent restart without a data dir: services, checks and KV are gone, the index starts
    /// low again, every timer stops and every blocking query re-evaluates.
    pub(crate) fn lose_everything(&mut self) {
        self.agent.stop_all_timers();
        self.agent = Agent::default();
        self.catalog = Catalog::boot(&self.cfg);
        self.watchers.wake_all();
    }

    /// Changes who leads. When a leader appears, its first Raft entry (a barrier) takes an index
    /// without changing any table, and the agent's changes made meanwhile reach the catalog.
    pub(crate) fn set_leader(&mut self, new: LeaderState) {
        let had = self.leader.has_leader();
        self.leader = new;
        if !had && self.leader.has_leader() {
            self.catalog.skip_index();
            self.sync();
        }
    }

    /// A uniform random value in `[0, max)`, or 0 when jitter is off (Consul's `RandomStagger`).
    pub(crate) fn stagger(&mut self, max: std::time::Duration) -> std::time::Duration {
        if !self.cfg.timing.jitter || max.is_zero() {
            return std::time::Duration::ZERO;
        }
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        std::time::Duration::from_nanos(self.next_random() % nanos)
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: jitter needs spread, not cryptographic strength.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::definition::{CheckDefinition, ServiceDefinition};
    use crate::state::types::CheckStatus;

    fn cell() -> Arc<StateCell> {
        let mut cfg = Config::default();
        cfg.timing.jitter = false;
        StateCell::new(Arc::new(cfg), tokio::runtime::Handle::current())
    }

    fn ttl_check(notes: &str) -> CheckDefinition {
        CheckDefinition {
            ttl: 60_000_000_000,
            notes: notes.into(),
            ..Default::default()
        }
    }

    fn service(checks: Vec<CheckDefinition>) -> ServiceDefinition {
        ServiceDefinition {
            id: "a-1".into(),
            name: "a".into(),
            tags: vec!["t".into()],
            checks,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn checks_get_positional_ids_and_default_names() {
        let c = cell();
        c.with(|st| st.register_service(&service(vec![ttl_check("x"), ttl_check("y")]), false))
            .unwrap();
        c.with(|st| {
            let ids: Vec<&String> = st.agent.checks.keys().collect();
            assert_eq!(ids, ["service:a-1:1", "service:a-1:2"]);
            assert!(
                st.agent
                    .checks
                    .values()
                    .all(|c| c.record.name == "Service 'a' check")
            );
            assert!(
                st.agent
                    .checks
                    .values()
                    .all(|c| c.record.status == CheckStatus::Critical)
            );
        });
    }

    #[tokio::test]
    async fn one_registration_is_one_index_and_reregistration_keeps_status() {
        let c = cell();
        let def = service(vec![ttl_check("x")]);
        c.with(|st| st.register_service(&def, false)).unwrap();
        assert_eq!(c.with(|st| st.catalog.raft_index()), 13);
        c.with(|st| st.update_ttl("service:a-1", CheckStatus::Passing, "ok"))
            .unwrap();
        let mut changed = def.clone();
        changed.tags = vec!["u".into()];
        changed.checks[0].status = "critical".into();
        c.with(|st| st.register_service(&changed, false)).unwrap();
        c.with(|st| {
            let check = &st.agent.checks["service:a-1"].record;
            assert_eq!(
                (check.status, check.output.as_str()),
                (CheckStatus::Passing, "ok")
            );
            let (idx, rows) = st.catalog.service_instances("a", true);
            assert_eq!(
                (idx, rows[0].1.value.tags.clone()),
                (15, vec!["u".to_string()])
            );
            assert_eq!(
                st.catalog
                    .own_check("service:a-1")
                    .unwrap()
                    .value
                    .service_tags,
                ["u"]
            );
        });
    }

    #[tokio::test]
    async fn replace_existing_checks_removes_the_others_after_the_service_sync() {
        let c = cell();
        c.with(|st| st.register_service(&service(vec![ttl_check("x"), ttl_check("y")]), false))
            .unwrap();
        let single = ServiceDefinition {
            check: Some(ttl_check("z")),
            ..service(vec![])
        };
        c.with(|st| st.register_service(&single, false)).unwrap();
        assert_eq!(
            c.with(|st| st.agent.checks.len()),
            3,
            "kept without replace"
        );
        c.with(|st| st.register_service(&single, true)).unwrap();
        c.with(|st| {
            assert_eq!(st.agent.checks.keys().collect::<Vec<_>>(), ["service:a-1"]);
            let (idx, rows) = st.catalog.service_instances("a", true);
            assert_eq!(rows.len(), 1);
            assert_eq!(
                idx,
                st.catalog.raft_index(),
                "the deletions moved the service index"
            );
            let remaining: Vec<&String> = st
                .catalog
                .checks
                .keys()
                .map(|(_, id)| id)
                .filter(|k| k.starts_with("service:"))
                .collect();
            assert_eq!(remaining, ["service:a-1"]);
            // Second registration wrote the check, the third an unchanged service, then two deletions.
            assert_eq!(
                st.catalog.own_check("service:a-1").unwrap().modify_index,
                idx - 3
            );
        });
    }

    #[tokio::test]
    async fn idempotent_and_output_only_updates_leave_the_catalog_alone() {
        let c = cell();
        c.with(|st| st.register_service(&service(vec![ttl_check("x")]), false))
            .unwrap();
        c.with(|st| st.update_ttl("service:a-1", CheckStatus::Passing, "ok"))
            .unwrap();
        let idx = c.with(|st| st.catalog.service_instances("a", true).0);
        c.with(|st| st.update_ttl("service:a-1", CheckStatus::Passing, "ok"))
            .unwrap();
        c.with(|st| st.update_ttl("service:a-1", CheckStatus::Passing, "other"))
            .unwrap();
        c.with(|st| {
            assert_eq!(st.catalog.service_instances("a", true).0, idx);
            assert_eq!(
                st.catalog.own_check("service:a-1").unwrap().value.output,
                "ok"
            );
            assert_eq!(st.agent.checks["service:a-1"].record.output, "other");
        });
        c.with(|st| st.update_ttl("service:a-1", CheckStatus::Warning, "w"))
            .unwrap();
        assert!(c.with(|st| st.catalog.service_instances("a", true).0) > idx);
    }

    #[tokio::test]
    async fn maintenance_is_idempotent_and_keeps_the_first_reason() {
        let c = cell();
        c.with(|st| st.register_service(&service(vec![]), false))
            .unwrap();
        assert!(c.with(|st| st.service_maintenance("a-1", true, "first")));
        let idx = c.with(|st| st.catalog.raft_index());
        assert!(c.with(|st| st.service_maintenance("a-1", true, "second")));
        assert_eq!(c.with(|st| st.catalog.raft_index()), idx, "no write at all");
        assert_eq!(
            c.with(|st| st.agent.checks["_service_maintenance:a-1"]
                .record
                .notes
                .clone()),
            "first"
        );
        assert!(!c.with(|st| st.service_maintenance("nope", true, "")));
    }
}
