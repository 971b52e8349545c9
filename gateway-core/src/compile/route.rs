//! Route attachment: parentRefs, sectionName/port, allowedRoutes, hostname intersection, and
//! the per-parent status of every route kind.

use std::collections::BTreeSet;

use super::backend::PortProtocol;
use super::gateway::CompiledGateway;
use super::hostname::intersect_hostnames;
use super::index::Index;
use super::listener::CompiledListener;
use super::rules::{self, Problems};
use crate::ir::{self, RouteId, RouteOrder};
use crate::model::{
    Condition, ConditionType, GATEWAY_GROUP, ObjectKey, ObjectMeta, ParentReference, Reason,
    ResourceKind, RouteParentStatus, RouteStatus,
};
use crate::status::{Diagnostic, ObjectStatus, Status};
use crate::validate::{self, FieldError};

/// The Ir of one route, before its hostnames are intersected with a listener's.
enum Template {
    Http(Vec<ir::HttpRule>),
    Grpc(Vec<ir::GrpcRule>),
    Tls(Vec<ir::WeightedBackend>),
    L4(Vec<ir::WeightedBackend>),
}

/// What attachment needs to know about a route of any kind.
struct RouteView<'a> {
    key: ObjectKey,
    meta: &'a ObjectMeta,
    parent_refs: &'a [ParentReference],
    /// `None` for kinds without hostnames (TCP, UDP).
    hostnames: Option<&'a [String]>,
    errors: Vec<FieldError>,
    problems: Problems,
    template: Template,
}

impl<'a> RouteView<'a> {
    /// Translates one route; `template` builds its Ir and records what went wrong.
    fn new(
        kind: ResourceKind,
        meta: &'a ObjectMeta,
        parent_refs: &'a [ParentReference],
        hostnames: Option<&'a [String]>,
        errors: Vec<FieldError>,
        template: impl FnOnce(&ObjectKey, &mut Problems) -> Template,
    ) -> Self {
        let key = ObjectKey::of(kind, meta);
        let mut problems = Problems::default();
        let template = template(&key, &mut problems);
        RouteView {
            key,
            meta,
            parent_refs,
            hostnames,
            errors,
            problems,
            template,
        }
    }
}

pub(super) fn attach_routes(
    index: &Index<'_>,
    gateways: &mut [CompiledGateway],
    status: &mut Status,
) {
    let snapshot = index.snapshot;
    for route in &snapshot.http_routes {
        let view = RouteView::new(
            ResourceKind::HttpRoute,
            &route.metadata,
            &route.spec.parent_refs,
            Some(&route.spec.hostnames),
            validate::http_route(route),
            |key, problems| {
                Template::Http(rules::http_rules(index, key, &route.spec.rules, problems))
            },
        );
        attach(index, gateways, status, view);
    }
    for route in &snapshot.grpc_routes {
        let view = RouteView::new(
            ResourceKind::GrpcRoute,
            &route.metadata,
            &route.spec.parent_refs,
            Some(&route.spec.hostnames),
            validate::grpc_route(route),
            |key, problems| {
                Template::Grpc(rules::grpc_rules(index, key, &route.spec.rules, problems))
            },
        );
        attach(index, gateways, status, view);
    }
    for route in &snapshot.tls_routes {
        let view = RouteView::new(
            ResourceKind::TlsRoute,
            &route.metadata,
            &route.spec.parent_refs,
            Some(&route.spec.hostnames),
            validate::tls_route(route),
            |key, problems| {
                let rules = &route.spec.rules;
                Template::Tls(rules::l4_backends(
                    index,
                    key,
                    rules,
                    PortProtocol::Tcp,
                    problems,
                ))
            },
        );
        attach(index, gateways, status, view);
    }
    let l4 = snapshot
        .tcp_routes
        .iter()
        .map(|r| (r, ResourceKind::TcpRoute, PortProtocol::Tcp))
        .chain(
            snapshot
                .udp_routes
                .iter()
                .map(|r| (r, ResourceKind::UdpRoute, PortProtocol::Udp)),
        );
    for (route, kind, port_protocol) in l4 {
        let view = RouteView::new(
            kind,
            &route.metadata,
            &route.spec.parent_refs,
            None,
            validate::tcp_route(route),
            |key, problems| {
                let rules = &route.spec.rules;
                Template::L4(rules::l4_backends(
                    index,
                    key,
                    rules,
                    port_protocol,
                    problems,
                ))
            },
        );
        attach(index, gateways, status, view);
    }
    status.routes.sort_by(|a, b| a.key.cmp(&b.key));
}

