//! Stand-ins for the upstream echo pods: one set of servers per pod of every Deployment in the
//! suite's manifests, answering as the upstream echo-basic image does (see the shared folder's
//! `ECHO-BACKENDS.md`), and the EndpointSlices that point Services at them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::model::{
    Endpoint, EndpointPort, EndpointSlice, IntOrString, ObjectMeta, SERVICE_NAME_LABEL, Snapshot,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use crate::certs::{Pem, Pki};
use crate::grpc;

// === The Deployments of the manifests ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Deployment {
    kind: String,
    metadata: Meta,
    spec: DeploymentSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeploymentSpec {
    replicas: Option<u32>,
    template: Template,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Template {
    metadata: Meta,
    spec: PodSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodSpec {
    containers: Vec<Container>,
    volumes: Vec<Volume>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Container {
    image: String,
    env: Vec<Env>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Env {
    name: String,
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Volume {
    secret: Option<SecretVolume>,
    config_map: Option<ConfigMapVolume>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ConfigMapVolume {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SecretVolume {
    secret_name: String,
}

/// The Deployments in a manifest file's text.
fn deployments(text: &str) -> Vec<Deployment> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.starts_with("---") {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .filter(|d| d.lines().any(|l| l.trim() == "kind: Deployment"))
        .map(|d| {
            serde_saphyr::from_str::<Deployment>(d)
                .unwrap_or_else(|e| panic!("a Deployment does not parse: {e}\n{d}"))
        })
        .filter(|d| d.kind == "Deployment")
        .collect()
}

// === Pods ===

/// What a pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// HTTP echo: 3000 (HTTP/1.1 and h2c), 3001 (h2c), 8443 (HTTPS, with a certificate).
    Http,
    /// gRPC echo on 3000 (h2c).
    Grpc,
    /// TCP echo protocol on 3000, and on 8443 over TLS (with a certificate).
    Tcp,
    /// UDP echo on 8080.
    Udp,
    /// A DNS server on 53/UDP (coredns).
    Dns,
}

/// Identity of a pod, reported in every answer.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) namespace: String,
    pub(crate) pod: String,
    pub(crate) service: String,
}

/// One stand-in pod.
pub(crate) struct Pod {
    pub(crate) identity: Identity,
    pub(crate) deployment: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// (container port, protocol) → the port it is served on at 127.0.0.1.
    pub(crate) ports: BTreeMap<(u16, &'static str), u16>,
    /// Paths (with query) of the HTTP requests it answered, in order.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

/// Every pod of every Deployment of the suite.
pub(crate) struct Pods {
    pub(crate) pods: Vec<Pod>,
}

/// A stable, Kubernetes-looking pod name: `<deployment>-<hash>-<suffix>`, so that the suite's
/// "pod name with the last two dash-separated parts removed" gives the Deployment back.
fn pod_name(deployment: &str, index: u32) -> String {
    let mut hash: u32 = 2_166_136_261;
    for b in deployment.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(16_777_619);
    }
    format!("{deployment}-{:08x}-{index:05}", hash)
}

impl Pods {
    /// Starts the pods of every Deployment in `texts` (manifest files), once per
    /// namespace/name.
    pub(crate) async fn start(texts: &[String], pki: &Pki) -> Pods {
        let mut seen = std::collections::BTreeSet::new();
        let mut pods = Vec::new();
        for text in texts {
            for d in deployments(text) {
                let namespace = d
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned());
                if !seen.insert((namespace.clone(), d.metadata.name.clone())) {
                    continue;
                }
                let env: BTreeMap<&str, &str> = d
                    .spec
                    .template
                    .spec
                    .containers
                    .iter()
                    .flat_map(|c| &c.env)
                    .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
                    .collect();
                let coredns = d
                    .spec
                    .template
                    .spec
                    .containers
                    .iter()
                    .any(|c| c.image.contains("coredns"));
                let kind = if coredns {
                    Kind::Dns
                } else if env.contains_key("GRPC_ECHO_SERVER") {
                    Kind::Grpc
                } else if env.contains_key("TCP_ECHO_SERVER") {
                    Kind::Tcp
                } else if env.contains_key("UDP_ECHO_SERVER") {
                    Kind::Udp
                } else {
                    Kind::Http
                };
                let cert: Option<Pem> = env
                    .contains_key("TLS_SERVER_CERT")
                    .then(|| {
                        d.spec
                            .template
                            .spec
                            .volumes
                            .iter()
                            .filter_map(|v| v.secret.as_ref())
                            .find_map(|s| {
                                pki.secrets
                                    .get(&format!("{namespace}/{}", s.secret_name))
                                    .cloned()
                            })
                    })
                    .flatten();
                // TLS_CLIENT_CACERTS: client certificates signed by the mounted CA are
                // required.
                let client_ca: Option<String> = env
                    .contains_key("TLS_CLIENT_CACERTS")
                    .then(|| {
                        d.spec
                            .template
                            .spec
                            .volumes
                            .iter()
                            .filter_map(|v| v.config_map.as_ref())
                            .find_map(|c| pki.cas.get(&format!("{namespace}/{}", c.name)).cloned())
                    })
                    .flatten();
                let service = env
                    .get("SERVICE_NAME")
                    .map(|s| (*s).to_owned())
                    .unwrap_or_else(|| d.metadata.name.clone());
                for i in 0..d.spec.replicas.unwrap_or(1) {
                    let identity = Identity {
                        namespace: namespace.clone(),
                        pod: pod_name(&d.metadata.name, i),
                        service: service.clone(),
                    };
                    let pod = start_pod(
                        identity,
                        d.metadata.name.clone(),
                        d.spec.template.metadata.labels.clone(),
                        kind,
                        cert.clone(),
                        client_ca.clone(),
                    )
                    .await;
                    pods.push(pod);
                }
            }
        }
        Pods { pods }
    }

    /// Pods of `namespace` whose name starts with `prefix`.
    pub(crate) fn matching<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |p| {
            p.identity.namespace == namespace && p.identity.pod.starts_with(prefix)
        })
    }

    /// Adds EndpointSlices for every Service of `snapshot` that selects pods: one slice per
    /// pod, its ports the ones the pod serves the Service's target ports on. Selector-less
    /// Services that come with EndpointSlices of their own get those replaced by slices to
    /// the `infra-backend-v1` pods, as the Go test HTTPRouteServiceTypes patches them.
    pub(crate) fn add_endpoint_slices(&self, snapshot: &mut Snapshot) {
        let manual: Vec<(String, String)> = snapshot
            .services
            .iter()
            .filter(|s| s.spec.selector.is_none())
            .map(|s| (s.metadata.namespace().to_owned(), s.metadata.name.clone()))
            .filter(|(ns, name)| {
                snapshot
                    .endpoint_slices
                    .iter()
                    .any(|e| e.metadata.namespace() == ns && e.service_name() == Some(name))
            })
            .collect();
        snapshot.endpoint_slices.retain(|e| {
            !manual.iter().any(|(ns, name)| {
                e.metadata.namespace() == ns && e.service_name() == Some(name.as_str())
            })
        });
        let mut slices = Vec::new();
        for service in &snapshot.services {
            let namespace = service.metadata.namespace();
            let key = (namespace.to_owned(), service.metadata.name.clone());
            let selected: Vec<&Pod> = match &service.spec.selector {
                Some(selector) => self
                    .pods
                    .iter()
                    .filter(|p| {
                        p.identity.namespace == namespace
                            && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
                    })
                    .collect(),
                None if manual.contains(&key) => self
                    .pods
                    .iter()
                    .filter(|p| {
                        p.identity.namespace == namespace && p.deployment == "infra-backend-v1"
                    })
                    .collect(),
                None => Vec::new(),
            };
            for pod in selected {
                let ports = service
                    .spec
                    .ports
                    .iter()
                    .filter_map(|p| {
                        let protocol = if p.protocol().eq_ignore_ascii_case("UDP") {
                            "UDP"
                        } else {
                            "TCP"
                        };
                        let target = match &p.target_port {
                            Some(IntOrString::Int(n)) => u16::try_from(*n).ok()?,
                            Some(IntOrString::String(_)) => return None,
                            None => u16::try_from(p.port).ok()?,
                        };
                        let bound = pod.ports.get(&(target, protocol))?;
                        Some(EndpointPort {
                            name: Some(p.name.clone().unwrap_or_default()),
                            protocol: Some(protocol.to_owned()),
                            port: Some(i64::from(*bound)),
                            app_protocol: p.app_protocol.clone(),
                        })
                    })
                    .collect();
                slices.push(EndpointSlice {
                    api_version: "discovery.k8s.io/v1".to_owned(),
                    kind: "EndpointSlice".to_owned(),
                    metadata: ObjectMeta {
                        name: format!("{}-{}", service.metadata.name, pod.identity.pod),
                        namespace: Some(namespace.to_owned()),
                        labels: BTreeMap::from([(
                            SERVICE_NAME_LABEL.to_owned(),
                            service.metadata.name.clone(),
                        )]),
                        ..ObjectMeta::default()
                    },
                    address_type: "IPv4".to_owned(),
                    endpoints: vec![Endpoint {
                        addresses: vec!["127.0.0.1".to_owned()],
                        ..Endpoint::default()
                    }],
                    ports: Some(ports),
                });
            }
        }
        snapshot.endpoint_slices.extend(slices);
    }
}

async fn start_pod(
    identity: Identity,
    deployment: String,
    labels: BTreeMap<String, String>,
    kind: Kind,
    cert: Option<Pem>,
    client_ca: Option<String>,
) -> Pod {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut ports = BTreeMap::new();
    let shared = Arc::new(HttpState {
        identity: identity.clone(),
        log: log.clone(),
        retries: Mutex::new(HashMap::new()),
    });
    match kind {
        Kind::Http => {
            ports.insert((3000, "TCP"), serve_http(shared.clone(), Mode::Auto).await);
            ports.insert((3001, "TCP"), serve_http(shared.clone(), Mode::H2).await);
            if let Some(cert) = &cert {
                ports.insert(
                    (8443, "TCP"),
                    serve_http(
                        shared.clone(),
                        Mode::Tls(tls_acceptor(
                            cert,
                            &[b"h2", b"http/1.1"],
                            client_ca.as_deref(),
                        )),
                    )
                    .await,
                );
            }
        }
        Kind::Grpc => {
            ports.insert((3000, "TCP"), grpc::serve(identity.clone(), None).await);
            if let Some(cert) = &cert {
                let tls = tls_acceptor(cert, &[b"h2"], client_ca.as_deref());
                ports.insert(
                    (8443, "TCP"),
                    grpc::serve(identity.clone(), Some(tls)).await,
                );
            }
        }
        Kind::Tcp => {
            ports.insert((3000, "TCP"), serve_tcp(identity.clone(), None).await);
            if let Some(cert) = &cert {
                ports.insert(
                    (8443, "TCP"),
                    serve_tcp(
                        identity.clone(),
                        Some(tls_acceptor(cert, &[], client_ca.as_deref())),
                    )
                    .await,
                );
            }
        }
        Kind::Udp => {
            ports.insert((8080, "UDP"), serve_udp(identity.clone()).await);
        }
        Kind::Dns => {
            ports.insert((53, "UDP"), serve_dns().await);
        }
    }
    Pod {
        identity,
        deployment,
        labels,
        ports,
        log,
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server for `cert`, offering `alpn`; with `client_ca`, a client certificate signed by
/// it is required.
fn tls_acceptor(cert: &Pem, alpn: &[&[u8]], client_ca: Option<&str>) -> tokio_rustls::TlsAcceptor {
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).expect("key PEM");
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert.expect("CA PEM")).expect("CA certificate");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

use rustls::pki_types::pem::PemObject as _;

// === HTTP echo ===

struct HttpState {
    identity: Identity,
    log: Arc<Mutex<Vec<String>>>,
    /// `/retry/` probes: uuid → attempts seen.
    retries: Mutex<HashMap<String, u32>>,
}

enum Mode {
    Auto,
    H2,
    Tls(tokio_rustls::TlsAcceptor),
}

async fn serve_http(state: Arc<HttpState>, mode: Mode) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().expect("echo address").port();
    let mode = Arc::new(mode);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            let mode = mode.clone();
            tokio::spawn(async move {
                match &*mode {
                    Mode::Auto => serve_conn(stream, state, None, false).await,
                    Mode::H2 => serve_conn(stream, state, None, true).await,
                    Mode::Tls(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let connection = tls.get_ref().1;
                        let seen = TlsSeen {
                            server_name: connection.server_name().unwrap_or_default().to_owned(),
                            peer_certificates: connection
                                .peer_certificates()
                                .unwrap_or_default()
                                .iter()
                                .map(pem)
                                .collect(),
                        };
                        serve_conn(tls, state, Some(seen), false).await;
                    }
                }
            });
        }
    });
    port
}

