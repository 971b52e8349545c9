//! GatewayClass, Gateway (with its listeners) and ListenerSet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de::{nullable, string_enum};
use super::meta::{
    Condition, LabelSelector, Object, ObjectReference, ParametersReference, ParentReference,
    SecretObjectReference,
};

/// `GatewayClass` (cluster-scoped).
pub type GatewayClass = Object<GatewayClassSpec, GatewayClassStatus>;
/// `Gateway`.
pub type Gateway = Object<GatewaySpec, GatewayStatus>;
/// `ListenerSet`: extra listeners attached to a Gateway that allows them.
pub type ListenerSet = Object<ListenerSetSpec, ListenerSetStatus>;

/// `GatewayClass.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller that manages Gateways of this class.
    pub controller_name: String,
    /// Implementation-specific parameters (none are supported: a set ref is reported invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ParametersReference>,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GatewayClass.status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayClassStatus {
    /// Accepted (and SupportedVersion in the experimental channel).
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    /// Features the implementation supports, sorted by name.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub supported_features: Vec<SupportedFeature>,
}

/// One entry of `GatewayClass.status.supportedFeatures`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupportedFeature {
    /// Feature name as in the conformance suite.
    pub name: String,
}

string_enum! {
    /// Listener protocol.
    pub enum ProtocolType {
        /// Cleartext HTTP/1.1 and h2c.
        Http = "HTTP",
        /// HTTP over TLS terminated at the gateway.
        Https = "HTTPS",
        /// TLS, passed through or terminated, routed by SNI (TLSRoute).
        Tls = "TLS",
        /// Raw TCP (TCPRoute).
        Tcp = "TCP",
        /// UDP datagrams (UDPRoute).
        Udp = "UDP",
    }
}

impl Default for ProtocolType {
    fn default() -> Self {
        ProtocolType::Unknown(String::new())
    }
}

string_enum! {
    /// `tls.mode` of a listener.
    pub enum TlsModeType {
        /// Terminate TLS at the gateway (the default).
        Terminate = "Terminate",
        /// Forward the TLS stream untouched, routed by SNI.
        Passthrough = "Passthrough",
    }
}

string_enum! {
    /// `allowedRoutes.namespaces.from` and `allowedListeners.namespaces.from`.
    pub enum FromNamespaces {
        /// Any namespace.
        All = "All",
        /// Only namespaces whose labels match `selector`.
        Selector = "Selector",
        /// Only the Gateway's own namespace (the default).
        Same = "Same",
        /// No namespace (ListenerSets: the default).
        None = "None",
    }
}

/// `Gateway.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Name of the GatewayClass.
    pub gateway_class_name: String,
    /// Listeners (1–64).
    #[serde(deserialize_with = "nullable")]
    pub listeners: Vec<Listener>,
    /// Requested addresses (Extended).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewaySpecAddress>,
    /// Infrastructure labels, annotations and parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<GatewayInfrastructure>,
    /// Which ListenerSets may attach (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_listeners: Option<AllowedListeners>,
    /// Gateway-wide TLS: frontend client validation, backend client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsConfig>,
    /// Experimental default-Gateway scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_scope: Option<String>,
}

/// One entry of `Gateway.spec.addresses`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewaySpecAddress {
    /// `IPAddress` (default), `Hostname`, `NamedAddress` or a domain-prefixed type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The address; may be empty to let the implementation choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `Gateway.spec.infrastructure`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayInfrastructure {
    /// Labels for generated resources.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Annotations for generated resources.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Implementation-specific parameters (none are supported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ParametersReference>,
}

/// `Gateway.spec.allowedListeners`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AllowedListeners {
    /// Namespaces whose ListenerSets may attach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespacesFrom>,
}

/// `{from, selector}` used by `allowedRoutes.namespaces` and `allowedListeners.namespaces`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NamespacesFrom {
    /// Which namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<FromNamespaces>,
    /// Label selector for `from: Selector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `Gateway.spec.tls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayTlsConfig {
    /// TLS towards backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<GatewayBackendTls>,
    /// Client-certificate validation of downstream connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontend: Option<FrontendTlsConfig>,
}

