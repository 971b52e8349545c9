//! Route rules → Ir rules: matches, filters, backends, timeouts.

use std::borrow::Cow;

use super::backend::{self, PortProtocol, RefProblem};
use super::index::Index;
use crate::ir::{
    self, AppProtocol, Backend, HeaderMatch, HeaderModifier, HttpFilter, PathMatch, PathModifier,
    Pattern, QueryParamMatch, Redirect, RuleAction, StringMatch, Timeouts, WeightedBackend,
};
use crate::model::{
    FilterType, GrpcRouteMatch, GrpcRouteRule, HttpBackendRef, HttpHeaderMatch, HttpPathModifier,
    HttpRouteFilter, HttpRouteMatch, HttpRouteRule, L4RouteRule, ObjectKey, PathMatchType,
    PathModifierType, Reason, StringMatchType,
};
use crate::validate;

/// What went wrong while translating a route, for its status.
#[derive(Debug, Default)]
pub(super) struct Problems {
    /// Unresolved references (ResolvedRefs=False with the first reason).
    pub(super) refs: Vec<RefProblem>,
    /// Known values this implementation does not serve (PartiallyInvalid=True/UnsupportedValue).
    pub(super) unsupported: Vec<String>,
    /// Anything else worth telling (field, message).
    pub(super) notes: Vec<(String, String)>,
    /// BackendTLSPolicies that apply to the route's backends (for their ancestor status).
    pub(super) policies: super::backend_tls::UsedPolicies,
}

/// The result of translating a list of filters.
#[derive(Default)]
struct Filters {
    filters: Vec<HttpFilter>,
    redirect: Option<Redirect>,
    /// Set when a filter cannot be honoured: requests it would process get a 500 (the spec's
    /// rule for unresolvable ExtensionRefs; fail closed for ExternalAuth).
    fail: Option<String>,
}

