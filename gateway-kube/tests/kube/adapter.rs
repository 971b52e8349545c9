//! `KubeSource`, `KubeStatusSink` and `LeaderElector` against the fake API server, through the
//! real kube client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::compile::{Options, compile};
use gateway_core::model::Snapshot;
use gateway_core::source::{ConfigSource, StatusSink};
use gateway_core::status::Status;
use gateway_kube::{
    KubeSource, KubeSourceOptions, KubeStatusSink, LeaderElector, Leadership, LeaseOptions,
    StatusSinkOptions,
};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::fake_api::{FakeApi, Verb};

/// The seed demo's GatewayClass names Envoy Gateway's controller; the tests answer to it.
const ENVOY: &str = "gateway.envoyproxy.io/gatewayclass-controller";
const V1: &str = "gateway.networking.k8s.io/v1";
const LEASE: &str = "coordination.k8s.io/v1";
/// Generous: how long anything expected may take.
const WAIT: Duration = Duration::from_secs(30);
/// How long to watch for something that must not happen.
const QUIET: Duration = Duration::from_secs(2);

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-demo")
}

fn compile_options() -> Options {
    Options {
        controller_name: Some(ENVOY.into()),
        ..Options::default()
    }
}

async fn next(source: &mut KubeSource) -> Snapshot {
    tokio::time::timeout(WAIT, source.next())
        .await
        .expect("a snapshot in time")
        .expect("no source error")
        .expect("the source goes on")
}

async fn nothing_more(source: &mut KubeSource) -> bool {
    tokio::time::timeout(QUIET, source.next()).await.is_err()
}

async fn seeded() -> (FakeApi, KubeSource, Status) {
    let api = FakeApi::start().await;
    api.apply_dir(&seed_dir()).unwrap();
    let mut source = KubeSource::new(api.client(), KubeSourceOptions::new(ENVOY));
    let snapshot = next(&mut source).await;
    let (_, status) = compile(&snapshot, &compile_options());
    (api, source, status)
}

#[tokio::test]
async fn the_seed_demo_in_the_api_compiles_as_gateway_check_compiles_the_files() {
    let api = FakeApi::start().await;
    api.apply_dir(&seed_dir()).unwrap();
    // ListenerSet's CRD is not installed: none of them, the source still syncs.
    api.hide(V1, "ListenerSet");
    let mut source = KubeSource::new(api.client(), KubeSourceOptions::new(ENVOY));
    let synced = source.synced();
    let snapshot = next(&mut source).await;
    assert!(*synced.borrow());
    let (_, from_api) = compile(&snapshot, &compile_options());
    let files = gateway_file::load(&seed_dir(), &Default::default()).unwrap();
    let (_, from_files) = compile(&files, &compile_options());
    assert_eq!(from_api.to_table(), from_files.to_table());
    assert!(from_api.all_healthy(), "{}", from_api.to_table());
}

