//! The upstream status-condition conformance tests, translated into assertions on what
//! `compile` reports.
//!
//! Each upstream Go test becomes one function here; the Go suite's comparison rules are kept
//! (a listed condition must be present with that status and, when given, that reason; every
//! condition carries the object's latest generation; listeners are matched by name with
//! `supportedKinds` containing the expected kinds and empty when expected empty; route parents
//! are matched on controllerName/group/kind/name/namespace). Object edits the Go tests make
//! through the API server are made on the snapshot, bumping `metadata.generation` as the API
//! server would.
//!
//! `cargo test -p conformance` prints the report (this test is its own harness).
// Test helpers: a broken fixture or an absent suite should fail loudly, not be handled.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;

use conformance::{CONTROLLER_NAME, Suite};
use gateway_core::compile::{Options, compile};
use gateway_core::model::{Condition, GATEWAY_GROUP, ResourceKind, Snapshot};
use gateway_core::status::Status;
use serde::Serialize;
use serde::de::DeserializeOwned;

const INFRA: &str = "gateway-conformance-infra";

// === Expectations ===

/// An expected condition: type, status, and reason (`""` = any reason).
#[derive(Clone, Copy)]
struct Cond(&'static str, bool, &'static str);

fn matches(actual: &[Condition], expected: &Cond) -> bool {
    actual.iter().any(|c| {
        c.type_ == expected.0
            && c.is_true() == expected.1
            && (expected.2.is_empty() || c.reason == expected.2)
    })
}

fn show(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An expected `status.listeners[]` entry.
struct Listener {
    name: &'static str,
    kinds: &'static [&'static str],
    attached: i64,
    conditions: Vec<Cond>,
}

/// Listener conditions the suite requires of a healthy listener.
fn healthy() -> Vec<Cond> {
    vec![
        Cond("Accepted", true, ""),
        Cond("ResolvedRefs", true, ""),
        Cond("Programmed", true, ""),
    ]
}

// === A compiled snapshot and the checks over it ===

struct World {
    snapshot: Snapshot,
    status: Status,
    errors: Vec<String>,
}

impl World {
    fn new(snapshot: Snapshot) -> World {
        let mut world = World {
            snapshot,
            status: Status::default(),
            errors: Vec::new(),
        };
        world.compile();
        world
    }

    /// Compiles as a cluster deployment would run: our controller name, and each Gateway on
    /// its own address (the suite gives every Gateway its own load balancer address, so
    /// Gateways of different tests never share a port).
    fn compile(&mut self) {
        let gateway_addresses =
            conformance::gateway_addresses(&self.snapshot, 0).expect("one /24 of Gateways");
        let options = Options {
            controller_name: Some(CONTROLLER_NAME.to_owned()),
            gateway_addresses,
            ..Options::default()
        };
        self.status = compile(&self.snapshot, &options).1;
    }

    fn fail(&mut self, message: String) {
        self.errors.push(message);
    }

    fn gateway_generation(&self, name: &str) -> Option<i64> {
        self.snapshot
            .gateways
            .iter()
            .find(|g| g.metadata.namespace() == INFRA && g.metadata.name == name)
            .and_then(|g| g.metadata.generation)
    }

    /// `GatewayMustHaveLatestConditions` + `GatewayMustHaveCondition`.
    fn gateway(&mut self, name: &str, expected: &[Cond]) {
        let generation = self.gateway_generation(name);
        let Some(gateway) = self.status.gateway(INFRA, name) else {
            return self.fail(format!("Gateway {name}: no status"));
        };
        let conditions = gateway.status.conditions.clone();
        if let Some(c) = conditions
            .iter()
            .find(|c| c.observed_generation != generation)
        {
            self.fail(format!(
                "Gateway {name}: {} has observedGeneration {:?}, generation is {generation:?}",
                c.type_, c.observed_generation
            ));
        }
        for e in expected {
            if !matches(&conditions, e) {
                self.fail(format!(
                    "Gateway {name}: want {}={}/{}, have [{}]",
                    e.0,
                    e.1,
                    e.2,
                    show(&conditions)
                ));
            }
        }
    }

    /// `GatewayStatusMustHaveListeners`: the same listeners, by name.
    fn listeners(&mut self, gateway: &str, expected: &[Listener]) {
        self.gateway(gateway, &[]);
        let Some(status) = self.status.gateway(INFRA, gateway) else {
            return;
        };
        let problems = listener_problems(
            &format!("Gateway {gateway}"),
            &status.status.listeners,
            expected,
        );
        self.errors.extend(problems);
    }

    /// `ListenerSetMustHaveCondition`: the set's conditions at its latest generation, with
    /// every expected one.
    fn listener_set(&mut self, set: (&str, &str), expected: &[Cond]) {
        let generation = self
            .snapshot
            .listener_sets
            .iter()
            .find(|s| s.metadata.namespace() == set.0 && s.metadata.name == set.1)
            .and_then(|s| s.metadata.generation);
        let Some(status) = self
            .status
            .listener_sets
            .iter()
            .find(|s| s.key.namespace == set.0 && s.key.name == set.1)
        else {
            return self.fail(format!("ListenerSet {}/{}: no status", set.0, set.1));
        };
        let conditions = status.status.conditions.clone();
        if let Some(c) = conditions
            .iter()
            .find(|c| c.observed_generation != generation)
        {
            self.fail(format!(
                "ListenerSet {}/{}: {} has observedGeneration {:?}, generation is {generation:?}",
                set.0, set.1, c.type_, c.observed_generation
            ));
        }
        for e in expected {
            if !matches(&conditions, e) {
                self.fail(format!(
                    "ListenerSet {}/{}: want {}={}/{}, have [{}]",
                    set.0,
                    set.1,
                    e.0,
                    e.1,
                    e.2,
                    show(&conditions)
                ));
            }
        }
    }

    /// `ListenerSetStatusMustHaveListeners`: exactly these listeners, by name.
    fn listener_set_listeners(&mut self, set: (&str, &str), expected: &[Listener]) {
        self.listener_set(set, &[]);
        let actual = self
            .status
            .listener_sets
            .iter()
            .find(|s| s.key.namespace == set.0 && s.key.name == set.1)
            .map(|s| s.status.listeners.clone())
            .unwrap_or_default();
        let problems = listener_problems(
            &format!("ListenerSet {}/{}", set.0, set.1),
            &actual,
            expected,
        );
        self.errors.extend(problems);
    }

    /// `ListenerSetListenersMustHaveConditions` for some listeners of a set (all of them
    /// when `names` is empty).
    fn listener_set_listener_conditions(
        &mut self,
        set: (&str, &str),
        names: &[&str],
        expected: &[Cond],
    ) {
        let actual = self
            .status
            .listener_sets
            .iter()
            .find(|s| s.key.namespace == set.0 && s.key.name == set.1)
            .map(|s| s.status.listeners.clone())
            .unwrap_or_default();
        for name in names {
            if !actual.iter().any(|l| l.name == *name) {
                self.fail(format!(
                    "ListenerSet {}/{}: no listener {name}",
                    set.0, set.1
                ));
            }
        }
        for listener in &actual {
            if !names.is_empty() && !names.contains(&listener.name.as_str()) {
                continue;
            }
            for c in expected {
                if !matches(&listener.conditions, c) {
                    self.fail(format!(
                        "ListenerSet {}/{} listener {}: want {}={}/{}, have [{}]",
                        set.0,
                        set.1,
                        listener.name,
                        c.0,
                        c.1,
                        c.2,
                        show(&listener.conditions)
                    ));
                }
            }
        }
    }

    /// `GatewayMustHaveAttachedListeners`: `status.attachedListenerSets` (unset reads 0).
    fn attached_listener_sets(&mut self, gateway: &str, want: i64) {
        let have = self
            .status
            .gateway(INFRA, gateway)
            .and_then(|g| g.status.attached_listener_sets)
            .unwrap_or(0);
        if have != want {
            self.fail(format!(
                "Gateway {gateway}: attachedListenerSets {have}, want {want}"
            ));
        }
    }

    /// Checks one listener's conditions and attachedRoutes, leaving the others alone.
    fn listener(&mut self, gateway: &str, name: &str, attached: i64, expected: &[Cond]) {
        let Some(a) = self
            .status
            .gateway(INFRA, gateway)
            .and_then(|g| g.status.listeners.iter().find(|l| l.name == name))
            .cloned()
        else {
            return self.fail(format!("Gateway {gateway}: no listener {name}"));
        };
        if a.attached_routes != attached {
            self.fail(format!(
                "Gateway {gateway} listener {name}: attachedRoutes {}, want {attached}",
                a.attached_routes
            ));
        }
        for c in expected {
            if !matches(&a.conditions, c) {
                self.fail(format!(
                    "Gateway {gateway} listener {name}: want {}={}/{}, have [{}]",
                    c.0,
                    c.1,
                    c.2,
                    show(&a.conditions)
                ));
            }
        }
    }

    fn route_generation(&self, kind: ResourceKind, namespace: &str, name: &str) -> Option<i64> {
        let s = &self.snapshot;
        let metas: Vec<&gateway_core::model::ObjectMeta> = match kind {
            ResourceKind::HttpRoute => s.http_routes.iter().map(|r| &r.metadata).collect(),
            ResourceKind::GrpcRoute => s.grpc_routes.iter().map(|r| &r.metadata).collect(),
            ResourceKind::TlsRoute => s.tls_routes.iter().map(|r| &r.metadata).collect(),
            ResourceKind::TcpRoute => s.tcp_routes.iter().map(|r| &r.metadata).collect(),
            ResourceKind::UdpRoute => s.udp_routes.iter().map(|r| &r.metadata).collect(),
            _ => Vec::new(),
        };
        metas
            .into_iter()
            .find(|m| m.namespace() == namespace && m.name == name)
            .and_then(|m| m.generation)
    }

    /// `RouteMustHaveParents` / `…MustHaveCondition` for one Gateway parent in the infra
    /// namespace: the parent entry of our controller for that Gateway must carry every
    /// expected condition, and all its conditions the route's latest generation.
    fn route(&mut self, kind: ResourceKind, route: (&str, &str), gateway: &str, expected: &[Cond]) {
        self.route_on(kind, route, ("Gateway", INFRA, gateway), expected);
    }

