//! What [`Gateway::apply`](crate::Gateway::apply) could not do, and how that changes the
//! status compile wrote.
//!
//! Compile decides what is valid; only the data plane knows whether a socket could be bound
//! or a certificate is one the TLS stack takes. [`ApplyReport::merge_into`] puts that into
//! the [`Status`] before anyone sees it, so a listener that is not served is never reported
//! `Programmed`.

use std::net::SocketAddr;

use gateway_core::ir::{Ir, ListenerId};
use gateway_core::model::{Condition, ConditionType, ListenerStatus, Reason};
use gateway_core::status::Status;

/// Why a listener left out of a socket's configuration is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueKind {
    /// The TLS stack refuses the listener's certificate or key (`ResolvedRefs=False`,
    /// `InvalidCertificateRef`).
    InvalidCertificate,
    /// Another listener already serves the port with a protocol that cannot share it (two
    /// TCP or UDP listeners of different Gateways on one address): `Accepted=False`,
    /// `PortUnavailable`.
    PortInUse,
    /// The data plane cannot serve the listener as compiled (`Programmed=False`).
    Unsupported,
}

/// A listener the data plane could not serve as compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerIssue {
    /// Which listener.
    pub listener: ListenerId,
    /// What kind of problem it is (decides the condition it changes).
    pub kind: IssueKind,
    /// Why (for the listener's status and logs).
    pub message: String,
}

/// A socket that could not be bound; its listeners are not served (`PortUnavailable`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindFailure {
    /// The address that was asked for.
    pub address: SocketAddr,
    /// The listeners that wanted it.
    pub listeners: Vec<ListenerId>,
    /// The operating system's answer.
    pub message: String,
}

/// What [`Gateway::apply`](crate::Gateway::apply) did not manage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Sockets that could not be bound.
    pub bind_failures: Vec<BindFailure>,
    /// Listeners left out of a socket's configuration.
    pub listener_issues: Vec<ListenerIssue>,
}

impl ApplyReport {
    /// Whether everything in the Ir is being served.
    pub fn is_complete(&self) -> bool {
        self.bind_failures.is_empty() && self.listener_issues.is_empty()
    }

    /// Corrects `status` (compile's, for the Ir that was applied) with what the data plane
    /// could not do. Every binary calls this before it prints or writes a status.
    ///
    /// - a socket that could not be bound: its listeners get `Accepted=False`
    ///   `PortUnavailable` with the operating system's message, and `Programmed=False`;
    /// - a certificate the TLS stack refuses: `ResolvedRefs=False` `InvalidCertificateRef`
    ///   and `Programmed=False`;
    /// - a port another Gateway's L4 listener already serves: `Accepted=False`
    ///   `PortUnavailable`;
    /// - then each Gateway (or ListenerSet) that had such a listener: `Accepted` becomes
    ///   `ListenersNotValid` (`False` when no listener is left valid) and `Programmed=False`
    ///   when none of its listeners is programmed.
    ///
    /// ```
    /// use gateway_core::status::Status;
    /// use gateway_net::ApplyReport;
    /// let mut status = Status::default();
    /// ApplyReport::default().merge_into(&mut status);
    /// assert_eq!(status, Status::default());
    /// ```
    pub fn merge_into(&self, status: &mut Status) {
        let mut touched: Vec<&gateway_core::model::ObjectKey> = Vec::new();
        for failure in &self.bind_failures {
            let message = format!("cannot listen on {}: {}", failure.address, failure.message);
            for id in &failure.listeners {
                if let Some(listener) = listener_mut(status, id) {
                    not_accepted(listener, &message);
                    touched.push(&id.parent);
                }
            }
        }
        for issue in &self.listener_issues {
            let Some(listener) = listener_mut(status, &issue.listener) else {
                continue;
            };
            let message = &issue.message;
            match issue.kind {
                IssueKind::PortInUse => not_accepted(listener, message),
                IssueKind::InvalidCertificate => {
                    set(
                        &mut listener.conditions,
                        ConditionType::ResolvedRefs,
                        false,
                        Reason::InvalidCertificateRef,
                        message,
                    );
                    not_programmed(listener, message);
                }
                IssueKind::Unsupported => not_programmed(listener, message),
            }
            touched.push(&issue.listener.parent);
        }
        touched.sort();
        touched.dedup();
        for parent in touched {
            if let Some(gateway) = status.gateways.iter_mut().find(|g| &g.key == parent) {
                let s = &mut gateway.status;
                recount(&mut s.conditions, &s.listeners);
            } else if let Some(set) = status.listener_sets.iter_mut().find(|s| &s.key == parent) {
                let s = &mut set.status;
                recount(&mut s.conditions, &s.listeners);
            }
        }
    }
}

