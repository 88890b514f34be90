//! The other servers of a cluster (`Config::peers`), as the catalog sees them: what their agents'
//! anti-entropy syncs write (a service with its checks, a check update, a deregistration), and
//! the leader's verdict on their gossip health. Each is one catalog write, like the syncs of the
//! double's own agent, and needs a leader to commit.

use crate::state::State;
use crate::state::agent::service_rows;
use crate::state::definition::ServiceDefinition;
use crate::state::types::CheckStatus;

/// Why a write on behalf of another node was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No node of that name is in the catalog.
    #[error("no node {0:?} in the catalog")]
    UnknownNode(String),
    /// The double's own node is written through its agent API, not as a peer.
    #[error("node {0:?} is the double's own node; register through its agent API")]
    OwnNode(String),
    /// The node has no such check.
    #[error("no check {check:?} on node {node:?}")]
    UnknownCheck {
        /// The node.
        node: String,
        /// The check ID.
        check: String,
    },
    /// Without a leader no write can commit.
    #[error("no cluster leader to commit a write for node {0:?}")]
    NoLeader(String),
    /// The service definition is invalid (Consul's text).
    #[error("{0}")]
    Rejected(String),
}

impl State {
    /// The catalog name of `node`, if a leader could write for it.
    fn writable_node(&self, node: &str, allow_own: bool) -> Result<String, PeerError> {
        let name = self
            .catalog
            .node(node)
            .map(|n| n.name.clone())
            .ok_or_else(|| PeerError::UnknownNode(node.to_string()))?;
        if !allow_own && name == self.catalog.own_node() {
            return Err(PeerError::OwnNode(name));
        }
        if !self.leader.has_leader() {
            return Err(PeerError::NoLeader(name));
        }
        Ok(name)
    }

    /// A service registered through `node`'s agent, as its sync writes it: the service and its
    /// checks in one write; checks that exist keep their status and output.
    pub(crate) fn peer_register_service(
        &mut self,
        node: &str,
        def: &ServiceDefinition,
    ) -> Result<(), PeerError> {
        def.validate(self.cfg.version.modern_shapes())
            .map_err(|r| PeerError::Rejected(r.message))?;
        let node = self.writable_node(node, false)?;
        let (record, rows) = service_rows(&self.cfg, def);
        let checks: Vec<_> = rows
            .into_iter()
            .map(|(mut rec, _)| {
                if let Some(existing) = self.catalog.checks.get(&(node.clone(), rec.id.clone())) {
                    rec.status = existing.value.status;
                    rec.output = existing.value.output.clone();
                }
                rec
            })
            .collect();
        self.catalog.register_on(&node, Some(&record), &checks);
        Ok(())
    }

    /// A check of `node` changed on its agent: one write when status or output differ.
    pub(crate) fn peer_update_check(
        &mut self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), PeerError> {
        let node = self.writable_node(node, false)?;
        let Some(existing) = self
            .catalog
            .checks
            .get(&(node.clone(), check_id.to_string()))
        else {
            return Err(PeerError::UnknownCheck {
                node,
                check: check_id.to_string(),
            });
        };
        if existing.value.status == status && existing.value.output == output {
            return Ok(());
        }
        let mut rec = existing.value.clone();
        rec.status = status;
        rec.output = output.to_string();
        self.catalog.register_on(&node, None, &[rec]);
        Ok(())
    }

    /// A service of `node` deregistered through its agent; false if it was not there.
    pub(crate) fn peer_deregister_service(
        &mut self,
        node: &str,
        service_id: &str,
    ) -> Result<bool, PeerError> {
        let node = self.writable_node(node, false)?;
        let exists = self
            .catalog
            .services
            .contains_key(&(node.clone(), service_id.to_string()));
        if exists {
            self.catalog.deregister_service_on(&node, service_id);
        }
        Ok(exists)
    }

    /// The leader marks a node's `serfHealth` passing or critical (a node that left gossip).
    pub(crate) fn set_node_health(
        &mut self,
        node: &str,
        status: CheckStatus,
    ) -> Result<(), PeerError> {
        let node = self.writable_node(node, true)?;
        self.catalog.set_node_health(&node, status);
        Ok(())
    }
}
