//! Operations: metrics scraped from the admin endpoint over a real socket, readiness, the
//! configuration and status pages, trace context, and the series bound at 5 000 routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::compile::{Options, compile};
use gateway_core::ir::Ir;
use gateway_core::status::Status;
use gateway_net::admin::{AdminServer, AdminState};
use gateway_net::{Gateway, GatewayConfig, Readiness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::common::{self, CLASS, free_port, free_udp_port, http_echo, tcp_echo, udp_echo};

// === helpers ===

fn compile_with_status(yaml: &str) -> (Ir, Status) {
    let snapshot =
        gateway_file::load_str(std::path::Path::new("test.yaml"), yaml, &Default::default())
            .unwrap_or_else(|e| panic!("test manifests do not load:\n{e}"));
    compile(&snapshot, &Options::default())
}

/// A Service `name` in `ops` on port 80 (`protocol` TCP or UDP) with `endpoint`, or with no
/// EndpointSlice at all.
fn service(name: &str, protocol: &str, endpoint: Option<SocketAddr>) -> String {
    let mut yaml = format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: ops}}
spec: {{ports: [{{port: 80, protocol: {protocol}, targetPort: {port}}}]}}
",
        port = endpoint.map_or(9, |e| e.port())
    );
    if let Some(endpoint) = endpoint {
        yaml.push_str(&format!(
            "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: ops, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: {port}, protocol: {protocol}}}]
endpoints: [{{addresses: [\"{ip}\"]}}]
",
            port = endpoint.port(),
            ip = endpoint.ip()
        ));
    }
    yaml
}

/// Raw HTTP/1.1 `GET` over a fresh connection (`Connection: close`): status and body.
async fn http_get(address: SocketAddr, host: &str, path: &str, extra: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let out = common::read_to_end_within(&mut stream, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn scrape(admin: SocketAddr) -> String {
    let (status, body) = http_get(admin, "admin", "/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of one series (`name{labels}`) in scraped text.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `series` has `expected` (counters updated when a connection ends are
/// written a moment after the client sees the end); fails after 10 s.
async fn eventually(admin: SocketAddr, series: &str, expected: f64) {
    let started = Instant::now();
    loop {
        let text = scrape(admin).await;
        if value(&text, series) == Some(expected) {
            return;
        }
        if started.elapsed() > Duration::from_secs(10) {
            panic!(
                "{series} is {:?}, not {expected}:\n{text}",
                value(&text, series)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_series(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in:\n{text}");
}

/// Lines that are samples (not `#` comments).
fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

async fn start_admin(gateway: &Gateway) -> (Arc<AdminState>, AdminServer) {
    let state = AdminState::new(gateway.clone());
    let server = AdminServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), state.clone())
        .await
        .expect("admin bind");
    (state, server)
}

// === metrics ===

struct Ports {
    http: u16,
    tcp: u16,
    udp: u16,
    tls: u16,
}

async fn ops_yaml(ports: &Ports) -> String {
    let refused = SocketAddr::from(([127, 0, 0, 1], free_port()));
    format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: ops}}
spec:
  gatewayClassName: test
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
  listeners:
  - {{name: http, protocol: HTTP, port: {http}}}
  - {{name: tcp, protocol: TCP, port: {tcp}}}
  - {{name: udp, protocol: UDP, port: {udp}}}
  - {{name: tls, protocol: TLS, port: {tls}, hostname: a.example, tls: {{mode: Passthrough}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: ops}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /app}}}}]
    backendRefs: [{{name: echo, port: 80}}]
  - name: down
    matches: [{{path: {{type: PathPrefix, value: /down}}}}]
    backendRefs: [{{name: empty, port: 80}}]
  - name: refused
    matches: [{{path: {{type: PathPrefix, value: /refused}}}}]
    backendRefs: [{{name: refused, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: t, namespace: ops}}
spec:
  parentRefs: [{{name: gw, sectionName: tcp}}]
  rules: [{{backendRefs: [{{name: tcpecho, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {{name: u, namespace: ops}}
spec:
  parentRefs: [{{name: gw, sectionName: udp}}]
  rules: [{{backendRefs: [{{name: udpecho, port: 80}}]}}]
{}{}{}{}{}",
        service("echo", "TCP", Some(http_echo("echo").await)),
        service("empty", "TCP", None),
        service("refused", "TCP", Some(refused)),
        service("tcpecho", "TCP", Some(tcp_echo().await)),
        service("udpecho", "UDP", Some(udp_echo("u:").await)),
        http = ports.http,
        tcp = ports.tcp,
        udp = ports.udp,
        tls = ports.tls,
    )
}

#[tokio::test]
async fn metrics_count_every_kind_of_traffic_exactly() {
    let ports = Ports {
        http: free_port(),
        tcp: free_port(),
        udp: free_udp_port(),
        tls: free_port(),
    };
    let (ir, status) = compile_with_status(&ops_yaml(&ports).await);
    let gateway = Gateway::new(GatewayConfig::default());
    let (admin_state, admin) = start_admin(&gateway).await;
    let report = gateway.apply(&ir).await;
    assert!(report.is_complete(), "{report:?}");
    gateway.metrics().record_status(&status);
    admin_state.publish(Arc::new(ir), Arc::new(status));
    let admin = admin.local_addr();
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    // HTTP: 3 × 200, 2 × 404 (no route), 1 × 503 (no endpoint), 1 × 503 (endpoint refuses the connection).
    for _ in 0..3 {
        assert_eq!(http_get(local(ports.http), "x", "/app", "").await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(
            http_get(local(ports.http), "x", "/nothing", "").await.0,
            404
        );
    }
    assert_eq!(http_get(local(ports.http), "x", "/down", "").await.0, 503);
    assert_eq!(
        http_get(local(ports.http), "x", "/refused", "").await.0,
        503
    );

    // TCP: 5 bytes each way.
    let mut tcp = TcpStream::connect(local(ports.tcp)).await.expect("tcp");
    tcp.write_all(b"hello").await.expect("write");
    tcp.shutdown().await.expect("fin");
    let echoed = common::read_to_end_within(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(echoed, b"hello");
    drop(tcp);

    // UDP: two datagrams of one client (one session), both echoed with a 2-byte tag.
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
    let mut buf = [0u8; 64];
    for payload in [&b"abc"[..], &b"defg"[..]] {
        client
            .send_to(payload, local(ports.udp))
            .await
            .expect("send");
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("udp reply in time")
            .expect("udp reply");
        assert_eq!(&buf[..n], [b"u:", payload].concat());
    }

    // TLS: not a ClientHello.
    let mut tls = TcpStream::connect(local(ports.tls)).await.expect("tls");
    tls.write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let _ = common::read_to_end_within(&mut tls, Duration::from_secs(10)).await;
    drop(tls);

    // TLS: a real ClientHello for a name no listener serves.
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let stream = TcpStream::connect(local(ports.tls)).await.expect("tls");
    let name = rustls::pki_types::ServerName::try_from("b.example").expect("name");
    let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream))
        .await
        .expect("handshake ends in time");
    assert!(handshake.is_err(), "no listener serves b.example");

    // Counters updated when a connection ends may lag the client by a moment.
    eventually(
        admin,
        r#"gateway_tls_handshake_failures_total{reason="unknown_sni"}"#,
        1.0,
    )
    .await;
    eventually(
        admin,
        r#"gateway_tls_handshake_failures_total{reason="client_hello_malformed"}"#,
        1.0,
    )
    .await;
    eventually(
        admin,
        r#"gateway_tcp_bytes_total{direction="upstream"}"#,
        5.0,
    )
    .await;
    for port in [ports.http, ports.tcp, ports.tls] {
        eventually(
            admin,
            &format!(r#"gateway_downstream_connections_active{{bind="127.0.0.1:{port}"}}"#),
            0.0,
        )
        .await;
    }
    let text = scrape(admin).await;

    let route = |rule: &str, class: &str| {
        format!(
            r#"gateway_http_requests_total{{gateway="ops/gw",listener="http",kind="HTTPRoute",route="ops/web",rule="{rule}",class="{class}"}}"#
        )
    };
    let bind = |name: &str, port: u16| format!(r#"{name}{{bind="127.0.0.1:{port}"}}"#);
    let udp =
        |name: &str, label: &str| format!(r#"{name}{{bind="127.0.0.1:{}"{label}}}"#, ports.udp);
    let expected: Vec<(String, f64)> = vec![
        (route("0", "2xx"), 3.0),
        (route("0", "5xx"), 0.0),
        (route("down", "5xx"), 1.0),
        (route("refused", "5xx"), 1.0),
        (r#"gateway_http_requests_total{gateway="",listener="",kind="",route="",rule="",class="4xx"}"#.to_owned(), 2.0),
        (r#"gateway_http_request_duration_seconds_count{gateway="ops/gw",listener="http"}"#.to_owned(), 5.0),
        (r#"gateway_http_request_duration_seconds_bucket{gateway="ops/gw",listener="http",le="+Inf"}"#.to_owned(), 5.0),
        (r#"gateway_http_request_duration_seconds_count{gateway="",listener=""}"#.to_owned(), 2.0),
        // The 200s and the refused attempt reached (or tried) a backend; the 503 did not.
        (r#"gateway_http_upstream_duration_seconds_count{gateway="ops/gw",listener="http"}"#.to_owned(), 4.0),
        (r#"gateway_upstream_failures_total{protocol="http",reason="connect_error"}"#.to_owned(), 1.0),
        (r#"gateway_upstream_failures_total{protocol="http",reason="timeout"}"#.to_owned(), 0.0),
        (bind("gateway_downstream_connections_total", ports.http), 7.0),
        (bind("gateway_downstream_connections_total", ports.tcp), 1.0),
        (bind("gateway_downstream_connections_total", ports.tls), 2.0),
        (r#"gateway_tcp_connections_total{gateway="ops/gw",listener="tcp"}"#.to_owned(), 1.0),
        (r#"gateway_tcp_connections_active{gateway="ops/gw",listener="tcp"}"#.to_owned(), 0.0),
        (r#"gateway_tcp_bytes_total{direction="downstream"}"#.to_owned(), 5.0),
        (udp("gateway_udp_datagrams_total", r#",direction="received""#), 2.0),
        (udp("gateway_udp_datagrams_total", r#",direction="forwarded""#), 2.0),
        (udp("gateway_udp_datagrams_total", r#",direction="sent""#), 2.0),
        (udp("gateway_udp_bytes_total", r#",direction="received""#), 7.0),
        (udp("gateway_udp_bytes_total", r#",direction="sent""#), 11.0),
        (udp("gateway_udp_sessions_total", ""), 1.0),
        (udp("gateway_udp_sessions_active", ""), 1.0),
        (udp("gateway_udp_sessions_ended_total", r#",reason="evicted""#), 0.0),
        (r#"gateway_config_reloads_total{outcome="applied"}"#.to_owned(), 1.0),
        (r#"gateway_routes{kind="HTTPRoute",state="accepted"}"#.to_owned(), 1.0),
        (r#"gateway_routes{kind="UDPRoute",state="accepted"}"#.to_owned(), 1.0),
        ("gateway_ready".to_owned(), 1.0),
    ];
    for (series, value) in &expected {
        assert_series(&text, series, *value);
    }
    assert!(
        value(
            &text,
            "gateway_config_last_reload_success_timestamp_seconds"
        )
        .is_some_and(|t| t > 1.7e9),
        "{text}"
    );
    // Client data never becomes a label.
    for leak in ["/app", "/nothing", "\"x\"", "127.0.0.1:0\""] {
        assert!(!text.contains(leak), "{leak} in metrics:\n{text}");
    }

    // The data plane does not serve the admin paths.
    let (status, body) = http_get(local(ports.http), "x", "/metrics", "").await;
    assert_eq!(status, 404);
    assert!(!body.contains("gateway_"), "{body}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn udp_sessions_evicted_are_counted() {
    let port = free_udp_port();
    let yaml = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: ops}}
spec:
  gatewayClassName: test
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
  listeners: [{{name: udp, protocol: UDP, port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {{name: u, namespace: ops}}
spec:
  parentRefs: [{{name: gw, sectionName: udp}}]
  rules: [{{backendRefs: [{{name: udpecho, port: 80}}]}}]
{}",
        service("udpecho", "UDP", Some(udp_echo("").await))
    );
    let mut config = GatewayConfig::default();
    config.l4.max_udp_sessions = 1;
    let gateway = common::start_with(&yaml, config).await;
    let (_, admin) = start_admin(&gateway).await;
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client
            .send_to(b"x", ("127.0.0.1", port))
            .await
            .expect("send");
        tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("reply in time")
            .expect("reply");
    }
    let text = scrape(admin.local_addr()).await;
    let series = |name: &str, label: &str| format!(r#"{name}{{bind="127.0.0.1:{port}"{label}}}"#);
    assert_series(&text, &series("gateway_udp_sessions_total", ""), 3.0);
    assert_series(
        &text,
        &series("gateway_udp_sessions_ended_total", r#",reason="evicted""#),
        2.0,
    );
    assert_series(&text, &series("gateway_udp_sessions_active", ""), 1.0);
    gateway.shutdown().await;
}

// === admin endpoint ===

fn http_gateway_yaml(port: u16, routes: &[&str], echo: SocketAddr) -> String {
    let mut yaml = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: ops}}
spec:
  gatewayClassName: test
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
{}",
        service("echo", "TCP", Some(echo))
    );
    for name in routes {
        yaml.push_str(&format!(
            "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: ops}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{name}.example]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
"
        ));
    }
    yaml
}

#[tokio::test]
async fn ready_config_and_status_follow_applies_and_drain() {
    let echo = http_echo("echo").await;
    let port = free_port();
    let mut config = GatewayConfig::default();
    config.listener.drain_timeout = Duration::from_secs(5);
    let gateway = Gateway::new(config);
    let (state, admin) = start_admin(&gateway).await;
    let admin = admin.local_addr();

    // Before the first apply.
    assert_eq!(gateway.readiness(), Readiness::NotApplied);
    let (status, body) = http_get(admin, "admin", "/ready", "").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "no configuration applied yet\n")
    );
    assert_eq!(http_get(admin, "admin", "/healthz", "").await.0, 200);
    assert_eq!(http_get(admin, "admin", "/config", "").await.0, 503);

    // First apply.
    let (ir, status) = compile_with_status(&http_gateway_yaml(port, &["alpha"], echo));
    assert!(gateway.apply(&ir).await.is_complete());
    state.publish(Arc::new(ir), Arc::new(status));
    assert_eq!(
        http_get(admin, "admin", "/ready", "").await,
        (200, "ready\n".into())
    );
    let (code, config) = http_get(admin, "admin", "/config", "").await;
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    let routes = &json["binds"][0]["listeners"][0]["httpRoutes"];
    assert_eq!(routes[0]["id"], "HTTPRoute ops/alpha", "{json:#}");
    assert!(
        config.contains(&echo.to_string()),
        "endpoints listed: {config}"
    );
    let (code, table) = http_get(admin, "admin", "/status", "").await;
    assert_eq!(code, 200);
    assert!(table.starts_with("KIND"), "{table}");
    assert!(
        table.contains("ops/alpha") && !table.contains("ops/beta"),
        "{table}"
    );

    // A change shows in /config, /status and the metrics.
    let (ir, status) = compile_with_status(&http_gateway_yaml(port, &["alpha", "beta"], echo));
    assert!(gateway.apply(&ir).await.is_complete());
    state.publish(Arc::new(ir), Arc::new(status));
    let (_, config) = http_get(admin, "admin", "/config", "").await;
    assert!(config.contains("HTTPRoute ops/beta"), "{config}");
    let (_, table) = http_get(admin, "admin", "/status", "").await;
    assert!(table.contains("ops/beta"), "{table}");
    let text = scrape(admin).await;
    assert_series(
        &text,
        r#"gateway_config_reloads_total{outcome="applied"}"#,
        2.0,
    );
    assert!(text.contains(r#"route="ops/beta""#), "{text}");

    // A route removed takes its series with it.
    let (ir, _) = compile_with_status(&http_gateway_yaml(port, &["beta"], echo));
    assert!(gateway.apply(&ir).await.is_complete());
    let text = scrape(admin).await;
    assert!(!text.contains(r#"route="ops/alpha""#), "{text}");

    // An apply that cannot bind its socket: not ready.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("address").port();
    let (ir, _) = compile_with_status(&http_gateway_yaml(taken_port, &["beta"], echo));
    assert!(!gateway.apply(&ir).await.is_complete());
    let (status, body) = http_get(admin, "admin", "/ready", "").await;
    assert_eq!(status, 503, "{body}");
    let text = scrape(admin).await;
    assert_series(
        &text,
        r#"gateway_config_reloads_total{outcome="partial"}"#,
        1.0,
    );
    gateway.metrics().record_rejected_config();
    let text = scrape(admin).await;
    assert_series(
        &text,
        r#"gateway_config_reloads_total{outcome="rejected"}"#,
        1.0,
    );
    drop(taken);

    // Ready again, then draining: 503 while connections finish, and after.
    let (ir, _) = compile_with_status(&http_gateway_yaml(port, &["beta"], echo));
    assert!(gateway.apply(&ir).await.is_complete());
    assert_eq!(http_get(admin, "admin", "/ready", "").await.0, 200);
    // An open connection keeps the drain going while /ready is asked.
    let mut open = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    open.write_all(b"GET / HTTP/1.1\r\nHost: beta.example\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    open.read_exact(&mut head).await.expect("response");
    assert_eq!(&head, b"HTTP/1.1 200");
    let draining = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.shutdown().await }
    });
    let started = Instant::now();
    while gateway.readiness() != Readiness::Draining {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never draining"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        http_get(admin, "admin", "/ready", "").await,
        (503, "draining\n".into())
    );
    drop(open);
    draining.await.expect("shutdown");
    assert_eq!(http_get(admin, "admin", "/ready", "").await.0, 503);
    assert_eq!(http_get(admin, "admin", "/healthz", "").await.0, 200);
    // Only GET and HEAD.
    let mut stream = TcpStream::connect(admin).await.expect("connect");
    stream
        .write_all(
            b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let out = common::read_to_end_within(&mut stream, Duration::from_secs(10)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 405"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

// === trace context ===

#[tokio::test]
async fn traceparent_is_kept_when_valid_and_created_otherwise() {
    let echo = http_echo("echo").await;
    let port = free_port();
    let gateway = common::start(&http_gateway_yaml(port, &["alpha"], echo)).await;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let seen = |body: &str, name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    };

    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, body) = http_get(
        address,
        "alpha.example",
        "/",
        &format!("traceparent: {valid}\r\ntracestate: vendor=1\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&body, "traceparent").as_deref(), Some(valid), "{body}");
    assert_eq!(
        seen(&body, "tracestate").as_deref(),
        Some("vendor=1"),
        "{body}"
    );

    // A later version with more fields is valid too.
    let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    let (_, body) = http_get(
        address,
        "alpha.example",
        "/",
        &format!("traceparent: {future}\r\n"),
    )
    .await;
    assert_eq!(
        seen(&body, "traceparent").as_deref(),
        Some(future),
        "{body}"
    );

    let well_formed = |value: &str| {
        let parts: Vec<&str> = value.split('-').collect();
        parts.len() == 4
            && parts[0] == "00"
            && parts[1].len() == 32
            && parts[2].len() == 16
            && parts[3] == "01"
            && parts[1..3].iter().all(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    && p.bytes().any(|b| b != b'0')
            })
    };
    let (_, body) = http_get(address, "alpha.example", "/", "").await;
    let first = seen(&body, "traceparent").expect("traceparent created");
    assert!(well_formed(&first), "{first}");
    let (_, body) = http_get(address, "alpha.example", "/", "").await;
    let second = seen(&body, "traceparent").expect("traceparent created");
    assert_ne!(first[3..35], second[3..35], "a new trace id per request");

    for invalid in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with a tail
        "garbage",
    ] {
        let (_, body) = http_get(
            address,
            "alpha.example",
            "/",
            &format!("traceparent: {invalid}\r\ntracestate: vendor=1\r\n"),
        )
        .await;
        let replaced = seen(&body, "traceparent").expect("traceparent");
        assert!(
            well_formed(&replaced) && replaced != invalid,
            "{invalid} → {replaced}"
        );
        assert_eq!(
            seen(&body, "tracestate"),
            None,
            "tracestate of an invalid parent kept"
        );
    }
    gateway.shutdown().await;
}

// === cardinality ===

/// 5 000 HTTPRoutes on one listener: the series stay under 50 000 whatever the traffic (every
/// counter of every rule is written from the start, so traffic adds no series), and their
/// number is what the formula in the `metrics` module documentation says.
#[tokio::test]
async fn series_stay_bounded_at_5000_routes() {
    const ROUTES: usize = 5_000;
    let echo = http_echo("echo").await;
    let port = free_port();
    let names: Vec<String> = (0..ROUTES).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (ir, status) = compile_with_status(&http_gateway_yaml(port, &refs, echo));
    let gateway = Gateway::new(GatewayConfig::default());
    assert!(gateway.apply(&ir).await.is_complete());
    gateway.metrics().record_status(&status);
    let (_, admin) = start_admin(&gateway).await;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    // A sample of routes, and requests no route takes (hosts and paths never become labels).
    for i in (0..ROUTES).step_by(250) {
        let host = format!("r{i}.example");
        assert_eq!(http_get(address, &host, &format!("/p{i}"), "").await.0, 200);
        assert_eq!(
            http_get(address, &format!("nobody{i}.example"), "/", "")
                .await
                .0,
            404
        );
    }
    let text = scrape(admin.local_addr()).await;
    let series = series_count(&text);
    // 5 R + 38 L + 3 B + 4 T + 14 U + 68 with R = 5000, L = 1, B = 1, T = U = 0.
    assert_eq!(series, 5 * ROUTES + 38 + 3 + 68, "series count");
    assert!(series < 50_000);
    assert_series(
        &text,
        r#"gateway_routes{kind="HTTPRoute",state="accepted"}"#,
        ROUTES as f64,
    );
    assert_series(
        &text,
        r#"gateway_http_requests_total{gateway="ops/gw",listener="http",kind="HTTPRoute",route="ops/r250",rule="0",class="2xx"}"#,
        1.0,
    );
    println!(
        "{series} series at {ROUTES} routes, {} bytes per scrape",
        text.len()
    );
    gateway.shutdown().await;
}

// === access log ===

/// The access-log lines a gateway with `access_log` writes for one request to `path`, as
/// JSON.
async fn access_log_lines(access_log: bool, path: &str) -> Vec<serde_json::Value> {
    // Installs the capture before the request.
    common::access_log_lines();
    let echo = http_echo("echo").await;
    let port = free_port();
    let mut config = GatewayConfig::default();
    config.access_log = access_log;
    let gateway = common::start_with(&http_gateway_yaml(port, &["alpha"], echo), config).await;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        http_get(address, "alpha.example", &format!("{path}?b=c"), "")
            .await
            .0,
        200
    );
    gateway.shutdown().await;
    common::access_log_lines()
        .into_iter()
        .filter(|v| v["fields"]["path"] == path)
        .collect()
}

#[tokio::test]
async fn access_log_names_route_service_backend_and_upstream_time() {
    let lines = access_log_lines(true, "/logged-with-fields").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["route"], "HTTPRoute ops/alpha", "{fields}");
    assert_eq!(fields["rule"], 0, "{fields}");
    assert_eq!(fields["service"], "ops/echo:80", "{fields}");
    assert!(
        fields["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("127.0.0.1:")),
        "{fields}"
    );
    assert!(fields["upstream_ms"].as_f64().is_some(), "{fields}");
    assert!(fields["total_ms"].as_f64().is_some(), "{fields}");
    assert_eq!(fields["path"], "/logged-with-fields", "{fields}");
    assert_eq!(fields["status"], 200, "{fields}");
}

#[tokio::test]
async fn access_log_can_be_turned_off() {
    assert_eq!(
        access_log_lines(false, "/not-logged").await,
        Vec::<serde_json::Value>::new()
    );
}
