//! Consul: the HTTP client, and the task that registers a job's service and keeps its TTL check
//! current.
//!
//! This module owns every conversation with the Consul agent. It must never make a job wait on
//! the network (ARCHITECTURE.md, invariant 4): a job talks to its [`Registration`] by messages,
//! and every request has a timeout. Nothing here knows about the event bus or job states; the
//! job decides what to report and when.
//!
//! The token travels only in the `X-Consul-Token` header: it is never logged, never part of an
//! error message, and `Debug` of every type here leaves it out.

mod backoff;
mod buffer;
mod client;
mod decode;
mod registration;
pub(crate) mod transport;

pub use backoff::RetryBackoff;
pub use buffer::AnswerBuffer;
pub use client::{
    Client, ConsulError, Freshness, HealthAnswer, HealthQuery, KvAnswer, KvQuery, READ_MARGIN,
    ServiceRegistration, TtlCheck, WRITE_TIMEOUT,
};
pub use decode::{DecodeError, Instance, KvPair, decode_health_service, decode_kv};
pub use registration::{Registration, RegistrationStatus, check_id, check_notes};
pub use transport::TlsError;