/// What a TLS connection to the echo server negotiated, for its answers.
#[derive(Clone, Debug)]
struct TlsSeen {
    server_name: String,
    /// The client's certificates, PEM.
    peer_certificates: Vec<String>,
}

fn pem(der: &rustls::pki_types::CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

async fn serve_conn<S>(stream: S, state: Arc<HttpState>, sni: Option<TlsSeen>, h2_only: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        let sni = sni.clone();
        async move { echo(req, &state, sni).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if h2_only {
        builder = builder.http2_only();
    }
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}

/// Go's canonical header key: `x-header-set` → `X-Header-Set`.
pub(crate) fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// A Go duration (`1s`, `300ms`, `1.5s`) as a Duration.
fn go_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))?;
    let n: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

fn query_params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

type EchoResult = Result<Response<Full<Bytes>>, std::io::Error>;

async fn echo(req: Request<Incoming>, state: &HttpState, tls: Option<TlsSeen>) -> EchoResult {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let params = query_params(req.uri().query().unwrap_or(""));
    if req.uri().path() == "/ws" && req.headers().contains_key(hyper::header::UPGRADE) {
        return Ok(crate::ws::accept(req));
    }
    if req.uri().path().starts_with("/retry/") {
        let uuid = params.get("uuid").cloned().unwrap_or_default();
        let succeed_after: u32 = params
            .get("succeedAfter")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let attempt = {
            let mut retries = state.retries.lock().expect("retries");
            let seen = retries.entry(uuid).or_insert(0);
            *seen += 1;
            *seen
        };
        if attempt <= succeed_after {
            if let Some(delay) = params.get("delayRetry").and_then(|d| go_duration(d)) {
                tokio::time::sleep(delay).await;
            }
            return match params
                .get("responseCode")
                .and_then(|c| c.parse::<u16>().ok())
            {
                Some(code) => Ok(Response::builder()
                    .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                    .body(Full::new(Bytes::new()))
                    .expect("response")),
                // No status: the connection is dropped without an answer.
                None => Err(std::io::Error::other("retry probe: connection reset")),
            };
        }
    }
    if let Some(code) = req.uri().path().strip_prefix("/status/") {
        let code = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return Ok(Response::builder()
            .status(code)
            .body(Full::new(Bytes::new()))
            .expect("response"));
    }
    if let Some(delay) = params.get("delay").and_then(|d| go_duration(d)) {
        tokio::time::sleep(delay).await;
    }
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let proto = match req.version() {
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        if name == hyper::header::HOST {
            continue;
        }
        headers
            .entry(canonical(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let set_headers: Vec<(String, String)> = req
        .headers()
        .get_all("x-echo-set-header")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let method = req.method().to_string();
    let _ = req.into_body().collect().await;
    state.log.lock().expect("log").push(path.clone());
    let mut body = serde_json::json!({
        "path": path,
        "host": host,
        "method": method,
        "proto": proto,
        "headers": headers,
        "namespace": state.identity.namespace,
        "ingress": "",
        "service": state.identity.service,
        "pod": state.identity.pod,
    });
    if let Some(tls) = tls {
        body["tls"] = serde_json::json!({
            "serverName": tls.server_name,
            "peerCertificates": tls.peer_certificates,
        });
    }
    let mut response = Response::builder().header("content-type", "application/json");
    // Repeated names are joined with ",", as the upstream server does.
    let mut joined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in set_headers {
        joined.entry(k).or_default().push(v);
    }
    for (k, v) in joined {
        response = response.header(k, v.join(","));
    }
    Ok(response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"bad echo header")))))
}

