//! Objects by resource, namespace and name; the global resourceVersion counter; the event log
//! that watches read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::patch::{self, PatchKind};

/// The Gateway API group.
const GATEWAY: &str = "gateway.networking.k8s.io";

/// Kinds known from the start: `(group, version, plural, kind, namespaced)`. Any other kind is
/// registered when a manifest of it is seeded, or with `FakeApi::register`.
const WELL_KNOWN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "namespaces", "Namespace", false),
    ("", "v1", "services", "Service", true),
    ("", "v1", "endpoints", "Endpoints", true),
    ("", "v1", "secrets", "Secret", true),
    ("", "v1", "configmaps", "ConfigMap", true),
    ("", "v1", "pods", "Pod", true),
    ("", "v1", "events", "Event", true),
    ("events.k8s.io", "v1", "events", "Event", true),
    (
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    ),
    ("coordination.k8s.io", "v1", "leases", "Lease", true),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    (GATEWAY, "v1", "gatewayclasses", "GatewayClass", false),
    (GATEWAY, "v1", "gateways", "Gateway", true),
    (GATEWAY, "v1", "httproutes", "HTTPRoute", true),
    (GATEWAY, "v1", "grpcroutes", "GRPCRoute", true),
    (
        GATEWAY,
        "v1beta1",
        "referencegrants",
        "ReferenceGrant",
        true,
    ),
    (GATEWAY, "v1alpha2", "tlsroutes", "TLSRoute", true),
    (GATEWAY, "v1alpha2", "tcproutes", "TCPRoute", true),
    (GATEWAY, "v1alpha2", "udproutes", "UDPRoute", true),
    (
        GATEWAY,
        "v1alpha3",
        "backendtlspolicies",
        "BackendTLSPolicy",
        true,
    ),
];

/// A kind the fake serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceDef {
    /// API group, empty for the core group.
    pub(crate) group: String,
    /// The version objects are stored in (any version of the group is served, see the module docs).
    pub(crate) version: String,
    /// The plural resource name used in paths.
    pub(crate) plural: String,
    /// The kind.
    pub(crate) kind: String,
    /// Whether objects live in namespaces.
    pub(crate) namespaced: bool,
}

impl ResourceDef {
    /// A kind definition.
    pub(crate) fn new(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
    ) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            kind: kind.to_owned(),
            namespaced,
        }
    }

    /// The key objects of this kind are stored under.
    pub(crate) fn key(&self) -> ResourceKey {
        (self.group.clone(), self.plural.clone())
    }

    /// `apiVersion` for `version` of this kind's group.
    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// `plural.group`, as the API server names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// `(group, plural)`.
pub(crate) type ResourceKey = (String, String);

/// A plural guessed from a kind the way the API server's RESTMapper does for unknown kinds.
pub(crate) fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with('x') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// A failure as the API server reports it: a `Status` object and its HTTP code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status code.
    pub(crate) code: u16,
    /// `Status.reason`.
    pub(crate) reason: String,
    /// `Status.message`.
    pub(crate) message: String,
}

impl ApiError {
    /// An error with the reason the API server uses for `code`.
    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub(crate) fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(404, format!("{} \"{name}\" not found", def.qualified()))
    }

    fn already_exists(def: &ResourceDef, name: &str) -> Self {
        let mut error = Self::new(
            409,
            format!("{} \"{name}\" already exists", def.qualified()),
        );
        error.reason = "AlreadyExists".to_owned();
        error
    }

    pub(crate) fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
    }

    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, message)
    }

    /// The `Status` object of this error.
    pub(crate) fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// What a change did to an object, as watch events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One entry of the event log.
#[derive(Clone, Debug)]
pub(crate) struct LoggedEvent {
    /// The resourceVersion this change produced.
    pub(crate) rv: u64,
    pub(crate) key: ResourceKey,
    pub(crate) change: Change,
    /// The object after the change (for a deletion: its last state, with the deletion's rv).
    pub(crate) object: Value,
    /// The object before the change, to turn a modification into an ADDED or DELETED event for a
    /// watch whose selector the object enters or leaves.
    pub(crate) previous: Option<Value>,
}

