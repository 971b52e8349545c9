//! [`KubeSource`]: a [`ConfigSource`] over the Kubernetes API.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use gateway_core::model::{ObjectKey, ResourceKind, Snapshot};
use gateway_core::source::ConfigSource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::utils::Backoff as _;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::index::{Change, Index, WatchId};
use crate::kinds;
use crate::{Error, GatewayRef};

/// Quiet period after the last change before a snapshot is emitted, by default.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_millis(100);

/// How often a kind whose CRD is not installed is looked for again, by default.
pub const DEFAULT_ABSENT_RECHECK: Duration = Duration::from_secs(60);

/// Which Secrets and ConfigMaps the source reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SecretSelection {
    /// Only the objects that the served Gateways (listener certificates, backend client
    /// certificate, frontend CA bundles) and BackendTLSPolicies (CA bundles) name, each with
    /// its own watch restricted by `fieldSelector=metadata.name=…` in its namespace. Nothing
    /// else is listed or cached. RBAC still has to grant `list`/`watch` on Secrets in those
    /// namespaces, since the names are not known in advance.
    #[default]
    Referenced,
    /// Every Secret and ConfigMap matching this label selector (`gateway.example.dev/tls=true`),
    /// with one watch each: fewer connections when many are referenced, and only the labelled
    /// objects are cached.
    LabelSelector(String),
}

/// How a [`KubeSource`] watches.
#[derive(Clone, Debug)]
pub struct KubeSourceOptions {
    /// The `controllerName` of the GatewayClasses served; it decides which Gateways' Secrets
    /// are read (compile decides what is served, with the same name).
    pub controller_name: String,
    /// Serve only this Gateway (one deployment per Gateway); `None` serves every Gateway of
    /// the controller's classes.
    pub gateway: Option<GatewayRef>,
    /// Quiet period after the last change before a snapshot is emitted.
    pub quiet_period: Duration,
    /// Which Secrets and ConfigMaps are read.
    pub secrets: SecretSelection,
    /// How often a kind whose CRD is not installed is looked for again.
    pub absent_recheck: Duration,
    /// Whether warning Events about Services are watched too (`fieldSelector`
    /// `involvedObject.kind=Service,type=Warning`; RBAC `list`/`watch` on `events`), for a
    /// controller that provisions each Gateway's Service: they carry the load balancer's
    /// refusals ([`ServiceOptions::plan`](crate::ServiceOptions::plan)). Only Events of
    /// [`LOAD_BALANCER_FAILURE_REASONS`](crate::LOAD_BALANCER_FAILURE_REASONS) are kept.
    pub service_events: bool,
}

impl KubeSourceOptions {
    /// Options for `controller_name` with the defaults: every Gateway of its classes, a
    /// [`DEFAULT_QUIET_PERIOD`], referenced Secrets only.
    pub fn new(controller_name: impl Into<String>) -> Self {
        KubeSourceOptions {
            controller_name: controller_name.into(),
            gateway: None,
            quiet_period: DEFAULT_QUIET_PERIOD,
            secrets: SecretSelection::Referenced,
            absent_recheck: DEFAULT_ABSENT_RECHECK,
            service_events: false,
        }
    }
}

type Message = (WatchId, Change);

/// A [`ConfigSource`] over the Kubernetes API.
///
/// It watches GatewayClasses, Gateways, ListenerSets, the five Route kinds, ReferenceGrants,
/// BackendTLSPolicies, Services, EndpointSlices and Namespaces in every namespace, the
/// Secrets and ConfigMaps chosen by [`SecretSelection`], and, with
/// [`KubeSourceOptions::service_events`], warning Events about Services. Gateway API kinds are read in the
/// newest version the cluster serves (`v1` first, then older versions); a kind whose CRD is
/// not installed counts as "none of them" (logged once, looked for again every
/// [`KubeSourceOptions::absent_recheck`]).
///
/// The first [`next`](ConfigSource::next) returns once every watch has listed; later calls
/// return after a change and a quiet period ([`KubeSourceOptions::quiet_period`]), so a burst
/// of changes yields one snapshot. A change that leaves the snapshot as it was (a status
/// update, a re-list after a dropped watch or a `410 Gone`) yields nothing. Watches that fail
/// re-list with kube-runtime's default backoff; meanwhile nothing is emitted and the last
/// snapshot keeps serving.
///
/// Watches start on the first `next`, which must run inside a Tokio runtime; they stop when
/// the source is dropped. `next` is cancel-safe.
pub struct KubeSource {
    client: kube::Client,
    options: KubeSourceOptions,
    index: Index,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    /// Stops every watch when the source is dropped.
    root: CancellationToken,
    _stop_all: DropGuard,
    /// Per-object watches (Secrets, ConfigMaps), each with its own stop.
    named: BTreeMap<ObjectKey, DropGuard>,
    started: bool,
    dirty: bool,
    last: Option<Snapshot>,
    synced: watch::Sender<bool>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("options", &self.options)
            .field("started", &self.started)
            .field("synced", &*self.synced.borrow())
            .finish_non_exhaustive()
    }
}

