//! Unit, table and property tests of the router.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::ir::*;
use crate::model::{ObjectKey, ResourceKind};

// ---------------------------------------------------------------------------------------------
// Builders

fn pm(path: PathMatch) -> HttpMatch {
    HttpMatch {
        path,
        method: None,
        headers: vec![],
        query_params: vec![],
    }
}

fn exact(path: &str) -> HttpMatch {
    pm(PathMatch::Exact(path.into()))
}

fn prefix(path: &str) -> HttpMatch {
    pm(PathMatch::Prefix(path.into()))
}

fn regex(path: &str) -> HttpMatch {
    pm(PathMatch::Regex(Pattern::new(path).unwrap()))
}

trait MatchExt {
    fn method(self, method: &str) -> Self;
    fn header(self, name: &str, value: &str) -> Self;
    fn query(self, name: &str, value: &str) -> Self;
}

impl MatchExt for HttpMatch {
    fn method(mut self, method: &str) -> Self {
        self.method = Some(method.into());
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(HeaderMatch {
            name: name.into(),
            value: StringMatch::Exact(value.into()),
        });
        self
    }
    fn query(mut self, name: &str, value: &str) -> Self {
        self.query_params.push(QueryParamMatch {
            name: name.into(),
            value: StringMatch::Exact(value.into()),
        });
        self
    }
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

/// A route whose rules each hold the given matches; rule `index` is its position.
fn route(
    namespace: &str,
    name: &str,
    created: Option<i64>,
    hostnames: &[&str],
    rules: Vec<Vec<HttpMatch>>,
) -> HttpRoute {
    HttpRoute {
        id: RouteId {
            key: ObjectKey::new(ResourceKind::HttpRoute, namespace, name),
        },
        order: RouteOrder::new(created, namespace, name),
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, m)| rule(i, m))
            .collect(),
    }
}

fn listener(name: &str, hostname: Option<&str>, http_routes: Vec<HttpRoute>) -> Arc<Listener> {
    Arc::new(Listener {
        id: ListenerId {
            parent: ObjectKey::new(ResourceKind::Gateway, "default", "gw"),
            name: name.into(),
        },
        hostname: hostname.map(str::to_owned),
        port: 80,
        protocol: ListenerProtocol::Http,
        tls: None,
        http_routes,
        grpc_routes: vec![],
        tls_routes: vec![],
        l4_route: None,
    })
}

struct Req<'a> {
    host: &'a str,
    path: &'a str,
    method: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    query: Option<&'a str>,
}

fn get<'a>(host: &'a str, path: &'a str) -> Req<'a> {
    Req {
        host,
        path,
        method: "GET",
        headers: vec![],
        query: None,
    }
}

impl<'a> Req<'a> {
    fn method(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }
    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }
    fn query(mut self, query: &'a str) -> Self {
        self.query = Some(query);
        self
    }
}

/// `(listener name, route name, rule index, match index)` of the match.
fn hit(router: &HttpRouter, req: &Req<'_>) -> Option<(String, String, usize, usize)> {
    let request = HttpRequest {
        host: req.host,
        path: req.path,
        query: req.query,
        method: req.method,
        headers: req.headers.as_slice(),
    };
    let found = router.route(&request)?;
    let m = found
        .rule
        .matches
        .iter()
        .position(|m| std::ptr::eq(m, found.matched))
        .unwrap();
    Some((
        found.listener.id.name.clone(),
        found.route.id.key.name.clone(),
        found.rule.index,
        m,
    ))
}

/// Route name and rule index of the match.
fn rr(router: &HttpRouter, req: Req<'_>) -> Option<(String, usize)> {
    hit(router, &req).map(|(_, r, u, _)| (r, u))
}

fn some(route: &str, rule: usize) -> Option<(String, usize)> {
    Some((route.to_owned(), rule))
}

fn one_listener(routes: Vec<HttpRoute>) -> HttpRouter {
    HttpRouter::new(&[listener("l", None, routes)])
}

// ---------------------------------------------------------------------------------------------
// normalize_path

#[test]
fn normalize_keeps_normal_paths_borrowed() {
    for path in [
        "/",
        "/a",
        "/a/b/",
        "/a%2Fb",
        "/%C3%A9",
        "/a.b/..c/.d",
        "/~x",
    ] {
        let out = normalize_path(path).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)), "{path}");
        assert_eq!(out, path);
    }
}

#[test]
fn normalize_rules() {
    let cases = [
        // unreserved escapes are decoded
        ("/%61%62%2D%2e%5F%7E%30", "/ab-._~0"),
        // other escapes are kept, upper-cased
        ("/a%2fb", "/a%2Fb"),
        ("/%c3%a9", "/%C3%A9"),
        ("/a%20b", "/a%20b"),
        // dot segments
        ("/a/./b/../c", "/a/c"),
        ("/..", "/"),
        ("/../../a", "/a"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a/%2E%2E/b", "/b"),
        // repeated slashes
        ("//a///b", "/a/b"),
        ("//", "/"),
        ("/a//", "/a/"),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize_path(input).unwrap(), expected, "{input}");
    }
}

