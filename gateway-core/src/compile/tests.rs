//! Unit tests of compile rules, one per spec rule; the golden suite lives in `tests/`.

use serde_json::json;

use super::{Options, compile};
use crate::ir::{Backend, BindProtocol, RuleAction};
use crate::model::{Condition, ObjectKey, Resource, ResourceKind, Snapshot};
use crate::status::Status;

fn snapshot(docs: &[serde_json::Value]) -> Snapshot {
    docs.iter()
        .map(|d| {
            Resource::from_json(d.clone())
                .expect("valid test object")
                .expect("known kind")
        })
        .collect()
}

fn class() -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
           "metadata": {"name": "gc"}, "spec": {"controllerName": "example.com/gw"}})
}

fn gateway(listeners: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": "gw", "namespace": "infra", "generation": 2},
           "spec": {"gatewayClassName": "gc", "listeners": listeners}})
}

fn http_listener() -> serde_json::Value {
    json!([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}])
}

fn service(ns: &str, name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"port": 80}]}})
}

fn route(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": ns, "generation": 7}, "spec": spec})
}

/// HTTPRoute `apps/r` on Gateway `infra/gw`, forwarding to Service `shared/svc` (which needs a
/// ReferenceGrant).
fn cross_namespace_route() -> serde_json::Value {
    route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
               "rules": [{"backendRefs": [{"name": "svc", "namespace": "shared", "port": 80}]}]}),
    )
}

fn grant(ns: &str, from_ns: &str) -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
           "metadata": {"name": "g", "namespace": ns},
           "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": from_ns}],
                    "to": [{"group": "", "kind": "Service"}]}})
}

fn route_conditions<'a>(status: &'a Status, ns: &str, name: &str) -> &'a [Condition] {
    &status
        .route(&ObjectKey::new(ResourceKind::HttpRoute, ns, name))
        .expect("route status")
        .status
        .parents[0]
        .conditions
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

#[test]
fn removing_a_reference_grant_revokes_the_backend() {
    let base = vec![
        class(),
        gateway(http_listener()),
        service("shared", "svc"),
        cross_namespace_route(),
    ];
    let mut with_grant = base.clone();
    with_grant.push(grant("shared", "apps"));

    let (ir, status) = compile(&snapshot(&with_grant), &Options::default());
    assert!(find(route_conditions(&status, "apps", "r"), "ResolvedRefs").is_true());
    let rule = &ir.binds[0].listeners[0].http_routes[0].rules[0];
    assert!(
        matches!(&rule.action, RuleAction::Forward(b) if matches!(b[0].backend, Backend::Service(_)))
    );

    let (ir, status) = compile(&snapshot(&base), &Options::default());
    let resolved = find(route_conditions(&status, "apps", "r"), "ResolvedRefs");
    assert_eq!(
        (resolved.status.as_str(), resolved.reason.as_str()),
        ("False", "RefNotPermitted")
    );
    // Still Accepted: bad backends never reject the route, they answer 500.
    assert!(find(route_conditions(&status, "apps", "r"), "Accepted").is_true());
    let rule = &ir.binds[0].listeners[0].http_routes[0].rules[0];
    assert!(
        matches!(&rule.action, RuleAction::Forward(b) if matches!(b[0].backend, Backend::Invalid { .. }))
    );
}

#[test]
fn a_grant_for_another_namespace_does_not_apply() {
    let docs = vec![
        class(),
        gateway(http_listener()),
        service("shared", "svc"),
        cross_namespace_route(),
        grant("shared", "elsewhere"),
    ];
    let (_, status) = compile(&snapshot(&docs), &Options::default());
    assert_eq!(
        find(route_conditions(&status, "apps", "r"), "ResolvedRefs").reason,
        "RefNotPermitted"
    );
}

