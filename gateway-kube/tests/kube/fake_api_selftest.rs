//! The fake API server driven by the real kube-rs client, watcher and reflector: proof that it
//! speaks the protocol the adapter relies on.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::fake_api::{FakeApi, Verb};

const GATEWAY_API: &str = "gateway.networking.k8s.io/v1";
const WAIT: Duration = Duration::from_secs(20);

fn gateway_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway"),
        "gateways",
    )
}

fn gateway(namespace: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": "example",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": port}],
        },
    })
}

/// Polls `check` until it holds; panics naming `what` after a generous timeout.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a reflector saw, in order: `Init`, `InitDone`, `Apply name`, `Delete name`, `Error`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A reflector over `api` driven by a task, with its store and the events it saw.
struct Reflected<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    seen: Seen,
    task: JoinHandle<()>,
}

impl<K: Resource + Clone + 'static> Drop for Reflected<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Reflected<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default + Send + Sync,
{
    async fn start(api: Api<K>, config: watcher::Config) -> Self {
        Self::start_with(api, config, K::DynamicType::default()).await
    }
}

impl<K> Reflected<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    async fn start_with(
        api: Api<K>,
        config: watcher::Config,
        dynamic_type: K::DynamicType,
    ) -> Self {
        let writer = Writer::new(dynamic_type);
        let store = writer.as_reader();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let entry = match event {
                    Ok(watcher::Event::Init) => "Init".to_owned(),
                    Ok(watcher::Event::InitApply(_)) => continue,
                    Ok(watcher::Event::InitDone) => "InitDone".to_owned(),
                    Ok(watcher::Event::Apply(object)) => format!("Apply {}", object.name_any()),
                    Ok(watcher::Event::Delete(object)) => format!("Delete {}", object.name_any()),
                    Err(error) => format!("Error {error}"),
                };
                log.lock().unwrap().push(entry);
            }
        });
        tokio::time::timeout(WAIT, store.wait_until_ready())
            .await
            .expect("the reflector syncs in time")
            .expect("the writer lives");
        Self { store, seen, task }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .state()
            .iter()
            .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        names.sort();
        names
    }

    fn count(&self, entry: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.as_str() == entry)
            .count()
    }

    fn errors(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with("Error"))
            .cloned()
            .collect()
    }
}

fn status_of(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn port_of(object: &DynamicObject) -> Option<u64> {
    object
        .data
        .pointer("/spec/listeners/0/port")
        .and_then(Value::as_u64)
}

#[tokio::test]
async fn reflector_syncs_gateways_as_dynamic_objects_over_pages() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "one", 80)).unwrap();
    api.apply(gateway("b", "two", 80)).unwrap();
    api.apply(gateway("b", "three", 80)).unwrap();
    let resource = gateway_resource();
    let gateways: Api<DynamicObject> = Api::all_with(api.client(), &resource);
    // Pages of two: the initial list takes two requests joined by a continue token.
    let reflected =
        Reflected::start_with(gateways, watcher::Config::default().page_size(2), resource).await;
    assert_eq!(reflected.names(), ["a/one", "b/three", "b/two"]);
    let lists: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == Verb::List)
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(lists[0].query.contains("limit=2"), "{lists:?}");
    assert!(lists[1].query.contains("continue="), "{lists:?}");

    api.apply(gateway("a", "one", 8080)).unwrap();
    api.apply(gateway("c", "four", 80)).unwrap();
    api.delete(GATEWAY_API, "Gateway", Some("b"), "two")
        .unwrap();
    eventually("add, modify and delete reflected", || {
        reflected.names() == ["a/one", "b/three", "c/four"]
            && reflected
                .store
                .state()
                .iter()
                .any(|g| g.name_any() == "one" && port_of(g) == Some(8080))
    })
    .await;
    assert!(reflected.errors().is_empty(), "{:?}", reflected.errors());
    // Every item of a list names its kind, as the watcher's typed decoding needs.
    let listed = Api::<DynamicObject>::namespaced_with(api.client(), "a", &gateway_resource())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].types.as_ref().map(|t| t.kind.as_str()),
        Some("Gateway")
    );
}

