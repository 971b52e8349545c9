//! Loading real manifests, error messages, and watching a folder for changes.

// The helpers below are test code too; clippy's test allowances only cover `#[test]` fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway_core::model::Snapshot;
use gateway_core::source::ConfigSource;
use gateway_file::{FileSource, LoadError, LoadOptions, load};

/// `/work/shared` next to the repository: the seed demo and the upstream conformance manifests.
fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    assert!(
        dir.is_dir(),
        "the shared folder (seed demo, conformance manifests) was expected at {}",
        dir.display()
    );
    dir
}

fn load_dir(dir: &Path) -> Result<Snapshot, LoadError> {
    load(dir, &LoadOptions::default())
}

fn load_err(dir: &Path) -> String {
    match load_dir(dir) {
        Ok(snapshot) => panic!("expected an error, loaded {} objects", snapshot.len()),
        Err(e) => e.to_string(),
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const ROUTE: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: demo
spec:
  parentRefs:
  - name: main
  rules:
  - backendRefs:
    - name: web
      port: 80
";

#[test]
fn seed_demo_loads() {
    let s = load_dir(&shared().join("seed-demo")).unwrap();
    assert_eq!(s.gateway_classes.len(), 1);
    assert_eq!(s.gateways.len(), 1);
    assert_eq!(s.gateways[0].spec.listeners.len(), 5);
    assert_eq!(s.http_routes.len(), 2);
    assert_eq!(s.grpc_routes.len(), 1);
    // Written as gateway.networking.k8s.io/v1alpha2.
    assert_eq!(s.tcp_routes.len(), 1);
    assert_eq!(s.tcp_routes[0].metadata.name, "tcp-app-route");
    assert_eq!(s.udp_routes.len(), 1);
    assert_eq!(s.reference_grants.len(), 1);
    assert_eq!(s.services.len(), 3);
    assert_eq!(s.endpoint_slices.len(), 3);
    assert_eq!(s.len(), 14);
    // The manifest gives the cluster-scoped GatewayClass a namespace; Kubernetes ignores it.
    assert_eq!(s.gateway_classes[0].metadata.namespace, None);
    assert_eq!(
        s.gateways[0].metadata.namespace.as_deref(),
        Some("platform")
    );
}

#[test]
fn upstream_conformance_manifests_load() {
    let root = shared().join("conformance/upstream/conformance");
    let mut files = vec![root.join("base/manifests.yaml")];
    let mut tests: Vec<PathBuf> = std::fs::read_dir(root.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty());
    files.extend(tests);
    let mut objects = 0;
    let mut failures = Vec::new();
    // One file at a time: the tests reuse object names across files.
    for file in &files {
        match load_dir(file) {
            Ok(snapshot) => objects += snapshot.len(),
            Err(e) => failures.push(e.to_string()),
        }
    }
    println!(
        "conformance: {} files, {objects} objects read by the model",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(objects > 100);
}

#[test]
fn unknown_kinds_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "app.yaml",
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  template:
    spec:
      containers: [{name: web, image: nginx}]
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web-tls
  namespace: demo
spec:
  secretName: web-tls
  dnsNames: [app.me]
",
    );
    write(dir.path(), "route.yaml", ROUTE);
    let s = load_dir(dir.path()).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.http_routes[0].metadata.name, "web");
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "routes.yaml",
        &format!("{ROUTE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: x\n"),
    );
    let err = load_err(dir.path());
    assert!(err.contains("routes.yaml:16:11 (document 2)"), "{err}");
    assert!(err.contains("(document 2)"), "{err}");
    assert!(err.contains("YAML syntax error"), "{err}");
}

