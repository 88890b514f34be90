//! The request log: every Consul API request the double answered (or dropped), for assertions on
//! order, cadence and rates. Control-API requests are not logged.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// Where the request's ACL token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// No token.
    None,
    /// `?token=`
    Query,
    /// `X-Consul-Token`
    Header,
    /// `Authorization: Bearer`
    Bearer,
}

impl TokenSource {
    /// Lower-case name used by the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::None => "none",
            TokenSource::Query => "query",
            TokenSource::Header => "header",
            TokenSource::Bearer => "bearer",
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Wall-clock time the request arrived.
    pub received_at: SystemTime,
    /// Time since the double started (tokio time, so paused-time tests see virtual time).
    pub since_start: Duration,
    /// How long the answer took (including blocking and injected slowness).
    pub duration: Duration,
    /// HTTP method.
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// Which token mechanism the request used.
    pub token_source: TokenSource,
    /// The token, if any.
    pub token: Option<String>,
    /// Request body.
    pub body: Vec<u8>,
    /// Answer status; `None` when the connection was reset instead.
    pub status: Option<u16>,
}

impl LoggedRequest {
    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
pub(crate) struct RequestLog {
    capacity: usize,
    next_seq: u64,
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        RequestLog {
            capacity: capacity.max(1),
            next_seq: 0,
            entries: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, mut entry: LoggedRequest) {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub(crate) fn snapshot(&self) -> Vec<LoggedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
