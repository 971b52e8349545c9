//! HTTP/1.1, HTTP/2 and h2c serving, routing, filters and forwarding.
//!
//! # Serving
//!
//! Cleartext sockets serve HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port
//! (hyper-util's `auto` connection detects the HTTP/2 preface); connections whose TLS ALPN
//! chose `h2` are served as HTTP/2 directly. Bodies stream both ways without buffering
//! (except for retries, see below), trailers pass through, HTTP/1.1 `Upgrade` (WebSocket) is
//! forwarded and both upgraded streams are joined.
//!
//! When a listener is removed or the gateway shuts down, each connection is asked to finish
//! (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close` after the in-flight response) and is dropped
//! when the drain deadline passes.
//!
//! # Limits ([`HttpLimits`], defaults in parentheses)
//!
//! - request head size, HTTP/1.1 (64 KiB) → `431`; header list size, HTTP/2 (64 KiB);
//! - header count, HTTP/1.1 (100) → `431`;
//! - header read timeout (30 s): a client that does not finish its request head in time
//!   (slowloris) has its connection closed. hyper starts this timer whenever an HTTP/1.1
//!   connection waits for a request head, so it also bounds the keep-alive idle wait of
//!   HTTP/1.1 connections;
//! - idle timeout (60 s): a connection without a request in flight for that long is closed
//!   gracefully (HTTP/1.1 and HTTP/2);
//! - HTTP/2 concurrent streams per connection (256), pending-accept reset streams (20) and
//!   locally-errored reset streams (1024): the "rapid reset" defences;
//! - request body size (no limit) → `413`, see below;
//! - upstream connect timeout (5 s) → `503`; upstream pool idle timeout (90 s), after which
//!   idle upstream connections are closed even when no request comes; TCP keepalive on
//!   upstream sockets (60 s);
//! - open connections per listening socket (`ListenerConfig::max_connections`, 10 000): a
//!   connection over it is closed at once and counted.
//!
//! With `max_request_body_bytes` set, a request whose `Content-Length` is over it gets `413`
//! and is not forwarded; a chunked or HTTP/2 body that grows past it is cut off, the upstream
//! exchange aborted, and the client gets `413` unless the backend already answered. HTTP/1.1
//! connections are closed after a `413` (the rest of the body is not read).
//!
//! Request smuggling: a request with several different `Content-Length` values, or with both
//! `Content-Length` and `Transfer-Encoding` (in either order, whatever the values), gets
//! `400` with `Connection: close` and is never forwarded, nor is anything behind it on the
//! connection. hyper removes the conflicting header before the handler sees the request, so
//! the second case is found by a watch over the raw bytes of HTTP/1.1 connections
//! (`framing`), which follows request heads and body framing beside hyper.
//!
//! # Forwarding headers
//!
//! - Hop-by-hop headers are removed both ways: `Connection` and the headers it lists,
//!   `Keep-Alive`, `Proxy-Connection`, `TE` (except `TE: trailers`, which gRPC needs),
//!   `Transfer-Encoding`, `Upgrade` (kept, with `Connection: upgrade`, for upgrades).
//! - `Host` (HTTP/1.1) or `:authority` (HTTP/2) is sent as received unless `URLRewrite` sets a
//!   hostname.
//! - `X-Forwarded-For`: the client IP is appended to any value received (as Envoy and nginx
//!   `$proxy_add_x_forwarded_for` do; the gateway does not decide which hops to trust).
//! - `X-Forwarded-Proto`: set (replaced) to `http` or `https`, what the client used.
//! - `X-Request-Id`: passed through when present; otherwise generated as 32 hex digits, a
//!   per-process random seed followed by a counter: unique within a process and across
//!   restarts with high probability, and cheaper than a UUID.
//! - `traceparent` (W3C Trace Context): passed through unchanged when valid; created when
//!   missing; replaced, and `tracestate` dropped, when invalid or repeated. A created one has a
//!   random trace id and parent id and the sampled flag, so services with a parent-based
//!   sampler trace requests as they would without the gateway.
//!
//! # Per request
//!
//! The path is normalised (`400` if it cannot be) and the normalised path is what the backend
//! receives. gRPC calls (`content-type: application/grpc*`) are routed by GRPCRoutes first;
//! a host served by GRPCRoutes with no matching rule gets `UNIMPLEMENTED` (12), and errors of
//! gRPC calls are answered as trailers-only gRPC statuses (`UNAVAILABLE` 14 for missing or
//! unreachable backends, `DEADLINE_EXCEEDED` 4 for timeouts, `INTERNAL` 13 otherwise). Other
//! requests are routed by HTTPRoutes: no match is `404`; an invalid backend `500`; a Service
//! without endpoints `503`; a refused or failed connection (no response head) `503`, as the
//! conformance suite's HTTPRouteRetryConnectionError expects (one attempt per request, unless
//! a retry policy says otherwise); a connect timeout `503`; `backendRequest` or
//! `request` timeouts `504`. Timeouts cover the exchange up to the response head; a streaming
//! response body is not cut by them.
//!
//! Retries (`ir::Retry`) are made only when the request body is empty or known (by
//! `Content-Length`) to be at most `retry_buffer_bytes` (64 KiB): such a body is read fully
//! before the first attempt so that it can be sent again. Connection errors are retried as well as the listed codes.
//!
//! Backends are chosen by weight at random; endpoints of a Service in round-robin order.
//! Mirrors get a copy of the request (the body is teed through a channel of
//! `mirror_queue_chunks` chunks; a mirror that cannot keep up loses its copy, never slowing
//! the main request) and their responses are discarded.
//!
//! # Configuration changes
//!
//! A connection keeps its socket's configuration handle, not a configuration: each request
//! loads the current one when its head arrives and keeps it until its response head is
//! ready, so a keep-alive or HTTP/2 connection follows every `apply` from its next request
//! on, and a request in flight finishes with the routes, backends and timeouts it started
//! with. On TLS, the listener the handshake chose is looked up again by SNI for each
//! request: when the new configuration serves that SNI with another listener or none, the
//! request gets `421 Misdirected Request` and the connection is closed gracefully, so the
//! client reconnects and gets the new certificate.
//!
//! # Access log
//!
//! One `tracing` event at INFO on the target `access_log` per request, with the structured
//! fields `method`, `host`, `path`, `status`, `route`, `rule`, `service` (the Service chosen,
//! `namespace/name:port`), `backend` (its endpoint), `upstream_ms`, `total_ms` and `protocol`,
//! emitted when the response head is ready, unless `GatewayConfig::access_log` is off.
//!
//! # Metrics
//!
//! When the response head is ready, the request is counted by its rule and status class, and
//! its durations go to the listener's histograms (see [`crate::metrics`]); requests no route
//! took are counted apart.