#[test]
fn normalize_errors() {
    assert_eq!(normalize_path(""), Err(PathError::NotAbsolute));
    assert_eq!(normalize_path("a/b"), Err(PathError::NotAbsolute));
    assert_eq!(normalize_path("*"), Err(PathError::NotAbsolute));
    assert_eq!(
        normalize_path("/a%G1"),
        Err(PathError::MalformedEscape { offset: 2 })
    );
    assert_eq!(
        normalize_path("/a%"),
        Err(PathError::MalformedEscape { offset: 2 })
    );
    assert_eq!(
        normalize_path("/a%4"),
        Err(PathError::MalformedEscape { offset: 2 })
    );
    assert_eq!(
        normalize_path("/%é"),
        Err(PathError::MalformedEscape { offset: 1 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalize_never_panics_and_is_idempotent(path in "/?[a-c./%2eEfF0-9é]{0,24}") {
        if let Ok(once) = normalize_path(&path) {
            let twice = normalize_path(&once).unwrap();
            prop_assert!(matches!(twice, Cow::Borrowed(_)));
            prop_assert_eq!(&*twice, &*once);
            prop_assert!(!once.contains("//"));
            prop_assert!(!once.contains("/./") && !once.contains("/../"));
            // Borrowed exactly when nothing changed.
            prop_assert_eq!(matches!(once, Cow::Borrowed(_)), *once == path);
        }
    }

    #[test]
    fn normalize_total_on_any_string(path in any::<String>()) {
        let _ = normalize_path(&path);
        let _ = normalize_path(&format!("/{path}"));
    }
}

// ---------------------------------------------------------------------------------------------
// HostTable

#[test]
fn host_table_order_and_forms() {
    let mut table = HostTable::new();
    table.insert(Some("a.b.example.com"), 1);
    table.insert(Some("*.b.example.com"), 2);
    table.insert(Some("*.example.com"), 3);
    table.insert(None, 4);
    let got = |host: &str| table.lookup(host).map(|(_, v)| *v).collect::<Vec<_>>();
    assert_eq!(got("a.b.example.com"), [1, 2, 3, 4]);
    assert_eq!(got("A.B.Example.COM:8443"), [1, 2, 3, 4]);
    assert_eq!(got("a.b.example.com."), [1, 2, 3, 4]);
    assert_eq!(got("x.y.b.example.com"), [2, 3, 4]);
    assert_eq!(got("b.example.com"), [3, 4]);
    assert_eq!(got("example.com"), [4]);
    assert_eq!(got("[::1]:8080"), [4]);
    assert_eq!(got(""), [4]);
    let kinds: Vec<_> = table.lookup("a.b.example.com").map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            HostMatch::Exact,
            HostMatch::Wildcard("b.example.com".len()),
            HostMatch::Wildcard("example.com".len()),
            HostMatch::Any
        ]
    );
    let long = format!("{}.example.com", "x".repeat(300));
    assert_eq!(got(&long), [3, 4]);
}

#[test]
fn host_table_ipv6_and_upper_case_keys() {
    let mut table = HostTable::new();
    table.insert(Some("::1"), 1);
    table.insert(Some("App.Example.COM."), 2);
    assert_eq!(table.lookup("[::1]:80").next().map(|(_, v)| *v), Some(1));
    assert_eq!(
        table.lookup("app.example.com").next().map(|(_, v)| *v),
        Some(2)
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP precedence, one rule per spec sentence

#[test]
fn exact_beats_prefix() {
    let router = one_listener(vec![
        route("ns", "a", Some(0), &[], vec![vec![prefix("/path")]]),
        route("ns", "b", Some(1), &[], vec![vec![exact("/path")]]),
    ]);
    assert_eq!(rr(&router, get("h", "/path")), some("b", 0));
    assert_eq!(rr(&router, get("h", "/path/x")), some("a", 0));
}

#[test]
fn longer_prefix_beats_method() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![vec![prefix("/path5")], vec![prefix("/").method("PATCH")]],
    )]);
    assert_eq!(
        rr(&router, get("h", "/path5").method("PATCH")),
        some("r", 0)
    );
    assert_eq!(
        rr(&router, get("h", "/other").method("PATCH")),
        some("r", 1)
    );
}

#[test]
fn method_beats_headers_and_two_headers_beat_one() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![
            vec![prefix("/").header("version", "four")],
            vec![prefix("/").method("PATCH")],
            vec![prefix("/").header("version", "four").header("color", "red")],
        ],
    )]);
    let req = || get("h", "/").header("Version", "four");
    assert_eq!(rr(&router, req().method("PATCH")), some("r", 1));
    assert_eq!(rr(&router, req()), some("r", 0));
    assert_eq!(rr(&router, req().header("color", "red")), some("r", 2));
    assert_eq!(rr(&router, get("h", "/")), None);
}

#[test]
fn headers_beat_query_and_prefix_beats_query() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![
            vec![prefix("/").query("animal", "hydra")],
            vec![prefix("/").header("version", "four")],
            vec![prefix("/path5")],
        ],
    )]);
    let req = get("h", "/x")
        .header("version", "four")
        .query("animal=hydra");
    assert_eq!(rr(&router, req), some("r", 1));
    assert_eq!(
        rr(&router, get("h", "/x").query("animal=hydra")),
        some("r", 0)
    );
    assert_eq!(
        rr(&router, get("h", "/path5").query("animal=hydra")),
        some("r", 2)
    );
}

