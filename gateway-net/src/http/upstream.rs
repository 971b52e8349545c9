//! Upstream connections: a pool of hyper's low-level client handles per endpoint.
//!
//! Connections are pooled by endpoint and TLS settings ([`UpstreamKey`]): a backend a
//! BackendTLSPolicy covers is reached over TLS ([`TlsOrigin`]), and its connections are never
//! shared with plaintext ones or with another policy's.
//!
//! HTTP/1.1 connections are checked out for one exchange and come back to the pool when the
//! response body has been read to its end (a body dropped early closes its connection, which
//! is then in an unknown state). HTTP/2 (h2c) connections are shared: one per endpoint,
//! multiplexed. The lock of each map is held only for a lookup, a pop or a push.
//!
//! The pool follows the configuration: an `apply` closes the connections to endpoints it no
//! longer has, an idle reaper closes connections unused for `upstream_idle_timeout` even when
//! no request comes, sockets have TCP keepalive, and each connection's task is tracked with
//! the downstream ones, so drain and shutdown wait for it and the shutdown deadline ends it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::ir::AppProtocol;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_util::either::Either;
use tokio_util::task::TaskTracker;

use super::HttpLimits;
use crate::shared::Shared;
use crate::tls::origin::TlsOrigin;

/// Which pool a connection belongs to: the endpoint, and the TLS settings it was opened with
/// (`tls` is the [`TlsOrigin::id`], 0 for plaintext).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UpstreamKey {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: u64,
}

impl UpstreamKey {
    pub(crate) fn new(addr: SocketAddr, origin: Option<&TlsOrigin>) -> UpstreamKey {
        UpstreamKey {
            addr,
            tls: origin.map_or(0, |o| o.id),
        }
    }
}