mod filters;
mod framing;
mod handler;
pub(crate) mod upstream;

pub use framing::RequestFraming;
pub use handler::valid_traceparent;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gateway_core::ir;
use gateway_core::router::HttpRouter;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::metrics::RuleMetrics;
use crate::runtime::BindState;
use crate::shared::{ConnCtx, Shared};

/// HTTP limits and timeouts. Every field documents its default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpLimits {
    /// Largest HTTP/1.1 request head (request line and headers) in bytes, and largest HTTP/2
    /// header list; larger heads get `431`. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most headers in an HTTP/1.1 request; more get `431`. Default 100.
    pub max_header_count: usize,
    /// Time a client has to send a complete request head (slowloris defence; also bounds the
    /// HTTP/1.1 keep-alive wait). Default 30 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// HTTP/2 streams a client may open at once on one connection. Default 256.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams reset by the client before the gateway accepted them that are
    /// tolerated at once ("rapid reset", CVE-2023-44487). Default 20.
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 streams the gateway may reset because of client errors before it closes the
    /// connection (CVE-2024-27316 class). Default 1024.
    pub h2_max_local_error_reset_streams: usize,
    /// Time to establish a connection to a backend endpoint; exceeded → `503`. Default 5 s.
    pub upstream_connect_timeout: Duration,
    /// Idle upstream connections older than this are not reused. Default 90 s.
    pub upstream_idle_timeout: Duration,
    /// Idle HTTP/1.1 connections kept per upstream endpoint. Default 256.
    pub upstream_max_idle_per_endpoint: usize,
    /// TCP keepalive on upstream sockets: the idle time before the first probe (probes
    /// then every quarter of it, at least 1 s, three before the connection is dropped), so a
    /// backend that vanished without a FIN is noticed. `None` turns it off. Default 60 s.
    pub upstream_tcp_keepalive: Option<Duration>,
    /// Largest request body forwarded, in bytes; larger ones get `413`. Default `None` (no
    /// limit: bodies stream and are never held whole, except for retries below).
    pub max_request_body_bytes: Option<u64>,
    /// Largest request body (known by `Content-Length`) buffered so that a retry can send it
    /// again; requests with larger or unknown bodies are sent once. Default 64 KiB.
    pub retry_buffer_bytes: u64,
    /// Body chunks queued for a request mirror before its copy is abandoned (the mirror
    /// never slows the request). Default 64.
    pub mirror_queue_chunks: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 64 * 1024,
            max_header_count: 100,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            h2_max_concurrent_streams: 256,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle_per_endpoint: 256,
            upstream_tcp_keepalive: Some(Duration::from_secs(60)),
            max_request_body_bytes: None,
            retry_buffer_bytes: 64 * 1024,
            mirror_queue_chunks: 64,
        }
    }
}