#[test]
fn query_params_first_occurrence_raw_and_case_sensitive() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![
            vec![prefix("/").query("animal", "whale")],
            vec![prefix("/").query("ANIMAL", "Whale")],
        ],
    )]);
    assert_eq!(
        rr(&router, get("h", "/").query("animal=whale")),
        some("r", 0)
    );
    assert_eq!(
        rr(&router, get("h", "/").query("x=1&ANIMAL=Whale")),
        some("r", 1)
    );
    assert_eq!(
        rr(&router, get("h", "/").query("animal=dolphin&animal=whale")),
        None
    );
    assert_eq!(rr(&router, get("h", "/").query("animal=wh%61le")), None);
    assert_eq!(rr(&router, get("h", "/")), None);
}

#[test]
fn repeated_headers_are_joined() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![vec![prefix("/").header("x", "1,2")]],
    )]);
    assert_eq!(
        rr(&router, get("h", "/").header("x", "1").header("X", "2")),
        some("r", 0)
    );
    assert_eq!(rr(&router, get("h", "/").header("x", "1")), None);
}

#[test]
fn prefix_is_segment_based() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![
            vec![prefix("/v2")],
            vec![prefix("/match/")],
            vec![prefix("/")],
        ],
    )]);
    assert_eq!(rr(&router, get("h", "/v2")), some("r", 0));
    assert_eq!(rr(&router, get("h", "/v2/")), some("r", 0));
    assert_eq!(rr(&router, get("h", "/v2/example")), some("r", 0));
    assert_eq!(rr(&router, get("h", "/v2example")), some("r", 2));
    assert_eq!(rr(&router, get("h", "/match/any")), some("r", 1));
    assert_eq!(rr(&router, get("h", "/match")), some("r", 1));
    assert_eq!(rr(&router, get("h", "/")), some("r", 2));
}

#[test]
fn exact_is_case_and_slash_sensitive() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![vec![exact("/two")]],
    )]);
    assert_eq!(rr(&router, get("h", "/two")), some("r", 0));
    assert_eq!(rr(&router, get("h", "/two/")), None);
    assert_eq!(rr(&router, get("h", "/Two")), None);
}

#[test]
fn regex_ranks_after_exact_before_prefix() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![
            vec![prefix("/api/v1/users")],
            vec![regex("/api/v[0-9]+/.*")],
            vec![exact("/api/v1/x")],
        ],
    )]);
    assert_eq!(rr(&router, get("h", "/api/v1/users/1")), some("r", 1));
    assert_eq!(rr(&router, get("h", "/api/v1/x")), some("r", 2));
    assert_eq!(rr(&router, get("h", "/api/vx/users")), None);
}

#[test]
fn route_hostname_rank_comes_first() {
    let router = one_listener(vec![
        route("ns", "any", Some(0), &[], vec![vec![exact("/a/b")]]),
        route(
            "ns",
            "wide",
            Some(1),
            &["*.example.com"],
            vec![vec![prefix("/a")]],
        ),
        route(
            "ns",
            "narrow",
            Some(2),
            &["*.b.example.com"],
            vec![vec![prefix("/")]],
        ),
        route(
            "ns",
            "exact",
            Some(3),
            &["x.b.example.com"],
            vec![vec![prefix("/z")]],
        ),
    ]);
    // The exact-host route has no matching rule: fall through to the longest wildcard.
    assert_eq!(
        rr(&router, get("x.b.example.com", "/a/b")),
        some("narrow", 0)
    );
    assert_eq!(rr(&router, get("x.b.example.com", "/z")), some("exact", 0));
    assert_eq!(rr(&router, get("y.example.com", "/a/b")), some("wide", 0));
    assert_eq!(rr(&router, get("y.example.com", "/b")), None);
    assert_eq!(rr(&router, get("other.org", "/a/b")), some("any", 0));
    // A wildcard covers any depth but never its own suffix.
    assert_eq!(rr(&router, get("a.b.c.example.com", "/a")), some("wide", 0));
    assert_eq!(rr(&router, get("example.com", "/a/b")), some("any", 0));
    // Port, case and trailing dot are ignored.
    assert_eq!(
        rr(&router, get("X.B.Example.com.:8080", "/z")),
        some("exact", 0)
    );
}

#[test]
fn misdirected_requests() {
    let router = HttpRouter::new(&[
        listener("exact", Some("a.example.com"), vec![]),
        listener("wild", Some("*.example.com"), vec![]),
        listener("any", None, vec![]),
    ]);
    // Same listener: served.
    assert!(!router.misdirected("a.example.com", "a.example.com:443"));
    assert!(!router.misdirected("b.example.com", "c.example.com"));
    assert!(!router.misdirected("example.org", "other.org"));
    // The Host belongs to another listener than the SNI's, whichever is more specific.
    assert!(router.misdirected("b.example.com", "a.example.com"));
    assert!(router.misdirected("a.example.com", "b.example.com"));
    assert!(router.misdirected("example.org", "a.example.com"));
    assert!(router.misdirected("b.example.com", "example.org"));
    // A Host no listener serves is not misdirected (404).
    let exact_only = HttpRouter::new(&[listener("exact", Some("a.example.com"), vec![])]);
    assert!(!exact_only.misdirected("a.example.com", "b.example.com"));
}

