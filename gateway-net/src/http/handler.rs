//! One request: routing, filters, forwarding, access log.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::ir::{
    self, AppProtocol, Backend, HttpFilter, PathMatch, RouteId, RuleAction, ServiceBackend,
    WeightedBackend,
};
use gateway_core::router::{GrpcRouting, HttpRequest, RequestHeaders, SniRouter, normalize_path};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::filters;
use super::upstream::{self, Body, BoxError, ChannelBody, TeeBody, UpstreamError};
use super::{ActiveGuard, ConnInfo, HttpBindState};
use crate::metrics::{RuleMetrics, UpstreamFailure};
use crate::runtime::BindState;

// Header names the handler writes or strips on every request, built at compile time.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// [`RequestHeaders`] over hyper's header map.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl RequestHeaders for Headers<'_> {
    fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.get_all(name).iter().filter_map(|v| v.to_str().ok())
    }
}

/// What the access log and the metrics say about a request, filled in as it progresses.
#[derive(Default)]
struct LogFields<'s> {
    route: Option<&'s RouteId>,
    rule: Option<usize>,
    /// The Service chosen.
    service: Option<&'s ServiceBackend>,
    /// Its endpoint (of the last attempt).
    backend: Option<SocketAddr>,
    upstream: Option<Duration>,
    /// The counters of the rule that took the request.
    metrics: Option<&'s Arc<RuleMetrics>>,
}

/// `namespace/name:port` of a Service backend, for the access log.
struct ServiceName<'a>(&'a ServiceBackend);

impl std::fmt::Display for ServiceName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.0.service;
        write!(f, "{}/{}:{}", key.namespace, key.name, self.0.port)
    }
}

/// The response body the server sends: counts the request as active until dropped.
pub(crate) struct ServerBody {
    inner: Body,
    _guard: ActiveGuard,
}

