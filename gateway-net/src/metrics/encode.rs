//! The Prometheus text encoding of the metrics' state: families, labels and values, read at
//! scrape time from what [`super::MetricsState`] and the routing tables hold.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{CLASSES, ConnCounters, RELOAD_OUTCOMES, ROUTE_KINDS, UPSTREAM_REASONS};
use crate::shared::Shared;
use crate::tls::HandshakeFailure;

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

pub(super) fn http(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let state = &shared.metrics;
    let routing = state.lock_routing();
    let rules = std::iter::once(&state.unrouted)
        .chain(routing.current.rules.values().flat_map(BTreeMap::values));
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
    counter(
        &mut m,
        &[("protocol", "tcp"), ("reason", "tls_certificate")],
        load(&streams.tls_certificate_failed),
    )?;
    counter(
        &mut m,
        &[("protocol", "tcp"), ("reason", "tls_handshake")],
        load(&streams.tls_handshake_failed),
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

pub(super) fn connections(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
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

pub(super) fn l4(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
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

pub(super) fn config(shared: &Shared, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
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