#[test]
fn wrong_type_names_file_line_document_and_object() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a-route.yaml", ROUTE);
    write(
        dir.path(),
        "gateway.yaml",
        "\
apiVersion: v1
kind: Namespace
metadata:
  name: ns
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: main
  namespace: ns
spec:
  gatewayClassName: example
  listeners:
  - name: http
    protocol: HTTP
    port: \"eighty\"
",
    );
    let err = load_err(dir.path());
    assert!(
        err.contains(
            "gateway.yaml:16:11 (document 2, Gateway ns/main): spec.listeners[0].port: \
             invalid i64, found \"eighty\""
        ),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &format!(
            "{}---\n{}",
            ROUTE.replace("port: 80", "port: [80]"),
            ROUTE
                .replace("web\n  namespace", "other\n  namespace")
                .replace("  - name: main", "  - name: {}")
        ),
    );
    write(
        dir.path(),
        "b.yaml",
        "kind: Service\napiVersion: v1\nspec: [\n",
    );
    let err = load_dir(dir.path()).unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(err.problems().len(), 3, "{err}");
    assert_eq!(lines.len(), 3, "{err}");
    // The field path and the column of the bad value, inside a backendRefs entry.
    assert!(
        lines[0].contains(
            "a.yaml:12:13 (document 1, HTTPRoute demo/web): spec.rules[0].backendRefs[0].port"
        ),
        "{err}"
    );
    assert!(
        lines[1]
            .contains("a.yaml:21:11 (document 2, HTTPRoute demo/other): spec.parentRefs[0].name"),
        "{err}"
    );
    assert!(
        lines[2].contains("b.yaml:3:7 (document 1): YAML syntax error"),
        "{err}"
    );
}

#[test]
fn unknown_api_version_of_known_kind_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "route.yaml",
        &ROUTE.replace("networking.k8s.io/v1", "networking.k8s.io/v2"),
    );
    let err = load_err(dir.path());
    assert!(
        err.contains("route.yaml:1:1 (document 1, HTTPRoute demo/web)"),
        "{err}"
    );
    assert!(err.contains("gateway.networking.k8s.io/v2"), "{err}");
}

#[test]
fn duplicate_object_names_both_places() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one.yaml", ROUTE);
    write(dir.path(), "two.yaml", &format!("{ROUTE}---\n{ROUTE}"));
    let err = load_dir(dir.path()).unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("two.yaml:1:1 (document 1, HTTPRoute demo/web): duplicate")
            && text.contains("one.yaml:1:1 (document 1)"),
        "{text}"
    );
    assert!(
        text.contains("two.yaml:14:1 (document 2, HTTPRoute demo/web)"),
        "{text}"
    );
}

#[test]
fn list_json_and_default_namespace() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "list.yaml",
        "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: web
  spec:
    ports: [{port: 80}]
- apiVersion: gateway.networking.k8s.io/v1
  kind: GatewayClass
  metadata: {name: example}
  spec: {controllerName: example.com/gateway}
",
    );
    write(
        dir.path(),
        "objects.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
   "metadata": {"name": "web-1", "namespace": "demo", "labels": {"kubernetes.io/service-name": "web"}},
   "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}
]}
{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "json-route"}}
"#,
    );
    let opts = LoadOptions::default().with_default_namespace("team-a");
    let s = load(dir.path(), &opts).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(s.services[0].metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(s.gateway_classes[0].metadata.namespace, None);
    assert_eq!(
        s.endpoint_slices[0].metadata.namespace.as_deref(),
        Some("demo")
    );
    assert_eq!(s.http_routes[0].metadata.name, "json-route");
    assert_eq!(
        s.http_routes[0].metadata.namespace.as_deref(),
        Some("team-a")
    );

    // Errors in JSON and in List items keep their positions too.
    write(
        dir.path(),
        "objects.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n  {\"apiVersion\": \"v1\", \"kind\": \"Service\",\n   \"metadata\": {\"name\": \"j\"}, \"spec\": {\"ports\": [{\"port\": true}]}}]}\n",
    );
    let err = load_err(dir.path());
    assert!(
        err.contains("objects.json:3:62 (document 1, item 1, Service j): spec.ports[0].port"),
        "{err}"
    );
}

async fn next_snapshot(source: &mut FileSource) -> Snapshot {
    tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("no snapshot within 10 s")
        .unwrap()
        .unwrap()
}

