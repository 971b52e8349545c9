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
