//! Blocking queries and consistency modes: `?index`/`?wait`/`?stale`/`?consistent`/`?leader`/
//! `?max_stale` parsing, the RPC hold while there is no leader, and the wait loop shared by every
//! RPC-backed read.
//!
//! The loop mirrors Consul's `blockingQuery`: run the query; answer if no index was given or the
//! result's index is above it; otherwise wait for a change to what the query read, or for the
//! wait (default 5 min, capped at 10 min, plus up to wait/16 jitter) to pass, and answer the last
//! result then. Injected faults can lower the reported index and cut waits short.
//!
//! Reads that are not `?stale` need the leader (the double itself, or the one it forwards to).
//! Without one they are held like Consul's `forward`: until a leader is elected or
//! `rpc_hold_timeout` (plus up to a sixteenth of it) passes, and then fail with `No cluster
//! leader`. A blocking read waiting when the leader is lost is held the same way from then on,
//! as its forwarded RPC would be retried. `?stale` reads are answered from the local state
//! whatever happens, with the leader and contact headers of the moment they last ran.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::duration::parse_go_duration;
use crate::http::util::{Query, Resp, text};
use crate::shared::Shared;
use crate::state::State;
use crate::state::leader::ReadMeta;
use crate::state::watch::WatchSpec;

/// Parsed consistency and blocking parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryOptions {
    pub(crate) index: u64,
    pub(crate) wait: Option<Duration>,
    /// `X-Consul-Effective-Consistency`: `leader`, `stale` or `consistent`.
    pub(crate) consistency: &'static str,
    /// Any server may answer (`?stale`, or `?max_stale` above zero).
    pub(crate) stale: bool,
}

/// Consul's `parseConsistency` then `parseWait`, with their 400 texts. Only the presence of
/// `?stale`, `?consistent` and `?leader` counts, not their values (`?stale=false` is stale); a
/// positive `?max_stale` implies `?stale`.
pub(crate) fn parse_query_options(q: &Query) -> Result<QueryOptions, Resp> {
    let mut stale = q.has("stale");
    let consistent = q.has("consistent");
    if let Some(ms) = q.get("max_stale").filter(|m| !m.is_empty()) {
        match parse_go_duration(ms) {
            Ok(ns) => stale |= ns > 0,
            Err(_) => return Err(text(400, format!("Invalid max_stale value {ms:?}"))),
        }
    }
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
        stale,
    })
}

/// No leader was elected within the RPC hold timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoLeader;

/// Consul's RPC hold: returns at once while there is a leader; otherwise waits until one is
/// elected (true) or `rpc_hold_timeout` plus up to a sixteenth of it passes (false).
pub(crate) async fn await_leader(shared: &Shared) -> bool {
    let mut epoch = shared.leader_epoch.subscribe();
    if shared.state.with(|st| st.leader.has_leader()) {
        return true;
    }
    let hold = shared.cfg.timing.rpc_hold_timeout;
    let jitter = shared.state.with(|st| st.stagger(hold / 16));
    let deadline = tokio::time::Instant::now() + hold + jitter;
    loop {
        tokio::select! {
            _ = epoch.changed() => {
                if shared.state.with(|st| st.leader.has_leader()) {
                    // Consul polls for the leader every random sixteenth of the hold.
                    let poll = shared.state.with(|st| st.stagger(hold / 16));
                    tokio::time::sleep(poll).await;
                    return true;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return shared.state.with(|st| st.leader.has_leader());
            }
        }
    }
}

/// What one run of a query produced.
pub(crate) struct Run<T> {
    pub(crate) index: u64,
    pub(crate) data: T,
    pub(crate) watch: Vec<WatchSpec>,
}

/// What an index-based query answers.
pub(crate) struct Answer<T> {
    pub(crate) index: u64,
    pub(crate) data: T,
    pub(crate) meta: ReadMeta,
}

/// Runs an index-based blocking query in the consistency mode of `opts`; fails only when a read
/// that needs the leader found none within the hold.
pub(crate) async fn index_query<T>(
    shared: &Shared,
    opts: &QueryOptions,
    mut run: impl FnMut(&mut State) -> Run<T>,
) -> Result<Answer<T>, NoLeader> {
    let min_index = opts.index;
    loop {
        if !opts.stale && !await_leader(shared).await {
            return Err(NoLeader);
        }
        let waited = wait_loop(
            shared,
            min_index > 0,
            opts.wait,
            !opts.stale,
            |st| {
                let r = run(st);
                let meta = st.leader.read_meta(opts.stale);
                ((r.index, r.data, meta), r.watch)
            },
            |shared, (index, _, _)| shared.reported_index(*index, false) > min_index,
        )
        .await;
        match waited {
            Waited::Done((index, data, meta)) => {
                return Ok(Answer {
                    index: shared.reported_index(index, true),
                    data,
                    meta,
                });
            }
            // The forwarded RPC broke; Consul retries it once a leader is back.
            Waited::LeaderLost => {}
        }
    }
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
    match wait_loop(
        shared,
        hash.is_some(),
        wait,
        false,
        |st| (run(st), vec![WatchSpec::Agent]),
        |_, (h, _)| *h != wanted,
    )
    .await
    {
        Waited::Done(answer) => answer,
        Waited::LeaderLost => unreachable!("agent-local reads do not follow the leader"),
    }
}

/// How a wait ended.
enum Waited<T> {
    Done(T),
    /// The read needs the leader and the cluster lost it while the read waited.
    LeaderLost,
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
    needs_leader: bool,
    mut run: impl FnMut(&mut State) -> (T, Vec<WatchSpec>),
    fresh: impl Fn(&Shared, &T) -> bool,
) -> Waited<T> {
    if !blocking {
        return Waited::Done(shared.state.with(|st| run(st).0));
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
    let mut epoch = shared.leader_epoch.subscribe();
    let notify = Arc::new(Notify::new());
    loop {
        // Running the query and registering its watches under one lock means no write can slip
        // in between unseen.
        let (data, id, lost) = shared.state.with(|st| {
            let (data, specs) = run(st);
            let lost = needs_leader && !st.leader.has_leader();
            (data, st.watchers.register(specs, notify.clone()), lost)
        });
        let waiter = Waiter { shared, id };
        if lost {
            return Waited::LeaderLost;
        }
        if fresh(shared, &data) {
            return Waited::Done(data);
        }
        let woken = tokio::select! {
            _ = notify.notified() => true,
            _ = tokio::time::sleep_until(deadline) => false,
            _ = spurious.changed() => false,
            // Re-run: a lost leader ends the wait above, a new one changes nothing.
            _ = epoch.changed(), if needs_leader => true,
        };
        drop(waiter);
        if !woken {
            return Waited::Done(data);
        }
    }
}