/// Which part of an object an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The main resource over HTTP: everything but `.status`, which stays as it was.
    Main,
    /// The `status` subresource: only `.status`.
    Status,
    /// A test seeding the store as `kubectl apply` plus a status writer would: everything; a
    /// body without `.status` keeps the existing status.
    All,
}

/// The objects and their history.
#[derive(Debug)]
pub(crate) struct Store {
    resources: BTreeMap<ResourceKey, ResourceDef>,
    hidden: BTreeSet<ResourceKey>,
    objects: BTreeMap<ResourceKey, BTreeMap<(String, String), Value>>,
    rv: u64,
    log: Vec<LoggedEvent>,
    compacted: u64,
    next_uid: u64,
}

impl Default for Store {
    fn default() -> Self {
        let resources = WELL_KNOWN
            .iter()
            .map(|&(group, version, plural, kind, namespaced)| {
                let def = ResourceDef::new(group, version, plural, kind, namespaced);
                (def.key(), def)
            })
            .collect();
        Self {
            resources,
            hidden: BTreeSet::new(),
            objects: BTreeMap::new(),
            rv: 1,
            log: Vec::new(),
            compacted: 0,
            next_uid: 1,
        }
    }
}

fn name_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

/// The `metadata.resourceVersion` of an object, empty when unset.
pub(crate) fn rv_of(object: &Value) -> &str {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let Value::Object(members) = object else {
        return None;
    };
    let metadata = members.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata.as_object_mut()
}

/// The object without the fields a write does not compare (server-managed metadata).
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(Value::Object(metadata)) = copy.get_mut("metadata") {
        for field in ["resourceVersion", "generation", "managedFields"] {
            metadata.remove(field);
        }
    }
    copy
}

/// The object without metadata and status: what bumps `metadata.generation` when it changes.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Value::Object(members) = &mut copy {
        members.remove("metadata");
        members.remove("status");
    }
    copy
}