#[test]
fn listener_isolation() {
    let router = HttpRouter::new(&[
        listener(
            "exact",
            Some("a.example.com"),
            vec![route(
                "ns",
                "ra",
                Some(0),
                &["a.example.com"],
                vec![vec![exact("/only")]],
            )],
        ),
        listener(
            "wild",
            Some("*.example.com"),
            vec![route("ns", "rw", Some(0), &[], vec![vec![prefix("/")]])],
        ),
        listener(
            "any",
            None,
            vec![route("ns", "rn", Some(0), &[], vec![vec![prefix("/")]])],
        ),
    ]);
    let at = |host, path| hit(&router, &get(host, path)).map(|(l, r, _, _)| (l, r));
    let pair = |l: &str, r: &str| Some((l.to_owned(), r.to_owned()));
    assert_eq!(at("a.example.com", "/only"), pair("exact", "ra"));
    // Does not leak into the wildcard listener's catch-all route.
    assert_eq!(at("a.example.com", "/other"), None);
    assert_eq!(at("b.example.com:80", "/other"), pair("wild", "rw"));
    assert_eq!(at("example.com", "/"), pair("any", "rn"));
    let no_catch_all = HttpRouter::new(&[listener("exact", Some("a.example.com"), vec![])]);
    assert_eq!(hit(&no_catch_all, &get("b.example.com", "/")), None);
}

#[test]
fn route_order_breaks_ties() {
    let routes = vec![
        route("ns", "young", Some(20), &[], vec![vec![prefix("/")]]),
        route("ns", "old", Some(10), &[], vec![vec![prefix("/")]]),
        route("b", "timeless", None, &[], vec![vec![prefix("/x")]]),
        route("a", "timeless", None, &[], vec![vec![prefix("/x")]]),
        route("a", "z", Some(99), &[], vec![vec![prefix("/y")]]),
        route("a", "y", Some(99), &[], vec![vec![prefix("/y")]]),
    ];
    let router = one_listener(routes);
    assert_eq!(rr(&router, get("h", "/")), some("old", 0));
    assert_eq!(
        hit(&router, &get("h", "/x")).map(|(_, r, _, _)| r),
        Some("timeless".into())
    );
    let found = router
        .route(&HttpRequest {
            host: "h",
            path: "/x",
            query: None,
            method: "GET",
            headers: &[] as &[(&str, &str)],
        })
        .unwrap();
    assert_eq!(found.route.id.key.namespace, "a");
    assert_eq!(rr(&router, get("h", "/y")), some("y", 0));
}

#[test]
fn rule_then_match_order_breaks_ties() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![
            vec![prefix("/b"), prefix("/a"), prefix("/a")],
            vec![prefix("/a")],
        ],
    )]);
    assert_eq!(
        hit(&router, &get("h", "/a")).map(|(_, _, u, m)| (u, m)),
        Some((0, 1))
    );
}

// ---------------------------------------------------------------------------------------------
// gRPC

fn grpc_match(service: Option<&str>, method: Option<&str>) -> GrpcMatch {
    GrpcMatch {
        service: service.map(|s| StringMatch::Exact(s.into())),
        method: method.map(|m| StringMatch::Exact(m.into())),
        headers: vec![],
    }
}

fn grpc_route(
    name: &str,
    created: i64,
    hostnames: &[&str],
    rules: Vec<Vec<GrpcMatch>>,
) -> GrpcRoute {
    GrpcRoute {
        id: RouteId {
            key: ObjectKey::new(ResourceKind::GrpcRoute, "ns", name),
        },
        order: RouteOrder::new(Some(created), "ns", name),
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(index, matches)| GrpcRule {
                index,
                name: None,
                matches,
                filters: vec![],
                action: RuleAction::Respond {
                    status: 200,
                    reason: String::new(),
                },
            })
            .collect(),
    }
}

fn grpc_router(routes: Vec<GrpcRoute>) -> HttpRouter {
    let mut l = Arc::unwrap_or_clone(listener("l", None, vec![]));
    l.grpc_routes = routes;
    HttpRouter::new(&[Arc::new(l)])
}

fn grpc_hit(
    router: &HttpRouter,
    host: &str,
    service: &str,
    method: &str,
) -> Option<(String, usize)> {
    let headers: &[(&str, &str)] = &[];
    match router.route_grpc(host, service, method, headers) {
        GrpcRouting::Matched(m) => Some((m.route.id.key.name.clone(), m.rule.index)),
        GrpcRouting::Unmatched => Some(("UNMATCHED".into(), 0)),
        GrpcRouting::NoGrpcRoutes => None,
    }
}

