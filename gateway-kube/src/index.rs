//! The source's cache: the objects every watch has listed, read into the core model, and the
//! snapshot they make.
//!
//! Watches feed [`Change`]s in; [`Index::snapshot`] reads the whole cache out. The index is
//! pure (no I/O, no clock) so that tests feed it Kubernetes JSON directly.

use std::collections::{BTreeMap, BTreeSet};

use gateway_core::model::{
    Gateway, ObjectKey, Resource, ResourceKind, SecretObjectReference, Snapshot,
};
use serde_json::Value;

use crate::GatewayRef;

/// One watch: a whole collection, one named object, or the objects matching a label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum WatchId {
    /// Every object of a kind.
    Kind(ResourceKind),
    /// One Secret or ConfigMap, by namespace and name.
    Object(ObjectKey),
    /// The Secrets or ConfigMaps that match the configured label selector.
    Labelled(ResourceKind),
}

impl WatchId {
    /// The kind of the objects this watch sees.
    pub(crate) fn kind(&self) -> ResourceKind {
        match self {
            WatchId::Kind(kind) | WatchId::Labelled(kind) => *kind,
            WatchId::Object(key) => key.kind,
        }
    }
}

/// What a watch reports, in the order kube-runtime's watcher yields it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Change {
    /// A (re-)list starts: the objects that follow replace the watch's objects at `Listed`.
    Restart,
    /// One object of the list in progress.
    Item(Value),
    /// The list is complete; the watch is synced.
    Listed,
    /// An object was added or changed.
    Applied(Value),
    /// An object was deleted.
    Deleted(Value),
    /// The kind is not served by the cluster (its CRD is not installed): none of them.
    Absent,
}

#[derive(Debug, Default)]
struct Store {
    objects: BTreeMap<(String, String), Resource>,
    /// Objects of a list in progress, swapped in when it completes.
    listing: Option<BTreeMap<(String, String), Resource>>,
    synced: bool,
}

/// The cache of every watch, and what the snapshot keeps of it.
#[derive(Debug)]
pub(crate) struct Index {
    controller_name: String,
    gateway: Option<GatewayRef>,
    stores: BTreeMap<WatchId, Store>,
}

impl Index {
    /// An empty index serving `controller_name`, and only `gateway` when given.
    pub(crate) fn new(controller_name: &str, gateway: Option<GatewayRef>) -> Index {
        Index {
            controller_name: controller_name.to_owned(),
            gateway,
            stores: BTreeMap::new(),
        }
    }

    /// Registers a watch (not synced until its first list completes).
    pub(crate) fn add_watch(&mut self, id: WatchId) {
        self.stores.entry(id).or_default();
    }

    /// Forgets a watch and its objects. Returns whether objects were dropped.
    pub(crate) fn remove_watch(&mut self, id: &WatchId) -> bool {
        self.stores
            .remove(id)
            .is_some_and(|store| !store.objects.is_empty())
    }

    /// Whether every registered watch has listed once.
    pub(crate) fn is_synced(&self) -> bool {
        self.stores.values().all(|s| s.synced)
    }

    /// The watches that have not listed yet, for logs.
    pub(crate) fn unsynced(&self) -> Vec<String> {
        self.stores
            .iter()
            .filter(|(_, s)| !s.synced)
            .map(|(id, _)| match id {
                WatchId::Kind(kind) => kind.to_string(),
                WatchId::Object(key) => key.to_string(),
                WatchId::Labelled(kind) => format!("{kind} (by label)"),
            })
            .collect()
    }

    /// Applies a watch's change. Returns whether the objects the snapshot is made of changed
    /// (a status-only update does not count: status is not part of the snapshot).
    pub(crate) fn apply(&mut self, id: &WatchId, change: Change) -> bool {
        let kind = id.kind();
        let Some(store) = self.stores.get_mut(id) else {
            // A late event from a watch that was stopped.
            return false;
        };
        match change {
            Change::Restart => {
                store.listing = Some(BTreeMap::new());
                false
            }
            Change::Item(value) => {
                if let Some(resource) = convert(kind, value) {
                    let key = name_of(&resource);
                    store
                        .listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, resource);
                }
                false
            }
            Change::Listed => {
                let listed = store.listing.take().unwrap_or_default();
                let changed = !store.synced || listed != store.objects;
                store.objects = listed;
                store.synced = true;
                changed
            }
            Change::Applied(value) => {
                let Some(resource) = convert(kind, value) else {
                    return false;
                };
                let key = name_of(&resource);
                if store.objects.get(&key) == Some(&resource) {
                    return false;
                }
                store.objects.insert(key, resource);
                true
            }
            Change::Deleted(value) => {
                let meta = value.get("metadata");
                let field = |name: &str| {
                    meta.and_then(|m| m.get(name))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                store
                    .objects
                    .remove(&(field("namespace"), field("name")))
                    .is_some()
            }
            Change::Absent => {
                let changed = !store.synced || !store.objects.is_empty();
                store.objects.clear();
                store.listing = None;
                store.synced = true;
                changed
            }
        }
    }

    fn objects(&self) -> impl Iterator<Item = &Resource> {
        self.stores.values().flat_map(|s| s.objects.values())
    }

    /// Whether `gateway` is one this controller serves: its class names our controller, and
    /// it is the one Gateway served when one is named.
    fn serves(&self, gateway: &Gateway) -> bool {
        if let Some(only) = &self.gateway
            && (gateway.metadata.namespace() != only.namespace
                || gateway.metadata.name != only.name)
        {
            return false;
        }
        self.objects().any(|r| match r {
            Resource::GatewayClass(class) => {
                class.metadata.name == gateway.spec.gateway_class_name
                    && class.spec.controller_name == self.controller_name
            }
            _ => false,
        })
    }

