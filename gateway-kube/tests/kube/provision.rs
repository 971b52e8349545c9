//! Per-Gateway Services (`ServiceOptions`, `ServiceProvisioner`) against the fake API server,
//! through the real kube client: what is applied, when nothing is, deletion, and the load
//! balancer's address in the Gateway's status and (lab mode) as its listeners' address.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::compile::{Options, compile};
use gateway_core::model::Snapshot;
use gateway_core::source::{ConfigSource, StatusSink};
use gateway_core::status::Status;
use gateway_kube::{
    KubeSource, KubeSourceOptions, KubeStatusSink, ServiceOptions, ServicePlan, ServiceProvisioner,
    StatusSinkOptions,
};
use serde_json::{Value, json};

use crate::fake_api::{FakeApi, Verb};

const CONTROLLER: &str = "example.com/gateway";
const V1: &str = "gateway.networking.k8s.io/v1";
const WAIT: Duration = Duration::from_secs(30);

fn class() -> Value {
    json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "embedded"},
           "spec": {"controllerName": CONTROLLER}})
}

fn gateway(name: &str, listeners: Value) -> Value {
    json!({"apiVersion": V1, "kind": "Gateway",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"gatewayClassName": "embedded", "listeners": listeners}})
}

/// A Gateway with one HTTP listener on `port`.
fn http_gateway(name: &str, port: u16) -> Value {
    gateway(
        name,
        json!([{"name": "http", "port": port, "protocol": "HTTP"}]),
    )
}

fn service_options() -> ServiceOptions {
    let mut options = ServiceOptions::new(CONTROLLER);
    options.port_offset = 10000;
    options.selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        "embedded-gateway".to_owned(),
    )]);
    options
}

/// The control loop of the controller, one step at a time: snapshot, plan, provision,
/// compile with the plan's addresses.
struct Loop {
    client: kube::Client,
    source: KubeSource,
    options: ServiceOptions,
    provisioner: ServiceProvisioner,
}

impl Loop {
    fn new(api: &FakeApi, options: ServiceOptions) -> Loop {
        let mut source_options = KubeSourceOptions::new(CONTROLLER);
        source_options.service_events = true;
        Loop {
            client: api.client(),
            source: KubeSource::new(api.client(), source_options),
            provisioner: ServiceProvisioner::new(api.client(), &options),
            options,
        }
    }

    async fn snapshot(&mut self) -> Snapshot {
        tokio::time::timeout(WAIT, self.source.next())
            .await
            .expect("a snapshot in time")
            .expect("no source error")
            .expect("the source goes on")
    }

    /// The next snapshot, provisioned; its plan and status.
    async fn step(&mut self) -> (Snapshot, ServicePlan, Status) {
        let snapshot = self.snapshot().await;
        let plan = self.options.plan(&snapshot);
        self.provisioner
            .reconcile(Arc::new(plan.clone()))
            .await
            .expect("Services written");
        let mut options = Options {
            controller_name: Some(CONTROLLER.into()),
            port_offset: self.options.port_offset,
            ..Options::default()
        };
        plan.apply_to(&mut options);
        let (_, status) = compile(&snapshot, &options);
        (snapshot, plan, status)
    }

    /// Waits for a snapshot in which `check` holds on the plan (watch events may come one
    /// snapshot at a time).
    async fn step_until(
        &mut self,
        check: impl Fn(&ServicePlan) -> bool,
    ) -> (Snapshot, ServicePlan, Status) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (snapshot, plan, status) = self.step().await;
            if check(&plan) {
                return (snapshot, plan, status);
            }
            assert!(tokio::time::Instant::now() < deadline, "never: {plan:?}");
        }
    }

    /// Whether no snapshot comes for a while.
    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), self.source.next())
            .await
            .is_err()
    }
}

fn service_path(api: &FakeApi, name: &str) -> String {
    api.path("v1", "Service", Some("shop"), name)
}

fn condition<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} in {conditions}"))
}

