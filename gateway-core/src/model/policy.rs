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
#[serde(default)]
pub struct ReferenceGrantSpec {
    /// Who may refer (ORed).
    #[serde(deserialize_with = "nullable")]
    pub from: Vec<ReferenceGrantFrom>,
    /// What may be referred to, in the grant's namespace (ORed).
    #[serde(deserialize_with = "nullable")]
    pub to: Vec<ReferenceGrantTo>,
}

/// `ReferenceGrant.spec.from[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReferenceGrantFrom {
    /// Group of the referring kind (`""` is core).
    pub group: String,
    /// Referring kind.
    pub kind: String,
    /// Namespace of the referring objects.
    pub namespace: String,
}

/// `ReferenceGrant.spec.to[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReferenceGrantTo {
    /// Group of the target kind (`""` is core).
    pub group: String,
    /// Target kind.
    pub kind: String,
    /// Target name; absent grants every object of the kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `BackendTLSPolicy.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// Services (optionally one port by name) the policy applies to.
    #[serde(deserialize_with = "nullable")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// How the backend certificate is validated.
    pub validation: BackendTlsPolicyValidation,
    /// Implementation-specific options.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

/// A policy target (`targetRefs[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// Group of the target (`""` for Service).
    pub group: String,
    /// Kind of the target.
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Port name on the target Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `BackendTLSPolicy.spec.validation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendTlsPolicyValidation {
    /// ConfigMaps (key `ca.crt`) holding trusted CAs.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System` to trust the platform roots.
    #[serde(
        rename = "wellKnownCACertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub well_known_ca_certificates: Option<String>,
    /// SNI sent to the backend and the name verified (unless SANs are given).
    pub hostname: String,
    /// Names the backend certificate must carry.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A subject alternative name to verify.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubjectAltName {
    /// `Hostname` or `URI`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `Hostname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// For `URI`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// Status of a policy: one entry per ancestor (Gateway) and controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Per-ancestor conditions.
    #[serde(deserialize_with = "nullable")]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// One entry of [`PolicyStatus::ancestors`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The ancestor (usually a Gateway).
    pub ancestor_ref: ParentReference,
    /// Controller that wrote the entry.
    pub controller_name: String,
    /// Accepted, ResolvedRefs.
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}
