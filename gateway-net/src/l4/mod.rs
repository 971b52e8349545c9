//! TCP and UDP proxying.
//!
//! A TCP listener forwards each connection to one endpoint of its route's backends
//! ([`proxy_stream`], shared with TLS passthrough and TLS terminate): bytes are copied
//! through user-space buffers (`copy`), or with `L4Limits::tcp_splice` on Linux two plain TCP
//! sockets are joined in the kernel with splice(2) (`splice`). A UDP listener keeps a session per client address,
//! each with its own connected upstream socket ([`run_udp`]).
//!
//! Configuration changes: a connection (or UDP session) reads the route when it starts and
//! keeps the endpoint it was given. When an `apply` leaves a route or a listener out, the
//! streams and sessions it carried are closed once the drain timeout
//! (`ListenerConfig::drain_timeout`) has passed ([`RouteStreams`]); a backend or endpoint
//! removed from a route that stays gets no new connections, and its open ones are not cut
//! (a client that wants the new backend reconnects). A removed UDP listener's socket closes
//! at once: no datagram can reach it any more.

mod copy;
#[cfg(target_os = "linux")]
mod splice;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_core::ir::{self, ListenerId, RouteId};
use tokio_util::sync::CancellationToken;

pub(crate) use tcp::{TcpBindState, proxy_stream, serve_tcp};
pub(crate) use udp::{UdpBindState, run_udp};

/// TCP and UDP limits. Every field documents its default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct L4Limits {
    /// How long connecting to a backend endpoint may take; past it the client connection is
    /// closed. Default 5 s.
    pub connect_timeout: Duration,
    /// A proxied TCP connection that carries no byte in either direction for this long is
    /// closed on both sides. Default 1 h (Envoy's `tcp_proxy` default); `Duration::MAX`
    /// disables it.
    pub tcp_idle_timeout: Duration,
    /// Open connections per TCP listener; a connection over it is closed at once and counted.
    /// The count survives configuration changes. Default 10 000.
    pub max_connections_per_listener: usize,
    /// Copy buffer each direction of a proxied TCP connection starts with. Default 8 KiB.
    pub tcp_buffer_initial: usize,
    /// Size a direction's copy buffer may grow to: it doubles each time a read fills it, so
    /// bulk transfers soon move large chunks per system call while interactive and idle
    /// connections keep small buffers. Default 256 KiB (measured: 64 KiB buffers gave about
    /// half the loopback throughput of 256 KiB ones, see the README's L4 figures); an open
    /// connection holds at most two.
    pub tcp_buffer_max: usize,
    /// Whether a TCP connection between two plain TCP sockets (TCP listeners, TLS
    /// passthrough) is proxied with splice(2) on Linux: the kernel moves the bytes from socket
    /// to socket through a pipe per direction instead of copying them through user-space
    /// buffers (`tcp_buffer_*` then do not apply). It takes about a quarter less of the
    /// proxy's CPU per byte, but on the loopback benchmark one stream was slower (17.7 against
    /// 20.6 Gbit/s, see the README's L4 figures: the endpoints' core did more work), so it is
    /// off by default; turn it on where the proxy's CPU is what runs out. It costs two pipes
    /// (four descriptors) per connection; when they cannot be created the connection is copied
    /// in user space. TLS terminate is always copied. Default `false`; ignored elsewhere than
    /// Linux.
    pub tcp_splice: bool,
    /// A UDP session (one client address) with no datagram in either direction for this long
    /// is ended and its upstream socket closed. Default 60 s.
    pub udp_idle_timeout: Duration,
    /// Sessions per UDP listener; when full, a new client evicts the least recently active
    /// session. Default 10 000.
    pub max_udp_sessions: usize,
    /// Largest datagram forwarded, in either direction; larger ones are dropped and counted.
    /// Default 65 507 (the largest UDP payload over IPv4).
    pub max_datagram_size: usize,
}

impl Default for L4Limits {
    fn default() -> Self {
        L4Limits {
            connect_timeout: Duration::from_secs(5),
            tcp_idle_timeout: Duration::from_secs(3600),
            max_connections_per_listener: 10_000,
            tcp_buffer_initial: 8 * 1024,
            tcp_buffer_max: 256 * 1024,
            tcp_splice: false,
            udp_idle_timeout: Duration::from_secs(60),
            max_udp_sessions: 10_000,
            max_datagram_size: 65_507,
        }
    }
}