#[tokio::test]
async fn a_gateway_gets_a_load_balancer_service_with_its_ports_owner_labels_and_selector() {
    let api = FakeApi::start().await;
    api.apply(class()).unwrap();
    let mut gw = gateway(
        "web",
        json!([
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
             "tls": {"certificateRefs": [{"name": "cert"}]}},
            {"name": "https-b", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com",
             "tls": {"certificateRefs": [{"name": "cert"}]}},
            {"name": "dns", "port": 8081, "protocol": "UDP"},
            {"name": "raw", "port": 8081, "protocol": "TCP"}
        ]),
    );
    gw["spec"]["infrastructure"] = json!({
        "labels": {"team": "shop"},
        "annotations": {"metallb.io/address-pool": "lab"}
    });
    gw["spec"]["addresses"] = json!([{"type": "IPAddress", "value": "203.0.113.7"}]);
    let gw = api.apply(gw).unwrap();
    // Another controller's Gateway gets nothing.
    api.apply(
        json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "other"},
                     "spec": {"controllerName": "other.io/gateway"}}),
    )
    .unwrap();
    let mut theirs = http_gateway("theirs", 80);
    theirs["spec"]["gatewayClassName"] = json!("other");
    api.apply(theirs).unwrap();

    let mut control = Loop::new(&api, service_options());
    control.step().await;
    let service = api
        .get("v1", "Service", Some("shop"), "web-gw")
        .expect("a Service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        service["spec"]["ports"],
        json!([
            {"name": "tcp-80", "protocol": "TCP", "port": 80, "targetPort": 10080},
            {"name": "tcp-443", "protocol": "TCP", "port": 443, "targetPort": 10443},
            {"name": "tcp-8081", "protocol": "TCP", "port": 8081, "targetPort": 18081},
            {"name": "udp-8081", "protocol": "UDP", "port": 8081, "targetPort": 18081}
        ])
    );
    assert_eq!(
        service["metadata"]["ownerReferences"],
        json!([{"apiVersion": V1, "kind": "Gateway", "name": "web",
                "uid": gw["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        service["metadata"]["labels"],
        json!({"team": "shop", "gateway.networking.k8s.io/gateway-name": "web",
               "app.kubernetes.io/managed-by": "example.com-gateway"})
    );
    assert_eq!(
        service["metadata"]["annotations"],
        json!({"metallb.io/address-pool": "lab"})
    );
    assert_eq!(
        service["spec"]["selector"],
        json!({"app.kubernetes.io/name": "embedded-gateway"})
    );
    assert_eq!(service["spec"]["loadBalancerIP"], "203.0.113.7");
    // Written with server-side apply, by the controller.
    let patches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == Verb::Patch && r.path == service_path(&api, "web-gw"))
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        patches[0]
            .query
            .contains("fieldManager=example.com%2Fgateway"),
        "{}",
        patches[0].query
    );
    assert!(
        patches[0].query.contains("force=true"),
        "{}",
        patches[0].query
    );
    assert_eq!(api.list("v1", "Service", Some("shop")).len(), 1);
}

#[tokio::test]
async fn a_listener_port_change_updates_the_service_once_and_nothing_is_sent_when_unchanged() {
    let api = FakeApi::start().await;
    api.apply(class()).unwrap();
    api.apply(http_gateway("web", 80)).unwrap();
    let mut control = Loop::new(&api, service_options());
    let path = service_path(&api, "web-gw");
    control.step().await;
    assert_eq!(api.count(Verb::Patch, &path), 1);
    // Our own write comes back through the watch: planned again, nothing sent.
    control.step().await;
    assert_eq!(api.count(Verb::Patch, &path), 1);
    assert!(control.quiet().await, "a snapshot with nothing changed");
    assert_eq!(control.provisioner.stats().applied, 1);

    api.apply(http_gateway("web", 8080)).unwrap();
    control
        .step_until(|plan| plan.services[0].service.spec.ports[0].port == 8080)
        .await;
    assert_eq!(api.count(Verb::Patch, &path), 2);
    let service = api.get("v1", "Service", Some("shop"), "web-gw").unwrap();
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "tcp-8080", "protocol": "TCP", "port": 8080, "targetPort": 18080}])
    );
    // The update comes back: nothing more is sent.
    control.step().await;
    assert_eq!(api.count(Verb::Patch, &path), 2);

    // A change behind our back is put right, once.
    let mut edited = service.clone();
    edited["spec"]["ports"][0]["targetPort"] = json!(9999);
    api.apply(edited).unwrap();
    control.step().await;
    assert_eq!(api.count(Verb::Patch, &path), 3);
    let service = api.get("v1", "Service", Some("shop"), "web-gw").unwrap();
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 18080);
    control.step().await;
    assert_eq!(api.count(Verb::Patch, &path), 3);

    // A new leader (a fresh provisioner) finds it as wanted and sends nothing.
    let mut fresh = ServiceProvisioner::new(api.client(), &service_options());
    let snapshot = control.snapshot_now().await;
    fresh
        .reconcile(Arc::new(service_options().plan(&snapshot)))
        .await
        .unwrap();
    assert_eq!(fresh.stats().unchanged, 1, "{:?}", fresh.stats());
    assert_eq!(api.count(Verb::Patch, &path), 3);
}

