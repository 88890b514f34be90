//! The daemon's jobs: every job's handle and task, and what the daemon remembers of them (which
//! stopped for good, which events happened, the main process's status, a failed task).
//!
//! It starts a job and records how its task ended. It must not decide what an ending means for
//! the daemon (a shutdown, the next step of a reload): the daemon does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};
use tokio::task::{JoinError, JoinSet};

use super::{lock, reload};
use crate::config::{Config, Job};
use crate::consul::RegistrationStatus;
use crate::events::{Bus, Event};
use crate::jobs::{self, Context, JobHandle, Outcome};
use crate::serve::SignalAnswer;

pub(super) struct Roster {
    /// Every job of the running config; a completed job's handle keeps its last status.
    pub(super) handles: BTreeMap<Arc<str>, JobHandle>,
    /// The jobs' tasks: the daemon runs until none is left.
    pub(super) tasks: JoinSet<Outcome>,
    /// Jobs that stopped for good (and were not started again by a reload).
    pub(super) completed: BTreeSet<Arc<str>>,
    /// Every (code, source) published so far that a job started by a reload may need to know.
    pub(super) happened: Arc<Mutex<reload::History>>,
    /// The main process's last status, once it has exited for good.
    main_exit: Option<i32>,
    /// A job task failed (panicked, in a debug build).
    task_failed: bool,
}

impl Roster {
    /// No job yet; remembers from now on what `bus` publishes that a reload may replay.
    pub(super) fn new(bus: &Bus) -> Roster {
        let happened = Arc::new(Mutex::new(HashSet::new()));
        let seen = happened.clone();
        bus.observe(Arc::new(move |event: &Event| {
            if reload::remembered(event) {
                lock(&seen).insert((event.code, event.source.clone()));
            }
        }));
        Roster {
            handles: BTreeMap::new(),
            tasks: JoinSet::new(),
            completed: BTreeSet::new(),
            happened,
            main_exit: None,
            task_failed: false,
        }
    }

    /// Starts `job`'s task, telling it first the `replay`ed events.
    pub(super) fn spawn(&mut self, job: Arc<Job>, ctx: &Arc<Context>, replay: Vec<Event>) {
        let key: Arc<str> = job.key.as_str().into();
        self.completed.remove(&key);
        let handle = jobs::spawn(job, ctx.clone(), replay, &mut self.tasks);
        self.handles.insert(key, handle);
    }

    /// The jobs not stopped for good.
    pub(super) fn running(&self) -> BTreeSet<Arc<str>> {
        (self.handles.keys())
            .filter(|name| !self.completed.contains(*name))
            .cloned()
            .collect()
    }

    /// Forgets the jobs `cfg` no longer has.
    pub(super) fn keep_only(&mut self, cfg: &Config) {
        self.handles.retain(|name, _| cfg.job(name).is_some());
        self.completed.retain(|name| cfg.job(name).is_some());
    }

    /// How a job task ended: its outcome, or `None` when the task itself failed (which is
    /// recorded for the exit status).
    pub(super) fn joined(&mut self, result: Result<Outcome, JoinError>) -> Option<Outcome> {
        match result {
            Ok(outcome) => Some(outcome),
            Err(err) => {
                // A job task cannot panic in a release build (panics abort); in a debug build
                // the job is simply gone, and counts as failed.
                tracing::error!("a job task failed: {err}");
                self.task_failed = true;
                None
            }
        }
    }

    /// Records that a job stopped for good. True when it was the main process.
    pub(super) fn stopped(&mut self, outcome: &Outcome) -> bool {
        self.completed.insert(outcome.key.clone());
        if outcome.main {
            // The main process's status is the status of its last run.
            self.main_exit = Some(outcome.last_exit.map_or(0, |s| s.code()));
        }
        outcome.main
    }

    /// The main process's pid, while it runs.
    pub(super) fn main_pid(&self, cfg: &Config) -> Option<i32> {
        let main = cfg.jobs.iter().find(|j| j.main)?;
        (self.handles.get(main.key.as_str())).and_then(|h| h.status().pid)
    }

    /// Every service's registration status, to wait on.
    pub(super) fn registrations(&self) -> Vec<watch::Receiver<RegistrationStatus>> {
        (self.handles.values())
            .filter_map(JobHandle::watch_registration)
            .collect()
    }

    /// `pilot -signal JOB=SIGNAL`: the job's task sends it (it alone knows whether its process
    /// is still there); the answer comes back without holding up the daemon's loop.
    /// Every job of that name gets it (two jobs may share a name).
    pub(super) fn signal(&self, job: &str, signal: i32, reply: oneshot::Sender<SignalAnswer>) {
        let sent: Vec<_> = (self.handles.values())
            .filter(|handle| &*handle.name == job)
            .map(|handle| handle.signal(signal))
            .collect();
        if sent.is_empty() {
            let _ = reply.send(SignalAnswer::UnknownJob);
            return;
        }
        tokio::spawn(async move {
            let mut answer = SignalAnswer::NotRunning;
            for sent in sent {
                if sent.await {
                    answer = SignalAnswer::Sent;
                }
            }
            let _ = reply.send(answer);
        });
    }

    /// The status pilot exits with.
    pub(super) fn exit_code(&self) -> i32 {
        if let Some(code) = self.main_exit {
            return code;
        }
        // ContainerPilot exited 0 whatever its jobs did; so does pilot without a main process.
        i32::from(self.task_failed)
    }
}
