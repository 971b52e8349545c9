//! What compile says about every resource: upstream conditions, and diagnostics for people.

use std::fmt;

use crate::model::{
    Condition, GatewayClassStatus, GatewayStatus, ListenerSetStatus, ObjectKey, PolicyStatus,
    RouteStatus,
};

/// The status of one object, as compile computed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStatus<S> {
    /// Which object.
    pub key: ObjectKey,
    /// `metadata.generation` the status was computed from.
    pub generation: Option<i64>,
    /// The status, in the object's own `status` shape (what a Kubernetes writer patches).
    pub status: S,
}

/// Everything compile reports about a snapshot.
///
/// Only objects this controller owns appear: GatewayClasses whose controllerName matches, their
/// Gateways, and Routes' `status.parents` entries for those Gateways. Conditions carry
/// `observedGeneration`; `lastTransitionTime` is left to the status writer (compile has no clock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// GatewayClasses of this controller.
    pub gateway_classes: Vec<ObjectStatus<GatewayClassStatus>>,
    /// Gateways of those classes.
    pub gateways: Vec<ObjectStatus<GatewayStatus>>,
    /// ListenerSets whose parent is one of those Gateways.
    pub listener_sets: Vec<ObjectStatus<ListenerSetStatus>>,
    /// Routes of every kind (the key's kind tells which), with one parent entry per parentRef
    /// that names one of those Gateways.
    pub routes: Vec<ObjectStatus<RouteStatus>>,
    /// BackendTLSPolicies, per ancestor Gateway.
    pub policies: Vec<ObjectStatus<PolicyStatus>>,
    /// Problems worth telling a person, with the object and field they are about.
    pub diagnostics: Vec<Diagnostic>,
}

impl Status {
    /// The status of a Gateway, if it is ours.
    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&ObjectStatus<GatewayStatus>> {
        self.gateways
            .iter()
            .find(|g| g.key.namespace == namespace && g.key.name == name)
    }

    /// The status of a route of any kind.
    pub fn route(&self, key: &ObjectKey) -> Option<&ObjectStatus<RouteStatus>> {
        self.routes.iter().find(|r| &r.key == key)
    }

    /// Whether every condition of type `Accepted` that compile wrote is `True`: the `check`
    /// command exits non-zero otherwise.
    pub fn all_accepted(&self) -> bool {
        let accepted = |conditions: &[Condition]| {
            conditions
                .iter()
                .filter(|c| c.type_ == "Accepted")
                .all(Condition::is_true)
        };
        self.gateway_classes
            .iter()
            .all(|c| accepted(&c.status.conditions))
            && self.gateways.iter().all(|g| {
                accepted(&g.status.conditions)
                    && g.status.listeners.iter().all(|l| accepted(&l.conditions))
            })
            && self
                .listener_sets
                .iter()
                .all(|s| accepted(&s.status.conditions))
            && self
                .routes
                .iter()
                .all(|r| r.status.parents.iter().all(|p| accepted(&p.conditions)))
            && self
                .policies
                .iter()
                .all(|p| p.status.ancestors.iter().all(|a| accepted(&a.conditions)))
    }
}

/// A problem found while compiling, for people (`gateway check`, logs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The object it is about.
    pub object: ObjectKey,
    /// JSON path of the field (`spec.rules[0].matches[1].path.value`), or `""` for the object.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}
