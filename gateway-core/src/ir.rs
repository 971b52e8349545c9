//! The intermediate representation the data plane executes.
//!
//! The Ir holds no Kubernetes types: every reference is resolved (Secrets to PEM, Services to
//! endpoint addresses), every default applied, every regex compiled. It is plain data,
//! `Clone + Eq + Hash`, so that the data plane can diff it and keep what did not change.
//!
//! Shape: binds (an address, a port and a transport) carry the Gateway listeners that share
//! them, most specific hostname first; each listener carries the routes attached to it, with
//! the hostnames intersected with the listener's.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::model::ObjectKey;

/// The whole data-plane configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ir {
    /// Sockets to serve, sorted by (address, port, transport).
    pub binds: Vec<Bind>,
}

/// The transport a bind accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// A TCP socket (HTTP, HTTPS, TLS, TCP listeners).
    Tcp,
    /// A UDP socket (UDP listeners).
    Udp,
}

/// What a bind speaks on accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindProtocol {
    /// Cleartext HTTP/1.1 and h2c (prior knowledge).
    Http,
    /// TLS: SNI picks a listener, which terminates (HTTPS, TLS Terminate) or passes through.
    Tls,
    /// Raw TCP to one route's backends.
    Tcp,
    /// UDP datagrams to one route's backends.
    Udp,
}

impl BindProtocol {
    /// The socket type.
    pub fn transport(self) -> Transport {
        match self {
            BindProtocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        }
    }
}

/// One socket to bind and the listeners that share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bind {
    /// Address to bind.
    pub address: IpAddr,
    /// Port to bind (the listener port plus any configured offset).
    pub port: u16,
    /// Protocol spoken on the socket.
    pub protocol: BindProtocol,
    /// Listeners sharing the socket, most specific hostname first (exact, then longer
    /// wildcards, then none), ties by Gateway then listener name.
    pub listeners: Vec<Arc<Listener>>,
}

impl Bind {
    /// The socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// Identifies a listener: its Gateway (or ListenerSet) and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId {
    /// The Gateway (or ListenerSet) that declares the listener.
    pub parent: ObjectKey,
    /// `listeners[].name`.
    pub name: String,
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.parent, self.name)
    }
}

/// What a listener does with a connection or request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerProtocol {
    /// HTTP routes over cleartext.
    Http,
    /// HTTP routes over terminated TLS.
    Https,
    /// TLSRoutes, TLS passed through untouched.
    TlsPassthrough,
    /// TLSRoutes, TLS terminated and the plaintext stream forwarded.
    TlsTerminate,
    /// One TCPRoute.
    Tcp,
    /// One UDPRoute.
    Udp,
}

/// A Gateway listener as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    /// Gateway and listener name (for logs, metrics and status).
    pub id: ListenerId,
    /// Lower-case hostname (`app.me`, `*.example.com`); `None` matches any.
    pub hostname: Option<String>,
    /// Port as declared in the manifest (redirects derive their port from it).
    pub port: u16,
    /// What the listener serves.
    pub protocol: ListenerProtocol,
    /// Certificates for TLS termination (HTTPS, TLS Terminate).
    pub tls: Option<TlsTermination>,
    /// HTTPRoutes (HTTP, HTTPS), oldest first (`RouteOrder`, then id); the router ranks matches.
    pub http_routes: Vec<HttpRoute>,
    /// GRPCRoutes (HTTP, HTTPS).
    pub grpc_routes: Vec<GrpcRoute>,
    /// TLSRoutes (TLS listeners).
    pub tls_routes: Vec<TlsRoute>,
    /// The TCPRoute or UDPRoute that carries traffic: the oldest accepted one (others stay
    /// Accepted but unused, as the spec says).
    pub l4_route: Option<L4Route>,
}