    /// [`World::route`] for any parent: `(kind, namespace, name)` of a Gateway or ListenerSet.
    fn route_on(
        &mut self,
        kind: ResourceKind,
        route: (&str, &str),
        parent: (&str, &str, &str),
        expected: &[Cond],
    ) {
        let (parent_kind, parent_ns, gateway) = parent;
        let key = gateway_core::model::ObjectKey::new(kind, route.0, route.1);
        let generation = self.route_generation(kind, route.0, route.1);
        let Some(status) = self.status.route(&key).cloned() else {
            return self.fail(format!("{key}: no status"));
        };
        let parents: Vec<_> = status
            .status
            .parents
            .iter()
            .filter(|p| {
                p.controller_name == CONTROLLER_NAME
                    && p.parent_ref.group() == GATEWAY_GROUP
                    && p.parent_ref.kind() == parent_kind
                    && p.parent_ref.name == gateway
                    && match p.parent_ref.namespace.as_deref() {
                        Some(n) => n == parent_ns,
                        // Left out only for a parent in the route's own namespace.
                        None => parent_ns == route.0,
                    }
            })
            .collect();
        if parents.is_empty() {
            return self.fail(format!(
                "{key}: no parent entry for {parent_kind} {gateway}"
            ));
        }
        let ok = parents.iter().any(|p| {
            p.conditions
                .iter()
                .all(|c| c.observed_generation == generation)
                && expected.iter().all(|e| matches(&p.conditions, e))
        });
        if !ok {
            let want: Vec<String> = expected
                .iter()
                .map(|e| format!("{}={}/{}", e.0, e.1, e.2))
                .collect();
            let have: Vec<String> = parents
                .iter()
                .map(|p| {
                    format!(
                        "[{}] (generations {:?}, route at {generation:?})",
                        show(&p.conditions),
                        p.conditions
                            .iter()
                            .map(|c| c.observed_generation)
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            self.fail(format!(
                "{key} on {gateway}: want {}, have {}",
                want.join(", "),
                have.join(" | ")
            ));
        }
    }

    /// `…RouteMustHaveNoAcceptedParents`: no parent entry, or a single one not Accepted.
    fn no_accepted_parents(&mut self, kind: ResourceKind, route: (&str, &str)) {
        let key = gateway_core::model::ObjectKey::new(kind, route.0, route.1);
        let parents = self
            .status
            .route(&key)
            .map(|r| r.status.parents.clone())
            .unwrap_or_default();
        let ok = match parents.as_slice() {
            [] => true,
            [one] => matches(&one.conditions, &Cond("Accepted", false, "")),
            _ => false,
        };
        if !ok {
            self.fail(format!(
                "{key}: want no accepted parents, have {}",
                parents
                    .iter()
                    .map(|p| format!("{} [{}]", p.parent_ref.name, show(&p.conditions)))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    }

    /// Edits an object through its JSON form (as a merge patch would), bumping its generation
    /// as the API server does on a spec change.
    fn edit<T: Serialize + DeserializeOwned>(
        object: &mut T,
        change: impl FnOnce(&mut serde_json::Value),
    ) {
        let mut value = serde_json::to_value(&*object).expect("model objects serialise");
        change(&mut value);
        let generation = value["metadata"]["generation"].as_i64().unwrap_or(1);
        value["metadata"]["generation"] = serde_json::json!(generation + 1);
        *object = serde_json::from_value(value).expect("the edit keeps the object's shape");
    }

    /// `BackendTLSPolicyMustHaveCondition` (every ancestor's conditions at the latest
    /// generation, the one for `gateway` carrying each expected condition) and
    /// `BackendTLSPolicyMustHaveLatestConditions`.
    fn policy(&mut self, name: &str, gateway: &str, expected: &[Cond]) {
        let generation = self
            .snapshot
            .backend_tls_policies
            .iter()
            .find(|p| p.metadata.namespace() == INFRA && p.metadata.name == name)
            .and_then(|p| p.metadata.generation);
        let Some(policy) = self
            .status
            .policies
            .iter()
            .find(|p| p.key.namespace == INFRA && p.key.name == name)
        else {
            return self.fail(format!("BackendTLSPolicy {name}: no status"));
        };
        let ancestors = policy.status.ancestors.clone();
        for a in &ancestors {
            if let Some(c) = a
                .conditions
                .iter()
                .find(|c| c.observed_generation != generation)
            {
                self.fail(format!(
                    "BackendTLSPolicy {name} ancestor {}: {} has observedGeneration {:?}, \
                     generation is {generation:?}",
                    a.ancestor_ref.name, c.type_, c.observed_generation
                ));
            }
        }
        let Some(ancestor) = ancestors.iter().find(|a| {
            a.ancestor_ref.name == gateway
                && a.ancestor_ref
                    .namespace
                    .as_deref()
                    .is_none_or(|n| n == INFRA)
                && a.controller_name == CONTROLLER_NAME
        }) else {
            return self.fail(format!(
                "BackendTLSPolicy {name}: no ancestor entry for Gateway {gateway}"
            ));
        };
        for e in expected {
            if !matches(&ancestor.conditions, e) {
                self.fail(format!(
                    "BackendTLSPolicy {name} on {gateway}: want {}={}/{}, have [{}]",
                    e.0,
                    e.1,
                    e.2,
                    show(&ancestor.conditions)
                ));
            }
        }
    }

    fn edit_policy(&mut self, name: &str, change: impl FnOnce(&mut serde_json::Value)) {
        let policy = self
            .snapshot
            .backend_tls_policies
            .iter_mut()
            .find(|p| p.metadata.namespace() == INFRA && p.metadata.name == name)
            .expect("the BackendTLSPolicy is in the test's manifests");
        World::edit(policy, change);
        self.compile();
    }

    /// Replaces (or, with `None`, deletes) the `ca.crt` ConfigMap `name`, as the suite's
    /// client does.
    fn set_ca_config_map(&mut self, name: &str, ca: Option<&str>) {
        self.snapshot
            .config_maps
            .retain(|c| !(c.metadata.namespace() == INFRA && c.metadata.name == name));
        if let Some(ca) = ca {
            let map = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": INFRA},
                "data": {"ca.crt": ca},
            });
            self.snapshot
                .config_maps
                .push(serde_json::from_value(map).expect("a ConfigMap"));
        }
        self.compile();
    }

    fn ca_pem(&self, name: &str) -> String {
        self.snapshot
            .config_maps
            .iter()
            .find(|c| c.metadata.namespace() == INFRA && c.metadata.name == name)
            .and_then(|c| c.get("ca.crt"))
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .expect("the CA ConfigMap the suite generates")
    }

    fn edit_gateway(&mut self, name: &str, change: impl FnOnce(&mut serde_json::Value)) {
        let gateway = self
            .snapshot
            .gateways
            .iter_mut()
            .find(|g| g.metadata.namespace() == INFRA && g.metadata.name == name)
            .expect("the Gateway is in the test's manifests");
        World::edit(gateway, change);
        self.compile();
    }
}

/// What differs between actual `status.listeners` and the expected ones (the suite's rules:
/// the same number, each by name, `supportedKinds` a superset of the expected kinds and empty
/// when expected empty, `attachedRoutes` exact, the expected conditions present).
fn listener_problems(
    owner: &str,
    actual: &[gateway_core::model::ListenerStatus],
    expected: &[Listener],
) -> Vec<String> {
    let mut problems = Vec::new();
    if actual.len() != expected.len() {
        problems.push(format!(
            "{owner}: {} listeners, want {}",
            actual.len(),
            expected.len()
        ));
    }
    for e in expected {
        let Some(a) = actual.iter().find(|a| a.name == e.name) else {
            problems.push(format!("{owner}: no listener {}", e.name));
            continue;
        };
        let kinds: Vec<&str> = a
            .supported_kinds
            .iter()
            .filter(|k| k.group() == GATEWAY_GROUP)
            .map(|k| k.kind.as_str())
            .collect();
        if (e.kinds.is_empty() && !a.supported_kinds.is_empty())
            || e.kinds.iter().any(|k| !kinds.contains(k))
        {
            problems.push(format!(
                "{owner} listener {}: supportedKinds {kinds:?}, want {:?}",
                e.name, e.kinds
            ));
        }
        if a.attached_routes != e.attached {
            problems.push(format!(
                "{owner} listener {}: attachedRoutes {}, want {}",
                e.name, a.attached_routes, e.attached
            ));
        }
        for c in &e.conditions {
            if !matches(&a.conditions, c) {
                problems.push(format!(
                    "{owner} listener {}: want {}={}/{}, have [{}]",
                    e.name,
                    c.0,
                    c.1,
                    c.2,
                    show(&a.conditions)
                ));
            }
        }
    }
    problems
}

// === The harness ===

struct Harness {
    suite: Suite,
    /// Secrets the Go suite generates in code (README of the suite folder), as YAML.
    secrets: String,
}

impl Harness {
    fn world(&self, manifests: &[&str]) -> World {
        let snapshot = self
            .suite
            .load(manifests, &self.secrets)
            .unwrap_or_else(|e| panic!("{e}"));
        World::new(snapshot)
    }
}

/// A TLS Secret with a fresh self-signed certificate. Status only needs a well-formed
/// certificate and key, so one certificate serves every Secret name; its SANs cover what the
/// suite's certificates cover.
fn tls_secrets() -> String {
    let names = [
        "*",
        "*.org",
        "*.wildcard.org",
        "abc.example.com",
        "other.example.com",
        "tls.example.com",
    ];
    let key = rcgen::generate_simple_self_signed(names.map(String::from).to_vec())
        .expect("rcgen makes a self-signed certificate");
    let cert = key.cert.pem();
    let private = key.signing_key.serialize_pem();
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    [
        ("gateway-conformance-web-backend", "certificate"),
        (INFRA, "tls-validity-checks-certificate"),
        (INFRA, "tls-checks-certificate"),
        (INFRA, "tls-checks-client-certificate"),
        (INFRA, "tls-terminate-checks-certificate"),
        (INFRA, "tls-passthrough-checks-certificate"),
        (
            "gateway-conformance-app-backend",
            "tls-passthrough-checks-certificate",
        ),
    ]
    .iter()
    .map(|(namespace, name)| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: \
             {namespace}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(&cert),
            indent(&private)
        )
    })
    .chain(
        // The CA bundles BackendTLSPolicies and frontend client validation name; only their
        // shape matters to status.
        [
            "tls-checks-ca-certificate",
            "mismatch-ca-certificate",
            "tls-validity-checks-ca-certificate",
            "tls-validity-checks-per-port-ca-certificate",
        ]
        .iter()
        .map(|name| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  \
                 namespace: {INFRA}\ndata:\n  ca.crt: |\n{}",
                indent(&cert)
            )
        }),
    )
    .collect()
}

