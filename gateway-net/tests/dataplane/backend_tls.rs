//! BackendTLSPolicy: TLS from the gateway to backends. In-process rustls backends signed by
//! test CAs record what they saw of each handshake (SNI, ALPN, client certificate) and how
//! many connections they accepted; clients only see the gateway's answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_net::{Gateway, GatewayConfig};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{
    CLASS, compile_with_status, compile_yaml, compile_yaml_any, free_port, http_echo, metric,
    read_to_end_within, self_signed, service_yaml, start, tls_secret_yaml,
};
use crate::http::{forward_rule, gateway_yaml, get, grpc_frames, h2_client, route_yaml};

// === certificates ===

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A test CA: its certificate (PEM) and what it signs with.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for the DNS names `dns`, changed by `edit`: (certificate PEM, key PEM).
    fn issue_with(
        &self,
        dns: &[&str],
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> (String, String) {
        let names: Vec<String> = dns.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        edit(&mut params);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn issue(&self, dns: &[&str]) -> (String, String) {
        self.issue_with(dns, |_| {})
    }
}

// === TLS backends ===

/// What a backend speaks over its TLS connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Speaks {
    /// HTTP/1.1 only, ALPN `http/1.1`.
    Http1,
    /// HTTP/2 only, ALPN `h2`.
    Http2,
    /// A byte stream echoed back, no ALPN.
    Echo,
}

/// What a backend saw of one completed TLS handshake.
#[derive(Clone, Debug)]
struct Handshake {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    client_cert: Option<CertificateDer<'static>>,
}

struct TlsBackend {
    addr: SocketAddr,
    /// TCP connections accepted (whether their handshake completed or not).
    accepted: Arc<AtomicUsize>,
    /// Completed handshakes, in order.
    handshakes: Arc<watch::Sender<Vec<Handshake>>>,
}

impl TlsBackend {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.borrow().clone()
    }

    /// Waits (at most 10 s) until `n` handshakes have completed.
    async fn wait_for_handshakes(&self, n: usize) -> Vec<Handshake> {
        let mut seen = self.handshakes.subscribe();
        tokio::time::timeout(Duration::from_secs(10), seen.wait_for(|h| h.len() >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} handshakes: {:?}", self.handshakes()))
            .unwrap()
            .clone()
    }
}

/// An HTTP answer telling the version and path the backend saw; gRPC requests
/// (`content-type: application/grpc`) get their body echoed with `grpc-status: 0` trailers.
async fn answer(
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let version = req.version();
    let path = req.uri().path().to_owned();
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let builder = Response::builder().header("x-backend-version", format!("{version:?}"));
    let response = if grpc {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        builder
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(
                Full::new(body)
                    .with_trailers(async move { Some(Ok(trailers)) })
                    .boxed(),
            )
    } else {
        let text = format!("backend=tls\nversion={version:?}\npath={path}\n");
        builder.body(Full::new(Bytes::from(text)).boxed())
    };
    Ok(response.expect("valid response"))
}

/// A TLS backend on 127.0.0.1 presenting `cert` (its leaf only: the CA is the policy's),
/// requiring client certificates signed by `client_ca` when given.
async fn tls_backend(
    cert: &(String, String),
    speaks: Speaks,
    client_ca: Option<&str>,
) -> TlsBackend {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(der(ca)).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(
            vec![der(&cert.0)],
            PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = match speaks {
        Speaks::Http1 => vec![b"http/1.1".to_vec()],
        Speaks::Http2 => vec![b"h2".to_vec()],
        Speaks::Echo => Vec::new(),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = TlsBackend {
        addr: listener.local_addr().unwrap(),
        accepted: Arc::default(),
        handshakes: Arc::new(watch::Sender::new(Vec::new())),
    };
    let (accepted, handshakes) = (backend.accepted.clone(), backend.handshakes.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, handshakes) = (acceptor.clone(), handshakes.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                let seen = Handshake {
                    sni: conn.server_name().map(str::to_owned),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    client_cert: conn
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned()),
                };
                handshakes.send_modify(|h| h.push(seen));
                match speaks {
                    Speaks::Http1 => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service_fn(answer))
                            .await;
                    }
                    Speaks::Http2 => {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service_fn(answer))
                            .await;
                    }
                    Speaks::Echo => {
                        let (mut r, mut w) = tokio::io::split(tls);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        let _ = w.shutdown().await;
                    }
                }
            });
        }
    });
    backend
}

