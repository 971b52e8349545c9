//! Prometheus metrics of the data plane.
//!
//! [`Gateway::metrics`](crate::Gateway::metrics) returns a [`Metrics`] handle: an embedding
//! binary either [encodes](Metrics::encode) the Prometheus text format itself (as the admin
//! endpoint's `/metrics` does) or [registers](Metrics::register) the handle as a
//! [`Collector`] in its own [`prometheus_client`] registry, next to its own metrics.
//!
//! # Cost on the request path
//!
//! A request takes no lock and allocates nothing for its metrics: the counters of every route
//! rule and the latency histograms of every listener are created when a configuration is
//! applied, stored next to the routing tables, and a request updates them with relaxed
//! atomic adds. They are read only when scraped. Counters of a rule or listener that is still
//! in the new configuration carry on across `apply`; those of removed ones disappear from
//! the output.
//!
//! # Cardinality
//!
//! Labels are names from the configuration (Gateway, listener, route, rule, bound address)
//! and fixed sets of words (status class, reason, direction), never anything a client sends.
//! The number of series is
//!
//! ```text
//! 5 × R + 38 × L + 2 × B + 4 × T + 13 × U + 63
//! ```
//!
//! where R counts (listener, route, rule) triples of HTTPRoutes and GRPCRoutes, L the HTTP
//! and HTTPS listeners, B the TCP sockets bound, T the TCP listeners and U the UDP sockets.
//! 5 000 single-rule routes on one listener make 25 103 series (a test checks it).
//!
//! The metric names, types and labels are listed in the README.

mod encode;
mod histogram;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use gateway_core::ir::{ListenerId, RouteId};
use gateway_core::model::{ConditionType, ResourceKind};
use gateway_core::status::Status;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

pub(crate) use histogram::Histogram;
/// The crate the metrics are encoded with, for embedders that register [`Metrics`] in their
/// own registry (the versions must match).
pub use prometheus_client;

use crate::shared::Shared;
use crate::tls::HandshakeFailure;

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Response classes, the `class` label of request counters.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Route kinds counted by [`Metrics::record_status`].
const ROUTE_KINDS: [ResourceKind; 5] = [
    ResourceKind::HttpRoute,
    ResourceKind::GrpcRoute,
    ResourceKind::TlsRoute,
    ResourceKind::TcpRoute,
    ResourceKind::UdpRoute,
];

/// Why an HTTP exchange with a backend failed (the `reason` label of
/// `gateway_upstream_failures_total{protocol="http"}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamFailure {
    /// The connection was refused or could not be made.
    ConnectError = 0,
    /// The connection was not made within the connect timeout.
    ConnectTimeout = 1,
    /// No response head within the route's `backendRequest` or `request` timeout.
    Timeout = 2,
    /// The connection failed during the exchange (reset, malformed response).
    ExchangeError = 3,
    /// The backend's certificate was refused (BackendTLSPolicy: untrusted chain, wrong
    /// name, expired).
    TlsCertificate = 4,
    /// The TLS handshake with the backend failed otherwise, or the policy's TLS settings
    /// could not be built.
    TlsHandshake = 5,
}

const UPSTREAM_REASONS: [&str; 6] = [
    "connect_error",
    "connect_timeout",
    "timeout",
    "exchange_error",
    "tls_certificate",
    "tls_handshake",
];

/// Outcome of an `apply` or of a configuration that could not be applied.
const RELOAD_OUTCOMES: [&str; 3] = ["applied", "partial", "rejected"];

/// The counters of one route rule on one listener.
#[derive(Debug)]
pub(crate) struct RuleMetrics {
    kind: &'static str,
    /// `namespace/name` of the route.
    route: String,
    /// The rule's name, or its index.
    rule: String,
    /// Responses by class (1xx to 5xx).
    classes: [AtomicU64; 5],
    /// The listener's histograms.
    pub(crate) listener: Arc<ListenerMetrics>,
}

impl RuleMetrics {
    /// Counts a response by its status class.
    pub(crate) fn count(&self, status: u16) {
        let index = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(counter) = self.classes.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The latency histograms of one HTTP or HTTPS listener.
#[derive(Debug)]
pub(crate) struct ListenerMetrics {
    /// `namespace/name` of the Gateway (or ListenerSet).
    gateway: String,
    listener: String,
    /// Request received → response head ready.
    pub(crate) downstream: Histogram,
    /// Request sent upstream → response head received (the last attempt).
    pub(crate) upstream: Histogram,
}

impl ListenerMetrics {
    fn new(gateway: String, listener: String) -> ListenerMetrics {
        ListenerMetrics {
            gateway,
            listener,
            downstream: Histogram::default(),
            upstream: Histogram::default(),
        }
    }
}

/// Downstream connections of one bound TCP socket.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    active: AtomicU64,
    total: AtomicU64,
    /// Connections closed at once because the socket was at `ListenerConfig::max_connections`.
    rejected: AtomicU64,
    /// The socket was closed; the entry goes once its connections have.
    removed: AtomicBool,
}

impl ConnCounters {
    /// Counts a new connection as open until the guard is dropped.
    pub(crate) fn open(self: &Arc<Self>) -> ConnGuard {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ConnGuard(self.clone())
    }