/// HTTP state that outlives configurations (upstream pools).
pub(crate) struct HttpShared {
    /// Cleartext connections: HTTP/1.1 or h2c by preface.
    auto: auto::Builder<TokioExecutor>,
    /// Connections whose ALPN chose h2.
    h2_only: auto::Builder<TokioExecutor>,
    /// Upstream connections.
    pub(crate) pool: upstream::Pool,
    /// Random seed of generated request ids.
    request_id_seed: u64,
    /// Counter of generated request ids.
    request_id_counter: AtomicU64,
    limits: HttpLimits,
}

impl std::fmt::Debug for HttpShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpShared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn server_builder(limits: &HttpLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        // hyper's minimum buffer is 8 KiB; a smaller limit would be refused at run time.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_header_count);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

impl HttpShared {
    pub(crate) fn new(limits: &HttpLimits, tracker: tokio_util::task::TaskTracker) -> HttpShared {
        HttpShared {
            auto: server_builder(limits),
            h2_only: server_builder(limits).http2_only(),
            pool: upstream::Pool::new(limits, tracker),
            request_id_seed: fastrand::u64(..),
            request_id_counter: AtomicU64::new(0),
            limits: limits.clone(),
        }
    }

    /// A fresh request id: seed and counter, 32 hex digits (written on the stack: most
    /// requests get one).
    fn request_id(&self) -> http::HeaderValue {
        let n = self.request_id_counter.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 32];
        let (seed, counter) = id.split_at_mut(16);
        handler::write_hex(seed, self.request_id_seed);
        handler::write_hex(counter, n);
        http::HeaderValue::from_bytes(&id).unwrap_or(http::HeaderValue::from_static("0"))
    }
}

/// The configuration of one HTTP socket (or of the terminated-HTTPS listeners of a TLS one).
#[derive(Debug)]
pub(crate) struct HttpBindState {
    router: HttpRouter,
    /// Round-robin counters of the Services' endpoint lists, keyed by the address of the
    /// endpoint slice (stable for the life of this state, which holds the Ir listeners).
    round_robin: std::collections::HashMap<usize, AtomicUsize>,
    /// The counters of each HTTPRoute and GRPCRoute rule, keyed by the address of the rule
    /// in the Ir (stable for the same reason): a request finds them without a lock.
    rule_metrics: std::collections::HashMap<usize, Arc<RuleMetrics>>,
    /// TLS to the backends BackendTLSPolicies cover.
    origins: crate::tls::origin::OriginTable,
}

impl HttpBindState {
    pub(crate) fn build(listeners: &[Arc<ir::Listener>], shared: &Arc<Shared>) -> HttpBindState {
        let mut rule_metrics = std::collections::HashMap::new();
        let mut round_robin = std::collections::HashMap::new();
        for listener in listeners {
            // Listeners without routes still get their (empty) histograms.
            shared.metrics.listener(&listener.id);
            // HTTPRoute and GRPCRoute rules alike: (route, index, name, key of the rule).
            let http = listener.http_routes.iter().flat_map(|route| {
                route
                    .rules
                    .iter()
                    .map(move |rule| (&route.id, rule.index, rule.name.as_deref(), rule_key(rule)))
            });
            let grpc = listener.grpc_routes.iter().flat_map(|route| {
                route
                    .rules
                    .iter()
                    .map(move |rule| (&route.id, rule.index, rule.name.as_deref(), rule_key(rule)))
            });
            let rules = http
                .chain(grpc)
                .map(|(route, index, name, key)| (key, route, index, name));
            rule_metrics.extend(shared.metrics.rules(&listener.id, rules));
            crate::tls::origin::for_each_backend(listener, &mut |backend| {
                round_robin
                    .entry(endpoints_key(&backend.endpoints))
                    .or_insert_with(|| AtomicUsize::new(fastrand::usize(..)));
            });
        }
        HttpBindState {
            router: HttpRouter::new(listeners),
            round_robin,
            rule_metrics,
            origins: crate::tls::origin::OriginTable::build(listeners, &shared.origins),
        }
    }

