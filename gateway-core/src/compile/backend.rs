//! Resolution of backendRefs to Service ports and ready endpoints.

use std::net::{IpAddr, SocketAddr};

use super::backend_tls::{Applied, UsedPolicies};
use super::index::{Index, RefEnd};
use crate::ir::{AppProtocol, Backend, ServiceBackend};
use crate::model::{
    BackendRef, IntOrString, ObjectKey, Reason, ResourceKind, Service, ServicePort,
};

/// Why a reference did not resolve: the upstream ResolvedRefs reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RefProblem {
    pub(super) reason: Reason,
    pub(super) message: String,
    /// Whether the route's ResolvedRefs condition reports it. A Service made unusable by its
    /// BackendTLSPolicy is resolved as far as the route is concerned: the policy's own status
    /// says what is wrong.
    pub(super) route_condition: bool,
}

impl RefProblem {
    pub(super) fn new(reason: Reason, message: impl Into<String>) -> Self {
        RefProblem {
            reason,
            message: message.into(),
            route_condition: true,
        }
    }
}

/// Which Service port protocol a route kind needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PortProtocol {
    Tcp,
    Udp,
}

/// Resolves one backendRef of `route`. An unresolvable ref still yields a [`Backend::Invalid`]
/// so that its share of traffic fails, as the spec requires, instead of moving to the others.
/// The BackendTLSPolicies that apply are added to `policies`.
pub(super) fn resolve(
    index: &Index<'_>,
    route: &ObjectKey,
    backend_ref: &BackendRef,
    default_protocol: AppProtocol,
    port_protocol: PortProtocol,
    policies: &mut UsedPolicies,
) -> Result<ServiceBackend, RefProblem> {
    if backend_ref.group() != "" || backend_ref.kind() != "Service" {
        return Err(RefProblem::new(
            Reason::InvalidKind,
            format!(
                "backendRef {}/{} {:?} is not supported (only core Services)",
                display_group(backend_ref.group()),
                backend_ref.kind(),
                backend_ref.name
            ),
        ));
    }
    let namespace = backend_ref
        .namespace
        .as_deref()
        .unwrap_or(route.namespace.as_str());
    let from = RefEnd {
        group: crate::model::GATEWAY_GROUP,
        kind: route.kind.as_str(),
        namespace: &route.namespace,
    };
    let to = RefEnd {
        group: "",
        kind: "Service",
        namespace,
    };
    if !index.reference_allowed(&from, &to, &backend_ref.name) {
        return Err(RefProblem::new(
            Reason::RefNotPermitted,
            format!(
                "Service {namespace}/{} is in another namespace and no ReferenceGrant allows it",
                backend_ref.name
            ),
        ));
    }
    let Some(service) = index.service(namespace, &backend_ref.name) else {
        return Err(RefProblem::new(
            Reason::BackendNotFound,
            format!("Service {namespace}/{} not found", backend_ref.name),
        ));
    };
    let Some(port) = backend_ref.port else {
        return Err(RefProblem::new(
            Reason::BackendNotFound,
            format!(
                "backendRef to Service {namespace}/{} has no port",
                backend_ref.name
            ),
        ));
    };
    service_backend(
        index,
        service,
        port,
        default_protocol,
        port_protocol,
        policies,
    )
}

