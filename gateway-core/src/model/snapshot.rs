//! A snapshot of every resource a source knows, and dispatch from `apiVersion`/`kind`.

use std::fmt;

use serde::de::DeserializeOwned;

use super::core::{ConfigMap, EndpointSlice, Event, Namespace, Secret, Service};
use super::gateway::{Gateway, GatewayClass, ListenerSet};
use super::meta::ObjectMeta;
use super::policy::{BackendTlsPolicy, ReferenceGrant};
use super::route::{GrpcRoute, HttpRoute, TcpRoute, TlsRoute, UdpRoute};

/// Every resource a [`ConfigSource`](crate::source::ConfigSource) knows at one instant.
///
/// Sources emit whole snapshots, not diffs; [`compile`](crate::compile::compile) is pure and
/// cheap enough to rerun on every change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// GatewayClasses.
    pub gateway_classes: Vec<GatewayClass>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// ListenerSets.
    pub listener_sets: Vec<ListenerSet>,
    /// HTTPRoutes.
    pub http_routes: Vec<HttpRoute>,
    /// GRPCRoutes.
    pub grpc_routes: Vec<GrpcRoute>,
    /// TLSRoutes.
    pub tls_routes: Vec<TlsRoute>,
    /// TCPRoutes.
    pub tcp_routes: Vec<TcpRoute>,
    /// UDPRoutes.
    pub udp_routes: Vec<UdpRoute>,
    /// ReferenceGrants.
    pub reference_grants: Vec<ReferenceGrant>,
    /// BackendTLSPolicies.
    pub backend_tls_policies: Vec<BackendTlsPolicy>,
    /// Secrets (TLS certificates).
    pub secrets: Vec<Secret>,
    /// ConfigMaps (CA bundles).
    pub config_maps: Vec<ConfigMap>,
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Namespaces (labels for `from: Selector`).
    pub namespaces: Vec<Namespace>,
    /// Events about provisioned Services (the load balancer's refusals); only sources that
    /// provision Services read them.
    pub events: Vec<Event>,
}

/// The kinds the model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// `GatewayClass`
    GatewayClass,
    /// `Gateway`
    Gateway,
    /// `ListenerSet`
    ListenerSet,
    /// `HTTPRoute`
    HttpRoute,
    /// `GRPCRoute`
    GrpcRoute,
    /// `TLSRoute`
    TlsRoute,
    /// `TCPRoute`
    TcpRoute,
    /// `UDPRoute`
    UdpRoute,
    /// `ReferenceGrant`
    ReferenceGrant,
    /// `BackendTLSPolicy`
    BackendTlsPolicy,
    /// `Secret`
    Secret,
    /// `ConfigMap`
    ConfigMap,
    /// `Service`
    Service,
    /// `EndpointSlice`
    EndpointSlice,
    /// `Namespace`
    Namespace,
    /// `Event` (core `v1`)
    Event,
}

impl ResourceKind {
    /// Every kind, in a stable order.
    pub const ALL: [ResourceKind; 16] = [
        ResourceKind::GatewayClass,
        ResourceKind::Gateway,
        ResourceKind::ListenerSet,
        ResourceKind::HttpRoute,
        ResourceKind::GrpcRoute,
        ResourceKind::TlsRoute,
        ResourceKind::TcpRoute,
        ResourceKind::UdpRoute,
        ResourceKind::ReferenceGrant,
        ResourceKind::BackendTlsPolicy,
        ResourceKind::Secret,
        ResourceKind::ConfigMap,
        ResourceKind::Service,
        ResourceKind::EndpointSlice,
        ResourceKind::Namespace,
        ResourceKind::Event,
    ];