/// A connection to a backend, in plaintext or TLS.
type UpstreamIo = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Boxed error of bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every request and response the gateway sends.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body.
pub(crate) fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body of fixed bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The TCP connection could not be made (refused, unreachable).
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, #[source] std::io::Error),
    /// The TCP connection was not made within the connect timeout.
    #[error("connect to {0} timed out")]
    ConnectTimeout(SocketAddr),
    /// The TLS handshake failed (certificate refused, protocol error) or timed out.
    #[error("TLS handshake with {0}: {1}")]
    Tls(SocketAddr, #[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error("upstream {0}: {1}")]
    Http(SocketAddr, #[source] hyper::Error),
}

struct Idle {
    since: Instant,
    sender: http1::SendRequest<Body>,
}

/// The shared HTTP/2 connection of an endpoint.
struct Multiplexed {
    /// When a request last took it, for the idle reaper.
    used: Instant,
    sender: http2::SendRequest<Body>,
}

/// Upstream connections of every endpoint.
///
/// Each map has an entry for exactly the endpoints of the applied configuration
/// ([`Pool::keep_endpoints`]): a connection to any other endpoint (one a request of an
/// earlier configuration was still using) is closed when its exchange ends instead of being
/// pooled.
pub(crate) struct Pool {
    /// Idle HTTP/1.1 connections, oldest first: checking out the oldest gives a connection
    /// whose previous exchange has surely finished (the newest may still be settling, and
    /// waiting for it costs a wake-up; measured: about 3 µs of CPU per request at 16
    /// connections, 6 µs at 256).
    h1: Mutex<HashMap<UpstreamKey, VecDeque<Idle>>>,
    h2: Mutex<HashMap<UpstreamKey, Option<Multiplexed>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    keepalive: Option<Duration>,
    /// Connection tasks are tracked, so drain and shutdown wait for them. They end by
    /// themselves once no request holds them: an idle connection when the pool drops it, a
    /// busy one when its exchange ends or its request is dropped (the drain deadline drops
    /// the downstream tasks, and with them their requests).
    tracker: TaskTracker,
}

impl Pool {
    pub(crate) fn new(limits: &HttpLimits, tracker: TaskTracker) -> Pool {
        Pool {
            h1: Mutex::new(HashMap::new()),
            h2: Mutex::new(HashMap::new()),
            connect_timeout: limits.upstream_connect_timeout,
            idle_timeout: limits.upstream_idle_timeout,
            max_idle: limits.upstream_max_idle_per_endpoint,
            keepalive: limits.upstream_tcp_keepalive,
            tracker,
        }
    }

    /// Keeps connections to `endpoints` only: pooled connections to others are closed now,
    /// busy ones when their exchange ends (they are not taken back).
    pub(crate) fn keep_endpoints(&self, endpoints: &HashSet<UpstreamKey>) {
        // Dropped outside the locks: closing a connection wakes its task.
        let mut closed_h1 = Vec::new();
        let mut closed_h2 = Vec::new();
        {
            let mut h1 = self.h1.lock().unwrap_or_else(|e| e.into_inner());
            h1.retain(|addr, idle| {
                let keep = endpoints.contains(addr);
                if !keep {
                    closed_h1.push(std::mem::take(idle));
                }
                keep
            });
            for addr in endpoints {
                h1.entry(*addr).or_default();
            }
        }
        {
            let mut h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
            h2.retain(|addr, shared| {
                let keep = endpoints.contains(addr);
                if !keep {
                    closed_h2.push(shared.take());
                }
                keep
            });
            for addr in endpoints {
                h2.entry(*addr).or_default();
            }
        }
        let closed =
            closed_h1.iter().map(VecDeque::len).sum::<usize>() + closed_h2.iter().flatten().count();
        if closed > 0 {
            tracing::debug!(closed, "upstream connections to removed endpoints closed");
        }
    }

    /// Closes connections idle for longer than the idle timeout, and forgets closed ones.
    pub(crate) fn reap_idle(&self) {
        let now = Instant::now();
        let fresh = |since: Instant| now.saturating_duration_since(since) < self.idle_timeout;
        let mut reaped_h1 = Vec::new();
        let mut reaped_h2 = Vec::new();
        {
            let mut h1 = self.h1.lock().unwrap_or_else(|e| e.into_inner());
            for idle in h1.values_mut() {
                // Oldest first: the stale ones are at the front.
                while idle
                    .front()
                    .is_some_and(|i| !fresh(i.since) || i.sender.is_closed())
                {
                    reaped_h1.extend(idle.pop_front());
                }
            }
        }
        {
            let mut h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
            for shared in h2.values_mut() {
                if shared
                    .as_ref()
                    .is_some_and(|m| !fresh(m.used) || m.sender.is_closed())
                {
                    reaped_h2.extend(shared.take());
                }
            }
        }
        if !reaped_h1.is_empty() || !reaped_h2.is_empty() {
            tracing::debug!(
                http1 = reaped_h1.len(),
                http2 = reaped_h2.len(),
                "idle upstream connections closed"
            );
        }
    }

    /// A connection to `addr`, with TLS when `origin` says so; the connect timeout covers
    /// the TLS handshake too.
    async fn connect(
        &self,
        addr: SocketAddr,
        origin: Option<&TlsOrigin>,
    ) -> Result<TokioIo<UpstreamIo>, UpstreamError> {
        let started = Instant::now();
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(addr))?
            .map_err(|e| UpstreamError::Connect(addr, e))?;
        // Requests are written whole; Nagle would only add latency.
        let _ = stream.set_nodelay(true);
        if let Some(idle) = self.keepalive
            && let Err(error) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive(idle))
        {
            tracing::debug!(%addr, %error, "TCP keepalive not set");
        }
        let Some(origin) = origin else {
            return Ok(TokioIo::new(Either::Left(stream)));
        };
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        let tls = tokio::time::timeout(left, origin.connect(stream))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(addr))?
            .map_err(|e| UpstreamError::Tls(addr, e))?;
        Ok(TokioIo::new(Either::Right(tls)))
    }

    /// Runs an upstream connection's task, tracked. (Not raced against a cancellation
    /// token: polling one on every wake-up of the connection measured about 3% more
    /// instructions per request, and the task ends without it, see `tracker`.)
    fn spawn_connection<F>(&self, addr: SocketAddr, conn: F)
    where
        F: Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        self.tracker.spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%addr, %error, "upstream connection error");
            }
        });
    }

    fn pop_h1(&self, key: UpstreamKey) -> Option<Idle> {
        let mut map = self.h1.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(&key).and_then(VecDeque::pop_front)
    }

    fn push_h1(&self, key: UpstreamKey, sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut map = self.h1.lock().unwrap_or_else(|e| e.into_inner());
        // No entry: the endpoint left the configuration; the connection closes.
        if let Some(idle) = map.get_mut(&key)
            && idle.len() < self.max_idle
        {
            idle.push_back(Idle {
                since: Instant::now(),
                sender,
            });
        }
    }

    /// A ready HTTP/1.1 sender: a pooled one (`true`), else a new connection (`false`).
    async fn h1(
        &self,
        addr: SocketAddr,
        origin: Option<&TlsOrigin>,
    ) -> Result<(http1::SendRequest<Body>, bool), UpstreamError> {
        while let Some(mut idle) = self.pop_h1(UpstreamKey::new(addr, origin)) {
            if idle.since.elapsed() > self.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            if idle.sender.ready().await.is_ok() {
                return Ok((idle.sender, true));
            }
        }
        Ok((self.new_h1(addr, origin).await?, false))
    }

    async fn new_h1(
        &self,
        addr: SocketAddr,
        origin: Option<&TlsOrigin>,
    ) -> Result<http1::SendRequest<Body>, UpstreamError> {
        let io = self.connect(addr, origin).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        self.spawn_connection(addr, conn.with_upgrades());
        Ok(sender)
    }

    async fn h2(
        &self,
        addr: SocketAddr,
        origin: Option<&TlsOrigin>,
    ) -> Result<http2::SendRequest<Body>, UpstreamError> {
        let key = UpstreamKey::new(addr, origin);
        let existing = {
            let mut map = self.h2.lock().unwrap_or_else(|e| e.into_inner());
            map.get_mut(&key)
                .and_then(Option::as_mut)
                .filter(|m| !m.sender.is_closed())
                .map(|m| {
                    m.used = Instant::now();
                    m.sender.clone()
                })
        };
        if let Some(sender) = existing {
            return Ok(sender);
        }
        let io = self.connect(addr, origin).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        self.spawn_connection(addr, conn);
        let mut map = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get_mut(&key) {
            *slot = Some(Multiplexed {
                used: Instant::now(),
                sender: sender.clone(),
            });
        }
        Ok(sender)
    }
}