// === TCP echo ===

async fn serve_tcp(identity: Identity, tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind tcp echo");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let identity = identity.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => tcp_session(stream, &identity, None).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let sni = stream.get_ref().1.server_name().unwrap_or("").to_owned();
                            tcp_session(stream, &identity, Some(sni)).await;
                        }
                    }
                }
            });
        }
    });
    port
}

async fn tcp_session<S>(stream: S, identity: &Identity, sni: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    if write
        .write_all(b"Gateway API Test TCP Server\n")
        .await
        .is_err()
    {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match line.trim() {
            "PING" => "PONG".to_owned(),
            "IS_TLS" => sni.is_some().to_string(),
            "TEST" => serde_json::json!({
                "namespace": identity.namespace,
                "pod": identity.pod,
                "service": identity.service,
                "isTLS": sni.is_some(),
                "tls": {"serverName": sni.clone().unwrap_or_default()},
            })
            .to_string(),
            other => other.to_owned(),
        };
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

// === UDP echo and DNS ===

async fn serve_udp(identity: Identity) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp echo");
    let port = socket.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let reply = serde_json::json!({
                "request": String::from_utf8_lossy(&buf[..n]),
                "namespace": identity.namespace,
                "service": identity.service,
                "pod": identity.pod,
            })
            .to_string();
            let _ = socket.send_to(reply.as_bytes(), from).await;
        }
    });
    port
}

/// Answers every DNS query with an empty NOERROR response (the suite only needs a reply).
async fn serve_dns() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let port = socket.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            // QR=1, opcode copied, RD copied, RA=1, RCODE=0; no answers, no authority.
            reply[2] |= 0x80;
            reply[3] = 0x80;
            reply[6..12].fill(0);
            let _ = socket.send_to(&reply, from).await;
        }
    });
    port
}
