//! GatewayClass, Gateway and ListenerSet.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Errors, FieldError, names};
use crate::model::{
    self, GatewaySpecAddress, LabelSelector, Listener, ObjectReference, ParametersReference,
    ProtocolType, SecretObjectReference, TlsConfig, TlsModeType,
};

/// Checks a GatewayClass.
pub fn gateway_class(r: &model::GatewayClass) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.add_metadata_cluster(&r.metadata);
    let name = &r.spec.controller_name;
    if name.is_empty() {
        e.add("spec.controllerName", "is required");
    } else if name.len() > 253 || !names::is_domain_prefixed_path(name) {
        e.add(
            "spec.controllerName",
            format!("invalid controller name {name:?}: must be a domain-prefixed path such as \"example.com/gateway-controller\" (at most 253 characters)"),
        );
    }
    if let Some(description) = &r.spec.description {
        e.max_len("spec.description", description, 64);
    }
    if let Some(p) = &r.spec.parameters_ref {
        parameters_ref(&mut e, "spec.parametersRef", p);
    }
    e.into_vec()
}

impl Errors {
    /// Cluster-scoped kinds: the API server ignores `metadata.namespace`, so it is not checked.
    fn add_metadata_cluster(&mut self, meta: &model::ObjectMeta) {
        let without_namespace = model::ObjectMeta {
            namespace: None,
            ..meta.clone()
        };
        self.metadata(&without_namespace);
    }
}

fn parameters_ref(e: &mut Errors, path: &str, p: &ParametersReference) {
    e.group(&format!("{path}.group"), &p.group);
    e.kind(&format!("{path}.kind"), &p.kind);
    e.object_name(&format!("{path}.name"), &p.name);
    e.namespace(&format!("{path}.namespace"), p.namespace.as_deref());
}

/// Checks a Gateway.
pub fn gateway(r: &model::Gateway) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    let spec = &r.spec;
    if spec.gateway_class_name.is_empty() {
        e.add("spec.gatewayClassName", "is required");
    } else {
        e.max_len("spec.gatewayClassName", &spec.gateway_class_name, 253);
    }
    listeners(&mut e, "spec.listeners", &spec.listeners);
    addresses(&mut e, "spec.addresses", &spec.addresses);
    if let Some(infra) = &spec.infrastructure {
        metadata_map(&mut e, "spec.infrastructure.labels", &infra.labels, 8, true);
        metadata_map(
            &mut e,
            "spec.infrastructure.annotations",
            &infra.annotations,
            16,
            false,
        );
        if let Some(p) = &infra.parameters_ref {
            parameters_ref(&mut e, "spec.infrastructure.parametersRef", p);
        }
    }
    if let Some(ns) = spec
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
    {
        namespaces_from(
            &mut e,
            "spec.allowedListeners.namespaces",
            ns,
            &["All", "Selector", "Same", "None"],
        );
    }
    if let Some(tls) = &spec.tls {
        if let Some(cert) = tls
            .backend
            .as_ref()
            .and_then(|b| b.client_certificate_ref.as_ref())
        {
            secret_ref(&mut e, "spec.tls.backend.clientCertificateRef", cert);
        }
        if let Some(frontend) = &tls.frontend {
            match &frontend.default {
                Some(config) => tls_config(&mut e, "spec.tls.frontend.default", config),
                None => e.add(
                    "spec.tls.frontend.default",
                    "is required when frontend is set",
                ),
            }
            let path = "spec.tls.frontend.perPort";
            e.max_items(path, frontend.per_port.len(), 64);
            for (j, entry) in frontend.per_port.iter().enumerate() {
                let field = format!("{path}[{j}]");
                e.port(&format!("{field}.port"), entry.port);
                tls_config(&mut e, &format!("{field}.tls"), &entry.tls);
                if let Some(i) = frontend.per_port[..j]
                    .iter()
                    .position(|p| p.port == entry.port)
                {
                    e.add(
                        format!("{field}.port"),
                        format!(
                            "duplicates perPort[{i}]: each port may have one TLS configuration"
                        ),
                    );
                }
            }
        }
    }
    if let Some(scope) = &spec.default_scope {
        e.one_of("spec.defaultScope", scope, &["All", "None"]);
    }
    e.into_vec()
}

/// Checks a ListenerSet.
pub fn listener_set(r: &model::ListenerSet) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    e.parent_ref("spec.parentRef", &r.spec.parent_ref);
    listeners(&mut e, "spec.listeners", &r.spec.listeners);
    e.into_vec()
}

