//! Status merges against objects as the API server holds them; no server.

use gateway_core::compile::{Options, compile};
use gateway_core::model::{Resource, Snapshot};

use super::*;

const OURS: &str = "gateway.example.dev/embedded-gateway";
const NOW: &str = "2026-11-26T10:00:00Z";
const EARLIER: &str = "2026-01-01T00:00:00Z";

fn route_key() -> ObjectKey {
    ObjectKey::new(ResourceKind::HttpRoute, "apps", "api")
}

fn entry(controller: &str, gateway: &str, accepted: bool, time: Option<&str>) -> Value {
    let mut condition = json!({"type": "Accepted", "status": if accepted {"True"} else {"False"},
        "reason": if accepted {"Accepted"} else {"NotAllowedByListeners"}, "message": "",
        "observedGeneration": 1});
    if let Some(time) = time {
        condition["lastTransitionTime"] = json!(time);
    }
    json!({"parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": "infra", "name": gateway},
           "controllerName": controller, "conditions": [condition]})
}

fn parents(values: &[Value]) -> Vec<RouteParentStatus> {
    values
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect()
}

#[test]
fn route_entries_of_other_controllers_stay_in_place() {
    let options = StatusSinkOptions::new(OURS);
    let current = json!({"parents": [
        entry("other.io/controller", "web", true, Some(EARLIER)),
        entry(OURS, "web", true, Some(EARLIER)),
        entry("third.io/controller", "web", false, Some(EARLIER)),
    ]});
    // Unchanged: nothing to write.
    let want = Desired::Parents(parents(&[entry(OURS, "web", true, None)]));
    assert_eq!(merge(&route_key(), &current, &want, &options, NOW), None);
    // Ours flips: replaced with a new transition time; the others untouched and in order.
    let want = Desired::Parents(parents(&[entry(OURS, "web", false, None)]));
    let patch = merge(&route_key(), &current, &want, &options, NOW).unwrap();
    assert_eq!(
        patch,
        json!({"parents": [
            entry("other.io/controller", "web", true, Some(EARLIER)),
            entry(OURS, "web", false, Some(NOW)),
            entry("third.io/controller", "web", false, Some(EARLIER)),
        ]})
    );
    // A new parent is appended.
    let want = Desired::Parents(parents(&[
        entry(OURS, "web", true, None),
        entry(OURS, "internal", true, None),
    ]));
    let patch = merge(&route_key(), &current, &want, &options, NOW).unwrap();
    assert_eq!(patch["parents"].as_array().unwrap().len(), 4);
    assert_eq!(patch["parents"][1], entry(OURS, "web", true, Some(EARLIER)));
    assert_eq!(
        patch["parents"][3],
        entry(OURS, "internal", true, Some(NOW))
    );
    // Detached from our Gateway: our entry goes, theirs stay.
    let patch = merge(
        &route_key(),
        &current,
        &Desired::Parents(Vec::new()),
        &options,
        NOW,
    )
    .unwrap();
    assert_eq!(
        patch,
        json!({"parents": [
            entry("other.io/controller", "web", true, Some(EARLIER)),
            entry("third.io/controller", "web", false, Some(EARLIER)),
        ]})
    );
}

#[test]
fn a_message_change_keeps_the_transition_time() {
    let options = StatusSinkOptions::new(OURS);
    let current = json!({"parents": [entry(OURS, "web", true, Some(EARLIER))]});
    let mut changed = entry(OURS, "web", true, None);
    changed["conditions"][0]["message"] = json!("now with a message");
    changed["conditions"][0]["observedGeneration"] = json!(2);
    let want = Desired::Parents(parents(&[changed.clone()]));
    let patch = merge(&route_key(), &current, &want, &options, NOW).unwrap();
    changed["conditions"][0]["lastTransitionTime"] = json!(EARLIER);
    assert_eq!(patch, json!({"parents": [changed]}));
}

#[test]
fn one_gateway_deployments_leave_each_others_entries() {
    let mut options = StatusSinkOptions::new(OURS);
    options.gateway = Some(GatewayRef {
        namespace: "infra".into(),
        name: "web".into(),
    });
    let current = json!({"parents": [
        entry(OURS, "internal", true, Some(EARLIER)),
        entry(OURS, "web", true, Some(EARLIER)),
    ]});
    let want = Desired::Parents(Vec::new());
    let patch = merge(&route_key(), &current, &want, &options, NOW).unwrap();
    assert_eq!(
        patch,
        json!({"parents": [entry(OURS, "internal", true, Some(EARLIER))]})
    );
}