#[test]
fn conditions_carry_the_observed_generation() {
    let r = route("infra", "r", json!({"parentRefs": [{"name": "gw"}]}));
    let (_, status) = compile(
        &snapshot(&[class(), gateway(http_listener()), r]),
        &Options::default(),
    );
    assert!(
        route_conditions(&status, "infra", "r")
            .iter()
            .all(|c| c.observed_generation == Some(7))
    );
    let gw = status.gateway("infra", "gw").expect("gateway status");
    assert!(
        gw.status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
    assert!(
        gw.status.listeners[0]
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
}

#[test]
fn a_route_without_rules_gets_the_crd_default_and_answers_500() {
    let r = route("infra", "r", json!({"parentRefs": [{"name": "gw"}]}));
    let (ir, _) = compile(
        &snapshot(&[class(), gateway(http_listener()), r]),
        &Options::default(),
    );
    let rules = &ir.binds[0].listeners[0].http_routes[0].rules;
    assert_eq!(rules.len(), 1);
    assert!(matches!(
        rules[0].action,
        RuleAction::Respond { status: 500, .. }
    ));
}

#[test]
fn two_parent_refs_to_one_listener_count_once() {
    let r = route(
        "infra",
        "r",
        // Valid under the CRD's uniqueness rule (one names the namespace, one does not), and
        // both select the same listener.
        json!({"parentRefs": [{"name": "gw", "sectionName": "http"},
                              {"name": "gw", "namespace": "infra", "sectionName": "http"}]}),
    );
    let (ir, status) = compile(
        &snapshot(&[class(), gateway(http_listener()), r]),
        &Options::default(),
    );
    let gw = status.gateway("infra", "gw").expect("gateway status");
    assert_eq!(gw.status.listeners[0].attached_routes, 1);
    assert_eq!(ir.binds[0].listeners[0].http_routes.len(), 1);
    // One status entry per parentRef.
    let parents = &status
        .route(&ObjectKey::new(ResourceKind::HttpRoute, "infra", "r"))
        .expect("route status")
        .status
        .parents;
    assert_eq!(parents.len(), 2);
    assert!(
        parents
            .iter()
            .all(|p| find(&p.conditions, "Accepted").is_true())
    );
}

#[test]
fn controller_name_selects_classes() {
    let docs = [class(), gateway(http_listener())];
    let ours = Options {
        controller_name: Some("example.com/gw".into()),
        ..Options::default()
    };
    let (ir, status) = compile(&snapshot(&docs), &ours);
    assert_eq!(ir.binds.len(), 1);
    assert_eq!(status.gateway_classes.len(), 1);
    let theirs = Options {
        controller_name: Some("example.com/other".into()),
        ..Options::default()
    };
    let (ir, status) = compile(&snapshot(&docs), &theirs);
    assert!(ir.binds.is_empty());
    assert!(status.gateway_classes.is_empty() && status.gateways.is_empty());
}

#[test]
fn selector_matches_the_namespace_name_label_without_a_namespace_object() {
    let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {
        "from": "Selector", "selector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}}}]);
    let ok = route(
        "apps",
        "ok",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}]}),
    );
    let no = route(
        "other",
        "no",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}]}),
    );
    let (_, status) = compile(
        &snapshot(&[class(), gateway(listeners), ok, no]),
        &Options::default(),
    );
    assert!(find(route_conditions(&status, "apps", "ok"), "Accepted").is_true());
    assert_eq!(
        find(route_conditions(&status, "other", "no"), "Accepted").reason,
        "NotAllowedByListeners"
    );
}

#[test]
fn compile_is_deterministic_whatever_the_input_order() {
    let docs = vec![
        class(),
        gateway(http_listener()),
        service("infra", "svc"),
        route(
            "infra",
            "b",
            json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}),
        ),
        route(
            "infra",
            "a",
            json!({"parentRefs": [{"name": "gw"}], "hostnames": ["x.example.com"]}),
        ),
    ];
    let mut reversed = docs.clone();
    reversed.reverse();
    let (ir1, status1) = compile(&snapshot(&docs), &Options::default());
    let (ir2, status2) = compile(&snapshot(&reversed), &Options::default());
    assert_eq!(status1, status2);
    assert_eq!(ir1.summary(), ir2.summary());
    assert_eq!(ir1.binds[0].protocol, BindProtocol::Http);
}

