//! Leader election over a `coordination.k8s.io/v1` Lease.
//!
//! Hand-written (about a hundred lines of logic) rather than taken from a crate: the crates
//! that offer it for kube-rs track older kube releases, and the protocol is small: read the
//! Lease; renew it when we hold it; take it over when its holder has not renewed within its
//! `leaseDurationSeconds` (measured on our own clock from when we last saw it change, so
//! clock skew between replicas does not matter); every update carries the `resourceVersion`
//! read, so two replicas racing for it cannot both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::kinds::{is_conflict, is_not_found};

/// How long a Lease is held without renewal before another replica may take it, by default.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Which Lease, who we are, and the timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Namespace of the Lease (the controller's own).
    pub namespace: String,
    /// Name of the Lease; replicas that share it elect one leader.
    pub name: String,
    /// This replica's identity (the pod name), written as `holderIdentity`.
    pub identity: String,
    /// `leaseDurationSeconds`: how long after the last renewal others wait before taking over.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops writing (shorter than the lease
    /// duration, so it steps down before anyone else may take over).
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseOptions {
    /// Options with the default timings: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseOptions {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this replica leads, as a cheap cloneable handle.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// A fixed answer, for a single replica that needs no election (`true`) or one that
    /// must never write (`false`).
    pub fn fixed(leader: bool) -> Leadership {
        let (_tx, rx) = watch::channel(leader);
        Leadership { rx }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits for leadership to change; `false` when it never will again (the elector
    /// stopped).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }

    /// Waits until this replica leads; `false` when the elector stopped first.
    pub async fn acquired(&mut self) -> bool {
        self.rx.wait_for(|leader| *leader).await.is_ok()
    }
}

/// What the next update of the Lease does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it.
    Acquire,
    /// Someone else holds it.
    Wait,
}

/// Decides what to do with the Lease as read; `expired` says whether its holder has not
/// renewed within its duration.
fn decide(spec: &LeaseSpec, identity: &str, expired: bool) -> Action {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Action::Renew,
        None | Some("") => Action::Acquire,
        Some(_) if expired => Action::Acquire,
        Some(_) => Action::Wait,
    }
}

