//! HTTP data plane: routing, filters, forwarding, limits, gRPC, upgrades, drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use gateway_net::{Gateway, GatewayConfig};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{self, CLASS, free_port, http_echo, service_yaml};

// === helpers ===

/// A Gateway `gw` in `default` with one HTTP listener on 127.0.0.1:`port`.
pub(crate) fn gateway_yaml(port: u16) -> String {
    format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: test
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
  listeners: [{{name: http, port: {port}, protocol: HTTP, allowedRoutes: {{kinds: [{{kind: HTTPRoute}}, {{kind: GRPCRoute}}]}}}}]
"
    )
}

/// An HTTPRoute `name` on `gw` with the given `rules:` YAML (indented by 2).
pub(crate) fn route_yaml(name: &str, hostnames: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{hostnames}]
  rules:
{rules}"
    )
}

/// Starts a gateway on manifests that need not be healthy (invalid backends).
async fn start_any(yaml: &str, config: GatewayConfig) -> Gateway {
    let gateway = Gateway::new(config);
    let report = gateway.apply(&common::compile_yaml_any(yaml)).await;
    assert!(report.bind_failures.is_empty(), "{report:?}");
    gateway
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// One HTTP/1.1 request over a fresh connection.
pub(crate) async fn send(port: u16, req: Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let (mut parts, body) = req.into_parts();
    let uri = format!("http://127.0.0.1:{port}{}", parts.uri);
    parts.uri = uri.parse().expect("uri");
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(Request::from_parts(parts, body)),
    )
    .await
    .expect("answer within 10 s")
    .expect("an answer");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub(crate) async fn get(port: u16, host: &str, path: &str) -> Reply {
    send(
        port,
        Request::get(path)
            .header("host", host)
            .body(Full::default())
            .expect("request"),
    )
    .await
}

/// Writes `request` raw and reads until the gateway closes (or 3 s pass).
async fn raw(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("write");
    let out = common::read_to_end_within(&mut stream, Duration::from_secs(3)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/1.1 backend that waits `delay` before answering 200 `slow`, and counts requests.
pub(crate) async fn slow_backend(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("slow"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

/// A backend answering `status` to the first `failures` requests, then 200.
pub(crate) async fn flaky_backend(failures: usize, status: u16) -> (SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let mut resp = Response::new(Full::new(body));
                        if n < failures {
                            *resp.status_mut() = StatusCode::from_u16(status).expect("status");
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

/// A Service with no endpoints.
fn empty_service_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80}}]}}
"
    )
}

pub(crate) fn forward_rule(service: &str) -> String {
    format!("  - backendRefs: [{{name: {service}, port: 80}}]\n")
}

async fn simple(rules: &str, services: &[String]) -> (Gateway, u16) {
    simple_with(rules, services, GatewayConfig::default()).await
}

/// [`simple`] with limits of its own.
pub(crate) async fn simple_with(
    rules: &str,
    services: &[String],
    config: GatewayConfig,
) -> (Gateway, u16) {
    let port = free_port();
    let mut yaml = gateway_yaml(port);
    for s in services {
        yaml.push_str("---\n");
        yaml.push_str(s);
    }
    yaml.push_str("---\n");
    yaml.push_str(&route_yaml("web", "example.com", rules));
    (start_any(&yaml, config).await, port)
}

// === forwarding ===

#[tokio::test]
async fn forwards_with_forwarding_headers() {
    let echo = http_echo("one").await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
    )
    .await;
    let reply = send(
        port,
        Request::get("/a/./b//c?x=1")
            .header("host", "example.com")
            .header("x-forwarded-for", "10.0.0.1")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "secret")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("backend=one"), "{}", reply.body);
    assert!(reply.body.contains("path=/a/b/c?x=1"), "{}", reply.body);
    assert!(reply.body.contains("host=example.com\n"), "{}", reply.body);
    assert!(
        reply.body.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("x-forwarded-proto: http"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("x-request-id: "), "{}", reply.body);
    assert!(!reply.body.contains("x-hop"), "{}", reply.body);
    assert_eq!(reply.headers["x-backend"], "one");

    let reply = send(
        port,
        Request::get("/")
            .header("host", "example.com")
            .header("x-request-id", "given")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    assert!(reply.body.contains("x-request-id: given"), "{}", reply.body);
}

#[tokio::test]
async fn no_route_is_404_and_bad_path_is_400() {
    let echo = http_echo("one").await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
    )
    .await;
    assert_eq!(get(port, "other.example", "/").await.status, 404);
    let out = raw(
        port,
        b"GET /a%zz HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn invalid_backend_is_500_and_no_endpoints_503_and_refused_503() {
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let rules = "  - matches: [{path: {value: /invalid}}]
    backendRefs: [{name: missing, port: 80}]
  - matches: [{path: {value: /empty}}]
    backendRefs: [{name: empty, port: 80}]
  - matches: [{path: {value: /refused}}]
    backendRefs: [{name: closed, port: 80}]
";
    let (_gw, port) = simple(
        rules,
        &[
            empty_service_yaml("empty"),
            service_yaml("default", "closed", closed),
        ],
    )
    .await;
    assert_eq!(get(port, "example.com", "/invalid").await.status, 500);
    assert_eq!(get(port, "example.com", "/empty").await.status, 503);
    // 503, not 502: the conformance suite (HTTPRouteRetryConnectionError) accepts 500 or 503
    // when no endpoint answered.
    assert_eq!(get(port, "example.com", "/refused").await.status, 503);
}

#[tokio::test]
async fn backend_request_and_request_timeouts_are_504() {
    let (slow, _) = slow_backend(Duration::from_secs(2)).await;
    let rules = "  - matches: [{path: {value: /backend}}]
    backendRefs: [{name: slow, port: 80}]
    timeouts: {backendRequest: 200ms}
  - matches: [{path: {value: /request}}]
    backendRefs: [{name: slow, port: 80}]
    timeouts: {request: 200ms}
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "slow", slow)]).await;
    for path in ["/backend", "/request"] {
        let started = Instant::now();
        assert_eq!(get(port, "example.com", path).await.status, 504, "{path}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
    }
}

