//! The event bus: every subscriber receives every event, and all of them in the same order.
//!
//! Publishing sends a copy into each subscriber's own unbounded queue while holding the bus lock,
//! so the order is one global order. The queues are unbounded because a publisher must never wait
//! for a subscriber (ContainerPilot's 1000-slot queues blocked every publisher when one job fell
//! behind), and an event must never be dropped; subscribers are pilot's own tasks, which never
//! wait on the network, so the queues stay short.
//!
//! Subscribers outside pilot (clients of `GET /v3/events`) get a `Tap` instead: a bounded queue
//! of time-stamped events. A tap that falls `capacity` events behind is dropped, so that a slow
//! or stalled client never slows the bus and never makes its memory grow.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use super::Event;

/// Something told about every event as it is published (the `containerpilot_events` metric).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// A cheap, cloneable handle to the bus.
#[derive(Clone, Default)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    subscribers: Vec<mpsc::UnboundedSender<Event>>,
    taps: Vec<TapSender>,
    observers: Vec<Observer>,
}

/// The receiving end of one subscriber. Dropping it unsubscribes.
pub type Subscription = mpsc::UnboundedReceiver<Event>;

/// An event with the time it was published.
pub type Stamped = (SystemTime, Event);

/// The receiving end of a bounded subscriber. Dropping it unsubscribes.
pub struct Tap {
    pub events: mpsc::Receiver<Stamped>,
    /// Resolves once the bus has let go of the tap: `Ok` when it closed it (pilot is stopping;
    /// `events` ends after what it holds), an error when the tap fell too far behind (or the
    /// bus is gone).
    pub dropped: oneshot::Receiver<()>,
}

struct TapSender {
    events: mpsc::Sender<Stamped>,
    dropped: oneshot::Sender<()>,
}

impl Bus {
    pub fn new() -> Bus {
        Bus::default()
    }

    /// A new subscriber: it receives every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().subscribers.push(tx);
        rx
    }

    /// A bounded subscriber: it receives every event published from now on, until it is
    /// `capacity` events behind.
    pub fn tap(&self, capacity: usize) -> Tap {
        let (events, rx) = mpsc::channel(capacity.max(1));
        let (dropped_tx, dropped) = oneshot::channel();
        self.lock().taps.push(TapSender {
            events,
            dropped: dropped_tx,
        });
        Tap {
            events: rx,
            dropped,
        }
    }

    /// Lets go of every tap, telling each that it was closed rather than dropped: its
    /// subscriber gets what it holds, then the end. pilot does this last, as it exits.
    pub fn close_taps(&self) {
        for tap in std::mem::take(&mut self.lock().taps) {
            let _ = tap.dropped.send(());
        }
    }

    /// Calls `observer` for every event published from now on.
    pub fn observe(&self, observer: Observer) {
        self.lock().observers.push(observer);
    }

    /// Sends `event` to every subscriber. Never waits.
    pub fn publish(&self, event: Event) {
        tracing::debug!("event: {event}");
        let mut inner = self.lock();
        for observer in &inner.observers {
            observer(&event);
        }
        // A closed queue belongs to a subscriber that has gone; forget it.
        inner
            .subscribers
            .retain(|tx| tx.send(event.clone()).is_ok());
        if !inner.taps.is_empty() {
            let now = SystemTime::now();
            inner
                .taps
                .retain(|tap| match tap.events.try_send((now, event.clone())) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(
                            "events: a subscriber fell {} events behind and was dropped",
                            tap.events.max_capacity()
                        );
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventCode;

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_the_same_order() {
        let bus = Bus::new();
        let mut subscribers: Vec<Subscription> = (0..3).map(|_| bus.subscribe()).collect();
        let publishers: Vec<_> = (0..4)
            .map(|p| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        bus.publish(Event::new(EventCode::Metric, format!("{p}-{i}")));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for p in publishers {
            p.await.unwrap();
        }
        let mut seen: Vec<Vec<Event>> = Vec::new();
        for rx in &mut subscribers {
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            seen.push(events);
        }
        assert_eq!(seen[0].len(), 200);
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[2]);
    }

    #[tokio::test]
    async fn a_subscriber_that_went_away_is_forgotten() {
        let bus = Bus::new();
        let gone = bus.subscribe();
        let mut kept = bus.subscribe();
        drop(gone);
        bus.publish(Event::new(EventCode::Startup, "global"));
        assert_eq!(bus.lock().subscribers.len(), 1);
        assert_eq!(kept.recv().await.unwrap().code, EventCode::Startup);
    }

    #[tokio::test]
    async fn a_tap_that_falls_behind_is_dropped_and_the_others_go_on() {
        let bus = Bus::new();
        let mut slow = bus.tap(2);
        let mut reader = bus.tap(2);
        let mut own = bus.subscribe();
        for i in 0..3 {
            bus.publish(Event::new(EventCode::Metric, format!("m|{i}")));
            let (_, event) = reader.events.recv().await.unwrap();
            assert_eq!(&*event.source, format!("m|{i}"));
        }
        // The third event found the slow tap full: it is gone, with what it had queued.
        assert_eq!(
            slow.dropped.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
        assert_eq!(bus.lock().taps.len(), 1);
        assert_eq!(slow.events.recv().await.unwrap().1.source.as_ref(), "m|0");
        assert_eq!(slow.events.recv().await.unwrap().1.source.as_ref(), "m|1");
        assert!(slow.events.recv().await.is_none());
        // pilot's own subscribers lose nothing.
        for i in 0..3 {
            assert_eq!(&*own.recv().await.unwrap().source, format!("m|{i}"));
        }
        // A tap still kept has not been told it was dropped.
        assert_eq!(
            reader.dropped.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        // Closing tells it so, and it ends after what it holds.
        bus.publish(Event::new(EventCode::Metric, "m|3"));
        bus.close_taps();
        assert_eq!(reader.dropped.try_recv(), Ok(()));
        assert_eq!(reader.events.recv().await.unwrap().1.source.as_ref(), "m|3");
        assert!(reader.events.recv().await.is_none());
    }

    #[tokio::test]
    async fn observers_see_each_event_once() {
        let bus = Bus::new();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        bus.observe(Arc::new(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let _a = bus.subscribe();
        let _b = bus.subscribe();
        bus.publish(Event::new(EventCode::Startup, "global"));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