// === manifests ===

/// Joins manifests (each ending with a newline) into one multi-document YAML.
fn docs(parts: &[String]) -> String {
    parts.join("---\n")
}

/// A Service `name` in `default` whose port 80, named `https` (with `appProtocol` when
/// given), has the single endpoint `backend`.
fn tls_service_yaml(name: &str, backend: SocketAddr, app_protocol: Option<&str>) -> String {
    let app_protocol = app_protocol
        .map(|p| format!(", appProtocol: \"{p}\""))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: https, port: 80, targetPort: {port}{app_protocol}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: https, port: {port}}}]
endpoints: [{{addresses: [\"{ip}\"]}}]
",
        port = backend.port(),
        ip = backend.ip(),
    )
}

/// A ConfigMap `name` in `default` with `ca.crt`.
fn ca_yaml(name: &str, pem: &str) -> String {
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data:
  ca.crt: |
{indented}"
    )
}

/// An entry of `validation.subjectAltNames`.
enum San<'a> {
    Hostname(&'a str),
    Uri(&'a str),
}

/// A BackendTLSPolicy `name` in `default` on the Services `targets` (port `section`, or the
/// whole Service), trusting the ConfigMap `ca`.
fn policy_yaml(
    name: &str,
    targets: &[&str],
    section: Option<&str>,
    ca: &str,
    hostname: &str,
    sans: &[San<'_>],
) -> String {
    let section = section
        .map(|s| format!(", sectionName: {s}"))
        .unwrap_or_default();
    let targets: Vec<String> = targets
        .iter()
        .map(|t| format!("{{group: \"\", kind: Service, name: {t}{section}}}"))
        .collect();
    let sans = if sans.is_empty() {
        String::new()
    } else {
        let items: Vec<String> = sans
            .iter()
            .map(|s| match s {
                San::Hostname(h) => format!("{{type: Hostname, hostname: \"{h}\"}}"),
                San::Uri(u) => format!("{{type: URI, uri: \"{u}\"}}"),
            })
            .collect();
        format!("    subjectAltNames: [{}]\n", items.join(", "))
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: {name}, namespace: default}}
spec:
  targetRefs: [{}]
  validation:
    caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: {ca}}}]
    hostname: \"{hostname}\"
{sans}",
        targets.join(", ")
    )
}

/// The HTTP gateway of the HTTP tests (listener on `port`), an HTTPRoute for `example.com`
/// with `rules`, and `parts`.
fn http_yaml(port: u16, rules: &str, parts: &[String]) -> String {
    let mut all = vec![gateway_yaml(port), route_yaml("web", "example.com", rules)];
    all.extend_from_slice(parts);
    docs(&all)
}

/// The same Gateway offering the client certificate of Secret `secret` to TLS backends.
fn with_backend_client_certificate(gateway: String, secret: &str) -> String {
    // The HTTP tests' Gateway ends with its `spec.listeners` line.
    format!(
        "{gateway}  tls: {{backend: {{clientCertificateRef: {{group: \"\", kind: Secret, name: {secret}}}}}}}\n"
    )
}

/// Starts a gateway on manifests that need not be healthy (unusable backends).
async fn start_unhealthy(yaml: &str) -> Gateway {
    let gateway = Gateway::new(GatewayConfig::default());
    let report = gateway.apply(&compile_yaml_any(yaml)).await;
    assert!(report.bind_failures.is_empty(), "{report:?}");
    gateway
}

/// One backend `web` behind a policy `web-tls` for `backend.example.com` trusting `ca`: the
/// manifests after the Gateway and route.
fn web_behind_policy(backend: &TlsBackend, ca: &Ca) -> Vec<String> {
    vec![
        tls_service_yaml("web", backend.addr, None),
        ca_yaml("web-ca", &ca.pem),
        policy_yaml(
            "web-tls",
            &["web"],
            None,
            "web-ca",
            "backend.example.com",
            &[],
        ),
    ]
}