/// TLS termination settings of a listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsTermination {
    /// Certificates in `certificateRefs` order; each is chosen by the names it carries,
    /// the first is the default.
    pub certificates: Vec<Certificate>,
    /// Client certificate validation (Gateway `spec.tls.frontend`).
    pub client_validation: Option<ClientValidation>,
}

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Certificate {
    /// The Secret it came from.
    pub source: ObjectKey,
    /// `tls.crt`: the chain, leaf first.
    pub chain_pem: Arc<[u8]>,
    /// `tls.key`.
    pub key_pem: Arc<[u8]>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Certificate")
            .field("source", &self.source)
            .field("chain_pem_len", &self.chain_pem.len())
            .finish_non_exhaustive()
    }
}

/// Client certificate validation of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientValidation {
    /// Trusted CA bundle, PEM.
    pub ca_pem: Arc<[u8]>,
    /// Accept connections whose client certificate is missing or invalid
    /// (`AllowInsecureFallback`).
    pub allow_insecure_fallback: bool,
}

/// Identifies a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    /// Kind, namespace and name.
    pub key: ObjectKey,
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.fmt(f)
    }
}

/// Precedence of a route among routes with equally good matches: the oldest first, then
/// `{namespace}/{name}` alphabetically.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteOrder {
    /// Creation time in seconds; `None` (no timestamp, as in plain files) sorts after every
    /// known time so that namespace/name decides among such routes.
    pub created: (bool, i64),
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl RouteOrder {
    /// Builds the order key from a creation time and the route's namespace and name.
    pub fn new(created: Option<i64>, namespace: &str, name: &str) -> Self {
        RouteOrder {
            created: match created {
                Some(t) => (false, t),
                None => (true, 0),
            },
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// An HTTPRoute attached to one listener.
pub type HttpRoute = Route<HttpRule>;

/// An HTTPRoute or GRPCRoute attached to one listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route<Rule> {
    /// Which route.
    pub id: RouteId,
    /// Tie-break order across routes.
    pub order: RouteOrder,
    /// Lower-case hostnames after intersection with the listener; empty means any host the
    /// listener accepts.
    pub hostnames: Vec<String>,
    /// Rules in manifest order (dropped invalid rules leave gaps in their `index`).
    pub rules: Vec<Rule>,
}

/// One rule of an HTTPRoute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpRule {
    /// Index in `spec.rules`.
    pub index: usize,
    /// `spec.rules[].name`.
    pub name: Option<String>,
    /// Matches, ORed (never empty: the default is PathPrefix `/`).
    pub matches: Vec<HttpMatch>,
    /// Filters applied before the action (header modifiers, URL rewrite, mirrors, CORS),
    /// in manifest order.
    pub filters: Vec<HttpFilter>,
    /// What answers the request.
    pub action: RuleAction,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Retry policy.
    pub retry: Option<Retry>,
}

/// One match of an HTTPRoute rule: every condition must hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpMatch {
    /// Path condition.
    pub path: PathMatch,
    /// Method, upper-case.
    pub method: Option<String>,
    /// Header conditions (names lower-case), ANDed.
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions (names case-sensitive), ANDed.
    pub query_params: Vec<QueryParamMatch>,
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathMatch {
    /// The whole path, byte for byte.
    Exact(String),
    /// Whole segments; stored without a trailing `/` except for `/` itself.
    Prefix(String),
    /// A regular expression that must match the whole path.
    Regex(Pattern),
}

/// A header condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    /// Value condition.
    pub value: StringMatch,
}

/// A query parameter condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryParamMatch {
    /// Parameter name, compared exactly.
    pub name: String,
    /// Value condition.
    pub value: StringMatch,
}

/// A condition on a string value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StringMatch {
    /// Equal values.
    Exact(String),
    /// A regular expression that must match the whole value.
    Regex(Pattern),
}

impl StringMatch {
    /// Whether `value` satisfies the condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(expected) => expected == value,
            StringMatch::Regex(pattern) => pattern.is_match(value),
        }
    }
}

/// A compiled regular expression, anchored to match whole values.
///
/// Compiled once, when the Ir is built; compared and hashed by its source text.
#[derive(Clone)]
pub struct Pattern {
    source: Arc<str>,
    regex: Arc<regex::Regex>,
}

