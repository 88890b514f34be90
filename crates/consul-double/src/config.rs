//! What a double is started with: identity of the emulated agent, the Consul version whose quirks
//! it copies, ACL tokens, timing constants and where it listens.
//!
//! Every timing constant Consul hard-codes is a field here, with Consul's value as the default, so
//! a test can run the minute-long reaping scenario in a second without changing any other
//! behaviour.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The Consul release whose observable behaviour the double copies.
///
/// Only the versions with recorded transcripts are offered; [`Config::unknown_id_404`] adds
/// the one 1.11+ behaviour that clients must handle as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsulVersion {
    /// Consul 1.0.8, the line ContainerPilot 3.8 was developed against: lenient JSON, no
    /// `Weights`/`TaggedAddresses`/check `Type`, no `GET /v1/agent/service/:id`, node-level check
    /// removal does not move service indexes.
    V1_0_8,
    /// Consul 1.8.4 (the default): strict JSON decoding, per-service indexes, `?filter`.
    #[default]
    V1_8_4,
    /// Consul 1.8.5: the same behaviour as 1.8.4 in everything the double emulates (the KV,
    /// consistency and no-leader transcripts were recorded from it); only the version string
    /// differs.
    V1_8_5,
}

impl ConsulVersion {
    /// The version string reported in `/v1/agent/self`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsulVersion::V1_0_8 => "1.0.8",
            ConsulVersion::V1_8_4 => "1.8.4",
            ConsulVersion::V1_8_5 => "1.8.5",
        }
    }

    /// Parses `1.0.8`, `1.8.4` or `1.8.5`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.0.8" => Some(ConsulVersion::V1_0_8),
            "1.8.4" => Some(ConsulVersion::V1_8_4),
            "1.8.5" => Some(ConsulVersion::V1_8_5),
            _ => None,
        }
    }

    /// The 1.0 line, with its older shapes and quirks.
    pub(crate) fn is_1_0(self) -> bool {
        self == ConsulVersion::V1_0_8
    }

    /// Unknown JSON fields are rejected from 1.7 on.
    pub(crate) fn strict_json(self) -> bool {
        !self.is_1_0()
    }

    /// Everything 1.2+ added to service and check JSON (Weights, TaggedAddresses, Proxy, Type).
    pub(crate) fn modern_shapes(self) -> bool {
        !self.is_1_0()
    }
}

/// What a valid ACL token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRights {
    /// Everything (a management token).
    Write,
    /// Reads only: writes answer 403 `Permission denied`.
    Read,
}

/// ACL emulation. Without it (the dev-agent default) every request is allowed and tokens are
/// ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    /// Secret → rights. Any other token gets 403 `ACL not found`; no token at all is anonymous,
    /// which may do nothing (writes 403, reads filtered to nothing).
    pub tokens: BTreeMap<String, TokenRights>,
}

impl AclConfig {
    /// A policy with the given tokens, all with write rights.
    pub fn with_write_tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AclConfig {
            tokens: tokens
                .into_iter()
                .map(|t| (t.into(), TokenRights::Write))
                .collect(),
        }
    }
}

/// Consul's timing constants. Defaults are Consul's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Blocking-query wait when the client gives none (`default_query_time`, 5 min).
    pub default_wait: Duration,
    /// Cap on a client's `wait` (`max_query_time`, 10 min).
    pub max_wait: Duration,
    /// Add Consul's random jitter of up to wait/16 to blocking queries and a random stagger to the
    /// deferred output sync. Off makes both exact, which tests want.
    pub jitter: bool,
    /// Floor for `DeregisterCriticalServiceAfter` (`check_deregister_interval_min`, 1 min).
    pub dcsa_floor: Duration,
    /// How often the reaper looks for services to deregister (`check_reap_interval`, 30 s).
    pub reap_interval: Duration,
    /// `check_update_interval` (5 min): an output-only check change reaches the catalog after
    /// half of this plus a random stagger of up to the whole. Zero syncs output at once.
    pub check_update_interval: Duration,
    /// `rpc_hold_timeout` (7 s): how long a server holds a request that needs the leader while
    /// there is none, before it answers 500 `No cluster leader` (plus up to a sixteenth of it as
    /// jitter). Agent writes are held as long and then answer 200.
    pub rpc_hold_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            default_wait: Duration::from_secs(300),
            max_wait: Duration::from_secs(600),
            jitter: true,
            dcsa_floor: Duration::from_secs(60),
            reap_interval: Duration::from_secs(30),
            check_update_interval: Duration::from_secs(300),
            rpc_hold_timeout: Duration::from_secs(7),
        }
    }
}