mod assigned_addresses {
    use std::net::IpAddr;

    use super::*;
    use crate::compile::AssignedAddresses;
    use crate::model::GatewayStatusAddress;

    fn key() -> (String, String) {
        ("infra".to_owned(), "gw".to_owned())
    }

    fn address(type_: &str, value: &str) -> GatewayStatusAddress {
        GatewayStatusAddress {
            type_: Some(type_.to_owned()),
            value: value.to_owned(),
        }
    }

    fn gateway_conditions(status: &Status) -> &[Condition] {
        &status.gateways[0].status.conditions
    }

    fn listener_conditions(status: &Status) -> &[Condition] {
        &status.gateways[0].status.listeners[0].conditions
    }

    #[test]
    fn a_gateway_waiting_for_its_address_is_served_but_not_programmed() {
        let snapshot = snapshot(&[class(), gateway(http_listener())]);
        let mut options = Options {
            advertised_addresses: vec!["198.51.100.1".parse().unwrap()],
            ..Options::default()
        };
        options.assigned_addresses.insert(
            key(),
            AssignedAddresses::waiting("waiting for the load balancer of Service infra/gw-gw"),
        );
        let (ir, status) = compile(&snapshot, &options);
        // Served meanwhile, on the usual address.
        assert_eq!(ir.binds.len(), 1);
        assert!(ir.binds[0].address.is_unspecified());
        let programmed = find(gateway_conditions(&status), "Programmed");
        assert!(!programmed.is_true());
        assert_eq!(programmed.reason, "AddressNotAssigned");
        assert_eq!(
            programmed.message,
            "waiting for the load balancer of Service infra/gw-gw"
        );
        assert_eq!(programmed.observed_generation, Some(2));
        assert!(find(gateway_conditions(&status), "Accepted").is_true());
        assert!(find(listener_conditions(&status), "Programmed").is_true());
        // Nothing reported meanwhile, not even the global advertised address.
        assert!(status.gateways[0].status.addresses.is_empty());
    }

    #[test]
    fn assigned_addresses_are_advertised_in_order_and_the_gateway_is_programmed() {
        let snapshot = snapshot(&[class(), gateway(http_listener())]);
        let mut options = Options {
            advertised_addresses: vec!["198.51.100.1".parse().unwrap()],
            ..Options::default()
        };
        let assigned = vec![
            address("IPAddress", "203.0.113.7"),
            address("Hostname", "lb.example.net"),
        ];
        options
            .assigned_addresses
            .insert(key(), AssignedAddresses::assigned(assigned.clone()));
        let (ir, status) = compile(&snapshot, &options);
        assert_eq!(status.gateways[0].status.addresses, assigned);
        assert!(find(gateway_conditions(&status), "Programmed").is_true());
        // The data plane binds as before: the load balancer forwards to it.
        assert!(ir.binds[0].address.is_unspecified());
        // Other Gateways keep the global advertised address.
        let other = snapshot_with_two_gateways();
        let (_, status) = compile(&other, &options);
        let addresses: Vec<_> = status
            .gateways
            .iter()
            .map(|g| (g.key.name.as_str(), g.status.addresses.clone()))
            .collect();
        assert_eq!(
            addresses,
            [
                ("gw", assigned),
                ("other", vec![address("IPAddress", "198.51.100.1")])
            ]
        );
    }

    fn snapshot_with_two_gateways() -> Snapshot {
        let mut other = gateway(http_listener());
        other["metadata"]["name"] = json!("other");
        snapshot(&[class(), gateway(http_listener()), other])
    }

