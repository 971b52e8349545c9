//! GatewayClasses, Gateways and their listeners: acceptance, TLS references, conflicts, and
//! finally the Ir binds and the Gateway status.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::index::{Index, RefEnd};
use super::{AssignedAddresses, Options};
use crate::ir::{
    self, Bind, BindProtocol, Certificate, ClientValidation, Ir, ListenerId, ListenerProtocol,
    RouteOrder, TlsTermination, Transport,
};
use crate::model::{
    Condition, FromNamespaces, GATEWAY_GROUP, Gateway, GatewayClassStatus, GatewayStatus,
    GatewayStatusAddress, LabelSelector, ListenerStatus, ObjectKey, ProtocolType, ResourceKind,
    RouteGroupKind, TlsModeType,
};
use crate::status::{Diagnostic, ObjectStatus, Status};
use crate::validate;

/// A condition outcome: `Ok` or the upstream reason and message of a `False` status.
pub(super) type Outcome = Result<(), (&'static str, String)>;

/// Which namespaces a listener accepts Routes from.
#[derive(Clone, Debug)]
pub(super) enum AllowedNamespaces {
    All,
    Same,
    Selector(LabelSelector),
    None,
}

/// A listener being compiled.
#[derive(Debug)]
pub(super) struct CompiledListener {
    pub(super) name: String,
    /// Port as written (0 when invalid).
    pub(super) port: u16,
    /// `None` for protocols we do not serve: such listeners accept no routes.
    pub(super) protocol: Option<ListenerProtocol>,
    pub(super) hostname: Option<String>,
    pub(super) supported_kinds: Vec<RouteGroupKind>,
    pub(super) allowed_namespaces: AllowedNamespaces,
    pub(super) accepted: Outcome,
    pub(super) resolved: Outcome,
    pub(super) conflicted: Option<&'static str>,
    pub(super) tls: Option<TlsTermination>,
    /// Routes accepted by this listener (for `attachedRoutes`).
    pub(super) attached: BTreeSet<ObjectKey>,
    pub(super) http_routes: Vec<ir::HttpRoute>,
    pub(super) grpc_routes: Vec<ir::GrpcRoute>,
    pub(super) tls_routes: Vec<ir::TlsRoute>,
    pub(super) l4_routes: Vec<(RouteOrder, ir::L4Route)>,
}

impl CompiledListener {
    /// Whether routes may attach (and be counted): the protocol is served. Conflicted or
    /// certificate-less listeners still count their routes, as the spec requires.
    pub(super) fn attachable(&self) -> bool {
        self.protocol.is_some()
    }

    /// Whether the listener goes into the Ir.
    fn servable(&self) -> bool {
        self.protocol.is_some()
            && self.accepted.is_ok()
            && self.conflicted.is_none()
            && self.programmed().is_ok()
    }

    fn programmed(&self) -> Outcome {
        if self.accepted.is_err() || self.conflicted.is_some() {
            return Err(("Invalid", "the listener is not accepted".to_owned()));
        }
        match self.protocol {
            Some(ListenerProtocol::Https | ListenerProtocol::TlsTerminate)
                if self.tls.as_ref().is_none_or(|t| t.certificates.is_empty()) =>
            {
                Err(("Invalid", "no valid certificate to serve".to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Port sharing family: listeners of different families cannot share a port.
    fn family(&self) -> Option<&'static str> {
        self.protocol.map(|p| match p {
            ListenerProtocol::Http => "HTTP",
            ListenerProtocol::Https
            | ListenerProtocol::TlsPassthrough
            | ListenerProtocol::TlsTerminate => "TLS",
            ListenerProtocol::Tcp => "TCP",
            ListenerProtocol::Udp => "UDP",
        })
    }
}

/// A Gateway being compiled.
#[derive(Debug)]
pub(super) struct CompiledGateway {
    pub(super) key: ObjectKey,
    pub(super) controller: String,
    pub(super) generation: Option<i64>,
    pub(super) uid: Option<String>,
    pub(super) order: RouteOrder,
    /// `Err` when the Gateway as a whole is not accepted (nothing is served).
    pub(super) accepted: Outcome,
    pub(super) extra_conditions: Vec<Condition>,
    /// Where the listeners bind; empty when they are not bound (waiting for an address to
    /// bind, see [`AssignedAddresses::serve_while_waiting`]).
    pub(super) addresses: Vec<IpAddr>,
    /// The addresses assigned from outside, when [`Options::assigned_addresses`] has an entry.
    pub(super) assigned: Option<AssignedAddresses>,
    pub(super) listeners: Vec<CompiledListener>,
}

impl CompiledGateway {
    /// The message of a Gateway waiting for an address whose listeners are not bound until
    /// it has one.
    fn unbound_while_waiting(&self) -> Option<&str> {
        self.assigned
            .as_ref()
            .filter(|a| a.is_waiting() && !a.serve_while_waiting)
            .map(|a| a.waiting.as_str())
    }
}

/// Computes GatewayClass status and compiles the Gateways of accepted classes.
pub(super) fn compile_gateways<'s>(
    index: &Index<'s>,
    options: &Options,
    status: &mut Status,
) -> Vec<CompiledGateway> {
    let snapshot = index.snapshot;
    // Classes of this controller: name -> (accepted, controllerName).
    let mut classes: BTreeMap<&str, (bool, &str)> = BTreeMap::new();
    for class in &snapshot.gateway_classes {
        let controller = class.spec.controller_name.as_str();
        if options
            .controller_name
            .as_deref()
            .is_some_and(|ours| ours != controller)
        {
            continue;
        }
        let key = ObjectKey::of(ResourceKind::GatewayClass, &class.metadata);
        let generation = class.metadata.generation;
        let errors = validate::gateway_class(class);
        let condition = if let Some(params) = &class.spec.parameters_ref {
            Condition::new(
                "Accepted",
                false,
                "InvalidParameters",
                format!(
                    "parametersRef {}/{} {:?} is not supported by this implementation",
                    params.group, params.kind, params.name
                ),
                generation,
            )
        } else if !errors.is_empty() {
            for e in &errors {
                status.diagnostics.push(Diagnostic {
                    object: key.clone(),
                    field: e.field.clone(),
                    message: e.message.clone(),
                });
            }
            Condition::new(
                "Accepted",
                false,
                "Unsupported",
                join_errors(&errors),
                generation,
            )
        } else {
            Condition::new(
                "Accepted",
                true,
                "Accepted",
                format!("accepted by {controller}"),
                generation,
            )
        };
        classes.insert(&class.metadata.name, (condition.is_true(), controller));
        status.gateway_classes.push(ObjectStatus {
            key,
            generation,
            uid: class.metadata.uid.clone(),
            status: GatewayClassStatus {
                conditions: vec![condition],
                supported_features: Vec::new(),
            },
        });
    }

    let mut gateways = Vec::new();
    for gateway in &snapshot.gateways {
        let key = ObjectKey::of(ResourceKind::Gateway, &gateway.metadata);
        let Some(&(class_accepted, controller)) =
            classes.get(gateway.spec.gateway_class_name.as_str())
        else {
            if options.controller_name.is_none()
                && !snapshot
                    .gateway_classes
                    .iter()
                    .any(|c| c.metadata.name == gateway.spec.gateway_class_name)
            {
                status.diagnostics.push(Diagnostic {
                    object: key,
                    field: "spec.gatewayClassName".into(),
                    message: format!(
                        "GatewayClass {:?} not found; the Gateway is not served",
                        gateway.spec.gateway_class_name
                    ),
                });
            }
            continue;
        };
        gateways.push(compile_gateway(
            index,
            options,
            gateway,
            key,
            controller,
            class_accepted,
            status,
        ));
    }
    // Older Gateways win conflicts on shared addresses and ports.
    gateways.sort_by(|a, b| a.order.cmp(&b.order));
    resolve_conflicts(&mut gateways, options);
    gateways
}

fn compile_gateway<'s>(
    index: &Index<'s>,
    options: &Options,
    gateway: &'s Gateway,
    key: ObjectKey,
    controller: &str,
    class_accepted: bool,
    status: &mut Status,
) -> CompiledGateway {
    let generation = gateway.metadata.generation;
    let namespace = gateway.metadata.namespace();
    let errors = validate::gateway(gateway);
    let mut listener_errors: BTreeMap<usize, Vec<validate::FieldError>> = BTreeMap::new();
    let mut gateway_errors = Vec::new();
    for error in errors {
        status.diagnostics.push(Diagnostic {
            object: key.clone(),
            field: error.field.clone(),
            message: error.message.clone(),
        });
        match listener_index(&error.field) {
            Some(i) => listener_errors.entry(i).or_default().push(error),
            None => gateway_errors.push(error),
        }
    }

    let mut accepted: Outcome = Ok(());
    let mut extra_conditions = Vec::new();
    if !class_accepted {
        accepted = Err((
            "Invalid",
            format!(
                "GatewayClass {:?} is not accepted",
                gateway.spec.gateway_class_name
            ),
        ));
    } else if let Some(params) = gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        accepted = Err((
            "InvalidParameters",
            format!(
                "infrastructure.parametersRef {}/{} {:?} is not supported by this implementation",
                params.group, params.kind, params.name
            ),
        ));
    } else if !gateway_errors.is_empty() {
        accepted = Err(("Invalid", join_errors(&gateway_errors)));
    }

    // Addresses: static IPAddress entries become bind addresses, unless the addresses are
    // assigned from outside (then the request is the assigner's to honour).
    let assigned = options
        .assigned_addresses
        .get(&(namespace.to_owned(), gateway.metadata.name.clone()))
        .cloned();
    let mut addresses = Vec::new();
    for (i, address) in gateway.spec.addresses.iter().enumerate() {
        let type_ = address.type_.as_deref().unwrap_or("IPAddress");
        let value = address.value.as_deref().unwrap_or("");
        if type_ != "IPAddress" {
            if accepted.is_ok() {
                accepted = Err((
                    "UnsupportedAddress",
                    format!("spec.addresses[{i}]: address type {type_:?} is not supported"),
                ));
            }
            continue;
        }
        if value.is_empty() {
            continue;
        }
        match value.parse::<IpAddr>() {
            Ok(ip) => addresses.push(ip),
            Err(_) if accepted.is_ok() => {
                accepted = Err((
                    "UnsupportedAddress",
                    format!("spec.addresses[{i}]: {value:?} is not an IP address"),
                ));
            }
            Err(_) => {}
        }
    }
    if assigned.is_some() {
        addresses.clear();
    }
    let unbound = assigned
        .as_ref()
        .is_some_and(|a| a.is_waiting() && !a.serve_while_waiting);
    if addresses.is_empty() && !unbound {
        addresses.push(
            options
                .gateway_addresses
                .get(&(namespace.to_owned(), gateway.metadata.name.clone()))
                .copied()
                .unwrap_or(options.bind_address),
        );
    }

    // Gateway-level TLS: the backend client certificate must resolve (it is not used yet: the
    // data plane does not originate TLS), and frontend validation applies per port below.
    if let Some(cert_ref) = gateway
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.backend.as_ref())
        .and_then(|b| b.client_certificate_ref.as_ref())
    {
        let outcome = resolve_certificate(index, &key, cert_ref, "InvalidClientCertificateRef");
        extra_conditions.push(match outcome {
            Ok(_) => Condition::new("ResolvedRefs", true, "ResolvedRefs", "", generation),
            Err((reason, message)) => {
                Condition::new("ResolvedRefs", false, reason, message, generation)
            }
        });
    }
    let frontend = gateway.spec.tls.as_ref().and_then(|t| t.frontend.as_ref());
    if frontend
        .into_iter()
        .flat_map(|f| f.default.iter().chain(f.per_port.iter().map(|p| &p.tls)))
        .filter_map(|t| t.validation.as_ref())
        .any(|v| v.mode.as_deref() == Some("AllowInsecureFallback"))
    {
        extra_conditions.push(Condition::new(
            "InsecureFrontendValidationMode",
            true,
            "ConfigurationChanged",
            "client certificate validation allows insecure fallback",
            generation,
        ));
    }

    let mut listeners = Vec::new();
    for (i, listener) in gateway.spec.listeners.iter().enumerate() {
        let mut compiled = compile_listener(index, &key, gateway, listener);
        if let Some(errors) = listener_errors.get(&i) {
            compiled.accepted = Err(("UnsupportedValue", join_errors(errors)));
        }
        listeners.push(compiled);
    }

    CompiledGateway {
        key,
        controller: controller.to_owned(),
        generation,
        uid: gateway.metadata.uid.clone(),
        order: RouteOrder::new(
            gateway.metadata.created_at(),
            namespace,
            &gateway.metadata.name,
        ),
        accepted,
        extra_conditions,
        addresses,
        assigned,
        listeners,
    }
}

/// `spec.listeners[3].tls` → 3.
fn listener_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("spec.listeners[")?;
    rest[..rest.find(']')?].parse().ok()
}