/// L4 state of a gateway that outlives configurations.
#[derive(Debug, Default)]
pub(crate) struct L4Shared {
    /// Round-robin position for the choice of backend and endpoint. Gateway-wide because
    /// [`proxy_stream`] is also called by the TLS listeners, which have no L4 state.
    pick: AtomicUsize,
    /// Outcomes of proxied streams (TCP and TLS).
    pub(crate) streams: StreamStats,
    /// Counters and open-connection count of each TCP listener, found by listener id when a
    /// configuration is built, so that the connection limit holds across `apply`.
    tcp: Mutex<HashMap<ListenerId, Arc<TcpStats>>>,
    /// Counters of each running UDP socket.
    udp: Mutex<HashMap<SocketAddr, Arc<UdpStats>>>,
    /// What ends the streams of each (listener, route) of the applied configurations.
    routes: Mutex<RouteRegistry>,
}

/// What ends the open streams (TCP, TLS passthrough and terminate) and UDP sessions of one
/// route on one listener: cancelled a drain timeout after the `apply` that left the route
/// or the listener out.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteStreams {
    pub(crate) gone: CancellationToken,
}

/// The [`RouteStreams`] of every (listener, route), and those an apply in progress has used.
#[derive(Debug, Default)]
struct RouteRegistry {
    live: HashMap<(ListenerId, RouteId), RouteStreams>,
    used: std::collections::HashSet<(ListenerId, RouteId)>,
}

impl L4Shared {
    /// An apply starts: routes its configuration does not use are retired at its end.
    pub(crate) fn begin_apply(&self) {
        self.lock_routes().used.clear();
    }

    /// The [`RouteStreams`] of a route on a listener: the same as the previous
    /// configuration's when it had them, so its open streams live on.
    pub(crate) fn route_streams(&self, listener: &ListenerId, route: &RouteId) -> RouteStreams {
        let key = (listener.clone(), route.clone());
        let mut routes = self.lock_routes();
        let streams = routes.live.entry(key.clone()).or_default().clone();
        routes.used.insert(key);
        streams
    }

    /// An apply ended: the streams of every route it did not use are closed after `drain`.
    pub(crate) fn end_apply(&self, drain: Duration) {
        let retired: Vec<((ListenerId, RouteId), RouteStreams)> = {
            let mut routes = self.lock_routes();
            let RouteRegistry { live, used } = &mut *routes;
            let gone: Vec<_> = live
                .keys()
                .filter(|k| !used.contains(*k))
                .cloned()
                .collect();
            gone.into_iter()
                .filter_map(|k| live.remove_entry(&k))
                .collect()
        };
        for ((listener, route), streams) in retired {
            tracing::debug!(%listener, %route, ?drain, "route removed; its open streams close after the drain timeout");
            // Not tracked: shutdown waits for connections, not for this timer.
            tokio::spawn(async move {
                tokio::time::sleep(drain).await;
                streams.gone.cancel();
            });
        }
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, RouteRegistry> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_pick(&self) -> usize {
        self.pick.fetch_add(1, Ordering::Relaxed)
    }

    /// The counters of a TCP listener, created on first use. Entries nobody holds any more
    /// (listener removed and its connections gone) are dropped here, at apply time.
    fn tcp_stats(&self, id: &ListenerId) -> Arc<TcpStats> {
        let mut map = self.tcp.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|key, stats| key == id || Arc::strong_count(stats) > 1);
        map.entry(id.clone()).or_default().clone()
    }

    fn register_udp(&self, local: SocketAddr) -> Arc<UdpStats> {
        let stats = Arc::new(UdpStats::default());
        let mut map = self.udp.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(local, stats.clone());
        stats
    }

