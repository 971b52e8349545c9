use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::model::Resource;

// ---- helpers -------------------------------------------------------------------------------

fn validate(resource: &Resource) -> Vec<FieldError> {
    match resource {
        Resource::GatewayClass(r) => gateway_class(r),
        Resource::Gateway(r) => gateway(r),
        Resource::ListenerSet(r) => listener_set(r),
        Resource::HttpRoute(r) => http_route(r),
        Resource::GrpcRoute(r) => grpc_route(r),
        Resource::TlsRoute(r) => tls_route(r),
        Resource::TcpRoute(r) | Resource::UdpRoute(r) => tcp_route(r),
        Resource::ReferenceGrant(r) => reference_grant(r),
        Resource::BackendTlsPolicy(r) => backend_tls_policy(r),
        _ => Vec::new(),
    }
}

fn parse(value: Value) -> Resource {
    Resource::from_json(value)
        .expect("valid shape")
        .expect("a kind the model reads")
}

fn errors(value: Value) -> Vec<FieldError> {
    validate(&parse(value))
}

fn fields(value: Value) -> Vec<String> {
    errors(value).into_iter().map(|e| e.field).collect()
}

/// Asserts exactly one error, at `field`, and returns its message.
fn single(value: Value, field: &str) -> String {
    let errs = errors(value);
    assert_eq!(
        errs.len(),
        1,
        "expected one error at {field}, got {errs:#?}"
    );
    assert_eq!(errs[0].field, field, "{errs:#?}");
    errs[0].message.clone()
}

fn assert_valid(value: Value) {
    let errs = errors(value);
    assert!(errs.is_empty(), "expected no errors, got {errs:#?}");
}

/// Applies a JSON merge of `patch` into `base` at the JSON pointer `at`.
fn with(mut base: Value, at: &str, patch: Value) -> Value {
    let (parent, key) = at.rsplit_once('/').expect("pointer has a parent");
    match base.pointer_mut(parent).expect("parent exists") {
        Value::Object(map) => {
            map.insert(key.to_owned(), patch);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = patch,
        other => panic!("cannot set {key} in {other}"),
    }
    base
}

fn gw() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {"gatewayClassName": "gc", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.example.com",
             "tls": {"certificateRefs": [{"name": "cert"}]}}
        ]}
    })
}

fn route(rule: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [rule]}
    })
}

fn grpc(rule: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [rule]}
    })
}

fn svc() -> Value {
    json!({"name": "svc", "port": 8080})
}

// ---- primitives ----------------------------------------------------------------------------

#[test]
fn durations() {
    use std::time::Duration;
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration("1h1m1s1ms"),
        Ok(Duration::from_millis(3_661_001))
    );
    assert_eq!(
        parse_duration("99999h"),
        Ok(Duration::from_secs(99_999 * 3600))
    );
    for bad in [
        "",
        "1",
        "s",
        "1.5s",
        "-1s",
        "100000s",
        "1h1m1s1ms1h",
        "1d",
        "1 s",
        "1S",
        "1us",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn hostnames_and_header_names() {
    assert!(is_valid_hostname("example.com", false));
    assert!(is_valid_hostname("a-b.c", false));
    assert!(is_valid_hostname("*.example.com", true));
    assert!(!is_valid_hostname("*.example.com", false));
    assert!(!is_valid_hostname("*", true));
    assert!(!is_valid_hostname("foo.*.com", true));
    assert!(!is_valid_hostname("Example.com", false));
    assert!(!is_valid_hostname("-a.com", false));
    assert!(!is_valid_hostname("a..com", false));
    assert!(!is_valid_hostname("1.2.3.4", false));
    assert!(!is_valid_hostname(&"a".repeat(254), false));
    assert!(is_valid_hostname(&"a".repeat(253), false));
    assert!(is_valid_header_name("X-Custom_Header!"));
    assert!(!is_valid_header_name("bad header"));
    assert!(!is_valid_header_name(""));
    assert!(!is_valid_header_name("a:b"));
}

#[test]
fn field_error_display() {
    let e = FieldError {
        field: "metadata.name".into(),
        message: "is required".into(),
    };
    assert_eq!(e.to_string(), "metadata.name: is required");
}

// ---- metadata ------------------------------------------------------------------------------

#[test]
fn metadata_rules() {
    assert_valid(gw());
    single(with(gw(), "/metadata/name", json!("")), "metadata.name");
    single(
        with(gw(), "/metadata/name", json!("Bad_Name")),
        "metadata.name",
    );
    single(
        with(gw(), "/metadata/namespace", json!("a.b")),
        "metadata.namespace",
    );
}

// ---- GatewayClass --------------------------------------------------------------------------

#[test]
fn gateway_class_rules() {
    let gc = |name: &str| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "gc", "namespace": "ignored.for.cluster.scope"},
               "spec": {"controllerName": name}})
    };
    assert_valid(gc("example.com/gateway-controller"));
    assert!(single(gc(""), "spec.controllerName").contains("required"));
    single(gc("no-slash"), "spec.controllerName");
    single(gc("Example.com/x"), "spec.controllerName");
}

// ---- Gateway and listeners -----------------------------------------------------------------

