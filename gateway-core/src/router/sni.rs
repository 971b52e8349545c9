//! Listener and TLSRoute selection by SNI on a TLS bind.

use std::sync::Arc;

use crate::ir::{Listener, TlsRoute};

use super::host::{HostKey, HostTable};
use super::http::{route_hosts, route_ranks};

#[derive(Debug)]
struct SniListener {
    listener: Arc<Listener>,
    /// Route positions per hostname, oldest route first.
    routes: HostTable<Vec<usize>>,
}

/// Picks the listener, and for TLS listeners the TLSRoute, of a TLS connection by its SNI.
#[derive(Debug)]
pub struct SniRouter {
    table: HostTable<usize>,
    listeners: Vec<SniListener>,
}

impl SniRouter {
    /// Indexes the listeners of one TLS bind.
    pub fn new(listeners: &[Arc<Listener>]) -> SniRouter {
        let mut table = HostTable::new();
        let mut indexed = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let position = indexed.len();
            table.get_or_insert_with(listener.hostname.as_deref(), || position);
            let ranks = route_ranks(listener.tls_routes.iter().map(|r| &r.order));
            let mut routes: HostTable<Vec<usize>> = HostTable::new();
            for (r, route) in listener.tls_routes.iter().enumerate() {
                for host in route_hosts(&route.hostnames) {
                    routes.get_or_insert_with(host, Vec::new).push(r);
                }
            }
            for list in routes.values_mut() {
                list.sort_by_key(|&r| ranks.get(r).copied().unwrap_or(usize::MAX));
            }
            indexed.push(SniListener {
                listener: Arc::clone(listener),
                routes,
            });
        }
        SniRouter {
            table,
            listeners: indexed,
        }
    }

    fn index(&self, sni: Option<&HostKey>) -> Option<&SniListener> {
        let position = match sni {
            Some(key) => self.table.lookup_key(key.clone()).next().map(|(_, &p)| p),
            // Without SNI no hostname can be matched, so only a listener that accepts any
            // hostname may take the connection.
            None => self.table.catch_all().copied(),
        }?;
        self.listeners.get(position)
    }

    /// The most specific listener whose hostname matches `sni`; a client that sent no SNI
    /// gets the listener without hostname, if there is one.
    pub fn listener(&self, sni: Option<&str>) -> Option<&Arc<Listener>> {
        let key = sni.map(HostKey::new);
        self.index(key.as_ref()).map(|l| &l.listener)
    }

    /// The listener and TLSRoute for a connection with this SNI: within the listener
    /// [`listener`](Self::listener) picks, the route with the most specific matching hostname
    /// (exact, then longer wildcard), ties going to the oldest route.
    pub fn tls_route(&self, sni: &str) -> Option<(&Arc<Listener>, &TlsRoute)> {
        let key = HostKey::new(sni);
        let index = self.index(Some(&key))?;
        let route = index
            .routes
            .lookup_key(key)
            .find_map(|(_, list)| list.first())
            .and_then(|&r| index.listener.tls_routes.get(r))?;
        Some((&index.listener, route))
    }
}
