//! Listeners and connections: TCP, unix sockets and HTTPS, with the ability to go down (close
//! listeners and drop connections, so clients get "connection refused") and come back on the
//! same addresses, and to reset a connection instead of answering.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::config::Listen;
use crate::http::Surface;
use crate::shared::Shared;

/// An address the double actually listens on (port 0 resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundAddr {
    /// Plain HTTP over TCP.
    Tcp(SocketAddr),
    /// Plain HTTP over a unix socket.
    Unix(PathBuf),
    /// HTTPS.
    Tls(SocketAddr),
}

impl BoundAddr {
    /// The address in `CONSUL_HTTP_ADDR` form: `http://…`, `https://…` or `unix://…`.
    pub fn url(&self) -> String {
        match self {
            BoundAddr::Tcp(a) => format!("http://{a}"),
            BoundAddr::Tls(a) => format!("https://{a}"),
            BoundAddr::Unix(p) => format!("unix://{}", p.display()),
        }
    }
}

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// bind/listen failed.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// What was tried.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS material was unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

struct Slot {
    bound: BoundAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    surface: Surface,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    conns: HashMap<u64, (Surface, AbortHandle)>,
    next_conn: u64,
}

/// The listeners and live connections of one double.
#[derive(Default)]
pub(crate) struct Server {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        let addrs: Vec<&BoundAddr> = inner.slots.iter().map(|s| &s.bound).collect();
        f.debug_struct("Server")
            .field("addrs", &addrs)
            .field("connections", &inner.conns.len())
            .finish()
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

async fn bind(bound: &BoundAddr) -> Result<(Listener, BoundAddr), ServeError> {
    match bound {
        BoundAddr::Tcp(a) | BoundAddr::Tls(a) => {
            let l = TcpListener::bind(a)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: a.to_string(),
                    source,
                })?;
            let actual = l.local_addr().map_err(|source| ServeError::Bind {
                addr: a.to_string(),
                source,
            })?;
            let bound = if matches!(bound, BoundAddr::Tcp(_)) {
                BoundAddr::Tcp(actual)
            } else {
                BoundAddr::Tls(actual)
            };
            Ok((Listener::Tcp(l), bound))
        }
        BoundAddr::Unix(p) => {
            let _ = std::fs::remove_file(p);
            let l = UnixListener::bind(p).map_err(|source| ServeError::Bind {
                addr: p.display().to_string(),
                source,
            })?;
            Ok((Listener::Unix(l), bound.clone()))
        }
    }
}

/// A stream that can be made to reset (RST) instead of closing cleanly when dropped.
trait Resettable {
    fn arm_reset(&self);
}

impl Resettable for TcpStream {
    fn arm_reset(&self) {
        let _ = self.set_zero_linger();
    }
}

impl Resettable for UnixStream {
    fn arm_reset(&self) {}
}

struct ResetIo<S: Resettable> {
    inner: S,
    reset: Arc<AtomicBool>,
}

impl<S: Resettable> Drop for ResetIo<S> {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            self.inner.arm_reset();
        }
    }
}

