//! The string formats the CRDs check with patterns, written out by hand so that they need
//! no regex compilation and no fallible statics.

use std::net::IpAddr;

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One RFC 1123 label as the CRD patterns read it: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
/// The patterns put no length limit on single labels, so neither does this.
fn is_label(text: &str) -> bool {
    let b = text.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`, without a length limit.
pub(crate) fn is_subdomain_syntax(text: &str) -> bool {
    !text.is_empty() && text.split('.').all(is_label)
}

/// A DNS subdomain (object names, section names, rule names, groups): at most 253 characters.
pub(crate) fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && is_subdomain_syntax(text)
}

/// A DNS label (namespaces): at most 63 characters.
pub(crate) fn is_dns_label(text: &str) -> bool {
    text.len() <= 63 && is_label(text)
}

/// The CRD hostname pattern `^(\*\.)?<subdomain>$`, at most 253 characters; IPs pass.
pub(crate) fn is_hostname_syntax(text: &str, allow_wildcard: bool) -> bool {
    if text.len() > 253 {
        return false;
    }
    let rest = match text.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        _ => text,
    };
    is_subdomain_syntax(rest)
}

/// RFC 1123 DNS subdomain, optionally with a single leading `*.` label when `allow_wildcard`.
///
/// Follows the CRD pattern (lower-case labels, at most 253 characters) and the Gateway API
/// `Hostname` type's rule that IP addresses are not host names.
pub fn is_valid_hostname(text: &str, allow_wildcard: bool) -> bool {
    is_hostname_syntax(text, allow_wildcard) && text.parse::<IpAddr>().is_err()
}

/// An RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// HTTP header name is an RFC 7230 token (1–256 characters, as the CRD limits it).
pub fn is_valid_header_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 256 && text.bytes().all(is_tchar)
}

/// Header values the CRD accepts: `^[!-~]+([\t ]?[!-~]+)*$` (visible ASCII, single inner
/// spaces or tabs, none leading or trailing).
pub(crate) fn is_valid_header_value(text: &str) -> bool {
    let b = text.as_bytes();
    let visible = |c: u8| (b'!'..=b'~').contains(&c);
    let blank = |c: u8| c == b' ' || c == b'\t';
    b.first().is_some_and(|&c| visible(c))
        && b.last().is_some_and(|&c| visible(c))
        && b.iter().all(|&c| visible(c) || blank(c))
        && !b.windows(2).any(|w| blank(w[0]) && blank(w[1]))
}

/// `Kind`: `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`, 1–63 characters.
pub(crate) fn is_valid_kind(text: &str) -> bool {
    let b = text.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            b.len() <= 63
                && first.is_ascii_alphabetic()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// `Group`: empty (core) or a DNS subdomain.
pub(crate) fn is_valid_group(text: &str) -> bool {
    text.is_empty() || is_dns_subdomain(text)
}

/// Path characters of `^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`.
pub(crate) fn is_valid_path_chars(text: &str) -> bool {
    let b = text.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if c.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Listener protocol pattern:
/// `^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$`.
///
/// The second alternative is anchored only at the end, so any text whose last `/` is
/// preceded by `[a-z0-9]` and followed by letters and digits passes; the API server reads
/// it that way, so this does too.
pub(crate) fn is_valid_protocol(text: &str) -> bool {
    if text.is_empty() || text.len() > 255 {
        return false;
    }
    let b = text.as_bytes();
    let plain = b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    if plain {
        return true;
    }
    match text.rfind('/') {
        Some(slash) if slash > 0 => {
            let name = &b[slash + 1..];
            is_lower_alnum(b[slash - 1])
                && !name.is_empty()
                && name.iter().all(u8::is_ascii_alphanumeric)
        }
        _ => false,
    }
}

/// Characters allowed in the path part of controller names and address types.
fn is_domain_path_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c)
}

/// `^<subdomain>\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$` (GatewayClass `controllerName`).
pub(crate) fn is_domain_prefixed_path(text: &str) -> bool {
    match text.split_once('/') {
        Some((domain, path)) => {
            is_subdomain_syntax(domain) && !path.is_empty() && path.bytes().all(is_domain_path_char)
        }
        None => false,
    }
}

/// Address type pattern `^Hostname|IPAddress|NamedAddress|<subdomain>\/<path>$`; like the
/// protocol pattern, only its first alternative is anchored at the start.
pub(crate) fn is_valid_address_type(text: &str) -> bool {
    if text.is_empty() || text.len() > 253 {
        return false;
    }
    if text.starts_with("Hostname") || text.contains("IPAddress") || text.contains("NamedAddress") {
        return true;
    }
    let b = text.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'/'
            && i > 0
            && is_lower_alnum(b[i - 1])
            && i + 1 < b.len()
            && b[i + 1..].iter().all(|&c| is_domain_path_char(c))
    })
}

/// Label and annotation keys: `^(<subdomain>/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$`
/// with a prefix shorter than 253 characters.
pub(crate) fn is_valid_metadata_key(text: &str) -> bool {
    let (prefix, name) = match text.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    if let Some(prefix) = prefix
        && !(prefix.len() < 253 && is_subdomain_syntax(prefix))
    {
        return false;
    }
    is_qualified_name_part(name)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]`: 1–63 characters.
fn is_qualified_name_part(name: &str) -> bool {
    let b = name.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            b.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        }
        _ => false,
    }
}

/// Label values: empty or a qualified name part.
pub(crate) fn is_valid_label_value(text: &str) -> bool {
    text.is_empty() || is_qualified_name_part(text)
}

/// CORS origin: `*`, or `http(s)://host[:port]` where host may start with `*.` or be `*`.
pub(crate) fn is_valid_origin(text: &str) -> bool {
    if text == "*" {
        return true;
    }
    if text.is_empty() || text.len() > 253 {
        return false;
    }
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if let Some(port) = port
        && !(1..=5).contains(&port.len())
    {
        return false;
    }
    if port.is_some_and(|p| !p.bytes().all(|c| c.is_ascii_digit())) {
        return false;
    }
    if host == "*" {
        return true;
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    let label =
        |l: &str| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    !host.is_empty() && host.split('.').all(label)
}

/// `wellKnownCACertificates`: `System` or `<subdomain>/<qualified name>`.
pub(crate) fn is_valid_well_known_ca(text: &str) -> bool {
    text == "System"
        || text.split_once('/').is_some_and(|(domain, name)| {
            is_subdomain_syntax(domain) && is_qualified_name_part(name)
        })
}

/// SubjectAltName URI: the CRD only checks that it starts with `scheme://`.
pub(crate) fn is_valid_san_uri(text: &str) -> bool {
    match text.split_once(':') {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && !scheme.bytes().any(|c| b"/?#".contains(&c))
                && rest.starts_with("//")
        }
        None => false,
    }
}