fn translate_filters(
    index: &Index<'_>,
    route: &ObjectKey,
    filters: &[HttpRouteFilter],
    field: &str,
    problems: &mut Problems,
) -> Filters {
    let mut out = Filters::default();
    for (i, filter) in filters.iter().enumerate() {
        let here = format!("{field}[{i}]");
        match &filter.type_ {
            FilterType::RequestHeaderModifier => {
                if let Some(m) = &filter.request_header_modifier {
                    out.filters
                        .push(HttpFilter::RequestHeaders(header_modifier(m)));
                }
            }
            FilterType::ResponseHeaderModifier => {
                if let Some(m) = &filter.response_header_modifier {
                    out.filters
                        .push(HttpFilter::ResponseHeaders(header_modifier(m)));
                }
            }
            FilterType::RequestRedirect => {
                if let Some(r) = &filter.request_redirect {
                    out.redirect = Some(Redirect {
                        scheme: r.scheme.as_deref().map(str::to_ascii_lowercase),
                        hostname: r.hostname.as_deref().map(str::to_ascii_lowercase),
                        path: r.path.as_ref().and_then(path_modifier),
                        port: r.port.and_then(|p| u16::try_from(p).ok()),
                        status: r
                            .status_code
                            .and_then(|c| u16::try_from(c).ok())
                            .unwrap_or(302),
                    });
                }
            }
            FilterType::UrlRewrite => {
                if let Some(r) = &filter.url_rewrite {
                    out.filters.push(HttpFilter::UrlRewrite(ir::UrlRewrite {
                        hostname: r.hostname.as_deref().map(str::to_ascii_lowercase),
                        path: r.path.as_ref().and_then(path_modifier),
                    }));
                }
            }
            FilterType::RequestMirror => {
                let Some(mirror) = &filter.request_mirror else {
                    continue;
                };
                let resolved = backend::resolve(
                    index,
                    route,
                    &mirror.backend_ref,
                    AppProtocol::Http1,
                    PortProtocol::Tcp,
                    &mut problems.policies,
                );
                match resolved {
                    Ok(backend) => {
                        let (numerator, denominator) = match (&mirror.percent, &mirror.fraction) {
                            (Some(p), _) => (*p, 100),
                            (None, Some(f)) => (f.numerator, f.denominator.unwrap_or(100)),
                            (None, None) => (1, 1),
                        };
                        out.filters.push(HttpFilter::Mirror(ir::Mirror {
                            backend,
                            numerator: u32::try_from(numerator.clamp(0, denominator.max(1)))
                                .unwrap_or(0),
                            denominator: u32::try_from(denominator.max(1)).unwrap_or(1),
                        }));
                    }
                    Err(problem) => {
                        problems.notes.push((
                            format!("{here}.requestMirror.backendRef"),
                            problem.message.clone(),
                        ));
                        if problem.route_condition {
                            problems.refs.push(problem);
                        }
                    }
                }
            }
            FilterType::Cors => {
                if let Some(c) = &filter.cors {
                    out.filters.push(HttpFilter::Cors(ir::Cors {
                        allow_origins: c.allow_origins.clone(),
                        allow_credentials: c.allow_credentials.unwrap_or(false),
                        allow_methods: c.allow_methods.clone(),
                        allow_headers: c.allow_headers.clone(),
                        expose_headers: c.expose_headers.clone(),
                        max_age: c.max_age.and_then(|a| u32::try_from(a).ok()).unwrap_or(5),
                    }));
                }
            }
            FilterType::ExtensionRef => {
                let name = filter
                    .extension_ref
                    .as_ref()
                    .map(|e| format!("{}/{} {:?}", e.group, e.kind, e.name))
                    .unwrap_or_default();
                let message = format!(
                    "ExtensionRef {name} cannot be resolved: no extension kinds are supported"
                );
                problems.notes.push((here.clone(), message.clone()));
                problems
                    .refs
                    .push(RefProblem::new(Reason::InvalidKind, message.clone()));
                out.fail.get_or_insert(message);
            }
            FilterType::ExternalAuth | FilterType::Unknown(_) => {
                let message = format!(
                    "{here}: filter {:?} is not supported; requests it would process get a 500",
                    filter.type_.as_str()
                );
                problems.unsupported.push(message.clone());
                out.fail.get_or_insert(message);
            }
        }
    }
    out
}

fn header_modifier(m: &crate::model::HeaderModifier) -> HeaderModifier {
    let pairs = |headers: &[crate::model::HttpHeader]| {
        headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
            .collect()
    };
    HeaderModifier {
        set: pairs(&m.set),
        add: pairs(&m.add),
        remove: m.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
    }
}

fn path_modifier(p: &HttpPathModifier) -> Option<PathModifier> {
    match p.type_ {
        PathModifierType::ReplaceFullPath => Some(PathModifier::ReplaceFullPath(
            p.replace_full_path.clone().unwrap_or_else(|| "/".into()),
        )),
        PathModifierType::ReplacePrefixMatch => Some(PathModifier::ReplacePrefixMatch(
            p.replace_prefix_match.clone().unwrap_or_else(|| "/".into()),
        )),
        PathModifierType::Unknown(_) => None,
    }
}

fn string_match(type_: Option<&StringMatchType>, value: &str) -> Option<StringMatch> {
    match type_.unwrap_or(&StringMatchType::Exact) {
        StringMatchType::Exact => Some(StringMatch::Exact(value.to_owned())),
        StringMatchType::RegularExpression => Pattern::new(value).ok().map(StringMatch::Regex),
        StringMatchType::Unknown(_) => None,
    }
}

/// Header conditions with lower-case names; only the first entry of a name counts (spec).
/// `Err` says which header's condition (of the rule at `field`) cannot be built.
fn header_matches(field: &str, headers: &[HttpHeaderMatch]) -> Result<Vec<HeaderMatch>, String> {
    let mut out: Vec<HeaderMatch> = Vec::new();
    for h in headers {
        let name = h.name.to_ascii_lowercase();
        if out.iter().any(|m| m.name == name) {
            continue;
        }
        let value = string_match(h.type_.as_ref(), &h.value)
            .ok_or_else(|| format!("{field}: header {:?} condition cannot be built", h.name))?;
        out.push(HeaderMatch { name, value });
    }
    Ok(out)
}