#[tokio::test]
async fn connect_timeout_is_503() {
    // A listener whose backlog is full does not complete handshakes: connects hang.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let socket = socket2::SockRef::from(&std_listener);
    socket.listen(0).expect("listen");
    let addr = std_listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) =
            tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let mut config = GatewayConfig::default();
    config.http.upstream_connect_timeout = Duration::from_millis(200);
    let (_gw, port) = simple_with(
        &forward_rule("hang"),
        &[service_yaml("default", "hang", addr)],
        config,
    )
    .await;
    let started = Instant::now();
    let status = get(port, "example.com", "/").await.status;
    // Some kernels still complete the handshake (then the backend never answers: 502 on
    // close is not expected, so accept only 503 here when the connect did hang).
    println!(
        "connect-timeout probe: {status} after {:?}",
        started.elapsed()
    );
    if started.elapsed() >= Duration::from_millis(150) {
        assert_eq!(status, 503);
    }
    drop(fillers);
}

#[tokio::test]
async fn retries_listed_codes() {
    let (flaky, seen) = flaky_backend(2, 503).await;
    let rules = "  - backendRefs: [{name: flaky, port: 80}]
    retry: {codes: [503], attempts: 2, backoff: 10ms}
";
    // Retry is an experimental-channel field: compile without insisting on a healthy status.
    let (_gw, port) = simple(rules, &[service_yaml("default", "flaky", flaky)]).await;
    let reply = send(
        port,
        Request::post("/")
            .header("host", "example.com")
            .body(Full::new(Bytes::from("payload")))
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "payload");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

// === filters ===

#[tokio::test]
async fn request_header_modifier() {
    let echo = http_echo("one").await;
    let rules = "  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    backendRefs: [{name: one, port: 80}]
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "one", echo)]).await;
    let reply = send(
        port,
        Request::get("/")
            .header("host", "example.com")
            .header("x-set", "old")
            .header("x-add", "first")
            .header("x-remove", "gone")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    assert!(reply.body.contains("x-set: set\n"), "{}", reply.body);
    assert!(
        reply.body.contains("x-add: first,added\n"),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains("x-remove"), "{}", reply.body);
}

#[tokio::test]
async fn response_header_modifier() {
    let echo = http_echo("one").await;
    let rules = "  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Backend, value: hidden}]
        add: [{name: X-Served-By, value: gw}]
    backendRefs: [{name: one, port: 80}]
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "one", echo)]).await;
    let reply = get(port, "example.com", "/").await;
    assert_eq!(reply.headers["x-backend"], "hidden");
    assert_eq!(reply.headers["x-served-by"], "gw");
}

#[tokio::test]
async fn request_redirect() {
    let rules = "  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
  - matches: [{path: {value: /host}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: other.example, port: 8443}
  - matches: [{path: {value: /plain}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /full}}
";
    let (_gw, port) = simple(rules, &[]).await;
    let reply = get(port, "example.com", "/old/x?q=1").await;
    assert_eq!(reply.status, 301);
    assert_eq!(reply.headers["location"], "https://example.com/new/x?q=1");
    let reply = get(port, "example.com:1234", "/host").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.headers["location"], "http://other.example:8443/host");
    let reply = get(port, "example.com", "/plain").await;
    assert_eq!(
        reply.headers["location"],
        format!("http://example.com:{port}/full")
    );
}

