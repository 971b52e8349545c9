//! TCP and UDP proxying (skeleton: filled by the L4 issue).

use std::sync::Arc;

use arc_swap::ArcSwap;
use gateway_core::ir;
use tokio::net::{TcpStream, UdpSocket};

use crate::listener::BindSignals;
use crate::runtime::{BindState, ListenerIssue};
use crate::shared::{ConnCtx, Shared};

/// TCP and UDP limits.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct L4Limits {}

/// The configuration of one TCP socket.
#[derive(Debug)]
pub(crate) struct TcpBindState {}

impl TcpBindState {
    pub(crate) fn build(
        _listeners: &[Arc<ir::Listener>],
        _shared: &Arc<Shared>,
    ) -> (TcpBindState, Vec<ListenerIssue>) {
        (TcpBindState {}, Vec::new())
    }
}

/// The configuration of one UDP socket.
#[derive(Debug)]
pub(crate) struct UdpBindState {}

impl UdpBindState {
    pub(crate) fn build(
        _listeners: &[Arc<ir::Listener>],
        _shared: &Arc<Shared>,
    ) -> (UdpBindState, Vec<ListenerIssue>) {
        (UdpBindState {}, Vec::new())
    }
}

/// Forwards a client byte stream to one of `backends` (chosen by weight): writes `prefix`
/// first (the ClientHello a TLS passthrough peeked), then copies both directions until both
/// sides are done. Used by TCP listeners and by TLS passthrough/terminate listeners.
///
/// Skeleton: connects to the first endpoint of the first usable backend; the L4 issue adds
/// weights, endpoint balancing, timeouts and limits.
pub(crate) async fn proxy_stream<IO>(
    mut client: IO,
    prefix: bytes::Bytes,
    backends: &[ir::WeightedBackend],
    ctx: &ConnCtx,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    use tokio::io::AsyncWriteExt;
    let endpoint = backends.iter().find_map(|b| match &b.backend {
        ir::Backend::Service(s) => s.endpoints.first().copied(),
        ir::Backend::Invalid { .. } => None,
    });
    let Some(endpoint) = endpoint else {
        tracing::debug!(peer = %ctx.peer, "no usable backend; closing");
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(endpoint).await else {
        return;
    };
    if upstream.write_all(&prefix).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Proxies one TCP connection.
pub(crate) async fn serve_tcp(_state: Arc<TcpBindState>, _stream: TcpStream, _ctx: ConnCtx) {}

/// Serves a UDP socket until the bind is removed.
pub(crate) async fn run_udp(
    _socket: UdpSocket,
    _state: Arc<ArcSwap<BindState>>,
    signals: BindSignals,
    _shared: Arc<Shared>,
) {
    signals.graceful.cancelled().await;
}