impl Pattern {
    /// Compiles `source` so that it must match a whole value (`^(?:source)$`).
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()?;
        Ok(Pattern {
            source: source.into(),
            regex: Arc::new(regex),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

/// A filter of an HTTPRoute or GRPCRoute rule or backendRef.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HttpFilter {
    /// Modify the request headers.
    RequestHeaders(HeaderModifier),
    /// Modify the response headers.
    ResponseHeaders(HeaderModifier),
    /// Rewrite host and path before forwarding.
    UrlRewrite(UrlRewrite),
    /// Send a copy of the request, without waiting for it.
    Mirror(Mirror),
    /// Answer CORS preflights and decorate responses.
    Cors(Cors),
    /// Answer with a redirect instead of forwarding: a RequestRedirect filter on a backendRef
    /// (on a rule it is the rule's [`RuleAction::Redirect`]).
    Redirect(Redirect),
}

/// Header modifications with lower-case names: `set` replaces, `add` appends (comma-joined
/// with an existing value), `remove` deletes. A name appears in at most one list (validation
/// enforces it), so the order of application does not matter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeaderModifier {
    /// Replace (or add) these headers.
    pub set: Vec<(String, String)>,
    /// Append these values.
    pub add: Vec<(String, String)>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

/// A path modification of a redirect or rewrite.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathModifier {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the matched PathPrefix with this value.
    ReplacePrefixMatch(String),
}

/// `URLRewrite`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlRewrite {
    /// Host sent to the backend.
    pub hostname: Option<String>,
    /// Path modification.
    pub path: Option<PathModifier>,
}

/// `RequestRedirect`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Redirect {
    /// `http` or `https`; `None` keeps the request's.
    pub scheme: Option<String>,
    /// Host; `None` keeps the request's.
    pub hostname: Option<String>,
    /// Path modification; `None` keeps the request's path.
    pub path: Option<PathModifier>,
    /// Explicit port; `None` derives it (scheme default, else the listener port).
    pub port: Option<u16>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// `RequestMirror`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mirror {
    /// Where copies go.
    pub backend: ServiceBackend,
    /// Share of requests mirrored: `numerator / denominator`.
    pub numerator: u32,
    /// See `numerator` (never 0).
    pub denominator: u32,
}

/// `CORS`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cors {
    /// Allowed origins as written (`*`, `https://a.example`, `https://*.example.com`).
    pub allow_origins: Vec<String>,
    /// Whether credentials are allowed.
    pub allow_credentials: bool,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    pub allow_headers: Vec<String>,
    /// Exposed response headers.
    pub expose_headers: Vec<String>,
    /// Preflight cache lifetime in seconds.
    pub max_age: u32,
}

/// What answers requests that a rule matched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Forward to one of these backends, chosen by weight (weight-0 backends are dropped;
    /// never empty).
    Forward(Vec<WeightedBackend>),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with this status and no upstream (500 for a rule without usable backends or
    /// with an unresolved ExtensionRef, as the spec requires).
    Respond {
        /// Status code.
        status: u16,
        /// Why, for logs.
        reason: String,
    },
}

/// A backend with its weight and backendRef-level filters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WeightedBackend {
    /// Relative weight (> 0).
    pub weight: u32,
    /// Where requests go.
    pub backend: Backend,
    /// Filters applied only to requests sent to this backend.
    pub filters: Vec<HttpFilter>,
}

/// A resolved backendRef.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A Service port resolved to endpoints (possibly none: then 503).
    Service(ServiceBackend),
    /// An invalid reference: its share of requests gets a 500 (HTTP), UNAVAILABLE (gRPC), or a
    /// rejected connection (TCP, TLS, UDP).
    Invalid {
        /// What was wrong, for logs.
        reason: String,
    },
}

/// A Service port with its ready endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceBackend {
    /// The Service.
    pub service: ObjectKey,
    /// The Service port that was referenced.
    pub port: u16,
    /// Protocol to speak to the endpoints.
    pub protocol: AppProtocol,
    /// Ready endpoints (address and target port).
    pub endpoints: Arc<[SocketAddr]>,
}