/// Found by the conformance suite (HTTPRouteBackendRequestRedirect): a RequestRedirect filter
/// on a backendRef was dropped and the request forwarded.
#[tokio::test]
async fn backend_ref_request_redirect() {
    let echo = http_echo("one").await;
    let rules = "  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    backendRefs:
    - name: one
      port: 80
      filters:
      - type: RequestRedirect
        requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /moved}}
  - backendRefs: [{name: one, port: 80}]
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "one", echo)]).await;
    let reply = get(port, "example.com", "/prefix/x").await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert_eq!(
        reply.headers["location"],
        format!("http://example.com:{port}/moved/x")
    );
    let reply = get(port, "example.com", "/other").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn url_rewrite() {
    let echo = http_echo("one").await;
    let rules = "  - matches: [{path: {type: PathPrefix, value: /foo}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: internal.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /bar}}
    backendRefs: [{name: one, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: one, port: 80}]
  - matches: [{path: {value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}
    backendRefs: [{name: one, port: 80}]
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "one", echo)]).await;
    let reply = get(port, "example.com", "/foo/x?a=b").await;
    assert!(reply.body.contains("path=/bar/x?a=b\n"), "{}", reply.body);
    assert!(
        reply.body.contains("host=internal.example\n"),
        "{}",
        reply.body
    );
    let reply = get(port, "example.com", "/strip/x").await;
    assert!(reply.body.contains("path=/x\n"), "{}", reply.body);
    let reply = get(port, "example.com", "/strip").await;
    assert!(reply.body.contains("path=/\n"), "{}", reply.body);
    let reply = get(port, "example.com", "/full").await;
    assert!(reply.body.contains("path=/replaced\n"), "{}", reply.body);
}

#[tokio::test]
async fn request_mirror() {
    let echo = http_echo("main").await;
    let (mirror, seen) = flaky_backend(0, 200).await;
    let rules = "  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 80}}
    backendRefs: [{name: main, port: 80}]
";
    let (_gw, port) = simple(
        rules,
        &[
            service_yaml("default", "main", echo),
            service_yaml("default", "mirror", mirror),
        ],
    )
    .await;
    let reply = send(
        port,
        Request::post("/m")
            .header("host", "example.com")
            .body(Full::new(Bytes::from("copy me")))
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("backend=main"), "{}", reply.body);
    assert!(reply.body.contains("body-bytes=7"), "{}", reply.body);
    for _ in 0..100 {
        if seen.load(Ordering::SeqCst) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the mirror never saw the request");
}

#[tokio::test]
async fn cors_preflight_and_simple_requests() {
    let echo = http_echo("one").await;
    let rules = "  - matches: [{path: {type: PathPrefix, value: /cred}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: [\"https://*.example.com\"]
        allowMethods: [GET, POST]
        allowHeaders: [x-custom]
        exposeHeaders: [x-backend]
        allowCredentials: true
        maxAge: 60
    backendRefs: [{name: one, port: 80}]
  - filters:
    - type: CORS
      cors: {allowOrigins: [\"*\"], allowMethods: [GET]}
    backendRefs: [{name: one, port: 80}]
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "one", echo)]).await;
    let preflight = |path: &str, origin: &str| {
        Request::options(path)
            .header("host", "example.com")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-custom")
            .body(Full::default())
            .expect("request")
    };
    let reply = send(port, preflight("/cred", "https://a.b.example.com")).await;
    assert_eq!(reply.status, 204);
    assert!(
        !reply.headers.contains_key("x-backend"),
        "proxied: {:?}",
        reply.headers
    );
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://a.b.example.com"
    );
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    assert_eq!(reply.headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(reply.headers["access-control-max-age"], "60");
    // Found by the conformance suite (HTTPRouteCORS): preflights carry the exposed headers.
    assert_eq!(reply.headers["access-control-expose-headers"], "x-backend");

    let reply = send(port, preflight("/cred", "https://evil.com")).await;
    assert_eq!(reply.status, 204);
    assert!(!reply.headers.contains_key("access-control-allow-origin"));

    let reply = send(
        port,
        Request::get("/cred")
            .header("host", "example.com")
            .header("origin", "https://app.example.com")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(reply.headers["access-control-expose-headers"], "x-backend");

    let reply = send(
        port,
        Request::get("/any")
            .header("host", "example.com")
            .header("origin", "https://x.org")
            .body(Full::default())
            .expect("request"),
    )
    .await;
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    assert!(
        !reply
            .headers
            .contains_key("access-control-allow-credentials")
    );
}

#[tokio::test]
async fn weighted_backends_split_traffic() {
    let a = http_echo("a").await;
    let b = http_echo("b").await;
    let rules =
        "  - backendRefs: [{name: a, port: 80, weight: 1}, {name: b, port: 80, weight: 1}]\n";
    let (_gw, port) = simple(
        rules,
        &[
            service_yaml("default", "a", a),
            service_yaml("default", "b", b),
        ],
    )
    .await;
    let mut seen_a = 0;
    for _ in 0..40 {
        if get(port, "example.com", "/")
            .await
            .body
            .contains("backend=a")
        {
            seen_a += 1;
        }
    }
    assert!((5..=35).contains(&seen_a), "{seen_a} of 40 to a");
}

// === protocols ===

pub(crate) async fn h2_client(port: u16) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let echo = http_echo("one").await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
    )
    .await;
    let mut client = h2_client(port).await;
    for _ in 0..3 {
        let resp = client
            .send_request(
                Request::get("http://example.com/h2")
                    .body(Full::default())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("host=example.com\n"), "{body}");
        assert!(body.contains("path=/h2\n"), "{body}");
    }
}

