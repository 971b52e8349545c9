//! Hostname index: exact names, `*.suffix` wildcards and a catch-all.

use std::collections::HashMap;

use super::FastMap;

/// How a request host matched a [`HostTable`] entry; the derived order is the hostname
/// precedence (greater is more specific).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMatch {
    /// The entry without hostname, which matches every host.
    Any,
    /// A `*.suffix` wildcard; the number is the length of `suffix` (without `*.`), so a
    /// longer wildcard ranks higher, as the spec's "characters in a matching hostname" asks.
    Wildcard(usize),
    /// The exact name.
    Exact,
}

/// An index from hostnames to values of type `T`.
///
/// Exact names and `*.suffix` wildcards are looked up in hash maps, so lookup cost depends on
/// the number of labels of the request host, not on the number of entries. A wildcard
/// `*.example.com` matches one or more labels before `example.com` (`a.b.example.com`) but
/// never `example.com` itself.
///
/// Keys and lookups are ASCII case-insensitive, a `:port` suffix is ignored, an IPv6 literal
/// (`[::1]:8080`) is looked up without brackets and port, and one trailing dot is ignored.
#[derive(Clone, Debug)]
pub struct HostTable<T> {
    exact: FastMap<Box<str>, T>,
    /// Keyed by the suffix after `*.`.
    wildcard: FastMap<Box<str>, T>,
    any: Option<T>,
}

impl<T> Default for HostTable<T> {
    fn default() -> Self {
        HostTable {
            exact: HashMap::default(),
            wildcard: HashMap::default(),
            any: None,
        }
    }
}

enum Key {
    Exact(String),
    Wildcard(String),
    Any,
}

fn key_of(hostname: Option<&str>) -> Key {
    let Some(name) = hostname else {
        return Key::Any;
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    // A lone `*` is treated as "any host" rather than as a wildcard with an empty suffix.
    if name == "*" {
        Key::Any
    } else if let Some(suffix) = name.strip_prefix("*.") {
        Key::Wildcard(suffix.to_owned())
    } else {
        Key::Exact(name)
    }
}

impl<T> HostTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `hostname` (`None` for the catch-all), returning the value it
    /// replaces.
    pub fn insert(&mut self, hostname: Option<&str>, value: T) -> Option<T> {
        match key_of(hostname) {
            Key::Exact(k) => self.exact.insert(k.into(), value),
            Key::Wildcard(k) => self.wildcard.insert(k.into(), value),
            Key::Any => self.any.replace(value),
        }
    }

    /// The value under `hostname`, inserted with `make` first if missing.
    pub fn get_or_insert_with(
        &mut self,
        hostname: Option<&str>,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        match key_of(hostname) {
            Key::Exact(k) => self.exact.entry(k.into()).or_insert_with(make),
            Key::Wildcard(k) => self.wildcard.entry(k.into()).or_insert_with(make),
            Key::Any => self.any.get_or_insert_with(make),
        }
    }

    /// The catch-all value (inserted with hostname `None`).
    pub fn catch_all(&self) -> Option<&T> {
        self.any.as_ref()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any.is_none()
    }

    /// The entries matching a request host, most specific first: the exact name, then
    /// wildcards by decreasing suffix length, then the catch-all.
    pub fn lookup<'t>(&'t self, host: &str) -> HostCandidates<'t, T> {
        self.lookup_key(HostKey::new(host))
    }

    pub(super) fn lookup_key(&self, key: HostKey) -> HostCandidates<'_, T> {
        HostCandidates {
            table: self,
            stage: Stage::Exact,
            key,
        }
    }

    /// All values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(self.any.as_ref())
    }

    /// All values, mutably, in no particular order.
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.exact
            .values_mut()
            .chain(self.wildcard.values_mut())
            .chain(self.any.as_mut())
    }
}

/// Hostnames are at most 253 bytes; longer Host values are rare junk and may allocate.
const INLINE_HOST: usize = 256;

/// A request host reduced to its lookup form (lower-case, no port, no brackets, no trailing
/// dot), kept on the stack.
#[derive(Clone)]
pub(super) struct HostKey {
    buf: [u8; INLINE_HOST],
    len: usize,
    heap: Option<String>,
    ip_literal: bool,
}

impl HostKey {
    pub(super) fn new(host: &str) -> HostKey {
        let (name, ip_literal) = match host.strip_prefix('[') {
            Some(rest) => match rest.find(']') {
                Some(end) => (rest.get(..end).unwrap_or_default(), true),
                None => (host, false),
            },
            None => {
                let name = match host.find(':') {
                    Some(colon) => host.get(..colon).unwrap_or_default(),
                    None => host,
                };
                (name.strip_suffix('.').unwrap_or(name), false)
            }
        };
        let mut key = HostKey {
            buf: [0; INLINE_HOST],
            len: 0,
            heap: None,
            ip_literal,
        };
        if let Some(slot) = key.buf.get_mut(..name.len()) {
            slot.copy_from_slice(name.as_bytes());
            slot.make_ascii_lowercase();
            key.len = name.len();
        } else {
            key.heap = Some(name.to_ascii_lowercase());
        }
        key
    }

    pub(super) fn as_str(&self) -> &str {
        match &self.heap {
            Some(s) => s,
            // Lower-casing ASCII bytes of a `str` keeps it valid UTF-8.
            None => std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Exact,
    /// Next byte offset at which to search for the dot that starts a wildcard suffix.
    Wildcard(usize),
    Any,
    Done,
}

/// The entries of a [`HostTable`] matching one host, most specific first.
pub struct HostCandidates<'t, T> {
    table: &'t HostTable<T>,
    stage: Stage,
    key: HostKey,
}

impl<'t, T> Iterator for HostCandidates<'t, T> {
    type Item = (HostMatch, &'t T);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.stage {
                Stage::Exact => {
                    self.stage = if self.key.ip_literal {
                        Stage::Any
                    } else {
                        Stage::Wildcard(0)
                    };
                    if let Some(v) = self.table.exact.get(self.key.as_str()) {
                        return Some((HostMatch::Exact, v));
                    }
                }
                Stage::Wildcard(from) => {
                    let host = self.key.as_str();
                    // The first dot must follow at least one label: `.example.com` is no host.
                    let dot = host
                        .get(from..)
                        .and_then(|rest| rest.find('.'))
                        .map(|d| d + from)
                        .filter(|&d| d > 0);
                    let Some(dot) = dot else {
                        self.stage = Stage::Any;
                        continue;
                    };
                    self.stage = Stage::Wildcard(dot + 1);
                    if self.table.wildcard.is_empty() {
                        self.stage = Stage::Any;
                        continue;
                    }
                    let suffix = host.get(dot + 1..).unwrap_or_default();
                    if suffix.is_empty() {
                        continue;
                    }
                    if let Some(v) = self.table.wildcard.get(suffix) {
                        return Some((HostMatch::Wildcard(suffix.len()), v));
                    }
                }
                Stage::Any => {
                    self.stage = Stage::Done;
                    if let Some(v) = &self.table.any {
                        return Some((HostMatch::Any, v));
                    }
                }
                Stage::Done => return None,
            }
        }
    }
}
