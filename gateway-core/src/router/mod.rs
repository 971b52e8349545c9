//! The per-request matching engine.
//!
//! Routers are built once per configuration from the [`Ir`](crate::ir::Ir) and then only
//! read: [`HttpRouter`] for HTTP(S) binds (HTTPRoutes and GRPCRoutes), [`SniRouter`] for TLS
//! binds. Lookups take no lock, do not allocate in the common case, and cost what the request
//! host and path cost, not what the number of routes on other hostnames does.
//!
//! # Decided semantics
//!
//! - **Listener isolation.** The request host picks the single most specific listener of the
//!   bind whose hostname matches (exact, then the longest wildcard, then the listener without
//!   hostname). Only that listener's routes are considered; a request no listener accepts gets
//!   no match. A wildcard `*.example.com` matches one or more labels in front of
//!   `example.com`, never `example.com` itself. Host matching ignores ASCII case, a `:port`
//!   suffix and one trailing dot.
//! - **HTTP precedence.** Across every rule of every route of the listener, the match with
//!   the greatest key wins:
//!   1. the route hostname that matched: an exact name beats a wildcard, a longer wildcard a
//!      shorter one, and a route without hostnames ranks last;
//!   2. the path: `Exact`, then `RegularExpression` (our implementation-specific choice; all
//!      regex matches rank equal on the path and the following criteria decide), then
//!      `PathPrefix` with more characters;
//!   3. a method match over none;
//!   4. more header matches;
//!   5. more query parameter matches;
//!   6. the older route, then `{namespace}/{name}` ([`RouteOrder`](crate::ir::RouteOrder));
//!   7. the earlier rule, then the earlier match within the rule.
//!
//!   Because hostname rank comes first, a request falls through to wildcard-host routes, and
//!   then to routes without hostnames, only when no rule of a more specific hostname matches.
//! - **Paths.** [`normalize_path`] runs before matching, and the normalised path is also what
//!   the backend receives, so that the backend sees exactly the path the decision was made on.
//!   `PathPrefix` compares whole segments (`/v2` matches `/v2`, `/v2/` and `/v2/x`, not
//!   `/v2example`); `Exact` compares bytes, case-sensitively.
//! - **Headers.** The values of a repeated header are joined with `,` before comparison.
//! - **Query parameters.** The raw query is split on `&` and then on the first `=`; names are
//!   compared exactly and values raw, without percent-decoding (`a%20b` does not equal `a b`).
//!   When a name repeats, its first occurrence decides (the spec leaves this to
//!   implementations).
//! - **gRPC precedence.** Route hostname as above; then the characters of the matching
//!   service, then of the matching method, where an `Exact` condition counts its length and an
//!   absent or regex condition counts 0; then more header matches; then route order, rule
//!   order, match order. See [`GrpcRouting`] for what an unmatched call becomes.
//! - **TLS.** [`SniRouter`] picks the listener by SNI the same way; a client without SNI only
//!   reaches a listener without hostname.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use gateway_core::ir::*;
//! use gateway_core::model::{ObjectKey, ResourceKind};
//! use gateway_core::router::{HttpRequest, HttpRouter, normalize_path};
//!
//! let rule = |index: usize, path: PathMatch| HttpRule {
//!     index,
//!     name: None,
//!     matches: vec![HttpMatch { path, method: None, headers: vec![], query_params: vec![] }],
//!     filters: vec![],
//!     action: RuleAction::Respond { status: 200, reason: String::new() },
//!     timeouts: Timeouts::default(),
//!     retry: None,
//! };
//! let route = HttpRoute {
//!     id: RouteId { key: ObjectKey::new(ResourceKind::HttpRoute, "default", "web") },
//!     order: RouteOrder::new(Some(0), "default", "web"),
//!     hostnames: vec!["shop.example.com".into()],
//!     rules: vec![
//!         rule(0, PathMatch::Prefix("/".into())),
//!         rule(1, PathMatch::Prefix("/api".into())),
//!     ],
//! };
//! let listener = Arc::new(Listener {
//!     id: ListenerId {
//!         parent: ObjectKey::new(ResourceKind::Gateway, "default", "gw"),
//!         name: "http".into(),
//!     },
//!     hostname: None,
//!     port: 80,
//!     protocol: ListenerProtocol::Http,
//!     tls: None,
//!     http_routes: vec![route],
//!     grpc_routes: vec![],
//!     tls_routes: vec![],
//!     l4_route: None,
//! });
//! let router = HttpRouter::new(&[listener]);
//!
//! let path = normalize_path("/api/./v1//users")?;
//! assert_eq!(path, "/api/v1/users");
//! let headers: &[(&str, &str)] = &[("accept", "*/*")];
//! let request = HttpRequest {
//!     host: "Shop.Example.com:8080",
//!     path: &path,
//!     query: None,
//!     method: "GET",
//!     headers,
//! };
//! let found = router.route(&request).expect("a rule matches");
//! assert_eq!(found.rule.index, 1);
//! assert_eq!(found.matched.path, PathMatch::Prefix("/api".into()));
//!
//! let other_host = HttpRequest { host: "other.example.com", ..request };
//! assert!(router.route(&other_host).is_none());
//! # Ok::<(), gateway_core::router::PathError>(())
//! ```

use std::collections::HashMap;

mod grpc;
mod host;
mod http;
mod path;
mod sni;
#[cfg(test)]
mod tests;

pub use self::host::{HostCandidates, HostMatch, HostTable};
pub use self::http::{HttpRequest, HttpRouteMatch, HttpRouter};
pub use self::path::{PathError, normalize_path};
pub use self::sni::SniRouter;

use crate::ir;

/// Hash maps of the indexes; an alias so that the hasher can be changed in one place.
type FastMap<K, V> = HashMap<K, V>;

/// Read access to request headers, for header matches.
pub trait RequestHeaders {
    /// Every value of the header `name` (given lower-case; implementors compare names
    /// ASCII case-insensitively), in request order.
    fn values(&self, name: &str) -> impl Iterator<Item = &str>;
}

impl RequestHeaders for [(&str, &str)] {
    fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }
}

impl RequestHeaders for [(String, String)] {
    fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RequestHeaders for Vec<(String, String)> {
    fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.as_slice().values(name)
    }
}

/// The outcome of [`HttpRouter::route_grpc`].
#[derive(Clone, Copy, Debug)]
pub enum GrpcRouting<'r> {
    /// A GRPCRoute rule serves the call.
    Matched(GrpcRouteMatch<'r>),
    /// A GRPCRoute serves this host but no rule matched: answer `UNIMPLEMENTED`.
    Unmatched,
    /// No GRPCRoute on the selected listener serves this host (or no listener accepts the
    /// host): the data plane falls back to HTTPRoutes.
    NoGrpcRoutes,
}

/// The GRPCRoute rule that serves a call.
#[derive(Clone, Copy, Debug)]
pub struct GrpcRouteMatch<'r> {
    /// The listener whose hostname the request matched.
    pub listener: &'r std::sync::Arc<ir::Listener>,
    /// The route.
    pub route: &'r ir::GrpcRoute,
    /// The rule.
    pub rule: &'r ir::GrpcRule,
}
