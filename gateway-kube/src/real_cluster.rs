//! The suite against a real cluster, skipped unless asked for:
//!
//! ```text
//! KUBECONFIG=~/.kube/config cargo test -p gateway-kube -- --ignored
//! ```
//!
//! It needs the Gateway API CRDs installed (deploy/README.md). The code under test talks to the
//! server with `KUBECONFIG`; the fixtures (GatewayClasses, Gateways, HTTPRoutes, a Service's
//! status patched as a load balancer does) with `GATEWAY_TEST_ADMIN_KUBECONFIG` when it is set,
//! so that `KUBECONFIG` can hold exactly the controller's rights (`kube-lab/suite.sh` runs it as
//! the ServiceAccount of deploy/controller/rbac.yaml). It works in the namespace
//! `GATEWAY_TEST_NAMESPACE` (default `default`; the Leases need the controller's own), with
//! objects named `gateway-kube-test-*`, which it deletes at the end.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::compile::{Options, compile};
use gateway_core::source::ConfigSource;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::kinds::api_resource;
use crate::{
    KubeSource, KubeSourceOptions, KubeStatusSink, LeaderElector, LeaseOptions, ServiceOptions,
    ServiceProvisioner, StatusSinkOptions,
};
use gateway_core::model::ResourceKind;

const CONTROLLER: &str = "gateway.example.dev/gateway-kube-test";
const WAIT: Duration = Duration::from_secs(60);

fn namespace() -> String {
    std::env::var("GATEWAY_TEST_NAMESPACE").unwrap_or_else(|_| "default".into())
}

/// The controller's client: `KUBECONFIG`.
async fn client() -> kube::Client {
    kube::Client::try_default()
        .await
        .expect("KUBECONFIG names a reachable cluster")
}