const CERTIFICATE_FAILURES: &str =
    r#"gateway_upstream_failures_total{protocol="http",reason="tls_certificate"}"#;
const HANDSHAKE_FAILURES: &str =
    r#"gateway_upstream_failures_total{protocol="http",reason="tls_handshake"}"#;

// === HTTP over TLS ===

/// The policy's hostname is the SNI, ALPN offers http/1.1 to an HTTP/1 backend, the chain
/// leads to the ConfigMap's CA: the request goes through, and the policy is Accepted with the
/// Gateway as ancestor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_http1_sends_sni_and_alpn_and_verifies_the_chain() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Http1, None).await;
    let port = free_port();
    let yaml = http_yaml(
        port,
        &forward_rule("web"),
        &[
            tls_service_yaml("web", backend.addr, None),
            ca_yaml("web-ca", &ca.pem),
            // By port name: the policy names the Service's `https` port.
            policy_yaml(
                "web-tls",
                &["web"],
                Some("https"),
                "web-ca",
                "backend.example.com",
                &[],
            ),
        ],
    );
    let (_, status) = compile_with_status(&yaml);
    let policy = status
        .policies
        .iter()
        .find(|p| p.key.name == "web-tls")
        .expect("the policy has a status");
    let ancestors: Vec<_> = policy
        .status
        .ancestors
        .iter()
        .map(|a| a.ancestor_ref.name.as_str())
        .collect();
    assert_eq!(ancestors, ["gw"]);
    assert!(
        policy.status.ancestors[0]
            .conditions
            .iter()
            .all(|c| c.is_true()),
        "{}",
        status.to_table()
    );

    let gateway = start(&yaml).await;
    let reply = get(port, "example.com", "/over/tls").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("backend=tls\n"), "{}", reply.body);
    assert!(reply.body.contains("version=HTTP/1.1\n"), "{}", reply.body);
    assert!(reply.body.contains("path=/over/tls\n"), "{}", reply.body);
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0].sni.as_deref(), Some("backend.example.com"));
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(handshakes[0].client_cert.is_none(), "no client certificate");
    gateway.shutdown().await;
}

/// Handshakes that fail for another reason than the certificate: 503, counted as
/// `tls_handshake`. A plaintext backend (it answers the ClientHello with an HTTP error), and
/// a backend speaking HTTP/2 only to an HTTP/1 route (no common ALPN protocol).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_handshake_failures_are_503_and_counted() {
    let plaintext = http_echo("plaintext").await;
    let ca = Ca::new("backend CA");
    let h2_only = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Http2, None).await;
    let rules = "  - matches: [{path: {value: /plaintext}}]
    backendRefs: [{name: plaintext, port: 80}]
  - matches: [{path: {value: /h2-only}}]
    backendRefs: [{name: h2-only, port: 80}]
";
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        rules,
        &[
            tls_service_yaml("plaintext", plaintext, None),
            tls_service_yaml("h2-only", h2_only.addr, None),
            ca_yaml("ca", &ca.pem),
            policy_yaml(
                "tls",
                &["plaintext", "h2-only"],
                None,
                "ca",
                "backend.example.com",
                &[],
            ),
        ],
    ))
    .await;
    let reply = get(port, "example.com", "/plaintext").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(!reply.body.contains("backend=plaintext"), "{}", reply.body);
    assert_eq!(metric(&gateway, HANDSHAKE_FAILURES), Some(1.0));
    let reply = get(port, "example.com", "/h2-only").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(metric(&gateway, HANDSHAKE_FAILURES), Some(2.0));
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(0.0));
    assert_eq!(h2_only.accepted(), 1);
    assert!(h2_only.handshakes().is_empty());
    gateway.shutdown().await;
}