impl KubeSource {
    /// A source reading the API through `client` (any [`kube::Client`]: in-cluster,
    /// kubeconfig, or `kube::Config::new(url)` for a plain-HTTP test server).
    pub fn new(client: kube::Client, options: KubeSourceOptions) -> KubeSource {
        let (tx, rx) = mpsc::channel(1024);
        let root = CancellationToken::new();
        let (synced, _) = watch::channel(false);
        KubeSource {
            client,
            index: Index::new(&options.controller_name, options.gateway.clone()),
            options,
            tx,
            rx,
            _stop_all: root.clone().drop_guard(),
            root,
            named: BTreeMap::new(),
            started: false,
            dirty: false,
            last: None,
            synced,
        }
    }

    /// The options.
    pub fn options(&self) -> &KubeSourceOptions {
        &self.options
    }

    /// `true` once every watch has listed and the first snapshot was returned by `next`.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    fn start(&mut self) {
        self.started = true;
        for kind in kinds::watched() {
            self.spawn(WatchId::Kind(kind), watcher::Config::default());
        }
        if self.options.service_events {
            let config = watcher::Config::default().fields(kinds::SERVICE_WARNINGS);
            self.spawn(WatchId::Kind(ResourceKind::Event), config);
        }
        if let SecretSelection::LabelSelector(selector) = &self.options.secrets {
            let config = watcher::Config::default().labels(selector);
            for kind in [ResourceKind::Secret, ResourceKind::ConfigMap] {
                self.spawn(WatchId::Labelled(kind), config.clone());
            }
        }
    }

    /// Starts a watch task, registered in the index as not synced.
    fn spawn(&mut self, id: WatchId, config: watcher::Config) -> CancellationToken {
        self.index.add_watch(id.clone());
        let stop = self.root.child_token();
        let task = WatchTask {
            client: self.client.clone(),
            id,
            config,
            tx: self.tx.clone(),
            stop: stop.clone(),
            absent_recheck: self.options.absent_recheck,
        };
        tokio::spawn(task.run());
        stop
    }

    /// Starts watches for newly referenced Secrets and ConfigMaps and stops the ones no
    /// longer referenced. Returns whether the index lost objects.
    fn reconcile_named(&mut self) -> bool {
        if self.options.secrets != SecretSelection::Referenced {
            return false;
        }
        let wanted = self.index.referenced();
        let mut changed = false;
        let stale: Vec<ObjectKey> = self
            .named
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in stale {
            self.named.remove(&key);
            changed |= self.index.remove_watch(&WatchId::Object(key));
        }
        for key in wanted {
            if self.named.contains_key(&key) {
                continue;
            }
            let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
            let stop = self.spawn(WatchId::Object(key.clone()), config);
            self.named.insert(key, stop.drop_guard());
        }
        changed
    }

    /// Receives one message, or `None` when every sender is gone.
    async fn receive(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    fn apply(&mut self, (id, change): Message) {
        if self.index.apply(&id, change) {
            self.dirty = true;
        }
    }
}

impl ConfigSource for KubeSource {
    type Error = Error;