impl<S: Resettable + AsyncRead + Unpin> AsyncRead for ResetIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Resettable + AsyncWrite + Unpin> AsyncWrite for ResetIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_io<I>(shared: Arc<Shared>, io: I, reset: Arc<AtomicBool>, surface: Surface)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let reset = reset.clone();
        async move { crate::http::serve(shared, req, reset, surface).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

impl Server {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a listener and starts accepting.
    pub(crate) async fn listen(
        shared: &Arc<Shared>,
        listen: &Listen,
        surface: Surface,
    ) -> Result<BoundAddr, ServeError> {
        let (wanted, tls) = match listen {
            Listen::Tcp(a) => (BoundAddr::Tcp(*a), None),
            Listen::Unix(p) => (BoundAddr::Unix(p.clone()), None),
            Listen::Tls(a, id) => (
                BoundAddr::Tls(*a),
                Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                    id,
                )?)),
            ),
        };
        let (listener, bound) = bind(&wanted).await?;
        let accept = Some(tokio::spawn(accept_loop(
            shared.clone(),
            listener,
            tls.clone(),
            surface,
        )));
        shared.server.lock().slots.push(Slot {
            bound: bound.clone(),
            tls,
            surface,
            accept,
        });
        Ok(bound)
    }

    /// Addresses of the Consul API listeners.
    pub(crate) fn api_addrs(&self) -> Vec<BoundAddr> {
        self.lock()
            .slots
            .iter()
            .filter(|s| s.surface == Surface::Api)
            .map(|s| s.bound.clone())
            .collect()
    }

    /// Addresses of the control listeners.
    pub(crate) fn control_addrs(&self) -> Vec<BoundAddr> {
        self.lock()
            .slots
            .iter()
            .filter(|s| s.surface == Surface::Control)
            .map(|s| s.bound.clone())
            .collect()
    }

    fn track(&self, surface: Surface, handle: AbortHandle) -> u64 {
        let mut inner = self.lock();
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner.conns.insert(id, (surface, handle));
        id
    }

    fn untrack(&self, id: u64) {
        self.lock().conns.remove(&id);
    }

    /// Stops accepting on the API listeners and drops their connections.
    pub(crate) async fn go_down(&self) {
        let accepts: Vec<JoinHandle<()>> = self
            .lock()
            .slots
            .iter_mut()
            .filter(|s| s.surface == Surface::Api)
            .filter_map(|s| s.accept.take())
            .collect();
        for a in accepts {
            a.abort();
            // Wait until the listener is really closed, so a connect right after is refused.
            let _ = a.await;
        }
        // Only now, with no accept loop left, are the connections dropped: one accepted just
        // before the listener closed is tracked by then, and would otherwise outlive the
        // "restart" (a blocking query on it would wait on the lost state).
        let conns: Vec<AbortHandle> = {
            let mut inner = self.lock();
            let ids: Vec<u64> = inner
                .conns
                .iter()
                .filter(|(_, (s, _))| *s == Surface::Api)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| inner.conns.remove(id))
                .map(|(_, h)| h)
                .collect()
        };
        for c in conns {
            c.abort();
        }
    }

    /// Re-opens every API listener that is down, on the same address.
    pub(crate) async fn come_up(shared: &Arc<Shared>) -> Result<(), ServeError> {
        let down: Vec<(usize, BoundAddr, Option<tokio_rustls::TlsAcceptor>)> = shared
            .server
            .lock()
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.surface == Surface::Api && s.accept.is_none())
            .map(|(i, s)| (i, s.bound.clone(), s.tls.clone()))
            .collect();
        for (i, bound, tls) in down {
            let (listener, _) = bind(&bound).await?;
            let task = tokio::spawn(accept_loop(shared.clone(), listener, tls, Surface::Api));
            shared.server.lock().slots[i].accept = Some(task);
        }
        Ok(())
    }

    /// Closes everything (the double is being dropped).
    pub(crate) fn shutdown(&self) {
        let mut inner = self.lock();
        for slot in &mut inner.slots {
            if let Some(a) = slot.accept.take() {
                a.abort();
            }
            if let BoundAddr::Unix(p) = &slot.bound {
                let _ = std::fs::remove_file(p);
            }
        }
        for (_, (_, h)) in inner.conns.drain() {
            h.abort();
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: Listener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    surface: Surface,
) {
    loop {
        let reset = Arc::new(AtomicBool::new(false));
        let shared2 = shared.clone();
        let task = match &listener {
            Listener::Tcp(l) => {
                let Ok((stream, _)) = l.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let io = ResetIo {
                    inner: stream,
                    reset: reset.clone(),
                };
                match tls.clone() {
                    None => tokio::spawn(serve_io(shared2, io, reset, surface)),
                    Some(acceptor) => tokio::spawn(async move {
                        if let Ok(tls_stream) = acceptor.accept(io).await {
                            serve_io(shared2, tls_stream, reset, surface).await;
                        }
                    }),
                }
            }
            Listener::Unix(l) => {
                let Ok((stream, _)) = l.accept().await else {
                    continue;
                };
                let io = ResetIo {
                    inner: stream,
                    reset: reset.clone(),
                };
                tokio::spawn(serve_io(shared2, io, reset, surface))
            }
        };
        let id = shared.server.track(surface, task.abort_handle());
        let shared3 = shared.clone();
        tokio::spawn(async move {
            let _ = task.await;
            shared3.server.untrack(id);
        });
    }
}