/// A certificate for another name than the policy's hostname: 503, counted as a refused
/// certificate, and no request reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_wrong_name_is_503_and_counted() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(&ca.issue(&["other.example.com"]), Speaks::Http1, None).await;
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        &forward_rule("web"),
        &web_behind_policy(&backend, &ca),
    ))
    .await;
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(0.0));
    let reply = get(port, "example.com", "/").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(1.0));
    assert_eq!(metric(&gateway, HANDSHAKE_FAILURES), Some(0.0));
    assert_eq!(backend.accepted(), 1, "the gateway connected");
    assert!(
        backend.handshakes().is_empty(),
        "the gateway gave the handshake up"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_expired_certificate_is_503() {
    let ca = Ca::new("backend CA");
    let expired = ca.issue_with(&["backend.example.com"], |p| {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    let backend = tls_backend(&expired, Speaks::Http1, None).await;
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        &forward_rule("web"),
        &web_behind_policy(&backend, &ca),
    ))
    .await;
    let reply = get(port, "example.com", "/").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(1.0));
    assert!(backend.handshakes().is_empty());
    gateway.shutdown().await;
}

/// The right name, signed by a CA the policy does not trust: 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_untrusted_chain_is_503() {
    let trusted = Ca::new("trusted CA");
    let stranger = Ca::new("stranger CA");
    let backend = tls_backend(
        &stranger.issue(&["backend.example.com"]),
        Speaks::Http1,
        None,
    )
    .await;
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        &forward_rule("web"),
        &web_behind_policy(&backend, &trusted),
    ))
    .await;
    let reply = get(port, "example.com", "/").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(1.0));
    assert!(backend.handshakes().is_empty());
    gateway.shutdown().await;
}

/// With `subjectAltNames` the certificate must carry one of them instead of the hostname
/// (still sent as SNI): a URI SAN matches exactly, a Hostname SAN as a DNS name; names the
/// certificate lacks are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_subject_alt_names_replace_the_hostname() {
    const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/web";
    let ca = Ca::new("backend CA");
    let cert = ca.issue_with(&["pod.internal"], |p| {
        p.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from(SPIFFE).unwrap(),
        ));
    });
    let backend = tls_backend(&cert, Speaks::Http1, None).await;
    let rules = "  - matches: [{path: {value: /uri}}]
    backendRefs: [{name: uri, port: 80}]
  - matches: [{path: {value: /dns}}]
    backendRefs: [{name: dns, port: 80}]
  - matches: [{path: {value: /none}}]
    backendRefs: [{name: none, port: 80}]
";
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        rules,
        &[
            tls_service_yaml("uri", backend.addr, None),
            tls_service_yaml("dns", backend.addr, None),
            tls_service_yaml("none", backend.addr, None),
            ca_yaml("ca", &ca.pem),
            policy_yaml(
                "uri",
                &["uri"],
                None,
                "ca",
                "web.default.svc",
                &[San::Uri(SPIFFE)],
            ),
            policy_yaml(
                "dns",
                &["dns"],
                None,
                "ca",
                "web.default.svc",
                &[
                    San::Hostname("other.internal"),
                    San::Hostname("pod.internal"),
                ],
            ),
            policy_yaml(
                "none",
                &["none"],
                None,
                "ca",
                // The certificate's own name, but the SANs decide.
                "pod.internal",
                &[
                    San::Uri("spiffe://cluster.local/ns/default/sa/other"),
                    San::Uri("spiffe://cluster.local/ns/default/sa/web/"),
                    San::Hostname("other.internal"),
                ],
            ),
        ],
    ))
    .await;

    let reply = get(port, "example.com", "/uri").await;
    assert_eq!(reply.status, 200, "URI SAN: {}", reply.body);
    let reply = get(port, "example.com", "/dns").await;
    assert_eq!(reply.status, 200, "Hostname SAN: {}", reply.body);
    let handshakes = backend.handshakes();
    let snis: Vec<_> = handshakes.iter().map(|h| h.sni.as_deref()).collect();
    assert_eq!(
        snis,
        [Some("web.default.svc"), Some("web.default.svc")],
        "the hostname is still the SNI"
    );

    let reply = get(port, "example.com", "/none").await;
    assert_eq!(reply.status, 503, "no SAN matches: {}", reply.body);
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(1.0));
    assert_eq!(backend.handshakes().len(), 2);
    gateway.shutdown().await;
}

