//! The end of compile for Gateways: the Ir binds the data plane serves, and the status of
//! Gateways, their listeners and ListenerSets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::Options;
use super::conflicts::bind_port;
use super::gateway::{CompiledGateway, Outcome};
use super::index::Index;
use super::listener::{AllowedNamespaces, CompiledListener};
use super::listener_set::listener_set_conditions;
use crate::ir::{self, Bind, BindProtocol, Ir, ListenerId, ListenerProtocol, Transport};
use crate::model::{
    Condition, ConditionType, GatewayStatus, GatewayStatusAddress, ListenerSetStatus,
    ListenerStatus, Reason,
};
use crate::status::{ObjectStatus, Status};

/// Writes the status of every Gateway, its listeners and ListenerSets, then builds the Ir
/// binds from what is servable.
pub(super) fn finish(
    index: &Index<'_>,
    options: &Options,
    gateways: Vec<CompiledGateway>,
    status: &mut Status,
) -> Ir {
    for gateway in &gateways {
        write_status(options, gateway, status);
    }
    index.backend_tls.write_status(&gateways, status);
    status.gateways.sort_by(|a, b| a.key.cmp(&b.key));
    status.listener_sets.sort_by(|a, b| a.key.cmp(&b.key));
    status.gateway_classes.sort_by(|a, b| a.key.cmp(&b.key));
    binds(options, gateways)
}

/// Why a listener's port cannot be bound once shifted by `--port-offset`.
fn port_error(listener: &CompiledListener, options: &Options) -> Option<String> {
    (bind_port(listener.port, options).is_none() && listener.port != 0).then(|| {
        format!(
            "port {} with offset {} is out of range",
            listener.port, options.port_offset
        )
    })
}

/// The status of one Gateway, its listeners and its ListenerSets.
fn write_status(options: &Options, gateway: &CompiledGateway, status: &mut Status) {
    let generation = gateway.generation;
    let mut listener_status = Vec::new();
    let mut valid = 0usize;
    let mut programmed_count = 0usize;
    // Per ListenerSet: (listener entries, valid, programmed).
    let mut set_listeners: Vec<(Vec<ListenerStatus>, usize, usize)> = gateway
        .listener_sets
        .iter()
        .map(|_| Default::default())
        .collect();
    let unbound = gateway.unbound_while_waiting().map(str::to_owned);
    for listener in &gateway.listeners {
        let port_error = port_error(listener, options);
        let mut conditions = listener_conditions(
            listener,
            gateway.accepted.is_ok(),
            port_error.as_deref(),
            generation,
        );
        if let Some(waiting) = &unbound
            && let Some(programmed) = conditions
                .iter_mut()
                .find(|c| c.is(ConditionType::Programmed) && c.is_true())
        {
            *programmed = Condition::new(
                ConditionType::Programmed,
                false,
                Reason::Pending,
                format!("not bound until the Gateway has an address: {waiting}"),
                generation,
            );
        }
        let (entries, valid, programmed_count) = match listener.set {
            None => (&mut listener_status, &mut valid, &mut programmed_count),
            Some(i) => {
                let (entries, valid, programmed) = &mut set_listeners[i];
                (entries, valid, programmed)
            }
        };
        // A ListenerSet listener counts as valid when its references resolve too: one
        // whose certificate it may not use leaves its set ListenersNotValid.
        let is_true = |t: ConditionType| conditions.iter().any(|c| c.is(t) && c.is_true());
        let is_valid = is_true(ConditionType::Accepted)
            && (listener.set.is_none() || listener.resolved.is_ok());
        if is_valid {
            *valid += 1;
        }
        if is_true(ConditionType::Programmed) {
            *programmed_count += 1;
        }
        entries.push(ListenerStatus {
            name: listener.name.clone(),
            supported_kinds: listener.supported_kinds.clone(),
            attached_routes: i64::try_from(listener.attached.len()).unwrap_or(i64::MAX),
            conditions,
        });
    }

    // Reported for Gateways that take ListenerSets, or that some ListenerSet names.
    let attached_listener_sets = !matches!(gateway.allowed_listeners, AllowedNamespaces::None)
        || !gateway.listener_sets.is_empty();
    let mut attached_sets = 0i64;
    for (set, (listeners, valid, programmed_count)) in
        gateway.listener_sets.iter().zip(set_listeners)
    {
        let conditions = listener_set_conditions(
            &set.accepted,
            listeners.len(),
            valid,
            programmed_count,
            set.generation,
        );
        if conditions
            .iter()
            .any(|c| c.is(ConditionType::Accepted) && c.is_true())
        {
            attached_sets += 1;
        }
        status.listener_sets.push(ObjectStatus {
            key: set.key.clone(),
            generation: set.generation,
            uid: set.uid.clone(),
            status: ListenerSetStatus {
                conditions,
                listeners,
            },
        });
    }
    let total = listener_status.len();
    let (accepted, programmed) = match &gateway.accepted {
        Err((reason, message)) => (
            Condition::new(
                ConditionType::Accepted,
                false,
                *reason,
                message.clone(),
                generation,
            ),
            Condition::new(
                ConditionType::Programmed,
                false,
                Reason::Invalid,
                message.clone(),
                generation,
            ),
        ),
        Ok(()) if valid == 0 && total > 0 => (
            Condition::new(
                ConditionType::Accepted,
                false,
                Reason::ListenersNotValid,
                "no listener is valid",
                generation,
            ),
            Condition::new(
                ConditionType::Programmed,
                false,
                Reason::Invalid,
                "no listener is valid",
                generation,
            ),
        ),
        Ok(()) => (
            if valid < total {
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
            },
            Condition::new(
                ConditionType::Programmed,
                true,
                Reason::Programmed,
                "",
                generation,
            ),
        ),
    };
    // A Gateway that waits for its address, or whose requested address cannot be used, is
    // not programmed, whatever its listeners; one none of whose listeners serves anything
    // is not either.
    let unusable = gateway
        .assigned
        .as_ref()
        .and_then(|a| a.unusable.as_ref())
        .filter(|_| gateway.accepted.is_ok());
    let waiting = gateway
        .assigned
        .as_ref()
        .filter(|a| a.is_waiting() && gateway.accepted.is_ok());
    let programmed = if let Some(why) = unusable.filter(|_| programmed.is_true()) {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::AddressNotUsable,
            why.clone(),
            generation,
        )
    } else if let Some(assigned) = waiting.filter(|_| programmed.is_true()) {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::AddressNotAssigned,
            assigned.waiting.clone(),
            generation,
        )
    } else if programmed.is_true() && programmed_count == 0 && total > 0 {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            "no listener is programmed",
            generation,
        )
    } else {
        programmed
    };
    let mut conditions = vec![accepted, programmed];
    conditions.extend(gateway.extra_conditions.iter().cloned());
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
        key: gateway.key.clone(),
        generation,
        uid: gateway.uid.clone(),
        status: GatewayStatus {
            addresses,
            conditions,
            listeners: listener_status,
            attached_listener_sets: attached_listener_sets.then_some(attached_sets),
        },
    });
}

