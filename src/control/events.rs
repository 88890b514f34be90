//! `GET /v3/events`: every event on the bus as it is published, one JSON object a line
//! (`{"time":"...","code":"ExitSuccess","source":"app"}`), until the client leaves.
//!
//! After `Limits::stream_keep_alive` without an event the stream sends an empty line: hyper
//! notices a client that left only when it writes, so that is what frees its connection and its
//! place (`pilot -events` skips those lines).
//!
//! Each client gets a bounded tap of the bus (`Bus::tap`). A client that stops reading fills its
//! socket, then its tap; at `TAP_CAPACITY` events behind the bus drops the tap and the connection
//! is closed (`http::Streaming`), so a stalled client never slows the bus, never grows memory
//! and never holds a connection for long once events flow. At most `MAX_STREAMS` clients stream
//! at once, so that streams cannot take every connection the control socket serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use crate::events::{Bus, Stamped};
use crate::serve::http::{self, Body, Streaming};

/// How many events a client may fall behind before it is dropped.
pub const TAP_CAPACITY: usize = 1024;
/// How many clients may stream at once.
pub const MAX_STREAMS: usize = 8;

/// The clients streaming now.
#[derive(Clone, Default)]
pub struct Streams(Arc<AtomicUsize>);

/// One stream's place among `MAX_STREAMS`; given back when dropped.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Streams {
    fn take(&self) -> Option<Place> {
        let taken = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Place(self.0.clone()))
    }
}

/// The streaming answer, or a 503 when `MAX_STREAMS` clients already stream.
pub fn stream(bus: &Bus, streams: &Streams, keep_alive: Duration) -> Response<Body> {
    let Some(place) = streams.take() else {
        return http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams: at most {MAX_STREAMS} at once"),
        );
    };
    let mut tap = bus.tap(TAP_CAPACITY);
    // A few lines between the tap and the socket; the tap is what absorbs a slow client.
    let (lines, body) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let _place = place;
        loop {
            let chunk = tokio::select! {
                stamped = tap.events.recv() => match stamped {
                    Some(stamped) => line(&stamped),
                    None => break,
                },
                () = tokio::time::sleep(keep_alive) => Bytes::from_static(b"\n"),
            };
            if lines.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(Body::Stream(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
        .extensions_mut()
        .insert(Streaming::new(tap.dropped));
    response
}

/// One event as a JSON line, its keys in the order `time`, `code`, `source`.
fn line((time, event): &Stamped) -> Bytes {
    Bytes::from(format!(
        "{{\"time\":\"{}\",\"code\":\"{}\",\"source\":{}}}\n",
        crate::logging::rfc3339_nano(*time),
        event.code.as_str(),
        serde_json::Value::from(&*event.source),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventCode};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn an_event_is_one_json_line() {
        let time = UNIX_EPOCH + Duration::from_millis(1_764_691_200_250);
        let line = line(&(time, Event::new(EventCode::ExitFailed, "a \"quoted\" job")));
        assert_eq!(
            line,
            "{\"time\":\"2025-12-02T16:00:00.25Z\",\"code\":\"ExitFailed\",\"source\":\"a \\\"quoted\\\" job\"}\n"
        );
    }

    #[test]
    fn no_more_than_max_streams_at_once() {
        let streams = Streams::default();
        let places: Vec<Place> = (0..MAX_STREAMS).map(|_| streams.take().unwrap()).collect();
        assert!(streams.take().is_none());
        drop(places);
        assert!(streams.take().is_some());
    }
}