#[tokio::test]
async fn typed_kinds_reflect_with_label_and_field_selectors() {
    let api = FakeApi::start().await;
    api.apply_yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: apps
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: other-1
  namespace: apps
  labels: {kubernetes.io/service-name: other}
addressType: IPv4
endpoints: [{addresses: [10.0.0.9]}]
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: apps}
type: kubernetes.io/tls
data: {tls.crt: YQ==, tls.key: Yg==}
---
apiVersion: v1
kind: Secret
metadata: {name: unrelated, namespace: apps}
data: {x: eQ==}
"#,
    )
    .unwrap();
    let client = api.client();
    let services = Reflected::start(
        Api::<Service>::namespaced(client.clone(), "apps"),
        watcher::Config::default(),
    )
    .await;
    let slices = Reflected::start(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels("kubernetes.io/service-name=web"),
    )
    .await;
    let secrets = Reflected::start(
        Api::<Secret>::namespaced(client.clone(), "apps"),
        watcher::Config::default().fields("metadata.name=cert"),
    )
    .await;
    assert_eq!(services.names(), ["apps/web"]);
    assert_eq!(slices.names(), ["apps/web-1"]);
    assert_eq!(secrets.names(), ["apps/cert"]);
    assert!(api.wait_for_watches(3, WAIT).await);

    // A slice moving into the selector is added; one moving out is deleted.
    let mut moved = api
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("apps"),
            "other-1",
        )
        .unwrap();
    moved["metadata"]["labels"]["kubernetes.io/service-name"] = json!("web");
    api.apply(moved).unwrap();
    let mut left = api
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("apps"),
            "web-1",
        )
        .unwrap();
    left["metadata"]["labels"]["kubernetes.io/service-name"] = json!("gone");
    api.apply(left).unwrap();
    eventually("the label selector follows relabelled slices", || {
        slices.names() == ["apps/other-1"]
    })
    .await;

    // Changes to other secrets are not seen; changes to the selected one are.
    let mut unrelated = api.get("v1", "Secret", Some("apps"), "unrelated").unwrap();
    unrelated["data"]["x"] = json!("eg==");
    api.apply(unrelated).unwrap();
    let mut cert = api.get("v1", "Secret", Some("apps"), "cert").unwrap();
    cert["data"]["tls.crt"] = json!("Yw==");
    api.apply(cert).unwrap();
    eventually("the selected secret's change", || {
        secrets.store.state().iter().any(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("tls.crt"))
                .is_some_and(|b| b.0 == b"c")
        })
    })
    .await;
    assert_eq!(secrets.names(), ["apps/cert"]);
    assert_eq!(secrets.count("Apply unrelated"), 0);
    let secret_lists: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/apps/secrets")
        .collect();
    assert!(
        secret_lists
            .iter()
            .all(|r| r.query.contains("fieldSelector=metadata.name%3Dcert")),
        "{secret_lists:?}"
    );

    api.delete("v1", "Service", Some("apps"), "web").unwrap();
    eventually("the service deletion", || services.names().is_empty()).await;
}

#[tokio::test]
async fn watcher_resumes_after_dropped_watches_without_listing_again() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "one", 80)).unwrap();
    let resource = gateway_resource();
    let reflected = Reflected::<DynamicObject>::start_with(
        Api::all_with(api.client(), &resource),
        watcher::Config::default(),
        resource,
    )
    .await;
    assert!(api.wait_for_watches(1, WAIT).await);
    api.drop_watches();
    api.apply(gateway("a", "two", 80)).unwrap();
    eventually("the change after the drop", || {
        reflected.names() == ["a/one", "a/two"]
    })
    .await;
    api.drop_watches();
    api.delete(GATEWAY_API, "Gateway", Some("a"), "one")
        .unwrap();
    eventually("the deletion after the second drop", || {
        reflected.names() == ["a/two"]
    })
    .await;
    assert_eq!(
        api.count(Verb::List, "/apis/gateway.networking.k8s.io/v1/gateways"),
        1
    );
    assert!(api.count(Verb::Watch, "/apis/gateway.networking.k8s.io/v1/gateways") >= 2);
    assert_eq!(reflected.count("Init"), 1);
}