#[test]
fn gateway_listener_counts_and_names() {
    single(with(gw(), "/spec/listeners", json!([])), "spec.listeners");
    let many: Vec<Value> = (0..65)
        .map(|i| json!({"name": format!("l{i}"), "port": 1000 + i, "protocol": "HTTP"}))
        .collect();
    assert_eq!(
        single(
            with(gw(), "/spec/listeners", Value::Array(many)),
            "spec.listeners"
        ),
        "at most 64 entries (found 65)"
    );
    single(
        with(gw(), "/spec/listeners/0/name", json!("Bad")),
        "spec.listeners[0].name",
    );
    let dup = with(gw(), "/spec/listeners/1/name", json!("http"));
    single(dup, "spec.listeners[1].name");
    single(
        with(gw(), "/spec/listeners/0/port", json!(0)),
        "spec.listeners[0].port",
    );
    single(
        with(gw(), "/spec/gatewayClassName", json!("")),
        "spec.gatewayClassName",
    );
}

#[test]
fn gateway_listener_protocols() {
    // Pattern-valid but unknown protocols are schema-valid; compile reports them.
    assert_valid(with(
        gw(),
        "/spec/listeners/0/protocol",
        json!("example.com/foo"),
    ));
    assert_valid(with(gw(), "/spec/listeners/0/protocol", json!("SCTP")));
    single(
        with(gw(), "/spec/listeners/0/protocol", json!("bad proto!")),
        "spec.listeners[0].protocol",
    );
    single(
        with(gw(), "/spec/listeners/0/protocol", json!("")),
        "spec.listeners[0].protocol",
    );
}

#[test]
fn gateway_listener_tls_cel() {
    let tls = json!({"certificateRefs": [{"name": "c"}]});
    // tls on HTTP
    single(
        with(gw(), "/spec/listeners/0/tls", tls.clone()),
        "spec.listeners[0].tls",
    );
    // tls missing on HTTPS and TLS
    let mut g = gw();
    g["spec"]["listeners"][1]
        .as_object_mut()
        .expect("object")
        .remove("tls");
    single(g.clone(), "spec.listeners[1].tls");
    single(
        with(g, "/spec/listeners/1/protocol", json!("TLS")),
        "spec.listeners[1].tls",
    );
    // HTTPS must terminate
    let pass = json!({"mode": "Passthrough"});
    assert_eq!(
        single(
            with(gw(), "/spec/listeners/1/tls", pass.clone()),
            "spec.listeners[1].tls.mode"
        ),
        "must be Terminate for protocol HTTPS"
    );
    // TLS passthrough needs no certificates
    let g = with(gw(), "/spec/listeners/1/protocol", json!("TLS"));
    assert_valid(with(g, "/spec/listeners/1/tls", pass));
    // Terminate needs certificateRefs or options
    single(
        with(gw(), "/spec/listeners/1/tls", json!({})),
        "spec.listeners[1].tls.certificateRefs",
    );
    assert_valid(with(
        gw(),
        "/spec/listeners/1/tls",
        json!({"options": {"example.com/x": "y"}}),
    ));
    single(
        with(gw(), "/spec/listeners/1/tls/mode", json!("Bogus")),
        "spec.listeners[1].tls.mode",
    );
    let refs: Vec<Value> = (0..65).map(|i| json!({"name": format!("c{i}")})).collect();
    single(
        with(
            gw(),
            "/spec/listeners/1/tls/certificateRefs",
            Value::Array(refs),
        ),
        "spec.listeners[1].tls.certificateRefs",
    );
}

#[test]
fn gateway_listener_hostnames() {
    single(
        with(gw(), "/spec/listeners/1/hostname", json!("foo.*.com")),
        "spec.listeners[1].hostname",
    );
    let tcp = json!({"name": "tcp", "port": 9000, "protocol": "TCP", "hostname": "a.com"});
    single(
        with(gw(), "/spec/listeners/0", tcp),
        "spec.listeners[0].hostname",
    );
}

#[test]
fn gateway_listener_combination_is_left_to_compile() {
    // Duplicated (port, protocol, hostname) is a listener conflict, reported by compile.
    let g = with(
        gw(),
        "/spec/listeners/1",
        json!({"name": "other", "port": 80, "protocol": "HTTP"}),
    );
    assert_valid(g.clone());
    assert_valid(with(
        g,
        "/spec/listeners/1/hostname",
        json!("a.example.com"),
    ));
}

#[test]
fn gateway_allowed_routes() {
    let kinds: Vec<Value> = (0..9).map(|_| json!({"kind": "HTTPRoute"})).collect();
    single(
        with(
            gw(),
            "/spec/listeners/0/allowedRoutes",
            json!({"kinds": kinds}),
        ),
        "spec.listeners[0].allowedRoutes.kinds",
    );
    single(
        with(
            gw(),
            "/spec/listeners/0/allowedRoutes",
            json!({"namespaces": {"from": "None"}}),
        ),
        "spec.listeners[0].allowedRoutes.namespaces.from",
    );
    assert_valid(with(
        gw(),
        "/spec/listeners/0/allowedRoutes",
        json!({"namespaces": {"from": "All"}}),
    ));
}

