//! Objects as the API server sends them, fed straight into the index.

use std::path::PathBuf;

use gateway_core::compile::{Options, compile};
use serde_json::json;

use super::*;

const ENVOY: &str = "gateway.envoyproxy.io/gatewayclass-controller";

/// The seed demo's manifests as JSON objects, the way the API server returns them: with the
/// namespace filled in, a resourceVersion, managedFields and a status.
pub(crate) fn seed_objects() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-demo");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for (n, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in text.split("\n---") {
            let mut value: Value = serde_saphyr::from_str(doc).unwrap();
            if value.is_null() {
                continue;
            }
            let kind = value["kind"].as_str().unwrap().to_owned();
            let meta = value["metadata"].as_object_mut().unwrap();
            if !matches!(kind.as_str(), "GatewayClass" | "Namespace") {
                meta.entry("namespace").or_insert(json!("default"));
            } else {
                meta.remove("namespace");
            }
            meta.insert("resourceVersion".into(), json!(format!("{n}")));
            meta.insert("managedFields".into(), json!([{"manager": "kubectl"}]));
            value["status"] = json!({"conditions": []});
            out.push(value);
        }
    }
    out
}

fn kind_of(value: &Value) -> ResourceKind {
    ResourceKind::identify(
        value["apiVersion"].as_str().unwrap(),
        value["kind"].as_str().unwrap(),
    )
    .unwrap()
    .unwrap()
}

fn key_of(value: &Value) -> ObjectKey {
    ObjectKey::new(
        kind_of(value),
        value["metadata"]["namespace"].as_str().unwrap_or(""),
        value["metadata"]["name"].as_str().unwrap(),
    )
}

/// An index with a watch per collection, each listed from `objects`, and the referenced
/// Secrets watched one by one, as the source runs them.
fn synced_index(controller: &str, gateway: Option<GatewayRef>, objects: &[Value]) -> Index {
    let mut index = Index::new(controller, gateway);
    for kind in crate::kinds::watched() {
        let id = WatchId::Kind(kind);
        index.add_watch(id.clone());
        index.apply(&id, Change::Restart);
        for object in objects.iter().filter(|o| kind_of(o) == kind) {
            index.apply(&id, Change::Item(object.clone()));
        }
        index.apply(&id, Change::Listed);
    }
    for key in index.referenced() {
        let id = WatchId::Object(key.clone());
        index.add_watch(id.clone());
        index.apply(&id, Change::Restart);
        for object in objects.iter().filter(|o| key_of(o) == key) {
            index.apply(&id, Change::Item(object.clone()));
        }
        index.apply(&id, Change::Listed);
    }
    index
}

#[test]
fn the_seed_demo_compiles_as_gateway_check_compiles_it() {
    let index = synced_index(ENVOY, None, &seed_objects());
    assert!(index.is_synced());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-demo");
    let from_files = gateway_file::load(&dir, &Default::default()).unwrap();
    let options = Options {
        controller_name: Some(ENVOY.into()),
        ..Options::default()
    };
    let (_, from_api) = compile(&index.snapshot(), &options);
    let (_, expected) = compile(&from_files, &options);
    assert_eq!(from_api.to_table(), expected.to_table());
    assert_eq!(from_api, expected);
    assert!(from_api.all_healthy(), "{}", from_api.to_table());
    assert_eq!(index.snapshot().len(), from_files.len());
}