/// Keepalive probes after `idle` without traffic, then every quarter of it (at least 1 s);
/// three unanswered probes drop the connection.
fn keepalive(idle: Duration) -> socket2::TcpKeepalive {
    let probes = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval((idle / 4).max(Duration::from_secs(1)));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let probes = probes.with_retries(3);
    probes
}

/// Sends `req` to `addr`, over TLS when `origin` is given. HTTP/1.1 requests must carry an
/// origin-form URI and a Host header; HTTP/2 requests an absolute URI. `upgrade` asks for a
/// connection of its own (it will be taken over by the upgraded stream).
pub(crate) async fn send(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    protocol: AppProtocol,
    origin: Option<&TlsOrigin>,
    req: Request<Body>,
    upgrade: bool,
) -> Result<Response<Body>, UpstreamError> {
    let pool = &shared.http.pool;
    if protocol == AppProtocol::H2c {
        let mut sender = pool.h2(addr, origin).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        return Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()));
    }
    if upgrade {
        let mut sender = pool.new_h1(addr, origin).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        return Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()));
    }
    let (mut sender, reused) = pool.h1(addr, origin).await?;
    let resp = match sender.try_send_request(req).await {
        Ok(resp) => resp,
        Err(mut error) => match error.take_message() {
            // A pooled connection the backend closed before our request was written: the
            // request is intact, so it is safe to send it once on a fresh connection.
            Some(req) if reused => {
                sender = pool.new_h1(addr, origin).await?;
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| UpstreamError::Http(addr, e))?
            }
            _ => return Err(UpstreamError::Http(addr, error.into_error())),
        },
    };
    let (parts, body) = resp.into_parts();
    let key = UpstreamKey::new(addr, origin);
    if body.is_end_stream() {
        pool.push_h1(key, sender);
        return Ok(Response::from_parts(parts, empty()));
    }
    let body = PooledBody {
        inner: body,
        give_back: Some((shared.clone(), key, sender)),
    };
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// An HTTP/1.1 response body that returns its connection to the pool at its end.
struct PooledBody {
    inner: Incoming,
    give_back: Option<(Arc<Shared>, UpstreamKey, http1::SendRequest<Body>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((shared, addr, sender)) = self.give_back.take() {
            shared.http.pool.push_h1(addr, sender);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.give_back = None,
            _ => {}
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that ends with an error once more than `left` bytes have passed: a
/// chunked or HTTP/2 body over `HttpLimits::max_request_body_bytes`. `exceeded` tells the
/// handler why the exchange failed (it answers `413`).
pub(crate) struct LimitedBody {
    pub(crate) inner: Body,
    pub(crate) left: u64,
    pub(crate) exceeded: Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let len = data.len() as u64;
            if len > self.left {
                self.exceeded
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Poll::Ready(Some(Err("request body over the size limit".into())));
            }
            self.left -= len;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that copies its data frames to a mirror through a bounded channel. When the
/// mirror falls behind, its copy is abandoned (the channel is dropped) rather than slowing the
/// main request.
pub(crate) struct TeeBody {
    pub(crate) inner: Body,
    pub(crate) copy: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

impl http_body::Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(tx)) = (frame.data_ref(), &self.copy)
                    && tx.try_send(data.clone()).is_err()
                {
                    self.copy = None;
                }
            }
            Poll::Ready(_) => self.copy = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The mirror's side of a [`TeeBody`].
pub(crate) struct ChannelBody(pub(crate) tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d))))
    }
}
