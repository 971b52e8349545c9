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
    for path in ["/", "/a", "/a/b/", "/a%2Fb", "/%C3%A9", "/a.b/..c/.d", "/~x"] {
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
    assert_eq!(table.lookup("app.example.com").next().map(|(_, v)| *v), Some(2));
}