/// What a test function returns: `None` when every step ran, or why part of it could not
/// (a feature not supported yet); any recorded error still fails it.
type Skip = Option<String>;

type TestFn = fn(&Harness, &mut Vec<String>) -> Skip;

/// Runs `world`'s recorded errors into `errors`.
fn done(world: World, errors: &mut Vec<String>) {
    errors.extend(world.errors);
}

// === Gateway tests ===

fn base_gateways(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&[]);
    for name in [
        "same-namespace",
        "same-namespace-with-https-listener",
        "all-namespaces",
        "backend-namespaces",
    ] {
        w.gateway(
            name,
            &[
                Cond("Accepted", true, "Accepted"),
                Cond("Programmed", true, "Programmed"),
            ],
        );
        let listeners: Vec<String> = w
            .status
            .gateway(INFRA, name)
            .map(|g| g.status.listeners.iter().map(|l| l.name.clone()).collect())
            .unwrap_or_default();
        for listener in listeners {
            w.listener(name, &listener, 0, &healthy());
        }
    }
    done(w, errors);
    None
}

fn gateway_invalid_route_kind(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-invalid-route-kind.yaml"]);
    let invalid = Cond("ResolvedRefs", false, "InvalidRouteKinds");
    w.listeners(
        "gateway-only-invalid-route-kind",
        &[Listener {
            name: "http",
            kinds: &[],
            attached: 0,
            conditions: vec![invalid],
        }],
    );
    w.listeners(
        "gateway-supported-and-invalid-route-kind",
        &[Listener {
            name: "http",
            kinds: &["HTTPRoute"],
            attached: 0,
            conditions: vec![invalid],
        }],
    );
    done(w, errors);
    None
}

fn gateway_invalid_tls_configuration(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-invalid-tls-configuration.yaml"]);
    for gateway in [
        "gateway-certificate-nonexistent-secret",
        "gateway-certificate-unsupported-group",
        "gateway-certificate-unsupported-kind",
        "gateway-certificate-malformed-secret",
    ] {
        w.listeners(
            gateway,
            &[Listener {
                name: "https",
                kinds: &["HTTPRoute"],
                attached: 0,
                conditions: vec![Cond("ResolvedRefs", false, "InvalidCertificateRef")],
            }],
        );
    }
    done(w, errors);
    None
}

fn gateway_invalid_frontend_client_certificate_validation(
    h: &Harness,
    errors: &mut Vec<String>,
) -> Skip {
    let mut w = h.world(&["tests/gateway-with-invalid-clientcertificate-validation.yaml"]);
    let gateway = "gateway-with-invalid-client-cert-validation";
    // Port 443 takes the default validation, whose CA ConfigMap resolves.
    w.listener(
        gateway,
        "https",
        0,
        &[
            Cond("ResolvedRefs", true, "ResolvedRefs"),
            Cond("Accepted", true, "Accepted"),
            Cond("Programmed", true, "Programmed"),
        ],
    );
    // The per-port settings of the other listeners each name an unusable CA bundle.
    for (listener, reason) in [
        ("https-unresolved", "InvalidCACertificateRef"),
        ("https-invalid-kind", "InvalidCACertificateKind"),
        ("https-grant-missing", "RefNotPermitted"),
    ] {
        w.listener(
            gateway,
            listener,
            0,
            &[
                Cond("ResolvedRefs", false, reason),
                Cond("Accepted", false, "NoValidCACertificate"),
                Cond("Programmed", false, ""),
            ],
        );
    }
    done(w, errors);
    None
}

fn gateway_listener_unsupported_protocol(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-invalid-listeners-unsupported-protocol.yaml"]);
    let unsupported = || Listener {
        name: "invalid",
        kinds: &[],
        attached: 0,
        conditions: vec![Cond("Accepted", false, "UnsupportedProtocol")],
    };
    w.gateway(
        "gateway-only-unsupported-protocols",
        &[Cond("Accepted", false, "ListenersNotValid")],
    );
    w.listeners("gateway-only-unsupported-protocols", &[unsupported()]);
    w.gateway(
        "gateway-supported-and-unsupported-protocols",
        &[Cond("Accepted", true, "ListenersNotValid")],
    );
    w.listeners(
        "gateway-supported-and-unsupported-protocols",
        &[
            Listener {
                name: "http",
                kinds: &["HTTPRoute"],
                attached: 0,
                conditions: vec![Cond("Accepted", true, "Accepted")],
            },
            unsupported(),
        ],
    );
    done(w, errors);
    None
}

fn secret_listener(h: &Harness, errors: &mut Vec<String>, file: &str, gateway: &str, ok: bool) {
    let mut w = h.world(&[file]);
    let conditions = if ok {
        vec![
            Cond("Programmed", true, "Programmed"),
            Cond("ResolvedRefs", true, ""),
        ]
    } else {
        vec![Cond("ResolvedRefs", false, "RefNotPermitted")]
    };
    w.listeners(
        gateway,
        &[Listener {
            name: "https",
            kinds: &["HTTPRoute"],
            attached: 0,
            conditions,
        }],
    );
    done(w, errors);
}

fn gateway_secret_invalid_reference_grant(h: &Harness, errors: &mut Vec<String>) -> Skip {
    secret_listener(
        h,
        errors,
        "tests/gateway-secret-invalid-reference-grant.yaml",
        "gateway-secret-invalid-reference-grant",
        false,
    );
    None
}

fn gateway_secret_missing_reference_grant(h: &Harness, errors: &mut Vec<String>) -> Skip {
    secret_listener(
        h,
        errors,
        "tests/gateway-secret-missing-reference-grant.yaml",
        "gateway-secret-missing-reference-grant",
        false,
    );
    None
}

fn gateway_secret_reference_grant_all(h: &Harness, errors: &mut Vec<String>) -> Skip {
    secret_listener(
        h,
        errors,
        "tests/gateway-secret-reference-grant-all-in-namespace.yaml",
        "gateway-secret-reference-grant-all-in-namespace",
        true,
    );
    None
}

fn gateway_secret_reference_grant_specific(h: &Harness, errors: &mut Vec<String>) -> Skip {
    secret_listener(
        h,
        errors,
        "tests/gateway-secret-reference-grant-specific.yaml",
        "gateway-secret-reference-grant-specific",
        true,
    );
    None
}

fn gateway_invalid_parameters_ref(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-invalid-parameters-ref.yaml"]);
    w.gateway(
        "gateway-invalid-parameters-ref",
        &[Cond("Accepted", false, "InvalidParameters")],
    );
    done(w, errors);
    None
}

