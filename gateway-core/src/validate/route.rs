//! HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and UDPRoute.

use super::{At, Errors, FieldError, names};
use crate::model::{
    self, Cors, GrpcRouteMatch, GrpcRouteRule, HeaderModifier, HttpBackendRef, HttpHeaderMatch,
    HttpPathModifier, HttpRouteFilter, HttpRouteMatch, HttpRouteRule, L4RouteRule,
    LocalObjectReference, ObjectMeta, PathMatchType, PathModifierType, RequestMirror,
    RequestRedirect, RouteSpec, StringMatchType, UrlRewrite,
};

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const MATCH_TYPES: &[&str] = &["Exact", "RegularExpression"];

/// Filter types each route kind's CRD enum accepts (rule and backendRef filters alike).
const HTTP_FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
    "ExternalAuth",
];
const GRPC_FILTERS: &[&str] = &[
    "ResponseHeaderModifier",
    "RequestHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
];

/// A route kind's filter types and its name for messages.
struct FilterKind {
    allowed: &'static [&'static str],
    kind: &'static str,
}
const HTTP: FilterKind = FilterKind {
    allowed: HTTP_FILTERS,
    kind: "HTTPRoute",
};
const GRPC: FilterKind = FilterKind {
    allowed: GRPC_FILTERS,
    kind: "GRPCRoute",
};
/// Filters the CRDs allow at most once per filter list.
const SINGLE_FILTERS: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "CORS",
];

/// The version part of an `apiVersion`.
fn version(api_version: &str) -> &str {
    api_version.rsplit('/').next().unwrap_or(api_version)
}

/// What the Route kinds with hostnames share: metadata, `parentRefs`, `hostnames` (`min` to
/// `max` of them) and `useDefaultGateways`.
fn route_spec<R>(e: &mut Errors, meta: &ObjectMeta, spec: &RouteSpec<R>, min: usize, max: usize) {
    e.metadata(meta);
    e.parent_refs(&At::root("spec.parentRefs"), &spec.parent_refs);
    e.hostnames(&At::root("spec.hostnames"), &spec.hostnames, min, max);
    use_default_gateways(e, &spec.use_default_gateways);
}

fn use_default_gateways(e: &mut Errors, value: &Option<String>) {
    if let Some(v) = value {
        e.one_of(&At::root("spec.useDefaultGateways"), v, &["All", "None"]);
    }
}

