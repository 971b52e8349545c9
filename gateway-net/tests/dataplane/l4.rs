//! Tests of the l4 data plane: TCPRoute and UDPRoute listeners over real sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_net::{Gateway, GatewayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::common::{
    CLASS, SPLICES, compile_yaml, compile_yaml_any, free_port, free_udp_port, metric,
    read_to_end_within, spliced, start, start_with, tcp_echo, udp_echo,
};

const NS: &str = "l4";

/// A Gateway `gw` with `(name, protocol, port)` listeners.
fn gateway_yaml(listeners: &[(&str, &str, u16)]) -> String {
    let mut yaml = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {NS}}}
spec:
  gatewayClassName: test
  listeners:
"
    );
    for (name, protocol, port) in listeners {
        yaml.push_str(&format!(
            "  - {{name: {name}, protocol: {protocol}, port: {port}}}\n"
        ));
    }
    yaml
}

/// A Service `name` whose port 80 (`protocol` TCP or UDP) has the endpoints `backends`.
fn service(name: &str, protocol: &str, backends: &[SocketAddr]) -> String {
    let port = backends.first().map_or(9, |b| b.port());
    let addresses: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.ip())).collect();
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NS}}}
spec: {{ports: [{{port: 80, protocol: {protocol}, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {NS}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: {port}, protocol: {protocol}}}]
endpoints: [{{addresses: [{}]}}]
",
        addresses.join(", ")
    )
}

/// A TCPRoute or UDPRoute (`kind`) on listener `section` to `(service, weight)` backends.
fn route(kind: &str, name: &str, section: &str, backends: &[(&str, u32)]) -> String {
    let refs: Vec<String> = backends
        .iter()
        .map(|(svc, weight)| format!("{{name: {svc}, port: 80, weight: {weight}}}"))
        .collect();
    format!(
        "---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: {kind}
metadata: {{name: {name}, namespace: {NS}}}
spec:
  parentRefs: [{{name: gw, sectionName: {section}}}]
  rules: [{{backendRefs: [{}]}}]
",
        refs.join(", ")
    )
}

/// A gateway with one TCP listener on a free port routed to `backend`; returns the address.
fn tcp_yaml(port: u16, backend: SocketAddr) -> String {
    gateway_yaml(&[("tcp", "TCP", port)])
        + &service("echo", "TCP", &[backend])
        + &route("TCPRoute", "r", "tcp", &[("echo", 1)])
}

fn udp_yaml(port: u16, backend: SocketAddr) -> String {
    gateway_yaml(&[("udp", "UDP", port)])
        + &service("echo", "UDP", &[backend])
        + &route("UDPRoute", "r", "udp", &[("echo", 1)])
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A TCP backend that first writes `tag`, then echoes.
async fn tcp_tagged(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if stream.write_all(tag.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    address
}

/// A UDP backend answering each datagram with the sender's address, so a test can tell
/// sessions (upstream sockets) apart.
async fn udp_who() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((_, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(from.to_string().as_bytes(), from).await;
        }
    });
    address
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(local(port))
        .await
        .expect("connect to the gateway")
}

/// Writes `data` and reads back as many bytes.
async fn roundtrip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo within 5 s")
        .expect("echo");
    back
}

async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut back = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("bytes within 5 s")
        .expect("bytes");
    back
}