fn compile_listener(
    index: &Index<'_>,
    gateway_key: &ObjectKey,
    gateway: &Gateway,
    listener: &crate::model::Listener,
) -> CompiledListener {
    let mode = listener.tls.as_ref().map(|t| t.mode());
    let protocol = match (&listener.protocol, &mode) {
        (ProtocolType::Http, _) => Some(ListenerProtocol::Http),
        (ProtocolType::Https, _) => Some(ListenerProtocol::Https),
        (ProtocolType::Tls, Some(TlsModeType::Passthrough)) => {
            Some(ListenerProtocol::TlsPassthrough)
        }
        (ProtocolType::Tls, Some(TlsModeType::Terminate)) => Some(ListenerProtocol::TlsTerminate),
        (ProtocolType::Tcp, _) => Some(ListenerProtocol::Tcp),
        (ProtocolType::Udp, _) => Some(ListenerProtocol::Udp),
        _ => None,
    };
    let mut accepted: Outcome = Ok(());
    let mut resolved: Outcome = Ok(());
    if protocol.is_none() {
        accepted = Err(match (&listener.protocol, &mode) {
            (ProtocolType::Tls, Some(m)) => (
                "UnsupportedValue",
                format!("TLS mode {m:?} is not supported"),
            ),
            (ProtocolType::Tls, None) => ("UnsupportedValue", "TLS listener without tls".into()),
            (p, _) => (
                "UnsupportedProtocol",
                format!("protocol {:?} is not supported", p.as_str()),
            ),
        });
    }
    let port = u16::try_from(listener.port).ok().filter(|p| *p != 0);
    if port.is_none() && accepted.is_ok() {
        accepted = Err((
            "UnsupportedValue",
            format!("port {} is out of range", listener.port),
        ));
    }

    // Route kinds: the protocol's kinds, narrowed by allowedRoutes.kinds.
    let protocol_kinds: &[&str] = match protocol {
        Some(ListenerProtocol::Http | ListenerProtocol::Https) => &["HTTPRoute", "GRPCRoute"],
        Some(ListenerProtocol::TlsPassthrough | ListenerProtocol::TlsTerminate) => &["TLSRoute"],
        Some(ListenerProtocol::Tcp) => &["TCPRoute"],
        Some(ListenerProtocol::Udp) => &["UDPRoute"],
        None => &[],
    };
    let allowed = listener.allowed_routes.as_ref();
    let mut supported_kinds = Vec::new();
    let requested = allowed.map(|a| a.kinds.as_slice()).unwrap_or(&[]);
    if requested.is_empty() {
        supported_kinds.extend(protocol_kinds.iter().map(|k| RouteGroupKind {
            group: Some(GATEWAY_GROUP.to_owned()),
            kind: (*k).to_owned(),
        }));
    } else {
        let mut invalid = Vec::new();
        for kind in requested {
            if kind.group() == GATEWAY_GROUP && protocol_kinds.contains(&kind.kind.as_str()) {
                let normalised = RouteGroupKind {
                    group: Some(GATEWAY_GROUP.to_owned()),
                    kind: kind.kind.clone(),
                };
                if !supported_kinds.contains(&normalised) {
                    supported_kinds.push(normalised);
                }
            } else {
                invalid.push(format!("{}/{}", kind.group(), kind.kind));
            }
        }
        if !invalid.is_empty() && protocol.is_some() {
            resolved = Err((
                "InvalidRouteKinds",
                format!(
                    "route kinds not supported on this listener: {}",
                    invalid.join(", ")
                ),
            ));
        }
    }

    let allowed_namespaces = match allowed.and_then(|a| a.namespaces.as_ref()) {
        None => AllowedNamespaces::Same,
        Some(ns) => match ns.from.clone().unwrap_or(FromNamespaces::Same) {
            FromNamespaces::All => AllowedNamespaces::All,
            FromNamespaces::Same => AllowedNamespaces::Same,
            FromNamespaces::Selector => {
                AllowedNamespaces::Selector(ns.selector.clone().unwrap_or_default())
            }
            FromNamespaces::None | FromNamespaces::Unknown(_) => AllowedNamespaces::None,
        },
    };

    // TLS termination: certificates, and frontend client validation for the port.
    let mut tls = None;
    if matches!(
        protocol,
        Some(ListenerProtocol::Https | ListenerProtocol::TlsTerminate)
    ) {
        let mut certificates = Vec::new();
        let refs = listener
            .tls
            .as_ref()
            .map(|t| t.certificate_refs.as_slice())
            .unwrap_or(&[]);
        for cert_ref in refs {
            match resolve_certificate(index, gateway_key, cert_ref, "InvalidCertificateRef") {
                Ok(cert) => certificates.push(cert),
                Err(problem) => {
                    if resolved.is_ok() {
                        resolved = Err(problem);
                    }
                }
            }
        }
        let client_validation =
            match frontend_validation(index, gateway_key, gateway, listener.port) {
                Ok(v) => v,
                Err(problem) => {
                    if accepted.is_ok() {
                        accepted = Err((
                            "NoValidCACertificate",
                            format!(
                                "no valid CA certificate for client validation: {}",
                                problem.1
                            ),
                        ));
                    }
                    if resolved.is_ok() {
                        resolved = Err(problem);
                    }
                    None
                }
            };
        tls = Some(TlsTermination {
            certificates,
            client_validation,
        });
    }

    CompiledListener {
        name: listener.name.clone(),
        port: port.unwrap_or(0),
        protocol,
        hostname: listener.hostname.as_deref().map(str::to_ascii_lowercase),
        supported_kinds,
        allowed_namespaces,
        accepted,
        resolved,
        conflicted: None,
        tls,
        attached: BTreeSet::new(),
        http_routes: Vec::new(),
        grpc_routes: Vec::new(),
        tls_routes: Vec::new(),
        l4_routes: Vec::new(),
    }
}