#[tokio::test]
async fn status_is_written_once_with_other_controllers_entries_kept() {
    let (api, mut source, status) = seeded().await;
    let other = json!({"controllerName": "other.io/controller",
                       "parentRef": {"name": "elsewhere"}, "conditions": []});
    api.set_status(
        V1,
        "HTTPRoute",
        Some("demo"),
        "https-server-route",
        json!({"parents": [other.clone()]}),
    )
    .unwrap();

    let mut sink = KubeStatusSink::new(api.client(), StatusSinkOptions::new(ENVOY));
    sink.publish(&status).await.unwrap();
    assert_eq!(sink.stats().patched, 7, "{:?}", sink.stats());

    let gateway = api
        .get(V1, "Gateway", Some("platform"), "main-gateway")
        .unwrap();
    let generation = gateway["metadata"]["generation"].as_i64();
    let conditions = gateway["status"]["conditions"].as_array().unwrap();
    assert!(!conditions.is_empty());
    for c in conditions {
        assert_eq!(c["observedGeneration"].as_i64(), generation, "{c}");
        assert!(c["lastTransitionTime"].is_string(), "{c}");
    }
    assert_eq!(gateway["status"]["listeners"].as_array().unwrap().len(), 5);
    let route = api
        .get(V1, "HTTPRoute", Some("demo"), "https-server-route")
        .unwrap();
    let parents = route["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], other);
    assert_eq!(parents[1]["controllerName"], ENVOY);

    // Our writes come back through the watches: no new snapshot.
    assert!(
        nothing_more(&mut source).await,
        "status writes made a snapshot"
    );
    // The same status again: nothing sent.
    let writes = api.count_writes();
    sink.publish(&status).await.unwrap();
    assert_eq!(api.count_writes(), writes);
    // A new writer (a new leader) reads everything, finds it written, and sends nothing.
    let mut fresh = KubeStatusSink::new(api.client(), StatusSinkOptions::new(ENVOY));
    fresh.publish(&status).await.unwrap();
    assert_eq!(api.count_writes(), writes, "{:?}", fresh.stats());
    assert_eq!(fresh.stats().unchanged, 7);
}

/// Found by the upstream conformance suite on the lab: two of its tests create an HTTPRoute of
/// the same name one after the other, and the second route never got status, because the
/// writer remembered having written that status under that name.
#[tokio::test]
async fn a_route_made_again_under_the_same_name_gets_its_status() {
    let (api, mut source, status) = seeded().await;
    let mut sink = KubeStatusSink::new(api.client(), StatusSinkOptions::new(ENVOY));
    sink.publish(&status).await.unwrap();
    let route = api
        .get(V1, "HTTPRoute", Some("demo"), "https-server-route")
        .unwrap();
    assert_eq!(route["status"]["parents"].as_array().unwrap().len(), 1);

    // Deleted and made again with the same spec before the source's next snapshot.
    let mut again = route.clone();
    again.as_object_mut().unwrap().remove("status");
    for field in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
        again["metadata"].as_object_mut().unwrap().remove(field);
    }
    api.delete(V1, "HTTPRoute", Some("demo"), "https-server-route")
        .unwrap();
    api.apply(again).unwrap();
    let made_again = api
        .get(V1, "HTTPRoute", Some("demo"), "https-server-route")
        .unwrap();
    assert_ne!(made_again["metadata"]["uid"], route["metadata"]["uid"]);
    assert!(made_again["status"]["parents"].is_null());

    let snapshot = next(&mut source).await;
    let (_, status) = compile(&snapshot, &compile_options());
    sink.publish(&status).await.unwrap();
    let route = api
        .get(V1, "HTTPRoute", Some("demo"), "https-server-route")
        .unwrap();
    let parents = route["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 1, "the new route has no status: {route}");
    assert_eq!(parents[0]["controllerName"], ENVOY);
}

#[tokio::test]
async fn dropped_and_expired_watches_resume_and_changes_are_seen() {
    let (api, mut source, _) = seeded().await;
    api.drop_watches();
    api.expire_watches();
    api.apply(json!({"apiVersion": V1, "kind": "HTTPRoute",
        "metadata": {"name": "late", "namespace": "demo"},
        "spec": {"parentRefs": [{"name": "main-gateway", "namespace": "platform"}],
                 "rules": [{"backendRefs": [{"name": "http-echo", "port": 80}]}]}}))
        .unwrap();
    let snapshot = next(&mut source).await;
    assert!(
        snapshot
            .http_routes
            .iter()
            .any(|r| r.metadata.name == "late")
    );
    api.delete(V1, "HTTPRoute", Some("demo"), "late").unwrap();
    let snapshot = next(&mut source).await;
    assert!(
        snapshot
            .http_routes
            .iter()
            .all(|r| r.metadata.name != "late")
    );
}

#[tokio::test]
async fn only_referenced_secrets_are_read() {
    let (api, mut source, _) = seeded().await;
    let mut secret = api
        .get("v1", "Secret", Some("platform"), "selfsigned-tls")
        .unwrap();
    secret["metadata"]["labels"] = json!({"rotated": "yes"});
    api.apply(secret).unwrap();
    let snapshot = next(&mut source).await;
    assert_eq!(snapshot.secrets.len(), 1);
    assert!(snapshot.secrets[0].metadata.labels.contains_key("rotated"));

    api.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "unrelated", "namespace": "platform"}, "data": {}}))
        .unwrap();
    assert!(
        nothing_more(&mut source).await,
        "an unreferenced Secret was read"
    );
    // Every Secret request named the one Secret.
    let secret_requests: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/secrets"))
        .collect();
    assert!(!secret_requests.is_empty());
    for r in secret_requests {
        assert_eq!(r.path, "/api/v1/namespaces/platform/secrets", "{}", r.query);
        assert!(
            r.query
                .contains("fieldSelector=metadata.name%3Dselfsigned-tls"),
            "{}",
            r.query
        );
    }
}