/// The Lease spec after `action` (`Renew` or `Acquire`) at `now`.
fn updated(spec: &LeaseSpec, action: Action, options: &LeaseOptions, now: MicroTime) -> LeaseSpec {
    let mut spec = spec.clone();
    let seconds = i32::try_from(options.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(now.clone());
    if action == Action::Acquire {
        spec.holder_identity = Some(options.identity.clone());
        spec.acquire_time = Some(now);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec
}

/// The part of a Lease whose change shows its holder is alive.
type Record = (Option<String>, Option<String>, Option<i32>);

fn record(spec: &LeaseSpec) -> Record {
    (
        spec.holder_identity.clone(),
        spec.renew_time.as_ref().map(|t| t.0.to_string()),
        spec.lease_duration_seconds,
    )
}

/// Result of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Holding,
    HeldByOther,
    /// Another replica changed the Lease between our read and write.
    Conflict,
}

/// Elects a leader among replicas sharing a Lease; see [`Leadership`] for the answer.
///
/// ```no_run
/// # async fn run(client: kube::Client) {
/// use gateway_kube::{LeaderElector, LeaseOptions};
/// let elector = LeaderElector::new(client, LeaseOptions::new("gateway-system", "gateway", "pod-a"));
/// let mut leadership = elector.leadership();
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// tokio::spawn(elector.run(shutdown.clone()));
/// leadership.acquired().await;
/// # }
/// ```
pub struct LeaderElector {
    api: Api<Lease>,
    options: LeaseOptions,
    tx: watch::Sender<bool>,
    /// The Lease record last seen, and when (on our clock) it last changed.
    observed: Option<(Record, Instant)>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("options", &self.options)
            .field("leader", &*self.tx.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector for the Lease in `options`, through `client`.
    pub fn new(client: kube::Client, options: LeaseOptions) -> Self {
        let (tx, _) = watch::channel(false);
        LeaderElector {
            api: Api::namespaced(client, &options.namespace),
            options,
            tx,
            observed: None,
        }
    }

    /// The leadership of this replica, updated while [`run`](LeaderElector::run) runs.
    pub fn leadership(&self) -> Leadership {
        Leadership {
            rx: self.tx.subscribe(),
        }
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.options.namespace, self.options.name)
    }

    fn set(&self, leader: bool) {
        let was = self.tx.send_replace(leader);
        if was != leader {
            if leader {
                tracing::info!(lease = %self.lease_name(), identity = %self.options.identity, "became leader");
            } else {
                tracing::warn!(lease = %self.lease_name(), identity = %self.options.identity, "no longer leader");
            }
        }
    }

    /// Acquires and renews the Lease every retry period until `shutdown`, then releases it
    /// (when held) so another replica takes over at once instead of after the lease duration.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut last_renewal: Option<Instant> = None;
        loop {
            let attempt = tokio::select! {
                () = shutdown.cancelled() => break,
                attempt = self.attempt() => attempt,
            };
            match attempt {
                Ok(Attempt::Holding) => {
                    last_renewal = Some(Instant::now());
                    self.set(true);
                }
                Ok(Attempt::HeldByOther) => {
                    last_renewal = None;
                    self.set(false);
                }
                Ok(Attempt::Conflict) | Err(_) => {
                    if let Err(error) = &attempt {
                        tracing::warn!(lease = %self.lease_name(), %error, "cannot read or update the lease");
                    }
                    let overdue =
                        last_renewal.is_none_or(|t| t.elapsed() > self.options.renew_deadline);
                    if overdue {
                        self.set(false);
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.options.retry_period) => {}
            }
        }
        if *self.tx.borrow() {
            self.tx.send_replace(false);
            tracing::info!(lease = %self.lease_name(), "shutting down: no longer leader");
            if let Err(error) = self.release().await {
                tracing::warn!(%error, "lease not released; others take over when it expires");
            }
        }
    }

    async fn attempt(&mut self) -> Result<Attempt, Error> {
        let name = self.options.name.clone();
        let lease_error = |source| Error::Lease {
            lease: format!("{}/{}", self.options.namespace, self.options.name),
            source,
        };
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&name).await.map_err(lease_error)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(self.options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(updated(
                    &LeaseSpec::default(),
                    Action::Acquire,
                    &self.options,
                    now,
                )),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Holding),
                Err(error) if is_conflict(&error) => Ok(Attempt::Conflict),
                Err(error) => Err(lease_error(error)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let seen = record(&spec);
        let changed_at = match &self.observed {
            Some((last, at)) if *last == seen => *at,
            _ => Instant::now(),
        };
        self.observed = Some((seen, changed_at));
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.options.lease_duration, Duration::from_secs);
        let expired = changed_at.elapsed() > duration;
        let action = decide(&spec, &self.options.identity, expired);
        if action == Action::Wait {
            return Ok(Attempt::HeldByOther);
        }
        lease.spec = Some(updated(&spec, action, &self.options, now));
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Holding),
            Err(error) if is_conflict(&error) => Ok(Attempt::Conflict),
            Err(error) => Err(lease_error(error)),
        }
    }

    /// Gives the Lease up: no holder, so the next replica to look takes it.
    async fn release(&self) -> Result<(), Error> {
        let lease_error = |source| Error::Lease {
            lease: self.lease_name(),
            source,
        };
        let mut lease = match self.api.get(&self.options.name).await {
            Ok(lease) => lease,
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(lease_error(error)),
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.options.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
            .map_err(lease_error)?;
        tracing::info!(lease = %self.lease_name(), "lease released");
        Ok(())
    }
}

/// What the writers (status, Services) wait on besides their input: a change of `leadership`
/// (`false` once its elector stopped, after which the caller drops it), or never, without one.
pub(crate) async fn leadership_changed(leadership: &mut Option<Leadership>) -> bool {
    match leadership {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

/// The writers' retry delay after a failed write: 1 s, doubled after each further failure, at
/// most 30 s.
pub(crate) fn next_retry(previous: Option<Duration>) -> Duration {
    previous
        .map_or(Duration::from_secs(1), |d| d * 2)
        .min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn holder_renews_others_wait_until_expiry() {
        assert_eq!(decide(&spec(Some("a")), "a", false), Action::Renew);
        assert_eq!(decide(&spec(Some("a")), "a", true), Action::Renew);
        assert_eq!(decide(&spec(Some("b")), "a", false), Action::Wait);
        assert_eq!(decide(&spec(Some("b")), "a", true), Action::Acquire);
        // Released (no holder): taken at once.
        assert_eq!(decide(&spec(None), "a", false), Action::Acquire);
        assert_eq!(decide(&spec(Some("")), "a", false), Action::Acquire);
    }

    #[test]
    fn acquiring_counts_a_transition_and_renewing_does_not() {
        let options = LeaseOptions::new("ns", "lease", "a");
        let now = MicroTime(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let taken = updated(&spec(Some("b")), Action::Acquire, &options, now.clone());
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(now.clone()));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        let renewed = updated(&taken, Action::Renew, &options, now.clone());
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.renew_time, Some(now));
    }

    #[test]
    fn fixed_leadership() {
        assert!(Leadership::fixed(true).is_leader());
        assert!(!Leadership::fixed(false).is_leader());
    }
}