#[test]
fn gateway_status_is_ours_as_a_whole() {
    let options = StatusSinkOptions::new(OURS);
    let key = ObjectKey::new(ResourceKind::Gateway, "infra", "web");
    let condition = |type_: &str, status: &str, time: Option<&str>| {
        let mut c = json!({"type": type_, "status": status, "reason": type_, "message": "",
                           "observedGeneration": 3});
        if let Some(time) = time {
            c["lastTransitionTime"] = json!(time);
        }
        c
    };
    let current = json!({
        "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}],
        "conditions": [condition("Accepted", "True", Some(EARLIER)),
                       condition("Programmed", "False", Some(EARLIER))],
        "listeners": [{"name": "http", "attachedRoutes": 1, "supportedKinds": [],
                       "conditions": [condition("Accepted", "True", Some(EARLIER))]}],
        "somethingElse": {"left": "by an older writer"}
    });
    let want: GatewayStatus = serde_json::from_value(json!({
        "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}],
        "conditions": [condition("Accepted", "True", None), condition("Programmed", "True", None)],
        "listeners": [{"name": "http", "attachedRoutes": 2,
                       "supportedKinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                       "conditions": [condition("Accepted", "True", None)]}]
    }))
    .unwrap();
    let patch = merge(&key, &current, &Desired::Gateway(want), &options, NOW).unwrap();
    assert_eq!(
        patch,
        json!({
            "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}],
            "conditions": [condition("Accepted", "True", Some(EARLIER)),
                           condition("Programmed", "True", Some(NOW))],
            "listeners": [{"name": "http", "attachedRoutes": 2,
                           "supportedKinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                           "conditions": [condition("Accepted", "True", Some(EARLIER))]}],
            "somethingElse": null
        })
    );
    // Written: the same status again is no write.
    let mut written = patch.clone();
    written.as_object_mut().unwrap().remove("somethingElse");
    let want: GatewayStatus = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(
        merge(&key, &written, &Desired::Gateway(want), &options, NOW),
        None
    );
}

fn client() -> kube::Client {
    // Nothing listens there; these tests never send a request.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn seed_status() -> Status {
    let objects = crate::index::tests::seed_objects();
    let snapshot: Snapshot = objects
        .into_iter()
        .filter_map(|o| Resource::from_json(o).unwrap())
        .collect();
    let options = Options {
        controller_name: Some("gateway.envoyproxy.io/gatewayclass-controller".into()),
        ..Options::default()
    };
    compile(&snapshot, &options).1
}

#[tokio::test]
async fn the_seed_demo_status_is_written_once_and_then_only_what_changes() {
    let mut sink = KubeStatusSink::new(
        client(),
        StatusSinkOptions::new("gateway.envoyproxy.io/gatewayclass-controller"),
    );
    let status = seed_status();
    let plan = sink.plan(&status);
    let keys: Vec<String> = plan.iter().map(|w| w.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "GatewayClass envoy-gateway",
            "Gateway platform/main-gateway",
            "HTTPRoute demo/http-to-https-redirect",
            "HTTPRoute demo/https-server-route",
            "GRPCRoute demo/grpc-route",
            "TCPRoute demo/tcp-app-route",
            "UDPRoute demo/udp-app-route",
        ]
    );
    // What the first write of each would send to an object with no status yet: every
    // condition with observedGeneration and a transition time.
    for work in &plan {
        let patch = merge(&work.key, &Value::Null, &work.desired, &sink.options, NOW).unwrap();
        let text = patch.to_string();
        assert!(
            text.contains(r#""lastTransitionTime":"2026-11-26T10:00:00Z""#),
            "{text}"
        );
        assert!(!text.contains(r#""lastTransitionTime":null"#), "{text}");
    }
    // Confirmed written: the same status plans nothing.
    for work in plan {
        sink.written.insert(work.key, work.fingerprint);
    }
    assert!(sink.plan(&status).is_empty());
    assert_eq!(sink.stats().cached, 7);
    // A route that loses its parent: its entries of ours are removed.
    let mut changed = status.clone();
    changed
        .routes
        .retain(|r| r.key.name != "https-server-route");
    let plan = sink.plan(&changed);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].key.to_string(), "HTTPRoute demo/https-server-route");
    assert!(plan[0].is_removal());
}

#[tokio::test]
async fn a_replica_that_does_not_lead_only_remembers() {
    let mut sink = KubeStatusSink::new(client(), StatusSinkOptions::new(OURS))
        .with_leadership(Leadership::fixed(false));
    let status = seed_status();
    // No request is made (none could succeed: nothing listens).
    sink.publish(&status).await.unwrap();
    assert_eq!(sink.latest().map(|s| s.as_ref()), Some(&status));
    assert_eq!(sink.stats().not_leader, 1);
    assert_eq!(sink.stats().publishes, 0);
}

#[tokio::test]
async fn a_failed_write_is_reported_with_the_object() {
    let mut sink = KubeStatusSink::new(
        client(),
        StatusSinkOptions::new("gateway.envoyproxy.io/gatewayclass-controller"),
    );
    let error = sink.publish(&seed_status()).await.unwrap_err();
    assert!(matches!(error, Error::StatusWrite { .. }), "{error}");
    assert_eq!(sink.stats().patched, 0);
}
