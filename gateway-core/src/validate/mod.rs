//! Checks the upstream CRDs enforce with their schema and CEL rules.
//!
//! Objects read from files never went through an API server, so nothing has applied the
//! OpenAPI limits and CEL rules of the Gateway API CRDs to them. The functions here do, so
//! that a manifest the API server would refuse is refused here too, with a JSON path to the
//! offending field. They check shape only: values that are schema-valid but not served
//! (custom protocols, `ExternalAuth`, session persistence, …) pass, and compile reports them
//! with the upstream condition reasons.
//!
//! Defaults the CRDs apply are taken into account (an absent path match is `PathPrefix /`,
//! an absent `tls.mode` is `Terminate`, …), so a manifest that relies on them passes.

mod duration;
mod gateway;
mod names;
mod policy;
mod route;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::model::{BackendRef, ObjectMeta, ParentReference};

pub use self::duration::{DurationError, parse_duration};
pub use self::gateway::{gateway, gateway_class, listener_set};
pub use self::names::{is_valid_header_name, is_valid_hostname};
pub use self::policy::{backend_tls_policy, reference_grant};
pub use self::route::{grpc_route, http_route, tcp_route, tls_route};

/// One schema or CEL violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path from the object root, e.g. `spec.rules[0].matches[1].path.value`.
    pub field: String,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A field's JSON path (`spec.rules[0].matches[1]`), written out only when an error names