fn attach(
    index: &Index<'_>,
    gateways: &mut [CompiledGateway],
    status: &mut Status,
    route: RouteView<'_>,
) {
    let generation = route.meta.generation;
    let route_ns = route.key.namespace.clone();
    let order = RouteOrder::new(route.meta.created_at(), &route_ns, &route.meta.name);
    for e in &route.errors {
        status.diagnostics.push(Diagnostic {
            object: route.key.clone(),
            field: e.field.clone(),
            message: e.message.clone(),
        });
    }
    for (field, message) in &route.problems.notes {
        status.diagnostics.push(Diagnostic {
            object: route.key.clone(),
            field: field.clone(),
            message: message.clone(),
        });
    }
    for message in &route.problems.unsupported {
        status.diagnostics.push(Diagnostic {
            object: route.key.clone(),
            field: String::new(),
            message: message.clone(),
        });
    }
    let resolved = match route.problems.refs.first() {
        None => Condition::new(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "",
            generation,
        ),
        Some(first) => Condition::new(
            ConditionType::ResolvedRefs,
            false,
            first.reason,
            route
                .problems
                .refs
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            generation,
        ),
    };
    let route_kind = route.key.kind.as_str();
    let route_labels = index.namespace_labels(&route_ns);

    let mut parents = Vec::new();
    for (j, parent) in route.parent_refs.iter().enumerate() {
        let parent_ns = parent.namespace.as_deref().unwrap_or(&route_ns);
        let written_ref = ParentReference {
            group: Some(parent.group().to_owned()),
            kind: Some(parent.kind().to_owned()),
            namespace: Some(parent_ns.to_owned()),
            name: parent.name.clone(),
            section_name: parent.section_name.clone(),
            port: parent.port,
        };
        let to_set = match (parent.group(), parent.kind()) {
            (GATEWAY_GROUP, "Gateway") => false,
            (GATEWAY_GROUP, "ListenerSet") => true,
            // Other kinds (a mesh's Service parents) belong to other controllers.
            _ => continue,
        };
        let is_parent = |key: &ObjectKey| key.namespace == parent_ns && key.name == parent.name;
        let found = if to_set {
            gateways.iter_mut().find_map(|g| {
                let i = g.listener_sets.iter().position(|s| is_parent(&s.key))?;
                Some((g, Some(i)))
            })
        } else {
            gateways
                .iter_mut()
                .find(|g| is_parent(&g.key))
                .map(|g| (g, None))
        };
        let Some((gateway, set)) = found else {
            let exists =
                if to_set {
                    index.snapshot.listener_sets.iter().any(|s| {
                        s.metadata.namespace() == parent_ns && s.metadata.name == parent.name
                    })
                } else {
                    index.snapshot.gateways.iter().any(|g| {
                        g.metadata.namespace() == parent_ns && g.metadata.name == parent.name
                    })
                };
            if !exists {
                status.diagnostics.push(Diagnostic {
                    object: route.key.clone(),
                    field: format!("spec.parentRefs[{j}]"),
                    message: format!("{} {parent_ns}/{} not found", parent.kind(), parent.name),
                });
            }
            continue;
        };
        let set_refused = set.and_then(|i| gateway.listener_sets[i].accepted.as_ref().err());
        let mut conditions = Vec::new();
        let accepted = if !route.errors.is_empty() {
            Condition::new(
                ConditionType::Accepted,
                false,
                Reason::UnsupportedValue,
                super::gateway::join_errors(&route.errors),
                generation,
            )
        } else if let Err((reason, message)) = &gateway.accepted {
            Condition::new(
                ConditionType::Accepted,
                false,
                Reason::NoMatchingParent,
                format!(
                    "Gateway {} is not accepted ({reason}: {message})",
                    gateway.key
                ),
                generation,
            )
        } else if let Some((reason, message)) = set_refused {
            Condition::new(
                ConditionType::Accepted,
                false,
                Reason::NoMatchingParent,
                format!(
                    "ListenerSet {parent_ns}/{} is not accepted ({reason}: {message})",
                    parent.name
                ),
                generation,
            )
        } else {
            attach_to_listeners(
                gateway,
                set,
                parent,
                &route,
                route_kind,
                &route_labels,
                &order,
                generation,
            )
        };
        let attached = accepted.is_true();
        if attached {
            gateway
                .backend_tls_policies
                .extend(route.problems.policies.iter().cloned());
        }
        conditions.push(accepted);
        conditions.push(resolved.clone());
        if attached && !route.problems.unsupported.is_empty() {
            conditions.push(Condition::new(
                ConditionType::PartiallyInvalid,
                true,
                Reason::UnsupportedValue,
                route.problems.unsupported.join("; "),
                generation,
            ));
        }
        parents.push(RouteParentStatus {
            parent_ref: written_ref,
            controller_name: gateway.controller.clone(),
            conditions,
        });
    }
    if !parents.is_empty() {
        status.routes.push(ObjectStatus {
            key: route.key,
            generation,
            uid: route.meta.uid.clone(),
            status: RouteStatus { parents },
        });
    }
}

