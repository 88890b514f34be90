//! The Consul HTTP client: the few agent and health endpoints pilot uses, each with a timeout and
//! a typed error.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;

use super::buffer::AnswerBuffer;
use super::decode::{self, DecodeError, Instance, KvPair};
use super::transport::{self, Connector, TlsError};
use crate::config::{self, CheckStatus, Scheme, go_duration};

/// How long a write (register, deregister, TTL update) or a non-blocking read may take, from
/// connecting to the last byte of the answer. A local agent answers in milliseconds; this only
/// bounds a hung one.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Added to a blocking query's wait (itself plus Consul's jitter of up to wait/16) before the
/// client gives up on it.
pub const READ_MARGIN: Duration = Duration::from_secs(5);

/// The largest answer read (a health list of thousands of instances is a few MB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Where an answer's body goes: a fresh `Vec` for most requests, a watch's [`AnswerBuffer`]
/// for its queries.
trait Sink {
    fn clear(&mut self);
    fn reserve(&mut self, additional: usize) -> Result<(), String>;
    fn extend(&mut self, data: &[u8]) -> Result<(), String>;
    fn bytes(&self) -> &[u8];
}

impl Sink for Vec<u8> {
    fn clear(&mut self) {
        Vec::clear(self);
    }

    fn reserve(&mut self, additional: usize) -> Result<(), String> {
        Vec::reserve(self, additional);
        Ok(())
    }

    fn extend(&mut self, data: &[u8]) -> Result<(), String> {
        self.extend_from_slice(data);
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self
    }
}

impl Sink for AnswerBuffer {
    fn clear(&mut self) {
        AnswerBuffer::clear(self);
    }

    fn reserve(&mut self, additional: usize) -> Result<(), String> {
        AnswerBuffer::reserve(self, additional)
    }

    fn extend(&mut self, data: &[u8]) -> Result<(), String> {
        self.extend_from_slice(data)
    }

    fn bytes(&self) -> &[u8] {
        self.as_slice()
    }
}

/// How much of an error answer is kept in the error message.
const MAX_ERROR_BODY: usize = 512;

/// Why a Consul call failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    /// The consul settings cannot make a client (the address, the TLS files).
    #[error("invalid consul address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// No connection could be made (refused, unresolvable name, TLS handshake refused).
    #[error("{op}: cannot connect to consul at {target}: {reason}")]
    Connect {
        op: String,
        target: String,
        reason: String,
    },
    /// The agent did not answer in time.
    #[error("{op}: consul at {target} did not answer within {after:?}")]
    Timeout {
        op: String,
        target: String,
        after: Duration,
    },
    /// The connection broke during the exchange.
    #[error("{op}: connection to consul at {target} failed: {reason}")]
    Transport {
        op: String,
        target: String,
        reason: String,
    },
    /// The agent answered with an error status. `body` is its (plain-text) explanation.
    #[error("{op}: consul answered {status}: {body}")]
    Status {
        op: String,
        status: u16,
        body: String,
    },
    /// The answer could not be decoded.
    #[error("{op}: cannot decode consul's answer: {source}")]
    Decode {
        op: String,
        #[source]
        source: DecodeError,
    },
}

impl ConsulError {
    /// The agent does not know the check: 404 `Unknown check ID` (Consul 1.11.2 and later), or
    /// 500 `... does not have associated TTL` (earlier ones). Either way the agent lost the
    /// registration (it restarted without its state) and the service must be registered again.
    pub fn is_unknown_check(&self) -> bool {
        match self {
            ConsulError::Status {
                status: 404, body, ..
            } => body.contains("Unknown check ID"),
            ConsulError::Status {
                status: 500, body, ..
            } => body.contains("does not have associated TTL"),
            _ => false,
        }
    }

