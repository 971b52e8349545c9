//! TLS data plane: certificates by SNI, passthrough by SNI, terminate to TCP, and what happens
//! to clients that do not send a proper ClientHello.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_net::{Gateway, GatewayConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::common::*;

const ALL: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Accepts any server certificate and records the end-entity one, so a test can check which
/// certificate the gateway chose.
#[derive(Debug)]
struct Capture {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client that records the gateway's certificate. `sni: None` sends no SNI.
struct Client {
    stream: TlsStream<TcpStream>,
    cert: Vec<u8>,
}

async fn connect(
    port: u16,
    sni: Option<&str>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Client, String> {
    connect_with(port, sni, versions, &[], None).await
}

/// The same with ALPN protocols offered and optionally a client certificate (chain DER, key
/// PEM).
async fn connect_with(
    port: u16,
    sni: Option<&str>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
    client_cert: Option<(Vec<u8>, String)>,
) -> Result<Client, String> {
    let seen = Arc::new(Mutex::new(None));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Capture {
            seen: seen.clone(),
            provider: provider(),
        }));
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.enable_sni = sni.is_some();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let cert = seen.lock().unwrap().clone().ok_or("no certificate seen")?;
    Ok(Client { stream, cert })
}

/// A TLS client that trusts exactly `root` (real WebPKI verification).
async fn connect_verified(
    port: u16,
    sni: &str,
    root: &str,
) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(der(root))).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(ALL)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())
}

/// A TLS server (the backend of a passthrough route) with its own certificate for `host`:
/// greets each client with `name\n`, then echoes.
async fn tls_backend(name: &'static str, host: &str) -> (SocketAddr, String) {
    let (cert, key) = self_signed(&[host]);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(ALL)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(der(&cert))],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = tls.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (address, cert)
}

/// The bytes of a real ClientHello for `sni`, as a rustls client sends them.
fn client_hello_bytes(sni: &str) -> Vec<u8> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(ALL)
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from(sni.to_owned()).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

fn listener_yaml(
    name: &str,
    port: u16,
    protocol: &str,
    hostname: Option<&str>,
    tls: &str,
) -> String {
    let hostname = hostname
        .map(|h| format!("    hostname: \"{h}\"\n"))
        .unwrap_or_default();
    format!(
        "  - name: {name}\n    port: {port}\n    protocol: {protocol}\n{hostname}    tls: {tls}\n"
    )
}

fn gateway_yaml(listeners: &[String]) -> String {
    format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: test
  listeners:
{}",
        listeners.concat()
    )
}

fn tls_route_yaml(name: &str, section: &str, hostnames: &[&str], service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: {section}}}]
  hostnames: [{}]
  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]
",
        hostnames.join(", ")
    )
}

fn terminate(secret: &str) -> String {
    format!("{{certificateRefs: [{{name: {secret}}}]}}")
}

fn tls_terminate(secret: &str) -> String {
    format!("{{mode: Terminate, certificateRefs: [{{name: {secret}}}]}}")
}

/// Joins manifests into one multi-document YAML.
fn docs(parts: &[String]) -> String {
    parts.join("\n---\n")
}

/// Waits until the connection is closed by the gateway; fails if it sends anything or stays
/// open longer than `limit`.
async fn assert_closed_within(stream: &mut TcpStream, limit: Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "connection still open after {limit:?}");
    assert!(out.is_empty(), "gateway sent {} bytes", out.len());
    assert!(started.elapsed() <= limit);
}

struct Certs {
    a: (String, String),
    b: (String, String),
    wild: (String, String),
    default: (String, String),
}