fn tls_config(e: &mut Errors, path: &str, config: &TlsConfig) {
    let Some(validation) = &config.validation else {
        return;
    };
    let field = format!("{path}.validation.caCertificateRefs");
    e.items(&field, validation.ca_certificate_refs.len(), 1, 16);
    for (i, r) in validation.ca_certificate_refs.iter().enumerate() {
        object_ref(e, &format!("{field}[{i}]"), r);
    }
    if let Some(mode) = &validation.mode {
        e.one_of(
            &format!("{path}.validation.mode"),
            mode,
            &["AllowValidOnly", "AllowInsecureFallback"],
        );
    }
}

fn object_ref(e: &mut Errors, path: &str, r: &ObjectReference) {
    e.group(&format!("{path}.group"), &r.group);
    e.kind(&format!("{path}.kind"), &r.kind);
    e.object_name(&format!("{path}.name"), &r.name);
    e.namespace(&format!("{path}.namespace"), r.namespace.as_deref());
}

fn secret_ref(e: &mut Errors, path: &str, r: &SecretObjectReference) {
    if let Some(group) = &r.group {
        e.group(&format!("{path}.group"), group);
    }
    if let Some(kind) = &r.kind {
        e.kind(&format!("{path}.kind"), kind);
    }
    e.object_name(&format!("{path}.name"), &r.name);
    e.namespace(&format!("{path}.namespace"), r.namespace.as_deref());
}

fn namespaces_from(e: &mut Errors, path: &str, ns: &model::NamespacesFrom, allowed: &[&str]) {
    if let Some(from) = &ns.from {
        e.one_of(&format!("{path}.from"), from.as_str(), allowed);
    }
    if let Some(selector) = &ns.selector {
        label_selector(e, &format!("{path}.selector"), selector);
    }
}

fn label_selector(e: &mut Errors, path: &str, selector: &LabelSelector) {
    for (i, req) in selector.match_expressions.iter().enumerate() {
        if req.key.is_empty() {
            e.add(format!("{path}.matchExpressions[{i}].key"), "is required");
        }
        if req.operator.is_empty() {
            e.add(
                format!("{path}.matchExpressions[{i}].operator"),
                "is required",
            );
        }
    }
}

