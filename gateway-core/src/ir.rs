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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ir {
    /// Sockets to serve, sorted by (address, port, transport).
    pub binds: Vec<Bind>,
}

/// The transport a bind accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Transport {
    /// A TCP socket (HTTP, HTTPS, TLS, TCP listeners).
    Tcp,
    /// A UDP socket (UDP listeners).
    Udp,
}

/// What a bind speaks on accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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

/// As `Kind namespace/name/listener`, the way logs and metrics name it.
impl serde::Serialize for ListenerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.parent, self.name)
    }
}

/// What a listener does with a connection or request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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

/// Only the Secret it comes from: key material never leaves the Ir as data.
impl serde::Serialize for Certificate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut out = s.serialize_struct("Certificate", 1)?;
        out.serialize_field("source", &self.source)?;
        out.end()
    }
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientValidation {
    /// Trusted CA bundle, PEM.
    #[serde(skip)]
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

/// As `Kind namespace/name`.
impl serde::Serialize for RouteId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.fmt(f)
    }
}

/// Precedence of a route among routes with equally good matches: the oldest first, then
/// `{namespace}/{name}` alphabetically.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PathMatch {
    /// The whole path, byte for byte.
    Exact(String),
    /// Whole segments; stored without a trailing `/` except for `/` itself.
    Prefix(String),
    /// A regular expression that must match the whole path.
    Regex(Pattern),
}

/// A header condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    /// Value condition.
    pub value: StringMatch,
}

/// A query parameter condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryParamMatch {
    /// Parameter name, compared exactly.
    pub name: String,
    /// Value condition.
    pub value: StringMatch,
}

/// A condition on a string value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
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

impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Replace (or add) these headers.
    pub set: Vec<(String, String)>,
    /// Append these values.
    pub add: Vec<(String, String)>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

/// A path modification of a redirect or rewrite.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PathModifier {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the matched PathPrefix with this value.
    ReplacePrefixMatch(String),
}

/// `URLRewrite`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    /// Host sent to the backend.
    pub hostname: Option<String>,
    /// Path modification.
    pub path: Option<PathModifier>,
}

/// `RequestRedirect`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// Where copies go.
    pub backend: ServiceBackend,
    /// Share of requests mirrored: `numerator / denominator`.
    pub numerator: u32,
    /// See `numerator` (never 0).
    pub denominator: u32,
}

/// `CORS`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedBackend {
    /// Relative weight (> 0).
    pub weight: u32,
    /// Where requests go.
    pub backend: Backend,
    /// Filters applied only to requests sent to this backend.
    pub filters: Vec<HttpFilter>,
}

/// A resolved backendRef.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackend {
    /// The Service.
    pub service: ObjectKey,
    /// The Service port that was referenced.
    pub port: u16,
    /// Protocol to speak to the endpoints.
    pub protocol: AppProtocol,
    /// Ready endpoints (address and target port).
    pub endpoints: Arc<[SocketAddr]>,
    /// TLS to the endpoints, when a BackendTLSPolicy targets the Service port. Shared by
    /// every backend the same policy (and Gateway) applies to, so the data plane builds each
    /// TLS client once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Arc<BackendTls>>,
}

/// TLS from the gateway to a backend, from a BackendTLSPolicy (and the Gateway's backend
/// client certificate).
///
/// ```
/// use gateway_core::ir::{BackendTls, TrustAnchors};
/// let tls = BackendTls {
///     policy: gateway_core::model::ObjectKey::new(
///         gateway_core::model::ResourceKind::BackendTlsPolicy, "default", "api-tls"),
///     sni: "api.internal".into(),
///     trust: TrustAnchors::System,
///     subject_alt_names: Vec::new(),
///     client_certificate: None,
/// };
/// // Without subjectAltNames the certificate must carry the SNI name.
/// assert!(tls.subject_alt_names.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// The BackendTLSPolicy this comes from.
    pub policy: ObjectKey,
    /// Server name sent (SNI) and, without `subject_alt_names`, the name verified
    /// (`validation.hostname`).
    pub sni: String,
    /// What the backend's chain must lead to.
    pub trust: TrustAnchors,
    /// Names of which the certificate must carry at least one, instead of the SNI name
    /// (`validation.subjectAltNames`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectName>,
    /// Certificate offered to the backend (Gateway `spec.tls.backend.clientCertificateRef`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<Certificate>,
}

