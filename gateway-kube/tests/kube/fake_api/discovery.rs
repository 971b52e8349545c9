//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`), classic and
//! aggregated (v2), built from the kinds the fake serves. Each kind is listed at its stored
//! version only (the other versions of its group are served but not advertised).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::{ResourceDef, Store};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// Orders versions as the API server prefers them: GA, then beta, then alpha, newest first.
fn priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (level, major, minor)
}

/// Group name → version → kinds, best version first within each group.
fn groups(store: &Store) -> BTreeMap<String, Vec<(String, Vec<ResourceDef>)>> {
    let mut by_group: BTreeMap<String, BTreeMap<String, Vec<ResourceDef>>> = BTreeMap::new();
    for def in store.served() {
        by_group
            .entry(def.group.clone())
            .or_default()
            .entry(def.version.clone())
            .or_default()
            .push(def.clone());
    }
    by_group
        .into_iter()
        .map(|(group, versions)| {
            let mut versions: Vec<_> = versions.into_iter().collect();
            versions.sort_by_key(|(version, _)| std::cmp::Reverse(priority(version)));
            (group, versions)
        })
        .collect()
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn api_group(group: &str, versions: &[(String, Vec<ResourceDef>)]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|(version, _)| json!({"groupVersion": group_version(group, version), "version": version}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

fn resource_list(group: &str, version: &str, defs: &[ResourceDef]) -> Value {
    let mut resources = Vec::new();
    for def in defs {
        resources.push(json!({
            "name": def.plural,
            "singularName": def.kind.to_ascii_lowercase(),
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": VERBS,
        }));
        resources.push(json!({
            "name": format!("{}/status", def.plural),
            "singularName": "",
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": STATUS_VERBS,
        }));
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

fn aggregated_group(group: &str, versions: &[(String, Vec<ResourceDef>)]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|(version, defs)| {
            let resources: Vec<Value> = defs
                .iter()
                .map(|def| {
                    let kind = json!({"group": group, "version": version, "kind": def.kind});
                    json!({
                        "resource": def.plural,
                        "responseKind": kind,
                        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": def.kind.to_ascii_lowercase(),
                        "verbs": VERBS,
                        "subresources": [{"subresource": "status", "responseKind": kind, "verbs": STATUS_VERBS}],
                    })
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

fn aggregated_list(items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// The discovery document at `path`, `None` when `path` is no discovery path (or names an
/// unknown group or version). `aggregated` answers `/api` and `/apis` in the v2 form.
pub(crate) fn document(store: &Store, path: &str, aggregated: bool) -> Option<Value> {
    let groups = groups(store);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api"] if aggregated => {
            let core = groups
                .get("")
                .map(|versions| aggregated_group("", versions));
            Some(aggregated_list(core.into_iter().collect()))
        }
        ["api"] => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })),
        ["apis"] if aggregated => Some(aggregated_list(
            groups
                .iter()
                .filter(|(group, _)| !group.is_empty())
                .map(|(group, versions)| aggregated_group(group, versions))
                .collect(),
        )),
        ["apis"] => {
            let list: Vec<Value> = groups
                .iter()
                .filter(|(group, _)| !group.is_empty())
                .map(|(group, versions)| api_group(group, versions))
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}))
        }
        ["apis", group] => groups
            .get(*group)
            .map(|versions| api_group(group, versions)),
        ["api", version] => find(&groups, "", version),
        ["apis", group, version] => find(&groups, group, version),
        _ => None,
    }
}

fn find(
    groups: &BTreeMap<String, Vec<(String, Vec<ResourceDef>)>>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let versions = groups.get(group)?;
    let (_, defs) = versions.iter().find(|(v, _)| v == version)?;
    Some(resource_list(group, version, defs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority() {
        let mut versions = vec!["v1alpha2", "v1", "v1beta1", "v2", "v1alpha3"];
        versions.sort_by_key(|v| std::cmp::Reverse(priority(v)));
        assert_eq!(versions, ["v2", "v1", "v1beta1", "v1alpha3", "v1alpha2"]);
    }
}