    /// How to reach `backend`: `None` in plaintext, else its TLS origin or why there is none.
    fn origin(
        &self,
        backend: &ir::ServiceBackend,
    ) -> Option<Result<&Arc<crate::tls::origin::TlsOrigin>, &str>> {
        self.origins.get(backend)
    }

    /// The next endpoint of `backend` in round-robin order (`None` without endpoints).
    fn endpoint(&self, backend: &ir::ServiceBackend) -> Option<std::net::SocketAddr> {
        let endpoints = &backend.endpoints;
        match endpoints.len() {
            0 => None,
            1 => endpoints.first().copied(),
            n => {
                let i = match self.round_robin.get(&endpoints_key(endpoints)) {
                    Some(counter) => counter.fetch_add(1, Ordering::Relaxed),
                    None => fastrand::usize(..),
                };
                endpoints.get(i % n).copied()
            }
        }
    }
}

/// Every upstream pool an HTTP request of `ir` can use (endpoint and TLS settings): the
/// pools keep connections for these and close the others. Call it while the states built
/// from `ir` are alive: they hold the TLS origins whose ids it looks up.
pub(crate) fn upstream_endpoints(
    ir: &ir::Ir,
    origins: &crate::tls::origin::Origins,
) -> std::collections::HashSet<upstream::UpstreamKey> {
    let mut endpoints = std::collections::HashSet::new();
    // One look-up in `origins` (which hashes certificates) per policy, not per backend.
    let mut seen = std::collections::HashMap::new();
    for bind in &ir.binds {
        for listener in &bind.listeners {
            crate::tls::origin::for_each_backend(listener, &mut |service| {
                let origin = service.tls.as_ref().and_then(|tls| {
                    let alpn = crate::tls::origin::Alpn::of(service.protocol);
                    seen.entry((Arc::as_ptr(tls) as usize, alpn))
                        .or_insert_with(|| origins.get(tls, alpn).ok())
                        .clone()
                });
                endpoints.extend(
                    service
                        .endpoints
                        .iter()
                        .map(|addr| upstream::UpstreamKey::new(*addr, origin.as_deref())),
                );
            });
        }
    }
    endpoints
}

/// Closes idle upstream connections older than `HttpLimits::upstream_idle_timeout`, a few
/// times per timeout, until the gateway is shut down or dropped.
pub(crate) async fn reap_idle_upstreams(shared: std::sync::Weak<Shared>) {
    let every = match shared.upgrade() {
        Some(shared) => (shared.config.http.upstream_idle_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(15)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopping.is_cancelled() {
            return;
        }
        shared.http.pool.reap_idle();
    }
}

impl Drop for HttpBindState {
    fn drop(&mut self) {
        let router = std::mem::replace(&mut self.router, HttpRouter::new(&[]));
        let rule_metrics = std::mem::take(&mut self.rule_metrics);
        crate::shared::drop_off_worker((router, rule_metrics));
    }
}

fn endpoints_key(endpoints: &Arc<[std::net::SocketAddr]>) -> usize {
    endpoints.as_ptr() as usize
}

/// The key of a rule's counters: its address inside the Ir listener this state holds.
fn rule_key<T>(rule: &T) -> usize {
    std::ptr::from_ref(rule) as usize
}

/// What TLS negotiated, for requests over terminated TLS.
#[derive(Clone, Debug)]
pub(crate) struct TlsInfo {
    /// SNI the client sent.
    pub(crate) sni: Option<String>,
    /// The listener the handshake chose (by SNI): each request checks that the current
    /// configuration still serves this SNI with it.
    pub(crate) listener: ir::ListenerId,
    /// Whether ALPN chose `h2`: the connection is served as HTTP/2 without preface detection.
    pub(crate) alpn_h2: bool,
}

/// Per-connection facts the request handler needs.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The socket's configuration, loaded by each request when its head arrives.
    config: Arc<ArcSwap<BindState>>,
    /// The client IP, formatted once for `X-Forwarded-For`.
    peer_ip: http::HeaderValue,
    /// Set when the client reached us over TLS.
    tls: Option<TlsInfo>,
    /// The connection's drain deadline, which also ends its upgraded tunnels and mirrors.
    kill: tokio_util::sync::CancellationToken,
    /// Cancelled when the connection should finish what is in flight and close (GOAWAY,
    /// `Connection: close`): by its listener's drain (a child of `ConnCtx::graceful`, so the
    /// connection's loop waits on one token), or by a request that finds the connection's
    /// TLS listener gone from the configuration.
    retire: tokio_util::sync::CancellationToken,
    shared: Arc<Shared>,
    /// Requests whose response has not finished.
    active: AtomicUsize,
    /// Milliseconds since `started` when the last request finished.
    last_done_ms: AtomicU64,
    started: Instant,
    /// Requests the handler has been called for (HTTP/1.1: their index on the connection).
    requests: AtomicU64,
    /// The index of the HTTP/1.1 request [`framing::FramingWatch`] found with both
    /// `Content-Length` and `Transfer-Encoding` (`u64::MAX`: none).
    framing_conflict: AtomicU64,
}

