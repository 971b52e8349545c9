//! Listeners that cannot share an address and port: inside a Gateway, between a Gateway and
//! its ListenerSets, and across Gateways bound to one socket.

use std::net::IpAddr;

use super::Options;
use super::gateway::CompiledGateway;
use super::listener::CompiledListener;
use crate::model::Reason;

/// Bind port of a listener after the offset, if in range.
pub(super) fn bind_port(port: u16, options: &Options) -> Option<u16> {
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
pub(super) fn resolve_conflicts(gateways: &mut [CompiledGateway], options: &Options) {
    // Pass 1: within each Gateway. Conflicting listeners of the Gateway itself all lose (the
    // spec forbids picking a winner there). ListenerSet listeners come after them in
    // precedence order (the order of `listeners`): each one that conflicts with a listener
    // kept before it loses, as the ListenerSet rules say.
    for gateway in gateways.iter_mut() {
        let n = gateway.listeners.len();
        let own = gateway.listeners.iter().filter(|l| l.set.is_none()).count();
        for a in 0..own {
            for b in (a + 1)..own {
                let (la, lb) = (&gateway.listeners[a], &gateway.listeners[b]);
                if let Some(reason) = conflict(la, lb) {
                    gateway.listeners[a].conflicted.get_or_insert(reason);
                    gateway.listeners[b].conflicted.get_or_insert(reason);
                }
            }
        }
        for b in own..n {
            let lost = (0..b)
                .filter(|&a| {
                    let la = &gateway.listeners[a];
                    la.conflicted.is_none() && la.accepted.is_ok()
                })
                .find_map(|a| conflict(&gateway.listeners[a], &gateway.listeners[b]));
            if let Some(reason) = lost {
                gateway.listeners[b].conflicted.get_or_insert(reason);
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

fn conflict(a: &CompiledListener, b: &CompiledListener) -> Option<Reason> {
    if a.protocol.is_none() || b.protocol.is_none() || a.port != b.port {
        return None;
    }
    let (fa, fb) = (a.family()?, b.family()?);
    // UDP and TCP-based listeners use different sockets.
    if (fa == "UDP") != (fb == "UDP") {
        return None;
    }
    if fa != fb || fa == "TCP" || fa == "UDP" {
        return Some(Reason::ProtocolConflict);
    }
    (a.hostname == b.hostname).then_some(Reason::HostnameConflict)
}