    #[test]
    fn spec_addresses_are_not_bound_when_addresses_are_assigned() {
        let mut gw = gateway(http_listener());
        gw["spec"]["addresses"] = json!([{"type": "IPAddress", "value": "203.0.113.7"}]);
        let snapshot = snapshot(&[class(), gw]);
        let bind: IpAddr = "127.0.0.9".parse().unwrap();
        let mut options = Options::default();
        options.gateway_addresses.insert(key(), bind);
        options.assigned_addresses.insert(
            key(),
            AssignedAddresses::assigned(vec![address("IPAddress", "203.0.113.7")]),
        );
        let (ir, status) = compile(&snapshot, &options);
        assert_eq!(ir.binds.len(), 1);
        assert_eq!(ir.binds[0].address, bind);
        assert_eq!(
            status.gateways[0].status.addresses,
            [address("IPAddress", "203.0.113.7")]
        );
        assert!(status.all_healthy(), "{}", status.to_table());
    }

    #[test]
    fn a_gateway_that_binds_its_assigned_address_is_not_bound_until_it_has_one() {
        let snapshot = snapshot_with_two_gateways();
        let mut options = Options::default();
        options.assigned_addresses.insert(
            key(),
            AssignedAddresses {
                serve_while_waiting: false,
                ..AssignedAddresses::waiting("waiting for an IP address to bind")
            },
        );
        let (ir, status) = compile(&snapshot, &options);
        // Only the other Gateway is bound, and the waiting one takes no port from it.
        assert_eq!(ir.binds.len(), 1);
        let parents: Vec<_> = ir.binds[0]
            .listeners
            .iter()
            .map(|l| l.id.parent.name.as_str())
            .collect();
        assert_eq!(parents, ["other"]);
        let waiting = status.gateways.iter().find(|g| g.key.name == "gw").unwrap();
        let programmed = find(&waiting.status.conditions, "Programmed");
        assert_eq!(
            (programmed.is_true(), programmed.reason.as_str()),
            (false, "AddressNotAssigned")
        );
        let listener = find(&waiting.status.listeners[0].conditions, "Programmed");
        assert_eq!(
            (listener.is_true(), listener.reason.as_str()),
            (false, "Pending")
        );
        assert!(find(&waiting.status.listeners[0].conditions, "Accepted").is_true());
        let other = status
            .gateways
            .iter()
            .find(|g| g.key.name == "other")
            .unwrap();
        assert!(find(&other.status.conditions, "Programmed").is_true());

        // Once assigned, it binds the address given for it.
        let bind: IpAddr = "127.0.0.9".parse().unwrap();
        options.gateway_addresses.insert(key(), bind);
        options.assigned_addresses.insert(
            key(),
            AssignedAddresses {
                serve_while_waiting: false,
                ..AssignedAddresses::assigned(vec![address("IPAddress", "127.0.0.9")])
            },
        );
        let (ir, status) = compile(&snapshot, &options);
        assert_eq!(ir.binds.len(), 2);
        assert!(ir.binds.iter().any(|b| b.address == bind));
        assert!(status.all_healthy(), "{}", status.to_table());
    }

    #[test]
    fn a_refused_address_is_address_not_usable_and_what_was_assigned_is_still_reported() {
        let mut gw = gateway(http_listener());
        gw["spec"]["addresses"] = json!([{"type": "IPAddress", "value": "192.0.2.1"}]);
        let snapshot = snapshot(&[class(), gw]);
        let mut options = Options::default();
        options.assigned_addresses.insert(
            key(),
            AssignedAddresses::unusable(Vec::new(), "the load balancer refused 192.0.2.1"),
        );
        let (ir, status) = compile(&snapshot, &options);
        assert_eq!(ir.binds.len(), 1, "served meanwhile");
        assert!(find(gateway_conditions(&status), "Accepted").is_true());
        let programmed = find(gateway_conditions(&status), "Programmed");
        assert_eq!(
            (
                programmed.is_true(),
                programmed.reason.as_str(),
                programmed.message.as_str()
            ),
            (
                false,
                "AddressNotUsable",
                "the load balancer refused 192.0.2.1"
            )
        );
        assert!(status.gateways[0].status.addresses.is_empty());

        // Given another address instead: reported, still not usable as requested.
        options.assigned_addresses.insert(
            key(),
            AssignedAddresses::unusable(
                vec![address("IPAddress", "203.0.113.7")],
                "192.0.2.1 was requested, 203.0.113.7 assigned",
            ),
        );
        let (_, status) = compile(&snapshot, &options);
        assert_eq!(
            status.gateways[0].status.addresses,
            [address("IPAddress", "203.0.113.7")]
        );
        let programmed = find(gateway_conditions(&status), "Programmed");
        assert_eq!(programmed.reason, "AddressNotUsable");
    }

