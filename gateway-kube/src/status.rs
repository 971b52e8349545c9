//! [`KubeStatusSink`]: writes compiled status to the API server's status subresources.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gateway_core::model::{
    Condition, GATEWAY_GROUP, GatewayClassStatus, GatewayStatus, ListenerSetStatus, ListenerStatus,
    ObjectKey, ParentReference, PolicyAncestorStatus, PolicyStatus, ResourceKind,
    RouteParentStatus, RouteStatus,
};
use gateway_core::source::StatusSink;
use gateway_core::status::Status;
use kube::api::{ApiResource, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::leader::{Leadership, leadership_changed, next_retry};
use crate::{Error, GatewayRef, kinds};

/// How a [`KubeStatusSink`] writes.
#[derive(Clone, Debug)]
pub struct StatusSinkOptions {
    /// Our `controllerName`: route and policy status entries carrying it are ours to write;
    /// entries of other controllers are never touched.
    pub controller_name: String,
    /// The one Gateway served, when one is: our route entries for other Gateways are then left
    /// to the deployments serving those.
    pub gateway: Option<GatewayRef>,
    /// Status writes in flight at once.
    pub concurrency: usize,
    /// Attempts per object when the object changes between read and write (409 Conflict).
    pub conflict_attempts: u32,
    /// How often every object is read again even though its desired status did not change,
    /// so that a status changed behind our back (by a person, or a replica that wrongly
    /// thought it led) is corrected. [`run`](KubeStatusSink::run) also wakes up for it.
    pub resync_period: Duration,
}

impl StatusSinkOptions {
    /// Options for `controller_name`: every Gateway, 8 writes at once, 5 attempts, a full
    /// resync every 5 minutes.
    pub fn new(controller_name: impl Into<String>) -> Self {
        StatusSinkOptions {
            controller_name: controller_name.into(),
            gateway: None,
            concurrency: 8,
            conflict_attempts: 5,
            resync_period: Duration::from_secs(300),
        }
    }
}

/// What status writes did, counted since the sink was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Publishes that wrote (as leader).
    pub publishes: u64,
    /// Publishes skipped because this replica is not the leader.
    pub not_leader: u64,
    /// Status patches sent and accepted.
    pub patched: u64,
    /// Objects read and found already up to date (no patch).
    pub unchanged: u64,
    /// Objects skipped without a read: the same status was written before.
    pub cached: u64,
    /// Objects that no longer exist.
    pub missing: u64,
    /// Writes retried after a 409 Conflict.
    pub conflicts: u64,
    /// Writes that failed.
    pub failed: u64,
}

/// A [`StatusSink`] that writes status back to the Kubernetes API.
///
/// Each [`publish`](StatusSink::publish) is one pass over the objects whose status changed
/// since the last successful write, with at most [`StatusSinkOptions::concurrency`] writes in
/// flight. Each write reads the object, merges, and sends a JSON merge patch to its `status`
/// subresource carrying the `resourceVersion` read, so a concurrent change yields a 409 and the
/// write is redone from a fresh read:
///
/// - GatewayClass, Gateway (addresses, conditions, listeners with `attachedRoutes` and
///   `supportedKinds`) and ListenerSet status are ours as a whole;
/// - for Routes (`status.parents`) and BackendTLSPolicies (`status.ancestors`), only the
///   entries whose `controllerName` is ours are replaced; entries of other controllers stay
///   as they are, in place;
/// - a condition keeps the `lastTransitionTime` on the server when its `status` did not
///   change; conditions carry compile's `observedGeneration`;
/// - an object whose merged status equals the server's is not patched; a status already
///   written and unchanged since is not even read, except after a leadership change and every
///   [`resync_period`](StatusSinkOptions::resync_period), when every object is read again and
///   the Routes and policies are listed to remove entries of ours that the status no longer
///   has (a route detached while no replica was writing).
///
/// With [`with_leadership`](KubeStatusSink::with_leadership), only the leader writes:
/// elsewhere `publish` remembers the status and returns, and [`run`](KubeStatusSink::run)
/// writes the latest status as soon as this replica becomes leader.
pub struct KubeStatusSink {
    client: kube::Client,
    options: StatusSinkOptions,
    leadership: Option<Leadership>,
    was_leader: bool,
    latest: Option<Arc<Status>>,
    /// What was last confirmed on the server, per object.
    written: HashMap<ObjectKey, Value>,
    /// Routes and policies that had entries of ours at the last publish: when one drops out
    /// of the status, its entries are removed.
    entries: BTreeSet<ObjectKey>,
    versions: HashMap<ResourceKind, Option<ApiResource>>,
    /// When the cache of written status was last emptied.
    resynced: tokio::time::Instant,
    /// Whether the cluster was searched for stale entries of ours since then.
    swept: bool,
    stats: WriteStats,
}