    /// Everything the watches hold, as one snapshot: every object, except Gateways other than
    /// the one named when a single Gateway is served.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.objects()
            .filter(|r| match (r, &self.gateway) {
                (Resource::Gateway(g), Some(only)) => {
                    g.metadata.namespace() == only.namespace && g.metadata.name == only.name
                }
                _ => true,
            })
            .cloned()
            .collect()
    }

    /// The Secrets and ConfigMaps the served Gateways and every BackendTLSPolicy name:
    /// listener certificates, the Gateway's backend client certificate and frontend CA
    /// bundles, and the policies' CA bundles. Only these are watched by default.
    pub(crate) fn referenced(&self) -> BTreeSet<ObjectKey> {
        let mut out = BTreeSet::new();
        let mut secret_ref = |r: &SecretObjectReference, from: &str| {
            if r.group().is_empty() && r.kind() == "Secret" && !r.name.is_empty() {
                let ns = r.namespace.as_deref().unwrap_or(from);
                out.insert(ObjectKey::new(ResourceKind::Secret, ns, &r.name));
            }
        };
        let served: Vec<&Gateway> = self
            .objects()
            .filter_map(|r| match r {
                Resource::Gateway(g) if self.serves(g) => Some(g),
                _ => None,
            })
            .collect();
        let mut by_ref = Vec::new();
        for gateway in &served {
            let ns = gateway.metadata.namespace();
            for listener in &gateway.spec.listeners {
                for r in listener.tls.iter().flat_map(|t| &t.certificate_refs) {
                    secret_ref(r, ns);
                }
            }
            let Some(tls) = &gateway.spec.tls else {
                continue;
            };
            if let Some(r) = tls
                .backend
                .as_ref()
                .and_then(|b| b.client_certificate_ref.as_ref())
            {
                secret_ref(r, ns);
            }
            if let Some(frontend) = &tls.frontend {
                let configs = frontend
                    .default
                    .iter()
                    .chain(frontend.per_port.iter().map(|p| &p.tls));
                for config in configs {
                    for r in config
                        .validation
                        .iter()
                        .flat_map(|v| &v.ca_certificate_refs)
                    {
                        let ref_ns = r.namespace.clone().unwrap_or_else(|| ns.to_owned());
                        by_ref.push((r.group.clone(), r.kind.clone(), r.name.clone(), ref_ns));
                    }
                }
            }
        }
        for resource in self.objects() {
            match resource {
                Resource::ListenerSet(set) => {
                    let parent = &set.spec.parent_ref;
                    let parent_ns = parent
                        .namespace
                        .as_deref()
                        .unwrap_or(set.metadata.namespace());
                    let ours = served.iter().any(|g| {
                        g.metadata.name == parent.name && g.metadata.namespace() == parent_ns
                    });
                    if ours {
                        for listener in &set.spec.listeners {
                            for r in listener.tls.iter().flat_map(|t| &t.certificate_refs) {
                                secret_ref(r, set.metadata.namespace());
                            }
                        }
                    }
                }
                Resource::BackendTlsPolicy(policy) => {
                    for r in &policy.spec.validation.ca_certificate_refs {
                        by_ref.push((
                            r.group.clone(),
                            r.kind.clone(),
                            r.name.clone(),
                            policy.metadata.namespace().to_owned(),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (group, kind, name, ns) in by_ref {
            let kind = match (group.as_str(), kind.as_str()) {
                ("", "ConfigMap") => ResourceKind::ConfigMap,
                ("", "Secret") => ResourceKind::Secret,
                _ => continue,
            };
            if !name.is_empty() {
                out.insert(ObjectKey::new(kind, &ns, &name));
            }
        }
        out
    }
}

fn name_of(resource: &Resource) -> (String, String) {
    let meta = resource.metadata();
    (meta.namespace().to_owned(), meta.name.clone())
}

/// Reads one object from the API into the core model, without what changes on every write
/// and is not configuration: `status` (our own writes would otherwise come back as changes),
/// `resourceVersion` and `managedFields`. A Service keeps its `status` and `managedFields`:
/// nobody here writes its status, whose `loadBalancer.ingress` is the address of a Gateway's
/// provisioned Service, and the time our field manager last changed it dates the load
/// balancer's answers (see [`crate::ServiceOptions::plan`]).
///
/// An object that does not read is logged and left out, as the API server would not have
/// accepted it unless its CRD's schema differs from the model (a newer Gateway API release).
pub(crate) fn convert(kind: ResourceKind, mut value: Value) -> Option<Resource> {
    // Of the warning Events about Services, only the load balancers' refusals matter
    // (`ServiceOptions::plan`); keeping the others would only wake the control loop.
    if kind == ResourceKind::Event {
        let reason = value.get("reason").and_then(Value::as_str).unwrap_or("");
        if !crate::LOAD_BALANCER_FAILURE_REASONS.contains(&reason) {
            return None;
        }
    }
    if let Some(object) = value.as_object_mut() {
        if kind != ResourceKind::Service {
            object.remove("status");
        }
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            if kind != ResourceKind::Service {
                meta.remove("managedFields");
            }
        }
    }
    let name = || {
        let meta = value.get("metadata");
        let get = |f: &str| {
            meta.and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        ObjectKey::new(kind, &get("namespace"), &get("name"))
    };
    let key = name();
    match Resource::from_json(value) {
        Ok(Some(resource)) if resource.kind() == kind => Some(resource),
        Ok(_) => {
            tracing::warn!(object = %key, "object of an unexpected apiVersion or kind; ignored");
            None
        }
        Err(error) => {
            tracing::warn!(object = %key, %error, "object does not read; left out of the configuration");
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
