//! The client side of the control socket: one HTTP/1.1 request per connection, as the
//! subcommands need.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::errors::describe_io_error;

/// The largest answer the client reads (a status report of many jobs and watches fits).
const MAX_ANSWER: usize = 4 << 20;

/// Why a request got no answer. An answer with an error status is not an error here.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach pilot's control socket {}: {}: is pilot running, with this control.socket?", path.display(), describe_io_error(error))]
    Connect {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("control socket {}: {error}", path.display())]
    Http { path: PathBuf, error: String },
    #[error("control socket {}: no answer within {}s", path.display(), timeout.as_secs_f64())]
    Timeout { path: PathBuf, timeout: Duration },
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    /// The server's message, without its line feed, or the status when it sent none.
    pub fn message(&self) -> String {
        let text = self.body.trim();
        if text.is_empty() {
            format!("control socket answered {}", self.status)
        } else {
            text.to_string()
        }
    }
}

/// A client of the control socket at one path.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request (with a JSON body when there is one) and reads the whole answer, all
    /// within `timeout`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<String>,
        timeout: Duration,
    ) -> Result<Answer, ClientError> {
        match tokio::time::timeout(timeout, self.exchange(method, path, json)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                path: self.socket.clone(),
                timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> Result<Answer, ClientError> {
        let (response, driver) = self.open(method, path, json).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| self.http_error(format!("cannot read the answer: {e}")))?
            .to_bytes();
        driver.abort();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// `GET path` of a streaming endpoint: each chunk of a successful answer goes to `out` as
    /// it arrives, until the server ends the stream. An error status is returned as an answer.
    pub async fn stream(
        &self,
        path: &str,
        out: &mut impl std::io::Write,
    ) -> Result<Answer, ClientError> {
        let (response, driver) = self.open(Method::GET, path, None).await?;
        let status = response.status();
        if !status.is_success() {
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            driver.abort();
            return Ok(Answer {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.http_error(format!("stream ended: {e}")))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .and_then(|()| out.flush())
                    .map_err(|e| self.http_error(format!("cannot write: {e}")))?;
            }
        }
        driver.abort();
        Ok(Answer {
            status,
            body: String::new(),
        })
    }

    fn http_error(&self, error: String) -> ClientError {
        ClientError::Http {
            path: self.socket.clone(),
            error,
        }
    }

    /// Connects, sends the request and returns the answer's head with its unread body, and the
    /// task driving the connection.
    async fn open(
        &self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> Result<
        (
            hyper::Response<hyper::body::Incoming>,
            tokio::task::JoinHandle<hyper::Result<()>>,
        ),
        ClientError,
    > {
        let http_error = |error: String| self.http_error(error);
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|error| ClientError::Connect {
                path: self.socket.clone(),
                error,
            })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| http_error(e.to_string()))?;
        // The connection is driven beside the request; it ends when the answer is read.
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            // ContainerPilot's client used the host `control`.
            .header(HOST, "control");
        if json.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| http_error(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http_error(e.to_string()))?;
        Ok((response, driver))
    }
}