/// Resolves a certificate Secret: kind, ReferenceGrant, presence and PEM structure.
fn resolve_certificate(
    index: &Index<'_>,
    gateway_key: &ObjectKey,
    cert_ref: &crate::model::SecretObjectReference,
    invalid_reason: &'static str,
) -> Result<Certificate, (&'static str, String)> {
    if cert_ref.group() != "" || cert_ref.kind() != "Secret" {
        return Err((
            invalid_reason,
            format!(
                "certificate reference {}/{} {:?} is not a Secret",
                super::backend::display_group(cert_ref.group()),
                cert_ref.kind(),
                cert_ref.name
            ),
        ));
    }
    let namespace = cert_ref
        .namespace
        .as_deref()
        .unwrap_or(&gateway_key.namespace);
    gateway_may_refer(index, gateway_key, "Secret", namespace, &cert_ref.name)?;
    let Some(secret) = index.secret(namespace, &cert_ref.name) else {
        return Err((
            invalid_reason,
            format!("Secret {namespace}/{} not found", cert_ref.name),
        ));
    };
    let source = ObjectKey::of(ResourceKind::Secret, &secret.metadata);
    let read = |key: &str| -> Result<Vec<u8>, (&'static str, String)> {
        match secret.get(key) {
            Some(Ok(bytes)) => Ok(bytes),
            Some(Err(e)) => Err((invalid_reason, format!("{source}: {e}"))),
            None => Err((invalid_reason, format!("{source} has no {key:?}"))),
        }
    };
    let chain = read("tls.crt")?;
    let key = read("tls.key")?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&chain).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => {}
        _ => {
            return Err((
                invalid_reason,
                format!("{source}: tls.crt holds no valid PEM certificate"),
            ));
        }
    }
    if PrivateKeyDer::from_pem_slice(&key).is_err() {
        return Err((
            invalid_reason,
            format!("{source}: tls.key holds no valid PEM private key"),
        ));
    }
    Ok(Certificate {
        source,
        chain_pem: chain.into(),
        key_pem: key.into(),
    })
}