    #[test]
    fn an_unsupported_address_type_wins_over_an_unusable_address() {
        let mut gw = gateway(http_listener());
        gw["spec"]["addresses"] = json!([{"type": "test/fake", "value": "x"},
                                        {"type": "IPAddress", "value": "192.0.2.1"}]);
        let snapshot = snapshot(&[class(), gw]);
        let mut options = Options::default();
        options
            .assigned_addresses
            .insert(key(), AssignedAddresses::unusable(Vec::new(), "refused"));
        let (_, status) = compile(&snapshot, &options);
        let accepted = find(gateway_conditions(&status), "Accepted");
        assert_eq!(
            (accepted.is_true(), accepted.reason.as_str()),
            (false, "UnsupportedAddress")
        );
        let programmed = find(gateway_conditions(&status), "Programmed");
        assert_ne!(programmed.reason, "AddressNotUsable");
    }

    #[test]
    fn a_gateway_not_accepted_keeps_its_reason_while_waiting() {
        let mut gw = gateway(http_listener());
        gw["spec"]["infrastructure"] =
            json!({"parametersRef": {"group": "example.com", "kind": "Config", "name": "x"}});
        let snapshot = snapshot(&[class(), gw]);
        let mut options = Options::default();
        options
            .assigned_addresses
            .insert(key(), AssignedAddresses::waiting("waiting"));
        let (_, status) = compile(&snapshot, &options);
        let programmed = find(gateway_conditions(&status), "Programmed");
        assert_eq!(programmed.reason, "Invalid");
    }
}

mod listener_sets {
    use super::*;

    fn allowing(from: &str) -> serde_json::Value {
        let mut gw = gateway(http_listener());
        gw["spec"]["allowedListeners"] = json!({"namespaces": {"from": from}});
        gw
    }

