//! Binding sockets with the options a proxy needs, and the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::metrics::ConnCounters;
use crate::runtime::BindState;
use crate::shared::{ConnCtx, Shared};

/// Binds a listening TCP socket: `SO_REUSEADDR` so a restart does not wait for TIME_WAIT,
/// dual-stack for `::`, the configured backlog.
pub(crate) fn bind_tcp(address: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        // `::` serves IPv4 clients too, as `0.0.0.0` users expect of a dual-stack host.
        socket.set_only_v6(!address.ip().is_unspecified())?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog)?;
    TcpListener::from_std(socket.into())
}

/// Binds a UDP socket with the same address rules.
pub(crate) fn bind_udp(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(!address.ip().is_unspecified())?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// Tokens of one bound socket: stop accepting and drain, then force-close.
#[derive(Clone, Debug)]
pub(crate) struct BindSignals {
    pub(crate) graceful: CancellationToken,
    pub(crate) kill: CancellationToken,
}

/// Accepts connections until `signals.graceful` is cancelled, dispatching each to the
/// protocol of the socket's current configuration (read when it is accepted; HTTP requests
/// read it again each).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<ArcSwap<BindState>>,
    signals: BindSignals,
    shared: Arc<Shared>,
    connections: Arc<ConnCounters>,
) {
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(error) => {
            tracing::error!(%error, "listener has no local address");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            biased;
            () = signals.graceful.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors or a transient error: back off instead of spinning.
                tracing::warn!(%local, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "TCP_NODELAY not set");
        }
        let ctx = ConnCtx {
            peer,
            local,
            graceful: signals.graceful.clone(),
            kill: signals.kill.clone(),
            shared: shared.clone(),
        };
        let current = state.load_full();
        let limit = shared.config.listener.max_connections;
        if !matches!(&*current, BindState::Tcp(_)) && connections.active() >= limit {
            connections.reject();
            tracing::debug!(%local, %peer, limit, "connection limit reached; closing");
            drop(stream);
            continue;
        }
        let open = connections.open();
        let socket = state.clone();
        shared.tracker.spawn(async move {
            dispatch(current, socket, stream, ctx).await;
            drop(open);
        });
    }
    tracing::debug!(%local, "stopped accepting");
}

async fn dispatch(
    state: Arc<BindState>,
    socket: Arc<ArcSwap<BindState>>,
    stream: TcpStream,
    ctx: ConnCtx,
) {
    match &*state {
        BindState::Http(_) => crate::http::serve_connection(socket, stream, ctx, None).await,
        BindState::Tls(tls) => {
            crate::tls::serve_connection(tls.clone(), socket, stream, ctx).await;
        }
        BindState::Tcp(tcp) => crate::l4::serve_tcp(tcp.clone(), stream, ctx).await,
        BindState::Udp(_) => {
            tracing::error!("a UDP configuration on a TCP socket; closing the connection");
        }
    }
}