/// Whether a Gateway may refer to a core object (`Secret`, `ConfigMap`) in `namespace`: its
/// own namespace always, another one only through a ReferenceGrant there.
fn gateway_may_refer(
    index: &Index<'_>,
    gateway_key: &ObjectKey,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<(), (&'static str, String)> {
    let from = RefEnd {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        namespace: &gateway_key.namespace,
    };
    let to = RefEnd {
        group: "",
        kind,
        namespace,
    };
    if index.reference_allowed(&from, &to, name) {
        Ok(())
    } else {
        Err((
            "RefNotPermitted",
            format!(
                "{kind} {namespace}/{name} is in another namespace and no ReferenceGrant allows it"
            ),
        ))
    }
}

/// Frontend client-certificate validation for a listener port: the per-port entry, else the
/// default. `Err` carries the listener ResolvedRefs reason.
fn frontend_validation(
    index: &Index<'_>,
    gateway_key: &ObjectKey,
    gateway: &Gateway,
    port: i64,
) -> Result<Option<ClientValidation>, (&'static str, String)> {
    let Some(frontend) = gateway.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else {
        return Ok(None);
    };
    let config = frontend
        .per_port
        .iter()
        .find(|p| p.port == port)
        .map(|p| &p.tls)
        .or(frontend.default.as_ref());
    let Some(validation) = config.and_then(|c| c.validation.as_ref()) else {
        return Ok(None);
    };
    let mut bundle = Vec::new();
    for ca_ref in &validation.ca_certificate_refs {
        if !ca_ref.group.is_empty() || ca_ref.kind != "ConfigMap" {
            return Err((
                "InvalidCACertificateKind",
                format!(
                    "CA reference kind {}/{} is not supported",
                    ca_ref.group, ca_ref.kind
                ),
            ));
        }
        let namespace = ca_ref
            .namespace
            .as_deref()
            .unwrap_or(&gateway_key.namespace);
        gateway_may_refer(index, gateway_key, "ConfigMap", namespace, &ca_ref.name)?;
        let pem = index
            .config_map(namespace, &ca_ref.name)
            .and_then(|c| c.get("ca.crt"))
            .and_then(Result::ok);
        let valid = pem.as_deref().is_some_and(|p| {
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(p).collect();
            certs.is_ok_and(|c| !c.is_empty())
        });
        match pem {
            Some(p) if valid => bundle.extend_from_slice(&p),
            _ => {
                return Err((
                    "InvalidCACertificateRef",
                    format!(
                        "ConfigMap {namespace}/{} is missing or has no valid PEM in \"ca.crt\"",
                        ca_ref.name
                    ),
                ));
            }
        }
    }
    if bundle.is_empty() {
        return Err((
            "InvalidCACertificateRef",
            "no CA certificate references".into(),
        ));
    }
    Ok(Some(ClientValidation {
        ca_pem: bundle.into(),
        allow_insecure_fallback: validation.mode.as_deref() == Some("AllowInsecureFallback"),
    }))
}

/// Bind port of a listener after the offset, if in range.
fn bind_port(port: u16, options: &Options) -> Option<u16> {
    u16::try_from(i64::from(port) + i64::from(options.port_offset))
        .ok()
        .filter(|p| *p != 0)
}

/// Marks listeners that cannot share their address and port.
///
/// Inside one Gateway, every listener of a conflicting set loses (the spec forbids picking a
/// winner). Across Gateways sharing an address, the older Gateway keeps the port, as the
/// spec's ListenerSet rule does: merging several Gateways on one socket is our extension, so we
/// follow the closest rule the spec has.
fn resolve_conflicts(gateways: &mut [CompiledGateway], options: &Options) {
    // Pass 1: within each Gateway.
    for gateway in gateways.iter_mut() {
        let n = gateway.listeners.len();
        for a in 0..n {
            for b in (a + 1)..n {
                let (la, lb) = (&gateway.listeners[a], &gateway.listeners[b]);
                if let Some(reason) = conflict(la, lb) {
                    gateway.listeners[a].conflicted.get_or_insert(reason);
                    gateway.listeners[b].conflicted.get_or_insert(reason);
                }
            }
        }
    }
    // Pass 2: across Gateways, older first; a later listener that conflicts with a listener an
    // earlier Gateway keeps on the same bind loses.
    let mut taken: Vec<(IpAddr, u16, usize, usize)> = Vec::new();
    for gi in 0..gateways.len() {
        if gateways[gi].accepted.is_err() {
            continue;
        }
        for li in 0..gateways[gi].listeners.len() {
            let listener = &gateways[gi].listeners[li];
            if listener.protocol.is_none() || listener.conflicted.is_some() {
                continue;
            }
            let Some(port) = bind_port(listener.port, options) else {
                continue;
            };
            let mut lost = None;
            for &(address, taken_port, tg, tl) in &taken {
                if taken_port == port
                    && tg != gi
                    && gateways[gi].addresses.iter().any(|a| overlaps(*a, address))
                    && let Some(reason) = conflict(&gateways[tg].listeners[tl], listener)
                {
                    lost = Some(reason);
                    break;
                }
            }
            match lost {
                Some(reason) => gateways[gi].listeners[li].conflicted = Some(reason),
                None => {
                    for address in &gateways[gi].addresses {
                        taken.push((*address, port, gi, li));
                    }
                }
            }
        }
    }
}

/// Listeners share a socket only on the same address. A Gateway bound to `0.0.0.0:80` and
/// another bound to `127.0.0.2:80` do not share one; the operating system refuses the second
/// bind, which the data plane reports on that listener.
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a == b
}