    fn listener_set(ns: &str, name: &str, created: &str, hostname: &str) -> serde_json::Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
               "metadata": {"name": name, "namespace": ns, "generation": 3,
                            "creationTimestamp": created},
               "spec": {"parentRef": {"name": "gw", "namespace": "infra"},
                        "listeners": [{"name": "extra", "port": 80, "protocol": "HTTP",
                                       "hostname": hostname}]}})
    }

    fn set_status<'a>(status: &'a Status, name: &str) -> &'a crate::model::ListenerSetStatus {
        &status
            .listener_sets
            .iter()
            .find(|s| s.key.name == name)
            .expect("a ListenerSet status")
            .status
    }

    #[test]
    fn set_listeners_share_the_gateways_bind_and_name_their_set_as_parent() {
        let snapshot = snapshot(&[
            class(),
            allowing("Same"),
            listener_set("infra", "ls", "2026-01-01T00:00:00Z", "extra.example.com"),
        ]);
        let (ir, status) = compile(&snapshot, &Options::default());
        assert_eq!(ir.binds.len(), 1, "one socket for the Gateway and its set");
        let parents: Vec<(ResourceKind, &str, &str)> = ir.binds[0]
            .listeners
            .iter()
            .map(|l| {
                (
                    l.id.parent.kind,
                    l.id.parent.name.as_str(),
                    l.id.name.as_str(),
                )
            })
            .collect();
        // The set's listener has a hostname, so it sorts first on the shared port.
        assert_eq!(
            parents,
            [
                (ResourceKind::ListenerSet, "ls", "extra"),
                (ResourceKind::Gateway, "gw", "http")
            ]
        );
        let set = set_status(&status, "ls");
        assert!(set.conditions.iter().all(Condition::is_true));
        assert_eq!(set.conditions[0].observed_generation, Some(3));
        assert_eq!(status.gateways[0].status.attached_listener_sets, Some(1));
        assert_eq!(
            status.gateways[0].status.listeners.len(),
            1,
            "own listeners only"
        );
    }

    #[test]
    fn the_older_set_keeps_a_hostname_and_a_set_elsewhere_is_not_allowed_by_same() {
        let snapshot = snapshot(&[
            class(),
            allowing("Same"),
            listener_set("infra", "young", "2026-02-01T00:00:00Z", "a.example.com"),
            listener_set("infra", "old", "2026-01-01T00:00:00Z", "a.example.com"),
            listener_set("apps", "away", "2025-01-01T00:00:00Z", "b.example.com"),
        ]);
        let (ir, status) = compile(&snapshot, &Options::default());
        let old = set_status(&status, "old");
        assert!(old.conditions.iter().all(Condition::is_true));
        let young = set_status(&status, "young");
        let reasons: Vec<(&str, bool, &str)> = young.listeners[0]
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.is_true(), c.reason.as_str()))
            .collect();
        assert!(
            reasons.contains(&("Accepted", false, "HostnameConflict")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("Programmed", false, "HostnameConflict")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("Conflicted", true, "HostnameConflict")),
            "{reasons:?}"
        );
        assert_eq!(young.conditions[0].reason, "ListenersNotValid");
        let away = set_status(&status, "away");
        assert_eq!(
            (
                away.conditions[0].is_true(),
                away.conditions[0].reason.as_str()
            ),
            (false, "NotAllowed")
        );
        assert_eq!(status.gateways[0].status.attached_listener_sets, Some(1));
        let served: Vec<&str> = ir.binds[0]
            .listeners
            .iter()
            .map(|l| l.id.parent.name.as_str())
            .collect();
        assert_eq!(
            served,
            ["old", "gw"],
            "the loser and the refused set serve nothing"
        );
    }

    #[test]
    fn a_gateway_parent_ref_never_reaches_a_set_listener() {
        let snapshot = snapshot(&[
            class(),
            allowing("All"),
            listener_set("infra", "ls", "2026-01-01T00:00:00Z", "extra.example.com"),
            service("infra", "svc"),
            route(
                "infra",
                "via-gateway",
                json!({"parentRefs": [{"name": "gw", "sectionName": "extra"}],
                       "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}),
            ),
            route(
                "infra",
                "via-set",
                json!({"parentRefs": [{"kind": "ListenerSet", "name": "ls", "sectionName": "extra"}],
                       "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}),
            ),
        ]);
        let (_, status) = compile(&snapshot, &Options::default());
        let accepted = |name: &str| {
            let route = status
                .route(&ObjectKey::new(ResourceKind::HttpRoute, "infra", name))
                .expect("route status");
            let parent = &route.status.parents[0];
            let c = find(&parent.conditions, "Accepted");
            (
                parent.parent_ref.kind().to_owned(),
                c.is_true(),
                c.reason.clone(),
            )
        };
        assert_eq!(
            accepted("via-gateway"),
            ("Gateway".into(), false, "NoMatchingParent".into())
        );
        assert_eq!(
            accepted("via-set"),
            ("ListenerSet".into(), true, "Accepted".into())
        );
        assert_eq!(set_status(&status, "ls").listeners[0].attached_routes, 1);
    }
}

fn tls_policy(name: &str, ca: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
           "metadata": {"name": name, "namespace": "apps", "generation": 3},
           "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "svc"}],
                    "validation": {"caCertificateRefs": [ca], "hostname": "svc.internal"}}})
}