#[tokio::test]
async fn compaction_makes_the_watcher_list_again() {
    let api = FakeApi::start().await;
    // No bookmarks during the test, so the watcher's resourceVersion stays behind the compaction.
    api.set_bookmark_interval(Duration::from_secs(3600));
    api.apply(gateway("a", "one", 80)).unwrap();
    let resource = gateway_resource();
    let reflected = Reflected::<DynamicObject>::start_with(
        Api::all_with(api.client(), &resource),
        watcher::Config::default(),
        resource,
    )
    .await;
    assert!(api.wait_for_watches(1, WAIT).await);
    // Unseen by the gateway watch: moves the resourceVersion past the watcher's.
    api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .unwrap();
    api.compact();
    api.drop_watches();
    eventually("a second list after 410", || {
        reflected.count("InitDone") == 2
    })
    .await;
    assert!(
        reflected
            .errors()
            .iter()
            .any(|e| e.contains("410") || e.contains("Expired")),
        "{:?}",
        reflected.errors()
    );
    api.apply(gateway("a", "two", 80)).unwrap();
    eventually("changes after the re-list", || {
        reflected.names() == ["a/one", "a/two"]
    })
    .await;
    assert_eq!(
        api.count(Verb::List, "/apis/gateway.networking.k8s.io/v1/gateways"),
        2
    );

    // An expired watch (410 inside the stream) re-lists too.
    assert!(api.wait_for_watches(1, WAIT).await);
    api.expire_watches();
    eventually("a third list", || reflected.count("InitDone") == 3).await;
    assert_eq!(reflected.names(), ["a/one", "a/two"]);
}

#[tokio::test]
async fn expired_watch_can_answer_http_410() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "one", 80)).unwrap();
    let old = api.resource_version();
    api.apply(gateway("a", "one", 81)).unwrap();
    api.compact();
    let gateways: Api<DynamicObject> = Api::all_with(api.client(), &gateway_resource());
    // By default the 410 is an ERROR event in a 200 stream, as the API server sends it.
    let mut stream = gateways
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    api.set_expired_as_http_status(true);
    let error = gateways
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .err()
        .expect("410");
    assert_eq!(status_of(error), (410, "Expired".to_owned()));
    // The current resourceVersion is fine.
    let current = api.resource_version().to_string();
    let _stream = gateways
        .watch(&WatchParams::default(), &current)
        .await
        .unwrap();
}

#[tokio::test]
async fn status_patches_change_only_status() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "gw", 80)).unwrap();
    let gateways: Api<DynamicObject> = Api::namespaced_with(api.client(), "a", &gateway_resource());
    let before = gateways.get("gw").await.unwrap();
    assert_eq!(before.metadata.generation, Some(1));
    assert!(before.metadata.uid.is_some() && before.metadata.creation_timestamp.is_some());

    let status = json!({"status": {"conditions": [{"type": "Accepted", "status": "True"}]},
                        "spec": {"gatewayClassName": "ignored"}});
    let patched = gateways
        .patch_status("gw", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(patched.data["spec"]["gatewayClassName"], "example");
    assert_eq!(patched.metadata.generation, Some(1));
    assert_ne!(
        patched.metadata.resource_version,
        before.metadata.resource_version
    );
    let stored = api.get(GATEWAY_API, "Gateway", Some("a"), "gw").unwrap();
    assert_eq!(stored["status"]["conditions"][0]["status"], "True");

    // The same status again writes nothing: no new resourceVersion.
    let again = gateways
        .patch_status("gw", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        patched.metadata.resource_version
    );

    // Server-side apply of the status replaces the lists it names.
    let applied = json!({"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "a"},
                         "status": {"conditions": [{"type": "Programmed", "status": "False"}]}});
    let params = PatchParams::apply("gateway-kube").force();
    let after_apply = gateways
        .patch_status("gw", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(
        after_apply.data["status"]["conditions"],
        json!([{"type": "Programmed", "status": "False"}])
    );
    let status_path = api.path(GATEWAY_API, "Gateway", Some("a"), "gw") + "/status";
    let applies: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == status_path)
        .collect();
    assert_eq!(
        applies.last().and_then(|r| r.content_type.as_deref()),
        Some("application/apply-patch+yaml")
    );
    assert!(
        applies
            .last()
            .unwrap()
            .query
            .contains("fieldManager=gateway-kube")
    );

    // A spec change through the main resource bumps the generation and keeps the status.
    let spec = json!({"spec": {"listeners": [{"name": "http", "protocol": "HTTP", "port": 81}]},
                      "status": {"conditions": []}});
    let respec = gateways
        .patch("gw", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(respec.metadata.generation, Some(2));
    assert_eq!(respec.data["status"]["conditions"][0]["type"], "Programmed");
    assert_eq!(api.count(Verb::Patch, &status_path), 3);
}

#[tokio::test]
async fn stale_writes_conflict() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "gw", 80)).unwrap();
    let gateways: Api<DynamicObject> = Api::namespaced_with(api.client(), "a", &gateway_resource());
    let read = gateways.get("gw").await.unwrap();
    api.apply(gateway("a", "gw", 81)).unwrap();

    let mut stale = read.clone();
    stale.data["spec"]["gatewayClassName"] = json!("other");
    let error = gateways
        .replace("gw", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(status_of(error), (409, "Conflict".to_owned()));
    let error = gateways
        .replace_status("gw", &PostParams::default(), &stale)
        .await;
    assert_eq!(status_of(error.unwrap_err()), (409, "Conflict".to_owned()));
    let stale_rv = json!({"metadata": {"resourceVersion": read.metadata.resource_version},
                          "status": {"conditions": []}});
    let error = gateways
        .patch_status("gw", &PatchParams::default(), &Patch::Merge(&stale_rv))
        .await
        .unwrap_err();
    assert_eq!(status_of(error), (409, "Conflict".to_owned()));

    let mut fresh = gateways.get("gw").await.unwrap();
    fresh.data["spec"]["gatewayClassName"] = json!("other");
    let replaced = gateways
        .replace("gw", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.data["spec"]["gatewayClassName"], "other");

    let error = gateways
        .create(&PostParams::default(), &fresh)
        .await
        .unwrap_err();
    assert_eq!(status_of(error), (409, "AlreadyExists".to_owned()));
    let error = gateways.get("missing").await.unwrap_err();
    assert_eq!(status_of(error), (404, "NotFound".to_owned()));
}

