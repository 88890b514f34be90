//! The records the double stores and hands to tests: services, checks, KV entries.
//!
//! These are plain values; the agent and catalog modules own the rules for changing them.

use std::collections::BTreeMap;

/// A check status as Consul spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// `passing`
    Passing,
    /// `warning`
    Warning,
    /// `critical`
    Critical,
}

impl CheckStatus {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Parses Consul's exact (case-sensitive) spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `TaggedAddresses` value of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAddress {
    /// `Address`
    pub address: String,
    /// `Port`
    pub port: i64,
}

/// DNS SRV weights (`Weights`, 1.2.3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// `Passing`
    pub passing: i64,
    /// `Warning`
    pub warning: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A registered service instance (Consul's `NodeService`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Service ID, unique on the agent.
    pub id: String,
    /// Logical service name.
    pub name: String,
    /// Tags in registration order.
    pub tags: Vec<String>,
    /// Service address; empty means "use the node address".
    pub address: String,
    /// Tagged addresses, including the ones the agent adds for IP literals.
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// `Meta`; `None` when the registration had none (the catalog shows `null`).
    pub meta: Option<BTreeMap<String, String>>,
    /// Port.
    pub port: i64,
    /// Weights (defaults to 1/1).
    pub weights: Weights,
    /// `EnableTagOverride`
    pub enable_tag_override: bool,
}

impl ServiceRecord {
    /// The address a client should dial: the service address, or the node's when empty.
    pub fn effective_address<'a>(&'a self, node_address: &'a str) -> &'a str {
        if self.address.is_empty() {
            node_address
        } else {
            &self.address
        }
    }
}

/// A health check (Consul's `HealthCheck`), agent-local or catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// `CheckID`
    pub id: String,
    /// `Name`
    pub name: String,
    /// `Status`
    pub status: CheckStatus,
    /// `Notes`
    pub notes: String,
    /// `Output`
    pub output: String,
    /// `ServiceID`; empty for node-level checks (`serfHealth`, `_node_maintenance`).
    pub service_id: String,
    /// `ServiceName`
    pub service_name: String,
    /// `ServiceTags`
    pub service_tags: Vec<String>,
    /// `Type`: `ttl`, `tcp`, `http`, `maintenance`, ... or empty.
    pub kind: String,
}

impl CheckRecord {
    /// Consul's `HealthCheck.IsSame`: everything but the type and the indexes.
    pub(crate) fn is_same(&self, other: &CheckRecord) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.status == other.status
            && self.notes == other.notes
            && self.output == other.output
            && self.service_id == other.service_id
            && self.service_name == other.service_name
            && self.service_tags == other.service_tags
    }
}

/// A catalog row with its Raft indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed<T> {
    /// The row.
    pub value: T,
    /// Index of the write that created it.
    pub create_index: u64,
    /// Index of the last write that changed it.
    pub modify_index: u64,
}

/// A KV entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// Full key.
    pub key: String,
    /// Raw value.
    pub value: Vec<u8>,
    /// Opaque client flags.
    pub flags: u64,
    /// `LockIndex` (always 0: sessions are not emulated).
    pub lock_index: u64,
    /// Index of the write that created the key.
    pub create_index: u64,
    /// Index of the last write to the key.
    pub modify_index: u64,
}
