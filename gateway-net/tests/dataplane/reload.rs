//! HTTP across configuration changes, as a client and a backend see them: open keep-alive and
//! HTTP/2 connections follow each `apply` from their next request, requests in flight finish
//! where they started, the upstream pools drop endpoints that left the configuration, and the
//! limits of the HTTP listeners (connections, body size, retry buffer) hold.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_net::GatewayConfig;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{self, free_port, metric, service_yaml};
use crate::http::{flaky_backend, forward_rule, gateway_yaml, grpc_frames, route_yaml, send};

/// What a [`tracked_backend`] has seen.
#[derive(Default)]
struct Seen {
    /// Connections accepted.
    accepted: AtomicUsize,
    /// Connections that have ended.
    closed: AtomicUsize,
    /// Requests received.
    requests: AtomicUsize,
    /// The client address of every connection (the gateway's upstream sockets).
    peers: std::sync::Mutex<Vec<SocketAddr>>,
}

/// An HTTP/1.1 and h2c backend answering `name` (and `x-backend: name`) after reading the
/// request body; `/slow` waits 400 ms first. Counts connections and requests.
async fn tracked_backend(name: &'static str) -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            counts.peers.lock().expect("lock").push(peer);
            let counts = counts.clone();
            tokio::spawn(async move {
                let requests = counts.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    requests.requests.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let slow = req.uri().path() == "/slow";
                        let _ = req.into_body().collect().await;
                        if slow {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("x-backend", name)
                                .body(Full::new(Bytes::from(name)))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                counts.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (address, seen)
}

/// Waits up to 5 s for `done`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s: {what}");
}

/// One Gateway with an HTTP listener on `port`, Services `a` and `b`, and the HTTPRoute
/// `web` (`example.com`) sending everything to `to`.
fn two_backends(port: u16, a: SocketAddr, b: SocketAddr, to: &str) -> String {
    format!(
        "{}---\n{}---\n{}---\n{}",
        gateway_yaml(port),
        service_yaml("default", "a", a),
        service_yaml("default", "b", b),
        route_yaml("web", "example.com", &forward_rule(to))
    )
}

/// The backend each configuration generation routes to: `a`, then `b`, `a`, `b`…
fn expected(generation: usize) -> &'static str {
    if generation.is_multiple_of(2) {
        "a"
    } else {
        "b"
    }
}

/// Starts a gateway on `port` routing to `a`, then applies generations 1..=4 of
/// [`two_backends`] while `clients` tasks call `send_one` (which answers the backend's name)
/// in a loop. A request sent once apply `g` had returned, and answered before apply `g + 1`
/// began, must have reached generation `g`'s backend: a connection follows each apply from
/// its next request.
async fn follow_generations<F, Fut>(port: u16, clients: usize, send_one: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send,
{
    let (a, _) = tracked_backend("a").await;
    let (b, _) = tracked_backend("b").await;
    let gateway = common::start(&two_backends(port, a, b, "a")).await;
    // The last apply begun, and the last one returned.
    let begun = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let send_one = Arc::new(send_one);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (begun, done, stop, send_one) =
            (begun.clone(), done.clone(), stop.clone(), send_one.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let before = done.load(Ordering::SeqCst);
                let backend = send_one().await;
                let after = begun.load(Ordering::SeqCst);
                seen.push((before, after, backend));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for next in 1..=4 {
        let yaml = two_backends(port, a, b, expected(next));
        begun.store(next, Ordering::SeqCst);
        assert!(
            gateway
                .apply(&common::compile_yaml(&yaml))
                .await
                .is_complete()
        );
        done.store(next, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut within = [0usize; 5];
    for task in tasks {
        for (before, after, backend) in task.await.expect("client task") {
            if before == after {
                assert_eq!(
                    backend,
                    expected(before),
                    "a request sent after apply {before} returned reached the old backend"
                );
                within[before] += 1;
            }
        }
    }
    assert!(
        within.iter().all(|&n| n > 0),
        "requests per generation: {within:?}"
    );
    gateway.shutdown().await;
}

/// The outside review's case: one busy HTTP/1.1 keep-alive connection kept the backend of
/// the configuration it was accepted with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keep_alive_connection_follows_each_apply() {
    let port = free_port();
    type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
    // One connection for every request, opened by the first one.
    let connection: Arc<tokio::sync::Mutex<Option<Sender>>> = Arc::default();
    let opened = Arc::new(AtomicUsize::new(0));
    let (shared, count) = (connection.clone(), opened.clone());
    follow_generations(port, 1, move || {
        let (shared, count) = (shared.clone(), count.clone());
        async move {
            let mut guard = shared.lock().await;
            if guard.is_none() {
                let sender = common::http1_connection(port).await;
                count.fetch_add(1, Ordering::SeqCst);
                *guard = Some(sender);
            }
            let sender = guard.as_mut().expect("sender");
            sender.ready().await.expect("the connection stays open");
            let (_, body) = ask(sender).await;
            body
        }
    })
    .await;
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "one connection throughout"
    );
}

/// Several streams at once on one h2c connection follow each apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_connection_follows_each_apply() {
    let port = free_port();
    type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;
    let connection: Arc<tokio::sync::OnceCell<Sender>> = Arc::default();
    let shared = connection.clone();
    follow_generations(port, 4, move || {
        let shared = shared.clone();
        async move {
            let sender = shared
                .get_or_init(|| crate::http::h2_client(port))
                .await
                .clone();
            let mut sender = sender;
            let resp = sender
                .send_request(
                    Request::get("http://example.com/")
                        .body(Full::default())
                        .expect("request"),
                )
                .await
                .expect("answer");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        }
    })
    .await;
    assert!(connection.get().is_some(), "the connection was opened");
}

/// A fresh-connection GET to `example.com/path`: the answering backend's name.
async fn backend_of(port: u16, path: &str) -> String {
    let reply = crate::http::get(port, "example.com", path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// The first two of the pool checks: once `apply` has moved the route from `a` to
/// `b`, `a` is never dialled again and its pooled connections are closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backend_is_never_dialled_and_its_idle_connections_close() {
    let (a, seen_a) = tracked_backend("a").await;
    let (b, seen_b) = tracked_backend("b").await;
    let port = free_port();
    let gateway = common::start(&two_backends(port, a, b, "a")).await;
    for _ in 0..20 {
        assert_eq!(backend_of(port, "/").await, "a");
    }
    let pooled = seen_a.accepted.load(Ordering::SeqCst);
    assert!(pooled >= 1);
    assert_eq!(seen_a.closed.load(Ordering::SeqCst), 0, "kept in the pool");

    let yaml = two_backends(port, a, b, "b");
    assert!(
        gateway
            .apply(&common::compile_yaml(&yaml))
            .await
            .is_complete()
    );
    eventually("a's idle connections closed", || {
        seen_a.closed.load(Ordering::SeqCst) == pooled
    })
    .await;
    for _ in 0..20 {
        assert_eq!(backend_of(port, "/").await, "b");
    }
    assert_eq!(
        seen_a.accepted.load(Ordering::SeqCst),
        pooled,
        "a dialled again"
    );
    assert_eq!(seen_a.requests.load(Ordering::SeqCst), 20);
    assert_eq!(seen_b.requests.load(Ordering::SeqCst), 20);
    gateway.shutdown().await;
}

/// A request in flight when its backend leaves the configuration finishes there; its
/// upstream connection is then closed instead of going back to the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_to_a_removed_backend_closes_after_its_exchange() {
    let (a, seen_a) = tracked_backend("a").await;
    let (b, _) = tracked_backend("b").await;
    let port = free_port();
    let gateway = common::start(&two_backends(port, a, b, "a")).await;
    let slow = tokio::spawn(backend_of(port, "/slow"));
    eventually("the slow request reached a", || {
        seen_a.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    let yaml = two_backends(port, a, b, "b");
    assert!(
        gateway
            .apply(&common::compile_yaml(&yaml))
            .await
            .is_complete()
    );
    assert_eq!(backend_of(port, "/").await, "b");
    assert_eq!(seen_a.closed.load(Ordering::SeqCst), 0, "still busy");
    assert_eq!(
        slow.await.expect("slow request"),
        "a",
        "finished where it started"
    );
    eventually("the busy connection closed after its exchange", || {
        seen_a.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(seen_a.accepted.load(Ordering::SeqCst), 1);
    gateway.shutdown().await;
}

/// Idle upstream connections are closed after `upstream_idle_timeout` with no request to
/// notice it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_reaped_without_traffic() {
    let (a, seen_a) = tracked_backend("a").await;
    let mut config = GatewayConfig::default();
    config.http.upstream_idle_timeout = Duration::from_millis(300);
    let (gateway, port) = crate::http::simple_with(
        &forward_rule("a"),
        &[service_yaml("default", "a", a)],
        config,
    )
    .await;
    assert_eq!(backend_of(port, "/").await, "a");
    assert_eq!(backend_of(port, "/").await, "a");
    assert_eq!(
        seen_a.accepted.load(Ordering::SeqCst),
        1,
        "pooled and reused"
    );
    eventually("the idle connection reaped", || {
        seen_a.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    gateway.shutdown().await;
}

/// The `tr` (timer) field of the `/proc/net/tcp` line of the socket from `local` to
/// `remote`: `2` while a keepalive timer is pending, `0` for an idle socket without one;
/// and the timer's remaining time in clock ticks.
#[cfg(target_os = "linux")]
fn tcp_timer(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u64)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (local, remote) = (hex(local), hex(remote));
    #[allow(
        clippy::disallowed_methods,
        reason = "a test reading the kernel's socket table"
    )]
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (timer, when) = fields.get(5)?.split_once(':')?;
        Some((
            u32::from_str_radix(timer, 16).ok()?,
            u64::from_str_radix(when, 16).ok()?,
        ))
    })
}

/// Upstream sockets carry TCP keepalive (seen from the kernel's socket table), unless it is
/// turned off.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sockets_have_tcp_keepalive() {
    for keepalive in [Some(Duration::from_secs(20)), None] {
        let (a, seen_a) = tracked_backend("a").await;
        let mut config = GatewayConfig::default();
        config.http.upstream_tcp_keepalive = keepalive;
        let (gateway, port) = crate::http::simple_with(
            &forward_rule("a"),
            &[service_yaml("default", "a", a)],
            config,
        )
        .await;
        assert_eq!(backend_of(port, "/").await, "a");
        let upstream = *seen_a
            .peers
            .lock()
            .expect("lock")
            .first()
            .expect("a connection");
        let (timer, when) = tcp_timer(upstream, a).expect("the pooled socket in /proc/net/tcp");
        match keepalive {
            Some(idle) => {
                assert_eq!(timer, 2, "keepalive timer pending");
                // Clock ticks (USER_HZ, 100 on Linux) until the first probe.
                assert!(when <= idle.as_secs() * 100 + 100, "{when}");
            }
            None => assert_eq!(timer, 0, "no timer on an idle socket without keepalive"),
        }
        gateway.shutdown().await;
    }
}

/// An h2c gRPC backend that answers each call's headers at once (`x-backend: name`), then
/// echoes each request body frame as it comes, and ends with `grpc-status: 0`.
async fn streaming_grpc_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let (tx, rx) =
                        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(data) = frame.into_data()
                                && tx.send(Ok(Frame::data(data))).await.is_err()
                            {
                                return;
                            }
                        }
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        let _ = tx.send(Ok(Frame::trailers(trailers))).await;
                    });
                    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .header("x-backend", name)
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

