//! Runs the cases of one test and compares what comes back, following the rules in the header
//! of `cases.yaml`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use conformance::{Case, Expect, StatusCodes, TestCase};
use http_body_util::Full;
use hyper::Request;
use serde_json::Value;

use crate::client::{self, Tls};
use crate::grpc;
use crate::{Addresses, World};

/// Which protocol an HTTP case is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
}

/// A case's label in the report: its number and Go subtest/name.
pub(crate) fn label(index: usize, case: &Case) -> String {
    let label = case
        .subtest
        .iter()
        .chain(&case.name)
        .cloned()
        .collect::<Vec<_>>()
        .join(" / ");
    if label.is_empty() {
        format!("case {}", index + 1)
    } else {
        format!("case {} ({label})", index + 1)
    }
}

/// Runs one case of `test`.
pub(crate) async fn run_case(
    world: &World,
    test: &TestCase,
    case: &Case,
    addresses: &Addresses,
) -> Result<(), String> {
    let target = target(world, test, case, addresses)?;
    match case.request.transport.as_deref() {
        None => {
            let mut errors = Vec::new();
            let protos: &[Proto] = match case.request.protocol.as_deref() {
                Some(_) => &[Proto::Http2],
                None => &[Proto::Http1, Proto::Http2],
            };
            for proto in protos {
                for i in 0..repeats(case) {
                    let statistics = i == 0 && *proto == Proto::Http1;
                    if let Err(e) = http_case(world, test, case, target, *proto, statistics).await {
                        errors.push(format!("[{proto:?}] {e}"));
                        break;
                    }
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            }
        }
        Some("grpc-h2c") => {
            for _ in 0..repeats(case) {
                grpc_case(case, target).await?;
            }
            Ok(())
        }
        Some("tcp-echo" | "tls-tcp-echo") => tcp_case(world, case, target).await,
        Some("tls-handshake-only") => handshake_case(case, target).await,
        Some("udp-echo" | "dns-udp") => udp_case(case, target).await,
        Some("websocket") => websocket_case(case, target).await,
        Some(other) => Err(format!(
            "transport {other:?} is not implemented by the harness"
        )),
    }
}

/// How many times in a row an HTTP or gRPC case must pass: 3, as the Go suite requires
/// (`RequiredConsecutiveSuccesses`), except for cases that wait on purpose (`delay`), which
/// only slow the run down and are sent once.
fn repeats(case: &Case) -> usize {
    let path = case.request.path.as_deref().unwrap_or("");
    if path.contains("delay") { 1 } else { 3 }
}

/// Where a case of `test` is sent.
pub(crate) fn target(
    world: &World,
    test: &TestCase,
    case: &Case,
    addresses: &Addresses,
) -> Result<Target, String> {
    let gateway = case
        .gateway
        .as_ref()
        .or(test.gateway.as_ref())
        .ok_or("no gateway named")?;
    let ip = addresses
        .get(gateway)
        .copied()
        .ok_or_else(|| format!("Gateway {gateway} is not in the manifests"))?;
    Ok(Target {
        ip,
        port: case.request.port,
        offset: world.port_offset,
    })
}

/// Where a case is sent.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    ip: IpAddr,
    /// The manifest's port.
    port: u16,
    offset: u16,
}

impl Target {
    fn socket(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port + self.offset)
    }

    /// The gateway address as a client names it: `IP[:port]`, no port for 80 and 443.
    fn authority(self) -> String {
        match self.port {
            80 | 443 => self.ip.to_string(),
            p => format!("{}:{p}", self.ip),
        }
    }
}

fn unique_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// A case's client TLS settings.
fn client_tls(world: &World, case: &Case) -> Result<Option<Tls>, String> {
    let Some(tls) = &case.request.tls else {
        return Ok(None);
    };
    let root = match &tls.trust {
        Some(prose) => Some(
            world
                .pki
                .cert_of(prose)
                .ok_or_else(|| format!("no generated certificate for trust {prose:?}"))?,
        ),
        None => None,
    };
    let client_cert = match &tls.client_cert {
        Some(prose) => {
            let (_, id) = world
                .pki
                .named(prose)
                .ok_or_else(|| format!("no generated client certificate for {prose:?}"))?;
            world.pki.secrets.get(&id).cloned()
        }
        None => None,
    };
    Ok(Some(Tls {
        sni: tls.sni.clone().unwrap_or_default(),
        root,
        client_cert,
        alpn: Vec::new(),
    }))
}