#[tokio::test]
async fn conflicting_writes_are_retried_from_a_fresh_read() {
    let (api, _source, status) = seeded().await;
    let path = api.path(V1, "Gateway", Some("platform"), "main-gateway") + "/status";
    api.conflict_next_writes(&path, 2);
    let mut sink = KubeStatusSink::new(api.client(), StatusSinkOptions::new(ENVOY));
    sink.publish(&status).await.unwrap();
    assert_eq!(sink.stats().conflicts, 2);
    assert_eq!(sink.stats().patched, 7);
    let gateway = api
        .get(V1, "Gateway", Some("platform"), "main-gateway")
        .unwrap();
    assert!(gateway["status"]["conditions"].is_array());
}

#[tokio::test]
async fn entries_of_ours_on_detached_routes_are_removed() {
    let api = FakeApi::start().await;
    api.apply_dir(&seed_dir()).unwrap();
    api.apply(json!({"apiVersion": V1, "kind": "HTTPRoute",
        "metadata": {"name": "orphan", "namespace": "demo"},
        "spec": {"parentRefs": [{"name": "gone", "namespace": "platform"}]}}))
        .unwrap();
    let theirs = json!({"controllerName": "other.io/controller",
                        "parentRef": {"name": "gone"}, "conditions": []});
    api.set_status(
        V1,
        "HTTPRoute",
        Some("demo"),
        "orphan",
        json!({"parents": [
        {"controllerName": ENVOY, "conditions": [],
         "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                       "namespace": "platform", "name": "gone"}},
        theirs.clone()]}),
    )
    .unwrap();
    let mut source = KubeSource::new(api.client(), KubeSourceOptions::new(ENVOY));
    let snapshot = next(&mut source).await;
    let (_, status) = compile(&snapshot, &compile_options());
    let mut sink = KubeStatusSink::new(api.client(), StatusSinkOptions::new(ENVOY));
    sink.publish(&status).await.unwrap();
    let orphan = api.get(V1, "HTTPRoute", Some("demo"), "orphan").unwrap();
    assert_eq!(orphan["status"]["parents"], json!([theirs]));
}

/// One replica: its source, elector and status writer, all through one named client, and its
/// data plane serving what the source says on its own loopback address.
struct Replica {
    name: &'static str,
    gateway: gateway_net::Gateway,
    /// Where its `http` listener (the seed's port 80) is served.
    http: std::net::SocketAddr,
    leadership: Leadership,
    stop_election: CancellationToken,
    election: tokio::task::JoinHandle<()>,
    statuses: watch::Sender<Option<Arc<Status>>>,
    _source: KubeSource,
}

async fn replica(
    api: &FakeApi,
    name: &'static str,
    address: [u8; 4],
    stop: &CancellationToken,
) -> Replica {
    let client = api.client_as(name);
    let mut lease = LeaseOptions::new("gateway-system", "embedded-gateway", name);
    lease.lease_duration = Duration::from_secs(2);
    lease.renew_deadline = Duration::from_secs(1);
    lease.retry_period = Duration::from_millis(100);
    let elector = LeaderElector::new(client.clone(), lease);
    let leadership = elector.leadership();
    let stop_election = CancellationToken::new();
    let election = tokio::spawn(elector.run(stop_election.clone()));
    let sink = KubeStatusSink::new(client.clone(), StatusSinkOptions::new(ENVOY))
        .with_leadership(leadership.clone());
    let (statuses, rx) = watch::channel(None);
    tokio::spawn(sink.run(rx, stop.clone()));
    let mut source = KubeSource::new(client, KubeSourceOptions::new(ENVOY));
    let snapshot = next(&mut source).await;
    // The seed's ports shifted by 20 000, on the replica's own address, as pods of one
    // Deployment each have their own IP.
    let options = Options {
        bind_address: std::net::IpAddr::from(address),
        port_offset: 20_000,
        ..compile_options()
    };
    let (ir, status) = compile(&snapshot, &options);
    let gateway = gateway_net::Gateway::new(Default::default());
    let report = gateway.apply(&ir).await;
    assert!(report.is_complete(), "{report:?}");
    statuses.send_replace(Some(Arc::new(status)));
    Replica {
        name,
        gateway,
        http: std::net::SocketAddr::from((address, 20_080)),
        leadership,
        stop_election,
        election,
        statuses,
        _source: source,
    }
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get(LEASE, "Lease", Some("gateway-system"), "embedded-gateway")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

fn status_patches(api: &FakeApi, client: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| {
            r.client.as_deref() == Some(client)
                && r.verb == Verb::Patch
                && r.path.ends_with("/status")
        })
        .count()
}

#[tokio::test]
async fn of_two_replicas_both_serve_only_the_leader_writes_and_the_other_takes_over() {
    let api = FakeApi::start().await;
    api.apply_dir(&seed_dir()).unwrap();
    let stop = CancellationToken::new();
    let mut replicas = vec![
        replica(&api, "a", [127, 0, 0, 5], &stop).await,
        replica(&api, "b", [127, 0, 0, 6], &stop).await,
    ];
    assert!(api.wait_until(WAIT, |api| holder(api).is_some()).await);
    let leader = holder(&api).unwrap();
    let written = |api: &FakeApi| {
        api.get(V1, "Gateway", Some("platform"), "main-gateway")
            .is_some_and(|g| g["status"]["conditions"].is_array())
    };
    assert!(api.wait_until(WAIT, written).await);
    let i = replicas.iter().position(|r| r.name == leader).unwrap();
    let old = replicas.remove(i);
    let follower = &replicas[0];
    assert!(old.leadership.is_leader());
    assert!(!follower.leadership.is_leader());
    assert!(status_patches(&api, old.name) > 0);
    assert_eq!(status_patches(&api, follower.name), 0);
    // Both serve traffic, leader or not: the seed's HTTP listener redirects to HTTPS.
    for replica in [&old, follower] {
        assert_eq!(
            status_line_of(replica.http, "app.me", "/http-echo").await,
            "HTTP/1.1 301 Moved Permanently",
            "replica {}",
            replica.name
        );
    }

    // The leader stops: it releases the Lease, the other takes it and writes what changes.
    old.stop_election.cancel();
    old.election.await.unwrap();
    let takes_over = |api: &FakeApi| holder(api).as_deref() == Some(follower.name);
    assert!(api.wait_until(WAIT, takes_over).await);
    let mut status = follower.statuses.borrow().as_deref().cloned().unwrap();
    status.gateways[0].status.conditions[0].message = "seen by the new leader".into();
    follower.statuses.send_replace(Some(Arc::new(status)));
    let new_message = |api: &FakeApi| {
        api.get(V1, "Gateway", Some("platform"), "main-gateway")
            .is_some_and(|g| g["status"]["conditions"][0]["message"] == "seen by the new leader")
    };
    assert!(api.wait_until(WAIT, new_message).await);
    assert!(status_patches(&api, follower.name) > 0);
    drop(old.statuses);
    stop.cancel();
    old.gateway.shutdown().await;
    replicas[0].gateway.shutdown().await;
    let lease = api
        .get(LEASE, "Lease", Some("gateway-system"), "embedded-gateway")
        .unwrap();
    assert!(
        lease["spec"]["leaseTransitions"].as_i64() >= Some(2),
        "{lease}"
    );
}

/// Replica `n` of a Deployment: its own source and data plane, bound on its own loopback
/// address (127.0.0.n), as pods behind one Service.
async fn serving_replica(api: &FakeApi, n: u8) -> (KubeSource, gateway_net::Gateway) {
    let mut source = KubeSource::new(
        api.client_as(&format!("replica-{n}")),
        KubeSourceOptions::new("example.com/gateway"),
    );
    let snapshot = next(&mut source).await;
    let options = Options {
        controller_name: Some("example.com/gateway".into()),
        bind_address: std::net::IpAddr::from([127, 0, 0, n]),
        ..Options::default()
    };
    let (ir, status) = compile(&snapshot, &options);
    assert!(status.all_healthy(), "{}", status.to_table());
    let gateway = gateway_net::Gateway::new(Default::default());
    let report = gateway.apply(&ir).await;
    assert!(report.is_complete(), "{report:?}");
    (source, gateway)
}

/// The status line of a plain HTTP/1.1 request for `/shop`.
async fn status_line(address: std::net::SocketAddr, host: &str) -> String {
    status_line_of(address, host, "/shop").await
}

/// The status line of a plain HTTP/1.1 request.
async fn status_line_of(address: std::net::SocketAddr, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_replica_serves_what_the_api_says() {
    let api = FakeApi::start().await;
    // A port free on 127.0.0.2 for the Gateway's listener (both replicas use it, each on its
    // own address).
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    api.apply_yaml(&redirect_config(port, 301)).unwrap();
    let (_a, gateway_a) = serving_replica(&api, 2).await;
    let (_b, gateway_b) = serving_replica(&api, 3).await;
    for n in [2u8, 3] {
        let address = std::net::SocketAddr::from(([127, 0, 0, n], port));
        assert_eq!(
            status_line(address, "shop.example.com").await,
            "HTTP/1.1 301 Moved Permanently",
            "replica on {address}"
        );
    }
    gateway_a.shutdown().await;
    gateway_b.shutdown().await;
}

/// The redirect-only configuration of the serving tests, answering `code`.
fn redirect_config(port: u16, code: u16) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: embedded}}
spec: {{controllerName: example.com/gateway}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: default}}
spec:
  gatewayClassName: embedded
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: to-https, namespace: default}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [shop.example.com]
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect: {{scheme: https, statusCode: {code}}}
"#
    )
}

