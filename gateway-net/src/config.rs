//! Limits and timeouts of the data plane. Every limit has a documented default and can be
//! changed by the embedding binary.

use std::time::Duration;

pub use crate::http::HttpLimits;
pub use crate::l4::L4Limits;
pub use crate::tls::TlsLimits;

/// Everything the data plane can be tuned with.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Socket options.
    pub listener: ListenerConfig,
    /// HTTP/1.1, HTTP/2 and upstream limits and timeouts.
    pub http: HttpLimits,
    /// TLS handshake limits.
    pub tls: TlsLimits,
    /// TCP and UDP proxying limits.
    pub l4: L4Limits,
    /// Emit the access log: one `tracing` event per HTTP request at INFO on the target
    /// `access_log` (the embedder's subscriber decides where it goes and in which format).
    /// Default on; a subscriber that filters the target out makes it cost one atomic load.
    pub access_log: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listener: ListenerConfig::default(),
            http: HttpLimits::default(),
            tls: TlsLimits::default(),
            l4: L4Limits::default(),
            access_log: true,
        }
    }
}

/// Socket options of every listener.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// `listen(2)` backlog. Default 1024.
    pub backlog: i32,
    /// How long open connections of a removed listener (or of the whole gateway on shutdown)
    /// may take to finish before they are closed; also how long the TCP and TLS streams and
    /// UDP sessions of a removed route go on. Default 30 s.
    pub drain_timeout: Duration,
    /// Open connections per listening socket of HTTP, HTTPS and TLS listeners (the
    /// listeners sharing a port share it: a cleartext connection's listener is only known
    /// from each request's host). A connection over it is closed at once and counted in
    /// `gateway_downstream_connections_rejected`. TCP listeners have their own limit,
    /// `L4Limits::max_connections_per_listener`. Default 10 000.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            backlog: 1024,
            drain_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}
