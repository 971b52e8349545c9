//! HTTPRoute and GRPCRoute matching on one HTTP(S) bind.

use std::cmp::Reverse;
use std::sync::Arc;

use crate::ir::{self, HeaderMatch, HttpMatch, Listener, PathMatch, QueryParamMatch};

use super::grpc::GrpcBucket;
use super::host::{HostKey, HostTable};
use super::{FastMap, GrpcRouteMatch, GrpcRouting, RequestHeaders};

/// A request as the router sees it.
#[derive(Debug)]
pub struct HttpRequest<'a, H: ?Sized> {
    /// The Host header (or `:authority`), possibly with a port.
    pub host: &'a str,
    /// The path, already passed through [`normalize_path`](super::normalize_path), without
    /// the query.
    pub path: &'a str,
    /// The raw query string after `?`, if any.
    pub query: Option<&'a str>,
    /// The method, as sent (compared exactly).
    pub method: &'a str,
    /// The request headers.
    pub headers: &'a H,
}

/// The rule that serves an HTTP request.
#[derive(Clone, Copy, Debug)]
pub struct HttpRouteMatch<'r> {
    /// The listener whose hostname the request matched.
    pub listener: &'r Arc<Listener>,
    /// The route.
    pub route: &'r ir::HttpRoute,
    /// The rule.
    pub rule: &'r ir::HttpRule,
    /// The match of the rule that won (its `path` is what `ReplacePrefixMatch` replaces).
    pub matched: &'r ir::HttpMatch,
}

/// Indices of one match of one rule of one route of a listener.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) route: usize,
    pub(super) rule: usize,
    pub(super) matched: usize,
    /// Position of the route in precedence order.
    pub(super) rank: usize,
}

/// The routes of one listener that share one hostname (or the catch-all).
#[derive(Debug, Default)]
struct HttpBucket {
    exact: FastMap<Box<str>, Vec<Candidate>>,
    /// Keyed by the prefix without trailing `/` (except `/` itself).
    prefix: FastMap<Box<str>, Vec<Candidate>>,
    regex: Vec<Candidate>,
}

#[derive(Debug)]
struct ListenerIndex {
    listener: Arc<Listener>,
    http: HostTable<HttpBucket>,
    grpc: HostTable<GrpcBucket>,
}

/// The HTTPRoute and GRPCRoute matcher of one HTTP(S) bind.
///
/// Built once per configuration by [`HttpRouter::new`]; [`route`](HttpRouter::route) and
/// [`route_grpc`](HttpRouter::route_grpc) take no lock and do not allocate in the common case.
#[derive(Debug)]
pub struct HttpRouter {
    listeners: HostTable<usize>,
    indexes: Vec<ListenerIndex>,
}

/// Position of each route in precedence order (oldest first, then namespace/name).
pub(super) fn route_ranks<'a>(
    orders: impl ExactSizeIterator<Item = &'a ir::RouteOrder>,
) -> Vec<usize> {
    let orders: Vec<_> = orders.collect();
    let mut by_order: Vec<usize> = (0..orders.len()).collect();
    by_order.sort_by(|&a, &b| orders[a].cmp(orders[b]).then(a.cmp(&b)));
    let mut ranks = vec![0; orders.len()];
    for (rank, &route) in by_order.iter().enumerate() {
        ranks[route] = rank;
    }
    ranks
}

/// Route hostnames without duplicates, `None` standing for "any host".
pub(super) fn route_hosts(hostnames: &[String]) -> Vec<Option<&str>> {
    if hostnames.is_empty() {
        return vec![None];
    }
    let mut hosts: Vec<Option<&str>> = hostnames.iter().map(|h| Some(h.as_str())).collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}