/// The fixtures' client: `GATEWAY_TEST_ADMIN_KUBECONFIG`, else the controller's.
async fn admin_client() -> kube::Client {
    let Ok(path) = std::env::var("GATEWAY_TEST_ADMIN_KUBECONFIG") else {
        return client().await;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("a readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a usable admin kubeconfig");
    kube::Client::try_from(config).expect("an admin client")
}

#[tokio::test]
#[ignore = "needs a real cluster named by KUBECONFIG"]
async fn the_source_syncs_with_a_real_cluster() {
    let mut source = KubeSource::new(client().await, KubeSourceOptions::new(CONTROLLER));
    let snapshot = tokio::time::timeout(WAIT, source.next())
        .await
        .expect("every watch lists within a minute")
        .expect("no source error")
        .expect("a snapshot");
    // Every cluster has namespaces.
    assert!(!snapshot.namespaces.is_empty());
}

#[tokio::test]
#[ignore = "needs a real cluster named by KUBECONFIG"]
async fn one_of_two_replicas_leads_and_hands_over_on_shutdown() {
    let client = client().await;
    let ns = namespace();
    let name = "gateway-kube-test-lease";
    let mut options = LeaseOptions::new(&ns, name, "replica-a");
    options.retry_period = Duration::from_millis(500);
    let a = LeaderElector::new(client.clone(), options.clone());
    options.identity = "replica-b".into();
    let b = LeaderElector::new(client.clone(), options);
    let (mut la, mut lb) = (a.leadership(), b.leadership());
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let task_a = tokio::spawn(a.run(stop_a.clone()));
    tokio::time::timeout(WAIT, la.acquired())
        .await
        .expect("a leads");
    let task_b = tokio::spawn(b.run(stop_b.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(la.is_leader() && !lb.is_leader());
    stop_a.cancel();
    task_a.await.unwrap();
    tokio::time::timeout(WAIT, lb.acquired())
        .await
        .expect("b takes over");
    stop_b.cancel();
    task_b.await.unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client, &ns);
    let _ = leases.delete(name, &DeleteParams::default()).await;
}

/// The fixtures' GatewayClass and Gateway (in `ns`) endpoints.
fn class_and_gateway_apis(
    admin: &kube::Client,
    ns: &str,
) -> (Api<DynamicObject>, Api<DynamicObject>) {
    (
        Api::all_with(
            admin.clone(),
            &api_resource(ResourceKind::GatewayClass, "v1"),
        ),
        Api::namespaced_with(
            admin.clone(),
            ns,
            &api_resource(ResourceKind::Gateway, "v1"),
        ),
    )
}

/// Waits until the Gateway's `Accepted` condition is True for its current generation and its
/// status lists `listeners` listeners; answers that generation.
async fn accepted_at_current_generation(
    api: &Api<DynamicObject>,
    name: &str,
    listeners: usize,
) -> i64 {
    loop {
        let object = api.get(name).await.unwrap();
        let generation = object.metadata.generation;
        let status = &object.data["status"];
        let accepted = status["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == "Accepted"
                    && c["status"] == "True"
                    && c["observedGeneration"].as_i64() == generation
                    && c["lastTransitionTime"].is_string()
            })
        });
        let listed = status["listeners"].as_array().map_or(0, Vec::len);
        if accepted && listed == listeners {
            return generation.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs a real cluster named by KUBECONFIG"]
async fn status_is_written_to_a_real_cluster_and_follows_a_spec_change() {
    use kube::api::{Patch, PatchParams};

    let client = client().await;
    let admin = admin_client().await;
    let ns = namespace();
    let (class_api, gateway_api) = class_and_gateway_apis(&admin, &ns);
    let class: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "gateway-kube-test"},
        "spec": {"controllerName": CONTROLLER}
    }))
    .unwrap();
    let gateway: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gateway-kube-test", "namespace": ns},
        "spec": {"gatewayClassName": "gateway-kube-test",
                 "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}
    }))
    .unwrap();
    let _ = class_api.create(&PostParams::default(), &class).await;
    let _ = gateway_api.create(&PostParams::default(), &gateway).await;

    // The controller's loop, as the controller's identity: every snapshot compiled, its
    // status handed to the writer.
    let mut source = KubeSource::new(client.clone(), KubeSourceOptions::new(CONTROLLER));
    let sink = KubeStatusSink::new(client.clone(), StatusSinkOptions::new(CONTROLLER));
    let (statuses, rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let writer = tokio::spawn(sink.run(rx, stop.clone()));
    let options = Options {
        controller_name: Some(CONTROLLER.into()),
        ..Options::default()
    };
    let compiler = tokio::spawn(async move {
        while let Ok(Some(snapshot)) = source.next().await {
            let (_, status) = compile(&snapshot, &options);
            statuses.send_replace(Some(Arc::new(status)));
        }
    });

    let first = tokio::time::timeout(
        WAIT,
        accepted_at_current_generation(&gateway_api, "gateway-kube-test", 1),
    )
    .await
    .expect("the Gateway is Accepted with observedGeneration");

    // A spec change: a new generation, and status for it (the real status subresource keeps
    // status and spec apart; a write against the old generation would show here).
    let change = json!({"spec": {"listeners": [
        {"name": "http", "port": 8080, "protocol": "HTTP"},
        {"name": "http-2", "port": 8081, "protocol": "HTTP"}]}});
    gateway_api
        .patch(
            "gateway-kube-test",
            &PatchParams::default(),
            &Patch::Merge(&change),
        )
        .await
        .expect("the spec change is accepted");
    let second = tokio::time::timeout(
        WAIT,
        accepted_at_current_generation(&gateway_api, "gateway-kube-test", 2),
    )
    .await
    .expect("status follows the new generation");
    assert_eq!(second, first + 1);

    compiler.abort();
    stop.cancel();
    writer.await.unwrap();
    let _ = gateway_api
        .delete("gateway-kube-test", &DeleteParams::default())
        .await;
    let _ = class_api
        .delete("gateway-kube-test", &DeleteParams::default())
        .await;
}

#[tokio::test]
#[ignore = "needs a real cluster named by KUBECONFIG"]
async fn a_route_the_crd_rules_reject_never_reaches_the_controller() {
    let admin = admin_client().await;
    let ns = namespace();
    let routes: Api<DynamicObject> =
        Api::namespaced_with(admin, &ns, &api_resource(ResourceKind::HttpRoute, "v1"));
    // A RequestRedirect filter without its requestRedirect field: the v1.6.1 CRD's CEL rule
    // refuses it (the schema alone would not).
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "gateway-kube-test-cel", "namespace": ns},
        "spec": {"rules": [{"filters": [{"type": "RequestRedirect"}]}]}
    }))
    .unwrap();
    match routes.create(&PostParams::default(), &route).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status
                    .message
                    .contains("filter.requestRedirect must be specified"),
                "{}",
                status.message
            );
        }
        other => panic!("the API server stored a route its CRD forbids: {other:?}"),
    }
    let mut source = KubeSource::new(client().await, KubeSourceOptions::new(CONTROLLER));
    let snapshot = tokio::time::timeout(WAIT, source.next())
        .await
        .expect("every watch lists within a minute")
        .expect("no source error")
        .expect("a snapshot");
    assert!(
        !snapshot
            .http_routes
            .iter()
            .any(|r| r.metadata.name == "gateway-kube-test-cel"),
        "the controller saw the rejected route"
    );
}