/// gRPC over one HTTP/2 connection: a stream started before a change finishes on the old
/// backend, while calls started after it on the same connection go to the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_started_before_a_change_finishes_on_the_old_backend() {
    let old = streaming_grpc_backend("old").await;
    let new = streaming_grpc_backend("new").await;
    let port = free_port();
    let yaml = |to: &str| {
        format!(
            "{}---\n{}---\n{}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [grpc.example]
  rules: [{{backendRefs: [{{name: {to}, port: 80}}]}}]
",
            gateway_yaml(port),
            service_yaml("default", "old", old),
            service_yaml("default", "new", new),
        )
    };
    let gateway = common::start(&yaml("old")).await;
    type Chunks = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut client, conn) = hyper::client::conn::http2::handshake::<_, _, StreamBody<_>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let mut call = || {
        let (tx, rx): (Chunks, _) = tokio::sync::mpsc::channel(8);
        let request = Request::post("http://grpc.example/echo.Echo/Stream")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(StreamBody::new(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .expect("request");
        (tx, client.send_request(request))
    };
    let (long_tx, long) = call();
    long_tx
        .send(Ok(Frame::data(grpc_frames(&[b"first"]))))
        .await
        .expect("send");
    let long = long.await.expect("response headers");
    assert_eq!(long.headers()["x-backend"], "old");
    let mut long_body = long.into_body();
    let first = long_body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), grpc_frames(&[b"first"]));

    assert!(
        gateway
            .apply(&common::compile_yaml(&yaml("new")))
            .await
            .is_complete()
    );
    let (short_tx, short) = call();
    short_tx
        .send(Ok(Frame::data(grpc_frames(&[b"after"]))))
        .await
        .expect("send");
    drop(short_tx);
    let short = short.await.expect("response headers");
    assert_eq!(
        short.headers()["x-backend"],
        "new",
        "a new call on the same connection"
    );
    let short = short.into_body().collect().await.expect("body");
    assert_eq!(
        short
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // The old stream goes on where it started, to its end.
    long_tx
        .send(Ok(Frame::data(grpc_frames(&[b"second"]))))
        .await
        .expect("send");
    drop(long_tx);
    let rest = long_body
        .collect()
        .await
        .expect("the rest of the old stream");
    assert_eq!(
        rest.trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(rest.to_bytes(), grpc_frames(&[b"second"]));
    gateway.shutdown().await;
}

/// Opens a keep-alive HTTP/1.1 connection and checks a request on it is answered.
async fn open_and_ask(port: u16) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let mut sender = common::http1_connection(port).await;
    assert_eq!(ask(&mut sender).await.0, 200);
    sender
}

