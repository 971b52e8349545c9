//! The [`Gateway`] handle: apply a configuration, report what is bound, drain and shut down.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use gateway_core::ir::{self, BindProtocol, Ir, ListenerId, Transport};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::listener::{self, BindSignals};
use crate::report::{ApplyReport, BindFailure, ListenerIssue};
use crate::shared::Shared;

/// The configuration of one socket, swapped atomically on apply.
#[derive(Debug)]
pub(crate) enum BindState {
    /// Cleartext HTTP/1.1 and h2c.
    Http(Arc<crate::http::HttpBindState>),
    /// TLS, dispatched by SNI.
    Tls(Arc<crate::tls::TlsBindState>),
    /// Raw TCP.
    Tcp(Arc<crate::l4::TcpBindState>),
    /// UDP datagrams.
    Udp(Arc<crate::l4::UdpBindState>),
}

impl BindState {
    /// Builds the state of a bind; problems with single listeners (a certificate rustls
    /// refuses) are reported and those listeners left out.
    pub(crate) fn build(bind: &ir::Bind, shared: &Arc<Shared>) -> (BindState, Vec<ListenerIssue>) {
        match bind.protocol {
            BindProtocol::Http => {
                let state = crate::http::HttpBindState::build(&bind.listeners, shared);
                (BindState::Http(Arc::new(state)), Vec::new())
            }
            BindProtocol::Tls => {
                let (state, issues) = crate::tls::TlsBindState::build(&bind.listeners, shared);
                (BindState::Tls(Arc::new(state)), issues)
            }
            BindProtocol::Tcp => {
                let (state, issues) = crate::l4::TcpBindState::build(&bind.listeners, shared);
                (BindState::Tcp(Arc::new(state)), issues)
            }
            BindProtocol::Udp => {
                let (state, issues) = crate::l4::UdpBindState::build(&bind.listeners, shared);
                (BindState::Udp(Arc::new(state)), issues)
            }
        }
    }
}

/// A bind of the Ir with its state and what could not be served of it.
type Built = (ir::Bind, BindState, Vec<ListenerIssue>);

/// A socket the gateway serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundSocket {
    /// The address the Ir asked for.
    pub requested: SocketAddr,
    /// The address bound (differs when port 0 was asked for).
    pub local: SocketAddr,
    /// The transport.
    pub transport: Transport,
    /// The protocol currently served.
    pub protocol: BindProtocol,
    /// The listeners currently served on it.
    pub listeners: Vec<ListenerId>,
}

/// Whether a gateway should receive traffic (what the admin endpoint's `/ready` answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// A configuration is applied, every listener in it is served, and the gateway is not
    /// draining.
    Ready,
    /// No configuration has been applied yet.
    NotApplied,
    /// The last apply left something out ([`ApplyReport::is_complete`] is false): a socket
    /// could not be bound or a listener could not be served.
    Incomplete,
    /// [`Gateway::shutdown`] has started.
    Draining,
}

impl Readiness {
    /// Whether traffic should be sent to this gateway.
    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }

    /// Why not, for people (or `"ready"`).
    pub fn reason(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::NotApplied => "no configuration applied yet",
            Readiness::Incomplete => "not every listener is served (see the apply report)",
            Readiness::Draining => "draining",
        }
    }
}

struct Running {
    protocol: BindProtocol,
    local: SocketAddr,
    listeners: Vec<ListenerId>,
    state: Arc<ArcSwap<BindState>>,
    signals: BindSignals,
}