#[test]
fn grpc_precedence() {
    let mut headered = grpc_match(None, None);
    headered.headers.push(HeaderMatch {
        name: "x".into(),
        value: StringMatch::Exact("1".into()),
    });
    let router = grpc_router(vec![
        grpc_route(
            "r",
            0,
            &["grpc.example.com"],
            vec![
                vec![grpc_match(None, Some("Get"))],
                vec![grpc_match(Some("pkg.Svc"), None)],
                vec![grpc_match(Some("pkg.Svc"), Some("Get"))],
                vec![grpc_match(None, Some("LongerMethodName"))],
            ],
        ),
        grpc_route("any", 0, &["*.example.com"], vec![vec![headered]]),
    ]);
    let h = "grpc.example.com";
    assert_eq!(grpc_hit(&router, h, "pkg.Svc", "Get"), some("r", 2));
    assert_eq!(grpc_hit(&router, h, "pkg.Svc", "Put"), some("r", 1));
    assert_eq!(grpc_hit(&router, h, "other.Svc", "Get"), some("r", 0));
    // The service characters rank before the method characters.
    assert_eq!(
        grpc_hit(&router, h, "pkg.Svc", "LongerMethodName"),
        some("r", 1)
    );
    assert_eq!(
        grpc_hit(&router, h, "other.Svc", "LongerMethodName"),
        some("r", 3)
    );
    assert_eq!(
        grpc_hit(&router, h, "other.Svc", "Put"),
        some("UNMATCHED", 0)
    );
    assert_eq!(
        grpc_hit(&router, "x.example.com", "a", "b"),
        some("UNMATCHED", 0)
    );
    let headers: &[(&str, &str)] = &[("X", "1")];
    assert!(matches!(
        router.route_grpc("x.example.com", "a", "b", headers),
        GrpcRouting::Matched(m) if m.route.id.key.name == "any"
    ));
    assert_eq!(grpc_hit(&router, "other.org", "pkg.Svc", "Get"), None);
}

#[test]
fn grpc_without_routes_falls_back() {
    let router = one_listener(vec![route(
        "ns",
        "r",
        Some(0),
        &[],
        vec![vec![prefix("/")]],
    )]);
    assert_eq!(grpc_hit(&router, "h", "pkg.Svc", "Get"), None);
}

// ---------------------------------------------------------------------------------------------
// SNI

fn tls_route(name: &str, created: i64, hostnames: &[&str]) -> TlsRoute {
    TlsRoute {
        id: RouteId {
            key: ObjectKey::new(ResourceKind::TlsRoute, "ns", name),
        },
        order: RouteOrder::new(Some(created), "ns", name),
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        backends: vec![],
    }
}

fn tls_listener(name: &str, hostname: Option<&str>, routes: Vec<TlsRoute>) -> Arc<Listener> {
    let mut l = Arc::unwrap_or_clone(listener(name, hostname, vec![]));
    l.protocol = ListenerProtocol::TlsPassthrough;
    l.tls_routes = routes;
    Arc::new(l)
}

#[test]
fn sni_exact_before_wildcard() {
    let router = SniRouter::new(&[
        tls_listener(
            "exact",
            Some("a.example.com"),
            vec![tls_route("ra", 0, &["a.example.com"])],
        ),
        tls_listener(
            "wild",
            Some("*.example.com"),
            vec![
                tls_route("old-wide", 0, &["*.example.com"]),
                tls_route("narrow", 5, &["*.b.example.com"]),
                tls_route("exact", 9, &["c.b.example.com"]),
                tls_route("old-narrow", 1, &["*.b.example.com"]),
            ],
        ),
    ]);
    let name = |sni: &str| router.listener(Some(sni)).map(|l| l.id.name.clone());
    assert_eq!(name("a.example.com"), Some("exact".into()));
    assert_eq!(name("Z.Example.com"), Some("wild".into()));
    assert_eq!(name("example.com"), None);
    assert!(router.listener(None).is_none());
    let route = |sni: &str| router.tls_route(sni).map(|(_, r)| r.id.key.name.clone());
    assert_eq!(route("a.example.com"), Some("ra".into()));
    assert_eq!(route("c.b.example.com"), Some("exact".into()));
    assert_eq!(route("d.b.example.com"), Some("old-narrow".into()));
    assert_eq!(route("d.example.com"), Some("old-wide".into()));
    assert_eq!(route("other.org"), None);

    let with_default = SniRouter::new(&[
        tls_listener("exact", Some("a.example.com"), vec![]),
        tls_listener("default", None, vec![]),
    ]);
    assert_eq!(
        with_default.listener(None).map(|l| l.id.name.as_str()),
        Some("default")
    );
    assert_eq!(with_default.tls_route("a.example.com"), None);
}

#[test]
fn routers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<HttpRouter>();
    check::<SniRouter>();
}

// ---------------------------------------------------------------------------------------------
// Differential property tests against a plain reference matcher

const LISTENER_HOSTS: &[Option<&str>] = &[
    Some("a.example.com"),
    Some("*.a.example.com"),
    Some("*.example.com"),
    None,
];
const ROUTE_HOSTS: &[&str] = &[
    "a.example.com",
    "x.a.example.com",
    "example.com",
    "b.example.com",
    "*.example.com",
    "*.a.example.com",
];
const REQUEST_HOSTS: &[&str] = &[
    "a.example.com",
    "x.a.example.com",
    "y.x.a.example.com",
    "example.com",
    "b.example.com",
    "A.Example.COM:8080",
    "c.b.example.com",
    "b.example.com.",
    "other.org",
    "[::1]:80",
];
const SEGMENTS: &[&str] = &["a", "b", "ab", ""];
const PATH_REGEXES: &[&str] = &["/a.*", "/ab?/?", "/.*b", "/(a|b)/b/?"];

fn path_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(SEGMENTS), 0..4),
        any::<bool>(),
    )
        .prop_map(|(segments, slash)| {
            let mut path = format!("/{}", segments.join("/"));
            if slash && !path.ends_with('/') {
                path.push('/');
            }
            path
        })
}