impl http_body::Body for ServerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The hyper service of every connection.
pub(crate) async fn handle(
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Infallible> {
    // The one load of the configuration for this request; held until its response head is
    // ready, so a reload meanwhile does not change what serves it.
    let socket = conn.config.load_full();
    let guard = ActiveGuard::new(&conn);
    let index = conn
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let method = req.method().clone();
    // Kept only for the access log, when a subscriber takes it.
    let uri = (conn.shared.config.access_log
        && tracing::enabled!(target: "access_log", tracing::Level::INFO))
    .then(|| req.uri().clone());
    let version = req.version();
    let host = request_host(&req);
    let mut log = LogFields::default();
    let mut response = match current(&socket, &conn) {
        Some(current) => serve(&current, &conn, index, req, host.as_ref(), &mut log).await,
        None => {
            // The connection's TLS listener is gone or changed (or the socket's protocol
            // did): the client must reconnect to get the new listener and certificate.
            conn.retire.cancel();
            let mut resp = status_response(StatusCode::MISDIRECTED_REQUEST);
            if version <= Version::HTTP_11 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    };
    // A HEAD answer has no content. hyper drops it for HTTP/1.1, but over HTTP/2 the gateway's
    // own answers (404, redirects) would send DATA frames the client must reject.
    if method == Method::HEAD {
        *response.body_mut() = upstream::empty();
    }
    let elapsed = start.elapsed();
    let rule = log.metrics.unwrap_or(&conn.shared.metrics.unrouted);
    rule.count(response.status().as_u16());
    rule.listener.downstream.observe(elapsed);
    if let Some(upstream) = log.upstream {
        rule.listener.upstream.observe(upstream);
    }
    if let Some(uri) = &uri {
        log_access(
            &method,
            uri,
            host.as_ref(),
            version,
            &response,
            &log,
            elapsed,
        );
    }
    Ok(response.map(|inner| ServerBody {
        inner,
        _guard: guard,
    }))
}

/// The access-log event of one request.
fn log_access(
    method: &Method,
    uri: &Uri,
    host: Option<&HeaderValue>,
    version: Version,
    response: &Response<Body>,
    log: &LogFields<'_>,
    elapsed: Duration,
) {
    tracing::info!(
        target: "access_log",
        method = %method,
        host = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(""),
        path = uri.path(),
        status = response.status().as_u16(),
        route = log.route.map(tracing::field::display),
        rule = log.rule,
        service = log.service.map(|s| tracing::field::display(ServiceName(s))),
        backend = log.backend.map(tracing::field::display),
        upstream_ms = log.upstream.map(|d| d.as_secs_f64() * 1000.0),
        total_ms = elapsed.as_secs_f64() * 1000.0,
        protocol = ?version,
    );
}

/// The request's host: `:authority` for HTTP/2, else the Host header (or an absolute URI's
/// authority).
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.version() == Version::HTTP_2
        && let Some(authority) = req.uri().authority()
    {
        return HeaderValue::from_str(authority.as_str()).ok();
    }
    req.headers().get(header::HOST).cloned()
}

fn status_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(upstream::full(Bytes::from_static(
        status.canonical_reason().unwrap_or("").as_bytes(),
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `413` (gRPC: `RESOURCE_EXHAUSTED`): the request body is over
/// `HttpLimits::max_request_body_bytes`. HTTP/1.1 connections close after it, as the rest of
/// the body is not read.
fn too_large(grpc: bool, version: Version) -> Response<Body> {
    let mut resp = if grpc {
        grpc_response(GrpcCode::ResourceExhausted, "request body too large")
    } else {
        status_response(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if version <= Version::HTTP_11 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A redirect answer (RequestRedirect on a rule or on a backendRef).
fn redirect_response(input: &filters::RedirectInput<'_>) -> Response<Body> {
    let location = filters::redirect_location(input);
    let mut resp = Response::new(upstream::empty());
    *resp.status_mut() = StatusCode::from_u16(input.redirect.status).unwrap_or(StatusCode::FOUND);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return status_response(StatusCode::BAD_REQUEST),
    }
    resp
}

/// gRPC status codes the gateway answers with.
#[derive(Clone, Copy, Debug)]
enum GrpcCode {
    DeadlineExceeded = 4,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// A trailers-only gRPC answer (HTTP 200, the status in the headers).
fn grpc_response(code: GrpcCode, message: &'static str) -> Response<Body> {
    let mut resp = Response::new(upstream::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code as u16));
    h.insert("grpc-message", HeaderValue::from_static(message));
    resp
}

/// An error answer: an HTTP status, or its gRPC equivalent for gRPC calls.
fn error_response(grpc: bool, status: StatusCode) -> Response<Body> {
    if !grpc {
        return status_response(status);
    }
    match status {
        StatusCode::GATEWAY_TIMEOUT => {
            grpc_response(GrpcCode::DeadlineExceeded, "upstream timeout")
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => {
            grpc_response(GrpcCode::Unavailable, "upstream unavailable")
        }
        StatusCode::INTERNAL_SERVER_ERROR => {
            grpc_response(GrpcCode::Unavailable, "no valid backend")
        }
        // gRPC's own mapping of HTTP 404.
        StatusCode::NOT_FOUND => grpc_response(GrpcCode::Unimplemented, "no route"),
        _ => grpc_response(GrpcCode::Internal, "gateway error"),
    }
}

/// The rule that serves a request, whichever route kind it came from.
struct Selected<'s> {
    listener: &'s ir::Listener,
    filters: &'s [HttpFilter],
    action: &'s RuleAction,
    timeouts: ir::Timeouts,
    retry: Option<&'s ir::Retry>,
    /// The matched PathPrefix (for ReplacePrefixMatch).
    prefix: Option<&'s str>,
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The configuration a request is served with, from the socket's current state.
struct Current<'s> {
    http: &'s HttpBindState,
    /// On TLS connections that sent an SNI: the port's listener choice and the listener the
    /// SNI chooses in this configuration.
    sni: Option<(&'s SniRouter, &'s Arc<ir::Listener>)>,
}

/// The part of the socket's current state that serves this connection: `None` when it no
/// longer does (the TLS listener its handshake chose is gone or is another one now, or the
/// socket changed between cleartext and TLS).
fn current<'s>(socket: &'s BindState, conn: &ConnInfo) -> Option<Current<'s>> {
    match (socket, &conn.tls) {
        (BindState::Http(http), None) => Some(Current { http, sni: None }),
        (BindState::Tls(tls), Some(info)) => {
            let listener = tls.router.listener(info.sni.as_deref())?;
            if listener.id != info.listener || listener.protocol != ir::ListenerProtocol::Https {
                return None;
            }
            Some(Current {
                http: &tls.http,
                sni: info.sni.is_some().then_some((&tls.router, listener)),
            })
        }
        _ => None,
    }
}

/// Whether a request on a TLS connection names a host that another listener of the port
/// serves than the one the connection's SNI chose: an HTTP/2 client reusing a connection for
/// a host with a different certificate or routes (the Gateway API's 421 rule). A host no
/// listener serves is not misdirected; routing answers it (404).
fn is_misdirected(current: &Current<'_>, host: &str) -> bool {
    let Some((router, chosen)) = current.sni else {
        return false;
    };
    router
        .listener(Some(host))
        .is_some_and(|by_host| !Arc::ptr_eq(by_host, chosen))
}

/// Request smuggling: both framings, or disagreeing lengths. hyper removes `Content-Length`
/// from a request that also has `Transfer-Encoding`, so that case is found on the raw bytes
/// (`framing`) and matched by the request's `index` on the connection.
fn ambiguous_framing(conn: &ConnInfo, index: u64, headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING)
        && conn
            .framing_conflict
            .load(std::sync::atomic::Ordering::Relaxed)
            == index
    {
        return true;
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return false;
    };
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    lengths.any(|v| v != first) || first.as_bytes().contains(&b',')
}

async fn serve<'s>(
    current: &Current<'s>,
    conn: &Arc<ConnInfo>,
    index: u64,
    req: Request<Incoming>,
    host: Option<&HeaderValue>,
    log: &mut LogFields<'s>,
) -> Response<Body> {
    let (mut parts, body) = {
        let mut req = req;
        // Taken before the request is split: hyper hands the upgraded stream to this future.
        let upgrade = if req.version() == Version::HTTP_11 && is_upgrade(req.headers()) {
            Some(hyper::upgrade::on(&mut req))
        } else {
            None
        };
        let (mut parts, body) = req.into_parts();
        if let Some(upgrade) = upgrade {
            parts.extensions.insert(ClientUpgrade(upgrade));
        }
        (parts, body)
    };
    if parts.version <= Version::HTTP_11 && ambiguous_framing(conn, index, &parts.headers) {
        let mut resp = status_response(StatusCode::BAD_REQUEST);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    let original_host = host;
    let authority_value;
    let host: &str = match (host, parts.uri.authority()) {
        (Some(h), _) => match h.to_str() {
            Ok(h) => h,
            Err(_) => return status_response(StatusCode::BAD_REQUEST),
        },
        (None, Some(a)) => {
            authority_value = a.clone();
            authority_value.as_str()
        }
        (None, None) => return status_response(StatusCode::BAD_REQUEST),
    };
    if is_misdirected(current, host) {
        // A plain 421 for gRPC too: it tells any HTTP/2 client to retry on a new connection.
        return status_response(StatusCode::MISDIRECTED_REQUEST);
    }
    let state = current.http;
    let uri = parts.uri.clone();
    let Ok(path) = normalize_path(uri.path()) else {
        return status_response(StatusCode::BAD_REQUEST);
    };
    let grpc = is_grpc(&parts.headers);
    let mut selected = None;
    if grpc {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .unwrap_or(("", ""));
        match state
            .router
            .route_grpc(host, service, method, &Headers(&parts.headers))
        {
            GrpcRouting::Matched(m) => {
                log.route = Some(&m.route.id);
                log.rule = Some(m.rule.index);
                log.metrics = state.rule_metrics.get(&super::rule_key(m.rule));
                selected = Some(Selected {
                    listener: m.listener,
                    filters: &m.rule.filters,
                    action: &m.rule.action,
                    timeouts: ir::Timeouts::default(),
                    retry: None,
                    prefix: None,
                });
            }
            GrpcRouting::Unmatched => {
                return grpc_response(GrpcCode::Unimplemented, "no route for this method");
            }
            GrpcRouting::NoGrpcRoutes => {}
        }
    }
    let selected = match selected {
        Some(s) => s,
        None => {
            let request = HttpRequest {
                host,
                path: &path,
                query: uri.query(),
                method: parts.method.as_str(),
                headers: &Headers(&parts.headers),
            };
            let Some(m) = state.router.route(&request) else {
                return error_response(grpc, StatusCode::NOT_FOUND);
            };
            log.route = Some(&m.route.id);
            log.rule = Some(m.rule.index);
            log.metrics = state.rule_metrics.get(&super::rule_key(m.rule));
            Selected {
                listener: m.listener,
                filters: &m.rule.filters,
                action: &m.rule.action,
                timeouts: m.rule.timeouts,
                retry: m.rule.retry.as_ref(),
                prefix: match &m.matched.path {
                    PathMatch::Prefix(p) => Some(p.as_str()),
                    _ => None,
                },
            }
        }
    };

    // CORS: preflights are answered here; actual requests are decorated on the way back.
    let mut cors = None;
    for f in selected.filters {
        if let HttpFilter::Cors(c) = f {
            let Some(origin) = parts.headers.get(header::ORIGIN) else {
                break;
            };
            let allowed = origin.to_str().is_ok_and(|o| filters::origin_allowed(c, o));
            let preflight = parts.method == Method::OPTIONS
                && parts
                    .headers
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            if preflight {
                let mut resp = Response::new(upstream::empty());
                *resp.status_mut() = StatusCode::NO_CONTENT;
                if allowed {
                    filters::cors_preflight(
                        c,
                        origin,
                        parts.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD),
                        parts.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS),
                        resp.headers_mut(),
                    );
                }
                return resp;
            }
            if allowed {
                cors = Some((c, origin.clone()));
            }
            break;
        }
    }

    let scheme = if conn.tls.is_some() { "https" } else { "http" };
    // A RequestRedirect, of the rule or of the chosen backendRef, answers instead of forwarding.
    let redirect_to = |redirect: &ir::Redirect| {
        redirect_response(&filters::RedirectInput {
            redirect,
            request_scheme: scheme,
            request_host: host,
            path: &path,
            query: uri.query(),
            prefix: selected.prefix,
            listener_port: selected.listener.port,
        })
    };
    let backends = match selected.action {
        RuleAction::Respond { status, reason } => {
            tracing::debug!(%reason, status, "rule answers without an upstream");
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return finish(error_response(grpc, status), &selected, None, cors.as_ref());
        }
        RuleAction::Redirect(redirect) => {
            return finish(redirect_to(redirect), &selected, None, cors.as_ref());
        }
        RuleAction::Forward(backends) => backends,
    };
    let Some(chosen) = choose(backends) else {
        return error_response(grpc, StatusCode::INTERNAL_SERVER_ERROR);
    };
    if let Some(redirect) = chosen.filters.iter().find_map(|f| match f {
        HttpFilter::Redirect(r) => Some(r),
        _ => None,
    }) {
        return finish(
            redirect_to(redirect),
            &selected,
            Some(chosen),
            cors.as_ref(),
        );
    }
    let service = match &chosen.backend {
        Backend::Service(s) => {
            log.service = Some(s);
            s
        }
        Backend::Invalid { reason } => {
            tracing::debug!(%reason, "invalid backend");
            return finish(
                error_response(grpc, StatusCode::INTERNAL_SERVER_ERROR),
                &selected,
                Some(chosen),
                cors.as_ref(),
            );
        }
    };
    if service.endpoints.is_empty() {
        return finish(
            error_response(grpc, StatusCode::SERVICE_UNAVAILABLE),
            &selected,
            Some(chosen),
            cors.as_ref(),
        );
    }

    // Request filters: rule level, then backend level.
    let mut new_host: Option<&str> = None;
    let mut new_path: Option<String> = None;
    let mut mirrors: Vec<&ir::Mirror> = Vec::new();
    for f in selected.filters.iter().chain(chosen.filters.iter()) {
        match f {
            HttpFilter::RequestHeaders(m) => filters::modify_headers(&mut parts.headers, m),
            HttpFilter::UrlRewrite(rw) => {
                if let Some(h) = &rw.hostname {
                    new_host = Some(h);
                }
                if let Some(m) = &rw.path {
                    new_path = Some(filters::modify_path(&path, m, selected.prefix));
                }
            }
            HttpFilter::Mirror(m) => {
                if fastrand::u32(..m.denominator.max(1)) < m.numerator {
                    mirrors.push(m);
                }
            }
            HttpFilter::ResponseHeaders(_) | HttpFilter::Cors(_) | HttpFilter::Redirect(_) => {}
        }
    }

    // Forwarding headers.
    let client_upgrade = parts.extensions.remove::<ClientUpgrade>();
    let upgrade_name = if client_upgrade.is_some() && service.protocol == AppProtocol::Http1 {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Some(name) = &upgrade_name {
        parts.headers.insert(header::UPGRADE, name.clone());
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    append_forwarded_for(&mut parts.headers, &conn.peer_ip);
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    ensure_traceparent(&mut parts.headers);
    if let http::header::Entry::Vacant(entry) = parts.headers.entry(X_REQUEST_ID) {
        entry.insert(conn.shared.http.request_id());
    }
    let host_value = match new_host {
        Some(h) => match HeaderValue::from_str(h) {
            Ok(v) => v,
            Err(_) => return status_response(StatusCode::INTERNAL_SERVER_ERROR),
        },
        None => match original_host {
            Some(v) => v.clone(),
            None => match HeaderValue::from_str(host) {
                Ok(v) => v,
                Err(_) => return status_response(StatusCode::BAD_REQUEST),
            },
        },
    };
    // The path the backend receives: the rewritten one, else the normalised one, with the
    // original query.
    let path_and_query = match (&new_path, &path) {
        (None, std::borrow::Cow::Borrowed(_)) => uri.path_and_query().cloned(),
        (Some(p), _) | (None, std::borrow::Cow::Owned(p)) => {
            let text = match uri.query() {
                Some(q) => format!("{p}?{q}"),
                None => p.clone(),
            };
            text.parse().ok()
        }
    };
    let Some(path_and_query) = path_and_query else {
        return status_response(StatusCode::BAD_REQUEST);
    };

    // Body: over the size limit is refused; buffered when retries may resend it, teed when
    // mirrors want a copy.
    let limits = &conn.shared.config.http;
    let body_limit = limits.max_request_body_bytes;
    if let Some(limit) = body_limit
        && body.size_hint().lower() > limit
    {
        return too_large(grpc, parts.version);
    }
    let max_attempts = selected.retry.map_or(1, |r| r.attempts.saturating_add(1));
    let small = body.is_end_stream()
        || body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= limits.retry_buffer_bytes);
    let mut buffered: Option<Bytes> = None;
    let mut streaming: Option<Body> = None;
    // Set by the body when it grows past the limit (only bodies that can are watched).
    let mut over_limit: Option<Arc<std::sync::atomic::AtomicBool>> = None;
    if max_attempts > 1 && small {
        match body.collect().await {
            Ok(collected) => buffered = Some(collected.to_bytes()),
            Err(_) => return status_response(StatusCode::BAD_REQUEST),
        }
    } else {
        let body = body.map_err(BoxError::from).boxed_unsync();
        streaming = Some(match body_limit {
            // A length the client announced has been checked; chunked and HTTP/2 bodies are
            // counted as they stream.
            Some(limit) if !body.is_end_stream() => {
                let exceeded = over_limit.insert(Arc::default()).clone();
                upstream::LimitedBody {
                    inner: body,
                    left: limit,
                    exceeded,
                }
                .boxed_unsync()
            }
            _ => body,
        });
    }
    let max_attempts = if buffered.is_some() { max_attempts } else { 1 };

    for mirror in mirrors {
        let mirror_body = match (&buffered, streaming.take()) {
            (Some(bytes), _) => upstream::full(bytes.clone()),
            (None, Some(inner)) if inner.is_end_stream() => {
                streaming = Some(inner);
                upstream::empty()
            }
            (None, Some(inner)) => {
                let (tx, rx) = tokio::sync::mpsc::channel(limits.mirror_queue_chunks.max(1));
                streaming = Some(
                    TeeBody {
                        inner,
                        copy: Some(tx),
                    }
                    .boxed_unsync(),
                );
                ChannelBody(rx).boxed_unsync()
            }
            (None, None) => upstream::empty(),
        };
        spawn_mirror(state, conn, mirror, &parts, &uri, &host_value, mirror_body);
    }

    let shared = &conn.shared;
    // A backend its BackendTLSPolicy covers is reached over TLS or not at all.
    let origin = match state.origin(service) {
        None => None,
        Some(Ok(origin)) => Some(origin.as_ref()),
        Some(Err(reason)) => {
            tracing::debug!(service = %ServiceName(service), reason, "no TLS settings for the backend");
            shared
                .metrics
                .upstream_failure(UpstreamFailure::TlsHandshake);
            return status_response(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let exchange = async {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(addr) = state.endpoint(service) else {
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            };
            log.backend = Some(addr);
            let body = match (&buffered, streaming.take()) {
                (Some(bytes), _) => upstream::full(bytes.clone()),
                (None, Some(b)) => b,
                (None, None) => upstream::empty(),
            };
            // The last attempt takes the headers; earlier ones (retries) copy them.
            let headers = if attempt >= max_attempts {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            let request = build_upstream_request(
                &parts.method,
                headers,
                service.protocol,
                &host_value,
                &path_and_query,
                body,
            );
            let Some(request) = request else {
                return Err(StatusCode::BAD_REQUEST);
            };
            let started = Instant::now();
            let sent = upstream::send(
                shared,
                addr,
                service.protocol,
                origin,
                request,
                upgrade_name.is_some(),
            );
            let result = match selected.timeouts.backend_request {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(r) => r.map_err(Failure::Upstream),
                    Err(_) => Err(Failure::Timeout),
                },
                None => sent.await.map_err(Failure::Upstream),
            };
            log.upstream = Some(started.elapsed());
            if result.is_err()
                && over_limit
                    .as_ref()
                    .is_some_and(|o| o.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            if let Err(failure) = &result {
                shared.metrics.upstream_failure(match failure {
                    Failure::Timeout => UpstreamFailure::Timeout,
                    Failure::Upstream(UpstreamError::ConnectTimeout(_)) => {
                        UpstreamFailure::ConnectTimeout
                    }
                    Failure::Upstream(UpstreamError::Connect(..)) => UpstreamFailure::ConnectError,
                    Failure::Upstream(UpstreamError::Tls(_, error))
                        if crate::tls::origin::is_certificate_error(error) =>
                    {
                        UpstreamFailure::TlsCertificate
                    }
                    Failure::Upstream(UpstreamError::Tls(..)) => UpstreamFailure::TlsHandshake,
                    Failure::Upstream(UpstreamError::Http(_, error))
                        if origin.is_some() && crate::tls::origin::is_certificate_error(error) =>
                    {
                        UpstreamFailure::TlsCertificate
                    }
                    Failure::Upstream(UpstreamError::Http(..)) => UpstreamFailure::ExchangeError,
                });
            }
            let retryable = match &result {
                Ok(resp) => selected
                    .retry
                    .is_some_and(|r| r.codes.contains(&resp.status().as_u16())),
                Err(_) => true,
            };
            if retryable && attempt < max_attempts {
                if let Some(backoff) = selected.retry.and_then(|r| r.backoff) {
                    tokio::time::sleep(backoff).await;
                }
                continue;
            }
            return match result {
                Ok(resp) => Ok(resp),
                Err(Failure::Timeout) => Err(StatusCode::GATEWAY_TIMEOUT),
                Err(Failure::Upstream(error)) => {
                    tracing::debug!(%error, "upstream exchange failed");
                    // No response head from any endpoint: the service is unavailable (the
                    // upstream suite accepts 500 or 503 here, not 502).
                    Err(match error {
                        UpstreamError::ConnectTimeout(_)
                        | UpstreamError::Connect(..)
                        | UpstreamError::Tls(..)
                        | UpstreamError::Http(..) => StatusCode::SERVICE_UNAVAILABLE,
                    })
                }
            };
        }
    };
    let outcome = match selected.timeouts.request {
        Some(limit) => tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| {
                shared.metrics.upstream_failure(UpstreamFailure::Timeout);
                Err(StatusCode::GATEWAY_TIMEOUT)
            }),
        None => exchange.await,
    };
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(StatusCode::PAYLOAD_TOO_LARGE) => return too_large(grpc, parts.version),
        Err(status) => {
            return finish(
                error_response(grpc, status),
                &selected,
                Some(chosen),
                cors.as_ref(),
            );
        }
    };
    // The client is answered in its own HTTP version, not the backend's: an HTTP/1.0
    // backend's answer would otherwise end the client's keep-alive connection.
    *resp.version_mut() = parts.version;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(ClientUpgrade(client)) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            // Tracked, so shutdown waits for tunnels too and the drain deadline ends them.
            let kill = conn.kill.clone();
            conn.shared.tracker.spawn(async move {
                tokio::select! {
                    () = kill.cancelled() => tracing::debug!("drain deadline passed; closing upgraded tunnel"),
                    () = join_upgraded(client, upstream_upgrade) => {}
                }
            });
        }
    } else {
        strip_hop_by_hop(resp.headers_mut());
    }
    finish(resp, &selected, Some(chosen), cors.as_ref())
}

enum Failure {
    Upstream(UpstreamError),
    Timeout,
}

/// The client side of an HTTP/1.1 upgrade, carried in the request extensions.
#[derive(Clone)]
struct ClientUpgrade(hyper::upgrade::OnUpgrade);

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"upgrade"))
}

fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

async fn join_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%error, "upgraded stream ended with an error");
    }
}

/// Response filters of the rule and of the backend, then CORS.
fn finish(
    mut resp: Response<Body>,
    selected: &Selected<'_>,
    backend: Option<&WeightedBackend>,
    cors: Option<&(&ir::Cors, HeaderValue)>,
) -> Response<Body> {
    let backend_filters = backend.map_or(&[][..], |b| &b.filters[..]);
    for f in selected.filters.iter().chain(backend_filters) {
        if let HttpFilter::ResponseHeaders(m) = f {
            filters::modify_headers(resp.headers_mut(), m);
        }
    }
    if let Some((c, origin)) = cors {
        filters::cors_response(c, origin, resp.headers_mut());
    }
    resp
}

/// A backend by weight (weights are > 0 in the Ir).
fn choose(backends: &[WeightedBackend]) -> Option<&WeightedBackend> {
    if backends.len() <= 1 {
        return backends.first();
    }
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return backends.first();
    }
    let mut pick = fastrand::u64(..total);
    for b in backends {
        let w = u64::from(b.weight);
        if pick < w {
            return Some(b);
        }
        pick -= w;
    }
    backends.last()
}

/// Removes hop-by-hop headers (and those `Connection` lists); keeps `TE: trailers`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of these: one pass over the names costs less than a lookup
    // per hop-by-hop header.
    let any = headers.keys().any(|name| {
        name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::TE
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
    });
    if !any {
        return;
    }
    // The headers `Connection` lists go too. Its values are taken out of the map first, and
    // each token is looked up as a string, which allocates no header name (a response's
    // `Connection: keep-alive` would otherwise cost one per request).
    let mut connection = headers.get_all(header::CONNECTION).iter();
    let first = connection.next().cloned();
    let more: Vec<HeaderValue> = connection.cloned().collect();
    if first.is_some() {
        headers.remove(header::CONNECTION);
    }
    for value in first.iter().chain(&more) {
        for token in value.as_bytes().split(|&b| b == b',') {
            if let Ok(name) = std::str::from_utf8(token.trim_ascii())
                && !name.eq_ignore_ascii_case("te")
            {
                headers.remove(name);
            }
        }
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::UPGRADE);
    if let Some(te) = headers.get(header::TE)
        && !has_token(te.as_bytes(), b"trailers")
    {
        headers.remove(header::TE);
    } else if headers.contains_key(header::TE) {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// W3C Trace Context: a valid `traceparent` is passed on unchanged (the gateway records no
/// span of its own, so the client's span stays the backend's parent); a missing one is
/// created, and an invalid one (or several) replaced, together with `tracestate`, which
/// belongs to the trace it came with. A new trace is marked sampled (`01`): a backend with a
/// parent-based sampler then traces the request as it would without the gateway in front.
fn ensure_traceparent(headers: &mut HeaderMap) {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let valid = match (values.next(), values.next()) {
        (Some(v), None) => valid_traceparent(v.as_bytes()),
        _ => false,
    };
    if valid {
        return;
    }
    headers.remove(TRACESTATE);
    // `00-<trace id>-<parent id>-01`, written on the stack: this runs for most requests.
    let mut trace = *b"00-00000000000000000000000000000000-0000000000000000-01";
    write_hex(&mut trace[3..19], fastrand::u64(1..));
    write_hex(&mut trace[19..35], fastrand::u64(..));
    write_hex(&mut trace[36..52], fastrand::u64(1..));
    if let Ok(value) = HeaderValue::from_bytes(&trace) {
        headers.insert(TRACEPARENT, value);
    }
}

/// Writes `value` as lower-case hex into `out`, most significant digit first, filling it.
pub(super) fn write_hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// `version-traceid-parentid-flags`: lower-case hex, ids not all zero, version not `ff`;
/// version `00` is exactly 55 bytes, later versions may append `-` and more fields.
pub fn valid_traceparent(value: &[u8]) -> bool {
    let hex = |part: &[u8]| {
        part.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |part: &[u8]| part.iter().any(|&b| b != b'0');
    let (Some(head), rest) = (value.get(..55), value.get(55..).unwrap_or_default()) else {
        return false;
    };
    let version = &head[..2];
    let trace_id = &head[3..35];
    let parent_id = &head[36..52];
    let flags = &head[53..55];
    let dashes = head[2] == b'-' && head[35] == b'-' && head[52] == b'-';
    let tail_ok = if version == b"00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest.first() == Some(&b'-')
    };
    dashes
        && tail_ok
        && hex(version)
        && version != b"ff"
        && hex(trace_id)
        && nonzero(trace_id)
        && hex(parent_id)
        && nonzero(parent_id)
        && hex(flags)
}

fn append_forwarded_for(headers: &mut HeaderMap, peer_ip: &HeaderValue) {
    let value = match headers.get(X_FORWARDED_FOR) {
        Some(existing) => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + peer_ip.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer_ip.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        None => Some(peer_ip.clone()),
    };
    if let Some(v) = value {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

/// The request to send upstream: HTTP/1.1 gets an origin-form URI and a Host header, HTTP/2
/// an absolute URI (its `:authority`) and no Host header.
fn build_upstream_request(
    method: &Method,
    headers: HeaderMap,
    protocol: AppProtocol,
    host: &HeaderValue,
    path_and_query: &http::uri::PathAndQuery,
    body: Body,
) -> Option<Request<Body>> {
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.headers_mut() = headers;
    let mut uri = http::uri::Parts::default();
    uri.path_and_query = Some(path_and_query.clone());
    if protocol == AppProtocol::H2c {
        *req.version_mut() = Version::HTTP_2;
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(http::uri::Authority::try_from(host.as_bytes()).ok()?);
        req.headers_mut().remove(header::HOST);
    } else {
        *req.version_mut() = Version::HTTP_11;
        req.headers_mut().insert(header::HOST, host.clone());
    }
    *req.uri_mut() = Uri::from_parts(uri).ok()?;
    Some(req)
}

fn spawn_mirror(
    state: &HttpBindState,
    conn: &Arc<ConnInfo>,
    mirror: &ir::Mirror,
    parts: &http::request::Parts,
    uri: &Uri,
    host: &HeaderValue,
    body: Body,
) {
    let backend: &ServiceBackend = &mirror.backend;
    let Some(addr) = state.endpoint(backend) else {
        return;
    };
    let origin = match state.origin(backend) {
        None => None,
        Some(Ok(origin)) => Some(origin.clone()),
        // Never in plaintext to a backend that wants TLS.
        Some(Err(_)) => return,
    };
    let Some(path_and_query) = uri.path_and_query() else {
        return;
    };
    let Some(request) = build_upstream_request(
        &parts.method,
        parts.headers.clone(),
        backend.protocol,
        host,
        path_and_query,
        body,
    ) else {
        return;
    };
    let shared = conn.shared.clone();
    let protocol = backend.protocol;
    let kill = conn.kill.clone();
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let exchange = async {
            match upstream::send(&shared, addr, protocol, origin.as_deref(), request, false).await {
                // Read the body so the connection goes back to the pool.
                Ok(resp) => {
                    let _ = resp.into_body().collect().await;
                }
                Err(error) => tracing::debug!(%error, "mirror request failed"),
            }
        };
        tokio::select! {
            () = kill.cancelled() => tracing::debug!("drain deadline passed; mirror request dropped"),
            () = exchange => {}
        }
    });
}
