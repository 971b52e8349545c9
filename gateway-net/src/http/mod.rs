//! HTTP/1.1, HTTP/2 and h2c serving, routing, filters and forwarding (skeleton: the HTTP
//! data plane issue fills this module).

use std::sync::Arc;

use gateway_core::ir;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::runtime::ListenerIssue;
use crate::shared::{ConnCtx, Shared};

/// HTTP limits and timeouts.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct HttpLimits {}

/// HTTP state that outlives configurations (upstream pools).
#[derive(Debug)]
pub(crate) struct HttpShared {}

impl HttpShared {
    pub(crate) fn new(_limits: &HttpLimits) -> HttpShared {
        HttpShared {}
    }
}

/// The configuration of one HTTP socket (or of the terminated-HTTPS listeners of a TLS one).
#[derive(Debug)]
pub(crate) struct HttpBindState {}

impl HttpBindState {
    pub(crate) fn build(
        _listeners: &[Arc<ir::Listener>],
        _shared: &Arc<Shared>,
    ) -> (HttpBindState, Vec<ListenerIssue>) {
        (HttpBindState {}, Vec::new())
    }
}

/// What TLS negotiated, for requests over terminated TLS.
#[derive(Clone, Debug)]
pub(crate) struct TlsInfo {
    /// SNI the client sent.
    pub(crate) sni: Option<String>,
}

/// Serves HTTP on one connection until it closes or the gateway drains.
pub(crate) async fn serve_connection<IO>(
    _state: Arc<HttpBindState>,
    _io: IO,
    _ctx: ConnCtx,
    _tls: Option<TlsInfo>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
}
