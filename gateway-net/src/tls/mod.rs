//! TLS: certificates by SNI, termination, passthrough.
//!
//! Every connection on a TLS socket starts the same way: the ClientHello is read into a
//! buffer (not consumed by a TLS library) and its SNI picks the listener. A passthrough
//! listener forwards the buffered bytes and the rest of the stream untouched; a terminating
//! listener replays the buffered bytes into a rustls handshake with that listener's
//! certificates, then hands the decrypted stream to HTTP (HTTPS) or to a TCP backend
//! (TLS Terminate).

mod certs;
mod client_hello;
pub(crate) mod origin;

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes, BytesMut};
use gateway_core::ir::{self, ListenerId, ListenerProtocol};
use gateway_core::router::SniRouter;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::report::{IssueKind, ListenerIssue};
use crate::runtime::BindState;
use crate::shared::{ConnCtx, Shared};

use client_hello::{ClientHello, ClientHelloError, parse_client_hello};

/// Entry points for fuzzing and benchmarks; not a stable API.
#[doc(hidden)]
pub(crate) mod fuzzing {
    pub use super::client_hello::{ClientHello, ClientHelloError, parse_client_hello};
    pub use super::origin::uri_names;
}

/// TLS handshake limits.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsLimits {
    /// How long a client may take to send its whole ClientHello after connecting; a client
    /// that sends nothing (or trickles bytes) is closed after it. Default 10 s.
    pub client_hello_timeout: Duration,
    /// Largest ClientHello accepted, in bytes (all the records that carry it); larger ones
    /// close the connection. Real ClientHellos take well under 2 KiB, post-quantum key shares
    /// a few KiB. Default 16 KiB.
    pub max_client_hello_size: usize,
    /// How long the rest of the handshake (after the ClientHello) may take. Default 10 s.
    pub handshake_timeout: Duration,
}