/// `Gateway.spec.tls.backend`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayBackendTls {
    /// Client certificate the gateway presents to TLS backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<SecretObjectReference>,
}

/// `Gateway.spec.tls.frontend`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FrontendTlsConfig {
    /// Validation applied to every HTTPS/TLS-terminate port without a per-port entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<TlsConfig>,
    /// Per-port overrides.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub per_port: Vec<TlsPortConfig>,
}

/// A frontend TLS configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsConfig {
    /// Client certificate validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<FrontendTlsValidation>,
}

/// `validation` of a frontend TLS configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FrontendTlsValidation {
    /// CA bundles (ConfigMap key `ca.crt`) that client certificates must chain to.
    #[serde(deserialize_with = "nullable")]
    pub ca_certificate_refs: Vec<ObjectReference>,
    /// `AllowValidOnly` (default) or `AllowInsecureFallback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// `perPort` entry of the frontend TLS configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsPortConfig {
    /// The port this configuration applies to.
    pub port: i64,
    /// The configuration.
    pub tls: TlsConfig,
}

/// A listener of a Gateway or ListenerSet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Listener {
    /// Unique name within the Gateway (the Routes' `sectionName`).
    pub name: String,
    /// Host name the listener serves: exact or `*.` wildcard; absent means any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Port number (1–65535).
    pub port: i64,
    /// Protocol.
    pub protocol: ProtocolType,
    /// TLS settings (HTTPS and TLS listeners).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTlsConfig>,
    /// Which Routes may attach (default: same namespace, kinds by protocol).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// `listeners[].tls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerTlsConfig {
    /// `Terminate` (default) or `Passthrough`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsModeType>,
    /// Certificates, chosen by SNI among listeners sharing a port.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretObjectReference>,
    /// Implementation-specific options (domain-prefixed keys).
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

impl ListenerTlsConfig {
    /// The mode, with the default applied.
    pub fn mode(&self) -> TlsModeType {
        self.mode.clone().unwrap_or(TlsModeType::Terminate)
    }
}

/// `listeners[].allowedRoutes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// Namespaces Routes may come from (default `Same`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespacesFrom>,
    /// Route kinds; empty means the kinds the protocol supports.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

/// A Route kind with its group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// Group; default `gateway.networking.k8s.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (`HTTPRoute`, `GRPCRoute`, …).
    pub kind: String,
}

impl RouteGroupKind {
    /// The group, with the default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(super::GATEWAY_GROUP)
    }
}

/// `Gateway.status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Addresses the Gateway is reachable at.
    #[serde(deserialize_with = "nullable")]
    pub addresses: Vec<GatewayStatusAddress>,
    /// Accepted, Programmed (and ResolvedRefs for Gateway-level TLS refs).
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    /// One entry per listener.
    #[serde(deserialize_with = "nullable")]
    pub listeners: Vec<ListenerStatus>,
    /// Number of accepted ListenerSets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_listener_sets: Option<i64>,
}

/// An entry of `Gateway.status.addresses`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayStatusAddress {
    /// Address type (`IPAddress`, `Hostname`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The address.
    pub value: String,
}

/// An entry of `status.listeners`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// Valid Route kinds this listener accepts (only valid ones; may be empty).
    #[serde(deserialize_with = "nullable")]
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Number of Routes Accepted on this listener.
    pub attached_routes: i64,
    /// Accepted, Programmed, ResolvedRefs, Conflicted.
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}

/// `ListenerSet.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerSetSpec {
    /// The Gateway this set attaches to.
    pub parent_ref: ParentReference,
    /// Listeners (1–64), same shape as Gateway listeners.
    #[serde(deserialize_with = "nullable")]
    pub listeners: Vec<Listener>,
}

/// `ListenerSet.status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerSetStatus {
    /// Accepted, Programmed.
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    /// One entry per listener.
    #[serde(deserialize_with = "nullable")]
    pub listeners: Vec<ListenerStatus>,
}