    async fn next(&mut self) -> Result<Option<Snapshot>, Error> {
        if !self.started {
            self.start();
        }
        loop {
            // Wait for a change, unless one is pending from a cancelled call.
            if !(self.dirty && self.index.is_synced()) {
                let Some(message) = self.receive().await else {
                    return Err(Error::WatchesStopped);
                };
                self.apply(message);
                continue;
            }
            // Quiet period: keep applying until nothing arrives for a while.
            loop {
                match tokio::time::timeout(self.options.quiet_period, self.rx.recv()).await {
                    Ok(Some(message)) => self.apply(message),
                    Ok(None) => return Err(Error::WatchesStopped),
                    Err(_quiet) => break,
                }
            }
            if self.reconcile_named() {
                self.dirty = true;
            }
            if !self.index.is_synced() {
                tracing::debug!(waiting_for = ?self.index.unsynced(), "waiting for watches to list");
                continue;
            }
            self.dirty = false;
            let snapshot = self.index.snapshot();
            if self.last.as_ref() == Some(&snapshot) {
                continue;
            }
            if self.last.is_none() {
                tracing::info!(
                    objects = snapshot.len(),
                    "every watch synced; first configuration"
                );
            } else {
                tracing::info!(objects = snapshot.len(), "configuration changed");
            }
            self.last = Some(snapshot.clone());
            self.synced.send_replace(true);
            return Ok(Some(snapshot));
        }
    }
}

/// One watch, run as a task: resolves the served version, then lists and watches with
/// backoff, sending every change to the source.
struct WatchTask {
    client: kube::Client,
    id: WatchId,
    config: watcher::Config,
    tx: mpsc::Sender<Message>,
    stop: CancellationToken,
    absent_recheck: Duration,
}