/// A running gateway. Cheap to clone; every clone controls the same sockets.
///
/// ```no_run
/// # async fn demo(ir: gateway_core::ir::Ir) {
/// use gateway_net::{Gateway, GatewayConfig};
/// let gateway = Gateway::new(GatewayConfig::default());
/// let report = gateway.apply(&ir).await;
/// assert!(report.is_complete(), "{report:?}");
/// // ... later, on SIGTERM:
/// gateway.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    running: Arc<Mutex<BTreeMap<(SocketAddr, Transport), Running>>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with no sockets yet. Must be created inside a tokio runtime's context only
    /// when `apply` is called: sockets are registered with the runtime that runs `apply`.
    pub fn new(config: GatewayConfig) -> Gateway {
        Gateway {
            shared: Shared::new(config),
            running: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Makes the gateway serve `ir`: binds new sockets, stops accepting on sockets the Ir no
    /// longer has (their connections drain within `ListenerConfig::drain_timeout`), and swaps
    /// the configuration of the others without touching their sockets or connections.
    ///
    /// When it returns, every request whose head arrives from then on is served by `ir`,
    /// on new and open connections alike; requests already in flight finish on the
    /// configuration they started with. Upstream connections to endpoints `ir` no longer
    /// has are closed (idle ones now, busy ones when their exchange ends). TCP and TLS
    /// streams and UDP sessions of a route or listener `ir` no longer has are closed after
    /// the drain timeout; a backend removed from a route that stays gets no new streams but
    /// does not cut open ones.
    ///
    /// Routers and TLS configurations are built on a blocking thread (`spawn_blocking`), so
    /// a large configuration does not hold up the workers that serve traffic. Pass the
    /// returned report to [`ApplyReport::merge_into`] before showing compile's status.
    pub async fn apply(&self, ir: &Ir) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut running = self.running.lock().await;
        self.start_background();
        self.shared.metrics.begin_apply();
        self.shared.l4.begin_apply();
        let (built, endpoints) = self.build_states(ir).await;
        // New endpoints get pool entries and removed ones lose theirs before any request
        // can see the new configuration.
        self.shared.http.pool.keep_endpoints(&endpoints);
        let mut wanted = std::collections::BTreeSet::new();
        for (bind, state, issues) in built {
            let key = (bind.socket_addr(), bind.protocol.transport());
            wanted.insert(key);
            report.listener_issues.extend(issues);
            let listeners: Vec<ListenerId> = bind.listeners.iter().map(|l| l.id.clone()).collect();
            if let Some(existing) = running.get_mut(&key) {
                existing.state.store(Arc::new(state));
                existing.protocol = bind.protocol;
                existing.listeners = listeners;
                continue;
            }
            match self.start(&bind, state) {
                Ok((local, state, signals)) => {
                    tracing::info!(address = %local, protocol = ?bind.protocol, "listening");
                    running.insert(
                        key,
                        Running {
                            protocol: bind.protocol,
                            local,
                            listeners,
                            state,
                            signals,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(address = %key.0, %error, "cannot bind");
                    report.bind_failures.push(BindFailure {
                        address: key.0,
                        listeners,
                        message: error.to_string(),
                    });
                }
            }
        }
        let removed: Vec<_> = running
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in removed {
            if let Some(gone) = running.remove(&key) {
                tracing::info!(address = %gone.local, "listener removed; draining its connections");
                self.shared.metrics.unregister_bind(gone.local);
                self.drain(gone.signals);
            }
        }
        // After the swap: streams of routes the new states no longer hold are told to end.
        self.shared
            .l4
            .end_apply(self.shared.config.listener.drain_timeout);
        self.shared.metrics.end_apply(report.is_complete());
        self.shared.readiness.applied(report.is_complete());
        report
    }

    /// The state of every bind of `ir`, and the upstream endpoints it uses, built on a
    /// blocking thread.
    async fn build_states(
        &self,
        ir: &Ir,
    ) -> (Vec<Built>, HashSet<crate::http::upstream::UpstreamKey>) {
        let build = |ir: Ir, shared: &Arc<Shared>| {
            let built: Vec<Built> = ir
                .binds
                .iter()
                .map(|bind| {
                    let (state, issues) = BindState::build(bind, shared);
                    (bind.clone(), state, issues)
                })
                .collect();
            // After the states: they hold the TLS origins the pool keys name.
            let endpoints = crate::http::upstream_endpoints(&ir, &shared.origins);
            (built, endpoints)
        };
        // Binds hold their listeners by `Arc`: the copy is shallow.
        let copy = ir.clone();
        let shared = self.shared.clone();
        let blocking = tokio::task::spawn_blocking(move || build(copy, &shared));
        match blocking.await {
            Ok(built) => built,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down and refuses blocking work: build here.
            Err(_) => build(ir.clone(), &self.shared),
        }
    }

    /// Starts the tasks that run for the gateway's whole life (the upstream idle reaper),
    /// once, inside the runtime that runs `apply`.
    fn start_background(&self) {
        if self.shared.background_started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(crate::http::reap_idle_upstreams(Arc::downgrade(
            &self.shared,
        )));
    }

    fn start(
        &self,
        bind: &ir::Bind,
        state: BindState,
    ) -> std::io::Result<(SocketAddr, Arc<ArcSwap<BindState>>, BindSignals)> {
        let state = Arc::new(ArcSwap::from_pointee(state));
        let signals = BindSignals {
            graceful: CancellationToken::new(),
            kill: CancellationToken::new(),
        };
        let address = bind.socket_addr();
        let local = match bind.protocol.transport() {
            Transport::Tcp => {
                let socket = listener::bind_tcp(address, self.shared.config.listener.backlog)?;
                let local = socket.local_addr()?;
                let connections = self.shared.metrics.register_bind(local);
                self.shared.tracker.spawn(listener::accept_loop(
                    socket,
                    state.clone(),
                    signals.clone(),
                    self.shared.clone(),
                    connections,
                ));
                local
            }
            Transport::Udp => {
                let socket = listener::bind_udp(address)?;
                let local = socket.local_addr()?;
                self.shared.tracker.spawn(crate::l4::run_udp(
                    socket,
                    state.clone(),
                    signals.clone(),
                    self.shared.clone(),
                ));
                local
            }
        };
        Ok((local, state, signals))
    }

    /// Stops accepting and asks connections to finish; closes what is left after the drain
    /// deadline.
    fn drain(&self, signals: BindSignals) {
        signals.graceful.cancel();
        let deadline = self.shared.config.listener.drain_timeout;
        // Not tracked: shutdown must not wait for this timer, only for connections.
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            signals.kill.cancel();
        });
    }

    /// The sockets currently served.
    pub async fn bound(&self) -> Vec<BoundSocket> {
        let running = self.running.lock().await;
        running
            .iter()
            .map(|((requested, transport), r)| BoundSocket {
                requested: *requested,
                local: r.local,
                transport: *transport,
                protocol: r.protocol,
                listeners: r.listeners.clone(),
            })
            .collect()
    }

    /// The gateway's metrics, to encode or to register in the embedder's registry.
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(self.shared.clone())
    }

    /// Whether the gateway should receive traffic: a configuration is applied, every
    /// listener of it is served, and [`shutdown`](Gateway::shutdown) has not started.
    pub fn readiness(&self) -> Readiness {
        self.shared.readiness.get()
    }

    /// Stops accepting on every socket, lets open connections finish within the drain
    /// deadline, then closes the rest and returns when every connection task has ended.
    /// [`readiness`](Gateway::readiness) is [`Readiness::Draining`] from the start of the
    /// call on.
    pub async fn shutdown(&self) {
        self.shared.readiness.draining();
        let mut running = self.running.lock().await;
        let deadline = self.shared.config.listener.drain_timeout;
        let signals: Vec<BindSignals> = std::mem::take(&mut *running)
            .into_values()
            .map(|r| {
                self.shared.metrics.unregister_bind(r.local);
                r.signals
            })
            .collect();
        for s in &signals {
            s.graceful.cancel();
        }
        // Idle upstream connections end now, busy ones when their exchange does; none goes
        // back to the pool.
        self.shared.stopping.cancel();
        self.shared.http.pool.keep_endpoints(&Default::default());
        self.shared.tracker.close();
        if tokio::time::timeout(deadline, self.shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "drain deadline passed; closing remaining connections"
            );
            for s in &signals {
                s.kill.cancel();
            }
            // Connections close promptly once killed; do not wait forever for a stuck one.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.tracker.wait()).await;
        }
    }
}
