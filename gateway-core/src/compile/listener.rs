//! Listeners of Gateways and ListenerSets: protocol, route kinds and namespaces, TLS
//! certificates and frontend client validation, with the references they need.

use std::collections::BTreeSet;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::gateway::Outcome;
use super::index::{Index, RefEnd};
use crate::ir::{
    self, Certificate, ClientValidation, ListenerProtocol, RouteOrder, TlsTermination,
};
use crate::model::{
    FromNamespaces, GATEWAY_GROUP, Gateway, LabelSelector, NamespacesFrom, ObjectKey, ProtocolType,
    Reason, ResourceKind, RouteGroupKind, TlsModeType,
};

/// Which namespaces a listener accepts Routes from.
/// Which namespaces a listener accepts Routes from, or a Gateway accepts ListenerSets from.
#[derive(Clone, Debug)]
pub(super) enum AllowedNamespaces {
    All,
    Same,
    Selector(LabelSelector),
    None,
}

impl AllowedNamespaces {
    /// From `allowedRoutes.namespaces` or `allowedListeners.namespaces`; `default` when the
    /// field or its `from` is absent (`Same` for routes, `None` for ListenerSets).
    pub(super) fn from_spec(spec: Option<&NamespacesFrom>, default: AllowedNamespaces) -> Self {
        let Some(spec) = spec else {
            return default;
        };
        match &spec.from {
            None => default,
            Some(FromNamespaces::All) => AllowedNamespaces::All,
            Some(FromNamespaces::Same) => AllowedNamespaces::Same,
            Some(FromNamespaces::Selector) => {
                AllowedNamespaces::Selector(spec.selector.clone().unwrap_or_default())
            }
            Some(FromNamespaces::None | FromNamespaces::Unknown(_)) => AllowedNamespaces::None,
        }
    }

    /// Whether an object of namespace `namespace` (with that namespace's `labels`) is let in
    /// by the object of namespace `owner` that declares this.
    pub(super) fn admits(
        &self,
        owner: &str,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        match self {
            AllowedNamespaces::All => true,
            AllowedNamespaces::Same => owner == namespace,
            AllowedNamespaces::Selector(selector) => selector.matches(labels),
            AllowedNamespaces::None => false,
        }
    }
}

/// A listener being compiled.
#[derive(Debug)]
pub(super) struct CompiledListener {
    pub(super) name: String,
    /// The ListenerSet it comes from (an index into
    /// [`super::gateway::CompiledGateway::listener_sets`]), `None` for the Gateway's own
    /// listeners.
    pub(super) set: Option<usize>,
    /// The namespace of the object that declares it: `allowedRoutes` `Same` means this one.
    pub(super) namespace: String,
    /// Port as written (0 when invalid).
    pub(super) port: u16,
    /// `None` for protocols we do not serve: such listeners accept no routes.
    pub(super) protocol: Option<ListenerProtocol>,
    pub(super) hostname: Option<String>,
    pub(super) supported_kinds: Vec<RouteGroupKind>,
    pub(super) allowed_namespaces: AllowedNamespaces,
    pub(super) accepted: Outcome,
    pub(super) resolved: Outcome,
    pub(super) conflicted: Option<Reason>,
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
    pub(super) fn servable(&self) -> bool {
        self.protocol.is_some()
            && self.accepted.is_ok()
            && self.conflicted.is_none()
            && self.programmed().is_ok()
    }

    pub(super) fn programmed(&self) -> Outcome {
        if self.accepted.is_err() || self.conflicted.is_some() {
            return Err((Reason::Invalid, "the listener is not accepted".to_owned()));
        }
        match self.protocol {
            Some(ListenerProtocol::Https | ListenerProtocol::TlsTerminate)
                if self.tls.as_ref().is_none_or(|t| t.certificates.is_empty()) =>
            {
                Err((Reason::Invalid, "no valid certificate to serve".to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Port sharing family: listeners of different families cannot share a port.
    pub(super) fn family(&self) -> Option<&'static str> {
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

/// Compiles one listener of `gateway` declared by `owner` (the Gateway, or a ListenerSet of
/// it: the object its certificate references are made from).
pub(super) fn compile_listener(
    index: &Index<'_>,
    owner: &ObjectKey,
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
                Reason::UnsupportedValue,
                format!("TLS mode {m:?} is not supported"),
            ),
            (ProtocolType::Tls, None) => {
                (Reason::UnsupportedValue, "TLS listener without tls".into())
            }
            (p, _) => (
                Reason::UnsupportedProtocol,
                format!("protocol {:?} is not supported", p.as_str()),
            ),
        });
    }
    let port = u16::try_from(listener.port).ok().filter(|p| *p != 0);
    if port.is_none() && accepted.is_ok() {
        accepted = Err((
            Reason::UnsupportedValue,
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
                Reason::InvalidRouteKinds,
                format!(
                    "route kinds not supported on this listener: {}",
                    invalid.join(", ")
                ),
            ));
        }
    }

    let allowed_namespaces = AllowedNamespaces::from_spec(
        allowed.and_then(|a| a.namespaces.as_ref()),
        AllowedNamespaces::Same,
    );

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
            match resolve_certificate(index, owner, cert_ref, Reason::InvalidCertificateRef) {
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
                            Reason::NoValidCACertificate,
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
        set: None,
        namespace: owner.namespace.clone(),
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

/// Resolves a certificate Secret referenced by `owner` (a Gateway or ListenerSet): kind,
/// ReferenceGrant, presence and PEM structure.
pub(super) fn resolve_certificate(
    index: &Index<'_>,
    owner: &ObjectKey,
    cert_ref: &crate::model::SecretObjectReference,
    invalid_reason: Reason,
) -> Result<Certificate, (Reason, String)> {
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
    let namespace = cert_ref.namespace.as_deref().unwrap_or(&owner.namespace);
    may_refer(index, owner, "Secret", namespace, &cert_ref.name)?;
    let Some(secret) = index.secret(namespace, &cert_ref.name) else {
        return Err((
            invalid_reason,
            format!("Secret {namespace}/{} not found", cert_ref.name),
        ));
    };
    let source = ObjectKey::of(ResourceKind::Secret, &secret.metadata);
    let read = |key: &str| -> Result<Vec<u8>, (Reason, String)> {
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

/// Whether a Gateway or ListenerSet (`owner`) may refer to a core object (`Secret`,
/// `ConfigMap`) in `namespace`: its own namespace always, another one only through a
/// ReferenceGrant there that names the owner's kind (a grant to Gateways does not cover
/// ListenerSets, nor the other way round).
fn may_refer(
    index: &Index<'_>,
    owner: &ObjectKey,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<(), (Reason, String)> {
    let from = RefEnd {
        group: GATEWAY_GROUP,
        kind: owner.kind.as_str(),
        namespace: &owner.namespace,
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
            Reason::RefNotPermitted,
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
) -> Result<Option<ClientValidation>, (Reason, String)> {
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
                Reason::InvalidCACertificateKind,
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
        may_refer(index, gateway_key, "ConfigMap", namespace, &ca_ref.name)?;
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
                    Reason::InvalidCACertificateRef,
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
            Reason::InvalidCACertificateRef,
            "no CA certificate references".into(),
        ));
    }
    Ok(Some(ClientValidation {
        ca_pem: bundle.into(),
        allow_insecure_fallback: validation.mode.as_deref() == Some("AllowInsecureFallback"),
    }))
}