impl WatchTask {
    async fn run(self) {
        let kind = self.id.kind();
        let mut absent_logged = false;
        // The watchers' own policy (kube-runtime: 0.8 s doubling to 30 s, with jitter), so
        // that finding the version and watching back off alike.
        let mut backoff = watcher::DefaultBackoff::default();
        let mut failing = false;
        loop {
            let resolved = tokio::select! {
                () = self.stop.cancelled() => return,
                resolved = kinds::resolve(&self.client, kind) => resolved,
            };
            match resolved {
                Ok(Some(ar)) => {
                    backoff.reset();
                    failing = false;
                    absent_logged = false;
                    if !self.watch(&ar).await {
                        return;
                    }
                    // The kind stopped being served (CRD removed): resolve again.
                }
                Ok(None) => {
                    if !absent_logged {
                        absent_logged = true;
                        if kinds::is_optional(kind) {
                            tracing::info!(%kind, "CRD not installed; serving none of this kind");
                        } else {
                            tracing::error!(%kind, "CRD not installed; serving none of this kind");
                        }
                    }
                    if !self.send(Change::Absent).await {
                        return;
                    }
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(self.absent_recheck) => {}
                    }
                }
                Err(error) => {
                    let first = !failing;
                    failing = true;
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    // Once per outage at warn level: every kind fails alike.
                    if first {
                        tracing::warn!(%kind, %error, "cannot reach the API to find the served version; retrying with backoff");
                    } else {
                        tracing::debug!(%kind, %error, ?delay, "API still unreachable");
                    }
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Watches `ar` until stopped (`false`) or until the resource is no longer served
    /// (`true`: resolve again).
    async fn watch(&self, ar: &ApiResource) -> bool {
        let kind = self.id.kind();
        let api = match &self.id {
            WatchId::Object(key) => kinds::api_for(&self.client, kind, &key.namespace, ar),
            _ => kinds::api_all(&self.client, ar),
        };
        let stream = watcher::watcher(api, self.config.clone()).default_backoff();
        futures::pin_mut!(stream);
        loop {
            let item = tokio::select! {
                () = self.stop.cancelled() => return false,
                item = stream.next() => item,
            };
            let Some(item) = item else {
                return true;
            };
            let change = match item {
                Ok(Event::Init) => Change::Restart,
                Ok(Event::InitApply(object)) => Change::Item(to_json(object, ar)),
                Ok(Event::InitDone) => Change::Listed,
                Ok(Event::Apply(object)) => Change::Applied(to_json(object, ar)),
                Ok(Event::Delete(object)) => Change::Deleted(to_json(object, ar)),
                Err(error) => {
                    let gone = matches!(
                        &error,
                        watcher::Error::InitialListFailed(e) if kinds::is_not_found(e)
                    );
                    if gone && matches!(self.id, WatchId::Kind(_)) {
                        tracing::warn!(%kind, version = %ar.version, "no longer served; looking for another version");
                        return true;
                    }
                    // The watcher re-lists (after a 410 Gone too) with backoff; the last
                    // good objects stay in the index meanwhile.
                    tracing::warn!(watch = ?self.id, %error, "watch failed; re-listing with backoff");
                    continue;
                }
            };
            if !self.send(change).await {
                return false;
            }
        }
    }

    async fn send(&self, change: Change) -> bool {
        self.tx.send((self.id.clone(), change)).await.is_ok()
    }
}

/// The object as JSON, with the `apiVersion` and `kind` that list items leave out.
fn to_json(object: DynamicObject, ar: &ApiResource) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
        map.insert("kind".into(), Value::String(ar.kind.clone()));
    }
    value
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn client() -> kube::Client {
        // Nothing listens there; no watch task is started in these tests.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// A source whose watches are fed by the test instead of tasks.
    fn fed_source(kinds: &[ResourceKind]) -> (KubeSource, mpsc::Sender<Message>) {
        let mut options = KubeSourceOptions::new("example.com/gateway");
        options.secrets = SecretSelection::LabelSelector("unused".into());
        let mut source = KubeSource::new(client(), options);
        source.started = true;
        for kind in kinds {
            source.index.add_watch(WatchId::Kind(*kind));
        }
        let tx = source.tx.clone();
        (source, tx)
    }

    fn service(name: &str, port: u16) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": "apps"},
               "spec": {"ports": [{"port": port}]}})
    }

    async fn send(tx: &mpsc::Sender<Message>, kind: ResourceKind, change: Change) {
        tx.send((WatchId::Kind(kind), change)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn first_snapshot_waits_for_every_watch_then_bursts_coalesce() {
        let (mut source, tx) = fed_source(&[ResourceKind::Service, ResourceKind::Namespace]);
        let synced = source.synced();
        send(&tx, ResourceKind::Service, Change::Restart).await;
        send(&tx, ResourceKind::Service, Change::Item(service("a", 80))).await;
        send(&tx, ResourceKind::Service, Change::Listed).await;
        // Namespaces have not listed: no snapshot yet.
        let pending = tokio::time::timeout(Duration::from_secs(5), source.next()).await;
        assert!(pending.is_err(), "a snapshot before every watch listed");
        assert!(!*synced.borrow());
        send(&tx, ResourceKind::Namespace, Change::Absent).await;
        let first = source.next().await.unwrap().unwrap();
        assert_eq!(first.services.len(), 1);
        assert!(*synced.borrow());

        // A burst of changes: one snapshot with all of them.
        for port in [81, 82, 83] {
            send(
                &tx,
                ResourceKind::Service,
                Change::Applied(service("a", port)),
            )
            .await;
        }
        send(
            &tx,
            ResourceKind::Service,
            Change::Applied(service("b", 90)),
        )
        .await;
        let second = source.next().await.unwrap().unwrap();
        assert_eq!(second.services.len(), 2);
        assert_eq!(second.services[0].spec.ports[0].port, 83);

        // A re-list with the same objects (a dropped watch, a 410 Gone): nothing new.
        send(&tx, ResourceKind::Service, Change::Restart).await;
        send(&tx, ResourceKind::Service, Change::Item(service("a", 83))).await;
        send(&tx, ResourceKind::Service, Change::Item(service("b", 90))).await;
        send(&tx, ResourceKind::Service, Change::Listed).await;
        let quiet = tokio::time::timeout(Duration::from_secs(5), source.next()).await;
        assert!(quiet.is_err(), "an identical re-list emitted a snapshot");

        // A change that is undone within the quiet period yields nothing either.
        send(&tx, ResourceKind::Service, Change::Applied(service("a", 1))).await;
        send(
            &tx,
            ResourceKind::Service,
            Change::Applied(service("a", 83)),
        )
        .await;
        let quiet = tokio::time::timeout(Duration::from_secs(5), source.next()).await;
        assert!(
            quiet.is_err(),
            "a change undone in the quiet period emitted a snapshot"
        );

        send(
            &tx,
            ResourceKind::Service,
            Change::Deleted(service("b", 90)),
        )
        .await;
        let third = source.next().await.unwrap().unwrap();
        assert_eq!(third.services.len(), 1);
    }
}
