//! TCP listeners and the stream proxy shared with TLS.
//!
//! Once the backend is connected, the bytes are moved one of two ways. By default they are
//! copied through user-space buffers that grow with the flow ([`super::copy`]). With
//! `L4Limits::tcp_splice` on Linux, two plain TCP sockets (TCP listeners, TLS passthrough once
//! the peeked ClientHello is written) are joined in the kernel with splice(2) through a pipe
//! per direction ([`super::splice`]); when the pipes cannot be created (descriptor limit, pipe
//! quota) that is counted, logged at debug, and the connection copied instead. TLS terminate
//! is always copied. Both ways pass each side's FIN on, end both sides on an error, count the
//! same bytes and share the idle watchdog and the drain deadline.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::ir::{self, ListenerId};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::copy::{BufferSizes, copy_bidirectional};
use super::{Pick, RouteStreams, SocketRoute, TcpStats, pick, socket_route};
use crate::observed::{Observed, ReadObserver};
use crate::report::ListenerIssue;
use crate::shared::{ConnCtx, Shared};
use crate::tls::origin::OriginTable;

/// A client stream [`proxy_stream`] serves: a plain TCP socket can be spliced, anything else
/// (a TLS stream) is copied in user space.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + Sized {
    /// The plain TCP socket this stream is, or the stream back.
    // Only the Linux splice path asks.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn into_tcp(self) -> Result<TcpStream, Self> {
        Err(self)
    }
}

