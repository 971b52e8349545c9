//! The suite against a real cluster, skipped unless asked for:
//!
//! ```text
//! KUBECONFIG=~/.kube/config cargo test -p gateway-kube -- --ignored
//! ```
//!
//! It needs the Gateway API CRDs installed (deploy/README.md) and rights to create
//! GatewayClasses, Gateways and Leases. It works in the namespace `GATEWAY_TEST_NAMESPACE`
//! (default `default`), with objects named `gateway-kube-test-*`, which it deletes at the end.

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
    KubeSource, KubeSourceOptions, KubeStatusSink, LeaderElector, LeaseOptions, StatusSinkOptions,
};
use gateway_core::model::ResourceKind;

const CONTROLLER: &str = "gateway.example.dev/gateway-kube-test";
const WAIT: Duration = Duration::from_secs(60);

fn namespace() -> String {
    std::env::var("GATEWAY_TEST_NAMESPACE").unwrap_or_else(|_| "default".into())
}

async fn client() -> kube::Client {
    kube::Client::try_default()
        .await
        .expect("KUBECONFIG names a reachable cluster")
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

#[tokio::test]
#[ignore = "needs a real cluster named by KUBECONFIG"]
async fn status_is_written_to_a_real_cluster() {
    let client = client().await;
    let ns = namespace();
    let class_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &api_resource(ResourceKind::GatewayClass, "v1"),
    );
    let gateway_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &api_resource(ResourceKind::Gateway, "v1"),
    );
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

    let mut source = KubeSource::new(client.clone(), KubeSourceOptions::new(CONTROLLER));
    let sink = KubeStatusSink::new(client.clone(), StatusSinkOptions::new(CONTROLLER));
    let (statuses, rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let writer = tokio::spawn(sink.run(rx, stop.clone()));
    let options = Options {
        controller_name: Some(CONTROLLER.into()),
        ..Options::default()
    };
    let snapshot = tokio::time::timeout(WAIT, source.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (_, status) = compile(&snapshot, &options);
    statuses.send_replace(Some(Arc::new(status)));

    let accepted = async {
        loop {
            let object = gateway_api.get("gateway-kube-test").await.unwrap();
            let generation = object.metadata.generation;
            let conditions = object.data["status"]["conditions"].clone();
            let ok = conditions.as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Accepted"
                        && c["status"] == "True"
                        && c["observedGeneration"].as_i64() == generation
                        && c["lastTransitionTime"].is_string()
                })
            });
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(WAIT, accepted)
        .await
        .expect("the Gateway is Accepted with observedGeneration");
    stop.cancel();
    writer.await.unwrap();
    let _ = gateway_api
        .delete("gateway-kube-test", &DeleteParams::default())
        .await;
    let _ = class_api
        .delete("gateway-kube-test", &DeleteParams::default())
        .await;
}
