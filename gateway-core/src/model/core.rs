//! The core Kubernetes objects Gateway API resources point at.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::de::nullable;
use super::meta::ObjectMeta;

/// `Secret` (only TLS material is used).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Secret {
    /// `v1`.
    pub api_version: String,
    /// `Secret`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Secret type, e.g. `kubernetes.io/tls`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Base64-encoded values. Kept encoded so that one bad value only invalidates the
    /// listeners that use it, not the whole document.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, String>,
    /// Plain-text values; they win over `data`, as in the API server.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub string_data: BTreeMap<String, String>,
}

/// A value that could not be decoded from a Secret or ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?} is not valid base64")]
pub struct DecodeError {
    /// The key whose value is broken.
    pub key: String,
}

impl Secret {
    /// The decoded value of `key`: `stringData` first, then base64 `data`.
    pub fn get(&self, key: &str) -> Option<Result<Vec<u8>, DecodeError>> {
        lookup(&self.string_data, &self.data, key)
    }
}

/// The value of `key`: from the plain-text map first, else decoded from the base64 map.
fn lookup(
    plain: &BTreeMap<String, String>,
    base64: &BTreeMap<String, String>,
    key: &str,
) -> Option<Result<Vec<u8>, DecodeError>> {
    if let Some(text) = plain.get(key) {
        return Some(Ok(text.as_bytes().to_vec()));
    }
    base64.get(key).map(|encoded| decode_base64(key, encoded))
}

fn decode_base64(key: &str, encoded: &str) -> Result<Vec<u8>, DecodeError> {
    // Manifests often wrap long base64 values over lines; the API server accepts only the
    // unwrapped form in JSON, but YAML block scalars keep the newlines.
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| DecodeError {
            key: key.to_owned(),
        })
}

/// `ConfigMap` (CA bundles for frontend validation and BackendTLSPolicy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigMap {
    /// `v1`.
    pub api_version: String,
    /// `ConfigMap`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Text values.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, String>,
    /// Base64-encoded binary values.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub binary_data: BTreeMap<String, String>,
}

impl ConfigMap {
    /// The value of `key`: `data` first, then base64 `binaryData`.
    pub fn get(&self, key: &str) -> Option<Result<Vec<u8>, DecodeError>> {
        lookup(&self.data, &self.binary_data, key)
    }
}

/// `Namespace` (its labels drive `from: Selector`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Namespace {
    /// `v1`.
    pub api_version: String,
    /// `Namespace`.
    pub kind: String,
    /// Metadata (name and labels).
    pub metadata: ObjectMeta,
}

/// `Event` (`v1`, `events` of the core group): what a controller reported about an object,
/// read for the load balancer's answers about a provisioned Service.
///
/// ```
/// let event: gateway_core::model::Event = serde_json::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "Event",
///     "metadata": {"name": "web-gw.1", "namespace": "shop"},
///     "involvedObject": {"kind": "Service", "namespace": "shop", "name": "web-gw", "uid": "7c1e"},
///     "type": "Warning", "reason": "AllocationFailed",
///     "message": "Failed to allocate IP for \"shop/web-gw\": [\"192.0.2.1\"] is not allowed in config",
///     "firstTimestamp": "2026-12-03T16:00:00Z", "lastTimestamp": "2026-12-03T16:00:05Z", "count": 2
/// }))?;
/// assert_eq!(event.involved_object.name, "web-gw");
/// assert_eq!(event.last_seen(), Some(1796313605));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Event {
    /// `v1`.
    pub api_version: String,
    /// `Event`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The object the event is about.
    pub involved_object: EventObject,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Machine-readable reason (`AllocationFailed`).
    pub reason: String,
    /// What happened, for people.
    pub message: String,
    /// When first seen (seconds precision), for events recorded the older way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<String>,
    /// When last seen (seconds precision), for events recorded the older way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
    /// When first seen (microseconds), for events recorded through `events.k8s.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// Repeats of the event recorded through `events.k8s.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<EventSeries>,
}

