//! The event bus: every subscriber receives every event, and all of them in the same order.
//!
//! Publishing sends a copy into each subscriber's own unbounded queue while holding the bus lock,
//! so the order is one global order. The queues are unbounded because a publisher must never wait
//! for a subscriber (ContainerPilot's 1000-slot queues blocked every publisher when one job fell
//! behind), and an event must never be dropped; subscribers are pilot's own tasks, which never
//! wait on the network, so the queues stay short.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

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
    observers: Vec<Observer>,
}

/// The receiving end of one subscriber. Dropping it unsubscribes.
pub type Subscription = mpsc::UnboundedReceiver<Event>;

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
