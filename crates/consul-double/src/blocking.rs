//! Blocking queries: `?index`/`?wait` parsing, consistency flags, and the wait loop shared by
//! every RPC-backed read.
//!
//! The loop mirrors Consul's `blockingQuery`: run the query; answer if no index was given or the
//! result's index is above it; otherwise wait for a change to what the query read, or for the
//! wait (default 5 min, capped at 10 min, plus up to wait/16 jitter) to pass, and answer the last
//! result then. Injected faults can lower the reported index and cut waits short.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::duration::parse_go_duration;
use crate::http::util::{Query, Resp, text};
use crate::shared::Shared;
use crate::state::State;
use crate::state::watch::WatchSpec;

/// Parsed `stale`/`consistent`/`index`/`wait` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryOptions {
    pub(crate) index: u64,
    pub(crate) wait: Option<Duration>,
    pub(crate) consistency: &'static str,
}

/// Consul's `parseConsistency` then `parseWait`, with their 400 texts.
pub(crate) fn parse_query_options(q: &Query) -> Result<QueryOptions, Resp> {
    let stale = q.has("stale");
    let consistent = q.has("consistent");
    if stale && consistent {
        return Err(text(
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ));
    }
    if q.has("cached") && consistent {
        return Err(text(
            400,
            "Cannot specify ?cached with ?consistent, conflicting semantics.",
        ));
    }
    if let Some(ms) = q.get("max_stale")
        && parse_go_duration(ms).is_err()
    {
        return Err(text(400, format!("Invalid max_stale value {ms:?}")));
    }
    let consistency = if stale {
        "stale"
    } else if consistent {
        "consistent"
    } else {
        "leader"
    };
    let mut wait = None;
    if let Some(w) = q.get("wait").filter(|w| !w.is_empty()) {
        match parse_go_duration(w) {
            Ok(ns) => wait = Some(Duration::from_nanos(ns.max(0) as u64)),
            Err(_) => return Err(text(400, "Invalid wait time")),
        }
    }
    let mut index = 0;
    if let Some(i) = q.get("index").filter(|i| !i.is_empty()) {
        index = i.parse::<u64>().map_err(|_| text(400, "Invalid index"))?;
    }
    Ok(QueryOptions {
        index,
        wait,
        consistency,
    })
}

/// What one run of a query produced.
pub(crate) struct Run<T> {
    pub(crate) index: u64,
    pub(crate) data: T,
    pub(crate) watch: Vec<WatchSpec>,
}

/// Runs an index-based blocking query and returns the index to report with the data.
pub(crate) async fn index_query<T>(
    shared: &Shared,
    min_index: u64,
    wait: Option<Duration>,
    mut run: impl FnMut(&mut State) -> Run<T>,
) -> (u64, T) {
    let (index, data) = wait_loop(
        shared,
        min_index > 0,
        wait,
        |st| {
            let r = run(st);
            ((r.index, r.data), r.watch)
        },
        |shared, (index, _)| shared.reported_index(*index, false) > min_index,
    )
    .await;
    (shared.reported_index(index, true), data)
}

/// Runs a hash-based blocking query (`/v1/agent/service/:id?hash=`); `run` returns the current
/// hash with the data, and the query blocks while the hash equals the one the client sent.
pub(crate) async fn hash_query<T>(
    shared: &Shared,
    hash: Option<String>,
    wait: Option<Duration>,
    run: impl FnMut(&mut State) -> (String, T),
) -> (String, T) {
    let mut run = run;
    let wanted = hash.clone().unwrap_or_default();
    wait_loop(
        shared,
        hash.is_some(),
        wait,
        |st| (run(st), vec![WatchSpec::Agent]),
        |_, (h, _)| *h != wanted,
    )
    .await
}

/// A registered waiter, unregistered when dropped: also when the query's task is dropped while
/// it waits (its client went away, or the double went down), which would otherwise leave it
/// counted in `blocked_queries` for good.
struct Waiter<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.shared.state.with(|st| st.watchers.unregister(self.id));
    }
}

async fn wait_loop<T>(
    shared: &Shared,
    blocking: bool,
    wait: Option<Duration>,
    mut run: impl FnMut(&mut State) -> (T, Vec<WatchSpec>),
    fresh: impl Fn(&Shared, &T) -> bool,
) -> T {
    if !blocking {
        return shared.state.with(|st| run(st).0);
    }
    let timing = &shared.cfg.timing;
    let mut wait = wait.filter(|w| !w.is_zero()).unwrap_or(timing.default_wait);
    if wait > timing.max_wait {
        wait = timing.max_wait;
    }
    let jitter = shared.state.with(|st| st.stagger(wait / 16));
    let now = tokio::time::Instant::now();
    let mut deadline = now + wait + jitter;
    if let Some(every) = shared.faults().spurious_wakeups_every {
        deadline = deadline.min(now + every);
    }
    let mut spurious = shared.spurious.subscribe();
    let notify = Arc::new(Notify::new());
    loop {
        // Running the query and registering its watches under one lock means no write can slip
        // in between unseen.
        let (data, id) = shared.state.with(|st| {
            let (data, specs) = run(st);
            (data, st.watchers.register(specs, notify.clone()))
        });
        let waiter = Waiter { shared, id };
        if fresh(shared, &data) {
            return data;
        }
        let woken = tokio::select! {
            _ = notify.notified() => true,
            _ = tokio::time::sleep_until(deadline) => false,
            _ = spurious.changed() => false,
        };
        drop(waiter);
        if !woken {
            return data;
        }
    }
}