/// it: a valid object (nearly every object, on every reload) costs no string building.
#[derive(Clone, Copy)]
struct At<'a> {
    parent: Option<&'a At<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Name(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    /// A path from the object root (`spec.rules`).
    const fn root(name: &'a str) -> At<'a> {
        At {
            parent: None,
            segment: Segment::Name(name),
        }
    }

    /// `self.name`.
    fn field(&'a self, name: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            segment: Segment::Name(name),
        }
    }

    /// `self[index]`.
    fn index(&'a self, index: usize) -> At<'a> {
        At {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.segment {
            Segment::Name(name) if self.parent.is_some() => write!(f, ".{name}"),
            Segment::Name(name) => f.write_str(name),
            Segment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Collects violations while walking one object.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl fmt::Display, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    /// `maxItems`.
    fn max_items(&mut self, field: &(impl fmt::Display + ?Sized), len: usize, max: usize) {
        if len > max {
            self.add(field, format!("at most {max} entries (found {len})"));
        }
    }

    /// `minItems` and `maxItems`.
    fn items(&mut self, field: &(impl fmt::Display + ?Sized), len: usize, min: usize, max: usize) {
        if len < min {
            if min == 1 {
                self.add(field, "at least 1 entry is required");
            } else {
                self.add(
                    field,
                    format!("at least {min} entries are required (found {len})"),
                );
            }
        }
        self.max_items(field, len, max);
    }

    /// `maxLength` on a string.
    fn max_len(&mut self, field: &(impl fmt::Display + ?Sized), text: &str, max: usize) {
        let len = text.chars().count();
        if len > max {
            self.add(field, format!("at most {max} characters (found {len})"));
        }
    }

    /// `minimum` and `maximum` on an integer.
    fn range(&mut self, field: &(impl fmt::Display + ?Sized), value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.add(
                field,
                format!("must be between {min} and {max} (found {value})"),
            );
        }
    }

    fn port(&mut self, field: &(impl fmt::Display + ?Sized), port: i64) {
        self.range(field, port, 1, 65535);
    }

    /// An enum value; `""` reads as a missing required field.
    fn one_of(&mut self, field: &(impl fmt::Display + ?Sized), value: &str, allowed: &[&str]) {
        if value.is_empty() {
            self.add(
                field,
                format!("is required (one of {})", allowed.join(", ")),
            );
        } else if !allowed.contains(&value) {
            self.add(
                field,
                format!(
                    "unsupported value {value:?}: must be one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// A required reference name (`ObjectName`: 1–253 characters, any content).
    fn object_name(&mut self, field: &(impl fmt::Display + ?Sized), name: &str) {
        if name.is_empty() {
            self.add(field, "is required");
        } else {
            self.max_len(field, name, 253);
        }
    }

    fn group(&mut self, field: &(impl fmt::Display + ?Sized), group: &str) {
        if !names::is_valid_group(group) {
            self.add(
                field,
                format!("invalid group {group:?}: must be empty or a lower-case DNS subdomain"),
            );
        }
    }

    fn kind(&mut self, field: &(impl fmt::Display + ?Sized), kind: &str) {
        if kind.is_empty() {
            self.add(field, "is required");
        } else if !names::is_valid_kind(kind) {
            self.add(
                field,
                format!("invalid kind {kind:?}: must start with a letter and contain only letters, digits and '-' (at most 63)"),
            );
        }
    }

    fn namespace(&mut self, field: &(impl fmt::Display + ?Sized), namespace: Option<&str>) {
        if let Some(ns) = namespace
            && !names::is_dns_label(ns)
        {
            self.add(
                field,
                format!("invalid namespace {ns:?}: must be a lower-case DNS label (at most 63 characters)"),
            );
        }
    }

    /// Section, rule and listener names: a DNS subdomain.
    fn section_name(&mut self, field: &(impl fmt::Display + ?Sized), name: &str) {
        if name.is_empty() {
            self.add(field, "must not be empty");
        } else if !names::is_dns_subdomain(name) {
            self.add(
                field,
                format!("invalid name {name:?}: must be a lower-case DNS subdomain (at most 253 characters)"),
            );
        }
    }

    fn hostname(
        &mut self,
        field: &(impl fmt::Display + ?Sized),
        hostname: &str,
        allow_wildcard: bool,
    ) {
        if is_valid_hostname(hostname, allow_wildcard) {
            return;
        }
        let message = if hostname.parse::<std::net::IpAddr>().is_ok() {
            format!("invalid hostname {hostname:?}: IP addresses are not allowed")
        } else if allow_wildcard {
            format!(
                "invalid hostname {hostname:?}: must be a lower-case DNS name, optionally with a leading \"*.\" label (at most 253 characters)"
            )
        } else {
            format!(
                "invalid hostname {hostname:?}: must be a lower-case DNS name without wildcards (at most 253 characters)"
            )
        };
        self.add(field, message);
    }

    fn regex(&mut self, field: &(impl fmt::Display + ?Sized), pattern: &str) {
        // Parsing checks the syntax at a fraction of the cost of compiling; compile builds the
        // automaton once and reports the rare pattern that parses but exceeds the size limit.
        if let Err(err) = regex_syntax::Parser::new().parse(pattern) {
            let detail = err.to_string();
            // The regex crate renders syntax errors over several lines with a caret marker;
            // a field error is one line, so keep the last line, which names the problem.
            let detail = detail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            self.add(
                field,
                format!("invalid regular expression: {}", detail.trim()),
            );
        }
    }

    fn duration(
        &mut self,
        field: &(impl fmt::Display + ?Sized),
        text: &str,
    ) -> Option<std::time::Duration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(err) => {
                self.add(
                    field,
                    format!("{}; expected up to 4 parts of 1–5 digits with unit h, m, s or ms (e.g. \"1h30m\")", err),
                );
                None
            }
        }
    }

    fn metadata(&mut self, meta: &ObjectMeta) {
        if meta.name.is_empty() {
            self.add("metadata.name", "is required");
        } else if !names::is_dns_subdomain(&meta.name) {
            self.add(
                "metadata.name",
                format!(
                    "invalid name {:?}: must be a lower-case DNS subdomain (at most 253 characters)",
                    meta.name
                ),
            );
        }
        self.namespace(&At::root("metadata.namespace"), meta.namespace.as_deref());
    }

    /// One `ParentReference` (also a ListenerSet's `parentRef`).
    fn parent_ref(&mut self, path: &At<'_>, p: &ParentReference) {
        if let Some(group) = &p.group {
            self.group(&path.field("group"), group);
        }
        if let Some(kind) = &p.kind {
            self.kind(&path.field("kind"), kind);
        }
        self.namespace(&path.field("namespace"), p.namespace.as_deref());
        self.object_name(&path.field("name"), &p.name);
        if let Some(section) = &p.section_name {
            self.section_name(&path.field("sectionName"), section);
        }
        if let Some(port) = p.port {
            self.port(&path.field("port"), port);
        }
    }

    /// `spec.parentRefs` of every Route kind, with the CRD's two uniqueness rules.
    fn parent_refs(&mut self, path: &At<'_>, refs: &[ParentReference]) {
        self.max_items(path, refs.len(), 32);
        for (i, p) in refs.iter().enumerate() {
            self.parent_ref(&path.index(i), p);
        }
        let same_parent = |a: &ParentReference, b: &ParentReference| {
            a.group() == b.group()
                && a.kind() == b.kind()
                && a.name == b.name
                && a.namespace.as_deref().unwrap_or("") == b.namespace.as_deref().unwrap_or("")
        };
        let port = |p: &ParentReference| p.port.filter(|&n| n != 0);
        fn section(p: &ParentReference) -> Option<&str> {
            p.section_name.as_deref().filter(|s| !s.is_empty())
        }
        for (j, b) in refs.iter().enumerate() {
            // Report each offending entry once, against the first earlier entry it clashes with.
            let Some((i, a)) = refs[..j]
                .iter()
                .enumerate()
                .find(|(_, a)| same_parent(a, b))
            else {
                continue;
            };
            if section(a).is_some() != section(b).is_some()
                || port(a).is_some() != port(b).is_some()
            {
                self.add(
                    path.index(j),
                    format!("refers to the same parent as parentRefs[{i}]: sectionName or port must be set on every reference to that parent"),
                );
            } else if let Some((i, _)) = refs[..j]
                .iter()
                .enumerate()
                .find(|(_, a)| same_parent(a, b) && section(a) == section(b) && port(a) == port(b))
            {
                self.add(
                    path.index(j),
                    format!("duplicates parentRefs[{i}]: sectionName or port must be unique among references to the same parent"),
                );
            }
        }
    }

    /// One `BackendRef` (route backends, mirror targets).
    fn backend_ref(&mut self, path: &At<'_>, b: &BackendRef) {
        if let Some(group) = &b.group {
            self.group(&path.field("group"), group);
        }
        if let Some(kind) = &b.kind {
            self.kind(&path.field("kind"), kind);
        }
        self.object_name(&path.field("name"), &b.name);
        self.namespace(&path.field("namespace"), b.namespace.as_deref());
        match b.port {
            Some(port) => self.port(&path.field("port"), port),
            None if b.group().is_empty() && b.kind() == "Service" => {
                self.add(path.field("port"), "is required for a Service reference");
            }
            None => {}
        }
        if let Some(weight) = b.weight {
            self.range(&path.field("weight"), weight, 0, 1_000_000);
        }
    }

    /// Route `spec.hostnames`.
    fn hostnames(&mut self, path: &At<'_>, hostnames: &[String], min: usize, max: usize) {
        self.items(path, hostnames.len(), min, max);
        for (i, h) in hostnames.iter().enumerate() {
            self.hostname(&path.index(i), h, true);
        }
    }

    /// Rule names: each a DNS subdomain, unique within the route.
    fn rule_names<'a>(&mut self, path: &At<'_>, rule_names: impl Iterator<Item = Option<&'a str>>) {
        let mut seen: Vec<&str> = Vec::new();
        for (i, name) in rule_names.enumerate() {
            let Some(name) = name else { continue };
            let rule = path.index(i);
            let field = rule.field("name");
            self.section_name(&field, name);
            if seen.contains(&name) {
                self.add(
                    field,
                    format!(
                        "duplicate rule name {name:?}: rule names must be unique within the route"
                    ),
                );
            } else {
                seen.push(name);
            }
        }
    }
}