/// Found by the conformance suite (HTTPRouteMethodMatching over HTTP/2): the gateway's own
/// answer to a HEAD request sent DATA frames, which an HTTP/2 client must reject.
#[tokio::test]
async fn h2_head_answers_carry_no_body() {
    let echo = http_echo("one").await;
    let rules = "  - matches: [{path: {type: PathPrefix, value: /only}}]
    backendRefs: [{name: one, port: 80}]
";
    let (_gw, port) = simple(rules, &[service_yaml("default", "one", echo)]).await;
    let mut client = h2_client(port).await;
    for path in ["/elsewhere", "/only"] {
        let resp = client
            .send_request(
                Request::head(format!("http://example.com{path}"))
                    .body(Full::default())
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("a HEAD answer without DATA");
        assert!(body.to_bytes().is_empty(), "{path}");
        assert_eq!(status, if path == "/only" { 200 } else { 404 }, "{path}");
    }
}

#[tokio::test]
async fn config_swap_fails_no_request() {
    let a = http_echo("a").await;
    let b = http_echo("b").await;
    let port = free_port();
    let yaml = |backend: &str| {
        format!(
            "{}---\n{}---\n{}---\n{}",
            gateway_yaml(port),
            service_yaml("default", "a", a),
            service_yaml("default", "b", b),
            route_yaml("web", "example.com", &forward_rule(backend))
        )
    };
    let gateway = common::start(&yaml("a")).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let requests = tokio::spawn(async move {
        let mut seen = (0, 0);
        for _ in 0..300 {
            let req = Request::get(format!("http://127.0.0.1:{port}/"))
                .header("host", "example.com")
                .body(Full::default())
                .expect("request");
            let resp = client.request(req).await.expect("no request fails");
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            if body.starts_with(b"backend=a") {
                seen.0 += 1;
            } else {
                seen.1 += 1;
            }
        }
        seen
    });
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let report = gateway
            .apply(&common::compile_yaml(&yaml(if i % 2 == 0 {
                "b"
            } else {
                "a"
            })))
            .await;
        assert!(report.is_complete());
    }
    let (a_count, b_count) = requests.await.expect("requests");
    assert_eq!(a_count + b_count, 300);
}

/// A backend that accepts WebSocket-style upgrades and echoes the upgraded bytes.
async fn upgrade_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|mut req: Request<Incoming>| async move {
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(upgraded) = upgrade.await {
                            let mut io = TokioIo::new(upgraded);
                            let mut buf = [0u8; 1024];
                            while let Ok(n) = io.read(&mut buf).await {
                                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(101)
                            .header("connection", "upgrade")
                            .header("upgrade", "websocket")
                            .body(Full::<Bytes>::default())
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    address
}

/// Opens a WebSocket-style tunnel through the gateway on `port`.
async fn open_tunnel(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert_eq!(n, 1, "closed early: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    stream
}

/// Sends bytes over the tunnel and reads their echo.
async fn tunnel_echo(stream: &mut TcpStream, text: &str) {
    stream.write_all(text.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(buf, text.as_bytes());
}

#[tokio::test]
async fn websocket_upgrade_end_to_end() {
    let backend = upgrade_backend().await;
    let (_gw, port) = simple(
        &forward_rule("ws"),
        &[service_yaml("default", "ws", backend)],
    )
    .await;
    let mut stream = open_tunnel(port).await;
    tunnel_echo(&mut stream, "ping over the tunnel").await;
}

/// An upgraded tunnel is part of the drain: it keeps working while the gateway drains, the
/// shutdown waits for it, and the drain deadline closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnel_is_drained_on_shutdown() {
    let backend = upgrade_backend().await;
    let mut config = GatewayConfig::default();
    config.listener.drain_timeout = Duration::from_millis(600);
    let (gateway, port) = simple_with(
        &forward_rule("ws"),
        &[service_yaml("default", "ws", backend)],
        config,
    )
    .await;
    let gateway = Arc::new(gateway);
    let mut stream = open_tunnel(port).await;
    tunnel_echo(&mut stream, "before").await;
    let draining = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !draining.is_finished(),
        "shutdown waits for the open tunnel"
    );
    tunnel_echo(&mut stream, "while draining").await;
    tokio::time::timeout(Duration::from_secs(10), draining)
        .await
        .expect("shutdown ends after the drain deadline")
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest))
        .await
        .expect("tunnel closed by the drain deadline");
    assert!(
        read.is_err() || rest.is_empty(),
        "tunnel still open: {rest:?}"
    );
}

// === hostile clients ===

