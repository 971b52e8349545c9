//! Per-request cost of `HttpRouter::route` as the number of HTTPRoutes grows.
//!
//! Routes are spread over 1,000 hostnames plus wildcards, so the cost should stay flat: the
//! router only looks at the request host's buckets.
// A benchmark fixture that fails to build should stop loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gateway_core::ir::*;
use gateway_core::model::{ObjectKey, ResourceKind};
use gateway_core::router::{HttpRequest, HttpRouter};

fn matches(path: PathMatch, method: Option<&str>, headers: Vec<HeaderMatch>) -> Vec<HttpMatch> {
    vec![HttpMatch {
        path,
        method: method.map(str::to_owned),
        headers,
        query_params: vec![],
    }]
}

fn rule(index: usize, matches: Vec<HttpMatch>) -> HttpRule {
    HttpRule {
        index,
        name: None,
        matches,
        filters: vec![],
        action: RuleAction::Respond {
            status: 200,
            reason: String::new(),
        },
        timeouts: Timeouts::default(),
        retry: None,
    }
}

fn route(i: usize) -> HttpRoute {
    let hostname = if i.is_multiple_of(20) {
        format!("*.apps-{}.example.com", i % 50)
    } else {
        format!("svc-{}.example.com", i % 1000)
    };
    let mut rules = vec![
        rule(
            0,
            matches(
                PathMatch::Prefix(format!("/api/v1/users/{i}")),
                None,
                vec![],
            ),
        ),
        rule(
            1,
            matches(
                PathMatch::Exact(format!("/api/v1/users/{i}/profile")),
                Some("GET"),
                vec![],
            ),
        ),
    ];
    if !i.is_multiple_of(3) {
        let tenant = HeaderMatch {
            name: "x-tenant".into(),
            value: StringMatch::Exact(format!("t{}", i % 7)),
        };
        rules.push(rule(
            2,
            matches(
                PathMatch::Prefix(format!("/api/v{}/orders", i % 3)),
                None,
                vec![tenant],
            ),
        ));
    }
    // About 5% of the routes, spread over the hostnames.
    if (i / 1000 + i) % 20 == 7 {
        let pattern = Pattern::new(&format!("/api/v1/items/{i}/[0-9]+")).expect("valid regex");
        rules.push(rule(3, matches(PathMatch::Regex(pattern), None, vec![])));
    }
    HttpRoute {
        id: RouteId {
            key: ObjectKey::new(ResourceKind::HttpRoute, "bench", &format!("r{i}")),
        },
        order: RouteOrder::new(Some(i as i64), "bench", &format!("r{i}")),
        hostnames: vec![hostname],
        rules,
    }
}

fn router(n: usize) -> HttpRouter {
    let listener = Listener {
        id: ListenerId {
            parent: ObjectKey::new(ResourceKind::Gateway, "bench", "gw"),
            name: "http".into(),
        },
        hostname: None,
        port: 80,
        protocol: ListenerProtocol::Http,
        tls: None,
        http_routes: (0..n).map(route).collect(),
        grpc_routes: vec![],
        tls_routes: vec![],
        l4_route: None,
    };
    HttpRouter::new(&[Arc::new(listener)])
}

fn bench_route(c: &mut Criterion) {
    let headers: &[(&str, &str)] = &[
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("x-tenant", "t1"),
    ];
    let request = |host, path, method| HttpRequest {
        host,
        path,
        query: None,
        method,
        headers,
    };
    let cases = [
        (
            "exact-host-long-prefix",
            request(
                "svc-7.example.com",
                "/api/v1/users/7/settings/notifications/email",
                "GET",
            ),
            true,
        ),
        (
            "exact-host-exact-path",
            request("svc-7.example.com:8080", "/api/v1/users/7/profile", "GET"),
            true,
        ),
        (
            "wildcard-host",
            request("web.apps-0.example.com", "/api/v1/users/0/x", "GET"),
            true,
        ),
        (
            "miss-path",
            request("svc-7.example.com", "/static/app.js", "GET"),
            false,
        ),
        (
            "miss-host",
            request("unknown.example.org", "/api/v1/users/7", "GET"),
            false,
        ),
    ];
    let mut group = c.benchmark_group("route");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in [10, 1_000, 10_000, 100_000] {
        let router = router(n);
        for (name, req, hit) in &cases {
            assert_eq!(router.route(req).is_some(), *hit, "{name} with {n} routes");
            group.bench_with_input(BenchmarkId::new(*name, n), req, |b, req| {
                b.iter(|| black_box(&router).route(black_box(req)).is_some())
            });
        }
    }
    group.finish();
}

/// A snapshot of `n` HTTPRoutes over 1 000 hostnames on one Gateway, each with two rules
/// (a prefix; an exact path with a header), one route in twenty with a third, regex rule, and
/// 100 backend Services with endpoints.
fn snapshot(n: usize) -> gateway_core::model::Snapshot {
    use gateway_core::model::Resource;
    use serde_json::json;
    let mut docs = vec![
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "gc"}, "spec": {"controllerName": "example.com/gw"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": "infra"},
               "spec": {"gatewayClassName": "gc", "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
    ];
    for s in 0..100 {
        docs.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{s}"), "namespace": "apps"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
        docs.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("svc-{s}-a"), "namespace": "apps",
                         "labels": {"kubernetes.io/service-name": format!("svc-{s}")}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [format!("10.0.{s}.1")]}, {"addresses": [format!("10.0.{s}.2")]}]}));
    }
    for i in 0..n {
        docs.push(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": format!("route-{i}"), "namespace": "apps",
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                     "hostnames": [format!("svc-{}.example.com", i % 1000)],
                     "rules": rules(i)}}),
        );
    }
    docs.into_iter()
        .map(|d| Resource::from_json(d).expect("valid").expect("known kind"))
        .collect()
}

fn rules(i: usize) -> serde_json::Value {
    use serde_json::json;
    let mut rules = vec![
        json!({"matches": [{"path": {"type": "PathPrefix", "value": format!("/api/v{}/users", i % 7)}}],
               "backendRefs": [{"name": format!("svc-{}", i % 100), "port": 80}]}),
        json!({"matches": [{"path": {"type": "Exact", "value": format!("/items/{i}")},
                            "headers": [{"name": "x-tenant", "value": "a"}]}],
               "backendRefs": [{"name": format!("svc-{}", (i + 1) % 100), "port": 80}]}),
    ];
    if i.is_multiple_of(20) {
        rules.push(json!({"matches": [{"path": {"type": "RegularExpression", "value": format!("/r{i}/[0-9]+")}}],
                          "backendRefs": [{"name": format!("svc-{}", (i + 2) % 100), "port": 80}]}));
    }
    json!(rules)
}

/// Compile time of a whole snapshot, and the router build for its one bind.
fn bench_compile(c: &mut Criterion) {
    use gateway_core::compile::{Options, compile};
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // 1 000 to 20 000: the cost per route should stay flat (issue 19).
    for n in [1_000usize, 10_000, 20_000] {
        let snapshot = snapshot(n);
        group.bench_with_input(BenchmarkId::new("http_routes", n), &snapshot, |b, s| {
            b.iter(|| black_box(compile(s, &Options::default())))
        });
        let (ir, _) = compile(&snapshot, &Options::default());
        group.bench_with_input(BenchmarkId::new("router_build", n), &ir, |b, ir| {
            b.iter(|| black_box(HttpRouter::new(&ir.binds[0].listeners)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_route, bench_compile);
criterion_main!(benches);