/// `spec.rules` of an HTTPRoute or GRPCRoute: at most 16 rules and 128 matches in all
/// (`matches` gives each rule's count as the CRD's CEL rule sees it), unique names, and each
/// rule checked by `check`.
fn rule_list<R>(
    e: &mut Errors,
    rules: &[R],
    matches: impl Fn(&R) -> usize,
    name: impl Fn(&R) -> Option<&str>,
    check: fn(&mut Errors, &At<'_>, &R),
) {
    e.max_items(&At::root("spec.rules"), rules.len(), 16);
    let total: usize = rules.iter().map(matches).sum();
    if total > 128 {
        e.add(
            "spec.rules",
            format!("at most 128 matches across all rules (found {total})"),
        );
    }
    e.rule_names(&At::root("spec.rules"), rules.iter().map(name));
    for (i, rule) in rules.iter().enumerate() {
        check(e, &At::root("spec.rules").index(i), rule);
    }
}

/// The `backendRefs` of an HTTPRoute or GRPCRoute rule and their filters; `also` adds the
/// kind's own checks of each backend's filter list.
fn backend_refs(
    e: &mut Errors,
    path: &At<'_>,
    refs: &[HttpBackendRef],
    kind: &FilterKind,
    also: impl Fn(&mut Errors, &At<'_>, &[HttpRouteFilter]),
) {
    let refs_path = path.field("backendRefs");
    e.max_items(&refs_path, refs.len(), 16);
    for (i, b) in refs.iter().enumerate() {
        let bp = refs_path.index(i);
        e.backend_ref(&bp, &b.backend_ref());
        let fp = bp.field("filters");
        filters(e, &fp, &b.filters, kind);
        also(e, &fp, &b.filters);
    }
}

/// Checks an HTTPRoute.
pub fn http_route(r: &model::HttpRoute) -> Vec<FieldError> {
    let mut e = Errors::default();
    route_spec(&mut e, &r.metadata, &r.spec, 0, 16);
    // `rules` is 1–16, but the CRD defaults an absent list to one catch-all rule. An empty
    // `matches` is defaulted to one PathPrefix match before the CEL rule counts.
    rule_list(
        &mut e,
        &r.spec.rules,
        |r| r.matches.len().max(1),
        |r| r.name.as_deref(),
        http_rule,
    );
    e.into_vec()
}

fn http_rule(e: &mut Errors, path: &At<'_>, rule: &HttpRouteRule) {
    e.max_items(&path.field("matches"), rule.matches.len(), 64);
    for (i, m) in rule.matches.iter().enumerate() {
        http_match(e, &path.field("matches").index(i), m);
    }
    filters(e, &path.field("filters"), &rule.filters, &HTTP);
    if !rule.backend_refs.is_empty() {
        for (i, f) in rule.filters.iter().enumerate() {
            if f.request_redirect.is_some() {
                e.add(
                    path.field("filters").index(i),
                    "RequestRedirect filter must not be used together with backendRefs",
                );
            }
        }
    }
    // ReplacePrefixMatch needs to know which prefix matched; after defaulting, that is only
    // unambiguous with exactly one match and a PathPrefix path.
    let single_prefix = match rule.matches.as_slice() {
        [] => true,
        [only] => only
            .path
            .as_ref()
            .is_none_or(|p| p.match_type() == PathMatchType::PathPrefix),
        _ => false,
    };
    if !single_prefix {
        prefix_replacements(e, &path.field("filters"), &rule.filters);
    }
    backend_refs(e, path, &rule.backend_refs, &HTTP, |e, fp, list| {
        if !single_prefix {
            prefix_replacements(e, fp, list);
        }
    });
    if let Some(t) = &rule.timeouts {
        let request = t
            .request
            .as_deref()
            .and_then(|s| e.duration(&path.field("timeouts").field("request"), s));
        let backend = t
            .backend_request
            .as_deref()
            .and_then(|s| e.duration(&path.field("timeouts").field("backendRequest"), s));
        // "0s" disables the request timeout, so any backend timeout fits under it.
        if let (Some(request), Some(backend)) = (request, backend)
            && !request.is_zero()
            && backend > request
        {
            e.add(
                path.field("timeouts").field("backendRequest"),
                format!(
                    "backendRequest timeout ({}) cannot be longer than request timeout ({})",
                    t.backend_request.as_deref().unwrap_or_default(),
                    t.request.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(retry) = &rule.retry {
        if let Some(attempts) = retry.attempts
            && attempts < 1
        {
            e.add(
                path.field("retry").field("attempts"),
                format!("must be at least 1 (found {attempts})"),
            );
        }
        for (i, code) in retry.codes.iter().enumerate() {
            e.range(
                &path.field("retry").field("codes").index(i),
                *code,
                400,
                599,
            );
        }
        if let Some(backoff) = &retry.backoff {
            e.duration(&path.field("retry").field("backoff"), backoff);
        }
    }
}

/// Reports redirect and rewrite filters that replace a prefix the rule cannot name.
fn prefix_replacements(e: &mut Errors, path: &At<'_>, filters: &[HttpRouteFilter]) {
    let replaces_prefix = |p: &Option<HttpPathModifier>| {
        p.as_ref().is_some_and(|p| {
            p.type_ == PathModifierType::ReplacePrefixMatch && p.replace_prefix_match.is_some()
        })
    };
    for (i, f) in filters.iter().enumerate() {
        let redirect = f
            .request_redirect
            .as_ref()
            .is_some_and(|r| replaces_prefix(&r.path));
        let rewrite = f
            .url_rewrite
            .as_ref()
            .is_some_and(|r| replaces_prefix(&r.path));
        for (used, field, name) in [
            (redirect, "requestRedirect", "RequestRedirect"),
            (rewrite, "urlRewrite", "URLRewrite"),
        ] {
            if used {
                e.add(
                    path.index(i).field(field).field("path").field("replacePrefixMatch"),
                    format!("when using {name} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"),
                );
            }
        }
    }
}

fn http_match(e: &mut Errors, path: &At<'_>, m: &HttpRouteMatch) {
    if let Some(p) = &m.path {
        let type_ = p.match_type();
        if !type_.is_known() {
            e.one_of(
                &path.field("path").field("type"),
                type_.as_str(),
                &["Exact", "PathPrefix", "RegularExpression"],
            );
        }
        let field = path.field("path.value");
        let value = p.value();
        e.max_len(&field, value, 1024);
        match type_ {
            PathMatchType::Exact | PathMatchType::PathPrefix => path_value(e, &field, value),
            PathMatchType::RegularExpression => e.regex(&field, value),
            PathMatchType::Unknown(_) => {}
        }
    }
    header_matches(e, &path.field("headers"), &m.headers, true);
    let qp = path.field("queryParams");
    e.max_items(&qp, m.query_params.len(), 16);
    for (i, q) in m.query_params.iter().enumerate() {
        let field = qp.index(i);
        header_name(e, &field.field("name"), &q.name);
        let vf = field.field("value");
        if q.value.is_empty() {
            e.add(vf, "is required");
        }
        e.max_len(&vf, &q.value, 1024);
        string_match(e, &field, q.type_.as_ref(), &q.value);
        // Query parameter names are case-sensitive, unlike header names.
        if let Some(j) = m.query_params[..i].iter().position(|o| o.name == q.name) {
            e.add(
                field.field("name"),
                format!(
                    "duplicate query parameter {:?} (also queryParams[{j}])",
                    q.name
                ),
            );
        }
    }
    if let Some(method) = &m.method {
        e.one_of(&path.field("method"), method.as_str(), METHODS);
    }
}

/// The CEL rules on Exact and PathPrefix values, in the CRD's order.
fn path_value(e: &mut Errors, field: &At<'_>, value: &str) {
    if !value.starts_with('/') {
        e.add(field, "must start with \"/\"");
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if value.contains(bad) {
            e.add(field, format!("must not contain {bad:?}"));
        }
    }
    for bad in ["/..", "/."] {
        if value.ends_with(bad) {
            e.add(field, format!("must not end with {bad:?}"));
        }
    }
    if !names::is_valid_path_chars(value) {
        e.add(
            field,
            "must only contain letters, digits, \"-/._~!$&'()*+,;=:@\" and %-escapes",
        );
    }
}

fn header_name(e: &mut Errors, field: &At<'_>, name: &str) {
    if name.is_empty() {
        e.add(field, "is required");
    } else if !names::is_valid_header_name(name) {
        e.add(
            field,
            format!("invalid header name {name:?}: must be an RFC 7230 token (letters, digits and !#$%&'*+-.^_`|~, at most 256)"),
        );
    }
}

fn header_value(e: &mut Errors, field: &At<'_>, value: &str) {
    if value.is_empty() {
        e.add(field, "is required");
    } else if !names::is_valid_header_value(value) {
        e.add(
            field,
            "must be visible ASCII characters, with single inner spaces or tabs only",
        );
    }
    e.max_len(field, value, 4096);
}

/// The `type` of a header, query or method match; compiles regular expressions.
fn string_match(e: &mut Errors, field: &At<'_>, type_: Option<&StringMatchType>, value: &str) {
    match type_ {
        Some(StringMatchType::RegularExpression) => e.regex(&field.field("value"), value),
        Some(other @ StringMatchType::Unknown(_)) => {
            e.one_of(&field.field("type"), other.as_str(), MATCH_TYPES);
        }
        _ => {}
    }
}

/// Header matches of HTTPRoute (`strict_value`: the CRD's value pattern) and GRPCRoute.
fn header_matches(e: &mut Errors, path: &At<'_>, headers: &[HttpHeaderMatch], strict_value: bool) {
    e.max_items(path, headers.len(), 16);
    for (i, h) in headers.iter().enumerate() {
        let field = path.index(i);
        header_name(e, &field.field("name"), &h.name);
        let vf = field.field("value");
        if strict_value {
            header_value(e, &vf, &h.value);
        } else {
            if h.value.is_empty() {
                e.add(vf, "is required");
            }
            e.max_len(&vf, &h.value, 4096);
        }
        string_match(e, &field, h.type_.as_ref(), &h.value);
        if let Some(j) = headers[..i]
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&h.name))
        {
            e.add(
                field.field("name"),
                format!(
                    "duplicate header {:?} (also headers[{j}]; names are case-insensitive)",
                    h.name
                ),
            );
        }
    }
}

/// A filter list: types, the type/field pairing, repeats and per-filter settings.
fn filters(e: &mut Errors, path: &At<'_>, list: &[HttpRouteFilter], kind: &FilterKind) {
    let FilterKind { allowed, kind } = *kind;
    e.max_items(path, list.len(), 16);
    for (i, f) in list.iter().enumerate() {
        let fp = path.index(i);
        let type_ = f.type_.as_str();
        e.one_of(&fp.field("type"), type_, allowed);
        let fields = [
            (
                "requestHeaderModifier",
                f.request_header_modifier.is_some(),
                "RequestHeaderModifier",
            ),
            (
                "responseHeaderModifier",
                f.response_header_modifier.is_some(),
                "ResponseHeaderModifier",
            ),
            ("requestMirror", f.request_mirror.is_some(), "RequestMirror"),
            (
                "requestRedirect",
                f.request_redirect.is_some(),
                "RequestRedirect",
            ),
            ("urlRewrite", f.url_rewrite.is_some(), "URLRewrite"),
            ("extensionRef", f.extension_ref.is_some(), "ExtensionRef"),
            ("cors", f.cors.is_some(), "CORS"),
            ("externalAuth", f.external_auth.is_some(), "ExternalAuth"),
        ];
        for (field, set, owner) in fields {
            let known_here = allowed.contains(&owner);
            if set && !known_here {
                e.add(fp.field(field), format!("is not a {kind} filter field"));
            } else if set && type_ != owner {
                e.add(
                    fp.field(field),
                    format!("must not be set unless type is {owner}"),
                );
            } else if !set && type_ == owner && known_here {
                e.add(fp.field(field), format!("is required when type is {owner}"));
            }
        }
        if let Some(m) = &f.request_header_modifier {
            header_modifier(e, &fp.field("requestHeaderModifier"), m);
        }
        if let Some(m) = &f.response_header_modifier {
            header_modifier(e, &fp.field("responseHeaderModifier"), m);
        }
        if let Some(m) = &f.request_mirror {
            mirror(e, &fp.field("requestMirror"), m);
        }
        if allowed.contains(&"RequestRedirect") {
            if let Some(r) = &f.request_redirect {
                redirect(e, &fp.field("requestRedirect"), r);
            }
            if let Some(r) = &f.url_rewrite {
                rewrite(e, &fp.field("urlRewrite"), r);
            }
            if let Some(c) = &f.cors {
                cors(e, &fp.field("cors"), c);
            }
        }
        if let Some(r) = &f.extension_ref {
            extension_ref(e, &fp.field("extensionRef"), r);
        }
    }
    for single in SINGLE_FILTERS.iter().filter(|t| allowed.contains(t)) {
        for (i, _) in list
            .iter()
            .enumerate()
            .filter(|(_, f)| f.type_.as_str() == *single)
            .skip(1)
        {
            e.add(
                path.index(i).field("type"),
                format!("{single} filter cannot be repeated"),
            );
        }
    }
    let has = |t: &str| list.iter().any(|f| f.type_.as_str() == t);
    if has("RequestRedirect") && has("URLRewrite") {
        e.add(
            path,
            "RequestRedirect and URLRewrite cannot be used together",
        );
    }
}

fn header_modifier(e: &mut Errors, path: &At<'_>, m: &HeaderModifier) {
    // Each header name may appear once across set, add and remove: the CRD keys the lists by
    // name, and across lists the result would depend on the order the filter applies them.
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut check_dup = |e: &mut Errors, field: String, name: &str| {
        let key = name.to_ascii_lowercase();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            e.add(
                field,
                format!("duplicate header {name:?} (also {first}): a header may appear once across set, add and remove"),
            );
        } else {
            seen.push((
                key,
                field
                    .rsplit_once('.')
                    .map_or(field.clone(), |(_, tail)| tail.to_owned()),
            ));
        }
    };
    for (list_name, list) in [("set", &m.set), ("add", &m.add)] {
        let lp = path.field(list_name);
        e.max_items(&lp, list.len(), 16);
        for (i, h) in list.iter().enumerate() {
            let field = lp.index(i);
            header_name(e, &field.field("name"), &h.name);
            header_value(e, &field.field("value"), &h.value);
            check_dup(e, path.field(list_name).index(i).to_string(), &h.name);
        }
    }
    let lp = path.field("remove");
    e.max_items(&lp, m.remove.len(), 16);
    for (i, name) in m.remove.iter().enumerate() {
        let field = lp.index(i);
        header_name(e, &field, name);
        check_dup(e, path.field("remove").index(i).to_string(), name);
    }
}

fn mirror(e: &mut Errors, path: &At<'_>, m: &RequestMirror) {
    e.backend_ref(&path.field("backendRef"), &m.backend_ref);
    if let Some(percent) = m.percent {
        e.range(&path.field("percent"), percent, 0, 100);
    }
    if let Some(fraction) = &m.fraction {
        let fp = path.field("fraction");
        if fraction.numerator < 0 {
            e.add(
                fp.field("numerator"),
                format!("must be at least 0 (found {})", fraction.numerator),
            );
        }
        let denominator = fraction.denominator.unwrap_or(100);
        if denominator < 1 {
            e.add(
                fp.field("denominator"),
                format!("must be at least 1 (found {denominator})"),
            );
        } else if fraction.numerator > denominator {
            e.add(
                fp.field("numerator"),
                format!(
                    "must be less than or equal to the denominator ({} > {denominator})",
                    fraction.numerator
                ),
            );
        }
    }
    if m.percent.is_some() && m.fraction.is_some() {
        e.add(path, "only one of percent or fraction may be set");
    }
}

fn redirect(e: &mut Errors, path: &At<'_>, r: &RequestRedirect) {
    if let Some(scheme) = &r.scheme {
        e.one_of(&path.field("scheme"), scheme, &["http", "https"]);
    }
    if let Some(hostname) = &r.hostname {
        e.hostname(&path.field("hostname"), hostname, false);
    }
    if let Some(p) = &r.path {
        path_modifier(e, &path.field("path"), p);
    }
    if let Some(port) = r.port {
        e.port(&path.field("port"), port);
    }
    if let Some(code) = r.status_code
        && ![301, 302, 303, 307, 308].contains(&code)
    {
        e.add(
            path.field("statusCode"),
            format!("unsupported value {code}: must be one of 301, 302, 303, 307, 308"),
        );
    }
}

fn rewrite(e: &mut Errors, path: &At<'_>, r: &UrlRewrite) {
    if let Some(hostname) = &r.hostname {
        e.hostname(&path.field("hostname"), hostname, false);
    }
    if let Some(p) = &r.path {
        path_modifier(e, &path.field("path"), p);
    }
}

fn path_modifier(e: &mut Errors, path: &At<'_>, p: &HttpPathModifier) {
    e.one_of(
        &path.field("type"),
        p.type_.as_str(),
        &["ReplaceFullPath", "ReplacePrefixMatch"],
    );
    if !p.type_.is_known() {
        // Without a valid type the pairing rules below have nothing to pair with.
        return;
    }
    let full = p.type_ == PathModifierType::ReplaceFullPath;
    let prefix = p.type_ == PathModifierType::ReplacePrefixMatch;
    match &p.replace_full_path {
        Some(value) => {
            e.max_len(&path.field("replaceFullPath"), value, 1024);
            if !full {
                e.add(
                    path.field("replaceFullPath"),
                    "must not be set unless type is ReplaceFullPath",
                );
            }
        }
        None if full => e.add(
            path.field("replaceFullPath"),
            "is required when type is ReplaceFullPath",
        ),
        None => {}
    }
    match &p.replace_prefix_match {
        Some(value) => {
            e.max_len(&path.field("replacePrefixMatch"), value, 1024);
            if !prefix {
                e.add(
                    path.field("replacePrefixMatch"),
                    "must not be set unless type is ReplacePrefixMatch",
                );
            }
        }
        None if prefix => e.add(
            path.field("replacePrefixMatch"),
            "is required when type is ReplacePrefixMatch",
        ),
        None => {}
    }
}

fn extension_ref(e: &mut Errors, path: &At<'_>, r: &LocalObjectReference) {
    e.group(&path.field("group"), &r.group);
    e.kind(&path.field("kind"), &r.kind);
    e.object_name(&path.field("name"), &r.name);
}

fn cors(e: &mut Errors, path: &At<'_>, c: &Cors) {
    let wildcard_alone = |e: &mut Errors, field: &At<'_>, list: &[String], what: &str| {
        if list.len() > 1 && list.iter().any(|v| v == "*") {
            e.add(field, format!("\"*\" cannot be combined with other {what}"));
        }
    };
    let origins = path.field("allowOrigins");
    e.max_items(&origins, c.allow_origins.len(), 64);
    for (i, origin) in c.allow_origins.iter().enumerate() {
        if !names::is_valid_origin(origin) {
            e.add(
                origins.index(i),
                format!("invalid origin {origin:?}: must be \"*\" or http(s)://host[:port], where host may start with \"*.\""),
            );
        }
    }
    wildcard_alone(e, &origins, &c.allow_origins, "origins");
    let methods = path.field("allowMethods");
    e.max_items(&methods, c.allow_methods.len(), 9);
    let mut allowed = METHODS.to_vec();
    allowed.push("*");
    for (i, method) in c.allow_methods.iter().enumerate() {
        e.one_of(&methods.index(i), method, &allowed);
    }
    wildcard_alone(e, &methods, &c.allow_methods, "methods");
    for (name, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        let lp = path.field(name);
        e.max_items(&lp, list.len(), 64);
        for (i, h) in list.iter().enumerate() {
            header_name(e, &lp.index(i), h);
        }
    }
    wildcard_alone(e, &path.field("allowHeaders"), &c.allow_headers, "headers");
    if let Some(max_age) = c.max_age
        && max_age < 1
    {
        e.add(
            path.field("maxAge"),
            format!("must be at least 1 (found {max_age})"),
        );
    }
}

/// Checks a GRPCRoute.
pub fn grpc_route(r: &model::GrpcRoute) -> Vec<FieldError> {
    let mut e = Errors::default();
    route_spec(&mut e, &r.metadata, &r.spec, 0, 16);
    rule_list(
        &mut e,
        &r.spec.rules,
        |r| r.matches.len(),
        |r| r.name.as_deref(),
        grpc_rule,
    );
    e.into_vec()
}

fn grpc_rule(e: &mut Errors, path: &At<'_>, rule: &GrpcRouteRule) {
    e.max_items(&path.field("matches"), rule.matches.len(), 64);
    for (i, m) in rule.matches.iter().enumerate() {
        grpc_match(e, &path.field("matches").index(i), m);
    }
    filters(e, &path.field("filters"), &rule.filters, &GRPC);
    backend_refs(e, path, &rule.backend_refs, &GRPC, |_, _, _| {});
}

fn grpc_match(e: &mut Errors, path: &At<'_>, m: &GrpcRouteMatch) {
    if let Some(method) = &m.method {
        let mp = path.field("method");
        let type_ = method.type_.clone().unwrap_or(StringMatchType::Exact);
        if !type_.is_known() {
            e.one_of(&mp.field("type"), type_.as_str(), MATCH_TYPES);
        }
        // `type` is defaulted, so the CRD's "has(self.type)" guard always holds.
        if method.service.is_none() && method.method.is_none() {
            e.add(mp, "at least one of service or method must be set");
        }
        if let Some(service) = &method.service {
            let field = mp.field("service");
            e.max_len(&field, service, 1024);
            match type_ {
                StringMatchType::Exact if !is_grpc_service(service) => e.add(
                    field,
                    format!("invalid service {service:?}: must be a dot-separated name of letters, digits and '_' (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)"),
                ),
                StringMatchType::RegularExpression => e.regex(&field, service),
                _ => {}
            }
        }
        if let Some(name) = &method.method {
            let field = mp.field("method");
            e.max_len(&field, name, 1024);
            match type_ {
                StringMatchType::Exact if !is_grpc_ident(name) => e.add(
                    field,
                    format!("invalid method {name:?}: must match ^[A-Za-z_][A-Za-z_0-9]*$"),
                ),
                StringMatchType::RegularExpression => e.regex(&field, name),
                _ => {}
            }
        }
    }
    header_matches(e, &path.field("headers"), &m.headers, false);
}

fn is_grpc_ident(text: &str) -> bool {
    let b = text.as_bytes();
    b.first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`.
fn is_grpc_service(text: &str) -> bool {
    let text = text.strip_prefix('.').unwrap_or(text);
    text.split('.').all(is_grpc_ident)
}

/// Checks a TLSRoute. `v1` and `v1alpha3` require 1–1024 hostnames and exactly one rule;
/// `v1alpha2` allowed no hostnames and up to 16 rules.
pub fn tls_route(r: &model::TlsRoute) -> Vec<FieldError> {
    let mut e = Errors::default();
    let alpha2 = version(&r.api_version) == "v1alpha2";
    route_spec(&mut e, &r.metadata, &r.spec, usize::from(!alpha2), 1024);
    l4_rules(&mut e, &r.spec.rules, if alpha2 { 16 } else { 1 });
    e.into_vec()
}

/// Checks a TCPRoute or UDPRoute (the same shape): exactly one rule in `v1`, 1–16 in
/// `v1alpha2`.
pub fn tcp_route(r: &model::TcpRoute) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    let alpha2 = version(&r.api_version) == "v1alpha2";
    e.parent_refs(&At::root("spec.parentRefs"), &r.spec.parent_refs);
    use_default_gateways(&mut e, &r.spec.use_default_gateways);
    l4_rules(&mut e, &r.spec.rules, if alpha2 { 16 } else { 1 });
    e.into_vec()
}

fn l4_rules(e: &mut Errors, rules: &[L4RouteRule], max: usize) {
    let path = At::root("spec.rules");
    e.items(&path, rules.len(), 1, max);
    e.rule_names(&path, rules.iter().map(|r| r.name.as_deref()));
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = path.index(i);
        let refs = rule_path.field("backendRefs");
        e.items(&refs, rule.backend_refs.len(), 1, 16);
        for (j, b) in rule.backend_refs.iter().enumerate() {
            e.backend_ref(&refs.index(j), b);
        }
    }
}