#[tokio::test]
async fn oversized_headers_get_431() {
    let echo = http_echo("one").await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
    )
    .await;
    let big = "a".repeat(100 * 1024);
    let out = raw(
        port,
        format!("GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out:.100}");
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let out = raw(
        port,
        format!("GET / HTTP/1.1\r\nHost: example.com\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out:.100}");
}

#[tokio::test]
async fn slow_headers_are_cut() {
    let echo = http_echo("one").await;
    let mut config = GatewayConfig::default();
    config.http.header_read_timeout = Duration::from_millis(300);
    let (_gw, port) = simple_with(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
        config,
    )
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: exa")
        .await
        .expect("write");
    let started = Instant::now();
    let out = common::read_to_end_within(&mut stream, Duration::from_secs(3)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "still open after {elapsed:?}"
    );
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
}

/// A backend recording the paths it saw.
async fn path_recorder() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let cl = req
                            .headers()
                            .get("content-length")
                            .map(|v| v.to_str().unwrap_or("?").to_owned());
                        let path = req.uri().path().to_owned();
                        // Read to the end, so that the exchange completes whatever the framing.
                        let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
                        record
                            .lock()
                            .expect("lock")
                            .push(format!("{path} cl={cl:?} body={body:?}"));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

#[tokio::test]
async fn smuggling_attempts_never_reach_the_backend() {
    let (backend, seen) = path_recorder().await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", backend)],
    )
    .await;
    // Conflicting Content-Lengths: 400, nothing forwarded.
    let out = raw(
        port,
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(seen.lock().expect("lock").is_empty(), "{:?}", seen.lock());
    // Both framings, in either order, alone or after an honest request on the same
    // connection: 400 and the connection closes. Neither the request nor what hides behind
    // its body reaches the backend.
    for (framings, name) in [
        ("Content-Length: 50\r\nTransfer-Encoding: chunked", "cl-te"),
        ("Transfer-Encoding: chunked\r\nContent-Length: 50", "te-cl"),
        (
            "Transfer-Encoding: gzip, chunked\r\nContent-Length: 5",
            "te-list",
        ),
    ] {
        let attack = format!(
            "POST /{name} HTTP/1.1\r\nHost: example.com\r\n{framings}\r\n\r\n\
             0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"
        );
        let out = raw(port, attack.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
        let after_honest = format!(
            "POST /honest-{name} HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
             15\r\nContent-Length: 1\r\n\r\n\r\n0\r\n\r\n{attack}"
        );
        let out = raw(port, after_honest.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        let second = out
            .get(1..)
            .and_then(|o| o.find("HTTP/1.1 "))
            .map(|i| &out[i + 1..]);
        assert!(
            second.is_some_and(|s| s.starts_with("HTTP/1.1 400")),
            "{out}"
        );
        assert_eq!(out.matches("HTTP/1.1 ").count(), 2, "{out}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [
            "/honest-cl-te cl=None body=Ok(21)",
            "/honest-te-cl cl=None body=Ok(21)",
            "/honest-te-list cl=None body=Ok(21)"
        ],
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_request() {
    let (slow, _) = slow_backend(Duration::from_millis(500)).await;
    let (gateway, port) = simple(
        &forward_rule("slow"),
        &[service_yaml("default", "slow", slow)],
    )
    .await;
    let request = tokio::spawn(async move { get(port, "example.com", "/").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    gateway.shutdown().await;
    let reply = request.await.expect("request task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slow");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "still accepting"
    );
}

// === curl ===

fn curl(args: &[&str]) -> String {
    let output = std::process::Command::new("curl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs the `curl` binary on PATH: {e}"));
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http1_and_h2_prior_knowledge() {
    let echo = http_echo("one").await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/curl?x=1");
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || curl(&["-sS", "-H", "Host: example.com", &url])
    })
    .await
    .expect("curl");
    assert!(out.contains("path=/curl?x=1"), "{out}");
    let out = tokio::task::spawn_blocking(move || {
        curl(&[
            "-sS",
            "--http2-prior-knowledge",
            "-H",
            "Host: example.com",
            &url,
        ])
    })
    .await
    .expect("curl");
    assert!(out.contains("backend=one"), "{out}");
    assert!(out.contains("host=example.com"), "{out}");
}

// === gRPC (raw HTTP/2 framing; no protoc or tonic needed) ===

/// Frames `messages` as gRPC length-prefixed messages.
pub(crate) fn grpc_frames(messages: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    for m in messages {
        out.push(0);
        out.extend_from_slice(&u32::try_from(m.len()).expect("len").to_be_bytes());
        out.extend_from_slice(m);
    }
    Bytes::from(out)
}

fn grpc_messages(mut body: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        body.advance(1);
        let len = body.get_u32() as usize;
        out.push(body.split_to(len));
    }
    out
}

/// An h2c gRPC backend echoing every request message back with `grpc-status: 0` trailers and
/// an `x-path` trailer carrying the method path.
async fn grpc_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().expect("value"));
                    trailers.insert("x-path", path.parse().expect("value"));
                    let body = Full::new(body).with_trailers(async move { Some(Ok(trailers)) });
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn grpc_unary_streaming_and_unimplemented() {
    let backend = grpc_echo().await;
    let port = free_port();
    let yaml = format!(
        "{}---\n{}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [grpc.example]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Unary}}}}, {{method: {{service: echo.Echo, method: Stream}}}}]
    backendRefs: [{{name: grpc, port: 80}}]
  - matches: [{{method: {{service: echo.Down}}}}]
    backendRefs: [{{name: down, port: 80}}]
",
        gateway_yaml(port),
        service_yaml("default", "grpc", backend),
    );
    let yaml = format!("{yaml}---\n{}", empty_service_yaml("down"));
    let _gw = start_any(&yaml, GatewayConfig::default()).await;
    let mut client = h2_client(port).await;
    let call = |path: &str, messages: &[&[u8]]| {
        Request::post(format!("http://grpc.example{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(grpc_frames(messages)))
            .expect("request")
    };

    // Unary.
    let resp = client
        .send_request(call("/echo.Echo/Unary", &[b"hello"]))
        .await
        .expect("unary");
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers preserved");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-path"], "/echo.Echo/Unary");
    assert_eq!(
        grpc_messages(collected.to_bytes()),
        vec![Bytes::from("hello")]
    );

    // Client streaming: several messages in, all echoed back.
    let resp = client
        .send_request(call("/echo.Echo/Stream", &[b"one", b"two", b"three"]))
        .await
        .expect("stream");
    let collected = resp.into_body().collect().await.expect("body");
    assert_eq!(collected.trailers().expect("trailers")["grpc-status"], "0");
    assert_eq!(grpc_messages(collected.to_bytes()).len(), 3);

    // Unmatched method on a host served by GRPCRoutes: UNIMPLEMENTED, trailers-only.
    let resp = client
        .send_request(call("/echo.Echo/Nope", &[b"x"]))
        .await
        .expect("unimplemented");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "12");

    // No endpoints: UNAVAILABLE rather than an HTML error.
    let resp = client
        .send_request(call("/echo.Down/Call", &[b"x"]))
        .await
        .expect("unavailable");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "14");
}