impl std::fmt::Debug for KubeStatusSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStatusSink")
            .field("options", &self.options)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl KubeStatusSink {
    /// A sink writing through `client`, always (no leader election).
    pub fn new(client: kube::Client, options: StatusSinkOptions) -> Self {
        KubeStatusSink {
            client,
            options,
            leadership: None,
            was_leader: false,
            latest: None,
            written: HashMap::new(),
            entries: BTreeSet::new(),
            versions: HashMap::new(),
            resynced: tokio::time::Instant::now(),
            swept: false,
            stats: WriteStats::default(),
        }
    }

    /// Writes only while `leadership` says this replica leads.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// Counters of what the sink did.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// The status last given to [`publish`](StatusSink::publish).
    pub fn latest(&self) -> Option<&Arc<Status>> {
        self.latest.as_ref()
    }

    fn is_leader(&self) -> bool {
        self.leadership.as_ref().is_none_or(Leadership::is_leader)
    }

    /// Publishes every status `statuses` carries, and the latest one again whenever this
    /// replica becomes leader, a write failed (retried with backoff, 1 s to 30 s), or the
    /// [resync period](StatusSinkOptions::resync_period) passed, until `shutdown`.
    pub async fn run(
        mut self,
        mut statuses: watch::Receiver<Option<Arc<Status>>>,
        shutdown: CancellationToken,
    ) {
        let mut leadership = self.leadership.clone();
        let mut retry: Option<Duration> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = statuses.changed() => if changed.is_err() { return },
                alive = leadership_changed(&mut leadership) => if !alive { leadership = None },
                () = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => {}
                () = tokio::time::sleep_until(self.resynced + self.options.resync_period) => {
                    self.forget_written();
                }
            }
            let Some(status) = statuses.borrow_and_update().clone() else {
                continue;
            };
            match self.publish_arc(status).await {
                Ok(()) => retry = None,
                Err(error) => {
                    let delay = next_retry(retry);
                    tracing::warn!(%error, ?delay, "status not fully written; retrying");
                    retry = Some(delay);
                }
            }
        }
    }

    async fn publish_arc(&mut self, status: Arc<Status>) -> Result<(), Error> {
        self.latest = Some(status);
        let leader = self.is_leader();
        if !leader {
            self.was_leader = false;
            self.stats.not_leader += 1;
            return Ok(());
        }
        if !self.was_leader {
            // Another replica may have written since this one last did: read everything.
            self.was_leader = true;
            self.forget_written();
        }
        self.write_latest().await
    }

    /// Writes the latest published status now (whatever the leadership).
    ///
    /// # Errors
    ///
    /// [`Error::StatusWrite`] when some objects could not be written; the others were.
    pub async fn write_latest(&mut self) -> Result<(), Error> {
        let Some(status) = self.latest.clone() else {
            return Ok(());
        };
        if self.resynced.elapsed() >= self.options.resync_period {
            self.forget_written();
        }
        self.stats.publishes += 1;
        if !self.swept {
            self.swept = self.sweep(&status).await;
        }
        let mut work = self.plan(&status);
        for kind in work.iter().map(|w| w.key.kind).collect::<BTreeSet<_>>() {
            if let Err(error) = self.version(kind).await {
                self.stats.failed += 1;
                return Err(Error::StatusWrite {
                    failed: work.len(),
                    first: format!("{kind}: cannot find the served version: {error}"),
                });
            }
        }
        work.retain(|w| {
            let served = self.versions.get(&w.key.kind).is_some_and(Option::is_some);
            if !served {
                self.stats.missing += 1;
            }
            served
        });
        let client = &self.client;
        let options = &self.options;
        let versions = &self.versions;
        let results: Vec<(Work, Result<Outcome, String>)> = futures::stream::iter(work)
            .map(|w| async move {
                let Some(Some(ar)) = versions.get(&w.key.kind) else {
                    return (w, Ok(Outcome::Missing));
                };
                let result = write_one(client, ar, options, &w).await;
                (w, result)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut failures = Vec::new();
        for (work, result) in results {
            match result {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Patched { conflicts } => {
                            self.stats.patched += 1;
                            self.stats.conflicts += u64::from(conflicts);
                        }
                        Outcome::Unchanged { conflicts } => {
                            self.stats.unchanged += 1;
                            self.stats.conflicts += u64::from(conflicts);
                        }
                        Outcome::Missing => self.stats.missing += 1,
                    }
                    if work.is_removal() {
                        self.entries.remove(&work.key);
                        self.written.remove(&work.key);
                    } else {
                        self.written.insert(work.key, work.fingerprint);
                    }
                }
                Err(message) => {
                    self.stats.failed += 1;
                    tracing::warn!(object = %work.key, %message, "status write failed");
                    failures.push(format!("{}: {message}", work.key));
                }
            }
        }
        failures.sort();
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(Error::StatusWrite {
                failed: failures.len(),
                first: first.clone(),
            }),
        }
    }

    /// Forgets what was written: everything is read again at the next write.
    fn forget_written(&mut self) {
        self.written.clear();
        self.swept = false;
        self.resynced = tokio::time::Instant::now();
    }

    /// The served version of `kind`, looked up once. `None` when the cluster does not serve it.
    async fn version(&mut self, kind: ResourceKind) -> Result<Option<ApiResource>, kube::Error> {
        if let Some(found) = self.versions.get(&kind) {
            return Ok(found.clone());
        }
        let found = kinds::resolve(&self.client, kind).await?;
        self.versions.insert(kind, found.clone());
        Ok(found)
    }

    /// Finds routes and policies that carry entries of ours although the status no longer
    /// has them (detached while no replica led, or before a restart), so that
    /// [`plan`](Self::plan) removes those entries. `false` when some kind could not be listed
    /// (looked for again at the next write).
    async fn sweep(&mut self, status: &Status) -> bool {
        let wanted: BTreeSet<&ObjectKey> = status
            .routes
            .iter()
            .map(|r| &r.key)
            .chain(status.policies.iter().map(|p| &p.key))
            .collect();
        let mut complete = true;
        let kinds = [
            ResourceKind::HttpRoute,
            ResourceKind::GrpcRoute,
            ResourceKind::TlsRoute,
            ResourceKind::TcpRoute,
            ResourceKind::UdpRoute,
            ResourceKind::BackendTlsPolicy,
        ];
        for kind in kinds {
            let ar = match self.version(kind).await {
                Ok(Some(ar)) => ar,
                Ok(None) => continue,
                Err(error) => {
                    tracing::debug!(%kind, %error, "cannot look for stale status entries");
                    complete = false;
                    continue;
                }
            };
            let list = match kinds::api_all(&self.client, &ar)
                .list(&kube::api::ListParams::default())
                .await
            {
                Ok(list) => list,
                Err(error) => {
                    tracing::debug!(%kind, %error, "cannot look for stale status entries");
                    complete = false;
                    continue;
                }
            };
            let field = if kind == ResourceKind::BackendTlsPolicy {
                "ancestors"
            } else {
                "parents"
            };
            for object in list.items {
                let ours = object
                    .data
                    .get("status")
                    .and_then(|s| s.get(field))
                    .and_then(Value::as_array)
                    .is_some_and(|entries| {
                        entries.iter().any(|e| {
                            e.get("controllerName").and_then(Value::as_str)
                                == Some(self.options.controller_name.as_str())
                        })
                    });
                let key = ObjectKey::new(
                    kind,
                    object.metadata.namespace.as_deref().unwrap_or(""),
                    object.metadata.name.as_deref().unwrap_or(""),
                );
                if ours && !wanted.contains(&key) {
                    self.entries.insert(key);
                }
            }
        }
        complete
    }

    /// The writes a status needs: every object whose desired status differs from what was
    /// last written, plus removals of our entries from routes and policies that dropped out.
    fn plan(&mut self, status: &Status) -> Vec<Work> {
        let mut all = Vec::new();
        for s in &status.gateway_classes {
            all.push(Work::new(
                s.key.clone(),
                s.uid.as_deref(),
                Desired::GatewayClass(s.status.clone()),
            ));
        }
        for s in &status.gateways {
            all.push(Work::new(
                s.key.clone(),
                s.uid.as_deref(),
                Desired::Gateway(s.status.clone()),
            ));
        }
        for s in &status.listener_sets {
            all.push(Work::new(
                s.key.clone(),
                s.uid.as_deref(),
                Desired::ListenerSet(s.status.clone()),
            ));
        }
        let mut with_entries = BTreeSet::new();
        for s in &status.routes {
            with_entries.insert(s.key.clone());
            all.push(Work::new(
                s.key.clone(),
                s.uid.as_deref(),
                Desired::Parents(s.status.parents.clone()),
            ));
        }
        for s in &status.policies {
            with_entries.insert(s.key.clone());
            all.push(Work::new(
                s.key.clone(),
                s.uid.as_deref(),
                Desired::Ancestors(s.status.ancestors.clone()),
            ));
        }
        for key in self.entries.difference(&with_entries) {
            let desired = if key.kind == ResourceKind::BackendTlsPolicy {
                Desired::Ancestors(Vec::new())
            } else {
                Desired::Parents(Vec::new())
            };
            all.push(Work::new(key.clone(), None, desired));
        }
        self.entries.extend(with_entries);
        // What was written for objects that are gone is forgotten: a new object of the same
        // name is read and written afresh.
        let planned: BTreeSet<&ObjectKey> = all.iter().map(|w| &w.key).collect();
        self.written.retain(|key, _| planned.contains(key));
        all.retain(|w| {
            let same = self.written.get(&w.key) == Some(&w.fingerprint);
            if same {
                self.stats.cached += 1;
            }
            !same
        });
        all
    }
}