    /// Connections open now.
    pub(crate) fn active(&self) -> usize {
        usize::try_from(self.active.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Counts a connection closed at once for the connection limit.
    pub(crate) fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// An open downstream connection.
#[derive(Debug)]
pub(crate) struct ConnGuard(Arc<ConnCounters>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A rule within its listener: the route and the rule's name (or index).
type RuleKey = (RouteId, String);

/// The metric handles of one configuration.
#[derive(Debug, Default)]
struct Tables {
    listeners: BTreeMap<ListenerId, Arc<ListenerMetrics>>,
    /// By listener first: a reload of thousands of rules compares each rule's key with the
    /// others of its listener only, and the listener is looked up once for all of them.
    rules: BTreeMap<ListenerId, BTreeMap<RuleKey, Arc<RuleMetrics>>>,
}

#[derive(Debug, Default)]
struct Routing {
    current: Tables,
    /// Being filled by an `apply`; replaces `current` when it ends.
    next: Option<Tables>,
}

/// Gateway-wide metric state, in [`Shared`].
#[derive(Debug)]
pub(crate) struct MetricsState {
    /// Taken at apply time and when scraped, never by a request.
    routing: Mutex<Routing>,
    /// Requests no route took (`404`, malformed requests).
    pub(crate) unrouted: Arc<RuleMetrics>,
    tls_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    http_upstream: [AtomicU64; UPSTREAM_REASONS.len()],
    binds: Mutex<BTreeMap<SocketAddr, Arc<ConnCounters>>>,
    reloads: [AtomicU64; RELOAD_OUTCOMES.len()],
    /// Unix time in milliseconds of the last apply; 0 before the first.
    last_applied_ms: AtomicU64,
    /// (accepted, rejected) per kind of [`ROUTE_KINDS`].
    routes: Mutex<[(u64, u64); ROUTE_KINDS.len()]>,
}

impl Default for MetricsState {
    fn default() -> Self {
        MetricsState {
            routing: Mutex::default(),
            unrouted: Arc::new(RuleMetrics {
                kind: "",
                route: String::new(),
                rule: String::new(),
                classes: Default::default(),
                listener: Arc::new(ListenerMetrics::new(String::new(), String::new())),
            }),
            tls_failures: Default::default(),
            http_upstream: Default::default(),
            binds: Mutex::default(),
            reloads: Default::default(),
            last_applied_ms: AtomicU64::new(0),
            routes: Mutex::default(),
        }
    }
}

impl MetricsState {
    /// Starts collecting the handles of a new configuration.
    pub(crate) fn begin_apply(&self) {
        self.lock_routing().next = Some(Tables::default());
    }

    /// Makes the handles collected since [`begin_apply`](Self::begin_apply) the scraped ones,
    /// and counts the apply.
    pub(crate) fn end_apply(&self, complete: bool) {
        let previous = {
            let mut routing = self.lock_routing();
            routing
                .next
                .take()
                .map(|next| std::mem::replace(&mut routing.current, next))
        };
        // The handles of thousands of rules: freed off the worker.
        crate::shared::drop_off_worker(previous);
        let outcome = if complete { 0 } else { 1 };
        self.count_reload(outcome);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_applied_ms.store(now, Ordering::Relaxed);
    }

    fn count_reload(&self, outcome: usize) {
        if let Some(counter) = self.reloads.get(outcome) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lock_routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The histograms of an HTTP(S) listener: the previous configuration's when it had the
    /// listener, else new ones.
    pub(crate) fn listener(&self, id: &ListenerId) -> Arc<ListenerMetrics> {
        let mut routing = self.lock_routing();
        let Routing { current, next } = &mut *routing;
        let found = next
            .as_ref()
            .and_then(|n| n.listeners.get(id))
            .or_else(|| current.listeners.get(id))
            .cloned()
            .unwrap_or_else(|| {
                let gateway = format!("{}/{}", id.parent.namespace, id.parent.name);
                Arc::new(ListenerMetrics::new(gateway, id.name.clone()))
            });
        let tables = next.as_mut().unwrap_or(current);
        tables.listeners.insert(id.clone(), found.clone());
        found
    }

    /// The counters of the rules of one listener (`(key, route, index, name)` each): the
    /// previous configuration's when it had the same rule on the same listener, else new
    /// ones. `key` is the caller's handle for each, returned with its counters. One lock and
    /// one listener lookup for all of them.
    pub(crate) fn rules<'r, K>(
        &self,
        listener: &ListenerId,
        rules: impl IntoIterator<Item = (K, &'r RouteId, usize, Option<&'r str>)>,
    ) -> Vec<(K, Arc<RuleMetrics>)> {
        let listener_metrics = self.listener(listener);
        let mut routing = self.lock_routing();
        let Routing { current, next } = &mut *routing;
        let mut out = Vec::new();
        let mut kept = BTreeMap::new();
        {
            let in_next = next.as_ref().and_then(|n| n.rules.get(listener));
            let in_current = current.rules.get(listener);
            for (handle, route, index, name) in rules {
                let rule = name.map_or_else(|| index.to_string(), str::to_owned);
                let key = (route.clone(), rule);
                let found = in_next
                    .and_then(|m| m.get(&key))
                    .or_else(|| in_current.and_then(|m| m.get(&key)))
                    .filter(|r| Arc::ptr_eq(&r.listener, &listener_metrics))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(RuleMetrics {
                            kind: route.key.kind.as_str(),
                            route: format!("{}/{}", route.key.namespace, route.key.name),
                            rule: key.1.clone(),
                            classes: Default::default(),
                            listener: listener_metrics.clone(),
                        })
                    });
                out.push((handle, found.clone()));
                kept.insert(key, found);
            }
        }
        let tables = next.as_mut().unwrap_or(current);
        tables
            .rules
            .entry(listener.clone())
            .or_default()
            .extend(kept);
        out
    }

    /// Counts a TLS connection that ended before it was handed on.
    pub(crate) fn tls_failure(&self, reason: HandshakeFailure) {
        if let Some(counter) = self.tls_failures.get(reason as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed HTTP exchange with a backend.
    pub(crate) fn upstream_failure(&self, reason: UpstreamFailure) {
        if let Some(counter) = self.http_upstream.get(reason as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The connection counters of a socket just bound.
    pub(crate) fn register_bind(&self, local: SocketAddr) -> Arc<ConnCounters> {
        let counters = Arc::new(ConnCounters::default());
        let mut binds = self.binds.lock().unwrap_or_else(PoisonError::into_inner);
        binds.insert(local, counters.clone());
        counters
    }

    /// A socket stopped accepting; its series go once its connections have closed.
    pub(crate) fn unregister_bind(&self, local: SocketAddr) {
        let binds = self.binds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = binds.get(&local) {
            counters.removed.store(true, Ordering::Relaxed);
        }
    }
}

/// The metrics of a [`Gateway`](crate::Gateway): a cheap handle to encode them or register
/// them in another registry.
///
/// ```
/// let gateway = gateway_net::Gateway::new(Default::default());
/// let mut text = String::new();
/// gateway.metrics().encode(&mut text).expect("writing to a String");
/// assert!(text.contains("# TYPE gateway_http_requests_total counter"));
/// assert!(text.contains("gateway_ready 0"));
///
/// // Or next to the embedder's own metrics:
/// let mut registry = gateway_net::metrics::prometheus_client::registry::Registry::default();
/// gateway.metrics().register(&mut registry);
/// ```
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(shared: Arc<Shared>) -> Metrics {
        Metrics { shared }
    }

    /// Appends every metric in the Prometheus text format (version 0.0.4, [`CONTENT_TYPE`])
    /// to `out`.
    ///
    /// # Errors
    ///
    /// Only those of the writer (none for a `String`).
    pub fn encode(&self, out: &mut String) -> fmt::Result {
        let mut registry = Registry::default();
        self.register(&mut registry);
        prometheus_client::encoding::prometheus_text::encode(out, &registry)
    }

    /// Adds these metrics to `registry` (with its prefix and labels, if any), to be scraped
    /// together with the embedder's own.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }

    /// Sets `gateway_routes` from the status a compile produced: a route counts as accepted
    /// when at least one of its parents accepts it, else as rejected. Call it after each
    /// compile (the data plane sees only the compiled configuration, not the status).
    pub fn record_status(&self, status: &Status) {
        let mut counts = [(0u64, 0u64); ROUTE_KINDS.len()];
        for route in &status.routes {
            let Some(slot) = ROUTE_KINDS
                .iter()
                .position(|k| *k == route.key.kind)
                .and_then(|i| counts.get_mut(i))
            else {
                continue;
            };
            let accepted = route.status.parents.iter().any(|p| {
                p.conditions
                    .iter()
                    .any(|c| c.is(ConditionType::Accepted) && c.is_true())
            });
            if accepted {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
        *self
            .shared
            .metrics
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counts;
    }

    /// Counts a configuration that could not be applied (it does not load or compile) and
    /// left the previous one serving: `gateway_config_reloads_total{outcome="rejected"}`.
    /// Every [`Gateway::apply`](crate::Gateway::apply) is counted by the gateway itself.
    pub fn record_rejected_config(&self) {
        self.shared.metrics.count_reload(2);
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode::http(&self.shared, &mut encoder)?;
        encode::connections(&self.shared, &mut encoder)?;
        encode::l4(&self.shared, &mut encoder)?;
        encode::config(&self.shared, &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_status() {
        let state = MetricsState::default();
        for status in [100, 101, 200, 204, 301, 404, 499, 500, 503, 599, 0, 999] {
            state.unrouted.count(status);
        }
        let counts: Vec<u64> = state
            .unrouted
            .classes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        // 0 counts as 1xx and 999 as 5xx: never out of bounds.
        assert_eq!(counts, vec![3, 2, 1, 2, 4]);
    }
}
