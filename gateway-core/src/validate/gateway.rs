//! GatewayClass, Gateway and ListenerSet.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{At, Errors, FieldError, names};
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
        e.max_len(&At::root("spec.description"), description, 64);
    }
    if let Some(p) = &r.spec.parameters_ref {
        parameters_ref(&mut e, &At::root("spec.parametersRef"), p);
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

fn parameters_ref(e: &mut Errors, path: &At<'_>, p: &ParametersReference) {
    e.group(&path.field("group"), &p.group);
    e.kind(&path.field("kind"), &p.kind);
    e.object_name(&path.field("name"), &p.name);
    e.namespace(&path.field("namespace"), p.namespace.as_deref());
}

/// Checks a Gateway.
pub fn gateway(r: &model::Gateway) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    let spec = &r.spec;
    if spec.gateway_class_name.is_empty() {
        e.add("spec.gatewayClassName", "is required");
    } else {
        e.max_len(
            &At::root("spec.gatewayClassName"),
            &spec.gateway_class_name,
            253,
        );
    }
    listeners(&mut e, &At::root("spec.listeners"), &spec.listeners);
    addresses(&mut e, &At::root("spec.addresses"), &spec.addresses);
    if let Some(infra) = &spec.infrastructure {
        metadata_map(
            &mut e,
            &At::root("spec.infrastructure.labels"),
            &infra.labels,
            8,
            true,
        );
        metadata_map(
            &mut e,
            &At::root("spec.infrastructure.annotations"),
            &infra.annotations,
            16,
            false,
        );
        if let Some(p) = &infra.parameters_ref {
            parameters_ref(&mut e, &At::root("spec.infrastructure.parametersRef"), p);
        }
    }
    if let Some(ns) = spec
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
    {
        namespaces_from(
            &mut e,
            &At::root("spec.allowedListeners.namespaces"),
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
            secret_ref(
                &mut e,
                &At::root("spec.tls.backend.clientCertificateRef"),
                cert,
            );
        }
        if let Some(frontend) = &tls.frontend {
            match &frontend.default {
                Some(config) => tls_config(&mut e, &At::root("spec.tls.frontend.default"), config),
                None => e.add(
                    "spec.tls.frontend.default",
                    "is required when frontend is set",
                ),
            }
            let path = At::root("spec.tls.frontend.perPort");
            e.max_items(&path, frontend.per_port.len(), 64);
            for (j, entry) in frontend.per_port.iter().enumerate() {
                let field = path.index(j);
                e.port(&field.field("port"), entry.port);
                tls_config(&mut e, &field.field("tls"), &entry.tls);
                if let Some(i) = frontend.per_port[..j]
                    .iter()
                    .position(|p| p.port == entry.port)
                {
                    e.add(
                        field.field("port"),
                        format!(
                            "duplicates perPort[{i}]: each port may have one TLS configuration"
                        ),
                    );
                }
            }
        }
    }
    if let Some(scope) = &spec.default_scope {
        e.one_of(&At::root("spec.defaultScope"), scope, &["All", "None"]);
    }
    e.into_vec()
}

/// Checks a ListenerSet.
pub fn listener_set(r: &model::ListenerSet) -> Vec<FieldError> {
    let mut e = Errors::default();
    e.metadata(&r.metadata);
    e.parent_ref(&At::root("spec.parentRef"), &r.spec.parent_ref);
    listeners(&mut e, &At::root("spec.listeners"), &r.spec.listeners);
    e.into_vec()
}

fn tls_config(e: &mut Errors, path: &At<'_>, config: &TlsConfig) {
    let Some(validation) = &config.validation else {
        return;
    };
    let field = path.field("validation.caCertificateRefs");
    e.items(&field, validation.ca_certificate_refs.len(), 1, 16);
    for (i, r) in validation.ca_certificate_refs.iter().enumerate() {
        object_ref(e, &field.index(i), r);
    }
    if let Some(mode) = &validation.mode {
        e.one_of(
            &path.field("validation").field("mode"),
            mode,
            &["AllowValidOnly", "AllowInsecureFallback"],
        );
    }
}

fn object_ref(e: &mut Errors, path: &At<'_>, r: &ObjectReference) {
    e.group(&path.field("group"), &r.group);
    e.kind(&path.field("kind"), &r.kind);
    e.object_name(&path.field("name"), &r.name);
    e.namespace(&path.field("namespace"), r.namespace.as_deref());
}

fn secret_ref(e: &mut Errors, path: &At<'_>, r: &SecretObjectReference) {
    if let Some(group) = &r.group {
        e.group(&path.field("group"), group);
    }
    if let Some(kind) = &r.kind {
        e.kind(&path.field("kind"), kind);
    }
    e.object_name(&path.field("name"), &r.name);
    e.namespace(&path.field("namespace"), r.namespace.as_deref());
}

fn namespaces_from(e: &mut Errors, path: &At<'_>, ns: &model::NamespacesFrom, allowed: &[&str]) {
    if let Some(from) = &ns.from {
        e.one_of(&path.field("from"), from.as_str(), allowed);
    }
    if let Some(selector) = &ns.selector {
        label_selector(e, &path.field("selector"), selector);
    }
}