fn tls_route() -> serde_json::Value {
    route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
               "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}),
    )
}

/// The policy status and the backend of `apps/r`'s first rule.
fn policy_outcome(
    docs: &[serde_json::Value],
) -> (Vec<(String, String, String)>, crate::ir::Backend) {
    let (ir, status) = compile(&snapshot(docs), &Options::default());
    let conditions = status
        .policies
        .first()
        .map(|p| {
            p.status.ancestors[0]
                .conditions
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
                .collect()
        })
        .unwrap_or_default();
    let rule = &ir.binds[0].listeners[0].http_routes[0].rules[0];
    let RuleAction::Forward(backends) = &rule.action else {
        panic!("a forwarding rule");
    };
    // The route's own ResolvedRefs never carries the policy's problems.
    assert!(find(route_conditions(&status, "apps", "r"), "ResolvedRefs").is_true());
    (conditions, backends[0].backend.clone())
}

#[test]
fn a_backend_tls_policy_reads_its_ca_from_a_config_map_or_a_secret() {
    let pem = pem_shaped_certificate();
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ca", "namespace": "apps"}, "data": {"ca.crt": pem}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ca-secret", "namespace": "apps"}, "stringData": {"ca.crt": pem}});
    for (ca, source) in [
        (
            json!({"group": "", "kind": "ConfigMap", "name": "ca"}),
            ResourceKind::ConfigMap,
        ),
        (
            json!({"group": "", "kind": "Secret", "name": "ca-secret"}),
            ResourceKind::Secret,
        ),
    ] {
        let docs = [
            class(),
            gateway(http_listener()),
            service("apps", "svc"),
            tls_route(),
            config_map.clone(),
            secret.clone(),
            tls_policy("p", ca),
        ];
        let (conditions, backend) = policy_outcome(&docs);
        assert!(
            conditions.iter().all(|(_, status, _)| status == "True"),
            "{conditions:?}"
        );
        let Backend::Service(service) = backend else {
            panic!("a usable backend");
        };
        let tls = service.tls.expect("TLS to the backend");
        assert_eq!(tls.sni, "svc.internal");
        match &tls.trust {
            crate::ir::TrustAnchors::Bundle { sources, .. } => {
                assert_eq!(sources[0].kind, source);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_backend_tls_policy_without_a_usable_ca_fails_closed() {
    for (ca, resolved) in [
        (
            json!({"group": "", "kind": "ConfigMap", "name": "absent"}),
            "InvalidCACertificateRef",
        ),
        (
            json!({"group": "example.com", "kind": "Vault", "name": "ca"}),
            "InvalidKind",
        ),
    ] {
        let docs = [
            class(),
            gateway(http_listener()),
            service("apps", "svc"),
            tls_route(),
            tls_policy("p", ca),
        ];
        let (conditions, backend) = policy_outcome(&docs);
        assert_eq!(
            conditions,
            vec![
                (
                    "Accepted".to_owned(),
                    "False".to_owned(),
                    "NoValidCACertificate".to_owned()
                ),
                (
                    "ResolvedRefs".to_owned(),
                    "False".to_owned(),
                    resolved.to_owned()
                ),
            ]
        );
        assert!(matches!(backend, Backend::Invalid { .. }), "{backend:?}");
    }
}

/// A PEM block that parses as a certificate for the structure checks compile makes (compile
/// does not verify signatures; the data plane does).
fn pem_shaped_certificate() -> String {
    "-----BEGIN CERTIFICATE-----\nMIIBZjCCAQ2gAwIBAgIUAQIDBAUGBwgJCgsMDQ4PEBESExQwCgYIKoZIzj0EAwIw\nDTELMAkGA1UEAwwCY2EwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjAN\n-----END CERTIFICATE-----\n".to_owned()
}