/// How the gateway talks to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppProtocol {
    /// HTTP/1.1 (WebSocket upgrades pass through).
    Http1,
    /// HTTP/2 without TLS (`appProtocol: kubernetes.io/h2c`, and every GRPCRoute backend).
    H2c,
    /// A byte stream (TCPRoute, TLSRoute).
    Tcp,
    /// Datagrams (UDPRoute).
    Udp,
}

/// Route timeouts; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Whole client transaction.
    pub request: Option<Duration>,
    /// One upstream attempt.
    pub backend_request: Option<Duration>,
}

/// Retry policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Retry {
    /// Status codes that are retried.
    pub codes: Vec<u16>,
    /// Maximum number of retries after the first attempt.
    pub attempts: u32,
    /// Minimum wait between attempts.
    pub backoff: Option<Duration>,
}

/// A GRPCRoute attached to one listener.
pub type GrpcRoute = Route<GrpcRule>;

/// One rule of a GRPCRoute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcRule {
    /// Index in `spec.rules`.
    pub index: usize,
    /// `spec.rules[].name`.
    pub name: Option<String>,
    /// Matches, ORed (never empty: the default matches every method).
    pub matches: Vec<GrpcMatch>,
    /// Filters applied before forwarding.
    pub filters: Vec<HttpFilter>,
    /// What answers the call (never a redirect).
    pub action: RuleAction,
}

/// One match of a GRPCRoute rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcMatch {
    /// Service condition; `None` matches any service.
    pub service: Option<StringMatch>,
    /// Method condition; `None` matches any method.
    pub method: Option<StringMatch>,
    /// Header conditions (names lower-case), ANDed.
    pub headers: Vec<HeaderMatch>,
}

/// A TLSRoute attached to one listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsRoute {
    /// Which route.
    pub id: RouteId,
    /// Tie-break order across routes.
    pub order: RouteOrder,
    /// Lower-case SNI names after intersection with the listener (never empty).
    pub hostnames: Vec<String>,
    /// Backends by weight; never empty (a route without usable backends holds one
    /// [`Backend::Invalid`] so that connections are rejected).
    pub backends: Vec<WeightedBackend>,
}

/// The TCPRoute or UDPRoute serving a listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct L4Route {
    /// Which route.
    pub id: RouteId,
    /// Backends by weight; never empty.
    pub backends: Vec<WeightedBackend>,
}

// === Summary ===