/// RFC 3339 in UTC, seconds precision, as `creationTimestamp` is written.
pub(crate) fn timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let days = i64::try_from(secs / 86_400).unwrap_or_default();
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Store {
    /// The newest resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// The resourceVersion below which history is gone: watches from an older one get 410.
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// A served kind by group and plural; 404 when unknown or hidden.
    pub(crate) fn resource(&self, group: &str, plural: &str) -> Result<&ResourceDef, ApiError> {
        let key = (group.to_owned(), plural.to_owned());
        match self.resources.get(&key) {
            Some(def) if !self.hidden.contains(&key) => Ok(def),
            _ => Err(ApiError::new(
                404,
                "the server could not find the requested resource",
            )),
        }
    }

    /// The kinds served (registered and not hidden).
    pub(crate) fn served(&self) -> impl Iterator<Item = &ResourceDef> {
        self.resources
            .iter()
            .filter(|(key, _)| !self.hidden.contains(*key))
            .map(|(_, def)| def)
    }

    /// A kind by group and kind name, whether hidden or not.
    pub(crate) fn resource_for_kind(&self, group: &str, kind: &str) -> Option<&ResourceDef> {
        self.resources
            .values()
            .find(|def| def.group == group && def.kind == kind)
    }

    /// Serves a kind (replacing an earlier definition of the same group and plural).
    pub(crate) fn register(&mut self, def: ResourceDef) {
        self.resources.insert(def.key(), def);
    }

    /// Makes a kind answer 404 (as when its CRD is not installed), or serves it again.
    pub(crate) fn set_hidden(&mut self, key: ResourceKey, hidden: bool) {
        if hidden {
            self.hidden.insert(key);
        } else {
            self.hidden.remove(&key);
        }
    }

    /// One object.
    pub(crate) fn get(&self, def: &ResourceDef, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&def.key())?
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The objects of a kind in `(namespace, name)` order, in one namespace or all.
    pub(crate) fn list(&self, def: &ResourceDef, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .get(&def.key())
            .map(|objects| {
                objects
                    .iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|wanted| wanted == ns))
                    .map(|(_, object)| object)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The logged events after `rv`, or `Err` when history after `rv` is compacted away.
    pub(crate) fn events_after(&self, rv: u64) -> Result<&[LoggedEvent], ApiError> {
        if rv < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                self.compacted
            )));
        }
        let start = self.log.partition_point(|event| event.rv <= rv);
        Ok(&self.log[start..])
    }

    /// Forgets all history up to now, as etcd compaction does.
    pub(crate) fn compact(&mut self) {
        self.compacted = self.rv;
        self.log.clear();
    }

    /// Creates an object. `keep_status` keeps a given `.status` (seeding); the API drops it.
    pub(crate) fn create(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        mut body: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && kind != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind `{kind}` of the body does not match the resource `{}`",
                def.plural
            )));
        }
        let name = match name_of(&body) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => match body
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(prefix) => format!("{prefix}{:05x}", self.next_uid),
                None => {
                    return Err(ApiError::new(
                        422,
                        "metadata.name or metadata.generateName is required",
                    ));
                }
            },
        };
        if self.get(def, namespace, &name).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        let body_namespace = body.pointer("/metadata/namespace").and_then(Value::as_str);
        if def.namespaced && body_namespace.is_some_and(|ns| !ns.is_empty() && ns != namespace) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Value::Object(members) = &mut body {
            members.insert(
                "apiVersion".to_owned(),
                Value::String(def.api_version(&def.version)),
            );
            members.insert("kind".to_owned(), Value::String(def.kind.clone()));
            if !keep_status {
                members.remove("status");
            }
        }
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.next_uid);
        self.next_uid += 1;
        if let Some(metadata) = metadata_mut(&mut body) {
            metadata.insert("name".to_owned(), Value::String(name.clone()));
            if def.namespaced {
                metadata.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
            } else {
                metadata.remove("namespace");
            }
            metadata.insert("uid".to_owned(), Value::String(uid));
            metadata.insert(
                "creationTimestamp".to_owned(),
                Value::String(timestamp(SystemTime::now())),
            );
            for field in ["resourceVersion", "deletionTimestamp", "managedFields"] {
                metadata.remove(field);
            }
        }
        Ok(self.commit(def, namespace, &name, None, body))
    }

    /// Replaces `part` of an existing object. `precondition` is the resourceVersion the writer
    /// read; a different current one is a 409 Conflict.
    pub(crate) fn update(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        body: Value,
        part: Part,
        precondition: Option<&str>,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let old = self
            .get(def, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        if precondition.is_some_and(|rv| !rv.is_empty() && rv != rv_of(&old)) {
            return Err(ApiError::conflict(def, name));
        }
        if name_of(&body).is_some_and(|body_name| body_name != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object does not match the name on the URL (`{name}`)"
            )));
        }
        let mut new = match part {
            Part::Status => {
                let mut new = old.clone();
                if let (Value::Object(members), Some(status)) = (&mut new, body.get("status")) {
                    members.insert("status".to_owned(), status.clone());
                } else if let Value::Object(members) = &mut new {
                    members.remove("status");
                }
                new
            }
            Part::Main | Part::All => {
                let mut new = body;
                let keep_old_status = part == Part::Main || new.get("status").is_none();
                if let (Value::Object(members), true) = (&mut new, keep_old_status) {
                    members.remove("status");
                    if let Some(status) = old.get("status") {
                        members.insert("status".to_owned(), status.clone());
                    }
                }
                let old_metadata = old.get("metadata").cloned().unwrap_or_default();
                if let Some(metadata) = metadata_mut(&mut new) {
                    for field in [
                        "name",
                        "namespace",
                        "uid",
                        "creationTimestamp",
                        "generation",
                        "deletionTimestamp",
                    ] {
                        metadata.remove(field);
                        if let Some(value) = old_metadata.get(field) {
                            metadata.insert(field.to_owned(), value.clone());
                        }
                    }
                }
                new
            }
        };
        if let Value::Object(members) = &mut new {
            members.insert(
                "apiVersion".to_owned(),
                Value::String(def.api_version(&def.version)),
            );
            members.insert("kind".to_owned(), Value::String(def.kind.clone()));
        }
        Ok(self.commit(def, namespace, name, Some(old), new))
    }

    /// Patches `part` of an object. A server-side apply of a missing object creates it.
    pub(crate) fn patch(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        part: Part,
    ) -> Result<(Value, bool), ApiError> {
        let Some(old) = self.get(def, namespace, name).cloned() else {
            if kind == PatchKind::Apply && part == Part::Main {
                let mut body = body.clone();
                if name_of(&body).is_none()
                    && let Some(metadata) = metadata_mut(&mut body)
                {
                    metadata.insert("name".to_owned(), Value::String(name.to_owned()));
                }
                if name_of(&body) != Some(name) {
                    return Err(ApiError::bad_request(
                        "the name of the applied object does not match the URL",
                    ));
                }
                return self
                    .create(def, namespace, body, false)
                    .map(|created| (created, true));
            }
            return Err(ApiError::not_found(def, name));
        };
        let mut patched = old.clone();
        match kind {
            PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
                if !body.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut patched, body);
            }
            PatchKind::Json => {
                patch::json_patch(&mut patched, body).map_err(|e| ApiError::new(422, e))?;
            }
        }
        if !patched.is_object() {
            return Err(ApiError::new(
                422,
                "the patched object is not a JSON object",
            ));
        }
        // A resourceVersion in the patch is a precondition, as on the API server.
        if rv_of(&patched) != rv_of(&old) {
            return Err(ApiError::conflict(def, name));
        }
        self.update(def, namespace, name, patched, part, None)
            .map(|updated| (updated, false))
    }

    /// Deletes an object; `precondition` as for [`Store::update`].
    pub(crate) fn delete(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        precondition: Option<&str>,
    ) -> Result<Value, ApiError> {
        let key = (namespace.to_owned(), name.to_owned());
        let old = self
            .get(def, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        if precondition.is_some_and(|rv| !rv.is_empty() && rv != rv_of(&old)) {
            return Err(ApiError::conflict(def, name));
        }
        if let Some(objects) = self.objects.get_mut(&def.key()) {
            objects.remove(&key);
        }
        self.rv += 1;
        let mut last = old.clone();
        if let Some(metadata) = metadata_mut(&mut last) {
            metadata.insert(
                "resourceVersion".to_owned(),
                Value::String(self.rv.to_string()),
            );
        }
        self.log.push(LoggedEvent {
            rv: self.rv,
            key: def.key(),
            change: Change::Deleted,
            object: last.clone(),
            previous: Some(old),
        });
        Ok(last)
    }

    /// Stores `new`, bumping the resourceVersion (and the generation on a spec change) and
    /// logging the event; a write that changes nothing is a no-op, as on the API server.
    fn commit(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        old: Option<Value>,
        mut new: Value,
    ) -> Value {
        let generation = match &old {
            Some(old) if comparable(old) == comparable(&new) => return old.clone(),
            Some(old) => {
                let current = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                current + i64::from(spec_part(old) != spec_part(&new))
            }
            None => 1,
        };
        self.rv += 1;
        if let Some(metadata) = metadata_mut(&mut new) {
            metadata.insert(
                "resourceVersion".to_owned(),
                Value::String(self.rv.to_string()),
            );
            metadata.insert("generation".to_owned(), Value::from(generation));
        }
        self.objects
            .entry(def.key())
            .or_default()
            .insert((namespace.to_owned(), name.to_owned()), new.clone());
        self.log.push(LoggedEvent {
            rv: self.rv,
            key: def.key(),
            change: if old.is_some() {
                Change::Modified
            } else {
                Change::Added
            },
            object: new.clone(),
            previous: old,
        });
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let time = UNIX_EPOCH + Duration::from_secs(1_795_654_923);
        assert_eq!(timestamp(time), "2026-11-26T01:02:03Z");
    }

    #[test]
    fn plurals() {
        assert_eq!(guess_plural("Gateway"), "gateways");
        assert_eq!(guess_plural("Policy"), "policies");
        assert_eq!(guess_plural("Ingress"), "ingresses");
    }
}