impl Loop {
    /// A snapshot of the API now, from a new source (the loop's own emits only on change).
    async fn snapshot_now(&self) -> Snapshot {
        let mut source = KubeSource::new(self.client.clone(), KubeSourceOptions::new(CONTROLLER));
        tokio::time::timeout(WAIT, source.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn the_service_of_a_deleted_gateway_is_deleted_and_others_are_left_alone() {
    let api = FakeApi::start().await;
    api.apply(class()).unwrap();
    api.apply(http_gateway("web", 80)).unwrap();
    api.apply(http_gateway("api", 81)).unwrap();
    // A Service of someone else's, with the name our "taken" Gateway's would have, and one
    // provisioned by another controller.
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "taken-gw", "namespace": "shop"},
                     "spec": {"ports": [{"port": 80}]}}))
        .unwrap();
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "elsewhere-gw", "namespace": "shop",
                                  "labels": {"app.kubernetes.io/managed-by": "other.io-gateway"}},
                     "spec": {"ports": [{"port": 80}]}}))
        .unwrap();
    api.apply(http_gateway("taken", 82)).unwrap();
    let mut control = Loop::new(&api, service_options());
    let (_, _, status) = control.step().await;
    assert!(api.get("v1", "Service", Some("shop"), "web-gw").is_some());
    assert!(api.get("v1", "Service", Some("shop"), "api-gw").is_some());
    // The taken name is not touched; that Gateway waits, saying why.
    assert_eq!(api.count(Verb::Patch, &service_path(&api, "taken-gw")), 0);
    let taken = status
        .gateways
        .iter()
        .find(|g| g.key.name == "taken")
        .unwrap();
    let programmed = taken
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Programmed")
        .unwrap();
    assert_eq!(programmed.reason, "AddressNotAssigned");
    assert!(
        programmed
            .message
            .contains("not managed by this controller"),
        "{}",
        programmed.message
    );

    api.delete(V1, "Gateway", Some("shop"), "web").unwrap();
    control
        .step_until(|plan| plan.services.iter().all(|s| s.gateway.name != "web"))
        .await;
    assert!(api.get("v1", "Service", Some("shop"), "web-gw").is_none());
    assert_eq!(api.count(Verb::Delete, &service_path(&api, "web-gw")), 1);
    assert!(api.get("v1", "Service", Some("shop"), "api-gw").is_some());
    assert!(api.get("v1", "Service", Some("shop"), "taken-gw").is_some());
    assert!(
        api.get("v1", "Service", Some("shop"), "elsewhere-gw")
            .is_some()
    );

    // A deployment serving one Gateway leaves the other Gateways' Services to theirs.
    let mut only_web = service_options();
    only_web.gateway = Some("shop/web".parse().unwrap());
    let snapshot = control.snapshot_now().await;
    let plan = only_web.plan(&snapshot);
    assert!(plan.services.is_empty());
    assert!(plan.stale.is_empty(), "{:?}", plan.stale);
    // The class no longer ours: its Gateways' Services go.
    let mut moved = class();
    moved["spec"]["controllerName"] = json!("other.io/gateway");
    api.apply(moved).unwrap();
    control.step_until(|plan| plan.services.is_empty()).await;
    assert!(api.get("v1", "Service", Some("shop"), "api-gw").is_none());
}