impl Ir {
    /// A readable summary as JSON: binds, listeners, routes with their rules in manifest order,
    /// backends with endpoints. Key material is never included. Used by golden tests, the
    /// admin endpoint and `gateway check`.
    pub fn summary(&self) -> serde_json::Value {
        use serde_json::json;
        let binds: Vec<_> = self
            .binds
            .iter()
            .map(|bind| {
                json!({
                    "bind": bind.socket_addr().to_string(),
                    "protocol": format!("{:?}", bind.protocol),
                    "listeners": bind.listeners.iter().map(|l| listener_summary(l)).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "binds": binds })
    }
}

fn listener_summary(l: &Listener) -> serde_json::Value {
    use serde_json::json;
    let mut out = json!({
        "listener": l.id.to_string(),
        "hostname": l.hostname.as_deref().unwrap_or("*"),
        "port": l.port,
        "protocol": format!("{:?}", l.protocol),
    });
    let obj = out.as_object_mut();
    let Some(obj) = obj else { return out };
    if let Some(tls) = &l.tls {
        obj.insert(
            "certificates".into(),
            json!(
                tls.certificates
                    .iter()
                    .map(|c| c.source.to_string())
                    .collect::<Vec<_>>()
            ),
        );
        if let Some(v) = &tls.client_validation {
            obj.insert(
                "clientValidation".into(),
                json!(if v.allow_insecure_fallback {
                    "AllowInsecureFallback"
                } else {
                    "AllowValidOnly"
                }),
            );
        }
    }
    if !l.http_routes.is_empty() {
        let routes: Vec<_> = l
            .http_routes
            .iter()
            .map(|r| {
                json!({
                    "route": r.id.to_string(),
                    "hostnames": r.hostnames,
                    "rules": r.rules.iter().map(|rule| json!({
                        "index": rule.index,
                        "matches": rule.matches.iter().map(http_match_summary).collect::<Vec<_>>(),
                        "filters": rule.filters.iter().map(filter_summary).collect::<Vec<_>>(),
                        "action": action_summary(&rule.action),
                        "timeouts": format!("{:?}", rule.timeouts),
                        "retry": rule.retry.as_ref().map(|r| format!("{r:?}")),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        obj.insert("httpRoutes".into(), json!(routes));
    }
    if !l.grpc_routes.is_empty() {
        let routes: Vec<_> = l
            .grpc_routes
            .iter()
            .map(|r| {
                json!({
                    "route": r.id.to_string(),
                    "hostnames": r.hostnames,
                    "rules": r.rules.iter().map(|rule| json!({
                        "index": rule.index,
                        "matches": rule.matches.iter().map(|m| {
                            let part = |s: &Option<StringMatch>| s.as_ref().map_or("*".to_owned(), string_match_summary);
                            let mut text = format!("{}/{}", part(&m.service), part(&m.method));
                            for h in &m.headers {
                                text.push_str(&format!(" {}{}", h.name, string_match_op(&h.value)));
                            }
                            text
                        }).collect::<Vec<_>>(),
                        "action": action_summary(&rule.action),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        obj.insert("grpcRoutes".into(), json!(routes));
    }
    if !l.tls_routes.is_empty() {
        let routes: Vec<_> = l
            .tls_routes
            .iter()
            .map(|r| {
                json!({
                    "route": r.id.to_string(),
                    "hostnames": r.hostnames,
                    "backends": r.backends.iter().map(backend_summary).collect::<Vec<_>>(),
                })
            })
            .collect();
        obj.insert("tlsRoutes".into(), json!(routes));
    }
    if let Some(r) = &l.l4_route {
        obj.insert(
            "route".into(),
            json!({
                "route": r.id.to_string(),
                "backends": r.backends.iter().map(backend_summary).collect::<Vec<_>>(),
            }),
        );
    }
    out
}

fn string_match_summary(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => v.clone(),
        StringMatch::Regex(p) => format!("~{}", p.as_str()),
    }
}

fn string_match_op(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => format!("={v}"),
        StringMatch::Regex(p) => format!("~{}", p.as_str()),
    }
}

fn http_match_summary(m: &HttpMatch) -> String {
    let mut text = match &m.path {
        PathMatch::Exact(p) => format!("Exact {p}"),
        PathMatch::Prefix(p) => format!("PathPrefix {p}"),
        PathMatch::Regex(p) => format!("RegularExpression {}", p.as_str()),
    };
    if let Some(method) = &m.method {
        text.push_str(&format!(" method={method}"));
    }
    for h in &m.headers {
        text.push_str(&format!(" header:{}{}", h.name, string_match_op(&h.value)));
    }
    for q in &m.query_params {
        text.push_str(&format!(" query:{}{}", q.name, string_match_op(&q.value)));
    }
    text
}

fn filter_summary(f: &HttpFilter) -> String {
    format!("{f:?}")
}

fn action_summary(a: &RuleAction) -> serde_json::Value {
    use serde_json::json;
    match a {
        RuleAction::Forward(backends) => json!({
            "forward": backends.iter().map(backend_summary).collect::<Vec<_>>()
        }),
        RuleAction::Redirect(r) => json!({ "redirect": format!("{r:?}") }),
        RuleAction::Respond { status, reason } => json!({ "respond": status, "reason": reason }),
    }
}

fn backend_summary(b: &WeightedBackend) -> String {
    let mut text = match &b.backend {
        Backend::Service(s) => format!(
            "{}:{} {:?} weight {} -> [{}]",
            s.service,
            s.port,
            s.protocol,
            b.weight,
            s.endpoints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Backend::Invalid { reason } => format!("invalid weight {} ({reason})", b.weight),
    };
    for f in &b.filters {
        text.push_str(&format!(" +{}", filter_summary(f)));
    }
    text
}