#[test]
fn only_the_secrets_of_served_gateways_are_referenced() {
    let mut objects = seed_objects();
    let index = synced_index(ENVOY, None, &objects);
    let referenced: Vec<String> = index.referenced().iter().map(|k| k.to_string()).collect();
    assert_eq!(referenced, ["Secret platform/selfsigned-tls"]);
    // Not our class: nothing is read.
    let index = synced_index("someone.else/controller", None, &objects);
    assert!(index.referenced().is_empty());
    // A Gateway of our class naming a Secret elsewhere, a CA bundle, and a policy's CA.
    objects.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "other", "namespace": "team"},
        "spec": {"gatewayClassName": "envoy-gateway",
                 "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS",
                                "tls": {"certificateRefs": [{"name": "cert", "namespace": "certs"}]}}],
                 "tls": {"frontend": {"default": {"validation": {"caCertificateRefs": [
                     {"group": "", "kind": "ConfigMap", "name": "client-ca"}]}}}}}
    }));
    objects.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
        "metadata": {"name": "tls", "namespace": "apps"},
        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "api"}],
                 "validation": {"hostname": "api", "caCertificateRefs": [
                     {"group": "", "kind": "ConfigMap", "name": "backend-ca"}]}}
    }));
    let index = synced_index(ENVOY, None, &objects);
    let referenced: Vec<String> = index.referenced().iter().map(|k| k.to_string()).collect();
    assert_eq!(
        referenced,
        [
            "Secret certs/cert",
            "Secret platform/selfsigned-tls",
            "ConfigMap apps/backend-ca",
            "ConfigMap team/client-ca",
        ]
    );
    // Serving one Gateway: only its Secrets, and only it in the snapshot.
    let only = GatewayRef {
        namespace: "team".into(),
        name: "other".into(),
    };
    let index = synced_index(ENVOY, Some(only), &objects);
    let referenced: Vec<String> = index.referenced().iter().map(|k| k.to_string()).collect();
    assert_eq!(
        referenced,
        [
            "Secret certs/cert",
            "ConfigMap apps/backend-ca",
            "ConfigMap team/client-ca"
        ]
    );
    let snapshot = index.snapshot();
    assert_eq!(snapshot.gateways.len(), 1);
    assert_eq!(snapshot.gateways[0].metadata.name, "other");
    assert_eq!(snapshot.http_routes.len(), 2, "routes are all kept");
}

#[test]
fn nothing_is_synced_until_every_watch_has_listed() {
    let mut index = Index::new(ENVOY, None);
    let a = WatchId::Kind(ResourceKind::Gateway);
    let b = WatchId::Kind(ResourceKind::HttpRoute);
    index.add_watch(a.clone());
    index.add_watch(b.clone());
    assert!(!index.is_synced());
    index.apply(&a, Change::Restart);
    index.apply(&a, Change::Listed);
    assert!(!index.is_synced());
    assert_eq!(index.unsynced(), ["HTTPRoute"]);
    // A kind whose CRD is not installed counts as listed, with nothing in it.
    assert!(index.apply(&b, Change::Absent));
    assert!(index.is_synced());
    assert!(index.snapshot().is_empty());
}

fn route(name: &str, version: &str, status: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "apps", "resourceVersion": version,
                     "generation": 1},
        "spec": {"parentRefs": [{"name": "web"}],
                 "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]},
        "status": status
    })
}

#[test]
fn status_updates_and_identical_relists_change_nothing() {
    let mut index = Index::new(ENVOY, None);
    let id = WatchId::Kind(ResourceKind::HttpRoute);
    index.add_watch(id.clone());
    index.apply(&id, Change::Restart);
    index.apply(&id, Change::Item(route("a", "1", json!({}))));
    index.apply(&id, Change::Item(route("b", "2", json!({}))));
    assert!(index.apply(&id, Change::Listed));
    // Our own status write comes back with a new resourceVersion: not a change.
    let written = route(
        "a",
        "3",
        json!({"parents": [{"controllerName": ENVOY,
        "parentRef": {"name": "web"}, "conditions": []}]}),
    );
    assert!(!index.apply(&id, Change::Applied(written)));
    // A dropped watch or a 410 Gone: the watcher lists again. Same objects: no change, and
    // the objects stay served while the list is in progress.
    index.apply(&id, Change::Restart);
    index.apply(&id, Change::Item(route("a", "9", json!({}))));
    assert_eq!(index.snapshot().http_routes.len(), 2);
    index.apply(&id, Change::Item(route("b", "9", json!({}))));
    assert!(!index.apply(&id, Change::Listed));
    // A relist that misses a route (deleted while the watch was down) drops it.
    index.apply(&id, Change::Restart);
    index.apply(&id, Change::Item(route("a", "10", json!({}))));
    assert!(index.apply(&id, Change::Listed));
    assert_eq!(index.snapshot().http_routes.len(), 1);
    // A spec change counts; a delete counts.
    let mut changed = route("a", "11", json!({}));
    changed["spec"]["hostnames"] = json!(["a.example.com"]);
    assert!(index.apply(&id, Change::Applied(changed)));
    assert!(index.apply(&id, Change::Deleted(route("a", "12", json!({})))));
    assert!(index.snapshot().is_empty());
    assert!(!index.apply(&id, Change::Deleted(route("a", "12", json!({})))));
}