impl ConnInfo {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_done_ms.store(ms, Ordering::Relaxed);
    }
}

/// Counts a request as in flight until dropped (with the response body).
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<ConnInfo>);

impl ActiveGuard {
    fn new(conn: &Arc<ConnInfo>) -> ActiveGuard {
        conn.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(conn.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves HTTP on one connection until it closes or the gateway drains. Each request reads
/// `config`, the socket's configuration, when its head arrives.
pub(crate) async fn serve_connection<IO>(
    config: Arc<ArcSwap<BindState>>,
    io: IO,
    ctx: ConnCtx,
    tls: Option<TlsInfo>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = ctx.shared.clone();
    if let Some(tls) = &tls {
        tracing::trace!(peer = %ctx.peer, sni = ?tls.sni, h2 = tls.alpn_h2, "serving HTTP over TLS");
    }
    let h2 = tls.as_ref().is_some_and(|t| t.alpn_h2);
    let conn_info = Arc::new(ConnInfo {
        config,
        peer_ip: http::HeaderValue::from_str(&ctx.peer.ip().to_string())
            .unwrap_or(http::HeaderValue::from_static("unknown")),
        tls,
        kill: ctx.kill.clone(),
        retire: ctx.graceful.child_token(),
        shared: shared.clone(),
        active: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
        started: Instant::now(),
        requests: AtomicU64::new(0),
        framing_conflict: AtomicU64::new(u64::MAX),
    });
    let builder = if h2 {
        &shared.http.h2_only
    } else {
        &shared.http.auto
    };
    // hyper reads at most this much of a head (its buffer is never under 8 KiB).
    let max_head = (!h2).then(|| shared.http.limits.max_header_bytes.max(8192));
    let io = crate::observed::Observed {
        io,
        observer: framing::FramingWatch::new(conn_info.clone(), max_head),
    };
    let service_conn = conn_info.clone();
    let service = hyper::service::service_fn(move |req| handler::handle(service_conn.clone(), req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = shared.config.http.idle_timeout;
    let mut closing = false;
    loop {
        let next_check = tokio::time::sleep(idle.max(Duration::from_millis(10)) / 2);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(peer = %ctx.peer, %error, "HTTP connection ended with an error");
                }
                return;
            }
            () = conn_info.retire.cancelled(), if !closing => {
                tracing::debug!(peer = %ctx.peer, "draining, or the connection's TLS listener changed; closing it gracefully");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = ctx.kill.cancelled() => {
                tracing::debug!(peer = %ctx.peer, "drain deadline passed; closing HTTP connection");
                return;
            }
            () = next_check, if !closing => {
                let last = Duration::from_millis(conn_info.last_done_ms.load(Ordering::Relaxed));
                if conn_info.active.load(Ordering::Relaxed) == 0
                    && conn_info.started.elapsed().saturating_sub(last) >= idle
                {
                    tracing::debug!(peer = %ctx.peer, "idle timeout; closing HTTP connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