impl Default for TlsLimits {
    fn default() -> Self {
        TlsLimits {
            client_hello_timeout: Duration::from_secs(10),
            max_client_hello_size: 16 * 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a TLS connection ended before it was handed to HTTP or a backend (logged at debug; a
/// metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// No complete ClientHello within `client_hello_timeout`.
    ClientHelloTimeout,
    /// The ClientHello exceeds `max_client_hello_size`.
    ClientHelloTooLarge,
    /// The first bytes are not a valid ClientHello.
    ClientHelloMalformed,
    /// The client closed the connection (or it failed) before its ClientHello was complete.
    ClientClosed,
    /// No listener matches the SNI (or the client sent none and no listener takes any name).
    UnknownSni,
    /// A TLS listener matched but none of its TLSRoutes matches the SNI.
    NoRoute,
    /// The handshake did not finish within `handshake_timeout`.
    HandshakeTimeout,
    /// rustls refused the handshake (no common version or cipher, bad client certificate…).
    HandshakeError,
    /// The listener is draining (removed, or the gateway is shutting down).
    Shutdown,
}

impl HandshakeFailure {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub(crate) const ALL: [HandshakeFailure; 9] = [
        HandshakeFailure::ClientHelloTimeout,
        HandshakeFailure::ClientHelloTooLarge,
        HandshakeFailure::ClientHelloMalformed,
        HandshakeFailure::ClientClosed,
        HandshakeFailure::UnknownSni,
        HandshakeFailure::NoRoute,
        HandshakeFailure::HandshakeTimeout,
        HandshakeFailure::HandshakeError,
        HandshakeFailure::Shutdown,
    ];

    /// A stable name, for logs and metric labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::ClientHelloTimeout => "client_hello_timeout",
            HandshakeFailure::ClientHelloTooLarge => "client_hello_too_large",
            HandshakeFailure::ClientHelloMalformed => "client_hello_malformed",
            HandshakeFailure::ClientClosed => "client_closed",
            HandshakeFailure::UnknownSni => "unknown_sni",
            HandshakeFailure::NoRoute => "no_route",
            HandshakeFailure::HandshakeTimeout => "handshake_timeout",
            HandshakeFailure::HandshakeError => "handshake_error",
            HandshakeFailure::Shutdown => "shutdown",
        }
    }
}

/// The configuration of one TLS socket.
#[derive(Debug)]
pub(crate) struct TlsBindState {
    /// Listener (and TLSRoute) choice by SNI, over the listeners that can be served. HTTPS
    /// requests check their connection's SNI and their host against it.
    pub(crate) router: SniRouter,
    /// rustls configurations of the terminating listeners.
    configs: HashMap<ListenerId, Arc<ServerConfig>>,
    /// HTTP routing of the HTTPS listeners.
    pub(crate) http: crate::http::HttpBindState,
    /// What ends the streams of each TLS listener's TLSRoutes when they leave the
    /// configuration (passthrough and terminate).
    /// Keyed by the route's address in the Ir listeners this state holds (stable for its
    /// life), so a connection finds them without building a key.
    streams: HashMap<usize, crate::l4::RouteStreams>,
    /// TLS to the backends of terminated TLSRoutes that BackendTLSPolicies cover.
    origins: origin::OriginTable,
    limits: TlsLimits,
}

impl TlsBindState {
    pub(crate) fn build(
        listeners: &[Arc<ir::Listener>],
        shared: &Arc<Shared>,
    ) -> (TlsBindState, Vec<ListenerIssue>) {
        // Explicit provider: the library must not depend on a process-wide default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut issues = Vec::new();
        let mut served = Vec::with_capacity(listeners.len());
        let mut configs = HashMap::new();
        for listener in listeners {
            match listener.protocol {
                ListenerProtocol::Https | ListenerProtocol::TlsTerminate => {
                    match certs::server_config(listener, &provider) {
                        Ok(config) => {
                            configs.insert(listener.id.clone(), config);
                            served.push(listener.clone());
                        }
                        Err(message) => {
                            tracing::warn!(listener = %listener.id, %message, "listener not served");
                            issues.push(ListenerIssue {
                                listener: listener.id.clone(),
                                kind: IssueKind::InvalidCertificate,
                                message,
                            });
                        }
                    }
                }
                ListenerProtocol::TlsPassthrough => served.push(listener.clone()),
                other => issues.push(ListenerIssue {
                    listener: listener.id.clone(),
                    kind: IssueKind::Unsupported,
                    message: format!("{other:?} listener on a TLS socket"),
                }),
            }
        }
        let https: Vec<Arc<ir::Listener>> = served
            .iter()
            .filter(|l| l.protocol == ListenerProtocol::Https)
            .cloned()
            .collect();
        let streamed: Vec<Arc<ir::Listener>> = served
            .iter()
            .filter(|l| l.protocol != ListenerProtocol::Https)
            .cloned()
            .collect();
        let streams = streamed
            .iter()
            .flat_map(|l| l.tls_routes.iter().map(move |r| (l, r)))
            .map(|(l, r)| (route_key(r), shared.l4.route_streams(&l.id, &r.id)))
            .collect();
        let state = TlsBindState {
            router: SniRouter::new(&served),
            configs,
            http: crate::http::HttpBindState::build(&https, shared),
            streams,
            // HTTPS listeners' backends are in `http`'s table.
            origins: origin::OriginTable::build(&streamed, &shared.origins),
            limits: shared.config.tls.clone(),
        };
        (state, issues)
    }
}

impl Drop for TlsBindState {
    fn drop(&mut self) {
        let router = std::mem::replace(&mut self.router, SniRouter::new(&[]));
        let configs = std::mem::take(&mut self.configs);
        crate::shared::drop_off_worker((router, configs));
    }
}

/// Serves one TLS connection with `state`, the socket's configuration when it was accepted;
/// HTTPS requests load `socket`'s current one each.
pub(crate) async fn serve_connection(
    state: Arc<TlsBindState>,
    socket: Arc<ArcSwap<BindState>>,
    stream: TcpStream,
    ctx: ConnCtx,
) {
    if let Err(reason) = serve(&state, socket, stream, &ctx).await {
        ctx.shared.metrics.tls_failure(reason);
        tracing::debug!(peer = %ctx.peer, reason = reason.as_str(), "TLS connection closed");
    }
}

async fn serve(
    state: &TlsBindState,
    socket: Arc<ArcSwap<BindState>>,
    mut stream: TcpStream,
    ctx: &ConnCtx,
) -> Result<(), HandshakeFailure> {
    let limits = &state.limits;
    let mut buffer = BytesMut::with_capacity(2048);
    // A connection still negotiating has nothing in flight: draining (listener removed,
    // shutdown) closes it right away rather than waiting for the drain deadline.
    let hello = tokio::select! {
        biased;
        () = ctx.graceful.cancelled() => return Err(HandshakeFailure::Shutdown),
        read = tokio::time::timeout(
            limits.client_hello_timeout,
            read_client_hello(&mut stream, &mut buffer, limits.max_client_hello_size),
        ) => read.map_err(|_| HandshakeFailure::ClientHelloTimeout)??,
    };
    let sni = hello.server_name;
    let Some(listener) = state.router.listener(sni.as_deref()) else {
        tracing::debug!(peer = %ctx.peer, sni = ?sni, "no listener for this SNI");
        return Err(HandshakeFailure::UnknownSni);
    };
    let prefix = buffer.freeze();
    match listener.protocol {
        ListenerProtocol::TlsPassthrough => {
            let (route, streams) = tls_route(state, sni.as_deref())?;
            // The client's own TLS goes to the backend: nothing to originate.
            crate::l4::proxy_stream(stream, prefix, &route.backends, streams, None, ctx).await;
            Ok(())
        }
        ListenerProtocol::TlsTerminate => {
            // Decided before the handshake, so a connection nobody would take is closed
            // without presenting a certificate, as for passthrough.
            let (route, streams) = tls_route(state, sni.as_deref())?;
            let tls = handshake(state, listener, stream, prefix, ctx).await?;
            let origins = Some(&state.origins);
            crate::l4::proxy_stream(tls, Bytes::new(), &route.backends, streams, origins, ctx)
                .await;
            Ok(())
        }
        ListenerProtocol::Https => {
            let tls = handshake(state, listener, stream, prefix, ctx).await?;
            let info = tls_info(sni, listener.id.clone(), tls.get_ref().1);
            crate::http::serve_connection(socket, tls, ctx.clone(), Some(info)).await;
            Ok(())
        }
        _ => Err(HandshakeFailure::UnknownSni),
    }
}

/// The one place `TlsInfo` is built, so fields the HTTP side adds are filled here.
fn tls_info(
    sni: Option<String>,
    listener: ListenerId,
    connection: &rustls::ServerConnection,
) -> crate::http::TlsInfo {
    crate::http::TlsInfo {
        sni,
        listener,
        alpn_h2: connection.alpn_protocol() == Some(b"h2"),
    }
}

/// The key of a TLSRoute's [`crate::l4::RouteStreams`]: its address in the Ir listener.
fn route_key(route: &ir::TlsRoute) -> usize {
    std::ptr::from_ref(route) as usize
}

/// The TLSRoute that takes `sni`, with what ends its streams.
fn tls_route<'s>(
    state: &'s TlsBindState,
    sni: Option<&str>,
) -> Result<(&'s ir::TlsRoute, &'s crate::l4::RouteStreams), HandshakeFailure> {
    // TLSRoutes always have hostnames, so a client without SNI matches none.
    let sni = sni.ok_or(HandshakeFailure::NoRoute)?;
    let (_, route) = state
        .router
        .tls_route(sni)
        .ok_or(HandshakeFailure::NoRoute)?;
    let streams = state
        .streams
        .get(&route_key(route))
        .ok_or(HandshakeFailure::NoRoute)?;
    Ok((route, streams))
}