fn one_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// PathPrefix values are compared segment-wise, so a trailing `/` carries no meaning.
fn prefix_value(value: &str) -> String {
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Weighted backends of a rule; invalid refs keep their share so it fails, weight-0 refs are
/// resolved (for status) but dropped.
fn http_backends(
    index: &Index<'_>,
    route: &ObjectKey,
    refs: &[HttpBackendRef],
    default_protocol: AppProtocol,
    field: &str,
    problems: &mut Problems,
) -> Vec<WeightedBackend> {
    let mut out = Vec::new();
    for (i, with_filters) in refs.iter().enumerate() {
        let backend_ref = with_filters.backend_ref();
        let backend = backend::to_backend(
            backend::resolve(
                index,
                route,
                &backend_ref,
                default_protocol,
                PortProtocol::Tcp,
                &mut problems.policies,
            ),
            &mut problems.refs,
        );
        let filters = translate_filters(
            index,
            route,
            &with_filters.filters,
            &format!("{field}[{i}].filters"),
            problems,
        );
        let weight = u32::try_from(backend_ref.weight().max(0)).unwrap_or(u32::MAX);
        if weight == 0 {
            continue;
        }
        let backend = match filters.fail {
            Some(reason) => Backend::Invalid { reason },
            None => backend,
        };
        let mut backend_filters = filters.filters;
        if let Some(redirect) = filters.redirect {
            backend_filters.push(HttpFilter::Redirect(redirect));
        }
        out.push(WeightedBackend {
            weight,
            backend,
            filters: backend_filters,
        });
    }
    out
}

fn action(
    redirect: Option<Redirect>,
    fail: Option<String>,
    backends: Vec<WeightedBackend>,
    had_refs: bool,
) -> RuleAction {
    if let Some(reason) = fail {
        return RuleAction::Respond {
            status: 500,
            reason,
        };
    }
    if let Some(redirect) = redirect {
        return RuleAction::Redirect(redirect);
    }
    if backends.is_empty() {
        let reason = if had_refs {
            "every backendRef has weight 0"
        } else {
            "the rule has no backendRefs"
        };
        return RuleAction::Respond {
            status: 500,
            reason: reason.to_owned(),
        };
    }
    RuleAction::Forward(backends)
}

/// The parts HTTPRoute and GRPCRoute rules share.
struct RuleParts<'a> {
    filters: &'a [HttpRouteFilter],
    backend_refs: &'a [HttpBackendRef],
    session_persistence: bool,
    protocol: AppProtocol,
}

/// Translates a rule's filters and backends into its filters and action.
fn filters_and_action(
    index: &Index<'_>,
    route: &ObjectKey,
    field: &str,
    parts: RuleParts<'_>,
    problems: &mut Problems,
) -> (Vec<HttpFilter>, RuleAction) {
    let filters = translate_filters(
        index,
        route,
        parts.filters,
        &format!("{field}.filters"),
        problems,
    );
    let backends = http_backends(
        index,
        route,
        parts.backend_refs,
        parts.protocol,
        &format!("{field}.backendRefs"),
        problems,
    );
    if parts.session_persistence {
        problems.unsupported.push(format!(
            "{field}.sessionPersistence is not supported; traffic is balanced without it"
        ));
    }
    let action = action(
        filters.redirect,
        filters.fail,
        backends,
        !parts.backend_refs.is_empty(),
    );
    (filters.filters, action)
}

fn timeout(value: Option<&str>) -> Option<std::time::Duration> {
    validate::parse_duration(value?)
        .ok()
        .filter(|d| !d.is_zero())
}

