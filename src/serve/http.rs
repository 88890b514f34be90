//! The HTTP/1.1 plumbing shared by the control socket and the telemetry port: an accept loop
//! with a cap on concurrent connections, a task per connection with hyper's header timeout and
//! buffer limit, bounded body reads, and one-line plain-text answers.
//!
//! Each defence answers one kind of client: one that never finishes its headers is dropped at
//! `header_timeout`; one that never finishes its body gets a 408 at `body_timeout`; a body over
//! `max_body` is a 413 as soon as its length is known (before reading it, when it is declared);
//! past `max_connections`, the oldest connection that is waiting for its client (for its request
//! head or its body), if it was accepted more than `idle_grace` ago, is closed to make room for
//! the new one; otherwise the new connection gets a 503 written without waiting and is closed.
//! So neither tasks nor memory grow with the number of clients, and clients that connect and
//! send nothing, or stall in their headers or body, cannot lock out one with a request.
//! Keep-alive is off: every response closes its connection.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The limits of one server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more are refused with a 503.
    pub max_connections: usize,
    /// Time for a client to send its request line and headers.
    pub header_timeout: Duration,
    /// A connection accepted this long ago that is still waiting for its client (its request
    /// head or body) gives way to a new connection when every slot is taken.
    pub idle_grace: Duration,
    /// The largest request head (request line and headers); larger is hyper's 431.
    pub max_header_bytes: usize,
    /// Time for a client to send its body, once its headers are in.
    pub body_timeout: Duration,
    /// The largest request body; larger is a 413.
    pub max_body_bytes: usize,
    /// How long a request waits for the daemon to answer it (status, maintenance).
    pub daemon_timeout: Duration,
    /// How long `POST /v3/reload` waits for the new config to be running.
    pub reload_timeout: Duration,
    /// How long a stream (`GET /v3/events`) stays silent before it sends an empty line: writing
    /// is how a client that left is noticed, and its connection freed.
    pub stream_keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            idle_grace: Duration::from_secs(1),
            max_header_bytes: 16 * 1024,
            body_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            daemon_timeout: Duration::from_secs(10),
            reload_timeout: Duration::from_secs(120),
            stream_keep_alive: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The longest a connection can legitimately last; a last resort against a connection that
    /// somehow outlives every other timeout.
    fn connection_deadline(&self) -> Duration {
        self.header_timeout
            + self.body_timeout
            + self.daemon_timeout.max(self.reload_timeout)
            + Duration::from_secs(5)
    }
}