fn gateway_observed_generation_bump(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-observed-generation-bump.yaml"]);
    let name = "gateway-observed-generation-bump";
    let ready = [Cond("Accepted", true, ""), Cond("Programmed", true, "")];
    w.gateway(name, &ready);
    w.edit_gateway(name, |g| {
        g["spec"]["listeners"]
            .as_array_mut()
            .expect("listeners")
            .push(
                serde_json::json!({"name": "alternate", "hostname": "foo.com", "port": 80,
                "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}),
            );
    });
    if w.gateway_generation(name) != Some(2) {
        w.fail("the edit did not bump the generation".into());
    }
    w.gateway(name, &ready);
    done(w, errors);
    None
}

fn gatewayclass_observed_generation_bump(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gatewayclass-observed-generation-bump.yaml"]);
    let name = "gatewayclass-observed-generation-bump";
    let check = |w: &mut World, generation: i64| {
        let Some(class) = w.status.gateway_classes.iter().find(|c| c.key.name == name) else {
            return w.fail(format!("GatewayClass {name}: no status"));
        };
        let conditions = class.status.conditions.clone();
        if conditions.is_empty()
            || conditions
                .iter()
                .any(|c| c.observed_generation != Some(generation))
            || !matches(&conditions, &Cond("Accepted", true, ""))
        {
            w.fail(format!(
                "GatewayClass {name}: want Accepted=True at generation {generation}, have [{}] \
                 at {:?}",
                show(&conditions),
                conditions
                    .iter()
                    .map(|c| c.observed_generation)
                    .collect::<Vec<_>>()
            ));
        }
    };
    check(&mut w, 1);
    let class = w
        .snapshot
        .gateway_classes
        .iter_mut()
        .find(|c| c.metadata.name == name)
        .expect("the class is in the manifest");
    World::edit(class, |c| {
        c["spec"]["description"] = serde_json::json!("new")
    });
    w.compile();
    check(&mut w, 2);
    done(w, errors);
    None
}

fn gateway_modify_listeners(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-modify-listeners.yaml"]);
    let ok = || vec![Cond("Accepted", true, ""), Cond("ResolvedRefs", true, "")];
    w.edit_gateway("gateway-add-listener", |g| {
        g["spec"]["listeners"]
            .as_array_mut()
            .expect("listeners")
            .push(
                serde_json::json!({"name": "http", "hostname": "data.test.com", "port": 80,
                "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}),
            );
    });
    w.listeners(
        "gateway-add-listener",
        &[
            Listener {
                name: "https",
                kinds: &["HTTPRoute"],
                attached: 1,
                conditions: ok(),
            },
            Listener {
                name: "http",
                kinds: &["HTTPRoute"],
                attached: 1,
                conditions: ok(),
            },
        ],
    );
    w.edit_gateway("gateway-remove-listener", |g| {
        g["spec"]["listeners"]
            .as_array_mut()
            .expect("listeners")
            .retain(|l| l["name"] != "https");
    });
    w.listeners(
        "gateway-remove-listener",
        &[Listener {
            name: "http",
            kinds: &["HTTPRoute"],
            attached: 1,
            conditions: ok(),
        }],
    );
    done(w, errors);
    None
}

fn gateway_static_addresses(h: &Harness, errors: &mut Vec<String>) -> Skip {
    // The suite substitutes caller-supplied addresses; for an in-process gateway a usable
    // address is a loopback one. Which address is *unusable* (Programmed=False/
    // AddressNotUsable) depends on the host's interfaces, which compile (pure, no I/O) cannot
    // see: that middle step is skipped, the first and last are checked.
    let mut w = h.world(&["tests/gateway-static-addresses.yaml"]);
    let name = "gateway-static-addresses";
    let replace = |g: &mut serde_json::Value| {
        for a in g["spec"]["addresses"].as_array_mut().expect("addresses") {
            match a["value"].as_str() {
                Some("PLACEHOLDER_USABLE_ADDRS") => {
                    *a = serde_json::json!({"type": "IPAddress", "value": "127.0.0.2"});
                }
                Some("PLACEHOLDER_UNUSABLE_ADDRS") => {
                    *a = serde_json::json!({"type": "IPAddress", "value": "192.0.2.1"});
                }
                _ => {}
            }
        }
    };
    w.edit_gateway(name, replace);
    w.gateway(name, &[Cond("Accepted", false, "UnsupportedAddress")]);
    w.edit_gateway(name, |g| {
        g["spec"]["addresses"]
            .as_array_mut()
            .expect("addresses")
            .retain(|a| a["value"] == "127.0.0.2");
    });
    w.gateway(
        name,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("Programmed", true, "Programmed"),
        ],
    );
    w.listeners(
        name,
        &[Listener {
            name: "http",
            kinds: &["HTTPRoute"],
            attached: 0,
            conditions: vec![Cond("Accepted", true, ""), Cond("ResolvedRefs", true, "")],
        }],
    );
    let addresses: Vec<(Option<String>, String)> = w
        .status
        .gateway(INFRA, name)
        .map(|g| {
            g.status
                .addresses
                .iter()
                .map(|a| (a.type_.clone(), a.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    if addresses != [(Some("IPAddress".to_owned()), "127.0.0.2".to_owned())] {
        w.fail(format!(
            "status.addresses {addresses:?}, want exactly IPAddress 127.0.0.2"
        ));
    }
    done(w, errors);
    Some(
        "AddressNotUsable step: whether an address is usable depends on the host's interfaces, \
         which compile cannot see (steps 1 and 3 checked)"
            .into(),
    )
}

fn gateway_with_attached_routes(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-with-attached-routes.yaml"]);
    let http = ResourceKind::HttpRoute;
    w.listeners(
        "gateway-with-one-attached-route",
        &[Listener {
            name: "http",
            kinds: &["HTTPRoute"],
            attached: 1,
            conditions: healthy(),
        }],
    );
    w.listeners(
        "gateway-with-two-attached-routes",
        &[Listener {
            name: "http",
            kinds: &["HTTPRoute"],
            attached: 2,
            conditions: healthy(),
        }],
    );
    w.route(
        http,
        (INFRA, "http-route-not-accepted"),
        "gateway-with-two-attached-routes",
        &[Cond("Accepted", false, "NoMatchingListenerHostname")],
    );
    w.listeners(
        "unresolved-gateway-with-one-attached-unresolved-route",
        &[Listener {
            name: "tls",
            kinds: &["HTTPRoute"],
            attached: 1,
            conditions: vec![
                Cond("Programmed", false, ""),
                Cond("ResolvedRefs", false, "InvalidCertificateRef"),
            ],
        }],
    );
    w.route(
        http,
        (INFRA, "http-route-4"),
        "unresolved-gateway-with-one-attached-unresolved-route",
        &[Cond("ResolvedRefs", false, "")],
    );
    done(w, errors);
    None
}

fn gateway_with_attached_routes_8080(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-with-attached-routes-with-port-8080.yaml"]);
    w.listeners(
        "gateway-with-two-listeners-and-one-attached-route",
        &[
            Listener {
                name: "http-unattached",
                kinds: &["HTTPRoute"],
                attached: 0,
                conditions: healthy(),
            },
            Listener {
                name: "http",
                kinds: &["HTTPRoute"],
                attached: 1,
                conditions: healthy(),
            },
        ],
    );
    done(w, errors);
    None
}

// === HTTPRoute tests ===

fn accepted_with_refs(
    file: &str,
    route: &str,
    refs: Cond,
) -> impl Fn(&Harness, &mut Vec<String>) -> Skip {
    let file = file.to_owned();
    let route = route.to_owned();
    move |h, errors| {
        let mut w = h.world(&[&file]);
        w.route(
            ResourceKind::HttpRoute,
            (INFRA, &route),
            "same-namespace",
            &[Cond("Accepted", true, "Accepted"), refs],
        );
        done(w, errors);
        None
    }
}

fn httproute_invalid_cross_namespace_backend_ref(h: &Harness, e: &mut Vec<String>) -> Skip {
    accepted_with_refs(
        "tests/httproute-invalid-cross-namespace-backend-ref.yaml",
        "invalid-cross-namespace-backend-ref",
        Cond("ResolvedRefs", false, "RefNotPermitted"),
    )(h, e)
}

fn httproute_invalid_backendref_unknown_kind(h: &Harness, e: &mut Vec<String>) -> Skip {
    accepted_with_refs(
        "tests/httproute-invalid-backendref-unknown-kind.yaml",
        "invalid-backend-ref-unknown-kind",
        Cond("ResolvedRefs", false, "InvalidKind"),
    )(h, e)
}

fn httproute_invalid_nonexistent_backendref(h: &Harness, e: &mut Vec<String>) -> Skip {
    accepted_with_refs(
        "tests/httproute-invalid-nonexistent-backendref.yaml",
        "invalid-nonexistent-backend-ref",
        Cond("ResolvedRefs", false, "BackendNotFound"),
    )(h, e)
}

fn httproute_invalid_reference_grant(h: &Harness, e: &mut Vec<String>) -> Skip {
    accepted_with_refs(
        "tests/httproute-invalid-reference-grant.yaml",
        "reference-grant",
        Cond("ResolvedRefs", false, "RefNotPermitted"),
    )(h, e)
}

fn httproute_partially_invalid_reference_grant(h: &Harness, e: &mut Vec<String>) -> Skip {
    accepted_with_refs(
        "tests/httproute-partially-invalid-via-invalid-reference-grant.yaml",
        "invalid-reference-grant",
        Cond("ResolvedRefs", false, "RefNotPermitted"),
    )(h, e)
}

/// A rejected HTTPRoute: the reason on Accepted, ResolvedRefs still True (backends are
/// fine), no accepted parents, and the Gateway's listeners count nothing.
fn rejected_http(
    h: &Harness,
    errors: &mut Vec<String>,
    file: &str,
    route: (&str, &str),
    gateway: &str,
    reason: &'static str,
) {
    let mut w = h.world(&[file]);
    w.route(
        ResourceKind::HttpRoute,
        route,
        gateway,
        &[
            Cond("Accepted", false, reason),
            Cond("ResolvedRefs", true, ""),
        ],
    );
    w.no_accepted_parents(ResourceKind::HttpRoute, route);
    let listeners: Vec<String> = w
        .status
        .gateway(INFRA, gateway)
        .map(|g| g.status.listeners.iter().map(|l| l.name.clone()).collect())
        .unwrap_or_default();
    for l in listeners {
        w.listener(gateway, &l, 0, &[]);
    }
    done(w, errors);
}

fn httproute_invalid_cross_namespace_parent_ref(h: &Harness, e: &mut Vec<String>) -> Skip {
    rejected_http(
        h,
        e,
        "tests/httproute-invalid-cross-namespace-parent-ref.yaml",
        (
            "gateway-conformance-web-backend",
            "invalid-cross-namespace-parent-ref",
        ),
        "same-namespace",
        "NotAllowedByListeners",
    );
    None
}

fn httproute_parentref_port(h: &Harness, e: &mut Vec<String>) -> Skip {
    rejected_http(
        h,
        e,
        "tests/httproute-invalid-parentref-not-matching-listener-port.yaml",
        (INFRA, "httproute-listener-not-matching-route-port"),
        "same-namespace",
        "NoMatchingParent",
    );
    None
}

fn httproute_parentref_section_name(h: &Harness, e: &mut Vec<String>) -> Skip {
    rejected_http(
        h,
        e,
        "tests/httproute-invalid-parentref-not-matching-section-name.yaml",
        (INFRA, "httproute-listener-not-matching-section-name"),
        "same-namespace",
        "NoMatchingParent",
    );
    None
}

fn httproute_parentref_section_name_port(h: &Harness, e: &mut Vec<String>) -> Skip {
    rejected_http(
        h,
        e,
        "tests/httproute-invalid-parentref-section-name-not-matching-port.yaml",
        (INFRA, "httproute-listener-section-name-not-matching-port"),
        "gateway-with-one-not-matching-port-and-section-name-route",
        "NoMatchingParent",
    );
    None
}

fn httproute_disallowed_kind(h: &Harness, e: &mut Vec<String>) -> Skip {
    rejected_http(
        h,
        e,
        "tests/httproute-disallowed-kind.yaml",
        (INFRA, "disallowed-kind"),
        "tlsroutes-only",
        "NotAllowedByListeners",
    );
    None
}

fn httproute_hostname_intersection(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/httproute-hostname-intersection.yaml"]);
    let gateway = "httproute-hostname-intersection";
    for route in [
        "specific-host-matches-listener-specific-host",
        "specific-host-matches-listener-wildcard-host",
        "wildcard-host-matches-listener-specific-host",
        "wildcard-host-matches-listener-wildcard-host",
    ] {
        w.route(
            ResourceKind::HttpRoute,
            (INFRA, route),
            gateway,
            &[
                Cond("Accepted", true, "Accepted"),
                Cond("ResolvedRefs", true, ""),
            ],
        );
    }
    w.route(
        ResourceKind::HttpRoute,
        (INFRA, "no-intersecting-hosts"),
        gateway,
        &[Cond("Accepted", false, "NoMatchingListenerHostname")],
    );
    w.route(
        ResourceKind::HttpRoute,
        (INFRA, "httproute-hostname-intersection-all"),
        "httproute-hostname-intersection-all",
        &[Cond("Accepted", true, "Accepted")],
    );
    w.listener(gateway, "listener-1", 2, &healthy());
    w.listener(gateway, "listener-2", 1, &healthy());
    w.listener(gateway, "listener-3", 1, &healthy());
    done(w, errors);
    None
}

fn httproute_observed_generation_bump(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/httproute-observed-generation-bump.yaml"]);
    let route = (INFRA, "observed-generation-bump");
    let ready = [Cond("Accepted", true, ""), Cond("ResolvedRefs", true, "")];
    w.route(ResourceKind::HttpRoute, route, "same-namespace", &ready);
    let object = w
        .snapshot
        .http_routes
        .iter_mut()
        .find(|r| r.metadata.name == route.1)
        .expect("the route is in the manifest");
    World::edit(object, |r| {
        r["spec"]["rules"][0]["backendRefs"][0]["name"] = serde_json::json!("infra-backend-v2");
    });
    w.compile();
    if w.route_generation(ResourceKind::HttpRoute, route.0, route.1) != Some(2) {
        w.fail("the edit did not bump the generation".into());
    }
    w.route(ResourceKind::HttpRoute, route, "same-namespace", &ready);
    done(w, errors);
    None
}

/// A route allowed by a ReferenceGrant; deleting the grant must revoke it (RefNotPermitted).
fn grant_then_delete(
    h: &Harness,
    errors: &mut Vec<String>,
    file: &str,
    kind: ResourceKind,
    route: &str,
    gateway: &str,
    grant: &str,
) {
    let mut w = h.world(&[file]);
    let route = (INFRA, route);
    w.route(
        kind,
        route,
        gateway,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("ResolvedRefs", true, "ResolvedRefs"),
        ],
    );
    w.snapshot
        .reference_grants
        .retain(|g| g.metadata.name != grant);
    w.compile();
    w.route(
        kind,
        route,
        gateway,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("ResolvedRefs", false, "RefNotPermitted"),
        ],
    );
    done(w, errors);
}

fn httproute_reference_grant(h: &Harness, e: &mut Vec<String>) -> Skip {
    grant_then_delete(
        h,
        e,
        "tests/httproute-reference-grant.yaml",
        ResourceKind::HttpRoute,
        "reference-grant",
        "same-namespace",
        "reference-grant",
    );
    None
}

// === TLSRoute tests ===

fn tls_refs(
    file: &str,
    route: &str,
    gateway: &str,
    reason: &'static str,
) -> impl Fn(&Harness, &mut Vec<String>) -> Skip {
    let (file, route, gateway) = (file.to_owned(), route.to_owned(), gateway.to_owned());
    move |h, errors| {
        let mut w = h.world(&[&file]);
        w.route(
            ResourceKind::TlsRoute,
            (INFRA, &route),
            &gateway,
            &[
                Cond("Accepted", true, ""),
                Cond("ResolvedRefs", false, reason),
            ],
        );
        done(w, errors);
        None
    }
}

fn tlsroute_backend_nonexistent(h: &Harness, e: &mut Vec<String>) -> Skip {
    tls_refs(
        "tests/tlsroute-invalid-backendref-nonexistent.yaml",
        "invalid-backend-ref-nonexistent",
        "gateway-tlsroute-invalid-backend-ref-nonexistent",
        "BackendNotFound",
    )(h, e)
}

fn tlsroute_backend_unknown_kind(h: &Harness, e: &mut Vec<String>) -> Skip {
    tls_refs(
        "tests/tlsroute-invalid-backendref-unknown-kind.yaml",
        "invalid-backend-ref-unknown-kind",
        "gateway-tlsroute-invalid-backend-ref-unknown-kind",
        "InvalidKind",
    )(h, e)
}

fn tlsroute_invalid_reference_grant(h: &Harness, e: &mut Vec<String>) -> Skip {
    tls_refs(
        "tests/tlsroute-invalid-reference-grant.yaml",
        "gateway-conformance-infra-test",
        "gateway-tlsroute-referencegrant",
        "RefNotPermitted",
    )(h, e)
}

fn tlsroute_no_matching_listener(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/tlsroute-invalid-no-matching-listener.yaml"]);
    let tls = ResourceKind::TlsRoute;
    for (route, gateway, reason) in [
        (
            "tlsroute-not-allowed-protocol-http",
            "gateway-tlsroute-http-only",
            "NotAllowedByListeners",
        ),
        (
            "tlsroute-not-allowed-protocol-https",
            "gateway-tlsroute-https-only",
            "NotAllowedByListeners",
        ),
        (
            "tlsroute-no-matching-section-name",
            "gateway-tlsroute-tls-passthrough-only",
            "NoMatchingParent",
        ),
    ] {
        w.route(
            tls,
            (INFRA, route),
            gateway,
            &[Cond("Accepted", false, reason)],
        );
        w.no_accepted_parents(tls, (INFRA, route));
    }
    w.listener("gateway-tlsroute-http-only", "http", 0, &[]);
    w.listener("gateway-tlsroute-https-only", "https", 0, &[]);
    done(w, errors);
    None
}

fn tlsroute_no_matching_listener_hostname(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/tlsroute-invalid-no-matching-listener-hostname.yaml"]);
    for (route, gateway) in [
        ("tlsroute-hostname-mismatch-1", "gateway-tls-exact-hostname"),
        (
            "tlsroute-hostname-mismatch-2",
            "gateway-tls-wildcard-hostname",
        ),
    ] {
        w.route(
            ResourceKind::TlsRoute,
            (INFRA, route),
            gateway,
            &[Cond("Accepted", false, "NoMatchingListenerHostname")],
        );
    }
    done(w, errors);
    None
}

fn tlsroute_passthrough_supported_kinds(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/tlsroute-listener-passthrough-supported-kinds.yaml"]);
    w.listeners(
        "gateway-tlsroute-passthrough-supported-kind",
        &[Listener {
            name: "tls-passthrough",
            kinds: &["TLSRoute"],
            attached: 0,
            conditions: vec![Cond("ResolvedRefs", false, "InvalidRouteKinds")],
        }],
    );
    done(w, errors);
    None
}

fn tlsroute_terminate_supported_kinds(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/tlsroute-listener-terminate-supported-kinds.yaml"]);
    w.listeners(
        "gateway-tlsroute-terminate-supported",
        &[Listener {
            name: "tls-terminate",
            kinds: &["TLSRoute"],
            attached: 0,
            conditions: vec![Cond("Accepted", true, "Accepted")],
        }],
    );
    done(w, errors);
    None
}

fn tlsroute_mixed_termination(h: &Harness, errors: &mut Vec<String>) -> Skip {
    // The Go test runs only for implementations that do NOT claim TLSRouteModeMixed; we serve
    // Terminate and Passthrough listeners on one port (SNI picks the listener), so the
    // upstream expectation (both ProtocolConflict) does not apply. What we assert instead:
    // both listeners are accepted.
    let mut w = h.world(&["tests/tlsroute-listener-mixed-termination-not-supported.yaml"]);
    let gateway = "gateway-tlsroute-mixed-termination-not-supported";
    w.listener(
        gateway,
        "tls-terminate",
        0,
        &[Cond("Accepted", true, "Accepted")],
    );
    w.listener(
        gateway,
        "tls-passthrough",
        0,
        &[Cond("Accepted", true, "Accepted")],
    );
    done(w, errors);
    None
}

// === TCPRoute / UDPRoute tests ===

fn l4_route(
    h: &Harness,
    errors: &mut Vec<String>,
    file: &str,
    kind: ResourceKind,
    route: &str,
    gateway: &str,
    expected: &[Cond],
) {
    let mut w = h.world(&[file]);
    w.route(kind, (INFRA, route), gateway, expected);
    done(w, errors);
}

fn tcp_backend_nonexistent(h: &Harness, e: &mut Vec<String>) -> Skip {
    l4_route(
        h,
        e,
        "tests/tcproute-invalid-backendref-nonexistent.yaml",
        ResourceKind::TcpRoute,
        "tcp-route-invalid-backend-ref-nonexistent",
        "tcp-gateway-invalid-backend",
        &[Cond("ResolvedRefs", false, "BackendNotFound")],
    );
    None
}

fn tcp_cross_namespace(h: &Harness, e: &mut Vec<String>) -> Skip {
    l4_route(
        h,
        e,
        "tests/tcproute-invalid-cross-namespace-backend-ref.yaml",
        ResourceKind::TcpRoute,
        "tcp-invalid-cross-namespace-backend-ref",
        "tcp-invalid-cross-namespace-backend-ref-gateway",
        &[Cond("ResolvedRefs", false, "RefNotPermitted")],
    );
    None
}

fn tcp_non_tcp_listener(h: &Harness, e: &mut Vec<String>) -> Skip {
    l4_route(
        h,
        e,
        "tests/tcproute-invalid-non-tcp-listener.yaml",
        ResourceKind::TcpRoute,
        "tcp-route",
        "tcp-mixed-protocol-gateway",
        &[Cond("Accepted", false, "NotAllowedByListeners")],
    );
    None
}

fn tcp_reference_grant(h: &Harness, e: &mut Vec<String>) -> Skip {
    grant_then_delete(
        h,
        e,
        "tests/tcproute-reference-grant.yaml",
        ResourceKind::TcpRoute,
        "tcp-reference-grant",
        "tcp-reference-grant-gateway",
        "tcp-reference-grant",
    );
    None
}

fn udp_backend_nonexistent(h: &Harness, e: &mut Vec<String>) -> Skip {
    l4_route(
        h,
        e,
        "tests/udproute-invalid-backendref-nonexistent.yaml",
        ResourceKind::UdpRoute,
        "udp-route-invalid-backend-ref-nonexistent",
        "udp-gateway-invalid-backend",
        &[Cond("ResolvedRefs", false, "BackendNotFound")],
    );
    None
}

fn udp_cross_namespace(h: &Harness, e: &mut Vec<String>) -> Skip {
    l4_route(
        h,
        e,
        "tests/udproute-invalid-cross-namespace-backend-ref.yaml",
        ResourceKind::UdpRoute,
        "udp-route-invalid-cross-namespace-backend-ref",
        "udp-gateway-invalid-cross-namespace-backend-ref",
        &[Cond("ResolvedRefs", false, "RefNotPermitted")],
    );
    None
}

fn udp_not_allowed(h: &Harness, e: &mut Vec<String>) -> Skip {
    l4_route(
        h,
        e,
        "tests/udproute-not-allowed-by-listeners.yaml",
        ResourceKind::UdpRoute,
        "udproute-not-allowed-by-listeners",
        "udproute-tls-only-gateway",
        &[Cond("Accepted", false, "NotAllowedByListeners")],
    );
    None
}

fn udp_reference_grant(h: &Harness, e: &mut Vec<String>) -> Skip {
    grant_then_delete(
        h,
        e,
        "tests/udproute-reference-grant.yaml",
        ResourceKind::UdpRoute,
        "udp-route-reference-grant",
        "udp-gateway-reference-grant",
        "udp-reference-grant",
    );
    None
}

fn gateway_invalid_tls_backend_configuration(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-invalid-tls-backend-configuration.yaml"]);
    for (gateway, reason) in [
        (
            "gateway-client-certificate-nonexistent-secret",
            "InvalidClientCertificateRef",
        ),
        (
            "gateway-client-certificate-unsupported-group",
            "InvalidClientCertificateRef",
        ),
        (
            "gateway-client-certificate-unsupported-kind",
            "InvalidClientCertificateRef",
        ),
        (
            "gateway-client-certificate-malformed-secret",
            "InvalidClientCertificateRef",
        ),
        (
            "gateway-client-certificate-missing-reference-grant",
            "RefNotPermitted",
        ),
    ] {
        w.gateway(
            gateway,
            &[
                Cond("ResolvedRefs", false, reason),
                Cond("Accepted", true, "Accepted"),
            ],
        );
    }
    done(w, errors);
    None
}

fn gateway_name_maximum_length(h: &Harness, errors: &mut Vec<String>) -> Skip {
    // Only `GatewayMustHaveLatestConditions`: a 253-character name must be reconciled.
    let mut w = h.world(&["tests/gateway-name-maximum-length.yaml"]);
    let name = w
        .snapshot
        .gateways
        .iter()
        .map(|g| g.metadata.name.clone())
        .find(|n| n.starts_with("gateway-name-maximum-length"))
        .expect("the Gateway is in the manifest");
    w.gateway(&name, &[]);
    done(w, errors);
    None
}

fn gateway_optional_address_value(h: &Harness, errors: &mut Vec<String>) -> Skip {
    // An IPAddress entry without a value: the implementation picks the address; the suite
    // waits for a status address with a type.
    let mut w = h.world(&["tests/gateway-optional-address-value.yaml"]);
    let name = "gateway-without-address-value";
    w.gateway(name, &[]);
    let typed = w
        .status
        .gateway(INFRA, name)
        .is_some_and(|g| g.status.addresses.iter().any(|a| a.type_.is_some()));
    if !typed {
        w.fail(format!("Gateway {name}: no status address with a type"));
    }
    done(w, errors);
    None
}

fn gateway_infrastructure(h: &Harness, errors: &mut Vec<String>) -> Skip {
    // The label/annotation propagation part applies only to implementations that create
    // Pods/Services per Gateway; an in-process gateway creates none.
    let mut w = h.world(&["tests/gateway-infrastructure.yaml"]);
    w.gateway(
        "gateway-with-infrastructure-metadata",
        &[Cond("Accepted", true, "")],
    );
    done(w, errors);
    None
}

/// `…MultipleRoutesAttachment`: the test creates a second, newer route to the same listener
/// in code; both must be Accepted and the listener must count two routes.
fn multiple_routes_attachment(
    h: &Harness,
    errors: &mut Vec<String>,
    file: &str,
    kind: ResourceKind,
    (gateway, listener): (&str, &str),
    (older, newer, newer_backend): (&str, &str, &str),
) {
    let mut w = h.world(&[file]);
    fn add<T: Serialize + DeserializeOwned + Clone>(
        routes: &mut Vec<T>,
        older: &str,
        newer: &str,
        backend: &str,
    ) {
        let mut value = serde_json::to_value(
            routes
                .iter()
                .find(|r| serde_json::to_value(*r).unwrap()["metadata"]["name"] == older)
                .expect("the older route is in the manifest"),
        )
        .unwrap();
        value["metadata"]["name"] = serde_json::json!(newer);
        // Created after the older one, as the Go test waits for it to be accepted first.
        value["metadata"]["creationTimestamp"] = serde_json::json!("2030-01-01T00:00:01Z");
        value["spec"]["rules"][0]["backendRefs"][0]["name"] = serde_json::json!(backend);
        routes.push(serde_json::from_value(value).unwrap());
    }
    match kind {
        ResourceKind::TcpRoute => add(&mut w.snapshot.tcp_routes, older, newer, newer_backend),
        _ => add(&mut w.snapshot.udp_routes, older, newer, newer_backend),
    }
    w.compile();
    for route in [older, newer] {
        w.route(
            kind,
            (INFRA, route),
            gateway,
            &[Cond("Accepted", true, "Accepted")],
        );
    }
    w.listener(gateway, listener, 2, &[]);
    done(w, errors);
}

fn tcp_multiple_routes(h: &Harness, e: &mut Vec<String>) -> Skip {
    multiple_routes_attachment(
        h,
        e,
        "tests/tcproute-multiple-routes-attachment.yaml",
        ResourceKind::TcpRoute,
        ("tcp-multi-route-attach-gateway", "tcp"),
        (
            "tcproute-attach-older",
            "tcproute-attach-newer",
            "tcp-attach-backend-2",
        ),
    );
    None
}

fn udp_multiple_routes(h: &Harness, e: &mut Vec<String>) -> Skip {
    multiple_routes_attachment(
        h,
        e,
        "tests/udproute-multiple-routes-attachment.yaml",
        ResourceKind::UdpRoute,
        ("udp-multi-route-attach-gateway", "udp"),
        (
            "udproute-attach-older",
            "udproute-attach-newer",
            "udp-attach-backend-2",
        ),
    );
    None
}

// === ListenerSet tests ===

const NOT_ALLOWED: [Cond; 2] = [
    Cond("Accepted", false, "NotAllowed"),
    Cond("Programmed", false, "NotAllowed"),
];
const LISTENERS_NOT_VALID: [Cond; 2] = [
    Cond("Accepted", false, "ListenersNotValid"),
    Cond("Programmed", false, "ListenersNotValid"),
];
const SET_PROGRAMMED: [Cond; 2] = [
    Cond("Accepted", true, ""),
    Cond("Programmed", true, "Programmed"),
];

fn listenerset_default_not_allowed(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-default-not-allowed.yaml"]);
    w.gateway(
        "gateway-default-does-not-allow-listenerset",
        &[Cond("Accepted", true, "")],
    );
    w.attached_listener_sets("gateway-default-does-not-allow-listenerset", 0);
    w.listener_set((INFRA, "listenerset-default-not-allowed"), &NOT_ALLOWED);
    done(w, errors);
    None
}

fn listenerset_allowed_namespace_none(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-allowed-namespace-none.yaml"]);
    w.gateway(
        "gateway-does-not-allow-listenerset",
        &[Cond("Accepted", true, "")],
    );
    w.attached_listener_sets("gateway-does-not-allow-listenerset", 0);
    w.listener_set((INFRA, "listenerset-not-allowed"), &NOT_ALLOWED);
    done(w, errors);
    None
}

fn listenerset_allowed_namespace_same(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-allowed-namespace-same.yaml"]);
    let gateway = "gateway-allows-listenerset-in-same-namespace";
    w.gateway(gateway, &[Cond("Accepted", true, "")]);
    w.attached_listener_sets(gateway, 1);
    let same = (INFRA, "listenerset-in-same-namespace");
    w.listener_set(
        same,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("Programmed", true, "Programmed"),
        ],
    );
    w.listener_set_listener_conditions(
        same,
        &["listenerset-in-same-namespace-listener"],
        &healthy(),
    );
    w.listener_set(
        (
            "gateway-api-listenerset-not-allowed-ns",
            "listenerset-in-different-namespace",
        ),
        &NOT_ALLOWED,
    );
    done(w, errors);
    None
}

fn listenerset_allowed_namespace_selector(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-allowed-namespace-selector.yaml"]);
    let gateway = "gateway-allows-listenerset-in-selected-namespace";
    w.gateway(gateway, &[Cond("Accepted", true, "")]);
    w.attached_listener_sets(gateway, 1);
    let selected = (
        "gateway-api-listenerset-selector-allowed-ns",
        "listenerset-in-selected-namespace",
    );
    w.listener_set(
        selected,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("Programmed", true, "Programmed"),
        ],
    );
    w.listener_set_listener_conditions(
        selected,
        &["listenerset-in-selected-namespace-listener"],
        &healthy(),
    );
    w.listener_set(
        (
            "gateway-api-listenerset-selector-not-allowed-ns",
            "listenerset-not-in-selected-namespace",
        ),
        &NOT_ALLOWED,
    );
    done(w, errors);
    None
}

fn listenerset_allowed_routes_supported_kinds(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-allowed-routes-supported-kinds.yaml"]);
    w.listener_set_listener_conditions(
        (INFRA, "listenerset-test-allowed-routes-supported-kinds"),
        &["listener-set-listener-allowed-routes-tls-only"],
        &[Cond("ResolvedRefs", false, "InvalidRouteKinds")],
    );
    done(w, errors);
    None
}

/// ListenerSetHostnameConflict and ListenerSetProtocolConflict: the same shape, one reason.
fn listenerset_conflicts(w: &mut World, what: &str, reason: &'static str) {
    let gateway = format!("gateway-with-listenerset-{what}-conflict");
    let conflicted = [
        Cond("Accepted", false, reason),
        Cond("Programmed", false, reason),
        Cond("Conflicted", true, reason),
    ];
    let with_gateway = format!("{what}-conflict-with-gateway-listener");
    let with_set = format!("{what}-conflict-with-listener-set-listener");
    let set = |suffix: &str| format!("listenerset-with-{what}-conflict-with-{suffix}");
    w.gateway(&gateway, &[Cond("Accepted", true, "")]);
    let Some(names) = w
        .status
        .gateway(INFRA, &gateway)
        .map(|g| g.status.listeners.len())
    else {
        return w.fail(format!("Gateway {gateway}: no status"));
    };
    if names != 2 {
        w.fail(format!("Gateway {gateway}: {names} listeners, want 2"));
    }
    for listener in ["gateway-listener", with_gateway.as_str()] {
        let attached = w
            .status
            .gateway(INFRA, &gateway)
            .and_then(|g| g.status.listeners.iter().find(|l| l.name == listener))
            .map_or(0, |l| l.attached_routes);
        w.listener(&gateway, listener, attached, &healthy());
    }
    w.attached_listener_sets(&gateway, 2);
    let first = set("gateway-1");
    w.listener_set((INFRA, &first), &SET_PROGRAMMED);
    w.listener_set_listener_conditions(
        (INFRA, &first),
        &["listener-set-1-listener", &with_set],
        &healthy(),
    );
    w.listener_set_listener_conditions((INFRA, &first), &[&with_gateway], &conflicted);
    let second = set("gateway-2");
    w.listener_set((INFRA, &second), &LISTENERS_NOT_VALID);
    w.listener_set_listener_conditions((INFRA, &second), &[&with_gateway], &conflicted);
    let third = set("listener-set-1");
    w.listener_set((INFRA, &third), &SET_PROGRAMMED);
    w.listener_set_listener_conditions((INFRA, &third), &["listener-set-2-listener"], &healthy());
    w.listener_set_listener_conditions((INFRA, &third), &[&with_set], &conflicted);
    let fourth = set("listener-set-2");
    w.listener_set((INFRA, &fourth), &LISTENERS_NOT_VALID);
    w.listener_set_listener_conditions((INFRA, &fourth), &[&with_set], &conflicted);
}

fn listenerset_hostname_conflict(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-hostname-conflict.yaml"]);
    listenerset_conflicts(&mut w, "hostname", "HostnameConflict");
    done(w, errors);
    None
}

fn listenerset_protocol_conflict(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-protocol-conflict.yaml"]);
    listenerset_conflicts(&mut w, "protocol", "ProtocolConflict");
    done(w, errors);
    None
}

fn listenerset_reference_grant(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-reference-grant.yaml"]);
    let with = (INFRA, "listenerset-with-reference-grant");
    w.listener_set(
        with,
        &[Cond("Accepted", true, ""), Cond("Programmed", true, "")],
    );
    w.listener_set_listener_conditions(
        with,
        &["listenerset-with-reference-grant-listener"],
        &[Cond("ResolvedRefs", true, "")],
    );
    let without = (
        "gateway-api-listener-sets-test-reference-grant-ns",
        "listenerset-without-reference-grant",
    );
    w.listener_set(without, &LISTENERS_NOT_VALID);
    w.listener_set_listener_conditions(
        without,
        &["listenerset-without-reference-grant-listener"],
        &[Cond("ResolvedRefs", false, "RefNotPermitted")],
    );
    done(w, errors);
    None
}

fn listenerset_route_status_scoped_to_parent_ref(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/listenerset-route-status-scoped-to-parentref.yaml"]);
    let set = (INFRA, "listenerset-parentref");
    w.attached_listener_sets("gateway-parentref", 1);
    w.listener_set_listeners(
        set,
        &[Listener {
            name: "listenerset-parentref-listener",
            kinds: &["HTTPRoute"],
            attached: 1,
            conditions: healthy(),
        }],
    );
    let accepted = [Cond("Accepted", true, "Accepted")];
    w.route(
        ResourceKind::HttpRoute,
        (INFRA, "route-parentref-gwonly"),
        "gateway-parentref",
        &accepted,
    );
    w.route_on(
        ResourceKind::HttpRoute,
        (INFRA, "route-parentref-lsonly"),
        ("ListenerSet", INFRA, "listenerset-parentref"),
        &accepted,
    );
    // The spec's intent: one entry per parentRef, none for parents the route did not name.
    for (route, kind) in [
        ("route-parentref-gwonly", "Gateway"),
        ("route-parentref-lsonly", "ListenerSet"),
    ] {
        let key = gateway_core::model::ObjectKey::new(ResourceKind::HttpRoute, INFRA, route);
        let parents: Vec<String> = w
            .status
            .route(&key)
            .map(|r| {
                r.status
                    .parents
                    .iter()
                    .map(|p| format!("{}/{}", p.parent_ref.kind(), p.parent_ref.name))
                    .collect()
            })
            .unwrap_or_default();
        if parents.len() != 1 || !parents[0].starts_with(kind) {
            w.fail(format!("{key}: parents {parents:?}, want one {kind} entry"));
        }
    }
    done(w, errors);
    None
}

// === BackendTLSPolicy tests ===

const POLICY_OK: [Cond; 2] = [
    Cond("Accepted", true, "Accepted"),
    Cond("ResolvedRefs", true, "ResolvedRefs"),
];

const NO_VALID_CA: [Cond; 2] = [
    Cond("Accepted", false, "NoValidCACertificate"),
    Cond("ResolvedRefs", false, "InvalidCACertificateRef"),
];

fn backend_tls_policy(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/backendtlspolicy.yaml"]);
    w.route(
        ResourceKind::HttpRoute,
        (INFRA, "backendtlspolicy"),
        "same-namespace",
        &[Cond("ResolvedRefs", true, "ResolvedRefs")],
    );
    for name in [
        "normative-test",
        "host-mismatch",
        "cert-mismatch",
        "reconcile-test",
    ] {
        w.policy(name, "same-namespace", &POLICY_OK);
    }
    w.policy(
        "normative-test",
        "same-namespace-with-https-listener",
        &POLICY_OK,
    );
    // The CA ConfigMap swap: a policy naming a missing ConfigMap, which then appears, is
    // emptied and restored.
    let ca = w.ca_pem("tls-checks-ca-certificate");
    let test_map = "tls-checks-ca-certificate-reconcile-test";
    w.edit_policy("reconcile-test", |p| {
        p["spec"]["validation"]["caCertificateRefs"] =
            serde_json::json!([{"group": "", "kind": "ConfigMap", "name": test_map}]);
    });
    w.policy("reconcile-test", "same-namespace", &NO_VALID_CA);
    w.set_ca_config_map(test_map, Some(&ca));
    w.policy("reconcile-test", "same-namespace", &POLICY_OK);
    w.set_ca_config_map(test_map, Some(""));
    w.policy("reconcile-test", "same-namespace", &NO_VALID_CA);
    w.set_ca_config_map(test_map, Some(&ca));
    w.policy("reconcile-test", "same-namespace", &POLICY_OK);
    done(w, errors);
    None
}

fn backend_tls_policy_conflict_resolution(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/backendtlspolicy-conflict-resolution.yaml"]);
    for name in [
        "conflicted-without-section-name-1",
        "conflicted-with-section-name-1",
        "not-conflicted-with-section-name",
        "not-conflicted-without-section-name",
    ] {
        w.policy(
            name,
            "same-namespace",
            &[Cond("Accepted", true, "Accepted")],
        );
    }
    for name in [
        "conflicted-without-section-name-2",
        "conflicted-with-section-name-2",
    ] {
        w.policy(
            name,
            "same-namespace",
            &[Cond("Accepted", false, "Conflicted")],
        );
    }
    done(w, errors);
    None
}

fn backend_tls_policy_invalid_ca_certificate_ref(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/backendtlspolicy-invalid-ca-certificate-ref.yaml"]);
    for name in [
        "nonexistent-ca-certificate-ref",
        "malformed-ca-certificate-ref",
    ] {
        w.policy(name, "same-namespace", &NO_VALID_CA);
    }
    done(w, errors);
    None
}

fn backend_tls_policy_invalid_kind(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/backendtlspolicy-invalid-kind.yaml"]);
    w.policy(
        "invalid-kind",
        "same-namespace",
        &[
            Cond("Accepted", false, "NoValidCACertificate"),
            Cond("ResolvedRefs", false, "InvalidKind"),
        ],
    );
    done(w, errors);
    None
}

fn backend_tls_policy_observed_generation_bump(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/backendtlspolicy-observed-generation-bump.yaml"]);
    w.policy("observed-generation-bump", "same-namespace", &POLICY_OK);
    w.edit_policy("observed-generation-bump", |p| {
        p["spec"]["validation"]["hostname"] = serde_json::json!("other.example.com");
    });
    w.policy("observed-generation-bump", "same-namespace", &POLICY_OK);
    done(w, errors);
    None
}

fn backend_tls_policy_san_validation(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/backendtlspolicy-san.yaml"]);
    for name in [
        "san-dns",
        "san-dns-mismatch",
        "san-uri",
        "san-uri-mismatch",
        "multiple-sans",
        "multiple-mismatch-sans",
    ] {
        w.policy(
            name,
            "same-namespace",
            &[Cond("Accepted", true, "Accepted")],
        );
    }
    done(w, errors);
    None
}

fn gateway_tls_backend_client_certificate(h: &Harness, errors: &mut Vec<String>) -> Skip {
    let mut w = h.world(&["tests/gateway-tls-backend-client-certificate.yaml"]);
    let gateway = "gateway-tls-backend-client-certificate";
    w.gateway(
        gateway,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("ResolvedRefs", true, "ResolvedRefs"),
        ],
    );
    w.route(
        ResourceKind::HttpRoute,
        (INFRA, gateway),
        gateway,
        &[
            Cond("Accepted", true, "Accepted"),
            Cond("ResolvedRefs", true, "ResolvedRefs"),
        ],
    );
    w.policy(
        "gateway-tls-backend-client-certificate-test",
        gateway,
        &[Cond("Accepted", true, "Accepted")],
    );
    done(w, errors);
    None
}

// === The run ===

/// Tests whose feature is not supported yet: reported as SKIP with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[(
    "TLSRouteListenerTerminateNotSupported",
    "not applicable: runs only when TLSRouteModeTerminate is not claimed, and we support \
         Terminate (see TLSRouteListenerTerminateSupportedKinds)",
)];

fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "ListenerSetDefaultNotAllowed",
            listenerset_default_not_allowed,
        ),
        (
            "ListenerSetAllowedNamespaceNone",
            listenerset_allowed_namespace_none,
        ),
        (
            "ListenerSetAllowedNamespaceSame",
            listenerset_allowed_namespace_same,
        ),
        (
            "ListenerSetAllowedNamespaceSelector",
            listenerset_allowed_namespace_selector,
        ),
        (
            "ListenerSetAllowedRoutesSupportedKinds",
            listenerset_allowed_routes_supported_kinds,
        ),
        ("ListenerSetHostnameConflict", listenerset_hostname_conflict),
        ("ListenerSetProtocolConflict", listenerset_protocol_conflict),
        ("ListenerSetReferenceGrant", listenerset_reference_grant),
        (
            "ListenerSetRouteStatusScopedToParentRef",
            listenerset_route_status_scoped_to_parent_ref,
        ),
        (
            "BaseManifestGateways (every base Gateway Accepted/Programmed)",
            base_gateways,
        ),
        ("GatewayInvalidRouteKind", gateway_invalid_route_kind),
        (
            "GatewayInvalidTLSConfiguration",
            gateway_invalid_tls_configuration,
        ),
        (
            "GatewayListenerUnsupportedProtocol",
            gateway_listener_unsupported_protocol,
        ),
        (
            "GatewayInvalidFrontendClientCertificateValidation",
            gateway_invalid_frontend_client_certificate_validation,
        ),
        (
            "GatewaySecretInvalidReferenceGrant",
            gateway_secret_invalid_reference_grant,
        ),
        (
            "GatewaySecretMissingReferenceGrant",
            gateway_secret_missing_reference_grant,
        ),
        (
            "GatewaySecretReferenceGrantAllInNamespace",
            gateway_secret_reference_grant_all,
        ),
        (
            "GatewaySecretReferenceGrantSpecific",
            gateway_secret_reference_grant_specific,
        ),
        (
            "GatewayInvalidParametersRef",
            gateway_invalid_parameters_ref,
        ),
        (
            "GatewayObservedGenerationBump",
            gateway_observed_generation_bump,
        ),
        (
            "GatewayClassObservedGenerationBump",
            gatewayclass_observed_generation_bump,
        ),
        ("GatewayModifyListeners", gateway_modify_listeners),
        (
            "GatewayInvalidTLSBackendConfiguration",
            gateway_invalid_tls_backend_configuration,
        ),
        (
            "GatewayTLSBackendClientCertificate",
            gateway_tls_backend_client_certificate,
        ),
        ("BackendTLSPolicy", backend_tls_policy),
        (
            "BackendTLSPolicyConflictResolution",
            backend_tls_policy_conflict_resolution,
        ),
        (
            "BackendTLSPolicyInvalidCACertificateRef",
            backend_tls_policy_invalid_ca_certificate_ref,
        ),
        (
            "BackendTLSPolicyInvalidKind",
            backend_tls_policy_invalid_kind,
        ),
        (
            "BackendTLSPolicyObservedGenerationBump",
            backend_tls_policy_observed_generation_bump,
        ),
        (
            "BackendTLSPolicySANValidation",
            backend_tls_policy_san_validation,
        ),
        ("GatewayNameMaximumLength", gateway_name_maximum_length),
        (
            "GatewayOptionalAddressValue",
            gateway_optional_address_value,
        ),
        (
            "GatewayInfrastructure (Accepted; no generated objects to label)",
            gateway_infrastructure,
        ),
        ("GatewayStaticAddresses", gateway_static_addresses),
        ("GatewayWithAttachedRoutes", gateway_with_attached_routes),
        (
            "GatewayWithAttachedRoutesWithPort8080",
            gateway_with_attached_routes_8080,
        ),
        (
            "HTTPRouteInvalidCrossNamespaceParentRef",
            httproute_invalid_cross_namespace_parent_ref,
        ),
        (
            "HTTPRouteInvalidCrossNamespaceBackendRef",
            httproute_invalid_cross_namespace_backend_ref,
        ),
        (
            "HTTPRouteInvalidBackendRefUnknownKind",
            httproute_invalid_backendref_unknown_kind,
        ),
        (
            "HTTPRouteInvalidNonExistentBackendRef",
            httproute_invalid_nonexistent_backendref,
        ),
        (
            "HTTPRouteInvalidParentRefNotMatchingListenerPort",
            httproute_parentref_port,
        ),
        (
            "HTTPRouteInvalidParentRefNotMatchingSectionName",
            httproute_parentref_section_name,
        ),
        (
            "HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
            httproute_parentref_section_name_port,
        ),
        (
            "HTTPRouteInvalidReferenceGrant",
            httproute_invalid_reference_grant,
        ),
        (
            "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
            httproute_partially_invalid_reference_grant,
        ),
        ("HTTPRouteDisallowedKind", httproute_disallowed_kind),
        (
            "HTTPRouteHostnameIntersection",
            httproute_hostname_intersection,
        ),
        (
            "HTTPRouteObservedGenerationBump",
            httproute_observed_generation_bump,
        ),
        ("HTTPRouteReferenceGrant", httproute_reference_grant),
        (
            "TLSRouteInvalidBackendRefNonexistent",
            tlsroute_backend_nonexistent,
        ),
        (
            "TLSRouteInvalidBackendRefUnknownKind",
            tlsroute_backend_unknown_kind,
        ),
        (
            "TLSRouteInvalidNoMatchingListener",
            tlsroute_no_matching_listener,
        ),
        (
            "TLSRouteInvalidNoMatchingListenerHostname",
            tlsroute_no_matching_listener_hostname,
        ),
        (
            "TLSRouteInvalidReferenceGrant",
            tlsroute_invalid_reference_grant,
        ),
        (
            "TLSRouteListenerPassthroughSupportedKinds",
            tlsroute_passthrough_supported_kinds,
        ),
        (
            "TLSRouteListenerTerminateSupportedKinds",
            tlsroute_terminate_supported_kinds,
        ),
        (
            "TLSRouteListenerMixedTerminationNotSupported (we support mixed: both Accepted)",
            tlsroute_mixed_termination,
        ),
        (
            "TCPRouteInvalidBackendRefNonexistent",
            tcp_backend_nonexistent,
        ),
        (
            "TCPRouteInvalidCrossNamespaceBackendRef",
            tcp_cross_namespace,
        ),
        ("TCPRouteInvalidNonTCPListener", tcp_non_tcp_listener),
        ("TCPRouteReferenceGrant", tcp_reference_grant),
        (
            "TCPRouteMultipleRoutesAttachment (status part)",
            tcp_multiple_routes,
        ),
        (
            "UDPRouteInvalidBackendRefNonexistent",
            udp_backend_nonexistent,
        ),
        (
            "UDPRouteInvalidCrossNamespaceBackendRef",
            udp_cross_namespace,
        ),
        ("UDPRouteNotAllowedByListeners", udp_not_allowed),
        ("UDPRouteReferenceGrant", udp_reference_grant),
        (
            "UDPRouteMultipleRoutesAttachment (status part)",
            udp_multiple_routes,
        ),
    ]
}