#[tokio::test]
async fn injected_conflicts_fail_the_next_writes_only() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "gw", 80)).unwrap();
    let gateways: Api<DynamicObject> = Api::namespaced_with(api.client(), "a", &gateway_resource());
    let status_path = api.path(GATEWAY_API, "Gateway", Some("a"), "gw") + "/status";
    api.conflict_next_writes(&status_path, 2);
    let status = json!({"status": {"addresses": [{"value": "10.0.0.1"}]}});
    for _ in 0..2 {
        let error = gateways
            .patch_status("gw", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_err();
        assert_eq!(status_of(error), (409, "Conflict".to_owned()));
    }
    // Reads are not affected.
    gateways.get_status("gw").await.unwrap();
    gateways
        .patch_status("gw", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(api.count(Verb::Patch, &status_path), 3);
    assert_eq!(
        api.get(GATEWAY_API, "Gateway", Some("a"), "gw").unwrap()["status"]["addresses"][0]["value"],
        "10.0.0.1"
    );
}

fn lease(holder: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "gateway-leader", "namespace": "infra"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }))
    .unwrap()
}

#[tokio::test]
async fn lease_contention_has_one_winner() {
    let api = FakeApi::start().await;
    let replica_a: Api<Lease> = Api::namespaced(api.client_as("a"), "infra");
    let replica_b: Api<Lease> = Api::namespaced(api.client_as("b"), "infra");
    let error = replica_a.get("gateway-leader").await.unwrap_err();
    assert_eq!(status_of(error).0, 404);

    let params = PostParams::default();
    let (lease_a, lease_b) = (lease("a"), lease("b"));
    let (a, b) = tokio::join!(
        replica_a.create(&params, &lease_a),
        replica_b.create(&params, &lease_b)
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "exactly one create wins"
    );
    let loser = a.err().or(b.err()).unwrap();
    assert_eq!(status_of(loser), (409, "AlreadyExists".to_owned()));

    // Both read the same version and try to take over: one replace wins.
    let (seen_a, seen_b) = tokio::join!(
        replica_a.get("gateway-leader"),
        replica_b.get("gateway-leader")
    );
    let (mut seen_a, mut seen_b) = (seen_a.unwrap(), seen_b.unwrap());
    assert_eq!(
        seen_a.metadata.resource_version,
        seen_b.metadata.resource_version
    );
    seen_a.spec.as_mut().unwrap().holder_identity = Some("a2".to_owned());
    seen_b.spec.as_mut().unwrap().holder_identity = Some("b2".to_owned());
    let (a, b) = tokio::join!(
        replica_a.replace("gateway-leader", &params, &seen_a),
        replica_b.replace("gateway-leader", &params, &seen_b),
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "exactly one replace wins"
    );
    let winner = a
        .as_ref()
        .or(b.as_ref())
        .unwrap()
        .spec
        .clone()
        .unwrap()
        .holder_identity
        .unwrap();
    let loser = a.err().or(b.err()).unwrap();
    assert_eq!(status_of(loser), (409, "Conflict".to_owned()));
    let stored = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("infra"),
            "gateway-leader",
        )
        .unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], json!(winner));
    let lease_path = api.path(
        "coordination.k8s.io/v1",
        "Lease",
        Some("infra"),
        "gateway-leader",
    );
    assert_eq!(api.count(Verb::Update, &lease_path), 2);
    assert_eq!(api.count_from("a", Verb::Update, &lease_path), 1);
    assert_eq!(api.count_from("b", Verb::Update, &lease_path), 1);
}

