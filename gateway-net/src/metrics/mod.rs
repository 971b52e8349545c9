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

mod histogram;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use gateway_core::ir::{ListenerId, RouteId};
use gateway_core::model::ResourceKind;
use gateway_core::status::Status;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
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
}

const UPSTREAM_REASONS: [&str; 4] = [
    "connect_error",
    "connect_timeout",
    "timeout",
    "exchange_error",
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

type RuleKey = (ListenerId, RouteId, String);

/// The metric handles of one configuration.
#[derive(Debug, Default)]
struct Tables {
    listeners: BTreeMap<ListenerId, Arc<ListenerMetrics>>,
    rules: BTreeMap<RuleKey, Arc<RuleMetrics>>,
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

    /// The counters of one rule of a route on a listener, kept from the previous
    /// configuration when it had the same rule.
    pub(crate) fn rule(
        &self,
        listener: &ListenerId,
        route: &RouteId,
        index: usize,
        name: Option<&str>,
    ) -> Arc<RuleMetrics> {
        let listener_metrics = self.listener(listener);
        let rule = name.map_or_else(|| index.to_string(), str::to_owned);
        let key = (listener.clone(), route.clone(), rule);
        let mut routing = self.lock_routing();
        let Routing { current, next } = &mut *routing;
        let found = next
            .as_ref()
            .and_then(|n| n.rules.get(&key))
            .or_else(|| current.rules.get(&key))
            .filter(|r| Arc::ptr_eq(&r.listener, &listener_metrics))
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(RuleMetrics {
                    kind: route.key.kind.as_str(),
                    route: format!("{}/{}", route.key.namespace, route.key.name),
                    rule: key.2.clone(),
                    classes: Default::default(),
                    listener: listener_metrics,
                })
            });
        let tables = next.as_mut().unwrap_or(current);
        tables.rules.insert(key, found.clone());
        found
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
                    .any(|c| c.type_ == "Accepted" && c.is_true())
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
        encode_http(&self.shared, &mut encoder)?;
        encode_connections(&self.shared, &mut encoder)?;
        encode_l4(&self.shared, &mut encoder)?;
        encode_config(&self.shared, &mut encoder)
    }
}

fn counter(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, value: u64) -> fmt::Result {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

fn gauge(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, value: i64) -> fmt::Result {
    m.encode_family(labels)?.encode_gauge(&value)
}

/// One metric family: its descriptor, then one sample per row of labels and value (a counter,
/// or a gauge for `MetricType::Gauge`).
fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let gauge_family = matches!(kind, MetricType::Gauge);
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        if gauge_family {
            gauge(&mut m, &labels, signed(value))?;
        } else {
            counter(&mut m, &labels, value)?;
        }
    }
    Ok(())
}