    /// The `kind` as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::GatewayClass => "GatewayClass",
            ResourceKind::Gateway => "Gateway",
            ResourceKind::ListenerSet => "ListenerSet",
            ResourceKind::HttpRoute => "HTTPRoute",
            ResourceKind::GrpcRoute => "GRPCRoute",
            ResourceKind::TlsRoute => "TLSRoute",
            ResourceKind::TcpRoute => "TCPRoute",
            ResourceKind::UdpRoute => "UDPRoute",
            ResourceKind::ReferenceGrant => "ReferenceGrant",
            ResourceKind::BackendTlsPolicy => "BackendTLSPolicy",
            ResourceKind::Secret => "Secret",
            ResourceKind::ConfigMap => "ConfigMap",
            ResourceKind::Service => "Service",
            ResourceKind::EndpointSlice => "EndpointSlice",
            ResourceKind::Namespace => "Namespace",
            ResourceKind::Event => "Event",
        }
    }

    /// The API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            ResourceKind::Secret
            | ResourceKind::ConfigMap
            | ResourceKind::Service
            | ResourceKind::Namespace
            | ResourceKind::Event => "",
            ResourceKind::EndpointSlice => "discovery.k8s.io",
            _ => super::GATEWAY_GROUP,
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, ResourceKind::GatewayClass | ResourceKind::Namespace)
    }

    /// API versions read for this kind: every version upstream serves or served.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            ResourceKind::GatewayClass | ResourceKind::Gateway | ResourceKind::HttpRoute => {
                &["v1", "v1beta1"]
            }
            ResourceKind::ListenerSet => &["v1"],
            ResourceKind::GrpcRoute => &["v1", "v1alpha2"],
            ResourceKind::TlsRoute => &["v1", "v1alpha3", "v1alpha2"],
            ResourceKind::TcpRoute | ResourceKind::UdpRoute => &["v1", "v1alpha2"],
            ResourceKind::ReferenceGrant => &["v1", "v1beta1", "v1alpha2"],
            ResourceKind::BackendTlsPolicy => &["v1", "v1alpha3", "v1alpha2"],
            ResourceKind::Secret
            | ResourceKind::ConfigMap
            | ResourceKind::Service
            | ResourceKind::Namespace
            | ResourceKind::Event => &["v1"],
            ResourceKind::EndpointSlice => &["v1", "v1beta1"],
        }
    }

    /// Identifies the kind of a document from its `apiVersion` and `kind`.
    ///
    /// Returns `Ok(None)` for kinds the model does not read (Deployments, ConfigMaps of other
    /// uses are read, cert-manager Certificates are not, …), and an error for a known kind in
    /// a version upstream never served, so a typo in `apiVersion` is not silently ignored.
    pub fn identify(api_version: &str, kind: &str) -> Result<Option<ResourceKind>, UnknownVersion> {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        // ListenerSet was XListenerSet in the experimental x-k8s.io group before it graduated.
        if group == "gateway.networking.x-k8s.io" && kind == "XListenerSet" {
            return Ok(Some(ResourceKind::ListenerSet));
        }
        let Some(found) = ResourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && k.group() == group)
        else {
            return Ok(None);
        };
        if found.versions().contains(&version) {
            Ok(Some(found))
        } else {
            Err(UnknownVersion {
                kind: found,
                api_version: api_version.to_owned(),
            })
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A known kind written with an `apiVersion` upstream never served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} is not served as {api_version:?} (known versions: {known})", known = kind.versions().join(", "))]
pub struct UnknownVersion {
    /// The kind.
    pub kind: ResourceKind,
    /// The `apiVersion` as written.
    pub api_version: String,
}

/// Identifies one object: kind, namespace and name, displayed as `Kind namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Kind.
    pub kind: ResourceKind,
    /// Namespace (`""` for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(kind: ResourceKind, namespace: &str, name: &str) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The key of an object's metadata.
    pub fn of(kind: ResourceKind, meta: &ObjectMeta) -> Self {
        ObjectKey::new(kind, meta.namespace(), &meta.name)
    }
}

impl serde::Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("ObjectKey", 3)?;
        s.serialize_field("kind", self.kind.as_str())?;
        if self.namespace.is_empty() {
            s.skip_field("namespace")?;
        } else {
            s.serialize_field("namespace", &self.namespace)?;
        }
        s.serialize_field("name", &self.name)?;
        s.end()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One object of any kind the model reads.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // transient: resources are moved into a Snapshot at once