fn stored_prefix(prefix: &str) -> &str {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

impl HttpRouter {
    /// Indexes the listeners of one bind (most specific hostname first, as in
    /// [`ir::Bind::listeners`]).
    pub fn new(listeners: &[Arc<Listener>]) -> HttpRouter {
        let mut table = HostTable::new();
        let mut indexes = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let position = indexes.len();
            // Two listeners with one hostname should not exist; the first one keeps it.
            table.get_or_insert_with(listener.hostname.as_deref(), || position);
            indexes.push(ListenerIndex {
                listener: Arc::clone(listener),
                http: build_http(listener),
                grpc: super::grpc::build(listener),
            });
        }
        HttpRouter {
            listeners: table,
            indexes,
        }
    }

    fn listener_for(&self, host: &HostKey) -> Option<&ListenerIndex> {
        let (_, &position) = self.listeners.lookup_key(host.clone()).next()?;
        self.indexes.get(position)
    }

    /// Whether a request for `host` on a TLS connection whose SNI was `sni` belongs to another
    /// listener than the one the handshake chose (answer 421 Misdirected Request). Each name
    /// selects the listener with the most specific matching hostname; a host that selects no
    /// listener is not misdirected (it gets 404).
    pub fn misdirected(&self, sni: &str, host: &str) -> bool {
        let by_host = self.listener_for(&HostKey::new(host));
        let by_sni = self.listener_for(&HostKey::new(sni));
        match (by_sni, by_host) {
            (Some(a), Some(b)) => !Arc::ptr_eq(&a.listener, &b.listener),
            _ => false,
        }
    }

    /// The rule that serves `req`, or `None` (404).
    ///
    /// See the [module documentation](super) for the precedence rules.
    pub fn route<'r, H: RequestHeaders + ?Sized>(
        &'r self,
        req: &HttpRequest<'_, H>,
    ) -> Option<HttpRouteMatch<'r>> {
        let host = HostKey::new(req.host);
        let index = self.listener_for(&host)?;
        let listener = &index.listener;
        // Buckets come most specific hostname first, and hostname rank leads the precedence
        // key, so the first bucket with a match holds the best match overall.
        let candidate = index
            .http
            .lookup_key(host)
            .find_map(|(_, bucket)| bucket.best(listener, req))?;
        let route = listener.http_routes.get(candidate.route)?;
        let rule = route.rules.get(candidate.rule)?;
        let matched = rule.matches.get(candidate.matched)?;
        Some(HttpRouteMatch {
            listener,
            route,
            rule,
            matched,
        })
    }

    /// The GRPCRoute rule that serves a call to `/{service}/{method}`.
    ///
    /// See the [module documentation](super) for the precedence rules.
    pub fn route_grpc<'r, H: RequestHeaders + ?Sized>(
        &'r self,
        host: &str,
        service: &str,
        method: &str,
        headers: &H,
    ) -> GrpcRouting<'r> {
        let host = HostKey::new(host);
        let Some(index) = self.listener_for(&host) else {
            return GrpcRouting::NoGrpcRoutes;
        };
        let listener = &index.listener;
        let mut served = false;
        for (_, bucket) in index.grpc.lookup_key(host) {
            served = true;
            let Some(candidate) = bucket.best(listener, service, method, headers) else {
                continue;
            };
            let found = listener
                .grpc_routes
                .get(candidate.route)
                .and_then(|route| Some((route, route.rules.get(candidate.rule)?)));
            if let Some((route, rule)) = found {
                return GrpcRouting::Matched(GrpcRouteMatch {
                    listener,
                    route,
                    rule,
                });
            }
        }
        if served {
            GrpcRouting::Unmatched
        } else {
            GrpcRouting::NoGrpcRoutes
        }
    }
}