/// The rows of a UDP family: per socket, a `bind` label and `label` naming each value.
fn per_socket<'a, const N: usize>(
    udp: &'a [(String, Arc<crate::l4::UdpStats>)],
    label: &'static str,
    values: impl Fn(&crate::l4::UdpStats) -> [(&'static str, u64); N] + 'a,
) -> impl Iterator<Item = ([(&'static str, &'a str); 2], u64)> + 'a {
    udp.iter().flat_map(move |(bind, s)| {
        values(s).map(|(word, value)| ([("bind", bind.as_str()), (label, word)], value))
    })
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn encode_http(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let state = &shared.metrics;
    let routing = state.lock_routing();
    let rules = std::iter::once(&state.unrouted).chain(routing.current.rules.values());
    let mut m = encoder.encode_descriptor(
        "gateway_http_requests",
        "HTTP and gRPC requests by the route rule that took them and the response class; \
         requests no route took have empty gateway, listener, kind, route and rule",
        None,
        MetricType::Counter,
    )?;
    for r in rules {
        for (class, count) in CLASSES.iter().zip(&r.classes) {
            let labels = [
                ("gateway", r.listener.gateway.as_str()),
                ("listener", r.listener.listener.as_str()),
                ("kind", r.kind),
                ("route", r.route.as_str()),
                ("rule", r.rule.as_str()),
                ("class", *class),
            ];
            counter(&mut m, &labels, load(count))?;
        }
    }
    let listeners =
        std::iter::once(&state.unrouted.listener).chain(routing.current.listeners.values());
    let mut m = encoder.encode_descriptor(
        "gateway_http_request_duration_seconds",
        "Time from a request's head to its response head, by listener",
        None,
        MetricType::Histogram,
    )?;
    for l in listeners {
        let labels = [
            ("gateway", l.gateway.as_str()),
            ("listener", l.listener.as_str()),
        ];
        l.downstream.encode(&mut m.encode_family(&labels)?)?;
    }
    let mut m = encoder.encode_descriptor(
        "gateway_http_upstream_duration_seconds",
        "Time from sending a request to a backend to its response head (last attempt), by listener",
        None,
        MetricType::Histogram,
    )?;
    for l in routing.current.listeners.values() {
        let labels = [
            ("gateway", l.gateway.as_str()),
            ("listener", l.listener.as_str()),
        ];
        l.upstream.encode(&mut m.encode_family(&labels)?)?;
    }
    drop(routing);

    let mut m = encoder.encode_descriptor(
        "gateway_upstream_failures",
        "Failed connections and exchanges with backends (HTTP per attempt; TCP and TLS streams)",
        None,
        MetricType::Counter,
    )?;
    for (reason, count) in UPSTREAM_REASONS.iter().zip(&state.http_upstream) {
        counter(
            &mut m,
            &[("protocol", "http"), ("reason", *reason)],
            load(count),
        )?;
    }
    let streams = &shared.l4.streams;
    counter(
        &mut m,
        &[("protocol", "tcp"), ("reason", "connect_error")],
        load(&streams.connect_failed),
    )?;
    counter(
        &mut m,
        &[("protocol", "tcp"), ("reason", "connect_timeout")],
        load(&streams.connect_timeouts),
    )?;

    let mut m = encoder.encode_descriptor(
        "gateway_tls_handshake_failures",
        "TLS connections closed before they were handed to HTTP or a backend, by reason",
        None,
        MetricType::Counter,
    )?;
    for (reason, count) in HandshakeFailure::ALL.iter().zip(&state.tls_failures) {
        counter(&mut m, &[("reason", reason.as_str())], load(count))?;
    }
    Ok(())
}

fn encode_connections(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let binds: Vec<(String, Arc<ConnCounters>)> = {
        let mut binds = shared
            .metrics
            .binds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        binds.retain(|_, c| !c.removed.load(Ordering::Relaxed) || load(&c.active) > 0);
        binds
            .iter()
            .map(|(a, c)| (a.to_string(), c.clone()))
            .collect()
    };
    family(
        encoder,
        "gateway_downstream_connections_active",
        "Client connections open now, by bound TCP socket",
        MetricType::Gauge,
        binds
            .iter()
            .map(|(bind, c)| ([("bind", bind.as_str())], load(&c.active))),
    )?;
    family(
        encoder,
        "gateway_downstream_connections",
        "Client connections accepted, by bound TCP socket",
        MetricType::Counter,
        binds
            .iter()
            .map(|(bind, c)| ([("bind", bind.as_str())], load(&c.total))),
    )?;
    family(
        encoder,
        "gateway_downstream_connections_rejected",
        "Client connections of HTTP and TLS sockets closed at once: the socket was at its \
         connection limit",
        MetricType::Counter,
        binds
            .iter()
            .map(|(bind, c)| ([("bind", bind.as_str())], load(&c.rejected))),
    )
}

fn encode_l4(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let tcp: Vec<_> = shared
        .l4
        .tcp_listeners()
        .into_iter()
        .map(|(id, stats)| {
            (
                format!("{}/{}", id.parent.namespace, id.parent.name),
                id.name,
                stats,
            )
        })
        .collect();
    let listener = |gateway: &'_ String, listener: &'_ String| {
        [("gateway", gateway.clone()), ("listener", listener.clone())]
    };
    family(
        encoder,
        "gateway_tcp_connections",
        "Connections accepted by TCP listeners",
        MetricType::Counter,
        tcp.iter()
            .map(|(g, l, s)| (listener(g, l), load(&s.accepted))),
    )?;
    family(
        encoder,
        "gateway_tcp_connections_active",
        "Connections of TCP listeners open now",
        MetricType::Gauge,
        tcp.iter().map(|(g, l, s)| {
            let active = u64::try_from(s.active.load(Ordering::Relaxed)).unwrap_or(u64::MAX);
            (listener(g, l), active)
        }),
    )?;
    family(
        encoder,
        "gateway_tcp_connections_rejected",
        "Connections of TCP listeners closed at once: over the connection limit, or no TCPRoute",
        MetricType::Counter,
        tcp.iter().flat_map(|(g, l, s)| {
            [
                ("over_limit", &s.rejected_over_limit),
                ("no_route", &s.no_route),
            ]
            .map(|(reason, value)| {
                let [gateway, listener] = listener(g, l);
                (
                    [gateway, listener, ("reason", reason.to_owned())],
                    load(value),
                )
            })
        }),
    )?;

    let streams = &shared.l4.streams;
    family(
        encoder,
        "gateway_tcp_bytes",
        "Bytes proxied by TCP, TLS passthrough and TLS terminate streams, counted when a stream \
         ends: upstream = client to backend, downstream = backend to client",
        MetricType::Counter,
        [
            ("upstream", &streams.bytes_upstream),
            ("downstream", &streams.bytes_downstream),
        ]
        .map(|(direction, value)| ([("direction", direction)], load(value))),
    )?;
    family(
        encoder,
        "gateway_tcp_splice",
        "TCP and TLS passthrough streams with L4Limits::tcp_splice on (Linux): spliced in the \
         kernel, or copied in user space because their pipes could not be created",
        MetricType::Counter,
        [
            ("spliced", &streams.spliced),
            ("fallback", &streams.splice_fallbacks),
        ]
        .map(|(outcome, value)| ([("outcome", outcome)], load(value))),
    )?;
    family(
        encoder,
        "gateway_tcp_streams_closed",
        "TCP and TLS streams to a backend closed by the gateway: idle timeout, drain deadline, \
         route removed (after the drain timeout), I/O error",
        MetricType::Counter,
        [
            ("idle", &streams.idle_closed),
            ("drain", &streams.killed),
            ("route_removed", &streams.route_removed),
            ("error", &streams.errors),
        ]
        .map(|(reason, value)| ([("reason", reason)], load(value))),
    )?;
    family(
        encoder,
        "gateway_tcp_streams_rejected",
        "TCP and TLS streams closed before connecting: the chosen backend is invalid or has no \
         ready endpoint",
        MetricType::Counter,
        [
            ("invalid_backend", &streams.rejected_invalid_backend),
            ("no_endpoint", &streams.no_endpoint),
        ]
        .map(|(reason, value)| ([("reason", reason)], load(value))),
    )?;

    let udp: Vec<_> = shared
        .l4
        .udp_sockets()
        .into_iter()
        .map(|(a, s)| (a.to_string(), s))
        .collect();
    family(
        encoder,
        "gateway_udp_datagrams",
        "Datagrams of UDP sockets: received from clients, forwarded to backends, sent to clients",
        MetricType::Counter,
        per_socket(&udp, "direction", |s| {
            [
                ("received", load(&s.datagrams_in)),
                ("forwarded", load(&s.datagrams_upstream)),
                ("sent", load(&s.datagrams_out)),
            ]
        }),
    )?;
    family(
        encoder,
        "gateway_udp_bytes",
        "Payload bytes of UDP sockets: received from clients, sent to clients",
        MetricType::Counter,
        per_socket(&udp, "direction", |s| {
            [
                ("received", load(&s.bytes_in)),
                ("sent", load(&s.bytes_out)),
            ]
        }),
    )?;
    family(
        encoder,
        "gateway_udp_datagrams_dropped",
        "Datagrams of UDP sockets dropped: too large, rejected by the route, send failed",
        MetricType::Counter,
        per_socket(&udp, "reason", |s| {
            [
                ("too_large", load(&s.dropped_too_large)),
                ("rejected", load(&s.dropped_rejected)),
                ("send_failed", load(&s.dropped_send_failed)),
            ]
        }),
    )?;
    family(
        encoder,
        "gateway_udp_upstream_errors",
        "Errors reported by the upstream sockets of UDP sessions (ICMP unreachable and the like)",
        MetricType::Counter,
        udp.iter()
            .map(|(bind, s)| ([("bind", bind.as_str())], load(&s.upstream_errors))),
    )?;
    family(
        encoder,
        "gateway_udp_sessions",
        "UDP sessions (client addresses) created",
        MetricType::Counter,
        udp.iter()
            .map(|(bind, s)| ([("bind", bind.as_str())], load(&s.sessions_created))),
    )?;
    family(
        encoder,
        "gateway_udp_sessions_active",
        "UDP sessions open now",
        MetricType::Gauge,
        udp.iter().map(|(bind, s)| {
            let active =
                u64::try_from(s.sessions_active.load(Ordering::Relaxed)).unwrap_or(u64::MAX);
            ([("bind", bind.as_str())], active)
        }),
    )?;
    family(
        encoder,
        "gateway_udp_sessions_ended",
        "UDP sessions ended: evicted for a new client when full, expired when idle, or their route \
         removed (after the drain timeout)",
        MetricType::Counter,
        per_socket(&udp, "reason", |s| {
            [
                ("evicted", load(&s.sessions_evicted)),
                ("expired", load(&s.sessions_expired)),
                ("route_removed", load(&s.sessions_route_removed)),
            ]
        }),
    )
}

fn encode_config(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let state = &shared.metrics;
    let mut m = encoder.encode_descriptor(
        "gateway_config_reloads",
        "Configurations: applied in full, applied with listeners not served, rejected (the \
         previous one kept serving)",
        None,
        MetricType::Counter,
    )?;
    for (outcome, count) in RELOAD_OUTCOMES.iter().zip(&state.reloads) {
        counter(&mut m, &[("outcome", *outcome)], load(count))?;
    }
    let mut m = encoder.encode_descriptor(
        "gateway_config_last_reload_success_timestamp_seconds",
        "Unix time of the last applied configuration (0 before the first)",
        None,
        MetricType::Gauge,
    )?;
    let seconds = load(&state.last_applied_ms) as f64 / 1000.0;
    m.encode_gauge(&seconds)?;
    let routes = *state.routes.lock().unwrap_or_else(PoisonError::into_inner);
    let mut m = encoder.encode_descriptor(
        "gateway_routes",
        "Routes of the last compiled configuration: accepted by at least one parent, or by none",
        None,
        MetricType::Gauge,
    )?;
    for (kind, (accepted, rejected)) in ROUTE_KINDS.iter().zip(routes) {
        for (state, value) in [("accepted", accepted), ("rejected", rejected)] {
            gauge(
                &mut m,
                &[("kind", kind.as_str()), ("state", state)],
                signed(value),
            )?;
        }
    }
    let mut m = encoder.encode_descriptor(
        "gateway_ready",
        "1 when a configuration is applied, every listener is served and the gateway is not \
         draining",
        None,
        MetricType::Gauge,
    )?;
    m.encode_gauge(&i64::from(shared.readiness.get().is_ready()))
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
        let counts: Vec<u64> = state.unrouted.classes.iter().map(load).collect();
        // 0 counts as 1xx and 999 as 5xx: never out of bounds.
        assert_eq!(counts, vec![3, 2, 1, 2, 4]);
    }
}
