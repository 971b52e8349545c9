//! Object metadata, references and conditions shared by every kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de::nullable;
use super::reason::{ConditionType, Reason};

/// The API group of the Gateway API kinds.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// `metadata` of a Kubernetes object: the fields the gateway reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    pub name: String,
    /// Namespace; `None` for cluster-scoped kinds and for manifests that leave it to the
    /// adapter's default namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels (namespace labels drive `allowedRoutes.namespaces.from: Selector`).
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Spec generation, echoed as `observedGeneration` in conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// RFC 3339 creation time; the oldest route wins precedence ties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Opaque version used by the Kubernetes adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Unique id assigned by the API server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The objects this one belongs to (`metadata.ownerReferences`); a provisioned Service
    /// names its Gateway here, so that Kubernetes deletes it with the Gateway.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Who last set which fields when (`metadata.managedFields`, without the field sets).
    /// Adapters keep it only where it is needed: on a provisioned Service, the time its
    /// controller last changed what it applies dates the load balancer's answers.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// An entry of `metadata.managedFields`: a field manager, how it wrote, and when its fields
/// last changed (the field set itself is not read).
///
/// ```
/// let meta: gateway_core::model::ObjectMeta = serde_json::from_value(serde_json::json!({
///     "name": "web-gw",
///     "managedFields": [{"manager": "example.com/gateway", "operation": "Apply",
///                        "time": "2026-12-03T16:00:00Z", "fieldsType": "FieldsV1",
///                        "fieldsV1": {"f:spec": {}}}]
/// }))?;
/// assert_eq!(meta.managed_fields[0].time.as_deref(), Some("2026-12-03T16:00:00Z"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    /// The field manager.
    pub manager: String,
    /// `Apply` (server-side apply) or `Update`.
    pub operation: String,
    /// The subresource written (`status`), empty for the object itself.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// RFC 3339 time at which the manager's fields last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// An entry of `metadata.ownerReferences`.
///
/// ```
/// let meta: gateway_core::model::ObjectMeta = serde_json::from_value(serde_json::json!({
///     "name": "web-gw", "namespace": "shop",
///     "ownerReferences": [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
///                          "name": "web", "uid": "0b6e", "controller": true}]
/// }))?;
/// assert_eq!(meta.owner_references[0].name, "web");
/// assert_eq!(meta.owner_references[0].controller, Some(true));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerReference {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// Kind of the owner.
    pub kind: String,
    /// Name of the owner (same namespace as the owned object).
    pub name: String,
    /// `metadata.uid` of the owner.
    pub uid: String,
    /// Whether the owner is the managing controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether deleting the owner in the foreground waits for this object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

impl ObjectMeta {
    /// The namespace, or `""` when unset.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// Creation time in seconds since the Unix epoch, when present and well formed.
    pub fn created_at(&self) -> Option<i64> {
        self.creation_timestamp.as_deref().and_then(parse_rfc3339)
    }
}

/// Parses the RFC 3339 timestamps Kubernetes writes (`2024-01-02T03:04:05Z`, optionally with
/// fractional seconds or a numeric offset) into seconds since the Unix epoch.
///
/// Hand-written because precedence only needs whole seconds and the core crate should not
/// carry a date-time library for one comparison.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' || !matches!(rb[0], b'+' | b'-') {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rb[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// A reference from a Route to its parent (`spec.parentRefs[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentReference {
    /// Group of the parent; default `gateway.networking.k8s.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; default `Gateway`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the parent; default the Route's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the parent.
    pub name: String,
    /// Listener name to attach to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Listener port to attach to (Extended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

impl ParentReference {
    /// The group, with the default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GATEWAY_GROUP)
    }
    /// The kind, with the default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }
}

/// A reference to a backend (`backendRefs[]`, `requestMirror.backendRef`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendRef {
    /// Group; default `""` (core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; default `Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referent.
    pub name: String,
    /// Namespace; default the Route's namespace (another one needs a ReferenceGrant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the Service (required for Services).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Share of traffic; default 1, 0 means no traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

impl BackendRef {
    /// The group, with the default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }
    /// The kind, with the default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Service")
    }
    /// The weight, with the default applied.
    pub fn weight(&self) -> i64 {
        self.weight.unwrap_or(1)
    }
}

/// A reference to a Secret (listener `certificateRefs`, backend client certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretObjectReference {
    /// Group; default `""`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; default `Secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referent.
    pub name: String,
    /// Namespace; default the referencing object's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl SecretObjectReference {
    /// The group, with the default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }
    /// The kind, with the default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Secret")
    }
}

/// A reference to an object by group, kind, name and optional namespace (CA certificate refs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectReference {
    /// Group of the referent (`""` is core).
    pub group: String,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace; default the referencing object's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to an object in the same namespace (filters' `extensionRef`, policy CA refs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// Group of the referent.
    pub group: String,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
}

/// `parametersRef` of a GatewayClass or Gateway infrastructure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ParametersReference {
    /// Group of the referent.
    pub group: String,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace, for namespaced referents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector. An unknown operator never matches, so a typo
    /// denies rather than grants.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match req.operator.as_str() {
                    "In" => value.is_some_and(|v| req.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// A status condition, as Kubernetes writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Condition {
    /// Condition type (`Accepted`, `Programmed`, `ResolvedRefs`, …).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Upstream reason name.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// `metadata.generation` the condition was computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Set by status writers; compile has no clock and leaves it empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    /// Builds a condition; `status` is rendered as `True`/`False`.
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: Reason,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Self {
        Condition {
            type_: type_.as_str().to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.as_str().to_owned(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: None,
        }
    }

    /// Whether the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    /// Whether this is a condition of type `type_`.
    pub fn is(&self, type_: ConditionType) -> bool {
        self.type_ == type_.as_str()
    }
}

/// `status.parents[]` of a Route: one entry per parent, per controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parentRef this entry is about, with group and kind written explicitly.
    pub parent_ref: ParentReference,
    /// The controller that wrote the entry.
    pub controller_name: String,
    /// Accepted, ResolvedRefs, PartiallyInvalid.
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}

/// `status` of every Route kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteStatus {
    /// One entry per (parent, controller).
    #[serde(deserialize_with = "nullable")]
    pub parents: Vec<RouteParentStatus>,
}

/// A Kubernetes object: type metadata, `metadata`, `spec` and `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(
    serialize = "Spec: Serialize, Status: Serialize",
    deserialize = "Spec: Deserialize<'de> + Default, Status: Deserialize<'de>"
))]
pub struct Object<Spec, Status> {
    /// `apiVersion` as written (`gateway.networking.k8s.io/v1`, …).
    #[serde(default)]
    pub api_version: String,
    /// `kind` as written.
    #[serde(default)]
    pub kind: String,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: Spec,
    /// Observed state, as last written by a controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T13:00:00.123+01:00"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_rfc3339("2024-02-29"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00+0100"), None);
    }

    #[test]
    fn selector_operators() {
        let labels: BTreeMap<String, String> = [("env".to_owned(), "prod".to_owned())]
            .into_iter()
            .collect();
        let sel = |op: &str, values: &[&str]| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: op.into(),
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
        };
        assert!(sel("In", &["prod"]).matches(&labels));
        assert!(!sel("NotIn", &["prod"]).matches(&labels));
        assert!(sel("Exists", &[]).matches(&labels));
        assert!(!sel("DoesNotExist", &[]).matches(&labels));
        assert!(!sel("Bogus", &[]).matches(&labels));
        assert!(LabelSelector::default().matches(&labels));
    }
}