pub enum Resource {
    /// A GatewayClass.
    GatewayClass(GatewayClass),
    /// A Gateway.
    Gateway(Gateway),
    /// A ListenerSet.
    ListenerSet(ListenerSet),
    /// An HTTPRoute.
    HttpRoute(HttpRoute),
    /// A GRPCRoute.
    GrpcRoute(GrpcRoute),
    /// A TLSRoute.
    TlsRoute(TlsRoute),
    /// A TCPRoute.
    TcpRoute(TcpRoute),
    /// A UDPRoute.
    UdpRoute(UdpRoute),
    /// A ReferenceGrant.
    ReferenceGrant(ReferenceGrant),
    /// A BackendTLSPolicy.
    BackendTlsPolicy(BackendTlsPolicy),
    /// A Secret.
    Secret(Secret),
    /// A ConfigMap.
    ConfigMap(ConfigMap),
    /// A Service.
    Service(Service),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// A Namespace.
    Namespace(Namespace),
    /// An Event.
    Event(Event),
}

macro_rules! each_resource {
    ($value:expr, $bind:ident => $body:expr) => {
        match $value {
            Resource::GatewayClass($bind) => $body,
            Resource::Gateway($bind) => $body,
            Resource::ListenerSet($bind) => $body,
            Resource::HttpRoute($bind) => $body,
            Resource::GrpcRoute($bind) => $body,
            Resource::TlsRoute($bind) => $body,
            Resource::TcpRoute($bind) => $body,
            Resource::UdpRoute($bind) => $body,
            Resource::ReferenceGrant($bind) => $body,
            Resource::BackendTlsPolicy($bind) => $body,
            Resource::Secret($bind) => $body,
            Resource::ConfigMap($bind) => $body,
            Resource::Service($bind) => $body,
            Resource::EndpointSlice($bind) => $body,
            Resource::Namespace($bind) => $body,
            Resource::Event($bind) => $body,
        }
    };
}

impl Resource {
    /// Deserialises an object of a known kind with any serde deserializer (JSON, YAML, …),
    /// so adapters keep their own parser's error positions.
    pub fn deserialize<'de, D>(kind: ResourceKind, deserializer: D) -> Result<Resource, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        fn de<'de, T: DeserializeOwned, D: serde::Deserializer<'de>>(d: D) -> Result<T, D::Error> {
            serde::Deserialize::deserialize(d)
        }
        Ok(match kind {
            ResourceKind::GatewayClass => Resource::GatewayClass(de(deserializer)?),
            ResourceKind::Gateway => Resource::Gateway(de(deserializer)?),
            ResourceKind::ListenerSet => Resource::ListenerSet(de(deserializer)?),
            ResourceKind::HttpRoute => Resource::HttpRoute(de(deserializer)?),
            ResourceKind::GrpcRoute => Resource::GrpcRoute(de(deserializer)?),
            ResourceKind::TlsRoute => Resource::TlsRoute(de(deserializer)?),
            ResourceKind::TcpRoute => Resource::TcpRoute(de(deserializer)?),
            ResourceKind::UdpRoute => Resource::UdpRoute(de(deserializer)?),
            ResourceKind::ReferenceGrant => Resource::ReferenceGrant(de(deserializer)?),
            ResourceKind::BackendTlsPolicy => Resource::BackendTlsPolicy(de(deserializer)?),
            ResourceKind::Secret => Resource::Secret(de(deserializer)?),
            ResourceKind::ConfigMap => Resource::ConfigMap(de(deserializer)?),
            ResourceKind::Service => Resource::Service(de(deserializer)?),
            ResourceKind::EndpointSlice => Resource::EndpointSlice(de(deserializer)?),
            ResourceKind::Namespace => Resource::Namespace(de(deserializer)?),
            ResourceKind::Event => Resource::Event(de(deserializer)?),
        })
    }

    /// Reads a Kubernetes JSON object. `Ok(None)` for kinds the model does not read.
    pub fn from_json(value: serde_json::Value) -> Result<Option<Resource>, FromJsonError> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        let Some(kind) = ResourceKind::identify(api_version, kind)? else {
            return Ok(None);
        };
        Ok(Some(Resource::deserialize(kind, value)?))
    }

    /// The kind of this object.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::GatewayClass(_) => ResourceKind::GatewayClass,
            Resource::Gateway(_) => ResourceKind::Gateway,
            Resource::ListenerSet(_) => ResourceKind::ListenerSet,
            Resource::HttpRoute(_) => ResourceKind::HttpRoute,
            Resource::GrpcRoute(_) => ResourceKind::GrpcRoute,
            Resource::TlsRoute(_) => ResourceKind::TlsRoute,
            Resource::TcpRoute(_) => ResourceKind::TcpRoute,
            Resource::UdpRoute(_) => ResourceKind::UdpRoute,
            Resource::ReferenceGrant(_) => ResourceKind::ReferenceGrant,
            Resource::BackendTlsPolicy(_) => ResourceKind::BackendTlsPolicy,
            Resource::Secret(_) => ResourceKind::Secret,
            Resource::ConfigMap(_) => ResourceKind::ConfigMap,
            Resource::Service(_) => ResourceKind::Service,
            Resource::EndpointSlice(_) => ResourceKind::EndpointSlice,
            Resource::Namespace(_) => ResourceKind::Namespace,
            Resource::Event(_) => ResourceKind::Event,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each_resource!(self, r => &r.metadata)
    }

    /// The object's metadata, mutably (adapters fill in default namespaces).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each_resource!(self, r => &mut r.metadata)
    }

    /// `Kind namespace/name` of this object.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::of(self.kind(), self.metadata())
    }
}