/// A backend requiring client certificates: the Gateway's `spec.tls.backend`
/// `clientCertificateRef` is offered and accepted; without it the backend refuses the
/// gateway (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_gateway_client_certificate() {
    let server_ca = Ca::new("backend CA");
    let client_ca = Ca::new("gateway client CA");
    let client = client_ca.issue(&["gateway.example.com"]);
    let backend = tls_backend(
        &server_ca.issue(&["backend.example.com"]),
        Speaks::Http1,
        Some(&client_ca.pem),
    )
    .await;

    let port = free_port();
    let mut parts = vec![
        with_backend_client_certificate(gateway_yaml(port), "gw-client"),
        route_yaml("web", "example.com", &forward_rule("web")),
        tls_secret_yaml("default", "gw-client", &client.0, &client.1),
    ];
    parts.extend(web_behind_policy(&backend, &server_ca));
    let gateway = start(&docs(&parts)).await;
    let reply = get(port, "example.com", "/mtls").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(
        handshakes[0].client_cert.as_ref(),
        Some(&der(&client.0)),
        "the backend saw the Gateway's client certificate"
    );
    gateway.shutdown().await;

    // The same without clientCertificateRef.
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        &forward_rule("web"),
        &web_behind_policy(&backend, &server_ca),
    ))
    .await;
    let reply = get(port, "example.com", "/mtls").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(
        backend.handshakes().len(),
        1,
        "no handshake without a client certificate"
    );
    // TLS 1.3: the backend's refusal (an alert) arrives inside the exchange; it is still a
    // certificate failure.
    assert_eq!(metric(&gateway, CERTIFICATE_FAILURES), Some(1.0));
    gateway.shutdown().await;
}

/// gRPC (GRPCRoute) and an HTTPRoute to an `appProtocol: kubernetes.io/h2c` port, to a TLS
/// backend that speaks HTTP/2 only: ALPN h2, and HTTP/2 on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_grpc_and_h2_negotiate_h2() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Http2, None).await;
    let port = free_port();
    let grpc_route = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example]
  rules: [{backendRefs: [{name: grpc, port: 80}]}]
"
    .to_owned();
    let gateway = start(&http_yaml(
        port,
        &forward_rule("h2"),
        &[
            grpc_route,
            tls_service_yaml("grpc", backend.addr, None),
            tls_service_yaml("h2", backend.addr, Some("kubernetes.io/h2c")),
            ca_yaml("ca", &ca.pem),
            policy_yaml(
                "h2-tls",
                &["grpc", "h2"],
                None,
                "ca",
                "backend.example.com",
                &[],
            ),
        ],
    ))
    .await;

    let mut client = h2_client(port).await;
    let call = Request::post("http://grpc.example/echo.Echo/Unary")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_frames(&[b"hello"])))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.send_request(call))
        .await
        .expect("gRPC answer within 10 s")
        .expect("gRPC answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backend-version"], "HTTP/2.0");
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), grpc_frames(&[b"hello"]));

    // An HTTP/1.1 client; the gateway speaks HTTP/2 to the h2c port over TLS.
    let reply = get(port, "example.com", "/h2").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("version=HTTP/2.0\n"), "{}", reply.body);

    let handshakes = backend.handshakes();
    assert!(!handshakes.is_empty());
    for h in &handshakes {
        assert_eq!(h.alpn.as_deref(), Some(&b"h2"[..]), "{handshakes:?}");
        assert_eq!(h.sni.as_deref(), Some("backend.example.com"));
    }
    drop(client);
    gateway.shutdown().await;
}

// === failing closed ===