/// Attaches a route to the listeners of one parentRef (the Gateway's own listeners, or those
/// of its ListenerSet `set`) and returns its Accepted condition.
#[allow(clippy::too_many_arguments)]
fn attach_to_listeners(
    gateway: &mut CompiledGateway,
    set: Option<usize>,
    parent: &ParentReference,
    route: &RouteView<'_>,
    route_kind: &str,
    route_labels: &std::collections::BTreeMap<String, String>,
    order: &RouteOrder,
    generation: Option<i64>,
) -> Condition {
    let candidates: Vec<usize> = gateway
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.set == set)
        .filter(|(_, l)| parent.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| p == i64::from(l.port)))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        let what = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("no listener named {s:?} on port {p}"),
            (Some(s), None) => format!("no listener named {s:?}"),
            (None, Some(p)) => format!("no listener on port {p}"),
            (None, None) => format!("the {} has no listeners", parent.kind()),
        };
        return Condition::new(
            ConditionType::Accepted,
            false,
            Reason::NoMatchingParent,
            what,
            generation,
        );
    }
    let mut allowed_any = false;
    let mut attached_any = false;
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for i in candidates {
        let listener = &mut gateway.listeners[i];
        if !listener.attachable()
            || !kind_allowed(listener, route_kind)
            || !listener.allowed_namespaces.admits(
                &listener.namespace,
                &route.key.namespace,
                route_labels,
            )
        {
            continue;
        }
        allowed_any = true;
        let hostnames = match route.hostnames {
            Some(names) => match intersect_hostnames(listener.hostname.as_deref(), names) {
                Some(h) => h,
                None => continue,
            },
            None => Vec::new(),
        };
        attached_any = true;
        if !seen.insert(i) || !listener.attached.insert(route.key.clone()) {
            // Already attached through another parentRef: count and serve it once.
            continue;
        }
        add_to_listener(listener, route, order, hostnames);
    }
    if attached_any {
        Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "",
            generation,
        )
    } else if allowed_any {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::NoMatchingListenerHostname,
            "no hostname of the route intersects a listener hostname",
            generation,
        )
    } else {
        Condition::new(
            ConditionType::Accepted,
            false,
            Reason::NotAllowedByListeners,
            format!(
                "no listener allows {route_kind} from namespace {:?}",
                route.key.namespace
            ),
            generation,
        )
    }
}

fn kind_allowed(listener: &CompiledListener, route_kind: &str) -> bool {
    listener
        .supported_kinds
        .iter()
        .any(|k| k.group() == GATEWAY_GROUP && k.kind == route_kind)
}

fn add_to_listener(
    listener: &mut CompiledListener,
    route: &RouteView<'_>,
    order: &RouteOrder,
    hostnames: Vec<String>,
) {
    let id = RouteId {
        key: route.key.clone(),
    };
    match &route.template {
        Template::Http(rules) => listener.http_routes.push(ir::HttpRoute {
            id,
            order: order.clone(),
            hostnames,
            rules: rules.clone(),
        }),
        Template::Grpc(rules) => listener.grpc_routes.push(ir::GrpcRoute {
            id,
            order: order.clone(),
            hostnames,
            rules: rules.clone(),
        }),
        Template::Tls(backends) => listener.tls_routes.push(ir::TlsRoute {
            id,
            order: order.clone(),
            hostnames,
            backends: backends.clone(),
        }),
        Template::L4(backends) => listener.l4_routes.push((
            order.clone(),
            ir::L4Route {
                id,
                backends: backends.clone(),
            },
        )),
    }
}