/// Resolves a Service port to its ready endpoints.
pub(super) fn service_backend(
    index: &Index<'_>,
    service: &Service,
    port: i64,
    default_protocol: AppProtocol,
    port_protocol: PortProtocol,
    policies: &mut UsedPolicies,
) -> Result<ServiceBackend, RefProblem> {
    let key = ObjectKey::of(ResourceKind::Service, &service.metadata);
    let wanted = match port_protocol {
        PortProtocol::Tcp => "TCP",
        PortProtocol::Udp => "UDP",
    };
    let Some(service_port) = service
        .spec
        .ports
        .iter()
        .find(|p| p.port == port && p.protocol().eq_ignore_ascii_case(wanted))
    else {
        return Err(RefProblem::new(
            Reason::BackendNotFound,
            format!("{key} has no {wanted} port {port}"),
        ));
    };
    let applied = match port_protocol {
        // TLS does not apply to datagrams.
        PortProtocol::Udp => Applied::None,
        PortProtocol::Tcp => index.backend_tls.applied(
            service.metadata.namespace(),
            &service.metadata.name,
            service_port.name.as_deref(),
            policies,
        ),
    };
    let tls = match applied {
        Applied::None => None,
        Applied::Tls(tls) => Some(tls),
        Applied::Unusable(message) => {
            // Fail closed: a backend that wants TLS must never get plaintext.
            return Err(RefProblem {
                reason: Reason::ResolvedRefs,
                message: format!("{key} port {port}: {message}"),
                route_condition: false,
            });
        }
    };
    if service.spec.type_.as_deref() == Some("ExternalName") {
        return Err(RefProblem::new(
            Reason::BackendNotFound,
            format!("{key} is an ExternalName Service, which is not supported"),
        ));
    }
    let protocol = match port_protocol {
        PortProtocol::Udp => AppProtocol::Udp,
        PortProtocol::Tcp => match service_port.app_protocol.as_deref() {
            Some("kubernetes.io/h2c") => AppProtocol::H2c,
            Some("kubernetes.io/ws") => AppProtocol::Http1,
            // A TLS port is served only with a BackendTLSPolicy saying how to verify it:
            // sending plaintext would only fail later and less clearly, and TLS without
            // verification is not offered.
            Some(p) if is_tls_app_protocol(p) => {
                if tls.is_none() {
                    return Err(RefProblem::new(
                        Reason::UnsupportedProtocol,
                        format!(
                            "{key} port {port} has appProtocol {p:?}, which needs a \
                             BackendTLSPolicy to verify the backend"
                        ),
                    ));
                }
                match default_protocol {
                    AppProtocol::Tcp => AppProtocol::Tcp,
                    AppProtocol::H2c => AppProtocol::H2c,
                    _ => AppProtocol::Http1,
                }
            }
            _ => default_protocol,
        },
    };
    let port_u16 = u16::try_from(port).map_err(|_| {
        RefProblem::new(
            Reason::BackendNotFound,
            format!("{key} port {port} is out of range"),
        )
    })?;
    let endpoints = endpoints(index, service, service_port, wanted);
    Ok(ServiceBackend {
        service: key,
        port: port_u16,
        protocol,
        endpoints: endpoints.into(),
        tls,
    })
}

/// `appProtocol` values that mean TLS on the wire (IANA names are case-insensitive).
fn is_tls_app_protocol(p: &str) -> bool {
    ["https", "tls", "kubernetes.io/wss"]
        .iter()
        .any(|t| p.eq_ignore_ascii_case(t))
}

/// Ready endpoints of a Service port, from its EndpointSlices: the slice port with the Service
/// port's name gives the target port (the EndpointSlice controller has already resolved named
/// targetPorts); a slice without a port list falls back to a numeric targetPort.
fn endpoints(
    index: &Index<'_>,
    service: &Service,
    service_port: &ServicePort,
    protocol: &str,
) -> Vec<SocketAddr> {
    let port_name = service_port.name.as_deref().unwrap_or("");
    let fallback_port = match &service_port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(_)) => None,
        None => Some(service_port.port),
    };
    let mut out = Vec::new();
    for slice in index.endpoint_slices(service.metadata.namespace(), &service.metadata.name) {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let target = match &slice.ports {
            None => fallback_port,
            Some(ports) => ports
                .iter()
                .find(|p| {
                    p.name.as_deref().unwrap_or("") == port_name
                        && p.protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .eq_ignore_ascii_case(protocol)
                })
                .and_then(|p| p.port),
        };
        let Some(target) = target.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in slice.endpoints.iter().filter(|e| e.is_ready()) {
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.push(SocketAddr::new(ip, target));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Wraps a resolution result into an Ir backend, remembering the first problem.
pub(super) fn to_backend(
    result: Result<ServiceBackend, RefProblem>,
    problems: &mut Vec<RefProblem>,
) -> Backend {
    match result {
        Ok(backend) => Backend::Service(backend),
        Err(problem) => {
            let reason = problem.message.clone();
            if problem.route_condition {
                problems.push(problem);
            }
            Backend::Invalid { reason }
        }
    }
}

pub(super) fn display_group(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}