#[tokio::test]
#[ignore = "needs a real cluster named by KUBECONFIG"]
async fn a_gateway_gets_a_service_whose_load_balancer_address_it_reports() {
    use gateway_core::source::StatusSink as _;
    use kube::api::{Patch, PatchParams};

    // A controller name of its own, so that the other tests' Gateways are not ours.
    const LB_CONTROLLER: &str = "gateway.example.dev/gateway-kube-test-lb";
    let name = "gateway-kube-test-lb";
    let client = client().await;
    let admin = admin_client().await;
    let ns = namespace();
    let (class_api, gateway_api) = class_and_gateway_apis(&admin, &ns);
    let service_api: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &ns,
        &api_resource(ResourceKind::Service, "v1"),
    );
    let class: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": name}, "spec": {"controllerName": LB_CONTROLLER}
    }))
    .unwrap();
    let gateway: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"gatewayClassName": name,
                 "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"},
                               {"name": "udp", "port": 8081, "protocol": "UDP"}]}
    }))
    .unwrap();
    let _ = class_api.create(&PostParams::default(), &class).await;
    let _ = gateway_api.create(&PostParams::default(), &gateway).await;
    let uid = gateway_api
        .get(name)
        .await
        .unwrap()
        .metadata
        .uid
        .expect("a uid");

    // The controller's loop: snapshot, provision, compile with the plan's addresses, status.
    let mut service_options = ServiceOptions::new(LB_CONTROLLER);
    service_options.port_offset = 10000;
    let mut source = KubeSource::new(client.clone(), KubeSourceOptions::new(LB_CONTROLLER));
    let mut provisioner = ServiceProvisioner::new(client.clone(), &service_options);
    let mut sink = KubeStatusSink::new(client.clone(), StatusSinkOptions::new(LB_CONTROLLER));
    let controller = tokio::spawn(async move {
        while let Ok(Some(snapshot)) = source.next().await {
            let plan = service_options.plan(&snapshot);
            if let Err(error) = provisioner.reconcile(Arc::new(plan.clone())).await {
                tracing::warn!(%error, "provisioning failed");
            }
            let mut options = Options {
                controller_name: Some(LB_CONTROLLER.into()),
                port_offset: 10000,
                ..Options::default()
            };
            plan.apply_to(&mut options);
            let (_, status) = compile(&snapshot, &options);
            if let Err(error) = sink.publish(&status).await {
                tracing::warn!(%error, "status not written");
            }
        }
    });

    let service_name = crate::service_name(&ns, name);
    let appeared = async {
        loop {
            if let Ok(Some(service)) = service_api.get_opt(&service_name).await {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let service = tokio::time::timeout(WAIT, appeared)
        .await
        .expect("the Service appears");
    let owners = service
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "Gateway");
    assert_eq!(owners[0].name, name);
    assert_eq!(owners[0].uid, uid);
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(owners[0].block_owner_deletion, Some(true));
    assert_eq!(service.data["spec"]["type"], "LoadBalancer");
    let ports: Vec<_> = service.data["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["targetPort"].clone()))
        .collect();
    assert_eq!(
        ports,
        [
            (json!("tcp-8080"), json!(18080)),
            (json!("udp-8081"), json!(18081))
        ]
    );

    // As a load balancer would.
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.77"}]}}});
    service_api
        .patch_status(
            &service_name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("the Service's status patched");
    // A load balancer running in the cluster may answer with its own address: the Gateway
    // reports whatever the Service holds.
    let reported = async {
        loop {
            let service = service_api.get(&service_name).await.unwrap();
            let ingress: Vec<serde_json::Value> = service.data["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str())
                .map(|ip| json!({"type": "IPAddress", "value": ip}))
                .collect();
            let gateway = gateway_api.get(name).await.unwrap();
            let addresses = gateway.data["status"]["addresses"].clone();
            let programmed = gateway.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Programmed" && c["status"] == "True");
            if !ingress.is_empty() && addresses == json!(ingress) && programmed {
                return addresses;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let addresses = tokio::time::timeout(WAIT, reported)
        .await
        .expect("the Gateway reports the load balancer's address and is Programmed");
    assert!(!addresses.as_array().unwrap().is_empty());

    controller.abort();
    let _ = gateway_api.delete(name, &DeleteParams::default()).await;
    // The garbage collector deletes the Service with its Gateway; without one (a bare API
    // server), the test does.
    let _ = service_api
        .delete(&service_name, &DeleteParams::default())
        .await;
    let _ = class_api.delete(name, &DeleteParams::default()).await;
}