/// PEM-encoded server certificate chain and private key for the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// Certificate chain, leaf first.
    pub cert_pem: String,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key_pem: String,
}

/// One address the double serves the Consul API on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Plain HTTP over TCP. Port 0 picks a free port.
    Tcp(SocketAddr),
    /// Plain HTTP over a unix socket at this path (`unix:///path` for clients).
    Unix(PathBuf),
    /// HTTPS over TCP with this identity.
    Tls(SocketAddr, TlsIdentity),
}

/// Another server of the emulated cluster (see [`Config::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerServer {
    /// Its node name.
    pub node_name: String,
    /// Its node ID.
    pub node_id: String,
    /// Its address (node address, and `address:8300` as a Raft peer or leader).
    pub address: String,
}

/// Everything a double is started with. `Config::default()` is a fresh 1.8.4 dev agent named
/// `NODE` on a free loopback port.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node name (`NODE` so transcripts compare without normalisation).
    pub node_name: String,
    /// The datacenter (`dc1`).
    pub datacenter: String,
    /// The node address shown in the catalog (`127.0.0.1`).
    pub node_address: String,
    /// The node ID (all zeroes, as the transcripts are normalised).
    pub node_id: String,
    /// Which Consul to emulate.
    pub version: ConsulVersion,
    /// Answer unknown check and service IDs like Consul 1.11.2+: 404 `Unknown check ID ...` /
    /// `Unknown service ID ...` instead of 500 `does not have associated TTL` / a 200 no-op.
    pub unknown_id_404: bool,
    /// ACL emulation; `None` is a dev agent with ACLs off.
    pub acl: Option<AclConfig>,
    /// Consul's timing constants.
    pub timing: Timing,
    /// Check output limit (`check_output_max_size`, 4096 bytes).
    pub output_max_size: usize,
    /// KV value limit (`kv_max_value_size`, 512 KiB).
    pub kv_max_value_size: usize,
    /// Where to serve the API. Empty means one TCP listener on `127.0.0.1:0`.
    pub listen: Vec<Listen>,
    /// How many requests the request log keeps (oldest dropped first).
    pub request_log_capacity: usize,
    /// Serve the `/_double/` control API on the API listeners too (the standalone binary does).
    pub control_api: bool,
    /// A separate listener for the control API only; it stays up while the API is down.
    pub control_listen: Option<Listen>,
    /// Answer compact JSON, as a server (non-dev) agent does; `?pretty` still indents. Off by
    /// default: the transcripts were recorded from a dev agent, which always indents.
    pub compact_json: bool,
    /// The other servers of a cluster the double is one server of. Empty (the default) is a
    /// single dev agent. With peers, their nodes and `serfHealth` checks are in the catalog from
    /// the start (booted as in transcript 14), `/v1/status/peers` lists them, and
    /// [`ConsulDouble::follow_leader`](crate::ConsulDouble::follow_leader) can make one of them
    /// the leader.
    pub peers: Vec<PeerServer>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_name: "NODE".to_string(),
            datacenter: "dc1".to_string(),
            node_address: "127.0.0.1".to_string(),
            node_id: "00000000-0000-0000-0000-000000000000".to_string(),
            version: ConsulVersion::default(),
            unknown_id_404: false,
            acl: None,
            timing: Timing::default(),
            output_max_size: 4096,
            kv_max_value_size: 512 * 1024,
            listen: Vec::new(),
            request_log_capacity: 100_000,
            control_api: false,
            control_listen: None,
            compact_json: false,
            peers: Vec::new(),
        }
    }
}

impl Config {
    /// Timings for tests: no jitter, and the reaping constants scaled down so a DCSA scenario
    /// takes about a second (floor 1 s, reaper every 250 ms, output sync after 1 s), and a
    /// leaderless server holds requests for 1 s instead of 7.
    pub fn fast_timing() -> Timing {
        Timing {
            jitter: false,
            dcsa_floor: Duration::from_secs(1),
            reap_interval: Duration::from_millis(250),
            check_update_interval: Duration::from_secs(2),
            rpc_hold_timeout: Duration::from_secs(1),
            ..Timing::default()
        }
    }
}