    /// Deregistering a service the agent does not know: 404 `Unknown service ID` on 1.11 and
    /// later (earlier agents answer 200). The service is gone, which is what was asked.
    pub fn is_unknown_service(&self) -> bool {
        matches!(self, ConsulError::Status { status: 404, body, .. } if body.contains("Unknown service"))
    }

    /// The token was refused (403: unknown token or missing permission).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, ConsulError::Status { status: 403, .. })
    }

    /// Trying again later may succeed without anyone changing anything: the agent was
    /// unreachable, slow, leaderless (500) or rate-limiting (429).
    pub fn is_retryable(&self) -> bool {
        match self {
            ConsulError::Connect { .. }
            | ConsulError::Timeout { .. }
            | ConsulError::Transport { .. } => true,
            ConsulError::Status { status, .. } => {
                (*status >= 500 || *status == 429) && !self.is_unknown_check()
            }
            _ => false,
        }
    }

    /// The agent answered (with an error): it is reachable.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            ConsulError::Status { .. } | ConsulError::Decode { .. }
        )
    }
}

/// The body of `PUT /v1/agent/service/register` as ContainerPilot sends it (reference section
/// 5.2), plus `Meta`. Empty tags and meta and a false `EnableTagOverride` are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRegistration {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub port: u16,
    pub address: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_tag_override: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    pub check: TtlCheck,
}

/// The TTL check embedded in a registration. Consul names it `service:<ID>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlCheck {
    /// `"<ttl>s"`.
    #[serde(rename = "TTL")]
    pub ttl: String,
    pub status: &'static str,
    pub notes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregister_critical_service_after: Option<String>,
}

impl ServiceRegistration {
    /// The registration of `service` with a TTL check of `ttl` starting at `status`.
    pub fn new(service: &config::Service, ttl: Duration, status: CheckStatus) -> Self {
        ServiceRegistration {
            id: service.id.clone(),
            name: service.name.clone(),
            tags: service.tags.clone(),
            port: service.port,
            address: service.address.to_string(),
            enable_tag_override: service.enable_tag_override,
            meta: service.meta.clone(),
            check: TtlCheck {
                ttl: if ttl.subsec_nanos() == 0 {
                    format!("{}s", ttl.as_secs())
                } else {
                    go_duration(ttl)
                },
                status: status.as_str(),
                notes: super::check_notes(&service.name),
                deregister_critical_service_after: service
                    .deregister_critical_service_after
                    .map(go_duration),
            },
        }
    }
}

/// A `GET /v1/health/service/<service>` query.
#[derive(Clone, Debug, Default)]
pub struct HealthQuery<'a> {
    pub service: &'a str,
    /// Only instances whose every check passes (`?passing`).
    pub passing: bool,
    pub tag: Option<&'a str>,
    pub dc: Option<&'a str>,
    /// Block until the result's index is past this one (0: answer at once).
    pub index: u64,
    /// How long the agent may block (Consul's default is 5 minutes, its cap 10).
    pub wait: Option<Duration>,
    /// Any server may answer (`?stale`); see [`Freshness`].
    pub stale: bool,
}

/// The answer to a [`HealthQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthAnswer {
    /// `X-Consul-Index`, or 0 when the agent sent none or garbage. Opaque: compare it, never
    /// compute with it.
    pub index: u64,
    pub instances: Vec<Instance>,
    pub freshness: Freshness,
}

/// How fresh a read is: `X-Consul-KnownLeader` and `X-Consul-LastContact`. The leader answers
/// `true` and 0; a follower answering a `?stale` read says when it last heard from the leader,
/// and `false` while the cluster has none. Missing headers read as a fresh answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub known_leader: bool,
    pub last_contact: Duration,
}

impl Freshness {
    fn of(headers: &hyper::HeaderMap) -> Freshness {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Freshness {
            known_leader: text("x-consul-knownleader").is_none_or(|v| v.trim() != "false"),
            last_contact: text("x-consul-lastcontact")
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_millis)
                .unwrap_or_default(),
        }
    }
}

