//! HTTPRoute filters that do not need the network: header modifiers, redirects, path
//! rewrites, CORS.

use gateway_core::ir::{Cors, HeaderModifier, PathModifier, Redirect};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Applies `set`, `add` (comma-joined with an existing value) and `remove`.
pub(crate) fn modify_headers(headers: &mut HeaderMap, modifier: &HeaderModifier) {
    for (name, value) in &modifier.set {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &modifier.add {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let joined = {
            let mut existing = headers.get_all(&name).iter().peekable();
            if existing.peek().is_none() {
                None
            } else {
                let mut bytes = Vec::new();
                for v in existing {
                    if !bytes.is_empty() {
                        bytes.push(b',');
                    }
                    bytes.extend_from_slice(v.as_bytes());
                }
                bytes.push(b',');
                bytes.extend_from_slice(value.as_bytes());
                Some(bytes)
            }
        };
        let new = match joined {
            Some(bytes) => HeaderValue::from_bytes(&bytes),
            None => HeaderValue::from_str(value),
        };
        if let Ok(new) = new {
            headers.insert(name, new);
        }
    }
    for name in &modifier.remove {
        headers.remove(name.as_str());
    }
}

/// The path after a `ReplacePrefixMatch` of the matched `prefix` (stored without a trailing
/// `/` except `/` itself), as the spec's table says: `/foo` → `/bar` turns `/foo/x` into
/// `/bar/x`; `/foo` → `` or `/` turns `/foo/x` into `/x` and `/foo` into `/`.
pub(crate) fn replace_prefix(path: &str, prefix: &str, replacement: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.get(prefix.len()..).unwrap_or("");
    let replacement = replacement.trim_end_matches('/');
    let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
    if !replacement.starts_with('/') {
        out.push('/');
    }
    out.push_str(replacement);
    if rest.starts_with('/') && out.ends_with('/') {
        out.push_str(&rest[1..]);
    } else {
        out.push_str(rest);
    }
    out
}

/// The path after a path modifier; `prefix` is the matched PathPrefix, if the match was one.
pub(crate) fn modify_path(path: &str, modifier: &PathModifier, prefix: Option<&str>) -> String {
    match (modifier, prefix) {
        (PathModifier::ReplaceFullPath(full), _) => full.clone(),
        (PathModifier::ReplacePrefixMatch(replacement), Some(prefix)) => {
            replace_prefix(path, prefix, replacement)
        }
        // Validation refuses ReplacePrefixMatch without a PathPrefix match; keep the path.
        (PathModifier::ReplacePrefixMatch(_), None) => path.to_owned(),
    }
}

/// The `Location` of a redirect.
pub(crate) struct RedirectInput<'a> {
    pub(crate) redirect: &'a Redirect,
    /// `http` or `https`, what the client used.
    pub(crate) request_scheme: &'static str,
    /// Request host, possibly with a port.
    pub(crate) request_host: &'a str,
    /// Normalised request path.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    /// Matched PathPrefix, if any.
    pub(crate) prefix: Option<&'a str>,
    /// The listener port from the manifest.
    pub(crate) listener_port: u16,
}

pub(crate) fn redirect_location(input: &RedirectInput<'_>) -> String {
    let r = input.redirect;
    let scheme = r.scheme.as_deref().unwrap_or(input.request_scheme);
    let host = match &r.hostname {
        Some(h) => h.as_str(),
        None => strip_port(input.request_host),
    };
    let port = match (r.port, r.scheme.as_deref()) {
        (Some(port), _) => port,
        (None, Some("https")) => 443,
        (None, Some("http")) => 80,
        (None, _) => input.listener_port,
    };
    let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
    let path = match &r.path {
        Some(m) => modify_path(input.path, m, input.prefix),
        None => input.path.to_owned(),
    };
    let mut out = format!("{scheme}://{host}");
    if !default_port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&path);
    if let Some(q) = input.query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A host without its `:port` (IPv6 literals keep their brackets).
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Whether `origin` is allowed by the CORS filter (`*`, exact, or `scheme://*.domain`).
pub(crate) fn origin_allowed(cors: &Cors, origin: &str) -> bool {
    cors.allow_origins.iter().any(|allowed| {
        if allowed == "*" {
            return true;
        }
        if let Some((scheme, rest)) = allowed.split_once("://*.") {
            // One or more labels in front of the domain.
            return origin
                .strip_prefix(scheme)
                .and_then(|o| o.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(rest))
                .is_some_and(|labels| labels.len() > 1 && labels.ends_with('.'));
        }
        allowed.eq_ignore_ascii_case(origin)
    })
}

fn join(values: &[String]) -> Option<HeaderValue> {
    HeaderValue::from_str(&values.join(", ")).ok()
}

/// The headers answering a preflight from an allowed `origin`.
pub(crate) fn cors_preflight(
    cors: &Cors,
    origin: &HeaderValue,
    request_method: Option<&HeaderValue>,
    request_headers: Option<&HeaderValue>,
    out: &mut HeaderMap,
) {
    let wildcard_origin = cors.allow_origins.iter().any(|o| o == "*");
    if cors.allow_credentials || !wildcard_origin {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
    } else {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    let methods_wildcard = cors.allow_methods.iter().any(|m| m == "*");
    let methods = if cors.allow_credentials && methods_wildcard {
        request_method.cloned()
    } else {
        join(&cors.allow_methods)
    };
    if let Some(m) = methods {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
    }
    let headers_wildcard = cors.allow_headers.iter().any(|h| h == "*");
    let headers = if cors.allow_credentials && headers_wildcard {
        request_headers.cloned()
    } else if cors.allow_headers.is_empty() {
        None
    } else {
        join(&cors.allow_headers)
    };
    if let Some(h) = headers {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h);
    }
    if cors.allow_credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    // The conformance suite expects the exposed headers on the preflight answer too.
    if let Some(v) = join(&cors.expose_headers).filter(|_| !cors.expose_headers.is_empty()) {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age),
    );
}

/// The headers of an actual (non-preflight) response to an allowed `origin`.
pub(crate) fn cors_response(cors: &Cors, origin: &HeaderValue, out: &mut HeaderMap) {
    let wildcard_origin = cors.allow_origins.iter().any(|o| o == "*");
    if cors.allow_credentials || !wildcard_origin {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.append(header::VARY, HeaderValue::from_static("Origin"));
    } else {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    if cors.allow_credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.expose_headers.is_empty()
        && let Some(v) = join(&cors.expose_headers)
    {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_table() {
        assert_eq!(replace_prefix("/foo/x", "/foo", "/bar"), "/bar/x");
        assert_eq!(replace_prefix("/foo", "/foo", "/bar"), "/bar");
        assert_eq!(replace_prefix("/foo/x", "/foo", ""), "/x");
        assert_eq!(replace_prefix("/foo/x", "/foo", "/"), "/x");
        assert_eq!(replace_prefix("/foo", "/foo", "/"), "/");
        assert_eq!(replace_prefix("/foo", "/foo", ""), "/");
        assert_eq!(replace_prefix("/foo/", "/foo", "/bar"), "/bar/");
        assert_eq!(replace_prefix("/foo/x", "/foo", "/bar/"), "/bar/x");
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.example"), "a.example");
    }
}
