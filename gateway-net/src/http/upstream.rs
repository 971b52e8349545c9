//! Upstream connections: a pool of hyper's low-level client handles per endpoint.
//!
//! HTTP/1.1 connections are checked out for one exchange and come back to the pool when the
//! response body has been read to its end (a body dropped early closes its connection, which
//! is then in an unknown state). HTTP/2 (h2c) connections are shared: one per endpoint,
//! multiplexed. The lock of each map is held only for a lookup, a pop or a push.

use std::collections::HashMap;
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

use super::HttpLimits;
use crate::shared::Shared;

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
    /// The HTTP exchange failed.
    #[error("upstream {0}: {1}")]
    Http(SocketAddr, #[source] hyper::Error),
}

struct Idle {
    since: Instant,
    sender: http1::SendRequest<Body>,
}

/// Upstream connections of every endpoint.
pub(crate) struct Pool {
    h1: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    h2: Mutex<HashMap<SocketAddr, http2::SendRequest<Body>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    pub(crate) fn new(limits: &HttpLimits) -> Pool {
        Pool {
            h1: Mutex::new(HashMap::new()),
            h2: Mutex::new(HashMap::new()),
            connect_timeout: limits.upstream_connect_timeout,
            idle_timeout: limits.upstream_idle_timeout,
            max_idle: limits.upstream_max_idle_per_endpoint,
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TokioIo<TcpStream>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(addr))?
            .map_err(|e| UpstreamError::Connect(addr, e))?;
        // Requests are written whole; Nagle would only add latency.
        let _ = stream.set_nodelay(true);
        Ok(TokioIo::new(stream))
    }

    fn pop_h1(&self, addr: SocketAddr) -> Option<Idle> {
        let mut map = self.h1.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(&addr).and_then(Vec::pop)
    }

    fn push_h1(&self, addr: SocketAddr, sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut map = self.h1.lock().unwrap_or_else(|e| e.into_inner());
        let idle = map.entry(addr).or_default();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                since: Instant::now(),
                sender,
            });
        }
    }

    /// A ready HTTP/1.1 sender: a pooled one, else a new connection.
    async fn h1(&self, addr: SocketAddr) -> Result<http1::SendRequest<Body>, UpstreamError> {
        while let Some(mut idle) = self.pop_h1(addr) {
            if idle.since.elapsed() > self.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            if idle.sender.ready().await.is_ok() {
                return Ok(idle.sender);
            }
        }
        self.new_h1(addr).await
    }

    async fn new_h1(&self, addr: SocketAddr) -> Result<http1::SendRequest<Body>, UpstreamError> {
        let io = self.connect(addr).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%addr, %error, "upstream HTTP/1.1 connection error");
            }
        });
        Ok(sender)
    }

    async fn h2(&self, addr: SocketAddr) -> Result<http2::SendRequest<Body>, UpstreamError> {
        let existing = {
            let map = self.h2.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&addr).filter(|s| !s.is_closed()).cloned()
        };
        if let Some(sender) = existing {
            return Ok(sender);
        }
        let io = self.connect(addr).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%addr, %error, "upstream HTTP/2 connection error");
            }
        });
        let mut map = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(addr, sender.clone());
        Ok(sender)
    }
}

/// Sends `req` to `addr`. HTTP/1.1 requests must carry an origin-form URI and a Host header;
/// HTTP/2 requests an absolute URI. `upgrade` asks for a connection of its own (it will be
/// taken over by the upgraded stream).
pub(crate) async fn send(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    protocol: AppProtocol,
    req: Request<Body>,
    upgrade: bool,
) -> Result<Response<Body>, UpstreamError> {
    let pool = &shared.http.pool;
    if protocol == AppProtocol::H2c {
        let mut sender = pool.h2(addr).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        return Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()));
    }
    if upgrade {
        let mut sender = pool.new_h1(addr).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| UpstreamError::Http(addr, e))?;
        return Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()));
    }
    let mut sender = pool.h1(addr).await?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| UpstreamError::Http(addr, e))?;
    let (parts, body) = resp.into_parts();
    if body.is_end_stream() {
        pool.push_h1(addr, sender);
        return Ok(Response::from_parts(parts, empty()));
    }
    let body = PooledBody {
        inner: body,
        give_back: Some((shared.clone(), addr, sender)),
    };
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// An HTTP/1.1 response body that returns its connection to the pool at its end.
struct PooledBody {
    inner: Incoming,
    give_back: Option<(Arc<Shared>, SocketAddr, http1::SendRequest<Body>)>,
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