fn metadata_map(
    e: &mut Errors,
    path: &str,
    map: &BTreeMap<String, String>,
    max: usize,
    labels: bool,
) {
    if map.len() > max {
        e.add(path, format!("at most {max} entries (found {})", map.len()));
    }
    for (key, value) in map {
        let field = format!("{path}[{key:?}]");
        if !names::is_valid_metadata_key(key) {
            e.add(
                field.clone(),
                format!("invalid key {key:?}: must be an optional DNS subdomain prefix and '/' followed by a name of up to 63 letters, digits, '-', '_' or '.'"),
            );
        }
        if labels {
            if !names::is_valid_label_value(value) {
                e.add(
                    field,
                    format!("invalid label value {value:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
                );
            }
        } else {
            e.max_len(&field, value, 4096);
        }
    }
}

fn addresses(e: &mut Errors, path: &str, addresses: &[GatewaySpecAddress]) {
    e.max_items(path, addresses.len(), 16);
    for (j, a) in addresses.iter().enumerate() {
        let field = format!("{path}[{j}]");
        let type_ = a.type_.as_deref().unwrap_or("IPAddress");
        if !names::is_valid_address_type(type_) {
            e.add(
                format!("{field}.type"),
                format!("invalid address type {type_:?}: must be IPAddress, Hostname, NamedAddress or a domain-prefixed type such as \"example.com/custom\""),
            );
        }
        let Some(value) = a.value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let value_field = format!("{field}.value");
        e.max_len(&value_field, value, 253);
        match type_ {
            // The CRD leaves IP syntax to the Go type's documentation ("must be an IPv4 or
            // IPv6 address"); an unparsable value can never be assigned, so it is refused.
            "IPAddress" if value.parse::<IpAddr>().is_err() => {
                e.add(value_field.clone(), format!("invalid IP address {value:?}"));
            }
            "Hostname" if !names::is_hostname_syntax(value, true) => {
                e.add(
                    value_field.clone(),
                    format!("invalid hostname {value:?}: must be a lower-case DNS name, optionally with a leading \"*.\" label"),
                );
            }
            _ => {}
        }
        if matches!(type_, "IPAddress" | "Hostname")
            && let Some(i) = addresses[..j].iter().position(|b| {
                b.type_.as_deref().unwrap_or("IPAddress") == type_
                    && b.value.as_deref() == Some(value)
            })
        {
            e.add(
                value_field,
                format!("duplicates addresses[{i}]: {type_} values must be unique"),
            );
        }
    }
}

/// Listeners of a Gateway or ListenerSet, with the CRD's per-listener and cross-listener rules.
fn listeners(e: &mut Errors, path: &str, listeners: &[Listener]) {
    e.items(path, listeners.len(), 1, 64);
    for (j, l) in listeners.iter().enumerate() {
        let field = format!("{path}[{j}]");
        listener(e, &field, l);
        if !l.name.is_empty()
            && let Some(i) = listeners[..j].iter().position(|o| o.name == l.name)
        {
            e.add(
                format!("{field}.name"),
                format!("duplicate listener name {:?} (also listeners[{i}]): listener names must be unique", l.name),
            );
        }
        // The CRD also requires (port, protocol, hostname) to be unique. That rule is left to
        // compile, which reports it the way the spec describes listeners that are not
        // distinct: Conflicted=True/HostnameConflict on every listener of the set, rather than
        // an error on whichever one happens to come second.
    }
}

fn listener(e: &mut Errors, path: &str, l: &Listener) {
    if l.name.is_empty() {
        e.add(format!("{path}.name"), "is required");
    } else {
        e.section_name(&format!("{path}.name"), &l.name);
    }
    e.port(&format!("{path}.port"), l.port);
    let protocol = l.protocol.as_str();
    if protocol.is_empty() {
        e.add(
            format!("{path}.protocol"),
            "is required (HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol)",
        );
    } else if !names::is_valid_protocol(protocol) {
        e.add(
            format!("{path}.protocol"),
            format!("invalid protocol {protocol:?}: must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol such as \"example.com/custom\""),
        );
    }
    let is_l4 = matches!(l.protocol, ProtocolType::Tcp | ProtocolType::Udp);
    if let Some(hostname) = &l.hostname {
        if is_l4 && !hostname.is_empty() {
            e.add(
                format!("{path}.hostname"),
                format!("must not be set for protocol {protocol}"),
            );
        } else {
            e.hostname(&format!("{path}.hostname"), hostname, true);
        }
    }
    match (&l.tls, &l.protocol) {
        (Some(_), ProtocolType::Http | ProtocolType::Tcp | ProtocolType::Udp) => {
            e.add(
                format!("{path}.tls"),
                format!("must not be set for protocol {protocol}"),
            );
        }
        // The CRD's CEL only insists for TLS; the API documents tls as required for HTTPS
        // too, and an HTTPS listener without certificates can never serve.
        (None, ProtocolType::Https | ProtocolType::Tls) => {
            e.add(
                format!("{path}.tls"),
                format!("is required for protocol {protocol}"),
            );
        }
        _ => {}
    }
    if let Some(tls) = &l.tls {
        let mode = tls.mode();
        if let Some(m) = &tls.mode {
            e.one_of(
                &format!("{path}.tls.mode"),
                m.as_str(),
                &["Terminate", "Passthrough"],
            );
        }
        if l.protocol == ProtocolType::Https && mode != TlsModeType::Terminate && mode.is_known() {
            e.add(
                format!("{path}.tls.mode"),
                "must be Terminate for protocol HTTPS",
            );
        }
        let refs = format!("{path}.tls.certificateRefs");
        if mode == TlsModeType::Terminate
            && tls.certificate_refs.is_empty()
            && tls.options.is_empty()
        {
            e.add(
                refs.clone(),
                "certificateRefs or options must be set when mode is Terminate",
            );
        }
        e.max_items(&refs, tls.certificate_refs.len(), 64);
        for (i, r) in tls.certificate_refs.iter().enumerate() {
            secret_ref(e, &format!("{refs}[{i}]"), r);
        }
        let options = format!("{path}.tls.options");
        if tls.options.len() > 16 {
            e.add(
                options.clone(),
                format!("at most 16 entries (found {})", tls.options.len()),
            );
        }
        for (key, value) in &tls.options {
            e.max_len(&format!("{options}[{key:?}]"), value, 4096);
        }
    }
    if let Some(allowed) = &l.allowed_routes {
        if let Some(ns) = &allowed.namespaces {
            namespaces_from(
                e,
                &format!("{path}.allowedRoutes.namespaces"),
                ns,
                &["All", "Selector", "Same"],
            );
        }
        let kinds = format!("{path}.allowedRoutes.kinds");
        e.max_items(&kinds, allowed.kinds.len(), 8);
        for (i, k) in allowed.kinds.iter().enumerate() {
            if let Some(group) = &k.group {
                e.group(&format!("{kinds}[{i}].group"), group);
            }
            e.kind(&format!("{kinds}[{i}].kind"), &k.kind);
        }
    }
}
