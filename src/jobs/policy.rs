//! A job's start and restart rules as pure decisions: ContainerPilot's `when` and `restarts`
//! arithmetic (reference section 3.6), with pilot's coalescing of overlapping triggers
//! (README, "Compatibility with ContainerPilot 3.8").
//!
//! The job task feeds the policy what happened and carries out what it decides. Keeping the rules
//! free of processes and timers lets the tables in the tests cover them exhaustively.

use crate::config::{Job, Repeat, Restarts, When};
use crate::events::{Event, EventCode, GLOBAL};

/// How many more times something may happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Unlimited,
    Left(u32),
}

impl Budget {
    fn allows(self) -> bool {
        self != Budget::Left(0)
    }

    fn spend(&mut self) {
        if let Budget::Left(n) = self {
            *n = n.saturating_sub(1);
        }
    }
}

/// What the job should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a run now, for a trigger.
    Start,
    /// Run again after a run ended: a restart, subject to crash-loop backoff.
    Restart,
    /// Nothing to do now.
    Wait,
    /// Stop for good.
    Halt,
}

/// The start and restart state of one job.
#[derive(Debug)]
pub struct Policy {
    /// The event that starts the job, as (code, source); `None` once nothing can start it.
    trigger: Option<(EventCode, String)>,
    starts: Budget,
    restarts: Budget,
    interval: bool,
    /// A trigger (or interval tick) arrived while a run was going: run once more afterwards.
    pending: bool,
    /// A run is going, or a restart is due (perhaps after a crash-loop backoff). Either way a
    /// trigger must wait: starting a run beside it would break the one-run-at-a-time rule.
    running: bool,
    /// The job runs on another job's `stopping` or `stopped`: a pre-stop or post-stop hook.
    stop_hook: bool,
}

impl Policy {
    pub fn new(job: &Job) -> Policy {
        let restarts = match job.restarts {
            Restarts::Never => Budget::Left(0),
            Restarts::Unlimited => Budget::Unlimited,
            Restarts::Times(n) => Budget::Left(n),
        };
        let (trigger, starts, interval) = match &job.when {
            When::Startup => (
                Some((EventCode::Startup, GLOBAL.to_string())),
                Budget::Left(1),
                false,
            ),
            When::Interval(_) => (
                Some((EventCode::Startup, GLOBAL.to_string())),
                Budget::Left(1),
                true,
            ),
            // Nothing starts it; it waits for shutdown (or its `when.timeout`).
            When::Never { .. } => (None, Budget::Left(0), false),
            When::Event {
                code,
                source,
                repeat,
                ..
            } => {
                let starts = match repeat {
                    Repeat::Once => Budget::Left(1),
                    Repeat::Each => Budget::Unlimited,
                };
                (Some((*code, source.clone())), starts, false)
            }
        };
        let stop_hook = matches!(trigger, Some((EventCode::Stopping | EventCode::Stopped, _)));
        Policy {
            stop_hook,
            trigger,
            starts,
            restarts,
            interval,
            pending: false,
            running: false,
        }
    }

    /// Whether `event` is this job's trigger.
    pub fn matches(&self, event: &Event) -> bool {
        self.trigger
            .as_ref()
            .is_some_and(|(code, source)| *code == event.code && **source == *event.source)
    }

    /// The source the job waits on, while it still waits on one.
    pub fn trigger_source(&self) -> Option<&str> {
        self.trigger.as_ref().map(|(_, source)| source.as_str())
    }

    /// The trigger fired. During a run, or while a restart is due, it coalesces into one more
    /// run afterwards (ContainerPilot queued triggers while a run was going).
    pub fn on_trigger(&mut self) -> Decision {
        if self.running {
            self.pending = true;
            return Decision::Wait;
        }
        self.start_for_trigger()
    }

    fn start_for_trigger(&mut self) -> Decision {
        if !self.starts.allows() {
            self.trigger = None;
            return Decision::Halt;
        }
        self.starts.spend();
        if !self.starts.allows() {
            // A `once` trigger has fired: further occurrences are ignored.
            self.trigger = None;
        }
        Decision::Start
    }