impl ClientStream for TcpStream {
    fn into_tcp(self) -> Result<TcpStream, Self> {
        Ok(self)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> ClientStream
    for tokio_rustls::server::TlsStream<IO>
{
}

/// The configuration of one TCP socket.
#[derive(Debug)]
pub(crate) struct TcpBindState {
    /// The listener served (for logs).
    listener: Option<ListenerId>,
    /// Its route's backends, and what ends the route's streams when it is removed; `None`
    /// closes every connection at once.
    route: Option<(Arc<[ir::WeightedBackend]>, RouteStreams)>,
    /// The listener's counters and open-connection count, shared with earlier configurations.
    stats: Arc<TcpStats>,
    /// `L4Limits::max_connections_per_listener`.
    max_connections: usize,
    /// TLS to backends that BackendTLSPolicies cover.
    origins: OriginTable,
}

impl TcpBindState {
    pub(crate) fn build(
        listeners: &[Arc<ir::Listener>],
        shared: &Arc<Shared>,
    ) -> (TcpBindState, Vec<ListenerIssue>) {
        let SocketRoute {
            listener,
            route,
            issues,
        } = socket_route(listeners, "TCP", &shared.l4);
        let stats = match &listener {
            Some(id) => shared.l4.tcp_stats(id),
            None => Arc::default(),
        };
        let state = TcpBindState {
            listener,
            route,
            stats,
            max_connections: shared.config.l4.max_connections_per_listener,
            origins: OriginTable::build(listeners, &shared.origins),
        };
        (state, issues)
    }
}

/// One open connection counted against the listener's limit, released on drop.
struct ConnSlot(Arc<TcpStats>);

impl ConnSlot {
    fn acquire(stats: &Arc<TcpStats>, max: usize) -> Option<ConnSlot> {
        let before = stats.active.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            stats.active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnSlot(stats.clone()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Proxies one TCP connection.
pub(crate) async fn serve_tcp(state: Arc<TcpBindState>, stream: TcpStream, ctx: ConnCtx) {
    let stats = &state.stats;
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    let Some(_slot) = ConnSlot::acquire(stats, state.max_connections) else {
        stats.rejected_over_limit.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %ctx.peer, listener = ?state.listener, "connection limit reached; closing");
        return;
    };
    let Some((backends, streams)) = &state.route else {
        stats.no_route.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %ctx.peer, listener = ?state.listener, "no TCPRoute; closing");
        return;
    };
    proxy_stream(
        stream,
        Bytes::new(),
        backends,
        streams,
        Some(&state.origins),
        &ctx,
    )
    .await;
}

/// Forwards a client byte stream to one of `backends` (chosen by weight): writes `prefix`
/// first (the ClientHello a TLS passthrough peeked), then copies both directions until both
/// sides are done. Used by TCP listeners and by TLS passthrough/terminate listeners. A plain
/// TCP client is spliced on Linux when `L4Limits::tcp_splice` is on (see the module docs).
///
/// With `origins`, a backend a BackendTLSPolicy covers is reached over TLS (its handshake
/// within the connect timeout), or not at all. TLS passthrough passes `None`: the client's own
/// TLS goes to the backend.
///
/// An invalid backend's share, a backend without ready endpoints, a refused connect or one
/// slower than `L4Limits::connect_timeout` close the client connection. Once connected, each
/// side's FIN is passed on while the other direction keeps flowing; an error on either side,
/// `L4Limits::tcp_idle_timeout` without traffic, the drain deadline (`ctx.kill`), or the
/// route's removal (`streams`, a drain timeout after the apply) close both.
pub(crate) async fn proxy_stream<IO: ClientStream>(
    client: IO,
    prefix: Bytes,
    backends: &[ir::WeightedBackend],
    streams: &RouteStreams,
    origins: Option<&OriginTable>,
    ctx: &ConnCtx,
) {
    let gone = &streams.gone;
    let l4 = &ctx.shared.l4;
    let stats = &l4.streams;
    let limits = &ctx.shared.config.l4;
    let (endpoint, service) = match pick(backends, l4.next_pick()) {
        Pick::Endpoint(endpoint, service) => (endpoint, service),
        Pick::Invalid(reason) => {
            stats
                .rejected_invalid_backend
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, reason, "invalid backend chosen; closing");
            return;
        }
        Pick::NoEndpoint => {
            stats.no_endpoint.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, "no ready endpoint; closing");
            return;
        }
    };
    let origin = match origins.and_then(|o| o.get(service)) {
        None => None,
        Some(Ok(origin)) => Some(origin),
        Some(Err(reason)) => {
            stats.tls_handshake_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, %endpoint, reason, "no TLS settings for the backend; closing");
            return;
        }
    };
    let started = Instant::now();
    let connect = tokio::time::timeout(limits.connect_timeout, TcpStream::connect(endpoint));
    let mut upstream = tokio::select! {
        biased;
        () = ctx.kill.cancelled() => return,
        () = gone.cancelled() => return,
        connected = connect => match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %ctx.peer, local = %ctx.local, %endpoint, %error, "connect failed; closing");
                return;
            }
            Err(_) => {
                stats.connect_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %ctx.peer, %endpoint, "connect timed out; closing");
                return;
            }
        },
    };
    if let Err(error) = upstream.set_nodelay(true) {
        tracing::debug!(%endpoint, %error, "TCP_NODELAY not set");
    }
    if let Some(origin) = origin {
        let left = limits.connect_timeout.saturating_sub(started.elapsed());
        let handshake = tokio::time::timeout(left, origin.connect(upstream));
        let tls = tokio::select! {
            biased;
            () = ctx.kill.cancelled() => return,
            () = gone.cancelled() => return,
            done = handshake => match done {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    let counter = if crate::tls::origin::is_certificate_error(&error) {
                        &stats.tls_certificate_failed
                    } else {
                        &stats.tls_handshake_failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %ctx.peer, %endpoint, policy = %origin.policy, %error, "TLS to the backend failed; closing");
                    return;
                }
                Err(_) => {
                    stats.connect_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %ctx.peer, %endpoint, "TLS handshake with the backend timed out; closing");
                    return;
                }
            },
        };
        copy_both_ways(client, tls, gone, ctx).await;
        return;
    }
    if !prefix.is_empty() {
        // A fresh socket's send buffer takes a ClientHello without waiting; the deadline
        // still applies in case the peer's window is tiny.
        let written = tokio::select! {
            biased;
            () = ctx.kill.cancelled() => return,
            () = gone.cancelled() => return,
            written = upstream.write_all(&prefix) => written,
        };
        if let Err(error) = written {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%endpoint, %error, "writing the peeked bytes failed; closing");
            return;
        }
    }
    #[cfg(target_os = "linux")]
    let client = if limits.tcp_splice {
        match client.into_tcp() {
            Ok(client) => {
                splice_or_copy(client, upstream, gone, ctx, super::splice::Pipes::new()).await;
                return;
            }
            Err(client) => client,
        }
    } else {
        client
    };
    copy_both_ways(client, upstream, gone, ctx).await;
}

