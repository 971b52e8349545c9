//! HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and UDPRoute.

use serde::{Deserialize, Serialize};

use super::de::{nullable, string_enum};
use super::meta::{BackendRef, LocalObjectReference, Object, ParentReference, RouteStatus};

/// `HTTPRoute`.
pub type HttpRoute = Object<HttpRouteSpec, RouteStatus>;
/// `GRPCRoute`.
pub type GrpcRoute = Object<GrpcRouteSpec, RouteStatus>;
/// `TLSRoute` (v1, v1alpha3 and v1alpha2 share this shape).
pub type TlsRoute = Object<TlsRouteSpec, RouteStatus>;
/// `TCPRoute` (v1 and v1alpha2).
pub type TcpRoute = Object<L4RouteSpec, RouteStatus>;
/// `UDPRoute` (v1 and v1alpha2).
pub type UdpRoute = Object<L4RouteSpec, RouteStatus>;

/// `HTTPRoute.spec`; the CRD defaults absent `rules` to one rule matching PathPrefix `/`.
pub type HttpRouteSpec = RouteSpec<HttpRouteRule>;
/// `GRPCRoute.spec`.
pub type GrpcRouteSpec = RouteSpec<GrpcRouteRule>;
/// `TLSRoute.spec`: hostnames are required in v1, which allows exactly one rule (v1alpha2
/// allowed several, whose backends are merged).
pub type TlsRouteSpec = RouteSpec<L4RouteRule>;

/// The `spec` of the Route kinds with hostnames (HTTPRoute, GRPCRoute, TLSRoute): upstream's
/// `CommonRouteSpec` plus `hostnames` and the kind's `rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[serde(bound(deserialize = "Rule: Deserialize<'de> + Default"))]
pub struct RouteSpec<Rule> {
    /// Gateways (or ListenerSets) the route attaches to.
    #[serde(deserialize_with = "nullable")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route serves (HTTP `Host`, gRPC `:authority` or TLS SNI); empty means
    /// those of the listener.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules.
    #[serde(deserialize_with = "nullable")]
    pub rules: Vec<Rule>,
    /// Experimental: attach to default Gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_default_gateways: Option<String>,
}

/// `HTTPRoute.spec.rules[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Optional rule name (Extended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches, ORed; empty means PathPrefix `/`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to every request of the rule.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Request and backend-request timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Retry policy (experimental channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRouteRetry>,
    /// Session persistence (experimental channel; its shape changed after v1.6.1, so it is kept
    /// as raw JSON until it is served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<serde_json::Value>,
}

/// `HTTPRoute.spec.rules[].matches[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path match; the CRD default is PathPrefix `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Header matches, ANDed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameter matches, ANDed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpQueryParamMatch>,
    /// Method match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
}

string_enum! {
    /// `path.type`.
    pub enum PathMatchType {
        /// The whole path, case-sensitive.
        Exact = "Exact",
        /// Whole `/`-separated segments.
        PathPrefix = "PathPrefix",
        /// A regular expression over the whole path.
        RegularExpression = "RegularExpression",
    }
}

string_enum! {
    /// `type` of header, query parameter and gRPC method matches.
    pub enum StringMatchType {
        /// Equal values.
        Exact = "Exact",
        /// A regular expression over the whole value.
        RegularExpression = "RegularExpression",
    }
}

string_enum! {
    /// HTTP methods a route may match.
    pub enum HttpMethod {
        /// GET
        Get = "GET",
        /// HEAD
        Head = "HEAD",
        /// POST
        Post = "POST",
        /// PUT
        Put = "PUT",
        /// DELETE
        Delete = "DELETE",
        /// CONNECT
        Connect = "CONNECT",
        /// OPTIONS
        Options = "OPTIONS",
        /// TRACE
        Trace = "TRACE",
        /// PATCH
        Patch = "PATCH",
    }
}

/// `matches[].path`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// Match type; default `PathPrefix`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<PathMatchType>,
    /// Value; default `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl HttpPathMatch {
    /// The type, with the default applied.
    pub fn match_type(&self) -> PathMatchType {
        self.type_.clone().unwrap_or(PathMatchType::PathPrefix)
    }
    /// The value, with the default applied.
    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("/")
    }
}

/// `matches[].headers[]` (also used by GRPCRoute).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpHeaderMatch {
    /// Match type; default `Exact`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<StringMatchType>,
    /// Header name, case-insensitive.
    pub name: String,
    /// Value to match.
    pub value: String,
}

/// `matches[].queryParams[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpQueryParamMatch {
    /// Match type; default `Exact`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<StringMatchType>,
    /// Parameter name, case-sensitive.
    pub name: String,
    /// Value to match.
    pub value: String,
}

