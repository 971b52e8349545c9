//! Clients of the cases: HTTP/1.1 and HTTP/2 (plain or TLS with SNI), a TLS handshake alone,
//! the TCP echo protocol (plain or TLS) and UDP datagrams. Every call is bounded in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

use crate::certs::Pem;
use crate::pods::provider;

/// How long any single exchange may take before it counts as a failure.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// A response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

/// TLS settings of a client.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) sni: String,
    /// Trusted root (PEM); `None` accepts any certificate.
    pub(crate) root: Option<String>,
    pub(crate) client_cert: Option<Pem>,
    pub(crate) alpn: Vec<Vec<u8>>,
}

/// Accepts every server certificate (for "verification irrelevant" cases).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
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
        cert: &CertificateDer<'_>,
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

fn client_config(tls: &Tls) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &tls.root {
        Some(root) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(root.as_bytes()) {
                roots
                    .add(cert.map_err(|e| format!("root PEM: {e}"))?)
                    .map_err(|e| format!("root: {e}"))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider()))),
    };
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let chain = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes())
                .map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    config.alpn_protocols = tls.alpn.clone();
    Ok(config)
}

/// A stream that is plain TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Connects, and when `tls` is given, completes a TLS handshake with that SNI.
pub(crate) async fn connect(address: SocketAddr, tls: Option<&Tls>) -> Result<Box<dyn Io>, String> {
    let tcp = tokio::time::timeout(LIMIT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("connect {address}: timed out"))?
        .map_err(|e| format!("connect {address}: {e}"))?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let config = client_config(tls)?;
    let name = ServerName::try_from(tls.sni.clone()).map_err(|e| format!("SNI: {e}"))?;
    let stream = tokio::time::timeout(
        LIMIT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_owned())?
    .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Box::new(stream))
}

/// The outcome of a TLS handshake alone.
pub(crate) enum Handshake {
    Done,
    /// Cut by the server: EOF or reset.
    Cut(String),
    /// Any other failure (an alert, a certificate problem, a timeout).
    Failed(String),
}

/// A TLS handshake with `sni`, certificate verification off.
pub(crate) async fn handshake(address: SocketAddr, sni: &str) -> Handshake {
    let tls = Tls {
        sni: sni.to_owned(),
        root: None,
        client_cert: None,
        alpn: Vec::new(),
    };
    let Ok(config) = client_config(&tls) else {
        return Handshake::Failed("client configuration".to_owned());
    };
    let tcp = match TcpStream::connect(address).await {
        Ok(tcp) => tcp,
        Err(e) => return Handshake::Failed(format!("connect: {e}")),
    };
    let Ok(name) = ServerName::try_from(sni.to_owned()) else {
        return Handshake::Failed("SNI".to_owned());
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(LIMIT, connector.connect(name, tcp)).await {
        Err(_) => Handshake::Failed("handshake timed out".to_owned()),
        Ok(Ok(_)) => Handshake::Done,
        Ok(Err(e)) => match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => Handshake::Cut(e.to_string()),
            _ => Handshake::Failed(e.to_string()),
        },
    }
}

/// One HTTP request over a new connection: HTTP/2 when `h2` (prior knowledge on plain TCP,
/// ALPN `h2` over TLS), else HTTP/1.1 without keep-alive.
pub(crate) async fn http(
    address: SocketAddr,
    tls: Option<&Tls>,
    h2: bool,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    tokio::time::timeout(LIMIT, http_inner(address, tls, h2, request))
        .await
        .map_err(|_| format!("no response within {LIMIT:?}"))?
}

async fn http_inner(
    address: SocketAddr,
    tls: Option<&Tls>,
    h2: bool,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let tls = tls.map(|t| {
        let mut t = t.clone();
        t.alpn = if h2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        t
    });
    let stream = connect(address, tls.as_ref()).await?;
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("h2 request: {e}"))?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http/1.1 handshake: {e}"))?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("http/1.1 request: {e}"))?
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// What the TCP echo server reported.
pub(crate) struct TcpEcho {
    pub(crate) is_tls: bool,
    pub(crate) info: serde_json::Value,
}

/// The TCP echo protocol over a new connection (TLS when `tls`).
pub(crate) async fn tcp_echo(address: SocketAddr, tls: Option<&Tls>) -> Result<TcpEcho, String> {
    tokio::time::timeout(LIMIT, async {
        let stream = connect(address, tls).await?;
        let (read, mut write) = tokio::io::split(stream);
        let mut lines = BufReader::new(read).lines();
        let mut next = async || -> Result<String, String> {
            lines
                .next_line()
                .await
                .map_err(|e| format!("read: {e}"))?
                .ok_or_else(|| "connection closed".to_owned())
        };
        let banner = next().await?;
        if banner != "Gateway API Test TCP Server" {
            return Err(format!("banner {banner:?}"));
        }
        write
            .write_all(b"PING\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let pong = next().await?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        write
            .write_all(b"IS_TLS\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let is_tls = next().await? == "true";
        write
            .write_all(b"TEST\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let line = next().await?;
        let info = serde_json::from_str(&line).map_err(|e| format!("TEST answer {line:?}: {e}"))?;
        Ok(TcpEcho { is_tls, info })
    })
    .await
    .map_err(|_| format!("no echo within {LIMIT:?}"))?
}

/// Sends one datagram and waits for one reply.
pub(crate) async fn udp(address: SocketAddr, payload: &[u8]) -> Result<Vec<u8>, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let mut buf = vec![0u8; 65536];
    // UDP may drop: a few tries, each bounded.
    for _ in 0..5 {
        socket
            .send_to(payload, address)
            .await
            .map_err(|e| format!("send: {e}"))?;
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
        {
            return Ok(buf[..n].to_vec());
        }
    }
    Err("no reply datagram".to_owned())
}

/// A DNS query for `name` type A.
pub(crate) fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(0));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