/// The Ir: every servable listener, in the bind of each of its Gateway's addresses.
fn binds(options: &Options, gateways: Vec<CompiledGateway>) -> Ir {
    type BindKey = (IpAddr, u16, Transport);
    let mut binds: BTreeMap<BindKey, (BindProtocol, Vec<Arc<ir::Listener>>)> = BTreeMap::new();
    for gateway in gateways {
        let unbound = gateway.unbound_while_waiting().is_some();
        let mut with_client_certificate = BTreeMap::new();
        for mut listener in gateway.listeners {
            let bind = bind_port(listener.port, options);
            let servable = gateway.accepted.is_ok()
                && listener.servable()
                && port_error(&listener, options).is_none()
                && !unbound;
            let (Some(protocol), Some(port), true) = (listener.protocol, bind, servable) else {
                continue;
            };
            if let Some(certificate) = &gateway.backend_client_certificate {
                super::backend_tls::offer_client_certificate(
                    &mut listener,
                    certificate,
                    &mut with_client_certificate,
                );
            }
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
            let parent = match listener.set {
                Some(i) => gateway.listener_sets[i].key.clone(),
                None => gateway.key.clone(),
            };
            let ir_listener = Arc::new(ir::Listener {
                id: ListenerId {
                    parent,
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
    }
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
        accepted = Err((Reason::PortUnavailable, message.to_owned()));
    }
    let programmed = match (&accepted, listener.programmed()) {
        // A ListenerSet listener that lost a conflict says why in Programmed too.
        (Err((reason, m)), _) if listener.set.is_some() && listener.conflicted.is_some() => {
            Err((*reason, m.clone()))
        }
        (Err((_, m)), _) => Err((Reason::Invalid, m.clone())),
        (Ok(()), _) if !gateway_accepted => {
            Err((Reason::Invalid, "the Gateway is not accepted".to_owned()))
        }
        (Ok(()), p) => p,
    };
    let condition = |type_: ConditionType, outcome: &Outcome, ok_reason: Reason| match outcome {
        Ok(()) => Condition::new(type_, true, ok_reason, "", generation),
        Err((reason, message)) => {
            Condition::new(type_, false, *reason, message.clone(), generation)
        }
    };
    vec![
        condition(ConditionType::Accepted, &accepted, Reason::Accepted),
        condition(ConditionType::Programmed, &programmed, Reason::Programmed),
        condition(
            ConditionType::ResolvedRefs,
            &listener.resolved,
            Reason::ResolvedRefs,
        ),
        match listener.conflicted {
            Some(reason) => Condition::new(
                ConditionType::Conflicted,
                true,
                reason,
                "conflicts with another listener on the same port",
                generation,
            ),
            None => Condition::new(
                ConditionType::Conflicted,
                false,
                Reason::NoConflicts,
                "",
                generation,
            ),
        },
    ]
}