/// A `GET /v1/kv/<key>` query: one key, or every key under a prefix (`?recurse`).
#[derive(Clone, Debug, Default)]
pub struct KvQuery<'a> {
    /// The key, or the prefix with `recurse`.
    pub key: &'a str,
    pub recurse: bool,
    pub dc: Option<&'a str>,
    /// Block until the result's index is past this one (0: answer at once).
    pub index: u64,
    /// How long the agent may block.
    pub wait: Option<Duration>,
    /// Any server may answer (`?stale`).
    pub stale: bool,
}

/// The answer to a [`KvQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvAnswer {
    /// `X-Consul-Index`, as in [`HealthAnswer`].
    pub index: u64,
    /// The pairs, sorted by key; none when the key (or every key under the prefix) is missing
    /// (Consul's 404).
    pub pairs: Vec<KvPair>,
    pub freshness: Freshness,
}

/// A Consul agent client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient<Connector, Full<Bytes>>,
    /// `http://host:port`, `https://host:port` (either with a path prefix, without a trailing
    /// slash), or `http://localhost` for a unix socket.
    base: String,
    /// The address, for messages.
    target: String,
    /// Marked sensitive, so that hyper never prints it either.
    token: Option<HeaderValue>,
    /// The token's text, to blank it out of anything the agent sends back.
    token_text: Option<config::Secret>,
    write_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .field("target", &self.inner.target)
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client for the agent `cfg` describes. Fails on an unusable address or TLS files; it
    /// does not contact the agent.
    pub fn new(cfg: &config::Consul) -> Result<Client, ConsulError> {
        let bad = |reason: &str| ConsulError::Address {
            address: cfg.address.clone(),
            reason: reason.to_string(),
        };
        let (connector, base) = match cfg.scheme {
            Scheme::Unix => {
                if cfg.address.is_empty() {
                    return Err(bad("empty socket path"));
                }
                (
                    Connector::unix(std::path::Path::new(&cfg.address)),
                    "http://localhost".to_string(),
                )
            }
            // A path after host:port is a prefix for every request (an agent behind a reverse
            // proxy), as in Consul's Go client; a trailing slash would double the one before v1.
            Scheme::Http => (
                Connector::tcp(None, None),
                format!("http://{}", cfg.address.trim_end_matches('/')),
            ),
            Scheme::Https => {
                let tls = transport::client_config(&cfg.tls)?;
                (
                    Connector::tcp(Some(Arc::new(tls)), cfg.tls.server_name.clone()),
                    format!("https://{}", cfg.address.trim_end_matches('/')),
                )
            }
        };
        match base.parse::<Uri>() {
            Ok(uri)
                if uri.host().is_some_and(|h| !h.is_empty())
                    && uri.query().is_none()
                    && !base.contains('#') => {}
            _ => return Err(bad("expected host:port or host:port/prefix")),
        }
        let token = match &cfg.token {
            Some(secret) if !secret.expose().is_empty() => {
                let mut value = HeaderValue::from_str(secret.expose())
                    .map_err(|_| bad("the token is not a valid header value"))?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // Go's agent closes idle connections after a while; reconnecting is cheap.
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            // A fixed read buffer, below musl's mmap threshold: hyper's adaptive one grows to
            // 400 KB on a watch's megabytes-long answer and is mapped, faulted in and unmapped
            // again on each of them (a tenth of the watch's CPU in a profile).
            .http1_read_buf_exact_size(64 * 1024)
            .build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                target: match cfg.scheme {
                    Scheme::Unix => format!("unix://{}", cfg.address),
                    _ => cfg.address.clone(),
                },
                token,
                token_text: cfg.token.clone().filter(|t| !t.expose().is_empty()),
                write_timeout: WRITE_TIMEOUT,
            }),
        })
    }

    /// The same client with another timeout for writes and non-blocking reads.
    pub fn with_write_timeout(&self, timeout: Duration) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                target: self.inner.target.clone(),
                token: self.inner.token.clone(),
                token_text: self.inner.token_text.clone(),
                write_timeout: timeout,
            }),
        }
    }

    /// The agent's address, as messages name it.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// `PUT /v1/agent/service/register`.
    pub async fn register_service(&self, reg: &ServiceRegistration) -> Result<(), ConsulError> {
        // Serialising these plain structs cannot fail.
        let body = serde_json::to_vec(reg).unwrap_or_default();
        self.write(Method::PUT, "/v1/agent/service/register".into(), Some(body))
            .await
    }

    /// `PUT /v1/agent/service/deregister/<id>`. Deregistering a service the agent does not
    /// know succeeds.
    pub async fn deregister_service(&self, id: &str) -> Result<(), ConsulError> {
        let path = format!("/v1/agent/service/deregister/{}", escape(id));
        match self.write(Method::PUT, path, None).await {
            Err(err) if err.is_unknown_service() => Ok(()),
            other => other,
        }
    }

    /// `PUT /v1/agent/check/update/<check_id>` with `{"Status", "Output"}`.
    pub async fn update_ttl(
        &self,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), ConsulError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Update<'a> {
            status: &'a str,
            output: &'a str,
        }
        let body = serde_json::to_vec(&Update {
            status: status.as_str(),
            output,
        })
        .unwrap_or_default();
        let path = format!("/v1/agent/check/update/{}", escape(check_id));
        self.write(Method::PUT, path, Some(body)).await
    }

    /// `GET /v1/health/service/<name>`, blocking when `query.index` is set. The timeout is the
    /// wait plus Consul's jitter (wait/16) plus [`READ_MARGIN`].
    pub async fn health_service(
        &self,
        query: &HealthQuery<'_>,
    ) -> Result<HealthAnswer, ConsulError> {
        self.health_service_with(query, &mut AnswerBuffer::new())
            .await
    }

    /// [`Client::health_service`], reading the answer into `buffer` (cleared first). A watch keeps
    /// one buffer for all its queries: an answer over many instances is megabytes, and a fresh
    /// allocation of that size costs more (mapping and faulting in its pages, then unmapping
    /// them) than decoding it.
    pub async fn health_service_with(
        &self,
        query: &HealthQuery<'_>,
        buffer: &mut AnswerBuffer,
    ) -> Result<HealthAnswer, ConsulError> {
        let mut path = format!("/v1/health/service/{}", escape(query.service));
        let mut params: Vec<String> = Vec::new();
        if query.passing {
            params.push("passing=1".into());
        }
        if let Some(tag) = query.tag {
            params.push(format!("tag={}", escape(tag)));
        }
        if let Some(dc) = query.dc {
            params.push(format!("dc={}", escape(dc)));
        }
        if query.stale {
            params.push("stale".into());
        }
        let timeout = blocking_params(query.index, query.wait, &mut params)
            .unwrap_or(self.inner.write_timeout);
        if !params.is_empty() {
            path.push('?');
            path.push_str(&params.join("&"));
        }
        let op = self.op(&Method::GET, &path);
        let headers = self
            .exchange_into(&op, Method::GET, &path, None, timeout, buffer)
            .await?;
        let instances = decode::decode_health_service(buffer.as_slice()).map_err(|source| {
            ConsulError::Decode {
                op: op.clone(),
                source,
            }
        })?;
        Ok(HealthAnswer {
            index: index_of(&headers),
            instances,
            freshness: Freshness::of(&headers),
        })
    }

    /// `GET /v1/kv/<key>[?recurse]`, blocking when `query.index` is set, reading the answer
    /// into `buffer` as [`Client::health_service_with`] does. A missing key is no error: Consul
    /// answers 404 with an index, and the answer has no pair.
    pub async fn kv_with(
        &self,
        query: &KvQuery<'_>,
        buffer: &mut AnswerBuffer,
    ) -> Result<KvAnswer, ConsulError> {
        // Consul keys are paths: their slashes stay as they are.
        let key: String = query
            .key
            .split('/')
            .map(escape)
            .collect::<Vec<_>>()
            .join("/");
        let mut path = format!("/v1/kv/{key}");
        let mut params: Vec<String> = Vec::new();
        if query.recurse {
            params.push("recurse".into());
        }
        if let Some(dc) = query.dc {
            params.push(format!("dc={}", escape(dc)));
        }
        if query.stale {
            params.push("stale".into());
        }
        let timeout = blocking_params(query.index, query.wait, &mut params)
            .unwrap_or(self.inner.write_timeout);
        if !params.is_empty() {
            path.push('?');
            path.push_str(&params.join("&"));
        }
        let op = self.op(&Method::GET, &path);
        let (status, headers) = self
            .exchange_status_into(&op, Method::GET, &path, None, timeout, buffer)
            .await?;
        let pairs = if status == StatusCode::NOT_FOUND {
            Vec::new()
        } else {
            decode::decode_kv(buffer.as_slice()).map_err(|source| ConsulError::Decode {
                op: op.clone(),
                source,
            })?
        };
        Ok(KvAnswer {
            index: index_of(&headers),
            pairs,
            freshness: Freshness::of(&headers),
        })
    }

    /// `GET /v1/status/leader`: a cheap probe that the agent answers. Returns the leader's
    /// address (empty when the cluster has none).
    pub async fn leader(&self) -> Result<String, ConsulError> {
        let path = "/v1/status/leader".to_string();
        let op = self.op(&Method::GET, &path);
        let timeout = self.inner.write_timeout;
        let (_, body) = self
            .exchange(&op, Method::GET, &path, None, timeout)
            .await?;
        decode::decode_leader(&body).map_err(|source| ConsulError::Decode { op, source })
    }

    fn op(&self, method: &Method, path: &str) -> String {
        format!("consul {method} {}", path.split('?').next().unwrap_or(path))
    }

    async fn write(
        &self,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<(), ConsulError> {
        let op = self.op(&method, &path);
        let timeout = self.inner.write_timeout;
        self.exchange(&op, method, &path, body, timeout).await?;
        Ok(())
    }

    /// One request and its whole answer, within `timeout`. A non-2xx answer is an error.
    async fn exchange(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(hyper::HeaderMap, Bytes), ConsulError> {
        let mut answer = Vec::new();
        let headers = self
            .exchange_into(op, method, path, body, timeout, &mut answer)
            .await?;
        Ok((headers, Bytes::from(answer)))
    }

    /// [`Client::exchange`], with the answer's body in `answer` (cleared first).
    async fn exchange_into(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        answer: &mut impl Sink,
    ) -> Result<hyper::HeaderMap, ConsulError> {
        let (_, headers) = self
            .exchange_status_into(op, method, path, body, timeout, answer)
            .await?;
        Ok(headers)
    }

    /// [`Client::exchange_into`], where a 404 is an answer too (a missing KV key).
    async fn exchange_status_into(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        answer: &mut impl Sink,
    ) -> Result<(StatusCode, hyper::HeaderMap), ConsulError> {
        answer.clear();
        let inner = &self.inner;
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{}", inner.base, path));
        if let Some(token) = &inner.token {
            request = request.header("X-Consul-Token", token.clone());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ConsulError::Transport {
                op: op.to_string(),
                target: inner.target.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let response = inner.http.request(request).await.map_err(|err| {
                let reason = self.redact(&crate::errors::innermost_cause(&err));
                if err.is_connect() {
                    ConsulError::Connect {
                        op: op.to_string(),
                        target: inner.target.clone(),
                        reason,
                    }
                } else {
                    ConsulError::Transport {
                        op: op.to_string(),
                        target: inner.target.clone(),
                        reason,
                    }
                }
            })?;
            let (parts, body) = response.into_parts();
            let transport = |reason: String| ConsulError::Transport {
                op: op.to_string(),
                target: inner.target.clone(),
                reason,
            };
            // Room for the whole answer at once when its length is known (no regrowing copies).
            if let Some(length) = hyper::body::Body::size_hint(&body).exact() {
                answer
                    .reserve(usize::try_from(length).unwrap_or(MAX_BODY).min(MAX_BODY))
                    .map_err(transport)?;
            }
            let mut body = Limited::new(body, MAX_BODY);
            // Each chunk is copied out and dropped at once, so that hyper can reuse its read
            // buffer rather than allocate a new one for the next chunk.
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|err| ConsulError::Transport {
                    op: op.to_string(),
                    target: inner.target.clone(),
                    reason: self.redact(&crate::errors::innermost_cause(&*err)),
                })?;
                if let Ok(data) = frame.into_data() {
                    answer.extend(&data).map_err(transport)?;
                }
            }
            Ok::<_, ConsulError>((parts.status, parts.headers))
        };
        let (status, headers) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ConsulError::Timeout {
                op: op.to_string(),
                target: inner.target.clone(),
                after: timeout,
            })??;
        // Only a KV read takes a 404 as an answer (a missing key); for every other call it is
        // an error (an unknown check or service).
        let missing_key = status == StatusCode::NOT_FOUND && path.starts_with("/v1/kv/");
        if !status.is_success() && !missing_key {
            return Err(ConsulError::Status {
                op: op.to_string(),
                status: status.as_u16(),
                body: self.error_body(status, answer.bytes()),
            });
        }
        Ok((status, headers))
    }

    /// The agent's explanation of an error, on one line, shortened, without the token.
    fn error_body(&self, status: StatusCode, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return status
                .canonical_reason()
                .unwrap_or("no explanation")
                .to_lowercase();
        }
        one_line(&self.redact(text))
    }

    /// `text` without the token; see `redact_token`.
    fn redact(&self, text: &str) -> String {
        redact_token(text, self.inner.token_text.as_ref().map(|t| t.expose()))
    }
}