/// The policy's CA ConfigMap does not exist: the policy is not accepted, the backend is
/// unusable (500) and never contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_missing_ca_config_map_is_500() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Http1, None).await;
    let port = free_port();
    let yaml = http_yaml(
        port,
        &forward_rule("web"),
        &[
            tls_service_yaml("web", backend.addr, None),
            policy_yaml(
                "web-tls",
                &["web"],
                None,
                "absent",
                "backend.example.com",
                &[],
            ),
        ],
    );
    let (_, status) = compile_with_status(&yaml);
    let policy = status
        .policies
        .iter()
        .find(|p| p.key.name == "web-tls")
        .unwrap_or_else(|| panic!("the policy has a status:\n{}", status.to_table()));
    assert_eq!(policy.status.ancestors.len(), 1);
    let ancestor = &policy.status.ancestors[0];
    assert_eq!(ancestor.ancestor_ref.name, "gw");
    let condition = |type_: &str| {
        let c = ancestor
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("{type_}: {}", status.to_table()));
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(
        condition("Accepted"),
        ("False".to_owned(), "NoValidCACertificate".to_owned())
    );
    assert_eq!(
        condition("ResolvedRefs"),
        ("False".to_owned(), "InvalidCACertificateRef".to_owned())
    );

    let gateway = start_unhealthy(&yaml).await;
    let reply = get(port, "example.com", "/").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(backend.accepted(), 0, "never contacted");
    gateway.shutdown().await;
}

/// A Service port with `appProtocol: https` and no policy: unusable (500), and the gateway
/// sends nothing to the backend, not even a connection. With a policy the same port is
/// served over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_https_app_protocol_needs_a_policy_and_never_gets_plaintext() {
    let ca = Ca::new("backend CA");
    let cert = ca.issue(&["backend.example.com"]);
    let unguarded = tls_backend(&cert, Speaks::Http1, None).await;
    let guarded = tls_backend(&cert, Speaks::Http1, None).await;
    let rules = "  - matches: [{path: {value: /unguarded}}]
    backendRefs: [{name: unguarded, port: 80}]
  - matches: [{path: {value: /guarded}}]
    backendRefs: [{name: guarded, port: 80}]
";
    let port = free_port();
    let gateway = start_unhealthy(&http_yaml(
        port,
        rules,
        &[
            tls_service_yaml("unguarded", unguarded.addr, Some("https")),
            tls_service_yaml("guarded", guarded.addr, Some("https")),
            ca_yaml("ca", &ca.pem),
            policy_yaml(
                "guarded",
                &["guarded"],
                None,
                "ca",
                "backend.example.com",
                &[],
            ),
        ],
    ))
    .await;
    let reply = get(port, "example.com", "/unguarded").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(unguarded.accepted(), 0, "no connection to the backend");

    let reply = get(port, "example.com", "/guarded").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("version=HTTP/1.1\n"), "{}", reply.body);
    let handshakes = guarded.handshakes();
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    gateway.shutdown().await;
}

/// Sequential requests reuse the pooled TLS connection: one TCP connection, one handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_connections_are_pooled() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Http1, None).await;
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        &forward_rule("web"),
        &web_behind_policy(&backend, &ca),
    ))
    .await;
    for path in ["/first", "/second", "/third"] {
        let reply = get(port, "example.com", path).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains(&format!("path={path}\n")),
            "{}",
            reply.body
        );
    }
    assert_eq!(backend.accepted(), 1, "one connection for all requests");
    assert_eq!(backend.handshakes().len(), 1);
    gateway.shutdown().await;
}

/// A reload that leaves the policy as it was keeps the pooled TLS connection; one that
/// changes it (another hostname) opens a new connection with the new settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_reload_keeps_the_pool_until_the_policy_changes() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(
        &ca.issue(&["backend.example.com", "renamed.example.com"]),
        Speaks::Http1,
        None,
    )
    .await;
    let port = free_port();
    let yaml = |hostname: &str| {
        http_yaml(
            port,
            &forward_rule("web"),
            &[
                tls_service_yaml("web", backend.addr, None),
                ca_yaml("web-ca", &ca.pem),
                policy_yaml("web-tls", &["web"], None, "web-ca", hostname, &[]),
            ],
        )
    };
    let gateway = start(&yaml("backend.example.com")).await;
    assert_eq!(get(port, "example.com", "/").await.status, 200);

    let report = gateway
        .apply(&compile_yaml(&yaml("backend.example.com")))
        .await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(get(port, "example.com", "/").await.status, 200);
    assert_eq!(
        backend.accepted(),
        1,
        "same policy: the pooled connection is reused"
    );

    let report = gateway
        .apply(&compile_yaml(&yaml("renamed.example.com")))
        .await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(get(port, "example.com", "/").await.status, 200);
    assert_eq!(backend.accepted(), 2, "new settings: a new connection");
    let snis: Vec<_> = backend
        .handshakes()
        .into_iter()
        .map(|h| h.sni.unwrap_or_default())
        .collect();
    assert_eq!(snis, ["backend.example.com", "renamed.example.com"]);
    gateway.shutdown().await;
}