fn conflict(a: &CompiledListener, b: &CompiledListener) -> Option<&'static str> {
    if a.protocol.is_none() || b.protocol.is_none() || a.port != b.port {
        return None;
    }
    let (fa, fb) = (a.family()?, b.family()?);
    // UDP and TCP-based listeners use different sockets.
    if (fa == "UDP") != (fb == "UDP") {
        return None;
    }
    if fa != fb || fa == "TCP" || fa == "UDP" {
        return Some("ProtocolConflict");
    }
    (a.hostname == b.hostname).then_some("HostnameConflict")
}

/// Builds the Ir binds and writes Gateway status.
pub(super) fn finish(
    _index: &Index<'_>,
    options: &Options,
    gateways: Vec<CompiledGateway>,
    status: &mut Status,
) -> Ir {
    type BindKey = (IpAddr, u16, Transport);
    let mut binds: BTreeMap<BindKey, (BindProtocol, Vec<Arc<ir::Listener>>)> = BTreeMap::new();
    for gateway in gateways {
        let generation = gateway.generation;
        let mut listener_status = Vec::new();
        let mut valid = 0usize;
        let mut programmed_count = 0usize;
        let unbound = gateway.unbound_while_waiting().map(str::to_owned);
        for mut listener in gateway.listeners {
            let mut port_error = None;
            let bind = bind_port(listener.port, options);
            if bind.is_none() && listener.port != 0 {
                port_error = Some(format!(
                    "port {} with offset {} is out of range",
                    listener.port, options.port_offset
                ));
            }
            let servable = gateway.accepted.is_ok()
                && listener.servable()
                && port_error.is_none()
                && unbound.is_none();
            let mut conditions = listener_conditions(
                &listener,
                gateway.accepted.is_ok(),
                port_error.as_deref(),
                generation,
            );
            if let Some(waiting) = &unbound
                && let Some(programmed) = conditions
                    .iter_mut()
                    .find(|c| c.type_ == "Programmed" && c.is_true())
            {
                *programmed = Condition::new(
                    "Programmed",
                    false,
                    "Pending",
                    format!("not bound until the Gateway has an address: {waiting}"),
                    generation,
                );
            }
            if conditions.first().is_some_and(Condition::is_true) {
                valid += 1;
            }
            if conditions.get(1).is_some_and(Condition::is_true) {
                programmed_count += 1;
            }
            listener_status.push(ListenerStatus {
                name: listener.name.clone(),
                supported_kinds: listener.supported_kinds.clone(),
                attached_routes: i64::try_from(listener.attached.len()).unwrap_or(i64::MAX),
                conditions,
            });
            let (Some(protocol), Some(port), true) = (listener.protocol, bind, servable) else {
                continue;
            };
            // Deterministic order whatever the snapshot order: precedence order, then id.
            listener.l4_routes.sort_by(|a, b| a.0.cmp(&b.0));
            listener
                .http_routes
                .sort_by(|a, b| (&a.order, &a.id).cmp(&(&b.order, &b.id)));
            listener
                .grpc_routes
                .sort_by(|a, b| (&a.order, &a.id).cmp(&(&b.order, &b.id)));
            listener
                .tls_routes
                .sort_by(|a, b| (&a.order, &a.id).cmp(&(&b.order, &b.id)));
            let ir_listener = Arc::new(ir::Listener {
                id: ListenerId {
                    parent: gateway.key.clone(),
                    name: listener.name.clone(),
                },
                hostname: listener.hostname.clone(),
                port: listener.port,
                protocol,
                tls: listener.tls.take(),
                http_routes: std::mem::take(&mut listener.http_routes),
                grpc_routes: std::mem::take(&mut listener.grpc_routes),
                tls_routes: std::mem::take(&mut listener.tls_routes),
                l4_route: listener.l4_routes.into_iter().next().map(|(_, r)| r),
            });
            let bind_protocol = match protocol {
                ListenerProtocol::Http => BindProtocol::Http,
                ListenerProtocol::Https
                | ListenerProtocol::TlsPassthrough
                | ListenerProtocol::TlsTerminate => BindProtocol::Tls,
                ListenerProtocol::Tcp => BindProtocol::Tcp,
                ListenerProtocol::Udp => BindProtocol::Udp,
            };
            for address in &gateway.addresses {
                binds
                    .entry((*address, port, bind_protocol.transport()))
                    .or_insert_with(|| (bind_protocol, Vec::new()))
                    .1
                    .push(ir_listener.clone());
            }
        }

        let total = listener_status.len();
        let (accepted, programmed) = match &gateway.accepted {
            Err((reason, message)) => (
                Condition::new("Accepted", false, reason, message.clone(), generation),
                Condition::new("Programmed", false, "Invalid", message.clone(), generation),
            ),
            Ok(()) if valid == 0 && total > 0 => (
                Condition::new(
                    "Accepted",
                    false,
                    "ListenersNotValid",
                    "no listener is valid",
                    generation,
                ),
                Condition::new(
                    "Programmed",
                    false,
                    "Invalid",
                    "no listener is valid",
                    generation,
                ),
            ),
            Ok(()) if valid < total => (
                Condition::new(
                    "Accepted",
                    true,
                    "ListenersNotValid",
                    format!("{} of {total} listeners are not valid", total - valid),
                    generation,
                ),
                Condition::new("Programmed", true, "Programmed", "", generation),
            ),
            Ok(()) => (
                Condition::new("Accepted", true, "Accepted", "", generation),
                Condition::new("Programmed", true, "Programmed", "", generation),
            ),
        };
        // A Gateway that waits for its address is not programmed, whatever its listeners;
        // one none of whose listeners serves anything is not either.
        let waiting = gateway
            .assigned
            .as_ref()
            .filter(|a| a.is_waiting() && gateway.accepted.is_ok());
        let programmed = if let Some(assigned) = waiting.filter(|_| programmed.is_true()) {
            Condition::new(
                "Programmed",
                false,
                "AddressNotAssigned",
                assigned.waiting.clone(),
                generation,
            )
        } else if programmed.is_true() && programmed_count == 0 && total > 0 {
            Condition::new(
                "Programmed",
                false,
                "Invalid",
                "no listener is programmed",
                generation,
            )
        } else {
            programmed
        };
        let mut conditions = vec![accepted, programmed];
        conditions.extend(gateway.extra_conditions);
        let ip_address = |a: &IpAddr| GatewayStatusAddress {
            type_: Some("IPAddress".into()),
            value: a.to_string(),
        };
        let mut addresses: Vec<GatewayStatusAddress> = match &gateway.assigned {
            Some(assigned) => assigned.addresses.clone(),
            None if gateway.addresses.iter().all(IpAddr::is_unspecified) => options
                .advertised_addresses
                .iter()
                .map(ip_address)
                .collect(),
            None => gateway.addresses.iter().map(ip_address).collect(),
        };
        // The CRD allows 16.
        addresses.truncate(MAX_STATUS_ADDRESSES);
        status.gateways.push(ObjectStatus {
            key: gateway.key,
            generation,
            uid: gateway.uid,
            status: GatewayStatus {
                addresses,
                conditions,
                listeners: listener_status,
                attached_listener_sets: None,
            },
        });
    }
    status.gateways.sort_by(|a, b| a.key.cmp(&b.key));
    status.gateway_classes.sort_by(|a, b| a.key.cmp(&b.key));

    let binds = binds
        .into_iter()
        .map(|((address, port, _), (protocol, mut listeners))| {
            listeners.sort_by(|a, b| {
                specificity(a.hostname.as_deref())
                    .cmp(&specificity(b.hostname.as_deref()))
                    .then_with(|| a.id.cmp(&b.id))
            });
            Bind {
                address,
                port,
                protocol,
                listeners,
            }
        })
        .collect();
    Ir { binds }
}