    /// An interval tick. Once the restarts are spent the job halts, stopping a run that is
    /// still going (as ContainerPilot does). A tick during a run makes one more run after it;
    /// the restart is spent when that run starts, so ticks that coalesce cost one restart.
    pub fn on_tick(&mut self) -> Decision {
        if !self.restarts.allows() {
            return Decision::Halt;
        }
        if self.running {
            self.pending = true;
            return Decision::Wait;
        }
        self.restarts.spend();
        Decision::Start
    }

    /// A run started (the task calls this whenever it spawns, whatever the reason).
    pub fn started(&mut self) {
        self.running = true;
    }

    /// A run ended.
    pub fn on_exit(&mut self) -> Decision {
        let decision = self.after_run();
        // Until a restart has started, the job counts as running (see `running`).
        self.running = decision == Decision::Restart;
        decision
    }

    fn after_run(&mut self) -> Decision {
        if self.interval {
            // Interval jobs ignore their exits: the ticks decide.
            if std::mem::take(&mut self.pending) && self.restarts.allows() {
                self.restarts.spend();
                return Decision::Start;
            }
            return Decision::Wait;
        }
        if self.restarts.allows() {
            self.restarts.spend();
            return Decision::Restart;
        }
        if std::mem::take(&mut self.pending) {
            return self.start_for_trigger();
        }
        if self.trigger.is_some() && self.starts.allows() {
            return Decision::Wait;
        }
        Decision::Halt
    }

    /// Shutdown, or the job asked itself to quit (`when.timeout`).
    ///
    /// A job that runs on another job's `stopping` or `stopped` (a pre-stop or post-stop hook)
    /// and has not run yet keeps waiting for it, and one whose run is going finishes it (a
    /// reload's quit can reach a hook after its trigger); everything else halts.
    pub fn on_quit(&mut self, has_exec: bool) -> Decision {
        self.restarts = Budget::Left(0);
        self.pending = false;
        if self.stop_hook && has_exec && (self.trigger.is_some() || self.running) {
            if self.starts == Budget::Unlimited {
                self.starts = Budget::Left(1);
            }
            return Decision::Wait;
        }
        self.starts = Budget::Left(0);
        self.trigger = None;
        Decision::Halt
    }