/// A response body: complete in memory, or a stream of chunks (`GET /v3/events`) that ends
/// when its sender is dropped.
pub enum Body {
    Full(Full<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl<T: Into<Bytes>> From<T> for Body {
    fn from(bytes: T) -> Body {
        Body::Full(Full::new(bytes.into()))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(full) => Pin::new(full).poll_frame(cx),
            Body::Stream(chunks) => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(full) => full.is_end_stream(),
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(full) => full.size_hint(),
            Body::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

/// Put into a streaming response's extensions. A streaming connection is exempt from the
/// connection deadline. When the receiver resolves with an error (its subscriber fell too far
/// behind), the connection is closed at once, whatever is still to be written; when it resolves
/// with `Ok` (pilot is stopping), the stream is left to finish within `body_timeout`.
#[derive(Clone)]
pub struct Streaming(Arc<Mutex<Option<oneshot::Receiver<()>>>>);

impl Streaming {
    pub fn new(close: oneshot::Receiver<()>) -> Streaming {
        Streaming(Arc::new(Mutex::new(Some(close))))
    }

    fn take(&self) -> Option<oneshot::Receiver<()>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// What answers one request.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// A listening socket of either kind.
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Writes `bytes` if the socket can take them at once, never waiting.
    fn try_write(stream: &Self::Stream, bytes: &[u8]);
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
    fn try_write(stream: &Self::Stream, bytes: &[u8]) {
        let _ = stream.try_write(bytes);
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
    fn try_write(stream: &Self::Stream, bytes: &[u8]) {
        let _ = stream.try_write(bytes);
    }
}

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 21\r\n\
    Connection: close\r\n\r\n\
    too many connections\n";

/// The connections being served, oldest first.
#[derive(Default)]
struct Slots {
    next: u64,
    open: BTreeMap<u64, Slot>,
}

struct Slot {
    accepted: Instant,
    /// The handler is answering the request (and not waiting for its body).
    answering: Arc<AtomicBool>,
    /// Dropping it closes the connection.
    _close: oneshot::Sender<()>,
}

impl Slots {
    /// Takes a slot for a new connection. When every slot is taken, the oldest connection that
    /// is not being answered and was accepted at least `grace` ago is closed to make room;
    /// `None` when there is none.
    fn take(
        &mut self,
        max: usize,
        grace: Duration,
    ) -> Option<(u64, Arc<AtomicBool>, oneshot::Receiver<()>)> {
        if self.open.len() >= max {
            let now = Instant::now();
            let idle = self.open.iter().find_map(|(id, slot)| {
                (!slot.answering.load(Ordering::Relaxed)
                    && now.duration_since(slot.accepted) >= grace)
                    .then_some(*id)
            })?;
            self.open.remove(&idle);
        }
        let id = self.next;
        self.next += 1;
        let answering = Arc::new(AtomicBool::new(false));
        let (close, closed) = oneshot::channel();
        self.open.insert(
            id,
            Slot {
                accepted: Instant::now(),
                answering: answering.clone(),
                _close: close,
            },
        );
        Some((id, answering, closed))
    }
}

fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections on `listener` until `stop` turns true, serving each with `handler`.
/// Connections in progress when it stops are given `STOP_GRACE` before it returns, and run to
/// their end.
pub async fn serve<L: Listener>(
    mut listener: L,
    limits: Limits,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            biased;
            // The value only ever turns true; a dropped sender means stop too.
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => stream,
                Err(err) => {
                    // EMFILE and the like: back off instead of spinning on the error.
                    tracing::warn!("{name}: cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let taken = lock(&slots).take(limits.max_connections, limits.idle_grace);
        let Some((id, answering, closed)) = taken else {
            L::try_write(&stream, REFUSED);
            continue;
        };
        let inner = handler.clone();
        let handler: Handler = Arc::new(move |mut req: Request<Incoming>| {
            answering.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(Answering(answering.clone()));
            inner(req)
        });
        let limits = limits.clone();
        let slots = slots.clone();
        connections.spawn(async move {
            tokio::select! {
                () = serve_connection(stream, &limits, handler, name) => {}
                // The sender is dropped when the slot is given to a newer connection.
                _ = closed => tracing::debug!(
                    "{name}: closed a connection still waiting for its client after {:?}, to serve a new one",
                    limits.idle_grace
                ),
            }
            lock(&slots).open.remove(&id);
        });
    }
    // Give what is in progress (an event stream's last events, above all) a moment to finish;
    // whatever is still going after that goes on by itself.
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.detach_all();
}

/// How long a server that stops waits for the connections in progress.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Serves one connection to its end, within the limits.
pub async fn serve_connection<I>(io: I, limits: &Limits, handler: Handler, name: &str)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(false);
    // Keep-alive is off: a connection answers one request, so at most one stream.
    let (streaming_tx, mut streaming_rx) = mpsc::unbounded_channel();
    let service = hyper::service::service_fn(move |req| {
        let answer = handler(req);
        let streaming_tx = streaming_tx.clone();
        async move {
            let mut response = answer.await;
            if let Some(close) = response
                .extensions_mut()
                .remove::<Streaming>()
                .and_then(|s| s.take())
            {
                let _ = streaming_tx.send(close);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let deadline = limits.connection_deadline();
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let expired = tokio::time::sleep(deadline);
    tokio::pin!(expired);
    let mut streaming: Option<oneshot::Receiver<()>> = None;
    let mut ended_stream = false;
    loop {
        tokio::select! {
            ended = &mut connection => {
                // Clients that hang up, time out or send garbage: nothing to do about them.
                if let Err(err) = ended {
                    tracing::debug!("{name}: connection ended: {err}");
                }
                return;
            }
            Some(stream) = streaming_rx.recv(), if streaming.is_none() && !ended_stream => {
                streaming = Some(stream);
            }
            () = &mut expired, if streaming.is_none() => {
                tracing::debug!("{name}: connection dropped after {deadline:?}");
                return;
            }
            closed = async { streaming.as_mut().expect("guarded").await }, if streaming.is_some() => {
                if closed.is_err() {
                    tracing::debug!("{name}: closed a stream whose client fell behind");
                    return;
                }
                streaming = None;
                ended_stream = true;
                expired.as_mut().reset(Instant::now() + limits.body_timeout);
            }
        }
    }
}

/// The flag of a request's connection that says it is being answered; cleared while the body
/// is read, when the connection waits for its client again.
#[derive(Clone)]
struct Answering(Arc<AtomicBool>);

/// A one-line plain-text answer; the line feed is added.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let message: String = message.into();
    // One line, whatever the message holds.
    lines(status, message.trim_end().replace('\n', "; "))
}

/// A plain-text answer of one or more lines (a refused reload lists the config's problems one
/// per line, as `-validate` does); the last line feed is added.
pub fn lines(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut message: String = message.into().trim_end().to_string();
    message.push('\n');
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON answer, with a final line feed as Go's encoder writes it.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {err}"),
        ),
    }
}

/// The 405 for `method` on `path`, naming the allowed one.
pub fn method_not_allowed(method: &hyper::Method, path: &str, allowed: &str) -> Response<Body> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed for {path}: use {allowed}"),
    );
    if let Ok(value) = HeaderValue::from_str(allowed) {
        response.headers_mut().insert(hyper::header::ALLOW, value);
    }
    response
}

/// Reads the whole body of `req` within the limits; the error is the answer to send.
pub async fn read_body(req: Request<Incoming>, limits: &Limits) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body too large: the limit is {} bytes",
                limits.max_body_bytes
            ),
        )
    };
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large());
    }
    let answering = req.extensions().get::<Answering>().cloned();
    let body = Limited::new(req.into_body(), limits.max_body_bytes);
    if let Some(Answering(flag)) = &answering {
        flag.store(false, Ordering::Relaxed);
    }
    let collected = tokio::time::timeout(limits.body_timeout, body.collect()).await;
    if let Some(Answering(flag)) = &answering {
        flag.store(true, Ordering::Relaxed);
    }
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(err)) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {err}"),
        )),
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {}s",
                limits.body_timeout.as_secs_f64()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_server_makes_room_by_closing_the_oldest_idle_connection_only() {
        let grace = Duration::from_secs(1);
        let mut slots = Slots::default();
        let (first, first_answering, mut first_closed) = slots.take(2, grace).unwrap();
        let (_, second_answering, mut second_closed) = slots.take(2, grace).unwrap();
        // Both are within their grace: a third connection is refused.
        assert!(slots.take(2, grace).is_none());
        tokio::time::advance(grace).await;
        // The first is answering a request: it is never closed for a newcomer.
        first_answering.store(true, Ordering::Relaxed);
        let (third, _, _) = slots.take(2, grace).expect("the idle second one gives way");
        assert!(second_closed.try_recv().is_err(), "the second was closed");
        assert!(!second_answering.load(Ordering::Relaxed));
        assert_eq!(
            first_closed.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        assert_eq!(
            slots.open.keys().copied().collect::<Vec<_>>(),
            [first, third]
        );
        // The third is new, the first is answering: nothing gives way.
        assert!(slots.take(2, grace).is_none());
    }
}