/// The rules as the CRD defaults them: an absent list is one rule that matches everything.
fn defaulted<R: Clone + Default>(rules: &[R]) -> Cow<'_, [R]> {
    if rules.is_empty() {
        Cow::Owned(vec![R::default()])
    } else {
        Cow::Borrowed(rules)
    }
}

/// The matches of one rule: `build` gives `Ok(None)` for a match to skip and `Err` for a
/// condition that cannot be built, which drops the whole rule (dropping only the condition
/// would widen what the rule matches). `None` when the rule is dropped.
fn rule_matches<M, T>(
    matches: &[M],
    build: impl Fn(&M) -> Result<Option<T>, String>,
    catch_all: impl FnOnce() -> T,
    problems: &mut Problems,
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    for m in matches {
        match build(m) {
            Ok(Some(built)) => out.push(built),
            Ok(None) => {}
            Err(message) => {
                problems
                    .unsupported
                    .push(format!("{message}; the rule is not served"));
                return None;
            }
        }
    }
    if out.is_empty() {
        out.push(catch_all());
    }
    Some(out)
}

/// One match of an HTTPRoute rule; `Ok(None)` for a path type that is not served.
fn http_match(field: &str, m: &HttpRouteMatch) -> Result<Option<ir::HttpMatch>, String> {
    let path = match &m.path {
        None => PathMatch::Prefix("/".into()),
        Some(p) => match p.match_type() {
            PathMatchType::Exact => PathMatch::Exact(p.value().to_owned()),
            PathMatchType::PathPrefix => PathMatch::Prefix(prefix_value(p.value())),
            PathMatchType::RegularExpression => match Pattern::new(p.value()) {
                Ok(pattern) => PathMatch::Regex(pattern),
                Err(e) => {
                    return Err(format!(
                        "{field}: path regular expression cannot be built: {}",
                        one_line(&e.to_string())
                    ));
                }
            },
            PathMatchType::Unknown(_) => return Ok(None),
        },
    };
    let mut query_params: Vec<QueryParamMatch> = Vec::new();
    for q in &m.query_params {
        if query_params.iter().any(|existing| existing.name == q.name) {
            continue;
        }
        let value = string_match(q.type_.as_ref(), &q.value).ok_or_else(|| {
            format!(
                "{field}: query parameter {:?} condition cannot be built",
                q.name
            )
        })?;
        query_params.push(QueryParamMatch {
            name: q.name.clone(),
            value,
        });
    }
    Ok(Some(ir::HttpMatch {
        path,
        method: m.method.as_ref().map(|m| m.as_str().to_ascii_uppercase()),
        headers: header_matches(field, &m.headers)?,
        query_params,
    }))
}

/// Translates the rules of an HTTPRoute.
pub(super) fn http_rules(
    index: &Index<'_>,
    route: &ObjectKey,
    rules: &[HttpRouteRule],
    problems: &mut Problems,
) -> Vec<ir::HttpRule> {
    let mut out = Vec::new();
    for (i, rule) in defaulted(rules).iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let catch_all = || ir::HttpMatch {
            path: PathMatch::Prefix("/".into()),
            method: None,
            headers: Vec::new(),
            query_params: Vec::new(),
        };
        let build = |m: &HttpRouteMatch| http_match(&field, m);
        let Some(matches) = rule_matches(&rule.matches, build, catch_all, problems) else {
            continue;
        };
        let (filters, action) = filters_and_action(
            index,
            route,
            &field,
            RuleParts {
                filters: &rule.filters,
                backend_refs: &rule.backend_refs,
                session_persistence: rule.session_persistence.is_some(),
                protocol: AppProtocol::Http1,
            },
            problems,
        );
        let retry = rule.retry.as_ref().map(|r| ir::Retry {
            codes: r
                .codes
                .iter()
                .filter_map(|c| u16::try_from(*c).ok())
                .collect(),
            attempts: r.attempts.and_then(|a| u32::try_from(a).ok()).unwrap_or(1),
            backoff: timeout(r.backoff.as_deref()),
        });
        out.push(ir::HttpRule {
            index: i,
            name: rule.name.clone(),
            matches,
            filters,
            action,
            timeouts: Timeouts {
                request: timeout(rule.timeouts.as_ref().and_then(|t| t.request.as_deref())),
                backend_request: timeout(
                    rule.timeouts
                        .as_ref()
                        .and_then(|t| t.backend_request.as_deref()),
                ),
            },
            retry,
        });
    }
    out
}

