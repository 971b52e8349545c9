//! GatewayClasses and Gateways: which classes are ours and accepted, each Gateway's acceptance,
//! addresses and Gateway-level TLS; then its listeners ([`super::listener`]), ListenerSets
//! ([`super::listener_set`]) and conflicts ([`super::conflicts`]). [`super::emit`] turns the
//! result into Ir binds and status.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::conflicts::resolve_conflicts;
use super::index::Index;
use super::listener::{AllowedNamespaces, CompiledListener, compile_listener, resolve_certificate};
use super::listener_set::{CompiledListenerSet, merge_listener_sets};
use super::{AssignedAddresses, Options};
use crate::ir::RouteOrder;
use crate::model::{
    Condition, ConditionType, Gateway, GatewayClassStatus, ObjectKey, Reason, ResourceKind,
};
use crate::status::{Diagnostic, ObjectStatus, Status};
use crate::validate;

/// A condition outcome: `Ok` or the upstream reason and message of a `False` status.
pub(super) type Outcome = Result<(), (Reason, String)>;

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
    /// Its own listeners first, then those of its ListenerSets in precedence order.
    pub(super) listeners: Vec<CompiledListener>,
    /// Which namespaces' ListenerSets it accepts (`spec.allowedListeners`, default none).
    pub(super) allowed_listeners: AllowedNamespaces,
    /// The ListenerSets naming it as parent, in precedence order (oldest first, then by
    /// namespace and name), accepted or not.
    pub(super) listener_sets: Vec<CompiledListenerSet>,
    /// The certificate offered to TLS backends (`spec.tls.backend.clientCertificateRef`).
    pub(super) backend_client_certificate: Option<crate::ir::Certificate>,
    /// BackendTLSPolicies applying to backends of routes attached to it: it is their ancestor.
    pub(super) backend_tls_policies: std::collections::BTreeSet<ObjectKey>,
}

impl CompiledGateway {
    /// The message of a Gateway waiting for an address whose listeners are not bound until
    /// it has one.
    pub(super) fn unbound_while_waiting(&self) -> Option<&str> {
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
                ConditionType::Accepted,
                false,
                Reason::InvalidParameters,
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
                ConditionType::Accepted,
                false,
                Reason::Unsupported,
                join_errors(&errors),
                generation,
            )
        } else {
            Condition::new(
                ConditionType::Accepted,
                true,
                Reason::Accepted,
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
    merge_listener_sets(index, &mut gateways, status);
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
    let (listener_errors, gateway_errors) = split_errors(validate::gateway(gateway), &key, status);

    let mut accepted: Outcome = Ok(());
    let mut extra_conditions = Vec::new();
    if !class_accepted {
        accepted = Err((
            Reason::Invalid,
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
            Reason::InvalidParameters,
            format!(
                "infrastructure.parametersRef {}/{} {:?} is not supported by this implementation",
                params.group, params.kind, params.name
            ),
        ));
    } else if !gateway_errors.is_empty() {
        accepted = Err((Reason::Invalid, join_errors(&gateway_errors)));
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
                    Reason::UnsupportedAddress,
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
                    Reason::UnsupportedAddress,
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

    // Gateway-level TLS: the backend client certificate must resolve (it is offered on every
    // backend TLS connection), and frontend validation applies per port below.
    let mut backend_client_certificate = None;
    if let Some(cert_ref) = gateway
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.backend.as_ref())
        .and_then(|b| b.client_certificate_ref.as_ref())
    {
        let outcome =
            resolve_certificate(index, &key, cert_ref, Reason::InvalidClientCertificateRef);
        extra_conditions.push(match outcome {
            Ok(certificate) => {
                backend_client_certificate = Some(certificate);
                Condition::new(
                    ConditionType::ResolvedRefs,
                    true,
                    Reason::ResolvedRefs,
                    "",
                    generation,
                )
            }
            Err((reason, message)) => Condition::new(
                ConditionType::ResolvedRefs,
                false,
                reason,
                message,
                generation,
            ),
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
            ConditionType::InsecureFrontendValidationMode,
            true,
            Reason::ConfigurationChanged,
            "client certificate validation allows insecure fallback",
            generation,
        ));
    }

    let mut listeners = Vec::new();
    for (i, listener) in gateway.spec.listeners.iter().enumerate() {
        let mut compiled = compile_listener(index, &key, &key, gateway, listener);
        if let Some(errors) = listener_errors.get(&i) {
            compiled.accepted = Err((Reason::UnsupportedValue, join_errors(errors)));
        }
        listeners.push(compiled);
    }

    let allowed_listeners = AllowedNamespaces::from_spec(
        gateway
            .spec
            .allowed_listeners
            .as_ref()
            .and_then(|a| a.namespaces.as_ref()),
        AllowedNamespaces::None,
    );

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
        allowed_listeners,
        listener_sets: Vec::new(),
        backend_client_certificate,
        backend_tls_policies: std::collections::BTreeSet::new(),
    }
}

/// Validation errors of a Gateway or ListenerSet, each recorded as a diagnostic of `key`, and
/// split into those of each listener (by index) and those of the object itself.
pub(super) fn split_errors(
    errors: Vec<validate::FieldError>,
    key: &ObjectKey,
    status: &mut Status,
) -> (
    BTreeMap<usize, Vec<validate::FieldError>>,
    Vec<validate::FieldError>,
) {
    let mut listeners: BTreeMap<usize, Vec<validate::FieldError>> = BTreeMap::new();
    let mut own = Vec::new();
    for error in errors {
        status.diagnostics.push(Diagnostic {
            object: key.clone(),
            field: error.field.clone(),
            message: error.message.clone(),
        });
        match listener_index(&error.field) {
            Some(i) => listeners.entry(i).or_default().push(error),
            None => own.push(error),
        }
    }
    (listeners, own)
}

/// `spec.listeners[3].tls` → 3.
pub(super) fn listener_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("spec.listeners[")?;
    rest[..rest.find(']')?].parse().ok()
}

pub(super) fn join_errors(errors: &[validate::FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