fn string_match(value: &str) -> StringMatch {
    match value {
        "re" => StringMatch::Regex(Pattern::new("[12](,[12])*").unwrap()),
        v => StringMatch::Exact(v.into()),
    }
}

fn http_match_strategy() -> impl Strategy<Value = HttpMatch> {
    (
        0..10u8,
        path_strategy(),
        prop::sample::select(PATH_REGEXES),
        prop::option::of(prop::sample::select(&["GET", "POST"][..])),
        prop::collection::vec(
            (
                prop::sample::select(&["x-a", "x-b"][..]),
                prop::sample::select(&["1", "2", "re"][..]),
            ),
            0..3,
        ),
        prop::collection::vec(
            (
                prop::sample::select(&["q", "r"][..]),
                prop::sample::select(&["1", "2"][..]),
            ),
            0..3,
        ),
    )
        .prop_map(|(kind, path, re, method, headers, query)| {
            let path = match kind {
                0 => PathMatch::Regex(Pattern::new(re).unwrap()),
                1..=4 => PathMatch::Exact(path),
                _ => {
                    let normal = normalize_path(&path).unwrap();
                    let trimmed = normal.trim_end_matches('/');
                    PathMatch::Prefix(if trimmed.is_empty() {
                        "/".into()
                    } else {
                        trimmed.into()
                    })
                }
            };
            HttpMatch {
                path,
                method: method.map(str::to_owned),
                headers: headers
                    .into_iter()
                    .map(|(n, v)| HeaderMatch {
                        name: n.into(),
                        value: string_match(v),
                    })
                    .collect(),
                query_params: query
                    .into_iter()
                    .map(|(n, v)| QueryParamMatch {
                        name: n.into(),
                        value: string_match(v),
                    })
                    .collect(),
            }
        })
}

type RouteSpec = (
    Vec<&'static str>,
    Vec<Vec<HttpMatch>>,
    Option<i64>,
    &'static str,
);

fn route_strategy(hosts: &'static [&'static str]) -> impl Strategy<Value = RouteSpec> {
    (
        prop::collection::vec(prop::sample::select(hosts), 0..3),
        prop::collection::vec(prop::collection::vec(http_match_strategy(), 1..4), 1..5),
        prop::option::of(0..3i64),
        prop::sample::select(&["ns1", "ns2"][..]),
    )
}

fn build_route((hosts, rules, created, namespace): RouteSpec, name: &str) -> HttpRoute {
    route(namespace, name, created, &hosts, rules)
}

/// Listeners (most specific first) with routes spread over them.
fn listeners_strategy() -> impl Strategy<Value = Vec<Arc<Listener>>> {
    (
        prop::sample::subsequence(LISTENER_HOSTS.to_vec(), 1..=LISTENER_HOSTS.len()),
        prop::collection::vec((route_strategy(ROUTE_HOSTS), any::<usize>()), 1..30),
    )
        .prop_map(|(hosts, routes)| {
            let mut per_listener: Vec<Vec<HttpRoute>> = vec![vec![]; hosts.len()];
            for (i, (spec, at)) in routes.into_iter().enumerate() {
                per_listener[at % hosts.len()].push(build_route(spec, &format!("r{i}")));
            }
            hosts
                .iter()
                .zip(per_listener)
                .enumerate()
                .map(|(i, (host, routes))| listener(&format!("l{i}"), *host, routes))
                .collect()
        })
}

#[derive(Debug, Clone)]
struct OwnedReq {
    host: &'static str,
    path: String,
    method: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    query: Option<String>,
}

fn request_strategy() -> impl Strategy<Value = OwnedReq> {
    (
        prop::sample::select(REQUEST_HOSTS),
        path_strategy(),
        prop::sample::select(&["GET", "POST", "PUT"][..]),
        prop::collection::vec(
            (
                prop::sample::select(&["x-a", "X-B", "x-c"][..]),
                prop::sample::select(&["1", "2"][..]),
            ),
            0..4,
        ),
        prop::option::of(prop::collection::vec(
            (
                prop::sample::select(&["q", "r", "Q"][..]),
                prop::sample::select(&["1", "2"][..]),
            ),
            0..4,
        )),
    )
        .prop_map(|(host, path, method, headers, query)| OwnedReq {
            host,
            path: normalize_path(&path).unwrap().into_owned(),
            method,
            headers,
            query: query.map(|q| {
                q.iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            }),
        })
}

impl OwnedReq {
    fn as_req(&self) -> Req<'_> {
        Req {
            host: self.host,
            path: &self.path,
            method: self.method,
            headers: self.headers.clone(),
            query: self.query.as_deref(),
        }
    }
}

mod reference {
    //! Scans every rule and takes the maximum of the full precedence key, written without
    //! the router's helpers.

    use super::*;