/// Why [`Resource::from_json`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FromJsonError {
    /// A known kind in an unknown version.
    #[error(transparent)]
    UnknownVersion(#[from] UnknownVersion),
    /// The object does not have the kind's shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Snapshot {
    /// Adds one object to the snapshot.
    pub fn push(&mut self, resource: Resource) {
        match resource {
            Resource::GatewayClass(r) => self.gateway_classes.push(r),
            Resource::Gateway(r) => self.gateways.push(r),
            Resource::ListenerSet(r) => self.listener_sets.push(r),
            Resource::HttpRoute(r) => self.http_routes.push(r),
            Resource::GrpcRoute(r) => self.grpc_routes.push(r),
            Resource::TlsRoute(r) => self.tls_routes.push(r),
            Resource::TcpRoute(r) => self.tcp_routes.push(r),
            Resource::UdpRoute(r) => self.udp_routes.push(r),
            Resource::ReferenceGrant(r) => self.reference_grants.push(r),
            Resource::BackendTlsPolicy(r) => self.backend_tls_policies.push(r),
            Resource::Secret(r) => self.secrets.push(r),
            Resource::ConfigMap(r) => self.config_maps.push(r),
            Resource::Service(r) => self.services.push(r),
            Resource::EndpointSlice(r) => self.endpoint_slices.push(r),
            Resource::Namespace(r) => self.namespaces.push(r),
            Resource::Event(r) => self.events.push(r),
        }
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.gateway_classes.len()
            + self.gateways.len()
            + self.listener_sets.len()
            + self.http_routes.len()
            + self.grpc_routes.len()
            + self.tls_routes.len()
            + self.tcp_routes.len()
            + self.udp_routes.len()
            + self.reference_grants.len()
            + self.backend_tls_policies.len()
            + self.secrets.len()
            + self.config_maps.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.namespaces.len()
            + self.events.len()
    }

    /// Whether the snapshot holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromIterator<Resource> for Snapshot {
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> Self {
        let mut snapshot = Snapshot::default();
        for resource in iter {
            snapshot.push(resource);
        }
        snapshot
    }
}

impl Extend<Resource> for Snapshot {
    fn extend<I: IntoIterator<Item = Resource>>(&mut self, iter: I) {
        for resource in iter {
            self.push(resource);
        }
    }
}