/// `GET example.com/` on an HTTP/1.1 connection: the status and the body.
async fn ask(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
) -> (StatusCode, String) {
    let resp = sender
        .send_request(
            Request::get("/")
                .header("host", "example.com")
                .body(Full::default())
                .expect("request"),
        )
        .await
        .expect("answer");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `ListenerConfig::max_connections`: the connection over the limit is closed at once and
/// counted; once one closes, a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_and_counted() {
    let (a, _) = tracked_backend("a").await;
    let mut config = GatewayConfig::default();
    config.listener.max_connections = 2;
    let (gateway, port) = crate::http::simple_with(
        &forward_rule("a"),
        &[service_yaml("default", "a", a)],
        config,
    )
    .await;
    let first = open_and_ask(port).await;
    let _second = open_and_ask(port).await;
    let mut third = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = third
        .write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection over the limit is closed");
    assert!(answer.is_empty(), "and gets no answer");
    let series =
        format!("gateway_downstream_connections_rejected_total{{bind=\"127.0.0.1:{port}\"}}");
    assert_eq!(metric(&gateway, &series), Some(1.0));

    drop(first);
    let active = format!("gateway_downstream_connections_active{{bind=\"127.0.0.1:{port}\"}}");
    eventually("the first connection counted closed", || {
        metric(&gateway, &active) == Some(1.0)
    })
    .await;
    let _fourth = open_and_ask(port).await;
    gateway.shutdown().await;
}

