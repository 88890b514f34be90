//! Watches: each watch follows `/v1/health/service/<name>?passing` (a service watch), or
//! `/v1/kv/<key>` (a key watch) or `/v1/kv/<prefix>?recurse` (a prefix watch), with Consul
//! blocking queries, publishes `changed`, `healthy` and `unhealthy` for `watch.<name>`, and keeps
//! a snapshot of the instances or key pairs for `GET /v3/watches` and `pilot -render`.
//!
//! The loop follows the index rules of Consul's blocking-query documentation: block on the last
//! `X-Consul-Index`; treat an index of 0 as 1; when the index goes backwards (a snapshot restore,
//! an agent that lost its state), drop the answer and ask again without blocking; after an error,
//! back off and ask without blocking. A token bucket bounds the query rate, so an agent that
//! answers at once every time (with or without a change) can never make a watch spin.
//!
//! Each watch has its own task and state: two watches on one service with different tags never
//! interfere (ContainerPilot keyed its state by service name). `interval` sets the blocking
//! `wait`, which bounds how stale a watch can be when Consul stops answering without closing
//! the connection, and caps the retry delay when it is down.

mod change;
mod quiet;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

use crate::config::{self, WatchTarget};
use crate::consul::{
    AnswerBuffer, Client, ConsulError, Freshness, HealthQuery, Instance, KvPair, KvQuery,
    RetryBackoff,
};
use crate::events::{Bus, Event, EventCode};
use crate::metrics::Metrics;

pub use change::events as change_events;

/// The shortest and longest blocking `wait` (Consul caps it at 10 minutes).
const MIN_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(600);
/// The first retry delay after an error (the backoff doubles up to the watch's interval).
const RETRY_BASE: Duration = Duration::from_millis(250);
/// Queries a watch may make in a burst, and how many per second after that.
const BURST: f64 = 5.0;
const PER_SECOND: f64 = 5.0;

/// What a watch knows about its service, key or prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Snapshot {
    /// The watch's name (`watch.<name>`).
    #[serde(default)]
    pub name: String,
    /// The Consul service name of a service watch; empty (and left out) for a KV watch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    pub tag: Option<String>,
    pub dc: Option<String>,
    /// The key of a key watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The prefix of a prefix watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A service watch's healthy instances, sorted; `None` before the first answer.
    pub instances: Option<Vec<Instance>>,
    /// A KV watch's pairs, sorted by key (none when the key is missing); `None` before the
    /// first answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<Vec<KvPair>>,
    /// Why the last query failed, while Consul does not answer.
    pub error: Option<String>,
}

impl Snapshot {
    /// What a watch knows before Consul's first answer.
    pub fn empty(cfg: &config::Watch) -> Snapshot {
        let (service, key, prefix) = match &cfg.target {
            WatchTarget::Service => (cfg.name.clone(), None, None),
            WatchTarget::Key(key) => (String::new(), Some(key.clone()), None),
            WatchTarget::Prefix(prefix) => (String::new(), None, Some(prefix.clone())),
        };
        Snapshot {
            name: cfg.name.clone(),
            service,
            tag: cfg.tag.clone(),
            dc: cfg.dc.clone(),
            key,
            prefix,
            ..Snapshot::default()
        }
    }
}

/// A running watch.
pub struct WatchHandle {
    /// `watch.<name>`, the source of its events.
    pub source: Arc<str>,
    pub config: config::Watch,
    snapshot: watch::Receiver<Snapshot>,
    task: JoinHandle<()>,
}

impl WatchHandle {
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }
}

/// Every running watch's snapshot, shared with the control socket (`GET /v3/watches`) without
/// going through the daemon's loop. The daemon replaces the set when the watches change.
#[derive(Clone, Default)]
pub struct Snapshots {
    inner: Arc<std::sync::Mutex<Vec<watch::Receiver<Snapshot>>>>,
}

impl Snapshots {
    /// Every watch's snapshot, sorted by service, tag, datacenter, then key, prefix and name
    /// (service watches first), so that what `/v3/watches` and `-render` see is stable.
    pub fn all(&self) -> Vec<Snapshot> {
        let receivers = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: Vec<Snapshot> = receivers.iter().map(|r| r.borrow().clone()).collect();
        let order = |s: &Snapshot| {
            (
                s.service.is_empty(),
                s.service.clone(),
                s.tag.clone(),
                s.dc.clone(),
                s.key.clone(),
                s.prefix.clone(),
                s.name.clone(),
            )
        };
        all.sort_by_cached_key(order);
        all
    }