/// Trust anchors for backend certificates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrustAnchors {
    /// CA certificates, PEM (`validation.caCertificateRefs`), named by their ConfigMaps or
    /// Secrets.
    Bundle {
        /// The ConfigMaps and Secrets the bundle was read from.
        sources: Vec<ObjectKey>,
        /// Concatenated `ca.crt` values.
        #[serde(skip)]
        pem: Arc<[u8]>,
    },
    /// The platform's trust store (`wellKnownCACertificates: System`).
    System,
}

/// A subject alternative name a backend certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SubjectName {
    /// A DNS name (wildcard certificates match as usual).
    Dns(String),
    /// A URI, compared exactly (SPIFFE ids).
    Uri(String),
}

/// How the gateway talks to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum AppProtocol {
    /// HTTP/1.1 (WebSocket upgrades pass through).
    Http1,
    /// HTTP/2 with prior knowledge (`appProtocol: kubernetes.io/h2c`, and every GRPCRoute
    /// backend); over TLS ([`ServiceBackend::tls`]) it is negotiated with ALPN `h2`.
    H2c,
    /// A byte stream (TCPRoute, TLSRoute).
    Tcp,
    /// Datagrams (UDPRoute).
    Udp,
}

/// Route timeouts; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Whole client transaction.
    #[serde(serialize_with = "duration", skip_serializing_if = "Option::is_none")]
    pub request: Option<Duration>,
    /// One upstream attempt.
    #[serde(serialize_with = "duration", skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<Duration>,
}

/// Retry policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Status codes that are retried.
    pub codes: Vec<u16>,
    /// Maximum number of retries after the first attempt.
    pub attempts: u32,
    /// Minimum wait between attempts.
    #[serde(serialize_with = "duration", skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// A GRPCRoute attached to one listener.
pub type GrpcRoute = Route<GrpcRule>;

/// One rule of a GRPCRoute.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcMatch {
    /// Service condition; `None` matches any service.
    pub service: Option<StringMatch>,
    /// Method condition; `None` matches any method.
    pub method: Option<StringMatch>,
    /// Header conditions (names lower-case), ANDed.
    pub headers: Vec<HeaderMatch>,
}

/// A TLSRoute attached to one listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L4Route {
    /// Which route.
    pub id: RouteId,
    /// Backends by weight; never empty.
    pub backends: Vec<WeightedBackend>,
}

// === Serialisation helpers ===

/// Durations as Gateway API durations (`10s`, `250ms`, `1.5s`), not `{secs, nanos}`.
fn duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        None => s.serialize_none(),
        Some(d) if d.subsec_nanos() == 0 => s.collect_str(&format_args!("{}s", d.as_secs())),
        Some(d) if d.as_millis() < 1000 && d.subsec_nanos() % 1_000_000 == 0 => {
            s.collect_str(&format_args!("{}ms", d.as_millis()))
        }
        Some(d) => s.collect_str(&format_args!("{}s", d.as_secs_f64())),
    }
}

impl Ir {
    /// Every Service backend the Ir forwards to (HTTP and gRPC rules, TLS routes, TCP and UDP
    /// routes; mirrors and invalid backends are not), in bind and listener order, repeats
    /// included.
    ///
    /// ```
    /// assert_eq!(gateway_core::ir::Ir::default().service_backends().count(), 0);
    /// ```
    pub fn service_backends(&self) -> impl Iterator<Item = &ServiceBackend> {
        fn forwarded(action: &RuleAction) -> &[WeightedBackend] {
            match action {
                RuleAction::Forward(backends) => backends,
                _ => &[],
            }
        }
        self.binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|listener| {
                let http = listener.http_routes.iter().flat_map(|r| &r.rules);
                let grpc = listener.grpc_routes.iter().flat_map(|r| &r.rules);
                http.flat_map(|rule| forwarded(&rule.action))
                    .chain(grpc.flat_map(|rule| forwarded(&rule.action)))
                    .chain(listener.tls_routes.iter().flat_map(|r| &r.backends))
                    .chain(listener.l4_route.iter().flat_map(|r| &r.backends))
            })
            .filter_map(|weighted| match &weighted.backend {
                Backend::Service(service) => Some(service),
                Backend::Invalid { .. } => None,
            })
    }

    /// The Ir as JSON (the admin endpoint's `/config`, `gateway check`, golden files): every
    /// field as data, key material left out (a certificate is named by its Secret).
    ///
    /// ```
    /// let ir = gateway_core::ir::Ir::default();
    /// assert_eq!(ir.summary(), serde_json::json!({"binds": []}));
    /// ```
    pub fn summary(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