fn statuses(expect: &Expect) -> Vec<u16> {
    match &expect.status {
        None => vec![200],
        Some(StatusCodes::One(s)) => vec![*s],
        Some(StatusCodes::Any(list)) => list.clone(),
    }
}

fn header_values(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A header the echo server saw, repeated values joined with `,`.
fn echoed_header(echo: &Value, name: &str) -> Option<String> {
    let headers = echo.get("headers")?.as_object()?;
    let values: Vec<String> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn text<'a>(echo: &'a Value, field: &str) -> &'a str {
    echo.get(field).and_then(Value::as_str).unwrap_or("")
}

/// `Err("<who> <field> <seen>, want <want>")` when the echo's `field` is not `want`.
fn field_is(echo: &Value, field: &str, want: &str, who: &str) -> Result<(), String> {
    let seen = text(echo, field);
    if seen == want {
        Ok(())
    } else {
        Err(format!("{who} {field} {seen:?}, want {want:?}"))
    }
}

async fn http_case(
    world: &World,
    test: &TestCase,
    case: &Case,
    target: Target,
    proto: Proto,
    statistics: bool,
) -> Result<(), String> {
    let req = &case.request;
    let expect = &case.expect;
    let tls = client_tls(world, case)?;
    let host = match req.host.as_deref() {
        None | Some("") => target.authority(),
        Some(h) => h.to_owned(),
    };
    let mut path = req.path.clone().unwrap_or_else(|| "/".to_owned());
    while path.contains("<uuid>") {
        path = path.replacen("<uuid>", &unique_id(), 1);
    }
    // Mirror tests tag every request so the mirror's log can be searched for it.
    let mirrored = !expect.mirrored_to.is_empty() || test.test.contains("Mirror");
    let mut expected_path = expect.request.as_ref().and_then(|r| r.path.clone());
    if mirrored {
        let sep = if path.contains('?') { '&' } else { '?' };
        let tag = format!("{sep}gateway-api-conformance-request-id={}", unique_id());
        path.push_str(&tag);
        if let Some(p) = &mut expected_path {
            p.push_str(&tag);
        }
    }
    let method = req.method.clone().unwrap_or_else(|| "GET".to_owned());
    let set_header = req
        .backend_set_response_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = match proto {
        Proto::Http1 => path.clone(),
        Proto::Http2 => format!("{scheme}://{host}{path}"),
    };
    let mut builder = Request::builder().method(method.as_str()).uri(&uri);
    if proto == Proto::Http1 {
        builder = builder.header(http::header::HOST, &host);
    }
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder = builder.header("X-Echo-Set-Header", set_header.as_str());
    let request = builder
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("cannot build the request ({method} {uri}): {e}"))?;
    let result = client::http(
        target.socket(),
        tls.as_ref(),
        proto == Proto::Http2,
        request,
    )
    .await;

    if expect.connection_failure {
        return match result {
            Err(_) => Ok(()),
            Ok(reply) => Err(format!(
                "wanted a transport failure, got HTTP {}",
                reply.status
            )),
        };
    }
    if let Some(not) = expect.status_not {
        return match result {
            Err(e) => Err(format!("wanted an HTTP error response, got {e}")),
            Ok(reply) if reply.status == not || matches!(reply.status, 408 | 504) => Err(format!(
                "status {} (must be neither {not} nor a timeout)",
                reply.status
            )),
            Ok(_) => Ok(()),
        };
    }
    let reply = result?;
    let wanted = statuses(expect);
    let timeout = |s: u16| matches!(s, 408 | 504);
    let status_ok = wanted.contains(&reply.status)
        || (timeout(reply.status) && wanted.iter().any(|s| timeout(*s)));
    if !status_ok {
        return Err(format!(
            "status {}, want {wanted:?} ({})",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
        ));
    }
    let response = expect.response.clone().unwrap_or_default();
    if (300..400).contains(&reply.status) {
        if let Some(redirect) = &response.redirect {
            check_redirect(&reply.headers, redirect)?;
        }
        return Ok(());
    }
    if !matches!(reply.status, 200 | 204) {
        return Ok(());
    }
    // Response headers.
    let strip = |s: &str| {
        if response.ignore_whitespace {
            s.replace(' ', "")
        } else {
            s.to_owned()
        }
    };
    for (name, value) in &response.headers {
        match header_values(&reply.headers, name) {
            Some(actual) if strip(&actual) == strip(value) => {}
            actual => {
                return Err(format!(
                    "response header {name}: {actual:?}, want {value:?}"
                ));
            }
        }
    }
    for (name, values) in &response.header_one_of {
        match header_values(&reply.headers, name) {
            Some(actual) if values.iter().any(|v| strip(v) == strip(&actual)) => {}
            actual => {
                return Err(format!(
                    "response header {name}: {actual:?}, want one of {values:?}"
                ));
            }
        }
    }
    for name in &response.absent_headers {
        if let Some(actual) = header_values(&reply.headers, name) {
            return Err(format!(
                "response header {name} must be absent, is {actual:?}"
            ));
        }
    }
    let echo: Option<Value> = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .filter(|v| v.get("pod").is_some());
    if expect.answered_by_gateway {
        return match echo {
            None => Ok(()),
            Some(e) => Err(format!(
                "the gateway must answer itself, but pod {} did",
                text(&e, "pod")
            )),
        };
    }
    let Some(echo) = echo else {
        return Err(format!(
            "status {} without an echo body: {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
        ));
    };
    let namespace = expect.namespace.as_deref().unwrap_or("");
    if text(&echo, "namespace") != namespace {
        return Err(format!(
            "answered by namespace {:?} (pod {}), want {namespace:?}",
            text(&echo, "namespace"),
            text(&echo, "pod")
        ));
    }
    let backend = expect.backend.as_deref().unwrap_or("");
    if !text(&echo, "pod").starts_with(backend) {
        return Err(format!(
            "answered by pod {:?}, want one of {backend:?}",
            text(&echo, "pod")
        ));
    }
    match &expect.request {
        Some(want) => {
            if let Some(p) = &expected_path {
                field_is(&echo, "path", p, "backend saw")?;
            }
            field_is(
                &echo,
                "method",
                want.method.as_deref().unwrap_or("GET"),
                "backend saw",
            )?;
            if let Some(h) = &want.host {
                field_is(&echo, "host", h, "backend saw")?;
            }
            for (name, value) in &want.headers {
                let actual = echoed_header(&echo, name);
                if actual.as_deref() != Some(value.as_str()) {
                    return Err(format!(
                        "backend saw header {name}: {actual:?}, want {value:?}"
                    ));
                }
            }
            for name in &want.absent_headers {
                if let Some(actual) = echoed_header(&echo, name) {
                    return Err(format!("backend saw header {name}: {actual:?}, want none"));
                }
            }
            if let Some(sni) = &want.tls_sni {
                let seen = echo
                    .pointer("/tls/serverName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if seen != sni {
                    return Err(format!("backend saw SNI {seen:?}, want {sni:?}"));
                }
            }
        }
        None => {
            field_is(&echo, "path", &path, "backend saw")?;
            field_is(&echo, "method", &method, "backend saw")?;
            if req.host.as_deref().is_some_and(|h| !h.is_empty()) {
                field_is(&echo, "host", &host, "backend saw")?;
            }
            let mut sent: BTreeMap<String, String> = req.headers.clone();
            sent.insert("X-Echo-Set-Header".to_owned(), set_header.clone());
            for (name, value) in &sent {
                let actual = echoed_header(&echo, name);
                if actual.as_deref() != Some(value.as_str()) {
                    return Err(format!(
                        "backend saw header {name}: {actual:?}, want {value:?} as sent"
                    ));
                }
            }
        }
    }
    if let Some(backend_tls) = &expect.backend_tls
        && let Some(sni) = &backend_tls.tls_sni
    {
        let seen = echo
            .pointer("/tls/serverName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if seen != sni {
            return Err(format!("backend saw SNI {seen:?}, want {sni:?}"));
        }
    }
    if let Some(prose) = expect
        .backend_tls
        .as_ref()
        .and_then(|t| t.tls_client_cert.as_ref())
    {
        let want = world
            .pki
            .named(prose)
            .and_then(|(_, id)| world.pki.secrets.get(&id))
            .map(|p| p.cert.clone())
            .ok_or_else(|| format!("no generated certificate for {prose:?}"))?;
        let squash = |pem: &str| pem.split_whitespace().collect::<String>();
        let seen: Vec<String> = echo
            .pointer("/tls/peerCertificates")
            .and_then(Value::as_array)
            .map(|certs| certs.iter().filter_map(Value::as_str).map(squash).collect())
            .unwrap_or_default();
        if !seen
            .iter()
            .any(|c| want.contains(c.as_str()) || squash(&want).contains(c.as_str()))
        {
            return Err(format!(
                "the backend saw {} client certificate(s), not {prose}",
                seen.len()
            ));
        }
    }
    for mirror in &expect.mirrored_to {
        match mirror.percent {
            None => wait_for_mirror(world, &mirror.namespace, &mirror.backend, &path).await?,
            // A fraction is checked statistically, once (over HTTP/1.1).
            Some(percent) if statistics => {
                let base = req.path.clone().unwrap_or_else(|| "/".to_owned());
                percent_mirror(world, target, &host, &base, mirror, percent).await?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Mirrors are sent after (or while) the primary answers: poll the mirror pods' logs.
async fn wait_for_mirror(
    world: &World,
    namespace: &str,
    backend: &str,
    path: &str,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = world
            .pods
            .matching(namespace, backend)
            .any(|p| p.log.lock().expect("log").iter().any(|l| l == path));
        if seen {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("mirror {namespace}/{backend} never saw {path}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Go suite's percentage-mirror check: after 500 requests (10 at a time), the mirror must
/// have seen p·500 ± 3·sqrt(500·p·(1-p)) of them; up to 5 rounds.
async fn percent_mirror(
    world: &World,
    target: Target,
    host: &str,
    path: &str,
    mirror: &conformance::Mirror,
    percent: f64,
) -> Result<(), String> {
    const REQUESTS: usize = 500;
    let p = percent / 100.0;
    let n = REQUESTS as f64;
    let margin = 3.0 * (n * p * (1.0 - p)).sqrt();
    let (low, high) = (n * p - margin, n * p + margin);
    let mut last = 0;
    for _ in 0..5 {
        let round = unique_id();
        let mut sent = 0;
        while sent < REQUESTS {
            let batch: Vec<_> = (sent..(sent + 10).min(REQUESTS))
                .map(|i| {
                    let uri = format!("{path}?gateway-api-conformance-request-id={round}-{i}");
                    let request = Request::builder()
                        .uri(uri)
                        .header(http::header::HOST, host)
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    client::http(target.socket(), None, false, request)
                })
                .collect();
            sent += batch.len();
            for reply in futures_join(batch).await {
                let reply = reply?;
                if reply.status != 200 {
                    return Err(format!("a sampled request got status {}", reply.status));
                }
            }
        }
        // Mirrors trail their requests: count until the number settles.
        let count = || {
            world
                .pods
                .matching(&mirror.namespace, &mirror.backend)
                .map(|p| {
                    p.log
                        .lock()
                        .expect("log")
                        .iter()
                        .filter(|l| l.contains(&round))
                        .count()
                })
                .sum::<usize>()
        };
        let mut seen = count();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = count();
            if now == seen {
                break;
            }
            seen = now;
        }
        last = seen;
        if (low..=high).contains(&(seen as f64)) {
            return Ok(());
        }
    }
    Err(format!(
        "mirror {}/{} saw {last} of {REQUESTS} requests, want {low:.0}..{high:.0} ({percent}%)",
        mirror.namespace, mirror.backend
    ))
}

fn check_redirect(headers: &http::HeaderMap, want: &conformance::Redirect) -> Result<(), String> {
    let location = header_values(headers, "location").ok_or("redirect without Location")?;
    let uri: http::Uri = location
        .parse()
        .map_err(|e| format!("Location {location:?} does not parse: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if let Some(s) = &want.scheme
        && s != scheme
    {
        return Err(format!(
            "Location {location:?}: scheme {scheme:?}, want {s:?}"
        ));
    }
    if let Some(p) = &want.path
        && uri.path() != p
    {
        return Err(format!(
            "Location {location:?}: path {:?}, want {p:?}",
            uri.path()
        ));
    }
    if let Some(h) = &want.host
        && uri.host().unwrap_or("") != h
    {
        return Err(format!("Location {location:?}: host, want {h:?}"));
    }
    let port = uri.port_u16();
    match &want.port {
        Some(p) => {
            if port.map(|p| p.to_string()).as_deref() != Some(p.as_str()) {
                return Err(format!("Location {location:?}: port, want {p}"));
            }
        }
        None => {
            let default = if scheme == "https" { 443 } else { 80 };
            if port.is_some_and(|p| p != default) {
                return Err(format!(
                    "Location {location:?}: port must be absent or {default}"
                ));
            }
        }
    }
    Ok(())
}

async fn grpc_case(case: &Case, target: Target) -> Result<(), String> {
    let req = &case.request;
    let expect = &case.expect;
    let authority = match req.authority.as_deref() {
        None | Some("") => format!("{}:{}", target.ip, target.port),
        Some(a) => a.to_owned(),
    };
    let method = req.method.clone().unwrap_or_default();
    let (code, response) = grpc::call(target.socket(), &authority, &method, &req.metadata).await?;
    let name = grpc::code_name(code);
    // cases.yaml writes both `OK` and `Unimplemented`: compare grpc-go's names loosely.
    let same = |a: &str, b: &str| a.replace('_', "").eq_ignore_ascii_case(&b.replace('_', ""));
    if let Some(not) = &expect.grpc_status_not {
        return if same(name, not) {
            Err(format!("gRPC status {name}, must not be {not}"))
        } else {
            Ok(())
        };
    }
    let want = expect.grpc_status.as_deref().unwrap_or("OK");
    if !same(name, want) {
        return Err(format!("gRPC status {name}, want {want}"));
    }
    if code != tonic::Code::Ok {
        return Ok(());
    }
    let assertions = response
        .and_then(|r| r.assertions)
        .ok_or("OK without assertions")?;
    if assertions.fully_qualified_method != method {
        return Err(format!(
            "backend saw method {:?}, want {method:?}",
            assertions.fully_qualified_method
        ));
    }
    let context = assertions.context.unwrap_or_default();
    if let Some(ns) = expect.namespace.as_deref().filter(|n| !n.is_empty())
        && context.namespace != ns
    {
        return Err(format!(
            "answered by namespace {:?}, want {ns:?}",
            context.namespace
        ));
    }
    let backend = expect.backend.as_deref().unwrap_or("");
    if !context.pod.starts_with(backend) {
        return Err(format!(
            "answered by pod {:?}, want {backend:?}",
            context.pod
        ));
    }
    Ok(())
}

async fn tcp_case(world: &World, case: &Case, target: Target) -> Result<(), String> {
    let expect = &case.expect;
    let tls = client_tls(world, case)?;
    let echo = client::tcp_echo(target.socket(), tls.as_ref()).await?;
    let pod = echo.info.get("pod").and_then(Value::as_str).unwrap_or("");
    let namespace = echo
        .info
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(ns) = expect.namespace.as_deref().filter(|n| !n.is_empty())
        && namespace != ns
    {
        return Err(format!("answered by namespace {namespace:?}, want {ns:?}"));
    }
    if let Some(backend) = expect.backend.as_deref().filter(|b| !b.is_empty())
        && !pod.starts_with(&format!("{backend}-"))
    {
        return Err(format!("answered by pod {pod:?}, want {backend}-…"));
    }
    if let Some(is_tls) = expect.backend_is_tls
        && echo.is_tls != is_tls
    {
        return Err(format!("backend isTLS {}, want {is_tls}", echo.is_tls));
    }
    if let Some(sni) = &expect.backend_sni {
        let seen = echo
            .info
            .pointer("/tls/serverName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if seen != sni {
            return Err(format!("backend saw SNI {seen:?}, want {sni:?}"));
        }
    }
    Ok(())
}

async fn handshake_case(case: &Case, target: Target) -> Result<(), String> {
    let sni = case
        .request
        .tls
        .as_ref()
        .and_then(|t| t.sni.clone())
        .unwrap_or_default();
    match client::handshake(target.socket(), &sni).await {
        client::Handshake::Cut(_) if case.expect.connection_rejected.is_some() => Ok(()),
        client::Handshake::Done if case.expect.connection_rejected.is_none() => Ok(()),
        client::Handshake::Done => Err("the TLS handshake completed; it must be cut".to_owned()),
        client::Handshake::Cut(e) | client::Handshake::Failed(e) => {
            Err(format!("TLS handshake: {e}"))
        }
    }
}

async fn udp_case(case: &Case, target: Target) -> Result<(), String> {
    let req = &case.request;
    let expect = &case.expect;
    if req.transport.as_deref() == Some("dns-udp") {
        let name = req
            .query
            .as_deref()
            .and_then(|q| q.split_whitespace().next())
            .unwrap_or("foo.bar.com.");
        let reply = client::udp(target.socket(), &client::dns_query(name)).await?;
        return if reply.len() >= 12 && reply[0..2] == [0x12, 0x34] && reply[3] & 0x0f == 0 {
            Ok(())
        } else {
            Err(format!("not a NOERROR DNS reply: {reply:?}"))
        };
    }
    let payload = req.payload.as_deref().unwrap_or("");
    let reply = client::udp(target.socket(), payload.as_bytes()).await?;
    if expect.service.is_none() && expect.namespace.is_none() {
        return Ok(());
    }
    let json: Value = serde_json::from_slice(&reply)
        .map_err(|e| format!("reply {:?}: {e}", String::from_utf8_lossy(&reply)))?;
    if let Some(service) = &expect.service {
        field_is(&json, "service", service, "answered by")?;
    }
    if let Some(ns) = &expect.namespace {
        field_is(&json, "namespace", ns, "answered by")?;
    }
    Ok(())
}

async fn websocket_case(case: &Case, target: Target) -> Result<(), String> {
    let req = &case.request;
    let path = req
        .url
        .as_deref()
        .and_then(|u| u.strip_prefix("ws://"))
        .and_then(|u| u.find('/').map(|i| u[i..].to_owned()))
        .unwrap_or_else(|| "/ws".to_owned());
    let messages: Vec<(u8, Vec<u8>)> = req
        .messages
        .iter()
        .map(|m| match (&m.send_text, &m.send_binary_hex) {
            (Some(t), _) => (1, t.as_bytes().to_vec()),
            (None, Some(hex)) => (
                2,
                (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                    .collect(),
            ),
            (None, None) => (1, Vec::new()),
        })
        .collect();
    let origin = req.origin.as_deref().unwrap_or("ws://gateway/");
    crate::ws::round_trip(
        target.socket(),
        &target.authority(),
        &path,
        origin,
        &messages,
    )
    .await
}

/// The pod that answers one TCP echo exchange.
pub(crate) async fn tcp_pod(target: Target) -> Result<String, String> {
    let echo = client::tcp_echo(target.socket(), None).await?;
    Ok(echo
        .info
        .get("pod")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned())
}

/// A plain GET over HTTP/1.1 to the gateway address; the echo body.
pub(crate) async fn get_echo(target: Target, path: &str) -> Result<Value, String> {
    let request = Request::builder()
        .uri(path)
        .header(http::header::HOST, target.authority())
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let reply = client::http(target.socket(), None, false, request).await?;
    serde_json::from_slice(&reply.body)
        .map_err(|e| format!("status {}, no echo body: {e}", reply.status))
}

/// Which backend answered one sample, by Deployment name.
async fn sample(case: &Case, target: Target) -> Result<String, String> {
    let deployment = |pod: &str| {
        let parts: Vec<&str> = pod.split('-').collect();
        parts[..parts.len().saturating_sub(2)].join("-")
    };
    let pod = match case.request.transport.as_deref() {
        None => {
            let host = match case.request.host.as_deref() {
                None | Some("") => target.authority(),
                Some(h) => h.to_owned(),
            };
            let mut builder = Request::builder()
                .uri(case.request.path.as_deref().unwrap_or("/"))
                .header(http::header::HOST, host);
            if fastrand::bool() {
                builder = builder.header("X-Jitter", fastrand::u32(0..10_000).to_string());
            }
            let request = builder
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let reply = client::http(target.socket(), None, false, request).await?;
            let echo: Value = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("status {} without echo body: {e}", reply.status))?;
            text(&echo, "pod").to_owned()
        }
        Some("grpc-h2c") => {
            let mut metadata = conformance::Headers::new();
            if fastrand::bool() {
                metadata.insert("x-jitter".to_owned(), fastrand::u32(0..10_000).to_string());
            }
            let method = case.request.method.clone().unwrap_or_default();
            let authority = format!("{}:{}", target.ip, target.port);
            let (code, response) =
                grpc::call(target.socket(), &authority, &method, &metadata).await?;
            response
                .and_then(|r| r.assertions)
                .and_then(|a| a.context)
                .map(|c| c.pod)
                .ok_or_else(|| format!("gRPC status {}", grpc::code_name(code)))?
        }
        Some("tcp-echo") => {
            let echo = client::tcp_echo(target.socket(), None).await?;
            echo.info
                .get("pod")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        }
        Some("udp-echo") => {
            let payload = case.request.payload.as_deref().unwrap_or("");
            let reply = client::udp(target.socket(), payload.as_bytes()).await?;
            let json: Value = serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
            text(&json, "pod").to_owned()
        }
        Some(other) => return Err(format!("no sampling for transport {other}")),
    };
    Ok(deployment(&pod))
}

/// The weighted-traffic check: rounds of samples, one passing round suffices.
pub(crate) async fn distribution(
    case: &Case,
    target: Target,
    d: &conformance::Distribution,
) -> Result<(), String> {
    let total = d.requests.or(d.connections).unwrap_or(500);
    let concurrency = d.concurrency.unwrap_or(10).max(1);
    let tolerance = d.tolerance_abs.unwrap_or(0.05);
    let rounds = d.max_attempts.unwrap_or(10).clamp(1, 10);
    let mut last = String::new();
    for _ in 0..rounds {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut done = 0;
        while done < total {
            let batch = concurrency.min(total - done);
            let samples = futures_join((0..batch).map(|_| sample(case, target)).collect()).await;
            for s in samples {
                *counts.entry(s?).or_default() += 1;
            }
            done += batch;
        }
        let mut problems = Vec::new();
        for (backend, fraction) in &d.expected_fraction {
            let got = counts.get(backend).copied().unwrap_or(0);
            let share = got as f64 / total as f64;
            if (*fraction == 0.0 && got > 0) || (share - fraction).abs() > tolerance {
                problems.push(format!("{backend} {share:.3} (want {fraction})"));
            }
        }
        for backend in counts.keys() {
            if !d.expected_fraction.contains_key(backend) {
                problems.push(format!("unexpected backend {backend}"));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        last = problems.join(", ");
    }
    Err(format!("no round within tolerance: {last}"))
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}