/// Runs as its own harness (`harness = false`) so that `cargo test -p conformance` always
/// prints the report, not only on failure; exits non-zero when an upstream test fails.
fn main() -> std::process::ExitCode {
    upstream_status_conformance()
}

fn upstream_status_conformance() -> std::process::ExitCode {
    let suite = Suite::locate().unwrap_or_else(|e| panic!("{e}"));
    let harness = Harness {
        suite,
        secrets: tls_secrets(),
    };
    let mut report = String::from("\nGateway API conformance, status conditions (compile):\n");
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let mut failures = Vec::new();
    // Upstream test name → "pass" / "fail" / "skip", for the per-profile totals.
    let mut outcomes: BTreeMap<String, &'static str> = BTreeMap::new();
    let upstream_name = |name: &str| name.split(' ').next().unwrap_or(name).to_owned();
    for (name, test) in tests() {
        let mut errors = Vec::new();
        let skipped = test(&harness, &mut errors);
        if !errors.is_empty() {
            fail += 1;
            report.push_str(&format!("  FAIL  {name}\n"));
            for e in &errors {
                report.push_str(&format!("          - {e}\n"));
            }
            failures.push(name);
            outcomes.insert(upstream_name(name), "fail");
        } else if let Some(reason) = skipped {
            skip += 1;
            report.push_str(&format!("  SKIP  {name} ({reason})\n"));
            outcomes.entry(upstream_name(name)).or_insert("skip");
        } else {
            pass += 1;
            report.push_str(&format!("  PASS  {name}\n"));
            outcomes.entry(upstream_name(name)).or_insert("pass");
        }
    }
    for (name, reason) in UNSUPPORTED {
        skip += 1;
        report.push_str(&format!("  SKIP  {name} ({reason})\n"));
        outcomes.entry((*name).to_owned()).or_insert("skip");
    }
    // Status-only tests in cases.yaml this file neither runs nor lists: visible, not silent.
    // An upstream checkout has no cases.yaml; a shared folder whose cases.yaml does not parse
    // is broken and fails the run.
    if harness.suite.cases_file.is_some() {
        let cases = harness.suite.cases().unwrap_or_else(|e| panic!("{e}"));
        let known: Vec<String> = tests()
            .iter()
            .map(|(n, _)| n.split(' ').next().unwrap_or(n).to_owned())
            .chain(UNSUPPORTED.iter().map(|(n, _)| (*n).to_owned()))
            .collect();
        let missing: Vec<&str> = cases
            .iter()
            .filter(|c| c.status_only() && !known.contains(&c.test))
            .map(|c| c.test.as_str())
            .collect();
        if !missing.is_empty() {
            report.push_str(&format!(
                "  not covered here (status-only in cases.yaml): {}\n",
                missing.join(", ")
            ));
        }
        // Totals per upstream profile and support level, over the tests run here (a test
        // counts once per profile it belongs to; its data-plane cases are not run here).
        let mut totals: BTreeMap<(String, String), [usize; 3]> = BTreeMap::new();
        for case in &cases {
            let Some(outcome) = outcomes.get(&case.test) else {
                continue;
            };
            let conformance::Profiles::Map(profiles) = &case.profiles else {
                continue;
            };
            for (profile, level) in profiles {
                let slot = match *outcome {
                    "pass" => 0,
                    "fail" => 1,
                    _ => 2,
                };
                totals.entry((profile.clone(), level.clone())).or_default()[slot] += 1;
            }
        }
        report.push_str("  per profile (tests run here):\n");
        for ((profile, level), [p, f, s]) in &totals {
            report.push_str(&format!(
                "    {profile:<13} {level:<9} {p} passed, {f} failed, {s} skipped\n"
            ));
        }
    }
    // The report is the point of this test; print it whether or not it passes. The last line
    // is the plain `N passed, N failed` summary test runners recognise.
    println!("{report}");
    if !failures.is_empty() {
        println!("failing upstream tests: {failures:?}");
    }
    println!("conformance: {pass} passed, {fail} failed, {skip} skipped");
    if failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
