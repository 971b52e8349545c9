//! What compile says about every resource: upstream conditions, and diagnostics for people.

use std::fmt;

use serde::Serialize;

use crate::model::{
    Condition, GatewayClassStatus, GatewayStatus, ListenerSetStatus, ObjectKey, PolicyStatus,
    RouteStatus,
};

/// The status of one object, as compile computed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus<S> {
    /// Which object.
    pub key: ObjectKey,
    /// `metadata.generation` the status was computed from.
    pub generation: Option<i64>,
    /// `metadata.uid` of the object the status was computed for: an object deleted and made
    /// again under the same name is another object, whose status must be written even when it
    /// is the same as its predecessor's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The status, in the object's own `status` shape (what a Kubernetes writer patches).
    pub status: S,
}

/// Everything compile reports about a snapshot.
///
/// Only objects this controller owns appear: GatewayClasses whose controllerName matches, their
/// Gateways, and Routes' `status.parents` entries for those Gateways. Conditions carry
/// `observedGeneration`; `lastTransitionTime` is left to the status writer (compile has no clock).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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

    /// Whether every condition of type `Accepted` that compile wrote is `True`.
    pub fn all_accepted(&self) -> bool {
        self.every_condition(|c| c.type_ != "Accepted" || c.is_true())
    }

    /// Whether nothing needs attention: every `Accepted`, `Programmed` and `ResolvedRefs`
    /// condition is `True` and no route is `PartiallyInvalid`. `gateway check` exits non-zero
    /// otherwise.
    pub fn all_healthy(&self) -> bool {
        self.every_condition(|c| match c.type_.as_str() {
            "Accepted" | "Programmed" | "ResolvedRefs" => c.is_true(),
            "PartiallyInvalid" => !c.is_true(),
            _ => true,
        })
    }

    /// Whether `ok` holds for every condition of every object (listeners and route parents
    /// included).
    fn every_condition(&self, ok: impl Fn(&Condition) -> bool) -> bool {
        let all = |conditions: &[Condition]| conditions.iter().all(&ok);
        self.gateway_classes
            .iter()
            .all(|c| all(&c.status.conditions))
            && self.gateways.iter().all(|g| {
                all(&g.status.conditions) && g.status.listeners.iter().all(|l| all(&l.conditions))
            })
            && self.listener_sets.iter().all(|s| all(&s.status.conditions))
            && self
                .routes
                .iter()
                .all(|r| r.status.parents.iter().all(|p| all(&p.conditions)))
            && self
                .policies
                .iter()
                .all(|p| p.status.ancestors.iter().all(|a| all(&a.conditions)))
    }
}

/// A problem found while compiling, for people (`gateway check`, logs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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

// === Table rendering ===

impl Status {
    /// Renders every condition as an aligned table (one row per condition), followed by the
    /// diagnostics: what `gateway check` prints and the admin `/status` endpoint serves.
    ///
    /// ```
    /// use gateway_core::status::Status;
    /// let table = Status::default().to_table();
    /// assert!(table.starts_with("KIND"));
    /// ```
    pub fn to_table(&self) -> String {
        let mut rows: Vec<[String; 6]> = Vec::new();
        let mut push = |kind: &str, name: String, conditions: &[Condition]| {
            for (i, c) in conditions.iter().enumerate() {
                let (kind, name) = if i == 0 {
                    (kind.to_owned(), name.clone())
                } else {
                    (String::new(), String::new())
                };
                rows.push([
                    kind,
                    name,
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]);
            }
        };
        let qualified = |key: &crate::model::ObjectKey| {
            if key.namespace.is_empty() {
                key.name.clone()
            } else {
                format!("{}/{}", key.namespace, key.name)
            }
        };
        for class in &self.gateway_classes {
            push(
                "GatewayClass",
                qualified(&class.key),
                &class.status.conditions,
            );
        }
        for gateway in &self.gateways {
            push(
                "Gateway",
                qualified(&gateway.key),
                &gateway.status.conditions,
            );
            for listener in &gateway.status.listeners {
                push(
                    "  Listener",
                    format!("{} ({} routes)", listener.name, listener.attached_routes),
                    &listener.conditions,
                );
            }
        }
        for set in &self.listener_sets {
            push("ListenerSet", qualified(&set.key), &set.status.conditions);
        }
        for route in &self.routes {
            for parent in &route.status.parents {
                let p = &parent.parent_ref;
                let mut target = format!(
                    "{} -> {}/{}",
                    qualified(&route.key),
                    p.namespace.as_deref().unwrap_or(""),
                    p.name
                );
                if let Some(section) = &p.section_name {
                    target.push_str(&format!("#{section}"));
                }
                if let Some(port) = p.port {
                    target.push_str(&format!(":{port}"));
                }
                push(route.key.kind.as_str(), target, &parent.conditions);
            }
        }
        let header = ["KIND", "NAME", "CONDITION", "STATUS", "REASON", "MESSAGE"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if !self.diagnostics.is_empty() {
            out.push_str("\nProblems:\n");
            for d in &self.diagnostics {
                out.push_str(&format!("  {d}\n"));
            }
        }
        out
    }
}
