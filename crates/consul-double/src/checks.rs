//! Check runners: the checks the agent executes itself. TCP checks connect (Consul's `CheckTCP`);
//! HTTP checks send a request and grade the status code (Consul's `CheckHTTP`: 2xx passing, 429
//! warning, anything else critical). gRPC, alias and Docker checks are stored and shown but keep
//! their initial status, and script checks are refused as on a dev agent. HTTPS checks verify
//! against no CA at all, so they pass only with `TLSSkipVerify`.

use std::sync::Weak;
use std::time::Duration;

use crate::state::StateCell;
use crate::state::types::CheckStatus;

/// Runs a TCP check every `interval` until aborted, after an initial stagger.
pub(crate) async fn run_tcp(
    cell: Weak<StateCell>,
    check_id: String,
    generation: u64,
    addr: String,
    interval: Duration,
    timeout: Duration,
    initial: Duration,
) {
    tokio::time::sleep(initial).await;
    loop {
        let (status, output) = probe_tcp(&addr, timeout).await;
        match cell.upgrade() {
            Some(cell) => cell.with(|st| st.runner_result(&check_id, generation, status, output)),
            None => return,
        }
        tokio::time::sleep(interval).await;
    }
}

/// One TCP probe with Go-style output texts.
pub(crate) async fn probe_tcp(addr: &str, timeout: Duration) -> (CheckStatus, String) {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => (CheckStatus::Passing, format!("TCP connect {addr}: Success")),
        Ok(Err(e)) => (CheckStatus::Critical, go_dial_error(addr, &e)),
        Err(_) => (
            CheckStatus::Critical,
            format!("dial tcp {addr}: i/o timeout"),
        ),
    }
}

fn go_dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        std::io::ErrorKind::InvalidInput => {
            format!("dial tcp: address {addr}: missing port in address")
        }
        _ => format!("dial tcp {addr}: {e}"),
    }
}

/// How to run one HTTP check.
#[derive(Debug, Clone)]
pub(crate) struct HttpProbe {
    pub(crate) url: String,
    pub(crate) method: String,
    pub(crate) headers: std::collections::BTreeMap<String, Vec<String>>,
    pub(crate) body: String,
    pub(crate) timeout: Duration,
    pub(crate) skip_verify: bool,
    pub(crate) output_max: usize,
}

/// Runs an HTTP check every `interval` until aborted, after an initial stagger.
pub(crate) async fn run_http(
    cell: Weak<StateCell>,
    check_id: String,
    generation: u64,
    probe: HttpProbe,
    interval: Duration,
    initial: Duration,
) {
    tokio::time::sleep(initial).await;
    loop {
        let (status, output) = probe_http(&probe).await;
        match cell.upgrade() {
            Some(cell) => cell.with(|st| st.runner_result(&check_id, generation, status, output)),
            None => return,
        }
        tokio::time::sleep(interval).await;
    }
}

/// Accepts any server certificate (`TLSSkipVerify`).
#[derive(Debug)]
struct NoVerify(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(skip_verify: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    Ok(if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    })
}

