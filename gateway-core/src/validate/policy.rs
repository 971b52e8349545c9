//! ReferenceGrant and BackendTLSPolicy.

use super::{At, Errors, FieldError, names};
use crate::model;

/// Checks a ReferenceGrant.
pub fn reference_grant(r: &model::ReferenceGrant) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    let from_path = At::root("spec.from");
    e.items(&from_path, r.spec.from.len(), 1, 16);
    for (i, from) in r.spec.from.iter().enumerate() {
        let p = from_path.index(i);
        e.group(&p.field("group"), &from.group);
        e.kind(&p.field("kind"), &from.kind);
        if from.namespace.is_empty() {
            e.add(p.field("namespace"), "is required");
        } else {
            e.namespace(&p.field("namespace"), Some(&from.namespace));
        }
    }
    let to_path = At::root("spec.to");
    e.items(&to_path, r.spec.to.len(), 1, 16);
    for (i, to) in r.spec.to.iter().enumerate() {
        let p = to_path.index(i);
        e.group(&p.field("group"), &to.group);
        e.kind(&p.field("kind"), &to.kind);
        if let Some(name) = &to.name {
            e.object_name(&p.field("name"), name);
        }
    }
    e.into_vec()
}

/// Checks a BackendTLSPolicy.
pub fn backend_tls_policy(r: &model::BackendTlsPolicy) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    let spec = &r.spec;
    let targets = &spec.target_refs;
    let targets_path = At::root("spec.targetRefs");
    e.items(&targets_path, targets.len(), 1, 16);
    for (j, t) in targets.iter().enumerate() {
        let p = targets_path.index(j);
        e.group(&p.field("group"), &t.group);
        e.kind(&p.field("kind"), &t.kind);
        e.object_name(&p.field("name"), &t.name);
        if let Some(section) = &t.section_name {
            e.section_name(&p.field("sectionName"), section);
        }
        let section =
            |t: &model::PolicyTargetReference| t.section_name.clone().filter(|s| !s.is_empty());
        let same = |o: &model::PolicyTargetReference| {
            o.group == t.group && o.kind == t.kind && o.name == t.name
        };
        if let Some(i) = targets[..j].iter().position(same) {
            let other = &targets[i];
            if section(other).is_some() != section(t).is_some() {
                e.add(
                    p,
                    format!("refers to the same target as targetRefs[{i}]: sectionName must be set on every reference to that target"),
                );
            } else if let Some(i) = targets[..j]
                .iter()
                .position(|o| same(o) && section(o) == section(t))
            {
                e.add(
                    p,
                    format!("duplicates targetRefs[{i}]: sectionName must be unique among references to the same target"),
                );
            }
        }
    }
    let v = &spec.validation;
    let vp = At::root("spec.validation");
    if v.hostname.is_empty() {
        e.add(vp.field("hostname"), "is required");
    } else {
        e.hostname(&vp.field("hostname"), &v.hostname, false);
    }
    let refs = vp.field("caCertificateRefs");
    e.max_items(&refs, v.ca_certificate_refs.len(), 8);
    for (i, r) in v.ca_certificate_refs.iter().enumerate() {
        let p = refs.index(i);
        e.group(&p.field("group"), &r.group);
        e.kind(&p.field("kind"), &r.kind);
        e.object_name(&p.field("name"), &r.name);
    }
    let well_known = v
        .well_known_ca_certificates
        .as_deref()
        .filter(|w| !w.is_empty());
    if let Some(w) = well_known
        && (w.len() > 253 || !names::is_valid_well_known_ca(w))
    {
        e.add(
            vp.field("wellKnownCACertificates"),
            format!("invalid value {w:?}: must be \"System\" or a domain-prefixed name"),
        );
    }
    match (v.ca_certificate_refs.is_empty(), well_known.is_some()) {
        (false, true) => e.add(
            vp,
            "caCertificateRefs and wellKnownCACertificates cannot both be set",
        ),
        (true, false) => e.add(
            vp,
            "one of caCertificateRefs or wellKnownCACertificates is required",
        ),
        _ => {}
    }
    let sans = vp.field("subjectAltNames");
    e.max_items(&sans, v.subject_alt_names.len(), 5);
    for (i, san) in v.subject_alt_names.iter().enumerate() {
        let p = sans.index(i);
        e.one_of(&p.field("type"), &san.type_, &["Hostname", "URI"]);
        let hostname = san.hostname.as_deref().filter(|h| !h.is_empty());
        let uri = san.uri.as_deref().filter(|u| !u.is_empty());
        match (san.type_.as_str(), hostname) {
            ("Hostname", None) => e.add(p.field("hostname"), "is required when type is Hostname"),
            ("Hostname", Some(h)) => e.hostname(&p.field("hostname"), h, true),
            (_, Some(_)) => e.add(
                p.field("hostname"),
                "must not be set unless type is Hostname",
            ),
            _ => {}
        }
        match (san.type_.as_str(), uri) {
            ("URI", None) => e.add(p.field("uri"), "is required when type is URI"),
            ("URI", Some(u)) if u.len() > 253 || !names::is_valid_san_uri(u) => {
                e.add(
                    p.field("uri"),
                    format!("invalid URI {u:?}: must start with scheme://"),
                );
            }
            ("URI", Some(_)) => {}
            (_, Some(_)) => e.add(p.field("uri"), "must not be set unless type is URI"),
            _ => {}
        }
    }
    if spec.options.len() > 16 {
        e.add(
            "spec.options",
            format!("at most 16 entries (found {})", spec.options.len()),
        );
    }
    for (key, value) in &spec.options {
        e.max_len(&format!("spec.options[{key:?}]"), value, 4096);
    }
    e.into_vec()
}