    /// The job `source` stopped for good, so it will publish nothing more. A job whose trigger
    /// comes from it can never start again: it halts once its current run (and that run's
    /// restarts) is over, and the one more run a trigger during that run asked for, which
    /// ContainerPilot ran too (its trigger was queued before the source stopped).
    pub fn on_source_stopped(&mut self, source: &str) -> Decision {
        if self.trigger_source() != Some(source) {
            return Decision::Wait;
        }
        self.trigger = None;
        self.starts = Budget::Left(u32::from(self.pending));
        if self.running {
            Decision::Wait
        } else {
            Decision::Halt
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use std::time::Duration;

    fn job(when: When, restarts: Restarts) -> Job {
        Job {
            restarts,
            ..Job::for_test("j", when)
        }
    }

    /// Runs the job to its end: start on the trigger, then exit until it halts.
    fn runs_until_halt(policy: &mut Policy) -> usize {
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        let mut runs = 1;
        loop {
            match policy.on_exit() {
                Restart | Start => {
                    policy.started();
                    runs += 1;
                }
                Halt => return runs,
                Wait => panic!("waiting after {runs} runs"),
            }
            assert!(runs < 100, "never halts");
        }
    }

    #[test]
    fn restarts_n_means_n_plus_one_runs() {
        for (restarts, runs) in [
            (Restarts::Never, 1),
            (Restarts::Times(0), 1),
            (Restarts::Times(1), 2),
            (Restarts::Times(3), 4),
        ] {
            let mut policy = Policy::new(&job(When::Startup, restarts));
            assert!(policy.matches(&Event::new(EventCode::Startup, GLOBAL)));
            assert_eq!(runs_until_halt(&mut policy), runs, "{restarts:?}");
        }
    }

    #[test]
    fn unlimited_restarts_never_halt_by_themselves() {
        let mut policy = Policy::new(&job(When::Startup, Restarts::Unlimited));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        for _ in 0..1000 {
            assert_eq!(policy.on_exit(), Restart);
            policy.started();
        }
        assert_eq!(policy.on_quit(true), Halt);
    }

    #[test]
    fn once_fires_a_single_time_then_restarts_then_halts() {
        let mut policy = Policy::new(&job(
            When::on(EventCode::StatusHealthy, "db", Repeat::Once),
            Restarts::Times(2),
        ));
        let trigger = Event::new(EventCode::StatusHealthy, "db");
        assert!(!policy.matches(&Event::new(EventCode::StatusHealthy, "other")));
        assert!(!policy.matches(&Event::new(EventCode::StatusUnhealthy, "db")));
        assert!(policy.matches(&trigger));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert!(!policy.matches(&trigger), "a `once` trigger fires once");
        assert_eq!(policy.on_exit(), Restart);
        policy.started();
        assert_eq!(policy.on_exit(), Restart);
        policy.started();
        assert_eq!(policy.on_exit(), Halt);
    }

    #[test]
    fn each_runs_per_trigger_and_coalesces_overlaps() {
        let mut policy = Policy::new(&job(
            When::on(EventCode::StatusChanged, "watch.db", Repeat::Each),
            Restarts::Never,
        ));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        // Three triggers while the run is going become one more run.
        assert_eq!(policy.on_trigger(), Wait);
        assert_eq!(policy.on_trigger(), Wait);
        assert_eq!(policy.on_trigger(), Wait);
        assert_eq!(policy.on_exit(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
        assert_eq!(policy.on_trigger(), Start);
    }

    #[test]
    fn each_with_restarts_shares_one_budget() {
        let mut policy = Policy::new(&job(
            When::on(EventCode::StatusChanged, "watch.db", Repeat::Each),
            Restarts::Times(1),
        ));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Restart);
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Wait, "the restart budget is spent");
    }

    #[test]
    fn a_trigger_while_a_restart_is_due_waits_for_it() {
        // The restart may wait out a crash-loop backoff; a trigger meanwhile must not start a
        // run beside it, but run once after the restarts.
        let mut policy = Policy::new(&job(
            When::on(EventCode::Signal, "SIGHUP", Repeat::Each),
            Restarts::Times(1),
        ));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Restart);
        assert_eq!(policy.on_trigger(), Wait, "the restart is due");
        assert_eq!(policy.on_trigger(), Wait);
        policy.started();
        assert_eq!(policy.on_exit(), Start, "the coalesced trigger");
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
        assert_eq!(policy.on_trigger(), Start);
    }

    #[test]
    fn interval_with_restarts_two_runs_three_times() {
        let mut policy = Policy::new(&job(
            When::Interval(Duration::from_millis(500)),
            Restarts::Times(2),
        ));
        assert_eq!(policy.on_trigger(), Start); // startup
        policy.started();
        assert_eq!(policy.on_exit(), Wait, "interval jobs ignore their exits");
        assert_eq!(policy.on_tick(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
        assert_eq!(policy.on_tick(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
        assert_eq!(policy.on_tick(), Halt);
    }

    #[test]
    fn interval_never_runs_once_and_halts_at_the_first_tick() {
        let mut policy = Policy::new(&job(
            When::Interval(Duration::from_secs(1)),
            Restarts::Never,
        ));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
        assert_eq!(policy.on_tick(), Halt);
    }

    #[test]
    fn a_tick_during_a_run_runs_once_more_afterwards() {
        let mut policy = Policy::new(&job(
            When::Interval(Duration::from_secs(1)),
            Restarts::Unlimited,
        ));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert_eq!(policy.on_tick(), Wait);
        assert_eq!(policy.on_tick(), Wait);
        assert_eq!(policy.on_exit(), Start);
        policy.started();
        assert_eq!(policy.on_exit(), Wait);
    }

    #[test]
    fn ticks_during_a_long_run_cost_one_restart() {
        // Runs that outlast the interval: restarts 2 still gives three runs.
        let mut policy = Policy::new(&job(
            When::Interval(Duration::from_millis(100)),
            Restarts::Times(2),
        ));
        assert_eq!(policy.on_trigger(), Start);
        policy.started();
        assert_eq!(policy.on_tick(), Wait);
        assert_eq!(policy.on_tick(), Wait);
        assert_eq!(policy.on_exit(), Start, "second run");
        policy.started();
        assert_eq!(policy.on_tick(), Wait);
        assert_eq!(policy.on_exit(), Start, "third run");
        policy.started();
        assert_eq!(
            policy.on_tick(),
            Halt,
            "the budget is spent: the still-running third run stops"
        );
    }

    #[test]
    fn shutdown_halts_ordinary_jobs_but_stop_hooks_wait_for_their_event() {
        let mut ordinary = Policy::new(&job(When::Startup, Restarts::Unlimited));
        assert_eq!(ordinary.on_quit(true), Halt);

        let mut pre_stop = Policy::new(&job(
            When::on(EventCode::Stopping, "app", Repeat::Once),
            Restarts::Never,
        ));
        assert_eq!(pre_stop.on_quit(true), Wait);
        assert!(pre_stop.matches(&Event::new(EventCode::Stopping, "app")));
        assert_eq!(pre_stop.on_trigger(), Start);
        pre_stop.started();
        assert_eq!(pre_stop.on_exit(), Halt);

        // An `each` post-stop hook runs once more after shutdown, then halts.
        let mut post_stop = Policy::new(&job(
            When::on(EventCode::Stopped, "app", Repeat::Each),
            Restarts::Unlimited,
        ));
        assert_eq!(post_stop.on_quit(true), Wait);
        assert_eq!(post_stop.on_trigger(), Start);
        post_stop.started();
        assert_eq!(post_stop.on_exit(), Halt, "shutdown spent the restarts");

        // A stop hook without exec has nothing to wait for.
        let mut no_exec = Policy::new(&job(
            When::on(EventCode::Stopping, "app", Repeat::Once),
            Restarts::Never,
        ));
        assert_eq!(no_exec.on_quit(false), Halt);
    }

    #[test]
    fn a_stop_hook_told_to_quit_during_its_run_finishes_it() {
        let mut pre_stop = Policy::new(&job(
            When::on(EventCode::Stopping, "app", Repeat::Once),
            Restarts::Never,
        ));
        assert_eq!(pre_stop.on_trigger(), Start);
        pre_stop.started();
        assert_eq!(pre_stop.on_quit(true), Wait, "the run is not killed");
        assert_eq!(pre_stop.on_exit(), Halt);
    }

    #[test]
    fn a_job_whose_source_stopped_halts() {
        let mut idle = Policy::new(&job(
            When::on(EventCode::ExitSuccess, "setup", Repeat::Once),
            Restarts::Never,
        ));
        assert_eq!(idle.on_source_stopped("other"), Wait);
        assert_eq!(idle.on_source_stopped("setup"), Halt);

        let mut running = Policy::new(&job(
            When::on(EventCode::StatusChanged, "watch.x", Repeat::Each),
            Restarts::Times(1),
        ));
        assert_eq!(running.on_trigger(), Start);
        running.started();
        assert_eq!(running.on_source_stopped("watch.x"), Wait);
        assert_eq!(
            running.on_exit(),
            Restart,
            "the current run keeps its restarts"
        );
        running.started();
        assert_eq!(running.on_exit(), Halt);
    }

    #[test]
    fn a_trigger_queued_before_the_source_stopped_still_runs() {
        // The source fails twice in a row (`restarts: 1`) while the hook's first run is going,
        // then stops: ContainerPilot ran the hook twice.
        let mut hook = Policy::new(&job(
            When::on(EventCode::ExitFailed, "src", Repeat::Each),
            Restarts::Never,
        ));
        assert_eq!(hook.on_trigger(), Start);
        hook.started();
        assert_eq!(hook.on_trigger(), Wait, "queued behind the first run");
        assert_eq!(hook.on_source_stopped("src"), Wait);
        assert!(
            !hook.matches(&Event::new(EventCode::ExitFailed, "src")),
            "nothing more from a stopped source"
        );
        assert_eq!(hook.on_exit(), Start, "the queued run");
        hook.started();
        assert_eq!(hook.on_exit(), Halt);

        // With restarts, the queued run comes after the current run's restarts, and gets none.
        let mut hook = Policy::new(&job(
            When::on(EventCode::ExitFailed, "src", Repeat::Each),
            Restarts::Times(1),
        ));
        assert_eq!(hook.on_trigger(), Start);
        hook.started();
        assert_eq!(hook.on_trigger(), Wait);
        assert_eq!(hook.on_source_stopped("src"), Wait);
        assert_eq!(hook.on_exit(), Restart);
        hook.started();
        assert_eq!(hook.on_exit(), Start, "the queued run");
        hook.started();
        assert_eq!(hook.on_exit(), Halt);
    }
}
