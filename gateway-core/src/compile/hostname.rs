//! Hostname intersection between a listener and a route (Gateway API spec, HTTPRoute
//! `hostnames`): a `*.example.com` wildcard covers one or more labels and never the apex.

/// The hostnames a route serves on a listener, lower-cased.
///
/// - `Some(vec![])`: the route serves every host the listener accepts (neither names any).
/// - `Some(names)`: the intersected names (a listener name, a route name, or the more specific
///   of two intersecting wildcards).
/// - `None`: the route names hosts and none intersects the listener's.
///
/// ```
/// use gateway_core::compile::intersect_hostnames;
/// let both = |l: Option<&str>, r: &[&str]| {
///     intersect_hostnames(l, &r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
/// };
/// assert_eq!(both(Some("*.example.com"), &["a.b.example.com"]), Some(vec!["a.b.example.com".into()]));
/// assert_eq!(both(Some("*.example.com"), &["example.com"]), None);
/// assert_eq!(both(Some("foo.example.com"), &["*.example.com"]), Some(vec!["foo.example.com".into()]));
/// assert_eq!(both(Some("*.com"), &["*.example.com"]), Some(vec!["*.example.com".into()]));
/// assert_eq!(both(None, &[]), Some(vec![]));
/// ```
pub fn intersect_hostnames(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let listener = listener.map(str::to_ascii_lowercase);
    if route.is_empty() {
        return Some(listener.into_iter().collect());
    }
    let mut out: Vec<String> = Vec::new();
    for name in route {
        let name = name.to_ascii_lowercase();
        let hit = match &listener {
            None => Some(name),
            Some(l) => intersect_one(l, &name),
        };
        if let Some(hit) = hit
            && !out.contains(&hit)
        {
            out.push(hit);
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

fn intersect_one(listener: &str, route: &str) -> Option<String> {
    match (wildcard_suffix(listener), wildcard_suffix(route)) {
        (None, None) => (listener == route).then(|| route.to_owned()),
        (Some(suffix), None) => covered(route, suffix).then(|| route.to_owned()),
        (None, Some(suffix)) => covered(listener, suffix).then(|| listener.to_owned()),
        (Some(l), Some(r)) => {
            if l == r || covered(r, l) {
                Some(route.to_owned())
            } else if covered(l, r) {
                Some(listener.to_owned())
            } else {
                None
            }
        }
    }
}

/// `example.com` for `*.example.com`.
pub(super) fn wildcard_suffix(name: &str) -> Option<&str> {
    name.strip_prefix("*.")
}

/// Whether `name` is strictly under `suffix` (at least one more label).
fn covered(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

#[cfg(test)]
/// Whether a (possibly wildcard) listener hostname accepts a concrete host.
fn listener_accepts(listener: Option<&str>, host: &str) -> bool {
    match listener {
        None => true,
        Some(l) => match wildcard_suffix(l) {
            Some(suffix) => covered(host, suffix),
            None => l.eq_ignore_ascii_case(host),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spec_examples() {
        // Listener precise vs route precise must be equal.
        assert_eq!(
            intersect_hostnames(Some("a.com"), &names(&["a.com"])),
            Some(names(&["a.com"]))
        );
        assert_eq!(intersect_hostnames(Some("a.com"), &names(&["b.com"])), None);
        // Route names that do not intersect are dropped; others kept.
        assert_eq!(
            intersect_hostnames(
                Some("very.specific.com"),
                &names(&[
                    "non.matching.com",
                    "*.nonmatchingwildcard.io",
                    "very.specific.com"
                ])
            ),
            Some(names(&["very.specific.com"]))
        );
        assert_eq!(
            intersect_hostnames(
                Some("*.wildcard.io"),
                &names(&["wildcard.io", "foo.wildcard.io"])
            ),
            Some(names(&["foo.wildcard.io"]))
        );
        // Wildcard vs wildcard keeps the more specific one, whichever side it is on.
        assert_eq!(
            intersect_hostnames(Some("*.example.com"), &names(&["*.com"])),
            Some(names(&["*.example.com"]))
        );
        assert_eq!(
            intersect_hostnames(Some("*.a.com"), &names(&["*.b.com"])),
            None
        );
        // Case-insensitive.
        assert_eq!(
            intersect_hostnames(Some("A.com"), &names(&["a.COM"])),
            Some(names(&["a.com"]))
        );
        assert!(listener_accepts(Some("*.example.com"), "x.y.example.com"));
        assert!(!listener_accepts(Some("*.example.com"), "example.com"));
        assert!(!listener_accepts(Some("*.example.com"), "xexample.com"));
    }
}