/// Splices `client` and `upstream` through `pipes`, or copies them in user space when the
/// pipes could not be created.
#[cfg(target_os = "linux")]
async fn splice_or_copy(
    client: TcpStream,
    upstream: TcpStream,
    gone: &CancellationToken,
    ctx: &ConnCtx,
    pipes: io::Result<super::splice::Pipes>,
) {
    let stats = &ctx.shared.l4.streams;
    match pipes {
        Ok(pipes) => {
            stats.spliced.fetch_add(1, Ordering::Relaxed);
            let activity = Activity::new();
            let counts = super::splice::Spliced::default();
            let copy =
                super::splice::splice_bidirectional(&client, &upstream, &pipes, &counts, &activity);
            let end = supervise(copy, &activity, gone, ctx).await;
            finish(
                end,
                counts.a_to_b.load(Ordering::Relaxed),
                counts.b_to_a.load(Ordering::Relaxed),
                ctx,
            );
        }
        Err(error) => {
            stats.splice_fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, %error, "no pipes for splice; copying in user space");
            copy_both_ways(client, upstream, gone, ctx).await;
        }
    }
}

/// How a copy ended.
enum End {
    Done,
    Error(io::Error),
    Idle,
    Killed,
    RouteRemoved,
}

/// When either side last sent something, for the idle watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read on either side: the idle watchdog sleeps
    /// until it is old enough, instead of resetting a timer on every read.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Notes that something was read just now.
    pub(crate) fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }
}

async fn copy_both_ways<IO, U>(client: IO, upstream: U, gone: &CancellationToken, ctx: &ConnCtx)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limits = &ctx.shared.config.l4;
    let activity = Activity::new();
    let mut client = Tracked::stream(client, &activity);
    let mut upstream = Tracked::stream(upstream, &activity);
    let sizes = BufferSizes {
        initial: limits.tcp_buffer_initial,
        max: limits.tcp_buffer_max,
    };
    let end = {
        let copy = async {
            copy_bidirectional(&mut client, &mut upstream, sizes)
                .await
                .map(|_| ())
        };
        supervise(copy, &activity, gone, ctx).await
    };
    finish(end, client.observer.bytes, upstream.observer.bytes, ctx);
    // Both streams are dropped here, which closes them.
}

/// Runs `copy` until it ends, both sides stay quiet for `L4Limits::tcp_idle_timeout`, the
/// drain deadline passes, or the route is gone.
async fn supervise(
    copy: impl Future<Output = io::Result<()>>,
    activity: &Activity,
    gone: &CancellationToken,
    ctx: &ConnCtx,
) -> End {
    let idle = ctx.shared.config.l4.tcp_idle_timeout;
    let watchdog = async {
        loop {
            let seen = activity.last.load(Ordering::Relaxed);
            match (activity.start + Duration::from_millis(seen)).checked_add(idle) {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                // An idle timeout too large to add (`Duration::MAX`): never idle.
                None => std::future::pending::<()>().await,
            }
            if activity.last.load(Ordering::Relaxed) == seen {
                break;
            }
        }
    };
    tokio::select! {
        biased;
        () = ctx.kill.cancelled() => End::Killed,
        () = gone.cancelled() => End::RouteRemoved,
        () = watchdog => End::Idle,
        copied = copy => match copied {
            Ok(()) => End::Done,
            Err(error) => End::Error(error),
        },
    }
}