fn build_http(listener: &Listener) -> HostTable<HttpBucket> {
    let routes = &listener.http_routes;
    let ranks = route_ranks(routes.iter().map(|r| &r.order));
    let mut table: HostTable<HttpBucket> = HostTable::new();
    for (r, route) in routes.iter().enumerate() {
        for host in route_hosts(&route.hostnames) {
            let bucket = table.get_or_insert_with(host, HttpBucket::default);
            for (u, rule) in route.rules.iter().enumerate() {
                for (m, matched) in rule.matches.iter().enumerate() {
                    let candidate = Candidate {
                        route: r,
                        rule: u,
                        matched: m,
                        rank: ranks.get(r).copied().unwrap_or(usize::MAX),
                    };
                    match &matched.path {
                        PathMatch::Exact(path) => bucket
                            .exact
                            .entry(path.as_str().into())
                            .or_default()
                            .push(candidate),
                        PathMatch::Prefix(prefix) => bucket
                            .prefix
                            .entry(stored_prefix(prefix).into())
                            .or_default()
                            .push(candidate),
                        PathMatch::Regex(_) => bucket.regex.push(candidate),
                    }
                }
            }
        }
    }
    // Within one list the path rank ties, so the rest of the precedence key decides; sorting
    // once here lets `route` stop at the first candidate whose conditions hold.
    let key = |c: &Candidate| {
        let m = routes
            .get(c.route)
            .and_then(|r| r.rules.get(c.rule))
            .and_then(|u| u.matches.get(c.matched));
        let (method, headers, query) = m.map_or((false, 0, 0), |m| {
            (m.method.is_some(), m.headers.len(), m.query_params.len())
        });
        (
            Reverse(method),
            Reverse(headers),
            Reverse(query),
            c.rank,
            c.rule,
            c.matched,
        )
    };
    for bucket in table.values_mut() {
        for list in bucket.exact.values_mut().chain(bucket.prefix.values_mut()) {
            list.sort_by_key(key);
            list.shrink_to_fit();
        }
        bucket.regex.sort_by_key(key);
        bucket.regex.shrink_to_fit();
        bucket.exact.shrink_to_fit();
        bucket.prefix.shrink_to_fit();
    }
    table
}

impl HttpBucket {
    fn best<H: RequestHeaders + ?Sized>(
        &self,
        listener: &Listener,
        req: &HttpRequest<'_, H>,
    ) -> Option<Candidate> {
        let first = |list: &[Candidate]| {
            list.iter()
                .copied()
                .find(|c| http_match(listener, c).is_some_and(|m| conditions_hold(m, req)))
        };
        if let Some(found) = self.exact.get(req.path).and_then(|list| first(list)) {
            return Some(found);
        }
        let regex = self.regex.iter().copied().find(|c| {
            http_match(listener, c).is_some_and(|m| match &m.path {
                PathMatch::Regex(pattern) => pattern.is_match(req.path) && conditions_hold(m, req),
                _ => false,
            })
        });
        if regex.is_some() {
            return regex;
        }
        if self.prefix.is_empty() {
            return None;
        }
        // Longest prefix first: the whole path, then the path cut at each `/` from the right,
        // which visits every segment boundary once and makes `/v2example` skip `/v2`.
        let path = req.path;
        if !path.ends_with('/')
            && let Some(found) = self.prefix.get(path).and_then(|list| first(list))
        {
            return Some(found);
        }
        path.rmatch_indices('/').find_map(|(slash, _)| {
            let prefix = if slash == 0 { "/" } else { path.get(..slash)? };
            self.prefix.get(prefix).and_then(|list| first(list))
        })
    }
}

fn http_match<'l>(listener: &'l Listener, c: &Candidate) -> Option<&'l HttpMatch> {
    listener
        .http_routes
        .get(c.route)?
        .rules
        .get(c.rule)?
        .matches
        .get(c.matched)
}

fn conditions_hold<H: RequestHeaders + ?Sized>(m: &HttpMatch, req: &HttpRequest<'_, H>) -> bool {
    m.method
        .as_deref()
        .is_none_or(|method| method == req.method)
        && m.headers.iter().all(|h| header_holds(req.headers, h))
        && m.query_params.iter().all(|q| query_holds(req.query, q))
}

/// Whether the values of the header, joined with `,` as HTTP allows for repeated fields,
/// satisfy the condition; a single value is compared in place.
pub(super) fn header_holds<H: RequestHeaders + ?Sized>(
    headers: &H,
    condition: &HeaderMatch,
) -> bool {
    let mut values = headers.values(&condition.name);
    let Some(first) = values.next() else {
        return false;
    };
    match values.next() {
        None => condition.value.matches(first),
        Some(second) => {
            let mut joined = String::with_capacity(first.len() + second.len() + 1);
            joined.push_str(first);
            joined.push(',');
            joined.push_str(second);
            for value in values {
                joined.push(',');
                joined.push_str(value);
            }
            condition.value.matches(&joined)
        }
    }
}

/// The first occurrence of the parameter decides; values are compared raw, without
/// percent-decoding (see the module documentation).
fn query_holds(query: Option<&str>, condition: &QueryParamMatch) -> bool {
    let Some(query) = query else {
        return false;
    };
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(name, _)| *name == condition.name)
        .is_some_and(|(_, value)| condition.value.matches(value))
}