#[test]
fn gateway_addresses() {
    let addrs = |a: Value| with(gw(), "/spec/addresses", a);
    assert_valid(addrs(
        json!([{"value": "10.0.0.1"}, {"type": "Hostname", "value": "lb.example.com"},
                              {"type": "IPAddress"}, {"type": "example.com/custom", "value": "anything"}]),
    ));
    single(
        addrs(json!([{"value": "not-an-ip"}])),
        "spec.addresses[0].value",
    );
    single(
        addrs(json!([{"type": "Hostname", "value": "Bad_Host"}])),
        "spec.addresses[0].value",
    );
    single(
        addrs(json!([{"type": "bad type"}])),
        "spec.addresses[0].type",
    );
    single(
        addrs(json!([{"value": "10.0.0.1"}, {"value": "10.0.0.1"}])),
        "spec.addresses[1].value",
    );
    let many: Vec<Value> = (0..17)
        .map(|i| json!({"value": format!("10.0.0.{i}")}))
        .collect();
    single(addrs(Value::Array(many)), "spec.addresses");
}

#[test]
fn gateway_infrastructure_and_tls() {
    let labels: serde_json::Map<String, Value> =
        (0..9).map(|i| (format!("l{i}"), json!("v"))).collect();
    single(
        with(gw(), "/spec/infrastructure", json!({"labels": labels})),
        "spec.infrastructure.labels",
    );
    single(
        with(
            gw(),
            "/spec/infrastructure",
            json!({"labels": {"bad key!": "v"}}),
        ),
        "spec.infrastructure.labels[\"bad key!\"]",
    );
    let frontend = |per_port: Value| {
        json!({"frontend": {"default": {"validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]}},
                            "perPort": per_port}})
    };
    let ca = json!({"validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
                                   "mode": "AllowInsecureFallback"}});
    assert_valid(with(
        gw(),
        "/spec/tls",
        frontend(json!([{"port": 443, "tls": ca.clone()}])),
    ));
    single(
        with(
            gw(),
            "/spec/tls",
            frontend(json!([{"port": 443, "tls": ca.clone()}, {"port": 443, "tls": ca}])),
        ),
        "spec.tls.frontend.perPort[1].port",
    );
    single(
        with(
            gw(),
            "/spec/tls",
            json!({"frontend": {"default": {"validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}], "mode": "Sometimes"}}}}),
        ),
        "spec.tls.frontend.default.validation.mode",
    );
}

#[test]
fn listener_set_rules() {
    let ls = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
        "metadata": {"name": "ls", "namespace": "ns"},
        "spec": {"parentRef": {"name": "gw"}, "listeners": [{"name": "a", "port": 80, "protocol": "HTTP"}]}
    });
    assert_valid(ls.clone());
    single(
        with(ls.clone(), "/spec/parentRef/name", json!("")),
        "spec.parentRef.name",
    );
    single(with(ls, "/spec/listeners", json!([])), "spec.listeners");
}

// ---- HTTPRoute -----------------------------------------------------------------------------

#[test]
fn http_route_top_level() {
    let base = route(json!({"backendRefs": [svc()]}));
    assert_valid(base.clone());
    // An absent rules list is defaulted by the CRD.
    assert_valid(with(base.clone(), "/spec/rules", json!([])));
    let hosts: Vec<Value> = (0..17)
        .map(|i| json!(format!("h{i}.example.com")))
        .collect();
    single(
        with(base.clone(), "/spec/hostnames", Value::Array(hosts)),
        "spec.hostnames",
    );
    single(
        with(base.clone(), "/spec/hostnames", json!(["1.2.3.4"])),
        "spec.hostnames[0]",
    );
    assert_valid(with(
        base.clone(),
        "/spec/hostnames",
        json!(["*.example.com"]),
    ));
    let rules: Vec<Value> = (0..17).map(|_| json!({})).collect();
    single(
        with(base.clone(), "/spec/rules", Value::Array(rules)),
        "spec.rules",
    );
    let matches: Vec<Value> = (0..64).map(|_| json!({"path": {"value": "/"}})).collect();
    let rule = json!({"matches": matches});
    single(
        with(
            base,
            "/spec/rules",
            json!([rule.clone(), rule.clone(), rule]),
        ),
        "spec.rules",
    );
}

#[test]
fn http_route_parent_refs() {
    let base = route(json!({}));
    let refs = |r: Value| with(base.clone(), "/spec/parentRefs", r);
    assert_valid(refs(
        json!([{"name": "gw", "sectionName": "a"}, {"name": "gw", "sectionName": "b"}]),
    ));
    assert_valid(refs(
        json!([{"name": "gw"}, {"name": "gw", "namespace": "other"}]),
    ));
    single(
        refs(json!([{"name": "gw"}, {"name": "gw", "sectionName": "b"}])),
        "spec.parentRefs[1]",
    );
    single(
        refs(json!([{"name": "gw", "sectionName": "a"}, {"name": "gw", "sectionName": "a"}])),
        "spec.parentRefs[1]",
    );
    single(
        refs(json!([{"name": "gw", "port": 0}])),
        "spec.parentRefs[0].port",
    );
    let many: Vec<Value> = (0..33).map(|i| json!({"name": format!("gw{i}")})).collect();
    single(refs(Value::Array(many)), "spec.parentRefs");
}

#[test]
fn http_route_paths() {
    let path = |type_: &str, value: &str| {
        route(json!({"matches": [{"path": {"type": type_, "value": value}}]}))
    };
    assert_valid(path("PathPrefix", "/foo/bar"));
    assert_valid(path("Exact", "/foo%20bar"));
    assert_eq!(
        single(path("Exact", "foo"), "spec.rules[0].matches[0].path.value"),
        "must start with \"/\""
    );
    for bad in [
        "/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a/..", "/a/.",
    ] {
        single(
            path("PathPrefix", bad),
            "spec.rules[0].matches[0].path.value",
        );
    }
    // '#' breaks both the CEL rule and the character rule.
    assert_eq!(fields(path("PathPrefix", "/a#b")).len(), 2);
    single(path("Prefix", "/"), "spec.rules[0].matches[0].path.type");
    assert_valid(path("RegularExpression", "/v[0-9]+/.*"));
    let msg = single(
        path("RegularExpression", "/v[0-9"),
        "spec.rules[0].matches[0].path.value",
    );
    assert!(msg.starts_with("invalid regular expression"), "{msg}");
}

#[test]
fn http_route_headers_query_method() {
    let m = |matches: Value| route(json!({"matches": [matches]}));
    assert_valid(m(
        json!({"headers": [{"name": "X-A", "value": "1"}], "queryParams": [{"name": "q", "value": "v"}, {"name": "Q", "value": "v"}], "method": "GET"}),
    ));
    single(
        m(json!({"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]})),
        "spec.rules[0].matches[0].headers[1].name",
    );
    single(
        m(json!({"headers": [{"name": "bad name", "value": "1"}]})),
        "spec.rules[0].matches[0].headers[0].name",
    );
    single(
        m(json!({"headers": [{"name": "a", "value": "(", "type": "RegularExpression"}]})),
        "spec.rules[0].matches[0].headers[0].value",
    );
    single(
        m(json!({"headers": [{"name": "a", "value": "x", "type": "Prefix"}]})),
        "spec.rules[0].matches[0].headers[0].type",
    );
    let headers: Vec<Value> = (0..17)
        .map(|i| json!({"name": format!("h{i}"), "value": "v"}))
        .collect();
    single(
        m(json!({"headers": headers})),
        "spec.rules[0].matches[0].headers",
    );
    single(
        m(json!({"queryParams": [{"name": "q", "value": "v"}, {"name": "q", "value": "w"}]})),
        "spec.rules[0].matches[0].queryParams[1].name",
    );
    single(
        m(json!({"queryParams": [{"name": "q", "value": "[", "type": "RegularExpression"}]})),
        "spec.rules[0].matches[0].queryParams[0].value",
    );
    single(
        m(json!({"method": "FETCH"})),
        "spec.rules[0].matches[0].method",
    );
}

#[test]
fn http_route_filter_types_and_fields() {
    let f = |filter: Value| route(json!({"filters": [filter], "backendRefs": [svc()]}));
    assert_valid(f(
        json!({"type": "ExtensionRef", "extensionRef": {"group": "example.com", "kind": "Foo", "name": "x"}}),
    ));
    assert_valid(f(
        json!({"type": "ExternalAuth", "externalAuth": {"protocol": "HTTP"}}),
    ));
    assert_valid(f(
        json!({"type": "CORS", "cors": {"allowOrigins": ["https://*.example.com:8443"]}}),
    ));
    single(f(json!({"type": "Bogus"})), "spec.rules[0].filters[0].type");
    single(
        f(json!({"type": "RequestHeaderModifier"})),
        "spec.rules[0].filters[0].requestHeaderModifier",
    );
    let errs = fields(f(
        json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]},
                              "responseHeaderModifier": {}}),
    ));
    assert_eq!(errs, ["spec.rules[0].filters[0].responseHeaderModifier"]);
}

#[test]
fn http_route_filter_combinations() {
    let hm = json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}});
    let redirect = json!({"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}});
    let rewrite = json!({"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}});
    let mirror = json!({"type": "RequestMirror", "requestMirror": {"backendRef": svc()}});
    assert_valid(route(
        json!({"filters": [mirror.clone(), mirror], "backendRefs": [svc()]}),
    ));
    single(
        route(json!({"filters": [hm.clone(), hm]})),
        "spec.rules[0].filters[1].type",
    );
    assert_eq!(
        single(
            route(json!({"filters": [redirect.clone(), rewrite]})),
            "spec.rules[0].filters"
        ),
        "RequestRedirect and URLRewrite cannot be used together"
    );
    assert_eq!(
        single(
            route(json!({"filters": [redirect.clone()], "backendRefs": [svc()]})),
            "spec.rules[0].filters[0]"
        ),
        "RequestRedirect filter must not be used together with backendRefs"
    );
    assert_valid(route(json!({"filters": [redirect]})));
}

#[test]
fn http_route_replace_prefix_match() {
    let rewrite = json!({"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}});
    let one = json!([{"path": {"type": "PathPrefix", "value": "/old"}}]);
    assert_valid(route(
        json!({"matches": one, "filters": [rewrite.clone()], "backendRefs": [svc()]}),
    ));
    // No matches: the CRD default is one PathPrefix "/" match.
    assert_valid(route(
        json!({"filters": [rewrite.clone()], "backendRefs": [svc()]}),
    ));
    let two = json!([{"path": {"value": "/a"}}, {"path": {"value": "/b"}}]);
    let msg = single(
        route(json!({"matches": two, "filters": [rewrite.clone()], "backendRefs": [svc()]})),
        "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch",
    );
    assert!(msg.contains("exactly one PathPrefix match"), "{msg}");
    let exact = json!([{"path": {"type": "Exact", "value": "/a"}}]);
    let mut backend = svc();
    backend["filters"] = json!([rewrite]);
    single(
        route(json!({"matches": exact, "backendRefs": [backend]})),
        "spec.rules[0].backendRefs[0].filters[0].urlRewrite.path.replacePrefixMatch",
    );
}

#[test]
fn http_route_path_modifier_and_redirect() {
    let redirect =
        |r: Value| route(json!({"filters": [{"type": "RequestRedirect", "requestRedirect": r}]}));
    assert_valid(redirect(
        json!({"scheme": "https", "hostname": "a.example.com", "port": 443, "statusCode": 308,
                                 "path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}}),
    ));
    single(
        redirect(json!({"scheme": "ftp"})),
        "spec.rules[0].filters[0].requestRedirect.scheme",
    );
    single(
        redirect(json!({"port": 70000})),
        "spec.rules[0].filters[0].requestRedirect.port",
    );
    single(
        redirect(json!({"statusCode": 304})),
        "spec.rules[0].filters[0].requestRedirect.statusCode",
    );
    single(
        redirect(json!({"hostname": "*.example.com"})),
        "spec.rules[0].filters[0].requestRedirect.hostname",
    );
    single(
        redirect(json!({"path": {"type": "ReplaceFullPath"}})),
        "spec.rules[0].filters[0].requestRedirect.path.replaceFullPath",
    );
    assert_eq!(
        fields(redirect(
            json!({"path": {"type": "ReplaceFullPath", "replaceFullPath": "/a", "replacePrefixMatch": "/b"}})
        )),
        ["spec.rules[0].filters[0].requestRedirect.path.replacePrefixMatch"]
    );
    single(
        redirect(json!({"path": {"replaceFullPath": "/a"}})),
        "spec.rules[0].filters[0].requestRedirect.path.type",
    );
}

#[test]
fn http_route_header_modifier() {
    let hm = |m: Value| {
        route(
            json!({"filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": m}], "backendRefs": [svc()]}),
        )
    };
    assert_valid(hm(
        json!({"set": [{"name": "a", "value": "1"}], "add": [{"name": "b", "value": "2 3"}], "remove": ["c"]}),
    ));
    single(
        hm(json!({"set": [{"name": "a", "value": "1"}], "remove": ["A"]})),
        "spec.rules[0].filters[0].responseHeaderModifier.remove[0]",
    );
    single(
        hm(json!({"add": [{"name": "a b", "value": "1"}]})),
        "spec.rules[0].filters[0].responseHeaderModifier.add[0].name",
    );
    single(
        hm(json!({"add": [{"name": "a", "value": ""}]})),
        "spec.rules[0].filters[0].responseHeaderModifier.add[0].value",
    );
    let many: Vec<Value> = (0..17).map(|i| json!(format!("h{i}"))).collect();
    single(
        hm(json!({"remove": many})),
        "spec.rules[0].filters[0].responseHeaderModifier.remove",
    );
}

#[test]
fn http_route_mirror() {
    let mirror = |m: Value| {
        route(
            json!({"filters": [{"type": "RequestMirror", "requestMirror": m}], "backendRefs": [svc()]}),
        )
    };
    assert_valid(mirror(json!({"backendRef": svc(), "percent": 50})));
    assert_valid(mirror(
        json!({"backendRef": svc(), "fraction": {"numerator": 1, "denominator": 3}}),
    ));
    single(
        mirror(json!({"backendRef": svc(), "percent": 101})),
        "spec.rules[0].filters[0].requestMirror.percent",
    );
    single(
        mirror(json!({"backendRef": svc(), "percent": 1, "fraction": {"numerator": 1}})),
        "spec.rules[0].filters[0].requestMirror",
    );
    single(
        mirror(json!({"backendRef": svc(), "fraction": {"numerator": 5, "denominator": 3}})),
        "spec.rules[0].filters[0].requestMirror.fraction.numerator",
    );
    single(
        mirror(json!({"backendRef": svc(), "fraction": {"numerator": 0, "denominator": 0}})),
        "spec.rules[0].filters[0].requestMirror.fraction.denominator",
    );
    single(
        mirror(json!({"backendRef": {"name": "svc"}})),
        "spec.rules[0].filters[0].requestMirror.backendRef.port",
    );
}

#[test]
fn http_route_backend_refs() {
    let refs = |r: Value| route(json!({"backendRefs": r}));
    assert_valid(refs(
        json!([{"name": "b", "group": "example.com", "kind": "Bucket"}]),
    ));
    assert_eq!(
        single(
            refs(json!([{"name": "svc"}])),
            "spec.rules[0].backendRefs[0].port"
        ),
        "is required for a Service reference"
    );
    single(
        refs(json!([{"name": "svc", "port": 80, "weight": 1_000_001}])),
        "spec.rules[0].backendRefs[0].weight",
    );
    single(
        refs(json!([{"name": "svc", "port": 80, "weight": -1}])),
        "spec.rules[0].backendRefs[0].weight",
    );
    single(
        refs(json!([{"name": "", "port": 80}])),
        "spec.rules[0].backendRefs[0].name",
    );
    let many: Vec<Value> = (0..17).map(|_| svc()).collect();
    single(refs(Value::Array(many)), "spec.rules[0].backendRefs");
}

#[test]
fn http_route_timeouts_and_retry() {
    let t = |t: Value| route(json!({"timeouts": t, "backendRefs": [svc()]}));
    assert_valid(t(json!({"request": "10s", "backendRequest": "5s"})));
    assert_valid(t(json!({"request": "0s", "backendRequest": "5s"})));
    single(
        t(json!({"request": "1s", "backendRequest": "2s"})),
        "spec.rules[0].timeouts.backendRequest",
    );
    single(
        t(json!({"request": "10"})),
        "spec.rules[0].timeouts.request",
    );
    let r = |r: Value| route(json!({"retry": r, "backendRefs": [svc()]}));
    assert_valid(r(
        json!({"attempts": 2, "codes": [500, 503], "backoff": "100ms"}),
    ));
    single(r(json!({"attempts": 0})), "spec.rules[0].retry.attempts");
    single(r(json!({"codes": [600]})), "spec.rules[0].retry.codes[0]");
    single(r(json!({"backoff": "1x"})), "spec.rules[0].retry.backoff");
}

#[test]
fn http_route_cors() {
    let c =
        |c: Value| route(json!({"filters": [{"type": "CORS", "cors": c}], "backendRefs": [svc()]}));
    assert_valid(c(
        json!({"allowOrigins": ["*"], "allowMethods": ["GET", "POST"], "allowHeaders": ["x-a"], "maxAge": 10}),
    ));
    assert_valid(c(
        json!({"allowOrigins": ["http://a.example.com", "https://*.example.com"]}),
    ));
    single(
        c(json!({"allowOrigins": ["ftp://a.com"]})),
        "spec.rules[0].filters[0].cors.allowOrigins[0]",
    );
    single(
        c(json!({"allowOrigins": ["*", "https://a.com"]})),
        "spec.rules[0].filters[0].cors.allowOrigins",
    );
    single(
        c(json!({"allowMethods": ["FETCH"]})),
        "spec.rules[0].filters[0].cors.allowMethods[0]",
    );
    single(
        c(json!({"maxAge": 0})),
        "spec.rules[0].filters[0].cors.maxAge",
    );
    let cors = json!({"type": "CORS", "cors": {}});
    single(
        route(json!({"filters": [cors.clone(), cors]})),
        "spec.rules[0].filters[1].type",
    );
}

#[test]
fn http_route_rule_names() {
    let named = |a: &str, b: &str| {
        with(
            route(json!({"name": a})),
            "/spec/rules",
            json!([{"name": a}, {"name": b}]),
        )
    };
    assert_valid(named("a", "b"));
    single(named("a", "a"), "spec.rules[1].name");
    single(named("a", "B"), "spec.rules[1].name");
}

// ---- GRPCRoute -----------------------------------------------------------------------------

#[test]
fn grpc_route_rules() {
    let m = |method: Value| grpc(json!({"matches": [{"method": method}], "backendRefs": [svc()]}));
    assert_valid(m(
        json!({"service": "helloworld.Greeter", "method": "SayHello"}),
    ));
    assert_valid(m(json!({"service": ".pkg.Svc"})));
    assert_valid(m(
        json!({"type": "RegularExpression", "service": "hello.*", "method": "Say.*"}),
    ));
    single(m(json!({})), "spec.rules[0].matches[0].method");
    single(
        m(json!({"service": "bad-service"})),
        "spec.rules[0].matches[0].method.service",
    );
    single(
        m(json!({"method": "1Say"})),
        "spec.rules[0].matches[0].method.method",
    );
    single(
        m(json!({"type": "RegularExpression", "method": "("})),
        "spec.rules[0].matches[0].method.method",
    );
    single(
        m(json!({"type": "Prefix", "method": "a"})),
        "spec.rules[0].matches[0].method.type",
    );
    let f = |filter: Value| grpc(json!({"filters": [filter], "backendRefs": [svc()]}));
    assert_valid(f(
        json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "a", "value": "b"}]}}),
    ));
    assert_eq!(
        fields(f(json!({"type": "URLRewrite", "urlRewrite": {}}))),
        [
            "spec.rules[0].filters[0].type",
            "spec.rules[0].filters[0].urlRewrite"
        ]
    );
    single(f(json!({"type": "CORS"})), "spec.rules[0].filters[0].type");
    single(
        grpc(json!({"backendRefs": [{"name": "svc"}]})),
        "spec.rules[0].backendRefs[0].port",
    );
}