impl StatusSink for KubeStatusSink {
    type Error = Error;

    async fn publish(&mut self, status: &Status) -> Result<(), Error> {
        self.publish_arc(Arc::new(status.clone())).await
    }
}

/// The status compile wants for one object.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Desired {
    GatewayClass(GatewayClassStatus),
    Gateway(GatewayStatus),
    ListenerSet(ListenerSetStatus),
    /// Our entries of a route's `status.parents`.
    Parents(Vec<RouteParentStatus>),
    /// Our entries of a policy's `status.ancestors`.
    Ancestors(Vec<PolicyAncestorStatus>),
}

#[derive(Debug)]
struct Work {
    key: ObjectKey,
    desired: Desired,
    fingerprint: Value,
}

impl Work {
    /// `uid` is part of the fingerprint: an object made again under the same name (deleted
    /// and created between two snapshots) has a status of its own to be written, even one equal
    /// to its predecessor's.
    fn new(key: ObjectKey, uid: Option<&str>, desired: Desired) -> Work {
        let fingerprint = match &desired {
            Desired::GatewayClass(s) => json!(["class", uid, s]),
            Desired::Gateway(s) => json!(["gateway", uid, s]),
            Desired::ListenerSet(s) => json!(["set", uid, s]),
            Desired::Parents(s) => json!(["parents", uid, s]),
            Desired::Ancestors(s) => json!(["ancestors", uid, s]),
        };
        Work {
            key,
            desired,
            fingerprint,
        }
    }

