//! Helpers shared by the data-plane tests: manifests → running gateway, backends, certificates.

#![allow(dead_code)] // each test module uses a subset

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::compile::{Options, compile};
use gateway_core::ir::Ir;
use gateway_net::{Gateway, GatewayConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// The GatewayClass every test manifest uses.
pub(crate) const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: test}
spec: {controllerName: example.com/gateway}
";

/// Compiles YAML manifests (multi-document) into an Ir; panics with the problems if they do
/// not load or are not all healthy, so a broken fixture fails loudly.
pub(crate) fn compile_yaml(yaml: &str) -> Ir {
    let snapshot = gateway_file::load_str(Path::new("test.yaml"), yaml, &Default::default())
        .unwrap_or_else(|e| panic!("test manifests do not load:\n{e}"));
    let (ir, status) = compile(&snapshot, &Options::default());
    assert!(
        status.all_healthy(),
        "test manifests are not healthy:\n{}",
        status.to_table()
    );
    ir
}

/// Compiles without requiring a healthy status (for tests of invalid configurations).
pub(crate) fn compile_yaml_any(yaml: &str) -> Ir {
    compile_with_status(yaml).0
}

/// Compiles and returns compile's status too.
pub(crate) fn compile_with_status(yaml: &str) -> (Ir, gateway_core::status::Status) {
    let snapshot = gateway_file::load_str(Path::new("test.yaml"), yaml, &Default::default())
        .unwrap_or_else(|e| panic!("test manifests do not load:\n{e}"));
    compile(&snapshot, &Options::default())
}

/// Starts a gateway on `yaml` and checks that everything was served.
pub(crate) async fn start(yaml: &str) -> Gateway {
    start_with(yaml, GatewayConfig::default()).await
}

/// Same, with a configuration.
pub(crate) async fn start_with(yaml: &str, config: GatewayConfig) -> Gateway {
    let gateway = Gateway::new(config);
    let report = gateway.apply(&compile_yaml(yaml)).await;
    assert!(report.is_complete(), "{report:?}");
    gateway
}

/// One HTTP/1.1 client connection to the gateway on 127.0.0.1:`port`, driven by a task of
/// its own.
pub(crate) async fn http1_connection<B>(port: u16) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    sender
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests on loopback).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free UDP port on 127.0.0.1.
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// A Service `name` in `namespace` on port 80 whose single endpoint is `backend`.
pub(crate) fn service_yaml(namespace: &str, name: &str, backend: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [\"{ip}\"]}}]
",
        port = backend.port(),
        ip = backend.ip(),
    )
}

/// What the echo backend saw, as it reports it in its answer.
#[derive(Debug)]
pub(crate) struct Echoed {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

/// An HTTP/1.1 + h2c backend answering `200` with a plain-text body:
/// `backend=<name>\nmethod=..\npath=..\nhost=..\nversion=..\n<header>: <value>\n...`.
/// The path includes the query. The response carries `x-backend: <name>`.
pub(crate) async fn http_echo(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let address = listener.local_addr().expect("echo address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let mut text = format!(
                        "backend={name}\nmethod={}\npath={}\nhost={}\nversion={:?}\n",
                        req.method(),
                        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
                        req.headers()
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .or(req.uri().authority().map(|a| a.as_str()))
                            .unwrap_or(""),
                        req.version(),
                    );
                    for (k, v) in req.headers() {
                        text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
                    }
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    text.push_str(&format!("body-bytes={}\n", body.len()));
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("x-backend", name)
                            .body(Full::new(Bytes::from(text)))
                            .expect("valid response"),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// A TCP backend echoing every byte back, half-close aware (it shuts down its write side after
/// the client's FIN).
pub(crate) async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind tcp echo");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    address
}

/// A UDP backend echoing every datagram back to its sender, prefixed with `tag`.
pub(crate) async fn udp_echo(tag: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp echo");
    let address = socket.local_addr().expect("address");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let mut reply = tag.as_bytes().to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    address
}

/// A self-signed certificate and key (PEM) for `names`.
pub(crate) fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

/// A `kubernetes.io/tls` Secret manifest.
pub(crate) fn tls_secret_yaml(
    namespace: &str,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}",
        indent(cert_pem),
        indent(key_pem)
    )
}

/// Reads until EOF with a deadline.
pub(crate) async fn read_to_end_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    out
}

/// The value of one series (`name{labels}`) of a gateway's metrics, if present.
pub(crate) fn metric(gateway: &Gateway, series: &str) -> Option<f64> {
    let mut text = String::new();
    gateway
        .metrics()
        .encode(&mut text)
        .expect("writing to a String");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Streams spliced by `gateway` (counted when the copy starts, so no waiting needed).
pub(crate) fn spliced(gateway: &Gateway) -> f64 {
    metric(gateway, r#"gateway_tcp_splice_total{outcome="spliced"}"#).expect("splice counter")
}

/// Whether the default configuration splices on this system.
pub(crate) const SPLICES: bool = cfg!(target_os = "linux");

/// What the process-wide tracing subscriber of the access-log tests has written.
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON access-log lines written so far by every gateway of this test binary.
///
/// One process-wide subscriber, installed on first use: a thread-local default loses events
/// now and then while other tests register the same callsites concurrently (tracing caches
/// callsite interest and the maximum level process-wide). Tests find their own lines by a
/// path no other test requests.
pub(crate) fn access_log_lines() -> Vec<serde_json::Value> {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    });
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access_log")
        .collect()
}