// ---- TLS, TCP, UDP -------------------------------------------------------------------------

#[test]
fn l4_routes() {
    let tls = |version: &str, hostnames: Value, rules: Value| {
        json!({"apiVersion": format!("gateway.networking.k8s.io/{version}"), "kind": "TLSRoute",
               "metadata": {"name": "t", "namespace": "ns"},
               "spec": {"parentRefs": [{"name": "gw"}], "hostnames": hostnames, "rules": rules}})
    };
    let rule = json!({"backendRefs": [svc()]});
    assert_valid(tls("v1", json!(["a.example.com"]), json!([rule.clone()])));
    single(
        tls("v1", json!([]), json!([rule.clone()])),
        "spec.hostnames",
    );
    single(
        tls("v1alpha3", json!([]), json!([rule.clone()])),
        "spec.hostnames",
    );
    assert_valid(tls(
        "v1alpha2",
        json!([]),
        json!([rule.clone(), rule.clone()]),
    ));
    single(
        tls(
            "v1",
            json!(["a.example.com"]),
            json!([rule.clone(), rule.clone()]),
        ),
        "spec.rules",
    );
    single(
        tls("v1", json!(["a.example.com"]), json!([{"backendRefs": []}])),
        "spec.rules[0].backendRefs",
    );
    single(
        tls("v1", json!(["10.0.0.1"]), json!([rule.clone()])),
        "spec.hostnames[0]",
    );

    let l4 = |kind: &str, version: &str, rules: Value| {
        json!({"apiVersion": format!("gateway.networking.k8s.io/{version}"), "kind": kind,
               "metadata": {"name": "t", "namespace": "ns"},
               "spec": {"parentRefs": [{"name": "gw"}], "rules": rules}})
    };
    for kind in ["TCPRoute", "UDPRoute"] {
        assert_valid(l4(kind, "v1", json!([rule.clone()])));
        assert_valid(l4(kind, "v1alpha2", json!([rule.clone(), rule.clone()])));
        single(
            l4(kind, "v1", json!([rule.clone(), rule.clone()])),
            "spec.rules",
        );
        single(l4(kind, "v1", json!([])), "spec.rules");
        single(
            l4(kind, "v1", json!([{"backendRefs": [{"name": "svc"}]}])),
            "spec.rules[0].backendRefs[0].port",
        );
        single(
            l4(
                kind,
                "v1alpha2",
                json!([{"name": "a", "backendRefs": [svc()]}, {"name": "a", "backendRefs": [svc()]}]),
            ),
            "spec.rules[1].name",
        );
    }
}

