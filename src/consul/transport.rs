//! Connections for the HTTP clients: TCP (host names resolved by tokio), a unix socket, and TLS
//! with rustls over ring (no OpenSSL, no aws-lc: the binary is static musl).
//!
//! The connector plugs into hyper-util's pooled client. It decides the transport from its own
//! configuration and the request's scheme: `https` URIs get TLS, a unix-socket connector ignores
//! the URI's authority (the requests say `http://localhost`, so that the Host header is
//! `localhost`, as Consul's own client sends it).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::config::Tls;
use crate::errors::describe_io_error;

/// Why the TLS settings could not be turned into a client configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path:?}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("no certificate found in {what} {path:?}")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("no private key found in consul tls clientkey {0:?}")]
    NoKey(PathBuf),
    #[error("consul tls clientcert and clientkey must be given together")]
    HalfClientPair,
    #[error("no trusted certificate authority: cannot read the system's certificates")]
    NoRoots,
    #[error("invalid tls settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where a connector connects.
#[derive(Clone)]
enum Target {
    /// The host and port of each request's URI.
    Uri,
    /// Always this unix socket.
    Unix(Arc<Path>),
}

/// A hyper-util connector over TCP, a unix socket or TLS.
#[derive(Clone)]
pub(crate) struct Connector {
    target: Target,
    /// Used for `https` URIs. Without it an `https` request fails to connect.
    tls: Option<Arc<ClientConfig>>,
    /// Verify certificates against this name instead of the URI's host (`tls.servername`).
    server_name: Option<Arc<str>>,
}

impl Connector {
    /// Connects to the host and port of each request, with TLS for `https` URIs.
    pub(crate) fn tcp(tls: Option<Arc<ClientConfig>>, server_name: Option<String>) -> Connector {
        Connector {
            target: Target::Uri,
            tls,
            server_name: server_name.map(Into::into),
        }
    }

    /// Connects every request to the unix socket at `path`.
    pub(crate) fn unix(path: &Path) -> Connector {
        Connector {
            target: Target::Unix(path.into()),
            tls: None,
            server_name: None,
        }
    }

    async fn connect(self, uri: Uri) -> io::Result<Stream> {
        if let Target::Unix(path) = &self.target {
            return Ok(Stream::Unix(UnixStream::connect(&**path).await?));
        }
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the url"))?;
        // `[::1]` in a URI is `::1` to the resolver.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port)).await?;
        // Requests are small and answered at once: do not hold them back for Nagle.
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok(Stream::Tcp(tcp));
        }
        let Some(tls) = &self.tls else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "https is not configured",
            ));
        };
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid tls server name {name:?}"),
            )
        })?;
        let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Uri => f.write_str("Connector(tcp)"),
            Target::Unix(path) => write!(f, "Connector(unix {path:?})"),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await.map(TokioIo::new) })
    }
}

/// One connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `tls`: the CA from `cafile`/`capath` (the system's otherwise),
/// the client pair for mutual TLS, and no verification at all when `verify` is false.
pub(crate) fn client_config(tls: &Tls) -> Result<ClientConfig, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if tls.verify {
        builder.with_root_certificates(roots(tls)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    };
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("consul tls clientcert", cert)?;
            let key = read_key(key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::HalfClientPair),
    };
    Ok(config)
}

/// A configuration that verifies servers against the system's certificate authorities (for
/// `https` health checks).
pub(crate) fn system_config() -> Result<ClientConfig, TlsError> {
    client_config(&Tls::default())
}

fn roots(tls: &Tls) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if tls.ca_file.is_none() && tls.ca_path.is_none() {
        // Unreadable entries of the system store are skipped, as every TLS client does.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        return Ok(roots);
    }
    if let Some(file) = &tls.ca_file {
        for cert in read_certs("consul tls cafile", file)? {
            roots.add(cert)?;
        }
    }
    if let Some(dir) = &tls.ca_path {
        let read_err = |e: io::Error| TlsError::Read {
            what: "consul tls capath",
            path: dir.clone(),
            reason: describe_io_error(&e),
        };
        let mut found = 0usize;
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            // Like Consul's client: every file in the directory is read, and files that hold no
            // certificate (an index, a README) are skipped.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
                if roots.add(cert).is_ok() {
                    found += 1;
                }
            }
        }
        if found == 0 {
            return Err(TlsError::NoCertificate {
                what: "consul tls capath",
                path: dir.clone(),
            });
        }
    }
    Ok(roots)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason: describe_io_error(&e),
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file("consul tls clientkey", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey(path.to_path_buf()))
}

/// `verify: false`: any certificate is accepted. The handshake signatures are still checked, so
/// the connection is encrypted to whoever holds the key of the certificate shown.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