    fn unregister_udp(&self, local: SocketAddr) {
        let mut map = self.udp.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&local);
    }

    /// Counters of every TCP listener still configured or with open connections (for the
    /// metrics exporter).
    pub(crate) fn tcp_listeners(&self) -> Vec<(ListenerId, Arc<TcpStats>)> {
        let mut map = self.tcp.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, stats| Arc::strong_count(stats) > 1);
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Counters of every running UDP socket (for the metrics exporter).
    pub(crate) fn udp_sockets(&self) -> Vec<(SocketAddr, Arc<UdpStats>)> {
        let map = self.udp.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// Counters of one TCP listener.
#[derive(Debug, Default)]
pub(crate) struct TcpStats {
    /// Connections open now (the limit is checked against it).
    pub(crate) active: AtomicUsize,
    /// Connections accepted.
    pub(crate) accepted: AtomicU64,
    /// Connections closed at once because the listener was at its limit.
    pub(crate) rejected_over_limit: AtomicU64,
    /// Connections closed at once because the listener has no route.
    pub(crate) no_route: AtomicU64,
}

/// Outcomes of proxied streams, gateway-wide.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    /// Streams whose backend choice fell on an invalid backendRef.
    pub(crate) rejected_invalid_backend: AtomicU64,
    /// Streams whose chosen backend had no ready endpoint (or no backend at all).
    pub(crate) no_endpoint: AtomicU64,
    /// Connects the endpoint refused or that failed otherwise.
    pub(crate) connect_failed: AtomicU64,
    /// Connects that did not finish within `connect_timeout`.
    pub(crate) connect_timeouts: AtomicU64,
    /// TLS handshakes with backends (BackendTLSPolicy) that failed because the backend's
    /// certificate was refused.
    pub(crate) tls_certificate_failed: AtomicU64,
    /// TLS handshakes with backends that failed otherwise, or backends whose TLS settings
    /// could not be built.
    pub(crate) tls_handshake_failed: AtomicU64,
    /// Streams closed for idleness.
    pub(crate) idle_closed: AtomicU64,
    /// Streams closed by the drain deadline.
    pub(crate) killed: AtomicU64,
    /// Streams closed because their route or listener left the configuration (after the
    /// drain timeout).
    pub(crate) route_removed: AtomicU64,
    /// Streams that ended with an I/O error (reset by either side).
    pub(crate) errors: AtomicU64,
    /// Bytes read from clients and written upstream.
    pub(crate) bytes_upstream: AtomicU64,
    /// Bytes read from upstreams and written to clients.
    pub(crate) bytes_downstream: AtomicU64,
    /// Streams proxied with splice(2).
    pub(crate) spliced: AtomicU64,
    /// Streams that would have been spliced but whose pipes could not be created: copied in
    /// user space.
    pub(crate) splice_fallbacks: AtomicU64,
}

/// Counters of one UDP socket.
#[derive(Debug, Default)]
pub(crate) struct UdpStats {
    /// Datagrams received from clients.
    pub(crate) datagrams_in: AtomicU64,
    /// Datagrams sent back to clients.
    pub(crate) datagrams_out: AtomicU64,
    /// Payload bytes received from clients.
    pub(crate) bytes_in: AtomicU64,
    /// Payload bytes sent back to clients.
    pub(crate) bytes_out: AtomicU64,
    /// Datagrams forwarded to upstreams.
    pub(crate) datagrams_upstream: AtomicU64,
    /// Datagrams over `max_datagram_size`, either direction.
    pub(crate) dropped_too_large: AtomicU64,
    /// Datagrams of clients the route rejects (invalid backend, no endpoint, no route).
    pub(crate) dropped_rejected: AtomicU64,
    /// Datagrams a send failed for (buffer full, upstream refused), either direction.
    pub(crate) dropped_send_failed: AtomicU64,
    /// Errors reported by upstream sockets (ICMP port unreachable and the like).
    pub(crate) upstream_errors: AtomicU64,
    /// Sessions created.
    pub(crate) sessions_created: AtomicU64,
    /// Sessions evicted to make room for a new client.
    pub(crate) sessions_evicted: AtomicU64,
    /// Sessions ended for idleness.
    pub(crate) sessions_expired: AtomicU64,
    /// Sessions ended because their route left the configuration (after the drain timeout).
    pub(crate) sessions_route_removed: AtomicU64,
    /// Sessions open now.
    pub(crate) sessions_active: AtomicUsize,
}

