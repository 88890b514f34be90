//! Wake-ups for blocking queries.
//!
//! Consul's state store hands each query a set of watch channels and re-runs the query only when
//! one of them fires. The double keeps the same shape: a query registers the topics it read, each
//! write records the topics it touched, and only matching waiters are woken. Which topics a query
//! watches decides, for example, that a blocking read of one KV key is not woken by writes to
//! another key even though both share the KV index.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::state::kvtree::Channel;

/// Something a write changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The per-service index entry of this (lower-cased) service name moved or went away.
    ServiceIndex(String),
    /// A row of the services table was inserted, changed or deleted.
    ServicesTable,
    /// A check row of `node` changed; `service` is the (lower-cased) service name, or `None`
    /// for node-level checks.
    Checks {
        node: String,
        service: Option<String>,
    },
    /// A KV write closed these watch channels of the KV index (see `kvtree`).
    KvTree(Vec<Channel>),
    /// Agent-local services or checks changed.
    Agent,
}

/// Something a query read and wants to be woken for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchSpec {
    /// The per-service index of a (lower-cased) service name.
    ServiceIndex(String),
    /// Any change to the services table (Consul's fallback watch for a missing service).
    ServicesTable,
    /// Checks of a (lower-cased) service name.
    ServiceChecks(String),
    /// Any check of this node.
    NodeChecks(String),
    /// One watch channel of the KV index: a key's leaf, or the closest node of a missing key or
    /// of a prefix.
    KvChannel(Channel),
    /// Agent-local state (hash-based blocking).
    Agent,
}

impl WatchSpec {
    fn matches(&self, change: &Change) -> bool {
        match (self, change) {
            (WatchSpec::ServiceIndex(a), Change::ServiceIndex(b)) => a == b,
            (WatchSpec::ServicesTable, Change::ServicesTable) => true,
            (
                WatchSpec::ServiceChecks(a),
                Change::Checks {
                    service: Some(b), ..
                },
            ) => a == b,
            (WatchSpec::NodeChecks(a), Change::Checks { node, .. }) => a.eq_ignore_ascii_case(node),
            (WatchSpec::KvChannel(c), Change::KvTree(closed)) => closed.contains(c),
            (WatchSpec::Agent, Change::Agent) => true,
            _ => false,
        }
    }
}

/// Registered waiters of blocking queries.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    next_id: u64,
    waiters: HashMap<u64, (Vec<WatchSpec>, Arc<Notify>)>,
}

impl Watchers {
    /// Registers a waiter; the caller must [`Watchers::unregister`] it when done.
    pub(crate) fn register(&mut self, specs: Vec<WatchSpec>, notify: Arc<Notify>) -> u64 {
        self.next_id += 1;
        self.waiters.insert(self.next_id, (specs, notify));
        self.next_id
    }

    pub(crate) fn unregister(&mut self, id: u64) {
        self.waiters.remove(&id);
    }

    /// Wakes every waiter that watches one of `changes`.
    pub(crate) fn dispatch(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        for (specs, notify) in self.waiters.values() {
            if specs.iter().any(|s| changes.iter().any(|c| s.matches(c))) {
                // notify_one keeps a permit, so a waiter that registered but has not started
                // awaiting yet still sees the wake-up.
                notify.notify_one();
            }
        }
    }

    /// Wakes every waiter (state loss and spurious wake-ups).
    pub(crate) fn wake_all(&self) {
        for (_, notify) in self.waiters.values() {
            notify.notify_one();
        }
    }

    /// How many blocking queries are waiting right now.
    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_watches_match_the_channels_a_write_closed() {
        let w = WatchSpec::KvChannel(7);
        assert!(w.matches(&Change::KvTree(vec![3, 7])));
        assert!(!w.matches(&Change::KvTree(vec![3, 8])));
        assert!(!w.matches(&Change::Agent));
    }

    #[test]
    fn dispatch_wakes_only_matching_waiters() {
        let mut w = Watchers::default();
        let hit = Arc::new(Notify::new());
        let miss = Arc::new(Notify::new());
        w.register(vec![WatchSpec::ServiceIndex("web".into())], hit.clone());
        w.register(vec![WatchSpec::ServiceIndex("db".into())], miss.clone());
        w.dispatch(&[Change::ServiceIndex("web".into())]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(50), hit.notified())
                .await
                .expect("matching waiter woken");
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(50), miss.notified())
                    .await
                    .is_err(),
                "other waiter must stay asleep"
            );
        });
    }
}
