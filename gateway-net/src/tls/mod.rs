//! TLS: certificates by SNI, termination, passthrough (skeleton: filled by the data-plane
//! issues).

use std::sync::Arc;

use gateway_core::ir;
use tokio::net::TcpStream;

use crate::runtime::ListenerIssue;
use crate::shared::{ConnCtx, Shared};

/// TLS handshake limits.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsLimits {}

/// The configuration of one TLS socket.
#[derive(Debug)]
pub(crate) struct TlsBindState {}

impl TlsBindState {
    pub(crate) fn build(
        _listeners: &[Arc<ir::Listener>],
        _shared: &Arc<Shared>,
    ) -> (TlsBindState, Vec<ListenerIssue>) {
        (TlsBindState {}, Vec::new())
    }
}

/// Serves one TLS connection.
pub(crate) async fn serve_connection(_state: Arc<TlsBindState>, _stream: TcpStream, _ctx: ConnCtx) {}