/// A policy naming the port (`sectionName`) applies before one on the whole Service, even a
/// newer one; of two policies on the same target the older applies and the other is
/// `Accepted=False/Conflicted`. The SNI the backend sees tells which applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_policy_precedence_and_conflicts() {
    let ca = Ca::new("backend CA");
    let backend = tls_backend(
        &ca.issue(&[
            "whole.example.com",
            "port.example.com",
            "older.example.com",
            "newer.example.com",
        ]),
        Speaks::Http1,
        None,
    )
    .await;
    let created = |policy: String, at: &str| {
        policy.replacen(
            "namespace: default}",
            &format!("namespace: default, creationTimestamp: \"{at}\"}}"),
            1,
        )
    };
    let rules = "  - matches: [{path: {value: /section}}]
    backendRefs: [{name: section, port: 80}]
  - matches: [{path: {value: /conflict}}]
    backendRefs: [{name: conflict, port: 80}]
";
    let port = free_port();
    let yaml = http_yaml(
        port,
        rules,
        &[
            tls_service_yaml("section", backend.addr, None),
            tls_service_yaml("conflict", backend.addr, None),
            ca_yaml("ca", &ca.pem),
            created(
                policy_yaml("whole", &["section"], None, "ca", "whole.example.com", &[]),
                "2024-01-01T00:00:00Z",
            ),
            created(
                policy_yaml(
                    "port",
                    &["section"],
                    Some("https"),
                    "ca",
                    "port.example.com",
                    &[],
                ),
                "2024-06-01T00:00:00Z",
            ),
            // By name `newer` would come first: creation time decides.
            created(
                policy_yaml("older", &["conflict"], None, "ca", "older.example.com", &[]),
                "2024-01-01T00:00:00Z",
            ),
            created(
                policy_yaml("newer", &["conflict"], None, "ca", "newer.example.com", &[]),
                "2024-06-01T00:00:00Z",
            ),
        ],
    );
    let (_, status) = compile_with_status(&yaml);
    let accepted = |name: &str| {
        let policy = status
            .policies
            .iter()
            .find(|p| p.key.name == name)
            .unwrap_or_else(|| panic!("{name}: {}", status.to_table()));
        let c = policy.status.ancestors[0]
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted")
            .unwrap();
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(accepted("port"), ("True".to_owned(), "Accepted".to_owned()));
    assert_eq!(
        accepted("older"),
        ("True".to_owned(), "Accepted".to_owned())
    );
    assert_eq!(
        accepted("newer"),
        ("False".to_owned(), "Conflicted".to_owned())
    );

    let gateway = start_unhealthy(&yaml).await;
    assert_eq!(get(port, "example.com", "/section").await.status, 200);
    assert_eq!(get(port, "example.com", "/conflict").await.status, 200);
    let snis: Vec<_> = backend
        .handshakes()
        .into_iter()
        .map(|h| h.sni.unwrap_or_default())
        .collect();
    assert_eq!(snis, ["port.example.com", "older.example.com"]);
    gateway.shutdown().await;
}

/// A RequestMirror to a Service a policy covers is sent over TLS too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_mirror_goes_over_tls() {
    let main = http_echo("main").await;
    let ca = Ca::new("backend CA");
    let mirror = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Http1, None).await;
    let rules = "  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 80}}
    backendRefs: [{name: main, port: 80}]