    /// Makes the set the watches of `handles`.
    pub fn replace(&self, handles: &[WatchHandle]) {
        let receivers = handles.iter().map(|h| h.snapshot.clone()).collect();
        *self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = receivers;
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a watch. It runs until its handle is dropped.
pub fn spawn(cfg: config::Watch, client: Client, bus: Bus, metrics: Metrics) -> WatchHandle {
    let source: Arc<str> = cfg.source().into();
    let (tx, rx) = watch::channel(Snapshot::empty(&cfg));
    let task = tokio::spawn(run(cfg.clone(), client, bus, metrics, source.clone(), tx));
    WatchHandle {
        source,
        config: cfg,
        snapshot: rx,
        task,
    }
}

/// The watch's queries, with its events published at once, or through its quiet period
/// (`quiet.rs`) when it has `wait`.
async fn run(
    cfg: config::Watch,
    client: Client,
    bus: Bus,
    metrics: Metrics,
    source: Arc<str>,
    snapshot: watch::Sender<Snapshot>,
) {
    let publish = |code| bus.publish(Event::new(code, source.clone()));
    match cfg.wait {
        None => {
            let emit = |events: Vec<EventCode>| events.into_iter().for_each(publish);
            follow(&cfg, &client, &metrics, &source, &snapshot, emit).await;
        }
        Some(period) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let emit = move |events: Vec<EventCode>| {
                // The receiver lives as long as this task.
                let _ = tx.send(events);
            };
            tokio::join!(
                follow(&cfg, &client, &metrics, &source, &snapshot, emit),
                quiet::run(period, rx, publish)
            );
        }
    }
}

/// Follows Consul for the watch `cfg` (forever), keeping `snapshot` current and handing the
/// events of each answer to `emit`.
async fn follow(
    cfg: &config::Watch,
    client: &Client,
    metrics: &Metrics,
    source: &str,
    snapshot: &watch::Sender<Snapshot>,
    emit: impl Fn(Vec<EventCode>),
) {
    let wait = cfg.interval.clamp(MIN_WAIT, MAX_WAIT);
    let mut backoff = RetryBackoff::new(RETRY_BASE, cfg.interval.max(RETRY_BASE));
    let mut limiter = Limiter::new();
    let mut index: u64 = 0;
    // The answers' bytes, reused from one query to the next (see `AnswerBuffer`).
    let mut buffer = AnswerBuffer::new();
    loop {
        limiter.take().await;
        let answer = match ask(cfg, client, source, index, wait, &mut buffer).await {
            Ok(answer) => answer,
            Err(err) => {
                let delay = backoff.next_delay();
                if backoff.failures() == 1 {
                    tracing::warn!(
                        "watch {source}: {err}; retrying every {:?} at most",
                        cfg.interval
                    );
                } else {
                    tracing::debug!("watch {source}: {err}; retrying in {delay:?}");
                }
                snapshot.send_modify(|s| s.error = Some(err.to_string()));
                // The agent may come back with its state (and its index) reset: ask without
                // blocking, or the query could wait for an index it will not reach for a while.
                index = 0;
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        if backoff.failures() > 0 {
            tracing::info!("watch {source}: Consul answers again");
            backoff.reset();
        }
        let (answered, data) = answer;
        match next_index(index, answered) {
            Some(next) => index = next,
            None => {
                tracing::debug!(
                    "watch {source}: the index went back from {index} to {answered}; asking again"
                );
                index = 0;
                continue;
            }
        }
        let events = match data {
            Data::Instances(instances) => {
                metrics.set_watch_instances(&cfg.name, instances.len());
                update(snapshot, |s| &mut s.instances, instances)
            }
            Data::Pairs(pairs) => update(snapshot, |s| &mut s.pairs, pairs),
        };
        if !events.is_empty() {
            emit(events);
        }
    }
}

/// What an answer holds.
enum Data {
    /// A service watch's instances, sorted.
    Instances(Vec<Instance>),
    /// A KV watch's pairs, sorted by key.
    Pairs(Vec<KvPair>),
}

/// One query of the watch `cfg`, blocking on `index`: the answer's index and data. With a
/// `maxStale`, any server may answer; an answer from a server that last heard from the leader
/// longer ago than that is asked again of the leader (a non-blocking read), as consul-template
/// does. While the cluster has no leader (`X-Consul-KnownLeader: false`), or when the leader
/// cannot answer, the stale answer is taken: the watch keeps answering during an election.
async fn ask(
    cfg: &config::Watch,
    client: &Client,
    source: &str,
    index: u64,
    wait: Duration,
    buffer: &mut AnswerBuffer,
) -> Result<(u64, Data), ConsulError> {
    let stale = !cfg.max_stale.is_zero();
    let (answered, data, freshness) = ask_once(cfg, client, index, wait, stale, buffer).await?;
    if stale && freshness.known_leader && freshness.last_contact > cfg.max_stale {
        tracing::debug!(
            "watch {source}: the answer is {:?} behind the leader, more than maxStale; asking the leader",
            freshness.last_contact
        );
        match ask_once(cfg, client, 0, wait, false, buffer).await {
            Ok((answered, data, _)) => return Ok((answered, data)),
            Err(err) => {
                tracing::debug!("watch {source}: {err}; taking the stale answer");
            }
        }
    }
    Ok((answered, data))
}

/// One query, `stale` or of the leader.
async fn ask_once(
    cfg: &config::Watch,
    client: &Client,
    index: u64,
    wait: Duration,
    stale: bool,
    buffer: &mut AnswerBuffer,
) -> Result<(u64, Data, Freshness), ConsulError> {
    let kv = |key, recurse| KvQuery {
        key,
        recurse,
        dc: cfg.dc.as_deref(),
        index,
        wait: Some(wait),
        stale,
    };
    match &cfg.target {
        WatchTarget::Service => {
            let query = HealthQuery {
                service: &cfg.name,
                passing: true,
                tag: cfg.tag.as_deref(),
                dc: cfg.dc.as_deref(),
                index,
                wait: Some(wait),
                stale,
            };
            let answer = client.health_service_with(&query, buffer).await?;
            let mut instances = answer.instances;
            instances.sort();
            Ok((answer.index, Data::Instances(instances), answer.freshness))
        }
        WatchTarget::Key(key) => {
            let answer = client.kv_with(&kv(key, false), buffer).await?;
            Ok((answer.index, Data::Pairs(answer.pairs), answer.freshness))
        }
        WatchTarget::Prefix(prefix) => {
            let answer = client.kv_with(&kv(prefix, true), buffer).await?;
            Ok((answer.index, Data::Pairs(answer.pairs), answer.freshness))
        }
    }
}

/// Stores `current` in the snapshot's `field` and returns the events the change causes. The
/// comparison is in place: a copy of a thousand instances per answer would cost more than the
/// comparison. A spurious wake-up changes nothing, and wakes no reader.
fn update<T: PartialEq>(
    snapshot: &watch::Sender<Snapshot>,
    field: fn(&mut Snapshot) -> &mut Option<Vec<T>>,
    current: Vec<T>,
) -> Vec<EventCode> {
    let mut events = Vec::new();
    snapshot.send_if_modified(|s| {
        let previous = field(s);
        events = change::events(previous.as_deref(), &current);
        let modified = previous.as_ref() != Some(&current);
        if modified {
            *previous = Some(current);
        }
        let modified = modified || s.error.is_some();
        s.error = None;
        modified
    });
    events
}

/// The index to block on after an answer at `answered` to a query at `previous`, or `None` when
/// the answer must be dropped and the next query must not block (Consul's rules: the index is
/// opaque but never goes back; one that does means the agent's data was reset or restored, and
/// blocking on the old one could miss changes for a whole wait). An index of 0 (or a missing
/// one) counts as 1: blocking on 0 would not block at all.
fn next_index(previous: u64, answered: u64) -> Option<u64> {
    let answered = answered.max(1);
    (answered >= previous).then_some(answered)
}

/// A token bucket: `BURST` queries at once, then `PER_SECOND`.
struct Limiter {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    fn new() -> Limiter {
        Limiter {
            tokens: BURST,
            last: Instant::now(),
        }
    }

    async fn take(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * PER_SECOND).min(BURST);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / PER_SECOND);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.last = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_rules() {
        assert_eq!(next_index(0, 42), Some(42), "first answer");
        assert_eq!(
            next_index(42, 42),
            Some(42),
            "nothing new: block on it again"
        );
        assert_eq!(next_index(42, 50), Some(50));
        assert_eq!(
            next_index(42, 7),
            None,
            "backwards: drop it, ask without blocking"
        );
        assert_eq!(next_index(0, 0), Some(1), "0 is never waited on");
        assert_eq!(next_index(1, 0), Some(1));
        assert_eq!(next_index(42, 0), None, "0 after 42 went back too");
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiter_allows_a_burst_then_a_steady_rate() {
        let mut limiter = Limiter::new();
        let start = Instant::now();
        for _ in 0..5 {
            limiter.take().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            limiter.take().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            (1.9..2.1).contains(&elapsed),
            "10 more at 5 per second: {elapsed}"
        );
    }
}
