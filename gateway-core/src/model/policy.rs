//! ReferenceGrant and BackendTLSPolicy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de::nullable;
use super::meta::{Condition, LocalObjectReference, Object, ParentReference};

/// `ReferenceGrant` (v1beta1 storage, v1 served).
pub type ReferenceGrant = Object<ReferenceGrantSpec, serde_json::Value>;
/// `BackendTLSPolicy`.
pub type BackendTlsPolicy = Object<BackendTlsPolicySpec, PolicyStatus>;

/// `ReferenceGrant.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceGrantSpec {
    /// Who may refer (ORed).
    #[serde(default, deserialize_with = "nullable")]
    pub from: Vec<ReferenceGrantFrom>,
    /// What may be referred to, in the grant's namespace (ORed).
    #[serde(default, deserialize_with = "nullable")]
    pub to: Vec<ReferenceGrantTo>,
}

/// `ReferenceGrant.spec.from[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceGrantFrom {
    /// Group of the referring kind (`""` is core).
    #[serde(default)]
    pub group: String,
    /// Referring kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace of the referring objects.
    #[serde(default)]
    pub namespace: String,
}

/// `ReferenceGrant.spec.to[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceGrantTo {
    /// Group of the target kind (`""` is core).
    #[serde(default)]
    pub group: String,
    /// Target kind.
    #[serde(default)]
    pub kind: String,
    /// Target name; absent grants every object of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `BackendTLSPolicy.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// Services (optionally one port by name) the policy applies to.
    #[serde(default, deserialize_with = "nullable")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// How the backend certificate is validated.
    #[serde(default)]
    pub validation: BackendTlsPolicyValidation,
    /// Implementation-specific options.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

/// A policy target (`targetRefs[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// Group of the target (`""` for Service).
    #[serde(default)]
    pub group: String,
    /// Kind of the target.
    #[serde(default)]
    pub kind: String,
    /// Name of the target.
    #[serde(default)]
    pub name: String,
    /// Port name on the target Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `BackendTLSPolicy.spec.validation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicyValidation {
    /// ConfigMaps (key `ca.crt`) holding trusted CAs.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System` to trust the platform roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_known_ca_certificates: Option<String>,
    /// SNI sent to the backend and the name verified (unless SANs are given).
    #[serde(default)]
    pub hostname: String,
    /// Names the backend certificate must carry.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A subject alternative name to verify.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAltName {
    /// `Hostname` or `URI`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// For `Hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// For `URI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// Status of a policy: one entry per ancestor (Gateway) and controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Per-ancestor conditions.
    #[serde(default, deserialize_with = "nullable")]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// One entry of [`PolicyStatus::ancestors`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The ancestor (usually a Gateway).
    #[serde(default)]
    pub ancestor_ref: ParentReference,
    /// Controller that wrote the entry.
    #[serde(default)]
    pub controller_name: String,
    /// Accepted, ResolvedRefs.
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}