#[tokio::test]
async fn the_load_balancer_address_becomes_the_gateway_address_and_it_is_programmed() {
    let api = FakeApi::start().await;
    api.apply(class()).unwrap();
    api.apply(http_gateway("web", 80)).unwrap();
    let mut control = Loop::new(&api, service_options());
    let mut sink = KubeStatusSink::new(api.client(), StatusSinkOptions::new(CONTROLLER));
    let (_, _, status) = control.step().await;
    sink.publish(&status).await.unwrap();
    let written = api.get(V1, "Gateway", Some("shop"), "web").unwrap();
    let programmed = condition(&written["status"]["conditions"], "Programmed");
    assert_eq!(programmed["status"], "False", "{programmed}");
    assert_eq!(programmed["reason"], "AddressNotAssigned", "{programmed}");
    assert!(
        programmed["message"]
            .as_str()
            .unwrap()
            .contains("waiting for the load balancer"),
        "{programmed}"
    );
    assert_eq!(written["status"]["addresses"], json!([]));
    // Its listener is served meanwhile.
    let listener = &written["status"]["listeners"][0]["conditions"];
    assert_eq!(condition(listener, "Programmed")["status"], "True");

    // The load balancer fills the Service's status.
    api.set_status(
        "v1",
        "Service",
        Some("shop"),
        "web-gw",
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.net"}]}}),
    )
    .unwrap();
    let (_, _, status) = control
        .step_until(|plan| plan.assigned_addresses.values().all(|a| !a.is_waiting()))
        .await;
    sink.publish(&status).await.unwrap();
    let written = api.get(V1, "Gateway", Some("shop"), "web").unwrap();
    assert_eq!(
        written["status"]["addresses"],
        json!([{"type": "IPAddress", "value": "203.0.113.7"},
               {"type": "Hostname", "value": "lb.example.net"}])
    );
    let programmed = condition(&written["status"]["conditions"], "Programmed");
    assert_eq!(programmed["status"], "True", "{programmed}");
    assert_eq!(programmed["reason"], "Programmed", "{programmed}");
    // A status change of the Service is no reason to apply it again.
    assert_eq!(api.count(Verb::Patch, &service_path(&api, "web-gw")), 1);
}

#[tokio::test]
async fn a_requested_address_the_load_balancer_refuses_is_address_not_usable() {
    let api = FakeApi::start().await;
    api.apply(class()).unwrap();
    let mut web = http_gateway("web", 80);
    web["spec"]["addresses"] = json!([{"type": "IPAddress", "value": "192.0.2.1"}]);
    api.apply(web).unwrap();
    let mut control = Loop::new(&api, service_options());
    let (_, plan, _) = control.step().await;
    assert!(
        plan.assigned_addresses
            .values()
            .all(|a| a.unusable.is_none())
    );
    let service = api.get("v1", "Service", Some("shop"), "web-gw").unwrap();
    assert_eq!(service["spec"]["loadBalancerIP"], "192.0.2.1");

    // The load balancer refuses, in a warning Event on the Service as MetalLB writes it (and
    // a warning about something else, which changes nothing).
    let event = |name: &str, reason: &str, message: &str| {
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": name, "namespace": "shop"},
               "involvedObject": {"kind": "Service", "namespace": "shop", "name": "web-gw",
                                  "uid": service["metadata"]["uid"]},
               "type": "Warning", "reason": reason, "message": message,
               "lastTimestamp": "2026-12-03T16:00:00Z"})
    };
    api.apply(event("web-gw.2", "FailedToUpdateEndpoint", "unrelated"))
        .unwrap();
    api.apply(event(
        "web-gw.1",
        "AllocationFailed",
        r#"Failed to allocate IP for "shop/web-gw": ["192.0.2.1"] is not allowed in config"#,
    ))
    .unwrap();
    let (_, _, status) = control
        .step_until(|plan| {
            plan.assigned_addresses
                .values()
                .all(|a| a.unusable.is_some())
        })
        .await;
    let conditions = &status.gateways[0].status.conditions;
    let programmed = conditions.iter().find(|c| c.type_ == "Programmed").unwrap();
    assert_eq!(
        (programmed.is_true(), programmed.reason.as_str()),
        (false, "AddressNotUsable")
    );
    assert!(
        programmed
            .message
            .contains("192.0.2.1: AllocationFailed: Failed to allocate IP"),
        "{}",
        programmed.message
    );
    let accepted = conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
    assert!(accepted.is_true());

    // Given the address after all: programmed, and the refusal is history.
    api.set_status(
        "v1",
        "Service",
        Some("shop"),
        "web-gw",
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
    )
    .unwrap();
    let (_, _, status) = control
        .step_until(|plan| plan.assigned_addresses.values().all(|a| !a.is_waiting()))
        .await;
    assert!(status.all_healthy(), "{}", status.to_table());
    assert_eq!(status.gateways[0].status.addresses[0].value, "192.0.2.1");
}