/// A request body of frames, sent as they come.
type FrameStream =
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A body whose length is not announced: `chunks` chunks of `size` bytes.
fn chunked(chunks: usize, size: usize) -> FrameStream {
    let frames: Vec<_> = (0..chunks)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; size]))))
        .collect();
    StreamBody::new(tokio_stream::iter(frames))
}

/// `HttpLimits::max_request_body_bytes`: an announced length over it is answered `413` and
/// never forwarded; a chunked body that grows past it is cut off and answered `413`; bodies
/// within it pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_over_the_limit_get_413() {
    let (a, seen_a) = tracked_backend("a").await;
    let mut config = GatewayConfig::default();
    config.http.max_request_body_bytes = Some(1000);
    let (gateway, port) = crate::http::simple_with(
        &forward_rule("a"),
        &[service_yaml("default", "a", a)],
        config,
    )
    .await;
    let post = |body: Bytes| {
        Request::post("/")
            .header("host", "example.com")
            .body(Full::new(body))
            .expect("request")
    };
    let reply = send(port, post(Bytes::from(vec![b'x'; 2000]))).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.headers["connection"], "close");
    assert_eq!(
        seen_a.requests.load(Ordering::SeqCst),
        0,
        "nothing forwarded"
    );

    let reply = send(port, post(Bytes::from(vec![b'x'; 1000]))).await;
    assert_eq!(reply.status, StatusCode::OK, "at the limit");

    // HTTP/2 with a length: refused before anything is forwarded.
    let before = seen_a.requests.load(Ordering::SeqCst);
    let mut h2 = crate::http::h2_client(port).await;
    let resp = h2
        .send_request(
            Request::post("http://example.com/")
                .body(Full::new(Bytes::from(vec![b'x'; 5000])))
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(seen_a.requests.load(Ordering::SeqCst), before);

    // Chunked (the backend may see the start of this one): 4 × 400 bytes, the third goes over.
    let mut sender = common::http1_connection(port).await;
    let resp = sender
        .send_request(
            Request::post("/")
                .header("host", "example.com")
                .body(chunked(4, 400))
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    gateway.shutdown().await;
}

/// `HttpLimits::retry_buffer_bytes`: a body within it is kept and sent again; a larger one is
/// sent once and its failure answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bodies_within_the_retry_buffer_are_retried() {
    let rules = "  - backendRefs: [{name: flaky, port: 80}]
    retry: {codes: [503], attempts: 1}
";
    for (size, attempts, status) in [(16usize, 2usize, 200u16), (17, 1, 503)] {
        let (flaky, seen) = flaky_backend(1, 503).await;
        let mut config = GatewayConfig::default();
        config.http.retry_buffer_bytes = 16;
        let (gateway, port) =
            crate::http::simple_with(rules, &[service_yaml("default", "flaky", flaky)], config)
                .await;
        let reply = send(
            port,
            Request::post("/")
                .header("host", "example.com")
                .body(Full::new(Bytes::from(vec![b'x'; size])))
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status.as_u16(), status, "{size}-byte body");
        assert_eq!(seen.load(Ordering::SeqCst), attempts, "{size}-byte body");
        gateway.shutdown().await;
    }
}