async fn udp_ask(client: &UdpSocket, to: SocketAddr, data: &[u8]) -> Option<String> {
    client.send_to(data, to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_through_gateway() {
    let port = free_port();
    let _gw = start(&tcp_yaml(port, tcp_echo().await)).await;
    let mut stream = connect(port).await;
    assert_eq!(roundtrip(&mut stream, b"hello").await, b"hello");
    assert_eq!(roundtrip(&mut stream, b"again").await, b"again");
}

/// A configuration with splice(2) on (where the system has it) or off.
fn splice_config(on: bool) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.l4.tcp_splice = on;
    config
}

/// The client's FIN reaches the backend while the echo keeps coming back; the connection
/// went the way `config` says.
async fn half_close_still_reads_the_echo(config: GatewayConfig) {
    let splice = config.l4.tcp_splice && SPLICES;
    let port = free_port();
    let gw = start_with(&tcp_yaml(port, tcp_echo().await), config).await;
    let mut stream = connect(port).await;
    let data = vec![7u8; 300_000];
    stream.write_all(&data).await.unwrap();
    stream.shutdown().await.unwrap();
    let back = read_to_end_within(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    assert_eq!(spliced(&gw), if splice { 1.0 } else { 0.0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_half_close_still_reads_the_echo() {
    half_close_still_reads_the_echo(splice_config(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_half_close_still_reads_the_echo_without_splice() {
    half_close_still_reads_the_echo(splice_config(false)).await;
}

/// The other half-close: the backend's FIN reaches the client first, and the client's bytes
/// still reach the backend afterwards.
async fn backend_half_close_keeps_the_client_direction(config: GatewayConfig) {
    let splice = config.l4.tcp_splice && SPLICES;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"greeting, then FIN").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        let _ = got_tx.send(got);
    });
    let port = free_port();
    let gw = start_with(&tcp_yaml(port, backend), config).await;
    let mut stream = connect(port).await;
    let greeting = read_to_end_within(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(greeting, b"greeting, then FIN", "greeting and EOF");
    let data: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
    stream.write_all(&data).await.unwrap();
    stream.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), got_rx)
        .await
        .expect("the backend reads to its EOF")
        .unwrap();
    assert!(got == data, "{} bytes of {} arrived", got.len(), data.len());
    assert_eq!(spliced(&gw), if splice { 1.0 } else { 0.0 });
    // Both directions ended cleanly: the bytes are counted, no error.
    let upstream = r#"gateway_tcp_bytes_total{direction="upstream"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&gw, upstream) != Some(data.len() as f64) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&gw, upstream), Some(data.len() as f64));
    assert_eq!(
        metric(&gw, r#"gateway_tcp_bytes_total{direction="downstream"}"#),
        Some(18.0)
    );
    assert_eq!(
        metric(&gw, r#"gateway_tcp_streams_closed_total{reason="error"}"#),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_backend_half_close_keeps_the_client_direction() {
    backend_half_close_keeps_the_client_direction(splice_config(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_backend_half_close_keeps_the_client_direction_without_splice() {
    backend_half_close_keeps_the_client_direction(splice_config(false)).await;
}

/// 64 KiB block `i` of the test pattern: pseudo-random bytes with the block number stamped in
/// front, so a lost, repeated or reordered block shows.
fn block(i: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut out = Vec::with_capacity(65536);
    while out.len() < 65536 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out[..8].copy_from_slice(&i.to_le_bytes());
    out
}

/// 100 MiB echoed through the gateway arrive complete and in order, the way `config` says.
async fn hundred_mb_byte_for_byte(config: GatewayConfig) {
    const BLOCKS: u64 = 1600; // 1600 × 64 KiB = 100 MiB
    let splice = config.l4.tcp_splice && SPLICES;
    let port = free_port();
    let gw = start_with(&tcp_yaml(port, tcp_echo().await), config).await;
    let started = Instant::now();
    let stream = connect(port).await;
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..BLOCKS {
            w.write_all(&block(i)).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut expected_block = 0u64;
    let mut expected = block(0);
    let mut offset = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), r.read(&mut buf))
            .await
            .expect("data keeps flowing")
            .unwrap();
        if n == 0 {
            break;
        }
        let mut got = &buf[..n];
        while !got.is_empty() {
            assert!(expected_block < BLOCKS, "more bytes than sent");
            let take = got.len().min(65536 - offset);
            assert!(
                got[..take] == expected[offset..offset + take],
                "mismatch in block {expected_block} at offset {offset}"
            );
            got = &got[take..];
            offset += take;
            total += take as u64;
            if offset == 65536 {
                offset = 0;
                expected_block += 1;
                expected = block(expected_block);
            }
        }
    }
    writer.await.unwrap();
    assert_eq!(total, BLOCKS * 65536);
    assert_eq!(spliced(&gw), if splice { 1.0 } else { 0.0 });
    println!(
        "100 MiB echoed through the gateway (splice {splice}) in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_100_mb_byte_for_byte() {
    hundred_mb_byte_for_byte(splice_config(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_100_mb_byte_for_byte_without_splice() {
    hundred_mb_byte_for_byte(splice_config(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_backend_down_closes_promptly() {
    let port = free_port();
    // Nothing listens on the backend port.
    let _gw = start(&tcp_yaml(port, local(free_port()))).await;
    let mut stream = connect(port).await;
    let started = Instant::now();
    let got = read_to_end_within(&mut stream, Duration::from_secs(5)).await;
    assert!(got.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_invalid_backend_share_is_rejected() {
    let port = free_port();
    let yaml = gateway_yaml(&[("tcp", "TCP", port)])
        + &service("echo", "TCP", &[tcp_echo().await])
        + &route("TCPRoute", "r", "tcp", &[("echo", 1), ("missing", 1)]);
    let gateway = Gateway::new(GatewayConfig::default());
    let report = gateway.apply(&compile_yaml_any(&yaml)).await;
    assert!(report.is_complete(), "{report:?}");
    let mut served = 0;
    for _ in 0..10 {
        let mut stream = connect(port).await;
        let _ = stream.write_all(b"x").await;
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        if let Ok(Ok(1)) = read {
            served += 1;
        }
    }
    assert_eq!(served, 5, "half the connections go to the invalid backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connection_limit_holds_across_apply() {
    let port = free_port();
    let yaml = tcp_yaml(port, tcp_echo().await);
    let mut config = GatewayConfig::default();
    config.l4.max_connections_per_listener = 1;
    let gateway = start_with(&yaml, config).await;
    let mut first = connect(port).await;
    assert_eq!(roundtrip(&mut first, b"one").await, b"one");
    // A new configuration must not reset the count.
    assert!(gateway.apply(&compile_yaml(&yaml)).await.is_complete());
    let mut second = connect(port).await;
    let _ = second.write_all(b"two").await;
    assert!(
        read_to_end_within(&mut second, Duration::from_secs(2))
            .await
            .is_empty()
    );
    assert_eq!(roundtrip(&mut first, b"still").await, b"still");
    drop(first);
    // The slot is released when the first connection ends.
    let mut third = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut stream = connect(port).await;
        stream.write_all(b"3").await.unwrap();
        let mut buf = [0u8; 1];
        if let Ok(Ok(1)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
        {
            third = Some(stream);
            break;
        }
    }
    assert!(
        third.is_some(),
        "a connection is accepted once the first one closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_idle_timeout_closes_both_sides() {
    let port = free_port();
    // Splice on (where the system has it): the watchdog sees the spliced bytes too.
    let mut config = splice_config(true);
    config.l4.tcp_idle_timeout = Duration::from_millis(300);
    let gw = start_with(&tcp_yaml(port, tcp_echo().await), config).await;
    let mut stream = connect(port).await;
    assert_eq!(roundtrip(&mut stream, b"hi").await, b"hi");
    assert_eq!(spliced(&gw), if SPLICES { 1.0 } else { 0.0 });
    let started = Instant::now();
    let rest = read_to_end_within(&mut stream, Duration::from_secs(5)).await;
    assert!(rest.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "closed after {waited:?}"
    );
}

/// A backend removed from a route that stays gets no new connections, and its open ones
/// are not cut, even past the drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_route_change_keeps_open_connections() {
    let port = free_port();
    let a = tcp_tagged("A").await;
    let b = tcp_tagged("B").await;
    let mut config = splice_config(true);
    config.listener.drain_timeout = Duration::from_millis(200);
    let gateway = start_with(&tcp_yaml(port, a), config).await;
    let mut old = connect(port).await;
    assert_eq!(read_n(&mut old, 1).await, b"A");
    assert!(
        gateway
            .apply(&compile_yaml(&tcp_yaml(port, b)))
            .await
            .is_complete()
    );
    let mut new = connect(port).await;
    assert_eq!(read_n(&mut new, 1).await, b"B");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(roundtrip(&mut old, b"old").await, b"old");
    assert_eq!(roundtrip(&mut new, b"new").await, b"new");
}

/// The listener stays, its TCPRoute goes: the open stream keeps flowing through the drain
/// timeout, then both sides are closed and counted; new connections are closed at once.
async fn removed_route_closes_after_the_drain_timeout(mut config: GatewayConfig) {
    let port = free_port();
    config.listener.drain_timeout = Duration::from_secs(1);
    let gateway = start_with(&tcp_yaml(port, tcp_echo().await), config).await;
    let mut open = connect(port).await;
    assert_eq!(roundtrip(&mut open, b"before").await, b"before");
    let without_route = gateway_yaml(&[("tcp", "TCP", port)]);
    gateway.apply(&compile_yaml_any(&without_route)).await;
    assert_eq!(roundtrip(&mut open, b"draining").await, b"draining");
    let mut refused = connect(port).await;
    assert!(
        read_to_end_within(&mut refused, Duration::from_secs(5))
            .await
            .is_empty()
    );
    let rest = read_to_end_within(&mut open, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "closed after the drain timeout");
    assert_eq!(
        metric(
            &gateway,
            r#"gateway_tcp_streams_closed_total{reason="route_removed"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_removed_route_closes_after_the_drain_timeout() {
    removed_route_closes_after_the_drain_timeout(splice_config(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_removed_route_closes_after_the_drain_timeout_without_splice() {
    removed_route_closes_after_the_drain_timeout(splice_config(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_removed_listener_drains() {
    let port = free_port();
    // Splice on (where the system has it): the drain deadline ends a spliced copy too.
    let mut config = splice_config(true);
    config.listener.drain_timeout = Duration::from_millis(1500);
    let gateway = start_with(&tcp_yaml(port, tcp_echo().await), config).await;
    let mut open = connect(port).await;
    assert_eq!(roundtrip(&mut open, b"before").await, b"before");
    assert_eq!(spliced(&gateway), if SPLICES { 1.0 } else { 0.0 });
    // A configuration without the listener.
    let other = gateway_yaml(&[("other", "TCP", free_port())]);
    gateway.apply(&compile_yaml_any(&other)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(local(port)).await.is_err(),
        "no longer accepting"
    );
    assert_eq!(roundtrip(&mut open, b"during").await, b"during");
    // The drain deadline closes what is left.
    let rest = read_to_end_within(&mut open, Duration::from_secs(5)).await;
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_clients_get_only_their_replies() {
    let port = free_udp_port();
    let _gw = start(&udp_yaml(port, udp_echo("echo:").await)).await;
    let mut tasks = Vec::new();
    for c in 0..5 {
        tasks.push(tokio::spawn(async move {
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            for i in 0..20 {
                let message = format!("client {c} message {i}");
                let reply = udp_ask(&client, local(port), message.as_bytes()).await;
                assert_eq!(reply.as_deref(), Some(format!("echo:{message}").as_str()));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_keeps_datagram_boundaries_and_drops_oversized() {
    let port = free_udp_port();
    let mut config = GatewayConfig::default();
    config.l4.max_datagram_size = 1000;
    let _gw = start_with(&udp_yaml(port, udp_echo("").await), config).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_ask(&client, local(port), &[b'x'; 2000]).await, None);
    for size in [1usize, 999, 1000] {
        let reply = udp_ask(&client, local(port), &vec![b'y'; size]).await;
        assert_eq!(reply.map(|r| r.len()), Some(size));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sessions_expire() {
    let port = free_udp_port();
    let mut config = GatewayConfig::default();
    config.l4.udp_idle_timeout = Duration::from_millis(300);
    let _gw = start_with(&udp_yaml(port, udp_who().await), config).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let first = udp_ask(&client, local(port), b"1").await.unwrap();
    assert_eq!(
        udp_ask(&client, local(port), b"2").await.unwrap(),
        first,
        "same session"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = udp_ask(&client, local(port), b"3").await.unwrap();
    assert_ne!(after, first, "a new session (upstream socket) after expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_session_bound_evicts_the_oldest() {
    let port = free_udp_port();
    let mut config = GatewayConfig::default();
    config.l4.max_udp_sessions = 2;
    let _gw = start_with(&udp_yaml(port, udp_who().await), config).await;
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a1 = udp_ask(&a, local(port), b"a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b1 = udp_ask(&b, local(port), b"b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Third client: a, the least recently active, is evicted.
    udp_ask(&c, local(port), b"c").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        udp_ask(&b, local(port), b"b").await.unwrap(),
        b1,
        "b kept its session"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_ne!(
        udp_ask(&a, local(port), b"a").await.unwrap(),
        a1,
        "a got a new session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_route_change_applies_to_new_sessions() {
    let port = free_udp_port();
    let gateway = start(&udp_yaml(port, udp_echo("A:").await)).await;
    let old = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        udp_ask(&old, local(port), b"x").await.as_deref(),
        Some("A:x")
    );
    let new_yaml = udp_yaml(port, udp_echo("B:").await);
    assert!(gateway.apply(&compile_yaml(&new_yaml)).await.is_complete());
    let new = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        udp_ask(&new, local(port), b"y").await.as_deref(),
        Some("B:y")
    );
    assert_eq!(
        udp_ask(&old, local(port), b"z").await.as_deref(),
        Some("A:z")
    );
}

/// A UDP session whose route is replaced by another keeps its backend through the drain
/// timeout, then ends; the client's next datagram opens a session on the current route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_session_of_a_removed_route_moves_after_the_drain_timeout() {
    let port = free_udp_port();
    let mut config = GatewayConfig::default();
    config.listener.drain_timeout = Duration::from_millis(500);
    let gateway = start_with(&udp_yaml(port, udp_echo("A:").await), config).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        udp_ask(&client, local(port), b"x").await.as_deref(),
        Some("A:x")
    );
    let replaced = gateway_yaml(&[("udp", "UDP", port)])
        + &service("other", "UDP", &[udp_echo("B:").await])
        + &route("UDPRoute", "r2", "udp", &[("other", 1)]);
    assert!(gateway.apply(&compile_yaml(&replaced)).await.is_complete());
    assert_eq!(
        udp_ask(&client, local(port), b"y").await.as_deref(),
        Some("A:y"),
        "the session keeps its backend while the route drains"
    );
    let mut moved = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if udp_ask(&client, local(port), b"z").await.as_deref() == Some("B:z") {
            moved = true;
            break;
        }
    }
    assert!(
        moved,
        "the client's datagrams reach the new route after the drain timeout"
    );
    let series = format!(
        "gateway_udp_sessions_ended_total{{bind=\"0.0.0.0:{port}\",reason=\"route_removed\"}}"
    );
    assert_eq!(metric(&gateway, &series), Some(1.0));
}

/// Runs netcat-openbsd with `args`, feeding `input`; fails clearly if `nc` is missing.
async fn nc(args: Vec<String>, input: &'static [u8]) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("nc")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `nc` ({e}): install netcat-openbsd (apt-get install -y netcat-openbsd)")
            });
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// The seed's shape: a TCP and a UDP listener to one Service with a TCP and a UDP port,
/// reached with `nc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_listeners_with_nc() {
    let tcp_port = free_port();
    let udp_port = free_udp_port();
    let tcp_backend = tcp_echo().await;
    let udp_backend = udp_echo("udp:").await;
    let yaml = gateway_yaml(&[("tcp", "TCP", tcp_port), ("udp", "UDP", udp_port)])
        + &format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: tcp-udp, namespace: {NS}}}
spec:
  ports:
  - {{name: tcp, port: 8080, protocol: TCP, targetPort: {tcp}}}
  - {{name: udp, port: 8081, protocol: UDP, targetPort: {udp}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: tcp-udp-1, namespace: {NS}, labels: {{kubernetes.io/service-name: tcp-udp}}}}
addressType: IPv4
ports: [{{name: tcp, port: {tcp}, protocol: TCP}}, {{name: udp, port: {udp}, protocol: UDP}}]
endpoints: [{{addresses: [\"127.0.0.1\"]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: tcp, namespace: {NS}}}
spec:
  parentRefs: [{{name: gw, sectionName: tcp}}]
  rules: [{{backendRefs: [{{name: tcp-udp, port: 8080}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {{name: udp, namespace: {NS}}}
spec:
  parentRefs: [{{name: gw, sectionName: udp}}]
  rules: [{{backendRefs: [{{name: tcp-udp, port: 8081}}]}}]
",
            tcp = tcp_backend.port(),
            udp = udp_backend.port(),
        );
    let _gw = start(&yaml).await;
    let tcp = nc(
        vec![
            "-q1".into(),
            "-w2".into(),
            "127.0.0.1".into(),
            tcp_port.to_string(),
        ],
        b"hello over tcp\n",
    )
    .await;
    assert_eq!(tcp, "hello over tcp\n");
    let udp = nc(
        vec![
            "-u".into(),
            "-w1".into(),
            "127.0.0.1".into(),
            udp_port.to_string(),
        ],
        b"hello over udp\n",
    )
    .await;
    assert_eq!(udp, "udp:hello over udp\n");
}

/// Like `udp_ask` with a short wait, for datagrams expected to be dropped.
async fn udp_try(client: &UdpSocket, to: SocketAddr, data: &[u8]) -> Option<String> {
    client.send_to(data, to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_invalid_backend_share_is_dropped() {
    let port = free_udp_port();
    let yaml = gateway_yaml(&[("udp", "UDP", port)])
        + &service("echo", "UDP", &[udp_echo("ok:").await])
        + &route("UDPRoute", "r", "udp", &[("echo", 1), ("missing", 1)]);
    let gateway = Gateway::new(GatewayConfig::default());
    assert!(gateway.apply(&compile_yaml_any(&yaml)).await.is_complete());
    let mut answered = 0;
    for _ in 0..4 {
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if udp_try(&client, local(port), b"x").await.is_some() {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 2,
        "half the new sessions go to the invalid backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_backend_down_drops_without_harm() {
    let port = free_udp_port();
    let dead = local(free_udp_port());
    let gateway = start(&udp_yaml(port, dead)).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..3 {
        assert_eq!(udp_try(&client, local(port), b"lost").await, None);
    }
    // The listener still serves: a new client after a route change is answered.
    assert!(
        gateway
            .apply(&compile_yaml(&udp_yaml(port, udp_echo("up:").await)))
            .await
            .is_complete()
    );
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        udp_ask(&other, local(port), b"x").await.as_deref(),
        Some("up:x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_removed_listener_stops() {
    let port = free_udp_port();
    let gateway = start(&udp_yaml(port, udp_echo("e:").await)).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        udp_ask(&client, local(port), b"x").await.as_deref(),
        Some("e:x")
    );
    gateway.apply(&gateway_core::ir::Ir::default()).await;
    assert_eq!(udp_try(&client, local(port), b"y").await, None);
    // The socket is closed: the port can be bound again.
    let mut rebound = false;
    for _ in 0..50 {
        if std::net::UdpSocket::bind(local(port)).is_ok() {
            rebound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rebound, "the UDP port is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connect_timeout_closes_promptly() {
    let port = free_port();
    let mut config = GatewayConfig::default();
    config.l4.connect_timeout = Duration::from_millis(300);
    // A listener that never accepts, its accept queue filled: the kernel drops further SYNs,
    // so connecting to it hangs, as to a blackholed address.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(local(0)).unwrap();
    let full = socket.listen(0).unwrap();
    let unreachable = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        #[allow(
            clippy::disallowed_methods,
            reason = "the test fills a backlog from its own thread, before the gateway runs"
        )]
        let attempt =
            std::net::TcpStream::connect_timeout(&unreachable, Duration::from_millis(200));
        fillers.extend(attempt.ok());
    }
    let _gw = start_with(&tcp_yaml(port, unreachable), config).await;
    let mut stream = connect(port).await;
    let started = Instant::now();
    assert!(
        read_to_end_within(&mut stream, Duration::from_secs(5))
            .await
            .is_empty()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "closed after {waited:?}, expected about the 300 ms connect timeout"
    );
    drop(fillers);
}