/// Watches that drop, expire (410 in the stream), lose their history (re-list) or whose
/// re-list fails for a while never interrupt serving: every request during the trouble gets
/// the configured answer, and a change made afterwards is served.
#[tokio::test]
async fn serving_goes_on_through_dropped_expired_and_failing_watches() {
    let api = FakeApi::start().await;
    let port = std::net::TcpListener::bind("127.0.0.4:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    api.apply_yaml(&redirect_config(port, 301)).unwrap();
    let (mut source, gateway) = serving_replica(&api, 4).await;
    // The run loop of a replica: every snapshot is compiled and applied.
    let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let runner = tokio::spawn({
        let gateway = gateway.clone();
        let applied = applied.clone();
        async move {
            let options = Options {
                controller_name: Some("example.com/gateway".into()),
                bind_address: std::net::IpAddr::from([127, 0, 0, 4]),
                ..Options::default()
            };
            while let Ok(Some(snapshot)) = source.next().await {
                let (ir, _) = compile(&snapshot, &options);
                gateway.apply(&ir).await;
                applied.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let address = std::net::SocketAddr::from(([127, 0, 0, 4], port));
    let stop = CancellationToken::new();
    let client = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut answers = Vec::new();
            while !stop.is_cancelled() {
                answers.push(status_line(address, "shop.example.com").await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        }
    });
    let gateways = api.path(V1, "Gateway", Some("default"), "web");
    let collection = gateways.rsplit_once('/').unwrap().0.to_owned();
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.drop_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.expire_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // History gone and the next lists of Gateways failing: the watcher backs off and
    // re-lists until the server answers again.
    api.compact();
    api.fail_next(&collection, &[Verb::List], 3, 500);
    api.drop_watches();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let answers = client.await.unwrap();
    assert!(answers.len() > 20, "only {} requests", answers.len());
    let wrong: Vec<_> = answers
        .iter()
        .filter(|a| *a != "HTTP/1.1 301 Moved Permanently")
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} requests not served: {wrong:?}",
        wrong.len(),
        answers.len()
    );
    assert_eq!(
        applied.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "re-lists of unchanged objects emit no snapshot"
    );

    // A change after the trouble is picked up and served.
    api.apply_yaml(&redirect_config(port, 302)).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line = status_line(address, "shop.example.com").await;
        if line == "HTTP/1.1 302 Found" {
            break;
        }
        assert_eq!(line, "HTTP/1.1 301 Moved Permanently");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.abort();
    gateway.shutdown().await;
}

/// An outside review found the status said `Programmed` for a listener that was not served:
/// compile cannot know a port is taken by another process, only the data plane can. This
/// shows what the status sink writes to the API once the apply report is merged: the
/// listener on the taken port is `Accepted=False` `PortUnavailable` and `Programmed=False`,
/// the other one is served and said to be, and the Gateway is `ListenersNotValid`.
#[tokio::test]
async fn a_port_taken_by_another_process_is_written_port_unavailable() {
    let api = FakeApi::start().await;
    // Another process's socket, bound for the whole test.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    api.apply_yaml(&format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: embedded}}
spec: {{controllerName: example.com/gateway}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: default}}
spec:
  gatewayClassName: embedded
  listeners:
    - {{name: taken, port: {}, protocol: HTTP}}
    - {{name: free, port: {}, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: to-https, namespace: default}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [shop.example.com]
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect: {{scheme: https, statusCode: 301}}
"#,
        taken.port(),
        free.port()
    ))
    .unwrap();

    let mut source = KubeSource::new(api.client(), KubeSourceOptions::new("example.com/gateway"));
    let snapshot = next(&mut source).await;
    let options = Options {
        controller_name: Some("example.com/gateway".into()),
        bind_address: taken.ip(),
        ..Options::default()
    };
    let (ir, mut status) = compile(&snapshot, &options);
    // Compile cannot know: it calls everything valid.
    assert!(status.all_healthy(), "{}", status.to_table());
    let gateway = gateway_net::Gateway::new(Default::default());
    let report = gateway.apply(&ir).await;
    assert_eq!(report.bind_failures.len(), 1, "{report:?}");
    let failure = &report.bind_failures[0];
    assert_eq!(failure.address, taken, "{report:?}");
    let names: Vec<_> = failure.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["taken"], "{report:?}");
    report.merge_into(&mut status);
    assert!(!status.all_healthy(), "{}", status.to_table());

    let mut sink = KubeStatusSink::new(api.client(), StatusSinkOptions::new("example.com/gateway"));
    sink.publish(&status).await.unwrap();

    let written = api.get(V1, "Gateway", Some("default"), "web").unwrap();
    let condition = |conditions: &serde_json::Value, type_: &str| {
        conditions
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} in {conditions}"))
            .clone()
    };
    let listener = |name: &str| {
        written["status"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no listener {name} in {written}"))["conditions"]
            .clone()
    };
    let on_taken = listener("taken");
    let accepted = condition(&on_taken, "Accepted");
    assert_eq!(accepted["status"], "False", "{accepted}");
    assert_eq!(accepted["reason"], "PortUnavailable", "{accepted}");
    let message = accepted["message"].as_str().unwrap();
    assert!(message.contains(&taken.to_string()), "{accepted}");
    assert!(message.contains(&failure.message), "{accepted}");
    assert_eq!(condition(&on_taken, "Programmed")["status"], "False");
    let on_free = listener("free");
    assert_eq!(condition(&on_free, "Accepted")["status"], "True");
    assert_eq!(condition(&on_free, "Programmed")["status"], "True");
    let conditions = &written["status"]["conditions"];
    let accepted = condition(conditions, "Accepted");
    assert_eq!(accepted["status"], "True", "{accepted}");
    assert_eq!(accepted["reason"], "ListenersNotValid", "{accepted}");
    // One listener is still served.
    let programmed = condition(conditions, "Programmed");
    assert_eq!(programmed["status"], "True", "{programmed}");

    // And it is: the free listener answers, the squatter still holds its port.
    assert_eq!(
        status_line(free, "shop.example.com").await,
        "HTTP/1.1 301 Moved Permanently"
    );
    assert_eq!(squatter.local_addr().unwrap(), taken);
    gateway.shutdown().await;
}