// ---- ReferenceGrant and BackendTLSPolicy ---------------------------------------------------

#[test]
fn reference_grant_rules() {
    let rg = |from: Value, to: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
               "metadata": {"name": "g", "namespace": "ns"}, "spec": {"from": from, "to": to}})
    };
    let from =
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "other"}]);
    let to = json!([{"group": "", "kind": "Service"}]);
    assert_valid(rg(from.clone(), to.clone()));
    single(rg(json!([]), to.clone()), "spec.from");
    single(rg(from.clone(), json!([])), "spec.to");
    single(
        rg(
            json!([{"group": "", "kind": "", "namespace": "other"}]),
            to.clone(),
        ),
        "spec.from[0].kind",
    );
    single(
        rg(
            json!([{"group": "", "kind": "HTTPRoute", "namespace": "Bad"}]),
            to,
        ),
        "spec.from[0].namespace",
    );
    single(
        rg(from, json!([{"group": "", "kind": "Service", "name": ""}])),
        "spec.to[0].name",
    );
}

#[test]
fn backend_tls_policy_rules() {
    let p = |validation: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
               "metadata": {"name": "p", "namespace": "ns"},
               "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "svc"}], "validation": validation}})
    };
    let ca = json!([{"group": "", "kind": "ConfigMap", "name": "ca"}]);
    assert_valid(p(
        json!({"hostname": "svc.example.com", "caCertificateRefs": ca}),
    ));
    // The model reads `wellKnownCACertificates` under its serde camelCase name, so the field
    // is set on the struct here rather than through JSON.
    let with_well_known = |v: Value, well_known: &str| {
        let Resource::BackendTlsPolicy(mut policy) = parse(p(v)) else {
            panic!("a policy")
        };
        policy.spec.validation.well_known_ca_certificates = Some(well_known.to_owned());
        backend_tls_policy(&policy)
    };
    let sans = json!([{"type": "Hostname", "hostname": "*.example.com"}, {"type": "URI", "uri": "spiffe://td/ns/x"}]);
    assert_eq!(
        with_well_known(
            json!({"hostname": "svc.example.com", "subjectAltNames": sans}),
            "System"
        ),
        []
    );
    let errs = with_well_known(json!({"hostname": "svc.example.com"}), "Bad Value");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.validation.wellKnownCACertificates");
    single(p(json!({"hostname": "svc.example.com"})), "spec.validation");
    let errs = with_well_known(
        json!({"hostname": "svc.example.com", "caCertificateRefs": ca}),
        "System",
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.validation");
    single(
        p(json!({"caCertificateRefs": ca})),
        "spec.validation.hostname",
    );
    single(
        p(json!({"hostname": "*.example.com", "caCertificateRefs": ca})),
        "spec.validation.hostname",
    );
    single(
        p(
            json!({"hostname": "a.com", "caCertificateRefs": ca, "subjectAltNames": [{"type": "Hostname"}]}),
        ),
        "spec.validation.subjectAltNames[0].hostname",
    );
    single(
        p(
            json!({"hostname": "a.com", "caCertificateRefs": ca, "subjectAltNames": [{"type": "URI", "uri": "nope"}]}),
        ),
        "spec.validation.subjectAltNames[0].uri",
    );
    let sans: Vec<Value> = (0..6)
        .map(|_| json!({"type": "Hostname", "hostname": "a.com"}))
        .collect();
    single(
        p(json!({"hostname": "a.com", "caCertificateRefs": ca, "subjectAltNames": sans})),
        "spec.validation.subjectAltNames",
    );
    let nine: Vec<Value> = (0..9)
        .map(|i| json!({"group": "", "kind": "ConfigMap", "name": format!("c{i}")}))
        .collect();
    single(
        p(json!({"hostname": "a.com", "caCertificateRefs": nine})),
        "spec.validation.caCertificateRefs",
    );
    let mut no_targets = p(json!({"hostname": "a.com", "caCertificateRefs": ca}));
    no_targets["spec"]["targetRefs"] = json!([]);
    single(no_targets, "spec.targetRefs");
}