#[test]
fn an_object_that_does_not_read_is_left_out_alone() {
    let mut index = Index::new(ENVOY, None);
    let id = WatchId::Kind(ResourceKind::HttpRoute);
    index.add_watch(id.clone());
    index.apply(&id, Change::Restart);
    let mut bad = route("bad", "1", json!({}));
    bad["spec"]["rules"] = json!("not a list");
    index.apply(&id, Change::Item(bad));
    index.apply(&id, Change::Item(route("good", "2", json!({}))));
    index.apply(&id, Change::Listed);
    let snapshot = index.snapshot();
    assert_eq!(snapshot.http_routes.len(), 1);
    assert_eq!(snapshot.http_routes[0].metadata.name, "good");
    // Status, resourceVersion and managedFields are not kept.
    assert_eq!(snapshot.http_routes[0].status, None);
    assert_eq!(snapshot.http_routes[0].metadata.resource_version, None);
}

#[test]
fn stopped_watches_drop_their_objects() {
    let mut index = Index::new(ENVOY, None);
    let key = ObjectKey::new(ResourceKind::Secret, "platform", "tls");
    let id = WatchId::Object(key);
    index.add_watch(id.clone());
    index.apply(&id, Change::Restart);
    index.apply(
        &id,
        Change::Item(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tls", "namespace": "platform"},
            "type": "kubernetes.io/tls", "data": {}})),
    );
    index.apply(&id, Change::Listed);
    assert_eq!(index.snapshot().secrets.len(), 1);
    assert!(index.remove_watch(&id));
    assert!(index.snapshot().is_empty());
    // Late events of a stopped watch are ignored.
    assert!(!index.apply(&id, Change::Listed));
    assert!(index.is_synced());
}

#[test]
fn of_the_service_warnings_only_load_balancer_refusals_are_kept() {
    let id = WatchId::Kind(ResourceKind::Event);
    let mut index = Index::new(ENVOY, None);
    index.add_watch(id.clone());
    let event = |name: &str, reason: &str| {
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1"},
               "involvedObject": {"kind": "Service", "namespace": "shop", "name": "web-gw"},
               "type": "Warning", "reason": reason, "message": "…"})
    };
    index.apply(&id, Change::Restart);
    index.apply(&id, Change::Item(event("a", "AllocationFailed")));
    index.apply(
        &id,
        Change::Item(event("b", "FailedToUpdateEndpointSlices")),
    );
    assert!(index.apply(&id, Change::Listed));
    let names: Vec<String> = index
        .snapshot()
        .events
        .iter()
        .map(|e| e.metadata.name.clone())
        .collect();
    assert_eq!(names, ["a"]);
    // Another unrelated warning changes nothing the loop would see.
    assert!(!index.apply(&id, Change::Applied(event("c", "UnAvailableLoadBalancer"))));
    assert!(index.apply(&id, Change::Applied(event("d", "SyncLoadBalancerFailed"))));
}