/// How many entries `Gateway.status.addresses` may hold (the CRD's `maxItems`).
const MAX_STATUS_ADDRESSES: usize = 16;

/// Sort key putting exact hostnames first, then longer wildcards, then no hostname.
fn specificity(hostname: Option<&str>) -> (u8, std::cmp::Reverse<usize>, String) {
    match hostname {
        Some(h) if h.starts_with("*.") => (1, std::cmp::Reverse(h.len()), h.to_owned()),
        Some(h) => (0, std::cmp::Reverse(h.len()), h.to_owned()),
        None => (2, std::cmp::Reverse(0), String::new()),
    }
}

fn listener_conditions(
    listener: &CompiledListener,
    gateway_accepted: bool,
    port_error: Option<&str>,
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut accepted = listener.accepted.clone();
    if let (Ok(()), Some(reason)) = (&accepted, listener.conflicted) {
        accepted = Err((
            reason,
            "conflicts with another listener on the same port".into(),
        ));
    }
    if let (Ok(()), Some(message)) = (&accepted, port_error) {
        accepted = Err(("PortUnavailable", message.to_owned()));
    }
    let programmed = match (&accepted, listener.programmed()) {
        (Err((_, m)), _) => Err(("Invalid", m.clone())),
        (Ok(()), _) if !gateway_accepted => {
            Err(("Invalid", "the Gateway is not accepted".to_owned()))
        }
        (Ok(()), p) => p,
    };
    let condition = |type_: &str, outcome: &Outcome, ok_reason: &str| match outcome {
        Ok(()) => Condition::new(type_, true, ok_reason, "", generation),
        Err((reason, message)) => Condition::new(type_, false, reason, message.clone(), generation),
    };
    vec![
        condition("Accepted", &accepted, "Accepted"),
        condition("Programmed", &programmed, "Programmed"),
        condition("ResolvedRefs", &listener.resolved, "ResolvedRefs"),
        match listener.conflicted {
            Some(reason) => Condition::new(
                "Conflicted",
                true,
                reason,
                "conflicts with another listener on the same port",
                generation,
            ),
            None => Condition::new("Conflicted", false, "NoConflicts", "", generation),
        },
    ]
}

pub(super) fn join_errors(errors: &[validate::FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
