//! A minimal HTTP/1.1 client for the tests: one connection per request over TCP, a unix socket or
//! TLS, so every request is independent and nothing is pooled behind the test's back.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Where to send requests.
#[derive(Clone)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn index(&self) -> u64 {
        self.header("x-consul-index")
            .expect("X-Consul-Index")
            .parse()
            .expect("numeric index")
    }
}

async fn exchange<S>(io: S, req: Request<Full<Bytes>>) -> std::io::Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// Sends one request; `path` includes the query.
pub async fn send(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> std::io::Result<Reply> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    match target {
        Target::Tcp(a) => exchange(tokio::net::TcpStream::connect(a).await?, req).await,
        Target::Unix(p) => exchange(tokio::net::UnixStream::connect(p).await?, req).await,
        Target::Tls(a, cfg) => {
            let tcp = tokio::net::TcpStream::connect(a).await?;
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await?;
            exchange(tls, req).await
        }
    }
}

pub async fn get(target: &Target, path: &str) -> Reply {
    send(target, "GET", path, &[], None).await.expect("request")
}

pub async fn put(target: &Target, path: &str, body: &str) -> Reply {
    let body = if body.is_empty() {
        None
    } else {
        Some(body.as_bytes().to_vec())
    };
    send(target, "PUT", path, &[], body).await.expect("request")
}

/// A unique temporary path for a unix socket.
pub fn socket_path(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::env::temp_dir().join(format!(
        "consul-double-{tag}-{}-{n}.sock",
        std::process::id()
    ))
}