    fn host_of(raw: &str) -> String {
        let host = match raw.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => raw.split(':').next().unwrap_or(""),
        };
        host.strip_suffix('.').unwrap_or(host).to_lowercase()
    }

    /// `(2, len)` exact, `(1, suffix len)` wildcard, `(0, 0)` any.
    fn host_rank(pattern: Option<&str>, host: &str) -> Option<(u8, usize)> {
        let Some(pattern) = pattern else {
            return Some((0, 0));
        };
        match pattern.strip_prefix("*.") {
            Some(suffix) => {
                let tail = format!(".{suffix}");
                (host.ends_with(&tail) && host.len() > tail.len()).then_some((1, suffix.len()))
            }
            None => (pattern == host).then_some((2, pattern.len())),
        }
    }

    fn path_rank(path: &PathMatch, request: &str) -> Option<(u8, usize)> {
        match path {
            PathMatch::Exact(p) => (p == request).then_some((3, 0)),
            PathMatch::Regex(p) => p.is_match(request).then_some((2, 0)),
            PathMatch::Prefix(p) => {
                let segment_match = p == "/"
                    || request == p
                    || (request.starts_with(p.as_str()) && request[p.len()..].starts_with('/'));
                segment_match.then_some((1, p.len()))
            }
        }
    }

    pub(super) fn header_ok(headers: &[(&str, &str)], m: &HeaderMatch) -> bool {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.to_lowercase() == m.name)
            .map(|(_, v)| *v)
            .collect();
        !values.is_empty() && m.value.matches(&values.join(","))
    }

    fn query_ok(query: Option<&str>, m: &QueryParamMatch) -> bool {
        let pairs: Vec<(&str, &str)> = query
            .unwrap_or("")
            .split('&')
            .filter(|_| query.is_some())
            .map(|p| match p.find('=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, ""),
            })
            .collect();
        match pairs.iter().find(|(n, _)| *n == m.name) {
            Some((_, v)) => m.value.matches(v),
            None => false,
        }
    }

    pub(super) fn select_listener<'l>(
        listeners: &'l [Arc<Listener>],
        raw_host: &str,
    ) -> Option<&'l Arc<Listener>> {
        let host = host_of(raw_host);
        listeners
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((host_rank(l.hostname.as_deref(), &host)?, Reverse(i), l)))
            .max_by_key(|(rank, i, _)| (*rank, *i))
            .map(|(_, _, l)| l)
    }

    pub(super) fn route_host_rank(hostnames: &[String], raw_host: &str) -> Option<(u8, usize)> {
        let host = host_of(raw_host);
        if hostnames.is_empty() {
            return Some((0, 0));
        }
        hostnames
            .iter()
            .filter_map(|h| host_rank(Some(h), &host))
            .max()
    }

    pub(super) fn http(
        listeners: &[Arc<Listener>],
        req: &Req<'_>,
    ) -> Option<(String, String, usize, usize)> {
        let listener = select_listener(listeners, req.host)?;
        let mut best = None;
        for route in &listener.http_routes {
            let Some(host) = route_host_rank(&route.hostnames, req.host) else {
                continue;
            };
            for (u, rule) in route.rules.iter().enumerate() {
                for (mi, m) in rule.matches.iter().enumerate() {
                    let Some(path) = path_rank(&m.path, req.path) else {
                        continue;
                    };
                    let ok = m.method.as_ref().is_none_or(|x| x == req.method)
                        && m.headers.iter().all(|h| header_ok(&req.headers, h))
                        && m.query_params.iter().all(|q| query_ok(req.query, q));
                    if !ok {
                        continue;
                    }
                    let key = (
                        host,
                        path,
                        m.method.is_some(),
                        m.headers.len(),
                        m.query_params.len(),
                        Reverse(&route.order),
                        Reverse(u),
                        Reverse(mi),
                    );
                    let found = (
                        listener.id.name.clone(),
                        route.id.key.name.clone(),
                        rule.index,
                        mi,
                    );
                    if best.as_ref().is_none_or(|(k, _)| key > *k) {
                        best = Some((key, found));
                    }
                }
            }
        }
        best.map(|(_, found)| found)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn http_router_agrees_with_reference(
        listeners in listeners_strategy(),
        requests in prop::collection::vec(request_strategy(), 1..16),
    ) {
        let router = HttpRouter::new(&listeners);
        for request in &requests {
            let req = request.as_req();
            prop_assert_eq!(hit(&router, &req), reference::http(&listeners, &req), "{:?}", request);
        }
    }

    #[test]
    fn routes_on_other_hostnames_change_nothing(
        listeners in listeners_strategy(),
        extra in prop::collection::vec(route_strategy(&["zz.other.net", "*.other.net"]), 1..10),
        requests in prop::collection::vec(request_strategy(), 1..16),
    ) {
        let before = HttpRouter::new(&listeners);
        let widened: Vec<Arc<Listener>> = listeners
            .iter()
            .map(|l| {
                let mut l = Listener::clone(l);
                for (i, spec) in extra.iter().enumerate() {
                    let mut spec = spec.clone();
                    if spec.0.is_empty() {
                        spec.0.push("*.other.net");
                    }
                    l.http_routes.insert(0, build_route(spec, &format!("extra{i}")));
                }
                Arc::new(l)
            })
            .collect();
        let after = HttpRouter::new(&widened);
        for request in &requests {
            let req = request.as_req();
            prop_assert_eq!(hit(&before, &req), hit(&after, &req), "{:?}", request);
        }
    }
}

fn grpc_condition(value: &str, regex: &str) -> StringMatch {
    if value == "re" {
        StringMatch::Regex(Pattern::new(regex).unwrap())
    } else {
        StringMatch::Exact(value.into())
    }
}