fn label_selector(e: &mut Errors, path: &At<'_>, selector: &LabelSelector) {
    for (i, req) in selector.match_expressions.iter().enumerate() {
        if req.key.is_empty() {
            e.add(
                path.field("matchExpressions").index(i).field("key"),
                "is required",
            );
        }
        if req.operator.is_empty() {
            e.add(
                path.field("matchExpressions").index(i).field("operator"),
                "is required",
            );
        }
    }
}

fn metadata_map(
    e: &mut Errors,
    path: &At<'_>,
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

fn addresses(e: &mut Errors, path: &At<'_>, addresses: &[GatewaySpecAddress]) {
    e.max_items(path, addresses.len(), 16);
    for (j, a) in addresses.iter().enumerate() {
        let field = path.index(j);
        let type_ = a.type_.as_deref().unwrap_or("IPAddress");
        if !names::is_valid_address_type(type_) {
            e.add(
                field.field("type"),
                format!("invalid address type {type_:?}: must be IPAddress, Hostname, NamedAddress or a domain-prefixed type such as \"example.com/custom\""),
            );
        }
        let Some(value) = a.value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let value_field = field.field("value");
        e.max_len(&value_field, value, 253);
        match type_ {
            // The CRD leaves IP syntax to the Go type's documentation ("must be an IPv4 or
            // IPv6 address"); an unparsable value can never be assigned, so it is refused.
            "IPAddress" if value.parse::<IpAddr>().is_err() => {
                e.add(value_field, format!("invalid IP address {value:?}"));
            }
            "Hostname" if !names::is_hostname_syntax(value, true) => {
                e.add(
                    value_field,
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
fn listeners(e: &mut Errors, path: &At<'_>, listeners: &[Listener]) {
    e.items(path, listeners.len(), 1, 64);
    for (j, l) in listeners.iter().enumerate() {
        let field = path.index(j);
        listener(e, &field, l);
        if !l.name.is_empty()
            && let Some(i) = listeners[..j].iter().position(|o| o.name == l.name)
        {
            e.add(
                field.field("name"),
                format!("duplicate listener name {:?} (also listeners[{i}]): listener names must be unique", l.name),
            );
        }
        // The CRD also requires (port, protocol, hostname) to be unique. That rule is left to
        // compile, which reports it the way the spec describes listeners that are not
        // distinct: Conflicted=True/HostnameConflict on every listener of the set, rather than
        // an error on whichever one happens to come second.
    }
}

fn listener(e: &mut Errors, path: &At<'_>, l: &Listener) {
    if l.name.is_empty() {
        e.add(path.field("name"), "is required");
    } else {
        e.section_name(&path.field("name"), &l.name);
    }
    e.port(&path.field("port"), l.port);
    let protocol = l.protocol.as_str();
    if protocol.is_empty() {
        e.add(
            path.field("protocol"),
            "is required (HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol)",
        );
    } else if !names::is_valid_protocol(protocol) {
        e.add(
            path.field("protocol"),
            format!("invalid protocol {protocol:?}: must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol such as \"example.com/custom\""),
        );
    }
    let is_l4 = matches!(l.protocol, ProtocolType::Tcp | ProtocolType::Udp);
    if let Some(hostname) = &l.hostname {
        if is_l4 && !hostname.is_empty() {
            e.add(
                path.field("hostname"),
                format!("must not be set for protocol {protocol}"),
            );
        } else {
            e.hostname(&path.field("hostname"), hostname, true);
        }
    }
    match (&l.tls, &l.protocol) {
        (Some(_), ProtocolType::Http | ProtocolType::Tcp | ProtocolType::Udp) => {
            e.add(
                path.field("tls"),
                format!("must not be set for protocol {protocol}"),
            );
        }
        // The CRD's CEL only insists for TLS; the API documents tls as required for HTTPS
        // too, and an HTTPS listener without certificates can never serve.
        (None, ProtocolType::Https | ProtocolType::Tls) => {
            e.add(
                path.field("tls"),
                format!("is required for protocol {protocol}"),
            );
        }
        _ => {}
    }
    if let Some(tls) = &l.tls {
        let mode = tls.mode();
        if let Some(m) = &tls.mode {
            e.one_of(
                &path.field("tls").field("mode"),
                m.as_str(),
                &["Terminate", "Passthrough"],
            );
        }
        if l.protocol == ProtocolType::Https && mode != TlsModeType::Terminate && mode.is_known() {
            e.add(
                path.field("tls").field("mode"),
                "must be Terminate for protocol HTTPS",
            );
        }
        let refs = path.field("tls.certificateRefs");
        if mode == TlsModeType::Terminate
            && tls.certificate_refs.is_empty()
            && tls.options.is_empty()
        {
            e.add(
                refs,
                "certificateRefs or options must be set when mode is Terminate",
            );
        }
        e.max_items(&refs, tls.certificate_refs.len(), 64);
        for (i, r) in tls.certificate_refs.iter().enumerate() {
            secret_ref(e, &refs.index(i), r);
        }
        let options = path.field("tls.options");
        if tls.options.len() > 16 {
            e.add(
                options,
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
                &path.field("allowedRoutes").field("namespaces"),
                ns,
                &["All", "Selector", "Same"],
            );
        }
        let kinds = path.field("allowedRoutes.kinds");
        e.max_items(&kinds, allowed.kinds.len(), 8);
        for (i, k) in allowed.kinds.iter().enumerate() {
            if let Some(group) = &k.group {
                e.group(&kinds.index(i).field("group"), group);
            }
            e.kind(&kinds.index(i).field("kind"), &k.kind);
        }
    }
}