#[tokio::test]
async fn bookmarks_arrive_with_newer_resource_versions() {
    let api = FakeApi::start().await;
    api.set_bookmark_interval(Duration::from_millis(20));
    api.apply(gateway("a", "gw", 80)).unwrap();
    let gateways: Api<DynamicObject> = Api::all_with(api.client(), &gateway_resource());
    let start = api.resource_version();
    let mut stream = gateways
        .watch(&WatchParams::default().timeout(30), &start.to_string())
        .await
        .unwrap()
        .boxed();
    // A change elsewhere moves the resourceVersion the next bookmark reports.
    api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .unwrap();
    let target = api.resource_version();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no bookmark at {target}");
        match tokio::time::timeout(WAIT, stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Bookmark(bookmark)) => {
                let rv: u64 = bookmark.metadata.resource_version.parse().unwrap();
                assert!(rv >= start);
                if rv == target {
                    break;
                }
            }
            other => panic!("expected only bookmarks, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "one", 80)).unwrap();
    api.apply(gateway("b", "two", 80)).unwrap();
    let resource = gateway_resource();
    let reflected = Reflected::<DynamicObject>::start_with(
        Api::all_with(api.client(), &resource),
        watcher::Config::default().streaming_lists(),
        resource,
    )
    .await;
    assert_eq!(reflected.names(), ["a/one", "b/two"]);
    assert_eq!(
        api.requests()
            .iter()
            .filter(|r| r.verb == Verb::List)
            .count(),
        0
    );
    api.apply(gateway("c", "three", 80)).unwrap();
    eventually("the change after the initial events", || {
        reflected.names().len() == 3
    })
    .await;
}

#[tokio::test]
async fn seed_demo_manifests_load_and_hidden_kinds_answer_404() {
    let api = FakeApi::start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-demo");
    let applied = api.apply_dir(&dir).unwrap();
    assert!(applied.len() >= 10, "{}", applied.len());
    let client = api.client();
    let classes = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GatewayClass"),
        "gatewayclasses",
    );
    let listed = Api::<DynamicObject>::all_with(client.clone(), &classes)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let tcp = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1alpha2", "TCPRoute"),
        "tcproutes",
    );
    let tcp_routes: Api<DynamicObject> = Api::all_with(client.clone(), &tcp);
    assert_eq!(
        tcp_routes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    api.hide("gateway.networking.k8s.io/v1alpha2", "TCPRoute");
    let error = tcp_routes.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(status_of(error), (404, "NotFound".to_owned()));
    api.unhide("gateway.networking.k8s.io/v1alpha2", "TCPRoute");
    assert_eq!(
        tcp_routes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // The Gateway API v1beta1 version of a v1 kind serves the same objects.
    let beta = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1beta1", "Gateway"),
        "gateways",
    );
    let listed = Api::<DynamicObject>::all_with(client, &beta)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].types.as_ref().unwrap().api_version,
        "gateway.networking.k8s.io/v1beta1"
    );
}

