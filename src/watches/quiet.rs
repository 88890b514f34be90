//! Quiet periods (a watch's `wait: { min, max }`), as consul-template means them: after a
//! change, a watch's events wait until `min` passes with no further change, and at most `max`
//! after the first change. Ten instances scaled up at once then give one `changed`, not ten.
//!
//! What goes out at the end of a period: `changed` if anything changed during it, then
//! `healthy` or `unhealthy` only if the watch's health at the end differs from the health last
//! published (a key deleted and created again within one period is a change, and no
//! transition). Answers that change nothing (spurious wake-ups) neither start nor extend a
//! period.

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::QuietPeriod;
use crate::events::EventCode;

/// The events of a watch held back by its quiet period.
#[derive(Debug)]
pub struct Quiet {
    period: QuietPeriod,
    pending: Option<Pending>,
    /// The health last published (`None` before the first).
    published_health: Option<bool>,
}

#[derive(Debug)]
struct Pending {
    first: Instant,
    last: Instant,
    changed: bool,
    /// The health the period ends with, when an event in it said.
    health: Option<bool>,
}

impl Quiet {
    pub fn new(period: QuietPeriod) -> Quiet {
        Quiet {
            period,
            pending: None,
            published_health: None,
        }
    }

    /// Notes the events of one answer, received at `now`.
    pub fn note(&mut self, events: &[EventCode], now: Instant) {
        if events.is_empty() {
            return;
        }
        let pending = self.pending.get_or_insert(Pending {
            first: now,
            last: now,
            changed: false,
            health: None,
        });
        pending.last = now;
        for code in events {
            match code {
                EventCode::StatusChanged => pending.changed = true,
                EventCode::StatusHealthy => pending.health = Some(true),
                EventCode::StatusUnhealthy => pending.health = Some(false),
                _ => {}
            }
        }
    }

    /// When the held events go out: `min` after the last change, or `max` after the first,
    /// whichever comes first; `None` when nothing is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|p| (p.last + self.period.min).min(p.first + self.period.max))
    }

    /// The events to publish at the deadline; the period ends.
    pub fn take(&mut self) -> Vec<EventCode> {
        let Some(pending) = self.pending.take() else {
            return Vec::new();
        };
        let mut events = Vec::new();
        if pending.changed {
            events.push(EventCode::StatusChanged);
        }
        if let Some(health) = pending.health
            && self.published_health != Some(health)
        {
            self.published_health = Some(health);
            events.push(if health {
                EventCode::StatusHealthy
            } else {
                EventCode::StatusUnhealthy
            });
        }
        events
    }
}

/// Receives a watch's events from its queries and publishes them through `publish` at the end
/// of each quiet period. Returns when the sender is gone.
pub async fn run(
    period: QuietPeriod,
    mut answers: mpsc::UnboundedReceiver<Vec<EventCode>>,
    publish: impl Fn(EventCode),
) {
    let mut quiet = Quiet::new(period);
    loop {
        let deadline = quiet.deadline();
        let due = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            events = answers.recv() => match events {
                Some(events) => quiet.note(&events, Instant::now()),
                None => return,
            },
            () = due => {
                for code in quiet.take() {
                    publish(code);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Duration;

    use super::*;
    use EventCode::{
        StatusChanged as Changed, StatusHealthy as Healthy, StatusUnhealthy as Unhealthy,
    };

    const MS: Duration = Duration::from_millis(1);

    /// Runs the quiet loop with `period` over `answers` (each after a pause), with paused time,
    /// and returns what it published, with when (in ms from the start).
    async fn published(
        period: (u64, u64),
        answers: Vec<(u64, Vec<EventCode>)>,
    ) -> Vec<(u128, EventCode)> {
        let start = Instant::now();
        let out = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = out.clone();
        let period = QuietPeriod {
            min: MS * period.0 as u32,
            max: MS * period.1 as u32,
        };
        let task = tokio::spawn(run(period, rx, move |code| {
            sink.lock()
                .unwrap()
                .push((start.elapsed().as_millis(), code));
        }));
        for (pause, events) in answers {
            tokio::time::sleep(MS * pause as u32).await;
            tx.send(events).unwrap();
        }
        // Long enough for any held events to go out, then the watch ends.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(tx);
        task.await.unwrap();
        Arc::try_unwrap(out).unwrap().into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn changes_close_together_go_out_once_after_min() {
        let got = published(
            (300, 2000),
            vec![
                (0, vec![Changed, Healthy]),
                (100, vec![Changed]),
                (100, vec![Changed]),
            ],
        )
        .await;
        assert_eq!(got, [(500, Changed), (500, Healthy)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_changes_goes_out_every_max() {
        // A change every 100 ms for 5 s: min never passes quietly, so max decides.
        let answers = (0..50).map(|_| (100, vec![Changed])).collect();
        // (A max that is no multiple of the pace, so that no deadline falls on a change.)
        let got = published((300, 2050), answers).await;
        assert_eq!(
            got,
            [(2150, Changed), (4250, Changed), (5300, Changed)],
            "at first + max, twice, then min after the last change at 5000"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn health_goes_out_only_when_it_ends_different() {
        let got = published(
            (300, 2000),
            vec![
                (0, vec![Unhealthy]),
                (1000, vec![Changed, Healthy]),
                (100, vec![Changed, Unhealthy]),
                (1000, vec![Changed, Healthy]),
                (100, vec![Changed, Unhealthy]),
                (100, vec![Changed, Healthy]),
            ],
        )
        .await;
        assert_eq!(
            got,
            [
                (300, Unhealthy),
                // Healthy and back within one period: a change, no transition.
                (1400, Changed),
                (2600, Changed),
                (2600, Healthy),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn answers_without_events_neither_start_nor_extend_a_period() {
        let got = published(
            (300, 2000),
            vec![
                (0, vec![Changed]),
                (200, vec![]),
                (200, vec![]),
                (200, vec![]),
            ],
        )
        .await;
        assert_eq!(got, [(300, Changed)]);
    }
}