    fn is_removal(&self) -> bool {
        matches!(&self.desired, Desired::Parents(p) if p.is_empty())
            || matches!(&self.desired, Desired::Ancestors(a) if a.is_empty())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Patched { conflicts: u32 },
    Unchanged { conflicts: u32 },
    Missing,
}

/// Reads, merges and patches one object, again from a fresh read after a conflict.
async fn write_one(
    client: &kube::Client,
    ar: &ApiResource,
    options: &StatusSinkOptions,
    work: &Work,
) -> Result<Outcome, String> {
    let api = kinds::api_for(client, work.key.kind, &work.key.namespace, ar);
    let mut conflicts = 0;
    loop {
        let object = match api.get(&work.key.name).await {
            Ok(object) => object,
            Err(error) if kinds::is_not_found(&error) => return Ok(Outcome::Missing),
            Err(error) => return Err(format!("read failed: {error}")),
        };
        let current = object.data.get("status").cloned().unwrap_or(Value::Null);
        let Some(status) = merge(&work.key, &current, &work.desired, options, &now()) else {
            return Ok(Outcome::Unchanged { conflicts });
        };
        let mut patch = json!({ "status": status });
        if let Some(version) = &object.metadata.resource_version {
            patch["metadata"] = json!({ "resourceVersion": version });
        }
        match api
            .patch_status(
                &work.key.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(Outcome::Patched { conflicts }),
            Err(error) if kinds::is_conflict(&error) => {
                conflicts += 1;
                if conflicts >= options.conflict_attempts.max(1) {
                    return Err(format!(
                        "still conflicting after {conflicts} attempts: {error}"
                    ));
                }
                tracing::debug!(object = %work.key, "status conflict; reading again");
            }
            Err(error) if kinds::is_not_found(&error) => return Ok(Outcome::Missing),
            Err(error) => return Err(format!("patch failed: {error}")),
        }
    }
}

/// The current time as Kubernetes writes `lastTransitionTime` (RFC 3339, whole seconds, UTC).
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The `status` part of the merge patch that brings `current` (the object's `status` on the
/// server) to `desired`, or `None` when the server already has it.
pub(super) fn merge(
    key: &ObjectKey,
    current: &Value,
    desired: &Desired,
    options: &StatusSinkOptions,
    now: &str,
) -> Option<Value> {
    match desired {
        Desired::GatewayClass(want) => {
            let have: GatewayClassStatus = read(current);
            let mut want = want.clone();
            stamp(&mut want.conditions, &have.conditions, now);
            whole(current, &have, &want)
        }
        Desired::Gateway(want) => {
            let have: GatewayStatus = read(current);
            let mut want = want.clone();
            stamp(&mut want.conditions, &have.conditions, now);
            stamp_listeners(&mut want.listeners, &have.listeners, now);
            whole(current, &have, &want)
        }
        Desired::ListenerSet(want) => {
            let have: ListenerSetStatus = read(current);
            let mut want = want.clone();
            stamp(&mut want.conditions, &have.conditions, now);
            stamp_listeners(&mut want.listeners, &have.listeners, now);
            whole(current, &have, &want)
        }
        Desired::Parents(want) => {
            let have: RouteStatus = read(current);
            let merged = merge_entries(
                &have.parents,
                want,
                &options.controller_name,
                |p| in_scope(options, &key.namespace, &p.parent_ref),
                |p| (&p.parent_ref, &p.controller_name),
                |p| &mut p.conditions,
                now,
            );
            (merged != have.parents).then(|| json!({ "parents": merged }))
        }
        Desired::Ancestors(want) => {
            let have: PolicyStatus = read(current);
            let merged = merge_entries(
                &have.ancestors,
                want,
                &options.controller_name,
                |a| in_scope(options, &key.namespace, &a.ancestor_ref),
                |a| (&a.ancestor_ref, &a.controller_name),
                |a| &mut a.conditions,
                now,
            );
            (merged != have.ancestors).then(|| json!({ "ancestors": merged }))
        }
    }
}

/// Reads a status as the model's type; what does not read counts as empty (it is then
/// overwritten, as it would be by any writer of this controller).
fn read<T: DeserializeOwned + Default>(value: &Value) -> T {
    if value.is_null() {
        return T::default();
    }
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// A status we own as a whole: `want`, with every other field on the server set to `null` so
/// the merge patch clears it; `None` when the server has it already.
fn whole<T: Serialize + PartialEq>(current: &Value, have: &T, want: &T) -> Option<Value> {
    if have == want && !current.is_null() {
        return None;
    }
    let mut patch = serde_json::to_value(want).unwrap_or_else(|_| json!({}));
    if let (Some(patch), Some(current)) = (patch.as_object_mut(), current.as_object()) {
        for field in current.keys() {
            patch.entry(field.clone()).or_insert(Value::Null);
        }
    }
    Some(patch)
}

/// Sets `lastTransitionTime` on every wanted condition: the server's, when a condition of
/// that type is there with the same status; `now` otherwise.
fn stamp(want: &mut [Condition], have: &[Condition], now: &str) {
    for condition in want {
        let kept = have
            .iter()
            .find(|h| h.type_ == condition.type_ && h.status == condition.status)
            .and_then(|h| h.last_transition_time.clone());
        condition.last_transition_time = Some(kept.unwrap_or_else(|| now.to_owned()));
    }
}

fn stamp_listeners(want: &mut [ListenerStatus], have: &[ListenerStatus], now: &str) {
    for listener in want {
        let empty = Vec::new();
        let had = have
            .iter()
            .find(|h| h.name == listener.name)
            .map_or(&empty, |h| &h.conditions);
        stamp(&mut listener.conditions, had, now);
    }
}

/// Whether an entry of ours for `parent` (in a route of `namespace`) is this deployment's to
/// replace: always when every Gateway is served; only for the one Gateway otherwise.
fn in_scope(options: &StatusSinkOptions, namespace: &str, parent: &ParentReference) -> bool {
    let Some(only) = &options.gateway else {
        return true;
    };
    parent.group() == GATEWAY_GROUP
        && parent.kind() == "Gateway"
        && parent.name == only.name
        && parent.namespace.as_deref().unwrap_or(namespace) == only.namespace
}

/// Merges our entries into a list shared with other controllers: entries of others, and ours
/// outside this deployment's scope, stay as they are; ours in scope are replaced by `want`
/// (in place when the parent was there already, appended otherwise), with transition times
/// carried over.
fn merge_entries<E: Clone>(
    have: &[E],
    want: &[E],
    controller: &str,
    in_scope: impl Fn(&E) -> bool,
    id: impl Fn(&E) -> (&ParentReference, &String),
    conditions: impl Fn(&mut E) -> &mut Vec<Condition>,
    now: &str,
) -> Vec<E> {
    let same_parent = |a: &ParentReference, b: &ParentReference| {
        a.group() == b.group()
            && a.kind() == b.kind()
            && a.namespace == b.namespace
            && a.name == b.name
            && a.section_name == b.section_name
            && a.port == b.port
    };
    let stamped = |wanted: &E, had: Option<&E>| {
        let mut entry = wanted.clone();
        let had_conditions = had
            .cloned()
            .map(|mut h| std::mem::take(conditions(&mut h)))
            .unwrap_or_default();
        stamp(conditions(&mut entry), &had_conditions, now);
        entry
    };
    let mut placed = vec![false; want.len()];
    let mut out = Vec::with_capacity(have.len().max(want.len()));
    for entry in have {
        let (parent, owner) = id(entry);
        if owner != controller {
            out.push(entry.clone());
            continue;
        }
        let wanted = want
            .iter()
            .enumerate()
            .find(|(i, w)| !placed[*i] && same_parent(id(w).0, parent));
        match wanted {
            Some((i, w)) => {
                placed[i] = true;
                out.push(stamped(w, Some(entry)));
            }
            // Ours, no longer wanted: dropped when it is this deployment's to manage.
            None if in_scope(entry) => {}
            None => out.push(entry.clone()),
        }
    }
    for (i, w) in want.iter().enumerate() {
        if !placed[i] {
            out.push(stamped(w, None));
        }
    }
    out
}

#[cfg(test)]
mod tests;