fn grpc_match_strategy() -> impl Strategy<Value = GrpcMatch> {
    (
        prop::option::of(prop::sample::select(&["pkg.A", "pkg.Bb", "re"][..])),
        prop::option::of(prop::sample::select(&["Get", "List", "re"][..])),
        prop::collection::vec(
            (
                prop::sample::select(&["x-a", "x-b"][..]),
                prop::sample::select(&["1", "2"][..]),
            ),
            0..3,
        ),
    )
        .prop_map(|(service, method, headers)| GrpcMatch {
            service: service.map(|s| grpc_condition(s, r"pkg\..*")),
            method: method.map(|m| grpc_condition(m, "Get|Put")),
            headers: headers
                .into_iter()
                .map(|(n, v)| HeaderMatch {
                    name: n.into(),
                    value: StringMatch::Exact(v.into()),
                })
                .collect(),
        })
}

fn grpc_listeners_strategy() -> impl Strategy<Value = Vec<Arc<Listener>>> {
    let route = (
        prop::collection::vec(prop::sample::select(ROUTE_HOSTS), 0..3),
        prop::collection::vec(prop::collection::vec(grpc_match_strategy(), 1..4), 1..4),
        prop::option::of(0..3i64),
        prop::sample::select(&["ns1", "ns2"][..]),
        any::<usize>(),
    );
    (
        prop::sample::subsequence(LISTENER_HOSTS.to_vec(), 1..=LISTENER_HOSTS.len()),
        prop::collection::vec(route, 0..20),
    )
        .prop_map(|(hosts, routes)| {
            let mut listeners: Vec<Listener> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| Listener::clone(&listener(&format!("l{i}"), *h, vec![])))
                .collect();
            for (i, (hostnames, rules, created, namespace, at)) in routes.into_iter().enumerate() {
                let name = format!("g{i}");
                let mut route = grpc_route(&name, 0, &hostnames, rules);
                route.order = RouteOrder::new(created, namespace, &name);
                route.id.key.namespace = namespace.into();
                let n = listeners.len();
                listeners[at % n].grpc_routes.push(route);
            }
            listeners.into_iter().map(Arc::new).collect()
        })
}

#[derive(Debug, PartialEq, Eq)]
enum GrpcOutcome {
    Matched(String, String, usize),
    Unmatched,
    NoGrpcRoutes,
}

fn grpc_outcome(
    router: &HttpRouter,
    host: &str,
    service: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> GrpcOutcome {
    match router.route_grpc(host, service, method, headers) {
        GrpcRouting::Matched(m) => GrpcOutcome::Matched(
            m.listener.id.name.clone(),
            m.route.id.key.name.clone(),
            m.rule.index,
        ),
        GrpcRouting::Unmatched => GrpcOutcome::Unmatched,
        GrpcRouting::NoGrpcRoutes => GrpcOutcome::NoGrpcRoutes,
    }
}

fn grpc_reference(
    listeners: &[Arc<Listener>],
    host: &str,
    service: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> GrpcOutcome {
    let Some(listener) = reference::select_listener(listeners, host) else {
        return GrpcOutcome::NoGrpcRoutes;
    };
    let exact_len = |c: &Option<StringMatch>| match c {
        Some(StringMatch::Exact(v)) => v.len(),
        _ => 0,
    };
    let mut served = false;
    let mut best = None;
    for route in &listener.grpc_routes {
        let Some(host_rank) = reference::route_host_rank(&route.hostnames, host) else {
            continue;
        };
        served = true;
        for (u, rule) in route.rules.iter().enumerate() {
            for (mi, m) in rule.matches.iter().enumerate() {
                let ok = m.service.as_ref().is_none_or(|s| s.matches(service))
                    && m.method.as_ref().is_none_or(|s| s.matches(method))
                    && m.headers.iter().all(|h| reference::header_ok(headers, h));
                if !ok {
                    continue;
                }
                let key = (
                    host_rank,
                    exact_len(&m.service),
                    exact_len(&m.method),
                    m.headers.len(),
                    Reverse(&route.order),
                    Reverse(u),
                    Reverse(mi),
                );
                if best.as_ref().is_none_or(|(k, _)| key > *k) {
                    best = Some((
                        key,
                        (
                            listener.id.name.clone(),
                            route.id.key.name.clone(),
                            rule.index,
                        ),
                    ));
                }
            }
        }
    }
    match best {
        Some((_, (l, r, u))) => GrpcOutcome::Matched(l, r, u),
        None if served => GrpcOutcome::Unmatched,
        None => GrpcOutcome::NoGrpcRoutes,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn grpc_router_agrees_with_reference(
        listeners in grpc_listeners_strategy(),
        calls in prop::collection::vec(
            (
                prop::sample::select(REQUEST_HOSTS),
                prop::sample::select(&["pkg.A", "pkg.Bb", "other.C"][..]),
                prop::sample::select(&["Get", "List", "Put"][..]),
                prop::collection::vec(
                    (
                        prop::sample::select(&["x-a", "X-B"][..]),
                        prop::sample::select(&["1", "2"][..]),
                    ),
                    0..3,
                ),
            ),
            1..16,
        ),
    ) {
        let router = HttpRouter::new(&listeners);
        for (host, service, method, headers) in &calls {
            prop_assert_eq!(
                grpc_outcome(&router, host, service, method, headers),
                grpc_reference(&listeners, host, service, method, headers),
                "{} /{}/{} {:?}", host, service, method, headers
            );
        }
    }
}