string_enum! {
    /// `filters[].type`.
    pub enum FilterType {
        /// Modify request headers.
        RequestHeaderModifier = "RequestHeaderModifier",
        /// Modify response headers.
        ResponseHeaderModifier = "ResponseHeaderModifier",
        /// Send a copy of the request elsewhere.
        RequestMirror = "RequestMirror",
        /// Answer with a redirect.
        RequestRedirect = "RequestRedirect",
        /// Rewrite host and path before forwarding.
        UrlRewrite = "URLRewrite",
        /// Implementation-specific filter.
        ExtensionRef = "ExtensionRef",
        /// Cross-origin resource sharing.
        Cors = "CORS",
        /// External authorisation (experimental channel).
        ExternalAuth = "ExternalAuth",
    }
}

impl Default for FilterType {
    fn default() -> Self {
        FilterType::Unknown(String::new())
    }
}

/// A filter of an HTTPRoute or GRPCRoute rule or backendRef.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// Which filter; the field of the same name carries its settings.
    #[serde(rename = "type")]
    pub type_: FilterType,
    /// Settings of `RequestHeaderModifier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Settings of `ResponseHeaderModifier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// Settings of `RequestMirror`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    /// Settings of `RequestRedirect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// Settings of `URLRewrite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// Settings of `ExtensionRef`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<LocalObjectReference>,
    /// Settings of `CORS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Settings of `ExternalAuth` (not served; kept raw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_auth: Option<serde_json::Value>,
}

/// A header name and value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpHeader {
    /// Header name, case-insensitive.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Settings of the header modifier filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderModifier {
    /// Replace (or add) these headers.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Append these values (comma-joined with existing ones).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Remove these headers.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Settings of `RequestMirror`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestMirror {
    /// Where copies go.
    pub backend_ref: BackendRef,
    /// Percentage of requests mirrored (0–100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// Fraction of requests mirrored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

/// A fraction `numerator / denominator` (denominator default 100).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fraction {
    /// Numerator.
    pub numerator: i64,
    /// Denominator; default 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denominator: Option<i64>,
}

string_enum! {
    /// `path.type` of redirects and rewrites.
    pub enum PathModifierType {
        /// Replace the whole path.
        ReplaceFullPath = "ReplaceFullPath",
        /// Replace the matched PathPrefix.
        ReplacePrefixMatch = "ReplacePrefixMatch",
    }
}

impl Default for PathModifierType {
    fn default() -> Self {
        PathModifierType::Unknown(String::new())
    }
}

/// `path` of a redirect or rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// Which replacement.
    #[serde(rename = "type")]
    pub type_: PathModifierType,
    /// New path for `ReplaceFullPath`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// New prefix for `ReplacePrefixMatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// Settings of `RequestRedirect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`; default the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name; default the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path modification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
    /// Port; default derived from the scheme or the listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
}

/// Settings of `URLRewrite`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UrlRewrite {
    /// Host sent to the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path modification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
}

/// Settings of `CORS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cors {
    /// Allowed origins (`*`, exact, or with a wildcard host).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Allowed methods.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Preflight cache lifetime in seconds; default 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
}

/// A backendRef of an HTTPRoute or GRPCRoute rule, with its own filters.
///
/// The fields of [`BackendRef`] are repeated rather than flattened: serde's `flatten` buffers
/// the object, and parsers then lose the position of a bad field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// Group; default `""` (core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; default `Service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referent.
    pub name: String,
    /// Namespace; default the Route's namespace (another one needs a ReferenceGrant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the Service (required for Services).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Share of traffic; default 1, 0 means no traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Filters applied only to requests sent to this backend.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    /// The reference without its filters.
    pub fn backend_ref(&self) -> BackendRef {
        BackendRef {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            port: self.port,
            weight: self.weight,
        }
    }
}

/// `timeouts` of an HTTPRoute rule (Gateway API durations such as `10s`, `500ms`, `1h30m`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// Whole client transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// One attempt to a backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `retry` of an HTTPRoute rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteRetry {
    /// Status codes that are retried.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<i64>,
    /// Maximum number of retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Minimum wait between attempts (a Gateway API duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// `GRPCRoute.spec.rules[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// Optional rule name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches, ORed; empty matches every gRPC request.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Session persistence (experimental; kept raw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<serde_json::Value>,
}

/// `GRPCRoute.spec.rules[].matches[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrpcRouteMatch {
    /// Service/method match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Header matches, ANDed.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
}

/// `matches[].method` of a GRPCRoute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GrpcMethodMatch {
    /// Match type; default `Exact`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<StringMatchType>,
    /// Fully qualified service (`helloworld.Greeter`); absent matches any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method (`SayHello`); absent matches any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `TCPRoute.spec` and `UDPRoute.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct L4RouteSpec {
    /// Gateways (or ListenerSets) the route attaches to.
    #[serde(deserialize_with = "nullable")]
    pub parent_refs: Vec<ParentReference>,
    /// Rules (exactly one in v1).
    #[serde(deserialize_with = "nullable")]
    pub rules: Vec<L4RouteRule>,
    /// Experimental: attach to default Gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_default_gateways: Option<String>,
}

/// A rule of a TLSRoute, TCPRoute or UDPRoute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct L4RouteRule {
    /// Optional rule name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Weighted backends (1–16).
    #[serde(deserialize_with = "nullable")]
    pub backend_refs: Vec<BackendRef>,
}