impl Event {
    /// When the event was last seen, in whole seconds since the Unix epoch: the latest of its
    /// timestamps that reads.
    pub fn last_seen(&self) -> Option<i64> {
        [
            self.last_timestamp.as_deref(),
            self.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_deref()),
            self.event_time.as_deref(),
            self.first_timestamp.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(super::meta::parse_rfc3339)
        .max()
    }
}

/// `involvedObject` of an [`Event`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EventObject {
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid` of the object when the event was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// `series` of an [`Event`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EventSeries {
    /// How many times it was seen.
    pub count: i64,
    /// When last seen (microseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_observed_time: Option<String>,
}

/// `Service`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Service {
    /// `v1`.
    pub api_version: String,
    /// `Service`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Ports and type.
    pub spec: ServiceSpec,
    /// Observed state: the load balancer's addresses (for `type: LoadBalancer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

impl Service {
    /// The addresses the load balancer assigned (`status.loadBalancer.ingress`), in order.
    ///
    /// ```
    /// let service: gateway_core::model::Service = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "web", "namespace": "default"},
    ///     "spec": {"type": "LoadBalancer"},
    ///     "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}
    /// }))?;
    /// assert_eq!(service.load_balancer_ingress()[0].ip.as_deref(), Some("203.0.113.7"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn load_balancer_ingress(&self) -> &[LoadBalancerIngress] {
        self.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .map_or(&[], |lb| lb.ingress.as_slice())
    }
}

/// `Service.status`: only what the gateway reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The load balancer's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
}

/// `Service.status.loadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    /// The addresses traffic for the Service arrives at.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// One entry of `Service.status.loadBalancer.ingress`: an IP address, a host name, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    /// An IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A DNS name (load balancers that hand out names, not addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `Service.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer`, `ExternalName`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Ports.
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ServicePort>,
    /// Cluster IP (`None` for headless Services).
    #[serde(rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// Pod selector (absent for Services with manual EndpointSlices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// Target of an `ExternalName` Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// The address asked of the load balancer (deprecated upstream, still honoured by many).
    #[serde(rename = "loadBalancerIP", skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<String>,
}

/// `Service.spec.ports[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    /// Port name (required when there are several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The Service port that backendRefs name.
    pub port: i64,
    /// Port on the endpoints: a number or a container port name; default `port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Application protocol (`kubernetes.io/h2c`, `kubernetes.io/ws`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl ServicePort {
    /// The protocol, with the default applied.
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("TCP")
    }
}

/// A number or a name (`targetPort`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A port number.
    Int(i64),
    /// A port name.
    String(String),
}

/// `EndpointSlice` (discovery.k8s.io/v1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSlice {
    /// `discovery.k8s.io/v1`.
    pub api_version: String,
    /// `EndpointSlice`.
    pub kind: String,
    /// Metadata; the label `kubernetes.io/service-name` names the Service.
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    /// Endpoints.
    #[serde(deserialize_with = "nullable")]
    pub endpoints: Vec<Endpoint>,
    /// Ports; `None` means every port of the Service, an empty list means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<EndpointPort>>,
}

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl EndpointSlice {
    /// The Service this slice belongs to.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

/// `EndpointSlice.endpoints[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    /// Addresses (one for IP address types).
    #[serde(deserialize_with = "nullable")]
    pub addresses: Vec<String>,
    /// Readiness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<EndpointConditions>,
    /// Host name of the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Node hosting the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Zone of the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Endpoint {
    /// Whether the endpoint should receive traffic: `ready` unset counts as ready (the API's
    /// rule), and terminating endpoints do not.
    pub fn is_ready(&self) -> bool {
        match &self.conditions {
            None => true,
            Some(c) => c.ready.unwrap_or(true) && !c.terminating.unwrap_or(false),
        }
    }
}

/// `EndpointSlice.endpoints[].conditions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointConditions {
    /// Ready to receive traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Serving (may be true while terminating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// Shutting down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

/// `EndpointSlice.ports[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointPort {
    /// Name; equals the Service port's name (`""` for an unnamed port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `TCP` (default), `UDP`, `SCTP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port number on the endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Application protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}