// === connections and logs ===

#[tokio::test]
async fn idle_connections_are_closed() {
    let echo = http_echo("one").await;
    let mut config = GatewayConfig::default();
    config.http.idle_timeout = Duration::from_millis(300);
    let (_gw, port) = simple_with(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
        config,
    )
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let out = common::read_to_end_within(&mut stream, Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "idle connection open for {elapsed:?}"
    );
}

#[tokio::test]
async fn access_log_is_structured() {
    // Installs the capture before the gateway's first request of this test.
    common::access_log_lines();
    let echo = http_echo("one").await;
    let (_gw, port) = simple(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
    )
    .await;
    assert_eq!(get(port, "example.com", "/logged?q=1").await.status, 200);
    let lines = common::access_log_lines();
    let line = lines
        .iter()
        .find(|l| l["fields"]["path"] == "/logged")
        .unwrap_or_else(|| panic!("no access log line in {lines:?}"))
        .to_string();
    for field in [
        "\"method\":\"GET\"",
        "\"host\":\"example.com\"",
        "\"path\":\"/logged\"",
        "\"status\":200",
        "\"route\":\"",
        "\"rule\":0",
        "\"backend\":\"127.0.0.1:",
        "\"upstream_ms\":",
        "\"total_ms\":",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

// === gRPC with tonic (prost-derived messages, tonic's server and client cores) ===

mod tonic_grpc {
    use std::future::{Ready, ready};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use tonic::Status;
    use tonic_prost::ProstCodec;

    /// The message of both methods.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Echo {
        #[prost(string, tag = "1")]
        pub(super) text: String,
        #[prost(uint32, tag = "2")]
        pub(super) count: u32,
    }

    /// `echo.Echo/Unary`: answers the text upper-cased.
    #[derive(Clone)]
    struct Unary;

    impl tower_service::Service<tonic::Request<Echo>> for Unary {
        type Response = tonic::Response<Echo>;
        type Error = Status;
        type Future = Ready<Result<tonic::Response<Echo>, Status>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: tonic::Request<Echo>) -> Self::Future {
            let msg = req.into_inner();
            ready(Ok(tonic::Response::new(Echo {
                text: msg.text.to_uppercase(),
                count: 1,
            })))
        }
    }

    type EchoStream = tokio_stream::Iter<std::vec::IntoIter<Result<Echo, Status>>>;

    /// `echo.Echo/Stream`: answers `count` messages.
    #[derive(Clone)]
    struct Stream;

    impl tower_service::Service<tonic::Request<Echo>> for Stream {
        type Response = tonic::Response<EchoStream>;
        type Error = Status;
        type Future = Ready<Result<tonic::Response<EchoStream>, Status>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: tonic::Request<Echo>) -> Self::Future {
            let msg = req.into_inner();
            let items: Vec<Result<Echo, Status>> = (0..msg.count)
                .map(|i| {
                    Ok(Echo {
                        text: format!("{}-{i}", msg.text),
                        count: i,
                    })
                })
                .collect();
            ready(Ok(tonic::Response::new(tokio_stream::iter(items))))
        }
    }

    /// An h2c backend serving `echo.Echo` with tonic's server core.
    pub(super) async fn backend() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let mut grpc =
                            tonic::server::Grpc::new(ProstCodec::<Echo, Echo>::default());
                        let resp = match req.uri().path() {
                            "/echo.Echo/Unary" => grpc.unary(Unary, req).await,
                            "/echo.Echo/Stream" => grpc.server_streaming(Stream, req).await,
                            _ => Status::unimplemented("backend").into_http(),
                        };
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        address
    }

    /// hyper's HTTP/2 client handle as the tower service tonic's client drives.
    pub(super) struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

    impl tower_service::Service<Request<tonic::body::Body>> for H2 {
        type Response = Response<Incoming>;
        type Error = hyper::Error;
        type Future = Pin<
            Box<dyn std::future::Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>,
        >;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
            Box::pin(self.0.send_request(req))
        }
    }

    pub(super) async fn client(port: u16, host: &str) -> tonic::client::Grpc<H2> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let origin = format!("http://{host}").parse().expect("origin");
        tonic::client::Grpc::with_origin(H2(sender), origin)
    }
}