fn port_of(snapshot: &Snapshot) -> i64 {
    snapshot.http_routes[0].spec.rules[0].backend_refs[0]
        .port
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_reloads_and_keeps_the_last_good_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "route.yaml", ROUTE);
    write(
        dir.path(),
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\nspec: {ports: [{port: 80}]}\n",
    );
    let mut source = FileSource::new(dir.path()).unwrap();
    let first = next_snapshot(&mut source).await;
    assert_eq!(first.len(), 2);
    assert_eq!(port_of(&first), 80);

    // Edits: each returns the changed snapshot; time from write to `next` returning.
    let mut latencies = Vec::new();
    for i in 0..20 {
        let port = 8000 + i;
        let start = Instant::now();
        write(
            dir.path(),
            "route.yaml",
            &ROUTE.replace("port: 80", &format!("port: {port}")),
        );
        let snapshot = next_snapshot(&mut source).await;
        latencies.push(start.elapsed());
        assert_eq!(port_of(&snapshot), port);
    }
    latencies.sort();
    println!(
        "reload latency over {} edits (debounce {:?}): median {:?}, max {:?}",
        latencies.len(),
        source.debounce(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );

    // A broken edit is not returned; the error is kept and names the file.
    assert!(source.last_error().is_none());
    let mut errors = source.errors();
    write(
        dir.path(),
        "route.yaml",
        &ROUTE.replace("port: 80", "port: [80"),
    );
    let waited = tokio::time::timeout(Duration::from_secs(1), source.next()).await;
    assert!(
        waited.is_err(),
        "a broken snapshot was returned: {waited:?}"
    );
    let error = source.last_error().expect("the reload error is kept");
    assert!(error.to_string().contains("route.yaml:12:"), "{error}");
    assert!(errors.has_changed().unwrap());
    assert!(errors.borrow_and_update().is_some());

    // Fixing it brings the next snapshot.
    write(
        dir.path(),
        "route.yaml",
        &ROUTE.replace("port: 80", "port: 9090"),
    );
    let fixed = next_snapshot(&mut source).await;
    assert_eq!(port_of(&fixed), 9090);
    assert!(source.last_error().is_none());

    // Replacing a file by rename, as editors do.
    let tmp = dir.path().join(".route.yaml.tmp");
    std::fs::write(&tmp, ROUTE.replace("port: 80", "port: 9191")).unwrap();
    std::fs::rename(&tmp, dir.path().join("route.yaml")).unwrap();
    assert_eq!(port_of(&next_snapshot(&mut source).await), 9191);

    // A new file in a new subfolder is seen.
    std::fs::create_dir(dir.path().join("more")).unwrap();
    write(
        &dir.path().join("more"),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n",
    );
    assert_eq!(next_snapshot(&mut source).await.namespaces.len(), 1);

    // Deleting a file removes its objects.
    std::fs::remove_file(dir.path().join("service.yaml")).unwrap();
    let after = next_snapshot(&mut source).await;
    assert!(after.services.is_empty());
    assert_eq!(after.http_routes.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("route.yaml");
    write(dir.path(), "route.yaml", ROUTE);
    write(dir.path(), "other.yaml", "not: [read\n");
    let mut source = FileSource::new(&file).unwrap();
    assert_eq!(next_snapshot(&mut source).await.len(), 1);
    let tmp = dir.path().join("route.yaml.new");
    std::fs::write(&tmp, ROUTE.replace("port: 80", "port: 81")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert_eq!(port_of(&next_snapshot(&mut source).await), 81);
}

#[tokio::test]
async fn initial_load_error_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "route.yaml", "kind: [\n");
    let mut source = FileSource::new(dir.path()).unwrap();
    let err = source.next().await.unwrap_err();
    assert!(matches!(err, gateway_file::Error::Load(_)), "{err}");
    assert!(err.to_string().contains("route.yaml:1:7"), "{err}");
    assert!(source.last_error().is_some());
}
