//! TCP listeners and the stream proxy shared with TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::ir::{self, ListenerId};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::copy::{BufferSizes, copy_bidirectional};
use super::{Pick, TcpStats, pick, socket_route};
use crate::runtime::ListenerIssue;
use crate::shared::{ConnCtx, Shared};

/// The configuration of one TCP socket.
#[derive(Debug)]
pub(crate) struct TcpBindState {
    /// The listener served (for logs).
    listener: Option<ListenerId>,
    /// Its route's backends; `None` closes every connection at once.
    backends: Option<Arc<[ir::WeightedBackend]>>,
    /// The listener's counters and open-connection count, shared with earlier configurations.
    stats: Arc<TcpStats>,
    /// `L4Limits::max_connections_per_listener`.
    max_connections: usize,
}

impl TcpBindState {
    pub(crate) fn build(
        listeners: &[Arc<ir::Listener>],
        shared: &Arc<Shared>,
    ) -> (TcpBindState, Vec<ListenerIssue>) {
        let (listener, backends, issues) = socket_route(listeners, "TCP");
        let stats = match &listener {
            Some(id) => shared.l4.tcp_stats(id),
            None => Arc::default(),
        };
        let state = TcpBindState {
            listener,
            backends,
            stats,
            max_connections: shared.config.l4.max_connections_per_listener,
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
    let Some(backends) = &state.backends else {
        stats.no_route.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %ctx.peer, listener = ?state.listener, "no TCPRoute; closing");
        return;
    };
    proxy_stream(stream, Bytes::new(), backends, &ctx).await;
}

/// Forwards a client byte stream to one of `backends` (chosen by weight): writes `prefix`
/// first (the ClientHello a TLS passthrough peeked), then copies both directions until both
/// sides are done. Used by TCP listeners and by TLS passthrough/terminate listeners.
///
/// An invalid backend's share, a backend without ready endpoints, a refused connect or one
/// slower than `L4Limits::connect_timeout` close the client connection. Once connected, each
/// side's FIN is passed on while the other direction keeps flowing; an error on either side,
/// `L4Limits::tcp_idle_timeout` without traffic, or the drain deadline (`ctx.kill`) close
/// both.
pub(crate) async fn proxy_stream<IO>(
    client: IO,
    prefix: Bytes,
    backends: &[ir::WeightedBackend],
    ctx: &ConnCtx,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let l4 = &ctx.shared.l4;
    let stats = &l4.streams;
    let limits = &ctx.shared.config.l4;
    let endpoint = match pick(backends, l4.next_pick()) {
        Pick::Endpoint(endpoint) => endpoint,
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
    let connect = tokio::time::timeout(limits.connect_timeout, TcpStream::connect(endpoint));
    let mut upstream = tokio::select! {
        biased;
        () = ctx.kill.cancelled() => return,
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
    if !prefix.is_empty() {
        // A fresh socket's send buffer takes a ClientHello without waiting; the deadline
        // still applies in case the peer's window is tiny.
        let written = tokio::select! {
            biased;
            () = ctx.kill.cancelled() => return,
            written = upstream.write_all(&prefix) => written,
        };
        if let Err(error) = written {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%endpoint, %error, "writing the peeked bytes failed; closing");
            return;
        }
    }
    copy_both_ways(client, upstream, ctx).await;
}

/// How a copy ended.
enum End {
    Done,
    Error(io::Error),
    Idle,
    Killed,
}

async fn copy_both_ways<IO>(client: IO, upstream: TcpStream, ctx: &ConnCtx)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limits = &ctx.shared.config.l4;
    let stats = &ctx.shared.l4.streams;
    let start = Instant::now();
    // Milliseconds since `start` of the last read on either side: the idle watchdog sleeps
    // until it is old enough, instead of resetting a timer on every read.
    let last = AtomicU64::new(0);
    let mut client = Tracked::new(client, &last, start);
    let mut upstream = Tracked::new(upstream, &last, start);
    let idle = limits.tcp_idle_timeout;
    let sizes = BufferSizes {
        initial: limits.tcp_buffer_initial,
        max: limits.tcp_buffer_max,
    };
    let end = {
        let copy = copy_bidirectional(&mut client, &mut upstream, sizes);
        let watchdog = async {
            loop {
                let seen = last.load(Ordering::Relaxed);
                match (start + Duration::from_millis(seen)).checked_add(idle) {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    // An idle timeout too large to add (`Duration::MAX`): never idle.
                    None => std::future::pending::<()>().await,
                }
                if last.load(Ordering::Relaxed) == seen {
                    break;
                }
            }
        };
        tokio::select! {
            biased;
            () = ctx.kill.cancelled() => End::Killed,
            () = watchdog => End::Idle,
            copied = copy => match copied {
                Ok(_) => End::Done,
                Err(error) => End::Error(error),
            },
        }
    };
    stats
        .bytes_upstream
        .fetch_add(client.bytes, Ordering::Relaxed);
    stats
        .bytes_downstream
        .fetch_add(upstream.bytes, Ordering::Relaxed);
    match end {
        End::Done => {}
        End::Error(error) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, %error, "stream ended with an error; closing both sides");
        }
        End::Idle => {
            stats.idle_closed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, ?idle, "idle; closing both sides");
        }
        End::Killed => {
            stats.killed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ctx.peer, "drain deadline passed; closing both sides");
        }
    }
    // Both streams are dropped here, which closes them.
}

/// A stream that notes when it last read something and how much it read.
struct Tracked<'a, IO> {
    io: IO,
    last: &'a AtomicU64,
    start: Instant,
    bytes: u64,
}

impl<'a, IO> Tracked<'a, IO> {
    fn new(io: IO, last: &'a AtomicU64, start: Instant) -> Self {
        Tracked {
            io,
            last,
            start,
            bytes: 0,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<'_, IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.bytes += read as u64;
            let now = u64::try_from(this.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            this.last.store(now, Ordering::Relaxed);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