#[tokio::test]
async fn tonic_unary_streaming_and_unimplemented() {
    use tonic_grpc::Echo;
    use tonic_prost::ProstCodec;
    let backend = tonic_grpc::backend().await;
    let port = free_port();
    let yaml = format!(
        "{}---\n{}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [grpc.example]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Unary}}}}, {{method: {{service: echo.Echo, method: Stream}}}}]
    backendRefs: [{{name: grpc, port: 80}}]
",
        gateway_yaml(port),
        service_yaml("default", "grpc", backend),
    );
    let _gw = start_any(&yaml, GatewayConfig::default()).await;
    let mut client = tonic_grpc::client(port, "grpc.example").await;

    client.ready().await.expect("ready");
    let reply: tonic::Response<Echo> = client
        .unary(
            tonic::Request::new(Echo {
                text: "hello".into(),
                count: 0,
            }),
            http::uri::PathAndQuery::from_static("/echo.Echo/Unary"),
            ProstCodec::default(),
        )
        .await
        .expect("unary call through the gateway");
    assert_eq!(reply.into_inner().text, "HELLO");

    client.ready().await.expect("ready");
    let mut stream = client
        .server_streaming::<Echo, Echo, _>(
            tonic::Request::new(Echo {
                text: "s".into(),
                count: 3,
            }),
            http::uri::PathAndQuery::from_static("/echo.Echo/Stream"),
            ProstCodec::default(),
        )
        .await
        .expect("streaming call")
        .into_inner();
    let mut texts = Vec::new();
    while let Some(msg) = stream.message().await.expect("message") {
        texts.push(msg.text);
    }
    assert_eq!(texts, ["s-0", "s-1", "s-2"]);
    // The stream ended with the backend's grpc-status trailer, passed through.
    stream.trailers().await.expect("trailers");

    client.ready().await.expect("ready");
    let error = client
        .unary::<Echo, Echo, _>(
            tonic::Request::new(Echo::default()),
            http::uri::PathAndQuery::from_static("/echo.Echo/Missing"),
            ProstCodec::default(),
        )
        .await
        .expect_err("unmatched method");
    assert_eq!(error.code(), tonic::Code::Unimplemented);
}

// === HTTP/2 rapid reset and HTTP/1.1 trailers ===