/// One match of a GRPCRoute rule.
fn grpc_match(field: &str, m: &GrpcRouteMatch) -> Result<Option<ir::GrpcMatch>, String> {
    let (service, method) = match &m.method {
        None => (None, None),
        Some(mm) => {
            let t = mm.type_.as_ref();
            let build = |value: &Option<String>| match value {
                Some(s) => string_match(t, s).map(Some),
                None => Some(None),
            };
            match (build(&mm.service), build(&mm.method)) {
                (Some(service), Some(method)) => (service, method),
                _ => return Err(format!("{field}: method condition cannot be built")),
            }
        }
    };
    Ok(Some(ir::GrpcMatch {
        service,
        method,
        headers: header_matches(field, &m.headers)?,
    }))
}

/// Translates the rules of a GRPCRoute. Backends speak HTTP/2 (h2c) whatever the Service says:
/// gRPC needs it.
pub(super) fn grpc_rules(
    index: &Index<'_>,
    route: &ObjectKey,
    rules: &[GrpcRouteRule],
    problems: &mut Problems,
) -> Vec<ir::GrpcRule> {
    let mut out = Vec::new();
    for (i, rule) in defaulted(rules).iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let catch_all = || ir::GrpcMatch {
            service: None,
            method: None,
            headers: Vec::new(),
        };
        let build = |m: &GrpcRouteMatch| grpc_match(&field, m);
        let Some(matches) = rule_matches(&rule.matches, build, catch_all, problems) else {
            continue;
        };
        // GRPCRoute filters never redirect (validation rejects it), so `action` forwards or
        // answers.
        let (filters, action) = filters_and_action(
            index,
            route,
            &field,
            RuleParts {
                filters: &rule.filters,
                backend_refs: &rule.backend_refs,
                session_persistence: rule.session_persistence.is_some(),
                protocol: AppProtocol::H2c,
            },
            problems,
        );
        out.push(ir::GrpcRule {
            index: i,
            name: rule.name.clone(),
            matches,
            filters,
            action,
        });
    }
    out
}

/// Weighted backends of a TLSRoute, TCPRoute or UDPRoute (rules merged). Never empty: a route
/// without usable backends rejects connections.
pub(super) fn l4_backends(
    index: &Index<'_>,
    route: &ObjectKey,
    rules: &[L4RouteRule],
    port_protocol: PortProtocol,
    problems: &mut Problems,
) -> Vec<WeightedBackend> {
    let protocol = match port_protocol {
        PortProtocol::Tcp => AppProtocol::Tcp,
        PortProtocol::Udp => AppProtocol::Udp,
    };
    let mut out = Vec::new();
    for backend_ref in rules.iter().flat_map(|r| r.backend_refs.iter()) {
        let backend = backend::to_backend(
            backend::resolve(
                index,
                route,
                backend_ref,
                protocol,
                port_protocol,
                &mut problems.policies,
            ),
            &mut problems.refs,
        );
        let weight = u32::try_from(backend_ref.weight().max(0)).unwrap_or(u32::MAX);
        if weight > 0 {
            out.push(WeightedBackend {
                weight,
                backend,
                filters: Vec::new(),
            });
        }
    }
    if out.is_empty() {
        out.push(WeightedBackend {
            weight: 1,
            backend: Backend::Invalid {
                reason: "the route has no usable backendRefs".into(),
            },
            filters: Vec::new(),
        });
    }
    out
}