/// The status entry of a listener, whether its parent is a Gateway or a ListenerSet.
fn listener_mut<'s>(status: &'s mut Status, id: &ListenerId) -> Option<&'s mut ListenerStatus> {
    let listeners = if let Some(g) = status.gateways.iter_mut().find(|g| g.key == id.parent) {
        &mut g.status.listeners
    } else {
        let set = status
            .listener_sets
            .iter_mut()
            .find(|s| s.key == id.parent)?;
        &mut set.status.listeners
    };
    listeners.iter_mut().find(|l| l.name == id.name)
}

/// `Accepted=False PortUnavailable` and `Programmed=False`.
fn not_accepted(listener: &mut ListenerStatus, message: &str) {
    set(
        &mut listener.conditions,
        ConditionType::Accepted,
        false,
        Reason::PortUnavailable,
        message,
    );
    not_programmed(listener, message);
}

/// `Programmed=False`, reason `Invalid`.
fn not_programmed(listener: &mut ListenerStatus, message: &str) {
    set(
        &mut listener.conditions,
        ConditionType::Programmed,
        false,
        Reason::Invalid,
        message,
    );
}

/// Replaces the condition of `type_` (keeping its place and observed generation), or adds
/// it.
fn set(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    value: bool,
    reason: Reason,
    message: &str,
) {
    let generation = conditions.iter().find_map(|c| c.observed_generation);
    let condition = Condition::new(type_, value, reason, message, generation);
    match conditions.iter_mut().find(|c| c.is(type_)) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// A parent's `Accepted` and `Programmed` after some of its listeners lost theirs, by the
/// rules compile applies: no valid listener is `Accepted=False`, some is `ListenersNotValid`;
/// no programmed listener is `Programmed=False`. Conditions already `False` keep their
/// reason (it says more).
fn recount(conditions: &mut Vec<Condition>, listeners: &[ListenerStatus]) {
    let is_true = |l: &ListenerStatus, type_: ConditionType| {
        l.conditions.iter().any(|c| c.is(type_) && c.is_true())
    };
    let total = listeners.len();
    let valid = listeners
        .iter()
        .filter(|l| is_true(l, ConditionType::Accepted))
        .count();
    let programmed = listeners
        .iter()
        .filter(|l| is_true(l, ConditionType::Programmed))
        .count();
    let holds = |conditions: &[Condition], type_: ConditionType| {
        conditions.iter().any(|c| c.is(type_) && c.is_true())
    };
    if total == 0 {
        return;
    }
    if holds(conditions, ConditionType::Accepted) {
        if valid == 0 {
            set(
                conditions,
                ConditionType::Accepted,
                false,
                Reason::ListenersNotValid,
                "no listener is valid",
            );
        } else if valid < total {
            let message = format!("{} of {total} listeners are not valid", total - valid);
            set(
                conditions,
                ConditionType::Accepted,
                true,
                Reason::ListenersNotValid,
                &message,
            );
        }
    }
    if programmed == 0 && holds(conditions, ConditionType::Programmed) {
        set(
            conditions,
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            "no listener is programmed",
        );
    }
}

/// What [`Gateway::apply`](crate::Gateway::apply) would report about `ir` apart from binding
/// sockets: certificates the TLS stack refuses and listeners that cannot share a socket. For
/// `gateway check` and embedders that validate a configuration before serving it. Binds
/// nothing and needs no runtime.
///
/// ```
/// let report = gateway_net::verify(&gateway_core::ir::Ir::default());
/// assert!(report.is_complete());
/// ```
pub fn verify(ir: &Ir) -> ApplyReport {
    let shared = crate::shared::Shared::new(crate::GatewayConfig::default());
    // Cleartext HTTP binds report nothing: their routers are not built.
    let listener_issues = ir
        .binds
        .iter()
        .filter(|bind| bind.protocol != gateway_core::ir::BindProtocol::Http)
        .flat_map(|bind| crate::runtime::BindState::build(bind, &shared).1)
        .collect();
    ApplyReport {
        bind_failures: Vec::new(),
        listener_issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::model::{GatewayStatus, ObjectKey, ResourceKind};
    use gateway_core::status::ObjectStatus;

    fn healthy(name: &str) -> ListenerStatus {
        let ok = |(t, r): (ConditionType, Reason)| Condition::new(t, true, r, "", Some(3));
        ListenerStatus {
            name: name.to_owned(),
            supported_kinds: Vec::new(),
            attached_routes: 1,
            conditions: vec![
                ok((ConditionType::Accepted, Reason::Accepted)),
                ok((ConditionType::Programmed, Reason::Programmed)),
                ok((ConditionType::ResolvedRefs, Reason::ResolvedRefs)),
            ],
        }
    }

    fn key() -> ObjectKey {
        ObjectKey::new(ResourceKind::Gateway, "ns", "gw")
    }

    /// Compile's status of a Gateway with listeners `a` and `b`, all healthy.
    fn status() -> Status {
        let ok = |(t, r): (ConditionType, Reason)| Condition::new(t, true, r, "", Some(3));
        Status {
            gateways: vec![ObjectStatus {
                key: key(),
                generation: Some(3),
                uid: None,
                status: GatewayStatus {
                    conditions: vec![
                        ok((ConditionType::Accepted, Reason::Accepted)),
                        ok((ConditionType::Programmed, Reason::Programmed)),
                    ],
                    listeners: vec![healthy("a"), healthy("b")],
                    ..GatewayStatus::default()
                },
            }],
            ..Status::default()
        }
    }

    fn id(name: &str) -> ListenerId {
        ListenerId {
            parent: key(),
            name: name.to_owned(),
        }
    }

    /// `(status, reason)` of condition `type_` of the Gateway (`listener: None`) or a listener.
    fn condition(status: &Status, listener: Option<&str>, type_: &str) -> (String, String) {
        let gateway = &status.gateways[0].status;
        let conditions = match listener {
            None => &gateway.conditions,
            Some(name) => {
                &gateway
                    .listeners
                    .iter()
                    .find(|l| l.name == name)
                    .unwrap()
                    .conditions
            }
        };
        let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
        assert_eq!(c.observed_generation, Some(3), "generation kept");
        (c.status.clone(), c.reason.clone())
    }

    /// The socket of `listeners` could not be bound.
    fn unbound(listeners: &[&str], message: &str) -> BindFailure {
        BindFailure {
            address: "127.0.0.1:80".parse().unwrap(),
            listeners: listeners.iter().map(|l| id(l)).collect(),
            message: message.into(),
        }
    }

    fn is(status: &str, reason: &str) -> (String, String) {
        (status.to_owned(), reason.to_owned())
    }

    #[test]
    fn an_unbound_listener_is_port_unavailable_and_the_gateway_partly_valid() {
        let mut status = status();
        ApplyReport {
            bind_failures: vec![unbound(&["a"], "Address already in use")],
            listener_issues: Vec::new(),
        }
        .merge_into(&mut status);
        assert_eq!(
            condition(&status, Some("a"), "Accepted"),
            is("False", "PortUnavailable")
        );
        assert_eq!(
            condition(&status, Some("a"), "Programmed"),
            is("False", "Invalid")
        );
        assert_eq!(
            condition(&status, Some("b"), "Programmed"),
            is("True", "Programmed")
        );
        assert_eq!(
            condition(&status, None, "Accepted"),
            is("True", "ListenersNotValid")
        );
        assert_eq!(
            condition(&status, None, "Programmed"),
            is("True", "Programmed")
        );
    }

    #[test]
    fn a_gateway_with_no_listener_served_is_not_programmed() {
        let mut status = status();
        ApplyReport {
            bind_failures: vec![unbound(&["a"], "Address already in use")],
            listener_issues: vec![ListenerIssue {
                listener: id("b"),
                kind: IssueKind::InvalidCertificate,
                message: "KeyMismatch".into(),
            }],
        }
        .merge_into(&mut status);
        assert_eq!(
            condition(&status, Some("b"), "ResolvedRefs"),
            is("False", "InvalidCertificateRef")
        );
        assert_eq!(
            condition(&status, Some("b"), "Accepted"),
            is("True", "Accepted"),
            "a refused certificate leaves the listener accepted"
        );
        assert_eq!(
            condition(&status, None, "Accepted"),
            is("True", "ListenersNotValid")
        );
        assert_eq!(
            condition(&status, None, "Programmed"),
            is("False", "Invalid")
        );
        assert!(!status.all_healthy());
    }

    #[test]
    fn a_gateway_with_no_listener_bound_is_not_accepted() {
        let mut status = status();
        ApplyReport {
            bind_failures: vec![unbound(&["a", "b"], "Permission denied")],
            listener_issues: Vec::new(),
        }
        .merge_into(&mut status);
        assert_eq!(
            condition(&status, None, "Accepted"),
            is("False", "ListenersNotValid")
        );
        assert_eq!(
            condition(&status, None, "Programmed"),
            is("False", "Invalid")
        );
    }
}