/// Adds `index` and `wait` to a blocking query's parameters and returns its timeout: the wait
/// plus Consul's jitter (wait/16) plus [`READ_MARGIN`]. `None` for a query that does not block.
fn blocking_params(
    index: u64,
    wait: Option<Duration>,
    params: &mut Vec<String>,
) -> Option<Duration> {
    if index == 0 {
        return None;
    }
    params.push(format!("index={index}"));
    // Consul blocks 5 minutes when no wait is given.
    let wait = wait.unwrap_or(Duration::from_secs(300));
    params.push(format!("wait={}ms", wait.as_millis().max(1)));
    Some(wait + wait / 16 + READ_MARGIN)
}

/// `X-Consul-Index`, or 0 when the agent sent none or garbage.
fn index_of(headers: &hyper::HeaderMap) -> u64 {
    headers
        .get("x-consul-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `text` with the token, should the agent or a proxy ever echo it, blanked out. It runs on the
/// whole text, before any shortening: a token cut in two would no longer match and its first
/// part would stay.
fn redact_token(text: &str, token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() => text.replace(token, "<redacted>"),
        _ => text.to_string(),
    }
}

/// `text` on one line (control characters become blanks) and at most `MAX_ERROR_BODY` bytes,
/// cut on a character boundary.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > MAX_ERROR_BODY {
        let mut cut = MAX_ERROR_BODY;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment or a
/// query value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_ids_readable_and_slashes_out() {
        assert_eq!(
            escape("service:app-3f2a9c1e0b7d"),
            "service:app-3f2a9c1e0b7d"
        );
        assert_eq!(escape("a/b c"), "a%2Fb%20c");
        assert_eq!(escape("é"), "%C3%A9");
    }

    fn status(status: u16, body: &str) -> ConsulError {
        ConsulError::Status {
            op: "consul PUT /x".into(),
            status,
            body: body.into(),
        }
    }

    #[test]
    fn a_token_echoed_across_the_cut_is_redacted_whole() {
        let token = "0123456789abcdef-ghijklmnopqrstuvwy"; // 35 characters
        assert_eq!(token.len(), 35);
        let client = Client::new(&config::Consul {
            scheme: Scheme::Http,
            address: "127.0.0.1:8500".into(),
            token: Some(config::Secret::new(token)),
            tls: config::Tls::default(),
        })
        .unwrap();
        let body = format!("{}{token}", "x".repeat(500));
        let line = client.error_body(StatusCode::FORBIDDEN, body.as_bytes());
        assert!(!line.contains(&token[..4]), "token prefix leaked: {line}");
        assert!(line.starts_with(&"x".repeat(500)));
        assert!(line.len() <= MAX_ERROR_BODY + 3);
    }

    #[test]
    fn error_lines_are_cut_on_a_character_boundary() {
        let line = one_line(&format!("{}é\nend", "x".repeat(MAX_ERROR_BODY - 1)));
        assert_eq!(line, format!("{}...", "x".repeat(MAX_ERROR_BODY - 1)));
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }

    #[test]
    fn unknown_check_answers_of_old_and_new_agents() {
        assert!(
            status(500, r#"CheckID "service:a" does not have associated TTL"#).is_unknown_check()
        );
        assert!(
            status(
                404,
                r#"Unknown check ID "service:a". Ensure that the check ID is passed, not the check name."#
            )
            .is_unknown_check()
        );
        assert!(!status(500, "No cluster leader").is_unknown_check());
        assert!(!status(404, "").is_unknown_check());
        assert!(status(500, "No cluster leader").is_retryable());
        assert!(!status(500, r#"CheckID "x" does not have associated TTL"#).is_retryable());
        assert!(status(429, "rate limit exceeded").is_retryable());
        assert!(!status(403, "ACL not found").is_retryable());
        assert!(status(403, "ACL not found").is_permission_denied());
        assert!(!status(400, "Request decode failed").is_retryable());
    }

    #[test]
    fn registration_payload_is_containerpilots() {
        let service = config::Service {
            id: "app-3f2a9c1e0b7d".into(),
            name: "app".into(),
            port: 8000,
            address: "172.18.0.3".parse().unwrap(),
            tags: vec!["application".into()],
            meta: BTreeMap::new(),
            initial_status: None,
            enable_tag_override: true,
            deregister_critical_service_after: Some(Duration::from_secs(600)),
        };
        let reg = ServiceRegistration::new(&service, Duration::from_secs(5), CheckStatus::Passing);
        let json: serde_json::Value = serde_json::to_value(&reg).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ID": "app-3f2a9c1e0b7d", "Name": "app", "Tags": ["application"], "Port": 8000,
                "Address": "172.18.0.3", "EnableTagOverride": true,
                "Check": {
                    "TTL": "5s", "Status": "passing", "Notes": "TTL for app set by containerpilot",
                    "DeregisterCriticalServiceAfter": "10m0s"
                }
            })
        );
        let bare = config::Service {
            tags: vec![],
            enable_tag_override: false,
            deregister_critical_service_after: None,
            meta: [("v".to_string(), "1".to_string())].into(),
            ..service
        };
        let json = serde_json::to_value(ServiceRegistration::new(
            &bare,
            Duration::from_secs(15),
            CheckStatus::Warning,
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ID": "app-3f2a9c1e0b7d", "Name": "app", "Port": 8000, "Address": "172.18.0.3",
                "Meta": {"v": "1"},
                "Check": {"TTL": "15s", "Status": "warning", "Notes": "TTL for app set by containerpilot"}
            })
        );
    }
}