async fn handshake(
    state: &TlsBindState,
    listener: &ir::Listener,
    stream: TcpStream,
    prefix: Bytes,
    ctx: &ConnCtx,
) -> Result<tokio_rustls::server::TlsStream<Replay<TcpStream>>, HandshakeFailure> {
    let Some(config) = state.configs.get(&listener.id) else {
        // Only listeners with a configuration are routed to; defensive.
        return Err(HandshakeFailure::UnknownSni);
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
    let io = Replay {
        prefix,
        inner: stream,
    };
    tokio::select! {
        biased;
        () = ctx.graceful.cancelled() => Err(HandshakeFailure::Shutdown),
        done = tokio::time::timeout(state.limits.handshake_timeout, acceptor.accept(io)) => match done {
            Err(_) => Err(HandshakeFailure::HandshakeTimeout),
            Ok(Err(error)) => {
                tracing::debug!(peer = %ctx.peer, listener = %listener.id, %error, "TLS handshake failed");
                Err(HandshakeFailure::HandshakeError)
            }
            Ok(Ok(tls)) => Ok(tls),
        },
    }
}

/// Reads until `buffer` holds a whole ClientHello, within `max` bytes.
async fn read_client_hello(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    max: usize,
) -> Result<ClientHello, HandshakeFailure> {
    loop {
        match parse_client_hello(buffer) {
            Ok(hello) => return Ok(hello),
            Err(ClientHelloError::Incomplete) => {}
            Err(error) => {
                tracing::debug!(%error, "not a ClientHello");
                return Err(HandshakeFailure::ClientHelloMalformed);
            }
        }
        if buffer.len() >= max {
            return Err(HandshakeFailure::ClientHelloTooLarge);
        }
        // Never read past the cap, so a huge first segment cannot grow the buffer.
        let room = (max - buffer.len()).min(4096);
        buffer.reserve(room);
        let mut limited = (&mut *stream).take(room as u64);
        match limited.read_buf(buffer).await {
            Ok(0) | Err(_) => return Err(HandshakeFailure::ClientClosed),
            Ok(_) => {}
        }
    }
}

/// A stream that first yields bytes already read from it (the ClientHello), then reads on.
#[derive(Debug)]
pub(crate) struct Replay<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
