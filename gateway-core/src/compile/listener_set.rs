//! ListenerSets: accepted by their parent Gateway or not, merged into it in precedence order,
//! and their status.

use super::gateway::{CompiledGateway, Outcome, join_errors, split_errors};
use super::index::Index;
use super::listener::compile_listener;
use crate::ir::RouteOrder;
use crate::model::{Condition, ConditionType, GATEWAY_GROUP, ObjectKey, Reason, ResourceKind};
use crate::status::Status;
use crate::validate;

/// A ListenerSet being compiled, as part of its parent Gateway.
#[derive(Debug)]
pub(super) struct CompiledListenerSet {
    pub(super) key: ObjectKey,
    pub(super) generation: Option<i64>,
    pub(super) uid: Option<String>,
    /// `Err` when the set is not accepted as a whole (`NotAllowed`, `ParentNotAccepted`,
    /// `Invalid`): none of its listeners are then merged.
    pub(super) accepted: Outcome,
}

/// Merges every ListenerSet into the Gateway it names, if that is one of ours: decides
/// whether the set is accepted (the Gateway's `allowedListeners`, the Gateway's own
/// acceptance, the set's validity) and appends the listeners of accepted sets, in precedence
/// order, after the Gateway's own. Sets whose parent is not ours are left to their controller.
pub(super) fn merge_listener_sets(
    index: &Index<'_>,
    gateways: &mut [CompiledGateway],
    status: &mut Status,
) {
    let snapshot = index.snapshot;
    let mut sets: Vec<(RouteOrder, &crate::model::ListenerSet)> = snapshot
        .listener_sets
        .iter()
        .map(|s| {
            (
                RouteOrder::new(
                    s.metadata.created_at(),
                    s.metadata.namespace(),
                    &s.metadata.name,
                ),
                s,
            )
        })
        .collect();
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, set) in sets {
        let key = ObjectKey::of(ResourceKind::ListenerSet, &set.metadata);
        let parent = &set.spec.parent_ref;
        let parent_ns = parent.namespace.as_deref().unwrap_or(&key.namespace);
        if parent.group() != GATEWAY_GROUP || parent.kind() != "Gateway" {
            continue;
        }
        let Some(gateway) = gateways
            .iter_mut()
            .find(|g| g.key.namespace == parent_ns && g.key.name == parent.name)
        else {
            continue;
        };
        let (listener_errors, set_errors) = split_errors(validate::listener_set(set), &key, status);
        let allowed = gateway.allowed_listeners.admits(
            &gateway.key.namespace,
            &key.namespace,
            &index.namespace_labels(&key.namespace),
        );
        let accepted: Outcome = if !allowed {
            Err((
                Reason::NotAllowed,
                format!(
                    "Gateway {} does not allow ListenerSets from namespace {:?}                      (spec.allowedListeners)",
                    gateway.key, key.namespace
                ),
            ))
        } else if let Err((reason, message)) = &gateway.accepted {
            Err((
                Reason::ParentNotAccepted,
                format!(
                    "Gateway {} is not accepted ({reason}: {message})",
                    gateway.key
                ),
            ))
        } else if !set_errors.is_empty() {
            Err((Reason::Invalid, join_errors(&set_errors)))
        } else {
            Ok(())
        };
        let set_index = gateway.listener_sets.len();
        if accepted.is_ok() {
            let parent_gateway = snapshot
                .gateways
                .iter()
                .find(|g| g.metadata.namespace() == parent_ns && g.metadata.name == parent.name);
            if let Some(parent_gateway) = parent_gateway {
                for (i, listener) in set.spec.listeners.iter().enumerate() {
                    let mut compiled =
                        compile_listener(index, &key, &gateway.key, parent_gateway, listener);
                    compiled.set = Some(set_index);
                    if let Some(errors) = listener_errors.get(&i) {
                        compiled.accepted = Err((Reason::UnsupportedValue, join_errors(errors)));
                    }
                    gateway.listeners.push(compiled);
                }
            }
        }
        gateway.listener_sets.push(CompiledListenerSet {
            key,
            generation: set.metadata.generation,
            uid: set.metadata.uid.clone(),
            accepted,
        });
    }
}

/// The conditions of a ListenerSet: its own acceptance, then its listeners'.
pub(super) fn listener_set_conditions(
    accepted: &Outcome,
    total: usize,
    valid: usize,
    programmed: usize,
    generation: Option<i64>,
) -> Vec<Condition> {
    let both = |ok: bool, reason: Reason, message: String| {
        vec![
            Condition::new(
                ConditionType::Accepted,
                ok,
                reason,
                message.clone(),
                generation,
            ),
            Condition::new(ConditionType::Programmed, ok, reason, message, generation),
        ]
    };
    match accepted {
        Err((reason, message)) => both(false, *reason, message.clone()),
        Ok(()) if valid == 0 => both(
            false,
            Reason::ListenersNotValid,
            "no listener is valid".into(),
        ),
        Ok(()) => {
            let accepted = if valid < total {
                Condition::new(
                    ConditionType::Accepted,
                    true,
                    Reason::ListenersNotValid,
                    format!("{} of {total} listeners are not valid", total - valid),
                    generation,
                )
            } else {
                Condition::new(
                    ConditionType::Accepted,
                    true,
                    Reason::Accepted,
                    "",
                    generation,
                )
            };
            let programmed = if programmed == 0 {
                Condition::new(
                    ConditionType::Programmed,
                    false,
                    Reason::Pending,
                    "no listener is programmed",
                    generation,
                )
            } else {
                Condition::new(
                    ConditionType::Programmed,
                    true,
                    Reason::Programmed,
                    "",
                    generation,
                )
            };
            vec![accepted, programmed]
        }
    }
}
