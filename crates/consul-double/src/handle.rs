//! [`ConsulDouble`], the in-process handle: start a double, learn its addresses, read and change
//! its state, inject faults and read the request log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Listen};
use crate::decode::{Decoder, parse_json_body};
use crate::faults::{ErrorFault, Faults, IndexRewind};
use crate::http::Surface;
use crate::log::LoggedRequest;
use crate::server::{BoundAddr, ServeError, Server};
use crate::shared::Shared;
use crate::state::definition::{Rejection, ServiceDefinition};
use crate::state::leader::{LeaderState, Leadership};
use crate::state::peers::PeerError;
use crate::state::types::{CheckRecord, CheckStatus, Indexed, KvEntry, ServiceRecord};

/// A running Consul double. Dropping it closes its listeners and stops its timers.
#[derive(Debug)]
pub struct ConsulDouble {
    shared: Arc<Shared>,
    reaper: tokio::task::AbortHandle,
}

impl ConsulDouble {
    /// Starts a double on the configured listeners (one TCP listener on `127.0.0.1:0` when none
    /// are given) and, if set, the control listener. Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<ConsulDouble, ServeError> {
        let mut config = config;
        if config.listen.is_empty() {
            config.listen.push(Listen::Tcp(([127, 0, 0, 1], 0).into()));
        }
        let cfg = Arc::new(config);
        let shared = Arc::new(Shared::new(cfg.clone(), tokio::runtime::Handle::current()));
        let reaper = {
            let weak = Arc::downgrade(&shared.state);
            let every = cfg.timing.reap_interval.max(Duration::from_millis(1));
            tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    ticks.tick().await;
                    match weak.upgrade() {
                        Some(cell) => {
                            cell.with(|st| st.reap());
                        }
                        None => return,
                    }
                }
            })
            .abort_handle()
        };
        let double = ConsulDouble {
            shared: shared.clone(),
            reaper,
        };
        for listen in &cfg.listen {
            Server::listen(&shared, listen, Surface::Api).await?;
        }
        if let Some(control) = &cfg.control_listen {
            Server::listen(&shared, control, Surface::Control).await?;
        }
        Ok(double)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// The Consul API addresses, ports resolved.
    pub fn addrs(&self) -> Vec<BoundAddr> {
        self.shared.server.api_addrs()
    }

    /// The control-API addresses (only with [`Config::control_listen`]).
    pub fn control_addrs(&self) -> Vec<BoundAddr> {
        self.shared.server.control_addrs()
    }

    /// The first plain-TCP API address.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.addrs().into_iter().find_map(|a| match a {
            BoundAddr::Tcp(a) => Some(a),
            _ => None,
        })
    }

    /// The first API address as a URL (`http://127.0.0.1:port`, `https://…` or `unix://…`),
    /// ready for `CONSUL_HTTP_ADDR`.
    pub fn url(&self) -> String {
        self.addrs().first().map(BoundAddr::url).unwrap_or_default()
    }

    // ---- state ----

    /// Agent-local services by ID (what `/v1/agent/services` shows).
    pub fn services(&self) -> BTreeMap<String, ServiceRecord> {
        self.shared.state.with(|st| {
            st.agent
                .services
                .iter()
                .map(|(k, s)| (k.clone(), s.record.clone()))
                .collect()
        })
    }

    /// One agent-local service.
    pub fn service(&self, id: &str) -> Option<ServiceRecord> {
        self.shared
            .state
            .with(|st| st.agent.services.get(id).map(|s| s.record.clone()))
    }

    /// Agent-local checks by ID (what `/v1/agent/checks` shows: latest output at once).
    pub fn checks(&self) -> BTreeMap<String, CheckRecord> {
        self.shared.state.with(|st| {
            st.agent
                .checks
                .iter()
                .map(|(k, c)| (k.clone(), c.record.clone()))
                .collect()
        })
    }

    /// One agent-local check.
    pub fn check(&self, id: &str) -> Option<CheckRecord> {
        self.shared
            .state
            .with(|st| st.agent.checks.get(id).map(|c| c.record.clone()))
    }

    /// Catalog instances of a service name with their indexes (what health/catalog readers see),
    /// on every node.
    pub fn catalog_service(&self, name: &str) -> Vec<Indexed<ServiceRecord>> {
        self.shared.state.with(|st| {
            st.catalog
                .service_instances(name, true)
                .1
                .into_iter()
                .map(|(_, s)| s.clone())
                .collect()
        })
    }

    /// Every catalog check of the double's own node, including `serfHealth`.
    pub fn catalog_checks(&self) -> Vec<Indexed<CheckRecord>> {
        self.shared.state.with(|st| {
            let own = st.catalog.own_node().to_string();
            st.catalog.node_checks(&own).into_iter().cloned().collect()
        })
    }

    /// Every catalog check of a node (the double's own or a peer's).
    pub fn node_checks(&self, node: &str) -> Vec<Indexed<CheckRecord>> {
        self.shared
            .state
            .with(|st| st.catalog.node_checks(node).into_iter().cloned().collect())
    }

    /// The index a health query for `name` would report now.
    pub fn service_index(&self, name: &str) -> u64 {
        self.shared
            .state
            .with(|st| st.catalog.service_instances(name, true).0.max(1))
    }

    /// The last Raft-like index handed out.
    pub fn raft_index(&self) -> u64 {
        self.shared.state.with(|st| st.catalog.raft_index())
    }

    /// A KV entry.
    pub fn kv(&self, key: &str) -> Option<KvEntry> {
        self.shared.state.with(|st| st.catalog.kv.get(key).cloned())
    }

    /// Every KV entry.
    pub fn kv_entries(&self) -> Vec<KvEntry> {
        self.shared
            .state
            .with(|st| st.catalog.kv.values().cloned().collect())
    }

    /// How many blocking queries are waiting right now.
    pub fn blocked_queries(&self) -> usize {
        self.shared.state.with(|st| st.watchers.len())
    }

    // ---- writes that bypass HTTP (same rules) ----

    /// Registers a service as `PUT /v1/agent/service/register` would, from its JSON body.
    pub fn register_service_json(
        &self,
        body: &str,
        replace_existing_checks: bool,
    ) -> Result<(), Rejection> {
        let value = parse_json_body(body.as_bytes())
            .map_err(|e| Rejection::bad_request(format!("Request decode failed: {e}")))?;
        let def = Decoder::new(self.shared.cfg.version)
            .service_definition(&value)
            .map_err(|e| Rejection::bad_request(format!("Request decode failed: {e}")))?;
        self.register_service(&def, replace_existing_checks)
    }

    /// Registers a decoded service definition (validated like the HTTP endpoint).
    pub fn register_service(
        &self,
        def: &ServiceDefinition,
        replace_existing_checks: bool,
    ) -> Result<(), Rejection> {
        def.validate(self.shared.cfg.version.modern_shapes())?;
        self.shared
            .state
            .with(|st| st.register_service(def, replace_existing_checks))
    }

    /// Deregisters a service; false if unknown.
    pub fn deregister_service(&self, id: &str) -> bool {
        self.shared.state.with(|st| st.deregister_service(id))
    }

    /// A TTL update as `PUT /v1/agent/check/update/:id` would do it; the error is Consul's text.
    pub fn update_ttl(
        &self,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), String> {
        self.shared
            .state
            .with(|st| st.update_ttl(check_id, status, output))
            .map_err(|e| e.to_string())
    }

    /// Service maintenance on or off; false if the service is unknown.
    pub fn service_maintenance(&self, id: &str, enable: bool, reason: &str) -> bool {
        self.shared
            .state
            .with(|st| st.service_maintenance(id, enable, reason))
    }

    /// Node maintenance on or off.
    pub fn node_maintenance(&self, enable: bool, reason: &str) {
        self.shared
            .state
            .with(|st| st.node_maintenance(enable, reason));
    }

    /// Writes a KV key.
    pub fn put_kv(&self, key: &str, value: &[u8]) {
        self.shared
            .state
            .with(|st| st.catalog.kv_set(key, value.to_vec(), 0, None));
    }

    /// Deletes a KV key.
    pub fn delete_kv(&self, key: &str) {
        self.shared.state.with(|st| st.catalog.kv_delete(key, None));
    }

    // ---- other servers of the cluster (`Config::peers`) ----

    /// Registers a service through a peer node's agent, as its anti-entropy sync writes it to the
    /// catalog: the service and its checks in one write (initial check status as the
    /// definition says, critical by default). Needs a leader, as every catalog write.
    pub fn register_peer_service(
        &self,
        node: &str,
        def: &ServiceDefinition,
    ) -> Result<(), PeerError> {
        self.shared
            .state
            .with(|st| st.peer_register_service(node, def))
    }

    /// [`ConsulDouble::register_peer_service`] from the JSON body `PUT
    /// /v1/agent/service/register` would take.
    pub fn register_peer_service_json(&self, node: &str, body: &str) -> Result<(), PeerError> {
        let value = parse_json_body(body.as_bytes())
            .map_err(|e| PeerError::Rejected(format!("Request decode failed: {e}")))?;
        let def = Decoder::new(self.shared.cfg.version)
            .service_definition(&value)
            .map_err(|e| PeerError::Rejected(format!("Request decode failed: {e}")))?;
        self.register_peer_service(node, &def)
    }

    /// A check of a peer node changed (a TTL update through its agent): one catalog write if
    /// the status or output differ.
    pub fn update_peer_check(
        &self,
        node: &str,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), PeerError> {
        self.shared
            .state
            .with(|st| st.peer_update_check(node, check_id, status, output))
    }

    /// Deregisters a service of a peer node; false if it was not there.
    pub fn deregister_peer_service(&self, node: &str, service_id: &str) -> Result<bool, PeerError> {
        self.shared
            .state
            .with(|st| st.peer_deregister_service(node, service_id))
    }

    /// The leader's verdict on a node's gossip health: its `serfHealth` check passing (`Agent
    /// alive and reachable`) or critical (`Agent not live or unreachable`), which every instance
    /// on that node then shows.
    pub fn set_node_health(&self, node: &str, status: CheckStatus) -> Result<(), PeerError> {
        self.shared
            .state
            .with(|st| st.set_node_health(node, status))
    }

    // ---- leadership ----

    /// Who leads the cluster now.
    pub fn leadership(&self) -> Leadership {
        self.shared.state.with(|st| st.leader.public())
    }

    /// The cluster loses its leader, as a follower sees it (transcript 14): `/v1/status/leader`
    /// answers `""`; default and `?consistent` reads, KV writes, and agent requests that must
    /// sync are held for `rpc_hold_timeout` and then fail with 500 `No cluster leader` (agent
    /// requests answer 200: their change is kept locally); `?stale` reads are answered at once
    /// with `X-Consul-Knownleader: false` and an `X-Consul-Lastcontact` that grows from the last
    /// contact. Blocking reads that need the leader are held from now on. Nothing reaches the
    /// catalog until a leader is elected. Losing it again changes nothing.
    pub fn lose_leader(&self) {
        self.shared.change_leader(|st| st.leader.lost());
    }

    /// The double becomes the leader again (the default): held requests proceed, the agent's
    /// pending changes reach the catalog, every answer carries `true` and 0.
    pub fn elect_leader(&self) {
        self.shared.change_leader(|_| LeaderState::Us);
    }

    /// Another server leads, at `leader` (`address:port`, what `/v1/status/leader` shows); the
    /// double is its follower and last heard from it `last_contact` ago. Default and
    /// `?consistent` reads are answered as the leader answers them (`true`, 0); `?stale` reads
    /// carry `X-Consul-Knownleader: true` and `X-Consul-Lastcontact: last_contact` in whole
    /// milliseconds, so a client's maximum-staleness rule can be tested. Ends a leaderless
    /// period like [`ConsulDouble::elect_leader`].
    pub fn follow_leader(&self, leader: &str, last_contact: Duration) {
        let leader = leader.to_string();
        self.shared.change_leader(|_| LeaderState::Peer {
            leader,
            last_contact,
        });
    }

    /// Runs the reaper once now; returns the service IDs it deregistered.
    pub fn reap_now(&self) -> Vec<String> {
        self.shared.state.with(|st| st.reap())
    }

    // ---- faults ----

    /// The active faults.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Closes the API listeners and drops their connections: clients get connection refused.
    pub async fn go_down(&self) {
        self.shared.faults_mut().down = true;
        self.shared.server.go_down().await;
    }

    /// Listens again on the same addresses.
    pub async fn come_up(&self) -> Result<(), ServeError> {
        Server::come_up(&self.shared).await?;
        self.shared.faults_mut().down = false;
        Ok(())
    }

    /// Delays every answer by `delay` (`None` to stop).
    pub fn set_slow(&self, delay: Option<Duration>) {
        self.shared.faults_mut().slow = delay;
    }

    /// Answers requests with an error instead (see [`ErrorFault`]).
    pub fn fail_requests(&self, fault: ErrorFault) {
        self.shared.faults_mut().error = Some(fault);
    }

    /// Stops injected error answers.
    pub fn clear_errors(&self) {
        self.shared.faults_mut().error = None;
    }

    /// Closes the connection without an answer (TCP reset) for the next `n` requests.
    pub fn reset_connections(&self, n: u32) {
        self.shared.faults_mut().resets = n;
    }

    /// Reports indexes lowered by `by` for the next `times` answers (`None`: until cleared).
    pub fn rewind_index(&self, by: u64, times: Option<u32>) {
        self.shared.faults_mut().index_rewind = Some(IndexRewind {
            by,
            remaining: times,
        });
    }

    /// Stops lowering indexes.
    pub fn clear_index_rewind(&self) {
        self.shared.faults_mut().index_rewind = None;
    }

    /// Makes blocking queries return unchanged data after at most `every` (`None` to stop).
    pub fn spurious_wakeups(&self, every: Option<Duration>) {
        self.shared.faults_mut().spurious_wakeups_every = every;
    }

    /// Wakes every blocking query now; each answers with unchanged data.
    pub fn wake_blocked_queries(&self) {
        self.shared.wake_blocked();
    }

    /// An agent restart without a data dir: services, checks and KV vanish and the index starts
    /// low again (blocking queries see the lower index).
    pub fn lose_state(&self) {
        self.shared.state.with(|st| st.lose_everything());
    }

    /// Clears every fault and comes back up if down. Leadership is left as it is.
    pub async fn clear_faults(&self) -> Result<(), ServeError> {
        let was_down = self.shared.faults().down;
        *self.shared.faults_mut() = Faults::default();
        if was_down {
            Server::come_up(&self.shared).await?;
        }
        Ok(())
    }

    // ---- request log ----

    /// Every logged request, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log().snapshot()
    }

    /// Logged requests for a method and exact path (query ignored).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path_only() == path)
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    /// Stops serving: listeners closed, connections dropped, timers stopped.
    pub fn shutdown(&self) {
        self.reaper.abort();
        self.shared.server.shutdown();
        self.shared.state.with(|st| st.agent.stop_all_timers());
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A double on its own runtime thread, for tests that are not async or that block their own
/// thread (waiting on a child process, `std::thread::sleep`). Derefs to [`ConsulDouble`]; the
/// async fault methods have blocking twins here.
#[derive(Debug)]
pub struct BackgroundDouble {
    double: Option<ConsulDouble>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundDouble {
    /// Starts a double on a dedicated one-worker runtime.
    pub fn start(config: Config) -> Result<BackgroundDouble, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("consul-double")
            .enable_all()
            .build()
            .map_err(|source| ServeError::Bind {
                addr: "runtime".into(),
                source,
            })?;
        let double = runtime.block_on(ConsulDouble::start(config))?;
        Ok(BackgroundDouble {
            double: Some(double),
            runtime: Some(runtime),
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("runtime alive until drop")
            .block_on(f)
    }

    /// [`ConsulDouble::go_down`], blocking.
    pub fn go_down(&self) {
        self.block_on(self.double().go_down());
    }

    /// [`ConsulDouble::come_up`], blocking.
    pub fn come_up(&self) -> Result<(), ServeError> {
        self.block_on(self.double().come_up())
    }

    /// [`ConsulDouble::clear_faults`], blocking.
    pub fn clear_faults(&self) -> Result<(), ServeError> {
        self.block_on(self.double().clear_faults())
    }

    /// The in-process handle.
    pub fn double(&self) -> &ConsulDouble {
        self.double.as_ref().expect("double alive until drop")
    }
}

impl std::ops::Deref for BackgroundDouble {
    type Target = ConsulDouble;

    fn deref(&self) -> &ConsulDouble {
        self.double()
    }
}

impl Drop for BackgroundDouble {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Drop the double inside its runtime so aborting its tasks happens in context.
            let guard = rt.enter();
            self.double.take();
            drop(guard);
            rt.shutdown_background();
        }
    }
}