/// The status line of a plain HTTP/1.1 request, `None` when nothing listens.
async fn status_line(address: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = "GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    Some(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn with_bound_load_balancer_addresses_each_gateway_listens_on_its_own() {
    let api = FakeApi::start().await;
    // Two Gateways on one port, each on the address its load balancer hands out.
    let lb: std::net::IpAddr = [127, 0, 0, 23].into();
    let other_lb: std::net::IpAddr = [127, 0, 0, 24].into();
    let port = std::net::TcpListener::bind((lb, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    drop(std::net::TcpListener::bind((other_lb, port)).expect("the port is free on both"));
    api.apply(class()).unwrap();
    for (name, code) in [("web", 301), ("api", 302)] {
        api.apply(http_gateway(name, port)).unwrap();
        api.apply(json!({"apiVersion": V1, "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"parentRefs": [{"name": name}],
                     "rules": [{"filters": [{"type": "RequestRedirect",
                                             "requestRedirect": {"scheme": "https", "statusCode": code}}]}]}}))
            .unwrap();
    }
    let mut options = service_options();
    options.port_offset = 0;
    options.selector.clear();
    options.bind_load_balancer_addresses = true;
    let mut control = Loop::new(&api, options.clone());
    let gateway = gateway_net::Gateway::new(Default::default());
    let compile_options = |plan: &ServicePlan| {
        let mut compile_options = Options {
            controller_name: Some(CONTROLLER.into()),
            ..Options::default()
        };
        plan.apply_to(&mut compile_options);
        compile_options
    };

    // No address yet: nothing bound, the listener waits.
    let snapshot = control.snapshot().await;
    let plan = options.plan(&snapshot);
    control
        .provisioner
        .reconcile(Arc::new(plan.clone()))
        .await
        .unwrap();
    let (ir, status) = compile(&snapshot, &compile_options(&plan));
    assert!(ir.binds.is_empty(), "{ir:?}");
    let report = gateway.apply(&ir).await;
    assert!(report.is_complete());
    assert!(gateway.bound().await.is_empty());
    assert_eq!(status.gateways.len(), 2);
    let listener = &status.gateways[0].status.listeners[0];
    let programmed = listener
        .conditions
        .iter()
        .find(|c| c.type_ == "Programmed")
        .unwrap();
    assert_eq!(
        (programmed.is_true(), programmed.reason.as_str()),
        (false, "Pending")
    );
    let service = api.get("v1", "Service", Some("shop"), "web-gw").unwrap();
    assert!(service["spec"].get("selector").is_none(), "{service}");

    // MetalLB hands out 127.0.0.23 and 127.0.0.24: each Gateway binds its own, and only it.
    for (name, address) in [("web-gw", lb), ("api-gw", other_lb)] {
        api.set_status(
            "v1",
            "Service",
            Some("shop"),
            name,
            json!({"loadBalancer": {"ingress": [{"ip": address.to_string()}]}}),
        )
        .unwrap();
    }
    let (snapshot, plan, status) = control
        .step_until(|plan| plan.gateway_addresses.len() == 2)
        .await;
    assert!(status.all_healthy(), "{}", status.to_table());
    let (ir, _) = compile(&snapshot, &compile_options(&plan));
    let report = gateway.apply(&ir).await;
    assert!(report.is_complete(), "{report:?}");
    let mut bound: Vec<_> = gateway.bound().await.iter().map(|b| b.local).collect();
    bound.sort();
    assert_eq!(
        bound,
        [
            std::net::SocketAddr::from((lb, port)),
            std::net::SocketAddr::from((other_lb, port))
        ]
    );
    assert_eq!(
        status_line((lb, port).into()).await.as_deref(),
        Some("HTTP/1.1 301 Moved Permanently")
    );
    assert_eq!(
        status_line((other_lb, port).into()).await.as_deref(),
        Some("HTTP/1.1 302 Found")
    );
    let addresses: Vec<_> = status
        .gateways
        .iter()
        .map(|g| (g.key.name.as_str(), g.status.addresses[0].value.clone()))
        .collect();
    assert_eq!(
        addresses,
        [("api", other_lb.to_string()), ("web", lb.to_string())]
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_replica_that_does_not_lead_writes_no_service() {
    let api = FakeApi::start().await;
    api.apply(class()).unwrap();
    api.apply(http_gateway("web", 80)).unwrap();
    let mut control = Loop::new(&api, service_options());
    let snapshot = control.snapshot().await;
    let plan = Arc::new(service_options().plan(&snapshot));
    let mut follower = ServiceProvisioner::new(api.client(), &service_options())
        .with_leadership(gateway_kube::Leadership::fixed(false));
    follower.reconcile(plan.clone()).await.unwrap();
    assert_eq!(follower.stats().not_leader, 1);
    assert_eq!(api.count_writes(), 0);
    // It still knows what the Gateway waits for: every replica compiles the same status.
    assert!(plan.assigned_addresses.values().all(|a| a.is_waiting()));
    control.provisioner.reconcile(plan).await.unwrap();
    assert_eq!(api.count_writes(), 1);
}