#[tokio::test]
async fn discovery_lists_served_kinds_classic_and_aggregated() {
    let api = FakeApi::start().await;
    let client = api.client();
    let gateway = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway");
    let tcp = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1alpha2", "TCPRoute");
    let lease = GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease");

    let classic = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (resource, capabilities) = classic
        .resolve_gvk(&gateway)
        .expect("Gateway is discovered");
    assert_eq!(resource.plural, "gateways");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Namespaced);
    assert!(classic.resolve_gvk(&tcp).is_some());
    assert!(classic.resolve_gvk(&lease).is_some());
    let group = classic
        .get("gateway.networking.k8s.io")
        .expect("the Gateway API group");
    assert_eq!(group.preferred_version_or_latest(), "v1");

    let aggregated = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(aggregated.resolve_gvk(&gateway).is_some());
    assert!(aggregated.resolve_gvk(&lease).is_some());

    let (pinned, _) = kube::discovery::pinned_kind(&client, &gateway)
        .await
        .unwrap();
    assert_eq!(pinned.plural, "gateways");

    // A kind whose CRD is "not installed" is neither discovered nor served.
    api.hide("gateway.networking.k8s.io/v1alpha2", "TCPRoute");
    let classic = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(classic.resolve_gvk(&tcp).is_none());
    assert!(classic.resolve_gvk(&gateway).is_some());
    assert!(kube::discovery::pinned_kind(&client, &tcp).await.is_err());
}

#[tokio::test]
async fn watcher_recovers_from_injected_list_failures_and_latency() {
    let api = FakeApi::start().await;
    api.apply(gateway("a", "one", 80)).unwrap();
    api.set_latency(Duration::from_millis(20));
    let list_path = "/apis/gateway.networking.k8s.io/v1/gateways";
    api.fail_next(list_path, &[Verb::List], 1, 500);
    let resource = gateway_resource();
    let reflected = Reflected::<DynamicObject>::start_with(
        Api::all_with(api.client(), &resource),
        watcher::Config::default(),
        resource,
    )
    .await;
    assert_eq!(reflected.names(), ["a/one"]);
    assert!(
        reflected.errors().iter().any(|e| e.contains("500")),
        "{:?}",
        reflected.errors()
    );
    let statuses: Vec<u16> = api
        .requests()
        .iter()
        .filter(|r| r.verb == Verb::List)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 200]);
    api.set_latency(Duration::ZERO);
    api.apply(gateway("a", "two", 80)).unwrap();
    assert!(api.wait_until(WAIT, |_| reflected.names().len() == 2).await);
}

#[tokio::test]
async fn strategic_merge_and_collection_delete() {
    let api = FakeApi::start().await;
    api.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns, labels: {tier: web}}\nspec: {ports: [{port: 80}]}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: ns, labels: {tier: db}}\nspec: {ports: [{port: 5432}]}\n",
    )
    .unwrap();
    let services: Api<Service> = Api::namespaced(api.client(), "ns");
    let patch = json!({"metadata": {"annotations": {"note": "x"}}});
    let patched = services
        .patch("a", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.annotations().get("note").map(String::as_str),
        Some("x")
    );
    assert_eq!(
        patched.labels().get("tier").map(String::as_str),
        Some("web")
    );
    let deleted = services
        .delete_collection(
            &kube::api::DeleteParams::default(),
            &ListParams::default().labels("tier=web"),
        )
        .await
        .unwrap();
    assert!(deleted.is_left());
    assert!(api.get("v1", "Service", Some("ns"), "a").is_none());
    assert!(api.get("v1", "Service", Some("ns"), "b").is_some());
    let gone = services
        .delete("b", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    assert!(gone.is_left());
    assert!(api.list("v1", "Service", None).is_empty());
}

#[tokio::test]
async fn metadata_only_reflectors_see_labels() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::core::PartialObjectMeta;
    let api = FakeApi::start().await;
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": {"team": "a"}}}))
        .unwrap();
    let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(api.client());
    let reflected = Reflected::start(namespaces, watcher::Config::default()).await;
    assert_eq!(reflected.names(), ["/apps"]);
    let mut relabelled = api.get("v1", "Namespace", None, "apps").unwrap();
    relabelled["metadata"]["labels"]["team"] = json!("b");
    api.apply(relabelled).unwrap();
    assert!(
        api.wait_until(WAIT, |_| {
            reflected
                .store
                .state()
                .iter()
                .any(|n| n.metadata.labels.as_ref().is_some_and(|l| l["team"] == "b"))
        })
        .await
    );
    let listed = api
        .requests()
        .into_iter()
        .find(|r| r.verb == Verb::List)
        .unwrap();
    assert_eq!(listed.path, "/api/v1/namespaces");
}