#[tokio::test]
async fn h2_rapid_reset_is_cut_off() {
    const LIMIT: usize = 5;
    const BURST: usize = 4 * LIMIT;
    const ATTEMPTS: usize = 2000;
    let echo = http_echo("one").await;
    let mut config = GatewayConfig::default();
    config.http.h2_max_pending_accept_reset_streams = LIMIT;
    let (_gw, port) = simple_with(
        &forward_rule("one"),
        &[service_yaml("default", "one", echo)],
        config,
    )
    .await;

    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    let connection = tokio::spawn(connection);
    // Open a stream and reset it at once, over and over (CVE-2023-44487), in bursts of BURST
    // streams; between bursts the client connection task writes the frames and reads the
    // server's answer. h2 (under hyper) counts the streams reset while still waiting to be
    // accepted (HEADERS and RST_STREAM arrive together) and forgets each one when hyper takes
    // it off that queue; more than LIMIT at once gets GOAWAY ENHANCE_YOUR_CALM. So the limit
    // bounds the backlog of reset streams, not the resets over a connection's life: a whole
    // burst read at once exceeds it (in a trial, bursts of one were cut after ~20 streams, the
    // pairs piling up faster than hyper accepted them).
    let mut opened = 0;
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        for i in 0..ATTEMPTS {
            client = match client.ready().await {
                Ok(ready) => ready,
                Err(e) => return Some(e),
            };
            let request = Request::get("http://example.com/reset")
                .body(())
                .expect("request");
            match client.send_request(request, false) {
                Ok((_response, mut send)) => send.send_reset(h2::Reason::CANCEL),
                Err(e) => return Some(e),
            }
            opened += 1;
            if i % BURST == BURST - 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        None
    })
    .await
    .expect("rapid resets do not hang the client");
    let error = cut.unwrap_or_else(|| panic!("all {ATTEMPTS} streams opened and reset"));
    println!("rapid reset: cut after {opened} streams: {error}");
    // Usually cut within the first bursts; allow slack for a burst split over several reads.
    assert!(opened < ATTEMPTS / 4, "cut only after {opened} streams");
    // The gateway (h2 under hyper) answers with GOAWAY ENHANCE_YOUR_CALM ("too_many_resets").
    let conn_error = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("connection ends")
        .expect("connection task")
        .expect_err("connection ends with an error");
    assert!(conn_error.is_go_away(), "{conn_error}");
    assert_eq!(
        conn_error.reason(),
        Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{conn_error}"
    );

    // The listener is unharmed: a fresh connection is served.
    let mut fresh = h2_client(port).await;
    let resp = fresh
        .send_request(
            Request::get("http://example.com/after")
                .body(Full::default())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
}

type FrameStream = http_body_util::StreamBody<
    tokio_stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, Infallible>>>,
>;

/// A chunked body: `chunks` as data frames, then `trailers`.
fn chunked_with_trailers(chunks: &[&'static str], trailers: HeaderMap) -> FrameStream {
    let mut frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = chunks
        .iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    frames.push(Ok(http_body::Frame::trailers(trailers)));
    http_body_util::StreamBody::new(tokio_stream::iter(frames))
}

/// An HTTP/1.1 backend that records the request body and trailers, and answers a chunked
/// body `hello world` with the trailer `x-checksum: abc` (declared in `Trailer`).
async fn trailer_backend() -> (SocketAddr, Arc<std::sync::Mutex<Vec<(String, HeaderMap)>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let collected = req.into_body().collect().await.expect("request body");
                        let trailers = collected.trailers().cloned().unwrap_or_default();
                        let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
                        record.lock().expect("lock").push((body, trailers));
                        let mut trailers = HeaderMap::new();
                        trailers.insert("x-checksum", "abc".parse().expect("value"));
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("trailer", "x-checksum")
                                .body(chunked_with_trailers(&["hello ", "world"], trailers))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

#[tokio::test]
async fn http1_trailers_pass_through() {
    let (backend, seen) = trailer_backend().await;
    let (_gw, port) = simple(
        &forward_rule("trailers"),
        &[service_yaml("default", "trailers", backend)],
    )
    .await;
    let mut sender = common::http1_connection(port).await;

    let mut request_trailers = HeaderMap::new();
    request_trailers.insert("x-req-sum", "42".parse().expect("value"));
    // hyper sends HTTP/1.1 trailers only when they are declared in `Trailer` (both ways), and
    // answers with trailers only to a request carrying `TE: trailers`.
    let request = Request::post("/upload")
        .header("host", "example.com")
        .header("te", "trailers")
        .header("trailer", "x-req-sum")
        .body(chunked_with_trailers(&["up", "load"], request_trailers))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("answer within 10 s")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let collected = resp.into_body().collect().await.expect("response body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("response trailers arrive");
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "hello world");

    // Request trailers of a chunked HTTP/1.1 request reach the backend too.
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    let (body, trailers) = &seen[0];
    assert_eq!(body, "upload");
    assert_eq!(
        trailers.get("x-req-sum").map(|v| v.as_bytes()),
        Some(&b"42"[..]),
        "request trailers at the backend: {trailers:?}"
    );
}

/// A backend speaking HTTP/1.0: answers one request per connection and closes.
async fn http10_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    address
}

/// Found by the outside checks (curl through `gateway run` to Python's `http.server`): the
/// backend's HTTP/1.0 answer was passed on as `HTTP/1.0`, which ended the client's
/// keep-alive connection after every request. The client gets its own version.
#[tokio::test]
async fn an_http10_backend_does_not_end_the_client_connection() {
    let backend = http10_backend().await;
    let (_gw, port) = simple(
        &forward_rule("old"),
        &[service_yaml("default", "old", backend)],
    )
    .await;
    let mut sender = common::http1_connection(port).await;
    for _ in 0..3 {
        sender.ready().await.expect("the connection stays open");
        let resp = sender
            .send_request(
                Request::get("/")
                    .header("host", "example.com")
                    .body(Full::<Bytes>::default())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_11);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"ok");
    }
}