async fn exchange<S>(
    io: S,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
    max: usize,
) -> Result<(http::StatusCode, Vec<u8>), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while out.len() < max {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    out.extend_from_slice(data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    out.truncate(max);
    Ok((status, out))
}

/// One HTTP probe with Consul's output format.
pub(crate) async fn probe_http(p: &HttpProbe) -> (CheckStatus, String) {
    let method = if p.method.is_empty() {
        "GET".to_string()
    } else {
        p.method.clone()
    };
    let verb = method.split(' ').next().unwrap_or("GET").to_string();
    let go_err = |e: &str| {
        format!(
            "{}{} \"{}\": {e}",
            &verb[..1],
            verb[1..].to_lowercase(),
            p.url
        )
    };
    let uri: http::Uri = match p.url.parse() {
        Ok(u) => u,
        Err(e) => return (CheckStatus::Critical, go_err(&e.to_string())),
    };
    let https = uri.scheme_str() == Some("https");
    let Some(host) = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
    else {
        return (
            CheckStatus::Critical,
            go_err("http: no Host in request URL"),
        );
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET))
        .uri(uri.path_and_query().map_or("/", |pq| pq.as_str()))
        .header(
            "host",
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        );
    let mut has_agent = false;
    let mut has_accept = false;
    for (k, values) in &p.headers {
        has_agent |= k.eq_ignore_ascii_case("user-agent");
        has_accept |= k.eq_ignore_ascii_case("accept");
        for v in values {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    if !has_agent {
        builder = builder.header("user-agent", "Consul Health Check");
    }
    if !has_accept {
        builder = builder.header("accept", "text/plain, text/*, */*");
    }
    let Ok(req) = builder.body(http_body_util::Full::new(bytes::Bytes::from(
        p.body.clone(),
    ))) else {
        return (CheckStatus::Critical, go_err("invalid request"));
    };
    let addr = format!("{host}:{port}");
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| go_dial_error(&addr, &e))?;
        if https {
            let cfg = tls_config(p.skip_verify).map_err(|e| e.to_string())?;
            let name =
                rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
                .connect(name, tcp)
                .await
                .map_err(|_| "x509: certificate signed by unknown authority".to_string())?;
            exchange(tls, req, p.output_max).await
        } else {
            exchange(tcp, req, p.output_max).await
        }
    };
    match tokio::time::timeout(p.timeout, attempt).await {
        Err(_) => (
            CheckStatus::Critical,
            go_err("context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
        ),
        Ok(Err(e)) => (CheckStatus::Critical, go_err(&e)),
        Ok(Ok((code, body))) => {
            let reason = code.canonical_reason().unwrap_or("");
            let output = format!(
                "HTTP {verb} {}: {} {reason} Output: {}",
                p.url,
                code.as_u16(),
                String::from_utf8_lossy(&body)
            );
            let status = if code.is_success() {
                CheckStatus::Passing
            } else if code.as_u16() == 429 {
                CheckStatus::Warning
            } else {
                CheckStatus::Critical
            };
            (status, output)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probe_reports_success_and_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (status, output) = probe_tcp(&addr, Duration::from_secs(1)).await;
        assert_eq!(status, CheckStatus::Passing);
        assert_eq!(output, format!("TCP connect {addr}: Success"));
        drop(listener);
        let (status, output) = probe_tcp(&addr, Duration::from_secs(1)).await;
        assert_eq!(status, CheckStatus::Critical);
        assert_eq!(
            output,
            format!("dial tcp {addr}: connect: connection refused")
        );
    }

    async fn one_shot_server(
        status_line: &'static str,
        body: &'static str,
    ) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            assert!(head.contains("user-agent: consul health check"), "{head}");
            let reply = format!(
                "HTTP/1.1 {status_line}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        addr
    }

    fn probe(url: String) -> HttpProbe {
        HttpProbe {
            url,
            method: String::new(),
            headers: Default::default(),
            body: String::new(),
            timeout: Duration::from_secs(2),
            skip_verify: false,
            output_max: 4096,
        }
    }

    #[tokio::test]
    async fn http_probe_grades_status_codes_like_consul() {
        let addr = one_shot_server("200 OK", "fine").await;
        let url = format!("http://{addr}/health");
        assert_eq!(
            probe_http(&probe(url.clone())).await,
            (
                CheckStatus::Passing,
                format!("HTTP GET {url}: 200 OK Output: fine")
            )
        );
        let addr = one_shot_server("429 Too Many Requests", "slow down").await;
        assert_eq!(
            probe_http(&probe(format!("http://{addr}/"))).await.0,
            CheckStatus::Warning
        );
        let addr = one_shot_server("503 Service Unavailable", "").await;
        assert_eq!(
            probe_http(&probe(format!("http://{addr}/"))).await.0,
            CheckStatus::Critical
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let url = format!("http://{closed}/");
        assert_eq!(
            probe_http(&probe(url.clone())).await,
            (
                CheckStatus::Critical,
                format!("Get \"{url}\": dial tcp {closed}: connect: connection refused")
            )
        );
    }

    #[tokio::test]
    async fn https_probe_needs_skip_verify_against_a_test_certificate() {
        let pki = crate::tls::generate_localhost_pki().unwrap();
        let double = crate::ConsulDouble::start(crate::Config {
            listen: vec![crate::Listen::Tls(([127, 0, 0, 1], 0).into(), pki.server)],
            ..crate::Config::default()
        })
        .await
        .unwrap();
        let url = double.url().replace("127.0.0.1", "localhost") + "/v1/status/leader";
        let verified = probe_http(&probe(url.clone())).await;
        assert_eq!(verified.0, CheckStatus::Critical, "{verified:?}");
        let skipped = probe_http(&HttpProbe {
            skip_verify: true,
            ..probe(url)
        })
        .await;
        assert_eq!(skipped.0, CheckStatus::Passing, "{skipped:?}");
    }
}