";
    let port = free_port();
    let gateway = start(&http_yaml(
        port,
        rules,
        &[
            service_yaml("default", "main", main),
            tls_service_yaml("mirror", mirror.addr, None),
            ca_yaml("ca", &ca.pem),
            policy_yaml(
                "mirror-tls",
                &["mirror"],
                None,
                "ca",
                "backend.example.com",
                &[],
            ),
        ],
    ))
    .await;
    let reply = get(port, "example.com", "/copied").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("backend=main"), "{}", reply.body);
    let handshakes = mirror.wait_for_handshakes(1).await;
    assert_eq!(handshakes[0].sni.as_deref(), Some("backend.example.com"));
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    gateway.shutdown().await;
}

// === TCP and TLS streams ===

/// A TLS client trusting exactly `root`.
async fn tls_connect(
    port: u16,
    sni: &str,
    root: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(der(root)).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp),
    )
    .await
    .expect("handshake within 5 s")
    .expect("handshake with the gateway")
}

/// Writes `text` and reads as many bytes back.
async fn echo(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    text: &str,
) -> Vec<u8> {
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut back = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo within 5 s")
        .expect("echo");
    back
}

/// A TCPRoute and a TLSRoute (Terminate) to a backend a policy covers: the gateway
/// re-encrypts, without ALPN; a backend with the wrong name gets no bytes and the client's
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_tcp_and_tls_terminate_routes_re_encrypt() {
    let ca = Ca::new("backend CA");
    let good = tls_backend(&ca.issue(&["backend.example.com"]), Speaks::Echo, None).await;
    let bad = tls_backend(&ca.issue(&["other.example.com"]), Speaks::Echo, None).await;
    let (tcp_port, bad_port, tls_port) = (free_port(), free_port(), free_port());
    let front = self_signed(&["term.example.com"]);
    let gateway_yaml = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: test
  listeners:
  - {{name: tcp, protocol: TCP, port: {tcp_port}}}
  - {{name: bad, protocol: TCP, port: {bad_port}}}
  - name: term
    protocol: TLS
    port: {tls_port}
    hostname: term.example.com
    tls: {{mode: Terminate, certificateRefs: [{{name: front}}]}}
"
    );
    // A route of `kind` to Service `service` on listener `section`, with more `spec` lines.
    let route = |kind: &str, name: &str, section: &str, service: &str, spec: &str| {
        let version = if kind == "TLSRoute" { "v1" } else { "v1alpha2" };
        format!(
            "apiVersion: gateway.networking.k8s.io/{version}
kind: {kind}
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: {section}}}]
{spec}  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]
"
        )
    };
    let gateway = start(&docs(&[
        gateway_yaml,
        tls_secret_yaml("default", "front", &front.0, &front.1),
        route("TCPRoute", "tcp", "tcp", "good", ""),
        route("TCPRoute", "bad", "bad", "bad", ""),
        route(
            "TLSRoute",
            "term",
            "term",
            "good",
            "  hostnames: [term.example.com]\n",
        ),
        tls_service_yaml("good", good.addr, None),
        tls_service_yaml("bad", bad.addr, None),
        ca_yaml("ca", &ca.pem),
        policy_yaml(
            "streams",
            &["good", "bad"],
            None,
            "ca",
            "backend.example.com",
            &[],
        ),
    ]))
    .await;

    let mut plain = TcpStream::connect(("127.0.0.1", tcp_port)).await.unwrap();
    assert_eq!(echo(&mut plain, "over TCP").await, b"over TCP");
    let mut terminated = tls_connect(tls_port, "term.example.com", &front.0).await;
    assert_eq!(
        echo(&mut terminated, "over terminated TLS").await,
        b"over terminated TLS"
    );
    let handshakes = good.handshakes();
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    for h in &handshakes {
        assert_eq!(h.sni.as_deref(), Some("backend.example.com"));
        assert_eq!(h.alpn, None, "a byte stream: no ALPN");
    }

    let mut refused = TcpStream::connect(("127.0.0.1", bad_port)).await.unwrap();
    let _ = refused.write_all(b"never delivered").await;
    let rest = read_to_end_within(&mut refused, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(
        metric(
            &gateway,
            r#"gateway_upstream_failures_total{protocol="tcp",reason="tls_certificate"}"#
        ),
        Some(1.0)
    );
    assert!(bad.handshakes().is_empty());
    drop((plain, terminated, refused));
    gateway.shutdown().await;
}
