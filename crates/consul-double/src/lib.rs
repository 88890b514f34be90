//! A stateful Consul agent test double for pilot's tests and end-to-end demo.
//!
//! It behaves like a single Consul dev agent (1.8.4 by default, 1.8.5 and 1.0.8 selectable):
//! agent-local services and checks, a catalog with Raft-like indexes, TTL timers, deferred output
//! sync, the reaper, maintenance mode, blocking queries, KV, consistency modes and optional ACL
//! tokens, served over TCP, a unix socket or HTTPS. It can also play one server of a cluster that
//! follows another leader, or loses its leader and elects one again. Tests can inject faults, read a request log and inspect state through a
//! [`ConsulDouble`] handle, or over the `/_double/` control API of the standalone binary.
//!
//! pilot must never link this crate outside its tests.

// Handlers return ready-made error responses through `Result`; one per request, so their size
// does not matter and boxing them would only add noise.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod decode;
pub mod duration;
pub mod state;

pub(crate) mod acl;
pub(crate) mod blocking;
pub(crate) mod checks;
pub mod faults;
pub(crate) mod filter;
mod handle;
pub(crate) mod http;
pub mod log;
pub mod server;
pub(crate) mod shared;
pub mod tls;

pub use config::{
    AclConfig, Config, ConsulVersion, Listen, PeerServer, Timing, TlsIdentity, TokenRights,
};
pub use faults::{ErrorFault, Faults, IndexRewind};
pub use handle::{BackgroundDouble, ConsulDouble};
pub use log::{LoggedRequest, TokenSource};
pub use server::{BoundAddr, ServeError};
pub use state::definition::{CheckDefinition, Rejection, ServiceDefinition};
pub use state::leader::Leadership;
pub use state::peers::PeerError;
pub use state::types::{
    CheckRecord, CheckStatus, Indexed, KvEntry, ServiceAddress, ServiceRecord, Weights,
};
pub use tls::{PkiFiles, TestPki, TlsError, generate_localhost_pki, generate_test_pki};