// ---- corpus: seed demo and upstream conformance manifests ----------------------------------

fn shared_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    assert!(
        dir.is_dir(),
        "shared test data not found: expected the shared folder at {} (CARGO_MANIFEST_DIR/../../shared)",
        dir.display()
    );
    dir
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// Documents upstream made invalid on purpose: (file suffix, object name, expected fields).
const DELIBERATELY_INVALID: &[(&str, &str, &[&str])] = &[
    // The conformance suite substitutes the controller name before applying.
    (
        "tests/gatewayclass-observed-generation-bump.yaml",
        "gatewayclass-observed-generation-bump",
        &["spec.controllerName"],
    ),
    // The conformance test substitutes real addresses for these placeholders before applying.
    (
        "tests/gateway-static-addresses.yaml",
        "gateway-static-addresses",
        &["spec.addresses[1].value", "spec.addresses[2].value"],
    ),
];

#[test]
fn seed_and_conformance_manifests_validate() {
    let shared = shared_dir();
    let mut files = Vec::new();
    let seed = shared.join("seed-demo");
    let conformance = shared.join("conformance/upstream/conformance");
    for dir in [&seed, &conformance] {
        assert!(dir.is_dir(), "expected test data at {}", dir.display());
        yaml_files(dir, &mut files);
    }
    assert!(
        files.len() > 100,
        "too few manifests found under {}",
        shared.display()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut expected_seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable manifest");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        for doc in docs {
            if doc.is_null() {
                continue;
            }
            let resource = match Resource::from_json(doc) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            checked += 1;
            let errs = validate(&resource);
            let name = resource.metadata().name.clone();
            let expected = DELIBERATELY_INVALID
                .iter()
                .find(|(suffix, n, _)| file.ends_with(suffix) && *n == name);
            let got: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
            match expected {
                Some((_, _, fields)) => {
                    expected_seen += 1;
                    if got != *fields {
                        failures.push(format!(
                            "{} {name}: expected errors at {fields:?}, got {errs:?}",
                            file.display()
                        ));
                    }
                }
                None if !errs.is_empty() => {
                    let list: Vec<String> = errs.iter().map(ToString::to_string).collect();
                    failures.push(format!(
                        "{} {}: {}",
                        file.display(),
                        resource.key(),
                        list.join("; ")
                    ));
                }
                None => {}
            }
        }
    }
    assert!(
        checked > 300,
        "only {checked} Gateway API documents checked"
    );
    assert_eq!(
        expected_seen,
        DELIBERATELY_INVALID.len(),
        "a deliberately invalid document was not found"
    );
    assert!(
        failures.is_empty(),
        "{} documents failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- properties ----------------------------------------------------------------------------

mod props {
    use proptest::prelude::*;

    use super::super::{is_valid_header_name, is_valid_hostname, parse_duration};

    fn unit() -> impl Strategy<Value = (&'static str, u64)> {
        prop_oneof![
            Just(("h", 3_600_000)),
            Just(("m", 60_000)),
            Just(("s", 1000)),
            Just(("ms", 1))
        ]
    }

    proptest! {
        #[test]
        fn duration_never_panics(text in ".{0,40}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn duration_round_trips(parts in proptest::collection::vec((0u64..100_000, unit()), 1..=4)) {
            let text: String = parts.iter().map(|(n, (u, _))| format!("{n}{u}")).collect();
            let millis: u64 = parts.iter().map(|(n, (_, ms))| n * ms).sum();
            let parsed = parse_duration(&text);
            prop_assert_eq!(parsed.map(|d| d.as_millis()), Ok(u128::from(millis)));
        }

        #[test]
        fn hostname_never_panics(text in "\\PC{0,300}", wildcard in any::<bool>()) {
            let _ = is_valid_hostname(&text, wildcard);
            let _ = is_valid_header_name(&text);
        }

        #[test]
        fn generated_hostnames_are_valid(labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..5)) {
            let host = labels.join(".");
            prop_assume!(host.parse::<std::net::IpAddr>().is_err());
            prop_assert!(is_valid_hostname(&host, false));
            let wildcard = format!("*.{host}");
            prop_assert!(is_valid_hostname(&wildcard, true));
        }
    }
}