/// Counts a finished stream: `upstream` bytes read from the client, `downstream` from the
/// backend.
fn finish(end: End, upstream: u64, downstream: u64, ctx: &ConnCtx) {
    let stats = &ctx.shared.l4.streams;
    stats.bytes_upstream.fetch_add(upstream, Ordering::Relaxed);
    stats
        .bytes_downstream
        .fetch_add(downstream, Ordering::Relaxed);
    match end {
        End::Done => {}
        End::Error(error) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, %error, "stream ended with an error; closing both sides");
        }
        End::Idle => {
            stats.idle_closed.fetch_add(1, Ordering::Relaxed);
            let idle = ctx.shared.config.l4.tcp_idle_timeout;
            tracing::debug!(peer = %ctx.peer, ?idle, "idle; closing both sides");
        }
        End::Killed => {
            stats.killed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, "drain deadline passed; closing both sides");
        }
        End::RouteRemoved => {
            stats.route_removed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, "the stream's route was removed and its drain timeout passed; closing both sides");
        }
    }
}

/// Notes when a stream last read something and how much it read.
struct Tracked<'a> {
    activity: &'a Activity,
    bytes: u64,
}

impl<'a> Tracked<'a> {
    fn stream<IO>(io: IO, activity: &'a Activity) -> Observed<IO, Tracked<'a>> {
        Observed {
            io,
            observer: Tracked { activity, bytes: 0 },
        }
    }
}

impl ReadObserver for Tracked<'_> {
    fn observe(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        self.activity.touch();
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;
    use crate::GatewayConfig;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    /// Two connected loopback sockets.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (connected.unwrap(), accepted.unwrap().0)
    }

    /// Proxies one connection through `splice_or_copy` with `pipes`; checks that bytes flow
    /// both ways with half-close, and returns the gateway's stream counters.
    async fn proxy_with(pipes: io::Result<super::super::splice::Pipes>) -> Arc<Shared> {
        let shared = Shared::new(GatewayConfig::default());
        let (mut client, gateway_client) = socket_pair().await;
        let (gateway_upstream, mut backend) = socket_pair().await;
        let ctx = ConnCtx {
            peer: client.local_addr().unwrap(),
            local: gateway_client.local_addr().unwrap(),
            graceful: CancellationToken::new(),
            kill: CancellationToken::new(),
            shared: shared.clone(),
        };
        let proxy = tokio::spawn(async move {
            let gone = CancellationToken::new();
            splice_or_copy(gateway_client, gateway_upstream, &gone, &ctx, pipes).await;
        });
        let data = vec![5u8; 200_000];
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        backend
            .write_all(b"reply after the client's FIN")
            .await
            .unwrap();
        backend.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply after the client's FIN");
        proxy.await.unwrap();
        let streams = &shared.l4.streams;
        assert_eq!(streams.bytes_upstream.load(Ordering::Relaxed), 200_000);
        assert_eq!(streams.bytes_downstream.load(Ordering::Relaxed), 28);
        assert_eq!(streams.errors.load(Ordering::Relaxed), 0);
        shared
    }

    #[tokio::test]
    async fn spliced_when_pipes_exist() {
        let shared = proxy_with(super::super::splice::Pipes::new()).await;
        let streams = &shared.l4.streams;
        assert_eq!(streams.spliced.load(Ordering::Relaxed), 1);
        assert_eq!(streams.splice_fallbacks.load(Ordering::Relaxed), 0);
    }

    /// Pipes that could not be created (here: the descriptor limit, EMFILE) do not fail the
    /// connection: it is copied in user space and the fallback counted.
    #[tokio::test]
    async fn copied_when_pipes_cannot_be_created() {
        let emfile = io::Error::from_raw_os_error(24);
        let shared = proxy_with(Err(emfile)).await;
        let streams = &shared.l4.streams;
        assert_eq!(streams.spliced.load(Ordering::Relaxed), 0);
        assert_eq!(streams.splice_fallbacks.load(Ordering::Relaxed), 1);
    }
}