/// The outcome of choosing where a connection or session goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick<'a> {
    /// Connect here, to an endpoint of this backend.
    Endpoint(SocketAddr, &'a ir::ServiceBackend),
    /// The share of an invalid backendRef: reject.
    Invalid(&'a str),
    /// The chosen backend has no ready endpoint, or there is no backend.
    NoEndpoint,
}

/// Chooses a backend by weight and one of its endpoints, from the `n`th position of a
/// round-robin over the weighted slots: with weights 2 and 1, positions go A A B A A B…, and
/// each backend's own positions walk its endpoints in turn.
fn pick(backends: &[ir::WeightedBackend], n: usize) -> Pick<'_> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return Pick::NoEndpoint;
    }
    let n = n as u64;
    let slot = n % total;
    let round = n / total;
    let mut start = 0u64;
    for b in backends {
        let weight = u64::from(b.weight);
        if slot < start + weight {
            return match &b.backend {
                ir::Backend::Invalid { reason } => Pick::Invalid(reason),
                ir::Backend::Service(s) => {
                    let len = s.endpoints.len() as u64;
                    if len == 0 {
                        return Pick::NoEndpoint;
                    }
                    // This backend's own turn count, so its endpoints rotate evenly.
                    let turn = round * weight + (slot - start);
                    let index = usize::try_from(turn % len).unwrap_or(0);
                    s.endpoints
                        .get(index)
                        .map_or(Pick::NoEndpoint, |e| Pick::Endpoint(*e, s))
                }
            };
        }
        start += weight;
    }
    Pick::NoEndpoint
}

/// The route of an L4 socket: the first listener's, as one TCP or UDP listener serves a port.
/// Further listeners on the same socket are reported and not served.
fn socket_route(listeners: &[Arc<ir::Listener>], kind: &str, shared: &L4Shared) -> SocketRoute {
    let issues = listeners
        .iter()
        .skip(1)
        .map(|l| crate::report::ListenerIssue {
            listener: l.id.clone(),
            kind: crate::report::IssueKind::PortInUse,
            message: format!("another {kind} listener already serves this port"),
        })
        .collect();
    let first = listeners.first();
    let route = first
        .and_then(|l| Some((l, l.l4_route.as_ref()?)))
        .map(|(l, r)| {
            (
                Arc::from(r.backends.as_slice()),
                shared.route_streams(&l.id, &r.id),
            )
        });
    SocketRoute {
        listener: first.map(|l| l.id.clone()),
        route,
        issues,
    }
}

/// What an L4 socket serves: its listener and that listener's route.
struct SocketRoute {
    listener: Option<ListenerId>,
    /// The route's backends and what ends its streams; `None` without a route.
    route: Option<(Arc<[ir::WeightedBackend]>, RouteStreams)>,
    issues: Vec<crate::report::ListenerIssue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::ir::{AppProtocol, Backend, ServiceBackend, WeightedBackend};

    fn service(weight: u32, endpoints: &[&str]) -> WeightedBackend {
        WeightedBackend {
            weight,
            backend: Backend::Service(ServiceBackend {
                service: gateway_core::model::ObjectKey::new(
                    gateway_core::model::ResourceKind::Service,
                    "ns",
                    "svc",
                ),
                port: 80,
                protocol: AppProtocol::Tcp,
                endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
                tls: None,
            }),
            filters: Vec::new(),
        }
    }

    #[test]
    fn weights_and_endpoints_rotate() {
        let backends = vec![
            service(2, &["127.0.0.1:1", "127.0.0.1:2"]),
            WeightedBackend {
                weight: 1,
                backend: Backend::Invalid {
                    reason: "gone".into(),
                },
                filters: Vec::new(),
            },
        ];
        let picks: Vec<_> = (0..6).map(|n| pick(&backends, n)).collect();
        let Backend::Service(s) = &backends[0].backend else {
            unreachable!()
        };
        let a1 = Pick::Endpoint("127.0.0.1:1".parse().unwrap(), s);
        let a2 = Pick::Endpoint("127.0.0.1:2".parse().unwrap(), s);
        assert_eq!(
            picks,
            vec![a1, a2, Pick::Invalid("gone"), a1, a2, Pick::Invalid("gone")]
        );
        assert_eq!(pick(&[], 3), Pick::NoEndpoint);
        assert_eq!(pick(&[service(1, &[])], 0), Pick::NoEndpoint);
    }
}