/// HTTPS listeners for `a.example.com`, `b.example.com`, `*.example.com` and (optionally) any
/// hostname, each with its own certificate, on one port.
async fn sni_gateway(with_default: bool) -> (Gateway, u16, Certs) {
    let port = free_port();
    let certs = Certs {
        a: self_signed(&["a.example.com"]),
        b: self_signed(&["b.example.com"]),
        wild: self_signed(&["*.example.com"]),
        default: self_signed(&["default.test"]),
    };
    let mut listeners = vec![
        listener_yaml(
            "a",
            port,
            "HTTPS",
            Some("a.example.com"),
            &terminate("cert-a"),
        ),
        listener_yaml(
            "b",
            port,
            "HTTPS",
            Some("b.example.com"),
            &terminate("cert-b"),
        ),
        listener_yaml(
            "wild",
            port,
            "HTTPS",
            Some("*.example.com"),
            &terminate("cert-wild"),
        ),
    ];
    if with_default {
        listeners.push(listener_yaml(
            "any",
            port,
            "HTTPS",
            None,
            &terminate("cert-default"),
        ));
    }
    let yaml = docs(&[
        gateway_yaml(&listeners),
        tls_secret_yaml("default", "cert-a", &certs.a.0, &certs.a.1),
        tls_secret_yaml("default", "cert-b", &certs.b.0, &certs.b.1),
        tls_secret_yaml("default", "cert-wild", &certs.wild.0, &certs.wild.1),
        tls_secret_yaml(
            "default",
            "cert-default",
            &certs.default.0,
            &certs.default.1,
        ),
    ]);
    (start(&yaml).await, port, certs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_chosen_by_sni() {
    let (gateway, port, certs) = sni_gateway(true).await;
    let a = connect(port, Some("a.example.com"), ALL).await.unwrap();
    assert_eq!(a.cert, der(&certs.a.0));
    let b = connect(port, Some("B.Example.com"), ALL).await.unwrap();
    assert_eq!(b.cert, der(&certs.b.0));
    let wild = connect(port, Some("x.example.com"), ALL).await.unwrap();
    assert_eq!(wild.cert, der(&certs.wild.0), "wildcard listener");
    let nested = connect(port, Some("y.x.example.com"), ALL).await.unwrap();
    assert_eq!(
        nested.cert,
        der(&certs.wild.0),
        "wildcard listener, several labels"
    );
    let other = connect(port, Some("other.test"), ALL).await.unwrap();
    assert_eq!(
        other.cert,
        der(&certs.default.0),
        "listener without hostname"
    );
    let none = connect(port, None, ALL).await.unwrap();
    assert_eq!(
        none.cert,
        der(&certs.default.0),
        "no SNI: listener without hostname"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_no_sni_without_catch_all_listener_is_closed() {
    let (gateway, port, certs) = sni_gateway(false).await;
    assert!(connect(port, None, ALL).await.is_err());
    assert!(connect(port, Some("other.test"), ALL).await.is_err());
    // The socket still serves the names it knows.
    let a = connect(port, Some("a.example.com"), ALL).await.unwrap();
    assert_eq!(a.cert, der(&certs.a.0));
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    raw.write_all(&client_hello_bytes("unknown.test"))
        .await
        .unwrap();
    assert_closed_within(&mut raw, Duration::from_secs(3)).await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_12_only_and_13_only_clients_handshake() {
    let (gateway, port, certs) = sni_gateway(true).await;
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let client = connect(port, Some("a.example.com"), &[version])
            .await
            .unwrap();
        assert_eq!(client.cert, der(&certs.a.0));
        assert_eq!(client.stream.get_ref().1.protocol_version(), Some(expected));
        // HTTPS listeners offer h2 and http/1.1; the client offered none here.
        assert_eq!(client.stream.get_ref().1.alpn_protocol(), None);
    }
    gateway.shutdown().await;
}

/// A TLS Terminate listener for `term.example.com` forwarding to a TCP echo.
fn terminate_yaml(port: u16, cert: &(String, String), echo: SocketAddr) -> String {
    docs(&[
        gateway_yaml(&[listener_yaml(
            "term",
            port,
            "TLS",
            Some("term.example.com"),
            &tls_terminate("cert-term"),
        )]),
        tls_secret_yaml("default", "cert-term", &cert.0, &cert.1),
        tls_route_yaml("echo", "term", &["term.example.com"], "echo"),
        service_yaml("default", "echo", echo),
    ])
}

async fn echo_roundtrip(stream: &mut TlsStream<TcpStream>, text: &str) {
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(buf, text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_terminate_forwards_plaintext_to_tcp() {
    let echo = tcp_echo().await;
    let port = free_port();
    let cert = self_signed(&["term.example.com"]);
    // Splice on: the decrypted bytes still go through user space.
    let mut config = GatewayConfig::default();
    config.l4.tcp_splice = true;
    let gateway = start_with(&terminate_yaml(port, &cert, echo), config).await;
    let mut client = connect(port, Some("term.example.com"), ALL).await.unwrap();
    assert_eq!(client.cert, der(&cert.0));
    echo_roundtrip(&mut client.stream, "hello through terminated TLS").await;
    assert_eq!(
        spliced(&gateway),
        0.0,
        "decrypted bytes are copied in user space"
    );
    // A name no TLSRoute takes: closed before any certificate is shown.
    assert!(connect(port, Some("other.example.com"), ALL).await.is_err());
    // Closed first, so shutdown does not wait out the drain deadline.
    drop(client);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_swap_on_apply_keeps_open_connections() {
    let echo = tcp_echo().await;
    let port = free_port();
    let old = self_signed(&["term.example.com"]);
    let new = self_signed(&["term.example.com"]);
    let gateway = start(&terminate_yaml(port, &old, echo)).await;
    let mut open = connect(port, Some("term.example.com"), ALL).await.unwrap();
    assert_eq!(open.cert, der(&old.0));
    echo_roundtrip(&mut open.stream, "before").await;

    let report = gateway
        .apply(&compile_yaml(&terminate_yaml(port, &new, echo)))
        .await;
    assert!(report.is_complete(), "{report:?}");
    let next = connect(port, Some("term.example.com"), ALL).await.unwrap();
    assert_eq!(
        next.cert,
        der(&new.0),
        "the next connection sees the new certificate"
    );
    echo_roundtrip(&mut open.stream, "after the swap").await;
    drop((open, next));
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_routes_by_sni_untouched() {
    let (one, one_cert) = tls_backend("one", "one.example.com").await;
    let (two, two_cert) = tls_backend("two", "two.example.com").await;
    let port = free_port();
    let yaml = docs(&[
        gateway_yaml(&[listener_yaml(
            "pass",
            port,
            "TLS",
            None,
            "{mode: Passthrough}",
        )]),
        tls_route_yaml("one", "pass", &["one.example.com"], "one"),
        tls_route_yaml("two", "pass", &["two.example.com"], "two"),
        service_yaml("default", "one", one),
        service_yaml("default", "two", two),
    ]);
    let mut config = GatewayConfig::default();
    config.l4.tcp_splice = true;
    let gateway = start_with(&yaml, config).await;
    for (sni, cert, name) in [
        ("one.example.com", &one_cert, "one"),
        ("two.example.com", &two_cert, "two"),
    ] {
        // The client trusts only the backend's own certificate: the handshake passed through.
        let mut stream = connect_verified(port, sni, cert).await.unwrap();
        let mut greeting = vec![0u8; name.len() + 1];
        stream.read_exact(&mut greeting).await.unwrap();
        assert_eq!(greeting, format!("{name}\n").as_bytes());
        echo_roundtrip(&mut stream, "end to end").await;
    }
    // Both passthrough connections went socket to socket in the kernel.
    assert_eq!(spliced(&gateway), if SPLICES { 2.0 } else { 0.0 });
    // Unknown SNI: closed, no certificate, no alert.
    assert!(connect(port, Some("three.example.com"), ALL).await.is_err());
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    raw.write_all(&client_hello_bytes("three.example.com"))
        .await
        .unwrap();
    assert_closed_within(&mut raw, Duration::from_secs(3)).await;
    // No SNI at all: no TLSRoute can match.
    assert!(connect(port, None, ALL).await.is_err());
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_bad_client_hellos_are_closed() {
    let mut config = GatewayConfig::default();
    config.tls.client_hello_timeout = Duration::from_millis(300);
    let port = free_port();
    let cert = self_signed(&["a.example.com"]);
    let yaml = docs(&[
        gateway_yaml(&[listener_yaml(
            "a",
            port,
            "HTTPS",
            None,
            &terminate("cert-a"),
        )]),
        tls_secret_yaml("default", "cert-a", &cert.0, &cert.1),
    ]);
    let gateway = start_with(&yaml, config).await;

    // Garbage (plain HTTP on the TLS port).
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_closed_within(&mut garbage, Duration::from_millis(250)).await;

    // A handshake record header announcing a huge record.
    let mut huge = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    huge.write_all(&[22, 3, 1, 0xff, 0xff]).await.unwrap();
    assert_closed_within(&mut huge, Duration::from_millis(250)).await;

    // Half a ClientHello, then the client stops writing.
    let hello = client_hello_bytes("a.example.com");
    let mut truncated = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    truncated
        .write_all(&hello[..hello.len() / 2])
        .await
        .unwrap();
    truncated.shutdown().await.unwrap();
    assert_closed_within(&mut truncated, Duration::from_millis(250)).await;

    // Half a ClientHello, then silence: the ClientHello timeout closes it.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stalled.write_all(&hello[..hello.len() / 2]).await.unwrap();
    assert_closed_within(&mut stalled, Duration::from_secs(2)).await;

    // Nothing at all (slowloris).
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_closed_within(&mut silent, Duration::from_secs(2)).await;

    // The ClientHello split over many TCP segments is still served.
    let mut split = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    for chunk in hello.chunks(50) {
        split.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut header = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(2), split.read_exact(&mut header))
        .await
        .expect("ServerHello in time")
        .unwrap();
    assert_eq!(header[0], 22, "a handshake record (ServerHello)");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refused_certificate_leaves_other_listeners_served() {
    let port = free_port();
    let good = self_signed(&["good.example.com"]);
    let other = self_signed(&["bad.example.com"]);
    // A certificate with someone else's key: parses, but rustls refuses the pair.
    let yaml = docs(&[
        gateway_yaml(&[
            listener_yaml(
                "good",
                port,
                "HTTPS",
                Some("good.example.com"),
                &terminate("good"),
            ),
            listener_yaml(
                "bad",
                port,
                "HTTPS",
                Some("bad.example.com"),
                &terminate("bad"),
            ),
        ]),
        tls_secret_yaml("default", "good", &good.0, &good.1),
        tls_secret_yaml("default", "bad", &other.0, &good.1),
    ]);
    let gateway = Gateway::new(GatewayConfig::default());
    let (ir, mut status) = compile_with_status(&yaml);
    let report = gateway.apply(&ir).await;
    let names: Vec<_> = report
        .listener_issues
        .iter()
        .map(|i| i.listener.name.as_str())
        .collect();
    assert_eq!(names, ["bad"], "{report:?}");
    assert_eq!(
        gateway_net::verify(&ir),
        report,
        "verify finds it without binding"
    );
    // Compile cannot tell; the merged status does.
    assert!(status.all_healthy(), "{}", status.to_table());
    report.merge_into(&mut status);
    let listeners = &status.gateway("default", "gw").unwrap().status.listeners;
    let condition = |listener: &str, type_: &str| {
        let l = listeners.iter().find(|l| l.name == listener).unwrap();
        let c = l.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.clone(), c.reason.clone())
    };
    let bad = |s: &str, r: &str| (s.to_owned(), r.to_owned());
    assert_eq!(
        condition("bad", "ResolvedRefs"),
        bad("False", "InvalidCertificateRef")
    );
    assert_eq!(condition("bad", "Programmed"), bad("False", "Invalid"));
    assert_eq!(condition("good", "Programmed"), bad("True", "Programmed"));
    let gateway_conditions = &status.gateway("default", "gw").unwrap().status.conditions;
    assert!(
        gateway_conditions
            .iter()
            .any(|c| c.type_ == "Programmed" && c.is_true())
    );
    let client = connect(port, Some("good.example.com"), ALL).await.unwrap();
    assert_eq!(client.cert, der(&good.0));
    assert!(connect(port, Some("bad.example.com"), ALL).await.is_err());
    gateway.shutdown().await;
}

/// An HTTPRoute `web` on every listener of Gateway `gw`, to the Service `web`.
fn web_route_yaml() -> String {
    "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"
    .to_owned()
}

/// Sends `request` on `stream` and returns what comes back until the gateway closes it (or
/// 5 s pass).
async fn exchange(stream: &mut TlsStream<TcpStream>, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let response = read_to_end_within(stream, Duration::from_secs(5)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// A gateway with one HTTPS listener for `a.example.com` routing everything to an HTTP echo
/// backend named `web`; its port.
async fn https_web_gateway() -> (Gateway, u16) {
    let backend = http_echo("web").await;
    let port = free_port();
    let cert = self_signed(&["a.example.com"]);
    let yaml = docs(&[
        gateway_yaml(&[listener_yaml(
            "a",
            port,
            "HTTPS",
            Some("a.example.com"),
            &terminate("cert-a"),
        )]),
        tls_secret_yaml("default", "cert-a", &cert.0, &cert.1),
        web_route_yaml(),
        service_yaml("default", "web", backend),
    ]);
    (start(&yaml).await, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_https_serves_http_routes_after_termination() {
    let (gateway, port) = https_web_gateway().await;
    let mut client = connect(port, Some("a.example.com"), ALL).await.unwrap();
    let text = exchange(
        &mut client.stream,
        b"GET /x HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("backend=web"), "{text}");
    gateway.shutdown().await;
}

/// The request-smuggling watch follows the decrypted bytes too: both framings over HTTPS
/// (ALPN http/1.1, and no ALPN) are answered 400 and never reach the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_both_framings_over_https_are_400() {
    let (gateway, port) = https_web_gateway().await;
    for alpn in [&[b"http/1.1".as_slice()][..], &[]] {
        let mut client = connect_with(port, Some("a.example.com"), ALL, alpn, None)
            .await
            .unwrap();
        let text = exchange(
            &mut client.stream,
            b"POST /x HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 3\r\n\r\n0\r\n\r\n",
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(!text.contains("backend=web"), "{text}");
    }
    gateway.shutdown().await;
}

/// Found by the conformance suite (HTTPRouteHTTPSListenerDetectMisdirectedRequests): a request
/// whose Host belongs to another HTTPS listener of the port than the one the SNI chose is
/// answered 421, not routed with the other listener's routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_misdirected_request_is_421() {
    let backend = http_echo("web").await;
    let port = free_port();
    let cert = self_signed(&["a.example.com", "b.example.com", "c.example.com"]);
    let yaml = docs(&[
        gateway_yaml(&[
            listener_yaml("any", port, "HTTPS", None, &terminate("cert")),
            listener_yaml(
                "b",
                port,
                "HTTPS",
                Some("b.example.com"),
                &terminate("cert"),
            ),
        ]),
        tls_secret_yaml("default", "cert", &cert.0, &cert.1),
        web_route_yaml(),
        service_yaml("default", "web", backend),
    ]);
    let gateway = start(&yaml).await;
    for (sni, host, status) in [
        ("a.example.com", "a.example.com", "200"),
        ("b.example.com", "b.example.com", "200"),
        // The catch-all listener's connection asks for the more specific listener's host.
        ("a.example.com", "b.example.com", "421"),
        // And the other way round.
        ("b.example.com", "c.example.com", "421"),
    ] {
        let mut client = connect(port, Some(sni), ALL).await.unwrap();
        let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let text = exchange(&mut client.stream, request.as_bytes()).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "SNI {sni}, Host {host}: {text}"
        );
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_offered_on_https_only() {
    let (gateway, port, _) = sni_gateway(true).await;
    let h2 = connect_with(
        port,
        Some("a.example.com"),
        ALL,
        &[b"h2", b"http/1.1"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(h2.stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h1 = connect_with(port, Some("a.example.com"), ALL, &[b"http/1.1"], None)
        .await
        .unwrap();
    assert_eq!(
        h1.stream.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..])
    );
    gateway.shutdown().await;

    // TLS Terminate carries an opaque stream: no ALPN is selected (a client offering only
    // protocols the server does not know still connects).
    let echo = tcp_echo().await;
    let port = free_port();
    let cert = self_signed(&["term.example.com"]);
    let gateway = start(&terminate_yaml(port, &cert, echo)).await;
    let mut term = connect_with(port, Some("term.example.com"), ALL, &[b"h2"], None)
        .await
        .unwrap();
    assert_eq!(term.stream.get_ref().1.alpn_protocol(), None);
    echo_roundtrip(&mut term.stream, "opaque").await;
    drop(term);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_hello_over_several_records_and_size_cap() {
    let port = free_port();
    let cert = self_signed(&["a.example.com"]);
    let yaml = docs(&[
        gateway_yaml(&[listener_yaml(
            "a",
            port,
            "HTTPS",
            Some("a.example.com"),
            &terminate("cert-a"),
        )]),
        tls_secret_yaml("default", "cert-a", &cert.0, &cert.1),
    ]);
    let gateway = start(&yaml).await;
    // The handshake message of a real ClientHello re-framed into 100-byte records.
    let hello = client_hello_bytes("a.example.com");
    let mut records = Vec::new();
    for chunk in hello[5..].chunks(100) {
        records.extend_from_slice(&[22, 3, 1]);
        records.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        records.extend_from_slice(chunk);
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(&records).await.unwrap();
    let mut header = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut header))
        .await
        .expect("ServerHello in time")
        .unwrap();
    assert_eq!(header[0], 22, "a handshake record (ServerHello)");
    drop(stream);
    gateway.shutdown().await;

    // The same ClientHello over a cap smaller than it: closed.
    let mut config = GatewayConfig::default();
    config.tls.max_client_hello_size = hello.len() / 2;
    let port = free_port();
    let yaml = docs(&[
        gateway_yaml(&[listener_yaml(
            "a",
            port,
            "HTTPS",
            Some("a.example.com"),
            &terminate("cert-a"),
        )]),
        tls_secret_yaml("default", "cert-a", &cert.0, &cert.1),
    ]);
    let gateway = start_with(&yaml, config).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(&hello).await.unwrap();
    assert_closed_within(&mut stream, Duration::from_secs(2)).await;
    gateway.shutdown().await;
}

/// A CA and a client certificate it signed: (CA PEM, client chain DER, client key PEM).
fn client_ca() -> (String, Vec<u8>, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_params =
        rcgen::CertificateParams::new(vec!["client.example.com".to_owned()]).unwrap();
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    (
        ca_cert.pem(),
        client.der().to_vec(),
        client_key.serialize_pem(),
    )
}

fn mtls_yaml(
    port: u16,
    mode: &str,
    ca_pem: &str,
    cert: &(String, String),
    echo: SocketAddr,
) -> String {
    let indent: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    docs(&[
        format!(
            "{}  tls:\n    frontend:\n      default:\n        validation:\n          mode: {mode}\n          caCertificateRefs: [{{kind: ConfigMap, group: \"\", name: ca}}]\n",
            gateway_yaml(&[listener_yaml(
                "term",
                port,
                "TLS",
                Some("term.example.com"),
                &tls_terminate("cert-term"),
            )])
        ),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: default}}\ndata:\n  ca.crt: |\n{indent}"
        ),
        tls_secret_yaml("default", "cert-term", &cert.0, &cert.1),
        tls_route_yaml("echo", "term", &["term.example.com"], "echo"),
        service_yaml("default", "echo", echo),
    ])
}

/// Whether a connection carries data: with TLS 1.3 a refused client certificate shows only
/// after the client's handshake, as an alert instead of the first answer.
async fn echoes(result: Result<Client, String>) -> bool {
    let Ok(mut client) = result else { return false };
    if client.stream.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), client.stream.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"ping"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_validation() {
    let echo = tcp_echo().await;
    let (ca, client_cert, client_key) = client_ca();
    let stranger = self_signed(&["client.example.com"]);
    let stranger = (der(&stranger.0), stranger.1);
    let cert = self_signed(&["term.example.com"]);
    let sni = Some("term.example.com");

    let port = free_port();
    let gateway = start(&mtls_yaml(port, "AllowValidOnly", &ca, &cert, echo)).await;
    let valid = Some((client_cert.clone(), client_key.clone()));
    assert!(
        echoes(connect_with(port, sni, ALL, &[], valid.clone()).await).await,
        "valid certificate"
    );
    assert!(
        !echoes(connect_with(port, sni, ALL, &[], None).await).await,
        "no certificate"
    );
    assert!(
        !echoes(connect_with(port, sni, ALL, &[], Some(stranger.clone())).await).await,
        "certificate of another CA"
    );
    gateway.shutdown().await;

    let port = free_port();
    let gateway = start(&mtls_yaml(port, "AllowInsecureFallback", &ca, &cert, echo)).await;
    assert!(
        echoes(connect_with(port, sni, ALL, &[], valid).await).await,
        "valid certificate"
    );
    assert!(
        echoes(connect_with(port, sni, ALL, &[], None).await).await,
        "fallback: no certificate"
    );
    assert!(
        echoes(connect_with(port, sni, ALL, &[], Some(stranger)).await).await,
        "fallback: certificate of another CA"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_https_h2_negotiated_by_alpn() {
    let (gateway, port) = https_web_gateway().await;
    let client = connect_with(
        port,
        Some("a.example.com"),
        ALL,
        &[b"h2", b"http/1.1"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(client.stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(client.stream),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get("https://a.example.com/h2")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("response in time")
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("backend=web") && text.contains("path=/h2"),
        "{text}"
    );
    drop(sender);
    driver.abort();
    gateway.shutdown().await;
}

/// One HTTP/2 request over TLS with this SNI and `:authority`; the status and the backend
/// that answered (`x-backend`), if any.
async fn h2_over_tls(port: u16, sni: &str, authority: &str) -> (u16, Option<String>) {
    let client = connect_with(port, Some(sni), ALL, &[b"h2"], None)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(client.stream),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get(format!("https://{authority}/detect"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("response in time")
        .unwrap();
    let backend = response
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned());
    drop(sender);
    driver.abort();
    (response.status().as_u16(), backend)
}

/// The Gateway API's misdirected-request rule on a port shared by HTTPS listeners: a request
/// whose host another listener serves than the one the SNI chose gets 421; a host no
/// listener serves gets 404; hosts under the SNI's own wildcard listener are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_misdirected_requests_get_421() {
    let v1 = http_echo("v1").await;
    let v2 = http_echo("v2").await;
    let v3 = http_echo("v3").await;
    let port = free_port();
    let cert = self_signed(&["example.org", "second-example.org", "*.wildcard.org"]);
    let route = |name: &str, section: &str, hostnames: &str, service: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: {section}}}]
  hostnames: [{hostnames}]
  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]
"
        )
    };
    let yaml = docs(&[
        gateway_yaml(&[
            listener_yaml("any", port, "HTTPS", None, &terminate("cert")),
            listener_yaml(
                "second",
                port,
                "HTTPS",
                Some("second-example.org"),
                &terminate("cert"),
            ),
            listener_yaml(
                "wild",
                port,
                "HTTPS",
                Some("*.wildcard.org"),
                &terminate("cert"),
            ),
            listener_yaml(
                "fourth",
                port,
                "HTTPS",
                Some("fourth-example.wildcard.org"),
                &terminate("cert"),
            ),
        ]),
        tls_secret_yaml("default", "cert", &cert.0, &cert.1),
        route("r1", "any", "example.org", "v1"),
        route("r2", "second", "", "v2"),
        route("r3", "wild", "", "v3"),
        route("r4", "fourth", "", "v1"),
        service_yaml("default", "v1", v1),
        service_yaml("default", "v2", v2),
        service_yaml("default", "v3", v3),
    ]);
    let gateway = start(&yaml).await;
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("example.org", "example.org", 200, Some("v1")),
        ("example.org", "second-example.org", 421, None),
        ("example.org", "unknown-example.org", 404, None),
        ("second-example.org", "second-example.org", 200, Some("v2")),
        ("second-example.org", "example.org", 421, None),
        ("second-example.org", "unknown-example.org", 421, None),
        ("third.wildcard.org", "third.wildcard.org", 200, Some("v3")),
        ("third.wildcard.org", "fifth.wildcard.org", 200, Some("v3")),
        (
            "third.wildcard.org",
            "fourth-example.wildcard.org",
            421,
            None,
        ),
        ("third.wildcard.org", "second-example.org:443", 421, None),
        (
            "third.wildcard.org",
            "THIRD.wildcard.org:443",
            200,
            Some("v3"),
        ),
    ];
    for &(sni, authority, status, backend) in cases {
        let got = h2_over_tls(port, sni, authority).await;
        assert_eq!(
            got,
            (status, backend.map(str::to_owned)),
            "SNI {sni}, :authority {authority}"
        );
    }
    gateway.shutdown().await;
}

/// An HTTPS keep-alive connection follows each apply from its next request (route changes,
/// the listener's certificate rotated); once the configuration serves its SNI with no
/// listener, its next request gets `421` and the connection is closed, so the client
/// reconnects to what the new configuration serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_https_keep_alive_follows_apply_and_gets_421_when_its_listener_goes() {
    let a = http_echo("a").await;
    let b = http_echo("b").await;
    let port = free_port();
    let yaml = |hostname: &str, cert: &(String, String), backend: &str| {
        docs(&[
            gateway_yaml(&[listener_yaml(
                "web",
                port,
                "HTTPS",
                Some(hostname),
                &terminate("cert"),
            )]),
            tls_secret_yaml("default", "cert", &cert.0, &cert.1),
            format!(
                "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]
"
            ),
            service_yaml("default", "a", a),
            service_yaml("default", "b", b),
        ])
    };
    let first = self_signed(&["a.example.com"]);
    let rotated = self_signed(&["a.example.com"]);
    let other = self_signed(&["c.example.com"]);
    let gateway = start(&yaml("a.example.com", &first, "a")).await;
    let client = connect(port, Some("a.example.com"), ALL).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(client.stream))
    .await
    .unwrap();
    let ended = tokio::spawn(conn);
    let mut ask = async move || {
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(
                http::Request::get("/")
                    .header("host", "a.example.com")
                    .body(http_body_util::Empty::new())
                    .unwrap(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let close = resp.headers().get("connection").cloned();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, close, String::from_utf8_lossy(&body).into_owned()))
    };
    let (status, _, body) = ask().await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("backend=a"), "{body}");

    // The route moves to b and the certificate is rotated: same listener, same connection.
    let report = gateway
        .apply(&compile_yaml(&yaml("a.example.com", &rotated, "b")))
        .await;
    assert!(report.is_complete(), "{report:?}");
    let (status, _, body) = ask().await.unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("backend=b"), "{body}");

    // The listener now serves c.example.com only: a.example.com has no listener.
    let report = gateway
        .apply(&compile_yaml(&yaml("c.example.com", &other, "b")))
        .await;
    assert!(report.is_complete(), "{report:?}");
    let (status, close, _) = ask().await.unwrap();
    assert_eq!(status, 421);
    assert_eq!(close.as_ref().map(|v| v.as_bytes()), Some(&b"close"[..]));
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the gateway closes the connection")
        .unwrap()
        .unwrap();
    let fresh = connect(port, Some("c.example.com"), ALL).await.unwrap();
    assert_eq!(fresh.cert, der(&other.0));
    gateway.shutdown().await;
}

/// A TLS passthrough stream whose TLSRoute is removed (the listener stays) is closed once the
/// drain timeout has passed, not before; one whose route only changes backends goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_stream_of_a_removed_route_closes_after_the_drain_timeout() {
    let echo = tcp_echo().await;
    let other = tcp_echo().await;
    let port = free_port();
    let yaml = |routes: &[String]| {
        let mut parts = vec![
            gateway_yaml(&[listener_yaml(
                "pass",
                port,
                "TLS",
                None,
                "{mode: Passthrough}",
            )]),
            service_yaml("default", "echo", echo),
            service_yaml("default", "other", other),
        ];
        parts.extend_from_slice(routes);
        docs(&parts)
    };
    let kept = |service: &str| tls_route_yaml("kept", "pass", &["kept.example.com"], service);
    let gone = tls_route_yaml("gone", "pass", &["gone.example.com"], "echo");
    let mut config = GatewayConfig::default();
    config.listener.drain_timeout = Duration::from_secs(1);
    let gateway = start_with(&yaml(&[kept("echo"), gone.clone()]), config).await;
    // Raw streams: the echo backend sends the ClientHello back, then echoes.
    let open = |sni: &'static str| async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let hello = client_hello_bytes(sni);
        stream.write_all(&hello).await.unwrap();
        let mut back = vec![0u8; hello.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(back, hello);
        stream
    };
    let roundtrip = async |stream: &mut TcpStream, text: &str| {
        stream.write_all(text.as_bytes()).await.unwrap();
        let mut back = vec![0u8; text.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(back, text.as_bytes());
    };
    let mut on_kept = open("kept.example.com").await;
    let mut on_gone = open("gone.example.com").await;

    let report = gateway.apply(&compile_yaml(&yaml(&[kept("other")]))).await;
    assert!(report.is_complete(), "{report:?}");
    // Within the drain timeout both streams still flow.
    roundtrip(&mut on_gone, "draining").await;
    let rest = read_to_end_within(&mut on_gone, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "closed without more bytes");
    assert_eq!(
        metric(
            &gateway,
            r#"gateway_tcp_streams_closed_total{reason="route_removed"}"#
        ),
        Some(1.0)
    );
    roundtrip(&mut on_kept, "the route stays, its backend changed").await;
    gateway.shutdown().await;
}
