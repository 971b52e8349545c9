//! Lookup tables over a snapshot, built once per compile.

use std::collections::{BTreeMap, HashMap};

use super::backend_tls::Policies;
use crate::model::{ConfigMap, EndpointSlice, ReferenceGrant, Secret, Service, Snapshot};

/// The label the API server puts on every Namespace.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

pub(super) struct Index<'s> {
    pub(super) snapshot: &'s Snapshot,
    namespace_labels: HashMap<&'s str, BTreeMap<String, String>>,
    secrets: HashMap<(&'s str, &'s str), &'s Secret>,
    config_maps: HashMap<(&'s str, &'s str), &'s ConfigMap>,
    services: HashMap<(&'s str, &'s str), &'s Service>,
    slices: HashMap<(String, String), Vec<&'s EndpointSlice>>,
    grants: HashMap<&'s str, Vec<&'s ReferenceGrant>>,
    /// The BackendTLSPolicies, judged (filled in by [`Index::new`] once the rest is built).
    pub(super) backend_tls: Policies<'s>,
}

/// One side of a cross-namespace reference, for ReferenceGrant checks.
pub(super) struct RefEnd<'a> {
    pub(super) group: &'a str,
    pub(super) kind: &'a str,
    pub(super) namespace: &'a str,
}

impl<'s> Index<'s> {
    pub(super) fn new(snapshot: &'s Snapshot) -> Self {
        let mut namespace_labels = HashMap::new();
        for ns in &snapshot.namespaces {
            let mut labels = ns.metadata.labels.clone();
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), ns.metadata.name.clone());
            namespace_labels.insert(ns.metadata.name.as_str(), labels);
        }
        let key = |m: &'s crate::model::ObjectMeta| (m.namespace(), m.name.as_str());
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for slice in &snapshot.endpoint_slices {
            if let Some(service) = slice.service_name() {
                slices
                    .entry((slice.metadata.namespace().to_owned(), service.to_owned()))
                    .or_default()
                    .push(slice);
            }
        }
        let mut grants: HashMap<_, Vec<_>> = HashMap::new();
        for grant in &snapshot.reference_grants {
            grants
                .entry(grant.metadata.namespace())
                .or_default()
                .push(grant);
        }
        let mut index = Index {
            snapshot,
            namespace_labels,
            secrets: snapshot
                .secrets
                .iter()
                .map(|s| (key(&s.metadata), s))
                .collect(),
            config_maps: snapshot
                .config_maps
                .iter()
                .map(|c| (key(&c.metadata), c))
                .collect(),
            services: snapshot
                .services
                .iter()
                .map(|s| (key(&s.metadata), s))
                .collect(),
            slices,
            grants,
            backend_tls: Policies::default(),
        };
        index.backend_tls = Policies::new(&index);
        index
    }

    /// Labels of a namespace, including the name label the API server always sets, so that
    /// selectors work for namespaces a folder of manifests never declares.
    pub(super) fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespace_labels
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| {
                [(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned())]
                    .into_iter()
                    .collect()
            })
    }

    pub(super) fn secret(&self, namespace: &str, name: &str) -> Option<&'s Secret> {
        self.secrets.get(&(namespace, name)).copied()
    }

    pub(super) fn config_map(&self, namespace: &str, name: &str) -> Option<&'s ConfigMap> {
        self.config_maps.get(&(namespace, name)).copied()
    }

    pub(super) fn service(&self, namespace: &str, name: &str) -> Option<&'s Service> {
        self.services.get(&(namespace, name)).copied()
    }

    pub(super) fn endpoint_slices(&self, namespace: &str, service: &str) -> &[&'s EndpointSlice] {
        self.slices
            .get(&(namespace.to_owned(), service.to_owned()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether a ReferenceGrant in the target's namespace lets `from` refer to the target.
    /// References within one namespace need no grant.
    pub(super) fn reference_allowed(
        &self,
        from: &RefEnd<'_>,
        to: &RefEnd<'_>,
        to_name: &str,
    ) -> bool {
        if from.namespace == to.namespace {
            return true;
        }
        self.grants.get(to.namespace).is_some_and(|grants| {
            grants.iter().any(|grant| {
                grant.spec.from.iter().any(|f| {
                    f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
                }) && grant.spec.to.iter().any(|t| {
                    t.group == to.group
                        && t.kind == to.kind
                        && t.name.as_deref().is_none_or(|n| n == to_name)
                })
            })
        })
    }
}
