//! State shared by every connection: configuration, upstream pools, shutdown signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;

/// Shared by every socket and connection of one [`Gateway`](crate::Gateway).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    /// Every connection task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Upstream connection pools and other HTTP state that outlives configurations.
    pub(crate) http: crate::http::HttpShared,
    /// TCP/UDP state that outlives configurations (connection counts, counters).
    pub(crate) l4: crate::l4::L4Shared,
    /// TLS client settings of backends, shared by configurations that keep them.
    pub(crate) origins: crate::tls::origin::Origins,
    /// Counters and handles for the metrics exporter.
    pub(crate) metrics: crate::metrics::MetricsState,
    /// What `/ready` answers.
    pub(crate) readiness: ReadyState,
    /// Cancelled when [`Gateway::shutdown`](crate::Gateway::shutdown) starts.
    pub(crate) stopping: CancellationToken,
    /// Whether the gateway-wide background tasks run (started by the first apply).
    pub(crate) background_started: AtomicBool,
}

impl Shared {
    pub(crate) fn new(config: GatewayConfig) -> Arc<Shared> {
        let tracker = TaskTracker::new();
        let http = crate::http::HttpShared::new(&config.http, tracker.clone());
        Arc::new(Shared {
            config,
            tracker,
            http,
            l4: crate::l4::L4Shared::default(),
            origins: crate::tls::origin::Origins::default(),
            metrics: crate::metrics::MetricsState::default(),
            readiness: ReadyState::default(),
            stopping: CancellationToken::new(),
            background_started: AtomicBool::new(false),
        })
    }
}

/// Drops `value` on a blocking thread when called inside a Tokio runtime, else here.
///
/// A configuration of thousands of routes takes tens of milliseconds to free; whichever task
/// lets go of it last (often the last request that was served with it) must not stall the
/// worker thread it runs on.
pub(crate) fn drop_off_worker<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}

/// What a connection knows about itself.
#[derive(Clone, Debug)]
pub(crate) struct ConnCtx {
    /// The client.
    pub(crate) peer: SocketAddr,
    /// The local address the client connected to.
    pub(crate) local: SocketAddr,
    /// Cancelled when the connection should finish what is in flight and close (listener
    /// removed, gateway shutting down): HTTP sends GOAWAY / `Connection: close`.
    pub(crate) graceful: CancellationToken,
    /// Cancelled when the drain deadline has passed: close now.
    pub(crate) kill: CancellationToken,
    /// Gateway-wide state.
    pub(crate) shared: Arc<Shared>,
}

/// Inputs of [`Readiness`](crate::Readiness).
#[derive(Debug, Default)]
pub(crate) struct ReadyState {
    applied: AtomicBool,
    complete: AtomicBool,
    draining: AtomicBool,
}

impl ReadyState {
    pub(crate) fn get(&self) -> crate::Readiness {
        use crate::Readiness;
        if self.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if !self.applied.load(Ordering::Acquire) {
            Readiness::NotApplied
        } else if !self.complete.load(Ordering::Acquire) {
            Readiness::Incomplete
        } else {
            Readiness::Ready
        }
    }

    /// An apply finished; `complete` when everything in it is served.
    pub(crate) fn applied(&self, complete: bool) {
        self.complete.store(complete, Ordering::Release);
        self.applied.store(true, Ordering::Release);
    }

    /// The gateway is shutting down: never ready again.
    pub(crate) fn draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
